//! The report: JSON (serde), a plain-text summary table, and a self-contained HTML page with
//! inline SVG charts (no scripts, no external resources).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::cli::Args;
use crate::stats::{KindReport, SummaryMs};

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TimePoint {
    /// Seconds since the run started.
    pub t: f64,
    /// Participants connected.
    pub connected: u64,
    /// Latency of frames received in this second (ms).
    pub p50_ms: f64,
    /// 90th percentile (ms).
    pub p90_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// Maximum (ms).
    pub max_ms: f64,
    /// Frames sent per second by all publishers.
    pub tx_fps: f64,
    /// Frames received per second by all subscribers.
    pub rx_fps: f64,
    /// Received media, Mbit/s.
    pub rx_mbps: f64,
    /// Server CPU, percent of one core.
    pub server_cpu_pct: Option<f64>,
    /// Server resident memory, MiB.
    pub server_rss_mib: Option<f64>,
    /// This tool's CPU, percent of one core.
    pub tester_cpu_pct: Option<f64>,
    /// Server-side drops so far (sum of `quicmeet_media_dropped_*`).
    pub server_drops: Option<f64>,
    /// Bytes waiting in the server's subscriber queues.
    pub server_queue_bytes: Option<f64>,
}

/// The machine the run shared.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// 1-minute load average when the run started.
    pub load_start: Option<f64>,
    /// 1-minute load average when the run ended.
    pub load_end: Option<f64>,
    /// UDP datagrams the kernel dropped during the run because a socket's receive buffer
    /// was full (`/proc/net/snmp` `Udp: RcvbufErrors`, whole network namespace).
    pub udp_rcvbuf_errors: Option<u64>,
    /// `--node-cpus`: the cores each spawned server process was capped at.
    pub node_cpus: Option<f64>,
    /// `--node-cpus`: how often, and how long in all, the capped processes waited for their
    /// quota during the run (summed over nodes).
    pub throttled: Option<Throttled>,
}

/// Waits of CPU-capped processes for their quota.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throttled {
    /// Quota periods in which a process ran out of its share and waited.
    pub times: u64,
    /// Their total wait, in seconds.
    pub seconds: f64,
}

impl Machine {
    /// `Udp: RcvbufErrors` from `/proc/net/snmp`.
    pub fn udp_rcvbuf_errors() -> Option<u64> {
        let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
        let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
        let names: Vec<&str> = udp.next()?.split_whitespace().collect();
        let values: Vec<&str> = udp.next()?.split_whitespace().collect();
        let i = names.iter().position(|n| *n == "RcvbufErrors")?;
        values.get(i)?.parse().ok()
    }

    /// The 1-minute load average now.
    pub fn load_now() -> Option<f64> {
        std::fs::read_to_string("/proc/loadavg")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

/// Join timings (ms).
#[derive(Debug, Clone, Default, Serialize)]
pub struct JoinReport {
    /// Participants planned.
    pub planned: u64,
    /// Participants that joined at least once.
    pub joined: u64,
    /// Participants that never joined.
    pub failed: u64,
    /// REST `join` call.
    pub api_ms: SummaryMs,
    /// Transport handshake and `hello` → `welcome`.
    pub connect_ms: SummaryMs,
    /// Subscription (or media start) → first frame.
    pub first_frame_ms: SummaryMs,
    /// API + connect + first frame.
    pub total_ms: SummaryMs,
}

/// Chat figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChatReport {
    /// Messages sent.
    pub sent: u64,
    /// Deliveries (every participant of the meeting gets each message).
    pub received: u64,
    /// Send → receipt (ms).
    pub latency_ms: SummaryMs,
}

/// What the process under load cost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerReport {
    /// pid sampled, if any.
    pub pid: Option<u32>,
    /// Seconds of the measured window (media flowing, all rooms started).
    pub window_s: f64,
    /// Mean CPU over the window, in cores (1.0 = one core busy).
    pub cpu_cores: Option<f64>,
    /// Largest resident memory seen (MiB).
    pub rss_max_mib: Option<f64>,
    /// Frames delivered to subscribers during the window (counted by the tool).
    pub frames_delivered: u64,
    /// Media delivered to subscribers during the window, Mbit/s.
    pub delivered_mbps: f64,
    /// Server CPU per delivered frame (µs).
    pub cpu_us_per_frame: Option<f64>,
    /// Subscriber streams (subscriber × track) that carried media.
    pub subscriber_streams: u64,
    /// Subscriber streams per fully used server core.
    pub streams_per_core: Option<f64>,
    /// `quicmeet_media_frames_in_total` during the run.
    pub frames_in: Option<f64>,
    /// `quicmeet_media_frames_out_total` during the run.
    pub frames_out: Option<f64>,
    /// `quicmeet_media_dropped_*` and resets during the run, by series.
    pub drops: BTreeMap<String, f64>,
}

