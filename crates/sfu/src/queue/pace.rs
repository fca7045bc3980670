//! The video pacer of one subscriber queue: video leaves no faster than the subscriber's
//! downlink estimate.
//!
//! Why: when video is handed to the transport faster than the path carries it, the excess
//! waits in the bottleneck's queue (a router, a Wi-Fi card), where the subscriber's audio
//! waits behind it. Held back here instead, the excess waits in our queue, where audio goes
//! first and video that waited too long is cut back to a keyframe (which the layer policy
//! reads as lag and answers with a lower layer).
//!
//! A token bucket counted in bytes: a frame may leave while the bucket is not in debt, and
//! takes its whole size (so one large keyframe goes out whole and the frames after it wait
//! until the debt is paid). An idle subscriber saves up at most [`BURST`] of sending.

use std::time::{Duration, Instant};

/// The most sending an idle subscriber saves up.
const BURST: Duration = Duration::from_millis(40);

/// A token bucket for one subscriber's video.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pacer {
    /// Bytes per second.
    rate: f64,
    /// Bytes that may leave now (negative: debt).
    tokens: f64,
    last: Instant,
}

impl Pacer {
    pub(super) fn new(bps: u64, now: Instant) -> Self {
        let rate = bps as f64 / 8.0;
        Pacer {
            rate,
            tokens: rate * BURST.as_secs_f64(),
            last: now,
        }
    }

    /// A new rate; the tokens (or debt) already counted carry over.
    pub(super) fn set_rate(&mut self, bps: u64, now: Instant) {
        self.refill(now);
        self.rate = bps as f64 / 8.0;
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + self.rate * dt).min(self.rate * BURST.as_secs_f64());
    }

    /// True when a frame may leave at `now`.
    pub(super) fn ready(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= 0.0
    }

    /// A frame of `len` bytes left.
    pub(super) fn spend(&mut self, len: usize) {
        self.tokens -= len as f64;
    }

    /// When the next frame may leave (now, if it may already).
    pub(super) fn ready_at(&self) -> Instant {
        if self.tokens >= 0.0 || self.rate <= 0.0 {
            return self.last;
        }
        self.last + Duration::from_secs_f64(-self.tokens / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_leave_at_the_rate_on_average() {
        let t0 = Instant::now();
        // 800 kbit/s = 100 kB/s: ten 10 kB frames take about 0.9 s after the first.
        let mut p = Pacer::new(800_000, t0);
        let mut now = t0;
        let mut sent = 0;
        while sent < 10 {
            if p.ready(now) {
                p.spend(10_000);
                sent += 1;
            } else {
                now = p.ready_at();
            }
        }
        let took = now.duration_since(t0).as_secs_f64();
        assert!((0.85..0.95).contains(&took), "took {took} s");
    }

    #[test]
    fn an_idle_subscriber_saves_up_only_a_short_burst() {
        let t0 = Instant::now();
        let mut p = Pacer::new(800_000, t0);
        // After a long idle time, 40 ms of the rate (4 kB) may leave at once, not more.
        let now = t0 + Duration::from_secs(10);
        assert!(p.ready(now));
        p.spend(4_000);
        assert!(p.ready(now));
        p.spend(1_000);
        assert!(!p.ready(now));
        assert_eq!(p.ready_at(), now + Duration::from_millis(10));
    }

    #[test]
    fn a_lower_rate_keeps_the_debt() {
        let t0 = Instant::now();
        let mut p = Pacer::new(800_000, t0);
        p.spend(24_000); // 20 kB of debt after the 4 kB saved
        p.set_rate(400_000, t0);
        assert_eq!(p.ready_at(), t0 + Duration::from_millis(400));
    }
}
