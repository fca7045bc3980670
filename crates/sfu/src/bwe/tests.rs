//! The policy on a simulated clock: nothing here reads the real time.

use super::*;

const A: ConnId = ConnId(1);
const B: ConnId = ConnId(2);

struct Sim {
    bwe: Bwe,
    t0: Instant,
    now: Instant,
}

impl Sim {
    fn new(config: Config) -> Self {
        let t0 = Instant::now();
        Sim {
            bwe: Bwe::new(config, t0),
            t0,
            now: t0,
        }
    }

    fn at(&mut self, ms: u64) -> &mut Self {
        self.now = self.t0 + Duration::from_millis(ms);
        self
    }

    fn input(&mut self, input: Input) -> Vec<Output> {
        self.bwe.handle_input(self.now, input);
        self.drain()
    }

    /// Runs every timeout due up to `ms`, the way an event loop sleeping on
    /// `poll_timeout` would, and returns the outputs with the time each came.
    fn run_until(&mut self, ms: u64) -> Vec<(u64, Output)> {
        let end = self.t0 + Duration::from_millis(ms);
        let mut out = Vec::new();
        while let Some(t) = self.bwe.poll_timeout().filter(|t| *t <= end) {
            self.now = t;
            self.bwe.handle_timeout(t);
            let ms = t.duration_since(self.t0).as_millis() as u64;
            out.extend(self.drain().into_iter().map(|o| (ms, o)));
        }
        self.now = end;
        out
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.bwe.poll_output()).collect()
    }

    fn subscribe(&mut self, conn: ConnId, track_id: u32, preferred: u8) -> Vec<Output> {
        self.input(Input::Subscribe {
            conn,
            track_id,
            preferred,
        })
    }

    fn lag(&mut self, conn: ConnId) {
        self.input(Input::Feedback {
            conn,
            feedback: Feedback::Lag { events: 1 },
        });
    }
}

fn layer(conn: ConnId, track_id: u32, layer: u8, cause: Cause) -> Output {
    Output::Layer {
        conn,
        track_id,
        layer,
        cause,
    }
}

#[test]
fn a_subscription_gets_its_preferred_layer_and_no_timer() {
    let mut s = Sim::new(Config::default());
    assert_eq!(
        s.subscribe(A, 17, 1),
        vec![layer(A, 17, 1, Cause::Preference)]
    );
    assert_eq!(s.bwe.preferred(A, 17), Some(1));
    assert_eq!(
        s.bwe.poll_timeout(),
        None,
        "a calm subscriber costs no wake-up"
    );
}

#[test]
fn lag_moves_down_one_layer_per_period_at_the_next_grid_point() {
    let mut s = Sim::new(Config::default());
    s.subscribe(A, 17, 0);
    s.subscribe(A, 33, 1);
    s.subscribe(B, 17, 0);
    s.at(300).lag(A);
    s.at(400).lag(A);
    assert_eq!(s.bwe.poll_timeout(), Some(s.t0 + Duration::from_secs(1)));
    // Two lag events in one period count once; B is untouched.
    assert_eq!(
        s.run_until(1_500),
        vec![
            (1_000, layer(A, 17, 1, Cause::Congestion)),
            (1_000, layer(A, 33, 2, Cause::Congestion)),
        ]
    );
    s.at(1_600).lag(A);
    assert_eq!(
        s.run_until(2_500),
        vec![(2_000, layer(A, 17, 2, Cause::Congestion))],
        "track 33 is already at the lowest layer"
    );
    assert_eq!(s.bwe.held_down(A), 2);
    assert_eq!(s.bwe.held_down(B), 0);
}

#[test]
fn recovery_climbs_one_layer_per_calm_interval_back_to_the_preference() {
    let mut s = Sim::new(Config::default());
    s.subscribe(A, 17, 0);
    s.at(100).lag(A);
    s.run_until(1_000);
    s.at(1_100).lag(A);
    assert_eq!(
        s.run_until(2_000),
        vec![(2_000, layer(A, 17, 2, Cause::Congestion))]
    );
    // Calm from 2 s: up at 7 s, up again at 12 s, then nothing more to do.
    assert_eq!(
        s.run_until(20_000),
        vec![
            (7_000, layer(A, 17, 1, Cause::Recovery)),
            (12_000, layer(A, 17, 0, Cause::Recovery)),
        ]
    );
    assert_eq!(s.bwe.poll_timeout(), None);
}

