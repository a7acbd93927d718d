VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
BENCHFLAGS ?=

.PHONY: test e2e build bench bench-mix

# The README's test command; real-component tests skip when their
# component is missing (CI runs .ci/run, which sets CALIOP_E2E=1).
test:
	go test ./...

# Real-component tests only, required to run (root, postfix, swaks).
e2e:
	CALIOP_E2E=1 go test -count=1 -v ./internal/e2e/

build:
	go build -ldflags "-X main.version=$(VERSION)" -o bin/caliop ./cmd/caliop

# smtp-source (postfix package) → sink and → caliop → TLS sink; see
# cmd/caliop-bench/main.go. Extra flags: make bench BENCHFLAGS="-d=false".
bench: build
	go run ./cmd/caliop-bench -caliop bin/caliop $(BENCHFLAGS)

# A provider's destination mix through the LMTP listener: 1, 100, 1,000
# and 10,000 domains (Zipf), MTA-STS, DANE and WKD among them, a cold pass
# of 50,000 messages each, then the measured warm passes of 10,000 back to
# back, medians of five. Needs root (each world's policy server takes port
# 443 of 127.0.2.k). See cmd/caliop-bench/mix.go and mixworld.go.
bench-mix: build
	go run ./cmd/caliop-bench -caliop bin/caliop -mix 1,100,1000,10000 -mix-warmup 50000 -mix-messages 10000 -repeat 5 $(BENCHFLAGS)
