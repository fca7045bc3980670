//! [`LayerTranscoder`]: lower simulcast layers for one published VP8 track, sans-IO.
//!
//! The caller feeds source frames with [`LayerTranscoder::push`] and says which layers have
//! subscribers with [`LayerTranscoder::set_active`]; time only enters through the `now`
//! arguments, so tests drive it with a made-up clock. Nothing here blocks on I/O, but
//! everything is CPU-bound: run it on the [`crate::Pool`], not on the async runtime.
//!
//! Life of a layer: activation opens its encoder (lazily, on the next decoded frame) and forces
//! a keyframe; deactivation starts a linger period after which [`LayerTranscoder::tick`] drops
//! the encoder; re-activation within the linger reuses the encoder (with a forced keyframe).
//! The source is decoded only while at least one layer is active; when decoding (re)starts the
//! transcoder waits for a source keyframe and says so through
//! [`LayerTranscoder::wants_source_keyframe`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ffmpeg_next::codec::encoder;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::{frame, Packet};

use crate::halve;
use crate::metrics::{EncoderGauge, Metrics};
use crate::vp8::{self, EncoderSettings, Vp8Decoder};
use crate::{Error, Result};

/// What a published video track shows; decides the default layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// A camera: lower layers are smaller.
    Camera,
    /// A screen share: lower layers keep the resolution (text must stay legible) and drop
    /// frames instead.
    Screen,
}

/// One lower layer, relative to whatever the source turns out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSpec {
    /// Layer number on the wire (1 or 2; 0 is the publisher's own layer).
    pub layer: u8,
    /// Width and height are the source's divided by this (1 = same size). Never upscales.
    pub divisor: u32,
    /// Encode every `frame_step`-th source frame (1 = every frame).
    pub frame_step: u32,
    /// Target bitrate for a 1280x720 source; scaled down with the source's area (to no less
    /// than a quarter of it) for smaller sources.
    pub bitrate_bps: u32,
    /// libvpx `cpu-used` of this layer's encoder. Negative values are a fixed speed (-16 is the
    /// fastest); positive ones make libvpx pick its own speed from a time budget, which
    /// wastes CPU on small pictures and varies with machine load (see [`vp8::CPU_USED`]).
    pub cpu_used: i32,
    /// libvpx `static-thresh` of this layer's encoder (its "encode breakout"): a macroblock whose
    /// inter prediction leaves a luma error (sum of squared differences over its 256 pixels)
    /// below it, and a chroma error below half of it, is coded with no residual and no further
    /// mode search. 1 leaves only libvpx's own floor (the quantizer's step squared / 16).
    pub static_thresh: u32,
}

/// Reference area for [`LayerSpec::bitrate_bps`].
const REFERENCE_AREA: u64 = 1280 * 720;
/// Largest source accepted (4K UHD); bigger keyframes are refused before decoding.
pub const MAX_SOURCE_PIXELS: u64 = 3840 * 2160;
/// Smallest layer side we bother to make.
const MIN_SIDE: u32 = 16;
/// libvpx speed of the camera layers (source / 2, source / 4): the fastest settings that keep
/// each layer within 1 dB PSNR of the old time-budget mode on the 720p test pattern (the 180p
/// layer is cheap and bit-starved at 150 kbit/s, so it keeps a slower, better search).
const CAMERA_CPU_USED: [i32; 2] = [-12, -8];
/// libvpx encode breakout of the camera layers (source / 2, source / 4). A camera's picture is
/// mostly a still background under sensor noise: below these thresholds a macroblock costs
/// almost nothing. Chosen on the camera-like scene with `examples/capacity.rs --scene camera`
/// (BENCHMARKS.md section 4, fourth pass): an error of 2000 over 256 pixels is an RMS error
/// under 3 levels; the 180p layer's macroblocks cover four times the picture, so it takes half.
const CAMERA_STATIC_THRESH: [u32; 2] = [2000, 1000];
/// Encode breakout of the screen layers.
const SCREEN_STATIC_THRESH: u32 = 100;
/// libvpx `cpu-used` of the screen layers: unchanged (time-budget mode), because no screen
/// content has been measured yet; they run at a third of the frame rate or less.
const SCREEN_CPU_USED: i32 = vp8::CPU_USED;

