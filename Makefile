VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: test build

test:
	go test ./...

build:
	go build -ldflags "-X main.version=$(VERSION)" -o bin/caliop ./cmd/caliop
