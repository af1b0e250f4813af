#!/usr/bin/env bash
# Runs the whole system on this machine against the dev schema:
#   run-local.sh          sandbox marketplace + refresher + scanner, until Ctrl-C
#   run-local.sh schema   drop and recreate the dev databases with the seed rows
# The providers are deploy/providers.yaml (all three token flows against the
# sandbox) unless PROVIDERS_FILE names another file.
set -euo pipefail
cd "$(dirname "$0")/.."

WMS_DB=eshopbox_wms_production
IE_DB=integration_engine_prod
SQL="mariadb -h127.0.0.1 -P3306 -uroot"
command -v mariadb >/dev/null || SQL="mysql -h127.0.0.1 -P3306 -uroot"

load_schema() { $SQL < deploy/mysql/01-schema.sql; }
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

export WMS_DB_DSN="root@tcp(127.0.0.1:3306)/$WMS_DB"
export IE_DB_DSN="root@tcp(127.0.0.1:3306)/$IE_DB"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export AJIO_BASE_URL="${AJIO_BASE_URL:-http://127.0.0.1:8089}"
export PROVIDERS_FILE="${PROVIDERS_FILE:-deploy/providers.yaml}"
export LOG_FORMAT="${LOG_FORMAT:-console}"
export SCAN_INTERVAL="${SCAN_INTERVAL:-30s}"

pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM

bin/sandbox --addr 127.0.0.1:8089 & pids+=($!)
HTTP_ADDR=127.0.0.1:8081 bin/refresher & pids+=($!)
HTTP_ADDR=127.0.0.1:8082 bin/scanner & pids+=($!)
echo "sandbox :8089 (ajio, unicommerce, oauth2 with rotation), refresher :8081 (/metrics /healthz /readyz), scanner :8082; providers: $PROVIDERS_FILE; Ctrl-C stops all"
wait -n "${pids[@]}"
