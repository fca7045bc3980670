#!/bin/bash
# The runs behind BENCHMARKS.md. Loopback only; every run is bounded (find-capacity: at most
# 10 steps of 10 s of media; fixed: 20 s), each wrapped in a timeout.
#
#   cargo build --release -p quicmeet-loadtest -p quicmeet-server
#   loadtest/benchmarks.sh OUT_DIR [cap|audio|fixed|lab|lab-kernel|past|audio-path|audio-pinned|publayers|temporal|temporal-policy|cluster|cluster-capped]...
#
# lab: the impairment lab's figures (issue 10), both transports, 20 s each. QM=/path/to/quicmeet
# picks the server binary (to compare two builds); LT likewise the load tester.
# lab-kernel: the shared 8 Mbit/s bottleneck done by the kernel instead (needs root: a network
# namespace whose loopback has MTU 1500 and a tbf cap).
# audio-path: issue 15's comparison, interleaved on a shared machine: QM_BEFORE (a server
# binary built from an older commit, required) and QM against the relay, same tester, for the
# audio-only capacity and µs per frame in fixed audio-only and 720p meetings.
# audio-pinned: issue 15's per-frame ratio with the tester on CPU 0 and the server under test
# (QuicMeet, QM_BEFORE if given, or the relay) moved to CPU 1 with all its threads as soon as
# it starts: AUDIO_PINNED_ROUNDS rounds (default 8) of a 48-participant everyone-talks meeting
# over WebTransport, 10 s each, order reversed every other round; then each round's µs per
# delivered frame, the ratios to the relay and their medians (BENCHMARKS §5, sixth and seventh
# passes). Needs 2 CPUs and taskset (util-linux).
# cluster: issue 13's figures, one node against three nodes and a nats-server (the tester
# starts them: --nodes 3; needs Debian's nats-server), interleaved: one meeting split over the
# nodes (cross-node latency, CPU per delivered frame), three meetings one per node, and a
# meeting larger than a node's capacity (--max-node-participants) spread over three.
# cluster-capped: issue 13's capacity goal on one host: one node and three nodes, each capped
# at NODE_CPUS cores (--node-cpus, cgroups, needs root), the most meetings of 4 each carries,
# and the largest audience of one 4-publisher meeting, alone and split over three.
# past: issue 10's past-capacity series: 720p all-to-all meetings of PAST_N publishers (default
# "32 36 40 44 48 56"), no impairment, relay / WebTransport / WebSocket interleaved per size,
# then one table of audio p50/p99 and loss per size (the goal: audio p99 < 150 ms as long as
# the relay's is).
# publayers: issue 15's saturated-transcoder meeting (PUBLAYERS_N 720p publishers, default 16,
# two layer-1 subscribers, 2 transcoder workers), without and with publisher-made layers,
# interleaved twice. PUBLAYERS_SCENE=camera sends the webcam-like scene instead of the test
# pattern (the transcoder's worst case).
# temporal: the same meeting without publisher layers, the publishers' camera in one temporal
# layer and then in two (--video-temporal-layers 2, L1T2 as browsers send it), interleaved twice.
# temporal-policy: L1T2 publishers, the transcoder's --transcode-temporal base-layer against
# when-busy, in a meeting the workers carry and one that saturates them.
set -u
OUT=${1:?usage: benchmarks.sh OUT_DIR [cap|audio|fixed|lab|lab-kernel]...}
shift
mkdir -p "$OUT" && cd "$OUT" || exit 2
R=${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/release
LT=${LT:-$R/quicmeet-loadtest}
QM=${QM:-$R/quicmeet}
# One line per saturated-transcoder run: the transcoder's dropped input and decoded frames, what
# layer-1 subscribers got, server CPU.
publayers_summary() {
  python3 - "$@" <<'PY'
import json, sys
for f in sys.argv[1:]:
    r = json.load(open(f))
    v = next(k for k in r["kinds"] if k["kind"] == "video")
    d = r["server"]["drops"]
    dropped = d.get("quicmeet_transcode_frames_dropped_total", 0)
    fed = d.get("quicmeet_transcode_frames_in_total", 0)
    decoded = d.get("quicmeet_transcode_frames_decoded_total", 0)
    w = r["server"]["window_s"] or 1
    a = r["args"]
    # Subscriber x publisher pairs: a layer whose source changed counts as two streams.
    pairs = a["rooms"] * a["publishers_per_room"] * a["subscribers_per_room"]
    m = r["machine"]
    print(f"{f}: transcoder dropped {dropped:.0f} of {dropped + fed:.0f} source frames "
          f"({100 * dropped / max(1, dropped + fed):.1f} %), decoded {decoded:.0f} · {pairs} layer-1 subscriptions got "
          f"{v['frames_received'] / max(1, pairs) / w:.1f} fps each, seq loss {v['loss_pct']:.2f} %, "
          f"latency p50 {v['latency_ms']['p50']:.1f} / p99 {v['latency_ms']['p99']:.1f} ms · "
          f"temporal switches {d.get('quicmeet_transcode_temporal_switches_total', 0):.0f} · "
          f"layers taken over {d.get('quicmeet_publisher_layers_started_total', 0):.0f}, "
          f"stop_layer sent {d.get('quicmeet_stop_layer_total', 0):.0f} · "
          f"server {r['server']['cpu_cores'] or 0:.2f} cores, tester {r['tester']['cpu_cores'] or 0:.2f} · "
          f"load {m.get('load_start')} → {m.get('load_end')}")
PY
}
run() {
  name=$1; shift
  echo "=== $name $(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)"
  echo "+ quicmeet-loadtest $*"
  # RUN_PREFIX: a command the tester runs under (audio-pinned: taskset).
  timeout 900 ${RUN_PREFIX:-} "$LT" "$@" --quiet --report-json "$name.json" --report-html "$name.html" 2>&1 \
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
  lab)
    # A 4-person 720p meeting, everyone publishing and watching everyone.
    M="--rooms 1 --publishers-per-room 4 --subscribers-per-room 0 $V720 --duration 20"
    for t in wt ws; do
      run lab-clean-$t --spawn-server "$QM" --transport $t $M
      run lab-down1m-$t --spawn-server "$QM" --transport $t $M --impair down1m --impair-participants 1
      run lab-up600k-$t --spawn-server "$QM" --transport $t $M --impair up600k --impair-participants 1
      run lab-lossy2-$t --spawn-server "$QM" --transport $t $M --impair lossy2
    done
    ;;
  audio-path)
    B=${QM_BEFORE:?audio-path needs QM_BEFORE=/path/to/older/quicmeet}
    A="--rooms 1 --subscribers-per-room 0 --video-res none"
    for round in 1 2; do
      for n in 32 48; do
        run fixa$n-before-$round --spawn-server "$B" --transport wt $A --publishers-per-room $n --duration 15
        run fixa$n-after-$round --spawn-server "$QM" --transport wt $A --publishers-per-room $n --duration 15
        run fixa$n-relay-$round --target relay $A --publishers-per-room $n --duration 15
      done
    done
    V="--rooms 1 --subscribers-per-room 0 --publishers-per-room 8 $V720 --duration 15"
    run fixv8-before --spawn-server "$B" --transport wt $V
    run fixv8-after --spawn-server "$QM" --transport wt $V
    run fixv8-relay --target relay $V
    run capaudio-before --spawn-server "$B" --transport wt $A --publishers-per-room 16 $CAP --capacity-max 100
    run capaudio-after --spawn-server "$QM" --transport wt $A --publishers-per-room 16 $CAP --capacity-max 100
    run capaudio-relay --target relay $A --publishers-per-room 16 $CAP --capacity-max 100
    ;;
  cluster)
    M12="--rooms 1 --publishers-per-room 12 --subscribers-per-room 0 --video-res 360p --video-kbps 600 --fps 30 --duration 20"
    R3="--rooms 3 --publishers-per-room 6 --subscribers-per-room 0 --video-res 360p --video-kbps 600 --fps 30 --duration 20"
    BIG="--rooms 1 --publishers-per-room 6 --subscribers-per-room 18 --video-res 360p --video-kbps 600 --fps 30 --duration 20"
    for round in 1 2; do
      # One meeting of 12, everyone publishing and watching everyone: 4 per node on three.
      run clu-meet12-1node-$round --spawn-server "$QM" --transport wt $M12
      run clu-meet12-3nodes-$round --spawn-server "$QM" --nodes 3 --transport wt $M12
    done
    # Three meetings of 6: one per node on three, nothing crosses.
    run clu-rooms3-1node --spawn-server "$QM" --transport wt $R3
    run clu-rooms3-3nodes --spawn-server "$QM" --nodes 3 --transport wt $R3
    # A meeting of 24 (6 publishers, 18 viewers) on nodes that each carry 10: 10/10/4.
    run clu-big24-1node --spawn-server "$QM" --transport wt $BIG
    run clu-big24-3nodes --spawn-server "$QM" --nodes 3 --server-arg=--max-node-participants=10 --transport wt $BIG
    ;;
  cluster-capped)
    # Three small machines against one, emulated: every node in its own cgroup capped at
    # NODE_CPUS cores (default 0.25), the tester and nats-server on the rest. Meetings of 4
    # (360p + audio, everyone watches everyone) starting one after another over 3 s; the
    # largest number of meetings with p99 < 150 ms and no loss, one node then three, ROUNDS
    # times (default 2). Needs root (cgroups).
    NC=${NODE_CPUS:-0.25}
    M4="--publishers-per-room 4 --subscribers-per-room 0 --video-res 360p --video-kbps 600 --fps 30 --duration 10 --ramp 3"
    RCAP="--max-p99-ms 150 --max-loss 0 --find-capacity --capacity-dim rooms --capacity-max 40 --node-cpus $NC"
    for round in $(seq 1 "${ROUNDS:-2}"); do
      run capped-1node-$round --spawn-server "$QM" --transport wt --rooms 2 $M4 $RCAP
      run capped-3nodes-$round --spawn-server "$QM" --nodes 3 --server-arg=--max-node-participants=10000 \
        --transport wt --rooms 6 $M4 $RCAP
    done
    # One meeting larger than a node: 4 publishers and a growing audience, split over the
    # three nodes (each step a fresh cluster whose nodes take a third of it each).
    W="--rooms 1 --publishers-per-room 4 --video-res 360p --video-kbps 600 --fps 30 --duration 10 --ramp 3"
    SCAP="--max-p99-ms 150 --max-loss 0 --find-capacity --capacity-dim subscribers --capacity-max 300 --node-cpus $NC"
    run capped-split-1node --spawn-server "$QM" --transport wt $W --subscribers-per-room 16 $SCAP
    run capped-split-3nodes --spawn-server "$QM" --nodes 3 --transport wt $W --subscribers-per-room 64 $SCAP
    ;;
  audio-pinned)
    [ "$(nproc)" -ge 2 ] || { echo "audio-pinned needs 2 CPUs"; continue; }
    A="--rooms 1 --subscribers-per-room 0 --video-res none --publishers-per-room 48 --duration 10"
    # The server under test: a spawned QuicMeet (its data dir names the tester) or the relay.
    ( while sleep 0.05; do
        for p in $(pgrep -f -- "--data-dir /tmp/quicmeet-loadtest-|quicmeet-loadtest relay"); do
          taskset -a -p -c 1 "$p" >/dev/null 2>&1
        done
      done ) &
    PIN=$!
    pinned() { RUN_PREFIX="taskset -c 0" run "$@"; }
    for round in $(seq 1 "${AUDIO_PINNED_ROUNDS:-8}"); do
      order="qm before relay"; [ $((round % 2)) = 0 ] && order="relay before qm"
      for w in $order; do
        case $w in
        qm) pinned pin-qm-$round --spawn-server "$QM" --transport wt $A ;;
        before) [ -n "${QM_BEFORE:-}" ] && pinned pin-before-$round --spawn-server "$QM_BEFORE" --transport wt $A ;;
        relay) pinned pin-relay-$round --target relay $A ;;
        esac
      done
    done
    kill $PIN 2>/dev/null
    python3 - <<'PY'
