//! The room state machine.
//!
//! A [`Room`] is driven str0m-style: the server feeds [`Input`]s with
//! [`Room::handle_input`] and then drains [`Output`]s with [`Room::poll_output`] until it
//! answers `None`. Time is always passed in; the room never reads a clock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use quicmeet_proto::control::{self, MAX_CHAT_CHARS};
use quicmeet_proto::track::{self, Slot};
use quicmeet_proto::{
    ChatMessage, ClientMessage, EncodedFrame, MediaKind, MeetingInfo, Participant, Role,
    ServerMessage, TrackInfo,
};

use crate::rate::TokenBucket;

/// Highest layer index the room forwards (0 full, 1 half, 2 quarter).
pub const MAX_LAYER: u8 = 2;
const LAYERS: usize = MAX_LAYER as usize + 1;

/// The server's handle for one connection (one participant, lobby or admitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Room settings. `Default` gives production values.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// Sent in `welcome`.
    pub meeting: MeetingInfo,
    /// Admitted participants at most (the lobby has its own bound).
    pub max_participants: usize,
    /// Participants waiting in the lobby at most.
    pub max_lobby: usize,
    /// Largest encoded media frame accepted (header included).
    pub max_frame_len: usize,
    /// Publish token bucket: frames per second, per participant.
    pub publish_frames_per_sec: f64,
    /// Publish token bucket: frame burst.
    pub publish_frames_burst: f64,
    /// Publish token bucket: bytes per second, per participant.
    pub publish_bytes_per_sec: f64,
    /// Publish token bucket: byte burst.
    pub publish_bytes_burst: f64,
    /// Flood detection window.
    pub flood_window: Duration,
    /// A window with at least this many rate-limited frames or messages counts as flooding.
    pub flood_min_drops: u32,
    /// This many flooding windows in a row disconnect the participant (reason `flood`).
    pub flood_windows: u32,
    /// Control messages per second per participant (all types).
    pub control_per_sec: f64,
    /// Control message burst.
    pub control_burst: f64,
    /// Chat messages per second per participant.
    pub chat_per_sec: f64,
    /// Chat burst.
    pub chat_burst: f64,
    /// Reactions and hand changes per second per participant.
    pub reaction_per_sec: f64,
    /// Reaction burst.
    pub reaction_burst: f64,
    /// Keyframe requests per track and layer are sent at most this often.
    pub keyframe_request_interval: Duration,
    /// Active speaker changes are announced at most this often.
    pub speaker_interval: Duration,
    /// Chat messages kept for `welcome`.
    pub chat_history_len: usize,
    /// Frames kept per track and layer for late joiners (the current group of pictures).
    pub gop_cache_frames: usize,
    /// Bytes kept per track and layer for late joiners.
    pub gop_cache_bytes: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            meeting: MeetingInfo::default(),
            max_participants: 100,
            max_lobby: 50,
            max_frame_len: quicmeet_proto::frame::MAX_FRAME_LEN,
            publish_frames_per_sec: 300.0,
            publish_frames_burst: 600.0,
            publish_bytes_per_sec: 2_500_000.0,
            publish_bytes_burst: 4.0 * 1024.0 * 1024.0,
            flood_window: Duration::from_secs(1),
            flood_min_drops: 50,
            flood_windows: 3,
            control_per_sec: 50.0,
            control_burst: 100.0,
            chat_per_sec: 5.0,
            chat_burst: 10.0,
            reaction_per_sec: 5.0,
            reaction_burst: 10.0,
            keyframe_request_interval: Duration::from_millis(500),
            speaker_interval: Duration::from_millis(500),
            chat_history_len: 200,
            gop_cache_frames: 300,
            gop_cache_bytes: 4 * 1024 * 1024,
        }
    }
}

/// A connection asks to join (after the server checked its join token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    /// The server's handle for the connection; every output for it carries this.
    pub conn: ConnId,
    /// Display name.
    pub name: String,
    /// Email (shown to the host when knocking).
    pub email: String,
    /// Role from the join token.
    pub role: Role,
    /// The token said "waiting": the participant waits in the lobby for the host.
    pub lobby: bool,
    /// `"webtransport"` or `"websocket"`.
    pub transport: String,
}

/// Something that happened, for the room to react to.
#[derive(Debug, Clone)]
pub enum Input {
    /// A connection authenticated and wants in.
    Join(Join),
    /// A control message from a joined connection (`hello` is the server's business).
    Control(ConnId, ClientMessage),
    /// A media frame from a joined connection.
    Media(ConnId, EncodedFrame),
    /// A lower layer made by the server's transcoder for a published track (trusted; the
    /// frame's `layer` must be 1..=MAX_LAYER).
    LayerMedia(EncodedFrame),
    /// The subscriber's queue cut a track back to its next keyframe
    /// ([`crate::queue::QueueEvent::NeedKeyframe`]).
    KeyframeNeeded {
        /// The subscriber.
        from: ConnId,
        /// The track.
        track_id: u32,
    },
    /// The connection closed (reason for the others, e.g. `left`, `disconnected`).
    Leave(ConnId, String),
    /// Time passed; call at least every 100 ms or at [`Room::poll_timeout`].
    Tick,
}

/// Who a control output is for. The server serializes the message once and sends it to each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// One connection.
    One(ConnId),
    /// Several connections (never empty).
    Many(Vec<ConnId>),
}

impl Recipients {
    /// The connections, in order.
    pub fn as_slice(&self) -> &[ConnId] {
        match self {
            Recipients::One(c) => std::slice::from_ref(c),
            Recipients::Many(v) => v,
        }
    }

    /// True if `conn` is one of the recipients.
    pub fn contains(&self, conn: ConnId) -> bool {
        self.as_slice().contains(&conn)
    }
}

