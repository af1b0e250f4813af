#!/usr/bin/env bash
# Says, before make test does anything, what it will install and why, and
# which of those are missing on this machine (the rest it only uses).
set -uo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }
missing=()
{ [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ]; } || missing+=("mariadb-server mariadb-client")
{ have redis-server && have redis-cli; } || missing+=("redis-server redis-tools")
have docker-compose || missing+=("docker-compose")
have promtool || missing+=("prometheus (for promtool)")
have chromium || missing+=("chromium")
[ -x bin/gotestsum ] || missing+=("gotestsum (into bin/)")

cat >&2 <<MSG
make test: go vet, then every test with -race against real MariaDB and Redis: about 8-9 minutes of
  tests on a 2-core machine once compiled (964 tests in 578 s with other work running; the fault
  suite e2e/fault sets the wall time, the other packages finish meanwhile), more on a loaded one;
  a first run compiles for a few minutes before that.
  It installs what is missing, system-wide, from Debian's packages (root, or sudo, needed):
    mariadb-server, redis-server, redis-tools  the databases every integration test runs against (scripts/services.sh),
                                                and the fault suite's own Redis Sentinel and Redis Cluster
                                                (redis-server --cluster-enabled, redis-cli --cluster create)
    docker-compose, prometheus, chromium        docker-compose.yml validation, promtool on the alert rules, the
                                                headless-browser dashboard test (scripts/tools.sh; a test whose tool
                                                cannot be installed SKIPS and says what it did not check)
  and from the Go module proxy: gotestsum v1.13.0 into bin/ (the test runner), and Go 1.27.3 into the
  module cache when this machine's Go is older. (make test-short leaves out the browser
  tests, so it installs all of these but chromium.)
MSG
if [ ${#missing[@]} -eq 0 ]; then
  echo "  Missing here: nothing; nothing will be installed." >&2
else
  printf '  Missing here, so installed now: %s\n' "$(IFS=,; echo "${missing[*]}" | sed 's/,/, /g')" >&2
fi
echo >&2
