#!/usr/bin/env bash
# Runs the whole system on this machine against the dev schema:
#   run-local.sh          sandbox marketplace + refresher (with its dashboard
#                         and API) + scanner, until Ctrl-C
#   run-local.sh schema   drop and recreate the dev databases with the seed rows
# The providers are deploy/providers.yaml (all three token flows against the
# sandbox) unless PROVIDERS_FILE names another file. The dashboard and the API
# get development credentials (printed at start) unless DASHBOARD_USER,
# DASHBOARD_PASSWORD and API_TOKEN are set. The ports are RUN_SANDBOX_PORT
# (8089), RUN_REFRESHER_PORT (8081) and RUN_SCANNER_PORT (8082).
set -euo pipefail
cd "$(dirname "$0")/.."

WMS_DB=eshopbox_wms_production
IE_DB=integration_engine_prod
SQL="mariadb -h127.0.0.1 -P3306 -uroot"
command -v mariadb >/dev/null || SQL="mysql -h127.0.0.1 -P3306 -uroot"

load_schema() { $SQL < deploy/mysql/01-schema.sql; $SQL < deploy/mysql/03-indexes.sql; }
load_seed() { $SQL < deploy/mysql/02-seed.sql; }

if [ "${1:-}" = "schema" ]; then
  $SQL -e "DROP DATABASE IF EXISTS $WMS_DB; DROP DATABASE IF EXISTS $IE_DB;"
  load_schema; load_seed
  echo "dev databases $WMS_DB and $IE_DB recreated with connections 11 and 99 (ajio), 4201 (oauth2_refresh), 4301 (unicommerce)"
  exit 0
fi

load_schema
if [ "$($SQL -N -e "SELECT COUNT(*) FROM $IE_DB.ie_appinstall_connection")" = "0" ]; then
  load_seed
  echo "seeded connections 11, 99 (ajio), 4201 (oauth2_refresh) and 4301 (unicommerce)"
elif [ "$($SQL -N -e "SELECT COUNT(*) FROM $IE_DB.ie_appinstall_connection WHERE id IN (4201, 4301)")" = "0" ]; then
  echo "note: the dev databases predate the OAuth2 and Unicommerce seed rows; 'make schema' recreates them"
fi

SANDBOX_PORT="${RUN_SANDBOX_PORT:-8089}"
REFRESHER_PORT="${RUN_REFRESHER_PORT:-8081}"
SCANNER_PORT="${RUN_SCANNER_PORT:-8082}"
busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for pair in "RUN_SANDBOX_PORT:$SANDBOX_PORT" "RUN_REFRESHER_PORT:$REFRESHER_PORT" "RUN_SCANNER_PORT:$SCANNER_PORT"; do
  if busy "${pair#*:}"; then
    echo "run-local: port ${pair#*:} is taken by another program; choose another with ${pair%%:*}=PORT (e.g. make run ${pair%%:*}=$((${pair#*:} + 100)))" >&2
    exit 1
  fi
done

export WMS_DB_DSN="root@tcp(127.0.0.1:3306)/$WMS_DB"
export IE_DB_DSN="root@tcp(127.0.0.1:3306)/$IE_DB"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export AJIO_BASE_URL="${AJIO_BASE_URL:-http://127.0.0.1:$SANDBOX_PORT}"
generated=""
if [ -z "${PROVIDERS_FILE:-}" ]; then
  # deploy/providers.yaml, pointed at this run's sandbox port.
  PROVIDERS_FILE="$(mktemp -t token-refresher-providers.XXXXXX.yaml)"
  generated="$PROVIDERS_FILE"
  sed "s#http://127.0.0.1:8089#http://127.0.0.1:$SANDBOX_PORT#g" deploy/providers.yaml > "$PROVIDERS_FILE"
fi
export PROVIDERS_FILE
export LOG_FORMAT="${LOG_FORMAT:-console}"
export SCAN_INTERVAL="${SCAN_INTERVAL:-30s}"
# Development credentials: this machine only, never a deployment's.
export DASHBOARD_USER="${DASHBOARD_USER:-dev}"
export DASHBOARD_PASSWORD="${DASHBOARD_PASSWORD:-dev-password}"
export API_TOKEN="${API_TOKEN:-dev-api-token-0123456789}"
# Seals tokens kept in Redis while the database refuses their write.
export OUTBOX_KEY="${OUTBOX_KEY:-ZGV2LW91dGJveC1rZXktMDEyMzQ1Njc4OWFiY2RlZmc=}"
# Keys the credentials' fingerprint kept with a permanent failure (32+ characters).
export FINGERPRINT_KEY="${FINGERPRINT_KEY:-dev-fingerprint-key-0123456789abcdef}"

