#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, Rust unit and integration tests (real server,
# real SMTP, real QUIC), the API contract check (schemathesis), the client's lint, unit and end-to-end tests (headless Chromium).
# Ends with one line "total: N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quicmeet/target}"
export CARGO_TERM_COLOR=never
LOG_DIR="${TEST_LOG_DIR:-$PWD/test-artifacts}"
mkdir -p "$LOG_DIR"
bash scripts/install-deps.sh || { echo "installing dependencies failed"; exit 1; }

passed=0; failed=0
step() { # name, command...
  local name=$1; shift
  echo "==> $name"
  if "$@"; then passed=$((passed+1)); echo "    ok: $name"; else failed=$((failed+1)); echo "    FAILED: $name"; fi
}

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy -D warnings" cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "==> cargo test --workspace"
cargo build --workspace --quiet 2>&1 | tail -20
cargo test --workspace --no-fail-fast > "$LOG_DIR/cargo-test.log" 2>&1
cargo_rc=$?
grep -E '^(test result|test .* FAILED|failures:|---- )' "$LOG_DIR/cargo-test.log" || true
rust_pass=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$LOG_DIR/cargo-test.log" | awk '{s+=$4} END {print s+0}')
rust_fail=$(grep -oE '[0-9]+ failed;' "$LOG_DIR/cargo-test.log" | awk '{s+=$1} END {print s+0}')
if [ "$cargo_rc" -ne 0 ] && [ "$rust_fail" -eq 0 ]; then
  rust_fail=1; echo "    cargo test failed without a failing test (build error?): see $LOG_DIR/cargo-test.log"
  tail -30 "$LOG_DIR/cargo-test.log"
fi
echo "rust: $rust_pass passed, $rust_fail failed"
passed=$((passed+rust_pass)); failed=$((failed+rust_fail))

# The published API contract against the real server (schemathesis, bounded, fixed seed).
step "API contract (schemathesis)" bash scripts/api-fuzz.sh "$CARGO_TARGET_DIR/debug/quicmeet"

if [ -f scripts/test-client.sh ]; then
  echo "==> client tests"
  QUICMEET_BIN="$CARGO_TARGET_DIR/debug/quicmeet" bash scripts/test-client.sh 2>&1 | tee "$LOG_DIR/client-test.log"
  line=$(grep -E '^client: [0-9]+ passed, [0-9]+ failed' "$LOG_DIR/client-test.log" | tail -1)
  if [ -n "$line" ]; then
    cp=$(echo "$line" | awk '{print $2}'); cf=$(echo "$line" | awk '{print $4}')
    passed=$((passed+cp)); failed=$((failed+cf))
  else
    echo "    client tests printed no summary"; failed=$((failed+1))
  fi
fi

echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