/// The swscale filter that makes the smaller layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScaleFilter {
    /// swscale's fast bilinear (a cheaper, less exact bilinear).
    FastBilinear,
    /// Bilinear.
    Bilinear,
    /// Bicubic.
    Bicubic,
    /// Area averaging.
    Area,
    /// Lanczos (the sharpest, and the slowest).
    Lanczos,
    /// Average of each 2×2 block, by our own code, for exact 2:1 steps (what [`Self::Area`]
    /// computes there, at a fraction of the cost); swscale's area filter for other ratios.
    Box2,
}

impl ScaleFilter {
    pub(crate) fn flags(self) -> scaling::Flags {
        match self {
            ScaleFilter::FastBilinear => scaling::Flags::FAST_BILINEAR,
            ScaleFilter::Bilinear => scaling::Flags::BILINEAR,
            ScaleFilter::Bicubic => scaling::Flags::BICUBIC,
            ScaleFilter::Area | ScaleFilter::Box2 => scaling::Flags::AREA,
            ScaleFilter::Lanczos => scaling::Flags::LANCZOS,
        }
    }
}

/// How the pictures are made: knobs that trade CPU for quality, shared by every layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// Scale a layer from a larger layer's picture of the same frame when its divisor is a
    /// multiple of that layer's (180p from 360p instead of from 720p): a quarter of the pixels
    /// to read. Only applies while the larger layer is made for that frame too.
    pub cascade: bool,
    /// The scaling filter.
    pub filter: ScaleFilter,
    /// Threads per layer encoder. One is the most work per core; more only cut latency.
    pub encoder_threads: usize,
    /// libvpx error resilience (entropy contexts reset every frame, so a decoder can go on past
    /// a lost frame). It costs bits, and buys nothing here: receivers wait for a keyframe after
    /// any gap in `seq` (docs/PROTOCOL.md).
    pub error_resilient: bool,
    /// How the source is decoded.
    pub decoder: vp8::DecoderSettings,
    /// VP8 profile of each layer encoder, in the order of the layers (missing = 0). Measured
    /// in BENCHMARKS.md section 4, sixth pass, and left at 0.
    pub profiles: Vec<u8>,
    /// Layer encoders predict from the last frame only (no golden or altref search; scaled
    /// layers only). Measured there too, and left off.
    pub last_ref_only: bool,
}

impl Default for Tuning {
    /// The measured best (BENCHMARKS.md, section 4): cascade on; the 2×2 box filter (exact
    /// 2:1 steps cost a fifth of swscale's bilinear and are sharper: bilinear twice in a
    /// cascade blurs the 180p layer by 1 dB); one encoder thread; no error resilience; the
    /// source decoded in full. Skipping the decoder's loop filter saves 15–20 % of the decode,
    /// but the decoder's pictures then drift from the publisher's until the next source
    /// keyframe, and how much depends on the source: measured three times, the layers lost
    /// 0.2–0.9 dB against the transcoder before issue 15, and once 4.5 dB. Frames no later
    /// frame refers to are skipped: a publisher that sends two temporal layers (`L1T2`) then
    /// costs half (its lower layers come at half its frame rate, from exact references; seventh
    /// pass), and one that does not loses nothing, since all its frames are references.
    fn default() -> Self {
        Tuning {
            cascade: true,
            filter: ScaleFilter::Box2,
            encoder_threads: 1,
            error_resilient: false,
            decoder: vp8::DecoderSettings {
                skip_nonref: true,
                ..vp8::DecoderSettings::default()
            },
            profiles: Vec::new(),
            last_ref_only: false,
        }
    }
}

