# raftkms — build, run and test. `make run` and `make test` are the quick start.
SHELL := /bin/bash
GO ?= go
export GOFLAGS := -buildvcs=false

DATA_DIR ?= ./data
API_ADDR ?= 127.0.0.1:8080
RAFT_ADDR ?= 127.0.0.1:8081

BINARIES := bin/kmsd bin/kmsctl

.PHONY: all build run test test-unit test-integration lint fuzz deps clean

all: build

deps: ## install what the build and tests need (Go modules)
	@command -v $(GO) >/dev/null || { echo "Go is required (https://go.dev/dl)"; exit 1; }
	$(GO) mod download

build: deps ## build bin/kmsd and bin/kmsctl
	$(GO) build -o bin/ ./cmd/kmsd ./cmd/kmsctl

run: build ## start a single-node kmsd on $(API_ADDR) with data in $(DATA_DIR)
	exec bin/kmsd --data-dir $(DATA_DIR) --node-id node1 --api-addr $(API_ADDR) --raft-addr $(RAFT_ADDR)

test: lint test-unit test-integration ## everything CI runs

test-unit: deps
	$(GO) test -race -count=1 ./...

test-integration: build
	$(GO) test -count=1 -tags integration ./integration/...

lint: deps ## gofmt, go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

FUZZTIME ?= 20s
fuzz: ## run every fuzz target for $(FUZZTIME)
	$(GO) test ./crypto -run xxx -fuzz FuzzSplitBlob -fuzztime $(FUZZTIME)
	$(GO) test ./fsm -run xxx -fuzz FuzzDecode -fuzztime $(FUZZTIME)
	$(GO) test ./api/sign -run xxx -fuzz FuzzParseV3Authorization -fuzztime $(FUZZTIME)
	$(GO) test ./api/sign -run xxx -fuzz FuzzVerifyV1 -fuzztime $(FUZZTIME)
	$(GO) test ./api/sign -run xxx -fuzz FuzzV3CanonicalRequest -fuzztime $(FUZZTIME)
	$(GO) test ./api/replay -run xxx -fuzz FuzzCheck -fuzztime $(FUZZTIME)

clean:
	rm -rf bin
