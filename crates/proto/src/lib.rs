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
//! - [`track`]: track ids (`participant_id * 16 + slot`).
//!
//! `docs/PROTOCOL.md` is the byte-level specification and `vectors/*.json` are golden test
//! vectors shared with the TypeScript client; a change to either is a change to the protocol.
//!
//! What this crate must never do: perform I/O, spawn tasks, read clocks, depend on tokio or
//! any async runtime, allocate while parsing a frame header, or panic on any input. Decoders
//! answer "need more bytes" on partial input and a typed error (with a stable `code()`) on
//! bad input.

pub mod control;
pub mod decode;
pub mod frame;
pub mod track;
pub mod ws;
pub mod wt;

pub use control::{
    ChatMessage, ClientMessage, ControlError, MeetingInfo, Participant, Role, ServerMessage,
    TrackInfo,
};
pub use decode::Decoded;
pub use frame::{EncodedFrame, Frame, FrameError, FrameHeader, MediaKind, StreamDecoder};
pub use track::Slot;
pub use ws::{WsError, WsMessage};
pub use wt::ControlStreamDecoder;
