//! The room's media fan-out, batched per subscriber.
//!
//! The room actor takes up to a few dozen commands per wake-up. Every media frame among them
//! goes to every subscriber of its track, so the room hands out frames in the order
//! frame 1 → A, B, C…, frame 2 → A, B, C…. Handing them to QUIC in that order wakes A's
//! connection task once per frame, and on two cores it often runs before the next frame
//! arrives, so every frame costs A a packet and a system call. Handing A its frames of the
//! whole batch back to back instead lets QUIC put them into one packet (audio datagrams are
//! ~100 bytes), and A's queue lock and connection are looked up once per batch.
//!
//! Within a subscriber the order is kept (audio first, then video, each in arrival order), and
//! the batch is flushed before any command other than media, so control messages (layer
//! changes, unsubscribes) never overtake media they follow.

use std::{sync::atomic::Ordering, sync::Arc};

use quicmeet_proto::EncodedFrame;
use quicmeet_sfu::{bwe::Feedback, ConnId, ConnMap, Input, Pushed, QueueEvent};
use smallvec::SmallVec;

use super::{conn::WireCache, metrics::MediaMetrics, ConnOut};

/// One frame for one subscriber, waiting for the end of the batch.
struct Pending {
    to: ConnId,
    video: bool,
    /// Arrival order, so the unstable sort keeps each subscriber's frames in order.
    order: u32,
    /// Index into [`Fanout::frames`].
    frame: u32,
}

/// Media outputs of the current batch. Its vectors keep their capacity, so a steady meeting
/// fans out without allocating.
#[derive(Default)]
pub struct Fanout {
    pending: Vec<Pending>,
    /// Distinct frames of the batch, each with its transport framing made once.
    frames: Vec<(EncodedFrame, WireCache)>,
    events: SmallVec<[QueueEvent; 2]>,
}

