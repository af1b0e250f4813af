# Token refresher. `make test` starts (or installs) MariaDB and Redis itself.
GO      ?= go
BIN     := bin
PKGS    := ./...

# The Go release everything is built and tested with (go.mod's toolchain
# line, the Dockerfile's builder image and .ci/run say the same; a test in
# deploy/ keeps them equal). A machine with an older Go fetches it once
# from the Go module proxy (about 76 MB) into the module cache: the go
# command does so only when told, and GOTOOLCHAIN tells it.
export GOTOOLCHAIN := go1.27.3

.PHONY: all build test test-short fault soak lint services tools schema run sandbox bench clean vuln

all: build

## demo: the whole system in one process with nothing installed but Go (embedded MySQL and Redis);
##       DEMO_ARGS="--plain --for 2m" passes flags; WMS_DB_DSN, IE_DB_DSN and REDIS_URL all set use real servers
.PHONY: demo
demo:
	$(GO) build -trimpath -o $(BIN)/demo ./cmd/demo
	@$(BIN)/demo $(DEMO_ARGS)

## build: every cmd/ binary in bin/ (scanner, refresher, dashboard, tokenctl, sandbox, demo, bench)
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

# The production binaries: what the image holds and what make vuln scans.
PROD_BINS := scanner refresher dashboard tokenctl

# govulncheck, pinned, against a pinned copy of the Go vulnerability
# database: golang.org/x/vulndb at VULNDB_VERSION holds the reports as OSV
# files (data/osv) but not the index govulncheck reads, so the module's own
# cmd/indexdb (same pin) writes the OSV v1 database into bin/. Bumping
# VULNDB_VERSION (go list -m golang.org/x/vulndb@latest) refreshes it. The
# first run downloads indexdb's dependencies (a few minutes, once).
GOVULNCHECK_VERSION := v1.10.0
VULNDB_VERSION      := v0.0.0-20261105234957-e22db6528018
GOVULNCHECK         := $(BIN)/tools/govulncheck-$(GOVULNCHECK_VERSION)/govulncheck
INDEXDB             := $(BIN)/tools/indexdb-$(VULNDB_VERSION)/indexdb
VULNDB              := $(BIN)/vulndb-$(VULNDB_VERSION)

$(GOVULNCHECK):
	GOBIN=$(abspath $(dir $@)) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

$(INDEXDB):
	GOBIN=$(abspath $(dir $@)) $(GO) install golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION)

$(VULNDB)/index/db.json: | $(INDEXDB)
	@dir=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | grep '"Dir"' | cut -d'"' -f4); \
	  test -d "$$dir/data/osv" || { echo "vuln: golang.org/x/vulndb@$(VULNDB_VERSION) has no data/osv"; exit 1; }; \
	  rm -rf $(VULNDB).tmp && $(INDEXDB) -vulns "$$dir/data/osv" -out $(VULNDB).tmp && rm -rf $(VULNDB) && mv $(VULNDB).tmp $(VULNDB)

## vuln: govulncheck (pinned) on the production binaries against the pinned vulnerability database;
##       fails on any vulnerability their code reaches (bump VULNDB_VERSION to refresh the database)
vuln: $(GOVULNCHECK) $(VULNDB)/index/db.json
	$(GO) build -trimpath -o $(BIN)/ $(addprefix ./cmd/,$(PROD_BINS))
	@fail=0; for b in $(PROD_BINS); do echo "== $(BIN)/$$b"; \
	  $(GOVULNCHECK) -db file://$(abspath $(VULNDB)) -mode binary $(BIN)/$$b || fail=1; done; \
	  if [ $$fail = 0 ]; then echo "vuln: no reachable vulnerability in $(PROD_BINS) (vulndb $(VULNDB_VERSION))"; fi; exit $$fail

## test: vet, then every test with the race detector, against real MariaDB and Redis
## (and docker-compose, promtool and Chromium for the deploy and browser checks), installing
## what is missing; it says so first (scripts/test-plan.sh). About 8-9 minutes of tests on
## a 2-core machine once compiled (964 tests in 578 s), more on a loaded one
test: test-plan services tools $(GOTESTSUM)
	$(GO) vet $(PKGS)
	$(GOTESTSUM) $(GOTESTSUM_FLAGS) -- -race -count=1 -timeout 20m $(PKGS)

# test-plan: what make test installs and why, and what of it is missing here (printed first).
.PHONY: test-plan
test-plan:
	@bash scripts/test-plan.sh

## test-short: the inner loop, a minute or two (54 s idle, 123 s on shared cores): every package but the fault suite
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

## soak-long: ten minutes, 3 refreshers, 2 scanners, 20% marketplace faults, a Redis Sentinel failover, a
##            20s database blackhole, a 30s read-only window and a database failover, on two private mariadbd
##            (not part of make test; SOAK_LONG_DURATION=3m shortens it), then its figures
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
##        (about 30 minutes, 5 of them figure 9 (make bench-costs); BENCH_QUICK=1 for a smoke run into bin/, BENCH_FLAGS=-million for N = 1M)
BENCH_OUT   = $(if $(filter-out 0,$(BENCH_QUICK)),$(BIN)/benchmarks-quick.md,docs/benchmarks.md)
BENCH_FLAGS ?=
bench: build services
	$(BIN)/bench -bin $(BIN) -out $(BENCH_OUT) $(if $(filter-out 0,$(BENCH_QUICK)),-quick) $(BENCH_FLAGS) >/dev/null

## bench-overload: figure 8 alone (freshness under a backlog, about 14 minutes); writes docs/benchmarks-overload.md
.PHONY: bench-overload
bench-overload: build services
	$(BIN)/bench -bin $(BIN) -only overload -out docs/benchmarks-overload.md $(BENCH_FLAGS) >/dev/null

## bench-costs: figure 9 alone (DB rows, Redis commands and memory by counts, on a private MariaDB and Redis;
##              about 5 minutes); writes docs/benchmarks-costs.md and rewrites its section of docs/benchmarks.md
.PHONY: bench-costs
bench-costs: build services
	$(BIN)/bench -bin $(BIN) -only costs -out docs/benchmarks-costs.md -splice docs/benchmarks.md $(BENCH_FLAGS) >/dev/null

## bench-capacity: figure 10 alone (unit costs on 20,000 connections, the model's prediction for 1,000,000, then
##                 1,000,000 simulated over one 22-minute generation beside it, on a private MariaDB and Redis; about
##                 35 minutes); writes docs/benchmarks-capacity.md (BENCH_QUICK=1: a one-minute smoke run into bin/;
##                 BENCH_FLAGS=-capacity-n=N for another fleet)
CAPACITY_OUT = $(if $(filter-out 0,$(BENCH_QUICK)),$(BIN)/benchmarks-capacity-quick.md,docs/benchmarks-capacity.md)
.PHONY: bench-capacity
bench-capacity: build services
	$(BIN)/bench -bin $(BIN) -only capacity -out $(CAPACITY_OUT) $(if $(filter-out 0,$(BENCH_QUICK)),-quick) $(BENCH_FLAGS) >/dev/null

clean:
	rm -rf $(BIN)
