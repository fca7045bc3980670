//! Publisher-made layers (PROTOCOL.md §5.6): when the server's transcoder pool is saturated,
//! publishers that declared `layers_capable` are asked to encode the wanted lower layers
//! themselves (`produce_layer`), and are given them back one at a time (`stop_layer`) once the
//! pool has had room for a while.
//!
//! The saturation signal comes in as [`TranscoderLoad`] samples (about one a second); they are
//! also this module's clock, so it needs no timer. Each lower layer of a track has a source
//! ([`LayerSource`]); the source only ever changes at a keyframe of the new source, announced to
//! the layer's subscribers with `layer_changed`, so no subscriber sees a gap or a decoder
//! mismatch. The old source keeps flowing until then.

use std::time::{Duration, Instant};

use quicmeet_proto::{EncodedFrame, ServerMessage};

use super::types::LAYERS;
use super::{ConnId, Output, Recipients, Room, MAX_LAYER};

/// Who makes a lower layer of a track, and where a handover between the two stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerSource {
    /// The server's transcoder (the default).
    #[default]
    Server,
    /// `produce_layer` sent; the transcoder's frames flow until the publisher's first keyframe.
    Asked,
    /// The publisher makes the layer; the transcoder does not.
    Publisher,
    /// Given back: the transcoder runs again, the publisher's frames flow until the
    /// transcoder's first keyframe, then the publisher gets `stop_layer`.
    Returning,
}

/// One sample of the transcoder pool's load, fed with [`super::Input::TranscoderLoad`] about
/// once a second. The pool is shared by every room of a server, so every room gets the same
/// samples.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TranscoderLoad {
    /// Source frames the pool dropped since the previous sample because a track's queue was
    /// full: the pool cannot keep up.
    pub dropped: u64,
    /// Share of the pool's worker time spent decoding, scaling and encoding since the previous
    /// sample, 0 to 1.
    pub busy: f32,
    /// Lower layers the pool makes now, all rooms together.
    pub layers: u32,
    /// The operator's cap on `layers` (`--transcode-saturation-layers`): more counts as
    /// saturated. `None`: only dropped input does.
    pub max_layers: Option<u32>,
}

/// Settings of publisher-made layers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OffloadConfig {
    /// Ask capable publishers at all.
    pub enabled: bool,
    /// The pool has room when it dropped nothing and was busy less than this share.
    pub calm_busy: f32,
    /// How long the pool must have had room before a layer is given back, and between two
    /// layers given back, so the pool's load climbs back step by step and does not flap.
    pub hold: Duration,
    /// Bitrate asked for each layer of a 1280x720 source (index = layer); scaled down with the
    /// source's area like the transcoder's own targets (to no less than a quarter).
    pub layer_bitrate_bps: [u32; LAYERS],
}

impl Default for OffloadConfig {
    fn default() -> Self {
        OffloadConfig {
            enabled: true,
            calm_busy: 0.5,
            hold: Duration::from_secs(5),
            layer_bitrate_bps: [0, 500_000, 150_000],
        }
    }
}

/// The room's view of the pool.
#[derive(Debug, Default)]
pub(super) struct Offload {
    /// The last sample said the pool is saturated: newly wanted layers go to publishers too.
    pub(super) saturated: bool,
    /// Since when the pool has had room.
    calm_since: Option<Instant>,
    /// When a layer was last given back.
    last_release: Option<Instant>,
}

/// Area [`OffloadConfig::layer_bitrate_bps`] is given for.
const REFERENCE_AREA: u64 = 1280 * 720;

impl Room {
    /// Layers of a track (bit n = layer n) whose frames come from its publisher now. The
    /// server's transcoder does not make them, and keyframe requests for them go to the
    /// publisher (`keyframe_request{track_id, layer}`).
    pub fn publisher_layers(&self, track_id: u32) -> u8 {
        self.tracks.get(&track_id).map_or(0, |t| {
            t.sources
                .iter()
                .enumerate()
                .filter(|(_, s)| **s == LayerSource::Publisher)
                .fold(0, |m, (l, _)| m | (1 << l))
        })
    }

    /// Who makes a layer of a track now (`None`: no such video track or layer).
    pub fn layer_source(&self, track_id: u32, layer: u8) -> Option<LayerSource> {
        let t = self.tracks.get(&track_id)?;
        if !t.info.kind.is_video() {
            return None;
        }
        t.sources.get(layer as usize).copied()
    }

