//! The room's public vocabulary: identifiers, settings, inputs, outputs, errors, counters.

use std::ops::Range;
use std::time::Duration;

use quicmeet_proto::{ChatMessage, ClientMessage, EncodedFrame, MeetingInfo, Role, ServerMessage};

pub use super::offload::{OffloadConfig, TranscoderLoad};
pub use super::remote::{Remote, RosterEntry};

use crate::bwe;

/// Highest layer index the room forwards (0 full, 1 half, 2 quarter).
pub const MAX_LAYER: u8 = 2;
/// Number of layers a track can have.
pub(crate) const LAYERS: usize = MAX_LAYER as usize + 1;

/// The server's handle for one connection (one participant, lobby or admitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A map keyed by connection, for the maps the media path looks up per frame and per
/// subscriber. Connection ids are the server's own counter, never chosen by a client, so
/// they need no flood-proof hash: one multiplication (Fibonacci hashing) spreads them, where
/// the default SipHash took a visible share of an audio-only meeting's profile.
pub type ConnMap<V> = std::collections::HashMap<ConnId, V, ConnIdHash>;

/// Builds [`ConnIdHasher`]s.
pub type ConnIdHash = std::hash::BuildHasherDefault<ConnIdHasher>;

/// The hasher of [`ConnMap`]: a [`ConnId`] is one `u64`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnIdHasher(u64);

impl std::hash::Hasher for ConnIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
}

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
    /// The layer policy: which layers exist and how congestion moves subscribers.
    pub bwe: bwe::Config,
    /// Participant ids this room hands out. In a cluster each node's room gets its own
    /// block, so ids stay unique across the nodes a meeting spans; a room whose block is
    /// used up refuses further joins with `room_full`.
    pub participant_ids: Range<u32>,
    /// Chat ids this room hands out are `offset + k * stride`, above every id it has seen.
    /// In a cluster every node's room has its own offset, so two nodes never give out the
    /// same id; on one node the defaults (1, 0) number chat 1, 2, 3, …
    pub chat_id_stride: u64,
    /// See [`RoomConfig::chat_id_stride`].
    pub chat_id_offset: u64,
    /// Emit [`Output::Announce`] for facts about this room's own participants (cluster
    /// mode: other nodes' rooms mirror them).
    pub announce: bool,
    /// Publisher-made layers while the transcoder pool is saturated (PROTOCOL.md §5.6).
    pub offload: OffloadConfig,
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
            bwe: bwe::Config::default(),
            participant_ids: 1..u32::MAX / 16,
            chat_id_stride: 1,
            chat_id_offset: 0,
            announce: false,
            offload: OffloadConfig::default(),
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
    /// What the transport measured about a subscriber's downlink, for the layer policy
    /// ([`crate::bwe`]).
    Feedback {
        /// The subscriber.
        conn: ConnId,
        /// The measurement.
        feedback: bwe::Feedback,
    },
    /// Something another node of a cluster decided (docs/CLUSTER.md section 4). Remote
    /// participants' mute, hand, reactions and tracks come as [`Input::Control`] from their
    /// mirror's `ConnId`, their media as [`Input::Media`], their departure as
    /// [`Input::Leave`].
    Remote(Remote),
    /// A sample of the server's transcoder pool load (about once a second): drives
    /// publisher-made layers ([`TranscoderLoad`]).
    TranscoderLoad(TranscoderLoad),
    /// Time passed; feed it when [`Room::poll_timeout`] is due. Any other input also counts
    /// as a tick.
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
    /// A fact about one of this room's own participants (joined, knocked, left, published,
    /// unpublished, mute, hand, reaction, chat) that the other nodes of a cluster must
    /// learn. Only with [`RoomConfig::announce`].
    Announce(ServerMessage),
    /// A host power or a signal aimed at a participant of another node: that node must
    /// carry `msg` out as if `by` had sent it there (its room checks again).
    RemoteCommand {
        /// The target's mirror.
        target: ConnId,
        /// The sender's participant id.
        by: u32,
        /// The host's or sender's message, unchanged.
        msg: ClientMessage,
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
    /// A lower layer from a publisher that was not asked for it (`produce_layer`).
    pub layer_not_requested: u64,
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
    /// Layer changes the layer policy made for congestion or recovery.
    pub layer_switches: u64,
    /// `produce_layer` messages sent to publishers.
    pub produce_layer_sent: u64,
    /// `stop_layer` messages sent to publishers.
    pub stop_layer_sent: u64,
    /// Lower layers a publisher took over from the transcoder (its first keyframe arrived).
    pub publisher_layers_started: u64,
    /// Publisher-made layers given back to the transcoder.
    pub publisher_layers_returned: u64,
    /// Frames of a lower layer not forwarded because the other source makes it now (the
    /// transcoder's after a handover, or a publisher's before its keyframe).
    pub skipped_superseded: u64,
    /// Times the room found its own state inconsistent and skipped the step instead of
    /// panicking (a bug to report, never the client's fault).
    pub invariant_violations: u64,
}
