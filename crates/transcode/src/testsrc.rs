//! Deterministic test material: a moving VP8 test pattern, a webcam-like scene and Opus sine
//! tones.
//!
//! Used by this crate's tests and benches, by the server's tests and by the load tester, so it
//! is part of the public API. Everything is generated in memory; same config, same bytes.

use ffmpeg_next::codec::{self, encoder, threading};
use ffmpeg_next::format::{sample, Pixel, Sample};
use ffmpeg_next::util::error::EAGAIN;
use ffmpeg_next::{frame, ChannelLayout, Dictionary, Packet, Rational};

use crate::vp8::{Picture, Vp8Encoder};
use crate::{checked, init, Error, Result};

/// One encoded frame of test media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Codec payload (a VP8 frame or an Opus packet).
    pub data: Vec<u8>,
    /// Whether the frame is a keyframe (always `true` for Opus).
    pub keyframe: bool,
    /// Presentation/capture time in µs from the start of the clip.
    pub pts_us: u64,
}

/// What [`vp8_clip`] makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipConfig {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Number of frames.
    pub frames: u32,
    /// A keyframe every this many frames (frame 0 is always one).
    pub keyframe_interval: u32,
    /// Target bitrate in bit/s.
    pub bitrate_bps: u32,
}

impl ClipConfig {
    /// A 720p30 clip at 1.5 Mbit/s with a keyframe every second.
    pub fn hd(frames: u32) -> Self {
        ClipConfig {
            width: 1280,
            height: 720,
            fps: 30,
            frames,
            keyframe_interval: 30,
            bitrate_bps: 1_500_000,
        }
    }

    /// Capture time of frame `index` in µs.
    pub fn pts_us(&self, index: u32) -> u64 {
        u64::from(index) * 1_000_000 / u64::from(self.fps.max(1))
    }
}

/// Frame `index` of the moving test pattern as a YUV420P picture: a diagonal gradient drifting
/// right, bars sliding left, and a 16-bit frame counter as black/white blocks in the top-left
/// corner, so every frame differs from the previous one.
pub fn pattern(width: u32, height: u32, index: u32) -> Picture {
    init();
    let mut f = frame::Video::new(Pixel::YUV420P, width, height);
    let (w, h, t) = (width as usize, height as usize, index as usize);
    let bar = (w / 8).max(1);
    {
        let stride = f.stride(0);
        let y = f.data_mut(0);
        for row in 0..h {
            let line = &mut y[row * stride..row * stride + w];
            for (col, px) in line.iter_mut().enumerate() {
                let grad = (col * 160 / w.max(1) + row * 64 / h.max(1) + t * 3) % 224;
                let bars = if ((col + t * 6) / bar) % 2 == 0 {
                    0
                } else {
                    24
                };
                *px = (16 + grad + bars).min(235) as u8;
            }
        }
        // Frame counter: 16 blocks, bit i set = white.
        let block = (h / 24).clamp(2, 16);
        for bit in 0..16usize {
            let on = (index >> bit) & 1 == 1;
            let x0 = bit * block;
            if x0 + block > w || block > h {
                break;
            }
            for row in 0..block {
                let start = row * stride + x0;
                y[start..start + block].fill(if on { 235 } else { 16 });
            }
        }
    }
    fill_chroma(&mut f, |plane, col, row, (pw, ph)| {
        let v = if plane == 1 {
            (col * 96 / pw.max(1) + t) % 96
        } else {
            (row * 96 / ph.max(1) + t * 2) % 96
        };
        (80 + v) as u8
    });
    Picture(f)
}

/// Sets every pixel of the U (1) and V (2) planes to `value(plane, col, row, (width, height))`.
fn fill_chroma(
    f: &mut frame::Video,
    mut value: impl FnMut(usize, usize, usize, (usize, usize)) -> u8,
) {
    for plane in [1usize, 2] {
        let size = (
            f.plane_width(plane) as usize,
            f.plane_height(plane) as usize,
        );
        let stride = f.stride(plane);
        let data = f.data_mut(plane);
        for row in 0..size.1 {
            for col in 0..size.0 {
                data[row * stride + col] = value(plane, col, row, size);
            }
        }
    }
}

/// What a test clip shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scene {
    /// [`pattern`]: every pixel changes every frame, the encoders' worst case.
    #[default]
    Pattern,
    /// [`camera`]: what a webcam sends in a meeting, a still room with a person who sways,
    /// talks and blinks, under sensor noise.
    Camera,
}

impl Scene {
    /// Frame `index` of this scene.
    pub fn picture(self, width: u32, height: u32, index: u32) -> Picture {
        match self {
            Scene::Pattern => pattern(width, height, index),
            Scene::Camera => camera(width, height, index),
        }
    }

