//! Track ids: `track_id = participant_id * 16 + slot`.
//!
//! The server assigns participant ids (≥ 1, never reused within a room), so a track id tells
//! who owns it without any lookup, and the SFU can drop frames a participant sends for
//! somebody else's track.

use crate::frame::MediaKind;

/// Number of slot values reserved per participant.
pub const SLOTS_PER_PARTICIPANT: u32 = 16;

/// What a track is, within its participant. Values 4..=15 are reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Slot {
    /// Microphone (audio).
    Mic = 0,
    /// Camera (video).
    Camera = 1,
    /// Screen share picture (screen).
    ScreenVideo = 2,
    /// Screen share sound (audio).
    ScreenAudio = 3,
}

impl Slot {
    /// Parse a slot number; reserved values give `None`.
    pub fn from_u8(v: u8) -> Option<Slot> {
        match v {
            0 => Some(Slot::Mic),
            1 => Some(Slot::Camera),
            2 => Some(Slot::ScreenVideo),
            3 => Some(Slot::ScreenAudio),
            _ => None,
        }
    }

    /// The media kind a track in this slot carries.
    pub fn kind(self) -> MediaKind {
        match self {
            Slot::Mic | Slot::ScreenAudio => MediaKind::Audio,
            Slot::Camera => MediaKind::Video,
            Slot::ScreenVideo => MediaKind::Screen,
        }
    }
}

/// `participant_id * 16 + slot`, or `None` if it would overflow a `u32`.
pub fn track_id(participant_id: u32, slot: Slot) -> Option<u32> {
    participant_id
        .checked_mul(SLOTS_PER_PARTICIPANT)?
        .checked_add(slot as u32)
}

/// The participant that owns a track.
pub fn participant_of(track_id: u32) -> u32 {
    track_id / SLOTS_PER_PARTICIPANT
}

/// The slot of a track, `None` for reserved slot numbers.
pub fn slot_of(track_id: u32) -> Option<Slot> {
    Slot::from_u8((track_id % SLOTS_PER_PARTICIPANT) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_and_split() {
        let t = track_id(3, Slot::ScreenVideo).unwrap();
        assert_eq!(t, 50);
        assert_eq!(participant_of(t), 3);
        assert_eq!(slot_of(t), Some(Slot::ScreenVideo));
        assert_eq!(slot_of(3 * 16 + 9), None);
        assert_eq!(track_id(u32::MAX / 8, Slot::Mic), None);
        assert_eq!(Slot::ScreenAudio.kind(), MediaKind::Audio);
    }
}
