//! The room actor: one task per live meeting that owns a `quicmeet_sfu::Room`, feeds it the
//! connections' input and carries out its output.

use std::{
    collections::{HashMap, HashSet},
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use bytes::Bytes;
use quicmeet_proto::{
    control, ChatMessage, ClientMessage, EncodedFrame, MediaPathKind, ServerMessage,
};
use quicmeet_sfu::{ConnId, Input, Join, Output, Pushed, QueueEvent, Room, RoomConfig};
use quicmeet_store::ChatRecord;
use smallvec::SmallVec;
use tokio::sync::mpsc;

use super::{xcode::TrackTranscoder, ConnOut, MediaHub};

/// Commands a room's input channel holds at most (media is dropped, not queued, beyond it).
pub const ROOM_QUEUE: usize = 4096;
const TICK: Duration = Duration::from_millis(50);

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
}

/// Per-subscriber congestion state of the layer controller.
#[derive(Default)]
struct LayerCtl {
    /// Lag events counted so far (queue drops, stream resets).
    seen: u64,
    /// Layers below the preferred one that congestion forces.
    down: u8,
    /// When `down` last changed or lag was last seen.
    since: Option<Instant>,
    /// The layer each track's subscription asked for itself (`set_layer` overwrites the
    /// room's notion of the preference, so the controller remembers the client's).
    base: SmallVec<[(u32, u8); 8]>,
}

/// How often the layer controller looks at each subscriber.
const CTL_PERIOD: Duration = Duration::from_secs(1);
/// How long a subscriber must be lag-free before it moves up a layer again.
const CTL_RECOVER: Duration = Duration::from_secs(5);

struct Actor {
    hub: Arc<MediaHub>,
    code: String,
    room: Room,
    conns: HashMap<ConnId, Arc<ConnOut>>,
    feedback: Vec<Input>,
    events: SmallVec<[QueueEvent; 2]>,
    tx: mpsc::Sender<RoomCmd>,
    xcode: HashMap<u32, TrackTranscoder>,
    pid_conn: HashMap<u32, ConnId>,
    ctl: HashMap<ConnId, LayerCtl>,
    next_ctl: Instant,
    /// Connections whose media goes peer to peer (`media_path{p2p}`), for /metrics.
    direct: HashSet<ConnId>,
}

pub async fn run(
    hub: Arc<MediaHub>,
    code: String,
    generation: u64,
    config: RoomConfig,
    history: Vec<ChatMessage>,
    tx: mpsc::Sender<RoomCmd>,
    mut rx: mpsc::Receiver<RoomCmd>,
) {
    let wall_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let mut actor = Actor {
        room: Room::new(config, Instant::now(), wall_ms, history),
        hub: hub.clone(),
        code: code.clone(),
        conns: HashMap::new(),
        feedback: Vec::new(),
        events: SmallVec::new(),
        tx,
        xcode: HashMap::new(),
        pid_conn: HashMap::new(),
        ctl: HashMap::new(),
        next_ctl: Instant::now() + CTL_PERIOD,
        direct: HashSet::new(),
    };
    tracing::debug!(code = %code, "room started");
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(cmd) => {
                    actor.handle(cmd);
                    // Take what else is waiting before yielding, up to a bound.
                    for _ in 0..64 {
                        match rx.try_recv() {
                            Ok(cmd) => actor.handle(cmd),
                            Err(_) => break,
                        }
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                actor.input(Input::Tick);
                actor.control_layers();
                actor.sync_transcoders();
            }
        }
        if actor.room.is_empty()
            && actor.conns.is_empty()
            && hub.retire_room(&code, generation, &rx)
        {
            break;
        }
    }
    tracing::debug!(code = %code, "room closed");
}

