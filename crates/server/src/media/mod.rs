//! The media plane: authenticated connections over WebTransport or WebSocket, one actor task
//! per meeting room driving `quicmeet_sfu::Room`, and per-connection writers draining each
//! subscriber's bounded queue. Fresh audio for a WebTransport subscriber with no audio waiting
//! skips the queue and goes from the room's fan-out straight into QUIC datagrams
//! (`conn`, `fanout`).
//!
//! Nothing above [`conn`] knows which transport a participant uses: both transports turn bytes
//! into `ClientMessage`s and `EncodedFrame`s for the room, and drain a [`conn::ConnOut`].

pub mod conn;
mod fanout;
mod metrics;
mod room;
mod tcp_info;
mod uplink;
pub mod ws;
pub mod wt;
pub mod xcode;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, OnceLock,
    },
};

use chrono::Utc;
use parking_lot::Mutex;
use quicmeet_proto::{MeetingInfo, Role};
use quicmeet_sfu::{ConnId, Join, RoomConfig};
use quicmeet_store::{JoinGrant, JoinRole, Store, StoreError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use conn::{ConnOut, Transport};
pub use metrics::{MediaMetrics, MediaMetricsView};

#[cfg(feature = "fault-injection")]
pub use room::FAULT_PANIC_CHAT;
use room::{ClusterRoom, RoomCmd, ROOM_QUEUE};
pub use tcp_info::TcpSocket;

use crate::cluster::{
    link::{Inbound, Link},
    net::{IdBlock, Net, NodeChange, CHAT_LANES},
    subjects::Subjects,
};

/// Why a connection was refused before it joined a room.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

struct RoomEntry {
    tx: mpsc::Sender<RoomCmd>,
    generation: u64,
    /// When this room started: an `ended_at` before it belongs to an earlier session of
    /// the meeting.
    started: chrono::DateTime<Utc>,
}

/// Settings of the media plane taken from the server configuration.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub max_participants: usize,
    /// Worker threads making lower video layers; 0 turns server-side layers off.
    pub transcode_workers: usize,
    /// Nice value of the transcoder's threads (forwarding comes first).
    pub transcode_nice: i32,
    /// Which frames of a two-temporal-layer publisher the transcoder decodes.
    pub transcode_temporal: quicmeet_transcode::pool::TemporalPolicy,
    /// More lower layers than this at once count as a saturated transcoder pool.
    pub transcode_saturation_layers: Option<u32>,
}

/// All rooms and connections of this server.
pub struct MediaHub {
    store: Store,
    config: MediaConfig,
    rooms: Mutex<HashMap<String, RoomEntry>>,
    conns: Mutex<HashMap<ConnId, Arc<ConnOut>>>,
    next_conn: AtomicU64,
    next_generation: AtomicU64,
    pub metrics: Arc<MediaMetrics>,
    pub cancel: CancellationToken,
    pub transcoders: Option<Arc<xcode::Transcoders>>,
    /// Cluster mode: rooms span nodes through this node's NATS connection.
    cluster: OnceLock<Arc<Net>>,
}

/// A connection that joined a room: where to send its input.
pub struct Attached {
    pub out: Arc<ConnOut>,
    room: mpsc::Sender<RoomCmd>,
    hub: Arc<MediaHub>,
    /// Set when the client asked for `uplink_report` in `hello`.
    uplink: Option<uplink::UplinkMeter>,
}

impl MediaHub {
    pub fn new(store: Store, config: MediaConfig, cancel: CancellationToken) -> Arc<Self> {
        let transcoders = if config.transcode_workers > 0 {
            match xcode::Transcoders::new(
                config.transcode_workers,
                config.transcode_nice,
                config.transcode_temporal,
            ) {
                Ok(t) => Some(Arc::new(t)),
                Err(e) => {
                    tracing::error!(error = %e, "server-side layers are off");
                    None
                }
            }
        } else {
            None
        };
        Arc::new(Self {
            transcoders,
            store,
            config,
            rooms: Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            next_generation: AtomicU64::new(1),
            metrics: Arc::new(MediaMetrics::default()),
            cancel,
            cluster: OnceLock::new(),
        })
    }

    /// Puts the media plane in cluster mode (once, at start): rooms then span nodes.
    pub fn set_cluster(&self, net: Arc<Net>) {
        let _ = self.cluster.set(net);
    }

    pub fn cluster(&self) -> Option<&Arc<Net>> {
        self.cluster.get()
    }