impl LayerSpec {
    /// Default lower layers for a track kind.
    ///
    /// Camera: layer 1 = source / 2 at 500 kbit/s, layer 2 = source / 4 at 150 kbit/s (640x360
    /// and 320x180 from 720p; 320x240 and 160x120 from 640x480). Screen: full resolution at a
    /// third (layer 1, 600 kbit/s) and a sixth (layer 2, 250 kbit/s) of the frame rate.
    /// Camera speeds were chosen with `examples/capacity.rs` (BENCHMARKS.md, section 4).
    pub fn defaults(kind: TrackKind) -> Vec<LayerSpec> {
        match kind {
            TrackKind::Camera => vec![
                LayerSpec {
                    layer: 1,
                    divisor: 2,
                    frame_step: 1,
                    bitrate_bps: 500_000,
                    cpu_used: CAMERA_CPU_USED[0],
                    static_thresh: CAMERA_STATIC_THRESH[0],
                },
                LayerSpec {
                    layer: 2,
                    divisor: 4,
                    frame_step: 1,
                    bitrate_bps: 150_000,
                    cpu_used: CAMERA_CPU_USED[1],
                    static_thresh: CAMERA_STATIC_THRESH[1],
                },
            ],
            TrackKind::Screen => vec![
                LayerSpec {
                    layer: 1,
                    divisor: 1,
                    frame_step: 3,
                    bitrate_bps: 600_000,
                    cpu_used: SCREEN_CPU_USED,
                    static_thresh: SCREEN_STATIC_THRESH,
                },
                LayerSpec {
                    layer: 2,
                    divisor: 1,
                    frame_step: 6,
                    bitrate_bps: 250_000,
                    cpu_used: SCREEN_CPU_USED,
                    static_thresh: SCREEN_STATIC_THRESH,
                },
            ],
        }
    }

    /// Output size for a `src_w`×`src_h` source, or `None` if this layer would not be smaller
    /// than the source (in size or frame rate) or would be tinier than 16 pixels on a side.
    /// Sizes are rounded down to even numbers (YUV 4:2:0).
    pub fn output_size(&self, src_w: u32, src_h: u32) -> Option<(u32, u32)> {
        let d = self.divisor.max(1);
        if d == 1 {
            return (self.frame_step > 1 && src_w > 0 && src_h > 0).then_some((src_w, src_h));
        }
        let (w, h) = ((src_w / d) & !1, (src_h / d) & !1);
        (w >= MIN_SIDE && h >= MIN_SIDE && w < src_w && h < src_h).then_some((w, h))
    }

    /// Bitrate for this layer from a `src_w`×`src_h` source.
    pub fn bitrate_for(&self, src_w: u32, src_h: u32) -> u32 {
        let area = u64::from(src_w) * u64::from(src_h);
        let scaled = u64::from(self.bitrate_bps) * area.min(REFERENCE_AREA) / REFERENCE_AREA;
        scaled.max(u64::from(self.bitrate_bps) / 4) as u32
    }
}

/// Configuration of one [`LayerTranscoder`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Camera or screen.
    pub kind: TrackKind,
    /// The lower layers to offer.
    pub layers: Vec<LayerSpec>,
    /// How long an encoder stays open after its last subscriber left.
    pub linger: Duration,
    /// Nominal source frame rate (a rate-control hint).
    pub fps_hint: u32,
    /// Safety-net keyframe interval of the layer encoders, in encoded frames.
    pub gop: u32,
    /// CPU/quality knobs.
    pub tuning: Tuning,
}

impl Config {
    /// Defaults for a track kind: [`LayerSpec::defaults`], 5 s linger, 30 fps, 10 s GOP.
    pub fn new(kind: TrackKind) -> Self {
        Config {
            kind,
            layers: LayerSpec::defaults(kind),
            linger: Duration::from_secs(5),
            fps_hint: 30,
            gop: 300,
            tuning: Tuning::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        for (i, l) in self.layers.iter().enumerate() {
            if l.layer == 0 {
                return Err(Error::InvalidConfig("layer 0 is the source".into()));
            }
            if l.divisor == 0 || l.frame_step == 0 || l.bitrate_bps == 0 {
                return Err(Error::InvalidConfig(format!(
                    "layer {}: zero field",
                    l.layer
                )));
            }
            if l.divisor == 1 && l.frame_step == 1 {
                return Err(Error::InvalidConfig(format!(
                    "layer {} would equal the source",
                    l.layer
                )));
            }
            if self.layers[..i].iter().any(|o| o.layer == l.layer) {
                return Err(Error::InvalidConfig(format!("layer {} twice", l.layer)));
            }
        }
        Ok(())
    }
}

/// One encoded frame of a lower layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFrame {
    /// Layer number (1, 2, …).
    pub layer: u8,
    /// VP8 payload.
    pub data: Bytes,
    /// Whether this is a keyframe.
    pub keyframe: bool,
    /// Capture timestamp copied from the source frame, µs.
    pub pts_us: u64,
    /// Per-layer sequence number, +1 per output frame of this layer (wrapping).
    pub seq: u32,
    /// Coded width.
    pub width: u32,
    /// Coded height.
    pub height: u32,
}

