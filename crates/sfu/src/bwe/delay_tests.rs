//! The estimate on a path with a FIFO bottleneck (a capped link whose queue fills): the
//! round trip grows, the ceiling is cut once per drain, video is paced at it, and a calm
//! ceiling grows back instead of being lifted. Simulated clock and synthetic statistics.

use std::time::{Duration, Instant};

use super::{Estimator, TransportStats, MIN_BPS};

/// A QUIC sample: the round trip, what the queue drained so far, what waits, and how often
/// the pacer held video back. The window is large (the path's queue is full of it), so the
/// base is far above the link and only the ceiling can see the limit.
fn sample(rtt_ms: u64, drained: u64, queued: u64, paced: u64) -> TransportStats {
    TransportStats {
        rtt: Some(Duration::from_millis(rtt_ms)),
        cwnd_bytes: Some(1_000_000),
        sent_packets: Some(0),
        lost_packets: Some(0),
        drained_bytes: Some(drained),
        queued_bytes: Some(queued),
        paced: Some(paced),
        ..TransportStats::default()
    }
}

/// The cut after `delivered` bit/s went into a queue that grew by `grown_ms` over
/// `over_ms`: the link carried only 1 / (1 + growth) of it, and 85 % of that is kept.
fn cut_after(delivered: f64, grown_ms: f64, over_ms: f64) -> u64 {
    (delivered / (1.0 + grown_ms / over_ms) * 0.85) as u64
}

/// Within a thousandth (floating point).
fn near(got: u64, want: u64) -> bool {
    got.abs_diff(want) <= want / 1000
}

struct Path {
    e: Estimator,
    t0: Instant,
    t: u64,
    drained: u64,
}

impl Path {
    fn new() -> Self {
        Path {
            e: Estimator::default(),
            t0: Instant::now(),
            t: 0,
            drained: 0,
        }
    }

    /// Half a second at `kbps` delivered, with this round trip and queue.
    fn step(&mut self, kbps: u64, rtt_ms: u64, queued: u64, paced: u64) {
        self.drained += kbps * 1000 / 8 / 2;
        let now = self.t0 + Duration::from_millis(self.t);
        self.e
            .update(now, sample(rtt_ms, self.drained, queued, paced));
        self.t += 500;
    }
}

#[test]
fn a_growing_round_trip_cuts_the_estimate_below_what_was_delivered_and_paces_video() {
    let mut p = Path::new();
    // 30 ms when the path is empty: nothing limits the subscriber, nothing is paced.
    p.step(900, 30, 0, 0);
    p.step(900, 30, 0, 0);
    assert_eq!(p.e.pace_bps(), None);
    // The layers put 1 Mbit/s into a link that carries less: its queue fills, the round
    // trip grows by 150 ms in that half second, so the link carried 1 / 1.3 of it.
    p.step(1_000, 180, 0, 0);
    let cut = p.e.bps().unwrap();
    assert!(near(cut, cut_after(1e6, 150.0, 500.0)), "{cut}");
    assert!((600_000..=700_000).contains(&cut), "{cut}");
    // Video is paced at its share of the estimate: the subscriber's audio crosses the same
    // bottleneck unpaced.
    assert_eq!(p.e.pace_bps(), Some(cut * 85 / 100));
}

#[test]
fn samples_faster_than_the_rate_window_measure_rates_over_the_window() {
    let mut p = Path::new();
    let t0 = p.t0;
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // Samples every 100 ms; one 40 kB keyframe left in the 100 ms before the cut, on top of
    // a steady 800 kbit/s. Over 100 ms that looks like 4 Mbit/s; over the window it is not.
    let mut drained = 0;
    p.e.update(at(0), sample(30, 0, 0, 0));
    for k in 1..=4 {
        drained += 10_000;
        p.e.update(at(k * 100), sample(30, drained, 0, 0));
    }
    drained += 10_000 + 40_000;
    p.e.update(at(500), sample(180, drained, 0, 0));
    let cut = p.e.bps().unwrap();
    // 80 kB over the last 400 ms is 1.6 Mbit/s, and the queue grew by 150 ms over those
    // 400 ms: the cut starts from that, not from 4 Mbit/s over 100 ms (nor from a queue
    // grown by 150 ms in 100 ms).
    assert!(near(cut, cut_after(1.6e6, 150.0, 400.0)), "{cut}");
}

