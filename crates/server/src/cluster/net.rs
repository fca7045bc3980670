//! The node's part in rooms that span nodes: its NATS connection as the media plane sees it,
//! the cross-node traffic counters, participant-id blocks, and node liveness (docs/CLUSTER.md
//! sections 4 and 9).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

use async_nats::jetstream::kv;
use futures::StreamExt;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::subjects;

/// How often a node says it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// A node silent this long is dead: its participants leave every other node's rooms.
pub const DEAD_AFTER: Duration = Duration::from_secs(3);
/// Participant ids per block; a room takes one block when it starts.
pub const ID_BLOCK: u32 = 1024;
/// Chat ids of a room are `block % CHAT_LANES` modulo `CHAT_LANES`.
pub const CHAT_LANES: u64 = 1024;

/// Media and event traffic that crossed nodes, for /metrics.
#[derive(Debug, Default)]
pub struct CrossStats {
    pub frames_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub frames_in: AtomicU64,
    pub bytes_in: AtomicU64,
    /// Frames not published because the node's outgoing queue was full, or received frames
    /// refused (full room queue, header disagreeing with its subject).
    pub dropped: AtomicU64,
    pub events_out: AtomicU64,
    pub events_in: AtomicU64,
    /// The media part of `dropped`, by kind (screen counts as video).
    pub audio_dropped: AtomicU64,
    pub video_dropped: AtomicU64,
    /// NATS messages that carried the media frames (batches), each way.
    pub media_msgs_out: AtomicU64,
    pub media_msgs_in: AtomicU64,
}

impl CrossStats {
    /// A media batch of `frames` frames and `bytes` bytes published.
    pub fn count_out(&self, frames: usize, bytes: usize) {
        self.media_msgs_out.fetch_add(1, Relaxed);
        self.frames_out.fetch_add(frames as u64, Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Relaxed);
    }

    /// A received media batch refused whole (malformed, or on a subject not meant for us).
    pub fn count_refused_batch(&self) {
        self.media_msgs_in.fetch_add(1, Relaxed);
        self.dropped.fetch_add(1, Relaxed);
    }

    /// Media frames dropped on the way to or from NATS.
    pub fn count_dropped(&self, d: super::media_queue::Dropped) {
        if d.audio + d.video == 0 {
            return;
        }
        self.dropped.fetch_add(d.audio + d.video, Relaxed);
        self.audio_dropped.fetch_add(d.audio, Relaxed);
        self.video_dropped.fetch_add(d.video, Relaxed);
    }

    /// A media batch of `frames` frames and `bytes` bytes received.
    pub fn count_in(&self, frames: usize, bytes: usize) {
        self.media_msgs_in.fetch_add(1, Relaxed);
        self.frames_in.fetch_add(frames as u64, Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Relaxed);
    }
}

/// A room's share of the id space: participant ids and its chat id lane.
#[derive(Debug, Clone)]
pub struct IdBlock {
    pub participants: std::ops::Range<u32>,
    pub chat_offset: u64,
}

/// What a node change means for the rooms.
#[derive(Debug, Clone)]
pub enum NodeChange {
    /// No heartbeat for [`DEAD_AFTER`].
    Down(String),
    /// Heard again after it was down.
    Up(String),
}

pub struct Net {
    pub node_id: String,
    /// Every node's record (section 8), this node's included, and the joiners this node
    /// placed since.
    pub directory: super::nodes::Directory,
    pub client: async_nats::Client,
    pub stats: Arc<CrossStats>,
    ids: kv::Store,
    /// This node's turns on the shared counters of `ids`.
    id_turns: quicmeet_store::kv::Turns,
    /// Last heartbeat per node, and whether it counts as alive.
    heard: Mutex<HashMap<String, (Instant, bool)>>,
}

impl Net {
    pub async fn open(node_id: String, client: async_nats::Client) -> anyhow::Result<Arc<Self>> {
        let ids = quicmeet_store::kv::open_bucket(
            &client,
            &format!("{}_ids", super::KV_PREFIX),
            Duration::from_secs(7 * 24 * 3600),
        )
        .await?;
        Ok(Arc::new(Self {
            directory: super::nodes::Directory::default(),
            node_id,
            client,
            stats: Arc::new(CrossStats::default()),
            ids,
            id_turns: Default::default(),
            heard: Mutex::new(HashMap::new()),
        }))
    }

    /// Takes the next block of participant ids of meeting `code` from the shared counter
    /// (compare-and-set: two nodes never get the same block).
    pub async fn reserve_ids(&self, code: &str) -> anyhow::Result<IdBlock> {
        let n = quicmeet_store::kv::increment(&self.id_turns, &self.ids, code).await?;
        let max_blocks = (u32::MAX / 16 - 1) / ID_BLOCK;
        let k = u32::try_from(n - 1)
            .ok()
            .filter(|k| *k < max_blocks)
            .ok_or_else(|| anyhow::anyhow!("meeting {code} used up its participant ids"))?;
        let start = 1 + k * ID_BLOCK;
        Ok(IdBlock {
            participants: start..start + ID_BLOCK,
            chat_offset: u64::from(k) % CHAT_LANES,
        })
    }

    /// Whether a node is alive as far as heartbeats tell (unknown nodes count as alive:
    /// their events are the first sign of them).
    pub fn alive(&self, node: &str) -> bool {
        self.heard.lock().get(node).is_none_or(|(_, a)| *a)
    }
}

/// Publishes this node's heartbeat every [`HEARTBEAT_EVERY`], listens to the others', and
/// calls `notify` when one goes silent for [`DEAD_AFTER`] or comes back.
pub fn spawn_liveness(
    net: Arc<Net>,
    notify: impl Fn(NodeChange) + Send + 'static,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let Some(own) = subjects::heartbeat(&net.node_id) else {
            return;
        };
        let mut beats = loop {
            match net.client.subscribe(subjects::HEARTBEATS).await {
                Ok(s) => break s,
                Err(e) => {
                    tracing::warn!(error = %e, "subscribing to heartbeats failed; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(HEARTBEAT_EVERY) => {}
                    }
                }
            }
        };
        let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
        let mut check = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = beat.tick() => {
                    let _ = net.client.publish(own.clone(), net.node_id.clone().into()).await;
                }
                Some(m) = beats.next() => {
                    let Ok(node) = std::str::from_utf8(&m.payload) else { continue };
                    if node == net.node_id || !subjects::valid_node_id(node)
                        || m.subject.as_str() != format!("qm.hb.{node}") {
                        continue;
                    }
                    let back = {
                        let mut heard = net.heard.lock();
                        let prev = heard.insert(node.to_owned(), (Instant::now(), true));
                        prev.is_some_and(|(_, alive)| !alive)
                    };
                    if back {
                        tracing::info!(node, "node is back");
                        notify(NodeChange::Up(node.to_owned()));
                    }
                }
                _ = check.tick() => {
                    let now = Instant::now();
                    let dead: Vec<String> = {
                        let mut heard = net.heard.lock();
                        heard
                            .iter_mut()
                            .filter(|(_, (t, alive))| *alive && now.duration_since(*t) >= DEAD_AFTER)
                            .map(|(n, (_, alive))| {
                                *alive = false;
                                n.clone()
                            })
                            .collect()
                    };
                    for node in dead {
                        tracing::warn!(node = %node, "no heartbeat: dropping the node's participants");
                        notify(NodeChange::Down(node));
                    }
                }
            }
        }
    });
}
