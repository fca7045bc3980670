//! Keyed rate limits (per client address, per account, per e-mail address), on `governor`'s
//! GCRA limiter: one timestamp per key, no background task, and a clock tests can drive.

use std::{num::NonZeroU32, time::Duration};

use governor::{
    clock::{Clock, DefaultClock},
    middleware::NoOpMiddleware,
    state::keyed::DashMapStateStore,
    Quota,
};

/// Keys kept before buckets that have refilled are forgotten, so a spray of addresses cannot
/// grow memory without bound.
const MAX_KEYS: usize = 100_000;

/// A set of token buckets of one policy (e.g. "sign-ups per minute"), one per key.
pub struct RateLimiter<C: Clock = DefaultClock> {
    inner: governor::RateLimiter<String, DashMapStateStore<String>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

impl RateLimiter<DefaultClock> {
    /// `n` attempts per minute, all of which may come at once.
    pub fn per_minute(n: u32) -> Self {
        Self::with_clock(n, Duration::from_secs(60), DefaultClock::default())
    }

    /// `n` attempts per hour, all of which may come at once.
    pub fn per_hour(n: u32) -> Self {
        Self::with_clock(n, Duration::from_secs(3600), DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    /// `n` attempts per `period` on `clock` (at least one).
    pub fn with_clock(n: u32, period: Duration, clock: C) -> Self {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period / n.get())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(n);
        Self {
            inner: governor::RateLimiter::dashmap_with_clock(quota, clock.clone()),
            clock,
        }
    }

    /// Takes one attempt for `key`. On refusal, returns whole seconds until one is free.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        if self.inner.len() > MAX_KEYS {
            self.inner.retain_recent();
        }
        self.inner.check_key(&key.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs_f64().ceil().max(1.0) as u64
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn refuses_past_the_burst_and_refills_over_time() {
        let clock = FakeRelativeClock::default();
        let rl = RateLimiter::with_clock(6, Duration::from_secs(60), clock.clone());
        for _ in 0..6 {
            rl.check("ip").unwrap();
        }
        let wait = rl.check("ip").unwrap_err();
        assert!((1..=10).contains(&wait), "{wait}");
        rl.check("other").unwrap();
        clock.advance(Duration::from_secs(10));
        rl.check("ip").unwrap();
        assert!(rl.check("ip").is_err());
    }

    #[test]
    fn an_hourly_limit_tells_how_long_to_wait() {
        let clock = FakeRelativeClock::default();
        let rl = RateLimiter::with_clock(3, Duration::from_secs(3600), clock.clone());
        for _ in 0..3 {
            rl.check("a@example.org").unwrap();
        }
        let wait = rl.check("a@example.org").unwrap_err();
        assert!((1100..=1200).contains(&wait), "{wait}");
        clock.advance(Duration::from_secs(1200));
        rl.check("a@example.org").unwrap();
    }
}
