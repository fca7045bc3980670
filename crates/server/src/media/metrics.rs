//! Media plane counters, exported on `/metrics`.
//!
//! The per-frame paths count with one relaxed `fetch_add` on these atomics; the view below
//! hands them to `prometheus-client` when `/metrics` is scraped.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
};

use crate::metrics::{counter, gauge};

#[derive(Default, Debug)]
pub struct MediaMetrics {
    pub frames_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub frames_forwarded: AtomicU64,
    pub dropped_room_busy: AtomicU64,
    pub dropped_by_room: AtomicU64,
    pub dropped_by_queue: AtomicU64,
    pub dropped_stream_backlog: AtomicU64,
    /// Audio datagrams QUIC dropped unsent (WebTransport; see `wt::DatagramCount`).
    pub dropped_quic_datagrams: AtomicU64,
    /// Of those, the ones QUIC dropped because they waited past `wt::DATAGRAM_MAX_AGE`.
    pub expired_quic_datagrams: AtomicU64,
    pub group_resets: AtomicU64,
    pub keyframe_requests: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub refused_connections: AtomicU64,
    pub rooms_opened: AtomicU64,
    pub sessions_wt: AtomicU64,
    pub sessions_ws: AtomicU64,
    pub datagrams_too_large: AtomicU64,
    pub layer_switches: AtomicU64,
    /// `produce_layer` sent to publishers (the transcoder pool was saturated).
    pub produce_layer_sent: AtomicU64,
    /// `stop_layer` sent to publishers.
    pub stop_layer_sent: AtomicU64,
    /// Lower layers publishers took over from the transcoder.
    pub publisher_layers_started: AtomicU64,
    /// Participants whose media goes peer to peer (`media_path{p2p}`), a gauge.
    pub p2p_participants: AtomicU64,
    /// Steps a room skipped because its own state contradicted itself (bugs, not clients).
    pub room_invariant_violations: AtomicU64,
    /// Room actors that panicked; each closed its meeting with `goodbye{reason:"error"}`.
    pub room_panics: AtomicU64,
    /// Time the room spends on one incoming frame: routing plus queueing for every subscriber.
    pub forward_latency: Histogram,
}

#[derive(Default, Debug, Clone, Copy)]
pub struct ConnGauges {
    pub webtransport: u64,
    pub websocket: u64,
    pub queued_frames: u64,
    pub queued_bytes: u64,
    pub max_queue_bytes: u64,
}

/// A fixed-bucket histogram in microseconds: a few relaxed atomics per observation, where
/// `prometheus_client::metrics::histogram::Histogram` takes a lock.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; 12],
    sum: AtomicU64,
    count: AtomicU64,
}

const BOUNDS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
];

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; 12],
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe_us(&self, us: u64) {
        if let Some(i) = BOUNDS_US.iter().position(|&b| us <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.sum.fetch_add(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }
    fn encode(&self, enc: &mut DescriptorEncoder, name: &str, help: &str) -> fmt::Result {
        let count = self.count.load(Relaxed);
        let mut buckets: Vec<(f64, u64)> = BOUNDS_US
            .iter()
            .zip(&self.buckets)
            .map(|(b, c)| (*b as f64 / 1e6, c.load(Relaxed)))
            .collect();
        let below: u64 = buckets.iter().map(|b| b.1).sum();
        // Observations above the last bound are only in the count; the encoder marks
        // `f64::MAX` as `+Inf`.
        buckets.push((f64::MAX, count.saturating_sub(below)));
        let sum = self.sum.load(Relaxed) as f64 / 1e6;
        enc.encode_descriptor(name, help, None, MetricType::Histogram)?
            .encode_histogram::<NoLabelSet>(sum, count.max(below), &buckets, None)
    }
}

/// What `/metrics` shows of the media plane: its counters and a snapshot of its gauges.
pub struct MediaMetricsView {
    pub m: Arc<MediaMetrics>,
    pub rooms: usize,
    pub conns: ConnGauges,
    pub transcode: Option<quicmeet_transcode::MetricsSnapshot>,
}

impl fmt::Debug for MediaMetricsView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaMetricsView")
            .field("rooms", &self.rooms)
            .field("conns", &self.conns)
            .finish_non_exhaustive()
    }
}

