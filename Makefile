# Token refresher. `make test` starts (or installs) MariaDB and Redis itself.
GO      ?= go
BIN     := bin
PKGS    := ./...

.PHONY: all build test test-short fault soak lint services tools schema run sandbox bench clean

all: build

## demo: the whole system in one process with nothing installed but Go (embedded MySQL and Redis);
##       DEMO_ARGS="--plain --for 2m" passes flags; WMS_DB_DSN, IE_DB_DSN and REDIS_URL all set use real servers
.PHONY: demo
demo:
	$(GO) build -trimpath -o $(BIN)/demo ./cmd/demo
	@$(BIN)/demo $(DEMO_ARGS)

## build: the binaries in bin/ (scanner, refresher, sandbox, tokenctl, dashboard)
build:
	$(GO) build -trimpath -o $(BIN)/ ./cmd/...

# gotestsum runs go test -json and prints a line per package as it finishes,
# then a closing "DONE N tests[, M skipped][, K failures] in Ts" (CI reads it).
# Installed into bin/ from the Go module proxy on first use.
GOTESTSUM_VERSION := v1.13.0
GOTESTSUM         := $(BIN)/gotestsum
GOTESTSUM_FLAGS   := --format pkgname --format-icons text --format-hide-empty-pkg

$(GOTESTSUM):
	@mkdir -p $(BIN)
	GOBIN=$(abspath $(BIN)) $(GO) install gotest.tools/gotestsum@$(GOTESTSUM_VERSION)

## test: vet, then every test with the race detector, against real MariaDB and Redis
## (and docker-compose, promtool and Chromium for the deploy and browser checks);
## about 4-8 minutes on 2 cores (8 when compiling from scratch), the fault suite alone 3.5
test: services tools $(GOTESTSUM)
	$(GO) vet $(PKGS)
	$(GOTESTSUM) $(GOTESTSUM_FLAGS) -- -race -count=1 -timeout 20m $(PKGS)

## test-short: the inner loop, about a minute: every package but the fault suite
## (e2e/fault), with -short (no browser, no long runs); still -race, real MariaDB and Redis
test-short: services $(GOTESTSUM)
	$(GOTESTSUM) $(GOTESTSUM_FLAGS) -- -race -count=1 -short -timeout 5m $$($(GO) list $(PKGS) | grep -v '/e2e/fault$$')

## fault: the fault-injection suite alone, verbose, then its measured figures (docs/reliability.md)
fault: services
	@mkdir -p $(BIN)
	$(GO) test -count=1 -timeout 20m -v ./e2e/fault/ > $(BIN)/fault.log 2>&1 || (tail -100 $(BIN)/fault.log; exit 1)
	@grep -h 'FIGURE' $(BIN)/fault.log | sed 's/^ *[a-z_]*_test.go:[0-9]*: //'

## soak: only the two-minute soak (also part of make test)
soak: services
	$(GO) test -count=1 -timeout 10m -v -run 'TestSoak$$' ./e2e/fault/

## soak-long: ten minutes, 3 refreshers, 2 scanners, 20% marketplace faults, a Redis Sentinel failover and a
##            20s database blackhole (not part of make test; SOAK_LONG_DURATION=3m shortens it), then its figures
.PHONY: soak-long
soak-long: services
	@mkdir -p $(BIN)
	SOAK_LONG=1 $(GO) test -count=1 -timeout 30m -v -run 'TestSoakLong$$' ./e2e/fault/ > $(BIN)/soak-long.log 2>&1 || (tail -100 $(BIN)/soak-long.log; exit 1)
	@grep -h 'FIGURE' $(BIN)/soak-long.log | sed 's/^ *[a-z_]*_test.go:[0-9]*: //'

## lint: gofmt and go vet must be clean
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## services: start MariaDB and Redis, installing them when missing
services:
	@bash scripts/services.sh

## tools: install docker-compose, promtool and Chromium when missing; a test whose
## tool cannot be installed skips and says what it did not check
tools:
	@bash scripts/tools.sh || echo "WARNING: some tools are missing: the tests that need them are SKIPPED (see above)" >&2

## schema: (re)create the dev databases from deploy/mysql with the seed rows
schema: services
	@bash scripts/run-local.sh schema

## run: the whole system on this machine (sandbox, refresher, scanner) against the dev schema
run: build services
	@bash scripts/run-local.sh

## bench: measure against the same-run ceilings on this machine and rewrite docs/benchmarks.md
##        (about 25 minutes; BENCH_QUICK=1 for a smoke run into bin/, BENCH_FLAGS=-million for N = 1M)
BENCH_OUT   = $(if $(filter-out 0,$(BENCH_QUICK)),$(BIN)/benchmarks-quick.md,docs/benchmarks.md)
BENCH_FLAGS ?=
bench: build services
	$(BIN)/bench -bin $(BIN) -out $(BENCH_OUT) $(if $(filter-out 0,$(BENCH_QUICK)),-quick) $(BENCH_FLAGS) >/dev/null

clean:
	rm -rf $(BIN)
