//! Which `layer_changed` each received video stream belongs to.
//!
//! Over WebTransport, `layer_changed` comes on the control stream and the frames it announces
//! on their own streams, so the first frames of a layer may arrive before their announcement.
//! Those frames start the stream the announcement opens; they are not a stream of their own.
//! A stream is closed (and a new one started) only when a layer is visited anew: the
//! subscription moved away and came back, or the same layer was announced again because its
//! source changed (publisher-made layers, PROTOCOL §5.6, numbered anew from a keyframe).

use std::collections::HashMap;

/// Per track: the layer announced last and how many announcements came; per open stream:
/// how many announcements had come when it began.
#[derive(Debug, Default)]
pub struct Announcements {
    layer: HashMap<u32, u8>,
    count: HashMap<u32, u32>,
    began: HashMap<(u32, u8), u32>,
}

impl Announcements {
    /// The layer each announced track arrives on now.
    pub fn layers(&self) -> &HashMap<u32, u8> {
        &self.layer
    }

    /// A frame of `(track, layer)` arrived, `open` saying whether a stream of it is open.
    /// Returns true when that stream must be closed first: a keyframe of a layer other than
    /// the announced one, on a stream begun before the last announcement, is a new visit to
    /// the layer whose announcement has not arrived yet.
    pub fn on_frame(&mut self, track: u32, layer: u8, keyframe: bool, open: bool) -> bool {
        let count = self.count.get(&track).copied().unwrap_or(0);
        let began = self.began.entry((track, layer)).or_insert(count);
        if !open {
            *began = count;
            return false;
        }
        let new_visit =
            keyframe && *began < count && self.layer.get(&track).is_some_and(|l| *l != layer);
        if new_visit {
            *began = count;
        }
        new_visit
    }

    /// `layer_changed{track, layer}` arrived, `open` saying whether a stream of that layer is
    /// open. Returns true when that stream must be closed: it belongs to an earlier visit
    /// (it began before the last announcement, or that announcement was this layer too).
    pub fn on_announce(&mut self, track: u32, layer: u8, open: bool) -> bool {
        let count = self.count.entry(track).or_insert(0);
        let before = *count;
        *count += 1;
        let prev = self.layer.insert(track, layer);
        let began = self.began.get(&(track, layer)).copied();
        let early_frames = open && began == Some(before) && prev != Some(layer);
        if open && !early_frames {
            // Closed by the caller; the frames after this announcement start a new one.
            self.began.remove(&(track, layer));
            return true;
        }
        if early_frames {
            self.began.insert((track, layer), *count);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_ahead_of_their_announcement_stay_in_its_stream() {
        let mut a = Announcements::default();
        // The keyframe arrives before `layer_changed{0}`, as over WebTransport it can.
        assert!(!a.on_frame(7, 0, true, false));
        assert!(!a.on_announce(7, 0, true));
        assert!(!a.on_frame(7, 0, false, true));
        assert_eq!(a.layers().get(&7), Some(&0));
    }

    #[test]
    fn an_announcement_before_any_frame_opens_one_stream() {
        let mut a = Announcements::default();
        assert!(!a.on_announce(7, 0, false));
        assert!(!a.on_frame(7, 0, true, false));
        assert!(!a.on_frame(7, 0, false, true));
    }

    #[test]
    fn moving_away_and_back_starts_a_new_stream() {
        let mut a = Announcements::default();
        assert!(!a.on_announce(7, 0, false));
        assert!(!a.on_frame(7, 0, true, false));
        assert!(!a.on_announce(7, 1, false));
        assert!(!a.on_frame(7, 1, true, false));
        // Back to 0, announced before its keyframe: the old layer-0 stream is closed.
        assert!(a.on_announce(7, 0, true));
        assert!(!a.on_frame(7, 0, true, false));
        assert!(!a.on_frame(7, 0, false, true));
    }

    #[test]
    fn moving_back_with_the_keyframe_first_closes_the_old_stream_at_the_keyframe() {
        let mut a = Announcements::default();
        assert!(!a.on_announce(7, 0, false));
        assert!(!a.on_frame(7, 0, true, false));
        assert!(!a.on_announce(7, 1, false));
        assert!(!a.on_frame(7, 1, true, false));
        // Layer 0's keyframe comes before `layer_changed{0}`: the old stream ends there and
        // the announcement that follows belongs to the new one.
        assert!(a.on_frame(7, 0, true, true));
        assert!(!a.on_announce(7, 0, true));
        // A late delta frame of layer 1 after the move does not split anything.
        assert!(!a.on_frame(7, 1, false, true));
    }

    #[test]
    fn the_same_layer_announced_again_starts_a_new_stream() {
        let mut a = Announcements::default();
        assert!(!a.on_announce(7, 1, false));
        assert!(!a.on_frame(7, 1, true, false));
        assert!(a.on_announce(7, 1, true));
    }

    #[test]
    fn audio_is_never_split() {
        let mut a = Announcements::default();
        assert!(!a.on_frame(3, 0, true, false));
        for _ in 0..5 {
            assert!(!a.on_frame(3, 0, true, true));
        }
    }
}