/// What one layer cost so far ([`LayerTranscoder::layer_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Frames encoded.
    pub frames: u64,
    /// Payload bytes produced.
    pub bytes: u64,
    /// Time spent scaling pictures for this layer, ns.
    pub scale_ns: u64,
    /// Time spent encoding this layer, ns.
    pub encode_ns: u64,
}

/// A scaler and the input it was built for.
struct Scaler {
    input: (u32, u32, Pixel),
    context: scaling::Context,
}

/// An open encoder for one layer plus its scaler.
struct LayerEncoder {
    encoder: encoder::video::Encoder,
    /// `None` until the layer needs scaling; rebuilt when its input changes (the source's size,
    /// or a cascade switching between the source and a larger layer).
    scaler: Option<Scaler>,
    scaled: frame::Video,
    width: u32,
    height: u32,
    last_pts: i64,
    _gauge: EncoderGauge,
}

struct LayerState {
    spec: LayerSpec,
    active: bool,
    idle_since: Option<Instant>,
    encoder: Option<LayerEncoder>,
    next_seq: u32,
    force_keyframe: bool,
    /// Source frames seen since activation, for `frame_step`.
    seen: u64,
    stats: LayerStats,
}

/// Lower layers for one published VP8 track. See the [module docs](self).
pub struct LayerTranscoder {
    config: Config,
    metrics: Arc<Metrics>,
    decoder: Option<Vp8Decoder>,
    waiting_keyframe: bool,
    source: Option<(u32, u32, Pixel)>,
    layers: Vec<LayerState>,
    /// Indices into `layers`, largest pictures first, so a cascade finds its input made.
    order: Vec<usize>,
    packets: Vec<Packet>,
}

impl std::fmt::Debug for LayerTranscoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerTranscoder")
            .field("kind", &self.config.kind)
            .field("source", &self.source.map(|(w, h, _)| (w, h)))
            .field("active", &self.active_layers())
            .field("waiting_keyframe", &self.waiting_keyframe)
            .finish_non_exhaustive()
    }
}

impl LayerTranscoder {
    /// A transcoder with its own counters.
    pub fn new(config: Config) -> Result<Self> {
        Self::with_metrics(config, Metrics::new_shared())
    }

    /// A transcoder reporting into shared counters.
    pub fn with_metrics(config: Config, metrics: Arc<Metrics>) -> Result<Self> {
        config.validate()?;
        crate::init();
        let layers = config
            .layers
            .iter()
            .map(|spec| LayerState {
                spec: spec.clone(),
                active: false,
                idle_since: None,
                encoder: None,
                next_seq: 0,
                force_keyframe: true,
                seen: 0,
                stats: LayerStats::default(),
            })
            .collect();
        let mut order: Vec<usize> = (0..config.layers.len()).collect();
        order.sort_by_key(|&i| config.layers[i].divisor);
        Ok(LayerTranscoder {
            config,
            metrics,
            decoder: None,
            waiting_keyframe: true,
            source: None,
            layers,
            order,
            packets: Vec::new(),
        })
    }

    /// Decode only the frames later frames refer to (with a publisher that sends two temporal
    /// layers: its base layer, every other frame), or every frame again. Takes effect from the
    /// next source frame, without a keyframe; a decoder opened later starts this way too. The
    /// lower layers follow the decoded frame rate. A [`crate::Pool`] sets this for its
    /// transcoders from its [`crate::pool::TemporalPolicy`].
    pub fn set_base_layer_only(&mut self, on: bool) {
        self.config.tuning.decoder.skip_nonref = on;
        if let Some(d) = self.decoder.as_mut() {
            d.set_skip_nonref(on);
        }
    }