/// Something the server must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send a control message.
    Control {
        /// Recipients.
        to: Recipients,
        /// The message.
        msg: ServerMessage,
    },
    /// Send a media frame (WebTransport: audio as a datagram, video on the track's current
    /// group stream; WebSocket: through the subscriber's queue).
    Media {
        /// The subscriber.
        to: ConnId,
        /// Shared, byte-exact copy of what the publisher sent.
        frame: EncodedFrame,
    },
    /// Ask for a keyframe: layer 0 from the publisher (send it
    /// `keyframe_request{track_id, layer}`), lower layers from the server's transcoder.
    KeyframeRequest {
        /// The publisher's connection.
        publisher: ConnId,
        /// The track.
        track_id: u32,
        /// The layer.
        layer: u8,
    },
    /// Close the connection after flushing its control messages. The room already forgot
    /// it; a later `Leave` for it is ignored.
    Disconnect {
        /// The connection.
        who: ConnId,
        /// `left`, `denied`, `removed`, `ended`, `flood`, `room_full`, …
        reason: &'static str,
    },
    /// A connection was given a participant id.
    Joined {
        /// The connection.
        conn: ConnId,
        /// Its participant id.
        participant_id: u32,
    },
    /// Store a chat message in the meeting's history.
    ChatPersist(ChatMessage),
    /// The host ended the meeting; every connection got `Disconnect`.
    MeetingEnded {
        /// The host who ended it.
        by: u32,
    },
}

/// Misuse of the room's API by the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SfuError {
    /// No such connection in the room.
    #[error("unknown connection")]
    UnknownConnection,
    /// No such published track.
    #[error("unknown track {0}")]
    UnknownTrack(u32),
    /// The connection does not subscribe to the track.
    #[error("not subscribed to track {0}")]
    NotSubscribed(u32),
    /// Layer above [`MAX_LAYER`], or a layer for an audio track.
    #[error("invalid layer {0}")]
    BadLayer(u8),
}

/// Why media frames were not forwarded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaDrops {
    /// From a connection the room does not know.
    pub unknown_sender: u64,
    /// From a participant still in the lobby.
    pub not_admitted: u64,
    /// For a track id that belongs to somebody else (or a reserved slot).
    pub not_owner: u64,
    /// For a track that is not published.
    pub unpublished: u64,
    /// Frame kind differs from the published track's kind.
    pub kind_mismatch: u64,
    /// Layer above [`MAX_LAYER`] (or a transcoder frame claiming layer 0).
    pub bad_layer: u64,
    /// Larger than the configured maximum.
    pub oversized: u64,
    /// Over the publisher's frame or byte rate.
    pub rate_limited: u64,
}

/// Room counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomStats {
    /// Frames accepted from publishers and the transcoder.
    pub frames_in: u64,
    /// Bytes accepted.
    pub bytes_in: u64,
    /// Frame copies handed out (one per subscriber).
    pub frames_out: u64,
    /// Bytes handed out.
    pub bytes_out: u64,
    /// Frames refused, by reason.
    pub dropped: MediaDrops,
    /// Frames not sent to a subscriber because it waits for a keyframe.
    pub skipped_waiting_keyframe: u64,
    /// Video frames not forwarded because an earlier frame of their group was refused (a
    /// decoder cannot use the rest of a group with a hole in it).
    pub skipped_broken_group: u64,
    /// Keyframe requests sent.
    pub keyframe_requests: u64,
    /// Keyframe requests folded into an earlier one by the rate limit.
    pub keyframe_requests_coalesced: u64,
    /// Chat messages accepted.
    pub chat_messages: u64,
    /// Control messages refused by a rate limit.
    pub control_rate_limited: u64,
    /// Participants disconnected for flooding.
    pub flood_disconnects: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Lobby,
    Admitted,
}

#[derive(Debug)]
struct Flood {
    window_start: Instant,
    drops: u32,
    strikes: u32,
}

#[derive(Debug)]
struct Member {
    pid: u32,
    name: String,
    email: String,
    role: Role,
    admission: Admission,
    audio_muted: bool,
    video_muted: bool,
    hand_raised: bool,
    transport: String,
    publish_frames: TokenBucket,
    publish_bytes: TokenBucket,
    control: TokenBucket,
    chat: TokenBucket,
    reaction: TokenBucket,
    flood: Flood,
    /// Tracks this member subscribes to.
    subscriptions: Vec<u32>,
    /// Smoothed loudness (127 - level), 0 = silent.
    loudness: f32,
    last_audio: Option<Instant>,
}

impl Member {
    fn participant(&self) -> Participant {
        Participant {
            id: self.pid,
            name: self.name.clone(),
            role: self.role,
            audio_muted: self.audio_muted,
            video_muted: self.video_muted,
            hand_raised: self.hand_raised,
            transport: self.transport.clone(),
        }
    }

    fn admitted(&self) -> bool {
        self.admission == Admission::Admitted
    }
}

#[derive(Debug, Default)]
struct Gop {
    frames: Vec<EncodedFrame>,
    bytes: usize,
    /// `frames` holds a keyframe and every frame after it.
    complete: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct KeyframeState {
    last_sent: Option<Instant>,
    /// A request was suppressed by the rate limit and no keyframe came since.
    deferred: bool,
}

#[derive(Debug)]
struct Sub {
    conn: ConnId,
    /// Layer the subscriber (or the layer controller) wants.
    preferred: u8,
    /// Layer being forwarded now.
    current: Option<u8>,
    /// Layer to switch to at its next keyframe.
    pending: Option<u8>,
    /// Deltas of `current` are skipped until its next keyframe.
    waiting: bool,
}

#[derive(Debug)]
struct Track {
    info: TrackInfo,
    owner: ConnId,
    subs: Vec<Sub>,
    gops: [Gop; LAYERS],
    keyframes: [KeyframeState; LAYERS],
    /// A frame of the current group was refused: skip the rest until the next keyframe.
    broken: [bool; LAYERS],
}

impl Track {
    fn layer_dims(&self, layer: u8) -> (u32, u32) {
        let w = self.info.width.unwrap_or(0) >> layer;
        let h = self.info.height.unwrap_or(0) >> layer;
        (w, h)
    }
}

/// One meeting's SFU state. See the crate docs for the protocol it implements.
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    created: Instant,
    wall_ms_at_created: u64,
    members: HashMap<ConnId, Member>,
    by_pid: BTreeMap<u32, ConnId>,
    next_pid: u32,
    tracks: BTreeMap<u32, Track>,
    chat: VecDeque<ChatMessage>,
    next_chat_id: u64,
    last_chat_ts: u64,
    speaker: Option<u32>,
    next_speaker_eval: Instant,
    outputs: VecDeque<Output>,
    stats: RoomStats,
    ended: bool,
}

