# Build: docker build --build-arg VERSION=$(git describe --always) -t caliop .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /caliop ./cmd/caliop
# data_dir of deploy/caliop.yml, owned by the image's nonroot user (65532).
RUN mkdir -p /var-lib-caliop

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /caliop /usr/local/bin/caliop
COPY deploy/caliop.yml /etc/caliop/caliop.yml
COPY --from=build --chown=65532:65532 /var-lib-caliop /var/lib/caliop
USER nonroot
EXPOSE 10024 10025 9464
ENTRYPOINT ["/usr/local/bin/caliop"]
CMD ["serve", "--config", "/etc/caliop/caliop.yml"]