#[test]
fn bytes_the_transport_lost_are_not_counted_as_delivered() {
    let mut p = Path::new();
    let sample = |sent: u64, lost: u64, rtt: u64| TransportStats {
        sent_bytes: Some(sent),
        lost_bytes: Some(lost),
        ..super::delay_tests::sample(rtt, sent, 0, 0)
    };
    let t0 = p.t0;
    p.e.update(t0, sample(0, 0, 30));
    // 2 Mbit/s sent into a link whose queue overflowed: half of it was lost, and the
    // queue grew by 200 ms besides.
    p.e.update(
        t0 + Duration::from_millis(500),
        sample(125_000, 62_500, 230),
    );
    let cut = p.e.bps().unwrap();
    assert!(near(cut, cut_after(1e6, 200.0, 500.0)), "{cut}");
}

#[test]
fn what_the_transport_buffered_but_did_not_send_is_not_taken_for_delivered() {
    let mut p = Path::new();
    let sample = |drained: u64, sent: u64, rtt: u64| TransportStats {
        sent_bytes: Some(sent),
        ..super::delay_tests::sample(rtt, drained, 0, 0)
    };
    let t0 = p.t0;
    p.e.update(t0, sample(0, 0, 30));
    // QUIC took 2 Mbit/s from the queue into its buffers but sent only 1 Mbit/s, and the
    // path's queue grew: the cut is below what was sent, not what was handed over.
    p.e.update(
        t0 + Duration::from_millis(500),
        sample(125_000, 62_500, 200),
    );
    let cut = p.e.bps().unwrap();
    assert!(near(cut, cut_after(1e6, 170.0, 500.0)), "{cut}");
}

#[test]
fn a_queue_that_is_still_draining_after_a_cut_is_not_cut_again() {
    let mut p = Path::new();
    p.step(1_000, 30, 0, 0);
    p.step(1_000, 200, 0, 0);
    let first = p.e.bps().unwrap();
    // Half a second later the queue of before the cut is still there, shrinking.
    p.step(850, 120, 0, 0);
    assert_eq!(
        p.e.bps(),
        Some(first),
        "one cut per drain, not one per sample"
    );
    // A second later the delay is still there: the cut was not enough.
    p.step(850, 110, 0, 0);
    p.step(850, 110, 0, 0);
    assert!(p.e.bps().unwrap() < first);
}

#[test]
fn a_queue_still_growing_after_a_cut_is_cut_again_at_once() {
    let mut p = Path::new();
    p.step(1_000, 30, 0, 0);
    p.step(1_000, 200, 0, 0);
    let first = p.e.bps().unwrap();
    // Half a second later the queue has grown by another 100 ms: this is not the queue of
    // before the cut draining, the cut was not deep enough (what went out was more than
    // the link carried: the start of the queue was in the buffers, not yet on the wire).
    p.step(850, 300, 0, 0);
    let second = p.e.bps().unwrap();
    assert!(second < first, "{second} after {first}");
    assert_eq!(p.e.flushes(), 2);
}