impl Actor {
    fn handle(&mut self, cmd: RoomCmd) {
        match cmd {
            RoomCmd::Join(join, out) => {
                self.conns.insert(join.conn, out);
                self.input(Input::Join(join));
                self.sync_transcoders();
            }
            RoomCmd::Control(from, msg) => {
                // A new subscribe states a new preference for the controller to build on.
                if let ClientMessage::Subscribe { track_id, .. }
                | ClientMessage::Unsubscribe { track_id } = &msg
                {
                    if let Some(st) = self.ctl.get_mut(&from) {
                        st.base.retain(|(t, _)| t != track_id);
                    }
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
                self.sync_transcoders();
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
                self.input(Input::Media(from, frame));
                self.hub
                    .metrics
                    .forward_latency
                    .observe_us(t.elapsed().as_micros() as u64);
            }
            RoomCmd::KeyframeNeeded(from, track_id) => {
                self.input(Input::KeyframeNeeded { from, track_id });
            }
            RoomCmd::Leave(conn, reason) => {
                self.set_direct(conn, false);
                self.conns.remove(&conn);
                self.ctl.remove(&conn);
                self.input(Input::Leave(conn, reason));
                self.sync_transcoders();
            }
            RoomCmd::LayerMedia(frame) => self.input(Input::LayerMedia(frame)),
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
                g.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                g.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    fn input(&mut self, input: Input) {
        let before = self.room.stats().dropped;
        self.room.handle_input(Instant::now(), input);
        self.drain();
        while let Some(i) = self.feedback.pop() {
            self.room.handle_input(Instant::now(), i);
            self.drain();
        }
        let after = self.room.stats().dropped;
        let refused = total_drops(&after) - total_drops(&before);
        if refused > 0 {
            self.hub
                .metrics
                .dropped_by_room
                .fetch_add(refused, Ordering::Relaxed);
        }
    }

    fn drain(&mut self) {
        let m = &self.hub.metrics;
        let mut frames_out = 0u64;
        let mut bytes_out = 0u64;
        while let Some(out) = self.room.poll_output() {
            match out {
                Output::Media { to, frame } => {
                    let Some(conn) = self.conns.get(&to) else {
                        continue;
                    };
                    let len = frame.len() as u64;
                    self.events.clear();
                    let (pushed, dropped) = conn.push_media(frame, &mut self.events);
                    if pushed == Pushed::Queued {
                        frames_out += 1;
                        bytes_out += len;
                    }
                    if dropped > 0 {
                        m.dropped_by_queue.fetch_add(dropped, Ordering::Relaxed);
                    }
                    for e in self.events.drain(..) {
                        match e {
                            QueueEvent::NeedKeyframe { track_id, .. } => self
                                .feedback
                                .push(Input::KeyframeNeeded { from: to, track_id }),
                            QueueEvent::ResetGroup { .. } => {
                                m.group_resets.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
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
                    if layer == 0 {
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
                    if let Err(e) = self.hub.store().append_chat(&self.code, &rec) {
                        tracing::warn!(error = %e, "storing a chat message failed");
                    }
                }
                Output::MeetingEnded { by } => {
                    tracing::info!(room = %self.code, by, "meeting ended by the host");
                    self.hub.mark_ended(&self.code);
                }
            }
        }
        if frames_out > 0 {
            m.frames_out.fetch_add(frames_out, Ordering::Relaxed);
            m.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        }
    }
}

impl Actor {
    /// Starts, retunes or stops transcoders so exactly the wanted lower layers are made.
    fn sync_transcoders(&mut self) {
        let Some(xc) = self.hub.transcoders.clone() else {
            self.without_transcoders();
            return;
        };
        let mut live: SmallVec<[(u32, quicmeet_proto::MediaKind); 8]> = SmallVec::new();
        for t in self.room.tracks() {
            if t.kind.is_video() {
                live.push((t.track_id, t.kind));
            }
        }
        self.xcode.retain(|id, _| live.iter().any(|(t, _)| t == id));
        for (track_id, kind) in live {
            let wanted = self.room.wanted_layers(track_id) & !1;
            match self.xcode.get_mut(&track_id) {
                Some(x) => x.set_wanted(wanted),
                None if wanted != 0 => {
                    if let Some(mut x) = xc.start(self.tx.clone(), track_id, kind) {
                        x.set_wanted(wanted);
                        self.xcode.insert(track_id, x);
                    }
                }
                None => {}
            }
        }
    }

    /// With server-side layers off, every subscription gets the publisher's own layer.
    fn without_transcoders(&mut self) {
        let now = Instant::now();
        let mut fix: SmallVec<[(ConnId, u32); 8]> = SmallVec::new();
        for conn in self.conns.keys() {
            for (track_id, preferred, current) in self.room.subscriptions(*conn) {
                if preferred > 0 || current.is_some_and(|c| c > 0) {
                    fix.push((*conn, track_id));
                }
            }
        }
        for (conn, track_id) in fix {
            let _ = self.room.set_layer(now, conn, track_id, 0);
        }
        if !self.room.is_empty() {
            self.drain();
        }
    }

    /// Moves subscribers that cannot keep up down a layer, and back up after a calm period.
    fn control_layers(&mut self) {
        let now = Instant::now();
        if now < self.next_ctl || self.hub.transcoders.is_none() {
            return;
        }
        self.next_ctl = now + CTL_PERIOD;
        let tracks: SmallVec<[u32; 8]> = self
            .room
            .tracks()
            .filter(|t| t.kind.is_video())
            .map(|t| t.track_id)
            .collect();
        let mut changes: SmallVec<[(ConnId, u32, u8); 8]> = SmallVec::new();
        for (id, out) in &self.conns {
            let lag = out.lag_events();
            let st = self.ctl.entry(*id).or_default();
            let before = st.down;
            if lag > st.seen {
                st.down = (st.down + 1).min(quicmeet_sfu::MAX_LAYER);
                st.since = Some(now);
            } else if st.down > 0
                && st
                    .since
                    .is_some_and(|t| now.duration_since(t) >= CTL_RECOVER)
            {
                st.down -= 1;
                st.since = Some(now);
            }
            st.seen = lag;
            if st.down == before {
                continue;
            }
            for &tid in &tracks {
                if let Some((preferred, current)) = self.room.subscription_layer(*id, tid) {
                    let base = match st.base.iter().find(|(t, _)| *t == tid) {
                        Some((_, b)) => *b,
                        None => {
                            st.base.push((tid, preferred));
                            preferred
                        }
                    };
                    let target = (base + st.down).min(quicmeet_sfu::MAX_LAYER);
                    if current != Some(target) {
                        changes.push((*id, tid, target));
                    }
                }
            }
        }
        for (conn, tid, layer) in changes {
            if self.room.set_layer(now, conn, tid, layer).is_ok() {
                self.hub
                    .metrics
                    .layer_switches
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        self.drain();
    }
}

fn total_drops(d: &quicmeet_sfu::MediaDrops) -> u64 {
    d.unknown_sender
        + d.not_admitted
        + d.not_owner
        + d.unpublished
        + d.kind_mismatch
        + d.bad_layer
        + d.oversized
        + d.rate_limited
}
