//! QuicMeet's wire protocol, sans-IO.
//!
//! This crate owns the bytes that cross the network between the browser client, the server
//! and the load tester:
//!
//! - [`frame`]: the media frame (28-byte big-endian header plus payload), a zero-copy
//!   [`EncodedFrame`] the SFU forwards by cloning one `Bytes`, and an incremental
//!   [`StreamDecoder`] for frames carried back to back on a WebTransport stream;
//! - [`control`]: the JSON control messages ([`ClientMessage`], [`ServerMessage`]) with the
//!   `v` version check and typed errors for unknown types;
//! - [`wt`]: length-prefixed framing of the WebTransport control stream;
//! - [`ws`]: the type byte in front of every WebSocket message;
//! - [`track`]: track ids (`participant_id * 16 + slot`);
//! - [`delay`]: the queueing-delay measure behind `receiver_report` and `uplink_report`
//!   (arrival − capture over its recent minimum; the caller passes the times in).
//!
//! `docs/PROTOCOL.md` is the byte-level specification and `vectors/*.json` are golden test
//! vectors shared with the TypeScript client; a change to either is a change to the protocol.
//!
//! What this crate must never do: perform I/O, spawn tasks, read clocks, depend on tokio or
//! any async runtime, allocate while parsing a frame header, or panic on any input. Decoders
//! answer "need more bytes" on partial input and a typed error (with a stable `code()`) on
//! bad input.

//! ```
//! use bytes::Bytes;
//! use quicmeet_proto::{control, Decoded, EncodedFrame, Frame, FrameHeader, MediaKind, StreamDecoder};
//! use quicmeet_proto::{ClientMessage, WsMessage};
//!
//! // A publisher builds a frame; the wire form is one `Bytes`.
//! let header = FrameHeader { kind: MediaKind::Audio, layer: 0, keyframe: false, track_id: 16,
//!     seq: 1, capture_ts_us: 20_000, audio_level: Some(42), payload_len: 0 };
//! let wire = Frame::new(header, Bytes::from_static(b"opus")).encode().unwrap();
//!
//! // A datagram holds exactly one frame; decoding shares the buffer.
//! let frame = EncodedFrame::decode(wire.as_bytes().clone()).unwrap();
//! assert_eq!(frame.header().audio_level, Some(42));
//!
//! // A stream may deliver it in pieces.
//! let mut d = StreamDecoder::new();
//! d.push(&wire.as_bytes()[..10]);
//! assert_eq!(d.decode().unwrap(), Decoded::NeedMore(18));
//! d.push(&wire.as_bytes()[10..]);
//! assert_eq!(d.decode().unwrap(), Decoded::Complete(frame));
//!
//! // Control messages carry "v":1 and a snake_case type.
//! let json = control::encode(&ClientMessage::Hand { raised: true });
//! assert_eq!(json, br#"{"v":1,"type":"hand","raised":true}"#);
//! assert!(control::decode_client(br#"{"v":1,"type":"warp"}"#).is_err());
//!
//! // WebSocket messages start with a type byte.
//! let ws = WsMessage::encode_control(&ClientMessage::Leave {}).unwrap();
//! assert_eq!(ws[0], 0x01);
//! ```

pub mod control;
pub mod decode;
pub mod delay;
pub mod frame;
pub mod track;
pub mod ws;
pub mod wt;

pub use control::{
    ChatMessage, ClientMessage, ControlError, MediaPathKind, MeetingInfo, Participant, Role,
    ServerMessage, TrackInfo,
};
pub use decode::Decoded;
pub use frame::{EncodedFrame, Frame, FrameError, FrameHeader, MediaKind, StreamDecoder};
pub use track::Slot;
pub use ws::{WsError, WsMessage};
pub use wt::ControlStreamDecoder;
