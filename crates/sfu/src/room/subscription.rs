//! Subscriptions and layers: subscribe, unsubscribe, the layer policy's choices, and the
//! switch to a new layer at its next keyframe (or at once from the cached group).

use std::time::Instant;

use quicmeet_proto::ServerMessage;

use super::state::Sub;
use super::{ConnId, Output, Recipients, Room, SfuError, MAX_LAYER};
use crate::bwe::{self, choose_layer, Cause};

impl Room {
    /// Layers of a track some subscriber forwards or waits for, as a bit mask (bit n =
    /// layer n). The server's transcoder makes layer n > 0 only while its bit is set.
    pub fn wanted_layers(&self, track_id: u32) -> u8 {
        self.tracks.get(&track_id).map_or(0, |t| wanted_of(&t.subs))
    }

    /// A subscriber's subscriptions: `(track_id, layer chosen, layer forwarded now)`.
    /// Audio tracks always report layer 0.
    pub fn subscriptions(
        &self,
        subscriber: ConnId,
    ) -> impl Iterator<Item = (u32, u8, Option<u8>)> + '_ {
        self.members
            .get(&subscriber)
            .map(|m| m.subscriptions.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(move |t| {
                let s = self
                    .tracks
                    .get(t)?
                    .subs
                    .iter()
                    .find(|s| s.conn == subscriber)?;
                Some((*t, s.preferred, s.current))
            })
    }

    /// A subscription's (chosen, currently forwarded) layer. The chosen layer is what the
    /// layer policy picked last; what the client itself asked for is
    /// `self.bwe().preferred(..)`.
    pub fn subscription_layer(
        &self,
        subscriber: ConnId,
        track_id: u32,
    ) -> Option<(u8, Option<u8>)> {
        let t = self.tracks.get(&track_id)?;
        let s = t.subs.iter().find(|s| s.conn == subscriber)?;
        Some((s.preferred, s.current))
    }

    /// Force the layer a subscriber gets for a video track, bypassing the layer policy until
    /// its next decision (for tools and tests; the client's own preference is kept).
    ///
    /// The switch happens at the next keyframe of that layer, which is requested now
    /// (rate-limited); the subscriber then gets `layer_changed` followed by that keyframe.
    /// Until then it keeps receiving its current layer.
    pub fn set_layer(
        &mut self,
        now: Instant,
        subscriber: ConnId,
        track_id: u32,
        layer: u8,
    ) -> Result<(), SfuError> {
        if layer > MAX_LAYER {
            return Err(SfuError::BadLayer(layer));
        }
        let track = self
            .tracks
            .get(&track_id)
            .ok_or(SfuError::UnknownTrack(track_id))?;
        if !track.info.kind.is_video() {
            return Err(SfuError::BadLayer(layer));
        }
        let idx = track
            .subs
            .iter()
            .position(|s| s.conn == subscriber)
            .ok_or(SfuError::NotSubscribed(track_id))?;
        self.now = self.now.max(now);
        self.switch_layer(now, track_id, idx, layer);
        Ok(())
    }

