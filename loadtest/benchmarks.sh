#!/bin/bash
# The runs behind BENCHMARKS.md. Loopback only; every run is bounded (find-capacity: at most
# 10 steps of 10 s of media; fixed: 20 s), each wrapped in a timeout.
#
#   cargo build --release -p quicmeet-loadtest -p quicmeet-server
#   loadtest/benchmarks.sh OUT_DIR [cap|audio|fixed]...
set -u
OUT=${1:?usage: benchmarks.sh OUT_DIR [cap|audio|fixed]...}
shift
mkdir -p "$OUT" && cd "$OUT" || exit 2
R=${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/release
LT=$R/quicmeet-loadtest
run() {
  name=$1; shift
  echo "=== $name $(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)"
  echo "+ quicmeet-loadtest $*"
  timeout 900 "$LT" "$@" --quiet --report-json "$name.json" --report-html "$name.html" 2>&1 \
    | grep -v "libvpx\|libopus"
  echo "rc=${PIPESTATUS[0]}"
}
V720="--video-res 720p --video-kbps 1500 --fps 30"
CAP="--max-p99-ms 150 --max-loss 0 --find-capacity --capacity-dim publishers --duration 10"
[ $# -eq 0 ] && set -- cap audio fixed
for what in "$@"; do
  case "$what" in
  cap)
    run cap720-wt --spawn-server "$R/quicmeet" --transport wt --rooms 1 --publishers-per-room 32 --subscribers-per-room 0 $V720 $CAP --capacity-max 64
    run cap720-ws --spawn-server "$R/quicmeet" --transport ws --rooms 1 --publishers-per-room 32 --subscribers-per-room 0 $V720 $CAP --capacity-max 64
    run cap720-relay --target relay --rooms 1 --publishers-per-room 32 --subscribers-per-room 0 $V720 $CAP --capacity-max 64
    ;;
  audio)
    run capaudio-wt --spawn-server "$R/quicmeet" --transport wt --rooms 1 --publishers-per-room 16 --subscribers-per-room 0 --video-res none $CAP --capacity-max 100
    run capaudio-ws --spawn-server "$R/quicmeet" --transport ws --rooms 1 --publishers-per-room 16 --subscribers-per-room 0 --video-res none $CAP --capacity-max 100
    run capaudio-relay --target relay --rooms 1 --publishers-per-room 16 --subscribers-per-room 0 --video-res none $CAP --capacity-max 100
    ;;
  fixed)
    F="--rooms 4 --publishers-per-room 2 --subscribers-per-room 20 --video-res 360p --video-kbps 600 --fps 30 --duration 20 --max-p99-ms 150 --max-loss 0"
    run fixed-wt --spawn-server "$R/quicmeet" --transport wt $F
    run fixed-ws --spawn-server "$R/quicmeet" --transport ws $F
    run fixed-relay --target relay $F
    ;;
  esac
done
