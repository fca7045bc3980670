//! Per-subscriber congestion state and the layer policy, sans-IO.
//!
//! [`Bwe`] decides which layer each video subscription gets. It owns what the subscriber
//! asked for (the *preferred* layer, from its tile size or an explicit choice) and how many
//! layers below that congestion pushes it, so nobody else has to remember the client's own
//! choice while a congested subscriber is held down.
//!
//! It is driven like str0m's `bwe`: the caller feeds [`Input`]s with the current time (what
//! the subscriber asked for, and [`Feedback`] measured by the transport), calls
//! [`Bwe::handle_timeout`] when [`Bwe::poll_timeout`] is due, and carries out every
//! [`Output`] from [`Bwe::poll_output`]. It never reads a clock and does no I/O.
//!
//! Rules:
//! - a subscriber is looked at on a fixed grid of [`Config::period`] (1 s), and only when
//!   something is pending: lag events that arrived since the last look, or a layer it was
//!   pushed down that may recover. An idle or calm subscriber costs no wake-up. A falling
//!   estimate is looked at at once, off the grid, since layers that no longer fit fill the
//!   bottleneck in front of the audio, and a subscriber whose start ceiling still climbs is
//!   looked at every half period; a look off the grid only budgets, and the lag and
//!   recovery rules keep to the grid;
//! - any lag in a period moves every video subscription of that subscriber one layer down
//!   (at most to the lowest layer);
//! - after [`Config::recover_after`] (5 s) without lag it moves up one layer, and again
//!   after each further calm interval, until it is back at its preferred layers;
//! - the layer never exceeds [`Config::max_layer`] (0 when the server makes no lower layers)
//!   and never goes above what the tile needs ([`choose_layer`]);
//! - a new choice of the subscriber (subscribe, tile change) is carried out as asked;
//!   congestion moves it again from the next decision on. A new subscription, though,
//!   starts on the best layer that fits what the estimate leaves after the subscriber's
//!   other subscriptions, and a subscriber's first video starts under the estimator's start
//!   ceiling, so a join does not send every full layer's keyframe into a path nobody has
//!   measured; the budget then steps it up as the path proves it carries more;
//! - when the transport reports statistics, a downlink estimate ([`Estimator`]) sets a video
//!   budget per subscriber, shared screen shares first, then the active speaker's camera, then
//!   the rest; a subscription never gets a layer above what its share of the budget fits. It
//!   steps up one layer at a time with margin and a hold after a step down, one subscription
//!   per look and at least a second (`UP_SPACING`) after its last step up. While nothing the
//!   transport sees limits the subscriber (no estimate), only the rules above apply.
//!
//! Feedback is an open set ([`Feedback`] is `#[non_exhaustive]`): transport statistics are
//! new variants, not a new shape of [`Input`].

mod estimate;
mod tile;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use smallvec::SmallVec;

pub use estimate::{Estimator, TransportStats, MIN_BPS};
pub use tile::choose_layer;

use crate::room::{ConnId, ConnMap, MAX_LAYER};

const LAYERS: usize = MAX_LAYER as usize + 1;
/// Share of the estimate given to video (the rest is headroom for audio, control, overhead).
const VIDEO_SHARE: f64 = 0.85;
/// Bits per second kept for each subscriber's audio before video is budgeted.
const AUDIO_RESERVE_BPS: f64 = 100_000.0;
/// A better layer is taken only when it fits this many times over.
const UP_MARGIN: f64 = 1.25;
/// After the budget moved a subscriber down, it waits this long before moving up again.
const UP_HOLD: Duration = Duration::from_secs(4);
/// A subscriber's next step up waits this long after its last one, so each step shows
/// whether the path carries it (its queue, in the transport's samples and the receiver's
/// reports) before another adds to it: a 1 Mbit/s subscriber whose start stepped two or
/// three cameras up half a second apart filled its 200 ms queue before the first step's
/// queue was seen, and its audio waited behind it.
const UP_SPACING: Duration = Duration::from_millis(1000);
/// What each layer of a camera is taken to cost before anything was measured: a 720p
/// publisher and the transcoder's targets for its two lower layers.
const NOMINAL_BPS: [f64; LAYERS] = [1_500_000.0, 500_000.0, 150_000.0];
/// How much of a lower measurement a layer's cost takes per interval, in tenths.
const RATE_FALL: u64 = 3;
/// A layer whose rate is unknown is assumed to cost this fraction of the next better one.
const LAYER_RATIO: u64 = 3;

