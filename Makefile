VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
BENCHFLAGS ?=

.PHONY: test e2e build bench

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
