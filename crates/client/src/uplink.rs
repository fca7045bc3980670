//! How a publisher follows its uplink, sans-IO: fed what the sender measures (how far its
//! sends back up, the QUIC path's queueing delay and loss), it picks a rung of a fixed ladder
//! that lowers the encoder's bitrate first, then the frame rate, then the resolution, and
//! climbs back one rung at a time.
//!
//! The caller passes in the time; nothing here reads a clock, so the policy is unit-tested
//! with synthetic samples. The load tester's publishers run it, so its impairment lab
//! exercises the same order of steps a browser publisher takes.
//!
//! Rules:
//! - **congested** when the uplink's queueing delay reaches [`Adapter::CONGESTED`] or a tenth
//!   of the packets are lost: one rung down, at most every [`Adapter::SETTLE`] so each step
//!   down takes effect before the next is judged (a climb is undone at once: waiting lets the
//!   queue it fills grow in front of the audio); a queue four times that deep drops two rungs;
//!   when the server says what arrived of this publisher's media (`uplink_report`), straight
//!   down to the rung that fits in [`Adapter::FIT`] of it, so the queue drains;
//! - **what the link carried**: the least rate the server reported in congestion is
//!   remembered for [`Adapter::MAX_HOLD`] after the last congestion; meanwhile a climb to a
//!   rung that needs more than [`Adapter::CLIMB_ROOM`] of that rate waits (each such climb would only fill the queue
//!   in front of the audio again);
//! - **start** ([`Adapter::starting`]): at [`Adapter::START_RUNG`], below full quality as
//!   WebRTC starts at a few hundred kbit/s, since a camera sent at full rate into an uplink
//!   that cannot carry it fills the bottleneck in front of its audio before any measure can
//!   see it; until the first congestion it climbs a rung per [`Adapter::START_HOLD`];
//! - **clear** when the delay is under [`Adapter::CLEAR`] and loss under 2 %: after being
//!   clear for the hold time, one rung up;
//! - a rung that had to be left again soon after climbing to it doubles the hold time (up to
//!   [`Adapter::MAX_HOLD`]), so a link that cannot carry a rung is not probed every few
//!   seconds; a long quiet spell resets it.

use std::time::{Duration, Instant};

/// One rung of the ladder: a share of the full encoder settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rung {
    /// Encoder bitrate as a share of the full bitrate.
    pub bitrate: f64,
    /// Frame rate divided by this.
    pub fps_divisor: u32,
    /// Width and height divided by this.
    pub scale_divisor: u32,
}

/// Bitrate first (rungs 1–2), then frame rate (3), then resolution (4–5).
pub const LADDER: [Rung; 6] = [
    Rung {
        bitrate: 1.0,
        fps_divisor: 1,
        scale_divisor: 1,
    },
    Rung {
        bitrate: 0.6,
        fps_divisor: 1,
        scale_divisor: 1,
    },
    Rung {
        bitrate: 0.35,
        fps_divisor: 1,
        scale_divisor: 1,
    },
    Rung {
        bitrate: 0.25,
        fps_divisor: 2,
        scale_divisor: 1,
    },
    Rung {
        bitrate: 0.12,
        fps_divisor: 2,
        scale_divisor: 2,
    },
    Rung {
        bitrate: 0.05,
        fps_divisor: 2,
        scale_divisor: 4,
    },
];

/// What the sender measured over the last interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// How long data waits on the uplink: the QUIC path's RTT above its minimum, or how long
    /// the sender's writes block (a browser's `bufferedAmount` drained at the send rate),
    /// whichever is larger.
    pub queue_delay: Duration,
    /// Share of packets lost in the interval (0 when unknown, as on TCP).
    pub loss: f64,
    /// What the server received of this publisher's media (bit/s, `uplink_report.kbps`),
    /// when it says.
    pub delivered_bps: Option<f64>,
}

