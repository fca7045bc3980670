//! What participant tasks record: per-stream statistics owned by one task, and run-wide
//! counters and histograms shared by all of them (atomics, and short locks for histograms).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;
use quicmeet_proto::MediaKind;
use serde::Serialize;

use crate::hist::{Hist, SharedHist, Summary};

/// Index of a media kind in per-kind arrays.
pub fn kind_index(k: MediaKind) -> usize {
    match k {
        MediaKind::Audio => 0,
        MediaKind::Video => 1,
        MediaKind::Screen => 2,
    }
}

/// Names of the per-kind arrays.
pub const KIND_NAMES: [&str; 3] = ["audio", "video", "screen"];

/// One received stream (one track and layer, as seen by one subscriber connection).
#[derive(Debug, Clone)]
pub struct StreamStat {
    /// Meeting index.
    pub room: usize,
    /// Receiving participant (index within the run).
    pub receiver: usize,
    /// Track id.
    pub track: u32,
    /// Layer.
    pub layer: u8,
    /// Kind.
    pub kind: MediaKind,
    /// First sequence number received.
    pub first_seq: Option<u32>,
    /// Highest sequence number received.
    pub highest: u32,
    /// Frames received.
    pub received: u64,
    /// Audio datagrams this tool dropped itself for their age: delivered by the server, so
    /// not lost, but not in latency either.
    pub expired: u64,
    /// Frames received whose capture time is older than the subscription (late-joiner replay
    /// from the server's cache); counted as received, left out of latency.
    pub cached: u64,
    /// Frames that arrived below the highest sequence number seen.
    pub reordered: u64,
    /// Frames missing after the last one received when the publisher stopped.
    pub tail_lost: u64,
    /// Frames missing before the first one received although the subscription came before
    /// the publisher's first frame.
    pub head_lost: u64,
    /// Media bytes received (header included).
    pub bytes: u64,
    /// End-to-end latency (µs).
    pub latency: Hist,
    /// RFC 3550 interarrival jitter estimate (µs).
    pub jitter_us: f64,
    last_transit: Option<i64>,
    /// Time from subscription (or media start) to the first frame (µs).
    pub first_frame_us: Option<u64>,
    /// Latency of frames received once the room's media had run for
    /// [`crate::lab::report::SETTLE_ALLOWANCE`] (µs): what a subscriber sees after its layer
    /// had time to settle.
    pub settled: Hist,
}

impl StreamStat {
    /// A stream with nothing received yet.
    pub fn new(room: usize, receiver: usize, track: u32, layer: u8, kind: MediaKind) -> Self {
        StreamStat {
            room,
            receiver,
            track,
            layer,
            kind,
            first_seq: None,
            highest: 0,
            received: 0,
            expired: 0,
            cached: 0,
            reordered: 0,
            tail_lost: 0,
            head_lost: 0,
            bytes: 0,
            latency: Hist::default(),
            jitter_us: 0.0,
            last_transit: None,
            first_frame_us: None,
            settled: Hist::default(),
        }
    }

    /// Account one frame; returns the latency to record run-wide, if it counts.
    pub fn on_frame(
        &mut self,
        seq: u32,
        bytes: usize,
        transit_us: i64,
        cached: bool,
    ) -> Option<u64> {
        self.received += 1;
        self.bytes += bytes as u64;
        match self.first_seq {
            None => {
                self.first_seq = Some(seq);
                self.highest = seq;
            }
            Some(_) if seq > self.highest => self.highest = seq,
            Some(_) => self.reordered += 1,
        }
        if cached {
            self.cached += 1;
            return None;
        }
        let lat = transit_us.max(0) as u64;
        self.latency.record(lat);
        if let Some(prev) = self.last_transit {
            let d = (transit_us - prev).unsigned_abs() as f64;
            self.jitter_us += (d - self.jitter_us) / 16.0;
        }
        self.last_transit = Some(transit_us);
        Some(lat)
    }

    /// A frame the server delivered but this tool dropped for its age (sequence accounting
    /// only).
    pub fn on_expired(&mut self, seq: u32) {
        self.expired += 1;
        match self.first_seq {
            None => {
                self.first_seq = Some(seq);
                self.highest = seq;
            }
            Some(_) if seq > self.highest => self.highest = seq,
            Some(_) => {}
        }
    }

    /// Frames expected between the first received and the publisher's last (head and tail
    /// included).
    pub fn expected(&self) -> u64 {
        match self.first_seq {
            Some(f) => {
                u64::from(self.highest.wrapping_sub(f)) + 1 + self.tail_lost + self.head_lost
            }
            None => self.tail_lost + self.head_lost,
        }
    }

    /// Frames lost (gaps plus tail).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received + self.expired)
    }
}

