//! The model of one direction of a participant's access link, sans-IO: the caller passes in
//! the time and the packet's size and gets back when the packet leaves the far end, or why it
//! never does. No clock is read and every random draw comes from a seeded generator, so a test
//! replays a link exactly.
//!
//! What a packet meets, in order:
//! 1. **the bottleneck queue**: with a rate cap, a packet waits for the ones before it to be
//!    serialised. The queue is bounded in time, as a router's buffer is sized: a packet that
//!    would wait longer than `queue` is dropped at the tail;
//! 2. **serialisation** at the capped rate;
//! 3. **loss on the wire**: independent random loss and, separately, bursty loss from a
//!    Gilbert model (a good state that loses nothing and a bad state that loses everything);
//! 4. **propagation**: a fixed one-way delay plus jitter drawn uniformly from ±`jitter`. A
//!    single path does not reorder, so a packet never overtakes the one before it (its jitter
//!    is absorbed by waiting behind it).
//!
//! TCP segments take [`Link::offer_reliable`] instead: TCP retransmits what the wire loses, so
//! a lost segment arrives one retransmission later and everything behind it waits (head-of-line
//! blocking); nothing is dropped, and the caller keeps the queue bounded by reading no more
//! while [`Link::backlog`] is over the bound (which is what makes TCP's flow control push back).

use std::time::{Duration, Instant};

use serde::Serialize;

/// Bursty loss in the Gilbert model, given by what one measures: the long-run loss rate and
/// the mean length of a loss burst in packets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Burst {
    /// Fraction of packets lost in the long run (0..1).
    pub loss: f64,
    /// Mean burst length in packets (≥ 1).
    pub mean_len: f64,
}

impl Burst {
    /// Probabilities per packet of going good → bad and bad → good.
    fn transitions(&self) -> (f64, f64) {
        let r = 1.0 / self.mean_len.max(1.0);
        let pi = self.loss.clamp(0.0, 0.99);
        // Stationary share of the bad state is p / (p + r); solve for p.
        let p = r * pi / (1.0 - pi);
        (p.min(1.0), r)
    }
}

/// One direction of a link.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LinkSpec {
    /// Rate cap in bits per second; `None` for no cap (and then no queue).
    pub rate_bps: Option<u64>,
    /// Longest a packet may wait in the bottleneck queue.
    pub queue: Duration,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Jitter: the delay varies uniformly within ±this.
    pub jitter: Duration,
    /// Independent random loss (0..1).
    pub loss: f64,
    /// Bursty loss, on top of `loss`.
    pub burst: Option<Burst>,
}

impl LinkSpec {
    /// True when the link changes nothing.
    pub fn is_clean(&self) -> bool {
        self.rate_bps.is_none()
            && self.delay.is_zero()
            && self.jitter.is_zero()
            && self.loss == 0.0
            && self.burst.is_none()
    }

    /// Long-run share of packets the wire loses (queue drops aside).
    pub fn wire_loss(&self) -> f64 {
        let b = self.burst.map_or(0.0, |b| b.loss);
        1.0 - (1.0 - self.loss) * (1.0 - b)
    }
}

/// What becomes of an offered packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It leaves the far end at this time.
    Deliver(Instant),
    /// The bottleneck queue was full (tail drop).
    QueueFull,
    /// The wire lost it.
    Lost,
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    /// Packets (or TCP segments) offered.
    pub packets: u64,
    /// Bytes offered, headers included.
    pub bytes: u64,
    /// Dropped by the full queue.
    pub queue_drops: u64,
    /// Lost on the wire (for TCP: retransmitted).
    pub lost: u64,
    /// Longest queueing delay a delivered packet saw (µs).
    pub max_queue_us: u64,
}

