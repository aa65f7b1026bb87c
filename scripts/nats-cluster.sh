#!/usr/bin/env bash
# Runs docker-compose.yml's "nats" profile as local processes, for machines
# without Docker: three nats-server nodes (configs/nats/n1–n3.conf: JetStream,
# MQTT, routes, auth callout) and `tokenmq serve --role tokens` as their MQTT
# authority. Ctrl-C (or SIGTERM) stops everything.
#
#   scripts/nats-cluster.sh       # MQTT on 127.0.0.1:14243-14245, token API on :14250
#
# nats-server: $NATS_SERVER, or the one on PATH, or else it is go-installed
# (github.com/nats-io/nats-server/v2@v2.15.2) into the work directory.
# NATS_PORT_BASE (default 14220) moves every port: clients base+0..2,
# routes base+10..12, MQTT base+23..25, token API base+30.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
base=${NATS_PORT_BASE:-14220}
work=$(mktemp -d /tmp/tokenmq-nats.XXXXXX)
pids=()
cleanup() { [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

nats_server=${NATS_SERVER:-$(command -v nats-server || true)}
if [ -z "$nats_server" ]; then
  echo "installing nats-server v2.15.2 (go install) …" >&2
  GOBIN="$work/bin" go install github.com/nats-io/nats-server/v2@v2.15.2
  nats_server=$work/bin/nats-server
fi
go build -o "$work/tokenmq" ./cmd/tokenmq

export NATS_AUTH_PASSWORD=${NATS_AUTH_PASSWORD:-auth-$RANDOM$RANDOM$RANDOM}
export NATS_SYS_PASSWORD=${NATS_SYS_PASSWORD:-sys-$RANDOM$RANDOM$RANDOM}
export NATS_ISSUER=$("$work/tokenmq" nats issuer "$work/issuer.nk" 2>/dev/null)
for i in 1 2 3; do
  export NATS_ROUTE_$i=nats-route://127.0.0.1:$((base + 9 + i))
  export NATS_N${i}_LISTEN=127.0.0.1:$((base - 1 + i))
  export NATS_N${i}_CLUSTER=127.0.0.1:$((base + 9 + i))
  export NATS_N${i}_MQTT=127.0.0.1:$((base + 22 + i))
  export NATS_N${i}_STORE=$work/n$i
done
for i in 1 2 3; do
  "$nats_server" -c "$root/configs/nats/n$i.conf" 2> "$work/n$i.log" &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 100); do grep -q "Server is ready" "$work/n$i.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "Server is ready" "$work/n$i.log" || { echo "nats-server n$i did not start:" >&2; cat "$work/n$i.log" >&2; exit 1; }
done
# MQTT sessions live in JetStream: wait for the cluster to elect its leader.
for _ in $(seq 300); do grep -q "metadata leader" "$work"/n?.log 2>/dev/null && break; sleep 0.1; done
grep -q "metadata leader" "$work"/n?.log || { echo "JetStream elected no leader:" >&2; tail "$work"/n?.log >&2; exit 1; }

admin_secret=${TOKENMQ_ACCESS_KEY_SECRET:-admin-secret-$RANDOM$RANDOM$RANDOM}
sed -e "s|url: .*|url: nats://127.0.0.1:$base,nats://127.0.0.1:$((base + 1)),nats://127.0.0.1:$((base + 2))|" \
    -e "s|issuer_seed_file: .*|issuer_seed_file: issuer.nk|" configs/nats/tokenmq.yaml > "$work/tokenmq.yaml"
TOKENMQ_ACCESS_KEY_ID=admin TOKENMQ_ACCESS_KEY_SECRET=$admin_secret \
  "$work/tokenmq" serve --config "$work/tokenmq.yaml" --api-addr 127.0.0.1:$((base + 30)) --data-dir "$work/tokens" \
  2> "$work/tokenmq.log" &
pids+=($!)
for _ in $(seq 150); do grep -q "msg=ready" "$work/tokenmq.log" 2>/dev/null && break; sleep 0.1; done
grep -q "msg=ready" "$work/tokenmq.log" || { echo "tokenmq did not start:" >&2; cat "$work/tokenmq.log" >&2; exit 1; }

cat <<TXT
NATS cluster with tokenmq up (logs in $work):
  MQTT        127.0.0.1:$((base + 23))  127.0.0.1:$((base + 24))  127.0.0.1:$((base + 25))
  token API   http://127.0.0.1:$((base + 30))
  export TOKENMQ_ACCESS_KEY_ID=admin TOKENMQ_ACCESS_KEY_SECRET=$admin_secret
  tokenmq token apply --endpoint http://127.0.0.1:$((base + 30)) --resources 'a/#' --actions R,W
Ctrl-C stops it.
TXT
wait