#[test]
fn lag_during_recovery_restarts_the_calm_interval() {
    let mut s = Sim::new(Config::default());
    s.subscribe(A, 17, 0);
    s.at(100).lag(A);
    s.run_until(1_000);
    s.at(4_500).lag(A);
    // Already down one and lagging again: down another at 5 s, calm counted from there.
    assert_eq!(
        s.run_until(9_000),
        vec![(5_000, layer(A, 17, 2, Cause::Congestion))]
    );
    assert_eq!(
        s.run_until(10_000),
        vec![(10_000, layer(A, 17, 1, Cause::Recovery))]
    );
}

#[test]
fn steady_lag_holds_the_layer_without_oscillating() {
    let mut s = Sim::new(Config::default());
    s.subscribe(A, 17, 0);
    let mut outs = Vec::new();
    // A lag event every 800 ms for 30 s: it goes down and stays down.
    for i in 0..38u64 {
        let t = 100 + i * 800;
        outs.extend(s.run_until(t));
        s.at(t).lag(A);
    }
    outs.extend(s.run_until(30_500));
    let layers: Vec<u8> = outs
        .iter()
        .map(|(_, Output::Layer { layer, .. })| *layer)
        .collect();
    assert_eq!(
        layers,
        vec![1, 2],
        "down twice, never back up while lagging"
    );
}

#[test]
fn a_new_preference_is_carried_out_and_congestion_builds_on_it() {
    let mut s = Sim::new(Config::default());
    s.subscribe(A, 17, 0);
    s.at(10).lag(A);
    s.run_until(1_000);
    assert_eq!(s.bwe.held_down(A), 1);
    // The client asks for layer 1 explicitly: it gets what it asked for.
    assert_eq!(
        s.subscribe(A, 17, 1),
        vec![layer(A, 17, 1, Cause::Preference)]
    );
    assert_eq!(s.bwe.preferred(A, 17), Some(1));
    // Recovery to no congestion changes nothing for it; new lag moves it down from there.
    assert!(s.run_until(7_000).is_empty());
    assert_eq!(s.bwe.held_down(A), 0);
    s.at(7_100).lag(A);
    assert_eq!(
        s.run_until(8_000),
        vec![(8_000, layer(A, 17, 2, Cause::Congestion))]
    );
}

#[test]
fn unsubscribed_tracks_and_departed_subscribers_are_forgotten() {
    let mut s = Sim::new(Config::default());
    s.subscribe(A, 17, 0);
    s.subscribe(A, 33, 0);
    s.input(Input::Unsubscribe {
        conn: A,
        track_id: 33,
    });
    assert_eq!(s.bwe.preferred(A, 33), None);
    s.at(10).lag(A);
    assert_eq!(
        s.run_until(1_000),
        vec![(1_000, layer(A, 17, 1, Cause::Congestion))]
    );
    s.input(Input::Leave(A));
    assert_eq!(s.bwe.preferred(A, 17), None);
    assert_eq!(s.bwe.poll_timeout(), None, "no timer for someone who left");
}

#[test]
fn without_lower_layers_everything_stays_on_layer_zero() {
    let mut s = Sim::new(Config {
        adapt: false,
        max_layer: 0,
        ..Config::default()
    });
    assert_eq!(
        s.subscribe(A, 17, 2),
        vec![layer(A, 17, 0, Cause::Preference)]
    );
    s.at(10).lag(A);
    assert_eq!(s.bwe.poll_timeout(), None);
    assert!(s.run_until(10_000).is_empty());
}

#[test]
fn grid_points_are_multiples_of_the_period() {
    let t0 = Instant::now();
    let p = Duration::from_secs(1);
    assert_eq!(grid_at_or_after(t0, p, t0), t0);
    assert_eq!(
        grid_at_or_after(t0, p, t0 + Duration::from_millis(1)),
        t0 + p
    );
    assert_eq!(grid_at_or_after(t0, p, t0 + p), t0 + p);
    assert_eq!(
        grid_at_or_after(t0, p, t0 + Duration::from_millis(2_500)),
        t0 + 3 * p
    );
}