/// This tool's own cost (it shares the machine with the server).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TesterReport {
    /// Mean CPU over the window, in cores.
    pub cpu_cores: Option<f64>,
    /// The whole machine's busy CPU over the window, in cores (server, tool, kernel network
    /// work in softirq context, and anything else running).
    pub machine_busy_cores: Option<f64>,
    /// Lateness of sends against the schedule (ms).
    pub sender_lag_ms: SummaryMs,
    /// Audio datagrams this tool read too late and dropped itself
    /// (`--datagram-max-age-ms`).
    pub datagrams_expired: u64,
    /// Datagrams QUIC received for this tool that it never read (dropped by QUIC's full
    /// receive buffer: the tool read too slowly). quinn counts none of these itself.
    pub quic_datagrams_dropped_in: u64,
    /// Audio datagrams this tool's publishers handed to QUIC that it never sent (dropped by
    /// QUIC's full send buffer).
    pub quic_datagrams_dropped_out: u64,
    /// Why this tool may itself have limited the figures (empty: it kept up).
    pub bottleneck: Vec<String>,
}

/// One stream in the report (the worst ones by p99).
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    /// Room.
    pub room: usize,
    /// Receiving participant.
    pub receiver: usize,
    /// Track id.
    pub track: u32,
    /// Layer.
    pub layer: u8,
    /// Kind.
    pub kind: String,
    /// Frames received.
    pub received: u64,
    /// Frames lost.
    pub lost: u64,
    /// Latency (ms).
    pub latency_ms: SummaryMs,
    /// Jitter (ms).
    pub jitter_ms: f64,
    /// Goodput (kbit/s) over the measured window.
    pub kbps: f64,
    /// First frame after subscription (ms).
    pub first_frame_ms: Option<f64>,
}

/// A threshold and whether it held.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What.
    pub name: String,
    /// Limit.
    pub limit: f64,
    /// Measured.
    pub value: f64,
    /// Held.
    pub ok: bool,
}

/// One step of `--find-capacity`.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityStep {
    /// Value of the grown dimension.
    pub value: usize,
    /// Participants in the step.
    pub participants: usize,
    /// p99 latency (ms).
    pub p99_ms: f64,
    /// Loss (%).
    pub loss_pct: f64,
    /// Server CPU (cores).
    pub server_cpu_cores: Option<f64>,
    /// This tool's CPU (cores).
    pub tester_cpu_cores: Option<f64>,
    /// Frames the server dropped (`quicmeet_media_dropped_*`).
    pub server_drops: f64,
    /// Kernel UDP receive-buffer drops during the step.
    pub udp_rcvbuf_errors: Option<u64>,
    /// Server CPU per delivered frame (µs).
    pub cpu_us_per_frame: Option<f64>,
    /// Audio datagrams the server's QUIC dropped unsent
    /// (`quicmeet_media_dropped_quic_datagrams_total`; also in `server_drops`).
    pub server_quic_dropped: f64,
    /// Datagrams the tester's QUIC received but the tester never read.
    pub tester_quic_dropped_in: u64,
    /// Audio datagrams the tester's publishers handed to QUIC that it never sent.
    pub tester_quic_dropped_out: u64,
    /// Every threshold held.
    /// `--node-cpus`: seconds the capped servers waited for their quota in this step.
    pub throttled_s: Option<f64>,
    /// Joins that failed in this step (any failure breaks the step).
    pub joins_failed: u64,
    pub passed: bool,
}

/// `--find-capacity` result.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityReport {
    /// Dimension grown.
    pub dimension: String,
    /// Steps in the order run.
    pub steps: Vec<CapacityStep>,
    /// Largest value that held (`None`: not even the first).
    pub largest_passing: Option<usize>,
}