    /// The counters this transcoder reports into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Layers that currently have subscribers.
    pub fn active_layers(&self) -> Vec<u8> {
        self.layers
            .iter()
            .filter(|l| l.active)
            .map(|l| l.spec.layer)
            .collect()
    }

    /// Size of the last decoded source frame.
    pub fn source_size(&self) -> Option<(u32, u32)> {
        self.source.map(|(w, h, _)| (w, h))
    }

    /// Output size of `layer` for the current source (`None` if unknown yet or skipped).
    pub fn layer_size(&self, layer: u8) -> Option<(u32, u32)> {
        let (w, h, _) = self.source?;
        self.layers
            .iter()
            .find(|l| l.spec.layer == layer)?
            .spec
            .output_size(w, h)
    }

    /// What `layer` has cost since this transcoder was made (`None` for an unknown layer).
    pub fn layer_stats(&self, layer: u8) -> Option<LayerStats> {
        self.layers
            .iter()
            .find(|l| l.spec.layer == layer)
            .map(|l| l.stats)
    }

    /// Number of open layer encoders (active or lingering).
    pub fn open_encoders(&self) -> usize {
        self.layers.iter().filter(|l| l.encoder.is_some()).count()
    }

    /// `true` while some layer is active but the transcoder cannot decode until the source's
    /// next keyframe: the caller should ask the publisher for one.
    pub fn wants_source_keyframe(&self) -> bool {
        self.waiting_keyframe && self.any_active()
    }

    fn any_active(&self) -> bool {
        self.layers.iter().any(|l| l.active)
    }

    fn layer_mut(&mut self, layer: u8) -> Result<&mut LayerState> {
        self.layers
            .iter_mut()
            .find(|l| l.spec.layer == layer)
            .ok_or(Error::UnknownLayer(layer))
    }

    /// Mark `layer` as wanted (some subscriber) or not (none left) at time `now`.
    ///
    /// Activation forces a keyframe as the layer's next output. Deactivation keeps the encoder
    /// for [`Config::linger`]; [`Self::tick`] drops it afterwards. Activating an active layer
    /// changes nothing: when another subscriber joins a running layer, call
    /// [`Self::request_keyframe`] for it.
    pub fn set_active(&mut self, layer: u8, active: bool, now: Instant) -> Result<()> {
        let was_decoding = self.any_active();
        let state = self.layer_mut(layer)?;
        match (state.active, active) {
            (false, true) => {
                state.active = true;
                state.idle_since = None;
                state.force_keyframe = true;
                state.seen = 0;
                if !was_decoding {
                    // Frames went by undecoded: references are stale.
                    self.waiting_keyframe = true;
                    if let Some(d) = self.decoder.as_mut() {
                        d.reset();
                    }
                }
            }
            (true, false) => {
                state.active = false;
                state.idle_since = Some(now);
            }
            _ => {}
        }
        self.tick(now);
        Ok(())
    }

    /// Ask for a keyframe on `layer` (a subscriber lost its place). Takes effect on the next
    /// encoded frame of that layer.
    pub fn request_keyframe(&mut self, layer: u8) -> Result<()> {
        self.layer_mut(layer)?.force_keyframe = true;
        Ok(())
    }

    /// Drop encoders whose linger period has passed. Call it now and then (e.g. every 250 ms);
    /// [`Self::push`] and [`Self::set_active`] call it too.
    pub fn tick(&mut self, now: Instant) {
        let linger = self.config.linger;
        for l in &mut self.layers {
            if let (false, Some(since)) = (l.active, l.idle_since) {
                if now.saturating_duration_since(since) >= linger {
                    l.encoder = None;
                    l.idle_since = None;
                }
            }
        }
        if !self.any_active() && self.open_encoders() == 0 {
            // Nothing to do until the next subscriber: free the decoder too.
            self.decoder = None;
            self.source = None;
        }
    }

