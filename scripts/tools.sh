#!/usr/bin/env bash
# Makes sure the command-line tools some tests use are installed, installing
# them from Debian's packages when missing:
#   docker-compose  validates docker-compose.yml (`docker-compose config`; no engine needed)
#   promtool        checks and unit-tests the Prometheus rules (package prometheus)
#   chromium        opens the embedded dashboard headless (the browser check)
# Usage: tools.sh [tool...] (default: all three). Idempotent. Exits non-zero,
# naming each tool, when one is missing and cannot be installed; the Go tests
# that need it then skip with a message saying what was not checked.
set -euo pipefail

log() { printf 'tools: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
    log "need root to run: $*"; return 1; fi
}

package_of() {
  case "$1" in
    docker-compose) echo docker-compose ;;
    promtool) echo prometheus ;;
    chromium) echo chromium ;;
    *) return 1 ;;
  esac
}

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(docker-compose promtool chromium)

missing=()
for t in "${tools[@]}"; do
  package_of "$t" >/dev/null || { log "unknown tool $t"; exit 2; }
  command -v "$t" >/dev/null || missing+=("$t")
done
[ ${#missing[@]} -gt 0 ] || exit 0

if ! command -v apt-get >/dev/null; then
  log "cannot install ${missing[*]} here (no apt-get): the tests that need them will be SKIPPED"
  exit 1
fi
lean=() full=()
for t in "${missing[@]}"; do
  # Chromium wants its recommended fonts to render a readable page; the
  # others' recommendations (a Docker engine, SNMP tools) are not needed.
  if [ "$t" = chromium ]; then full+=("$(package_of "$t")"); else lean+=("$(package_of "$t")"); fi
done
log "installing ${lean[*]} ${full[*]} from Debian's packages"
# The prometheus package ships a server too; RUNLEVEL=1 keeps invoke-rc.d
# from starting it on a sysvinit machine: only promtool is wanted.
apt_install() { as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "$@" >/dev/null; }
as_root apt-get update -qq || log "apt-get update failed"
[ ${#lean[@]} -eq 0 ] || apt_install --no-install-recommends "${lean[@]}" || log "installing ${lean[*]} failed"
[ ${#full[@]} -eq 0 ] || apt_install "${full[@]}" || log "installing ${full[*]} failed"

failed=0
for t in "${missing[@]}"; do
  if ! command -v "$t" >/dev/null; then
    log "$t is still missing: the tests that need it will be SKIPPED and say so"
    failed=1
  fi
done
exit $failed
