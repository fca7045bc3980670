//! Building the report's data from what a run recorded: the participants' counters and
//! histograms, the server's `/proc` and `/metrics` samples at the edges of the measured
//! window, and the thresholds. Rendering (table, HTML) stays in [`crate::report`].

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crate::cli::Args;
use crate::hist::Hist;
use crate::participant::Ctx;
use crate::report::{
    ChatReport, Check, JoinReport, Report, ServerReport, StreamReport, TesterReport, TimePoint,
};
use crate::server::{self, proc_sample};
use crate::stats::{kind_index, KindReport, Shared, SummaryMs, KIND_NAMES};

/// The counters at one edge of the measured window.
#[derive(Debug, Clone)]
pub(crate) struct WindowMark {
    at: Instant,
    server: Option<server::ProcSample>,
    /// The NATS server of a `--nodes` cluster (also inside `server`).
    nats: Option<server::ProcSample>,
    tester: Option<server::ProcSample>,
    machine_busy_us: Option<u64>,
    frames_rx: u64,
    bytes_rx: u64,
}

impl WindowMark {
    /// Read the counters now (`pids`: the server's processes, if known; `nats`: a cluster's
    /// NATS server).
    pub(crate) fn take(sh: &Shared, pids: &[String], nats: Option<&str>) -> Self {
        WindowMark {
            at: Instant::now(),
            server: server::procs_sample(pids),
            nats: nats.and_then(proc_sample),
            tester: proc_sample("self"),
            machine_busy_us: server::machine_busy_us(),
            frames_rx: sh.frames_rx.load(Relaxed),
            bytes_rx: sh.bytes_rx.load(Relaxed),
        }
    }
}

/// What the run hands over besides the shared counters.
pub(crate) struct BuildInput {
    pub(crate) started_at: String,
    pub(crate) target: String,
    pub(crate) video_clip_kbps: Option<f64>,
    pub(crate) timeline: Vec<TimePoint>,
    pub(crate) window_start: Option<WindowMark>,
    pub(crate) window_end: WindowMark,
    pub(crate) metrics0: Option<BTreeMap<String, f64>>,
    pub(crate) metrics_end: Option<BTreeMap<String, f64>>,
    pub(crate) pid: Option<u32>,
    pub(crate) rss_max: Option<f64>,
    /// `--nodes`: how many nodes the server was.
    pub(crate) nodes: Option<usize>,
}

fn ms(h: &Hist) -> SummaryMs {
    h.summary().into()
}

