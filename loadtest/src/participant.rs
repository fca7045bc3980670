//! One simulated participant: join (REST, transport, `welcome`), publish, subscribe, send
//! paced media from the pre-encoded clips, receive and account every frame, churn and
//! reconnect, and leave when the run ends.
//!
//! Each connection has two tasks: the receiver (this module's [`participant`] loop), which
//! never blocks on sending, and a sender task that owns the sending half and paces the clips,
//! so a publisher stalled by flow control does not distort what its receiver measures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quicmeet_client::{
    now_us, ClientReceiver, ClientSender, ConnectOptions, Event, TrackPublisher, Transport,
};
use quicmeet_proto::{ClientMessage, MediaKind, ServerMessage};
use tokio::sync::{mpsc, watch};
use tokio::time::sleep_until;

use crate::cli::{Args, OnOff, TransportArg};
use crate::media::{Library, Player};
use crate::relay::{self, RelaySender};
use crate::stats::{kind_index, Shared, StreamStat};

/// Where participants connect.
#[derive(Debug, Clone)]
pub enum Target {
    /// A QuicMeet server: REST base URL and one meeting code per room.
    Quicmeet {
        /// `http://127.0.0.1:PORT`.
        base: String,
        /// Meeting code per room.
        codes: Vec<String>,
    },
    /// The baseline relay.
    Relay {
        /// UDP address.
        addr: std::net::SocketAddr,
        /// SHA-256 of its certificate.
        hash: [u8; 32],
    },
}

/// A meeting's start line: media starts when every participant has joined and subscribed
/// (or when the deadline passes), so counts of sent and received frames can be compared.
#[derive(Debug)]
pub struct Gate {
    n: usize,
    arrived: AtomicUsize,
    tx: watch::Sender<Option<Instant>>,
    /// Open anyway at this time.
    pub deadline: Instant,
}

impl Gate {
    /// A gate for `n` participants.
    pub fn new(n: usize, deadline: Instant) -> Self {
        Gate {
            n,
            arrived: AtomicUsize::new(0),
            tx: watch::channel(None).0,
            deadline,
        }
    }

    /// One participant is ready.
    pub fn arrive(&self) {
        if self.arrived.fetch_add(1, Relaxed) + 1 >= self.n {
            self.open();
        }
    }

    /// Start media now (idempotent).
    pub fn open(&self) {
        self.tx.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(Instant::now());
                true
            } else {
                false
            }
        });
    }

    /// When media started, if it did.
    pub fn opened(&self) -> Option<Instant> {
        *self.tx.borrow()
    }

    fn subscribe(&self) -> watch::Receiver<Option<Instant>> {
        self.tx.subscribe()
    }
}

/// Everything the participant tasks share.
pub struct Ctx {
    /// Options.
    pub args: Args,
    /// Pre-encoded media.
    pub lib: Library,
    /// Counters.
    pub shared: Shared,
    /// Where to connect.
    pub target: Target,
    /// One gate per room.
    pub gates: Vec<Gate>,
    /// Publishers stop sending when this turns true.
    pub stop: watch::Receiver<bool>,
    /// Receivers leave when this turns true (after a drain period).
    pub end: watch::Receiver<bool>,
    /// HTTP client without cookies (guests).
    pub http: reqwest::Client,
}

/// What a participant does.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Index in the run.
    pub index: usize,
    /// Room index.
    pub room: usize,
    /// Index within the room.
    pub k: usize,
    /// Sends media.
    pub publisher: bool,
    /// Subscribes to the room's publishers.
    pub watches: bool,
    /// Transport.
    pub transport: Transport,
    /// Display name.
    pub name: String,
}

impl Spec {
    /// The participant with run index `i`.
    pub fn of(args: &Args, i: usize) -> Spec {
        let per = args.per_room().max(1);
        let (room, k) = (i / per, i % per);
        let publisher = k < args.publishers_per_room;
        Spec {
            index: i,
            room,
            k,
            publisher,
            watches: !publisher || args.publishers_watch == OnOff::On,
            transport: match args.transport {
                TransportArg::Wt => Transport::WebTransport,
                TransportArg::Ws => Transport::WebSocket,
                TransportArg::Mix if i.is_multiple_of(2) => Transport::WebTransport,
                TransportArg::Mix => Transport::WebSocket,
            },
            name: format!("lt-r{room}-{}{k}", if publisher { "p" } else { "s" }),
        }
    }