    /// A sample of the transcoder pool's load.
    pub(super) fn transcoder_load(&mut self, now: Instant, load: TranscoderLoad) {
        let cfg = self.config.offload;
        if !cfg.enabled {
            return;
        }
        let over_cap = load.max_layers.is_some_and(|m| load.layers > m);
        if load.dropped > 0 || over_cap {
            self.offload.saturated = true;
            self.offload.calm_since = None;
            let ids: Vec<u32> = self.tracks.keys().copied().collect();
            for id in ids {
                self.steer_sources(id);
            }
            return;
        }
        self.offload.saturated = false;
        let fits = load.max_layers.is_none_or(|m| load.layers < m);
        if load.busy >= cfg.calm_busy || !fits {
            self.offload.calm_since = None;
            return;
        }
        let since = *self.offload.calm_since.get_or_insert(now);
        let held = now >= since + cfg.hold;
        let spaced = self
            .offload
            .last_release
            .is_none_or(|t| now >= t + cfg.hold);
        if held && spaced {
            if let Some((id, layer)) = self.next_to_give_back() {
                self.give_back(now, id, layer);
                self.offload.last_release = Some(now);
            }
        }
    }

    /// The cheapest publisher-made layer to give back: an unanswered request first, then the
    /// smallest layer, lowest track id first.
    fn next_to_give_back(&self) -> Option<(u32, u8)> {
        let pick = |want: LayerSource| {
            (1..=MAX_LAYER).rev().find_map(|l| {
                self.tracks
                    .iter()
                    .find(|(_, t)| t.sources.get(l as usize) == Some(&want))
                    .map(|(id, _)| (*id, l))
            })
        };
        pick(LayerSource::Asked).or_else(|| pick(LayerSource::Publisher))
    }

    fn give_back(&mut self, now: Instant, track_id: u32, layer: u8) {
        let Some(src) = self.source_mut(track_id, layer) else {
            return;
        };
        match *src {
            // The transcoder never stopped: nothing to hand over.
            LayerSource::Asked => self.stop_publisher_layer(track_id, layer),
            LayerSource::Publisher => {
                *src = LayerSource::Returning;
                self.stats.publisher_layers_returned += 1;
                // The transcoder starts the layer again (with a keyframe); ask anyway in
                // case its encoder lingered.
                self.layers_version += 1;
                self.request_keyframe(now, track_id, layer);
            }
            LayerSource::Server | LayerSource::Returning => {}
        }
    }

    /// Brings a track's lower layers in line with what is wanted and with the pool: while it
    /// is saturated, every wanted layer of a capable track is asked of its publisher; a layer
    /// nobody wants any more is stopped at once.
    pub(super) fn steer_sources(&mut self, track_id: u32) {
        let Some(t) = self.tracks.get(&track_id) else {
            return;
        };
        if !t.info.kind.is_video() || !t.layers_capable {
            return;
        }
        // A remote participant's layers are its home node's business.
        if self.members.get(&t.owner).is_none_or(|m| m.remote) {
            return;
        }
        let (wanted, sources) = (t.wanted, t.sources);
        let saturated = self.offload.saturated && self.config.offload.enabled;
        for layer in 1..=MAX_LAYER {
            let want = wanted & (1 << layer) != 0;
            let Some(src) = sources.get(layer as usize) else {
                return self.violation();
            };
            match (*src, want) {
                (LayerSource::Server, true) if saturated => self.ask(track_id, layer),
                // Saturated again while giving back: keep the publisher's layer.
                (LayerSource::Returning, true) if saturated => {
                    if let Some(s) = self.source_mut(track_id, layer) {
                        *s = LayerSource::Publisher;
                        self.layers_version += 1;
                    }
                }
                (LayerSource::Server, false) | (_, true) => {}
                (_, false) => self.stop_publisher_layer(track_id, layer),
            }
        }
    }

    fn ask(&mut self, track_id: u32, layer: u8) {
        let bps = self.config.offload.layer_bitrate_bps;
        let Some(t) = self.tracks.get_mut(&track_id) else {
            return;
        };
        let (width, height) = t.layer_dims(layer);
        let nominal = u64::from(bps.get(layer as usize).copied().unwrap_or(0));
        let area = u64::from(t.info.width.unwrap_or(0)) * u64::from(t.info.height.unwrap_or(0));
        let bitrate = if area == 0 {
            nominal
        } else {
            (nominal * area.min(REFERENCE_AREA) / REFERENCE_AREA).max(nominal / 4)
        };
        let (Some(src), Some(told)) = (
            t.sources.get_mut(layer as usize),
            t.unrequested_told.get_mut(layer as usize),
        ) else {
            return self.violation();
        };
        *src = LayerSource::Asked;
        *told = false;
        let owner = t.owner;
        self.stats.produce_layer_sent += 1;
        self.send(
            owner,
            ServerMessage::ProduceLayer {
                track_id,
                layer,
                width,
                height,
                bitrate: bitrate.min(u64::from(u32::MAX)) as u32,
            },
        );
    }