/// The report of one run; thresholds not yet applied (see [`evaluate`]).
pub(crate) fn build_report(args: &Args, ctx: &Ctx, input: BuildInput) -> Report {
    let sh = &ctx.shared;
    let streams = sh.streams.lock().clone();
    let w0 = input
        .window_start
        .clone()
        .unwrap_or_else(|| input.window_end.clone());
    let w1 = &input.window_end;
    let window_s = w1.at.duration_since(w0.at).as_secs_f64();

    let mut kinds: Vec<KindReport> = KIND_NAMES
        .iter()
        .map(|k| KindReport {
            kind: (*k).to_owned(),
            ..KindReport::default()
        })
        .collect();
    let mut jitters: [Vec<f64>; 3] = Default::default();
    let mut all_lat = Hist::default();
    for (i, k) in kinds.iter_mut().enumerate() {
        k.frames_sent = sh.frames_sent[i].load(Relaxed);
        let h = sh.latency[i].snapshot();
        k.latency_ms = ms(&h);
        all_lat.merge(&h);
    }
    for s in &streams {
        let i = kind_index(s.kind);
        let k = &mut kinds[i];
        k.streams += 1;
        k.frames_received += s.received;
        k.frames_cached += s.cached;
        k.frames_lost += s.lost();
        k.bytes_received += s.bytes;
        jitters[i].push(s.jitter_us / 1000.0);
    }
    for (i, k) in kinds.iter_mut().enumerate() {
        let n = k.frames_received + k.frames_lost;
        k.loss_pct = if n == 0 {
            0.0
        } else {
            k.frames_lost as f64 * 100.0 / n as f64
        };
        let j = &jitters[i];
        k.jitter_ms_mean = if j.is_empty() {
            0.0
        } else {
            j.iter().sum::<f64>() / j.len() as f64
        };
        k.jitter_ms_max = j.iter().cloned().fold(0.0, f64::max);
    }
    let mut all = KindReport {
        kind: "all".into(),
        latency_ms: ms(&all_lat),
        ..KindReport::default()
    };
    for k in &kinds {
        all.streams += k.streams;
        all.frames_sent += k.frames_sent;
        all.frames_received += k.frames_received;
        all.frames_cached += k.frames_cached;
        all.frames_lost += k.frames_lost;
        all.bytes_received += k.bytes_received;
    }
    let n = all.frames_received + all.frames_lost;
    all.loss_pct = if n == 0 {
        0.0
    } else {
        all.frames_lost as f64 * 100.0 / n as f64
    };
    let alljit: Vec<f64> = jitters.iter().flatten().cloned().collect();
    all.jitter_ms_mean = if alljit.is_empty() {
        0.0
    } else {
        alljit.iter().sum::<f64>() / alljit.len() as f64
    };
    all.jitter_ms_max = alljit.iter().cloned().fold(0.0, f64::max);
    kinds.push(all);

    let cores = |a: Option<server::ProcSample>, b: Option<server::ProcSample>| match (a, b) {
        (Some(a), Some(b)) if window_s > 0.0 => {
            Some(b.cpu_us.saturating_sub(a.cpu_us) as f64 / (window_s * 1e6))
        }
        _ => None,
    };
    let server_cores = cores(w0.server, w1.server);
    let delivered = w1.frames_rx.saturating_sub(w0.frames_rx);
    let sub_streams = streams.iter().filter(|s| s.received > 0).count() as u64;
    let mut drops = BTreeMap::new();
    let (mut frames_in, mut frames_out) = (None, None);
    if let (Some(a), Some(b)) = (&input.metrics0, &input.metrics_end) {
        for (k, v) in b {
            if k.starts_with("quicmeet_media_dropped_")
                || k.starts_with("quicmeet_media_group_resets")
                || k.starts_with("quicmeet_media_keyframe_requests")
                // The transcoder's dropped input and publisher-made layers (issue 15).
                || k.starts_with("quicmeet_transcode_frames_")
                // The transcoder's time decoding, scaling and encoding (its workers' clocks).
                || (k.starts_with("quicmeet_transcode_") && k.ends_with("_seconds_total"))
                || k.starts_with("quicmeet_produce_layer")
                || k.starts_with("quicmeet_stop_layer")
                || k.starts_with("quicmeet_publisher_layers")
                // Audio the server's QUIC dropped for waiting past its age limit, and the
                // transcoder's switches between every frame and the base temporal layer.
                || k == "quicmeet_media_quic_datagrams_expired_total"
                || k == "quicmeet_transcode_temporal_switches_total"
            {
                drops.insert(k.clone(), v - a.get(k).copied().unwrap_or(0.0));
            }
        }
        let d = |name: &str| b.get(name).map(|v| v - a.get(name).copied().unwrap_or(0.0));
        frames_in = d("quicmeet_media_frames_in_total");
        frames_out = d("quicmeet_media_frames_out_total");
    }
    let server = ServerReport {
        pid: input.pid,
        window_s,
        cpu_cores: server_cores,
        rss_max_mib: input.rss_max,
        frames_delivered: delivered,
        delivered_mbps: w1.bytes_rx.saturating_sub(w0.bytes_rx) as f64 * 8.0
            / window_s.max(1e-9)
            / 1e6,
        cpu_us_per_frame: match (w0.server, w1.server) {
            (Some(a), Some(b)) if delivered > 0 => {
                Some(b.cpu_us.saturating_sub(a.cpu_us) as f64 / delivered as f64)
            }
            _ => None,
        },
        subscriber_streams: sub_streams,
        streams_per_core: server_cores
            .filter(|c| *c > 0.0)
            .map(|c| sub_streams as f64 / c),
        frames_in,
        frames_out,
        drops,
    };

    let mut worst: Vec<StreamReport> = streams
        .iter()
        .map(|s| StreamReport {
            room: s.room,
            receiver: s.receiver,
            track: s.track,
            layer: s.layer,
            kind: KIND_NAMES[kind_index(s.kind)].into(),
            received: s.received,
            lost: s.lost(),
            latency_ms: ms(&s.latency),
            jitter_ms: s.jitter_us / 1000.0,
            kbps: s.bytes as f64 * 8.0 / window_s.max(1e-9) / 1000.0,
            first_frame_ms: s.first_frame_us.map(|v| v as f64 / 1000.0),
        })
        .collect();
    worst.sort_by(|a, b| {
        b.latency_ms
            .p99
            .partial_cmp(&a.latency_ms.p99)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.lost.cmp(&a.lost))
    });
    worst.truncate(50);

    Report {
        version: env!("CARGO_PKG_VERSION").into(),
        started_at: input.started_at,
        args: args.clone(),
        target: input.target,
        video_clip_kbps: input.video_clip_kbps,
        machine: Default::default(),
        join: JoinReport {
            planned: args.total() as u64,
            joined: sh.joined.load(Relaxed),
            failed: sh.join_failed.load(Relaxed),
            api_ms: ms(&sh.join_api.lock()),
            connect_ms: ms(&sh.join_connect.lock()),
            first_frame_ms: ms(&sh.first_frame.lock()),
            total_ms: ms(&sh.join_total.lock()),
        },
        kinds,
        chat: ChatReport {
            sent: sh.chat_sent.load(Relaxed),
            received: sh.chat_rx.load(Relaxed),
            latency_ms: ms(&sh.chat_latency.snapshot()),
        },
        reconnects: sh.reconnects.load(Relaxed),
        churn_rejoins: sh.churn_rejoins.load(Relaxed),
        errors: sh.errors.lock().clone(),
        server,
        tester: TesterReport {
            cpu_cores: cores(w0.tester, w1.tester),
            machine_busy_cores: match (w0.machine_busy_us, w1.machine_busy_us) {
                (Some(a), Some(b)) if window_s > 0.0 => {
                    Some(b.saturating_sub(a) as f64 / (window_s * 1e6))
                }
                _ => None,
            },
            sender_lag_ms: ms(&sh.sender_lag.snapshot()),
            datagrams_expired: sh.datagrams_expired.load(Relaxed),
            quic_datagrams_dropped_in: sh.quic_datagrams_dropped_in.load(Relaxed),
            quic_datagrams_dropped_out: sh.quic_datagrams_dropped_out.load(Relaxed),
            bottleneck: vec![],
        },
        timeline: input.timeline,
        cdf: all_lat
            .cdf()
            .into_iter()
            .map(|(v, f)| (v as f64 / 1000.0, f))
            .collect(),
        worst_streams: worst,
        checks: vec![],
        passed: true,
        capacity: None,
        lab: crate::lab::report::build(args, ctx.lab.as_ref(), &sh.lab, &streams),
        cluster: input.nodes.map(|n| {
            crate::cluster::report(
                n,
                sh,
                &streams,
                input.metrics_end.as_ref(),
                cores(w0.nats, w1.nats),
            )
        }),
    }
}