#[test]
fn a_backlog_the_pacer_made_is_not_taken_for_the_path() {
    let mut p = Path::new();
    p.step(1_000, 30, 0, 0);
    p.step(1_000, 200, 0, 0);
    let cut = p.e.bps().unwrap();
    // The pacer holds video back and our queue backs up, so video ages there and lags; the
    // path is empty again. What drained is the pacer's rate and the lag is the pacer's
    // doing: neither says anything about the path, so the estimate never falls for them,
    // and after the calm hold it grows as on any calm path (a try of a better rate).
    for k in 0..20 {
        if k % 3 == 0 {
            p.e.lag();
        }
        let pace = p.e.pace_bps().unwrap();
        p.step(pace / 1000, 30, 100_000, 1 + p.t);
        assert!(p.e.bps().unwrap() >= cut, "step {k}");
    }
    assert!(p.e.bps().unwrap() > cut);
    // Without the pacer, the same backlog is the path's own limit.
    let mut q = Path::new();
    q.step(1_000, 30, 0, 0);
    q.step(600, 30, 100_000, 0);
    assert_eq!(q.e.bps(), Some(600_000));
}

#[test]
fn a_calm_ceiling_grows_gradually_and_a_failed_try_doubles_the_hold() {
    let mut p = Path::new();
    p.step(1_000, 30, 0, 0);
    p.step(1_000, 200, 0, 0);
    let cut = p.e.bps().unwrap();
    // Calm for most of the hold (5 s): the ceiling stays.
    for _ in 0..9 {
        p.step(cut / 1000, 30, 0, 0);
    }
    assert_eq!(p.e.bps(), Some(cut));
    // Then it grows by about 8 % a second, not all at once.
    p.step(cut / 1000, 30, 0, 0);
    let grown = p.e.bps().unwrap();
    assert!(grown > cut && grown < cut * 105 / 100, "{cut} → {grown}");
    for _ in 0..10 {
        p.step(cut / 1000, 30, 0, 0);
    }
    let grown = p.e.bps().unwrap();
    assert!(
        grown > cut * 130 / 100 && grown < cut * 160 / 100,
        "{cut} → {grown}"
    );
    // The better layer it let in fills the path's queue again: cut, and the next try
    // waits twice as long.
    p.step(1_100, 200, 0, 0);
    assert!(p.e.bps().unwrap() < 1_000_000);
    assert_eq!(p.e.hold(), Duration::from_secs(10));
}

#[test]
fn a_longer_route_is_learnt_and_not_taken_for_a_queue() {
    let mut p = Path::new();
    p.step(500, 30, 0, 0);
    // The route changes: 120 ms from now on, with an empty queue. The first samples look
    // like a queue (one cut), and after two windows of the shortest round trip the new
    // route is the baseline.
    for _ in 0..60 {
        p.step(500, 120, 0, 0);
    }
    let settled = p.e.bps();
    for _ in 0..40 {
        p.step(500, 120, 0, 0);
    }
    assert!(p.e.bps().is_none_or(|b| b >= settled.unwrap_or(0)));
    assert!(
        p.e.bps().is_none_or(|b| b as f64 > MIN_BPS),
        "{:?}",
        p.e.bps()
    );
}

#[test]
fn samples_every_tenth_of_a_second_do_not_ratchet_a_paced_backlog_down_faster() {
    // A WebSocket-like subscriber: no pacer count, so a backlog always counts as the path's
    // limit, and what drains is what the pacer let out (85 % of the estimate). Each new
    // limit is a step down; they come at most once per rate window, not once per sample.
    let mut e = Estimator::default();
    let t0 = Instant::now();
    let ws = |drained: u64| TransportStats {
        drained_bytes: Some(drained),
        queued_bytes: Some(64 * 1024),
        ..TransportStats::default()
    };
    let mut drained = 0u64;
    e.update(t0, ws(0));
    let mut first = None;
    for k in 1..=20u64 {
        let bps = e.pace_bps().unwrap_or(2_000_000);
        drained += bps / 8 / 10;
        e.update(t0 + Duration::from_millis(k * 100), ws(drained));
        first = first.or(e.bps());
    }
    let (first, last) = (first.unwrap(), e.bps().unwrap());
    // Two seconds: at most five steps of 0.85 (0.44), where one per sample would be 0.04.
    assert!(
        last as f64 >= first as f64 * 0.85f64.powi(5) * 0.95,
        "{first} -> {last}"
    );
    assert!(
        last < first,
        "a paced backlog still counts as a limit: {first} -> {last}"
    );
}