    pub(super) fn subscribe(
        &mut self,
        now: Instant,
        from: ConnId,
        track_id: u32,
        max_width: Option<u32>,
        max_height: Option<u32>,
        layer: Option<u8>,
    ) {
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return self.error(from, "unknown_track", "No such track");
        };
        let video = track.info.kind.is_video();
        let preferred = match layer {
            _ if !video => 0,
            Some(l) => l.min(MAX_LAYER),
            None => choose_layer(track.info.width, track.info.height, max_width, max_height),
        };
        if !track.subs.iter().any(|s| s.conn == from) {
            track.subs.push(Sub {
                conn: from,
                preferred,
                current: if video { None } else { Some(0) },
                pending: None,
                waiting: false,
            });
            if let Some(m) = self.members.get_mut(&from) {
                m.subscriptions.push(track_id);
            }
            if !video {
                // Audio is forwarded from the first frame: wanted now, which a cluster node
                // must tell the publisher's node (`layers_version`), or it never sends it.
                self.refresh_wanted(track_id);
            }
        }
        if video {
            // The policy answers with the layer to use: the preference, held down as far as
            // this subscriber's congestion requires.
            self.bwe.handle_input(
                now,
                bwe::Input::Subscribe {
                    conn: from,
                    track_id,
                    preferred,
                },
            );
            self.apply_bwe(now);
        }
    }

    pub(super) fn unsubscribe(&mut self, from: ConnId, track_id: u32) {
        if let Some(t) = self.tracks.get_mut(&track_id) {
            t.subs.retain(|s| s.conn != from);
        }
        if let Some(m) = self.members.get_mut(&from) {
            m.subscriptions.retain(|t| *t != track_id);
        }
        self.bwe.handle_input(
            self.now,
            bwe::Input::Unsubscribe {
                conn: from,
                track_id,
            },
        );
        self.refresh_wanted(track_id);
    }

    /// Carries out the layer policy's decisions.
    pub(super) fn apply_bwe(&mut self, now: Instant) {
        while let Some(out) = self.bwe.poll_output() {
            let bwe::Output::Layer {
                conn,
                track_id,
                layer,
                cause,
            } = out;
            let Some(track) = self.tracks.get(&track_id) else {
                continue;
            };
            let Some(idx) = track.subs.iter().position(|s| s.conn == conn) else {
                continue;
            };
            if !track.info.kind.is_video() || layer > MAX_LAYER {
                self.violation();
                continue;
            }
            let moves = track
                .subs
                .get(idx)
                .is_some_and(|s| s.current != Some(layer));
            self.switch_layer(now, track_id, idx, layer);
            if moves && cause != Cause::Preference {
                self.stats.layer_switches += 1;
            }
        }
    }

    /// Point a video subscription at `layer`: immediately from the cached group of pictures
    /// if it has none yet, otherwise at the layer's next keyframe.
    fn switch_layer(&mut self, now: Instant, track_id: u32, idx: usize, layer: u8) {
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return self.violation();
        };
        let (Some(sub), Some(gop)) = (track.subs.get_mut(idx), track.gops.get(layer as usize))
        else {
            return self.violation();
        };
        sub.preferred = layer;
        if sub.current == Some(layer) {
            sub.pending = None;
            return self.refresh_wanted(track_id);
        }
        if sub.current.is_none() && gop.complete && !gop.frames.is_empty() {
            // Late joiner: replay the current group so its decoder is in step at once.
            sub.current = Some(layer);
            sub.pending = None;
            sub.waiting = false;
            let to = sub.conn;
            let (width, height) = track.layer_dims(layer);
            self.outputs.push_back(Output::Control {
                to: Recipients::One(to),
                msg: ServerMessage::LayerChanged {
                    track_id,
                    layer,
                    width,
                    height,
                },
            });
            for f in &gop.frames {
                self.stats.frames_out += 1;
                self.stats.bytes_out += f.len() as u64;
                self.outputs.push_back(Output::Media {
                    to,
                    frame: f.clone(),
                });
            }
            return self.refresh_wanted(track_id);
        }
        sub.pending = Some(layer);
        self.refresh_wanted(track_id);
        self.request_keyframe(now, track_id, layer);
    }

    /// Re-reads which layers of a track are wanted; a change bumps `layers_version`, and a
    /// change of the best layer anybody wants is told to the publisher (`track_demand`), so
    /// it can send less when nobody needs its full layer.
    pub(super) fn refresh_wanted(&mut self, track_id: u32) {
        let Some(t) = self.tracks.get_mut(&track_id) else {
            return;
        };
        let wanted = wanted_of(&t.subs);
        let changed = wanted != t.wanted;
        if changed {
            t.wanted = wanted;
            self.layers_version += 1;
        }
        if !t.info.kind.is_video() {
            return;
        }
        if changed {
            self.steer_sources(track_id);
        }
        let Some(t) = self.tracks.get_mut(&track_id) else {
            return;
        };
        let viewers = t.subs.len();
        // While a subscription waits for its first layer, it wants that layer's source.
        let best = if wanted == 0 {
            0
        } else {
            wanted.trailing_zeros() as u8
        };
        let demand = (best, viewers > 0);
        if demand != t.demand {
            t.demand = demand;
            let owner = t.owner;
            self.send(
                owner,
                ServerMessage::TrackDemand {
                    track_id,
                    layer: best,
                    viewers: viewers as u32,
                },
            );
        }
    }
}

fn wanted_of(subs: &[Sub]) -> u8 {
    subs.iter().fold(0u8, |m, s| {
        let mut m = m;
        if let Some(c) = s.current {
            m |= 1 << c;
        }
        if let Some(p) = s.pending {
            m |= 1 << p;
        }
        m
    })
}
