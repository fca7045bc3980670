//! Server-made lower layers: the bridge between room actors and the transcoder's worker pool.
//!
//! A room starts a track's transcoder when some subscriber wants a lower layer of it and
//! tells it which layers are wanted; the pool's worker threads hand finished layer frames
//! back to the room through its input channel, like any other frame.
//!
//! It also measures the pool's load ([`LoadSampler`]): dropped input, busy share and how many
//! lower layers run, which every room's SFU turns into publisher-made layers when saturated.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Instant,
};

use bytes::Bytes;
use parking_lot::Mutex;
use quicmeet_proto::{Frame, FrameHeader, MediaKind};
use quicmeet_sfu::TranscoderLoad;
use quicmeet_transcode::MetricsSnapshot;
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
    /// Lower layers switched on, all tracks together.
    layers: Arc<AtomicU32>,
    workers: usize,
}

/// One track's transcoder, owned by its room. Dropping it stops the work.
pub struct TrackTranscoder {
    pub track: Track,
    key: u32,
    routes: Arc<Mutex<HashMap<u32, Route>>>,
    /// Layers (bit n = layer n) currently switched on.
    pub active: u8,
    layers: Arc<AtomicU32>,
}

impl Drop for TrackTranscoder {
    fn drop(&mut self) {
        self.routes.lock().remove(&self.key);
        self.layers
            .fetch_sub(self.active.count_ones(), Ordering::Relaxed);
    }
}

impl Transcoders {
    /// Starts the pool with `workers` threads at nice value `nice`, decoding what `temporal`
    /// says of two-temporal-layer publishers.
    pub fn new(
        workers: usize,
        nice: i32,
        temporal: quicmeet_transcode::pool::TemporalPolicy,
    ) -> anyhow::Result<Self> {
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
        let workers = workers.max(1);
        let config = PoolConfig {
            workers,
            nice,
            temporal,
            ..PoolConfig::default()
        };
        let pool = Pool::new(config, sink)
            .map_err(|e| anyhow::anyhow!("starting the transcoder pool: {e}"))?;
        Ok(Self {
            pool,
            routes,
            next_key: AtomicU32::new(1),
            layers: Arc::default(),
            workers,
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
            layers: self.layers.clone(),
        })
    }

    pub fn metrics(&self) -> quicmeet_transcode::metrics::MetricsSnapshot {
        self.pool.metrics().snapshot()
    }

    /// Lower layers switched on now, all tracks together.
    pub fn layers(&self) -> u32 {
        self.layers.load(Ordering::Relaxed)
    }
}

/// Turns the pool's counters into [`TranscoderLoad`] samples, one per call.
pub struct LoadSampler {
    last: MetricsSnapshot,
    at: Instant,
    max_layers: Option<u32>,
}

impl LoadSampler {
    pub fn new(xc: &Transcoders, max_layers: Option<u32>) -> Self {
        Self {
            last: xc.metrics(),
            at: Instant::now(),
            max_layers,
        }
    }

    /// What happened since the previous call.
    pub fn sample(&mut self, xc: &Transcoders) -> TranscoderLoad {
        let now_m = xc.metrics();
        let now = Instant::now();
        let wall_ns = now.saturating_duration_since(self.at).as_nanos() as f64;
        let work = |m: &MetricsSnapshot| m.decode_ns + m.scale_ns + m.encode_ns;
        let busy_ns = work(&now_m).saturating_sub(work(&self.last)) as f64;
        let busy = if wall_ns > 0.0 {
            (busy_ns / (wall_ns * xc.workers as f64)).clamp(0.0, 1.0) as f32
        } else {
            0.0
        };
        let load = TranscoderLoad {
            dropped: now_m
                .frames_dropped
                .saturating_sub(self.last.frames_dropped),
            busy,
            layers: xc.layers(),
            max_layers: self.max_layers,
        };
        self.last = now_m;
        self.at = now;
        load
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
        self.layers
            .fetch_add(wanted.count_ones(), Ordering::Relaxed);
        self.layers
            .fetch_sub(self.active.count_ones(), Ordering::Relaxed);
        self.active = wanted;
    }
}
