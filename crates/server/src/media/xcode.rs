//! Server-made lower layers: the bridge between room actors and the transcoder's worker pool.
//!
//! A room starts a track's transcoder when some subscriber wants a lower layer of it and
//! tells it which layers are wanted; the pool's worker threads hand finished layer frames
//! back to the room through its input channel, like any other frame.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
};

use bytes::Bytes;
use parking_lot::Mutex;
use quicmeet_proto::{Frame, FrameHeader, MediaKind};
use quicmeet_transcode::{
    layers::{Config, TrackKind},
    pool::{Pool, PoolConfig, PoolEvent, Track},
};
use tokio::sync::mpsc;

use super::room::RoomCmd;

struct Route {
    room: mpsc::Sender<RoomCmd>,
    track_id: u32,
    kind: MediaKind,
}

/// The shared transcoder pool and where its output goes.
pub struct Transcoders {
    pool: Pool,
    routes: Arc<Mutex<HashMap<u32, Route>>>,
    next_key: AtomicU32,
}

/// One track's transcoder, owned by its room. Dropping it stops the work.
pub struct TrackTranscoder {
    pub track: Track,
    key: u32,
    routes: Arc<Mutex<HashMap<u32, Route>>>,
    /// Layers (bit n = layer n) currently switched on.
    pub active: u8,
}

impl Drop for TrackTranscoder {
    fn drop(&mut self) {
        self.routes.lock().remove(&self.key);
    }
}

impl Transcoders {
    pub fn new(workers: usize) -> anyhow::Result<Self> {
        let routes: Arc<Mutex<HashMap<u32, Route>>> = Arc::default();
        let r2 = routes.clone();
        let sink = move |ev: PoolEvent| match ev {
            PoolEvent::Frame {
                track_id: key,
                frame,
            } => {
                let routes = r2.lock();
                let Some(route) = routes.get(&key) else {
                    return;
                };
                let header = FrameHeader {
                    kind: route.kind,
                    layer: frame.layer,
                    keyframe: frame.keyframe,
                    track_id: route.track_id,
                    seq: frame.seq,
                    capture_ts_us: frame.pts_us,
                    audio_level: None,
                    payload_len: 0,
                };
                if let Ok(encoded) = Frame::new(header, frame.data).encode() {
                    let _ = route.room.try_send(RoomCmd::LayerMedia(encoded));
                }
            }
            PoolEvent::SourceKeyframeNeeded { track_id: key } => {
                let routes = r2.lock();
                if let Some(route) = routes.get(&key) {
                    let _ = route.room.try_send(RoomCmd::SourceKeyframe(route.track_id));
                }
            }
        };
        let config = PoolConfig {
            workers: workers.max(1),
            ..PoolConfig::default()
        };
        let pool = Pool::new(config, sink)
            .map_err(|e| anyhow::anyhow!("starting the transcoder pool: {e}"))?;
        Ok(Self {
            pool,
            routes,
            next_key: AtomicU32::new(1),
        })
    }

    /// Starts a transcoder for a room's video track.
    pub fn start(
        &self,
        room: mpsc::Sender<RoomCmd>,
        track_id: u32,
        kind: MediaKind,
    ) -> Option<TrackTranscoder> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let tk = if kind == MediaKind::Screen {
            TrackKind::Screen
        } else {
            TrackKind::Camera
        };
        let track = match self.pool.add_track(key, Config::new(tk)) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, track_id, "could not start a transcoder");
                return None;
            }
        };
        self.routes.lock().insert(
            key,
            Route {
                room,
                track_id,
                kind,
            },
        );
        Some(TrackTranscoder {
            track,
            key,
            routes: self.routes.clone(),
            active: 0,
        })
    }

    pub fn metrics(&self) -> quicmeet_transcode::metrics::MetricsSnapshot {
        self.pool.metrics().snapshot()
    }
}

impl TrackTranscoder {
    /// Feeds a publisher's full-quality frame.
    pub fn push(&self, payload: Bytes, capture_ts_us: u64, keyframe: bool) -> bool {
        matches!(
            self.track.push(payload, capture_ts_us, keyframe),
            quicmeet_transcode::pool::Submit::Queued
        )
    }

    /// Switches layers on and off to match `wanted` (bit n = layer n; bit 0 is ignored).
    pub fn set_wanted(&mut self, wanted: u8) {
        let wanted = wanted & !1;
        if wanted == self.active {
            return;
        }
        for layer in 1..=quicmeet_sfu::MAX_LAYER {
            let bit = 1 << layer;
            if wanted & bit != self.active & bit {
                self.track.set_active(layer, wanted & bit != 0);
            }
        }
        self.active = wanted;
    }
}
