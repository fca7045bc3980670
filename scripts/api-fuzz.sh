#!/usr/bin/env bash
# Checks the published API contract (/api/openapi.json) against the running server with
# schemathesis (PyPI): every check (schemathesis' default set; response time is not one), a bounded number of generated examples per operation with a
# fixed seed, once anonymously and once with a signed-in session whose meeting code is handed
# to the path parameters. Fails on any finding. Usage: scripts/api-fuzz.sh [quicmeet binary]
# (default: $QUICMEET_BIN, then $CARGO_TARGET_DIR/debug/quicmeet). Examples per operation:
# API_FUZZ_EXAMPLES (default 10).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${1:-${QUICMEET_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/quicmeet/target}/debug/quicmeet}}
EXAMPLES=${API_FUZZ_EXAMPLES:-10}
command -v st >/dev/null || { echo "api-fuzz: schemathesis (st) is not installed: run scripts/install-deps.sh"; exit 1; }
[ -x "$BIN" ] || { echo "api-fuzz: no server binary at $BIN"; exit 1; }

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# Limits high enough that generated traffic is not refused as a flood (429 is documented, but
# it would hide the answers under test).
"$BIN" --data-dir "$WORK/data" --http-addr 127.0.0.1:0 --quic-addr 127.0.0.1:0 --log warn \
  --auth-rate-per-min 1000000 --join-rate-per-min 1000000 --mail-rate-per-hour 1000000 \
  > "$WORK/server.out" 2> "$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 1 100); do
  grep -q QUICMEET_READY "$WORK/server.out" 2>/dev/null && break
  sleep 0.2
done
ADDR=$(grep -o 'http=[0-9.:]*' "$WORK/server.out" | cut -d= -f2)
[ -n "$ADDR" ] || { echo "api-fuzz: the server did not start"; cat "$WORK/server.err"; exit 1; }
BASE="http://$ADDR"

# A verified account, its session cookie and one meeting it hosts.
read -r COOKIE CODE < <(python3 - "$BASE" "$WORK/data/outbox" <<'PY'
import json, pathlib, quopri, re, sys, time, urllib.request
base, outbox = sys.argv[1], pathlib.Path(sys.argv[2])
def call(path, body, cookie=None):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    if cookie:
        req.add_header("cookie", cookie)
    with urllib.request.urlopen(req) as r:
        return r.headers, json.loads(r.read() or b"{}")
email = "fuzz@example.test"
call("/api/auth/signup", {"name": "Fuzz", "email": email, "password": "correct horse battery"})
token = None
for _ in range(100):
    for f in outbox.glob("*"):
        text = quopri.decodestring(f.read_bytes()).decode("utf-8", "replace")
        m = re.search(r"/verify\?token=([A-Za-z0-9_-]+)", text)
        if email in text and m:
            token = m.group(1)
    if token:
        break
    time.sleep(0.1)
call("/api/auth/verify", {"token": token})
headers, _ = call("/api/auth/login", {"email": email, "password": "correct horse battery"})
cookie = headers["set-cookie"].split(";")[0]
_, m = call("/api/meetings", {"title": "Fuzzed", "start": "2030-01-01T09:00:00Z",
                              "duration_minutes": 30, "type": "public"}, cookie)
print(cookie, m["meeting"]["code"])
PY
)

status=0
run() { # label, extra args...
  local label=$1; shift
  echo "== schemathesis ($label): $EXAMPLES examples per operation"
  if (cd "$HERE/api-fuzz" && st run "$BASE/api/openapi.json" \
        --request-timeout 60 -n "$EXAMPLES" \
        --seed 20261201 --no-shrink --workers 1 "$@" > "$WORK/$label.log" 2>&1); then
    sed -n '/= SUMMARY =/,$p' "$WORK/$label.log"
  else
    status=1
    grep -vE '^\s*$' "$WORK/$label.log" | tail -150
  fi
}
run anonymous
QM_CODE=$CODE run signed-in -H "Cookie: $COOKIE"
if [ "$status" -eq 0 ]; then echo "api-fuzz: no findings"; else echo "api-fuzz: FINDINGS (see above)"; fi
exit "$status"
