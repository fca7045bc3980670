//! Latency histograms: log-linear buckets (about 1.6 % relative precision) over microseconds.
//!
//! [`Hist`] is a plain histogram owned by one task (per stream); [`AtomicHist`] is shared by
//! every participant task and recorded into without a lock (one relaxed `fetch_add`), used for
//! the run-wide distribution and for the per-second windows of the time series.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Mantissa bits: 64 sub-buckets per power of two.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Values up to 2^40 µs (12 days) are kept exactly enough; larger values land in the last bucket.
const MAX_EXP: u32 = 40;
/// Number of buckets.
pub const BUCKETS: usize = ((MAX_EXP - SUB_BITS + 2) as usize) * SUB as usize;

/// Bucket index of a value.
fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    if exp > MAX_EXP {
        return BUCKETS - 1;
    }
    let shift = exp - SUB_BITS;
    let mant = (v >> shift) - SUB; // 0..SUB
    ((shift as u64 + 1) * SUB + mant) as usize
}

/// The largest value that falls in bucket `i` (reported as the bucket's value, so percentiles
/// never understate).
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let mant = i % SUB;
    ((SUB + mant + 1) << shift) - 1
}

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

/// A histogram owned by one task.
#[derive(Debug, Clone, Default)]
pub struct Hist {
    counts: Vec<u32>,
    count: u64,
    sum: u64,
    max: u64,
}

impl Hist {
    /// Record one value (µs).
    pub fn record(&mut self, v: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        let i = index(v);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
        self.max = self.max.max(v);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Add another histogram's samples.
    pub fn merge(&mut self, other: &Hist) {
        if other.count == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.saturating_add(*b);
        }
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..=1).
    pub fn quantile(&self, q: f64) -> u64 {
        quantile(self.counts.iter().map(|c| u64::from(*c)), self.count, q).min(self.max)
    }

    /// Count, mean and percentiles.
    pub fn summary(&self) -> Summary {
        Summary {
            count: self.count,
            mean: if self.count == 0 {
                0.0
            } else {
                self.sum as f64 / self.count as f64
            },
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            max: self.max,
        }
    }

    /// `(value_us, cumulative fraction)` points for a CDF chart, one per non-empty bucket.
    pub fn cdf(&self) -> Vec<(u64, f64)> {
        let mut out = vec![];
        if self.count == 0 {
            return out;
        }
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            if *c > 0 {
                seen += u64::from(*c);
                out.push((upper(i).min(self.max), seen as f64 / self.count as f64));
            }
        }
        out
    }
}

fn quantile(counts: impl Iterator<Item = u64>, total: u64, q: f64) -> u64 {
    if total == 0 {
        return 0;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, c) in counts.enumerate() {
        seen += c;
        if seen >= rank {
            return upper(i);
        }
    }
    upper(BUCKETS - 1)
}

/// A histogram shared by many tasks.
#[derive(Debug)]
pub struct AtomicHist {
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for AtomicHist {
    fn default() -> Self {
        AtomicHist {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

impl AtomicHist {
    /// Record one value (µs).
    pub fn record(&self, v: u64) {
        self.counts[index(v)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
        self.max.fetch_max(v, Relaxed);
    }

    /// Copy into a plain histogram.
    pub fn snapshot(&self) -> Hist {
        self.collect(false)
    }

    /// Copy into a plain histogram and reset (samples recorded during the swap may land in
    /// either window, which is fine for a time series).
    pub fn take(&self) -> Hist {
        self.collect(true)
    }

    fn collect(&self, reset: bool) -> Hist {
        let load = |a: &AtomicU64| {
            if reset {
                a.swap(0, Relaxed)
            } else {
                a.load(Relaxed)
            }
        };
        let counts: Vec<u32> = self
            .counts
            .iter()
            .map(|c| load(c).min(u64::from(u32::MAX)) as u32)
            .collect();
        let count = counts.iter().map(|c| u64::from(*c)).sum();
        let sum = load(&self.sum);
        let max = load(&self.max);
        let _ = load(&self.count);
        Hist {
            counts,
            count,
            sum,
            max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_values_within_two_percent() {
        for v in [0u64, 1, 63, 64, 65, 100, 1_000, 12_345, 150_000, 9_999_999] {
            let u = upper(index(v));
            assert!(u >= v, "{v} -> {u}");
            assert!(u as f64 <= v as f64 * 1.02 + 1.0, "{v} -> {u}");
        }
        assert!(index(u64::MAX) == BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_a_uniform_sample() {
        let mut h = Hist::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let s = h.summary();
        assert_eq!(s.count, 10_000);
        assert!((4_900..=5_200).contains(&s.p50), "{s:?}");
        assert!((9_800..=10_000).contains(&s.p99), "{s:?}");
        assert_eq!(s.max, 10_000);
        let a = AtomicHist::default();
        for v in 1..=10_000u64 {
            a.record(v);
        }
        assert_eq!(a.take().summary(), s);
        assert_eq!(a.snapshot().count(), 0);
    }
}