    /// Tells the publisher to stop a layer; the server makes it (when wanted) from now on.
    fn stop_publisher_layer(&mut self, track_id: u32, layer: u8) {
        let Some(t) = self.tracks.get_mut(&track_id) else {
            return;
        };
        let (Some(src), Some(told)) = (
            t.sources.get_mut(layer as usize),
            t.unrequested_told.get_mut(layer as usize),
        ) else {
            return self.violation();
        };
        if *src == LayerSource::Server {
            return;
        }
        let forwarded_publisher = matches!(*src, LayerSource::Publisher | LayerSource::Returning);
        if *src == LayerSource::Publisher {
            self.layers_version += 1;
        }
        *src = LayerSource::Server;
        if forwarded_publisher {
            // The cached group is the publisher's: the transcoder's frames cannot continue it.
            // Nothing more of the layer goes out until the transcoder's next keyframe.
            let l = layer as usize;
            if let (Some(gop), Some(broken)) = (t.gops.get_mut(l), t.broken.get_mut(l)) {
                gop.complete = false;
                gop.frames.clear();
                gop.bytes = 0;
                *broken = true;
            }
        }
        // Frames still in flight after `stop_layer` are dropped without an error.
        *told = true;
        let owner = t.owner;
        self.stats.stop_layer_sent += 1;
        self.send(owner, ServerMessage::StopLayer { track_id, layer });
    }

    fn source_mut(&mut self, track_id: u32, layer: u8) -> Option<&mut LayerSource> {
        self.tracks
            .get_mut(&track_id)?
            .sources
            .get_mut(layer as usize)
    }

    /// A publisher's frame of a lower layer (already checked: its own video track, layer
    /// 1..=MAX_LAYER). True when it may be forwarded.
    pub(super) fn accept_publisher_layer(&mut self, from: ConnId, frame: &EncodedFrame) -> bool {
        let h = frame.header();
        let Some(t) = self.tracks.get_mut(&h.track_id) else {
            return false;
        };
        let l = h.layer as usize;
        let (Some(src), Some(told)) = (t.sources.get_mut(l), t.unrequested_told.get_mut(l)) else {
            self.violation();
            return false;
        };
        match *src {
            LayerSource::Publisher | LayerSource::Returning => true,
            LayerSource::Asked if h.keyframe => {
                *src = LayerSource::Publisher;
                self.stats.publisher_layers_started += 1;
                // The transcoder stops making it.
                self.layers_version += 1;
                self.announce_new_source(h.track_id, h.layer);
                true
            }
            LayerSource::Asked => {
                self.stats.skipped_waiting_keyframe += 1;
                false
            }
            LayerSource::Server => {
                self.stats.dropped.layer_not_requested += 1;
                if !std::mem::replace(told, true) {
                    self.error(
                        from,
                        "layer_not_requested",
                        "Send lower layers only after produce_layer (and until stop_layer)",
                    );
                }
                false
            }
        }
    }

    /// A transcoder frame (layer 1..=MAX_LAYER of a known video track). True when it may be
    /// forwarded.
    pub(super) fn accept_transcoder_layer(&mut self, frame: &EncodedFrame) -> bool {
        let h = frame.header();
        let Some(src) = self.source_mut(h.track_id, h.layer) else {
            return false;
        };
        match *src {
            LayerSource::Server | LayerSource::Asked => true,
            LayerSource::Returning if h.keyframe => {
                *src = LayerSource::Server;
                self.announce_new_source(h.track_id, h.layer);
                if let Some(t) = self.tracks.get_mut(&h.track_id) {
                    if let Some(told) = t.unrequested_told.get_mut(h.layer as usize) {
                        *told = true;
                    }
                    let owner = t.owner;
                    self.stats.stop_layer_sent += 1;
                    self.send(
                        owner,
                        ServerMessage::StopLayer {
                            track_id: h.track_id,
                            layer: h.layer,
                        },
                    );
                }
                true
            }
            LayerSource::Returning | LayerSource::Publisher => {
                self.stats.skipped_superseded += 1;
                false
            }
        }
    }

    /// The layer's frames come from another source from its next frame (a keyframe) on: tell
    /// the subscribers that get it now, so their decoders start over there.
    fn announce_new_source(&mut self, track_id: u32, layer: u8) {
        let Some(t) = self.tracks.get(&track_id) else {
            return;
        };
        let (width, height) = t.layer_dims(layer);
        let to: Vec<ConnId> = t
            .subs
            .iter()
            .filter(|s| s.current == Some(layer))
            .map(|s| s.conn)
            .collect();
        for conn in to {
            self.outputs.push_back(Output::Control {
                to: Recipients::One(conn),
                msg: ServerMessage::LayerChanged {
                    track_id,
                    layer,
                    width,
                    height,
                },
            });
        }
    }
}
