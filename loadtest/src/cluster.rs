//! `--nodes N`: the load against a QuicMeet cluster on this machine. The tool starts a
//! private `nats-server -js` on loopback and N `quicmeet` nodes pointing at it, each with
//! `--max-node-participants` set so that one meeting of the run fills the nodes in turn
//! (docs/CLUSTER.md section 8: the node holding a meeting takes its joiners until it is
//! full, then the least-loaded node). Every join goes through node 0's REST API; the
//! placement rule alone decides where each participant's media connection lands.
//!
//! The report then counts the cost of the whole cluster (every node and the NATS server)
//! and splits the latency by whether the publisher and the subscriber sat on the same node
//! or on two nodes: the difference is what forwarding through NATS adds.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::hist::Hist;
use crate::server::{self, Spawned};
use crate::stats::{Shared, StreamStat, SummaryMs};

/// A private nats-server, killed (and its store removed) on drop.
#[derive(Debug)]
pub struct Nats {
    child: Child,
    /// Its pid, for /proc sampling.
    pub pid: u32,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    dir: std::path::PathBuf,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Nats {
    /// Starts Debian's `nats-server` (or `$NATS_SERVER`) with JetStream on a free loopback
    /// port and waits (at most 10 s) until it accepts connections.
    pub fn start() -> Result<Nats> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!(
            "quicmeet-loadtest-nats-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        let bin = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {bin} (scripts/install-deps.sh installs it)"))?;
        let nats = Nats {
            pid: child.id(),
            child,
            url: format!("nats://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("{bin} did not listen on port {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nats)
    }
}

/// The spawned cluster: NATS first, then the nodes (dropped in reverse, nodes first).
#[derive(Debug)]
pub struct Nodes {
    pub nodes: Vec<Spawned>,
    pub nats: Nats,
}

/// Starts NATS and `n` nodes of `bin`. Each node may hold `ceil(participants / n)` media
/// connections before the placement rule looks elsewhere, unless `extra` sets
/// `--max-node-participants` itself.
pub fn spawn(bin: &Path, extra: &[String], n: usize, participants: usize) -> Result<Nodes> {
    let nats = Nats::start()?;
    let per_node = participants.div_ceil(n.max(1)).max(1);
    let mut nodes = vec![];
    for i in 0..n {
        let mut args = vec![
            "--nats-url".to_owned(),
            nats.url.clone(),
            "--node-id".to_owned(),
            format!("node-{i}"),
        ];
        if !extra
            .iter()
            .any(|a| a.starts_with("--max-node-participants"))
        {
            args.push(format!("--max-node-participants={per_node}"));
        }
        args.extend(extra.iter().cloned());
        nodes.push(
            server::spawn_quicmeet(bin, &args, participants + 10)
                .with_context(|| format!("starting node-{i}"))?,
        );
    }
    Ok(Nodes { nodes, nats })
}

/// Waits (at most 20 s) until `base`'s node directory lists `n` live nodes, so the first
/// joins already see every node.
pub async fn wait_directory(http: &reqwest::Client, base: &str, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = match http.get(format!("{base}/healthz")).send().await {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["nodes"].as_u64()),
            Err(_) => None,
        };
        if seen == Some(n as u64) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the cluster's directory shows {seen:?} nodes, not {n}, after 20 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Where one participant's media connection landed.
#[derive(Debug, Clone)]
pub struct Placed {
    pub room: usize,
    pub participant_id: u32,
    /// The node's media address (`host:port` of its WebSocket URL).
    pub node: String,
}

/// The `host:port` naming a node in a join answer.
pub fn node_of(websocket_url: &str) -> String {
    websocket_url
        .split("://")
        .nth(1)
        .unwrap_or(websocket_url)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The cluster's part of the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterReport {
    /// Nodes started.
    pub nodes: usize,
    /// Media connections per node (by its media address), last placement of each participant.
    pub participants_per_node: Vec<(String, u64)>,
    /// Latency of frames whose publisher and subscriber were on the same node (ms).
    pub same_node_ms: SummaryMs,
    /// Latency of frames that crossed nodes through NATS (ms).
    pub cross_node_ms: SummaryMs,
    /// `cross_node − same_node` at p50 and p99 (ms): what the NATS hop adds (when both kinds
    /// of frames were received).
    pub added_p50_ms: Option<f64>,
    pub added_p99_ms: Option<f64>,
    /// Cross-node frames and drops from the nodes' `/metrics` (sums over nodes, whole run).
    /// A frame counts once per node it was sent to.
    pub cross_frames_out: Option<f64>,
    /// The NATS messages (media batches) that carried them.
    pub cross_batches_out: Option<f64>,
    pub cross_audio_dropped: Option<f64>,
    pub cross_video_dropped: Option<f64>,
    /// Share of the server CPU that was the NATS server's (cores).
    pub nats_cpu_cores: Option<f64>,
}

/// Splits the streams' latency into same-node and cross-node.
pub fn report(
    nodes: usize,
    sh: &Shared,
    streams: &[StreamStat],
    metrics: Option<&std::collections::BTreeMap<String, f64>>,
    nats_cpu_cores: Option<f64>,
) -> ClusterReport {
    let placed = sh.placed.lock().clone();
    let by_pid: HashMap<(usize, u32), &str> = placed
        .values()
        .map(|p| ((p.room, p.participant_id), p.node.as_str()))
        .collect();
    let (mut same, mut cross) = (Hist::default(), Hist::default());
    for s in streams {
        let (Some(me), Some(publisher)) = (
            placed.get(&s.receiver).map(|p| p.node.as_str()),
            by_pid
                .get(&(s.room, quicmeet_proto::track::participant_of(s.track)))
                .copied(),
        ) else {
            continue;
        };
        if me == publisher {
            same.merge(&s.latency);
        } else {
            cross.merge(&s.latency);
        }
    }
    let mut per: HashMap<String, u64> = HashMap::new();
    for p in placed.values() {
        *per.entry(p.node.clone()).or_default() += 1;
    }
    let mut participants_per_node: Vec<(String, u64)> = per.into_iter().collect();
    participants_per_node.sort();
    let (same_ms, cross_ms): (SummaryMs, SummaryMs) =
        (same.summary().into(), cross.summary().into());
    let m = |name: &str| metrics.and_then(|m| m.get(name).copied());
    let both = same_ms.count > 0 && cross_ms.count > 0;
    ClusterReport {
        nodes,
        participants_per_node,
        added_p50_ms: both.then_some(cross_ms.p50 - same_ms.p50),
        added_p99_ms: both.then_some(cross_ms.p99 - same_ms.p99),
        same_node_ms: same_ms,
        cross_node_ms: cross_ms,
        cross_frames_out: m("quicmeet_cluster_frames_out_total"),
        cross_batches_out: m("quicmeet_cluster_media_messages_out_total"),
        cross_audio_dropped: m("quicmeet_cluster_audio_dropped_total"),
        cross_video_dropped: m("quicmeet_cluster_video_dropped_total"),
        nats_cpu_cores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_named_by_their_media_address() {
        assert_eq!(node_of("ws://127.0.0.1:8081/ws"), "127.0.0.1:8081");
        assert_eq!(node_of("wss://meet.example/ws"), "meet.example");
    }

    #[test]
    fn latency_is_split_by_whether_the_frame_crossed_nodes() {
        let sh = Shared::default();
        for (i, (pid, node)) in [(1, "a"), (2, "a"), (3, "b")].into_iter().enumerate() {
            sh.placed.lock().insert(
                i,
                Placed {
                    room: 0,
                    participant_id: pid,
                    node: node.into(),
                },
            );
        }
        let stream = |receiver: usize, publisher: u32, ms: u64| {
            let mut s = StreamStat::new(
                0,
                receiver,
                publisher * 16,
                0,
                quicmeet_proto::MediaKind::Audio,
            );
            for _ in 0..100 {
                s.latency.record(ms * 1000);
            }
            s
        };
        // Receiver 0 (on a) hears 2 (a) at 2 ms and 3 (b) at 5 ms; receiver 2 (b) hears 1
        // (a) at 5 ms.
        let streams = [stream(0, 2, 2), stream(0, 3, 5), stream(2, 1, 5)];
        let r = report(2, &sh, &streams, None, None);
        assert_eq!(r.same_node_ms.count, 100);
        assert_eq!(r.cross_node_ms.count, 200);
        assert!((r.added_p50_ms.unwrap() - 3.0).abs() < 0.1, "{r:?}");
        assert_eq!(r.participants_per_node, [("a".into(), 2), ("b".into(), 1)]);
    }
}