/// The publisher's rung choice.
#[derive(Debug, Clone)]
pub struct Adapter {
    /// The rung the uplink allows.
    own: usize,
    /// The lowest rung the server's demand asks for (0: someone needs full quality).
    ceiling: usize,
    /// When the rung last went down (a cut, or a lower ceiling): the next cut waits
    /// [`Self::SETTLE`] for it to take effect. A climb does not start that wait: a climb the
    /// link cannot carry is undone at the first sign of congestion.
    last_fall: Option<Instant>,
    clear_since: Option<Instant>,
    hold: Duration,
    /// When the last climb happened (a fall soon after it means the link cannot carry it).
    climbed_at: Option<Instant>,
    /// The deepest queue seen since the last cut: the data already on its way when a cut
    /// is judged still deepens the queue for a moment; once a report shows it lower than
    /// that, the queue is draining and no further cut is needed.
    peak_since_fall: Duration,
    /// What each rung's video sends and the rest of what is sent (audio), bit/s, when known.
    rates: Option<([f64; LADDER.len()], f64)>,
    /// No congestion seen yet: climbs wait [`Self::START_HOLD`] only.
    starting: bool,
    /// The least rate the server said arrived in congestion over the last
    /// [`Self::MAX_HOLD`], and when the last congestion was (bit/s).
    carried: Option<(f64, Instant)>,
}

impl Default for Adapter {
    fn default() -> Self {
        Self::new()
    }
}

impl Adapter {
    /// Queueing delay that counts as congestion.
    pub const CONGESTED: Duration = Duration::from_millis(60);
    /// Queueing delay under which the uplink counts as clear.
    pub const CLEAR: Duration = Duration::from_millis(30);
    /// Least time between two steps down.
    pub const SETTLE: Duration = Duration::from_millis(500);
    /// First hold time before a step up.
    pub const MIN_HOLD: Duration = Duration::from_secs(3);
    /// Longest hold time.
    pub const MAX_HOLD: Duration = Duration::from_secs(30);
    /// A fall within this time of a climb doubles the hold.
    const FAILED_CLIMB: Duration = Duration::from_secs(5);
    /// Share of the delivered rate a congested publisher cuts to, audio included: the rest
    /// drains the queue.
    pub const FIT: f64 = 0.8;
    /// Where [`Adapter::starting`] begins: the full size and frame rate at about a third of
    /// the bitrate.
    pub const START_RUNG: usize = 2;
    /// What [`Self::starting_measured`] may send at the start, audio included (WebRTC starts
    /// at a few hundred kbit/s).
    pub const START_BPS: f64 = 450_000.0;
    /// Hold before each climb until the first congestion.
    pub const START_HOLD: Duration = Duration::from_secs(1);
    /// Share of the rate carried at the last congestion a climb may need.
    pub const CLIMB_ROOM: f64 = 0.95;
    /// For this long after a climb, a queue of [`Self::CLEAR`] undoes it.
    pub const PROBE: Duration = Duration::from_secs(2);
    /// For this long after a cut, a queue that has passed its peak is taken as draining,
    /// not as a new congestion.
    pub const DRAIN: Duration = Duration::from_secs(2);

    /// Start at the top rung.
    pub fn new() -> Self {
        Adapter {
            own: 0,
            ceiling: 0,
            last_fall: None,
            clear_since: None,
            hold: Self::MIN_HOLD,
            climbed_at: None,
            peak_since_fall: Duration::ZERO,
            rates: None,
            starting: false,
            carried: None,
        }
    }

    /// Start at [`Self::START_RUNG`] and climb quickly until the uplink first shows
    /// congestion. `full_video_bps` is the top rung's video bitrate and `other_bps` the rest
    /// (audio), used to fit a cut to what the server says arrived.
    pub fn starting(full_video_bps: f64, other_bps: f64) -> Self {
        Adapter {
            own: Self::START_RUNG,
            rates: Some((LADDER.map(|r| r.bitrate * full_video_bps), other_bps)),
            starting: true,
            ..Self::new()
        }
    }

