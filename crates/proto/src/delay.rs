//! The measure of queueing behind `receiver_report` (a receiver's downlink) and
//! `uplink_report` (the server's view of a publisher's uplink), PROTOCOL.md §5.6.
//!
//! A queue at the bottleneck delays every packet behind it. The server sees that in its
//! round trip only when it talks to the receiver end to end; a proxy or load balancer that
//! ends the TCP connection answers at once, and the queue past it is invisible to the
//! server. The receiver sees it in its audio: a frame's transit (arrival − capture, on two
//! clocks, so known only up to a constant) grows by the time it waited.
//!
//! Per remote audio track the meter keeps the least transit of the last
//! [`BASE_WINDOW`] (the path with an empty queue) and, per report interval, the least
//! transit of the interval: a standing queue raises every frame of the interval, while a
//! moment's stall of the receiver's own thread (frames read late, then at once) does not
//! raise the least of them. The report is the least excess over the tracks: a queue on the
//! receiver's downlink delays all of them, a publisher's congested uplink only its own.
//!
//! The server runs the same measure on each publisher's own audio as it arrives: there the
//! queue is the publisher's uplink, which a browser cannot see itself when a proxy, or its
//! kernel's TCP send buffer, takes the data at once.

use std::collections::HashMap;

/// How long the least transit is remembered: long enough to have seen the path empty,
/// short enough to follow a route change or a clock's drift.
pub const BASE_WINDOW_SECS: u64 = 10;
/// How often a receiver reports (and the interval each report covers), microseconds.
pub const REPORT_INTERVAL_US: u64 = 200_000;
/// How often the server reports a publisher's uplink (`uplink_report`), microseconds: half
/// the receivers' interval, since the least transit of an interval lags a growing queue by up
/// to the interval, and a publisher that climbed past its uplink must hear of it while the
/// queue it fills is still short of the audio's budget (five Opus frames still let one late
/// read not count as a queue).
pub const UPLINK_REPORT_INTERVAL_US: u64 = 100_000;
/// Frames a track needs in an interval for its least transit to count (Opus sends 10 in
/// 200 ms; one or two frames say little about a standing queue).
const MIN_FRAMES: u32 = 3;

#[derive(Debug, Clone, Copy)]
struct Track {
    /// Least transit per second of arrival, the last [`BASE_WINDOW_SECS`] seconds.
    base: [(u64, i64); BASE_WINDOW_SECS as usize],
    /// Least transit in the current interval, and how many frames it saw.
    interval_min: i64,
    frames: u32,
    /// Arrival of the last frame, microseconds.
    last_us: u64,
}

/// Queueing delay of one receiver's downlink, measured from its remote audio.
#[derive(Debug, Default, Clone)]
pub struct DelayMeter {
    tracks: HashMap<u32, Track>,
}

impl DelayMeter {
    /// An audio frame of `track_id` captured at `capture_us` (the publisher's clock) arrived
    /// at `received_us` (this receiver's clock).
    pub fn on_audio(&mut self, track_id: u32, capture_us: u64, received_us: u64) {
        let transit = received_us as i64 - capture_us as i64;
        let sec = received_us / 1_000_000;
        let t = self.tracks.entry(track_id).or_insert(Track {
            base: [(u64::MAX, i64::MAX); BASE_WINDOW_SECS as usize],
            interval_min: i64::MAX,
            frames: 0,
            last_us: received_us,
        });
        t.last_us = received_us;
        t.interval_min = t.interval_min.min(transit);
        t.frames += 1;
        let slot = &mut t.base[(sec % BASE_WINDOW_SECS) as usize];
        if slot.0 != sec {
            *slot = (sec, transit);
        } else {
            slot.1 = slot.1.min(transit);
        }
    }

