//! Cluster mode (docs/CLUSTER.md): the node's NATS connection, the shared JetStream KV store,
//! and the rate limits that must hold across nodes.
//!
//! Only built when `--nats-url` is given; a node without it never touches this module's
//! network code. Here: shared state (section 3), its health (section 10), the shared
//! login/join counters, where a joiner lands (section 8, [`nodes`]), and the pieces of rooms
//! spanning nodes (sections 4–9): [`net`] (id blocks, heartbeats, cross-node counters),
//! [`link`] (one room's NATS subscriptions and publications), [`batch`] (media batches),
//! [`subjects`], [`wire`]. The room actor's side is `media/cluster_room.rs`.

pub mod batch;
pub mod link;
pub mod media_queue;
pub mod net;
pub mod nodes;
pub mod subjects;
pub mod wire;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use anyhow::Context;
use async_nats::jetstream::kv;
use futures::TryStreamExt;
use quicmeet_store::{RateDecision, Store};
use tokio_util::sync::CancellationToken;

use crate::{error::ApiError, SharedState};
use nodes::NodeRecord;

/// Bucket name prefix of the shared state (`qm_users`, `qm_meetings`, …).
pub const KV_PREFIX: &str = "qm";

/// This node's membership of a cluster.
pub struct Cluster {
    pub node_id: String,
    pub client: async_nats::Client,
    nodes_kv: kv::Store,
    /// Last measured round trip through the NATS server (µs; 0 = not measured yet).
    pub nats_rtt_us: AtomicU64,
    /// Last duration of writing this node's directory record to JetStream KV (µs).
    pub kv_put_us: AtomicU64,
    /// The media plane's side of the cluster (rooms spanning nodes).
    pub net: std::sync::Arc<net::Net>,
}

impl Cluster {
    /// Connects to NATS and opens (creating if needed) the shared buckets.
    pub async fn connect(url: &str, node_id: Option<&str>) -> anyhow::Result<(Self, Store)> {
        let node_id = node_id.map(str::to_owned).unwrap_or_else(random_node_id);
        let client = quicmeet_store::kv::connect(url, &format!("quicmeet-{node_id}"))
            .await
            .with_context(|| format!("connecting to NATS at {url}"))?;
        let store = Store::kv(client.clone(), KV_PREFIX)
            .await
            .context("opening the JetStream KV buckets (is JetStream enabled: nats-server -js?)")?;
        let nodes_kv = quicmeet_store::kv::open_bucket(
            &client,
            &format!("{KV_PREFIX}_nodes"),
            nodes::RECORD_MAX_AGE,
        )
        .await
        .context("opening the node directory bucket")?;
        let net = net::Net::open(node_id.clone(), client.clone())
            .await
            .context("opening the participant-id bucket")?;
        tracing::info!(node = %node_id, nats = %url, "cluster mode: state in JetStream KV");
        Ok((
            Self {
                net,
                node_id,
                client,
                nodes_kv,
                nats_rtt_us: AtomicU64::new(0),
                kv_put_us: AtomicU64::new(0),
            },
            store,
        ))
    }

