//! # quicmeet-transcode
//!
//! Server-side simulcast for QuicMeet: a publisher sends one VP8 layer (layer 0, e.g. 720p) and
//! this crate decodes it, scales it and re-encodes lower layers (1 and 2) **only while some
//! subscriber wants them**, using FFmpeg through `ffmpeg-next`.
//!
//! What it owns:
//! - [`layers::LayerTranscoder`]: a sans-IO state machine for one published VP8 track. The
//!   caller passes payload bytes, capture timestamps, the keyframe flag and the current time; it
//!   returns encoded [`LayerFrame`]s. Encoders start when a layer is activated and are dropped a
//!   linger period after the last subscriber leaves ([`LayerTranscoder::tick`]).
//! - [`layers::Tuning`] and [`LayerSpec::cpu_used`]: the CPU/quality trade-offs (cascade,
//!   scaling filter, libvpx speed per layer, threads, decoder), with defaults measured by
//!   `examples/capacity.rs` (BENCHMARKS.md, section 4).
//! - [`pool::Pool`]: a bounded pool of plain OS threads that hosts the transcoders, so CPU-heavy
//!   codec work never runs on the async runtime. A full per-track queue drops frames up to the
//!   next keyframe instead of building latency.
//! - [`metrics::Metrics`]: lock-free counters (frames, drops, per-stage nanoseconds, active
//!   encoders) for the Prometheus endpoint.
//! - [`testsrc`]: deterministic VP8 and Opus test material for the tests of every other part
//!   (server, load tester), plus [`vp8::Vp8Decoder`] and [`vp8::psnr_y`] to check results.
//!
//! What it must never do:
//! - **block the async runtime**: everything here is synchronous and CPU-bound; call it from the
//!   pool's threads (or `spawn_blocking`), never from a tokio task;
//! - **upscale**: a lower layer is always made from the source by an integer divisor and a layer
//!   that would not be smaller (in size or frame rate) is skipped;
//! - **panic on input**: corrupt, truncated or hostile payloads give an error or are skipped, and
//!   the transcoder resumes on the next source keyframe. The pool additionally contains panics
//!   per track.
//!
//! ## Using it from the server
//!
//! ```no_run
//! use bytes::Bytes;
//! use quicmeet_transcode::{layers::Config, Pool, PoolConfig, PoolEvent, TrackKind};
//!
//! # fn main() -> quicmeet_transcode::Result<()> {
//! let (pool, events) = Pool::with_channel(PoolConfig::default())?;
//! let track = pool.add_track(17, Config::new(TrackKind::Camera))?; // track_id from the wire
//! track.set_active(2, true); // first subscriber of layer 2 arrived
//! # let (payload, capture_ts_us, keyframe) = (Bytes::new(), 0, true);
//! track.push(payload, capture_ts_us, keyframe); // every publisher frame; never blocks
//! for event in events.try_iter() {
//!     match event {
//!         PoolEvent::Frame { track_id, frame } => { /* frame.layer, frame.seq, frame.data… */ }
//!         PoolEvent::SourceKeyframeNeeded { track_id } => { /* keyframe_request to publisher */ }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! [`LayerTranscoder`] holds FFmpeg scaler contexts and is not `Send`: build it on the thread
//! that drives it (the pool does exactly that). [`Pool`] and [`Track`] are `Send + Sync`.
//! FFmpeg logs corrupt input on stderr; the binary may lower that with
//! `quicmeet_transcode::ffmpeg::util::log::set_level`.
//!
//! It depends on no other QuicMeet crate: it takes and returns plain values (bytes, µs
//! timestamps, keyframe flags), and the server maps them to the wire format of `docs/CONTRACT.md`.

pub mod layers;
pub mod metrics;
pub mod pool;
pub mod testsrc;
pub mod vp8;

mod checked;
mod halve;

pub use ffmpeg_next as ffmpeg;
pub use layers::{
    LayerFrame, LayerSpec, LayerStats, LayerTranscoder, ScaleFilter, TrackKind, Tuning,
};
pub use metrics::{Metrics, MetricsSnapshot};
pub use pool::{Pool, PoolConfig, PoolEvent, Submit, Track};
pub use vp8::{psnr_y, DecoderSettings, Picture, Vp8Decoder, Vp8Encoder};

use std::sync::Once;

/// Errors of this crate. Input errors ([`Error::Decode`], [`Error::NotKeyframe`]) are expected in
/// production and only mean "this frame was skipped"; the others are configuration or build
/// problems.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// FFmpeg reported an error outside decoding (allocation, encoder setup, scaler setup…).
    #[error("ffmpeg: {0}")]
    Ffmpeg(#[from] ffmpeg_next::Error),
    /// The linked FFmpeg lacks a codec we need (e.g. built without libvpx).
    #[error("codec {0} is not available in the linked FFmpeg")]
    CodecMissing(&'static str),
    /// FFmpeg did not consume some options: misspelt or unsupported by this build.
    #[error("{codec} ignored options {options:?} (misspelt or unsupported by this FFmpeg)")]
    UnusedOptions {
        /// Codec name.
        codec: &'static str,
        /// Option keys left over after opening.
        options: Vec<String>,
    },
    /// The source payload could not be decoded; the transcoder now waits for a source keyframe.
    #[error("undecodable VP8 input: {0}")]
    Decode(#[source] ffmpeg_next::Error),
    /// A frame flagged as keyframe does not carry a VP8 keyframe header.
    #[error("frame flagged as keyframe is not a VP8 keyframe")]
    NotKeyframe,
    /// A source keyframe announces a picture larger than [`layers::MAX_SOURCE_PIXELS`].
    #[error("source {width}x{height} is larger than we transcode")]
    SourceTooLarge {
        /// Announced width.
        width: u32,
        /// Announced height.
        height: u32,
    },
    /// The layer is not configured for this track.
    #[error("layer {0} is not configured for this track")]
    UnknownLayer(u8),
    /// Invalid configuration value.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A track with this id is already in the pool.
    #[error("track {0} is already in the pool")]
    DuplicateTrack(u32),
}

/// Crate result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Initialise FFmpeg once per process. Every constructor here calls it; calling it again is free.
/// It does not change FFmpeg's log level (that is the binary's choice).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Err(e) = ffmpeg_next::init() {
            tracing::error!(error = %e, "ffmpeg init failed");
        }
    });
}
