//! The room state machine.
//!
//! A [`Room`] is driven str0m-style: the server feeds [`Input`]s with
//! [`Room::handle_input`] and then drains [`Output`]s with [`Room::poll_output`] until it
//! answers `None`, and feeds [`Input::Tick`] when [`Room::poll_timeout`] is due. Time is
//! always passed in; the room never reads a clock.
//!
//! One concern per file: [`types`] (the public vocabulary), `state` (what the room
//! remembers), `membership` (join, lobby, leave), `control` (the client's control messages),
//! `host` (host powers), `chat`, `subscription` (subscribe and layer switching), `forward`
//! (the media hot path), `keyframe` (requests and their rate limit), `speaker` (active
//! speaker), `timer` (the timer table behind `poll_timeout`).

mod chat;
mod control;
mod forward;
mod host;
mod keyframe;
mod membership;
mod offload;
mod remote;
mod speaker;
mod state;
mod subscription;
mod timer;
mod types;

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use quicmeet_proto::{ChatMessage, Role, ServerMessage, TrackInfo};

use crate::bwe::{self, Bwe};
use state::{Member, Track};
use timer::{Timer, TimerTable};

pub use offload::{LayerSource, OffloadConfig, TranscoderLoad};
pub use types::{
    ConnId, ConnIdHash, ConnIdHasher, ConnMap, Input, Join, MediaDrops, Output, Recipients, Remote,
    RoomConfig, RoomStats, RosterEntry, SfuError, MAX_LAYER,
};

/// One meeting's SFU state. See the crate docs for the protocol it implements.
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    created: Instant,
    wall_ms_at_created: u64,
    members: ConnMap<Member>,
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
    /// Which layer each video subscription gets (preference and congestion).
    bwe: Bwe,
    timers: TimerTable,
    /// Bumped whenever the set of tracks or some track's wanted layers change.
    layers_version: u64,
    /// The latest time fed in (for bookkeeping that happens outside a timed input).
    now: Instant,
    /// When track rates were last reported to the layer policy.
    rates_at: Instant,
    /// Publisher-made layers: the room's view of the transcoder pool.
    offload: offload::Offload,
}

impl Room {
    /// A new empty room. `wall_clock_ms` is the Unix time in milliseconds at `now` (chat
    /// timestamps derive from it); `chat_history` is the stored history, oldest first.
    pub fn new(
        config: RoomConfig,
        now: Instant,
        wall_clock_ms: u64,
        chat_history: Vec<ChatMessage>,
    ) -> Self {
        let seen = chat_history.iter().map(|c| c.id).max().unwrap_or(0);
        let next_chat_id =
            remote::chat_id_after(seen, config.chat_id_stride, config.chat_id_offset);
        let last_chat_ts = chat_history.iter().map(|c| c.ts_ms).max().unwrap_or(0);
        let keep = config.chat_history_len;
        let skip = chat_history.len().saturating_sub(keep);
        Room {
            created: now,
            wall_ms_at_created: wall_clock_ms,
            members: ConnMap::default(),
            by_pid: BTreeMap::new(),
            next_pid: config.participant_ids.start.max(1),
            tracks: BTreeMap::new(),
            chat: chat_history.into_iter().skip(skip).collect(),
            next_chat_id,
            last_chat_ts,
            speaker: None,
            next_speaker_eval: now,
            outputs: VecDeque::with_capacity(256),
            stats: RoomStats::default(),
            ended: false,
            bwe: Bwe::new(config.bwe, now),
            timers: TimerTable::default(),
            layers_version: 0,
            now,
            rates_at: now,
            offload: offload::Offload::default(),
            config,
        }
    }