    /// Feed one source frame (VP8 payload, capture time in µs, the publisher's keyframe flag)
    /// and get the lower-layer frames it produced.
    ///
    /// Returns `Ok(vec![])` when no layer is active (nothing is decoded) or while waiting for a
    /// source keyframe. An error means this frame was unusable; the transcoder then waits for
    /// the next source keyframe by itself — keep pushing.
    pub fn push(
        &mut self,
        input: &[u8],
        pts_us: u64,
        keyframe: bool,
        now: Instant,
    ) -> Result<Vec<LayerFrame>> {
        Metrics::add(&self.metrics.frames_in, 1);
        self.tick(now);
        if !self.any_active() {
            Metrics::add(&self.metrics.frames_skipped, 1);
            return Ok(Vec::new());
        }
        // The payload is the truth; a flag without a keyframe header is an error.
        let key_size = vp8::keyframe_size(input);
        let is_key = key_size.is_some();
        if let Some((kw, kh)) = key_size {
            // A hostile header must not make the decoder allocate gigabytes.
            if u64::from(kw) * u64::from(kh) > MAX_SOURCE_PIXELS {
                Metrics::add(&self.metrics.decode_errors, 1);
                self.waiting_keyframe = true;
                return Err(Error::SourceTooLarge {
                    width: kw,
                    height: kh,
                });
            }
        }
        if keyframe && !is_key {
            Metrics::add(&self.metrics.decode_errors, 1);
            self.waiting_keyframe = true;
            return Err(Error::NotKeyframe);
        }
        if self.waiting_keyframe && !is_key {
            Metrics::add(&self.metrics.frames_skipped, 1);
            return Ok(Vec::new());
        }
        if self.decoder.is_none() {
            self.decoder = Some(Vp8Decoder::with_settings(self.config.tuning.decoder)?);
        }
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok(Vec::new());
        };

        let t0 = Instant::now();
        let decoded = decoder.decode_in_place(input);
        Metrics::add(&self.metrics.decode_ns, t0.elapsed().as_nanos() as u64);
        match decoded {
            Ok(true) => {}
            Ok(false) => return Ok(Vec::new()),
            Err(e) => {
                Metrics::add(&self.metrics.decode_errors, 1);
                decoder.reset();
                self.waiting_keyframe = true;
                return Err(e);
            }
        }
        if is_key {
            self.waiting_keyframe = false;
        }
        Metrics::add(&self.metrics.frames_decoded, 1);

        let src = decoder.frame_mut();
        let (w, h, fmt) = (src.width(), src.height(), src.format());
        if w == 0 || h == 0 {
            return Ok(Vec::new());
        }
        if self.source != Some((w, h, fmt)) {
            if self.source.is_some() {
                tracing::debug!(w, h, "source size changed; rebuilding layer encoders");
            }
            self.source = Some((w, h, fmt));
            for l in &mut self.layers {
                l.encoder = None;
                l.force_keyframe = true;
            }
        }
        // Decoded keyframes arrive marked I; never let that leak into the layer encoders.
        vp8::set_force_key(src, false);

