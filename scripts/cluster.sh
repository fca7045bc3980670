#!/usr/bin/env bash
# Runs a three-node QuicMeet cluster on this machine: one nats-server with JetStream
# (127.0.0.1:14222, not the packaged service's 4222; store in ./data/cluster/nats) and three
# nodes sharing their state through it.
#   node-1: http://localhost:8081  (WebTransport UDP 4441)
#   node-2: http://localhost:8082  (WebTransport UDP 4442)
#   node-3: http://localhost:8083  (WebTransport UDP 4443)
# Sign up on one, verify and log in on another: it is one service. Ctrl-C stops everything this
# script started. QUICMEET_BIN uses an already built binary instead of building (release).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quicmeet/target}"
NATS_PORT="${NATS_PORT:-14222}"
DATA="${QUICMEET_CLUSTER_DIR:-./data/cluster}"
BIN="${QUICMEET_BIN:-}"
if [ -z "$BIN" ]; then
  bash scripts/install-deps.sh
  if [ -f scripts/setup-client.sh ]; then bash scripts/setup-client.sh; fi
  echo "==> building the server (release)"
  cargo build --release -p quicmeet-server
  BIN="$CARGO_TARGET_DIR/release/quicmeet"
fi
command -v nats-server >/dev/null || { echo "nats-server is missing: bash scripts/install-deps.sh" >&2; exit 1; }
mkdir -p "$DATA/nats"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$DATA/nats" >"$DATA/nats.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
  grep -q "Server is ready" "$DATA/nats.log" 2>/dev/null && break
  sleep 0.1
done
grep -q "Server is ready" "$DATA/nats.log" || { echo "nats-server did not start; see $DATA/nats.log" >&2; exit 1; }

for i in 1 2 3; do
  "$BIN" --data-dir "$DATA/node-$i" \
    --http-addr "127.0.0.1:808$i" --quic-addr "127.0.0.1:444$i" \
    --nats-url "nats://127.0.0.1:$NATS_PORT" --node-id "node-$i" "$@" \
    >"$DATA/node-$i.log" 2>&1 &
  PIDS+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:808$i/healthz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  echo "node-$i: $(curl -s "http://127.0.0.1:808$i/healthz" || echo 'not answering; see '"$DATA/node-$i.log")"
done
echo "==> three nodes on http://localhost:8081 8082 8083 (logs in $DATA); Ctrl-C stops them"
wait