    /// Slots this participant publishes.
    pub fn slots(&self, args: &Args, lib: &Library) -> Vec<(u32, MediaKind)> {
        let mut v = vec![];
        if !self.publisher {
            return v;
        }
        if lib.audio.is_some() && args.audio == OnOff::On {
            v.push((0, MediaKind::Audio));
        }
        if lib.video.is_some() {
            v.push((1, MediaKind::Video));
        }
        if lib.screen.is_some() && self.k == 0 {
            v.push((2, MediaKind::Screen));
        }
        v
    }
}

/// Tracks of the room this participant should receive, besides its own.
fn expected_tracks(ctx: &Ctx, spec: &Spec) -> usize {
    if !spec.watches {
        return 0;
    }
    (0..ctx.args.publishers_per_room)
        .filter(|k| *k != spec.k || !spec.publisher)
        .map(|k| {
            Spec::of(&ctx.args, spec.room * ctx.args.per_room() + k)
                .slots(&ctx.args, &ctx.lib)
                .len()
        })
        .sum()
}

enum ConnTx {
    Qm(ClientSender),
    Relay(RelaySender),
}

impl ConnTx {
    async fn send_control(&mut self, m: &ClientMessage) -> Result<(), String> {
        match self {
            ConnTx::Qm(s) => s.send_control(m).await.map_err(|e| e.to_string()),
            ConnTx::Relay(_) => Ok(()),
        }
    }

    async fn send_frame(&mut self, f: &quicmeet_proto::EncodedFrame) -> Result<(), String> {
        match self {
            ConnTx::Qm(s) => s.send_frame(f).await.map_err(|e| e.to_string()),
            ConnTx::Relay(s) => s.send_frame(f).await.map_err(|e| e.to_string()),
        }
    }

    async fn close(self) {
        match self {
            ConnTx::Qm(s) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), s.close()).await;
            }
            ConnTx::Relay(s) => s.close(),
        }
    }
}

enum ConnRx {
    Qm(ClientReceiver),
    Relay(mpsc::Receiver<Event>),
}

impl ConnRx {
    async fn recv(&mut self) -> Option<Event> {
        match self {
            ConnRx::Qm(r) => r.recv().await,
            ConnRx::Relay(r) => r.recv().await,
        }
    }
}

enum End {
    /// The run is over.
    Done,
    /// Planned leave and rejoin.
    Churn,
    /// The connection ended unexpectedly (error kind).
    Lost(String),
}

