//! A short load against the real `quicmeet` binary on loopback (and against the baseline
//! relay): the report's counts must match what was sent and received.

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use quicmeet_loadtest::cli::Cli;
use quicmeet_loadtest::report::Report;

/// The server binary next to this test's target directory, built if missing.
fn quicmeet_bin() -> PathBuf {
    if let Ok(p) = std::env::var("QUICMEET_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf(); // target/<profile>
    let bin = dir.join("quicmeet");
    if !bin.exists() {
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "quicmeet-server", "--bin", "quicmeet"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo build quicmeet");
        assert!(st.success(), "building the quicmeet server failed");
    }
    bin
}

fn args(extra: &[&str]) -> quicmeet_loadtest::cli::Args {
    args_for(2, 2, extra)
}

/// A small meeting of `publishers` and `subscribers` with `extra` options.
fn args_for(publishers: u8, subscribers: u8, extra: &[&str]) -> quicmeet_loadtest::cli::Args {
    let (p, s) = (publishers.to_string(), subscribers.to_string());
    let mut v = vec![
        "quicmeet-loadtest",
        "--rooms",
        "1",
        "--publishers-per-room",
        &p,
        "--subscribers-per-room",
        &s,
        "--video-res",
        "180p",
        "--video-kbps",
        "150",
        "--fps",
        "15",
        "--keyframe-secs",
        "1",
        "--duration",
        "3",
        "--quiet",
    ];
    v.extend_from_slice(extra);
    Cli::try_parse_from(v).unwrap().args
}

/// Every audio and video track of the `publishers` reached each of its `receivers` whole:
/// sent × receivers = received, nothing lost or served from before the subscription, and
/// every frame has a latency.
fn check_tracks(r: &Report, publishers: u64, receivers: u64) {
    for k in r
        .kinds
        .iter()
        .filter(|k| k.kind == "audio" || k.kind == "video")
    {
        assert!(
            k.frames_sent > 20,
            "{}: too few frames sent\n{}",
            k.kind,
            r.table()
        );
        assert_eq!(
            k.streams,
            publishers * receivers,
            "{} streams\n{}",
            k.kind,
            r.table()
        );
        assert_eq!(
            k.frames_sent * receivers,
            k.frames_received + k.frames_lost,
            "{}: sent × receivers ≠ received + lost\n{}",
            k.kind,
            r.table()
        );
        assert_eq!(k.frames_lost, 0, "{}: loss\n{}", k.kind, r.table());
        assert_eq!(k.frames_cached, 0, "subscriptions precede the first frame");
        assert_eq!(
            k.latency_ms.count, k.frames_received,
            "every frame has a latency"
        );
        assert!(k.latency_ms.p50 > 0.0 && k.latency_ms.max < 2_000.0);
    }
}

/// Every frame a publisher sent reached every other participant: sent × receivers =
/// received + lost, and nothing was lost at this tiny load.
fn check_counts(r: &Report) {
    assert_eq!(r.join.joined, 4, "{}", r.table());
    assert_eq!(r.join.failed, 0);
    // Each track is received by the 2 subscribers and the other publisher.
    check_tracks(r, 2, 3);
    let all = r.all();
    assert_eq!(all.loss_pct, 0.0);
    assert!(r.errors.is_empty(), "errors: {:?}", r.errors);
    assert!(r.join.connect_ms.count >= 4);
    // One first frame per participant (every one of them watches someone).
    assert_eq!(r.join.first_frame_ms.count, 4);
    assert_eq!(r.join.total_ms.count, 4);
    assert!(!r.timeline.is_empty() && !r.cdf.is_empty());
    assert!(
        r.server.cpu_cores.is_some(),
        "server CPU sampled from /proc"
    );
    assert!(r.passed, "{}", r.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_match_over_both_transports_against_the_real_server() {
    let bin = quicmeet_bin();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let html = dir.path().join("r.html");
    let spawn = bin.to_str().unwrap().to_owned();
    let a = args(&[
        "--spawn-server",
        &spawn,
        "--transport",
        "mix",
        "--chat-rate",
        "2",
        "--max-p99-ms",
        "1000",
        "--max-loss",
        "0",
        "--report-json",
        json.to_str().unwrap(),
        "--report-html",
        html.to_str().unwrap(),
    ]);
    let r = quicmeet_loadtest::run::run(&a).await.unwrap();
    quicmeet_loadtest::run::write_reports(&a, &r).unwrap();
    check_counts(&r);
    // The server saw the same numbers: every frame in, nothing dropped.
    let sent: u64 = r
        .kinds
        .iter()
        .filter(|k| k.kind != "all")
        .map(|k| k.frames_sent)
        .sum();
    assert_eq!(r.server.frames_in, Some(sent as f64), "{}", r.table());
    assert_eq!(r.server.frames_out, Some(r.all().frames_received as f64));
    for (k, v) in &r.server.drops {
        if k.starts_with("quicmeet_media_dropped_") {
            assert_eq!(*v, 0.0, "{k}");
        }
    }
    // quinn's own silent drops are counted on both ends, and none happened: every datagram
    // QUIC took was sent, and every one it received was read.
    assert!(r
        .server
        .drops
        .contains_key("quicmeet_media_dropped_quic_datagrams_total"));
    assert_eq!(r.tester.quic_datagrams_dropped_in, 0);
    assert_eq!(r.tester.quic_datagrams_dropped_out, 0);
    // Chat: every message reaches the 4 participants (the author included).
    assert!(r.chat.sent > 0);
    assert_eq!(r.chat.received, r.chat.sent * 4);

    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        v["kinds"][0]["frames_received"].as_u64(),
        Some(r.kinds[0].frames_received)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("Latency CDF"));
    assert!(
        !page.contains("<script") && !page.contains("src="),
        "self-contained"
    );

    // A threshold the run cannot meet turns the verdict into a failure.
    let mut strict = a.clone();
    strict.max_p99_ms = Some(0.001);
    let mut r2 = r.clone();
    quicmeet_loadtest::build::evaluate(&strict, &mut r2);
    assert!(!r2.passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_match_over_websocket_only() {
    let bin = quicmeet_bin();
    let spawn = bin.to_str().unwrap().to_owned();
    let a = args(&[
        "--spawn-server",
        &spawn,
        "--transport",
        "ws",
        "--audio",
        "on",
    ]);
    let r = quicmeet_loadtest::run::run(&a).await.unwrap();
    check_counts(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_match_through_the_baseline_relay() {
    let a = args(&["--target", "relay"]);
    let r = quicmeet_loadtest::run::run(&a).await.unwrap();
    check_counts(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_match_across_a_cluster_with_the_meeting_split_over_its_nodes() {
    // The tester starts a private nats-server and two nodes that take two participants
    // each: the meeting of four is split, and every frame still reaches everyone.
    let bin = quicmeet_bin();
    let spawn = bin.to_str().unwrap().to_owned();
    let a = args(&[
        "--spawn-server",
        &spawn,
        "--nodes",
        "2",
        "--transport",
        "mix",
    ]);
    let r = quicmeet_loadtest::run::run(&a).await.unwrap();
    check_counts(&r);
    let c = r.cluster.as_ref().expect("a cluster section");
    assert_eq!(c.nodes, 2);
    let per: Vec<u64> = c.participants_per_node.iter().map(|(_, n)| *n).collect();
    // Two each as a rule; a directory refresh in the middle of the joins may let one more
    // onto the first node (docs/CLUSTER.md section 8), never keep the meeting on one node.
    assert!(
        per.len() == 2 && per.iter().all(|n| *n >= 1),
        "{per:?}\n{}",
        r.table()
    );
    // Latency is split, nothing left out: same-node plus cross-node frames are all frames.
    let all = r.all();
    assert!(
        c.same_node_ms.count > 0 && c.cross_node_ms.count > 0,
        "{}",
        r.table()
    );
    assert_eq!(
        c.same_node_ms.count + c.cross_node_ms.count,
        all.latency_ms.count,
        "{}",
        r.table()
    );
    assert!(c.cross_frames_out.is_some_and(|n| n > 0.0), "{}", r.table());
    assert!(c.nats_cpu_cores.is_some(), "NATS CPU sampled");
}

/// A publisher that cannot join (the meeting is full) does not hold up the others: the
/// meeting's media starts without waiting for its tracks, and everyone who joined sees the
/// others. Before, the rest waited for the missing tracks until the room's start timeout
/// (20 s), so a short run measured nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_cannot_join_does_not_hold_up_the_meeting() {
    let bin = quicmeet_bin();
    let spawn = bin.to_str().unwrap().to_owned();
    let a = args_for(
        4,
        0,
        &[
            "--spawn-server",
            &spawn,
            "--server-arg=--max-participants=3",
            "--transport",
            "wt",
            "--max-join-fail",
            "50",
        ],
    );
    let r = quicmeet_loadtest::run::run(&a).await.unwrap();
    assert_eq!((r.join.joined, r.join.failed), (3, 1), "{}", r.table());
    // Each of the three hears and sees the two others from the gate on: every frame sent
    // reaches both of the others.
    check_tracks(&r, 3, 2);
    assert_eq!(r.join.first_frame_ms.count, 3, "{}", r.table());
}
