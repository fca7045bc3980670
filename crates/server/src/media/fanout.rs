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

use std::{collections::HashMap, sync::atomic::Ordering, sync::Arc};

use quicmeet_proto::EncodedFrame;
use quicmeet_sfu::{bwe::Feedback, ConnId, Input, Pushed, QueueEvent};
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
        conns: &HashMap<ConnId, Arc<ConnOut>>,
        m: &MediaMetrics,
        feedback: &mut Vec<Input>,
    ) {
        if self.pending.is_empty() {
            return;
        }
        self.pending
            .sort_unstable_by_key(|p| (p.to, p.video, p.order));
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
