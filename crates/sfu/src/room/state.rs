//! What the room remembers about members, tracks and subscriptions (private to the room).

use std::time::Instant;

use quicmeet_proto::{EncodedFrame, Participant, Role, TrackInfo};

use super::offload::LayerSource;
use super::types::{ConnId, RoomConfig, LAYERS};
use crate::rate::TokenBucket;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    Lobby,
    Admitted,
}

#[derive(Debug)]
pub(super) struct Flood {
    pub(super) window_start: Instant,
    pub(super) drops: u32,
    pub(super) strikes: u32,
}

#[derive(Debug)]
pub(super) struct Member {
    pub(super) pid: u32,
    pub(super) name: String,
    pub(super) email: String,
    pub(super) role: Role,
    pub(super) admission: Admission,
    pub(super) audio_muted: bool,
    pub(super) video_muted: bool,
    pub(super) hand_raised: bool,
    pub(super) transport: String,
    pub(super) publish_frames: TokenBucket,
    pub(super) publish_bytes: TokenBucket,
    pub(super) control: TokenBucket,
    pub(super) chat: TokenBucket,
    pub(super) reaction: TokenBucket,
    pub(super) flood: Flood,
    /// Tracks this member subscribes to.
    pub(super) subscriptions: Vec<u32>,
    /// Smoothed loudness (127 - level), 0 = silent.
    pub(super) loudness: f32,
    pub(super) last_audio: Option<Instant>,
    /// A mirror of another node's participant (cluster mode): its home node decides about
    /// it, this room only shows it to local participants and forwards its media.
    pub(super) remote: bool,
}

impl Member {
    pub(super) fn new(
        now: Instant,
        c: &RoomConfig,
        p: Participant,
        email: String,
        admission: Admission,
        remote: bool,
    ) -> Member {
        Member {
            pid: p.id,
            name: p.name,
            email,
            role: p.role,
            admission,
            audio_muted: p.audio_muted,
            video_muted: p.video_muted,
            hand_raised: p.hand_raised,
            transport: p.transport,
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
            remote,
        }
    }

    pub(super) fn participant(&self) -> Participant {
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

    pub(super) fn admitted(&self) -> bool {
        self.admission == Admission::Admitted
    }
}

#[derive(Debug, Default)]
pub(super) struct Gop {
    pub(super) frames: Vec<EncodedFrame>,
    pub(super) bytes: usize,
    /// `frames` holds a keyframe and every frame after it.
    pub(super) complete: bool,
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct KeyframeState {
    pub(super) last_sent: Option<Instant>,
    /// A request was suppressed by the rate limit and no keyframe came since.
    pub(super) deferred: bool,
}

#[derive(Debug)]
pub(super) struct Sub {
    pub(super) conn: ConnId,
    /// Layer to forward: what the layer policy chose last (or [`super::Room::set_layer`]).
    pub(super) preferred: u8,
    /// Layer being forwarded now.
    pub(super) current: Option<u8>,
    /// Layer to switch to at its next keyframe.
    pub(super) pending: Option<u8>,
    /// Deltas of `current` are skipped until its next keyframe.
    pub(super) waiting: bool,
}

#[derive(Debug)]
pub(super) struct Track {
    pub(super) info: TrackInfo,
    pub(super) owner: ConnId,
    pub(super) subs: Vec<Sub>,
    pub(super) gops: [Gop; LAYERS],
    pub(super) keyframes: [KeyframeState; LAYERS],
    /// A frame of the current group was refused: skip the rest until the next keyframe.
    pub(super) broken: [bool; LAYERS],
    /// Layers some subscriber forwards or waits for (bit n = layer n), as last announced
    /// through `Room::layers_version`.
    pub(super) wanted: u8,
    /// Bytes received per layer since the layer policy last heard the track's rates.
    pub(super) rx_bytes: [u64; LAYERS],
    /// What the publisher was last told it must send: (best layer wanted, anybody watching).
    pub(super) demand: (u8, bool),
    /// The publisher declared it can make lower layers itself (`publish.layers_capable`).
    pub(super) layers_capable: bool,
    /// Who makes each lower layer (index 0 is always the publisher's own).
    pub(super) sources: [LayerSource; LAYERS],
    /// A `layer_not_requested` error was sent for the layer (or it was just stopped, when
    /// frames in flight are expected): do not repeat it.
    pub(super) unrequested_told: [bool; LAYERS],
}

impl Track {
    pub(super) fn layer_dims(&self, layer: u8) -> (u32, u32) {
        let w = self.info.width.unwrap_or(0) >> layer;
        let h = self.info.height.unwrap_or(0) >> layer;
        (w, h)
    }
}
