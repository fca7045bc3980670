//! Lock-free counters for the Prometheus endpoint.
//!
//! One [`Metrics`] is usually shared (`Arc`) by every transcoder of a [`crate::Pool`]; readers
//! call [`Metrics::snapshot`] from any thread without locking. Counters only grow; gauges
//! (`active_encoders`, `queued_frames`) go up and down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

macro_rules! metrics {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Shared counters, updated with relaxed atomics.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $( $(#[$doc])* pub $name: AtomicU64, )*
        }

        /// A plain copy of [`Metrics`] at one moment.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct MetricsSnapshot {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl Metrics {
            /// Read every counter (each one atomically; the set is not a transaction).
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }
    };
}

metrics! {
    /// Source frames handed to a transcoder (pool submissions that were not dropped).
    frames_in,
    /// Source frames the pool dropped because a track's queue was full (until the next keyframe).
    frames_dropped,
    /// Source frames not decoded: no layer active, or waiting for a source keyframe.
    frames_skipped,
    /// Source frames decoded.
    frames_decoded,
    /// Source frames FFmpeg could not decode.
    decode_errors,
    /// Layer encoder failures (the encoder is rebuilt).
    encode_errors,
    /// Encoded layer frames produced.
    frames_out,
    /// Keyframes among `frames_out`.
    keyframes_out,
    /// Payload bytes of `frames_out`.
    bytes_out,
    /// Total time spent decoding, ns.
    decode_ns,
    /// Total time spent scaling, ns.
    scale_ns,
    /// Total time spent encoding, ns.
    encode_ns,
    /// Gauge: layer encoders currently open (including lingering ones).
    active_encoders,
    /// Layer encoders opened since start.
    encoders_created,
    /// Gauge: source frames waiting in pool queues.
    queued_frames,
    /// Panics caught by the pool (the track's transcoder is rebuilt).
    panics,
    /// Gauge: pool workers decoding only their publishers' base temporal layer now
    /// ([`crate::pool::TemporalPolicy::WhenBusy`] found them busy).
    workers_base_layer_only,
    /// Times a pool worker switched between every frame and the base layer only.
    temporal_switches,
}

impl Metrics {
    /// A fresh, shareable set of counters.
    pub fn new_shared() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Keeps `active_encoders` exact: counts up when created, down when dropped.
#[derive(Debug)]
pub(crate) struct EncoderGauge(Arc<Metrics>);

impl EncoderGauge {
    pub(crate) fn new(metrics: &Arc<Metrics>) -> Self {
        Metrics::add(&metrics.active_encoders, 1);
        Metrics::add(&metrics.encoders_created, 1);
        EncoderGauge(metrics.clone())
    }
}

impl Drop for EncoderGauge {
    fn drop(&mut self) {
        Metrics::sub(&self.0.active_encoders, 1);
    }
}
