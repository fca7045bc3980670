//! Control messages: JSON objects `{"v":1,"type":"…",…}`.
//!
//! [`ClientMessage`] is what a browser sends, [`ServerMessage`] what the server sends. Both are
//! internally tagged by `type` in snake_case. The `v` field is not part of the enums: the
//! codec functions [`encode`], [`decode_client`] and [`decode_server`] add and check it, so a
//! message of another protocol version is refused with [`ControlError::BadVersion`] and an
//! unknown `type` with [`ControlError::UnknownMessage`], never a panic.
//!
//! Optional fields are left out when `None`; unknown fields are ignored so that optional
//! fields can be added later without breaking older peers.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::frame::MediaKind;

/// The control protocol version carried in every message's `v` field.
pub const CONTROL_VERSION: u32 = 1;
/// Largest JSON body of one control message (64 KiB), on every transport.
pub const MAX_CONTROL_LEN: usize = 64 * 1024;
/// Longest chat message, in Unicode scalar values.
pub const MAX_CHAT_CHARS: usize = 2000;

/// A participant's role in a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The meeting's owner: may admit, deny, mute, remove, end.
    Host,
    /// A signed-in user invited or on the host's team.
    Member,
    /// Somebody who joined by link with a name and email.
    Guest,
}

/// A participant as the other participants see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Server-assigned, ≥ 1, not reused within a room.
    pub id: u32,
    /// Display name.
    pub name: String,
    /// Role in the meeting.
    pub role: Role,
    /// The participant muted their microphone.
    pub audio_muted: bool,
    /// The participant turned their camera off.
    pub video_muted: bool,
    /// Hand raised.
    pub hand_raised: bool,
    /// `"webtransport"` or `"websocket"`.
    pub transport: String,
}

/// A published track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// `participant_id * 16 + slot`.
    pub track_id: u32,
    /// Owner.
    pub participant_id: u32,
    /// Media kind.
    pub kind: MediaKind,
    /// Codec name, e.g. `"opus"`, `"vp8"`.
    pub codec: String,
    /// Full-layer width in pixels, for video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Full-layer height in pixels, for video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// A chat message as stored and broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Server-assigned, increasing within a meeting.
    pub id: u64,
    /// Author.
    pub participant_id: u32,
    /// Author's display name at the time of writing.
    pub name: String,
    /// The text, at most [`MAX_CHAT_CHARS`] characters.
    pub text: String,
    /// Server time, milliseconds since the Unix epoch.
    pub ts_ms: u64,
}

/// Public facts about the meeting, sent in `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MeetingInfo {
    /// Meeting code, `abc-defg-hij`.
    pub code: String,
    /// Title.
    pub title: String,
    /// Host's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
}

