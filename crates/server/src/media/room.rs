//! The room actor: one task per live meeting that owns a `quicmeet_sfu::Room`, feeds it the
//! connections' input and what their transports measured, and carries out its output.
//!
//! The actor sleeps until a command arrives or the room's next deadline
//! (`Room::poll_timeout`: held-back keyframe requests, speaker evaluation, the layer
//! policy's next look), so an idle room costs no wake-ups. A panic inside the actor (a bug)
//! closes this meeting with `goodbye{reason:"error"}` to its participants; the process and
//! the other meetings keep running.

use std::{
    collections::{HashMap, HashSet},
    panic::AssertUnwindSafe,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use bytes::Bytes;
use quicmeet_proto::{
    control, ChatMessage, ClientMessage, EncodedFrame, MediaPathKind, ServerMessage,
};
use quicmeet_sfu::{
    bwe::{Feedback, TransportStats},
    ConnId, ConnMap, Input, Join, MediaDrops, Output, Room, RoomConfig, RoomStats, TranscoderLoad,
};
use quicmeet_store::ChatRecord;
use smallvec::SmallVec;
use tokio::sync::mpsc;

use super::{fanout::Fanout, xcode::TrackTranscoder, ConnOut, MediaHub};
use crate::cluster::{link::Inbound, net::NodeChange};

#[path = "cluster_hold.rs"]
mod cluster_hold;
#[path = "cluster_room.rs"]
mod cluster_room;
pub use cluster_room::ClusterRoom;

/// Commands a room's input channel holds at most (media is dropped, not queued, beyond it).
pub const ROOM_QUEUE: usize = 4096;
/// How soon a transcoder that could not be started is tried again.
const XCODE_RETRY: Duration = Duration::from_secs(1);

/// Chat text that makes the room actor panic, in builds with the `fault-injection` feature
/// only (tests of the panic containment). Release builds have no such hook.
#[cfg(feature = "fault-injection")]
pub const FAULT_PANIC_CHAT: &str = "\u{1}quicmeet-fault-injection:panic-room";

pub enum RoomCmd {
    Join(Join, Arc<ConnOut>),
    Control(ConnId, ClientMessage),
    Media(ConnId, EncodedFrame),
    Leave(ConnId, String),
    KeyframeNeeded(ConnId, u32),
    /// A lower-layer frame from the transcoder.
    LayerMedia(EncodedFrame),
    /// The transcoder needs a keyframe from the publisher of this track.
    SourceKeyframe(u32),
    /// A sample of a subscriber's transport statistics, for its bandwidth estimate.
    Stats(ConnId, TransportStats),
    /// Something from another node of the cluster.
    Cluster(Inbound),
    /// A node of the cluster died or came back.
    NodeChange(NodeChange),
    /// The shared state says the meeting ended (the backstop for a missed `end`).
    EndedElsewhere,
    /// A sample of the transcoder pool's load (publisher-made layers).
    TranscoderLoad(TranscoderLoad),
}

struct Actor {
    hub: Arc<MediaHub>,
    code: String,
    room: Room,
    conns: ConnMap<Arc<ConnOut>>,
    feedback: Vec<Input>,
    /// Media of the current batch, handed to each subscriber back to back when it ends.
    fanout: Fanout,
    tx: mpsc::Sender<RoomCmd>,
    xcode: HashMap<u32, TrackTranscoder>,
    pid_conn: HashMap<u32, ConnId>,
    /// `Room::layers_version` the transcoders were last matched to.
    layers_synced: Option<u64>,
    /// A transcoder could not be started: try again then.
    xcode_retry: Option<Instant>,
    /// Room counters already added to the server's metrics.
    reported: RoomStats,
    /// Connections whose media goes peer to peer (`media_path{p2p}`), for /metrics.
    direct: HashSet<ConnId>,
    /// Cluster mode: the meeting's participants on other nodes.
    cluster: Option<ClusterRoom>,
}

pub async fn run(
    hub: Arc<MediaHub>,
    code: String,
    generation: u64,
    config: RoomConfig,
    history: Vec<ChatMessage>,
    (tx, mut rx): (mpsc::Sender<RoomCmd>, mpsc::Receiver<RoomCmd>),
    cluster: Option<ClusterRoom>,
) {
    let wall_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let mut actor = Actor {
        room: Room::new(config, Instant::now(), wall_ms, history),
        hub: hub.clone(),
        code: code.clone(),
        conns: ConnMap::default(),
        feedback: Vec::new(),
        fanout: Fanout::default(),
        tx,
        xcode: HashMap::new(),
        pid_conn: HashMap::new(),
        layers_synced: None,
        xcode_retry: None,
        reported: RoomStats::default(),
        direct: HashSet::new(),
        cluster,
    };
    tracing::debug!(code = %code, "room started");
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    loop {
        let deadline = actor.poll_timeout();
        if deadline != armed {
            if let Some(at) = deadline {
                sleep.as_mut().reset(at.into());
            }
            armed = deadline;
        }
        let step = tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(cmd) => Step::Commands(cmd),
                None => break,
            },
            _ = &mut sleep, if armed.is_some() => {
                armed = None;
                Step::Timeout
            }
        };
        let ok = std::panic::catch_unwind(AssertUnwindSafe(|| match step {
            Step::Commands(cmd) => {
                actor.handle(cmd);
                // Take what else is waiting before yielding, up to a bound.
                for _ in 0..64 {
                    match rx.try_recv() {
                        Ok(cmd) => actor.handle(cmd),
                        Err(_) => break,
                    }
                }
                actor.settle();
            }
            Step::Timeout => {
                actor.input(Input::Tick);
                actor.settle();
            }
        }));
        if ok.is_err() {
            actor.fail();
            hub.drop_room(&code, generation);
            break;
        }
        // Mirrors of other nodes' participants do not keep a room alive here.
        // Connections first: counting the room's own members walks them all, every turn.
        if actor.conns.is_empty()
            && actor.room.local_count() == 0
            && !actor.holding()
            && hub.retire_room(&code, generation, &rx)
        {
            break;
        }
    }
    tracing::debug!(code = %code, "room closed");
}

