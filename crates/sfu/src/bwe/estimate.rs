//! A subscriber's downlink estimate from what its transport reports.
//!
//! Inputs are cumulative counters and instantaneous readings ([`TransportStats`]), sampled
//! by the server every 100 ms during a connection's first seconds and every 500 ms after,
//! plus lag events (the fast signal). Rates and loss are measured over at least
//! [`RATE_WINDOW`] whatever the sampling, and a new limit is set at most once per window.
//!
//! The estimate is the lower of two parts:
//! - the **base**: what the transport says the path allows: TCP's own delivery rate
//!   (TCP_INFO) or QUIC's congestion window over RTT. It falls at once and grows back at
//!   most [`GROWTH_PER_SEC`], so a layer chosen from it does not flap. A transport that
//!   reports neither (WebSocket without TCP_INFO) has no base.
//! - the **ceiling**: evidence of a limit that the base does not show: what the
//!   subscriber's queue drained while the transport held it back, or a cut below what was
//!   delivered when the subscriber lagged, lost heavily, or its round trip grew by more
//!   than [`QUEUE_DELAY`] over the shortest one seen (a queue building at the bottleneck,
//!   where the subscriber's audio waits behind its video).
//!
//! Evidence goes stale: after a calm hold (no backlog, no lag, no heavy loss, no queueing
//! delay) the ceiling grows by [`PROBE_GROWTH_PER_SEC`], so the layer policy tries a better
//! layer only once the ceiling has grown to it, and an overshoot is small. When the limit
//! comes back soon after growth started, the next hold is twice as long (up to
//! [`MAX_HOLD`]), so a link that cannot carry the better layer is not probed every few
//! seconds. A ceiling at the floor (a stall, not a measured rate) is lifted at once instead,
//! and so is one that has grown to the base or far past what the subscriber takes.
//!
//! While a ceiling holds, the subscriber's video is paced at its share of it
//! ([`Estimator::pace_bps`]). A cut for queueing delay also asks the transport to drop
//! the video it buffered at the old rate ([`Estimator::flushes`]), so the bottleneck's queue empties at once rather than at the
//! 15 % of the link the pace leaves (pacing at half the estimate until the round trip came
//! back was tried, and did nothing the flush does not do alone): what the path cannot carry waits in our queue, where audio goes first, not in the
//! bottleneck's. A backlog that the pacer made says nothing about the path and is not taken
//! as evidence, nor is video that lagged in it; it counts as calm, so the ceiling grows
//! past a pace that is too low for even the lowest layers. That needs the transport to
//! report the pacer's count ([`TransportStats::paced`]); without it, a paced backlog holds
//! the ceiling at what drained, which ratchets it down.
//!
//! A subscriber's first video starts under a **start ceiling** ([`START_BPS`], armed by
//! [`Estimator::start`]), as a TCP connection starts with a small window: a path that is
//! not known yet is not sent three full layers' keyframes at once, which on a 1 Mbit/s link
//! queue for more than a second in front of the audio. While calm, the start ceiling grows
//! to [`START_GROWTH`] times what was delivered, so the layer policy steps up as fast as the
//! path proves it carries what it takes; the first limit ends the start (the ordinary rules
//! take over), and a start that stayed calm for [`HOLD`] is lifted, since it was caution, not
//! evidence. The start ceiling chooses layers only: video is not paced at it, and a screen
//! share keeps its layer while it holds (see the layer policy).
//!
//! The subscriber itself may report the **queueing delay it sees** on its audio
//! ([`Estimator::receiver_delay`], `receiver_report`): past a proxy or load balancer that ends
//! TCP, the server's round trip shows nothing of the queue in front of the subscriber. A
//! report above [`REPORTED_QUEUE_DELAY`] counts as a grown round trip. Two rules follow how a
//! queue grows: a cut for delay starts from what the link carried, which while the queue
//! grew by `g` seconds per second is `1 / (1 + g)` of what went into it (what was handed
//! over fills buffers before the wire); and a queue that keeps growing by another
//! [`QUEUE_DELAY`] after a cut is cut again at once, without waiting for the drain. A start
//! ends (as HyStart ends TCP's slow start) when the receiver reports the first
//! [`START_CALM_DELAY`] of queue, at what the link carried, instead of doubling into it.
//!
//! The estimate never goes below [`MIN_BPS`]: a stall delivers nothing for a moment, and an
//! estimate of zero would never grow back.

