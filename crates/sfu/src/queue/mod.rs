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
use std::time::{Duration, Instant};

use bytes::Bytes;
use quicmeet_proto::EncodedFrame;
use smallvec::SmallVec;

mod pace;
use pace::Pacer;

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
    /// Audio older than this is dropped, not sent: late audio is worse than none. Applies to
    /// frames pushed with [`SubscriberQueue::push_media_at`] and popped with
    /// [`SubscriberQueue::pop_at`].
    pub max_audio_age: Duration,
    /// Video older than this cuts its track back to the next keyframe, so latency stays
    /// bounded in time and not only in bytes (same condition as `max_audio_age`).
    pub max_video_age: Duration,
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
            max_audio_age: Duration::from_millis(150),
            max_video_age: Duration::from_millis(400),
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
    /// Audio frames dropped because they waited longer than `max_audio_age` (included in
    /// `dropped_audio`).
    pub stale_audio: u64,
    /// Times a track was cut back because its oldest queued video waited longer than
    /// `max_video_age` (included in `keyframes_needed`).
    pub stale_video: u64,
    /// Times video was held back by the pacer (see [`SubscriberQueue::set_video_pace`]).
    pub paced: u64,
}

/// A queued frame and when it was queued (`None`: pushed without a time, never ages).
#[derive(Debug)]
struct Queued {
    frame: EncodedFrame,
    at: Option<Instant>,
}

impl Queued {
    fn older_than(&self, age: Duration, now: Instant) -> bool {
        self.at
            .is_some_and(|at| now.saturating_duration_since(at) > age)
    }
}

/// Per-subscriber bounded queue. See the module docs for the policy.
#[derive(Debug)]
pub struct SubscriberQueue {
    config: QueueConfig,
    control: VecDeque<Bytes>,
    audio: VecDeque<Queued>,
    video: VecDeque<Queued>,
    control_bytes: usize,
    audio_bytes: usize,
    video_bytes: usize,
    /// Tracks whose deltas are discarded until their next keyframe.
    waiting: SmallVec<[u32; 8]>,
    events: VecDeque<QueueEvent>,
    stats: QueueStats,
    /// Video leaves no faster than this, when set.
    pacer: Option<Pacer>,
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
            pacer: None,
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

    /// Queue a media frame, applying the drop policy (bounds by count and bytes only).
    pub fn push_media(&mut self, frame: EncodedFrame) -> Pushed {
        self.push(frame, None)
    }

    /// Queue a media frame received at `now`: as [`SubscriberQueue::push_media`], and the
    /// frame ages (see [`QueueConfig::max_audio_age`]); video already queued too long is
    /// cut back first.
    pub fn push_media_at(&mut self, frame: EncodedFrame, now: Instant) -> Pushed {
        self.push(frame, Some(now))
    }

    fn push(&mut self, frame: EncodedFrame, at: Option<Instant>) -> Pushed {
        if frame.header().kind.is_video() {
            if let Some(now) = at {
                self.expire_video(now);
            }
            self.push_video(Queued { frame, at })
        } else {
            self.push_audio(Queued { frame, at })
        }
    }