    /// Ends the interval at `now_us` and gives its queueing delay in milliseconds: `None`
    /// when no track had enough frames in it to say.
    pub fn report(&mut self, now_us: u64) -> Option<u32> {
        let sec = now_us / 1_000_000;
        let mut least: Option<i64> = None;
        self.tracks
            .retain(|_, t| now_us.saturating_sub(t.last_us) < BASE_WINDOW_SECS * 1_000_000);
        for t in self.tracks.values_mut() {
            if t.frames >= MIN_FRAMES {
                let base = t
                    .base
                    .iter()
                    .filter(|(s, _)| *s != u64::MAX && sec.saturating_sub(*s) < BASE_WINDOW_SECS)
                    .map(|(_, m)| *m)
                    .min()
                    .unwrap_or(t.interval_min);
                let excess = t.interval_min.saturating_sub(base).max(0);
                least = Some(least.map_or(excess, |l| l.min(excess)));
            }
            t.interval_min = i64::MAX;
            t.frames = 0;
        }
        least.map(|us| u32::try_from(us / 1000).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds 200 ms of 20 ms audio frames of `track` from `from_us`, each waiting
    /// `extra_us` on top of a 30 ms path.
    fn interval(m: &mut DelayMeter, track: u32, from_us: u64, extra_us: impl Fn(u64) -> u64) {
        for k in 0..10 {
            let capture = from_us + k * 20_000;
            m.on_audio(track, capture, capture + 30_000 + extra_us(k));
        }
    }

    #[test]
    fn an_empty_path_reports_no_queue_and_a_standing_queue_reports_its_depth() {
        let mut m = DelayMeter::default();
        let mut t = 1_000_000_000;
        for _ in 0..5 {
            interval(&mut m, 16, t, |_| 0);
            t += 200_000;
            assert_eq!(m.report(t), Some(0));
        }
        // Video fills the bottleneck: every audio frame now waits 150–170 ms.
        interval(&mut m, 16, t, |k| 150_000 + (k % 3) * 10_000);
        t += 200_000;
        assert_eq!(m.report(t), Some(150));
    }

    #[test]
    fn a_stall_of_the_receiver_itself_is_not_a_queue() {
        let mut m = DelayMeter::default();
        let mut t = 5_000_000_000;
        interval(&mut m, 16, t, |_| 0);
        t += 200_000;
        m.report(t);
        // The receiving thread was busy for 120 ms: the first frames of the interval are
        // read late, the rest on time.
        interval(&mut m, 16, t, |k| 120_000u64.saturating_sub(k * 20_000));
        t += 200_000;
        assert_eq!(m.report(t), Some(0));
    }

    #[test]
    fn a_queue_on_one_publishers_uplink_is_not_the_receivers() {
        let mut m = DelayMeter::default();
        let mut t = 7_000_000_000;
        for _ in 0..3 {
            interval(&mut m, 16, t, |_| 0);
            interval(&mut m, 32, t, |_| 0);
            t += 200_000;
            m.report(t);
        }
        // Only track 32's frames are late: its publisher's uplink is congested.
        interval(&mut m, 16, t, |_| 0);
        interval(&mut m, 32, t, |_| 300_000);
        t += 200_000;
        assert_eq!(m.report(t), Some(0));
        // Both late: the queue is on this receiver's downlink.
        interval(&mut m, 16, t, |_| 90_000);
        interval(&mut m, 32, t, |_| 300_000);
        t += 200_000;
        assert_eq!(m.report(t), Some(90));
    }

    #[test]
    fn too_few_frames_say_nothing_and_a_silent_track_is_forgotten() {
        let mut m = DelayMeter::default();
        let t = 9_000_000_000;
        m.on_audio(16, t, t + 30_000);
        m.on_audio(16, t + 20_000, t + 50_000);
        assert_eq!(m.report(t + 200_000), None);
        assert_eq!(m.report(t + 200_000 + BASE_WINDOW_SECS * 1_000_000), None);
        assert!(m.tracks.is_empty());
    }

    #[test]
    fn the_base_follows_a_path_that_got_longer() {
        let mut m = DelayMeter::default();
        let mut t = 11_000_000_000;
        interval(&mut m, 16, t, |_| 0);
        t += 200_000;
        m.report(t);
        // The route changed: 60 ms more for good. It reads as a queue until the old
        // minimum has left the window, then as the new normal.
        let mut last = None;
        for _ in 0..(BASE_WINDOW_SECS * 5 + 10) {
            interval(&mut m, 16, t, |_| 60_000);
            t += 200_000;
            last = m.report(t);
        }
        assert_eq!(last, Some(0));
    }
}
