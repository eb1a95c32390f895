# reachd — build, test and end-to-end targets.
GO      ?= go
BIN     := bin/reachd
PKG     := github.com/prometheus/common/version
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X $(PKG).Version=$(VERSION) \
	-X $(PKG).Revision=$(shell git rev-parse HEAD 2>/dev/null) \
	-X $(PKG).Branch=$(shell git rev-parse --abbrev-ref HEAD 2>/dev/null) \
	-X $(PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)

.PHONY: all build test race vet fmt e2e bench clean

all: vet test build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/reachd

test:
	$(GO) test ./...

race:
	$(GO) test -race ./...

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/

fmt:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }

# The end-to-end suite: the built binary against real components (promtool,
# Prometheus, Alertmanager, squid, unbound, chromium, network namespaces),
# then every fuzz target for FUZZTIME. As root on Debian, .ci/run installs
# what it needs first.
FUZZTIME ?= 10s
e2e: build
	REACHD_BIN=$(CURDIR)/$(BIN) $(GO) test -tags e2e -count=1 -v -timeout 20m ./e2e/
	GO=$(GO) FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# Performance figures (docs/performance.md): Go benchmarks, then reachbench.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./probe ./exporter
	$(GO) run ./cmd/reachbench --reachd $(BIN)

clean:
	rm -rf bin