#[test]
fn each_delay_cut_flushes_the_transport_once() {
    let mut p = Path::new();
    p.step(900, 30, 0, 0);
    // The round trip grows: the transport holds video handed over at the old rate, and
    // should drop it.
    p.step(1_000, 180, 0, 0);
    assert_eq!(p.e.flushes(), 1);
    // The same queue still draining half a second later is not a second flush.
    p.step(700, 150, 0, 0);
    assert_eq!(p.e.flushes(), 1);
    // Later the queue builds again while video is paced (a try of a better layer): a new
    // cut, and a new flush.
    for _ in 0..4 {
        p.step(700, 32, 0, 0);
    }
    let before = p.e.bps().unwrap();
    assert!(p.e.pace_bps().is_some());
    p.step(800, 150, 0, 0);
    assert!(p.e.bps().unwrap() < before, "cut");
    assert_eq!(p.e.flushes(), 2);
}

#[test]
fn a_lag_cut_does_not_flush_the_transport() {
    let mut p = Path::new();
    p.step(900, 30, 0, 0);
    p.e.lag();
    p.step(900, 30, 0, 0);
    assert!(p.e.bps().is_some());
    assert_eq!(p.e.flushes(), 0);
}

#[test]
fn losses_declared_just_after_a_cut_for_delay_are_the_same_overflow_not_a_new_limit() {
    let mut p = Path::new();
    let t0 = p.t0;
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let lossy = |rtt: u64, drained: u64, sent: u64, lost: u64| TransportStats {
        sent_packets: Some(sent),
        lost_packets: Some(lost),
        ..sample(rtt, drained, 0, 0)
    };
    p.e.update(at(0), lossy(30, 0, 0, 0));
    p.e.update(at(500), lossy(30, 62_500, 100, 0));
    // The bottleneck's queue grew: a cut for delay.
    p.e.update(at(1_000), lossy(200, 125_000, 200, 0));
    let first = p.e.bps().unwrap();
    // Half a second later QUIC declares what that queue's overflow lost (15 %): packets
    // sent before the cut, not evidence about the rate after it.
    p.e.update(at(1_500), lossy(120, 180_000, 300, 15));
    assert_eq!(p.e.bps(), Some(first));
}

#[test]
fn a_queue_only_the_receiver_sees_cuts_like_a_grown_round_trip_and_a_stale_report_does_not() {
    // A WebSocket through a proxy that ends TCP: the server's round trip stays at 1 ms
    // whatever waits past the proxy, so only the receiver's report shows the queue.
    let mut p = Path::new();
    p.step(900, 1, 0, 0);
    p.step(900, 1, 0, 0);
    // A report under the threshold (a little jitter) is no queue.
    p.e.receiver_delay(Duration::from_millis(25));
    p.step(900, 1, 0, 0);
    assert_eq!(p.e.pace_bps(), None, "nothing limits the subscriber");
    assert_eq!(p.e.flushes(), 0);
    // Several reports between two samples: the largest counts.
    p.e.receiver_delay(Duration::from_millis(180));
    p.e.receiver_delay(Duration::from_millis(20));
    p.step(1_000, 1, 0, 0);
    let cut = p.e.bps().unwrap();
    // The queue grew from 25 to 180 ms in that half second.
    assert!(near(cut, cut_after(1e6, 155.0, 500.0)), "{cut}");
    assert_eq!(
        p.e.flushes(),
        1,
        "the video buffered at the old rate is dropped"
    );
    // A report is used once: the samples after it, with no new report, are calm and do
    // not cut again.
    for _ in 0..4 {
        p.step(600, 1, 0, 0);
    }
    assert_eq!(p.e.bps(), Some(cut));
    assert_eq!(p.e.flushes(), 1);
}
