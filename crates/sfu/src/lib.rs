//! QuicMeet's selective forwarding unit, sans-IO.
//!
//! This crate owns the decisions of a meeting: who is in the room or waiting in the lobby,
//! which tracks exist, who subscribes to what at which layer, which frames each subscriber
//! gets, when a publisher must send a keyframe, what hosts may do, chat, reactions, hands,
//! mute state, the active speaker, and the limits that protect the room from a misbehaving
//! participant. [`queue::SubscriberQueue`] owns the per-subscriber send queue and its drop
//! policy.
//!
//! It is driven like str0m: the server feeds [`Input`]s to [`Room::handle_input`] with the
//! current [`std::time::Instant`] and carries out every [`Output`] from
//! [`Room::poll_output`]. Media frames are [`quicmeet_proto::EncodedFrame`]s; forwarding clones
//! their `Bytes`, so a frame reaches every subscriber byte-exact and is never copied.
//!
//! What this crate must never do: perform I/O, read a clock, spawn tasks, depend on tokio,
//! trust a permission the client claims (roles come from the server's `Join`), or block. A
//! bad client message yields an `error` output to that client, never a panic.
//!
//! Decisions worth knowing (details in `docs/PROTOCOL.md`):
//! - late joiners: the room caches each video track's current group of pictures per layer
//!   (the last keyframe and the deltas after it, bounded by [`RoomConfig::gop_cache_frames`] /
//!   [`RoomConfig::gop_cache_bytes`]) and replays it on subscribe, so the subscriber's first
//!   video frame is a keyframe and its decoder is current at once. When the cache overflowed
//!   (a very long group), the subscriber waits for the next keyframe, which is requested;
//! - keyframe requests are sent at most once per [`RoomConfig::keyframe_request_interval`] per
//!   track and layer; suppressed ones are sent when the interval ends unless a keyframe came;
//! - a subscription forwards exactly one layer; a layer change takes effect at the next
//!   keyframe of the new layer and is announced with `layer_changed`.

pub mod queue;
pub mod rate;
mod room;

pub use queue::{Popped, Pushed, QueueConfig, QueueEvent, QueueStats, SubscriberQueue};
pub use room::{
    choose_layer, ws_control_bytes, ConnId, Input, Join, MediaDrops, Output, Recipients, Room,
    RoomConfig, RoomStats, SfuError, MAX_LAYER,
};
