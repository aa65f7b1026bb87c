#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for tokenmq's tests, on a free loopback port,
# and prints its URL (for TOKENMQ_TEST_POSTGRES):
#
#   export TOKENMQ_TEST_POSTGRES=$(scripts/postgres.sh start)
#   go test ./...
#   scripts/postgres.sh stop
#
# Needs Debian's postgresql package (apt-get install postgresql). As root it
# runs the server as the postgres user.
set -euo pipefail
dir=${TOKENMQ_PG_DIR:-/tmp/tokenmq-pg}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "postgres.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}
case "${1:-}" in
start)
  if [ -f "$dir/url" ] && as_pg "$bin/pg_ctl -D $dir/data status" >/dev/null 2>&1; then cat "$dir/url"; exit 0; fi
  rm -rf "$dir"; mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  as_pg "$bin/initdb -D $dir/data -U tokenmq --auth=trust -E UTF8 >$dir/initdb.log 2>&1"
  # A random port below the ephemeral range (32768+, where 127.0.0.1:0 listeners land); if it is taken the server fails to start: try another.
  started=
  for _ in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 12000))
    if as_pg "$bin/pg_ctl -D $dir/data -l $dir/server.log -o \"-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=300\" -w -t 30 start >/dev/null"; then
      started=1; break
    fi
  done
  [ -n "$started" ] || { echo "postgres.sh: could not start PostgreSQL; see $dir/server.log" >&2; exit 1; }
  as_pg "$bin/createdb -h 127.0.0.1 -p $port -U tokenmq tokenmq"
  echo "postgres://tokenmq@127.0.0.1:$port/tokenmq?sslmode=disable" | tee "$dir/url"
  ;;
stop)
  [ -d "$dir/data" ] && as_pg "$bin/pg_ctl -D $dir/data -m fast -w stop" >/dev/null || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: scripts/postgres.sh start|stop" >&2; exit 2 ;;
esac
