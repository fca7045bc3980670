//! The outgoing media queue of one room's NATS link (docs/CLUSTER.md section 7): audio has
//! its own queue, always sent before any video, and audio that waited longer than
//! [`AUDIO_MAX_AGE`] is dropped rather than sent late. Video waits in a larger queue that
//! drops when full. So when the NATS connection cannot keep up, video is what goes.
//!
//! Pure: the caller passes the time; the link task owns the I/O.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use quicmeet_proto::{EncodedFrame, MediaKind};

/// Audio frames queued at most (about 5 s of one 20 ms track; a room with many speakers
/// shares it, and age drops audio long before it fills on a healthy link).
pub const AUDIO_FRAMES: usize = 256;
/// Video and screen frames queued at most.
pub const VIDEO_FRAMES: usize = 1024;
/// Audio older than this is worthless on arrival (the same bound as every other hop).
pub const AUDIO_MAX_AGE: Duration = Duration::from_millis(150);

/// What a push or a pop threw away, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub audio: u64,
    pub video: u64,
}

/// Frames waiting, each with `D`: where it goes (the link: the nodes that want it).
#[derive(Debug)]
pub struct MediaQueue<D = ()> {
    audio: VecDeque<(Instant, EncodedFrame, D)>,
    video: VecDeque<(EncodedFrame, D)>,
}

impl<D> Default for MediaQueue<D> {
    fn default() -> Self {
        Self {
            audio: VecDeque::new(),
            video: VecDeque::new(),
        }
    }
}

impl<D> MediaQueue<D> {
    /// Queues a frame. Full audio drops its oldest frame (fresh audio is worth more); full
    /// video refuses the newcomer (the receiving room waits for the next keyframe either way).
    pub fn push(&mut self, frame: EncodedFrame, to: D, now: Instant) -> Dropped {
        let mut d = Dropped::default();
        if frame.header().kind == MediaKind::Audio {
            if self.audio.len() >= AUDIO_FRAMES {
                self.audio.pop_front();
                d.audio += 1;
            }
            self.audio.push_back((now, frame, to));
        } else if self.video.len() >= VIDEO_FRAMES {
            d.video += 1;
        } else {
            self.video.push_back((frame, to));
        }
        d
    }

    /// The next frame to publish: audio first, skipping audio that aged out.
    pub fn pop(&mut self, now: Instant) -> (Option<(EncodedFrame, D)>, Dropped) {
        let mut d = Dropped::default();
        while let Some((at, f, to)) = self.audio.pop_front() {
            if now.duration_since(at) <= AUDIO_MAX_AGE {
                return (Some((f, to)), d);
            }
            d.audio += 1;
        }
        (self.video.pop_front(), d)
    }

    pub fn is_empty(&self) -> bool {
        self.audio.is_empty() && self.video.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quicmeet_proto::{Frame, FrameHeader, MediaKind};

    fn frame(kind: MediaKind, seq: u32) -> EncodedFrame {
        let h = FrameHeader {
            kind,
            layer: 0,
            keyframe: false,
            audio_level: None,
            track_id: if kind == MediaKind::Audio { 16 } else { 17 },
            seq,
            capture_ts_us: 0,
            payload_len: 0,
        };
        Frame::new(h, bytes::Bytes::from_static(&[1, 2, 3]))
            .encode()
            .unwrap()
    }

    fn kinds(q: &mut MediaQueue, now: Instant) -> Vec<(MediaKind, u32)> {
        std::iter::from_fn(|| q.pop(now).0)
            .map(|(f, ())| (f.header().kind, f.header().seq))
            .collect()
    }

    #[test]
    fn audio_leaves_before_video_queued_earlier() {
        let t = Instant::now();
        let mut q = MediaQueue::default();
        q.push(frame(MediaKind::Video, 1), (), t);
        q.push(frame(MediaKind::Video, 2), (), t);
        q.push(frame(MediaKind::Audio, 1), (), t);
        q.push(frame(MediaKind::Screen, 3), (), t);
        q.push(frame(MediaKind::Audio, 2), (), t);
        assert_eq!(
            kinds(&mut q, t),
            [
                (MediaKind::Audio, 1),
                (MediaKind::Audio, 2),
                (MediaKind::Video, 1),
                (MediaKind::Video, 2),
                (MediaKind::Screen, 3)
            ]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn a_video_flood_drops_video_never_audio() {
        let t = Instant::now();
        let mut q = MediaQueue::default();
        let mut dropped = Dropped::default();
        for i in 0..(VIDEO_FRAMES as u32 * 3) {
            let d = q.push(frame(MediaKind::Video, i), (), t);
            dropped.video += d.video;
            // Audio at a rate the audio queue holds (it is bounded too: next test).
            if i % 20 == 0 {
                let d = q.push(frame(MediaKind::Audio, i / 20), (), t);
                dropped.audio += d.audio;
            }
        }
        assert_eq!(dropped.audio, 0);
        assert_eq!(dropped.video, 2 * VIDEO_FRAMES as u64);
        let out = kinds(&mut q, t);
        let audio: Vec<u32> = out
            .iter()
            .filter(|(k, _)| *k == MediaKind::Audio)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(
            audio,
            (0..=(VIDEO_FRAMES as u32 * 3 - 1) / 20).collect::<Vec<_>>()
        );
        assert!(out[..audio.len()]
            .iter()
            .all(|(k, _)| *k == MediaKind::Audio));
    }

    #[test]
    fn stale_audio_is_dropped_and_counted_full_audio_keeps_the_freshest() {
        let t = Instant::now();
        let mut q = MediaQueue::default();
        q.push(frame(MediaKind::Audio, 1), (), t);
        q.push(
            frame(MediaKind::Audio, 2),
            (),
            t + Duration::from_millis(100),
        );
        let (f, d) = q.pop(t + Duration::from_millis(200));
        assert_eq!(f.unwrap().0.header().seq, 2);
        assert_eq!(d, Dropped { audio: 1, video: 0 });

        let mut q = MediaQueue::default();
        let mut lost = 0;
        for i in 0..AUDIO_FRAMES as u32 + 5 {
            lost += q.push(frame(MediaKind::Audio, i), (), t).audio;
        }
        assert_eq!(lost, 5);
        assert_eq!(q.pop(t).0.unwrap().0.header().seq, 5, "the oldest went");
    }
}