# With a terminal, job control puts each service in a process group of its
# own: Ctrl-C reaches only the foreground wait below, not the services (they
# get SIGTERM and drain) nor make, which then sees this script exit 0 instead
# of dying of SIGINT ("make: *** ... Error 130").
[ -t 0 ] && set -m

# The services log to files, so the banner below is printed whole before
# any of their lines; the files are then followed here.
logdir=bin/run
mkdir -p "$logdir"
: > "$logdir/sandbox.log"; : > "$logdir/refresher.log"; : > "$logdir/scanner.log"

pids=()
tailpid=""
stop() {
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  if [ -n "$tailpid" ]; then
    sleep 0.3 # let the follower print the services' last lines
    kill "$tailpid" 2>/dev/null || true
    wait "$tailpid" 2>/dev/null || true
  fi
  [ -z "$generated" ] || rm -f "$generated"
}
# Without a terminal (or a signal sent to this script), stop the same way.
# A signal sent to the whole process group (a supervisor, CI) reaches the
# services too, and they exit at once: the flag tells that from a service
# that stopped by itself.
signalled=""
trap 'signalled=1' INT TERM

bin/sandbox --addr "127.0.0.1:$SANDBOX_PORT" >>"$logdir/sandbox.log" 2>&1 & pids+=($!)
HTTP_ADDR="127.0.0.1:$REFRESHER_PORT" bin/refresher >>"$logdir/refresher.log" 2>&1 & pids+=($!)
HTTP_ADDR="127.0.0.1:$SCANNER_PORT" bin/scanner >>"$logdir/scanner.log" 2>&1 & pids+=($!)

all_alive() { local p; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || return 1; done; }
for _ in $(seq 1 50); do
  all_alive || break
  curl -fs --max-time 1 -o /dev/null "http://127.0.0.1:$REFRESHER_PORT/healthz" 2>/dev/null && break
  sleep 0.2
done
providers="$PROVIDERS_FILE"
[ -z "$generated" ] || providers="deploy/providers.yaml (copied to $PROVIDERS_FILE with the sandbox's port)"
cat <<MSG

  dashboard  http://127.0.0.1:$REFRESHER_PORT/monitoring/   user $DASHBOARD_USER, password $DASHBOARD_PASSWORD
  API        http://127.0.0.1:$REFRESHER_PORT/v1/connections/summary   Authorization: Bearer $API_TOKEN
             API_TOKEN=$API_TOKEN TOKENCTL_URL=http://127.0.0.1:$REFRESHER_PORT bin/tokenctl summary
  metrics    http://127.0.0.1:$REFRESHER_PORT/metrics (refresher), http://127.0.0.1:$SCANNER_PORT/metrics (scanner); /healthz, /readyz
  sandbox    http://127.0.0.1:$SANDBOX_PORT/ (GET / lists its flows; this run uses ajio, oauth2 with rotation, unicommerce)
  providers  $providers
  databases  $WMS_DB.channels (connectionId, integrationType, status)
             $IE_DB.ie_appinstall_connection (id, inputFields, accessToken, refreshToken,
               accessTokenExpiryAt, isActive): mysql -h127.0.0.1 -uroot $IE_DB
  seed rows  11, 99 (ajio), 4201 (oauth2_refresh), 4301 (unicommerce): refreshed when due;
             a second run finds them fresh ("due": 0): make schema makes them due again
  logs       $logdir/sandbox.log, $logdir/refresher.log, $logdir/scanner.log (followed below)
  Ctrl-C stops all

MSG

tail -n +1 -F "$logdir/sandbox.log" "$logdir/refresher.log" "$logdir/scanner.log" & tailpid=$!

# Wait in the foreground until Ctrl-C or until a service stopped by itself.
# (kill -0 with several pids succeeds when any one is alive: all_alive tests each.)
watch() { while [ -z "$signalled" ] && all_alive; do sleep 1; done; }
watch || true
[ -n "$signalled" ] || all_alive || sleep 0.5 # a signal to the group may still be on its way to this script
# A service that exited 0 was stopped by a signal and drained: the
# services run until told to stop. (A script started in the background by
# a non-interactive shell ignores SIGINT and cannot trap it, while the
# services still get it: their clean exit is then the only sign.)
clean=1
for p in "${pids[@]}"; do
  if ! kill -0 "$p" 2>/dev/null; then
    wait "$p" 2>/dev/null || clean=""
  fi
done
if [ -n "$signalled" ] || [ -n "$clean" ]; then
  stop
  exit 0
fi
echo "run-local: a service stopped by itself (its log is in $logdir/); stopping the others" >&2
stop
exit 1
