//! Publisher-made layers (PROTOCOL.md §5.6), sans-IO: which lower layers of its own tracks the
//! server asked this client to encode (`produce_layer`) and has not stopped yet (`stop_layer`).
//!
//! A client that published a video track with `layers_capable: true` feeds every server
//! message to [`LayerRequests::handle`] and starts or stops an encoder when it answers a
//! [`LayerChange`]; frames of a produced layer go out through a
//! [`crate::TrackPublisher::for_layer`], starting with a keyframe. A `keyframe_request` whose
//! `layer` is a produced one is for that encoder.

use std::collections::BTreeMap;

use quicmeet_proto::ServerMessage;

/// One layer the server asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerRequest {
    /// The client's own track.
    pub track_id: u32,
    /// 1 (half) or 2 (quarter).
    pub layer: u8,
    /// Requested width (0: halve the published width per layer).
    pub width: u32,
    /// Requested height (0: halve the published height per layer).
    pub height: u32,
    /// Target bitrate, bit/s.
    pub bitrate: u32,
}

/// What to do after a server message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerChange {
    /// Start encoding this layer (or retune it, when it already runs): first frame a keyframe.
    Start(LayerRequest),
    /// Stop encoding this layer.
    Stop {
        /// The track.
        track_id: u32,
        /// The layer.
        layer: u8,
    },
}

/// The layers this client makes now.
#[derive(Debug, Default, Clone)]
pub struct LayerRequests {
    active: BTreeMap<(u32, u8), LayerRequest>,
}

impl LayerRequests {
    /// Nothing asked yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one server message; `Some` when an encoder must start or stop. A request for a
    /// layer above 2 or for layer 0 is ignored (the full layer is always the client's).
    pub fn handle(&mut self, msg: &ServerMessage) -> Option<LayerChange> {
        match *msg {
            ServerMessage::ProduceLayer {
                track_id,
                layer,
                width,
                height,
                bitrate,
            } if (1..=2).contains(&layer) => {
                let req = LayerRequest {
                    track_id,
                    layer,
                    width,
                    height,
                    bitrate,
                };
                if self.active.insert((track_id, layer), req) == Some(req) {
                    return None;
                }
                Some(LayerChange::Start(req))
            }
            ServerMessage::StopLayer { track_id, layer } => self
                .active
                .remove(&(track_id, layer))
                .map(|_| LayerChange::Stop { track_id, layer }),
            ServerMessage::TrackUnpublished { track_id } => {
                let gone: Vec<u8> = self
                    .active
                    .keys()
                    .filter(|(t, _)| *t == track_id)
                    .map(|(_, l)| *l)
                    .collect();
                // Only the first matters to a caller that stops the track's encoders anyway.
                let first = gone.first().copied();
                self.active.retain(|(t, _), _| *t != track_id);
                first.map(|layer| LayerChange::Stop { track_id, layer })
            }
            _ => None,
        }
    }

    /// Whether the client makes `layer` of `track_id` now.
    pub fn is_active(&self, track_id: u32, layer: u8) -> bool {
        self.active.contains_key(&(track_id, layer))
    }

    /// The layers the client makes now, by track and layer.
    pub fn active(&self) -> impl Iterator<Item = &LayerRequest> {
        self.active.values()
    }

    /// Bit n set when layer n of `track_id` is made by the client now.
    pub fn mask(&self, track_id: u32) -> u8 {
        self.active
            .keys()
            .filter(|(t, _)| *t == track_id)
            .fold(0, |m, (_, l)| m | (1 << l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce(layer: u8) -> ServerMessage {
        ServerMessage::ProduceLayer {
            track_id: 17,
            layer,
            width: 640 >> (layer - 1),
            height: 360 >> (layer - 1),
            bitrate: 500_000,
        }
    }

    #[test]
    fn produce_starts_once_and_stop_stops() {
        let mut r = LayerRequests::new();
        assert!(matches!(
            r.handle(&produce(1)),
            Some(LayerChange::Start(LayerRequest {
                layer: 1,
                width: 640,
                ..
            }))
        ));
        assert_eq!(
            r.handle(&produce(1)),
            None,
            "a repeated request changes nothing"
        );
        assert!(r.handle(&produce(2)).is_some());
        assert_eq!(r.mask(17), 0b110);
        assert_eq!(
            r.handle(&ServerMessage::StopLayer {
                track_id: 17,
                layer: 1
            }),
            Some(LayerChange::Stop {
                track_id: 17,
                layer: 1
            })
        );
        assert_eq!(
            r.handle(&ServerMessage::StopLayer {
                track_id: 17,
                layer: 1
            }),
            None
        );
        assert!(!r.is_active(17, 1));
        assert!(r.is_active(17, 2));
    }

    #[test]
    fn the_full_layer_and_unknown_layers_are_never_produced() {
        let mut r = LayerRequests::new();
        for layer in [0, 3, 200] {
            let msg = ServerMessage::ProduceLayer {
                track_id: 17,
                layer,
                width: 1,
                height: 1,
                bitrate: 1,
            };
            assert_eq!(r.handle(&msg), None);
        }
        assert_eq!(r.mask(17), 0);
    }
}