impl LinkStats {
    /// Both counters together.
    pub fn add(&self, o: &LinkStats) -> LinkStats {
        LinkStats {
            packets: self.packets + o.packets,
            bytes: self.bytes + o.bytes,
            queue_drops: self.queue_drops + o.queue_drops,
            lost: self.lost + o.lost,
            max_queue_us: self.max_queue_us.max(o.max_queue_us),
        }
    }
}

/// A small seeded generator (SplitMix64): fast, and the same sequence on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The shortest retransmission delay a lost TCP segment costs (Linux's minimum RTO is 200 ms,
/// but fast retransmit after three duplicate acks recovers within about one round trip).
const MIN_RETRANSMIT: Duration = Duration::from_millis(10);

/// One direction of a participant's link.
#[derive(Debug, Clone)]
pub struct Link {
    spec: LinkSpec,
    burst: Option<(f64, f64)>,
    rng: Rng,
    bad: bool,
    /// When the transmitter has serialised everything accepted so far.
    free_at: Option<Instant>,
    /// When the last accepted packet leaves the far end (no overtaking).
    last_out: Option<Instant>,
    stats: LinkStats,
}

impl Link {
    /// A link with this spec; `seed` fixes its loss and jitter draws.
    pub fn new(spec: LinkSpec, seed: u64) -> Self {
        Link {
            burst: spec.burst.map(|b| b.transitions()),
            spec,
            rng: Rng::new(seed),
            bad: false,
            free_at: None,
            last_out: None,
            stats: LinkStats::default(),
        }
    }

    /// The spec.
    pub fn spec(&self) -> &LinkSpec {
        &self.spec
    }

    /// Counters so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// How long a packet offered now would wait in the queue before being serialised.
    pub fn backlog(&self, now: Instant) -> Duration {
        self.free_at
            .map_or(Duration::ZERO, |f| f.saturating_duration_since(now))
    }

    fn serialise(&mut self, now: Instant, bytes: usize) -> Instant {
        let start = self.free_at.map_or(now, |f| f.max(now));
        let done = match self.spec.rate_bps {
            Some(r) if r > 0 => {
                start + Duration::from_nanos((bytes as u64 * 8).saturating_mul(1_000_000_000) / r)
            }
            _ => start,
        };
        if self.spec.rate_bps.is_some() {
            self.free_at = Some(done);
        }
        let waited = start.saturating_duration_since(now).as_micros() as u64;
        self.stats.max_queue_us = self.stats.max_queue_us.max(waited);
        done
    }

    /// Whether the wire loses this packet. Draws the same number of random values whatever
    /// the outcome, so one packet's fate does not shift the next one's draws.
    fn wire_loses(&mut self) -> bool {
        let (u_loss, u_state) = (self.rng.next_f64(), self.rng.next_f64());
        let mut lost = u_loss < self.spec.loss;
        if let Some((p, r)) = self.burst {
            self.bad = if self.bad { u_state >= r } else { u_state < p };
            lost |= self.bad;
        }
        lost
    }

    fn propagate(&mut self, left: Instant) -> Instant {
        let u = self.rng.next_f64();
        let j = self.spec.jitter.as_secs_f64();
        let d = (self.spec.delay.as_secs_f64() + j * (2.0 * u - 1.0)).max(0.0);
        let out = left + Duration::from_secs_f64(d);
        let out = self.last_out.map_or(out, |l| out.max(l));
        self.last_out = Some(out);
        out
    }

    /// Offer a datagram of `bytes` (headers included) at `now`.
    pub fn offer(&mut self, now: Instant, bytes: usize) -> Fate {
        self.stats.packets += 1;
        self.stats.bytes += bytes as u64;
        if self.spec.rate_bps.is_some() && self.backlog(now) > self.spec.queue {
            self.stats.queue_drops += 1;
            return Fate::QueueFull;
        }
        let left = self.serialise(now, bytes);
        if self.wire_loses() {
            self.stats.lost += 1;
            return Fate::Lost;
        }
        Fate::Deliver(self.propagate(left))
    }