    /// A fresh connection handle (also used for mirrors of other nodes' participants).
    pub(crate) fn new_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Tells every room a node died or came back.
    pub fn node_change(&self, change: NodeChange) {
        for e in self.rooms.lock().values() {
            if e.tx.try_send(RoomCmd::NodeChange(change.clone())).is_err() {
                tracing::warn!(?change, "a busy room missed a node change");
            }
        }
    }

    /// Checks a join token (single use: it is consumed here) and the meeting behind it.
    pub async fn authenticate(&self, token: &str) -> Result<JoinGrant, Refusal> {
        if token.is_empty() || token.len() > 200 {
            return Err(Refusal::new(
                "token_invalid",
                "The join token is missing or malformed.",
            ));
        }
        let grant = self
            .store
            .take_join_grant(token, Utc::now())
            .await
            .map_err(|e| match e {
                StoreError::TokenExpired => Refusal::new(
                    "token_expired",
                    "The join token has expired. Ask to join again.",
                ),
                StoreError::TokenInvalid => Refusal::new(
                    "token_invalid",
                    "The join token is not valid or was already used. Ask to join again.",
                ),
                StoreError::Unavailable(_) | StoreError::Contended(_) => {
                    tracing::warn!(error = %e, "checking a join token: cluster state unavailable");
                    Refusal::new(
                        "cluster_unavailable",
                        "The meeting service cannot reach its cluster right now. Try again shortly.",
                    )
                }
                other => {
                    tracing::error!(error = %other, "reading a join grant failed");
                    Refusal::new("internal", "The server could not check the join token.")
                }
            })?;
        match self.store.meeting(&grant.meeting_code).await {
            Ok(Some(m)) if m.ended_at.is_some() && grant.role != JoinRole::Host => Err(
                Refusal::new("meeting_ended", "The host ended this meeting."),
            ),
            Ok(Some(m)) if !m.cancelled => {
                // The directory's next record of this node names the joiner, so the node that
                // placed them here stops counting them separately (docs/CLUSTER.md §8).
                if let Some(net) = self.cluster() {
                    net.directory.note_joined(
                        crate::cluster::nodes::joiner_id(token),
                        Utc::now().timestamp_millis(),
                    );
                }
                Ok(grant)
            }
            Ok(Some(_)) => Err(Refusal::new(
                "meeting_cancelled",
                "This meeting was cancelled.",
            )),
            Ok(None) => Err(Refusal::new(
                "meeting_not_found",
                "This meeting no longer exists.",
            )),
            Err(e) => {
                tracing::error!(error = %e, "reading a meeting failed");
                Err(Refusal::new(
                    "internal",
                    "The server could not read the meeting.",
                ))
            }
        }
    }