/// Settings of the policy. `Default` gives production values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Whether congestion moves layers at all (off when there are no lower layers to use).
    pub adapt: bool,
    /// The lowest layer (highest index) that exists; 0 when only the publisher's own layer
    /// is available.
    pub max_layer: u8,
    /// How often a subscriber with pending signals is looked at.
    pub period: Duration,
    /// How long a subscriber must be free of lag before it moves up a layer.
    pub recover_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            adapt: true,
            max_layer: MAX_LAYER,
            period: Duration::from_secs(1),
            recover_after: Duration::from_secs(5),
        }
    }
}

/// What the transport measured about one subscriber's downlink.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Feedback {
    /// The subscriber could not keep up: its queue or its transport dropped video and cut a
    /// track back to the next keyframe. A fast signal, acted on at the next look.
    Lag {
        /// How many such events.
        events: u32,
    },
    /// A sample of the transport's statistics (see [`TransportStats`]): feeds the
    /// subscriber's bandwidth estimate, which then budgets its video.
    Stats(TransportStats),
    /// The subscriber's own report of how long its audio waits on the way above the
    /// shortest wait it has seen (`receiver_report`, PROTOCOL.md §5.6). It shows a queue
    /// that the transport's round trip does not: one past a proxy or a load balancer that
    /// ends the TCP connection. Taken with the next statistics sample, like a round trip
    /// grown by as much.
    ReceiverDelay {
        /// The queueing delay the receiver measured.
        queue: Duration,
    },
}

/// Something the policy must know.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A subscriber subscribed to a video track (or changed its tile): `preferred` is the
    /// layer it asked for.
    Subscribe {
        /// The subscriber.
        conn: ConnId,
        /// The video track.
        track_id: u32,
        /// Its own choice of layer.
        preferred: u8,
    },
    /// The subscription ended (unsubscribed, or the track was unpublished).
    Unsubscribe {
        /// The subscriber.
        conn: ConnId,
        /// The track.
        track_id: u32,
    },
    /// The subscriber left; forget everything about it.
    Leave(ConnId),
    /// A measurement of the subscriber's downlink.
    Feedback {
        /// The subscriber.
        conn: ConnId,
        /// What was measured.
        feedback: Feedback,
    },
    /// What a video track's layers cost now, bits per second (0: unknown), and whether it is
    /// a screen share (budgeted first).
    Track {
        /// The track.
        track_id: u32,
        /// Screen share.
        screen: bool,
        /// Rate of each layer.
        bps: [u64; LAYERS],
        /// The publisher holds its full layer below its usual rate because nobody watches
        /// that layer (`track_demand`): what it measures now is not what a subscriber that
        /// moves to it will take, once the publisher has come back up.
        full_held: bool,
    },
    /// A video track was published, `pixels` its announced picture size (width × height).
    /// Until its layers are measured they are taken to cost what such a camera usually
    /// does.
    Published {
        /// The track.
        track_id: u32,
        /// Screen share.
        screen: bool,
        /// Announced width × height, if any.
        pixels: Option<u64>,
    },
    /// The track was unpublished.
    TrackGone(u32),
    /// The active speaker's camera track (budgeted right after screen shares).
    Speaker(Option<u32>),
}

/// Why a layer was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// The subscriber asked for it (subscribe, tile change); congestion already applied.
    Preference,
    /// The subscriber lagged: one layer down.
    Congestion,
    /// The subscriber was calm long enough: one layer up.
    Recovery,
    /// The bandwidth estimate and the video budget moved it.
    Estimate,
}

/// What the caller must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Forward `layer` of `track_id` to `conn` from its next keyframe on.
    Layer {
        /// The subscriber.
        conn: ConnId,
        /// The video track.
        track_id: u32,
        /// The layer to forward.
        layer: u8,
        /// Why.
        cause: Cause,
    },
}

