#!/usr/bin/env bash
# Makes sure MariaDB (127.0.0.1:3306, root, empty password) and Redis
# (127.0.0.1:6379) answer: starts them when they are installed but stopped,
# installs them from Debian's packages when they are missing. Idempotent; it
# does nothing when both already answer.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1; fi
}

apt_updated=""
install() {
  if ! command -v apt-get >/dev/null; then
    log "cannot install $* here (no apt-get): install it yourself, or point TEST_MYSQL_DSN / TEST_REDIS_ADDR at a server"
    return 1
  fi
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "$name did not come up"; return 1
}

redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }
mysql_up() { mariadb -h127.0.0.1 -P3306 -uroot -e 'SELECT 1' >/dev/null 2>&1 || mysql -h127.0.0.1 -P3306 -uroot -e 'SELECT 1' >/dev/null 2>&1; }

# Redis: in memory only, like the service this project is tested against.
if ! command -v redis-cli >/dev/null || ! command -v redis-server >/dev/null; then install redis-server redis-tools; fi
if ! redis_up; then
  log "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis redis_up
fi

# MariaDB.
if [ ! -x /usr/sbin/mariadbd ] && [ ! -x /usr/sbin/mysqld ]; then install mariadb-server mariadb-client; fi
if ! mysql_up; then
  log "starting MariaDB"
  as_root mkdir -p /run/mysqld /var/log/mysql
  as_root chown mysql:mysql /run/mysqld /var/log/mysql 2>/dev/null || true
  daemon=/usr/sbin/mariadbd; [ -x "$daemon" ] || daemon=/usr/sbin/mysqld
  as_root start-stop-daemon --start --oknodo --background --exec "$daemon"
  # A fresh Debian install lets root in through the socket only: open TCP
  # root with an empty password, as the tests and the README expect.
  sock_ok() { as_root mariadb -uroot -e 'SELECT 1'; }
  wait_for "MariaDB socket" sock_ok || true
  if ! mysql_up; then
    as_root mariadb -uroot -e "
      ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
      CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
      GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
      FLUSH PRIVILEGES;" || true
  fi
  wait_for MariaDB mysql_up
fi
log "MariaDB and Redis are answering"