/// A message from a client to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// First message on every connection.
    Hello {
        /// Join token from `POST /api/meetings/{code}/join`.
        token: String,
        /// Free-form client name and version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        /// The client follows `uplink_report` (PROTOCOL.md §5.6, uplink reports) and wants
        /// them while it publishes. Omitted when false.
        #[serde(default, skip_serializing_if = "is_false")]
        uplink_reports: bool,
    },
    /// Announce a track the client will send frames for.
    Publish {
        /// Must belong to the sender.
        track_id: u32,
        /// Must match the track's slot.
        kind: MediaKind,
        /// Codec name.
        codec: String,
        /// Width of the full layer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width: Option<u32>,
        /// Height of the full layer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        height: Option<u32>,
        /// The publisher can encode lower layers of this video track itself when the server
        /// asks (`produce_layer`, PROTOCOL.md §5.6). Omitted when false.
        #[serde(default, skip_serializing_if = "is_false")]
        layers_capable: bool,
    },
    /// Stop a track.
    Unpublish {
        /// One of the sender's tracks.
        track_id: u32,
    },
    /// Receive a track's frames.
    Subscribe {
        /// Any published track.
        track_id: u32,
        /// Largest useful width (the tile size); picks a layer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_width: Option<u32>,
        /// Largest useful height.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_height: Option<u32>,
        /// Explicit layer; wins over `max_width`/`max_height`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        layer: Option<u8>,
    },
    /// Stop receiving a track.
    Unsubscribe {
        /// A subscribed track.
        track_id: u32,
    },
    /// The sender's own mute state.
    Mute {
        /// Microphone muted.
        audio: bool,
        /// Camera off.
        video: bool,
    },
    /// Post a chat message.
    Chat {
        /// At most [`MAX_CHAT_CHARS`] characters.
        text: String,
    },
    /// A short-lived emoji reaction.
    Reaction {
        /// One emoji.
        emoji: String,
    },
    /// Raise or lower the hand.
    Hand {
        /// Raised.
        raised: bool,
    },
    /// Ask the publisher of a subscribed track for a keyframe.
    KeyframeRequest {
        /// The track.
        track_id: u32,
    },
    /// Host: let a knocking participant in.
    Admit {
        /// Participant in the lobby.
        participant_id: u32,
    },
    /// Host: turn a knocking participant away.
    Deny {
        /// Participant in the lobby.
        participant_id: u32,
    },
    /// Host: ask a participant to mute.
    MuteParticipant {
        /// Target.
        participant_id: u32,
    },
    /// Host: remove a participant.
    Remove {
        /// Target.
        participant_id: u32,
    },
    /// Host: end the meeting for everybody.
    EndMeeting {},
    /// Relay opaque data to one participant (WebRTC signalling and the like).
    Signal {
        /// Recipient participant id.
        to: u32,
        /// Any JSON value; relayed untouched.
        data: serde_json::Value,
    },
    /// Round-trip probe; answered by `pong` with the same `t`.
    Ping {
        /// Any number, echoed as is.
        t: serde_json::Number,
    },
    /// Leave the meeting.
    Leave {},
    /// Where the sender's own media goes from now on (PROTOCOL.md §5.12). `p2p`: a direct
    /// WebRTC call carries it and the sender stops sending its frames to the server; its
    /// tracks stay published. `server`: frames come to the server again.
    MediaPath {
        /// The path now in use.
        path: MediaPathKind,
        /// `p2p`: the participant at the other end of the direct call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<u32>,
    },
    /// The receiver's view of its downlink (PROTOCOL.md §5.6, receiver reports): how long
    /// its audio has been waiting on the way, above the shortest wait it has seen. No answer.
    ReceiverReport {
        /// Queueing delay in milliseconds: over the last report interval, the smallest
        /// excess of (arrival − capture) over its recent minimum, taken on the remote audio
        /// track that shows the least (a queue on the receiver's downlink delays all of them).
        queue_ms: u32,
    },
}

/// The two ways a participant's media can travel (`media_path.path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MediaPathKind {
    /// Through the server (the default).
    #[default]
    Server,
    /// Directly to the one other participant over WebRTC.
    P2p,
}