    /// Next output to carry out, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the server must feed [`Input::Tick`] next (held-back keyframe requests, speaker
    /// announcements, the layer policy's next look). `None` when nothing is scheduled: an
    /// idle room needs no wake-up at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.timers.next_timeout(), self.bwe.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Feed one input. Outputs queue up for [`Room::poll_output`].
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.now = self.now.max(now);
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
            Input::Feedback { conn, feedback } => {
                if self.members.contains_key(&conn) {
                    self.bwe
                        .handle_input(now, bwe::Input::Feedback { conn, feedback });
                }
            }
            Input::Remote(r) => self.remote(now, r),
            Input::TranscoderLoad(load) => self.transcoder_load(now, load),
            Input::Tick => {}
        }
        self.handle_timeout(now);
    }

    /// Whatever is due at `now`: every input counts as a tick.
    fn handle_timeout(&mut self, now: Instant) {
        if self.timers.is_due(Timer::KeyframeRetry, now) {
            self.retry_keyframes(now);
        }
        if now >= self.next_speaker_eval {
            self.evaluate_speaker(now);
        }
        if self.bwe.poll_timeout().is_some_and(|t| now >= t) {
            self.report_track_rates(now);
            self.bwe.handle_timeout(now);
            self.apply_bwe(now);
        }
    }

    /// Tells the layer policy what each video track's layers cost since it last heard.
    fn report_track_rates(&mut self, now: Instant) {
        let secs = now.saturating_duration_since(self.rates_at).as_secs_f64();
        if secs < 0.2 {
            return;
        }
        self.rates_at = now;
        for (id, t) in self.tracks.iter_mut() {
            let rx = std::mem::take(&mut t.rx_bytes);
            if !t.info.kind.is_video() {
                continue;
            }
            let bps = rx.map(|b| (b as f64 * 8.0 / secs) as u64);
            self.bwe.handle_input(
                now,
                bwe::Input::Track {
                    track_id: *id,
                    screen: t.info.kind == quicmeet_proto::MediaKind::Screen,
                    bps,
                    // `track_demand` told the publisher nobody watches its full layer.
                    full_held: t.demand != (0, true),
                },
            );
        }
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &RoomStats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &RoomConfig {
        &self.config
    }

    /// The layer policy (read only: preferences and congestion per subscriber).
    pub fn bwe(&self) -> &Bwe {
        &self.bwe
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

    /// Changes whenever a track is published or unpublished or the layers some track's
    /// subscribers want change ([`Room::wanted_layers`]), so the server only re-reads them
    /// (to steer its transcoders) when they moved.
    pub fn layers_version(&self) -> u64 {
        self.layers_version
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

    /// The room's own state contradicts itself (a bug): count it and let the caller skip
    /// the step, so one bug cannot take the meeting down.
    fn violation(&mut self) {
        self.stats.invariant_violations += 1;
    }

    /// Every admitted participant, optionally but one.
    fn admitted_except(&self, except: Option<ConnId>) -> Vec<ConnId> {
        self.by_pid
            .values()
            .copied()
            .filter(|c| Some(*c) != except && self.members.get(c).is_some_and(Member::admitted))
            .collect()
    }

    fn broadcast(&mut self, except: Option<ConnId>, msg: ServerMessage) {
        let to = self.admitted_except(except);
        self.send_many(to, msg);
    }

    /// Sends to each of `to` (nothing when empty).
    fn send_many(&mut self, mut to: Vec<ConnId>, msg: ServerMessage) {
        let to = match to.len() {
            0 => return,
            1 => match to.pop() {
                Some(c) => Recipients::One(c),
                None => return,
            },
            _ => Recipients::Many(to),
        };
        self.outputs.push_back(Output::Control { to, msg });
    }

    fn hosts(&self) -> Vec<ConnId> {
        self.by_pid
            .values()
            .copied()
            .filter(|c| {
                self.members
                    .get(c)
                    .is_some_and(|m| m.admitted() && m.role == Role::Host)
            })
            .collect()
    }

    fn wall_ms(&self, now: Instant) -> u64 {
        self.wall_ms_at_created + now.saturating_duration_since(self.created).as_millis() as u64
    }
}