enum Step {
    Commands(RoomCmd),
    Timeout,
}

impl Actor {
    /// The earliest time something is due: the room's own deadline or a transcoder retry.
    fn poll_timeout(&self) -> Option<Instant> {
        let hold = self.hold_deadline();
        [self.room.poll_timeout(), self.xcode_retry, hold]
            .into_iter()
            .flatten()
            .min()
    }

    /// After a batch of input: bring the transcoders in line with the wanted layers and
    /// report the room's counters.
    fn settle(&mut self) {
        if let Some(c) = self.cluster.as_mut() {
            c.flush_media();
        }
        self.release_held();
        self.flush_media();
        let version = self.room.layers_version();
        let retry_due = self.xcode_retry.is_some_and(|t| Instant::now() >= t);
        if self.layers_synced != Some(version) || retry_due {
            self.layers_synced = Some(version);
            self.sync_interest();
            self.sync_transcoders();
        }
        self.report();
    }

    /// Hands out the batch's media, then lets the room react to what the queues reported
    /// (which may fan out more).
    fn flush_media(&mut self) {
        while !self.fanout.is_empty() {
            self.fanout
                .flush(&self.conns, &self.hub.metrics, &mut self.feedback);
            while let Some(i) = self.feedback.pop() {
                self.room.handle_input(Instant::now(), i);
                self.drain();
            }
        }
    }

