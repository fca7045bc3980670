//! Token-bucket rate limits keyed by client address or account.

use std::{collections::HashMap, time::Instant};

use parking_lot::Mutex;

/// A set of token buckets of one policy (e.g. "sign-ups per minute").
pub struct RateLimiter {
    per_minute: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1) as f64,
            burst: per_minute.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key` at `now`. On refusal, returns seconds until one is free.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        let mut map = self.buckets.lock();
        if map.len() > 100_000 {
            // Bound memory under a spray of keys: forget buckets that have refilled.
            let full = self.burst;
            let rate = self.per_minute / 60.0;
            map.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < full);
        }
        let b = map.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let rate = self.per_minute / 60.0;
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refuses_past_the_burst_and_refills_over_time() {
        let rl = RateLimiter::per_minute(6);
        let t0 = Instant::now();
        for _ in 0..6 {
            rl.check("ip", t0).unwrap();
        }
        let wait = rl.check("ip", t0).unwrap_err();
        assert!((1..=10).contains(&wait), "{wait}");
        rl.check("other", t0).unwrap();
        rl.check("ip", t0 + Duration::from_secs(10)).unwrap();
        assert!(rl.check("ip", t0 + Duration::from_secs(10)).is_err());
    }
}