// ----- the bandwidth estimate and the video budget -----

const CAM: [u64; 3] = [1_500_000, 500_000, 150_000];

/// A QUIC-like sample whose window allows `bps` at 100 ms RTT.
fn quic(bps: f64, sent: u64, lost: u64) -> TransportStats {
    TransportStats {
        rtt: Some(Duration::from_millis(100)),
        cwnd_bytes: Some((bps / 8.0 * 0.1) as u64),
        sent_packets: Some(sent),
        lost_packets: Some(lost),
        ..TransportStats::default()
    }
}

impl Sim {
    fn track(&mut self, track_id: u32, screen: bool, bps: [u64; 3]) {
        self.input(Input::Track {
            track_id,
            screen,
            bps,
            full_held: false,
        });
    }

    /// Feeds one sample every 500 ms from `from` to `to` ms with the path allowing
    /// `bps(t)`, running timeouts in between; returns the layer outputs with their times.
    fn path(
        &mut self,
        conn: ConnId,
        from: u64,
        to: u64,
        bps: impl Fn(u64) -> f64,
    ) -> Vec<(u64, u8)> {
        let mut out = Vec::new();
        let mut sent = from * 10;
        let mut t = from;
        while t <= to {
            for (ms, o) in self.run_until(t) {
                let Output::Layer { layer, .. } = o;
                out.push((ms, layer));
            }
            sent += 500;
            let sample = quic(bps(t), sent, 0);
            self.at(t).input(Input::Feedback {
                conn,
                feedback: Feedback::Stats(sample),
            });
            t += 500;
        }
        out
    }
}

#[test]
fn the_budget_ramps_a_subscription_down_as_the_estimate_falls() {
    let mut s = Sim::new(Config::default());
    // The budget on a path already known: the start (start_tests.rs) is out of the way.
    s.bwe.subs.entry(A).or_default().est.skip_start();
    s.track(17, false, CAM);
    s.subscribe(A, 17, 0);
    assert!(
        s.path(A, 0, 5_000, |_| 10e6).is_empty(),
        "10 Mbit/s carries 720p"
    );
    // 1 Mbit/s: 0.85 * 1M - 100k = 750k fits the 500k layer, not 1.5M. A falling estimate
    // is acted on at the sample that shows it, not at the next point of the 1 s grid.
    let got = s.path(A, 5_500, 9_000, |_| 1e6);
    assert_eq!(got, vec![(5_500, 1)]);
    // 300 kbit/s: only the 150k layer fits.
    let got = s.path(A, 9_500, 12_000, |_| 300e3);
    assert_eq!(got, vec![(9_500, 2)]);
}

#[test]
fn the_budget_recovers_one_layer_at_a_time_after_a_hold() {
    let mut s = Sim::new(Config::default());
    s.track(17, false, CAM);
    s.subscribe(A, 17, 0);
    s.path(A, 0, 3_000, |_| 300e3);
    assert_eq!(s.bwe.preferred(A, 17), Some(0));
    // The path opens up again: the estimate grows by at most 15 %/s and each step up needs
    // 25 % headroom and 4 s since the last move down, so it climbs 2 -> 1 -> 0 in order.
    let got = s.path(A, 3_500, 40_000, |_| 10e6);
    let layers: Vec<u8> = got.iter().map(|(_, l)| *l).collect();
    assert_eq!(layers, vec![1, 0], "{got:?}");
    assert!(got[0].0 >= 7_000, "no step up within the hold: {got:?}");
}

#[test]
fn an_estimate_hovering_at_a_threshold_does_not_oscillate() {
    let mut s = Sim::new(Config::default());
    s.track(17, false, CAM);
    s.subscribe(A, 17, 0);
    s.path(A, 0, 2_000, |_| 10e6);
    // The path swings ±15 % around what the 720p layer needs, every sample, for a minute.
    let need = (1_500_000.0 + 100_000.0) / 0.85;
    let got = s.path(A, 2_500, 62_000, |t| {
        if (t / 500) % 2 == 0 {
            need * 1.15
        } else {
            need * 0.85
        }
    });
    assert!(got.len() <= 2, "layer changes: {got:?}");
}