    /// What a layer's quality is measured against: the picture without its sensor noise.
    pub fn reference(self, width: u32, height: u32, index: u32) -> Picture {
        match self {
            Scene::Pattern => pattern(width, height, index),
            Scene::Camera => camera_noiseless(width, height, index),
        }
    }
}

/// A 32-bit integer hash (for textures and noise that are the same on every run).
fn mix(x: u32, y: u32, t: u32) -> u32 {
    let mut v =
        x.wrapping_mul(0x9E37_79B1) ^ y.wrapping_mul(0x85EB_CA77) ^ t.wrapping_mul(0xC2B2_AE3D);
    v ^= v >> 15;
    v = v.wrapping_mul(0x2C1B_3C6D);
    v ^ (v >> 12)
}

/// An axis-aligned ellipse, in pixels of the full-size picture.
#[derive(Clone, Copy)]
struct Ellipse {
    cx: i64,
    cy: i64,
    rx: i64,
    ry: i64,
}

impl Ellipse {
    fn contains(&self, x: i64, y: i64) -> bool {
        let (dx, dy) = (x - self.cx, y - self.cy);
        dx * dx * self.ry * self.ry + dy * dy * self.rx * self.rx
            <= self.rx * self.rx * self.ry * self.ry
    }
}

/// The parts of [`camera`]'s picture: (base luma, U, V, texture that moves with the part).
#[derive(Clone, Copy)]
struct Surface {
    luma: i32,
    u: u8,
    v: u8,
    /// The texture's origin: a part's texture moves with it.
    origin: (i64, i64),
    /// The texture's amplitude (± this many levels).
    grain: i32,
}

/// Where the person is in frame `index`, and what their face shows.
struct Person {
    head: Ellipse,
    body: Ellipse,
    eyes: [Ellipse; 2],
    mouth: Ellipse,
    blink: bool,
}

impl Person {
    fn at(w: i64, h: i64, index: u32) -> Self {
        let t = f64::from(index);
        let tau = std::f64::consts::TAU;
        // A slow sway (about 3 s) and a smaller nod (about 1.2 s).
        let cx = w / 2 + ((w / 32) as f64 * (tau * t / 100.0).sin()) as i64;
        let cy = h * 42 / 100 + ((h / 72) as f64 * (tau * t / 37.0).sin()) as i64;
        let (rx, ry) = (w * 9 / 100, h * 22 / 100);
        // Talking: the mouth opens and closes about three times a second.
        let open = (tau * t / 9.0).sin().abs();
        let eye = |side: i64| Ellipse {
            cx: cx + side * rx * 2 / 5,
            cy: cy - ry * 3 / 20,
            rx: (rx / 8).max(1),
            ry: (ry / 14).max(1),
        };
        Person {
            head: Ellipse { cx, cy, rx, ry },
            body: Ellipse {
                cx,
                cy: h * 105 / 100,
                rx: w / 4,
                ry: h * 2 / 5,
            },
            eyes: [eye(-1), eye(1)],
            mouth: Ellipse {
                cx,
                cy: cy + ry * 9 / 20,
                rx: (rx * 7 / 20).max(1),
                ry: ((ry as f64) * (0.03 + 0.08 * open)) as i64 + 1,
            },
            // Four frames closed every three seconds.
            blink: index % 90 < 4,
        }
    }

    /// What the camera sees at full-size pixel (x, y).
    fn surface(&self, w: i64, h: i64, x: i64, y: i64) -> Surface {
        let origin = (self.head.cx, self.head.cy);
        if self.head.contains(x, y) {
            if self.mouth.contains(x, y) {
                return Surface {
                    luma: 70,
                    u: 120,
                    v: 150,
                    origin,
                    grain: 2,
                };
            }
            if !self.blink && self.eyes.iter().any(|e| e.contains(x, y)) {
                return Surface {
                    luma: 40,
                    u: 128,
                    v: 128,
                    origin,
                    grain: 2,
                };
            }
            return Surface {
                luma: 150,
                u: 110,
                v: 152,
                origin,
                grain: 4,
            };
        }
        if self.body.contains(x, y) {
            return Surface {
                luma: 60,
                u: 140,
                v: 118,
                origin: (self.body.cx, self.body.cy),
                grain: 5,
            };
        }
        // The room: a window on the left, a bookshelf on the right, a wall with a gradient.
        let (u, v) = (x * 100 / w, y * 100 / h);
        if (6..30).contains(&u) && (10..50).contains(&v) {
            let bar =
                (x - w * 18 / 100).abs() < w / 200 + 1 || (y - h * 30 / 100).abs() < h / 120 + 1;
            return Surface {
                luma: if bar { 120 } else { 205 },
                u: 128,
                v: 126,
                origin: (0, 0),
                grain: 2,
            };
        }
        if (72..95).contains(&u) && (15..85).contains(&v) {
            let shelf = (y * 10 / h) % 2 == 0 && (y * 40 / h) % 4 == 0;
            let spine = (mix((x / (w / 100).max(1)) as u32, 7, 0) % 90) as i32;
            return Surface {
                luma: if shelf { 50 } else { 60 + spine },
                u: 112 + (spine / 8) as u8,
                v: 138,
                origin: (0, 0),
                grain: 6,
            };
        }
        Surface {
            luma: 95 + (y * 40 / h) as i32,
            u: 122,
            v: 132,
            origin: (0, 0),
            grain: 3,
        }
    }
}

