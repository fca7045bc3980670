#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine and runs QuicMeet on the embedded defaults:
# sled in ./data, mail to ./data/outbox (or SMTP with QUICMEET_SMTP_URL), development
# certificates made automatically. Open http://localhost:8080 when it says it is listening.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quicmeet/target}"
bash scripts/install-deps.sh
if [ -f scripts/setup-client.sh ]; then
  bash scripts/setup-client.sh
fi
echo "==> building the server (release)"
cargo build --release -p quicmeet-server
exec "$CARGO_TARGET_DIR/release/quicmeet" "$@"