#[derive(Debug, Default)]
struct Subscriber {
    /// Lag events reported so far.
    lag: u64,
    /// Lag events already acted on.
    seen: u64,
    /// Layers below the preferred ones that congestion forces.
    down: u8,
    /// When `down` last changed or lag was last acted on.
    since: Option<Instant>,
    /// When this subscriber must be looked at next; `None` when nothing is pending.
    due: Option<Instant>,
    /// Each video subscription's own choice and the layer last chosen for it.
    prefs: SmallVec<[Pref; 8]>,
    /// The downlink estimate, once the transport reports statistics.
    est: Estimator,
    /// When the budget last moved this subscriber down.
    budget_down_at: Option<Instant>,
    /// When the budget last moved one of this subscriber's subscriptions up.
    rose_at: Option<Instant>,
    /// The next look is off the grid, for a falling estimate.
    urgent: bool,
}

#[derive(Debug, Clone, Copy)]
struct Pref {
    track_id: u32,
    /// What the subscriber asked for.
    preferred: u8,
    /// What this policy last told the caller to forward.
    told: u8,
    /// The layer the video budget allows (0 while unconstrained).
    fit: u8,
}

#[derive(Debug, Clone, Copy, Default)]
struct TrackRate {
    screen: bool,
    bps: [u64; LAYERS],
    /// What the full layer of such a camera usually costs (0 for a screen share).
    nominal_full: u64,
    /// The publisher holds its full layer down (see [`Input::Track`]).
    full_held: bool,
}

impl TrackRate {
    /// A track nothing was measured of: a camera of `pixels` (720p when unknown) starts from
    /// the nominal costs and learns down from them; a screen share has no typical rate and
    /// takes the first measurement.
    fn new(screen: bool, pixels: Option<u64>) -> Self {
        let bps = if screen {
            [0; LAYERS]
        } else {
            nominal_for(pixels)
        };
        TrackRate {
            screen,
            bps,
            nominal_full: if screen { 0 } else { bps[0] },
            full_held: false,
        }
    }

    /// Folds in what each layer cost over the last interval (0: not sent in it, nothing
    /// learnt). A rise counts at once, a fall slowly: an encoder's first second, or a quiet
    /// scene, says little about what the layer costs when the picture moves again, and a
    /// budget spent on a low figure overshoots the path.
    fn fold(&mut self, measured: [u64; LAYERS]) {
        for (old, new) in self.bps.iter_mut().zip(measured) {
            if new >= *old {
                *old = new;
            } else if new > 0 {
                *old = (*old * (10 - RATE_FALL) + new * RATE_FALL) / 10;
            }
        }
    }

    /// The cost of `layer`: measured, or derived from the next better measured layer, or
    /// (nothing measured yet: the track just started) the nominal cost.
    fn cost(&self, layer: u8) -> f64 {
        let l = layer as usize;
        if l == 0 && self.full_held {
            // Moving there lifts the hold: the publisher comes back to its usual rate.
            return self.bps[0].max(self.nominal_full) as f64;
        }
        if let Some(&b) = self.bps.get(l).filter(|b| **b > 0) {
            return b as f64;
        }
        (0..l)
            .rev()
            .find_map(|k| {
                let b = *self.bps.get(k)?;
                (b > 0).then(|| b / LAYER_RATIO.pow((l - k) as u32))
            })
            .map_or_else(|| nominal(layer), |b| b as f64)
    }
}

/// What a camera of `pixels` (720p when unknown) is taken to cost before anything was
/// measured: the nominal costs scaled with the picture's area, as the transcoder scales
/// its targets, and never below a tenth of them.
fn nominal_for(pixels: Option<u64>) -> [u64; LAYERS] {
    const HD: f64 = 1280.0 * 720.0;
    let scale = pixels.map_or(1.0, |p| (p as f64 / HD).clamp(0.1, 1.0));
    NOMINAL_BPS.map(|b| (b * scale) as u64)
}

/// What `layer` of a 720p camera is taken to cost before anything was measured.
fn nominal(layer: u8) -> f64 {
    NOMINAL_BPS.get(layer as usize).copied().unwrap_or(0.0)
}

/// The layer policy of one room. See the module docs.
#[derive(Debug)]
pub struct Bwe {
    config: Config,
    /// Start of the grid on which subscribers are looked at.
    origin: Instant,
    subs: ConnMap<Subscriber>,
    tracks: HashMap<u32, TrackRate>,
    speaker_camera: Option<u32>,
    outputs: VecDeque<Output>,
    /// Earliest `due` of any subscriber.
    next: Option<Instant>,
}