/// Deterministic pseudo-random numbers (xorshift) for the churn schedule.
fn rand01(state: &mut u64) -> f64 {
    let mut x = *state | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Run one participant until the run ends. Bounded: at most 3 reconnects, every wait has a
/// timeout, and the run's `end` signal stops everything.
pub async fn participant(ctx: Arc<Ctx>, spec: Spec, start: Instant) {
    sleep_until(start.into()).await;
    let mut rng = ctx.args.seed ^ (spec.index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut arrived = false;
    let mut first = true;
    let mut reconnects = 0;
    let mut ever_joined = false;
    loop {
        if *ctx.end.borrow() {
            break;
        }
        let churn_at = if !spec.publisher && ctx.args.churn > 0.0 {
            let mean = 60.0 / ctx.args.churn;
            let secs = -mean * (1.0 - rand01(&mut rng)).max(1e-9).ln();
            Some(Instant::now() + Duration::from_secs_f64(secs.clamp(0.5, 3600.0)))
        } else {
            None
        };
        let r = session(&ctx, &spec, first, churn_at, &mut arrived, &mut ever_joined).await;
        first = false;
        match r {
            End::Done => break,
            End::Churn => {
                ctx.shared.churn_rejoins.fetch_add(1, Relaxed);
            }
            End::Lost(kind) => {
                ctx.shared.error(kind);
                if *ctx.end.borrow() || *ctx.stop.borrow() || reconnects >= 3 {
                    break;
                }
                if ever_joined {
                    reconnects += 1;
                    ctx.shared.reconnects.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                } else {
                    break;
                }
            }
        }
    }
    if !arrived {
        ctx.gates[spec.room].arrive();
    }
    if !ever_joined {
        ctx.shared.join_failed.fetch_add(1, Relaxed);
    }
}

struct Joined {
    tx: ConnTx,
    rx: ConnRx,
    pid: u32,
    tracks: Vec<(u32, u32, MediaKind)>,
}

async fn connect(ctx: &Ctx, spec: &Spec) -> Result<(Joined, u64, u64), String> {
    let t0 = Instant::now();
    match &ctx.target {
        Target::Quicmeet { base, codes } => {
            let code = &codes[spec.room % codes.len().max(1)];
            let join = crate::api::join_guest(&ctx.http, base, code, &spec.name)
                .await
                .map_err(|(k, _)| k)?;
            let api_us = t0.elapsed().as_micros() as u64;
            let t1 = Instant::now();
            let opts = ConnectOptions {
                event_buffer: 4096,
                client_name: Some("quicmeet-loadtest".into()),
                ..ConnectOptions::default()
            };
            let (tx, mut rx) = quicmeet_client::connect_with(spec.transport, &join, &opts)
                .await
                .map_err(|e| {
                    tracing::debug!(error = %e, "connect failed");
                    format!("connect_{}", spec.transport.as_str())
                })?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            loop {
                let ev = tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .map_err(|_| "welcome_timeout".to_owned())?;
                match ev {
                    Some(Event::Control(ServerMessage::Welcome {
                        participant_id,
                        tracks,
                        ..
                    })) => {
                        let connect_us = t1.elapsed().as_micros() as u64;
                        let tracks = tracks
                            .into_iter()
                            .map(|t| (t.track_id, t.participant_id, t.kind))
                            .collect();
                        return Ok((
                            Joined {
                                tx: ConnTx::Qm(tx),
                                rx: ConnRx::Qm(rx),
                                pid: participant_id,
                                tracks,
                            },
                            api_us,
                            connect_us,
                        ));
                    }
                    Some(Event::Control(ServerMessage::Lobby { .. })) => return Err("lobby".into()),
                    Some(Event::Control(ServerMessage::Goodbye { reason, .. })) => {
                        return Err(format!("goodbye_{reason}"))
                    }
                    Some(Event::Control(ServerMessage::Error { code, .. })) => {
                        return Err(format!("hello_error_{code}"))
                    }
                    Some(Event::Closed(_)) | None => return Err("closed_before_welcome".into()),
                    Some(_) => {}
                }
            }
        }
        Target::Relay { addr, hash } => {
            let (tx, rx) = relay::connect(*addr, *hash, spec.room as u32, spec.watches)
                .await
                .map_err(|e| {
                    tracing::debug!(error = %e, "relay connect failed");
                    "connect_relay".to_owned()
                })?;
            let connect_us = t0.elapsed().as_micros() as u64;
            // The relay has no signalling: ids and tracks follow from the room layout.
            let pid = spec.k as u32 + 1;
            let mut tracks = vec![];
            for k in 0..ctx.args.publishers_per_room {
                let other = Spec::of(&ctx.args, spec.room * ctx.args.per_room() + k);
                for (slot, kind) in other.slots(&ctx.args, &ctx.lib) {
                    tracks.push(((k as u32 + 1) * 16 + slot, k as u32 + 1, kind));
                }
            }
            Ok((
                Joined {
                    tx: ConnTx::Relay(tx),
                    rx: ConnRx::Relay(rx),
                    pid,
                    tracks,
                },
                0,
                connect_us,
            ))
        }
    }
}

struct Sub {
    at_us: u64,
    at: Instant,
}

async fn session(
    ctx: &Arc<Ctx>,
    spec: &Spec,
    first: bool,
    churn_at: Option<Instant>,
    arrived: &mut bool,
    ever_joined: &mut bool,
) -> End {
    let (joined, api_us, connect_us) = match connect(ctx, spec).await {
        Ok(j) => j,
        Err(kind) => return End::Lost(kind),
    };
    let sh = &ctx.shared;
    sh.join_api.lock().record(api_us);
    sh.join_connect.lock().record(connect_us);
    sh.connected.fetch_add(1, Relaxed);
    if !*ever_joined {
        sh.joined.fetch_add(1, Relaxed);
        *ever_joined = true;
    }
    let is_relay = matches!(ctx.target, Target::Relay { .. });
    let Joined {
        tx,
        mut rx,
        pid,
        tracks,
    } = joined;
    let gate = &ctx.gates[spec.room];
    let mut go = gate.subscribe();
    let (ctl_tx, ctl_rx) = mpsc::channel::<ClientMessage>(256);
    let keyframes: Arc<[AtomicBool; 3]> = Arc::default();
    let slots = spec.slots(&ctx.args, &ctx.lib);
    let sender = tokio::spawn(sender_task(
        ctx.clone(),
        spec.clone(),
        tx,
        pid,
        slots.clone(),
        ctl_rx,
        keyframes.clone(),
    ));
    for (slot, kind) in &slots {
        let (width, height) = match kind {
            MediaKind::Video => ctx.lib.video.as_ref().and_then(|c| c.size).unzip(),
            MediaKind::Screen => ctx.lib.screen.as_ref().and_then(|c| c.size).unzip(),
            MediaKind::Audio => (None, None),
        };
        let _ = ctl_tx
            .send(ClientMessage::Publish {
                track_id: pid * 16 + slot,
                kind: *kind,
                codec: if *kind == MediaKind::Audio {
                    "opus".into()
                } else {
                    "vp8".into()
                },
                width,
                height,
            })
            .await;
    }

    let expected = expected_tracks(ctx, spec);
    let mut subs: HashMap<u32, Sub> = HashMap::new();
    let mut streams: HashMap<(u32, u8), StreamStat> = HashMap::new();
    let mut ping_sent = false;
    let mut first_frame_done = false;
    let connected_at = Instant::now();
    let connected_us = now_us();

    let subscribe = |track: u32, owner: u32, kind: MediaKind, subs: &mut HashMap<u32, Sub>| {
        if !spec.watches || owner == pid || subs.contains_key(&track) {
            return None;
        }
        let (at, at_us) = if is_relay {
            (connected_at, connected_us)
        } else {
            (Instant::now(), now_us())
        };
        subs.insert(track, Sub { at_us, at });
        if is_relay {
            return None;
        }
        Some(ClientMessage::Subscribe {
            track_id: track,
            max_width: None,
            max_height: None,
            layer: if kind == MediaKind::Audio {
                None
            } else {
                ctx.args.layer
            },
        })
    };
    for (track, owner, kind) in tracks {
        if let Some(m) = subscribe(track, owner, kind, &mut subs) {
            let _ = ctl_tx.send(m).await;
        }
    }

    let mut end_rx = ctx.end.clone();
    let never = Instant::now() + Duration::from_secs(365 * 86_400);
    let churn_deadline = churn_at.unwrap_or(never);
    let result = loop {
        // Ready for media: every expected track subscribed; a ping's pong then proves the
        // server processed the subscriptions (control messages are handled in order).
        if !*arrived && !ping_sent && subs.len() >= expected {
            if is_relay {
                *arrived = true;
                gate.arrive();
            } else {
                ping_sent = true;
                let _ = ctl_tx
                    .send(ClientMessage::Ping {
                        t: serde_json::Number::from(spec.index as u64),
                    })
                    .await;
            }
        }
        let gate_open = go.borrow().is_some();
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { break End::Lost("events_ended".into()) };
                match ev {
                    Event::Media(m) => {
                        let h = *m.frame.header();
                        let key = (h.track_id, h.layer);
                        let st = streams.entry(key).or_insert_with(|| {
                            StreamStat::new(spec.room, spec.index, h.track_id, h.layer, h.kind)
                        });
                        let sub = subs.get(&h.track_id);
                        let cached = sub.is_some_and(|s| h.capture_ts_us < s.at_us);
                        let transit = m.received_unix_us as i64 - h.capture_ts_us as i64;
                        let len = m.frame.len();
                        if let Some(lat) = st.on_frame(h.seq, len, transit, cached) {
                            sh.latency[kind_index(h.kind)].record(lat);
                            sh.window.record(lat);
                        }
                        sh.frames_rx.fetch_add(1, Relaxed);
                        sh.bytes_rx.fetch_add(len as u64, Relaxed);
                        if st.first_frame_us.is_none() {
                            let from = match (sub.map(|s| s.at), *go.borrow()) {
                                (Some(a), Some(g)) => a.max(g),
                                (Some(a), None) => a,
                                (None, Some(g)) => g,
                                (None, None) => m.received_at,
                            };
                            let ff = m.received_at.saturating_duration_since(from).as_micros() as u64;
                            st.first_frame_us = Some(ff);
                            if !first_frame_done {
                                // Join time counts the session's first frame of any kind
                                // (video starts are staggered on purpose).
                                first_frame_done = true;
                                sh.first_frame.lock().record(ff);
                                sh.join_total.lock().record(api_us + connect_us + ff);
                            }
                        }
                    }
                    Event::Control(msg) => match msg {
                        ServerMessage::TrackPublished { track } => {
                            if let Some(m) = subscribe(track.track_id, track.participant_id, track.kind, &mut subs) {
                                let _ = ctl_tx.send(m).await;
                            }
                        }
                        ServerMessage::KeyframeRequest { track_id, .. } => {
                            if let Some(f) = keyframes.get((track_id % 16) as usize) {
                                f.store(true, Relaxed);
                            }
                        }
                        ServerMessage::Chat(c) => {
                            sh.chat_rx.fetch_add(1, Relaxed);
                            if let Some(t) = c.text.strip_prefix("lt ").and_then(|t| t.parse::<u64>().ok()) {
                                sh.chat_latency.record(now_us().saturating_sub(t));
                            }
                        }
                        ServerMessage::Pong { .. } if !*arrived => {
                            *arrived = true;
                            gate.arrive();
                        }
                        ServerMessage::Error { code, .. } => sh.error(format!("server_error_{code}")),
                        ServerMessage::Goodbye { reason, .. } => break End::Lost(format!("goodbye_{reason}")),
                        _ => {}
                    },
                    Event::ProtocolError { code, .. } => sh.error(format!("protocol_{code}")),
                    Event::Closed(_) => break End::Lost("connection_closed".into()),
                }
            }
            _ = end_rx.changed() => break End::Done,
            _ = go.changed(), if !gate_open => {}
            _ = sleep_until(gate.deadline.into()), if !gate_open => {
                if gate.opened().is_none() {
                    sh.error("room_start_timeout");
                    gate.open();
                }
            }
            _ = sleep_until(churn_deadline.into()), if churn_at.is_some() && !*ctx.stop.borrow() => break End::Churn,
        }
    };
    if *ctx.end.borrow() && !matches!(result, End::Done) {
        // Closed while the run was ending: not an error.
        finish(ctx, spec, streams, subs, first, true);
        drop(ctl_tx);
        let _ = sender.await;
        sh.connected.fetch_sub(1, Relaxed);
        return End::Done;
    }
    finish(ctx, spec, streams, subs, first, matches!(result, End::Done));
    drop(ctl_tx);
    let _ = tokio::time::timeout(Duration::from_secs(3), sender).await;
    sh.connected.fetch_sub(1, Relaxed);
    result
}