const SPEAKER_THRESHOLD: f32 = 127.0 - 50.0; // louder than -50 dBov
const SPEAKER_HYSTERESIS: f32 = 3.0;
const SPEAKER_SILENCE_AFTER: Duration = Duration::from_millis(300);
const SPEAKER_ALPHA: f32 = 0.2;

impl Room {
    /// A new empty room. `wall_clock_ms` is the Unix time in milliseconds at `now` (chat
    /// timestamps derive from it); `chat_history` is the stored history, oldest first.
    pub fn new(
        config: RoomConfig,
        now: Instant,
        wall_clock_ms: u64,
        chat_history: Vec<ChatMessage>,
    ) -> Self {
        let next_chat_id = chat_history.iter().map(|c| c.id + 1).max().unwrap_or(1);
        let last_chat_ts = chat_history.iter().map(|c| c.ts_ms).max().unwrap_or(0);
        let keep = config.chat_history_len;
        let skip = chat_history.len().saturating_sub(keep);
        Room {
            created: now,
            wall_ms_at_created: wall_clock_ms,
            members: HashMap::new(),
            by_pid: BTreeMap::new(),
            next_pid: 1,
            tracks: BTreeMap::new(),
            chat: chat_history.into_iter().skip(skip).collect(),
            next_chat_id,
            last_chat_ts,
            speaker: None,
            next_speaker_eval: now,
            outputs: VecDeque::with_capacity(256),
            stats: RoomStats::default(),
            ended: false,
            config,
        }
    }

