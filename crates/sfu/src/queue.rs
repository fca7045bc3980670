//! The per-subscriber bounded send queue and its drop policy.
//!
//! One [`SubscriberQueue`] sits between the room's outputs for a subscriber and that
//! subscriber's transport. It is pure (no clock, no I/O) and allocates only when created:
//! each class lives in a `VecDeque` with a fixed capacity.
//!
//! Policy:
//! - pop order is control, then audio, then video; within a class, first in first out;
//! - control is never dropped: when its bound is hit, [`SubscriberQueue::push_control`] fails
//!   and the caller should disconnect the subscriber as too slow;
//! - audio is dropped oldest-first, only when the audio bound itself is exceeded;
//! - when the video backlog exceeds its bound, the queue drops every queued frame of the track
//!   being pushed, discards that track's frames until its next keyframe, and reports
//!   [`QueueEvent::NeedKeyframe`] once (plus [`QueueEvent::ResetGroup`], so a WebTransport
//!   sender resets the stream of the group it was sending). A keyframe that arrives while the
//!   queue is full is kept if dropping older video makes room for it.
//!
//! For WebTransport each popped video frame says whether it starts a new group of pictures
//! (`starts_group` in [`Popped::Media`]): the transport then opens a new unidirectional stream for the
//! track and finishes the previous one.

use std::collections::VecDeque;

use bytes::Bytes;
use quicmeet_proto::EncodedFrame;
use smallvec::SmallVec;

/// Bounds of one subscriber queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Control messages queued at most (never dropped; overflow is an error).
    pub max_control: usize,
    /// Audio frames queued at most.
    pub max_audio: usize,
    /// Audio bytes queued at most.
    pub max_audio_bytes: usize,
    /// Video (and screen) frames queued at most.
    pub max_video: usize,
    /// Video (and screen) bytes queued at most.
    pub max_video_bytes: usize,
}

impl Default for QueueConfig {
    /// Sized for the WebSocket fallback, where TCP blocks: about one second of audio and half
    /// a second of 720p video.
    fn default() -> Self {
        QueueConfig {
            max_control: 256,
            max_audio: 50,
            max_audio_bytes: 64 * 1024,
            max_video: 120,
            max_video_bytes: 1024 * 1024,
        }
    }
}

/// What the caller should do after pushing or popping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueEvent {
    /// Frames of this track were dropped; ask its publisher for a keyframe of this layer
    /// (the room rate-limits: feed it back as `Input::KeyframeNeeded`).
    NeedKeyframe {
        /// The track.
        track_id: u32,
        /// The layer that was being sent.
        layer: u8,
    },
    /// The group being sent for this track lost frames: reset its WebTransport stream.
    ResetGroup {
        /// The track.
        track_id: u32,
    },
}

/// Outcome of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued (possibly after dropping older frames).
    Queued,
    /// Not queued: the frame was dropped by policy.
    Dropped,
}

/// The control queue is full; the subscriber cannot keep up and should be disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("control queue overflow")]
pub struct ControlOverflow;

/// One item taken from the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Popped {
    /// An encoded control message.
    Control(Bytes),
    /// A media frame.
    Media {
        /// The frame, shared with every other subscriber.
        frame: EncodedFrame,
        /// A video keyframe: on WebTransport open a new stream for this track.
        starts_group: bool,
    },
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Control messages queued now.
    pub control_depth: usize,
    /// Audio frames queued now.
    pub audio_depth: usize,
    /// Video frames queued now.
    pub video_depth: usize,
    /// Bytes queued now (all classes).
    pub bytes: usize,
    /// Audio frames dropped so far.
    pub dropped_audio: u64,
    /// Video frames dropped so far (backlog, or waiting for a keyframe).
    pub dropped_video: u64,
    /// Bytes of dropped media so far.
    pub dropped_bytes: u64,
    /// Times a track was cut back to its next keyframe.
    pub keyframes_needed: u64,
    /// Control pushes refused because the control queue was full.
    pub control_overflows: u64,
}