/// Hand the session's streams to the report; at the end of the run, add the frames the
/// publishers sent after the last one received (tail loss), and streams that never arrived.
fn finish(
    ctx: &Ctx,
    spec: &Spec,
    mut streams: HashMap<(u32, u8), StreamStat>,
    subs: HashMap<u32, Sub>,
    first: bool,
    at_end: bool,
) {
    if at_end && first {
        let last = ctx.shared.last_seq.lock();
        let layer = ctx.args.layer.unwrap_or(0);
        for (track, _) in subs.iter() {
            let kind = match track % 16 {
                0 | 3 => MediaKind::Audio,
                1 => MediaKind::Video,
                _ => MediaKind::Screen,
            };
            let l = if kind == MediaKind::Audio { 0 } else { layer };
            if let (Some(seq), std::collections::hash_map::Entry::Vacant(e)) =
                (last.get(&(spec.room, *track)), streams.entry((*track, l)))
            {
                // Subscribed, the publisher sent, nothing arrived: all of it was lost.
                let mut s = StreamStat::new(spec.room, spec.index, *track, l, kind);
                if l == 0 {
                    s.tail_lost = u64::from(*seq) + 1;
                }
                e.insert(s);
            }
        }
        let opened = ctx.gates[spec.room].opened();
        for ((track, layer), s) in streams.iter_mut() {
            if *layer != 0 {
                continue;
            }
            if let (Some(seq), Some(_)) = (last.get(&(spec.room, *track)), s.first_seq) {
                if *seq > s.highest {
                    s.tail_lost = u64::from(*seq - s.highest);
                }
            }
            // Subscribed before the room's media started: everything from seq 0 was due.
            let early = subs
                .get(track)
                .zip(opened)
                .is_some_and(|(sub, go)| sub.at <= go);
            if early {
                s.head_lost = u64::from(s.first_seq.unwrap_or(0));
            }
        }
    }
    ctx.shared.streams.lock().extend(streams.into_values());
}