/// A message from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Admitted: the state of the room.
    Welcome {
        /// The receiver's own participant id.
        participant_id: u32,
        /// The receiver's role.
        role: Role,
        /// The meeting.
        meeting: MeetingInfo,
        /// Everybody admitted, the receiver included.
        participants: Vec<Participant>,
        /// Every published track.
        tracks: Vec<TrackInfo>,
        /// Recent chat history, oldest first.
        chat: Vec<ChatMessage>,
    },
    /// The receiver waits in the lobby until the host admits them.
    Lobby {
        /// Human text.
        message: String,
    },
    /// The host turned the receiver away; the connection closes.
    Denied {
        /// Machine-readable reason.
        reason: String,
    },
    /// Somebody was admitted.
    ParticipantJoined {
        /// Who.
        participant: Participant,
    },
    /// Somebody left.
    ParticipantLeft {
        /// Who.
        participant_id: u32,
        /// `left`, `removed`, `disconnected`, `flood`, …
        reason: String,
    },
    /// A track became available.
    TrackPublished {
        /// The track.
        track: TrackInfo,
    },
    /// A track went away (its subscriptions are gone too).
    TrackUnpublished {
        /// The track.
        track_id: u32,
    },
    /// A participant's mute state changed.
    MuteState {
        /// Who.
        participant_id: u32,
        /// Microphone muted.
        audio: bool,
        /// Camera off.
        video: bool,
    },
    /// The host asks the receiver to mute their microphone.
    PleaseMute {
        /// Host's participant id.
        by: u32,
    },
    /// A chat message.
    Chat(ChatMessage),
    /// A reaction.
    Reaction {
        /// Who.
        participant_id: u32,
        /// The emoji.
        emoji: String,
    },
    /// A hand went up or down.
    Hand {
        /// Who.
        participant_id: u32,
        /// Raised.
        raised: bool,
    },
    /// The loudest participant changed.
    ActiveSpeaker {
        /// Who.
        participant_id: u32,
    },
    /// Host only: somebody waits in the lobby.
    Knock {
        /// Who.
        participant_id: u32,
        /// Name they gave.
        name: String,
        /// Email they gave.
        email: String,
    },
    /// Publisher only: send a keyframe on this track and layer soon.
    KeyframeRequest {
        /// The track.
        track_id: u32,
        /// The layer (0 for a publisher's own encoding).
        layer: u8,
    },
    /// Publisher only: the best layer any subscriber now gets (or waits for) of this track,
    /// and how many subscribers it has. Sent when that changes; until the first one the
    /// publisher assumes its full layer is needed. Advisory: while `layer` > 0 (or `viewers`
    /// is 0) nobody needs the full layer, so the publisher may lower its encoder's bitrate and
    /// frame rate, keeping its resolution (the server's lower layers are scaled from it).
    TrackDemand {
        /// The publisher's track.
        track_id: u32,
        /// The best layer wanted (0 full, 1 half, 2 quarter); 0 when `viewers` is 0.
        layer: u8,
        /// Subscribers of the track.
        viewers: u32,
    },
    /// Publisher only (it declared `layers_capable`): the server's transcoder is saturated,
    /// so encode `layer` of this track yourself at this size and bitrate, and send it with
    /// that `layer` in the frame header, starting with a keyframe, until `stop_layer`.
    ProduceLayer {
        /// The publisher's track.
        track_id: u32,
        /// The layer to make (1 half, 2 quarter).
        layer: u8,
        /// Width in pixels (0 if the published size is unknown: halve per layer yourself).
        width: u32,
        /// Height in pixels (0 if unknown).
        height: u32,
        /// Target bitrate in bits per second.
        bitrate: u32,
    },
    /// Publisher only: stop sending `layer` of this track (the server makes it again, or
    /// nobody watches it).
    StopLayer {
        /// The publisher's track.
        track_id: u32,
        /// The layer to stop.
        layer: u8,
    },
    /// The receiver now gets another layer of a subscribed track (from this keyframe on).
    LayerChanged {
        /// The track.
        track_id: u32,
        /// The new layer.
        layer: u8,
        /// Its width in pixels (0 if unknown).
        width: u32,
        /// Its height in pixels (0 if unknown).
        height: u32,
    },
    /// Relayed data from another participant.
    Signal {
        /// Sender participant id.
        from: u32,
        /// As sent.
        data: serde_json::Value,
    },
    /// To a publisher that asked for them in `hello` (PROTOCOL.md §5.6, uplink reports):
    /// what the server sees of its uplink, about every 200 ms while its audio arrives.
    UplinkReport {
        /// Queueing delay in milliseconds: over the last interval, the smallest excess of
        /// (arrival at the server − capture) over its recent minimum, on the publisher's audio.
        queue_ms: u32,
        /// Media the server received from this connection over the interval, kbit/s
        /// (frames with their headers).
        kbps: u32,
    },
    /// Answer to `ping`.
    Pong {
        /// The ping's `t`.
        t: serde_json::Number,
    },
    /// A request failed; the connection stays open.
    Error {
        /// Stable snake_case code.
        code: String,
        /// Human text.
        message: String,
    },
    /// The server closes the connection.
    Goodbye {
        /// `ended`, `removed`, `flood`, `shutdown`, …
        reason: String,
        /// Human text.
        message: String,
    },
}

impl ClientMessage {
    /// The `type` string of this message.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMessage::Hello { .. } => "hello",
            ClientMessage::Publish { .. } => "publish",
            ClientMessage::Unpublish { .. } => "unpublish",
            ClientMessage::Subscribe { .. } => "subscribe",
            ClientMessage::Unsubscribe { .. } => "unsubscribe",
            ClientMessage::Mute { .. } => "mute",
            ClientMessage::Chat { .. } => "chat",
            ClientMessage::Reaction { .. } => "reaction",
            ClientMessage::Hand { .. } => "hand",
            ClientMessage::KeyframeRequest { .. } => "keyframe_request",
            ClientMessage::Admit { .. } => "admit",
            ClientMessage::Deny { .. } => "deny",
            ClientMessage::MuteParticipant { .. } => "mute_participant",
            ClientMessage::Remove { .. } => "remove",
            ClientMessage::EndMeeting {} => "end_meeting",
            ClientMessage::Signal { .. } => "signal",
            ClientMessage::Ping { .. } => "ping",
            ClientMessage::Leave {} => "leave",
            ClientMessage::MediaPath { .. } => "media_path",
            ClientMessage::ReceiverReport { .. } => "receiver_report",
        }
    }
}

