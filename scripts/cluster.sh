#!/usr/bin/env bash
# Runs docker-compose.yml's topology as local processes, for machines
# without Docker: PostgreSQL (scripts/postgres.sh), two token-service
# replicas and two brokers. Ctrl-C stops everything.
#
#   scripts/cluster.sh            # token API on :18080/:18081, MQTT on :11883/:11884
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/tokenmq-cluster.XXXXXX)
export TOKENMQ_PG_DIR=$(mktemp -d /tmp/tokenmq-cluster-pg.XXXXXX) # postgres must reach it: not under $work (0700)
store=$(scripts/postgres.sh start)
go build -o "$work/tokenmq" ./cmd/tokenmq
admin_secret=${TOKENMQ_ACCESS_KEY_SECRET:-admin-secret-$RANDOM$RANDOM$RANDOM}
broker_secret=${TOKENMQ_BROKER_SECRET:-broker-secret-$RANDOM$RANDOM$RANDOM}
cat > "$work/tokens.yaml" <<YAML
role: tokens
store: $store
tokens: {keyring_file: $work/keys.json}
access_keys: [{id: broker-1, secret: $broker_secret, role: broker}]
YAML
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; scripts/postgres.sh stop; rm -rf "$work"; }
trap cleanup EXIT INT TERM
for i in 0 1; do
  TOKENMQ_ACCESS_KEY_ID=admin TOKENMQ_ACCESS_KEY_SECRET=$admin_secret \
    "$work/tokenmq" serve --config "$work/tokens.yaml" --api-addr 127.0.0.1:$((18080 + i)) --data-dir "$work/tokens-$i" \
    2> "$work/tokens-$i.log" &
  pids+=($!)
done
for i in 0 1; do
  TOKENMQ_ACCESS_KEY_ID=broker-1 TOKENMQ_ACCESS_KEY_SECRET=$broker_secret \
    "$work/tokenmq" serve --role broker --token-service http://127.0.0.1:$((18080 + i)) \
    --mqtt-addr 127.0.0.1:$((11883 + i)) --ws-addr "" --api-addr 127.0.0.1:$((18090 + i)) --data-dir "$work/broker-$i" \
    2> "$work/broker-$i.log" &
  pids+=($!)
done
cat <<TXT
tokenmq cluster up (logs in $work):
  token API   http://127.0.0.1:18080  http://127.0.0.1:18081
  MQTT        127.0.0.1:11883 (broker on replica A)  127.0.0.1:11884 (on replica B)
  export TOKENMQ_ACCESS_KEY_ID=admin TOKENMQ_ACCESS_KEY_SECRET=$admin_secret
  tokenmq token apply --endpoint http://127.0.0.1:18080 --resources 'a/#' --actions R,W
Ctrl-C stops it.
TXT
wait