/// Frame `index` of a webcam-like scene as a YUV420P picture: a still room (a wall, a window, a
/// bookshelf, each with a fixed texture), a person who sways, nods, talks and blinks (their
/// texture moves with them), and sensor noise of about ±2 levels on every luma pixel, new each
/// frame. What a meeting's camera sends: most of the picture is still but never identical.
pub fn camera(width: u32, height: u32, index: u32) -> Picture {
    camera_scene(width, height, index, true)
}

/// [`camera`] without its sensor noise: the scene a viewer wants to see, the reference to
/// measure a layer's quality against (no encoder keeps random noise at these bitrates).
pub fn camera_noiseless(width: u32, height: u32, index: u32) -> Picture {
    camera_scene(width, height, index, false)
}

fn camera_scene(width: u32, height: u32, index: u32, noisy: bool) -> Picture {
    init();
    let mut f = frame::Video::new(Pixel::YUV420P, width, height);
    let (w, h) = (i64::from(width), i64::from(height));
    let person = Person::at(w, h, index);
    {
        let stride = f.stride(0);
        let y = f.data_mut(0);
        for row in 0..h {
            let line = &mut y[row as usize * stride..][..w as usize];
            for (col, px) in line.iter_mut().enumerate() {
                let s = person.surface(w, h, col as i64, row);
                let (tx, ty) = (col as i64 - s.origin.0, row - s.origin.1);
                let grain = (mix(tx as u32 / 2, ty as u32 / 2, 0) % (2 * s.grain as u32 + 1))
                    as i32
                    - s.grain;
                let noise = if noisy {
                    (mix(col as u32, row as u32, index + 1) % 5) as i32 - 2
                } else {
                    0
                };
                *px = (s.luma + grain + noise).clamp(16, 235) as u8;
            }
        }
    }
    fill_chroma(&mut f, |plane, col, row, _| {
        let s = person.surface(w, h, col as i64 * 2, row as i64 * 2);
        if plane == 1 {
            s.u
        } else {
            s.v
        }
    });
    Picture(f)
}

/// Encode `config.frames` frames of [`pattern`] with realtime libvpx VP8.
pub fn vp8_clip(config: &ClipConfig) -> Result<Vec<EncodedFrame>> {
    vp8_clip_of(config, Scene::Pattern)
}

/// Encode `config.frames` frames of `scene` with realtime libvpx VP8.
pub fn vp8_clip_of(config: &ClipConfig, scene: Scene) -> Result<Vec<EncodedFrame>> {
    vp8_clip_with(config, scene, Vp8Encoder::new)
}

/// As [`vp8_clip_of`], with two temporal layers (see [`Vp8Encoder::with_two_temporal_layers`]).
pub fn vp8_clip_two_temporal_layers(
    config: &ClipConfig,
    scene: Scene,
) -> Result<Vec<EncodedFrame>> {
    vp8_clip_with(config, scene, Vp8Encoder::with_two_temporal_layers)
}

fn vp8_clip_with(
    config: &ClipConfig,
    scene: Scene,
    open: fn(u32, u32, u32, u32, u32) -> Result<Vp8Encoder>,
) -> Result<Vec<EncodedFrame>> {
    if config.width < 2 || config.height < 2 || config.fps == 0 {
        return Err(Error::InvalidConfig(format!("bad clip config {config:?}")));
    }
    let interval = config.keyframe_interval.max(1);
    let mut enc = open(
        config.width,
        config.height,
        config.bitrate_bps,
        config.fps,
        interval,
    )?;
    let mut out = Vec::with_capacity(config.frames as usize);
    for i in 0..config.frames {
        let mut pic = scene.picture(config.width, config.height, i);
        out.extend(enc.encode(&mut pic, config.pts_us(i), i % interval == 0)?);
    }
    Ok(out)
}

/// Samples per 20 ms Opus frame at 48 kHz.
pub const OPUS_FRAME_SAMPLES: usize = 960;

