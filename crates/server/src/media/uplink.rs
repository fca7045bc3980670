//! `uplink_report` (PROTOCOL.md §5.6, uplink reports): what the server sees of a publisher's
//! uplink, for a publisher that asked for it in `hello`.
//!
//! A publisher cannot always see its own uplink's queue. Over WebSocket its kernel takes
//! the data into a send buffer of hundreds of kilobytes (a browser's `bufferedAmount` stays
//! at zero meanwhile), and a proxy in the path answers at once; over WebTransport its round
//! trip shows the queue, but only once its own writes back up. The server sees it directly:
//! the publisher's audio arrives later than it was captured by the time it waited
//! ([`DelayMeter`], the measure receivers use for `receiver_report`), and the bytes that
//! arrived are what the uplink carried.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use quicmeet_proto::delay::{DelayMeter, UPLINK_REPORT_INTERVAL_US};
use quicmeet_proto::{control, EncodedFrame, MediaKind, ServerMessage};

/// This server's clock in Unix microseconds, as the frames' capture times are.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// One publisher connection's uplink meter.
#[derive(Debug, Default)]
pub struct UplinkMeter {
    /// Media bytes received since the last report (every kind, from any reader task).
    bytes: AtomicU64,
    /// Audio transit, and when the current interval began (µs, this server's clock).
    audio: Mutex<(DelayMeter, u64)>,
}

impl UplinkMeter {
    /// Accounts a frame that arrived now (`now_us` reads the clock, only for audio);
    /// returns the report to send when an interval ended with it. Only audio frames read
    /// the clock, take the lock (50 a second per publisher) and end intervals: without audio
    /// no reports are sent, and the publisher relies on what it measures itself.
    pub fn on_frame(&self, frame: &EncodedFrame, now_us: impl FnOnce() -> u64) -> Option<Bytes> {
        self.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        let h = frame.header();
        if h.kind != MediaKind::Audio {
            return None;
        }
        let now_us = now_us();
        let mut a = self.audio.lock();
        let (meter, since) = &mut *a;
        meter.on_audio(h.track_id, h.capture_ts_us, now_us);
        if *since == 0 {
            *since = now_us;
            return None;
        }
        let elapsed = now_us.saturating_sub(*since);
        if elapsed < UPLINK_REPORT_INTERVAL_US {
            return None;
        }
        *since = now_us;
        let queue_ms = meter.report(now_us)?;
        let bytes = self.bytes.swap(0, Ordering::Relaxed);
        let kbps = u32::try_from(bytes * 8 * 1000 / elapsed.max(1)).unwrap_or(u32::MAX);
        Some(Bytes::from(control::encode(&ServerMessage::UplinkReport {
            queue_ms,
            kbps,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quicmeet_client::TrackPublisher;

    fn frame(kind: MediaKind, track_id: u32, capture_ts_us: u64, payload: usize) -> EncodedFrame {
        TrackPublisher::new(track_id, kind)
            .frame_at(kind == MediaKind::Audio, capture_ts_us, &vec![0u8; payload])
            .unwrap()
    }

    fn report(b: &Bytes) -> (u32, u32) {
        match control::decode_server(b).unwrap() {
            ServerMessage::UplinkReport { queue_ms, kbps } => (queue_ms, kbps),
            m => panic!("{m:?}"),
        }
    }

    /// A publisher sends 20 ms audio frames and, between them, `video` bytes of video; every
    /// frame waits `extra(t)` on its uplink on top of a 30 ms path. Returns the reports.
    fn run(
        m: &UplinkMeter,
        from_us: u64,
        ms: u64,
        video: usize,
        extra: impl Fn(u64) -> u64,
    ) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for k in 0..ms / 20 {
            let capture = from_us + k * 20_000;
            let arrive = capture + 30_000 + extra(capture - from_us);
            if video > 0 {
                m.on_frame(&frame(MediaKind::Video, 17, capture, video), || arrive);
            }
            if let Some(r) = m.on_frame(&frame(MediaKind::Audio, 16, capture, 100), || arrive) {
                out.push(report(&r));
            }
        }
        out
    }

    #[test]
    fn a_clear_uplink_reports_no_queue_and_the_rate_that_arrived() {
        let m = UplinkMeter::default();
        // 100-byte audio payloads (128 with the header) plus 2,472-byte video frames every
        // 20 ms: 2,600 bytes per 20 ms is 1,040 kbit/s.
        let r = run(&m, 1_000_000_000, 2_000, 2_444, |_| 0);
        assert!(r.len() >= 8, "{r:?}");
        for (q, kbps) in &r[1..] {
            assert_eq!(*q, 0);
            assert!((1_000..=1_100).contains(kbps), "{kbps}");
        }
    }

    #[test]
    fn a_queue_on_the_uplink_shows_in_the_reports() {
        let m = UplinkMeter::default();
        // Two clear seconds, then a queue that grows by 100 ms per second: the last report,
        // about 1.9 s into it, has the least of its 100 ms interval at about 1.8 s.
        let r = run(&m, 1_000_000_000, 4_000, 1_000, |t| {
            t.saturating_sub(2_000_000) / 10
        });
        let last = r.last().unwrap().0;
        assert!((150..=200).contains(&last), "{r:?}");
        assert_eq!(r[3].0, 0);
    }

    #[test]
    fn video_alone_sends_no_reports_and_reads_no_clock() {
        let m = UplinkMeter::default();
        for k in 0..100u64 {
            let f = frame(MediaKind::Video, 17, k * 33_000, 1_000);
            assert!(m
                .on_frame(&f, || unreachable!("a video frame reads the clock"))
                .is_none());
        }
    }
}