/// The whole report of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Tool version.
    pub version: String,
    /// Start (RFC 3339).
    pub started_at: String,
    /// Options.
    pub args: Args,
    /// Server URL or relay address.
    pub target: String,
    /// The machine: logical CPUs and `/proc/loadavg` at the start and the end of the run
    /// (the server and this tool share it, and maybe other work too).
    pub machine: Machine,
    /// Mean payload bit rate of the camera clip (kbit/s).
    pub video_clip_kbps: Option<f64>,
    /// Joins.
    pub join: JoinReport,
    /// Per kind: audio, video, screen, then all.
    pub kinds: Vec<KindReport>,
    /// Chat.
    pub chat: ChatReport,
    /// Reconnections after unexpected closes.
    pub reconnects: u64,
    /// Planned leave-and-rejoin events.
    pub churn_rejoins: u64,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Process under load.
    pub server: ServerReport,
    /// This tool.
    pub tester: TesterReport,
    /// One point per second.
    pub timeline: Vec<TimePoint>,
    /// Latency CDF of all media (ms, fraction).
    pub cdf: Vec<(f64, f64)>,
    /// The 50 streams with the worst p99.
    pub worst_streams: Vec<StreamReport>,
    /// Thresholds.
    pub checks: Vec<Check>,
    /// Every threshold held.
    pub passed: bool,
    /// `--find-capacity` steps.
    pub capacity: Option<CapacityReport>,
    /// The impairment lab's section, when the run had one.
    pub lab: Option<crate::lab::report::LabReport>,
    /// `--nodes`: placement, same-node and cross-node latency.
    pub cluster: Option<crate::cluster::ClusterReport>,
}

impl Report {
    /// The `all` row.
    pub fn all(&self) -> &KindReport {
        self.kinds.last().expect("the report has an `all` row")
    }