/// `frames` 20 ms Opus packets (48 kHz mono, libopus, 32 kbit/s) of a sine tone at `freq_hz`.
pub fn opus_tone(frames: usize, freq_hz: f32) -> Result<Vec<EncodedFrame>> {
    init();
    let codec = encoder::find_by_name("libopus").ok_or(Error::CodecMissing("libopus"))?;
    let mut ctx = codec::Context::new_with_codec(codec);
    ctx.set_threading(threading::Config::count(1));
    let mut enc = ctx.encoder().audio()?;
    let format = Sample::I16(sample::Type::Packed);
    enc.set_rate(48_000);
    enc.set_format(format);
    enc.set_channel_layout(ChannelLayout::MONO);
    enc.set_channels(1);
    enc.set_bit_rate(32_000);
    enc.set_time_base(Rational(1, 48_000));
    let mut opts = Dictionary::new();
    opts.set("frame_duration", "20");
    opts.set("application", "voip");
    let mut enc = checked::open_audio(enc, codec, opts, "libopus")?;

    let mut out = Vec::with_capacity(frames);
    let mut n: usize = 0;
    let step = 2.0 * std::f32::consts::PI * freq_hz / 48_000.0;
    // libopus has a look-ahead, so feed until enough packets came out (bounded).
    while out.len() < frames && n < frames + 16 {
        let mut f = frame::Audio::new(format, OPUS_FRAME_SAMPLES, ChannelLayout::MONO);
        f.set_rate(48_000);
        for (i, s) in f.plane_mut::<i16>(0).iter_mut().enumerate() {
            let k = (n * OPUS_FRAME_SAMPLES + i) as f32;
            *s = ((k * step).sin() * 0.3 * f32::from(i16::MAX)) as i16;
        }
        f.set_pts(Some((n * OPUS_FRAME_SAMPLES) as i64));
        enc.send_frame(&f)?;
        n += 1;
        loop {
            let mut pkt = Packet::empty();
            match enc.receive_packet(&mut pkt) {
                Ok(()) => out.push(EncodedFrame {
                    data: pkt.data().unwrap_or_default().to_vec(),
                    keyframe: true,
                    pts_us: (out.len() as u64) * 20_000,
                }),
                Err(ffmpeg_next::Error::Other { errno: EAGAIN }) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    out.truncate(frames);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vp8;

    #[test]
    fn clip_has_keyframes_at_the_interval_and_increasing_pts() {
        let cfg = ClipConfig {
            width: 160,
            height: 120,
            fps: 30,
            frames: 20,
            keyframe_interval: 10,
            bitrate_bps: 200_000,
        };
        let clip = vp8_clip(&cfg).unwrap();
        assert_eq!(clip.len(), 20);
        for (i, f) in clip.iter().enumerate() {
            assert_eq!(f.keyframe, i % 10 == 0, "frame {i}");
            assert_eq!(f.keyframe, vp8::keyframe_size(&f.data).is_some());
            assert_eq!(f.pts_us, cfg.pts_us(i as u32));
        }
        assert_eq!(vp8::keyframe_size(&clip[0].data), Some((160, 120)));
    }

    #[test]
    fn consecutive_pattern_frames_differ() {
        let a = pattern(64, 48, 0);
        let b = pattern(64, 48, 1);
        assert_ne!(a.luma(), b.luma());
        assert_eq!(crate::psnr_y(&a, &a), Some(f64::INFINITY));
    }

    #[test]
    fn the_camera_scene_is_mostly_still_but_never_identical() {
        let (w, h) = (320u32, 180u32);
        let a = camera(w, h, 10);
        let b = camera(w, h, 11);
        let (la, lb) = (a.luma(), b.luma());
        assert_eq!(
            camera(w, h, 10).luma(),
            la,
            "the same frame twice is the same picture"
        );
        let diffs: Vec<i32> = la
            .iter()
            .zip(&lb)
            .map(|(x, y)| i32::from(*x) - i32::from(*y))
            .collect();
        let changed = diffs.iter().filter(|d| **d != 0).count();
        let moved = diffs.iter().filter(|d| d.abs() > 4).count();
        // Noise touches most pixels; only the person (under a third of the picture) moves.
        assert!(
            changed > diffs.len() / 2,
            "sensor noise: {changed} of {}",
            diffs.len()
        );
        assert!(
            moved > 0 && moved < diffs.len() / 3,
            "moving part: {moved} of {}",
            diffs.len()
        );
        // The mouth talks: its frames differ more than the noise alone would.
        let psnr = crate::psnr_y(&a, &b).unwrap();
        assert!(
            psnr > 25.0 && psnr < 50.0,
            "consecutive frames: {psnr:.1} dB"
        );
    }

    #[test]
    fn opus_tone_gives_20ms_packets() {
        let pkts = opus_tone(10, 440.0).unwrap();
        assert_eq!(pkts.len(), 10);
        assert!(pkts
            .iter()
            .all(|p| !p.data.is_empty() && p.data.len() < 400));
        assert_eq!(pkts[3].pts_us, 60_000);
    }
}