/// Why the tool itself may have limited what it measured: its own CPU, the whole machine,
/// the kernel dropping UDP, or its own late reads of audio.
fn bottleneck(r: &Report) -> Vec<String> {
    let mut why = vec![];
    let cpus = r.machine.cpus.max(1) as f64;
    if let Some(busy) = r.tester.machine_busy_cores {
        if busy >= 0.9 * cpus {
            why.push(format!(
                "the machine was saturated ({busy:.1} of {cpus:.0} cores busy)"
            ));
        }
    }
    if let Some(c) = r.tester.cpu_cores {
        if c >= 0.5 * cpus {
            why.push(format!("the tester itself used {c:.1} of {cpus:.0} cores"));
        }
    }
    if let Some(n) = r.machine.udp_rcvbuf_errors.filter(|n| *n > 0) {
        why.push(format!(
            "the kernel dropped {n} UDP datagrams on full receive buffers"
        ));
    }
    let audio = &r.kinds[kind_index(quicmeet_proto::MediaKind::Audio)];
    let expired = r.tester.datagrams_expired;
    if expired > 0 && expired * 1000 > audio.frames_received.max(1) {
        why.push(format!(
            "the tester read {expired} audio datagrams later than {} ms and dropped them (counted as lost)",
            r.args.datagram_max_age_ms
        ));
    }
    let (din, dout) = (
        r.tester.quic_datagrams_dropped_in,
        r.tester.quic_datagrams_dropped_out,
    );
    if din > 0 {
        why.push(format!(
            "QUIC dropped {din} datagrams the tester did not read in time (its receive buffer was full)"
        ));
    }
    if dout > 0 {
        why.push(format!(
            "QUIC dropped {dout} audio datagrams the tester's publishers could not send in time"
        ));
    }
    if r.tester.sender_lag_ms.p99 > 50.0 && r.args.impair.is_none() {
        why.push(format!(
            "its publishers sent late (p99 {:.0} ms behind schedule)",
            r.tester.sender_lag_ms.p99
        ));
    }
    why
}

/// Apply the thresholds, and say whether the tool was itself a bottleneck.
pub fn evaluate(args: &Args, r: &mut Report) {
    r.tester.bottleneck = bottleneck(r);
    let all = r.all().clone();
    let mut checks = vec![];
    if let Some(l) = args.max_p99_ms {
        checks.push(Check {
            name: "p99 latency ms".into(),
            limit: l,
            value: all.latency_ms.p99,
            ok: all.latency_ms.p99 <= l && all.latency_ms.count > 0,
        });
    }
    if let Some(l) = args.max_loss {
        checks.push(Check {
            name: "loss %".into(),
            limit: l,
            value: all.loss_pct,
            ok: all.loss_pct <= l && all.frames_received > 0,
        });
    }
    let a = &r.args;
    let watchers = a.subscribers_per_room
        + if a.publishers_watch == crate::cli::OnOff::On && a.publishers_per_room > 1 {
            a.publishers_per_room
        } else {
            0
        };
    let has_media = a.audio == crate::cli::OnOff::On || a.video_res.size().is_some() || a.screen;
    if a.publishers_per_room > 0 && watchers > 0 && has_media {
        checks.push(Check {
            name: "media frames received".into(),
            limit: 1.0,
            value: all.frames_received as f64,
            ok: all.frames_received > 0,
        });
    }
    let fail_pct = if r.join.planned == 0 {
        0.0
    } else {
        r.join.failed as f64 * 100.0 / r.join.planned as f64
    };
    checks.push(Check {
        name: "join failures %".into(),
        limit: args.max_join_fail,
        value: fail_pct,
        ok: fail_pct <= args.max_join_fail,
    });
    r.passed = checks.iter().all(|c| c.ok);
    r.checks = checks;
}
