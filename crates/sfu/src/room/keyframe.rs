//! Keyframe requests: a subscriber that lost its place waits for the next keyframe, which is
//! asked of the publisher (layer 0) or the transcoder (lower layers) at most once per
//! [`super::RoomConfig::keyframe_request_interval`] per track and layer; a request the limit
//! held back is sent when the interval ends unless a keyframe came first.

use std::time::Instant;

use super::timer::Timer;
use super::{ConnId, Output, Room, MAX_LAYER};

impl Room {
    /// A subscriber's queue or transport dropped part of a group: it waits for a keyframe.
    pub(super) fn keyframe_needed(&mut self, now: Instant, from: ConnId, track_id: u32) {
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        if !track.info.kind.is_video() {
            return;
        }
        let Some(sub) = track.subs.iter_mut().find(|s| s.conn == from) else {
            return;
        };
        let layer = match (sub.current, sub.pending) {
            (Some(c), _) => {
                sub.waiting = true;
                c
            }
            (None, Some(p)) => p,
            (None, None) => return,
        };
        self.request_keyframe(now, track_id, layer);
    }

    /// The subscriber's decoder asked for a keyframe (`keyframe_request`).
    pub(super) fn subscriber_keyframe_request(
        &mut self,
        now: Instant,
        from: ConnId,
        track_id: u32,
    ) {
        let layer = self.tracks.get(&track_id).and_then(|t| {
            t.subs
                .iter()
                .find(|s| s.conn == from)
                .map(|s| s.current.or(s.pending).unwrap_or(0))
        });
        match layer {
            Some(l) => self.request_keyframe(now, track_id, l),
            None => self.error(from, "not_subscribed", "Subscribe to the track first"),
        }
    }

    pub(super) fn request_keyframe(&mut self, now: Instant, track_id: u32, layer: u8) {
        let interval = self.config.keyframe_request_interval;
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        if !track.info.kind.is_video() || layer > MAX_LAYER {
            return;
        }
        let Some(k) = track.keyframes.get_mut(layer as usize) else {
            return;
        };
        if let Some(sent) = k.last_sent.filter(|t| now < *t + interval) {
            k.deferred = true;
            self.stats.keyframe_requests_coalesced += 1;
            self.timers
                .set_earlier(Timer::KeyframeRetry, sent + interval);
            return;
        }
        k.last_sent = Some(now);
        k.deferred = false;
        self.stats.keyframe_requests += 1;
        self.outputs.push_back(Output::KeyframeRequest {
            publisher: track.owner,
            track_id,
            layer,
        });
    }

    /// Sends the held-back requests whose interval ended, and re-arms the timer for the
    /// rest.
    pub(super) fn retry_keyframes(&mut self, now: Instant) {
        let interval = self.config.keyframe_request_interval;
        let mut due: Vec<(u32, u8)> = Vec::new();
        let mut later: Option<Instant> = None;
        for (id, t) in &self.tracks {
            for (l, k) in t.keyframes.iter().enumerate() {
                if !k.deferred {
                    continue;
                }
                match k.last_sent.map(|s| s + interval) {
                    Some(at) if now < at => later = Some(later.map_or(at, |x| x.min(at))),
                    _ => due.push((*id, l as u8)),
                }
            }
        }
        self.timers.stop(Timer::KeyframeRetry);
        if let Some(at) = later {
            self.timers.set(Timer::KeyframeRetry, at);
        }
        for (id, l) in due {
            self.request_keyframe(now, id, l);
        }
    }
}
