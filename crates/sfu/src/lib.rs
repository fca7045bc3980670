//! QuicMeet's selective forwarding unit, sans-IO.
//!
//! This crate owns the decisions of a meeting: who is in the room or waiting in the lobby,
//! which tracks exist, who subscribes to what at which layer, which frames each subscriber
//! gets, when a publisher must send a keyframe, what hosts may do, chat, reactions, hands,
//! mute state, the active speaker, and the limits that protect the room from a misbehaving
//! participant. [`queue::SubscriberQueue`] owns the per-subscriber send queue and its drop
//! policy; [`bwe`] owns the layer policy (each subscriber's preferred layers and how
//! congestion moves them).
//!
//! It is driven like str0m: the server feeds [`Input`]s to [`Room::handle_input`] with the
//! current [`std::time::Instant`], carries out every [`Output`] from [`Room::poll_output`],
//! and feeds [`Input::Tick`] when [`Room::poll_timeout`] is due (and only then: an idle room
//! asks for no wake-ups). Media frames are [`quicmeet_proto::EncodedFrame`]s; forwarding clones
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
//! - publisher-made layers: fed [`TranscoderLoad`] samples, the room asks publishers that
//!   declared `layers_capable` to make the wanted lower layers themselves while the server's
//!   transcoder pool is saturated (`produce_layer`), and gives the layers back one at a time,
//!   after a hold, once it has room (`stop_layer`). A layer's source changes only at the new
//!   source's keyframe, announced with `layer_changed`; [`Room::publisher_layers`] tells the
//!   server which layers its transcoder must not make and whose keyframe requests go to the
//!   publisher.

//! # Driving a room
//!
//! ```
//! use std::time::Instant;
//! use quicmeet_proto::{ClientMessage, Frame, FrameHeader, MediaKind, Role};
//! use quicmeet_sfu::{ConnId, Input, Join, Output, Room, RoomConfig, SubscriberQueue, QueueConfig};
//!
//! let now = Instant::now();
//! let mut room = Room::new(RoomConfig::default(), now, 1_764_000_000_000, vec![]);
//! let join = |conn, role| Input::Join(Join {
//!     conn: ConnId(conn), name: format!("p{conn}"), email: String::new(), role,
//!     lobby: false, transport: "websocket".into(),
//! });
//! room.handle_input(now, join(1, Role::Host));
//! room.handle_input(now, join(2, Role::Member));
//! room.handle_input(now, Input::Control(ConnId(1), ClientMessage::Publish {
//!     track_id: 17, kind: MediaKind::Video, codec: "vp8".into(), width: Some(1280), height: Some(720), layers_capable: false,
//! }));
//! room.handle_input(now, Input::Control(ConnId(2), ClientMessage::Subscribe {
//!     track_id: 17, max_width: None, max_height: None, layer: None,
//! }));
//! while room.poll_output().is_some() {} // welcome, track_published, keyframe request, …
//!
//! let key = Frame::new(FrameHeader { kind: MediaKind::Video, layer: 0, keyframe: true, track_id: 17,
//!     seq: 0, capture_ts_us: 0, audio_level: None, payload_len: 0 }, vec![1, 2, 3].into())
//!     .encode().unwrap();
//! room.handle_input(now, Input::Media(ConnId(1), key.clone()));
//!
//! // The server's connection task for ConnId(2) owns a queue and drains it to the socket.
//! let mut queue = SubscriberQueue::new(QueueConfig::default());
//! while let Some(out) = room.poll_output() {
//!     match out {
//!         Output::Media { to, frame } if to == ConnId(2) => { queue.push_media(frame); }
//!         Output::Control { to, msg } => { /* encode once, send to every `to` */ let _ = (to, msg); }
//!         _ => {}
//!     }
//! }
//! let Some(quicmeet_sfu::Popped::Media { frame, starts_group }) = queue.pop() else { panic!() };
//! assert_eq!(frame.as_bytes(), key.as_bytes()); // byte-exact, shared
//! assert!(starts_group); // WebTransport: open a new uni stream for this group
//! ```

pub mod bwe;
pub mod queue;
pub mod rate;
mod room;

pub use bwe::choose_layer;
pub use queue::{
    ControlOverflow, Popped, Pushed, QueueConfig, QueueEvent, QueueStats, SubscriberQueue,
};
pub use room::{
    ConnId, ConnIdHash, ConnIdHasher, ConnMap, Input, Join, LayerSource, MediaDrops, OffloadConfig,
    Output, Recipients, Remote, Room, RoomConfig, RoomStats, RosterEntry, SfuError, TranscoderLoad,
    MAX_LAYER,
};