impl ServerMessage {
    /// Shorthand for an `error` message.
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// Shorthand for a `goodbye` message.
    pub fn goodbye(reason: &str, message: impl Into<String>) -> Self {
        ServerMessage::Goodbye {
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// Every `type` a client may send.
pub const CLIENT_TYPES: &[&str] = &[
    "hello",
    "publish",
    "unpublish",
    "subscribe",
    "unsubscribe",
    "mute",
    "chat",
    "reaction",
    "hand",
    "keyframe_request",
    "admit",
    "deny",
    "mute_participant",
    "remove",
    "end_meeting",
    "signal",
    "ping",
    "leave",
    "media_path",
    "receiver_report",
];

/// Every `type` the server may send.
pub const SERVER_TYPES: &[&str] = &[
    "welcome",
    "lobby",
    "denied",
    "participant_joined",
    "participant_left",
    "track_published",
    "track_unpublished",
    "mute_state",
    "please_mute",
    "chat",
    "reaction",
    "hand",
    "active_speaker",
    "knock",
    "keyframe_request",
    "track_demand",
    "produce_layer",
    "stop_layer",
    "layer_changed",
    "uplink_report",
    "signal",
    "pong",
    "error",
    "goodbye",
];

/// Why a control message could not be decoded. [`ControlError::code`] gives the stable string
/// used in golden vectors and in `error{code}` answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The body is longer than [`MAX_CONTROL_LEN`].
    #[error("control message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced or actual length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not UTF-8 JSON, or not an object.
    #[error("malformed JSON: {0}")]
    BadJson(String),
    /// `v` missing or not [`CONTROL_VERSION`].
    #[error("unsupported control version {0:?}")]
    BadVersion(Option<u64>),
    /// `type` is missing or not a string.
    #[error("control message without a type")]
    MissingType,
    /// `type` is a string this side does not know.
    #[error("unknown message type {0:?}")]
    UnknownMessage(String),
    /// Known `type`, but fields are missing or of the wrong type.
    #[error("invalid {ty} message: {detail}")]
    InvalidMessage {
        /// The message type.
        ty: String,
        /// What serde said.
        detail: String,
    },
}

impl ControlError {
    /// Stable snake_case code: `too_large`, `bad_json`, `bad_version`, `missing_type`,
    /// `unknown_message`, `invalid_message`.
    pub fn code(&self) -> &'static str {
        match self {
            ControlError::TooLarge { .. } => "too_large",
            ControlError::BadJson(_) => "bad_json",
            ControlError::BadVersion(_) => "bad_version",
            ControlError::MissingType => "missing_type",
            ControlError::UnknownMessage(_) => "unknown_message",
            ControlError::InvalidMessage { .. } => "invalid_message",
        }
    }
}

#[derive(Serialize)]
struct Versioned<'a, T> {
    v: u32,
    #[serde(flatten)]
    msg: &'a T,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    v: Option<serde_json::Value>,
    #[serde(default, rename = "type")]
    ty: Option<serde_json::Value>,
}

/// Serialize a control message as compact JSON with `"v":1` first.
///
/// Works for [`ClientMessage`] and [`ServerMessage`]. The output is at most a few hundred bytes
/// for everything but `welcome`, `signal` and `chat`.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serializing these types cannot fail: every map key is a string and there is no
    // non-finite float (serde_json::Number is always finite).
    serde_json::to_vec(&Versioned {
        v: CONTROL_VERSION,
        msg,
    })
    .expect("control messages always serialize")
}

/// For `skip_serializing_if`: optional flags are omitted when false.
fn is_false(b: &bool) -> bool {
    !*b
}

fn decode_as<T: DeserializeOwned>(json: &[u8], known: &[&str]) -> Result<T, ControlError> {
    if json.len() > MAX_CONTROL_LEN {
        return Err(ControlError::TooLarge {
            len: json.len(),
            max: MAX_CONTROL_LEN,
        });
    }
    // Fields the envelope skips are not UTF-8 checked by serde_json, so check the whole body.
    if std::str::from_utf8(json).is_err() {
        return Err(ControlError::BadJson("not UTF-8".into()));
    }
    // Only an object is a message; serde would otherwise accept a JSON array for a struct.
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ControlError::BadJson("expected a JSON object".into()));
    }
    let env: Envelope =
        serde_json::from_slice(json).map_err(|e| ControlError::BadJson(e.to_string()))?;
    match env.v.as_ref().and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(CONTROL_VERSION) => {}
        other => return Err(ControlError::BadVersion(other)),
    }
    let ty = match env.ty {
        Some(serde_json::Value::String(s)) => s,
        _ => return Err(ControlError::MissingType),
    };
    if !known.contains(&ty.as_str()) {
        return Err(ControlError::UnknownMessage(ty));
    }
    serde_json::from_slice(json).map_err(|e| ControlError::InvalidMessage {
        ty,
        detail: e.to_string(),
    })
}

