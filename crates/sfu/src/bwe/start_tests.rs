//! A subscriber's first video on a simulated bottleneck: the policy and the estimate in a
//! closed loop. Each 100 ms the subscriber takes what its chosen layers cost, a FIFO link
//! carries at most its rate and queues the rest (the round trip grows by the queue), and a
//! flush the estimate asks for empties the queue, as the WebTransport writer's reset does.
//! Simulated clock and synthetic statistics; nothing reads the real time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Bwe, Config, Estimator, Feedback, Input, Output, TransportStats};
use crate::room::ConnId;

const SUB: ConnId = ConnId(7);
/// Three cameras whose layers cost what the transcoder aims for under a 720p publisher.
const CAMS: [u32; 3] = [11, 12, 13];
const COST: [u64; 3] = [1_500_000, 500_000, 150_000];
const AUDIO_BPS: u64 = 3 * 40_000;
const BASE_RTT_MS: f64 = 30.0;

struct Link {
    bwe: Bwe,
    t0: Instant,
    /// Layer each camera is forwarded on.
    layers: HashMap<u32, u8>,
    /// Bits waiting in the bottleneck.
    queue_bits: f64,
    /// Bytes handed over so far.
    drained: u64,
    flushes: u64,
    /// The longest the bottleneck's queue held, ms.
    worst_queue_ms: f64,
}