impl Fanout {
    /// Queues `frame` for `to` until [`Fanout::flush`].
    pub fn add(&mut self, to: ConnId, frame: EncodedFrame) {
        // The room emits one frame's outputs in a row: a new frame is a new slot.
        let same = self.frames.last().is_some_and(|(f, _)| {
            f.as_bytes().as_ptr() == frame.as_bytes().as_ptr() && f.len() == frame.len()
        });
        if !same {
            self.frames.push((frame.clone(), WireCache::default()));
        }
        let video = frame.header().kind.is_video();
        self.pending.push(Pending {
            to,
            video,
            order: self.pending.len() as u32,
            frame: (self.frames.len() - 1) as u32,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Hands every subscriber its frames of the batch back to back. What the queues report
    /// (a subscriber that cannot keep up) goes to `feedback` for the room.
    pub fn flush(
        &mut self,
        conns: &ConnMap<Arc<ConnOut>>,
        m: &MediaMetrics,
        feedback: &mut Vec<Input>,
    ) {
        if self.pending.is_empty() {
            return;
        }
        // One frame reaches each subscriber once, so a batch of one frame is already grouped;
        // sorting it (a big meeting's usual batch) was a visible share of the profile.
        if self.frames.len() > 1 {
            self.pending
                .sort_unstable_by_key(|p| (p.to, p.video, p.order));
        }
        let mut frames_out = 0u64;
        let mut bytes_out = 0u64;
        let mut dropped = 0u64;
        let mut i = 0;
        while i < self.pending.len() {
            let to = self.pending[i].to;
            let end = i + self.pending[i..]
                .iter()
                .position(|p| p.to != to)
                .unwrap_or(self.pending.len() - i);
            let Some(conn) = conns.get(&to) else {
                i = end;
                continue;
            };
            for p in &self.pending[i..end] {
                let Some((frame, wire)) = self.frames.get_mut(p.frame as usize) else {
                    continue;
                };
                let len = frame.len() as u64;
                self.events.clear();
                let (pushed, d) = conn.push_media(frame.clone(), &mut self.events, wire);
                if pushed == Pushed::Queued {
                    frames_out += 1;
                    bytes_out += len;
                }
                dropped += d;
                for e in self.events.drain(..) {
                    match e {
                        QueueEvent::NeedKeyframe { track_id, .. } => {
                            feedback.push(Input::KeyframeNeeded { from: to, track_id });
                            // The subscriber could not keep up: the layer policy's fast signal.
                            feedback.push(Input::Feedback {
                                conn: to,
                                feedback: Feedback::Lag { events: 1 },
                            });
                        }
                        QueueEvent::ResetGroup { .. } => {
                            m.group_resets.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            i = end;
        }
        self.pending.clear();
        self.frames.clear();
        if dropped > 0 {
            m.dropped_by_queue.fetch_add(dropped, Ordering::Relaxed);
        }
        if frames_out > 0 {
            m.frames_out.fetch_add(frames_out, Ordering::Relaxed);
            m.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use parking_lot::Mutex;
    use quicmeet_proto::{EncodedFrame, Frame, FrameHeader, MediaKind};
    use quicmeet_sfu::{ConnId, Popped};

    use super::Fanout;
    use crate::media::conn::{ConnOut, DirectSink, Transport, WireCache};

    pub(crate) fn frame(kind: MediaKind, track_id: u32, seq: u32) -> EncodedFrame {
        Frame::new(
            FrameHeader {
                kind,
                layer: 0,
                keyframe: kind.is_video() && seq == 0,
                track_id,
                seq,
                capture_ts_us: 0,
                audio_level: None,
                payload_len: 0,
            },
            Bytes::from(vec![seq as u8; 40]),
        )
        .encode()
        .unwrap()
    }

    /// A datagram sink that records what it was given, or refuses while `open` is false.
    #[derive(Default)]
    pub(crate) struct Recorder {
        pub sent: Mutex<Vec<(u32, u32, Bytes)>>,
        pub refuse: std::sync::atomic::AtomicBool,
    }

    impl DirectSink for Arc<Recorder> {
        fn send(&self, f: &EncodedFrame, wire: &mut WireCache) -> bool {
            if self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
                return false;
            }
            let d = wire.framed(&[0], f.as_bytes());
            self.sent
                .lock()
                .push((f.header().track_id, f.header().seq, d));
            true
        }
    }

    fn popped(out: &ConnOut) -> Vec<(MediaKind, u32, u32)> {
        let mut v = Vec::new();
        while let Some(p) = out.pop() {
            if let Popped::Media { frame, .. } = p {
                let h = frame.header();
                v.push((h.kind, h.track_id, h.seq));
            }
        }
        v
    }

    #[test]
    fn each_subscriber_gets_its_batch_in_order_with_audio_first() {
        let a = Arc::new(ConnOut::new(ConnId(1), Transport::WebSocket));
        let b = Arc::new(ConnOut::new(ConnId(2), Transport::WebSocket));
        let conns = [(ConnId(1), a.clone()), (ConnId(2), b.clone())]
            .into_iter()
            .collect();
        let mut fan = Fanout::default();
        // As the room emits them: frame by frame, every subscriber in turn.
        for seq in 0..3 {
            let v = frame(MediaKind::Video, 33, seq);
            fan.add(ConnId(1), v.clone());
            fan.add(ConnId(2), v);
            let au = frame(MediaKind::Audio, 17, seq);
            fan.add(ConnId(2), au.clone());
            fan.add(ConnId(1), au);
        }
        let m = crate::media::MediaMetrics::default();
        let mut feedback = Vec::new();
        fan.flush(&conns, &m, &mut feedback);
        assert!(fan.is_empty());
        let want: Vec<_> = (0..3)
            .map(|s| (MediaKind::Audio, 17, s))
            .chain((0..3).map(|s| (MediaKind::Video, 33, s)))
            .collect();
        assert_eq!(popped(&a), want);
        assert_eq!(popped(&b), want);
        assert_eq!(m.frames_out.load(std::sync::atomic::Ordering::Relaxed), 12);
    }

    #[test]
    fn fresh_audio_goes_direct_and_is_framed_once_per_frame() {
        let rec = Arc::new(Recorder::default());
        let mut conns = quicmeet_sfu::ConnMap::default();
        for id in 1..=3 {
            let o = Arc::new(ConnOut::new(ConnId(id), Transport::WebTransport));
            o.set_direct(Box::new(rec.clone()));
            conns.insert(ConnId(id), o);
        }
        let mut fan = Fanout::default();
        for seq in 0..2 {
            let au = frame(MediaKind::Audio, 17, seq);
            for id in 1..=3 {
                fan.add(ConnId(id), au.clone());
            }
        }
        let m = crate::media::MediaMetrics::default();
        fan.flush(&conns, &m, &mut Vec::new());
        let sent = rec.sent.lock();
        assert_eq!(sent.len(), 6, "nothing waits in a queue");
        for o in conns.values() {
            assert!(o.pop().is_none());
        }
        // Per subscriber in order; the three copies of one frame share one framed buffer.
        let seqs: Vec<u32> = sent.iter().map(|s| s.1).collect();
        assert_eq!(seqs, [0, 1, 0, 1, 0, 1]);
        for (i, s) in sent.iter().enumerate() {
            assert_eq!(s.2[0], 0, "the session prefix comes first");
            let first = sent.iter().find(|t| t.1 == s.1).unwrap();
            assert_eq!(s.2.as_ptr(), first.2.as_ptr(), "copy {i} was framed again");
        }
    }
}
