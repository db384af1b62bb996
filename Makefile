# cutover: two commands matter. `make demo` runs the local stack, `make test` runs every test.
# Both run setup first; setup is idempotent and installs only what is missing.
SHELL := /bin/bash
GO ?= go
export PYTHONPATH := $(CURDIR)/.pydeps
export GOFLAGS ?= -buildvcs=false
BIN := $(CURDIR)/bin

.PHONY: setup build test test-go test-nocgo test-legacy test-stress fuzz demo bench soak clean

setup:
	@./legacy/setup.sh

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

test: setup build
	$(GO) vet ./...
	$(MAKE) --no-print-directory test-legacy
	$(MAKE) --no-print-directory test-go
	$(MAKE) --no-print-directory test-nocgo
	$(MAKE) --no-print-directory fuzz

test-legacy:
	cd legacy && BEDROCK_STUB_BIN=$(BIN)/bedrock-stub python3 -m unittest discover -s tests -v

test-go:
	$(GO) test -count=1 -timeout 10m ./...

# The Go suite under CPU contention: two busy loops hog both cores while every
# test runs STRESS_COUNT times at GOMAXPROCS 1 and 2. A test that passes here
# does not depend on the machine's speed. The hogs are started and killed by
# this target and bounded by STRESS_TIMEOUT like the run itself.
STRESS_COUNT ?= 3
STRESS_CPU ?= 1,2
STRESS_PKGS ?= ./...
STRESS_TIMEOUT ?= 60m
test-stress: setup build
	@set -e; hogs=""; \
	for i in 1 2; do timeout $(STRESS_TIMEOUT) sh -c 'while :; do :; done' & hogs="$$hogs $$!"; done; \
	trap 'kill $$hogs 2>/dev/null || true' EXIT INT TERM; \
	echo "test-stress: 2 CPU hogs ($$hogs), -count=$(STRESS_COUNT) -cpu $(STRESS_CPU) $(STRESS_PKGS)"; \
	$(GO) test -count=$(STRESS_COUNT) -cpu $(STRESS_CPU) -timeout $(STRESS_TIMEOUT) $(STRESS_PKGS)

# The Dockerfile builds with CGO_ENABLED=0, where compat compresses large
# sessions with Go's zlib: compat (Flask opens every Go cookie) and the
# conformance suite (cookies differ only in their deflate bytes) in that build.
test-nocgo:
	CGO_ENABLED=0 $(GO) test -count=1 -timeout 10m ./compat/
	CGO_ENABLED=0 $(GO) test -count=1 -timeout 10m -run '^TestConformance' ./handlers/

# Each fuzz target (every package) runs for a fixed small budget so CI time stays bounded.
FUZZTIME ?= 15s
FUZZ_PKGS := ./compat/ ./shadow/ ./internal/bedrockstub/
fuzz:
	@set -e; for p in $(FUZZ_PKGS); do \
	  for t in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
	    echo "fuzz $$p $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p; \
	  done; \
	done

demo: setup build
	$(BIN)/cutover demo

bench: build
	@CUTOVER_BENCH_TOOLS=1 ./legacy/setup.sh
	./bench/run.sh

# Several minutes of mixed load with faults on a schedule (SOAK_DURATION, default 5m).
soak: setup build
	./bench/soak.sh

clean:
	rm -rf $(BIN)