    fn handle(&mut self, cmd: RoomCmd) {
        // Media waits for the end of the batch; anything else must not overtake it.
        if !matches!(
            cmd,
            RoomCmd::Media(..) | RoomCmd::LayerMedia(_) | RoomCmd::Cluster(Inbound::Media { .. })
        ) {
            self.flush_media();
        }
        match cmd {
            RoomCmd::Join(join, out) => {
                if let Some((join, out)) = self.hold_join(join, out) {
                    self.conns.insert(join.conn, out);
                    self.input(Input::Join(join));
                }
            }
            RoomCmd::Control(from, msg) => {
                #[cfg(feature = "fault-injection")]
                if matches!(&msg, ClientMessage::Chat { text } if text == FAULT_PANIC_CHAT) {
                    panic!("fault injection: room {} asked to panic", self.code);
                }
                if let ClientMessage::MediaPath { path, .. } = &msg {
                    self.set_direct(from, *path == MediaPathKind::P2p);
                }
                // Unsubscribing or unpublishing frees queued frames at once.
                if let ClientMessage::Unsubscribe { track_id } = &msg {
                    if let Some(o) = self.conns.get(&from) {
                        o.forget_track(*track_id);
                    }
                }
                self.input(Input::Control(from, msg));
            }
            RoomCmd::Media(from, frame) => {
                let t = Instant::now();
                let h = *frame.header();
                if h.layer == 0 && h.kind.is_video() {
                    if let Some(x) = self.xcode.get(&h.track_id) {
                        // Only the track's owner feeds its transcoder.
                        if self.room.participant_id(from)
                            == Some(quicmeet_proto::track::participant_of(h.track_id))
                        {
                            x.push(frame.payload(), h.capture_ts_us, h.keyframe);
                        }
                    }
                }
                self.input_local_media(Input::Media(from, frame));
                self.hub
                    .metrics
                    .forward_latency
                    .observe_us(t.elapsed().as_micros() as u64);
            }
            RoomCmd::KeyframeNeeded(from, track_id) => {
                // The transport could not keep up with this subscriber (a WebTransport group
                // reset for backlog, or video that waited too long): it needs a keyframe,
                // and it is the layer policy's fast signal.
                self.input(Input::KeyframeNeeded { from, track_id });
                self.input(Input::Feedback {
                    conn: from,
                    feedback: Feedback::Lag { events: 1 },
                });
            }
            RoomCmd::Stats(conn, stats) => {
                self.input(Input::Feedback {
                    conn,
                    feedback: Feedback::Stats(stats),
                });
                if let Some(out) = self.conns.get(&conn) {
                    out.set_video_pace(self.room.bwe().pace_bps(conn));
                    out.note_flushes(self.room.bwe().flushes(conn));
                }
            }
            RoomCmd::Leave(conn, _) if self.drop_held(conn) => {}
            RoomCmd::Leave(conn, reason) => {
                self.set_direct(conn, false);
                self.conns.remove(&conn);
                self.pid_conn.retain(|_, c| *c != conn);
                self.input(Input::Leave(conn, reason));
            }
            RoomCmd::LayerMedia(frame) => self.input_local_media(Input::LayerMedia(frame)),
            RoomCmd::Cluster(i) => self.cluster_inbound(i),
            RoomCmd::NodeChange(c) => self.node_change(c),
            RoomCmd::EndedElsewhere => self.input(Input::Remote(quicmeet_sfu::Remote::End)),
            RoomCmd::TranscoderLoad(load) => self.input(Input::TranscoderLoad(load)),
            RoomCmd::SourceKeyframe(track_id) => {
                let pid = quicmeet_proto::track::participant_of(track_id);
                if let Some(conn) = self.pid_conn.get(&pid).and_then(|c| self.conns.get(c)) {
                    self.hub
                        .metrics
                        .keyframe_requests
                        .fetch_add(1, Ordering::Relaxed);
                    let msg = ServerMessage::KeyframeRequest { track_id, layer: 0 };
                    conn.push_control(Bytes::from(control::encode(&msg)));
                }
            }
        }
    }

