# Token refresher. `make test` starts (or installs) MariaDB and Redis itself.
GO      ?= go
BIN     := bin
PKGS    := ./...

.PHONY: all build test lint services schema run sandbox bench clean

all: build

## build: the binaries in bin/ (scanner, refresher, sandbox)
build:
	$(GO) build -trimpath -o $(BIN)/ ./cmd/...

## test: vet, then every test with the race detector, against real MariaDB and Redis
test: services
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## lint: gofmt and go vet must be clean
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## services: start MariaDB and Redis, installing them when missing
services:
	@bash scripts/services.sh

## schema: (re)create the dev databases from deploy/mysql with the seed rows
schema: services
	@bash scripts/run-local.sh schema

## run: the whole system on this machine (sandbox, refresher, scanner) against the dev schema
run: build services
	@bash scripts/run-local.sh

## bench: measure against the same-run ceilings on this machine and rewrite docs/benchmarks.md
##        (about 10 minutes; BENCH_QUICK=1 for a smoke run into bin/, BENCH_FLAGS=-million for N = 1M)
BENCH_OUT   = $(if $(filter-out 0,$(BENCH_QUICK)),$(BIN)/benchmarks-quick.md,docs/benchmarks.md)
BENCH_FLAGS ?=
bench: build services
	$(BIN)/bench -bin $(BIN) -out $(BENCH_OUT) $(if $(filter-out 0,$(BENCH_QUICK)),-quick) $(BENCH_FLAGS) >/dev/null

clean:
	rm -rf $(BIN)
