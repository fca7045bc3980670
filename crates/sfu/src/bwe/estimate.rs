//! A subscriber's downlink estimate from what its transport reports.
//!
//! Inputs are cumulative counters and instantaneous readings ([`TransportStats`]), sampled
//! by the server every few hundred milliseconds. The estimate follows the best capacity
//! signal the transport has (QUIC: congestion window over RTT; TCP: the kernel's delivery
//! rate; either: what the subscriber's queue actually drained while it was backlogged),
//! drops at once on heavy loss or lag, and grows back slowly, so a layer chosen from it does
//! not flap.

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
/// Fastest growth of the estimate, per second.
const GROWTH_PER_SEC: f64 = 0.15;
/// Queue backlog above which the drain rate is the path's capacity, not the demand.
const BACKLOG_BYTES: u64 = 16 * 1024;
/// Shortest interval between two samples that is used.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The estimate of one subscriber. Starts unknown; the first usable sample sets it.
#[derive(Debug, Default, Clone)]
pub struct Estimator {
    last: Option<(Instant, TransportStats)>,
    /// Bits per second, once known.
    bps: Option<f64>,
    /// A lag event arrived since the last sample.
    lagged: bool,
}

impl Estimator {
    /// The current estimate in bits per second.
    pub fn bps(&self) -> Option<u64> {
        self.bps.map(|b| b as u64)
    }

    /// The subscriber lagged (fast signal): the next sample cuts the estimate to what was
    /// actually delivered.
    pub fn lag(&mut self) {
        self.lagged = true;
    }

    /// Folds in one sample.
    pub fn update(&mut self, now: Instant, s: TransportStats) {
        let Some((t0, prev)) = self.last else {
            self.last = Some((now, s));
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
        // What actually went out while the queue was backlogged is a floor on capacity and,
        // under loss or lag, the best guess of it.
        let drained = delta(s.drained_bytes, prev.drained_bytes).map(|b| b as f64 * 8.0 / secs);
        let backlogged = s.queued_bytes.is_some_and(|q| q >= BACKLOG_BYTES);
        let window = match (s.cwnd_bytes, s.rtt) {
            (Some(c), Some(r)) if !r.is_zero() => Some(c as f64 * 8.0 / r.as_secs_f64()),
            _ => None,
        };
        let capacity = s
            .delivery_rate_bps
            .map(|d| d as f64)
            .or(window)
            .or(drained.filter(|_| backlogged));
        let loss = match (
            delta(s.lost_packets, prev.lost_packets),
            delta(s.sent_packets, prev.sent_packets),
        ) {
            (Some(l), Some(n)) if n > 0 => l as f64 / n as f64,
            _ => 0.0,
        };
        let lagged = std::mem::take(&mut self.lagged);
        let mut est = match (self.bps, capacity) {
            (None, c) => c,
            (Some(old), Some(c)) if c < old => Some(c),
            (Some(old), Some(c)) => Some(c.min(old * (1.0 + GROWTH_PER_SEC * secs))),
            (Some(old), None) => Some(old),
        };
        if loss > LOSS_CUT || lagged {
            let delivered = drained.unwrap_or(f64::MAX);
            est = est.map(|e| e.min(delivered) * (1.0 - (loss / 2.0).min(0.5)).min(0.85));
        }
        if est.is_some() {
            self.bps = est;
        }
    }
}