    /// Puts an authenticated connection into its meeting's room (creating the room).
    pub async fn attach(
        self: &Arc<Self>,
        grant: &JoinGrant,
        transport: Transport,
    ) -> Result<Attached, Refusal> {
        let id = self.new_conn_id();
        let out = Arc::new(ConnOut::new(id, transport));
        let join = Join {
            conn: id,
            name: grant.name.clone(),
            email: grant.email.clone(),
            role: match grant.role {
                JoinRole::Host => Role::Host,
                JoinRole::Member => Role::Member,
                JoinRole::Guest => Role::Guest,
            },
            lobby: grant.lobby,
            transport: transport.label().to_owned(),
        };
        let code = &grant.meeting_code;
        let cmd = RoomCmd::Join(join, out.clone());
        let cmd = match self.join_running(code, cmd, &out)? {
            Ok(attached) => return Ok(attached),
            Err(cmd) => cmd,
        };
        // No running room: read what a new one needs without holding the lock (the store may
        // be across the network), then check again, since another join may have made it.
        let meeting = self
            .store
            .meeting(code)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| Refusal::new("meeting_not_found", "This meeting no longer exists."))?;
        let history = self
            .store
            .chat_history(&meeting.code, quicmeet_store::CHAT_KEEP)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|c| quicmeet_proto::ChatMessage {
                id: c.id,
                participant_id: c.participant_id,
                name: c.name,
                text: c.text,
                ts_ms: c.ts_ms.max(0) as u64,
            })
            .collect();
        // In a cluster the room takes its own block of participant ids and chat-id lane, so
        // its ids never clash with the meeting's rooms on other nodes.
        let ids = match self.cluster() {
            Some(net) => Some(net.reserve_ids(code).await.map_err(|e| {
                tracing::warn!(error = %e, "reserving participant ids failed");
                Refusal::new(
                    "cluster_unavailable",
                    "The meeting service cannot reach its cluster right now. Try again shortly.",
                )
            })?),
            None => None,
        };
        let cmd = match self.join_running(code, cmd, &out)? {
            Ok(attached) => return Ok(attached),
            Err(cmd) => cmd,
        };
        let mut config = RoomConfig {
            meeting: MeetingInfo {
                code: meeting.code.clone(),
                title: meeting.title.clone(),
                host_name: Some(meeting.host_name.clone()),
            },
            max_participants: self.config.max_participants,
            // Joining a full meeting subscribes to two tracks of everybody at once.
            control_burst: RoomConfig::default()
                .control_burst
                .max(4.0 * self.config.max_participants as f64),
            // Without the transcoder there is only the publisher's own layer to forward.
            bwe: if self.transcoders.is_some() {
                quicmeet_sfu::bwe::Config::default()
            } else {
                quicmeet_sfu::bwe::Config {
                    adapt: false,
                    max_layer: 0,
                    ..quicmeet_sfu::bwe::Config::default()
                }
            },
            ..RoomConfig::default()
        };
        if let Some(IdBlock {
            participants,
            chat_offset,
        }) = ids
        {
            config.participant_ids = participants;
            config.chat_id_stride = CHAT_LANES;
            config.chat_id_offset = chat_offset;
            config.announce = true;
        }
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        {
            let mut rooms = self.rooms.lock();
            if rooms.get(code).is_some_and(|e| !e.tx.is_closed()) {
                // Another first joiner made the room while we read the store: join it.
                drop(rooms);
                return match self.join_running(code, cmd, &out)? {
                    Ok(attached) => Ok(attached),
                    Err(_) => Err(Refusal::new(
                        "room_busy",
                        "The meeting is busy. Try again in a moment.",
                    )),
                };
            }
            let _ = tx.try_send(cmd);
            rooms.insert(
                meeting.code.clone(),
                RoomEntry {
                    tx: tx.clone(),
                    generation,
                    started: Utc::now(),
                },
            );
        }
        self.metrics.rooms_opened.fetch_add(1, Ordering::Relaxed);
        let cluster = match (self.cluster(), Subjects::new(&meeting.code)) {
            (Some(net), Some(subjects)) => {
                let to_room = tx.clone();
                let link = Link::start(net.clone(), subjects, move |i: Inbound| {
                    to_room.try_send(RoomCmd::Cluster(i)).is_ok()
                });
                Some(ClusterRoom::new(link, &meeting.code))
            }
            _ => None,
        };
        let actor = tokio::spawn(room::run(
            self.clone(),
            meeting.code.clone(),
            generation,
            config,
            history,
            (tx.clone(), rx),
            cluster,
        ));
        // The actor contains its own panics; should one escape anyway, forget the room so
        // the next join starts a fresh one (its connections see the channel close).
        let hub = self.clone();
        let code = meeting.code;
        tokio::spawn(async move {
            if let Err(e) = actor.await {
                if e.is_panic() {
                    hub.metrics.room_panics.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(room = %code, "room actor panicked outside its guard");
                    hub.drop_room(&code, generation);
                }
            }
        });
        self.conns.lock().insert(id, out.clone());
        Ok(Attached {
            out,
            room: tx,
            hub: self.clone(),
            uplink: None,
        })
    }

    /// Hands `cmd` (a join) to the meeting's running room. `Ok(Err(cmd))`: no room is
    /// running (or it is shutting down), so the caller makes one.
    fn join_running(
        self: &Arc<Self>,
        code: &str,
        cmd: RoomCmd,
        out: &Arc<ConnOut>,
    ) -> Result<Result<Attached, RoomCmd>, Refusal> {
        let rooms = self.rooms.lock();
        let Some(e) = rooms.get(code) else {
            return Ok(Err(cmd));
        };
        match e.tx.try_send(cmd) {
            Ok(()) => {
                let tx = e.tx.clone();
                drop(rooms);
                self.conns.lock().insert(out.id, out.clone());
                Ok(Ok(Attached {
                    out: out.clone(),
                    room: tx,
                    hub: self.clone(),
                    uplink: None,
                }))
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(Refusal::new(
                "room_busy",
                "The meeting is busy. Try again in a moment.",
            )),
            // A room that is shutting down refuses the command and a new one is made.
            Err(mpsc::error::TrySendError::Closed(cmd)) => Ok(Err(cmd)),
        }
    }

    /// Every second, tells each room how loaded the transcoder pool is, so its SFU can ask
    /// capable publishers to make lower layers while the pool is saturated (PROTOCOL.md §5.6).
    /// Nothing to do without a pool.
    pub fn spawn_load_sampler(self: &Arc<Self>) {
        let Some(xc) = self.transcoders.clone() else {
            return;
        };
        let hub = Arc::downgrade(self);
        let cancel = self.cancel.clone();
        let mut sampler = xcode::LoadSampler::new(&xc, self.config.transcode_saturation_layers);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let Some(hub) = hub.upgrade() else { break };
                let load = sampler.sample(&xc);
                let rooms: Vec<mpsc::Sender<RoomCmd>> =
                    hub.rooms.lock().values().map(|e| e.tx.clone()).collect();
                for tx in rooms {
                    // A busy room misses one sample; the next one comes in a second.
                    let _ = tx.try_send(RoomCmd::TranscoderLoad(load));
                }
            }
        });
    }

    /// Removes a room that found itself empty, unless a join raced in.
    fn retire_room(&self, code: &str, generation: u64, rx: &mpsc::Receiver<RoomCmd>) -> bool {
        let mut rooms = self.rooms.lock();
        if !rx.is_empty() {
            return false;
        }
        if rooms.get(code).is_some_and(|e| e.generation == generation) {
            rooms.remove(code);
        }
        true
    }

    /// Removes a room whose actor failed, so the next join starts a fresh one.
    fn drop_room(&self, code: &str, generation: u64) {
        let mut rooms = self.rooms.lock();
        if rooms.get(code).is_some_and(|e| e.generation == generation) {
            rooms.remove(code);
        }
    }

    fn detach(&self, id: ConnId) {
        self.conns.lock().remove(&id);
    }

    /// Records that the host ended the meeting, so later joins are refused until the host
    /// starts it again. The handle completes once it is stored.
    pub fn mark_ended(&self, code: &str) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let code = code.to_owned();
        tokio::spawn(async move {
            if let Ok(Some(old)) = store.meeting(&code).await {
                let mut m = old.clone();
                m.ended_at = Some(Utc::now());
                if let Err(e) = store.update_meeting(&old, &m).await {
                    tracing::error!(error = %e, "recording the end of a meeting failed");
                }
                let _ = store.flush().await;
            }
        })
    }

    /// The end-for-all backstop (docs/CLUSTER.md section 5): rereads the meeting of every
    /// room on this node and ends, as if the `end` message had arrived, each room whose
    /// meeting was ended after the room started. A node runs it when it reconnects to NATS,
    /// since it may have missed an `end` while it was cut off. Returns how many rooms it
    /// ended, or the first error reading the shared state (the caller tries again later).
    pub async fn end_rooms_of_ended_meetings(&self) -> Result<usize, quicmeet_store::StoreError> {
        let rooms: Vec<(String, chrono::DateTime<Utc>)> = self
            .rooms
            .lock()
            .iter()
            .map(|(code, e)| (code.clone(), e.started))
            .collect();
        let mut ended = 0;
        for (code, started) in rooms {
            let Some(m) = self.store.meeting(&code).await? else {
                continue;
            };
            if m.ended_at.is_none_or(|at| at < started) {
                continue;
            }
            let tx = self.rooms.lock().get(&code).map(|e| e.tx.clone());
            if let Some(tx) = tx {
                tracing::warn!(room = %code, "the meeting ended while this node was cut off: ending its room");
                if tx.send(RoomCmd::EndedElsewhere).await.is_ok() {
                    ended += 1;
                }
            }
        }
        Ok(ended)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn room_count(&self) -> usize {
        self.rooms.lock().len()
    }

    /// Codes of the meetings with a room on this node.
    pub fn room_codes(&self) -> Vec<String> {
        self.rooms.lock().keys().cloned().collect()
    }

    /// Connections on this node.
    pub fn connection_count(&self) -> usize {
        self.conns.lock().len()
    }

    /// Connections by transport and the sum of queue depths, for metrics.
    pub fn connection_gauges(&self) -> metrics::ConnGauges {
        let conns = self.conns.lock();
        let mut g = metrics::ConnGauges::default();
        for c in conns.values() {
            match c.transport {
                Transport::WebTransport => g.webtransport += 1,
                Transport::WebSocket => g.websocket += 1,
            }
            let s = c.queue_stats();
            g.queued_frames += (s.audio_depth + s.video_depth) as u64;
            g.queued_bytes += s.bytes as u64;
            g.max_queue_bytes = g.max_queue_bytes.max(s.bytes as u64);
        }
        g
    }
}