    /// Like [`Self::starting`], for a sender that knows what each rung's video really sends
    /// (an encoder at its quality floor sends more than it is asked for): cuts and climbs use
    /// those rates, and it starts at the best rung that sends, with `other_bps`, no more than
    /// [`Self::START_BPS`] (the lowest rung if none does).
    pub fn starting_measured(rung_video_bps: [f64; LADDER.len()], other_bps: f64) -> Self {
        let start = rung_video_bps
            .iter()
            .position(|v| v + other_bps <= Self::START_BPS)
            .unwrap_or(LADDER.len() - 1);
        Adapter {
            own: start,
            rates: Some((rung_video_bps, other_bps)),
            starting: true,
            ..Self::new()
        }
    }

    /// The current rung (index into [`LADDER`]; 0 is full quality).
    pub fn rung(&self) -> usize {
        self.own.max(self.ceiling)
    }

    /// The current hold time before a step up.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// Send no more than `rung` asks for (0: no limit), as when the server says nobody
    /// watches the full layer ([`demand_rung`]). Lifting it goes straight back to the rung
    /// the uplink allows, so a new viewer gets full quality at once. Returns the new rung if
    /// this moved it.
    pub fn set_ceiling(&mut self, now: Instant, rung: usize) -> Option<usize> {
        let before = self.rung();
        self.ceiling = rung.min(LADDER.len() - 1);
        let after = self.rung();
        if after == before {
            return None;
        }
        if after > before {
            self.last_fall = Some(now);
            self.peak_since_fall = Duration::ZERO;
        }
        self.clear_since = None;
        Some(after)
    }

    /// Whether `rung` needs no more than [`Self::CLIMB_ROOM`] of what the link carried at the
    /// last congestion (true when that is unknown or older than [`Self::MAX_HOLD`]).
    fn climb_fits(&self, now: Instant, rung: usize) -> bool {
        let (Some((rungs, other)), Some((carried, at))) = (self.rates, self.carried) else {
            return true;
        };
        now.duration_since(at) >= Self::MAX_HOLD
            || rungs[rung] + other <= carried * Self::CLIMB_ROOM
    }

    /// Feed one interval's measurements; returns the new rung when it changes.
    pub fn on_sample(&mut self, now: Instant, s: Sample) -> Option<usize> {
        // Just after a climb, a queue past the clear mark already says the new rung does
        // not fit: it is undone before that queue reaches the audio's budget.
        let probing = self
            .climbed_at
            .is_some_and(|t| now.duration_since(t) < Self::PROBE);
        let congested = s.queue_delay >= Self::CONGESTED
            || s.loss >= 0.10
            || (probing && s.queue_delay >= Self::CLEAR);
        let clear = s.queue_delay < Self::CLEAR && s.loss < 0.02;
        let falling = self.last_fall.map(|t| now.duration_since(t));
        let settled = falling.is_none_or(|d| d >= Self::SETTLE);
        // A queue below its peak since the last cut is that cut taking effect.
        let draining = falling.is_some_and(|d| d < Self::DRAIN)
            && s.queue_delay < self.peak_since_fall
            && s.loss < 0.10;
        self.peak_since_fall = self.peak_since_fall.max(s.queue_delay);
        if congested && draining {
            self.clear_since = None;
            return None;
        }
        if congested {
            self.clear_since = None;
            if !settled || self.rung() + 1 >= LADDER.len() {
                return None;
            }
            if self
                .climbed_at
                .is_some_and(|t| now.duration_since(t) < Self::FAILED_CLIMB)
            {
                self.hold = (self.hold * 2).min(Self::MAX_HOLD);
            }
            self.climbed_at = None;
            self.starting = false;
            let steps = if s.queue_delay >= Self::CONGESTED * 4 {
                2
            } else {
                1
            };
            let before = self.rung();
            let mut to = before + steps;
            if let Some(got) = s.delivered_bps {
                // The least of a congested spell: the interval after a burst (a recovered
                // loss, a queue that let go) overstates what the link carries.
                let fresh = self
                    .carried
                    .filter(|(_, at)| now.duration_since(*at) < Self::MAX_HOLD);
                self.carried = Some((fresh.map_or(got, |(c, _)| c.min(got)), now));
            }
            if let (Some(got), Some((rungs, other))) = (s.delivered_bps, self.rates) {
                let fit = got * Self::FIT - other;
                let by_rate = rungs
                    .iter()
                    .position(|v| *v <= fit)
                    .unwrap_or(LADDER.len() - 1);
                to = to.max(by_rate);
            }
            self.own = to.min(LADDER.len() - 1);
            self.last_fall = Some(now);
            self.peak_since_fall = s.queue_delay;
            return (self.rung() != before).then(|| self.rung());
        }
        if !clear {
            self.clear_since = None;
            return None;
        }
        let since = *self.clear_since.get_or_insert(now);
        let quiet = now.duration_since(since);
        if quiet >= Self::MAX_HOLD * 2 {
            // A long quiet spell: the link has changed, probe at the normal pace again.
            self.hold = Self::MIN_HOLD;
        }
        let hold = if self.starting {
            Self::START_HOLD
        } else {
            self.hold
        };
        if self.own > self.ceiling && quiet >= hold {
            if !self.climb_fits(now, self.own - 1) {
                return None;
            }
            self.own -= 1;
            self.climbed_at = Some(now);
            self.clear_since = Some(now);
            return Some(self.own);
        }
        None
    }
}

