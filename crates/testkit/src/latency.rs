//! Latency histograms over microseconds, on HdrHistogram: a percentile is the upper edge of
//! its bucket (so it never understates), capped at the exact largest sample; count, mean and
//! maximum are exact.
//!
//! [`Hist::new`] keeps two significant digits (buckets at most 1 % wide) and grows with the
//! largest value, so a histogram of a few hundred milliseconds costs a few KiB: the load
//! tester keeps one per received stream. [`Hist::precise`] keeps three (0.1 %) for tests
//! that compare small differences.

use hdrhistogram::Histogram;

/// Summary of a distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
}

/// A histogram of microsecond values.
#[derive(Debug, Clone)]
pub struct Hist {
    h: Histogram<u32>,
    sum: u64,
    max: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Hist::new()
    }
}

impl Hist {
    /// Two significant digits.
    pub fn new() -> Self {
        Hist::with_digits(2)
    }

    /// Three significant digits.
    pub fn precise() -> Self {
        Hist::with_digits(3)
    }

    fn with_digits(sigfig: u8) -> Self {
        Hist {
            // Valid for 0..=5 significant digits; auto-resizing from 2.
            h: Histogram::new(sigfig).unwrap_or_else(|_| unreachable!("sigfig {sigfig} is valid")),
            sum: 0,
            max: 0,
        }
    }

    /// Record one value (µs).
    pub fn record(&mut self, v: u64) {
        if self.h.record(v).is_err() {
            // Beyond what auto-resizing tracks (~2^62): count it at the top.
            self.h.saturating_record(v);
        }
        self.sum = self.sum.saturating_add(v);
        self.max = self.max.max(v);
    }

    /// Record a signed difference of two clocks; negative values count as 0.
    pub fn record_signed(&mut self, v: i64) {
        self.record(v.max(0) as u64);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.h.len()
    }

    /// Samples above `v` (µs), to the histogram's resolution: values in the bucket that holds
    /// `v` count as not above it.
    pub fn count_above(&self, v: u64) -> u64 {
        if v >= self.max {
            return 0;
        }
        let from = self.h.highest_equivalent(v).saturating_add(1);
        self.h.count_between(from, self.max)
    }

    /// Add another histogram's samples.
    pub fn merge(&mut self, other: &Hist) {
        if other.count() == 0 {
            return;
        }
        if self.h.add(&other.h).is_err() {
            // Only when the other tracks values this one cannot grow to: add them one bucket
            // at a time, clamped.
            for v in other.h.iter_recorded() {
                self.h.saturating_record_n(
                    v.value_iterated_to(),
                    v.count_since_last_iteration().min(u64::from(u32::MAX)) as u32,
                );
            }
        }
        self.sum = self.sum.saturating_add(other.sum);
        self.max = self.max.max(other.max);
    }

    /// Forget every sample.
    pub fn reset(&mut self) {
        self.h.reset();
        self.sum = 0;
        self.max = 0;
    }

    /// The value at quantile `q` (0..=1); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count() == 0 {
            return 0;
        }
        self.h.value_at_quantile(q).min(self.max)
    }

    /// Count, mean and percentiles.
    pub fn summary(&self) -> Summary {
        let count = self.count();
        Summary {
            count,
            mean: if count == 0 {
                0.0
            } else {
                self.sum as f64 / count as f64
            },
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            max: self.max,
        }
    }

    /// `(value_us, cumulative fraction)` points for a CDF chart, one per non-empty bucket.
    pub fn cdf(&self) -> Vec<(u64, f64)> {
        let total = self.count();
        if total == 0 {
            return vec![];
        }
        let mut seen = 0u64;
        self.h
            .iter_recorded()
            .map(|v| {
                seen += v.count_since_last_iteration();
                (
                    v.value_iterated_to().min(self.max),
                    seen as f64 / total as f64,
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_sample_are_within_one_percent_above() {
        let mut h = Hist::new();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let s = h.summary();
        assert_eq!(s.count, 10_000);
        assert_eq!(s.max, 10_000);
        assert!((s.mean - 5_000.5).abs() < 1e-9, "{s:?}");
        for (got, exact) in [(s.p50, 5_000u64), (s.p90, 9_000), (s.p99, 9_900)] {
            assert!(
                got >= exact && got as f64 <= exact as f64 * 1.01,
                "{got} vs {exact}"
            );
        }
        let mut p = Hist::precise();
        for v in 1..=10_000u64 {
            p.record(v);
        }
        let ps = p.summary();
        assert!(ps.p50 >= 5_000 && ps.p50 <= 5_005, "{ps:?}");
    }

    #[test]
    fn count_above_counts_the_late_samples() {
        let mut h = Hist::new();
        for v in [10_000u64, 149_000, 151_000, 200_000, 2_000_000] {
            h.record(v);
        }
        assert_eq!(h.count_above(150_000), 3);
        assert_eq!(h.count_above(0), 5);
        assert_eq!(h.count_above(2_000_000), 0);
        assert_eq!(h.count_above(5_000_000), 0);
        assert_eq!(Hist::new().count_above(1), 0);
    }

    #[test]
    fn merge_reset_cdf_and_extremes() {
        let (mut a, mut b) = (Hist::new(), Hist::new());
        a.record(100);
        b.record(300_000);
        b.record_signed(-5);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile(0.0), 0);
        assert_eq!(a.summary().max, 300_000);
        assert_eq!(a.quantile(1.0), 300_000);
        let cdf = a.cdf();
        assert_eq!(cdf.len(), 3);
        assert_eq!(cdf.last().unwrap(), &(300_000, 1.0));
        assert!(cdf.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
        a.record(u64::MAX);
        assert_eq!(a.count(), 4);
        a.reset();
        assert_eq!(a.summary(), Summary::default());
        assert!(a.cdf().is_empty());
    }
}