/// Per-subscriber bounded queue. See the module docs for the policy.
#[derive(Debug)]
pub struct SubscriberQueue {
    config: QueueConfig,
    control: VecDeque<Bytes>,
    audio: VecDeque<EncodedFrame>,
    video: VecDeque<EncodedFrame>,
    control_bytes: usize,
    audio_bytes: usize,
    video_bytes: usize,
    /// Tracks whose deltas are discarded until their next keyframe.
    waiting: SmallVec<[u32; 8]>,
    events: VecDeque<QueueEvent>,
    stats: QueueStats,
}

impl SubscriberQueue {
    /// An empty queue with room for `config`'s bounds allocated up front.
    pub fn new(config: QueueConfig) -> Self {
        SubscriberQueue {
            config,
            control: VecDeque::with_capacity(config.max_control),
            audio: VecDeque::with_capacity(config.max_audio + 1),
            video: VecDeque::with_capacity(config.max_video + 1),
            control_bytes: 0,
            audio_bytes: 0,
            video_bytes: 0,
            waiting: SmallVec::new(),
            events: VecDeque::with_capacity(16),
            stats: QueueStats::default(),
        }
    }

    /// The bounds.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Queue an encoded control message (WebSocket: the whole binary message).
    pub fn push_control(&mut self, msg: Bytes) -> Result<(), ControlOverflow> {
        if self.control.len() >= self.config.max_control {
            self.stats.control_overflows += 1;
            return Err(ControlOverflow);
        }
        self.control_bytes += msg.len();
        self.control.push_back(msg);
        Ok(())
    }

    /// Queue a media frame, applying the drop policy.
    pub fn push_media(&mut self, frame: EncodedFrame) -> Pushed {
        if frame.header().kind.is_video() {
            self.push_video(frame)
        } else {
            self.push_audio(frame)
        }
    }

    fn push_audio(&mut self, frame: EncodedFrame) -> Pushed {
        let len = frame.len();
        if len > self.config.max_audio_bytes || self.config.max_audio == 0 {
            self.stats.dropped_audio += 1;
            self.stats.dropped_bytes += len as u64;
            return Pushed::Dropped;
        }
        while self.audio.len() >= self.config.max_audio
            || self.audio_bytes + len > self.config.max_audio_bytes
        {
            let Some(old) = self.audio.pop_front() else {
                break;
            };
            self.audio_bytes -= old.len();
            self.stats.dropped_audio += 1;
            self.stats.dropped_bytes += old.len() as u64;
        }
        self.audio_bytes += len;
        self.audio.push_back(frame);
        Pushed::Queued
    }

    fn push_video(&mut self, frame: EncodedFrame) -> Pushed {
        let h = *frame.header();
        if let Some(i) = self.waiting.iter().position(|&t| t == h.track_id) {
            if !h.keyframe {
                self.count_video_drop(frame.len());
                return Pushed::Dropped;
            }
            self.waiting.swap_remove(i);
        }
        if self.video_fits(frame.len()) {
            self.video_bytes += frame.len();
            self.video.push_back(frame);
            return Pushed::Queued;
        }
        // Backlog over the bound: this track's queued frames are stale either way.
        self.drop_track_video(h.track_id);
        if !h.keyframe {
            self.count_video_drop(frame.len());
            self.start_waiting(h.track_id, h.layer);
            return Pushed::Dropped;
        }
        // A keyframe restarts the track; make room by cutting the other tracks that are
        // furthest behind (the owner of the oldest queued frame first).
        while !self.video_fits(frame.len()) {
            let Some(oldest) = self.video.front() else {
                break;
            };
            let (t, l) = (oldest.header().track_id, oldest.header().layer);
            self.drop_track_video(t);
            self.start_waiting(t, l);
        }
        if self.video_fits(frame.len()) {
            self.video_bytes += frame.len();
            self.video.push_back(frame);
            Pushed::Queued
        } else {
            // A single keyframe larger than the whole video bound.
            self.count_video_drop(frame.len());
            self.start_waiting(h.track_id, h.layer);
            Pushed::Dropped
        }
    }

