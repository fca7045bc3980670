//! Latency histograms of a run, in microseconds: HdrHistogram through `quicmeet-testkit`
//! (two significant digits, so a percentile is at most 1 % above the exact one; count, mean
//! and maximum are exact).
//!
//! [`Hist`] is owned by one task (per stream); [`SharedHist`] is recorded into by every
//! participant task, for the run-wide distributions and the per-second windows of the time
//! series. Its lock is held for one bucket increment only.

use parking_lot::Mutex;

pub use quicmeet_testkit::latency::{Hist, Summary};

/// A histogram shared by many tasks.
#[derive(Debug, Default)]
pub struct SharedHist(Mutex<Hist>);

impl SharedHist {
    /// Record one value (µs).
    pub fn record(&self, v: u64) {
        self.0.lock().record(v);
    }

    /// A copy of the samples so far.
    pub fn snapshot(&self) -> Hist {
        self.0.lock().clone()
    }

    /// The samples so far, leaving the histogram empty (the next per-second window).
    pub fn take(&self) -> Hist {
        std::mem::take(&mut *self.0.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_owned_histograms_agree_and_take_starts_a_new_window() {
        let mut h = Hist::default();
        let s = SharedHist::default();
        for v in 1..=10_000u64 {
            h.record(v);
            s.record(v);
        }
        let sum = h.summary();
        assert_eq!(sum.count, 10_000);
        assert!((5_000..=5_050).contains(&sum.p50), "{sum:?}");
        assert!((9_900..=10_000).contains(&sum.p99), "{sum:?}");
        assert_eq!(sum.max, 10_000);
        assert_eq!(s.snapshot().summary(), sum);
        assert_eq!(s.take().summary(), sum);
        assert_eq!(s.snapshot().count(), 0);
    }
}