/// Decode a message a client sent (JSON body only, no framing).
pub fn decode_client(json: &[u8]) -> Result<ClientMessage, ControlError> {
    decode_as(json, CLIENT_TYPES)
}

/// Decode a message the server sent (JSON body only, no framing).
pub fn decode_server(json: &[u8]) -> Result<ServerMessage, ControlError> {
    decode_as(json, SERVER_TYPES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_puts_version_and_type_first() {
        let m = ClientMessage::Hello {
            token: "t".into(),
            client: None,
            uplink_reports: false,
        };
        assert_eq!(
            String::from_utf8(encode(&m)).unwrap(),
            r#"{"v":1,"type":"hello","token":"t"}"#
        );
        assert_eq!(
            String::from_utf8(encode(&ClientMessage::EndMeeting {})).unwrap(),
            r#"{"v":1,"type":"end_meeting"}"#
        );
    }

    #[test]
    fn decode_checks_version_type_and_fields() {
        assert_eq!(
            decode_client(br#"{"v":1,"type":"leave"}"#).unwrap(),
            ClientMessage::Leave {}
        );
        assert_eq!(
            decode_client(br#"{"type":"leave"}"#).unwrap_err().code(),
            "bad_version"
        );
        assert_eq!(
            decode_client(br#"{"v":2,"type":"leave"}"#)
                .unwrap_err()
                .code(),
            "bad_version"
        );
        assert_eq!(
            decode_client(br#"{"v":1,"type":"fly"}"#).unwrap_err(),
            ControlError::UnknownMessage("fly".into())
        );
        assert_eq!(
            decode_client(br#"{"v":1,"type":"welcome"}"#)
                .unwrap_err()
                .code(),
            "unknown_message"
        );
        assert_eq!(
            decode_client(br#"{"v":1}"#).unwrap_err().code(),
            "missing_type"
        );
        assert_eq!(
            decode_client(br#"{"v":1,"type":"chat"}"#)
                .unwrap_err()
                .code(),
            "invalid_message"
        );
        assert_eq!(decode_client(b"[1]").unwrap_err().code(), "bad_json");
        assert_eq!(decode_client(b"\xff").unwrap_err().code(), "bad_json");
    }

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        let m = decode_client(br#"{"v":1,"type":"hand","raised":true,"extra":[1,2]}"#).unwrap();
        assert_eq!(m, ClientMessage::Hand { raised: true });
        let m = decode_client(br#"{"v":1,"type":"end_meeting","why":"x"}"#).unwrap();
        assert_eq!(m, ClientMessage::EndMeeting {});
    }

    #[test]
    fn server_chat_is_flat() {
        let m = ServerMessage::Chat(ChatMessage {
            id: 3,
            participant_id: 1,
            name: "Ann".into(),
            text: "hi".into(),
            ts_ms: 5,
        });
        let s = String::from_utf8(encode(&m)).unwrap();
        assert_eq!(
            s,
            r#"{"v":1,"type":"chat","id":3,"participant_id":1,"name":"Ann","text":"hi","ts_ms":5}"#
        );
        assert_eq!(decode_server(s.as_bytes()).unwrap(), m);
    }

    #[test]
    fn ping_echoes_number_exactly() {
        let m = decode_client(br#"{"v":1,"type":"ping","t":1234.5}"#).unwrap();
        let ClientMessage::Ping { t } = m else {
            panic!()
        };
        let pong = encode(&ServerMessage::Pong { t });
        assert_eq!(pong, br#"{"v":1,"type":"pong","t":1234.5}"#);
    }

    #[test]
    fn type_lists_match_enums() {
        for ty in CLIENT_TYPES {
            let e = decode_client(format!(r#"{{"v":1,"type":"{ty}"}}"#).as_bytes());
            assert!(!matches!(e, Err(ControlError::UnknownMessage(_))), "{ty}");
        }
        for ty in SERVER_TYPES {
            let e = decode_server(format!(r#"{{"v":1,"type":"{ty}"}}"#).as_bytes());
            assert!(!matches!(e, Err(ControlError::UnknownMessage(_))), "{ty}");
        }
    }
}
