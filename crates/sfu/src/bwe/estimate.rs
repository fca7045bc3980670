//! A subscriber's downlink estimate from what its transport reports.
//!
//! Inputs are cumulative counters and instantaneous readings ([`TransportStats`]), sampled
//! by the server every few hundred milliseconds, plus lag events (the fast signal).
//!
//! The estimate is the lower of two parts:
//! - the **base**: what the transport says the path allows: TCP's own delivery rate
//!   (TCP_INFO) or QUIC's congestion window over RTT. It falls at once and grows back at
//!   most [`GROWTH_PER_SEC`], so a layer chosen from it does not flap. A transport that
//!   reports neither (WebSocket without TCP_INFO) has no base.
//! - the **ceiling**: evidence of a limit that the base does not show: what the
//!   subscriber's queue drained while it was backlogged, or what was delivered when the
//!   subscriber lagged or lost heavily. Evidence goes stale: after a calm hold (no backlog,
//!   no lag, no heavy loss) the ceiling is lifted and the layer policy may try a better
//!   layer. When that try brings the limit back soon, the next hold is twice as long (up to
//!   [`MAX_HOLD`]), so a link that cannot carry the better layer is not probed every few
//!   seconds.
//!
//! The estimate never goes below [`MIN_BPS`]: a stall delivers nothing for a moment, and an
//! estimate of zero would never grow back.

use std::time::{Duration, Instant};

/// What a transport measured about one subscriber's downlink. Counters are cumulative since
/// the connection started; a transport leaves out what it does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TransportStats {
    /// Smoothed round-trip time.
    pub rtt: Option<Duration>,
    /// Congestion window, bytes.
    pub cwnd_bytes: Option<u64>,
    /// Bytes sent and not yet acknowledged.
    pub bytes_in_flight: Option<u64>,
    /// Packets sent so far.
    pub sent_packets: Option<u64>,
    /// Packets declared lost so far.
    pub lost_packets: Option<u64>,
    /// Congestion events so far.
    pub congestion_events: Option<u64>,
    /// The transport's own delivery-rate estimate (TCP_INFO `tcpi_delivery_rate`), bits/s.
    pub delivery_rate_bps: Option<u64>,
    /// Bytes the subscriber's queue handed to the transport so far.
    pub drained_bytes: Option<u64>,
    /// Bytes waiting in the subscriber's queue now.
    pub queued_bytes: Option<u64>,
}

/// Loss ratio above which the estimate is cut.
const LOSS_CUT: f64 = 0.10;
/// Fastest growth of the base, per second.
const GROWTH_PER_SEC: f64 = 0.15;
/// Queue backlog above which the drain rate is the path's capacity, not the demand.
const BACKLOG_BYTES: u64 = 16 * 1024;
/// Shortest interval between two samples that is used.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The estimate never goes below this (audio and the lowest video layer).
pub const MIN_BPS: f64 = 200_000.0;
/// How long a ceiling holds while the subscriber is calm, the first time.
const HOLD: Duration = Duration::from_secs(5);
/// The longest hold, after repeated failed tries.
const MAX_HOLD: Duration = Duration::from_secs(40);
/// Share of the delivered rate kept when the subscriber lagged or lost heavily.
const CUT: f64 = 0.85;

/// The estimate of one subscriber. Starts unknown; the first usable sample sets it.
#[derive(Debug, Clone)]
pub struct Estimator {
    last: Option<(Instant, TransportStats)>,
    /// What the transport says the path allows, bits/s.
    base: Option<f64>,
    /// A limit seen in the queue or in lag, bits/s, and when the subscriber was last not calm.
    ceiling: Option<(f64, Instant)>,
    /// How long the current ceiling holds once calm.
    hold: Duration,
    /// When the last ceiling was lifted (to back off when the limit comes straight back).
    lifted_at: Option<Instant>,
    /// A lag event arrived since the last sample.
    lagged: bool,
}