use std::collections::VecDeque;
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
    /// Bytes the transport itself sent so far (QUIC: UDP payload bytes, retransmissions
    /// included). Handed over is not sent: QUIC buffers what its window does not allow yet.
    pub sent_bytes: Option<u64>,
    /// Of those, bytes the transport declared lost so far: sent but never delivered (a
    /// bottleneck queue that overflowed).
    pub lost_bytes: Option<u64>,
    /// Bytes waiting in the subscriber's queue now.
    pub queued_bytes: Option<u64>,
    /// Times the queue's pacer held video back so far: a backlog then is our own doing and
    /// says nothing about the path.
    pub paced: Option<u64>,
}

/// The ceiling a subscriber's first video starts under: about what three of the lowest
/// layers and one middle layer take, with their audio.
pub const START_BPS: f64 = 1_000_000.0;
/// While the start ceiling is calm it is this many times what was delivered (as a TCP
/// window doubles per round trip while everything is acknowledged).
const START_GROWTH: f64 = 2.0;
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
/// Round trip above the shortest seen that means a queue is building on the path.
pub const QUEUE_DELAY: Duration = Duration::from_millis(40);
/// Queueing delay the receiver reports that means a queue is building. Lower than
/// [`QUEUE_DELAY`]: the receiver measures one way and takes the least delay of each
/// interval, so its report has no delayed acknowledgements or thread stalls in it.
pub const REPORTED_QUEUE_DELAY: Duration = Duration::from_millis(25);
/// Queueing delay the receiver reports above which a start ends (it is not yet a limit).
/// Only the receiver's report: a TCP round trip on loopback jumps by tens of ms with
/// delayed acknowledgements, and ending the start on that held a fast WebSocket subscriber
/// below its full layer.
const START_CALM_DELAY: Duration = Duration::from_millis(10);
/// After a cut for queueing delay, the queue needs this long to drain before a delay still
/// seen means the cut was not enough.
const CUT_COOLDOWN: Duration = Duration::from_secs(1);
/// Share of the estimate video is paced at (the rest is the audio's and the overhead's; the
/// layer policy budgets video below this, so the pacer only smooths its bursts).
const PACE_SHARE: f64 = 0.85;
/// Rates are measured over at least this long (samples may come faster): a window of a few
/// video frames says more about their sizes than about the path.
const RATE_WINDOW: Duration = Duration::from_millis(400);
/// How many past samples are kept to measure rates over [`RATE_WINDOW`].
const RATE_SAMPLES: usize = 8;
/// How fast a calm ceiling grows, per second.
const PROBE_GROWTH_PER_SEC: f64 = 0.08;
/// The shortest round trip is the minimum over this window (and the one before it), so a
/// route that got longer is learnt.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// A calm ceiling this many times above what the subscriber takes is lifted: a better
/// layer costs about three times the one below it, plus the policy's margin.
const UNUSED: f64 = 4.0;
/// A limit that comes back this soon after growth started (at least) counts as a failed try.
const FAILED_TRY: Duration = Duration::from_secs(10);

/// The estimate of one subscriber. Starts unknown; the first usable sample sets it.
#[derive(Debug, Clone)]
pub struct Estimator {
    last: Option<(Instant, TransportStats)>,
    /// Recent samples, oldest first, to measure rates over [`RATE_WINDOW`], each with the
    /// queueing delay seen then.
    history: VecDeque<(Instant, TransportStats, Duration)>,
    /// When the ceiling was last set from new evidence.
    limit_at: Option<Instant>,
    /// Flushes asked for so far (see [`Estimator::flushes`]).
    flushes: u64,
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
    /// The shortest round trip seen lately.
    min_rtt: MinRtt,
    /// The largest queueing delay the receiver reported since the last sample.
    reported_delay: Duration,
    /// When the ceiling was last cut for queueing delay.
    last_cut: Option<Instant>,
    /// The queueing delay that the last cut for delay answered.
    cut_excess: Duration,
    /// The ceiling is growing (a try of a better layer is under way).
    growing: bool,
    /// The ceiling is the start ceiling (see [`Estimator::start`]), not evidence.
    starting: bool,
    /// [`Estimator::start`] was called once: a subscriber starts only once.
    started: bool,
}