import glob, json, os, statistics
def us(name):
    try:
        return json.load(open(name))["server"]["cpu_us_per_frame"]
    except (OSError, KeyError, ValueError):
        return None
ratios = {"qm": [], "before": []}
for f in sorted(glob.glob("pin-relay-*.json"), key=lambda f: int(f.split("-")[-1][:-5])):
    n = f.split("-")[-1][:-5]
    r = us(f)
    row = [f"round {n}: relay {r:.2f} µs" if r else f"round {n}: relay -"]
    for w in ("qm", "before"):
        v = us(f"pin-{w}-{n}.json")
        if v and r:
            ratios[w].append(v / r)
            row.append(f"{w} {v:.2f} µs ({v / r:.2f}x)")
    print(" · ".join(row))
for w, v in ratios.items():
    if v:
        print(f"{w} / relay: median {statistics.median(v):.2f}x over {len(v)} rounds, "
              f"{sum(x <= 1.3 for x in v)} at or under 1.3x")
PY
    ;;
  publayers)
    # Issue 15: a meeting where transcoding saturates: 720p publishers, small-tile subscribers
    # on layer 1, the transcoder pool on 2 workers; without and with publisher-made layers
    # (the publishers declare layers_capable and send the layer themselves when asked).
    P="--rooms 1 --publishers-per-room ${PUBLAYERS_N:-16} --subscribers-per-room 2 --publishers-watch off --layer 1 $V720 --video-scene ${PUBLAYERS_SCENE:-pattern} --duration 20 --server-arg=--transcode-workers=2"
    for round in 1 2; do
      run publayers-off-$round --spawn-server "$QM" --transport wt $P
      run publayers-on-$round --spawn-server "$QM" --transport wt $P --publisher-layers on
    done
    publayers_summary publayers-*.json
    ;;
  temporal)
    # Issue 15, seventh pass: the same saturated-transcoder meeting, publishers sending one
    # temporal layer and then two (L1T2, as the browser client sends its camera), no publisher
    # layers; interleaved twice.
    P="--rooms 1 --publishers-per-room ${PUBLAYERS_N:-16} --subscribers-per-room 2 --publishers-watch off --layer 1 $V720 --video-scene ${PUBLAYERS_SCENE:-pattern} --duration 20 --server-arg=--transcode-workers=2"
    for round in 1 2; do
      run temporal-t1-$round --spawn-server "$QM" --transport wt $P --video-temporal-layers 1
      run temporal-t2-$round --spawn-server "$QM" --transport wt $P --video-temporal-layers 2
    done
    publayers_summary temporal-*.json
    ;;
  temporal-policy)
    # Issue 15: publishers in two temporal layers (L1T2), the pool's policy fixed to the base
    # layer against when-busy (every frame while a worker has room), at a meeting size the two
    # workers carry on every frame (TPOLICY_LIGHT, default 8) and one that saturates them
    # (TPOLICY_HEAVY, default 24); interleaved twice.
    for n in ${TPOLICY_LIGHT:-8} ${TPOLICY_HEAVY:-24}; do
      P="--rooms 1 --publishers-per-room $n --subscribers-per-room 2 --publishers-watch off --layer 1 $V720 --video-scene ${PUBLAYERS_SCENE:-pattern} --duration 20 --server-arg=--transcode-workers=2 --video-temporal-layers 2"
      for round in 1 2; do
        run tpolicy$n-base-$round --spawn-server "$QM" --transport wt $P --server-arg=--transcode-temporal=base-layer
        run tpolicy$n-busy-$round --spawn-server "$QM" --transport wt $P --server-arg=--transcode-temporal=when-busy
      done
    done
    publayers_summary tpolicy*.json
    ;;
  past)
    for n in ${PAST_N:-32 36 40 44 48 56}; do
      P="--rooms 1 --publishers-per-room $n --subscribers-per-room 0 $V720 --duration 10"
      run past$n-relay --target relay $P
      run past$n-wt --spawn-server "$QM" --transport wt $P
      run past$n-ws --spawn-server "$QM" --transport ws $P
    done
    python3 - past*-*.json <<'PY'