    /// Whether the NATS connection is up now.
    pub fn nats_up(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// This node's record as it is now.
fn own_record(state: &SharedState, id: &str) -> NodeRecord {
    let now = chrono::Utc::now().timestamp_millis();
    NodeRecord {
        id: id.to_owned(),
        wt_url: state.wt_url.clone(),
        ws_url: state.ws_url.clone(),
        cert_sha256_hex: state.cert.read().dev_hash_hex.clone(),
        participants: state.media.connection_count() as u64,
        capacity: state.config.max_node_participants,
        meetings: state.media.room_codes(),
        at_ms: now,
        joined: state
            .cluster
            .as_ref()
            .map(|c| c.net.directory.recently_joined(now))
            .unwrap_or_default(),
    }
}

/// Writes this node's record and rereads the directory every [`nodes::ADVERTISE_EVERY`],
/// until `cancel`. A failed round (NATS down) keeps the last view; stale records age out of
/// the placement rule by themselves.
pub fn spawn_advertiser(state: SharedState, cancel: CancellationToken) {
    tokio::spawn(async move {
        let Some(c) = &state.cluster else { return };
        let mut tick = tokio::time::interval(nodes::ADVERTISE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Our own inbox: a message published there comes back through the NATS server, which
        // is the round trip the metrics report.
        let echo_subject = c.client.new_inbox();
        let mut echo = c.client.subscribe(echo_subject.clone()).await.ok();
        let stats = c.client.statistics();
        let mut connects = stats.connects.load(Relaxed);
        let mut recheck = false;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            // Reconnected: an `end` may have been missed while cut off (section 5's
            // backstop). Retried every round until the shared state could be read (JetStream
            // may need a moment after a server restart).
            let now_connects = stats.connects.load(Relaxed);
            if now_connects != connects {
                connects = now_connects;
                recheck = true;
            }
            if recheck && c.nats_up() {
                match state.media.end_rooms_of_ended_meetings().await {
                    Ok(n) => {
                        recheck = false;
                        tracing::info!(
                            ended = n,
                            "reconnected to NATS: rooms checked against the meetings"
                        );
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "rereading meetings after a reconnect failed")
                    }
                }
            }
            if let Some(sub) = echo.as_mut() {
                if let Some(rtt) = nats_round_trip(&c.client, &echo_subject, sub).await {
                    c.nats_rtt_us.store(rtt.as_micros() as u64, Relaxed);
                }
            }
            if let Err(e) = advertise_round(&state, c).await {
                tracing::debug!(error = %e, "node directory round failed");
            }
        }
        // Leave the directory at once on a clean shutdown.
        if let Some(c) = &state.cluster {
            let _ = c.nodes_kv.delete(&c.node_id).await;
        }
    });
}

/// Publishes to our own inbox and waits (at most 1 s) for the message to come back.
async fn nats_round_trip(
    client: &async_nats::Client,
    subject: &str,
    sub: &mut async_nats::Subscriber,
) -> Option<std::time::Duration> {
    use futures::StreamExt;
    // Drop echoes of earlier rounds that came back after their timeout.
    while let Ok(Some(_)) = tokio::time::timeout(std::time::Duration::ZERO, sub.next()).await {}
    let t = std::time::Instant::now();
    client.publish(subject.to_owned(), "".into()).await.ok()?;
    match tokio::time::timeout(std::time::Duration::from_secs(1), sub.next()).await {
        Ok(Some(_)) => Some(t.elapsed()),
        _ => None,
    }
}

async fn advertise_round(state: &SharedState, c: &Cluster) -> anyhow::Result<()> {
    let own = own_record(state, &c.node_id);
    let t = std::time::Instant::now();
    c.nodes_kv
        .put(&c.node_id, serde_json::to_vec(&own)?.into())
        .await?;
    c.kv_put_us.store(t.elapsed().as_micros() as u64, Relaxed);
    let keys: Vec<String> = c.nodes_kv.keys().await?.try_collect().await?;
    let mut all = Vec::with_capacity(keys.len());
    for k in keys {
        if k == c.node_id {
            continue;
        }
        if let Some(v) = c.nodes_kv.get(&k).await? {
            match serde_json::from_slice::<NodeRecord>(&v) {
                Ok(r) => all.push(r),
                Err(e) => tracing::warn!(node = %k, error = %e, "unreadable node record"),
            }
        }
    }
    let now = own.at_ms;
    all.push(own);
    c.net.directory.replace(all, now);
    Ok(())
}

/// The media endpoints a joiner of `code` with join token `token` gets: the chosen node's
/// WebTransport URL and certificate hash and its WebSocket URL. On a single node, or with an
/// empty directory, this node's own.
pub fn media_node(state: &SharedState, code: &str, token: &str) -> NodeRecord {
    let now = chrono::Utc::now().timestamp_millis();
    let chosen = state
        .cluster
        .as_ref()
        .and_then(|c| c.net.directory.choose(code, nodes::joiner_id(token), now));
    chosen.unwrap_or_else(|| {
        own_record(
            state,
            state
                .cluster
                .as_ref()
                .map_or("local", |c| c.node_id.as_str()),
        )
    })
}

/// The cluster's gauges for `/metrics`.
#[derive(Debug)]
pub struct ClusterGauges {
    pub nats_up: bool,
    pub nodes: u64,
    pub nats_rtt_us: u64,
    pub kv_put_us: u64,
    pub cross: [u64; 11],
}

impl ClusterGauges {
    pub fn of(c: &Cluster) -> Self {
        Self {
            nats_up: c.nats_up(),
            nodes: c
                .net
                .directory
                .live_count(chrono::Utc::now().timestamp_millis()) as u64,
            nats_rtt_us: c.nats_rtt_us.load(Relaxed),
            kv_put_us: c.kv_put_us.load(Relaxed),
            cross: {
                let s = &c.net.stats;
                [
                    s.frames_out.load(Relaxed),
                    s.bytes_out.load(Relaxed),
                    s.frames_in.load(Relaxed),
                    s.bytes_in.load(Relaxed),
                    s.dropped.load(Relaxed),
                    s.events_out.load(Relaxed),
                    s.events_in.load(Relaxed),
                    s.audio_dropped.load(Relaxed),
                    s.video_dropped.load(Relaxed),
                    s.media_msgs_out.load(Relaxed),
                    s.media_msgs_in.load(Relaxed),
                ]
            },
        }
    }
}

impl prometheus_client::collector::Collector for ClusterGauges {
    fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use crate::metrics::gauge;
        gauge(
            &mut enc,
            "quicmeet_nats_up",
            "1 while this node is connected to NATS.",
            u64::from(self.nats_up),
        )?;
        gauge(
            &mut enc,
            "quicmeet_cluster_nodes",
            "Live nodes in this node's directory, itself included.",
            self.nodes,
        )?;
        gauge(
            &mut enc,
            "quicmeet_nats_rtt_seconds",
            "Last round trip of a message through the NATS server (every 2 s).",
            self.nats_rtt_us as f64 / 1e6,
        )?;
        gauge(
            &mut enc,
            "quicmeet_kv_put_seconds",
            "Last JetStream KV write of this node's directory record (every 2 s).",
            self.kv_put_us as f64 / 1e6,
        )?;
        const CROSS: [(&str, &str); 11] = [
            (
                "quicmeet_cluster_frames_out_total",
                "Media frames this node published to other nodes.",
            ),
            (
                "quicmeet_cluster_bytes_out_total",
                "Bytes of media this node published to other nodes.",
            ),
            (
                "quicmeet_cluster_frames_in_total",
                "Media frames this node received from other nodes.",
            ),
            (
                "quicmeet_cluster_bytes_in_total",
                "Bytes of media this node received from other nodes.",
            ),
            (
                "quicmeet_cluster_dropped_total",
                "Cross-node media frames and batches dropped (full queues, unwanted or malformed).",
            ),
            (
                "quicmeet_cluster_events_out_total",
                "Room events, commands and requests this node published.",
            ),
            (
                "quicmeet_cluster_events_in_total",
                "Room events, commands and requests this node received.",
            ),
            (
                "quicmeet_cluster_audio_dropped_total",
                "Audio frames dropped on the NATS hop (aged past 150 ms or overflowing, \
                 either way; also counted in quicmeet_cluster_dropped_total).",
            ),
            (
                "quicmeet_cluster_video_dropped_total",
                "Video and screen frames dropped on the NATS hop (full queue, either way; \
                 also counted in quicmeet_cluster_dropped_total).",
            ),
            (
                "quicmeet_cluster_media_messages_out_total",
                "NATS messages (media batches) that carried this node's frames to other nodes.",
            ),
            (
                "quicmeet_cluster_media_messages_in_total",
                "NATS messages (media batches) this node received from other nodes.",
            ),
        ];
        for ((name, help), v) in CROSS.iter().zip(self.cross) {
            crate::metrics::counter(&mut enc, name, help, v)?;
        }
        Ok(())
    }
}

fn random_node_id() -> String {
    let t = quicmeet_store::new_token();
    let mut id: String = t
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(|b| b.to_ascii_lowercase() as char)
        .take(8)
        .collect();
    id.insert_str(0, "node-");
    id
}

/// The cluster-wide half of a security rate limit: counts the attempt in JetStream KV so the
/// limit holds whichever node a request reaches. A no-op on a node without a cluster (its
/// local limiter already decided). `which` is the metrics label, `scope` the counter's name.
pub async fn shared_limit(
    state: &SharedState,
    which: &'static str,
    scope: &str,
    key: &str,
    per_minute: u32,
) -> Result<(), ApiError> {
    if state.cluster.is_none() {
        return Ok(());
    }
    match state
        .store
        .rate_check(scope, key, chrono::Utc::now(), per_minute)
        .await?
    {
        RateDecision::Allowed => Ok(()),
        RateDecision::Limited { retry_after_secs } => {
            state.metrics.rate_limited.inc(which);
            Err(ApiError::rate_limited(retry_after_secs))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_node_ids_are_valid_subject_tokens() {
        for _ in 0..100 {
            let id = super::random_node_id();
            assert_eq!(id.len(), 13, "{id}");
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        }
    }
}