    /// Keeps `quicmeet_p2p_participants` in step with who said their media goes direct.
    fn set_direct(&mut self, conn: ConnId, on: bool) {
        let changed = if on {
            self.direct.insert(conn)
        } else {
            self.direct.remove(&conn)
        };
        if changed {
            let g = &self.hub.metrics.p2p_participants;
            if on {
                g.fetch_add(1, Ordering::Relaxed);
            } else {
                g.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn input(&mut self, input: Input) {
        self.room.handle_input(Instant::now(), input);
        self.drain();
        while let Some(i) = self.feedback.pop() {
            self.room.handle_input(Instant::now(), i);
            self.drain();
        }
    }

    /// A frame of one of this node's own tracks (from its publisher or the transcoder): once
    /// the room accepted it, it also goes to the other nodes that want its layer.
    fn input_local_media(&mut self, input: Input) {
        let frame = match (&input, &self.cluster) {
            (Input::Media(_, f) | Input::LayerMedia(f), Some(_)) => Some(f.clone()),
            _ => None,
        };
        let before = self.room.stats().frames_in;
        self.input(input);
        if let (Some(f), Some(c)) = (frame, &mut self.cluster) {
            if self.room.stats().frames_in > before {
                c.forward_local(&f);
            }
        }
    }

    /// Adds what the room counted since the last report to the server's metrics.
    fn report(&mut self) {
        let now = *self.room.stats();
        let m = &self.hub.metrics;
        let refused = total_drops(&now.dropped) - total_drops(&self.reported.dropped);
        if refused > 0 {
            m.dropped_by_room.fetch_add(refused, Ordering::Relaxed);
        }
        let switches = now.layer_switches - self.reported.layer_switches;
        if switches > 0 {
            m.layer_switches.fetch_add(switches, Ordering::Relaxed);
        }
        for (counter, new, old) in [
            (
                &m.produce_layer_sent,
                now.produce_layer_sent,
                self.reported.produce_layer_sent,
            ),
            (
                &m.stop_layer_sent,
                now.stop_layer_sent,
                self.reported.stop_layer_sent,
            ),
            (
                &m.publisher_layers_started,
                now.publisher_layers_started,
                self.reported.publisher_layers_started,
            ),
        ] {
            if new > old {
                counter.fetch_add(new - old, Ordering::Relaxed);
            }
        }
        let broken = now.invariant_violations - self.reported.invariant_violations;
        if broken > 0 {
            m.room_invariant_violations
                .fetch_add(broken, Ordering::Relaxed);
            tracing::error!(room = %self.code, count = broken, "room state inconsistent; step skipped");
        }
        self.reported = now;
    }

    fn drain(&mut self) {
        let hub = self.hub.clone();
        let m = &hub.metrics;
        while let Some(out) = self.room.poll_output() {
            if self.cluster.is_some() && self.cluster_output(&out) {
                continue;
            }
            match out {
                Output::Media { to, frame } => self.fanout.add(to, frame),
                Output::Control { to, msg } => {
                    let json = Bytes::from(control::encode(&msg));
                    for c in to.as_slice() {
                        if let Some(conn) = self.conns.get(c) {
                            conn.push_control(json.clone());
                        }
                    }
                }
                Output::KeyframeRequest {
                    publisher,
                    track_id,
                    layer,
                } => {
                    // Layer 0 and the layers the publisher makes itself come from it.
                    let from_publisher = layer == 0
                        || self.room.publisher_layers(track_id) & (1u8 << layer.min(7)) != 0;
                    if from_publisher {
                        if let Some(conn) = self.conns.get(&publisher) {
                            m.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                            let msg = ServerMessage::KeyframeRequest { track_id, layer };
                            conn.push_control(Bytes::from(control::encode(&msg)));
                        }
                    } else if let Some(x) = self.xcode.get(&track_id) {
                        x.track.request_keyframe(layer);
                    }
                }
                Output::Disconnect { who, reason } => {
                    if let Some(conn) = self.conns.remove(&who) {
                        conn.close(reason);
                    }
                }
                Output::Joined {
                    conn,
                    participant_id,
                } => {
                    self.pid_conn.insert(participant_id, conn);
                    tracing::debug!(room = %self.code, conn = conn.0, participant_id, "joined");
                }
                Output::ChatPersist(c) => {
                    let rec = ChatRecord {
                        id: c.id,
                        participant_id: c.participant_id,
                        name: c.name,
                        text: c.text,
                        ts_ms: c.ts_ms as i64,
                    };
                    // The store may be across the network (cluster mode): never wait on it in
                    // the room. Records are keyed by id, so completion order does not matter.
                    let store = self.hub.store().clone();
                    let code = self.code.clone();
                    tokio::spawn(async move {
                        if let Err(e) = store.append_chat(&code, &rec).await {
                            tracing::warn!(error = %e, "storing a chat message failed");
                        }
                    });
                }
                Output::MeetingEnded { by } => {
                    tracing::info!(room = %self.code, by, "meeting ended by the host");
                    drop(self.hub.mark_ended(&self.code));
                }
                // Only in cluster mode, handled above.
                Output::Announce(_) | Output::RemoteCommand { .. } => {}
            }
        }
    }

    /// The actor panicked: its state is not to be trusted, so the meeting ends for everyone
    /// in it with `goodbye{reason:"error"}`; they can rejoin into a fresh room.
    fn fail(&mut self) {
        self.hub.metrics.room_panics.fetch_add(1, Ordering::Relaxed);
        tracing::error!(room = %self.code, participants = self.conns.len(), "room actor panicked; closing the meeting");
        let bye = Bytes::from(control::encode(&ServerMessage::goodbye(
            "error",
            "The meeting hit a server error. Rejoin to continue.",
        )));
        for (_, conn) in self.conns.drain() {
            conn.push_control(bye.clone());
            conn.close("error");
        }
        self.xcode.clear();
    }
}

impl Actor {
    /// Starts, retunes or stops transcoders so exactly the wanted lower layers are made.
    fn sync_transcoders(&mut self) {
        self.xcode_retry = None;
        let Some(xc) = self.hub.transcoders.clone() else {
            return;
        };
        let mut live: SmallVec<[(u32, quicmeet_proto::MediaKind); 8]> = SmallVec::new();
        for t in self.room.tracks() {
            // Each track is transcoded once, on its publisher's node.
            let remote = self
                .cluster
                .as_ref()
                .is_some_and(|c| c.is_remote_track(t.track_id));
            if t.kind.is_video() && !remote {
                live.push((t.track_id, t.kind));
            }
        }
        self.xcode.retain(|id, _| live.iter().any(|(t, _)| t == id));
        for (track_id, kind) in live {
            let elsewhere = self
                .cluster
                .as_ref()
                .map_or(0, |c| c.remote_wants(track_id));
            // Layers the publisher makes itself are not the transcoder's job.
            let wanted = (self.room.wanted_layers(track_id) | elsewhere)
                & !1
                & !self.room.publisher_layers(track_id);
            match self.xcode.get_mut(&track_id) {
                Some(x) => x.set_wanted(wanted),
                None if wanted != 0 => match xc.start(self.tx.clone(), track_id, kind) {
                    Some(mut x) => {
                        x.set_wanted(wanted);
                        self.xcode.insert(track_id, x);
                    }
                    None => self.xcode_retry = Some(Instant::now() + XCODE_RETRY),
                },
                None => {}
            }
        }
    }
}

fn total_drops(d: &MediaDrops) -> u64 {
    d.unknown_sender
        + d.not_admitted
        + d.not_owner
        + d.unpublished
        + d.kind_mismatch
        + d.bad_layer
        + d.oversized
        + d.rate_limited
        + d.layer_not_requested
}
