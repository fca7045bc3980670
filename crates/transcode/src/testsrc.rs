//! Deterministic test material: a moving VP8 test pattern and Opus sine tones.
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
    for (plane, speed) in [(1usize, 1usize), (2, 2)] {
        let (pw, ph) = (
            f.plane_width(plane) as usize,
            f.plane_height(plane) as usize,
        );
        let stride = f.stride(plane);
        let data = f.data_mut(plane);
        for row in 0..ph {
            for col in 0..pw {
                let v = if plane == 1 {
                    (col * 96 / pw.max(1) + t * speed) % 96
                } else {
                    (row * 96 / ph.max(1) + t * speed) % 96
                };
                data[row * stride + col] = (80 + v) as u8;
            }
        }
    }
    Picture(f)
}

/// Encode `config.frames` frames of [`pattern`] with realtime libvpx VP8.
pub fn vp8_clip(config: &ClipConfig) -> Result<Vec<EncodedFrame>> {
    if config.width < 2 || config.height < 2 || config.fps == 0 {
        return Err(Error::InvalidConfig(format!("bad clip config {config:?}")));
    }
    let interval = config.keyframe_interval.max(1);
    let mut enc = Vp8Encoder::new(
        config.width,
        config.height,
        config.bitrate_bps,
        config.fps,
        interval,
    )?;
    let mut out = Vec::with_capacity(config.frames as usize);
    for i in 0..config.frames {
        let mut pic = pattern(config.width, config.height, i);
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
    fn opus_tone_gives_20ms_packets() {
        let pkts = opus_tone(10, 440.0).unwrap();
        assert_eq!(pkts.len(), 10);
        assert!(pkts
            .iter()
            .all(|p| !p.data.is_empty() && p.data.len() < 400));
        assert_eq!(pkts[3].pts_us, 60_000);
    }
}