        let tuning = &self.config.tuning;
        let mut out = Vec::new();
        // Layers whose `scaled` picture holds this frame, for the cascade.
        let mut made: Vec<usize> = Vec::with_capacity(self.layers.len());
        for &i in &self.order {
            let l = &mut self.layers[i];
            if !l.active {
                continue;
            }
            l.seen += 1;
            let due = (l.seen - 1).is_multiple_of(u64::from(l.spec.frame_step.max(1)));
            if !due && !l.force_keyframe {
                continue;
            }
            let Some((lw, lh)) = l.spec.output_size(w, h) else {
                continue;
            };
            if l.encoder.is_none() {
                let settings = EncoderSettings {
                    width: lw,
                    height: lh,
                    bitrate_bps: l.spec.bitrate_for(w, h),
                    fps: (self.config.fps_hint / l.spec.frame_step.max(1)).max(1),
                    gop: self.config.gop,
                    static_thresh: l.spec.static_thresh,
                    cpu_used: l.spec.cpu_used,
                    threads: tuning.encoder_threads,
                    error_resilient: tuning.error_resilient,
                    profile: tuning.profiles.get(i).copied().unwrap_or(0),
                    last_ref_only: tuning.last_ref_only,
                };
                match open_layer_encoder(&settings, &self.metrics) {
                    Ok(enc) => l.encoder = Some(enc),
                    Err(e) => {
                        tracing::warn!(layer = l.spec.layer, error = %e, "cannot open layer encoder");
                        Metrics::add(&self.metrics.encode_errors, 1);
                        continue;
                    }
                }
            }
            // The nearest larger layer made from this frame whose size divides evenly.
            let divisor = l.spec.divisor;
            let from = if tuning.cascade {
                made.iter().rev().copied().find(|&j| {
                    let d = self.layers[j].spec.divisor;
                    d > 1 && d < divisor && divisor.is_multiple_of(d)
                })
            } else {
                None
            };
            let (l, input) = match from {
                Some(j) => {
                    let (l, larger) = pair_mut(&mut self.layers, i, j);
                    match larger.encoder.as_mut() {
                        Some(enc) => (l, &mut enc.scaled),
                        None => (l, &mut *src),
                    }
                }
                None => (&mut self.layers[i], &mut *src),
            };
            let Some(enc) = l.encoder.as_mut() else {
                continue;
            };
            let key = l.force_keyframe;
            match encode_layer(
                enc,
                input,
                pts_us,
                key,
                tuning.filter,
                &mut l.stats,
                &self.metrics,
                &mut self.packets,
            ) {
                Ok(scaled) => {
                    if scaled {
                        made.push(i);
                    }
                }
                Err(e) => {
                    tracing::warn!(layer = l.spec.layer, error = %e, "layer encode failed");
                    Metrics::add(&self.metrics.encode_errors, 1);
                    l.encoder = None;
                    l.force_keyframe = true;
                    self.packets.clear();
                    continue;
                }
            }
            for pkt in self.packets.drain(..) {
                let Some(data) = pkt.data() else { continue };
                let keyframe = pkt.is_key();
                if keyframe {
                    l.force_keyframe = false;
                    Metrics::add(&self.metrics.keyframes_out, 1);
                }
                Metrics::add(&self.metrics.frames_out, 1);
                Metrics::add(&self.metrics.bytes_out, data.len() as u64);
                l.stats.frames += 1;
                l.stats.bytes += data.len() as u64;
                out.push(LayerFrame {
                    layer: l.spec.layer,
                    data: Bytes::copy_from_slice(data),
                    keyframe,
                    pts_us,
                    seq: l.next_seq,
                    width: lw,
                    height: lh,
                });
                l.next_seq = l.next_seq.wrapping_add(1);
            }
        }
        Ok(out)
    }
}

/// Two distinct elements of a slice, both mutable.
fn pair_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    debug_assert_ne!(a, b);
    if a < b {
        let (x, y) = v.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = v.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}

/// libvpx's `vp8cx.h`: do not predict from the golden frame, nor from the altref frame.
const VP8_EFLAG_NO_REF_GF: u32 = 1 << 17;
const VP8_EFLAG_NO_REF_ARF: u32 = 1 << 21;

fn open_layer_encoder(settings: &EncoderSettings, metrics: &Arc<Metrics>) -> Result<LayerEncoder> {
    let encoder = vp8::open_encoder(settings)?;
    let mut scaled = frame::Video::new(Pixel::YUV420P, settings.width, settings.height);
    if settings.last_ref_only {
        // libvpxenc reads per-frame encode flags from the frame's "vp8-flags" metadata. Set
        // once on the layer's own picture, so it applies to layers that are scaled (every
        // camera layer), not to a full-size screen layer encoded from the source frame.
        let mut d = ffmpeg_next::Dictionary::new();
        d.set(
            "vp8-flags",
            &(VP8_EFLAG_NO_REF_GF | VP8_EFLAG_NO_REF_ARF).to_string(),
        );
        scaled.set_metadata(d);
    }
    Ok(LayerEncoder {
        encoder,
        scaler: None,
        scaled,
        width: settings.width,
        height: settings.height,
        last_pts: i64::MIN,
        _gauge: EncoderGauge::new(metrics),
    })
}