    /// Plain-text summary.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let a = &self.args;
        let _ = writeln!(
            s,
            "\nquicmeet-loadtest {} → {}  ({} rooms × {} publishers + {} subscribers, {:?}, video {:?} {:?} {} kbit/s {} fps, audio {:?}{})",
            self.version,
            self.target,
            a.rooms,
            a.publishers_per_room,
            a.subscribers_per_room,
            a.transport,
            a.video_res,
            a.video_scene,
            a.video_kbps,
            a.fps,
            a.audio,
            if a.screen { ", screen" } else { "" }
        );
        let m = &self.machine;
        let opt1 = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        let _ = writeln!(
            s,
            "machine: {} CPUs, load average {} → {} (server, tester and anything else share it) · kernel UDP receive-buffer drops {}",
            m.cpus,
            opt1(m.load_start),
            opt1(m.load_end),
            m.udp_rcvbuf_errors.map_or("-".to_owned(), |v| v.to_string())
        );
        if let Some(c) = m.node_cpus {
            let _ = writeln!(
                s,
                "each server process capped at {c} cores (cgroup quota per 10 ms){}",
                m.throttled.as_ref().map_or(String::new(), |t| format!(
                    " · waited for its quota {} times, {:.2} s in all",
                    t.times, t.seconds
                ))
            );
        }
        let j = &self.join;
        let _ = writeln!(
            s,
            "joined {}/{} (failed {}) · join ms p50/p99: api {:.1}/{:.1}  connect {:.1}/{:.1}  first frame {:.1}/{:.1}  total {:.1}/{:.1}",
            j.joined, j.planned, j.failed, j.api_ms.p50, j.api_ms.p99, j.connect_ms.p50, j.connect_ms.p99,
            j.first_frame_ms.p50, j.first_frame_ms.p99, j.total_ms.p50, j.total_ms.p99
        );
        let _ = writeln!(
            s,
            "{:<7} {:>7} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "kind",
            "streams",
            "sent",
            "received",
            "lost",
            "loss%",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "jit ms",
            "Mbit/s"
        );
        // Goodput over the measured window, split by each kind's share of the bytes.
        let all_bytes = self.all().bytes_received.max(1) as f64;
        let mbps = self.server.delivered_mbps;
        for k in &self.kinds {
            if k.streams == 0 && k.frames_sent == 0 {
                continue;
            }
            let _ = writeln!(
                s,
                "{:<7} {:>7} {:>9} {:>9} {:>7} {:>8.3} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.2} {:>9.1}",
                k.kind,
                k.streams,
                k.frames_sent,
                k.frames_received,
                k.frames_lost,
                k.loss_pct,
                k.latency_ms.p50,
                k.latency_ms.p90,
                k.latency_ms.p99,
                k.latency_ms.max,
                k.jitter_ms_mean,
                mbps * k.bytes_received as f64 / all_bytes
            );
        }
        let sv = &self.server;
        let opt = |v: Option<f64>, d: usize| v.map_or("-".to_owned(), |v| format!("{v:.d$}"));
        let _ = writeln!(
            s,
            "server: cpu {} cores · rss max {} MiB · {} µs CPU per delivered frame · {} subscriber streams → {} streams per core · drops {:?}",
            opt(sv.cpu_cores, 2),
            opt(sv.rss_max_mib, 0),
            opt(sv.cpu_us_per_frame, 1),
            sv.subscriber_streams,
            opt(sv.streams_per_core, 0),
            sv.drops
        );
        let _ = writeln!(
            s,
            "tester: cpu {} cores · whole machine busy {} cores · send lag p99 {:.1} ms · chat {} sent / {} delivered (p99 {:.1} ms) · reconnects {} · churn {} · errors {:?}",
            opt(self.tester.cpu_cores, 2),
            opt(self.tester.machine_busy_cores, 2),
            self.tester.sender_lag_ms.p99,
            self.chat.sent,
            self.chat.received,
            self.chat.latency_ms.p99,
            self.reconnects,
            self.churn_rejoins,
            self.errors
        );
        if let Some(lab) = &self.lab {
            lab.table(&mut s);
        }
        if let Some(c) = &self.cluster {
            let _ = writeln!(
                s,
                "cluster: {} nodes (server figures above sum every node and NATS; NATS alone {} cores) · participants per node {:?}",
                c.nodes,
                opt(c.nats_cpu_cores, 2),
                c.participants_per_node.iter().map(|(_, n)| *n).collect::<Vec<_>>()
            );
            let _ = writeln!(
                s,
                "cluster latency: same node p50 {:.1} p99 {:.1} ms ({} frames) · across nodes p50 {:.1} p99 {:.1} ms ({} frames) · NATS hop adds p50 {} p99 {} ms · cross-node frames out {} in {} NATS messages · NATS-hop drops audio {} video {}",
                c.same_node_ms.p50,
                c.same_node_ms.p99,
                c.same_node_ms.count,
                c.cross_node_ms.p50,
                c.cross_node_ms.p99,
                c.cross_node_ms.count,
                c.added_p50_ms.map_or("-".into(), |v| format!("{v:+.1}")),
                c.added_p99_ms.map_or("-".into(), |v| format!("{v:+.1}")),
                opt(c.cross_frames_out, 0),
                opt(c.cross_batches_out, 0),
                opt(c.cross_audio_dropped, 0),
                opt(c.cross_video_dropped, 0)
            );
        }
        if self.tester.bottleneck.is_empty() {
            let _ = writeln!(
                s,
                "verdict: the tester kept up (no UDP drops, no late reads, CPU to spare)"
            );
        } else {
            let _ = writeln!(
                s,
                "verdict: the load tester was itself a bottleneck, so these figures include its own delays: {}",
                self.tester.bottleneck.join("; ")
            );
        }
        for c in &self.checks {
            let _ = writeln!(
                s,
                "check {:<24} limit {:>9.3} measured {:>9.3}  {}",
                c.name,
                c.limit,
                c.value,
                if c.ok { "ok" } else { "BROKEN" }
            );
        }
        if let Some(cap) = &self.capacity {
            let _ = writeln!(s, "capacity ({}):", cap.dimension);
            for st in &cap.steps {
                let _ = writeln!(
                    s,
                    "  {:>4} → {:>4} participants  p99 {:>8.1} ms  loss {:>7.3}%  server {} cores ({} µs/frame)  tester {} cores  server drops {} (QUIC {})  UDP drops {}  tester QUIC drops in/out {}/{}{}  {}",
                    st.value,
                    st.participants,
                    st.p99_ms,
                    st.loss_pct,
                    opt(st.server_cpu_cores, 2),
                    opt(st.cpu_us_per_frame, 2),
                    opt(st.tester_cpu_cores, 2),
                    st.server_drops,
                    st.server_quic_dropped,
                    st.udp_rcvbuf_errors.map_or("-".to_owned(), |v| v.to_string()),
                    st.tester_quic_dropped_in,
                    st.tester_quic_dropped_out,
                    if st.joins_failed > 0 {
                        format!("  joins failed {}", st.joins_failed)
                    } else {
                        String::new()
                    },
                    if st.passed { "held" } else { "broke" }
                );
            }
            let _ = writeln!(
                s,
                "  largest {} that held: {}",
                cap.dimension,
                cap.largest_passing
                    .map_or("none".to_owned(), |v| v.to_string())
            );
        }
        let _ = writeln!(s, "result: {}", if self.passed { "PASS" } else { "FAIL" });
        s
    }

    /// Self-contained HTML page.
    pub fn html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>QuicMeet load test {}</title>\
             <style>body{{font:14px system-ui,sans-serif;margin:24px;color:#202124}}\
             h1{{font-size:20px}}h2{{font-size:16px;margin-top:28px}}\
             table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;padding:3px 8px;text-align:right}}\
             th{{background:#f1f3f4}}td:first-child,th:first-child{{text-align:left}}\
             .pass{{color:#188038;font-weight:bold}}.fail{{color:#d93025;font-weight:bold}}\
             .charts{{display:flex;flex-wrap:wrap;gap:16px}}pre{{background:#f8f9fa;padding:8px;overflow:auto}}</style>\
             </head><body>",
            esc(&self.started_at)
        );
        let _ = write!(
            h,
            "<h1>QuicMeet load test — <span class=\"{}\">{}</span></h1><p>Target {} · started {} · tool {}</p>",
            if self.passed { "pass" } else { "fail" },
            if self.passed { "PASS" } else { "FAIL" },
            esc(&self.target),
            esc(&self.started_at),
            esc(&self.version)
        );
        let _ = write!(h, "<h2>Summary</h2><pre>{}</pre>", esc(&self.table()));
        h.push_str("<h2>Per kind</h2><table><tr><th>kind</th><th>streams</th><th>sent</th><th>received</th><th>cached</th><th>lost</th><th>loss %</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th><th>jitter ms</th></tr>");
        for k in &self.kinds {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.2}</td></tr>",
                k.kind, k.streams, k.frames_sent, k.frames_received, k.frames_cached, k.frames_lost,
                k.loss_pct, k.latency_ms.p50, k.latency_ms.p90, k.latency_ms.p99, k.latency_ms.max, k.jitter_ms_mean
            );
        }
        h.push_str("</table><h2>Charts</h2><div class=\"charts\">");
        let tl = &self.timeline;
        let xs: Vec<f64> = tl.iter().map(|p| p.t).collect();
        h.push_str(&line_chart(
            "Latency over time (ms)",
            "s",
            &xs,
            &[
                ("p50", "#1a73e8", tl.iter().map(|p| p.p50_ms).collect()),
                ("p90", "#f9ab00", tl.iter().map(|p| p.p90_ms).collect()),
                ("p99", "#d93025", tl.iter().map(|p| p.p99_ms).collect()),
            ],
        ));
        let (cx, cy): (Vec<f64>, Vec<f64>) = self.cdf.iter().cloned().unzip();
        h.push_str(&line_chart(
            "Latency CDF (fraction ≤ ms)",
            "ms",
            &cx,
            &[("all media", "#1a73e8", cy)],
        ));
        h.push_str(&line_chart(
            "Throughput",
            "s",
            &xs,
            &[
                (
                    "received frames/s",
                    "#188038",
                    tl.iter().map(|p| p.rx_fps).collect(),
                ),
                (
                    "sent frames/s",
                    "#9334e6",
                    tl.iter().map(|p| p.tx_fps).collect(),
                ),
                (
                    "received Mbit/s ×10",
                    "#f9ab00",
                    tl.iter().map(|p| p.rx_mbps * 10.0).collect(),
                ),
            ],
        ));
        h.push_str(&line_chart(
            "CPU (% of one core)",
            "s",
            &xs,
            &[
                (
                    "server",
                    "#d93025",
                    tl.iter().map(|p| p.server_cpu_pct.unwrap_or(0.0)).collect(),
                ),
                (
                    "load tester",
                    "#5f6368",
                    tl.iter().map(|p| p.tester_cpu_pct.unwrap_or(0.0)).collect(),
                ),
            ],
        ));
        h.push_str(&line_chart(
            "Participants connected",
            "s",
            &xs,
            &[(
                "connected",
                "#1a73e8",
                tl.iter().map(|p| p.connected as f64).collect(),
            )],
        ));
        if let Some(cap) = &self.capacity {
            let mut steps: Vec<&CapacityStep> = cap.steps.iter().collect();
            steps.sort_by_key(|s| s.value);
            let x: Vec<f64> = steps.iter().map(|s| s.value as f64).collect();
            h.push_str(&line_chart(
                &format!("Capacity: p99 ms by {}", cap.dimension),
                &cap.dimension,
                &x,
                &[("p99", "#d93025", steps.iter().map(|s| s.p99_ms).collect())],
            ));
        }
        h.push_str("</div><h2>Worst streams (by p99)</h2><table><tr><th>room</th><th>receiver</th><th>track</th><th>layer</th><th>kind</th><th>received</th><th>lost</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th><th>jitter ms</th><th>kbit/s</th><th>first frame ms</th></tr>");
        for s in self.worst_streams.iter().take(50) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.2}</td><td>{:.0}</td><td>{}</td></tr>",
                s.room, s.receiver, s.track, s.layer, s.kind, s.received, s.lost, s.latency_ms.p50,
                s.latency_ms.p99, s.latency_ms.max, s.jitter_ms, s.kbps,
                s.first_frame_ms.map_or("-".into(), |v| format!("{v:.1}"))
            );
        }
        let _ = write!(
            h,
            "</table><h2>Options</h2><pre>{}</pre></body></html>",
            esc(&serde_json::to_string_pretty(&self.args).unwrap_or_default())
        );
        h
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An inline SVG line chart with axes, ticks and a legend.
pub fn line_chart(
    title: &str,
    xlabel: &str,
    xs: &[f64],
    series: &[(&str, &str, Vec<f64>)],
) -> String {
    let (w, h, l, r, t, b) = (520.0, 260.0, 56.0, 12.0, 28.0, 40.0);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><title>{}</title>\
         <rect width=\"{w}\" height=\"{h}\" fill=\"#fff\" stroke=\"#ddd\"/>\
         <text x=\"{}\" y=\"18\" font-size=\"13\" text-anchor=\"middle\">{}</text>",
        esc(title),
        w / 2.0,
        esc(title)
    );
    let finite = |v: &f64| v.is_finite();
    let xmin = xs
        .iter()
        .cloned()
        .filter(finite)
        .fold(f64::INFINITY, f64::min);
    let xmax = xs
        .iter()
        .cloned()
        .filter(finite)
        .fold(f64::NEG_INFINITY, f64::max);
    let ymax = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().cloned())
        .filter(finite)
        .fold(0.0, f64::max);
    if xs.is_empty() || !xmin.is_finite() {
        s.push_str("<text x=\"40\" y=\"130\" font-size=\"12\">no data</text></svg>");
        return s;
    }
    let xspan = (xmax - xmin).max(1e-9);
    let ymax = nice(ymax.max(1e-9));
    let px = |x: f64| l + (x - xmin) / xspan * (w - l - r);
    let py = |y: f64| h - b - y / ymax * (h - t - b);
    for i in 0..=4 {
        let y = ymax * f64::from(i) / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{l}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            w - r,
            py(y),
            py(y),
            l - 4.0,
            py(y) + 3.0,
            fmt_tick(y)
        );
        let x = xmin + xspan * f64::from(i) / 4.0;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            px(x),
            h - b + 14.0,
            fmt_tick(x)
        );
    }
    let _ = write!(
        s,
        "<line x1=\"{l}\" x2=\"{l}\" y1=\"{t}\" y2=\"{}\" stroke=\"#999\"/><line x1=\"{l}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#999\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
        h - b,
        w - r,
        h - b,
        h - b,
        (l + w - r) / 2.0,
        h - 6.0,
        esc(xlabel)
    );
    for (i, (name, color, ys)) in series.iter().enumerate() {
        let pts: Vec<String> = xs
            .iter()
            .zip(ys)
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.6\" points=\"{}\"/>",
            pts.join(" ")
        );
        let lx = l + 8.0 + i as f64 * 120.0;
        let _ = write!(
            s,
            "<rect x=\"{lx}\" y=\"{}\" width=\"10\" height=\"3\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\" font-size=\"10\">{}</text>",
            t + 2.0,
            lx + 14.0,
            t + 6.0,
            esc(name)
        );
    }
    s.push_str("</svg>");
    s
}

fn nice(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_is_plain_svg_without_scripts() {
        let svg = line_chart(
            "t <x>",
            "s",
            &[0.0, 1.0, 2.0],
            &[("a", "#000", vec![1.0, 5.0, 3.0])],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("polyline") && svg.contains("t &lt;x&gt;"));
        assert!(!svg.contains("<script"));
        assert!(line_chart("e", "s", &[], &[]).contains("no data"));
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(0.3), 0.5);
    }
}