    /// Offer a TCP segment of `bytes` at `now`: it always arrives, one retransmission late
    /// when the wire loses it. The caller bounds the queue by waiting on [`Link::backlog`].
    pub fn offer_reliable(&mut self, now: Instant, bytes: usize) -> Instant {
        self.stats.packets += 1;
        self.stats.bytes += bytes as u64;
        let mut left = self.serialise(now, bytes);
        if self.wire_loses() {
            self.stats.lost += 1;
            // The sender learns of the loss about one round trip later (both directions'
            // delay, taken as twice this one's) and sends the segment again: the link carries
            // it twice, and it leaves no earlier than that round trip.
            let rtt = ((self.spec.delay + self.spec.jitter) * 2).max(MIN_RETRANSMIT);
            let again = self.serialise(now, bytes);
            left = again.max(left + rtt);
        }
        self.propagate(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn spec() -> LinkSpec {
        LinkSpec::default()
    }

    #[test]
    fn a_clean_link_delivers_at_once() {
        let t0 = Instant::now();
        let mut l = Link::new(spec(), 1);
        assert!(l.spec().is_clean());
        for i in 0..100 {
            assert_eq!(l.offer(t0 + ms(i), 1200), Fate::Deliver(t0 + ms(i)));
        }
        assert_eq!(l.stats().packets, 100);
    }

    #[test]
    fn the_rate_cap_serialises_and_the_bounded_queue_drops_the_tail() {
        // 1 Mbit/s: a 1250-byte packet takes 10 ms. Queue bound 50 ms.
        let t0 = Instant::now();
        let mut l = Link::new(
            LinkSpec {
                rate_bps: Some(1_000_000),
                queue: ms(50),
                ..spec()
            },
            1,
        );
        let mut fates = vec![];
        for _ in 0..10 {
            fates.push(l.offer(t0, 1250));
        }
        // Packets 0..=5 wait 0, 10, …, 50 ms and fit; the rest would wait longer.
        for (i, f) in fates.iter().enumerate().take(6) {
            assert_eq!(
                *f,
                Fate::Deliver(t0 + ms(10 * (i as u64 + 1))),
                "packet {i}"
            );
        }
        assert!(fates[6..].iter().all(|f| *f == Fate::QueueFull));
        assert_eq!(l.stats().queue_drops, 4);
        assert_eq!(l.stats().max_queue_us, 50_000);
        // Once the queue drains, packets flow at the cap again.
        assert_eq!(l.backlog(t0 + ms(30)), ms(30));
        assert_eq!(l.offer(t0 + ms(60), 1250), Fate::Deliver(t0 + ms(70)));
    }

    #[test]
    fn long_run_throughput_is_the_cap() {
        // Offer 2 Mbit/s into a 1 Mbit/s link for 10 s: about half gets through.
        let t0 = Instant::now();
        let mut l = Link::new(
            LinkSpec {
                rate_bps: Some(1_000_000),
                queue: ms(100),
                ..spec()
            },
            7,
        );
        let mut delivered = 0u64;
        let mut last = t0;
        for i in 0..2000u64 {
            if let Fate::Deliver(at) = l.offer(t0 + ms(5 * i), 1250) {
                delivered += 1250 * 8;
                assert!(at >= last, "no reordering");
                last = at;
            }
        }
        let rate = delivered as f64 / (last - t0).as_secs_f64();
        assert!((rate - 1_000_000.0).abs() < 20_000.0, "{rate}");
    }

    #[test]
    fn delay_and_jitter_stay_in_bounds_and_keep_order() {
        let t0 = Instant::now();
        let mut l = Link::new(
            LinkSpec {
                delay: ms(25),
                jitter: ms(10),
                ..spec()
            },
            3,
        );
        let mut prev = t0;
        let mut sum = 0.0;
        for i in 0..1000u64 {
            let sent = t0 + ms(20 * i);
            let Fate::Deliver(at) = l.offer(sent, 200) else {
                panic!("nothing is lost on this link")
            };
            let d = at - sent;
            // Packets 20 ms apart never queue behind each other with ±10 ms of jitter.
            assert!(d >= ms(15) && d <= ms(35), "{d:?}");
            assert!(at >= prev);
            prev = at;
            sum += d.as_secs_f64();
        }
        let mean = sum / 1000.0;
        assert!((mean - 0.025).abs() < 0.001, "mean delay {mean}");
    }

    #[test]
    fn random_loss_matches_its_rate_and_replays_with_the_seed() {
        let t0 = Instant::now();
        let lossy = LinkSpec {
            loss: 0.02,
            ..spec()
        };
        let run = |seed| {
            let mut l = Link::new(lossy.clone(), seed);
            (0..20_000)
                .map(|_| l.offer(t0, 100) == Fate::Lost)
                .collect::<Vec<_>>()
        };
        let a = run(11);
        assert_eq!(a, run(11), "same seed, same losses");
        assert_ne!(a, run(12));
        let rate = a.iter().filter(|x| **x).count() as f64 / a.len() as f64;
        assert!((rate - 0.02).abs() < 0.004, "{rate}");
    }

    #[test]
    fn gilbert_losses_come_in_bursts_of_the_given_mean_length() {
        let t0 = Instant::now();
        let burst = Burst {
            loss: 0.05,
            mean_len: 4.0,
        };
        let mut l = Link::new(
            LinkSpec {
                burst: Some(burst),
                ..spec()
            },
            5,
        );
        let lost: Vec<bool> = (0..100_000)
            .map(|_| l.offer(t0, 100) == Fate::Lost)
            .collect();
        let total = lost.iter().filter(|x| **x).count() as f64;
        let bursts = lost.windows(2).filter(|w| !w[0] && w[1]).count() as f64;
        let rate = total / lost.len() as f64;
        assert!((rate - 0.05).abs() < 0.01, "loss {rate}");
        let mean_len = total / bursts;
        assert!((mean_len - 4.0).abs() < 0.5, "burst length {mean_len}");
        // Independent loss at the same rate has bursts of about one packet.
        let mut iid = Link::new(
            LinkSpec {
                loss: 0.05,
                ..spec()
            },
            5,
        );
        let lost: Vec<bool> = (0..100_000)
            .map(|_| iid.offer(t0, 100) == Fate::Lost)
            .collect();
        let total = lost.iter().filter(|x| **x).count() as f64;
        let bursts = lost.windows(2).filter(|w| !w[0] && w[1]).count() as f64;
        assert!(total / bursts < 1.2);
        assert!((spec_with_burst(burst).wire_loss() - 0.05).abs() < 1e-9);
    }

    fn spec_with_burst(b: Burst) -> LinkSpec {
        LinkSpec {
            burst: Some(b),
            ..spec()
        }
    }

    #[test]
    fn tcp_segments_are_never_dropped_and_a_loss_delays_what_follows() {
        let t0 = Instant::now();
        let mut l = Link::new(
            LinkSpec {
                rate_bps: Some(8_000_000),
                queue: ms(20),
                delay: ms(20),
                loss: 0.1,
                ..spec()
            },
            9,
        );
        let mut prev = t0;
        let mut late = 0;
        for i in 0..1000u64 {
            let sent = t0 + ms(2 * i);
            let at = l.offer_reliable(sent, 1500);
            assert!(at >= prev, "in order");
            prev = at;
            // 1500 bytes at 8 Mbit/s: 1.5 ms, plus 20 ms of delay.
            if at - sent > ms(30) {
                late += 1;
            }
        }
        let st = l.stats();
        assert!(st.lost > 50 && st.lost < 150, "{st:?}");
        assert_eq!(st.queue_drops, 0);
        // A retransmission costs a round trip (40 ms) for the lost segment and the ones
        // queued behind it.
        assert!(late >= st.lost, "late {late}, lost {}", st.lost);
    }
}