#[test]
fn a_screen_share_and_the_speaker_get_the_budget_first() {
    let mut s = Sim::new(Config::default());
    // The budget on a path already known: the start (start_tests.rs) is out of the way.
    s.bwe.subs.entry(A).or_default().est.skip_start();
    s.track(17, false, CAM);
    s.track(33, false, CAM);
    s.track(50, true, [1_000_000, 300_000, 100_000]);
    s.subscribe(A, 17, 0);
    s.subscribe(A, 33, 0);
    s.subscribe(A, 50, 0);
    s.input(Input::Speaker(Some(33)));
    // 3.3 Mbit/s: 0.85 * 3.3M - 100k = 2.7M: screen 1M + speaker 1.5M, the other camera
    // gets the 150k layer.
    s.path(A, 0, 6_000, |_| 3.3e6);
    let told = |track| {
        s.bwe
            .subs
            .get(&A)
            .and_then(|x| x.prefs.iter().find(|p| p.track_id == track))
            .map(|p| p.told)
    };
    assert_eq!(told(50), Some(0), "screen share");
    assert_eq!(told(33), Some(0), "active speaker");
    assert_eq!(told(17), Some(2), "the rest");
}

#[test]
fn heavy_loss_cuts_the_estimate_to_what_was_delivered() {
    let mut e = Estimator::default();
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let sample = |bps: f64, sent: u64, lost: u64, drained: u64| TransportStats {
        drained_bytes: Some(drained),
        ..quic(bps, sent, lost)
    };
    e.update(ms(0), sample(10e6, 0, 0, 0));
    e.update(ms(1_000), sample(10e6, 1_000, 0, 1_250_000));
    assert_eq!(e.bps(), Some(10_000_000));
    // 30 % loss while 2 Mbit/s drained: the estimate drops to at most 85 % of that.
    e.update(ms(2_000), sample(10e6, 2_000, 300, 1_500_000));
    assert!(e.bps().unwrap() <= 1_700_000, "{:?}", e.bps());
}

/// A WebSocket-like sample: only the queue's counters.
fn queue(drained: u64, queued: u64) -> TransportStats {
    TransportStats {
        drained_bytes: Some(drained),
        queued_bytes: Some(queued),
        ..TransportStats::default()
    }
}

#[test]
fn a_stalled_subscriber_is_held_at_the_floor_then_lifted_after_a_calm_hold() {
    let mut e = Estimator::default();
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    // Reading 1 Mbit/s with an empty queue: nothing limits it.
    let mut drained = 0;
    for t in (0..=2_000).step_by(500) {
        e.update(ms(t), queue(drained, 0));
        drained += 62_500;
    }
    assert_eq!(e.bps(), None);
    // The reader stalls: the queue backs up and nothing drains; it lags.
    e.lag();
    e.update(ms(2_500), queue(drained, 200_000));
    e.update(ms(3_000), queue(drained, 300_000));
    assert_eq!(
        e.bps(),
        Some(MIN_BPS as u64),
        "a stall must not estimate zero"
    );
    // It reads again, calmly, at 300 kbit/s (a lower layer): the ceiling follows what was
    // delivered and is lifted after the hold.
    let mut t = 3_500;
    while t < 8_000 {
        drained += 18_750;
        e.update(ms(t), queue(drained, 0));
        assert!(e.bps().is_some(), "lifted too early at {t} ms");
        t += 500;
    }
    assert!(e.bps().unwrap() >= 290_000, "{:?}", e.bps());
    drained += 18_750;
    e.update(ms(8_000), queue(drained, 0));
    assert_eq!(
        e.bps(),
        None,
        "the ceiling was not lifted after a calm hold"
    );
}