    /// Next output to carry out, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The latest time the server should feed [`Input::Tick`] (deferred keyframe requests,
    /// speaker announcements). `None` when nothing is scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        if self.members.values().any(|m| m.loudness > 0.0) {
            consider(self.next_speaker_eval);
        }
        for tr in self.tracks.values() {
            for k in &tr.keyframes {
                if let (true, Some(at)) = (k.deferred, k.last_sent) {
                    consider(at + self.config.keyframe_request_interval);
                }
            }
        }
        t
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &RoomStats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &RoomConfig {
        &self.config
    }

    /// The participant id given to a connection.
    pub fn participant_id(&self, conn: ConnId) -> Option<u32> {
        self.members.get(&conn).map(|m| m.pid)
    }

    /// Admitted participants.
    pub fn participant_count(&self) -> usize {
        self.members.values().filter(|m| m.admitted()).count()
    }

    /// Participants waiting in the lobby.
    pub fn lobby_count(&self) -> usize {
        self.members.len() - self.participant_count()
    }

    /// True once the host ended the meeting.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// True when nobody is connected (the server may drop the room).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Published tracks.
    pub fn tracks(&self) -> impl Iterator<Item = &TrackInfo> {
        self.tracks.values().map(|t| &t.info)
    }

    /// Layers of a track some subscriber forwards or waits for, as a bit mask (bit n =
    /// layer n). The server's transcoder makes layer n > 0 only while its bit is set.
    pub fn wanted_layers(&self, track_id: u32) -> u8 {
        let Some(t) = self.tracks.get(&track_id) else {
            return 0;
        };
        t.subs.iter().fold(0u8, |m, s| {
            let mut m = m;
            if let Some(c) = s.current {
                m |= 1 << c;
            }
            if let Some(p) = s.pending {
                m |= 1 << p;
            }
            m
        })
    }

    /// A subscriber's subscriptions: `(track_id, preferred layer, layer forwarded now)`.
    /// Audio tracks always report layer 0.
    pub fn subscriptions(
        &self,
        subscriber: ConnId,
    ) -> impl Iterator<Item = (u32, u8, Option<u8>)> + '_ {
        self.members
            .get(&subscriber)
            .map(|m| m.subscriptions.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(move |t| {
                let s = self
                    .tracks
                    .get(t)?
                    .subs
                    .iter()
                    .find(|s| s.conn == subscriber)?;
                Some((*t, s.preferred, s.current))
            })
    }

    /// A subscription's (preferred, currently forwarded) layer.
    pub fn subscription_layer(
        &self,
        subscriber: ConnId,
        track_id: u32,
    ) -> Option<(u8, Option<u8>)> {
        let t = self.tracks.get(&track_id)?;
        let s = t.subs.iter().find(|s| s.conn == subscriber)?;
        Some((s.preferred, s.current))
    }

    /// Choose the layer a subscriber gets for a video track (the layer controller's lever).
    ///
    /// The switch happens at the next keyframe of that layer, which is requested now
    /// (rate-limited); the subscriber then gets `layer_changed` followed by that keyframe.
    /// Until then it keeps receiving its current layer.
    pub fn set_layer(
        &mut self,
        now: Instant,
        subscriber: ConnId,
        track_id: u32,
        layer: u8,
    ) -> Result<(), SfuError> {
        if layer > MAX_LAYER {
            return Err(SfuError::BadLayer(layer));
        }
        let track = self
            .tracks
            .get(&track_id)
            .ok_or(SfuError::UnknownTrack(track_id))?;
        if !track.info.kind.is_video() {
            return Err(SfuError::BadLayer(layer));
        }
        let idx = track
            .subs
            .iter()
            .position(|s| s.conn == subscriber)
            .ok_or(SfuError::NotSubscribed(track_id))?;
        self.switch_layer(now, track_id, idx, layer);
        Ok(())
    }

    /// Feed one input. Outputs queue up for [`Room::poll_output`].
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Join(j) => self.join(now, j),
            Input::Control(from, msg) => self.control(now, from, msg),
            Input::Media(from, frame) => self.media(now, from, frame),
            Input::LayerMedia(frame) => self.layer_media(now, frame),
            Input::KeyframeNeeded { from, track_id } => self.keyframe_needed(now, from, track_id),
            Input::Leave(conn, reason) => {
                if self.members.contains_key(&conn) {
                    self.remove_member(conn, &reason);
                }
            }
            Input::Tick => self.tick(now),
        }
        if now >= self.next_speaker_eval {
            self.evaluate_speaker(now);
        }
    }

    // ----- outputs -----

    fn send(&mut self, to: ConnId, msg: ServerMessage) {
        self.outputs.push_back(Output::Control {
            to: Recipients::One(to),
            msg,
        });
    }

    fn error(&mut self, to: ConnId, code: &str, message: &str) {
        self.send(to, ServerMessage::error(code, message));
    }

    /// Every admitted participant, optionally but one.
    fn admitted_except(&self, except: Option<ConnId>) -> Vec<ConnId> {
        self.by_pid
            .values()
            .copied()
            .filter(|c| Some(*c) != except && self.members[c].admitted())
            .collect()
    }

    fn broadcast(&mut self, except: Option<ConnId>, msg: ServerMessage) {
        let mut to = self.admitted_except(except);
        match to.len() {
            0 => {}
            1 => self.outputs.push_back(Output::Control {
                to: Recipients::One(to.pop().expect("one")),
                msg,
            }),
            _ => self.outputs.push_back(Output::Control {
                to: Recipients::Many(to),
                msg,
            }),
        }
    }

    fn hosts(&self) -> Vec<ConnId> {
        self.by_pid
            .values()
            .copied()
            .filter(|c| {
                let m = &self.members[c];
                m.admitted() && m.role == Role::Host
            })
            .collect()
    }

    fn wall_ms(&self, now: Instant) -> u64 {
        self.wall_ms_at_created + now.saturating_duration_since(self.created).as_millis() as u64
    }

    // ----- membership -----

    fn join(&mut self, now: Instant, j: Join) {
        if self.members.contains_key(&j.conn) {
            self.error(j.conn, "already_joined", "This connection already joined");
            return;
        }
        if self.ended {
            self.send(
                j.conn,
                ServerMessage::goodbye("ended", "The meeting has ended"),
            );
            self.outputs.push_back(Output::Disconnect {
                who: j.conn,
                reason: "ended",
            });
            return;
        }
        let lobby = j.lobby && j.role != Role::Host;
        let full = if lobby {
            self.lobby_count() >= self.config.max_lobby
        } else {
            self.participant_count() >= self.config.max_participants
        };
        if full {
            self.send(
                j.conn,
                ServerMessage::goodbye("room_full", "The meeting is full"),
            );
            self.outputs.push_back(Output::Disconnect {
                who: j.conn,
                reason: "room_full",
            });
            return;
        }
        let pid = self.next_pid;
        self.next_pid += 1;
        let c = &self.config;
        let member = Member {
            pid,
            name: j.name,
            email: j.email,
            role: j.role,
            admission: if lobby {
                Admission::Lobby
            } else {
                Admission::Admitted
            },
            audio_muted: false,
            video_muted: false,
            hand_raised: false,
            transport: j.transport,
            publish_frames: TokenBucket::new(now, c.publish_frames_per_sec, c.publish_frames_burst),
            publish_bytes: TokenBucket::new(now, c.publish_bytes_per_sec, c.publish_bytes_burst),
            control: TokenBucket::new(now, c.control_per_sec, c.control_burst),
            chat: TokenBucket::new(now, c.chat_per_sec, c.chat_burst),
            reaction: TokenBucket::new(now, c.reaction_per_sec, c.reaction_burst),
            flood: Flood {
                window_start: now,
                drops: 0,
                strikes: 0,
            },
            subscriptions: Vec::new(),
            loudness: 0.0,
            last_audio: None,
        };
        self.members.insert(j.conn, member);
        self.by_pid.insert(pid, j.conn);
        self.outputs.push_back(Output::Joined {
            conn: j.conn,
            participant_id: pid,
        });
        if lobby {
            self.send(
                j.conn,
                ServerMessage::Lobby {
                    message: "Waiting for the host to let you in".into(),
                },
            );
            self.knock(j.conn);
        } else {
            self.admit_member(j.conn);
        }
    }

    fn knock(&mut self, conn: ConnId) {
        let m = &self.members[&conn];
        let msg = ServerMessage::Knock {
            participant_id: m.pid,
            name: m.name.clone(),
            email: m.email.clone(),
        };
        let hosts = self.hosts();
        if !hosts.is_empty() {
            self.outputs.push_back(Output::Control {
                to: Recipients::Many(hosts),
                msg,
            });
        }
    }

    /// Mark admitted, send welcome, tell the others; a host also hears of the waiting lobby.
    fn admit_member(&mut self, conn: ConnId) {
        let m = self.members.get_mut(&conn).expect("member");
        m.admission = Admission::Admitted;
        let (pid, role) = (m.pid, m.role);
        let participant = m.participant();
        let welcome = ServerMessage::Welcome {
            participant_id: pid,
            role,
            meeting: self.config.meeting.clone(),
            participants: self
                .by_pid
                .values()
                .map(|c| &self.members[c])
                .filter(|m| m.admitted())
                .map(Member::participant)
                .collect(),
            tracks: self.tracks.values().map(|t| t.info.clone()).collect(),
            chat: self.chat.iter().cloned().collect(),
        };
        self.send(conn, welcome);
        self.broadcast(Some(conn), ServerMessage::ParticipantJoined { participant });
        if role == Role::Host {
            let waiting: Vec<ConnId> = self
                .by_pid
                .values()
                .copied()
                .filter(|c| !self.members[c].admitted())
                .collect();
            for w in waiting {
                let m = &self.members[&w];
                let msg = ServerMessage::Knock {
                    participant_id: m.pid,
                    name: m.name.clone(),
                    email: m.email.clone(),
                };
                self.send(conn, msg);
            }
        }
    }

    /// Forget a member: its subscriptions, its tracks, and tell the others.
    fn remove_member(&mut self, conn: ConnId, reason: &str) {
        let Some(m) = self.members.remove(&conn) else {
            return;
        };
        self.by_pid.remove(&m.pid);
        for t in &m.subscriptions {
            if let Some(track) = self.tracks.get_mut(t) {
                track.subs.retain(|s| s.conn != conn);
            }
        }
        let owned: Vec<u32> = self
            .tracks
            .range(m.pid * 16..m.pid * 16 + 16)
            .map(|(id, _)| *id)
            .collect();
        for t in owned {
            self.drop_track(t);
        }
        if self.speaker == Some(m.pid) {
            self.speaker = None;
        }
        let msg = ServerMessage::ParticipantLeft {
            participant_id: m.pid,
            reason: reason.to_owned(),
        };
        if m.admitted() {
            self.broadcast(None, msg);
        } else {
            let hosts = self.hosts();
            if !hosts.is_empty() {
                self.outputs.push_back(Output::Control {
                    to: Recipients::Many(hosts),
                    msg,
                });
            }
        }
    }

    /// Remove a member on the room's initiative: last words, disconnect, tell the others.
    fn expel(&mut self, conn: ConnId, last: ServerMessage, reason: &'static str) {
        self.send(conn, last);
        self.outputs
            .push_back(Output::Disconnect { who: conn, reason });
        self.remove_member(conn, reason);
    }

    fn drop_track(&mut self, track_id: u32) {
        let Some(t) = self.tracks.remove(&track_id) else {
            return;
        };
        for s in &t.subs {
            if let Some(m) = self.members.get_mut(&s.conn) {
                m.subscriptions.retain(|x| *x != track_id);
            }
        }
        self.broadcast(None, ServerMessage::TrackUnpublished { track_id });
    }

    // ----- control -----

    fn control(&mut self, now: Instant, from: ConnId, msg: ClientMessage) {
        let Some(m) = self.members.get_mut(&from) else {
            return;
        };
        if !m.control.try_take(now, 1.0) {
            self.stats.control_rate_limited += 1;
            self.error(from, "rate_limited", "Too many messages");
            self.count_flood(now, from);
            return;
        }
        let admitted = m.admitted();
        match msg {
            ClientMessage::Ping { t } => return self.send(from, ServerMessage::Pong { t }),
            ClientMessage::Leave {} => {
                self.outputs.push_back(Output::Disconnect {
                    who: from,
                    reason: "left",
                });
                return self.remove_member(from, "left");
            }
            ClientMessage::Hello { .. } => {
                return self.error(from, "unexpected", "Already joined");
            }
            _ if !admitted => {
                return self.error(from, "not_admitted", "Waiting for the host to let you in");
            }
            _ => {}
        }
        match msg {
            ClientMessage::Publish {
                track_id,
                kind,
                codec,
                width,
                height,
            } => self.publish(from, track_id, kind, codec, width, height),
            ClientMessage::Unpublish { track_id } => {
                let pid = self.members[&from].pid;
                if track::participant_of(track_id) != pid || !self.tracks.contains_key(&track_id) {
                    return self.error(from, "unknown_track", "Not one of your published tracks");
                }
                self.drop_track(track_id);
            }
            ClientMessage::Subscribe {
                track_id,
                max_width,
                max_height,
                layer,
            } => self.subscribe(now, from, track_id, max_width, max_height, layer),
            ClientMessage::Unsubscribe { track_id } => {
                if let Some(t) = self.tracks.get_mut(&track_id) {
                    t.subs.retain(|s| s.conn != from);
                }
                if let Some(m) = self.members.get_mut(&from) {
                    m.subscriptions.retain(|t| *t != track_id);
                }
            }
            ClientMessage::Mute { audio, video } => {
                let m = self.members.get_mut(&from).expect("member");
                m.audio_muted = audio;
                m.video_muted = video;
                if audio {
                    m.loudness = 0.0;
                }
                let participant_id = m.pid;
                self.broadcast(
                    None,
                    ServerMessage::MuteState {
                        participant_id,
                        audio,
                        video,
                    },
                );
            }
            ClientMessage::Chat { text } => self.chat(now, from, text),
            ClientMessage::Reaction { emoji } => {
                if emoji.is_empty() || emoji.len() > 32 {
                    return self.error(from, "bad_request", "A reaction is one emoji");
                }
                if !self.take_reaction(now, from) {
                    return;
                }
                let participant_id = self.members[&from].pid;
                self.broadcast(
                    None,
                    ServerMessage::Reaction {
                        participant_id,
                        emoji,
                    },
                );
            }
            ClientMessage::Hand { raised } => {
                if !self.take_reaction(now, from) {
                    return;
                }
                let m = self.members.get_mut(&from).expect("member");
                m.hand_raised = raised;
                let participant_id = m.pid;
                self.broadcast(
                    None,
                    ServerMessage::Hand {
                        participant_id,
                        raised,
                    },
                );
            }
            ClientMessage::KeyframeRequest { track_id } => {
                let layer = self.tracks.get(&track_id).and_then(|t| {
                    t.subs
                        .iter()
                        .find(|s| s.conn == from)
                        .map(|s| s.current.or(s.pending).unwrap_or(0))
                });
                match layer {
                    Some(l) => self.request_keyframe(now, track_id, l),
                    None => self.error(from, "not_subscribed", "Subscribe to the track first"),
                }
            }
            ClientMessage::Admit { participant_id }
            | ClientMessage::Deny { participant_id }
            | ClientMessage::MuteParticipant { participant_id }
            | ClientMessage::Remove { participant_id } => {
                self.host_action(from, &msg, participant_id)
            }
            ClientMessage::EndMeeting {} => self.end_meeting(from),
            ClientMessage::Signal { to, data } => {
                let target = self.by_pid.get(&to).copied();
                match target {
                    Some(t) if self.members[&t].admitted() => {
                        let from_pid = self.members[&from].pid;
                        self.send(
                            t,
                            ServerMessage::Signal {
                                from: from_pid,
                                data,
                            },
                        );
                    }
                    _ => self.error(from, "unknown_participant", "No such participant"),
                }
            }
            // Where the sender's media goes (PROTOCOL.md §5.12): the server counts it for
            // /metrics; routing needs nothing, since a direct participant simply sends no frames.
            ClientMessage::MediaPath { .. } => {}
            ClientMessage::Ping { .. } | ClientMessage::Leave {} | ClientMessage::Hello { .. } => {
                unreachable!("handled above")
            }
        }
    }

    fn take_reaction(&mut self, now: Instant, from: ConnId) -> bool {
        let m = self.members.get_mut(&from).expect("member");
        if m.reaction.try_take(now, 1.0) {
            return true;
        }
        self.stats.control_rate_limited += 1;
        self.error(from, "rate_limited", "Slow down");
        false
    }

    fn publish(
        &mut self,
        from: ConnId,
        track_id: u32,
        kind: MediaKind,
        codec: String,
        width: Option<u32>,
        height: Option<u32>,
    ) {
        let pid = self.members[&from].pid;
        let slot_ok = track::slot_of(track_id).map(Slot::kind) == Some(kind);
        if track::participant_of(track_id) != pid || !slot_ok {
            return self.error(
                from,
                "bad_track",
                "track_id must be your participant_id * 16 + the slot of this kind",
            );
        }
        if self.tracks.contains_key(&track_id) {
            return self.error(from, "already_published", "Track already published");
        }
        if codec.is_empty() || codec.len() > 32 {
            return self.error(from, "bad_request", "Invalid codec name");
        }
        let info = TrackInfo {
            track_id,
            participant_id: pid,
            kind,
            codec,
            width,
            height,
        };
        self.tracks.insert(
            track_id,
            Track {
                info: info.clone(),
                owner: from,
                subs: Vec::new(),
                gops: Default::default(),
                keyframes: Default::default(),
                broken: [false; LAYERS],
            },
        );
        self.broadcast(None, ServerMessage::TrackPublished { track: info });
    }

    fn subscribe(
        &mut self,
        now: Instant,
        from: ConnId,
        track_id: u32,
        max_width: Option<u32>,
        max_height: Option<u32>,
        layer: Option<u8>,
    ) {
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return self.error(from, "unknown_track", "No such track");
        };
        let video = track.info.kind.is_video();
        let preferred = match layer {
            _ if !video => 0,
            Some(l) => l.min(MAX_LAYER),
            None => choose_layer(track.info.width, track.info.height, max_width, max_height),
        };
        if let Some(idx) = track.subs.iter().position(|s| s.conn == from) {
            if video {
                self.switch_layer(now, track_id, idx, preferred);
            }
            return;
        }
        track.subs.push(Sub {
            conn: from,
            preferred,
            current: if video { None } else { Some(0) },
            pending: None,
            waiting: false,
        });
        let idx = track.subs.len() - 1;
        if let Some(m) = self.members.get_mut(&from) {
            m.subscriptions.push(track_id);
        }
        if video {
            self.switch_layer(now, track_id, idx, preferred);
        }
    }

    /// Point a video subscription at `layer`: immediately from the cached group of pictures
    /// if it has none yet, otherwise at the layer's next keyframe.
    fn switch_layer(&mut self, now: Instant, track_id: u32, idx: usize, layer: u8) {
        let track = self.tracks.get_mut(&track_id).expect("track");
        let sub = &mut track.subs[idx];
        sub.preferred = layer;
        if sub.current == Some(layer) {
            sub.pending = None;
            return;
        }
        let gop = &track.gops[layer as usize];
        if sub.current.is_none() && gop.complete && !gop.frames.is_empty() {
            // Late joiner: replay the current group so its decoder is in step at once.
            sub.current = Some(layer);
            sub.pending = None;
            sub.waiting = false;
            let to = sub.conn;
            let (width, height) = track.layer_dims(layer);
            self.outputs.push_back(Output::Control {
                to: Recipients::One(to),
                msg: ServerMessage::LayerChanged {
                    track_id,
                    layer,
                    width,
                    height,
                },
            });
            for f in &gop.frames {
                self.stats.frames_out += 1;
                self.stats.bytes_out += f.len() as u64;
                self.outputs.push_back(Output::Media {
                    to,
                    frame: f.clone(),
                });
            }
            return;
        }
        sub.pending = Some(layer);
        self.request_keyframe(now, track_id, layer);
    }

    fn chat(&mut self, now: Instant, from: ConnId, text: String) {
        if text.trim().is_empty() {
            return self.error(from, "bad_request", "Empty message");
        }
        if text.chars().count() > MAX_CHAT_CHARS {
            return self.error(
                from,
                "too_long",
                "Chat messages are at most 2000 characters",
            );
        }
        let wall = self.wall_ms(now);
        let m = self.members.get_mut(&from).expect("member");
        if !m.chat.try_take(now, 1.0) {
            self.stats.control_rate_limited += 1;
            return self.error(from, "rate_limited", "You are sending messages too fast");
        }
        let ts_ms = wall.max(self.last_chat_ts);
        self.last_chat_ts = ts_ms;
        let msg = ChatMessage {
            id: self.next_chat_id,
            participant_id: m.pid,
            name: m.name.clone(),
            text,
            ts_ms,
        };
        self.next_chat_id += 1;
        self.stats.chat_messages += 1;
        if self.chat.len() >= self.config.chat_history_len {
            self.chat.pop_front();
        }
        if self.config.chat_history_len > 0 {
            self.chat.push_back(msg.clone());
        }
        self.outputs.push_back(Output::ChatPersist(msg.clone()));
        self.broadcast(None, ServerMessage::Chat(msg));
    }

    fn host_action(&mut self, from: ConnId, msg: &ClientMessage, target_pid: u32) {
        let host = &self.members[&from];
        if host.role != Role::Host {
            return self.error(
                from,
                "forbidden",
                &format!("Only the host can {}", msg.type_name().replace('_', " ")),
            );
        }
        let host_pid = host.pid;
        let Some(&target) = self.by_pid.get(&target_pid) else {
            return self.error(from, "unknown_participant", "No such participant");
        };
        let target_admitted = self.members[&target].admitted();
        match msg {
            ClientMessage::Admit { .. } => {
                if target_admitted {
                    return self.error(from, "not_in_lobby", "Already admitted");
                }
                if self.participant_count() >= self.config.max_participants {
                    return self.error(from, "room_full", "The meeting is full");
                }
                self.admit_member(target);
            }
            ClientMessage::Deny { .. } => {
                if target_admitted {
                    return self.error(from, "not_in_lobby", "Already admitted");
                }
                self.expel(
                    target,
                    ServerMessage::Denied {
                        reason: "denied".into(),
                    },
                    "denied",
                );
            }
            ClientMessage::MuteParticipant { .. } => {
                if !target_admitted {
                    return self.error(from, "not_admitted", "Still in the lobby");
                }
                self.send(target, ServerMessage::PleaseMute { by: host_pid });
            }
            ClientMessage::Remove { .. } => {
                self.expel(
                    target,
                    ServerMessage::goodbye("removed", "The host removed you from the meeting"),
                    "removed",
                );
            }
            _ => {}
        }
    }

    fn end_meeting(&mut self, from: ConnId) {
        let m = &self.members[&from];
        if m.role != Role::Host {
            return self.error(from, "forbidden", "Only the host can end the meeting");
        }
        let by = m.pid;
        let all: Vec<ConnId> = self.by_pid.values().copied().collect();
        self.outputs.push_back(Output::Control {
            to: Recipients::Many(all.clone()),
            msg: ServerMessage::goodbye("ended", "The host ended the meeting"),
        });
        for c in &all {
            self.outputs.push_back(Output::Disconnect {
                who: *c,
                reason: "ended",
            });
        }
        self.members.clear();
        self.by_pid.clear();
        self.tracks.clear();
        self.ended = true;
        self.outputs.push_back(Output::MeetingEnded { by });
    }

    // ----- media -----

    fn media(&mut self, now: Instant, from: ConnId, frame: EncodedFrame) {
        let Some(m) = self.members.get_mut(&from) else {
            self.stats.dropped.unknown_sender += 1;
            return;
        };
        if !m.admitted() {
            self.stats.dropped.not_admitted += 1;
            return;
        }
        let len = frame.len();
        // Both buckets are checked before either is charged, so a refused frame costs nothing.
        let pid = m.pid;
        if !(m.publish_frames.has(now, 1.0) && m.publish_bytes.has(now, len as f64)) {
            self.stats.dropped.rate_limited += 1;
            self.break_group(now, pid, &frame);
            self.count_flood(now, from);
            return;
        }
        m.publish_frames.try_take(now, 1.0);
        m.publish_bytes.try_take(now, len as f64);
        if len > self.config.max_frame_len {
            self.stats.dropped.oversized += 1;
            self.break_group(now, pid, &frame);
            return;
        }
        let h = *frame.header();
        if track::participant_of(h.track_id) != m.pid {
            self.stats.dropped.not_owner += 1;
            return;
        }
        let Some(track) = self.tracks.get(&h.track_id) else {
            self.stats.dropped.unpublished += 1;
            return;
        };
        if track.info.kind != h.kind {
            self.stats.dropped.kind_mismatch += 1;
            return;
        }
        if h.layer > MAX_LAYER {
            self.stats.dropped.bad_layer += 1;
            return;
        }
        if let (Some(level), Some(Slot::Mic)) = (h.audio_level, track::slot_of(h.track_id)) {
            if !m.audio_muted {
                let loud = f32::from(127 - level.min(127));
                m.loudness += SPEAKER_ALPHA * (loud - m.loudness);
                m.last_audio = Some(now);
            }
        }
        self.forward(frame);
    }

    /// A real frame of a publisher's video group was refused: the rest of the group is
    /// undecodable, so stop forwarding and caching it and ask for a new keyframe.
    fn break_group(&mut self, now: Instant, pid: u32, frame: &EncodedFrame) {
        let h = frame.header();
        if !h.kind.is_video() || h.layer > MAX_LAYER || track::participant_of(h.track_id) != pid {
            return;
        }
        let Some(t) = self.tracks.get_mut(&h.track_id) else {
            return;
        };
        if t.info.kind != h.kind {
            return;
        }
        let l = h.layer as usize;
        t.broken[l] = true;
        let gop = &mut t.gops[l];
        gop.complete = false;
        gop.frames.clear();
        gop.bytes = 0;
        let wanted = t.subs.iter().any(|s| s.current == Some(h.layer));
        if wanted {
            self.request_keyframe(now, h.track_id, h.layer);
        }
    }

    fn layer_media(&mut self, _now: Instant, frame: EncodedFrame) {
        let h = *frame.header();
        if !h.kind.is_video() || h.layer == 0 || h.layer > MAX_LAYER {
            self.stats.dropped.bad_layer += 1;
            return;
        }
        match self.tracks.get(&h.track_id) {
            Some(t) if t.info.kind == h.kind => self.forward(frame),
            Some(_) => self.stats.dropped.kind_mismatch += 1,
            None => self.stats.dropped.unpublished += 1,
        }
    }

    /// The hot path: hand one frame to every subscriber that should get it. No allocation
    /// in steady state: outputs go into a pre-sized deque, frames are shared `Bytes`.
    fn forward(&mut self, frame: EncodedFrame) {
        let h = *frame.header();
        let len = frame.len() as u64;
        self.stats.frames_in += 1;
        self.stats.bytes_in += len;
        let Some(track) = self.tracks.get_mut(&h.track_id) else {
            return;
        };
        let video = h.kind.is_video();
        let layer = h.layer as usize;
        if video {
            if h.keyframe {
                track.broken[layer] = false;
            } else if track.broken[layer] {
                self.stats.skipped_broken_group += 1;
                return;
            }
            let gop = &mut track.gops[layer];
            if h.keyframe {
                gop.frames.clear();
                gop.bytes = 0;
                gop.complete = true;
                track.keyframes[layer].deferred = false;
            }
            if gop.complete {
                if gop.frames.len() < self.config.gop_cache_frames
                    && gop.bytes + frame.len() <= self.config.gop_cache_bytes
                {
                    gop.bytes += frame.len();
                    gop.frames.push(frame.clone());
                } else {
                    gop.complete = false;
                    gop.frames.clear();
                    gop.bytes = 0;
                }
            }
        }
        for sub in track.subs.iter_mut() {
            if video {
                if h.keyframe && sub.pending == Some(h.layer) {
                    sub.current = Some(h.layer);
                    sub.pending = None;
                    sub.waiting = false;
                    let w = track.info.width.unwrap_or(0) >> h.layer;
                    let hh = track.info.height.unwrap_or(0) >> h.layer;
                    self.outputs.push_back(Output::Control {
                        to: Recipients::One(sub.conn),
                        msg: ServerMessage::LayerChanged {
                            track_id: h.track_id,
                            layer: h.layer,
                            width: w,
                            height: hh,
                        },
                    });
                }
                if sub.current != Some(h.layer) {
                    continue;
                }
                if sub.waiting {
                    if !h.keyframe {
                        self.stats.skipped_waiting_keyframe += 1;
                        continue;
                    }
                    sub.waiting = false;
                }
            }
            self.stats.frames_out += 1;
            self.stats.bytes_out += len;
            self.outputs.push_back(Output::Media {
                to: sub.conn,
                frame: frame.clone(),
            });
        }
    }

    fn keyframe_needed(&mut self, now: Instant, from: ConnId, track_id: u32) {
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        if !track.info.kind.is_video() {
            return;
        }
        let Some(sub) = track.subs.iter_mut().find(|s| s.conn == from) else {
            return;
        };
        let layer = match (sub.current, sub.pending) {
            (Some(c), _) => {
                sub.waiting = true;
                c
            }
            (None, Some(p)) => p,
            (None, None) => return,
        };
        self.request_keyframe(now, track_id, layer);
    }

    fn request_keyframe(&mut self, now: Instant, track_id: u32, layer: u8) {
        let interval = self.config.keyframe_request_interval;
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        if !track.info.kind.is_video() || layer > MAX_LAYER {
            return;
        }
        let k = &mut track.keyframes[layer as usize];
        if k.last_sent.is_some_and(|t| now < t + interval) {
            k.deferred = true;
            self.stats.keyframe_requests_coalesced += 1;
            return;
        }
        k.last_sent = Some(now);
        k.deferred = false;
        self.stats.keyframe_requests += 1;
        self.outputs.push_back(Output::KeyframeRequest {
            publisher: track.owner,
            track_id,
            layer,
        });
    }

    fn count_flood(&mut self, now: Instant, from: ConnId) {
        let c = &self.config;
        let Some(m) = self.members.get_mut(&from) else {
            return;
        };
        let f = &mut m.flood;
        if now >= f.window_start + c.flood_window {
            let flooded = f.drops >= c.flood_min_drops;
            let gap = now >= f.window_start + c.flood_window * 2;
            f.strikes = if flooded && !gap { f.strikes + 1 } else { 0 };
            f.drops = 0;
            f.window_start = now;
        }
        f.drops += 1;
        if f.drops >= c.flood_min_drops && f.strikes + 1 >= c.flood_windows {
            self.stats.flood_disconnects += 1;
            self.expel(
                from,
                ServerMessage::goodbye("flood", "Disconnected for sending too much"),
                "flood",
            );
        }
    }

    // ----- time -----

    fn tick(&mut self, now: Instant) {
        let interval = self.config.keyframe_request_interval;
        let mut due: Vec<(u32, u8)> = Vec::new();
        for (id, t) in &self.tracks {
            for (l, k) in t.keyframes.iter().enumerate() {
                if k.deferred && k.last_sent.is_none_or(|s| now >= s + interval) {
                    due.push((*id, l as u8));
                }
            }
        }
        for (id, l) in due {
            self.request_keyframe(now, id, l);
        }
    }

    fn evaluate_speaker(&mut self, now: Instant) {
        self.next_speaker_eval = now + self.config.speaker_interval;
        let mut best: Option<(u32, f32)> = None;
        let mut current_loudness = 0.0;
        for m in self.members.values_mut() {
            if m.last_audio
                .is_none_or(|t| now.saturating_duration_since(t) > SPEAKER_SILENCE_AFTER)
            {
                m.loudness = 0.0;
            }
            if Some(m.pid) == self.speaker {
                current_loudness = m.loudness;
            }
            if m.admitted()
                && m.loudness >= SPEAKER_THRESHOLD
                && best.is_none_or(|(_, l)| m.loudness > l)
            {
                best = Some((m.pid, m.loudness));
            }
        }
        if let Some((pid, loud)) = best {
            if Some(pid) != self.speaker
                && (self.speaker.is_none() || loud > current_loudness + SPEAKER_HYSTERESIS)
            {
                self.speaker = Some(pid);
                self.broadcast(
                    None,
                    ServerMessage::ActiveSpeaker {
                        participant_id: pid,
                    },
                );
            }
        }
    }
}