/// A windowed minimum of the round trip: the minimum of the current window and the one
/// before it.
#[derive(Debug, Clone, Copy, Default)]
struct MinRtt {
    current: Option<(Duration, Instant)>,
    previous: Option<Duration>,
}

impl MinRtt {
    /// Folds in `rtt` and returns how far above the minimum it is.
    fn excess(&mut self, now: Instant, rtt: Duration) -> Duration {
        match self.current {
            Some((_, start)) if now.saturating_duration_since(start) >= MIN_RTT_WINDOW => {
                self.previous = self.current.map(|(m, _)| m);
                self.current = Some((rtt, now));
            }
            Some((m, start)) if rtt < m => self.current = Some((rtt, start)),
            Some(_) => {}
            None => self.current = Some((rtt, now)),
        }
        let min = self
            .current
            .map(|(m, _)| m)
            .into_iter()
            .chain(self.previous)
            .min()
            .unwrap_or(rtt);
        rtt.saturating_sub(min)
    }
}

impl Default for Estimator {
    fn default() -> Self {
        Estimator {
            last: None,
            history: VecDeque::new(),
            limit_at: None,
            flushes: 0,
            base: None,
            ceiling: None,
            hold: HOLD,
            lifted_at: None,
            lagged: false,
            min_rtt: MinRtt::default(),
            reported_delay: Duration::ZERO,
            last_cut: None,
            cut_excess: Duration::ZERO,
            growing: false,
            starting: false,
            started: false,
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

    /// The rate to pace the subscriber's video at while a ceiling (evidence of a limit the
    /// transport does not show) holds the estimate: the video's share of it, since audio
    /// (unpaced) crosses the same bottleneck; `None` otherwise, when the transport's own
    /// congestion control paces.
    pub fn pace_bps(&self) -> Option<u64> {
        if self.starting {
            // The start ceiling is caution, not a measured limit: it chooses the layers,
            // and pacing at it would only hold back what the path may well carry.
            return None;
        }
        let (c, _) = self.ceiling?;
        if self.base.is_some_and(|b| b <= c) {
            return None;
        }
        Some((c.max(MIN_BPS) * PACE_SHARE) as u64)
    }

    /// The subscriber's first video begins: hold it under [`START_BPS`] until the path has
    /// shown what it carries (see the module docs). Only the first call counts, only once
    /// the transport has reported a sample (a transport that reports nothing would never
    /// lift the start), and only while nothing limits the subscriber yet.
    pub fn start(&mut self, now: Instant) {
        if self.last.is_none()
            || std::mem::replace(&mut self.started, true)
            || self.ceiling.is_some()
        {
            return;
        }
        let start = self.base.map_or(START_BPS, |b| b.min(START_BPS));
        self.ceiling = Some((start.max(MIN_BPS), now));
        self.starting = true;
    }

    /// Marks the start as over before it began: for tests of what follows it.
    #[cfg(test)]
    pub(super) fn skip_start(&mut self) {
        self.started = true;
    }

    /// Whether the start ceiling still holds.
    pub fn starting(&self) -> bool {
        self.starting
    }

    /// How many cuts for queueing delay there were so far. A transport that buffers video
    /// below the pacer (QUIC streams) should drop what it holds when this grows: it was
    /// handed over at the old rate and would keep the bottleneck full after the cut. (Only
    /// flushing when video was unpaced before the cut measured worse for audio: 1 run in 3
    /// under 150 ms on the shared 8 Mbit/s link, against 3 in 3.)
    pub fn flushes(&self) -> u64 {
        self.flushes
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

    /// The receiver measured `queue` of queueing delay on its downlink (its audio's
    /// arrival minus capture, above the least seen). The largest report since the last
    /// sample counts, with that sample, as a round trip grown by as much would.
    pub fn receiver_delay(&mut self, queue: Duration) {
        self.reported_delay = self.reported_delay.max(queue);
    }

    /// Folds in one sample.
    pub fn update(&mut self, now: Instant, s: TransportStats) {
        let Some((t0, prev)) = self.last else {
            self.last = Some((now, s));
            self.history.push_back((now, s, Duration::ZERO));
            self.base = capacity(&s);
            if let Some(r) = s.rtt {
                self.min_rtt.excess(now, r);
            }
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
        // Rates run from the newest kept sample that is at least a window old.
        while self.history.len() >= RATE_SAMPLES
            || self
                .history
                .get(1)
                .is_some_and(|(t, _, _)| now.saturating_duration_since(*t) >= RATE_WINDOW)
        {
            self.history.pop_front();
        }
        let drained = self.delivered(now, &s);
        // Counts are compared over the same window as rates: a tenth of a second holds too
        // few packets for a loss ratio.
        let old = self.history.front().map_or(prev, |(_, o, _)| *o);
        let long_window = self
            .history
            .front()
            .is_some_and(|(t, _, _)| now.saturating_duration_since(*t) >= RATE_WINDOW);
        let paced = delta(s.paced, old.paced).is_some_and(|n| n > 0);
        let backlogged = s.queued_bytes.is_some_and(|q| q >= BACKLOG_BYTES);
        let loss = match (
            delta(s.lost_packets, old.lost_packets),
            delta(s.sent_packets, old.sent_packets),
        ) {
            (Some(l), Some(n)) if n > 0 => l as f64 / n as f64,
            _ => 0.0,
        };
        // Video that aged in our queue while the pacer held it back lagged because of our
        // own pace, not the path: the layer policy still steps down for it, but the estimate
        // is not cut (it would cut the pace, which makes more lag, down to the floor).
        let lagged = std::mem::take(&mut self.lagged) && !paced;
        let heavy_loss = loss > LOSS_CUT;
        let reported = std::mem::take(&mut self.reported_delay);
        let rtt_excess = s
            .rtt
            .map_or(Duration::ZERO, |r| self.min_rtt.excess(now, r));
        let delayed = rtt_excess > QUEUE_DELAY || reported > REPORTED_QUEUE_DELAY;
        let excess = rtt_excess.max(reported);
        // Seconds of queue added per second over the rate window: while a queue fills, the
        // link carries only 1 / (1 + growth) of what went into it.
        let growth = self.history.front().map_or(0.0, |(t, _, e)| {
            let window = now.saturating_duration_since(*t).as_secs_f64().max(secs);
            (excess.saturating_sub(*e).as_secs_f64() / window).min(1.0)
        });
        self.history.push_back((now, s, excess));

        self.base = match (self.base, capacity(&s)) {
            (_, None) => None,
            (None, c) => c,
            (Some(old), Some(c)) if c < old => Some(c),
            (Some(old), Some(c)) => Some(c.min(old * (1.0 + GROWTH_PER_SEC * secs))),
        };

        // The transport held the queue back: what drained is the path's capacity. A
        // backlog the pacer made is ours, not the path's.
        let held_back = backlogged && !paced;
        let cut = lagged || heavy_loss || delayed;
        if (held_back || cut)
            && self
                .limit_at
                .is_some_and(|t| now.saturating_duration_since(t) < RATE_WINDOW)
        {
            // A limit was set less than a window ago: this sample measures mostly the same
            // bytes, so it is the same evidence, not a new limit. A lag waits for the next.
            self.lagged |= lagged;
            self.hold_ceiling(now);
            return;
        }
        // A queue that grew by as much again since the last cut is not that queue draining:
        // the cut was not deep enough.
        let growing = delayed && excess > self.cut_excess + QUEUE_DELAY;
        if cut
            && !lagged
            && !growing
            && self
                .last_cut
                .is_some_and(|t| now.saturating_duration_since(t) < CUT_COOLDOWN)
        {
            // Still the queue of before the last cut, draining, or the losses its overflow
            // caused (QUIC declares them a round trip or more later): not a new limit.
            self.hold_ceiling(now);
            return;
        }
        if held_back || cut {
            let delivered = drained.unwrap_or(MIN_BPS).max(MIN_BPS);
            let limit = if cut {
                // What went out while the queue grew is more than the link carried.
                let delivered = if delayed {
                    (delivered / (1.0 + growth)).max(MIN_BPS)
                } else {
                    delivered
                };
                if delayed {
                    self.last_cut = Some(now);
                    self.cut_excess = excess;
                }
                self.flushes += u64::from(delayed);
                let factor = (1.0 - loss / 2.0).clamp(0.5, CUT);
                // During the start we chose to send little: what went out is our demand,
                // not the path's rate, so the cut starts from no less than the start
                // ceiling (a slower path shows at the next cut, a second later).
                let basis = if self.starting {
                    delivered.max(START_BPS)
                } else {
                    delivered
                };
                self.ceiling
                    .map_or(basis, |(c, _)| c.min(basis))
                    .min(self.base.unwrap_or(f64::MAX))
                    * factor
            } else {
                delivered
            };
            if self.ceiling.is_none() || self.growing {
                // A limit that comes back soon after the last try began means the try
                // failed: wait longer before the next one.
                let window = (self.hold * 2).max(FAILED_TRY);
                self.hold = match self.lifted_at {
                    Some(t) if now.saturating_duration_since(t) < window => {
                        (self.hold * 2).min(MAX_HOLD)
                    }
                    _ => HOLD,
                };
            }
            self.growing = false;
            self.starting = false;
            self.ceiling = Some((limit.max(MIN_BPS), now));
            self.limit_at = Some(now);
            return;
        }
        // A backlog our own pacer made is calm: the path showed no queue, loss or stall, so
        // a calm ceiling grows (gradually) even while video waits for it; otherwise a pace
        // below what the lowest layers need would hold the subscriber there for good.
        if let Some((c, since)) = self.ceiling.filter(|_| self.starting) {
            if now.saturating_duration_since(since) >= HOLD {
                // Calm since the start: the caution is over.
                self.ceiling = None;
                self.starting = false;
            } else if let Some(d) = drained.filter(|_| long_window) {
                if reported > START_CALM_DELAY {
                    // A queue beginning to build is the path's rate showing (as HyStart
                    // ends TCP's slow start): what went out then already filled it, so the
                    // start ends at what the link carried, and twice that would overfill it.
                    // As for a cut, what went out is our demand, not the path's rate, when
                    // it is below the start ceiling.
                    let carried = (d / (1.0 + growth)).max(START_BPS);
                    self.ceiling = Some((carried.min(c), now));
                    self.starting = false;
                    self.limit_at = Some(now);
                } else {
                    self.ceiling = Some((c.max(d * START_GROWTH), since));
                }
            }
            return;
        }
        if let Some((c, since)) = self.ceiling {
            if now.saturating_duration_since(since) >= self.hold {
                let stall = c <= MIN_BPS * 1.5;
                // Grown far past what the subscriber takes: no better layer waits on it.
                let unused = drained.is_some_and(|d| c >= d * UNUSED);
                if stall || unused || self.base.is_some_and(|b| c >= b) {
                    self.ceiling = None;
                    self.growing = false;
                    self.lifted_at = Some(now);
                } else {
                    if !self.growing {
                        self.growing = true;
                        self.lifted_at = Some(now);
                    }
                    let grown = c * (1.0 + PROBE_GROWTH_PER_SEC * secs);
                    self.ceiling = Some((grown.max(drained.unwrap_or(0.0)), since));
                }
            } else if let Some(d) = drained.filter(|d| *d > c && long_window) {
                // Delivered more than the ceiling without backing up: it was too low.
                self.ceiling = Some((d, since));
            }
        }
    }

    /// What went out since the oldest kept sample, bits/s: what the queue handed to the
    /// transport, and no more than the transport sent and did not lose.
    fn delivered(&self, now: Instant, s: &TransportStats) -> Option<f64> {
        let (t0, old, _) = self.history.front()?;
        let secs = now.saturating_duration_since(*t0).as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let rate = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_sub(b?) as f64 * 8.0 / secs);
        let handed = rate(s.drained_bytes, old.drained_bytes);
        let sent = rate(s.sent_bytes, old.sent_bytes)
            .map(|sent| sent - rate(s.lost_bytes, old.lost_bytes).unwrap_or(0.0).min(sent));
        match (handed, sent) {
            (Some(d), Some(sent)) => Some(d.min(sent)),
            (d, sent) => d.or(sent),
        }
    }

    /// Not calm, but no new limit: the ceiling stays and its hold starts over.
    fn hold_ceiling(&mut self, now: Instant) {
        if let Some((c, _)) = self.ceiling {
            self.ceiling = Some((c, now));
        }
        self.growing = false;
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