/// Counters and histograms shared by every task of a run.
#[derive(Debug, Default)]
pub struct Shared {
    /// Latency per kind, whole run.
    pub latency: [SharedHist; 3],
    /// Latency of all kinds, current one-second window (taken by the sampler).
    pub window: SharedHist,
    /// Frames sent per kind.
    pub frames_sent: [AtomicU64; 3],
    /// Bytes sent.
    pub bytes_sent: AtomicU64,
    /// Frames received (all kinds).
    pub frames_rx: AtomicU64,
    /// Bytes received.
    pub bytes_rx: AtomicU64,
    /// Connected participants now.
    pub connected: AtomicU64,
    /// Participants that joined at least once.
    pub joined: AtomicU64,
    /// Participants that never managed to join.
    pub join_failed: AtomicU64,
    /// Reconnections after an unexpected close.
    pub reconnects: AtomicU64,
    /// Planned leave-and-rejoin events done.
    pub churn_rejoins: AtomicU64,
    /// Chat messages sent.
    pub chat_sent: AtomicU64,
    /// Chat messages received (every participant counts).
    pub chat_rx: AtomicU64,
    /// Chat latency from send to receipt (µs).
    pub chat_latency: SharedHist,
    /// Lateness of publishers' sends against their schedule (µs).
    pub sender_lag: SharedHist,
    /// REST join time (µs).
    pub join_api: Mutex<Hist>,
    /// Transport handshake + hello → welcome (µs).
    pub join_connect: Mutex<Hist>,
    /// Subscription (or media start) → a session's first frame of any kind (µs).
    pub first_frame: Mutex<Hist>,
    /// Whole join: API + handshake + first frame (µs).
    pub join_total: Mutex<Hist>,
    /// Errors by kind.
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Where each participant (by run index) got its media connection, last join.
    pub placed: Mutex<HashMap<usize, crate::cluster::Placed>>,
    /// Finished streams.
    pub streams: Mutex<Vec<StreamStat>>,
    /// Last sequence number each publisher sent, per (room, track).
    pub last_seq: Mutex<HashMap<(usize, u32), u32>>,
    /// Audio datagrams this tool dropped itself because it read them later than
    /// `--datagram-max-age-ms` (its own backlog, not the server's).
    pub datagrams_expired: AtomicU64,
    /// Datagrams QUIC received for this tool that it never read (QUIC's receive buffer was
    /// full and dropped the oldest): this tool's own backlog.
    pub quic_datagrams_dropped_in: AtomicU64,
    /// Audio datagrams this tool's publishers handed to QUIC that it never sent (its send
    /// buffer was full and dropped the oldest).
    pub quic_datagrams_dropped_out: AtomicU64,
    /// What the impairment lab and the publishers' adaptation recorded.
    pub lab: crate::lab::report::Records,
}

impl Shared {
    /// Count an error of this kind.
    pub fn error(&self, kind: impl Into<String>) {
        *self.errors.lock().entry(kind.into()).or_default() += 1;
    }

    /// Add a frame-sent count.
    pub fn sent(&self, kind: MediaKind, bytes: usize) {
        self.frames_sent[kind_index(kind)].fetch_add(1, Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Relaxed);
    }
}

/// Per-kind figures in the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindReport {
    /// `audio`, `video`, `screen` or `all`.
    pub kind: String,
    /// Streams (subscriber × track × layer) that received something or were expected to.
    pub streams: u64,
    /// Frames publishers sent.
    pub frames_sent: u64,
    /// Frames subscribers received.
    pub frames_received: u64,
    /// Of those, replayed from the server's cache (not in latency).
    pub frames_cached: u64,
    /// Frames lost (sequence gaps and tail).
    pub frames_lost: u64,
    /// `frames_lost / (frames_received + frames_lost)` in percent.
    pub loss_pct: f64,
    /// End-to-end latency in ms.
    pub latency_ms: SummaryMs,
    /// Mean of the streams' jitter (ms).
    pub jitter_ms_mean: f64,
    /// Worst stream's jitter (ms).
    pub jitter_ms_max: f64,
    /// Bytes received.
    pub bytes_received: u64,
}

/// A [`Summary`] converted to milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SummaryMs {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl From<Summary> for SummaryMs {
    fn from(s: Summary) -> Self {
        let ms = |v: u64| v as f64 / 1000.0;
        SummaryMs {
            count: s.count,
            mean: s.mean / 1000.0,
            p50: ms(s.p50),
            p90: ms(s.p90),
            p99: ms(s.p99),
            max: ms(s.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_counts_gaps_and_tail_but_not_reordering() {
        let mut s = StreamStat::new(0, 0, 17, 0, MediaKind::Video);
        for seq in [0u32, 1, 2, 5, 4, 6] {
            s.on_frame(seq, 100, 1_000, false);
        }
        assert_eq!(s.received, 6);
        assert_eq!(s.reordered, 1);
        assert_eq!(s.expected(), 7);
        assert_eq!(s.lost(), 1); // seq 3
        s.tail_lost = 2;
        assert_eq!(s.lost(), 3);
        assert_eq!(s.latency.count(), 6);
    }

    #[test]
    fn cached_frames_count_as_received_but_not_in_latency() {
        let mut s = StreamStat::new(0, 0, 17, 0, MediaKind::Video);
        assert_eq!(s.on_frame(10, 1, 900_000, true), None);
        assert_eq!(s.on_frame(11, 1, 2_000, false), Some(2_000));
        assert_eq!((s.received, s.cached, s.lost()), (2, 1, 0));
    }
}