impl Link {
    fn new() -> Self {
        let t0 = Instant::now();
        Link {
            bwe: Bwe::new(Config::default(), t0),
            t0,
            layers: HashMap::new(),
            queue_bits: 0.0,
            drained: 0,
            flushes: 0,
            worst_queue_ms: 0.0,
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn apply(&mut self) {
        while let Some(Output::Layer {
            track_id, layer, ..
        }) = self.bwe.poll_output()
        {
            self.layers.insert(track_id, layer);
        }
    }

    fn sample(&self, link_bps: f64) -> TransportStats {
        let rtt = BASE_RTT_MS + self.queue_bits / link_bps * 1000.0;
        TransportStats {
            rtt: Some(Duration::from_micros((rtt * 1000.0) as u64)),
            // A window far above the link: only the round trip shows the limit.
            cwnd_bytes: Some(10_000_000),
            sent_packets: Some(self.drained / 1200),
            lost_packets: Some(0),
            drained_bytes: Some(self.drained),
            queued_bytes: Some(0),
            paced: Some(0),
            ..TransportStats::default()
        }
    }

    /// The transport reports a sample at `ms`.
    fn report(&mut self, ms: u64, link_bps: f64) {
        let s = self.sample(link_bps);
        self.bwe.handle_input(
            self.at(ms),
            Input::Feedback {
                conn: SUB,
                feedback: Feedback::Stats(s),
            },
        );
    }

    /// The subscriber subscribes to the three cameras at their full layer, the room
    /// knowing what their layers cost.
    fn subscribe_cams(&mut self) {
        for id in CAMS {
            self.bwe.handle_input(
                self.t0,
                Input::Track {
                    track_id: id,
                    screen: false,
                    bps: COST,
                    full_held: false,
                },
            );
            self.bwe.handle_input(
                self.t0,
                Input::Subscribe {
                    conn: SUB,
                    track_id: id,
                    preferred: 0,
                },
            );
        }
        self.apply();
    }

    /// The transport reports a first sample, then the subscriber subscribes.
    fn join(&mut self, link_bps: f64) {
        self.report(0, link_bps);
        self.subscribe_cams();
    }

    /// What the chosen layers cost, with the audio.
    fn demand(&self) -> u64 {
        AUDIO_BPS + self.layers.values().map(|l| COST[*l as usize]).sum::<u64>()
    }

    /// Runs the loop from `from` to `to` ms in 100 ms steps on a link of `link_bps`.
    fn run(&mut self, from: u64, to: u64, link_bps: f64) {
        let mut t = from;
        while t < to {
            t += 100;
            let offered = match self.bwe.pace_bps(SUB) {
                Some(p) => (self.demand() as f64).min(p as f64 + AUDIO_BPS as f64),
                None => self.demand() as f64,
            };
            self.drained += (offered * 0.1 / 8.0) as u64;
            self.queue_bits = (self.queue_bits + (offered - link_bps) * 0.1).max(0.0);
            self.worst_queue_ms = self.worst_queue_ms.max(self.queue_bits / link_bps * 1000.0);
            let now = self.at(t);
            self.report(t, link_bps);
            while let Some(due) = self.bwe.poll_timeout().filter(|d| *d <= now) {
                self.bwe.handle_timeout(due);
            }
            self.apply();
            let flushes = self.bwe.flushes(SUB);
            if flushes > self.flushes {
                self.flushes = flushes;
                self.queue_bits = 0.0;
            }
        }
    }

    fn sorted_layers(&self) -> Vec<u8> {
        let mut l: Vec<u8> = self.layers.values().copied().collect();
        l.sort_unstable();
        l
    }
}

#[test]
fn a_first_join_starts_below_the_full_layers_and_climbs_to_them_on_a_fast_path() {
    let mut l = Link::new();
    l.join(20e6);
    assert!(
        l.demand() <= 1_000_000,
        "the first keyframes fit the start ceiling, not three 720p ones: {:?}",
        l.sorted_layers()
    );
    l.run(0, 6_000, 20e6);
    assert_eq!(
        l.sorted_layers(),
        vec![0, 0, 0],
        "a path that carries everything gets everything within a few seconds"
    );
    assert_eq!(l.flushes, 0, "no queue built on the way up");
    assert!(
        !l.bwe.subs[&SUB].est.starting(),
        "a calm start is lifted, not kept as a limit"
    );
}

#[test]
fn a_first_join_on_a_1_mbit_link_settles_on_layers_that_fit_without_filling_the_queue() {
    let mut l = Link::new();
    l.join(1e6);
    l.run(0, 3_000, 1e6);
    let settled = l.sorted_layers();
    // Until the estimate's hold (5 s after the last limit) lets it try a better layer.
    l.run(3_000, 6_000, 1e6);
    assert_eq!(l.sorted_layers(), settled, "settled within 3 s");
    assert!(
        l.demand() <= 1_000_000,
        "the settled layers fit the link: {settled:?}"
    );
    // Audio waits behind the bottleneck's queue: a join that sent three 720p keyframes'
    // worth (4.6 Mbit/s into 1 Mbit/s) would hold it for seconds.
    assert!(
        l.worst_queue_ms < 150.0,
        "the queue in front of the audio stayed short: {:.0} ms",
        l.worst_queue_ms
    );
}

#[test]
fn a_subscriber_that_subscribed_before_the_first_sample_starts_at_that_sample() {
    let mut l = Link::new();
    l.subscribe_cams();
    assert_eq!(l.sorted_layers(), vec![0, 0, 0], "no sample, no start yet");
    l.run(0, 200, 1e6);
    assert!(
        l.demand() <= 1_000_000,
        "the first sample starts it: {:?}",
        l.sorted_layers()
    );
}

#[test]
fn a_transport_that_reports_nothing_gets_no_start_ceiling() {
    let mut l = Link::new();
    l.subscribe_cams();
    assert_eq!(l.sorted_layers(), vec![0, 0, 0]);
    assert_eq!(l.bwe.pace_bps(SUB), None);
}

#[test]
fn a_queue_seen_during_the_start_cuts_from_the_start_ceiling_not_from_the_little_sent() {
    use super::estimate::START_BPS;
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let sample = |rtt_ms: u64, drained: u64| TransportStats {
        rtt: Some(Duration::from_millis(rtt_ms)),
        cwnd_bytes: Some(10_000_000),
        drained_bytes: Some(drained),
        ..TransportStats::default()
    };
    let mut e = Estimator::default();
    e.update(ms(0), sample(30, 0));
    e.start(ms(0));
    assert!(e.starting());
    e.update(ms(500), sample(30, 10_000));
    // A keyframe burst: 80 ms of queue while only 300 kbit/s went out.
    e.update(ms(1_000), sample(110, 30_000));
    assert!(!e.starting(), "a queue ends the start");
    let bps = e.bps().unwrap() as f64;
    assert!(
        bps >= START_BPS * 0.8,
        "the cut keeps most of the start ceiling: {bps}"
    );
    assert!(bps < START_BPS, "but it is a cut: {bps}");
}

#[test]
fn a_camera_learns_a_lower_cost_slowly_and_a_higher_one_at_once() {
    let mut b = Bwe::new(Config::default(), Instant::now());
    let now = Instant::now();
    let feed = |b: &mut Bwe, bps: [u64; 3]| {
        b.handle_input(
            now,
            Input::Track {
                track_id: 1,
                screen: false,
                bps,
                full_held: false,
            },
        )
    };
    // A camera's first second: the encoder sent far less than it will.
    feed(&mut b, [300_000, 0, 0]);
    let first = b.tracks[&1].cost(0);
    assert!(
        first > 1_000_000.0,
        "one low figure is not trusted: {first}"
    );
    for _ in 0..10 {
        feed(&mut b, [300_000, 0, 0]);
    }
    let learnt = b.tracks[&1].cost(0);
    assert!(learnt < 400_000.0, "a steady low rate is learnt: {learnt}");
    feed(&mut b, [2_000_000, 0, 0]);
    assert_eq!(b.tracks[&1].cost(0), 2_000_000.0, "a rise counts at once");
}

#[test]
fn a_screen_share_keeps_its_layer_and_nothing_is_paced_during_the_start() {
    let mut l = Link::new();
    l.report(0, 20e6);
    l.bwe.handle_input(
        l.t0,
        Input::Published {
            track_id: 99,
            screen: true,
            pixels: None,
        },
    );
    l.bwe.handle_input(
        l.t0,
        Input::Subscribe {
            conn: SUB,
            track_id: 99,
            preferred: 0,
        },
    );
    l.apply();
    assert_eq!(l.layers[&99], 0, "a screen share starts as asked");
    // It turns out to cost 6 Mbit/s, far over the start ceiling.
    l.bwe.handle_input(
        l.at(300),
        Input::Track {
            track_id: 99,
            screen: true,
            bps: [6_000_000, 600_000, 250_000],
            full_held: false,
        },
    );
    let mut looked = false;
    for ms in [400, 600, 800] {
        let now = l.at(ms);
        l.report(ms, 20e6);
        while let Some(due) = l.bwe.poll_timeout().filter(|d| *d <= now) {
            l.bwe.handle_timeout(due);
            looked = true;
        }
    }
    assert!(
        looked,
        "the policy looked at the subscriber during the start"
    );
    l.apply();
    assert!(l.bwe.subs[&SUB].est.starting());
    assert_eq!(l.layers[&99], 0, "the start does not move it down");
    assert_eq!(l.bwe.pace_bps(SUB), None, "the start ceiling paces nothing");
}

#[test]
fn a_queue_beginning_to_build_ends_the_start_at_what_the_link_carried() {
    use super::estimate::START_BPS;
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    // A WebSocket past a proxy: the round trip shows nothing, the receiver's report does.
    let sample = |drained: u64| TransportStats {
        rtt: Some(Duration::from_millis(1)),
        drained_bytes: Some(drained),
        ..TransportStats::default()
    };
    let mut e = Estimator::default();
    e.update(ms(0), sample(0));
    e.start(ms(0));
    // Calm at 900 kbit/s: the start ceiling grows to twice that.
    e.update(ms(500), sample(56_250));
    assert!(e.starting());
    assert_eq!(e.bps(), Some(1_800_000));
    // Then 1.2 Mbit/s goes out and the receiver's queue reaches 15 ms over that half second
    // (not yet a limit, but the link's rate showing): the start ends at what the link
    // carried, 1.2 Mbit/s / 1.03, instead of growing to 2.4 Mbit/s.
    e.receiver_delay(Duration::from_millis(15));
    e.update(ms(1_000), sample(131_250));
    assert!(!e.starting(), "a building queue ends the start");
    let bps = e.bps().unwrap();
    assert!((1_150_000..=1_180_000).contains(&bps), "{bps}");
    assert_eq!(
        e.flushes(),
        0,
        "nothing to drop yet: it is not a cut for delay"
    );

    // A subscriber that takes little (small tiles) and sees a little delay (a busy
    // receiver): what it took is its demand, so its start ends no lower than the start
    // ceiling.
    let mut e = Estimator::default();
    e.update(ms(0), sample(0));
    e.start(ms(0));
    e.receiver_delay(Duration::from_millis(15));
    e.update(ms(500), sample(20_000));
    assert!(!e.starting());
    assert_eq!(e.bps(), Some(START_BPS as u64));
}

#[test]
fn a_full_layer_the_publisher_holds_down_costs_what_it_will_cost_once_watched() {
    let now = Instant::now();
    let mut b = Bwe::new(Config::default(), now);
    b.handle_input(
        now,
        Input::Published {
            track_id: 1,
            screen: false,
            pixels: Some(1280 * 720),
        },
    );
    // Nobody watches the full layer, so the publisher sends it at 400 kbit/s.
    let feed = |b: &mut Bwe, full_held: bool| {
        for _ in 0..20 {
            b.handle_input(
                now,
                Input::Track {
                    track_id: 1,
                    screen: false,
                    bps: [400_000, 500_000, 150_000],
                    full_held,
                },
            );
        }
    };
    feed(&mut b, true);
    assert_eq!(b.tracks[&1].cost(0), 1_500_000.0, "held: the usual cost");
    // Someone watches it and it still measures 400 kbit/s (a still picture): that is its cost.
    feed(&mut b, false);
    assert!(b.tracks[&1].cost(0) < 500_000.0);
}

#[test]
fn steps_up_come_one_subscription_at_a_time_a_second_apart() {
    let mut l = Link::new();
    l.join(20e6);
    let mut before = l.layers.clone();
    let mut rises: Vec<u64> = vec![];
    for t in (0..8_000).step_by(100) {
        l.run(t, t + 100, 20e6);
        let up = l
            .layers
            .iter()
            .filter(|(id, layer)| before.get(*id).is_some_and(|b| *layer < b))
            .count();
        assert!(up <= 1, "{up} cameras stepped up at once at {t} ms");
        if up == 1 {
            rises.push(t);
        }
        before = l.layers.clone();
    }
    assert_eq!(l.sorted_layers(), vec![0, 0, 0], "rises at {rises:?} ms");
    for w in rises.windows(2) {
        assert!(
            w[1] - w[0] >= 1_000,
            "a step up {} ms after the one before: {rises:?}",
            w[1] - w[0]
        );
    }
}
