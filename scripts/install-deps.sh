#!/usr/bin/env bash
# Installs the system packages QuicMeet needs on Debian 12 (idempotent; quiet when done).
set -euo pipefail
PKGS=(pkg-config clang libclang-dev
      libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
      libavfilter-dev libavdevice-dev libvpx-dev libopus-dev
      chromium python3-pip ca-certificates)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The SMTP sink used by the tests.
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "==> installing aiosmtpd (PyPI)"
  python3 -m pip install -q aiosmtpd 2>/dev/null || python3 -m pip install -q --break-system-packages aiosmtpd
fi
# The API contract check (scripts/api-fuzz.sh): schemathesis 4.x, whose CLI is `st`.
if ! command -v st >/dev/null 2>&1 || ! python3 -c 'import schemathesis' 2>/dev/null; then
  echo "==> installing schemathesis (PyPI)"
  python3 -m pip install -q 'schemathesis>=4.3,<5' 2>/dev/null || python3 -m pip install -q --break-system-packages 'schemathesis>=4.3,<5'
fi
