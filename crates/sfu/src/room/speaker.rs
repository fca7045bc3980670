//! The active speaker: each admitted member's smoothed audio level, re-evaluated at most
//! every [`super::RoomConfig::speaker_interval`], with hysteresis so it does not flap.

use std::time::{Duration, Instant};

use quicmeet_proto::ServerMessage;

use super::state::Member;
use super::timer::Timer;
use super::Room;

const SPEAKER_THRESHOLD: f32 = 127.0 - 50.0; // louder than -50 dBov
const SPEAKER_HYSTERESIS: f32 = 3.0;
const SPEAKER_SILENCE_AFTER: Duration = Duration::from_millis(300);
const SPEAKER_ALPHA: f32 = 0.2;

/// Folds one audio frame's level (0 loudest .. 127 silent) into the member's loudness.
pub(super) fn hear(m: &mut Member, now: Instant, level: u8) {
    let loud = f32::from(127 - level.min(127));
    m.loudness += SPEAKER_ALPHA * (loud - m.loudness);
    m.last_audio = Some(now);
}

impl Room {
    /// Someone is audible: make sure the speaker is evaluated on time.
    pub(super) fn arm_speaker(&mut self) {
        if self.timers.get(Timer::Speaker).is_none() {
            self.timers.set(Timer::Speaker, self.next_speaker_eval);
        }
    }

    pub(super) fn evaluate_speaker(&mut self, now: Instant) {
        self.next_speaker_eval = now + self.config.speaker_interval;
        let mut best: Option<(u32, f32)> = None;
        let mut current_loudness = 0.0;
        let mut audible = false;
        for m in self.members.values_mut() {
            if m.last_audio
                .is_none_or(|t| now.saturating_duration_since(t) > SPEAKER_SILENCE_AFTER)
            {
                m.loudness = 0.0;
            }
            audible |= m.loudness > 0.0;
            if Some(m.pid) == self.speaker {
                current_loudness = m.loudness;
            }
            if m.admitted()
                && m.loudness >= SPEAKER_THRESHOLD
                && best.is_none_or(|(_, l)| m.loudness > l)
            {
                best = Some((m.pid, m.loudness));
            }
        }
        // Nobody audible: nothing can change until audio arrives, so no wake-up.
        if audible {
            self.timers.set(Timer::Speaker, self.next_speaker_eval);
        } else {
            self.timers.stop(Timer::Speaker);
        }
        if let Some((pid, loud)) = best {
            if Some(pid) != self.speaker
                && (self.speaker.is_none() || loud > current_loudness + SPEAKER_HYSTERESIS)
            {
                self.speaker = Some(pid);
                let camera =
                    quicmeet_proto::track::track_id(pid, quicmeet_proto::track::Slot::Camera);
                self.bwe
                    .handle_input(now, crate::bwe::Input::Speaker(camera));
                self.broadcast(
                    None,
                    ServerMessage::ActiveSpeaker {
                        participant_id: pid,
                    },
                );
            }
        }
    }
}