impl Default for Estimator {
    fn default() -> Self {
        Estimator {
            last: None,
            base: None,
            ceiling: None,
            hold: HOLD,
            lifted_at: None,
            lagged: false,
        }
    }
}

impl Estimator {
    /// The current estimate in bits per second; `None` while nothing limits the subscriber
    /// that the transport can see.
    pub fn bps(&self) -> Option<u64> {
        let e = match (self.base, self.ceiling) {
            (Some(b), Some((c, _))) => b.min(c),
            (Some(b), None) => b,
            (None, Some((c, _))) => c,
            (None, None) => return None,
        };
        Some(e.max(MIN_BPS) as u64)
    }

    /// How long a ceiling currently holds before it is lifted.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// The subscriber lagged (fast signal): the next sample caps the estimate at what was
    /// actually delivered.
    pub fn lag(&mut self) {
        self.lagged = true;
    }

    /// Folds in one sample.
    pub fn update(&mut self, now: Instant, s: TransportStats) {
        let Some((t0, prev)) = self.last else {
            self.last = Some((now, s));
            self.base = capacity(&s);
            return;
        };
        let dt = now.saturating_duration_since(t0);
        if dt < MIN_INTERVAL {
            return;
        }
        self.last = Some((now, s));
        let secs = dt.as_secs_f64();
        let delta = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.saturating_sub(b)),
            _ => None,
        };
        let drained = delta(s.drained_bytes, prev.drained_bytes).map(|b| b as f64 * 8.0 / secs);
        let backlogged = s.queued_bytes.is_some_and(|q| q >= BACKLOG_BYTES);
        let loss = match (
            delta(s.lost_packets, prev.lost_packets),
            delta(s.sent_packets, prev.sent_packets),
        ) {
            (Some(l), Some(n)) if n > 0 => l as f64 / n as f64,
            _ => 0.0,
        };
        let lagged = std::mem::take(&mut self.lagged);
        let heavy_loss = loss > LOSS_CUT;

        self.base = match (self.base, capacity(&s)) {
            (_, None) => None,
            (None, c) => c,
            (Some(old), Some(c)) if c < old => Some(c),
            (Some(old), Some(c)) => Some(c.min(old * (1.0 + GROWTH_PER_SEC * secs))),
        };

        if backlogged || lagged || heavy_loss {
            // What went out is the path's capacity while the queue stayed full; when the
            // subscriber lagged or lost heavily, keep a margin under it.
            let delivered = drained.unwrap_or(MIN_BPS).max(MIN_BPS);
            let limit = if lagged || heavy_loss {
                let cut = (1.0 - loss / 2.0).clamp(0.5, CUT);
                self.ceiling
                    .map_or(delivered, |(c, _)| c.min(delivered))
                    .min(self.base.unwrap_or(f64::MAX))
                    * cut
            } else {
                delivered
            };
            if self.ceiling.is_none() {
                // A limit that comes back soon after the last one was lifted means the try
                // failed: wait longer before the next one.
                self.hold = match self.lifted_at {
                    Some(t) if now.saturating_duration_since(t) < self.hold * 2 => {
                        (self.hold * 2).min(MAX_HOLD)
                    }
                    _ => HOLD,
                };
            }
            self.ceiling = Some((limit.max(MIN_BPS), now));
            return;
        }
        if let Some((c, since)) = self.ceiling {
            if now.saturating_duration_since(since) >= self.hold {
                self.ceiling = None;
                self.lifted_at = Some(now);
            } else if let Some(d) = drained.filter(|d| *d > c) {
                // Delivered more than the ceiling without backing up: it was too low.
                self.ceiling = Some((d, since));
            }
        }
    }
}

/// What the transport itself says the path allows: TCP's delivery rate, or QUIC's window.
fn capacity(s: &TransportStats) -> Option<f64> {
    let window = match (s.cwnd_bytes, s.rtt) {
        (Some(c), Some(r)) if !r.is_zero() => Some(c as f64 * 8.0 / r.as_secs_f64()),
        _ => None,
    };
    s.delivery_rate_bps.map(|d| d as f64).or(window)
}