/// The smallest layer that still covers a tile of `max_width` x `max_height` (each layer
/// halves both sides of the source), so the subscriber never gets more pixels than it shows
/// and never fewer than it needs; layer 0 when sizes are unknown or the tile is larger than
/// the source. A missing bound counts as "any size".
pub fn choose_layer(
    width: Option<u32>,
    height: Option<u32>,
    max_width: Option<u32>,
    max_height: Option<u32>,
) -> u8 {
    if max_width.is_none() && max_height.is_none() {
        return 0;
    }
    let covers = |l: u8| {
        let w_ok = match (width, max_width) {
            (Some(w), Some(m)) => (w >> l) >= m,
            (None, Some(_)) => l == 0,
            _ => true,
        };
        let h_ok = match (height, max_height) {
            (Some(h), Some(m)) => (h >> l) >= m,
            (None, Some(_)) => l == 0,
            _ => true,
        };
        w_ok && h_ok
    };
    (0..=MAX_LAYER).rev().find(|&l| covers(l)).unwrap_or(0)
}

/// Encode a server message for a WebSocket subscriber queue (type byte included).
pub fn ws_control_bytes(msg: &ServerMessage) -> bytes::Bytes {
    let mut v = Vec::with_capacity(128);
    v.push(quicmeet_proto::ws::TYPE_CONTROL);
    v.extend_from_slice(&control::encode(msg));
    bytes::Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_choice_halves_per_layer() {
        let (w, h) = (Some(1280), Some(720));
        assert_eq!(choose_layer(w, h, None, None), 0);
        assert_eq!(choose_layer(w, h, Some(1280), Some(720)), 0);
        assert_eq!(choose_layer(w, h, Some(1920), Some(1080)), 0);
        assert_eq!(choose_layer(w, h, Some(640), Some(360)), 1);
        // A 400-wide tile needs the 640-wide layer: 320 would be upscaled and blurry.
        assert_eq!(choose_layer(w, h, Some(400), None), 1);
        assert_eq!(choose_layer(w, h, Some(320), Some(180)), 2);
        assert_eq!(choose_layer(w, h, Some(10), Some(10)), 2);
        assert_eq!(choose_layer(None, None, Some(10), Some(10)), 0);
    }
}