impl Bwe {
    /// A policy with no subscribers; `now` starts its grid.
    pub fn new(config: Config, now: Instant) -> Self {
        Bwe {
            config,
            origin: now,
            subs: ConnMap::default(),
            tracks: HashMap::new(),
            speaker_camera: None,
            outputs: VecDeque::new(),
            next: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Feed one input. Outputs queue up for [`Bwe::poll_output`].
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Subscribe {
                conn,
                track_id,
                preferred,
            } => {
                // A fresh choice of the subscriber is carried out as asked (within the
                // layers that exist); congestion applies again from its next decision.
                let max = self.config.max_layer.min(MAX_LAYER);
                let preferred = preferred.min(MAX_LAYER);
                let s = self.subs.entry(conn).or_default();
                if self.config.adapt && s.prefs.is_empty() {
                    s.est.start(now);
                }
                let mut layer = preferred.min(max);
                let screen = self.tracks.get(&track_id).is_some_and(|r| r.screen);
                if self.config.adapt && !screen && !s.prefs.iter().any(|p| p.track_id == track_id) {
                    // A new subscription starts on the best layer its share of the estimate
                    // fits, not on the full one: its first keyframe must not fill a
                    // bottleneck the estimate already knows about.
                    layer = layer.max(first_fit(s, &self.tracks, track_id, layer, max));
                }
                let pref = Pref {
                    track_id,
                    preferred,
                    told: layer,
                    fit: 0,
                };
                match s.prefs.iter_mut().find(|p| p.track_id == track_id) {
                    Some(p) => *p = pref,
                    None => s.prefs.push(pref),
                }
                self.outputs.push_back(Output::Layer {
                    conn,
                    track_id,
                    layer,
                    cause: Cause::Preference,
                });
            }
            Input::Unsubscribe { conn, track_id } => {
                if let Some(s) = self.subs.get_mut(&conn) {
                    s.prefs.retain(|p| p.track_id != track_id);
                }
            }
            Input::Leave(conn) => {
                if self.subs.remove(&conn).is_some_and(|s| s.due.is_some()) {
                    self.reschedule();
                }
            }
            Input::Feedback { conn, feedback } => self.feedback(now, conn, feedback),
            Input::Track {
                track_id,
                screen,
                bps,
                full_held,
            } => {
                let rate = self
                    .tracks
                    .entry(track_id)
                    .or_insert_with(|| TrackRate::new(screen, None));
                rate.screen = screen;
                rate.full_held = full_held;
                rate.fold(bps);
            }
            Input::Published {
                track_id,
                screen,
                pixels,
            } => {
                self.tracks.insert(track_id, TrackRate::new(screen, pixels));
            }
            Input::TrackGone(track_id) => {
                self.tracks.remove(&track_id);
            }
            Input::Speaker(camera) => self.speaker_camera = camera,
        }
    }

    /// Looks at `conn` at the next grid point unless it is due earlier already.
    fn schedule(&mut self, conn: ConnId, now: Instant) {
        let at = grid_at_or_after(self.origin, self.config.period, now);
        self.schedule_at(conn, at);
    }

    /// Looks at `conn` at `at` unless it is due earlier already.
    fn schedule_at(&mut self, conn: ConnId, at: Instant) {
        let Some(s) = self.subs.get_mut(&conn) else {
            return;
        };
        if s.due.is_none_or(|d| at < d) {
            s.due = Some(at);
            if self.next.is_none_or(|n| at < n) {
                self.next = Some(at);
            }
        }
    }

    fn feedback(&mut self, now: Instant, conn: ConnId, feedback: Feedback) {
        if !self.config.adapt {
            return;
        }
        let s = self.subs.entry(conn).or_default();
        match feedback {
            Feedback::Lag { events } => {
                s.lag += u64::from(events);
                s.est.lag();
                if s.lag > s.seen {
                    self.schedule(conn, now);
                }
            }
            Feedback::ReceiverDelay { queue } => s.est.receiver_delay(queue),
            Feedback::Stats(stats) => {
                let before = s.est.bps();
                s.est.update(now, stats);
                if !s.prefs.is_empty() {
                    // Subscribed before the transport's first sample: the start begins now
                    // (a no-op once it has begun).
                    s.est.start(now);
                }
                let after = s.est.bps();
                if s.prefs.is_empty() {
                    return;
                }
                if after.is_some_and(|a| a < before.unwrap_or(u64::MAX)) {
                    // The estimate fell: every moment on layers that do not fit fills the
                    // bottleneck in front of the audio, so look now, not at the next grid
                    // point.
                    s.urgent = true;
                    self.schedule_at(conn, now);
                } else if s.est.starting() {
                    // A start climbs a step per look: look at the next half period.
                    let half = self.config.period / 2;
                    let at = grid_at_or_after(self.origin, half, now);
                    self.schedule_at(conn, at);
                } else if before.is_some() || after.is_some() {
                    // Look again while an estimate constrains video, and once when it is
                    // lifted.
                    self.schedule(conn, now);
                }
            }
        }
    }