impl Collector for MediaMetricsView {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let out = &mut enc;
        let m = &self.m;
        let counters: [(&str, &str, &AtomicU64); 23] = [
            (
                "quicmeet_layer_switches_total",
                "Layer changes made by the congestion controller.",
                &m.layer_switches,
            ),
            (
                "quicmeet_produce_layer_total",
                "produce_layer requests sent to publishers (transcoder pool saturated).",
                &m.produce_layer_sent,
            ),
            (
                "quicmeet_stop_layer_total",
                "stop_layer messages sent to publishers.",
                &m.stop_layer_sent,
            ),
            (
                "quicmeet_publisher_layers_started_total",
                "Lower layers publishers took over from the transcoder.",
                &m.publisher_layers_started,
            ),
            (
                "quicmeet_media_frames_in_total",
                "Media frames received from publishers.",
                &m.frames_in,
            ),
            (
                "quicmeet_media_bytes_in_total",
                "Media bytes received from publishers.",
                &m.bytes_in,
            ),
            (
                "quicmeet_media_frames_out_total",
                "Media frames handed to transports.",
                &m.frames_out,
            ),
            (
                "quicmeet_media_bytes_out_total",
                "Media bytes handed to transports.",
                &m.bytes_out,
            ),
            (
                "quicmeet_media_dropped_room_busy_total",
                "Frames dropped because a room's input queue was full.",
                &m.dropped_room_busy,
            ),
            (
                "quicmeet_media_dropped_by_room_total",
                "Frames refused by the room (ownership, rate, size).",
                &m.dropped_by_room,
            ),
            (
                "quicmeet_media_dropped_by_queue_total",
                "Frames dropped by subscriber queues (backpressure).",
                &m.dropped_by_queue,
            ),
            (
                "quicmeet_media_dropped_stream_backlog_total",
                "Video frames dropped because a WebTransport stream could not keep up.",
                &m.dropped_stream_backlog,
            ),
            (
                "quicmeet_media_dropped_quic_datagrams_total",
                "Audio datagrams QUIC dropped from a full send buffer or discarded unsent at the \
                 close (WebTransport), counted from QUIC's own statistics when a session ends.",
                &m.dropped_quic_datagrams,
            ),
            (
                "quicmeet_media_quic_datagrams_expired_total",
                "Of the dropped QUIC datagrams, those that waited in QUIC longer than the age \
                 limit (150 ms) and were discarded unsent: audio too late to be worth sending.",
                &m.expired_quic_datagrams,
            ),
            (
                "quicmeet_media_group_resets_total",
                "Video group streams reset for lagging subscribers.",
                &m.group_resets,
            ),
            (
                "quicmeet_media_keyframe_requests_total",
                "Keyframe requests sent to publishers.",
                &m.keyframe_requests,
            ),
            (
                "quicmeet_media_protocol_errors_total",
                "Malformed input from clients.",
                &m.protocol_errors,
            ),
            (
                "quicmeet_media_refused_connections_total",
                "Media connections refused (token, meeting).",
                &m.refused_connections,
            ),
            (
                "quicmeet_media_rooms_opened_total",
                "Rooms started.",
                &m.rooms_opened,
            ),
            (
                "quicmeet_media_sessions_webtransport_total",
                "WebTransport sessions accepted.",
                &m.sessions_wt,
            ),
            (
                "quicmeet_media_sessions_websocket_total",
                "WebSocket sessions accepted.",
                &m.sessions_ws,
            ),
            (
                "quicmeet_room_invariant_violations_total",
                "Room steps skipped because the room's state was inconsistent (a server bug).",
                &m.room_invariant_violations,
            ),
            (
                "quicmeet_room_panics_total",
                "Room actors that panicked and closed their meeting with an error.",
                &m.room_panics,
            ),
        ];
        for (name, help, v) in counters {
            counter(out, name, help, v.load(Relaxed))?;
        }
        gauge(
            out,
            "quicmeet_rooms",
            "Rooms with participants.",
            self.rooms,
        )?;
        {
            let mut family = out.encode_descriptor(
                "quicmeet_participants",
                "Connected participants by transport.",
                None,
                MetricType::Gauge,
            )?;
            for (transport, n) in [
                ("webtransport", self.conns.webtransport),
                ("websocket", self.conns.websocket),
            ] {
                family
                    .encode_family(&[("transport", transport)])?
                    .encode_gauge(&n)?;
            }
        }
        gauge(
            out,
            "quicmeet_p2p_participants",
            "Participants in a direct two-person call (they send the server no media).",
            m.p2p_participants.load(Relaxed),
        )?;
        gauge(
            out,
            "quicmeet_queue_frames",
            "Media frames waiting in subscriber queues.",
            self.conns.queued_frames,
        )?;
        gauge(
            out,
            "quicmeet_queue_bytes",
            "Bytes waiting in subscriber queues.",
            self.conns.queued_bytes,
        )?;
        gauge(
            out,
            "quicmeet_queue_bytes_max",
            "Largest subscriber queue in bytes.",
            self.conns.max_queue_bytes,
        )?;
        if let Some(t) = &self.transcode {
            let rows: [(&str, &str, u64, &str); 13] = [
                (
                    "quicmeet_transcode_frames_in_total",
                    "Source frames given to transcoders.",
                    t.frames_in,
                    "counter",
                ),
                (
                    "quicmeet_transcode_frames_decoded_total",
                    "Source frames decoded (while a worker is busy, frames no later frame refers to are skipped).",
                    t.frames_decoded,
                    "counter",
                ),
                (
                    "quicmeet_transcode_frames_dropped_total",
                    "Source frames dropped because a transcoder fell behind.",
                    t.frames_dropped,
                    "counter",
                ),
                (
                    "quicmeet_transcode_frames_out_total",
                    "Lower-layer frames encoded.",
                    t.frames_out,
                    "counter",
                ),
                (
                    "quicmeet_transcode_decode_errors_total",
                    "Undecodable source frames.",
                    t.decode_errors,
                    "counter",
                ),
                (
                    "quicmeet_transcode_decode_seconds_total",
                    "Time spent decoding.",
                    t.decode_ns,
                    "ns",
                ),
                (
                    "quicmeet_transcode_scale_seconds_total",
                    "Time spent scaling.",
                    t.scale_ns,
                    "ns",
                ),
                (
                    "quicmeet_transcode_encode_seconds_total",
                    "Time spent encoding.",
                    t.encode_ns,
                    "ns",
                ),
                (
                    "quicmeet_transcode_active_encoders",
                    "Layer encoders running now.",
                    t.active_encoders,
                    "gauge",
                ),
                (
                    "quicmeet_transcode_encoders_created_total",
                    "Layer encoders started.",
                    t.encoders_created,
                    "counter",
                ),
                (
                    "quicmeet_transcode_workers_base_layer_only",
                    "Transcoder workers decoding only the base temporal layer of their \
                     publishers now (busy; lower layers at half the frame rate).",
                    t.workers_base_layer_only,
                    "gauge",
                ),
                (
                    "quicmeet_transcode_temporal_switches_total",
                    "Times a transcoder worker switched between every frame and the base \
                     temporal layer only.",
                    t.temporal_switches,
                    "counter",
                ),
                (
                    "quicmeet_transcode_queued_frames",
                    "Source frames waiting for a transcoder.",
                    t.queued_frames,
                    "gauge",
                ),
            ];
            for (name, help, v, ty) in rows {
                match ty {
                    "ns" => counter(out, name, help, v as f64 / 1e9)?,
                    "gauge" => gauge(out, name, help, v)?,
                    _ => counter(out, name, help, v)?,
                }
            }
        }
        m.forward_latency.encode(
            out,
            "quicmeet_room_fanout_seconds",
            "Time a room spends routing one incoming frame to all its subscribers.",
        )
    }
}