/// Scale `input` to the layer's size (unless it already has it) and encode it. Returns whether
/// the layer's own `scaled` picture now holds this frame (a cascade may read it).
#[allow(clippy::too_many_arguments)]
fn encode_layer(
    enc: &mut LayerEncoder,
    input: &mut frame::Video,
    pts_us: u64,
    key: bool,
    filter: ScaleFilter,
    stats: &mut LayerStats,
    metrics: &Metrics,
    packets: &mut Vec<Packet>,
) -> Result<bool> {
    // libvpx wants strictly increasing timestamps; publishers' clocks are not always kind.
    let pts = (pts_us.min(i64::MAX as u64) as i64).max(enc.last_pts.saturating_add(1));
    enc.last_pts = pts;
    let in_key = (input.width(), input.height(), input.format());
    let scaled = in_key != (enc.width, enc.height, Pixel::YUV420P);
    let frame: &mut frame::Video = if scaled {
        let t = Instant::now();
        if filter == ScaleFilter::Box2 && halve::fits(input, &enc.scaled) {
            halve::halve(input, &mut enc.scaled);
        } else {
            if enc.scaler.as_ref().is_none_or(|s| s.input != in_key) {
                enc.scaler = Some(Scaler {
                    input: in_key,
                    context: scaling::Context::get(
                        in_key.2,
                        in_key.0,
                        in_key.1,
                        Pixel::YUV420P,
                        enc.width,
                        enc.height,
                        filter.flags(),
                    )?,
                });
            }
            if let Some(sc) = enc.scaler.as_mut() {
                sc.context.run(input, &mut enc.scaled)?;
            }
        }
        let ns = t.elapsed().as_nanos() as u64;
        Metrics::add(&metrics.scale_ns, ns);
        stats.scale_ns += ns;
        &mut enc.scaled
    } else {
        input
    };
    debug_assert_eq!((frame.width(), frame.height()), (enc.width, enc.height));
    frame.set_pts(Some(pts));
    vp8::set_force_key(frame, key);
    let t = Instant::now();
    let res = vp8::encode(&mut enc.encoder, frame, packets);
    let ns = t.elapsed().as_nanos() as u64;
    Metrics::add(&metrics.encode_ns, ns);
    stats.encode_ns += ns;
    // Leave shared frames unmarked for the next layer.
    vp8::set_force_key(frame, false);
    res.map(|()| scaled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_layers_follow_the_source_aspect_and_never_upscale() {
        let [l1, l2] = <[LayerSpec; 2]>::try_from(LayerSpec::defaults(TrackKind::Camera)).unwrap();
        assert_eq!(l1.output_size(1280, 720), Some((640, 360)));
        assert_eq!(l2.output_size(1280, 720), Some((320, 180)));
        assert_eq!(l1.output_size(640, 480), Some((320, 240)));
        assert_eq!(l2.output_size(640, 480), Some((160, 120)));
        assert_eq!(l2.output_size(40, 40), None, "10x10 is too small");
        assert_eq!(l1.output_size(30, 30), None);
        assert_eq!(l1.bitrate_for(1280, 720), 500_000);
        assert_eq!(l1.bitrate_for(1920, 1080), 500_000);
        assert!(l1.bitrate_for(640, 480) < 500_000);
    }

    #[test]
    fn screen_layers_keep_resolution() {
        for l in LayerSpec::defaults(TrackKind::Screen) {
            assert_eq!(l.output_size(1280, 720), Some((1280, 720)));
            assert!(l.frame_step > 1);
        }
    }

    #[test]
    fn config_rejects_a_layer_equal_to_the_source() {
        let mut c = Config::new(TrackKind::Camera);
        c.layers[0].divisor = 1;
        assert!(matches!(
            LayerTranscoder::new(c),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn linger_drops_encoder_only_after_the_period() {
        let mut t = LayerTranscoder::new(Config::new(TrackKind::Camera)).unwrap();
        let t0 = Instant::now();
        assert!(matches!(
            t.set_active(3, true, t0),
            Err(Error::UnknownLayer(3))
        ));
        t.set_active(2, true, t0).unwrap();
        assert!(t.wants_source_keyframe());
        t.set_active(2, false, t0).unwrap();
        assert!(!t.wants_source_keyframe());
    }
}