    /// Time passed: look at every subscriber that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next.is_none_or(|n| now < n) {
            return;
        }
        let (config, origin) = (self.config, self.origin);
        let max = config.max_layer.min(MAX_LAYER);
        for (conn, s) in self.subs.iter_mut() {
            if s.due.is_none_or(|d| now < d) {
                continue;
            }
            let before = s.down;
            let mut cause = Cause::Congestion;
            // A look off the grid (the estimate fell, or a start climbing) only budgets:
            // the lag and recovery rules keep their pace of one step per grid point.
            let on_grid = grid_at_or_after(origin, config.period, now) == now;
            let urgent = std::mem::take(&mut s.urgent) || !on_grid;
            let lag_waits = s.lag > s.seen && urgent;
            if !urgent && s.lag > s.seen {
                s.down = (s.down + 1).min(max);
                s.since = Some(now);
                s.seen = s.lag;
            } else if !urgent
                && s.down > 0
                && s.since
                    .is_some_and(|t| now.saturating_duration_since(t) >= config.recover_after)
            {
                s.down -= 1;
                s.since = Some(now);
                cause = Cause::Recovery;
            }
            let budgeted = budget(s, &self.tracks, self.speaker_camera, now, max);
            let since = s.since.unwrap_or(now);
            let recover = if lag_waits {
                Some(grid_at_or_after(origin, config.period, now))
            } else {
                (s.down > 0)
                    .then(|| grid_at_or_after(origin, config.period, since + config.recover_after))
            };
            // With an estimate the budget is revisited every period while video flows, and
            // every half period while a start climbs (each look steps a layer up at most).
            let every = if s.est.starting() {
                config.period / 2
            } else {
                config.period
            };
            let periodic = (budgeted && !s.prefs.is_empty())
                .then(|| grid_at_or_after(origin, every, now + every));
            s.due = match (recover, periodic) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if s.down == before {
                cause = Cause::Estimate;
            }
            for p in s.prefs.iter_mut() {
                let layer = target(p.preferred, s.down, max).max(p.fit);
                if layer != p.told {
                    p.told = layer;
                    self.outputs.push_back(Output::Layer {
                        conn: *conn,
                        track_id: p.track_id,
                        layer,
                        cause,
                    });
                }
            }
        }
        self.reschedule();
    }

    /// Next output to carry out, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Bwe::handle_timeout`] must be called next; `None` while nothing is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// The layer a subscription asked for itself.
    pub fn preferred(&self, conn: ConnId, track_id: u32) -> Option<u8> {
        let s = self.subs.get(&conn)?;
        s.prefs
            .iter()
            .find(|p| p.track_id == track_id)
            .map(|p| p.preferred)
    }

    /// The rate to pace `conn`'s video at, while its estimate rests on evidence the
    /// transport does not see (see [`Estimator::pace_bps`]).
    pub fn pace_bps(&self, conn: ConnId) -> Option<u64> {
        self.subs.get(&conn)?.est.pace_bps()
    }

    /// How many flushes `conn`'s estimate has asked for (see [`Estimator::flushes`]).
    pub fn flushes(&self, conn: ConnId) -> u64 {
        self.subs.get(&conn).map_or(0, |s| s.est.flushes())
    }

    /// How many layers below its preferences congestion holds a subscriber now.
    pub fn held_down(&self, conn: ConnId) -> u8 {
        self.subs.get(&conn).map_or(0, |s| s.down)
    }

    fn reschedule(&mut self) {
        self.next = self.subs.values().filter_map(|s| s.due).min();
    }
}