/// The rung a publisher needs at most for what the server says its subscribers get
/// (`track_demand`, PROTOCOL §5.6): full quality while anybody gets the full layer; when
/// only the server's lower layers are watched, the lowest rung that keeps size and frame rate
/// (the server scales those layers from it); when nobody watches, the lowest rung that keeps
/// the size, so the next viewer's first keyframe needs no new resolution.
pub fn demand_rung(layer: u8, viewers: u32) -> usize {
    match (layer, viewers) {
        (_, 0) => 3,
        (0, _) => 0,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn congested() -> Sample {
        Sample {
            queue_delay: ms(180),
            ..Sample::default()
        }
    }

    fn clear() -> Sample {
        Sample::default()
    }

    /// Feed `s` every 250 ms for `secs`; the rungs it moved to.
    fn feed(a: &mut Adapter, t: &mut Instant, s: Sample, secs: f64) -> Vec<usize> {
        let mut moves = vec![];
        for _ in 0..(secs * 4.0) as usize {
            *t += ms(250);
            moves.extend(a.on_sample(*t, s));
        }
        moves
    }

    #[test]
    fn the_ladder_lowers_bitrate_then_frame_rate_then_resolution() {
        for w in LADDER.windows(2) {
            assert!(w[1].bitrate < w[0].bitrate);
            assert!(w[1].fps_divisor >= w[0].fps_divisor);
            assert!(w[1].scale_divisor >= w[0].scale_divisor);
            // The resolution only falls once the frame rate has.
            let res = w[1].scale_divisor > w[0].scale_divisor;
            assert!(!(res && w[0].fps_divisor == 1));
        }
        let first_fps = LADDER.iter().position(|r| r.fps_divisor > 1).unwrap();
        let first_res = LADDER.iter().position(|r| r.scale_divisor > 1).unwrap();
        assert!(first_fps >= 2 && first_res > first_fps);
    }

    #[test]
    fn a_ramp_down_steps_one_rung_per_settle_time_to_the_bottom() {
        let t0 = Instant::now();
        let mut t = t0;
        let mut a = Adapter::new();
        let moves = feed(&mut a, &mut t, congested(), 4.0);
        assert_eq!(moves, [1, 2, 3, 4, 5]);
        assert_eq!(a.rung(), LADDER.len() - 1);
        // A deep queue drops two rungs at once.
        let mut b = Adapter::new();
        let deep = Sample {
            queue_delay: ms(450),
            ..Sample::default()
        };
        assert_eq!(b.on_sample(t0, deep), Some(2));
        // Heavy loss alone is congestion too.
        let mut c = Adapter::new();
        let lossy = Sample {
            queue_delay: ms(5),
            loss: 0.2,
            ..Sample::default()
        };
        assert_eq!(c.on_sample(t0, lossy), Some(1));
    }

    #[test]
    fn recovery_climbs_one_rung_per_hold() {
        let mut t = Instant::now();
        let mut a = Adapter::new();
        feed(&mut a, &mut t, congested(), 4.0);
        assert_eq!(a.rung(), 5);
        // Clear for 2.9 s: not yet.
        assert!(feed(&mut a, &mut t, clear(), 2.75).is_empty());
        // Then one rung per 3 s hold, never two at once.
        let moves = feed(&mut a, &mut t, clear(), 16.0);
        assert_eq!(moves, [4, 3, 2, 1, 0]);
        assert!(feed(&mut a, &mut t, clear(), 10.0).is_empty());
    }

    #[test]
    fn middling_delay_neither_climbs_nor_falls() {
        let mut t = Instant::now();
        let mut a = Adapter::new();
        a.on_sample(t, congested());
        let middling = Sample {
            queue_delay: ms(45),
            ..Sample::default()
        };
        assert!(feed(&mut a, &mut t, middling, 20.0).is_empty());
        assert_eq!(a.rung(), 1);
    }

    #[test]
    fn oscillation_is_damped_by_a_growing_hold() {
        // A link that carries rung 2 but not rung 1: every climb to 1 is congested at once.
        let mut t = Instant::now();
        let mut a = Adapter::new();
        feed(&mut a, &mut t, congested(), 0.75);
        assert_eq!(a.rung(), 2);
        let mut climbs = 0;
        let mut holds = vec![];
        for _ in 0..(120 * 4) {
            t += ms(250);
            let s = if a.rung() <= 1 { congested() } else { clear() };
            if a.on_sample(t, s) == Some(1) {
                climbs += 1;
                holds.push(a.hold());
            }
        }
        // Without damping it would climb every ~3.5 s (about 34 times in 2 minutes).
        assert!(climbs <= 8, "{climbs} climbs");
        assert_eq!(a.hold(), Adapter::MAX_HOLD);
        assert!(holds.windows(2).all(|w| w[1] >= w[0]), "{holds:?}");
        assert_eq!(a.rung(), 2, "it settles on the rung the link carries");
    }

    #[test]
    fn a_ceiling_from_the_server_caps_the_climb() {
        let t = Instant::now();
        let mut a = Adapter::new();
        assert_eq!(a.set_ceiling(t, 4), Some(4));
        let mut t2 = t;
        assert!(feed(&mut a, &mut t2, clear(), 30.0).is_empty());
        // Somebody needs full quality again: the uplink was clear, so back to the top.
        assert_eq!(a.set_ceiling(t2, 0), Some(0));
        // A congested uplink under a ceiling steps down from where it is.
        assert_eq!(a.set_ceiling(t2, 2), Some(2));
        let moves = feed(&mut a, &mut t2, congested(), 0.5);
        assert_eq!(moves, [3]);
        // Lifting the ceiling now keeps what the uplink allows.
        assert_eq!(a.set_ceiling(t2, 0), None);
        assert_eq!(a.rung(), 3);
    }

    #[test]
    fn a_congested_uplink_that_says_what_arrived_falls_to_the_rung_that_fits() {
        let t = Instant::now();
        // 1.5 Mbit/s video plus 48 kbit/s of audio into a 600 kbit/s uplink: the server got
        // 600 kbit/s. 0.8 × 600 − 48 = 432 kbit/s of video: rung 3 (375 kbit/s), not
        // rung 1 as one step would.
        let mut a = Adapter::new();
        a.rates = Adapter::starting(1_500_000.0, 48_000.0).rates;
        let s = Sample {
            queue_delay: ms(120),
            delivered_bps: Some(600_000.0),
            ..Sample::default()
        };
        assert_eq!(a.on_sample(t, s), Some(3));
        assert!(LADDER[3].bitrate * 1_500_000.0 <= 432_000.0);
        assert!(LADDER[2].bitrate * 1_500_000.0 > 432_000.0);
        // A deep queue still takes at least two rungs when the rate would take fewer.
        let mut b = Adapter::new();
        b.rates = Adapter::starting(1_500_000.0, 48_000.0).rates;
        let deep = Sample {
            queue_delay: ms(300),
            delivered_bps: Some(2_000_000.0),
            ..Sample::default()
        };
        assert_eq!(b.on_sample(t, deep), Some(2));
        // Without rates the report's rate is not used: one step.
        let mut c = Adapter::new();
        assert_eq!(c.on_sample(t, s), Some(1));
    }

    #[test]
    fn a_start_below_full_quality_climbs_fast_until_the_first_congestion() {
        let mut t = Instant::now();
        let mut a = Adapter::starting(1_500_000.0, 48_000.0);
        assert_eq!(a.rung(), Adapter::START_RUNG);
        // A clear uplink: full quality within about two seconds.
        let moves = feed(&mut a, &mut t, clear(), 2.5);
        assert_eq!(moves, [1, 0]);
        // After a congestion, climbs wait the normal hold again.
        let mut b = Adapter::starting(1_500_000.0, 48_000.0);
        let mut t2 = Instant::now();
        assert_eq!(b.on_sample(t2, congested()), Some(3));
        assert!(feed(&mut b, &mut t2, clear(), 2.75).is_empty());
        assert_eq!(feed(&mut b, &mut t2, clear(), 0.5), [2]);
    }

    #[test]
    fn no_climb_above_what_the_link_carried_at_the_last_congestion_for_a_while() {
        let mut t = Instant::now();
        let mut a = Adapter::starting(1_500_000.0, 48_000.0);
        // The start's rung 2 (525 + 48 kbit/s) congests a link that carries 600 kbit/s.
        let s = Sample {
            queue_delay: ms(90),
            delivered_bps: Some(600_000.0),
            ..Sample::default()
        };
        assert_eq!(a.on_sample(t, s), Some(3));
        // Clear since: the climb back to rung 2 would need 573 kbit/s, over 95 % of 600.
        assert!(feed(&mut a, &mut t, clear(), 25.0).is_empty());
        assert_eq!(a.rung(), 3);
        // Once the memory is older than the longest hold, it probes again.
        assert_eq!(feed(&mut a, &mut t, clear(), 6.0), [2]);
        // A link that carried 1 Mbit/s lets it climb to rung 2 at the normal hold.
        let mut b = Adapter::starting(1_500_000.0, 48_000.0);
        let mut t2 = Instant::now();
        let s2 = Sample {
            delivered_bps: Some(1_000_000.0),
            ..s
        };
        assert_eq!(b.on_sample(t2, s2), Some(3));
        assert_eq!(feed(&mut b, &mut t2, clear(), 3.25), [2]);
    }

    #[test]
    fn a_climb_the_link_cannot_carry_is_undone_at_the_first_sign_of_a_queue() {
        let mut t = Instant::now();
        let mut a = Adapter::starting(1_500_000.0, 48_000.0);
        assert_eq!(feed(&mut a, &mut t, clear(), 1.25), [1]);
        // 100 ms after the climb the server sees a 35 ms queue: not yet congestion for a
        // rung held a while, but the new rung does not fit. It is undone at once, without
        // the wait a cut takes before the next cut.
        t += ms(100);
        let growing = Sample {
            queue_delay: ms(35),
            ..Sample::default()
        };
        assert_eq!(a.on_sample(t, growing), Some(2));
        // The same queue on a rung held past the probe time is no congestion.
        let mut b = Adapter::new();
        let mut t2 = Instant::now();
        assert!(feed(&mut b, &mut t2, growing, 5.0).is_empty());
        assert_eq!(b.rung(), 0);
    }

    #[test]
    fn a_queue_past_its_peak_after_a_cut_is_draining_not_a_new_congestion() {
        let t = Instant::now();
        let mut a = Adapter::new();
        let q = |n| Sample {
            queue_delay: ms(n),
            ..Sample::default()
        };
        assert_eq!(a.on_sample(t, q(70)), Some(1));
        // What was already sent deepens the queue for a moment, then it drains: the queue
        // is still over the congestion mark after the settle time, but falling.
        assert_eq!(a.on_sample(t + ms(200), q(150)), None);
        assert_eq!(a.on_sample(t + ms(600), q(120)), None);
        assert_eq!(a.on_sample(t + ms(800), q(80)), None);
        assert_eq!(a.rung(), 1);
        // A queue that grows past its peak again is a new congestion.
        assert_eq!(a.on_sample(t + ms(1_000), q(160)), Some(2));
        // A lower ceiling from the server is a fall too, but it has seen no queue yet: an
        // old spell's peak does not make a new congestion look like draining.
        let mut c = Adapter::new();
        assert_eq!(c.on_sample(t, q(150)), Some(1));
        let later = t + ms(5_000);
        assert_eq!(c.set_ceiling(later, 3), Some(3));
        assert_eq!(c.on_sample(later + ms(600), q(100)), Some(4));
        // Without the first cut's memory, the same falling queue cuts once settled.
        let mut b = Adapter::new();
        assert_eq!(b.on_sample(t, q(150)), Some(1));
        assert_eq!(b.on_sample(t + ms(600), q(150)), Some(2));
    }

    #[test]
    fn measured_rates_choose_the_start_the_cut_and_the_climbs() {
        let t = Instant::now();
        // Rung 2 asks for 525 kbit/s but sends 640 (an encoder at its quality floor).
        let rungs = [
            1_415_000.0,
            867_000.0,
            640_000.0,
            333_000.0,
            166_000.0,
            68_000.0,
        ];
        let a = Adapter::starting_measured(rungs, 48_000.0);
        // 640 + 48 > 450: the start is rung 3 (333 + 48).
        assert_eq!(a.rung(), 3);
        // A small camera that fits starts at full quality.
        let small = Adapter::starting_measured(
            [150_000.0, 90_000.0, 52_000.0, 37_000.0, 18_000.0, 8_000.0],
            48_000.0,
        );
        assert_eq!(small.rung(), 0);
        // A congestion at 800 kbit/s arrived: 0.8 × 800 − 48 = 592, under what rung 2 sends.
        let mut b = Adapter::starting_measured(rungs, 48_000.0);
        b.own = 1;
        let s = Sample {
            queue_delay: ms(90),
            delivered_bps: Some(800_000.0),
            ..Sample::default()
        };
        assert_eq!(
            b.on_sample(t, s),
            Some(3),
            "nominal shares would have kept rung 2"
        );
    }

    #[test]
    fn demand_maps_to_a_rung() {
        assert_eq!(demand_rung(0, 3), 0, "someone needs the full layer");
        assert_eq!(
            demand_rung(1, 3),
            2,
            "lower layers only: less bitrate, same size"
        );
        assert_eq!(demand_rung(2, 1), 2);
        assert_eq!(demand_rung(0, 0), 3, "nobody watches");
        for (layer, viewers) in [(1, 3), (0, 0)] {
            let r = LADDER[demand_rung(layer, viewers)];
            assert_eq!(r.scale_divisor, 1, "the size stays for the server's layers");
        }
    }
}