    fn push_audio(&mut self, q: Queued) -> Pushed {
        let len = q.frame.len();
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
            self.audio_bytes -= old.frame.len();
            self.stats.dropped_audio += 1;
            self.stats.dropped_bytes += old.frame.len() as u64;
        }
        self.audio_bytes += len;
        self.audio.push_back(q);
        Pushed::Queued
    }

    fn push_video(&mut self, q: Queued) -> Pushed {
        let h = *q.frame.header();
        let len = q.frame.len();
        if let Some(i) = self.waiting.iter().position(|&t| t == h.track_id) {
            if !h.keyframe {
                self.count_video_drop(len);
                return Pushed::Dropped;
            }
            self.waiting.swap_remove(i);
        }
        if self.video_fits(len) {
            self.video_bytes += len;
            self.video.push_back(q);
            return Pushed::Queued;
        }
        // Backlog over the bound: this track's queued frames are stale either way.
        self.drop_track_video(h.track_id);
        if !h.keyframe {
            self.count_video_drop(len);
            self.start_waiting(h.track_id, h.layer);
            return Pushed::Dropped;
        }
        // A keyframe restarts the track; make room by cutting the other tracks that are
        // furthest behind (the owner of the oldest queued frame first).
        while !self.video_fits(len) {
            let Some(oldest) = self.video.front() else {
                break;
            };
            let (t, l) = (oldest.frame.header().track_id, oldest.frame.header().layer);
            self.drop_track_video(t);
            self.start_waiting(t, l);
        }
        if self.video_fits(len) {
            self.video_bytes += len;
            self.video.push_back(q);
            Pushed::Queued
        } else {
            // A single keyframe larger than the whole video bound.
            self.count_video_drop(len);
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
        self.video.retain(|q| {
            if q.frame.header().track_id == track_id {
                dropped_bytes += q.frame.len();
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
            self.audio_bytes -= a.frame.len();
            return Some(Popped::Media {
                frame: a.frame,
                starts_group: false,
            });
        }
        let v = self.video.pop_front()?;
        self.video_bytes -= v.frame.len();
        let starts_group = v.frame.header().keyframe;
        Some(Popped::Media {
            frame: v.frame,
            starts_group,
        })
    }

    /// Take the next item to send at `now`: as [`SubscriberQueue::pop`], but audio that
    /// waited longer than `max_audio_age` is dropped instead of sent, and a track whose
    /// oldest video waited longer than `max_video_age` is cut back to its next keyframe
    /// (events follow, as for a backlog).
    pub fn pop_at(&mut self, now: Instant) -> Option<Popped> {
        if self.control.is_empty() {
            let max = self.config.max_audio_age;
            while self.audio.front().is_some_and(|a| a.older_than(max, now)) {
                let Some(old) = self.audio.pop_front() else {
                    break;
                };
                self.audio_bytes -= old.frame.len();
                self.stats.dropped_audio += 1;
                self.stats.stale_audio += 1;
                self.stats.dropped_bytes += old.frame.len() as u64;
            }
            if self.audio.is_empty() {
                self.expire_video(now);
            }
        }
        if self.control.is_empty() && self.audio.is_empty() && !self.video.is_empty() {
            if let Some(p) = self.pacer.as_mut() {
                if !p.ready(now) {
                    self.stats.paced += 1;
                    return None;
                }
                p.spend(self.video.front().map_or(0, |v| v.frame.len()));
            }
        }
        self.pop()
    }

    /// Paces video at `bps` from now on (`None`: video leaves as fast as it is popped).
    /// Control and audio are never paced. Applies to [`SubscriberQueue::pop_at`].
    pub fn set_video_pace(&mut self, bps: Option<u64>, now: Instant) {
        match (bps, self.pacer.as_mut()) {
            (None, _) => self.pacer = None,
            (Some(b), Some(p)) => p.set_rate(b, now),
            (Some(b), None) => self.pacer = Some(Pacer::new(b, now)),
        }
    }

    /// When the pacer lets the next video frame leave, while video waits for it; the caller
    /// should pop again then.
    pub fn paced_until(&self) -> Option<Instant> {
        let p = self.pacer.as_ref()?;
        if self.video.is_empty() {
            return None;
        }
        Some(p.ready_at())
    }

    /// Cuts back every track whose oldest queued video is older than `max_video_age`.
    fn expire_video(&mut self, now: Instant) {
        let max = self.config.max_video_age;
        while let Some(oldest) = self.video.front().filter(|v| v.older_than(max, now)) {
            let (t, l) = (oldest.frame.header().track_id, oldest.frame.header().layer);
            self.drop_track_video(t);
            self.stats.stale_video += 1;
            self.start_waiting(t, l);
        }
    }

    /// Next event for the caller (keyframe needed, stream to reset).
    pub fn poll_event(&mut self) -> Option<QueueEvent> {
        self.events.pop_front()
    }

    /// The subscriber stopped receiving a track: drop its frames and its waiting state.
    pub fn forget_track(&mut self, track_id: u32) {
        let mut bytes = 0;
        self.video.retain(|q| {
            let keep = q.frame.header().track_id != track_id;
            if !keep {
                bytes += q.frame.len();
            }
            keep
        });
        self.video_bytes -= bytes;
        let mut abytes = 0;
        self.audio.retain(|q| {
            let keep = q.frame.header().track_id != track_id;
            if !keep {
                abytes += q.frame.len();
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

    /// Audio frames queued now. A sender may hand a fresh audio frame to the transport
    /// directly, skipping the queue, only while this is zero: audio then stays in order.
    pub fn audio_len(&self) -> usize {
        self.audio.len()
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

    /// Media frames dropped so far (audio and video), without building the whole
    /// [`QueueStats`]: the hot path reads it around every push.
    pub fn dropped_frames(&self) -> u64 {
        self.stats.dropped_audio + self.stats.dropped_video
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
mod tests;
