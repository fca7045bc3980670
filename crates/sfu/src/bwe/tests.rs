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
