//! The impairment lab, briefly, against the real `quicmeet` binary: one profile per transport,
//! one impaired participant. Its link must really be in the path (the shims counted its
//! packets and the delay shows in what it receives) while the meeting keeps working.

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use quicmeet_loadtest::cli::Cli;
use quicmeet_loadtest::lab::report::LabReport;
use quicmeet_loadtest::report::Report;

fn quicmeet_bin() -> PathBuf {
    if let Ok(p) = std::env::var("QUICMEET_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let bin = dir.join("quicmeet");
    if !bin.exists() {
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "quicmeet-server", "--bin", "quicmeet"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "building quicmeet failed");
    }
    bin
}

/// One meeting through the lab, against the real server: `meeting` gives its size and media,
/// one participant is impaired by `profile`.
async fn run_lab(transport: &str, profile: &str, meeting: &[&str]) -> Report {
    let bin = quicmeet_bin();
    let mut v = vec![
        "quicmeet-loadtest",
        "--spawn-server",
        bin.to_str().unwrap(),
        "--transport",
        transport,
        "--rooms",
        "1",
    ];
    v.extend_from_slice(meeting);
    v.extend_from_slice(&["--impair", profile, "--impair-participants", "1", "--quiet"]);
    let args = Cli::try_parse_from(v).unwrap().args;
    quicmeet_loadtest::run::run(&args).await.unwrap()
}

/// A small 3-second meeting: 2 publishers at 180p and one listener.
async fn run(transport: &str, profile: &str) -> Report {
    let meeting = [
        "--publishers-per-room",
        "2",
        "--subscribers-per-room",
        "1",
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
    ];
    run_lab(transport, profile, &meeting).await
}

fn group<'a>(lab: &'a LabReport, name: &str) -> &'a quicmeet_loadtest::lab::report::Group {
    lab.groups
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no group {name}"))
}

/// The common checks: everyone joined, media flowed to the impaired participant and from
/// it, and its link carried its traffic both ways.
fn check(r: &Report, profile: &str) -> LabReport {
    let t = r.table();
    assert_eq!((r.join.joined, r.join.failed), (3, 0), "{t}");
    let lab = r.lab.clone().expect("the report has a lab section");
    assert_eq!(lab.impairment.name, profile);
    assert_eq!((lab.impaired, lab.participants), (1, 3), "{t}");
    assert!(
        t.contains("lab: ") && t.contains("impaired receivers"),
        "{t}"
    );
    assert!(
        lab.links.up.packets > 20 && lab.links.down.packets > 20,
        "{t}"
    );
    let rx = group(&lab, "impaired receivers");
    assert!(rx.audio.received > 20 && rx.video.received > 10, "{t}");
    let tx = group(&lab, "from impaired publishers");
    assert!(tx.audio.received > 20 && tx.video.received > 10, "{t}");
    lab
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webtransport_through_a_lossy_link() {
    let r = run("wt", "lossy2").await;
    let lab = check(&r, "lossy2");
    let t = r.table();
    // 2 % loss each way over hundreds of datagrams: the wire lost some, QUIC carried on.
    assert!(lab.links.up.lost + lab.links.down.lost > 0, "{t}");
    assert!((lab.path_loss_pct - 3.96).abs() < 0.01);
    // What it receives crosses 25 ± 10 ms of downlink delay, what it sends as much uplink.
    assert!(
        group(&lab, "impaired receivers").audio.p50_ms >= 15.0,
        "{t}"
    );
    assert!(
        group(&lab, "from impaired publishers").audio.p50_ms >= 15.0,
        "{t}"
    );
    println!("{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_through_a_capped_link() {
    let r = run("ws", "1mbit").await;
    let lab = check(&r, "1mbit");
    let t = r.table();
    // TCP: nothing is dropped by the shim (the queue pushes back instead).
    assert_eq!(
        lab.links.up.queue_drops + lab.links.down.queue_drops,
        0,
        "{t}"
    );
    // 15 ms of one-way delay is a floor for everything the impaired participant receives.
    assert!(
        group(&lab, "impaired receivers").audio.p50_ms >= 15.0,
        "{t}"
    );
    assert!(
        group(&lab, "from impaired publishers").audio.p50_ms >= 15.0,
        "{t}"
    );
    println!("{t}");
}

/// One participant behind a 700 kbit/s downlink in a meeting of three 360p publishers: two
/// cameras at 500 kbit/s do not fit, so the server must move its video down a layer, while
/// its audio stays fresh and the other two keep everything.
async fn capped_subscriber(transport: &str) {
    let meeting = [
        "--publishers-per-room",
        "3",
        "--subscribers-per-room",
        "0",
        "--video-res",
        "360p",
        "--video-kbps",
        "500",
        "--fps",
        "15",
        "--keyframe-secs",
        "2",
        "--duration",
        "10",
    ];
    let r = run_lab(transport, "down=700kbit,queue=200ms,delay=15ms", &meeting).await;
    let t = r.table();
    println!("{t}");
    assert_eq!((r.join.joined, r.join.failed), (3, 0), "{t}");
    let lab = r.lab.clone().expect("the report has a lab section");
    let me = group(&lab, "impaired receivers");
    assert!(
        me.lowest_layer >= 1,
        "the capped subscriber was never moved down a layer\n{t}"
    );
    assert!(me.video.received > 30, "{t}");
    // Audio is never queued behind video for long: the server drops audio older than
    // 150 ms, the kernel keeps at most 8 KiB unsent per WebSocket (90 ms here), and the
    // link's own queue holds at most 200 ms; the rest is slack for a busy CI machine
    // (before the server's age limits and estimate this case measured 860 ms).
    assert!(me.audio.p99_ms < 600.0, "stale audio\n{t}");
    // A FIFO bottleneck drops audio datagrams too while video overfills it: before the
    // subscriber settles, and again when a try at a better layer fails. Bounded, not zero.
    assert!(me.audio.loss_pct < 10.0, "{t}");
    let others = group(&lab, "unimpaired receivers");
    assert!(
        others.audio.loss_pct < 2.0 && others.video.loss_pct < 2.0,
        "the capped subscriber hurt the others\n{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webtransport_capped_subscriber_moves_down_with_fresh_audio() {
    capped_subscriber("wt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_capped_subscriber_moves_down_with_fresh_audio() {
    capped_subscriber("ws").await;
}