impl Attached {
    /// Sends this connection `uplink_report` while it publishes audio (it asked in `hello`).
    pub fn with_uplink_reports(mut self, on: bool) -> Self {
        self.uplink = on.then(uplink::UplinkMeter::default);
        self
    }

    /// A control message from the client.
    pub async fn control(&self, msg: quicmeet_proto::ClientMessage) -> bool {
        self.room
            .send(RoomCmd::Control(self.out.id, msg))
            .await
            .is_ok()
    }

    /// A media frame from the client. Never waits: when the room is saturated the frame is
    /// dropped (counted), so one client's burst cannot stall its own reader or others.
    pub fn media(&self, frame: quicmeet_proto::EncodedFrame) {
        let len = frame.len() as u64;
        self.hub.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
        self.hub.metrics.bytes_in.fetch_add(len, Ordering::Relaxed);
        if let Some(u) = &self.uplink {
            if let Some(report) = u.on_frame(&frame, uplink::now_us) {
                self.out.push_control(report);
            }
        }
        if self
            .room
            .try_send(RoomCmd::Media(self.out.id, frame))
            .is_err()
        {
            self.hub
                .metrics
                .dropped_room_busy
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Attached {
    /// Reports a sample of this subscriber's transport statistics to its room. Never waits:
    /// a busy room skips a sample.
    pub fn report_stats(&self, stats: quicmeet_sfu::bwe::TransportStats) {
        let _ = self.room.try_send(RoomCmd::Stats(self.out.id, stats));
    }

    /// Tells the room about tracks the queue cut back while popping.
    pub async fn report_lagged(&self) {
        for track_id in self.out.take_lagged() {
            self.keyframe_needed(track_id).await;
        }
    }
}

/// How often a connection reports its transport statistics to its room. A queue that a
/// subscriber's receiver reports (or a grown round trip) acts with the next sample, so this
/// is the reaction time to a try of a better layer that overfills the link: in traced
/// `down1m` runs the capped WebSocket subscriber's reported queue peaked at 66–108 ms per
/// try with 500 ms samples (4 runs) and 39–65 ms with 200 ms (4 runs), two builds a step
/// apart (BENCHMARKS §3, sixth pass). A sample is one `getsockopt` or one look at QUIC's
/// path statistics and a message to the room.
pub const STATS_PERIOD: std::time::Duration = std::time::Duration::from_millis(200);
/// How often it reports them during its first [`STATS_START`]: at the join every
/// subscription starts on the layer its tile asks for, and on a link that cannot carry
/// that, the bottleneck fills in front of the audio within a second. A queue is then seen
/// a tenth of a second after it builds instead of half a second.
pub const STATS_START_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);
/// How long a new connection reports at [`STATS_START_PERIOD`].
pub const STATS_START: std::time::Duration = std::time::Duration::from_secs(4);

/// When a writer samples its transport's statistics: often at the start, then calmly.
pub struct StatsClock {
    tick: tokio::time::Interval,
    fast_until: Option<tokio::time::Instant>,
}

impl StatsClock {
    /// A clock for a connection that starts now; `fast` samples at [`STATS_START_PERIOD`]
    /// first. WebSocket does not: it cannot tell a backlog its pacer made from the path's,
    /// so faster samples during a stall only piled up more of that false evidence, and a
    /// stalled subscriber's recovery came later (the layers test missed it 1 run in 3).
    pub fn start(fast: bool) -> Self {
        let now = tokio::time::Instant::now();
        if !fast {
            return StatsClock {
                tick: Self::every(now, STATS_PERIOD),
                fast_until: None,
            };
        }
        StatsClock {
            tick: Self::every(now, STATS_START_PERIOD),
            fast_until: Some(now + STATS_START),
        }
    }

    fn every(start: tokio::time::Instant, period: std::time::Duration) -> tokio::time::Interval {
        let mut i = tokio::time::interval_at(start, period);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    }

    /// Waits for the next sample (cancel-safe, as `select!` needs).
    pub async fn tick(&mut self) {
        let at = self.tick.tick().await;
        if self.fast_until.is_some_and(|end| at >= end) {
            self.fast_until = None;
            self.tick = Self::every(at + STATS_PERIOD, STATS_PERIOD);
        }
    }
}

/// Waits until the pacer lets held-back video leave (`None`: forever; the writers only
/// poll this branch when there is such a time).
async fn sleep_until_paced(at: Option<std::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let reason = self.out.close_reason().unwrap_or("left");
        let id = self.out.id;
        let room = self.room.clone();
        // The room must hear about every departure; the channel may be full, so wait.
        tokio::spawn(async move {
            let _ = room.send(RoomCmd::Leave(id, reason.to_owned())).await;
        });
        self.out.close("left");
        self.hub.detach(id);
    }
}