/// Shares the subscriber's video budget among its subscriptions, screen shares first, then
/// the active speaker, then the others; sets each subscription's `fit`. False when there is
/// no estimate yet (nothing budgeted).
fn budget(
    s: &mut Subscriber,
    tracks: &HashMap<u32, TrackRate>,
    speaker: Option<u32>,
    now: Instant,
    max: u8,
) -> bool {
    let Some(bps) = s.est.bps() else {
        // Nothing the transport sees limits this subscriber: only its own choice and the
        // lag rule hold its layers down.
        for p in s.prefs.iter_mut() {
            p.fit = 0;
        }
        return false;
    };
    let mut left = bps as f64 * VIDEO_SHARE - AUDIO_RESERVE_BPS;
    let rank = |t: u32| match tracks.get(&t) {
        Some(r) if r.screen => 0,
        _ if Some(t) == speaker => 1,
        _ => 2,
    };
    let mut order: SmallVec<[(u8, u32, usize); 8]> = s
        .prefs
        .iter()
        .enumerate()
        .map(|(i, p)| (rank(p.track_id), p.track_id, i))
        .collect();
    order.sort_unstable();
    // Every subscription gets at least the lowest layer (there is no lower choice), so
    // what they cost is set aside first: the ones ranked first spend only what is left,
    // rather than leaving the rest forced onto the lowest layer over the budget (and over
    // the pace, where their video would lag).
    let lowest = |t: u32| tracks.get(&t).copied().unwrap_or_default().cost(max);
    left -= s.prefs.iter().map(|p| lowest(p.track_id)).sum::<f64>();
    let mut may_rise = s
        .budget_down_at
        .is_none_or(|t| now.saturating_duration_since(t) >= UP_HOLD)
        && s.rose_at
            .is_none_or(|t| now.saturating_duration_since(t) >= UP_SPACING);
    let mut went_down = false;
    for (_, track_id, i) in order {
        let Some(p) = s.prefs.get_mut(i) else {
            continue;
        };
        let rate = tracks.get(&track_id).copied().unwrap_or_default();
        left += rate.cost(max);
        let floor = target(p.preferred, s.down, max);
        let cur = p.told.max(floor);
        let fits = |l: u8, margin: f64| rate.cost(l) * margin <= left;
        let layer = if rate.screen && s.est.starting() {
            // A screen share is read, not watched: the start's caution is for cameras.
            cur
        } else if !fits(cur, 1.0) {
            // Over budget: the best layer that fits now, or the lowest one. Staying on the
            // lowest layer is not a move down: it holds no later step up back.
            let l = (cur..=max).find(|&l| fits(l, 1.0)).unwrap_or(max);
            went_down |= l > cur;
            l
        } else if may_rise && cur > floor && fits(cur - 1, UP_MARGIN) {
            // One step up at a time, with margin, for one subscription per look.
            may_rise = false;
            s.rose_at = Some(now);
            cur - 1
        } else {
            cur
        };
        p.fit = layer;
        left -= rate.cost(layer);
    }
    // While a start climbs, a move down is a re-ranking under a ceiling that is not a
    // measured limit: it holds no later step up back.
    if went_down && !s.est.starting() {
        s.budget_down_at = Some(now);
    }
    true
}

/// The best layer from `from` down that fits what the estimate leaves after the
/// subscriber's other subscriptions; `from` when there is no estimate.
fn first_fit(
    s: &Subscriber,
    tracks: &HashMap<u32, TrackRate>,
    track_id: u32,
    from: u8,
    max: u8,
) -> u8 {
    let Some(bps) = s.est.bps() else {
        return from;
    };
    let cost = |t: u32, l: u8| tracks.get(&t).map_or_else(|| nominal(l), |r| r.cost(l));
    let left = bps as f64 * VIDEO_SHARE
        - AUDIO_RESERVE_BPS
        - s.prefs
            .iter()
            .filter(|p| p.track_id != track_id)
            .map(|p| cost(p.track_id, p.told))
            .sum::<f64>();
    (from..=max)
        .find(|&l| cost(track_id, l) <= left)
        .unwrap_or(max)
}

fn target(preferred: u8, down: u8, max: u8) -> u8 {
    preferred.saturating_add(down).min(max)
}

/// The first instant of the grid `origin + k * period` at or after `t`.
fn grid_at_or_after(origin: Instant, period: Duration, t: Instant) -> Instant {
    let since = t.saturating_duration_since(origin);
    let p = period.as_nanos().max(1);
    let k = since.as_nanos().div_ceil(p);
    // k * period fits: `since` itself came from an Instant difference.
    origin + Duration::from_nanos(u64::try_from(k * p).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod delay_tests;
#[cfg(test)]
mod start_tests;
#[cfg(test)]
mod tests;
