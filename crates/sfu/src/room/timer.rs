//! The room's timer table: one deadline per kind of scheduled work, so
//! [`super::Room::poll_timeout`] is the earliest of a handful of slots and the server can
//! sleep exactly until it (quinn-proto's `connection/timer.rs` has the same shape).

use std::time::Instant;

/// Work the room schedules for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// Re-evaluate the active speaker (armed while somebody's loudness is above zero).
    Speaker = 0,
    /// Send keyframe requests the rate limit held back.
    KeyframeRetry = 1,
}

const COUNT: usize = 2;

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TimerTable {
    at: [Option<Instant>; COUNT],
}

impl TimerTable {
    /// Arms `timer` at `at`, replacing an earlier setting.
    pub(super) fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer as usize] = Some(at);
    }

    /// Arms `timer` at `at` unless it is already armed earlier.
    pub(super) fn set_earlier(&mut self, timer: Timer, at: Instant) {
        let slot = &mut self.at[timer as usize];
        if slot.is_none_or(|t| at < t) {
            *slot = Some(at);
        }
    }

    pub(super) fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = None;
    }

    pub(super) fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer as usize]
    }

    /// True when `timer` is armed and due at `now`.
    pub(super) fn is_due(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|t| now >= t)
    }

    /// The earliest armed deadline.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn next_timeout_is_the_earliest_armed_slot() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next_timeout(), None);
        t.set(Timer::Speaker, t0 + Duration::from_millis(500));
        t.set_earlier(Timer::KeyframeRetry, t0 + Duration::from_millis(300));
        t.set_earlier(Timer::KeyframeRetry, t0 + Duration::from_millis(400));
        assert_eq!(t.next_timeout(), Some(t0 + Duration::from_millis(300)));
        assert!(t.is_due(Timer::KeyframeRetry, t0 + Duration::from_millis(300)));
        assert!(!t.is_due(Timer::Speaker, t0 + Duration::from_millis(300)));
        t.stop(Timer::KeyframeRetry);
        assert_eq!(t.next_timeout(), Some(t0 + Duration::from_millis(500)));
    }
}
