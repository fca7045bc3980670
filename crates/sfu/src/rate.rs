//! Token buckets driven by the caller's clock.

use std::time::Instant;

/// A token bucket: `rate` tokens per second refill up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(now: Instant, rate_per_sec: f64, burst: f64) -> Self {
        TokenBucket {
            rate: rate_per_sec,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        if dt > 0.0 {
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
            self.last = now;
        }
    }

    /// Take `amount` tokens if available.
    pub fn try_take(&mut self, now: Instant, amount: f64) -> bool {
        self.refill(now);
        if self.tokens >= amount {
            self.tokens -= amount;
            true
        } else {
            false
        }
    }

    /// Would `amount` tokens be available now (without taking them)?
    pub fn has(&mut self, now: Instant, amount: f64) -> bool {
        self.refill(now);
        self.tokens >= amount
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(t0, 5.0, 10.0);
        assert!((0..10).all(|_| b.try_take(t0, 1.0)));
        assert!(!b.try_take(t0, 1.0));
        let t1 = t0 + Duration::from_millis(200);
        assert!(b.try_take(t1, 1.0));
        assert!(!b.try_take(t1, 1.0));
        // Refill is capped at the burst.
        let t2 = t1 + Duration::from_secs(60);
        assert!((0..10).all(|_| b.try_take(t2, 1.0)));
        assert!(!b.has(t2, 1.0));
    }
}