    fn video_fits(&self, len: usize) -> bool {
        self.video.len() < self.config.max_video
            && self.video_bytes + len <= self.config.max_video_bytes
    }

    fn count_video_drop(&mut self, len: usize) {
        self.stats.dropped_video += 1;
        self.stats.dropped_bytes += len as u64;
    }

    /// Remove every queued frame of `track_id`; true if there were any.
    fn drop_track_video(&mut self, track_id: u32) -> bool {
        let before = self.video.len();
        let mut dropped_bytes = 0;
        self.video.retain(|f| {
            if f.header().track_id == track_id {
                dropped_bytes += f.len();
                false
            } else {
                true
            }
        });
        let n = before - self.video.len();
        self.video_bytes -= dropped_bytes;
        self.stats.dropped_video += n as u64;
        self.stats.dropped_bytes += dropped_bytes as u64;
        n > 0
    }

    fn start_waiting(&mut self, track_id: u32, layer: u8) {
        if self.waiting.contains(&track_id) {
            return;
        }
        self.waiting.push(track_id);
        self.stats.keyframes_needed += 1;
        // Reset even when nothing was queued: the transport may be part-way through the
        // group's stream, and the frames after this point will not arrive.
        self.events.push_back(QueueEvent::ResetGroup { track_id });
        self.events
            .push_back(QueueEvent::NeedKeyframe { track_id, layer });
    }

    /// Take the next item to send: control first, then audio, then video.
    pub fn pop(&mut self) -> Option<Popped> {
        if let Some(c) = self.control.pop_front() {
            self.control_bytes -= c.len();
            return Some(Popped::Control(c));
        }
        if let Some(a) = self.audio.pop_front() {
            self.audio_bytes -= a.len();
            return Some(Popped::Media {
                frame: a,
                starts_group: false,
            });
        }
        let v = self.video.pop_front()?;
        self.video_bytes -= v.len();
        let starts_group = v.header().keyframe;
        Some(Popped::Media {
            frame: v,
            starts_group,
        })
    }

    /// Next event for the caller (keyframe needed, stream to reset).
    pub fn poll_event(&mut self) -> Option<QueueEvent> {
        self.events.pop_front()
    }

    /// The subscriber stopped receiving a track: drop its frames and its waiting state.
    pub fn forget_track(&mut self, track_id: u32) {
        let mut bytes = 0;
        self.video.retain(|f| {
            let keep = f.header().track_id != track_id;
            if !keep {
                bytes += f.len();
            }
            keep
        });
        self.video_bytes -= bytes;
        let mut abytes = 0;
        self.audio.retain(|f| {
            let keep = f.header().track_id != track_id;
            if !keep {
                abytes += f.len();
            }
            keep
        });
        self.audio_bytes -= abytes;
        self.waiting.retain(|t| *t != track_id);
    }

    /// True when the track's frames are being discarded until its next keyframe.
    pub fn is_waiting_for_keyframe(&self, track_id: u32) -> bool {
        self.waiting.contains(&track_id)
    }

    /// How full the video part is, 0.0 (empty) to 1.0 (at its bound), by frames or bytes,
    /// whichever is fuller. A layer controller can move a subscriber to a lower layer when
    /// this stays high and back up when it stays low.
    pub fn video_fill(&self) -> f32 {
        let by_count = self.video.len() as f32 / self.config.max_video.max(1) as f32;
        let by_bytes = self.video_bytes as f32 / self.config.max_video_bytes.max(1) as f32;
        by_count.max(by_bytes).min(1.0)
    }

