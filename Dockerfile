# Build: docker build --build-arg VERSION=$(git describe --always) -t caliop .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /caliop ./cmd/caliop
# Ports 25 and 443 as the nonroot user: the file capability, not root.
RUN apt-get update && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep /caliop
# data_dir of deploy/caliop.yml, owned by the image's nonroot user (65532).
RUN mkdir -p /var-lib-caliop

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="Caliop relay" org.opencontainers.image.version="${VERSION}"
COPY --from=build /caliop /usr/local/bin/caliop
COPY deploy/caliop.yml /etc/caliop/caliop.yml
COPY --from=build --chown=65532:65532 /var-lib-caliop /var/lib/caliop
USER nonroot
# 25 inbound SMTP, 443 MTA-STS policy host and ACME, 10024/10025 outbound
# LMTP/SMTP from the MTA, 9464 metrics, /healthz and /readyz.
EXPOSE 25 443 10024 10025 9464
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s \
  CMD ["/usr/local/bin/caliop", "healthcheck", "--config", "/etc/caliop/caliop.yml"]
ENTRYPOINT ["/usr/local/bin/caliop"]
CMD ["serve", "--config", "/etc/caliop/caliop.yml"]
