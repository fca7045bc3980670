//! The media hot path: checking a publisher's frame, caching the current group of pictures
//! for late joiners, and handing the frame to every subscriber that should get it.

use std::time::Instant;

use quicmeet_proto::track::{self, Slot};
use quicmeet_proto::{EncodedFrame, ServerMessage};

use super::{speaker, ConnId, LayerSource, Output, Recipients, Room, MAX_LAYER};

impl Room {
    pub(super) fn media(&mut self, now: Instant, from: ConnId, frame: EncodedFrame) {
        let Some(m) = self.members.get_mut(&from) else {
            self.stats.dropped.unknown_sender += 1;
            return;
        };
        if !m.admitted() {
            self.stats.dropped.not_admitted += 1;
            return;
        }
        let len = frame.len();
        // Both buckets are checked before either is charged, so a refused frame costs nothing.
        let pid = m.pid;
        // A remote participant's home node already charged its publish budget.
        let within = m.publish_frames.has(now, 1.0) && m.publish_bytes.has(now, len as f64);
        if !m.remote && !within {
            self.stats.dropped.rate_limited += 1;
            self.break_group(now, pid, &frame);
            self.count_flood(now, from);
            return;
        }
        m.publish_frames.try_take(now, 1.0);
        m.publish_bytes.try_take(now, len as f64);
        if len > self.config.max_frame_len {
            self.stats.dropped.oversized += 1;
            self.break_group(now, pid, &frame);
            return;
        }
        let h = *frame.header();
        if track::participant_of(h.track_id) != m.pid {
            self.stats.dropped.not_owner += 1;
            return;
        }
        let Some(track) = self.tracks.get(&h.track_id) else {
            self.stats.dropped.unpublished += 1;
            return;
        };
        if track.info.kind != h.kind {
            self.stats.dropped.kind_mismatch += 1;
            return;
        }
        if h.layer > MAX_LAYER {
            self.stats.dropped.bad_layer += 1;
            return;
        }
        if let (Some(level), Some(Slot::Mic)) = (h.audio_level, track::slot_of(h.track_id)) {
            if !m.audio_muted {
                speaker::hear(m, now, level);
                self.arm_speaker();
            }
        }
        // A lower layer from the publisher only when it was asked to make it. A remote
        // participant's lower layers were made (and checked) on its home node.
        let remote = self.members.get(&from).is_some_and(|m| m.remote);
        if h.layer > 0 && h.kind.is_video() && !remote && !self.accept_publisher_layer(from, &frame)
        {
            return;
        }
        self.forward(frame);
    }

    /// A real frame of a publisher's video group was refused: the rest of the group is
    /// undecodable, so stop forwarding and caching it and ask for a new keyframe.
    fn break_group(&mut self, now: Instant, pid: u32, frame: &EncodedFrame) {
        let h = frame.header();
        if !h.kind.is_video() || h.layer > MAX_LAYER || track::participant_of(h.track_id) != pid {
            return;
        }
        let Some(t) = self.tracks.get_mut(&h.track_id) else {
            return;
        };
        if t.info.kind != h.kind {
            return;
        }
        let l = h.layer as usize;
        // A lower layer's group is the publisher's only while it makes that layer; otherwise
        // the refused frame was never going to be forwarded and the transcoder's group is
        // intact.
        let publisher_made = matches!(
            t.sources.get(l),
            Some(LayerSource::Publisher | LayerSource::Returning)
        );
        if l > 0 && !publisher_made {
            return;
        }
        let (Some(broken), Some(gop)) = (t.broken.get_mut(l), t.gops.get_mut(l)) else {
            return self.violation();
        };
        *broken = true;
        gop.complete = false;
        gop.frames.clear();
        gop.bytes = 0;
        let wanted = t.subs.iter().any(|s| s.current == Some(h.layer));
        if wanted {
            self.request_keyframe(now, h.track_id, h.layer);
        }
    }

    pub(super) fn layer_media(&mut self, _now: Instant, frame: EncodedFrame) {
        let h = *frame.header();
        if !h.kind.is_video() || h.layer == 0 || h.layer > MAX_LAYER {
            self.stats.dropped.bad_layer += 1;
            return;
        }
        match self.tracks.get(&h.track_id) {
            Some(t) if t.info.kind == h.kind => {
                if self.accept_transcoder_layer(&frame) {
                    self.forward(frame)
                }
            }
            Some(_) => self.stats.dropped.kind_mismatch += 1,
            None => self.stats.dropped.unpublished += 1,
        }
    }

    /// The hot path: hand one frame to every subscriber that should get it. No allocation
    /// in steady state: outputs go into a pre-sized deque, frames are shared `Bytes`.
    fn forward(&mut self, frame: EncodedFrame) {
        let h = *frame.header();
        let len = frame.len() as u64;
        self.stats.frames_in += 1;
        self.stats.bytes_in += len;
        let Some(track) = self.tracks.get_mut(&h.track_id) else {
            return;
        };
        let video = h.kind.is_video();
        let layer = h.layer as usize;
        let mut switched = false;
        if let Some(b) = track.rx_bytes.get_mut(layer) {
            *b += len;
        }
        if video {
            let (Some(broken), Some(gop), Some(kf)) = (
                track.broken.get_mut(layer),
                track.gops.get_mut(layer),
                track.keyframes.get_mut(layer),
            ) else {
                return self.violation();
            };
            if h.keyframe {
                *broken = false;
            } else if *broken {
                self.stats.skipped_broken_group += 1;
                return;
            }
            if h.keyframe {
                gop.frames.clear();
                gop.bytes = 0;
                gop.complete = true;
                kf.deferred = false;
            }
            if gop.complete {
                if gop.frames.len() < self.config.gop_cache_frames
                    && gop.bytes + frame.len() <= self.config.gop_cache_bytes
                {
                    gop.bytes += frame.len();
                    gop.frames.push(frame.clone());
                } else {
                    gop.complete = false;
                    gop.frames.clear();
                    gop.bytes = 0;
                }
            }
        }
        for sub in track.subs.iter_mut() {
            if video {
                if h.keyframe && sub.pending == Some(h.layer) {
                    sub.current = Some(h.layer);
                    sub.pending = None;
                    sub.waiting = false;
                    switched = true;
                    let w = track.info.width.unwrap_or(0) >> h.layer;
                    let hh = track.info.height.unwrap_or(0) >> h.layer;
                    self.outputs.push_back(Output::Control {
                        to: Recipients::One(sub.conn),
                        msg: ServerMessage::LayerChanged {
                            track_id: h.track_id,
                            layer: h.layer,
                            width: w,
                            height: hh,
                        },
                    });
                }
                if sub.current != Some(h.layer) {
                    continue;
                }
                if sub.waiting {
                    if !h.keyframe {
                        self.stats.skipped_waiting_keyframe += 1;
                        continue;
                    }
                    sub.waiting = false;
                }
            }
            self.stats.frames_out += 1;
            self.stats.bytes_out += len;
            self.outputs.push_back(Output::Media {
                to: sub.conn,
                frame: frame.clone(),
            });
        }
        if switched {
            self.refresh_wanted(h.track_id);
        }
    }
}