import json, sys
rows = {}
for f in sys.argv[1:]:
    r = json.load(open(f))
    n, target = f.removeprefix("past").removesuffix(".json").split("-")
    a = next(k for k in r["kinds"] if k["kind"] == "audio")
    v = next(k for k in r["kinds"] if k["kind"] == "video")
    rows.setdefault(int(n), {})[target] = (
        f"{a['latency_ms']['p50']:.0f}/{a['latency_ms']['p99']:.0f} ms {a['loss_pct']:.1f} %"
        f" (video p99 {v['latency_ms']['p99']:.0f} ms)")
print("N  | " + " | ".join(f"{t:<38}" for t in ("relay", "wt", "ws")))
for n in sorted(rows):
    print(f"{n:<3}| " + " | ".join(f"{rows[n].get(t, '-'):<38}" for t in ("relay", "wt", "ws")))
PY
    ;;
  lab-kernel)
    # 3 publishers all-to-all at 720p (about 14 Mbit/s) through an 8 Mbit/s kernel cap.
    NS=qm-lab-$$
    ip netns add $NS || exit 2
    trap 'ip netns del $NS' EXIT
    ip netns exec $NS ip link set lo up
    ip netns exec $NS ip link set lo mtu 1500
    ip netns exec $NS tc qdisc replace dev lo root tbf rate 8mbit burst 32kb latency 100ms
    M="--rooms 1 --publishers-per-room 3 --subscribers-per-room 0 $V720 --duration 20"
    for t in wt ws; do
      run_ns() { name=$1; shift; echo "=== $name (netns $NS, tbf 8mbit, mtu 1500)"; echo "+ quicmeet-loadtest $*"
        timeout 900 ip netns exec $NS "$LT" "$@" --quiet --report-json "$name.json" --report-html "$name.html" 2>&1 | grep -v "libvpx\|libopus"; echo "rc=${PIPESTATUS[0]}"; }
      run_ns kernel8m-$t --spawn-server "$QM" --transport $t $M
    done
    ;;
  esac
done