#[test]
fn a_limit_that_returns_right_after_it_was_lifted_doubles_the_hold() {
    let mut e = Estimator::default();
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut drained = 0;
    let mut t = 0;
    let mut step = |e: &mut Estimator, t: &mut u64, backlog: bool| {
        drained += 31_250; // 500 kbit/s drained
        e.update(ms(*t), queue(drained, if backlog { 100_000 } else { 0 }));
        *t += 500;
    };
    step(&mut e, &mut t, false);
    let mut holds = Vec::new();
    for _ in 0..4 {
        // The better layer (twice the rate) backs the queue up at once; the ceiling is held,
        // grows until the better layer fits, which is tried again.
        step(&mut e, &mut t, true);
        holds.push(e.hold());
        while e.bps().is_some_and(|b| b < 1_000_000) {
            step(&mut e, &mut t, false);
        }
    }
    assert_eq!(
        holds,
        [5, 10, 20, 40].map(Duration::from_secs).to_vec(),
        "each failed try waits twice as long"
    );
}

#[test]
fn a_quic_stall_does_not_leave_the_window_estimate_stuck_at_the_floor() {
    let mut e = Estimator::default();
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let sample = |drained: u64| TransportStats {
        drained_bytes: Some(drained),
        ..quic(10e6, 0, 0)
    };
    e.update(ms(0), sample(0));
    e.update(ms(500), sample(60_000));
    assert_eq!(e.bps(), Some(10_000_000));
    // Flow control stalls the streams: lag with nothing delivered.
    e.lag();
    e.update(ms(1_000), sample(60_000));
    assert_eq!(e.bps(), Some(MIN_BPS as u64));
    let mut t = 1_500;
    while e.bps() != Some(10_000_000) && t < 20_000 {
        e.update(ms(t), sample(60_000 + t * 10));
        t += 500;
    }
    assert!(
        (6_000..=7_000).contains(&t),
        "back to the window after one hold, not after a slow climb: {t} ms"
    );
}

#[test]
fn a_look_off_the_grid_does_not_add_a_second_lag_step_within_a_period() {
    let mut s = Sim::new(Config::default());
    s.track(17, false, CAM);
    s.subscribe(A, 17, 0);
    s.at(500).lag(A);
    assert_eq!(
        s.run_until(1_000),
        vec![(1_000, layer(A, 17, 1, Cause::Congestion))]
    );
    // More lag, then the first statistics sample: a new estimate is looked at at once, but
    // the lag rule has stepped down a period ago only at the next grid point.
    s.at(1_100).lag(A);
    let now = s.at(1_200).input(Input::Feedback {
        conn: A,
        feedback: Feedback::Stats(quic(10e6, 100, 0)),
    });
    assert!(now.is_empty(), "{now:?}");
    assert_eq!(s.run_until(1_300), vec![]);
    assert_eq!(
        s.run_until(2_000),
        vec![(2_000, layer(A, 17, 2, Cause::Congestion))]
    );
}

#[test]
fn the_lowest_layer_of_every_subscription_is_set_aside_before_the_speaker_climbs() {
    let mut s = Sim::new(Config::default());
    for t in [17, 33, 49] {
        s.track(t, false, CAM);
        s.subscribe(A, t, 0);
    }
    s.input(Input::Speaker(Some(33)));
    // 1 Mbit/s: 0.85 * 1M - 100k = 750k. The speaker's 500k layer would leave 250k for two
    // cameras that cannot go below 150k each: 800k, over the budget and the pace. So
    // everyone gets the 150k layer (450k).
    s.path(A, 0, 6_000, |_| 1e6);
    let told: Vec<u8> = [17, 33, 49]
        .iter()
        .map(|t| {
            s.bwe.subs[&A]
                .prefs
                .iter()
                .find(|p| p.track_id == *t)
                .map(|p| p.told)
                .unwrap()
        })
        .collect();
    assert_eq!(told, vec![2, 2, 2]);
    // 1.3 Mbit/s: 1.005M, of which 450k is set aside: the speaker's 500k layer now fits.
    s.path(A, 6_500, 20_000, |_| 1.3e6);
    let speaker = s.bwe.subs[&A]
        .prefs
        .iter()
        .find(|p| p.track_id == 33)
        .unwrap();
    assert_eq!(speaker.told, 1);
}