/// Control messages per second the sender allows itself (the server allows 50).
const CONTROL_RATE: f64 = 40.0;
/// Burst of control messages (the server allows 100).
const CONTROL_BURST: f64 = 80.0;

struct Track {
    kind: MediaKind,
    slot: u32,
    player: Player,
    publisher: TrackPublisher,
    due: Instant,
}

/// Owns the sending half: forwards control messages and, once the room's gate opens and
/// until the run's stop, sends each track's frames on schedule.
async fn sender_task(
    ctx: Arc<Ctx>,
    spec: Spec,
    mut conn: ConnTx,
    pid: u32,
    slots: Vec<(u32, MediaKind)>,
    mut ctl: mpsc::Receiver<ClientMessage>,
    keyframes: Arc<[AtomicBool; 3]>,
) {
    let sh = &ctx.shared;
    let mut tracks: Vec<Track> = slots
        .iter()
        .filter_map(|(slot, kind)| {
            let clip = match kind {
                MediaKind::Audio => ctx.lib.audio.clone(),
                MediaKind::Video => ctx.lib.video.clone(),
                MediaKind::Screen => ctx.lib.screen.clone(),
            }?;
            let mut publisher = TrackPublisher::new(pid * 16 + slot, *kind);
            if *kind == MediaKind::Audio {
                publisher.set_audio_level(Some(30 + (spec.k as u8 % 40)));
            }
            Some(Track {
                kind: *kind,
                slot: *slot,
                player: Player::new(clip),
                publisher,
                due: Instant::now(),
            })
        })
        .collect();
    let per_room = ctx.args.per_room().max(1) as f64;
    let chat_every = (ctx.args.chat_rate > 0.0)
        .then(|| Duration::from_secs_f64((per_room / ctx.args.chat_rate).max(0.25)));
    let mut chat_due = Instant::now();
    let mut go = ctx.gates[spec.room].subscribe();
    let mut stop = ctx.stop.clone();
    let mut sending = false;
    let mut stopped = *stop.borrow();
    let mut ctl_tokens = CONTROL_BURST;
    let mut ctl_last = Instant::now();
    let never = Instant::now() + Duration::from_secs(365 * 86_400);
    // Publishers' video starts staggered over one keyframe interval, as real cameras are
    // not in step; with every keyframe at the same instant the fan-out would be a burst
    // no real meeting produces.
    let stagger = Duration::from_secs_f64(
        ctx.args.keyframe_secs.max(0.0) * spec.k as f64
            / ctx.args.publishers_per_room.max(1) as f64,
    );
    let start_sending = |tracks: &mut Vec<Track>, chat_due: &mut Instant| {
        let now = Instant::now();
        for t in tracks.iter_mut() {
            t.due = if t.kind == MediaKind::Audio {
                now
            } else {
                now + stagger
            };
        }
        if let Some(e) = chat_every {
            *chat_due = now + e.mul_f64((spec.k as f64 + 0.5) / per_room);
        }
    };
    if go.borrow().is_some() && !stopped {
        sending = true;
        start_sending(&mut tracks, &mut chat_due);
    }
    loop {
        let next = if sending {
            let media = tracks.iter().map(|t| t.due).min().unwrap_or(never);
            if chat_every.is_some() {
                media.min(chat_due)
            } else {
                media
            }
        } else {
            never
        };
        tokio::select! {
            biased;
            m = ctl.recv() => match m {
                Some(m) => {
                    // Stay under the server's control-message limit (PROTOCOL §5.9: 50/s,
                    // burst 100): a big meeting's joiner has one subscribe per track.
                    let now = Instant::now();
                    ctl_tokens = (ctl_tokens
                        + now.duration_since(ctl_last).as_secs_f64() * CONTROL_RATE)
                        .min(CONTROL_BURST);
                    ctl_last = now;
                    if ctl_tokens < 1.0 {
                        let wait = Duration::from_secs_f64((1.0 - ctl_tokens) / CONTROL_RATE);
                        tokio::time::sleep(wait).await;
                        ctl_tokens = 1.0;
                        ctl_last = Instant::now();
                    }
                    ctl_tokens -= 1.0;
                    if let Err(e) = conn.send_control(&m).await {
                        tracing::debug!(error = %e, "control send failed");
                        sh.error("send_control");
                    }
                }
                None => break,
            },
            _ = stop.changed(), if !stopped => {
                stopped = true;
                sending = false;
                record_last(&ctx, &spec, &tracks);
            }
            r = go.changed(), if !sending && !stopped => {
                if r.is_ok() && go.borrow().is_some() {
                    sending = true;
                    start_sending(&mut tracks, &mut chat_due);
                }
            }
            _ = sleep_until(next.into()), if sending => {
                let now = Instant::now();
                for t in tracks.iter_mut() {
                    if t.due > now {
                        continue;
                    }
                    sh.sender_lag.record(now.duration_since(t.due).as_micros() as u64);
                    if keyframes[t.slot as usize].swap(false, Relaxed) {
                        t.player.want_keyframe = true;
                    }
                    let f = t.player.next_frame();
                    let Ok(frame) = t.publisher.frame(f.keyframe, &f.data) else {
                        sh.error("frame_encode");
                        continue;
                    };
                    match conn.send_frame(&frame).await {
                        Ok(()) => sh.sent(t.kind, frame.len()),
                        Err(e) => {
                            tracing::debug!(error = %e, "media send failed");
                            // The frame is numbered: receivers will count it lost.
                            sh.sent(t.kind, frame.len());
                            sh.error(format!("send_{}", crate::stats::KIND_NAMES[kind_index(t.kind)]));
                        }
                    }
                    let iv = t.player.interval();
                    t.due += iv;
                    let now = Instant::now();
                    if now > t.due + iv * 10 {
                        // Far behind schedule (CPU starved): skip ahead rather than burst.
                        sh.error("sender_behind_schedule");
                        t.due = now;
                    }
                }
                if let Some(e) = chat_every {
                    if chat_due <= Instant::now() {
                        let m = ClientMessage::Chat { text: format!("lt {}", now_us()) };
                        if conn.send_control(&m).await.is_ok() {
                            sh.chat_sent.fetch_add(1, Relaxed);
                        }
                        chat_due += e;
                    }
                }
            }
        }
    }
    if !stopped {
        record_last(&ctx, &spec, &tracks);
    }
    conn.close().await;
}

fn record_last(ctx: &Ctx, spec: &Spec, tracks: &[Track]) {
    let mut last = ctx.shared.last_seq.lock();
    for t in tracks {
        let n = t.publisher.next_seq();
        if n > 0 {
            last.insert((spec.room, t.publisher.track_id()), n - 1);
        }
    }
}