    /// Items queued (all classes).
    pub fn len(&self) -> usize {
        self.control.len() + self.audio.len() + self.video.len()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes queued (all classes).
    pub fn bytes(&self) -> usize {
        self.control_bytes + self.audio_bytes + self.video_bytes
    }

    /// Counters, with the current depths filled in.
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            control_depth: self.control.len(),
            audio_depth: self.audio.len(),
            video_depth: self.video.len(),
            bytes: self.bytes(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quicmeet_proto::{Frame, FrameHeader, MediaKind};

    fn frame(kind: MediaKind, track_id: u32, seq: u32, keyframe: bool, len: usize) -> EncodedFrame {
        Frame::new(
            FrameHeader {
                kind,
                layer: 0,
                keyframe,
                track_id,
                seq,
                capture_ts_us: seq as u64 * 1000,
                audio_level: None,
                payload_len: 0,
            },
            Bytes::from(vec![seq as u8; len]),
        )
        .encode()
        .unwrap()
    }

    fn small() -> QueueConfig {
        QueueConfig {
            max_control: 2,
            max_audio: 3,
            max_audio_bytes: 10_000,
            max_video: 4,
            max_video_bytes: 10_000,
        }
    }

    fn seqs(q: &mut SubscriberQueue) -> Vec<(u32, u32)> {
        let mut out = vec![];
        while let Some(p) = q.pop() {
            if let Popped::Media { frame, .. } = p {
                out.push((frame.header().track_id, frame.header().seq));
            }
        }
        out
    }

    #[test]
    fn pops_control_then_audio_then_video() {
        let mut q = SubscriberQueue::new(small());
        q.push_media(frame(MediaKind::Video, 17, 1, true, 10));
        q.push_media(frame(MediaKind::Audio, 16, 2, false, 10));
        q.push_control(Bytes::from_static(b"c")).unwrap();
        assert_eq!(q.pop(), Some(Popped::Control(Bytes::from_static(b"c"))));
        let Some(Popped::Media {
            frame: a,
            starts_group,
        }) = q.pop()
        else {
            panic!()
        };
        assert_eq!((a.header().track_id, starts_group), (16, false));
        let Some(Popped::Media {
            frame: v,
            starts_group,
        }) = q.pop()
        else {
            panic!()
        };
        assert_eq!((v.header().track_id, starts_group), (17, true));
        assert!(q.pop().is_none());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn control_overflow_is_an_error_not_a_drop() {
        let mut q = SubscriberQueue::new(small());
        q.push_control(Bytes::from_static(b"1")).unwrap();
        q.push_control(Bytes::from_static(b"2")).unwrap();
        assert_eq!(
            q.push_control(Bytes::from_static(b"3")),
            Err(ControlOverflow)
        );
        assert_eq!(q.stats().control_overflows, 1);
    }

    #[test]
    fn audio_drops_oldest_only_over_its_own_bound() {
        let mut q = SubscriberQueue::new(small());
        for s in 0..5 {
            assert_eq!(
                q.push_media(frame(MediaKind::Audio, 16, s, false, 10)),
                Pushed::Queued
            );
        }
        assert_eq!(q.stats().dropped_audio, 2);
        assert_eq!(seqs(&mut q), vec![(16, 2), (16, 3), (16, 4)]);
    }

    #[test]
    fn video_backlog_drops_to_next_keyframe_and_reports_once() {
        let mut q = SubscriberQueue::new(small());
        q.push_media(frame(MediaKind::Video, 17, 0, true, 100));
        for s in 1..4 {
            assert_eq!(
                q.push_media(frame(MediaKind::Video, 17, s, false, 100)),
                Pushed::Queued
            );
        }
        // Audio meanwhile is untouched by video pressure.
        q.push_media(frame(MediaKind::Audio, 16, 100, false, 10));
        // Fifth video frame exceeds max_video = 4.
        assert_eq!(
            q.push_media(frame(MediaKind::Video, 17, 4, false, 100)),
            Pushed::Dropped
        );
        assert_eq!(
            q.poll_event(),
            Some(QueueEvent::ResetGroup { track_id: 17 })
        );
        assert_eq!(
            q.poll_event(),
            Some(QueueEvent::NeedKeyframe {
                track_id: 17,
                layer: 0
            })
        );
        assert_eq!(q.poll_event(), None);
        assert!(q.is_waiting_for_keyframe(17));
        // More deltas: dropped silently, no second report.
        assert_eq!(
            q.push_media(frame(MediaKind::Video, 17, 5, false, 100)),
            Pushed::Dropped
        );
        assert_eq!(q.poll_event(), None);
        // The keyframe resumes the track.
        assert_eq!(
            q.push_media(frame(MediaKind::Video, 17, 6, true, 100)),
            Pushed::Queued
        );
        assert_eq!(
            q.push_media(frame(MediaKind::Video, 17, 7, false, 100)),
            Pushed::Queued
        );
        assert_eq!(seqs(&mut q), vec![(16, 100), (17, 6), (17, 7)]);
        let s = q.stats();
        assert_eq!(
            (s.dropped_video, s.dropped_audio, s.keyframes_needed),
            (6, 0, 1)
        );
    }

    #[test]
    fn byte_bound_applies_to_video() {
        let mut q = SubscriberQueue::new(small());
        q.push_media(frame(MediaKind::Video, 17, 0, true, 6000));
        assert_eq!(
            q.push_media(frame(MediaKind::Video, 17, 1, false, 6000)),
            Pushed::Dropped
        );
        assert!(q.is_waiting_for_keyframe(17));
        assert!(q.is_empty());
    }

    #[test]
    fn keyframe_under_pressure_evicts_the_track_furthest_behind() {
        let mut q = SubscriberQueue::new(small());
        q.push_media(frame(MediaKind::Screen, 18, 0, true, 100));
        q.push_media(frame(MediaKind::Screen, 18, 1, false, 100));
        q.push_media(frame(MediaKind::Video, 33, 0, true, 100));
        q.push_media(frame(MediaKind::Video, 33, 1, false, 100));
        // Keyframe of 33 while full: 33's stale frames go, and that is enough room.
        assert_eq!(
            q.push_media(frame(MediaKind::Video, 33, 2, true, 100)),
            Pushed::Queued
        );
        assert!(!q.is_waiting_for_keyframe(33));
        assert!(!q.is_waiting_for_keyframe(18));
        assert_eq!(seqs(&mut q), vec![(18, 0), (18, 1), (33, 2)]);

        // Keyframe that only fits after cutting another track.
        let mut q = SubscriberQueue::new(small());
        for s in 0..4 {
            q.push_media(frame(MediaKind::Screen, 18, s, s == 0, 100));
        }
        assert_eq!(
            q.push_media(frame(MediaKind::Video, 33, 0, true, 100)),
            Pushed::Queued
        );
        assert!(q.is_waiting_for_keyframe(18));
        assert_eq!(
            q.poll_event(),
            Some(QueueEvent::ResetGroup { track_id: 18 })
        );
        assert_eq!(seqs(&mut q), vec![(33, 0)]);
    }

    #[test]
    fn video_fill_reports_the_fuller_bound() {
        let mut q = SubscriberQueue::new(small());
        assert_eq!(q.video_fill(), 0.0);
        q.push_media(frame(MediaKind::Video, 17, 0, true, 100));
        assert_eq!(q.video_fill(), 0.25); // 1 of 4 frames beats 128 of 10 000 bytes
        q.push_media(frame(MediaKind::Video, 17, 1, false, 7000));
        assert!(q.video_fill() > 0.7);
    }

    #[test]
    fn forget_track_clears_state() {
        let mut q = SubscriberQueue::new(small());
        q.push_media(frame(MediaKind::Video, 17, 0, false, 20_000));
        assert!(q.is_waiting_for_keyframe(17));
        q.push_media(frame(MediaKind::Audio, 16, 0, false, 10));
        q.forget_track(17);
        q.forget_track(16);
        assert!(!q.is_waiting_for_keyframe(17));
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }
}
