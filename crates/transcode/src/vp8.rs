//! VP8 building blocks: realtime libvpx encoder setup, a decoder wrapper, pictures and PSNR.

use ffmpeg_next::codec::{self, decoder, encoder, threading};
use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::util::error::EAGAIN;
use ffmpeg_next::{frame, picture, Dictionary, Packet, Rational};

use crate::layers::ScaleFilter;
use crate::{checked, init, Error, Result};

/// libvpx `cpu-used` of the test-material encoder ([`Vp8Encoder`]).
///
/// In realtime mode a positive VP8 `cpu-used` is not a speed but a time budget: libvpx times
/// itself and picks its speed so that encoding takes `(16 - cpu-used) / 16` of a frame interval
/// (`vp8_auto_select_speed`). With 12 that is 8.3 ms at 30 fps, so a small picture is encoded at
/// the slowest realtime speed, and the result depends on how busy the machine is. The layer
/// encoders therefore use negative values (a fixed speed, see [`crate::LayerSpec::cpu_used`]).
pub const CPU_USED: i32 = 12;

/// Time base of every encoder we open: microseconds, the unit of capture timestamps.
pub(crate) const TIME_BASE: Rational = Rational(1, 1_000_000);

/// If `data` starts with a VP8 keyframe header (RFC 6386 §9.1), its coded width and height.
///
/// The payload is the truth about keyframes: the transcoder cross-checks the publisher's flag
/// with this.
pub fn keyframe_size(data: &[u8]) -> Option<(u32, u32)> {
    if data.len() < 10 || data[0] & 1 != 0 || data[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([data[6], data[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([data[8], data[9]]) & 0x3fff);
    (w > 0 && h > 0).then_some((w, h))
}

/// Settings of one realtime VP8 encoder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    pub bitrate_bps: u32,
    /// Nominal frame rate (a rate-control hint; timestamps drive the real one).
    pub fps: u32,
    /// Maximum frames between libvpx's own keyframes.
    pub gop: u32,
    /// libvpx `static-thresh`: higher skips more unchanged blocks (good for screens).
    pub static_thresh: u32,
    /// libvpx `cpu-used`: negative = that fixed speed (-16 fastest), positive = time budget.
    pub cpu_used: i32,
    /// Encoder threads (libvpx splits macroblock rows between them).
    pub threads: usize,
    /// libvpx `error-resilient`.
    pub error_resilient: bool,
    /// VP8 profile (the bitstream's version, RFC 6386 section 9.1), 0–3: above 0, motion
    /// compensation uses the bilinear filter instead of the six-tap one (3: whole pixels only)
    /// and the loop filter is simpler. 0 is what browsers send.
    pub profile: u8,
    /// Predict inter frames from the last frame only (no golden or altref search).
    pub last_ref_only: bool,
}

/// The realtime libvpx options, as FFmpeg names them. Kept apart so a test can prove FFmpeg
/// consumes every one of them.
pub(crate) fn realtime_options(s: &EncoderSettings) -> Dictionary<'static> {
    let mut d = Dictionary::new();
    d.set("deadline", "realtime");
    d.set("cpu-used", &s.cpu_used.to_string());
    d.set("lag-in-frames", "0");
    d.set("error-resilient", if s.error_resilient { "1" } else { "0" });
    d.set("static-thresh", &s.static_thresh.to_string());
    d.set("auto-alt-ref", "0");
    d.set("noise-sensitivity", "0");
    // Cap keyframes at 3x an average frame so a forced keyframe does not burst.
    d.set("max-intra-rate", "300");
    // CBR (minrate == maxrate == bitrate) with a 1 s buffer, as realtime senders do.
    d.set("minrate", &s.bitrate_bps.to_string());
    d.set("maxrate", &s.bitrate_bps.to_string());
    d.set("bufsize", &s.bitrate_bps.to_string());
    d.set("qmin", "4");
    d.set("qmax", "56");
    if s.profile != 0 {
        // AVCodecContext's own option; libvpxenc copies it into `g_profile`.
        d.set("profile", &s.profile.to_string());
    }
    d
}

/// Open a realtime libvpx VP8 encoder, failing loudly on unused options.
pub(crate) fn open_encoder(s: &EncoderSettings) -> Result<encoder::video::Encoder> {
    open_encoder_with(s, realtime_options(s))
}

pub(crate) fn open_encoder_with(
    s: &EncoderSettings,
    options: Dictionary<'static>,
) -> Result<encoder::video::Encoder> {
    init();
    let codec = encoder::find_by_name("libvpx").ok_or(Error::CodecMissing("libvpx"))?;
    let mut ctx = codec::Context::new_with_codec(codec);
    ctx.set_threading(threading::Config::count(s.threads.max(1)));
    let mut enc = ctx.encoder().video()?;
    enc.set_width(s.width);
    enc.set_height(s.height);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base(TIME_BASE);
    enc.set_frame_rate(Some(Rational(s.fps.max(1) as i32, 1)));
    enc.set_bit_rate(s.bitrate_bps as usize);
    enc.set_gop(s.gop.max(1));
    enc.set_max_b_frames(0);
    checked::open_video(enc, codec, options, "libvpx")
}

/// Send one frame and collect the packets it produced (one with `lag-in-frames=0`).
pub(crate) fn encode(
    enc: &mut encoder::video::Encoder,
    frame: &frame::Video,
    out: &mut Vec<Packet>,
) -> Result<()> {
    enc.send_frame(frame)?;
    loop {
        let mut pkt = Packet::empty();
        match enc.receive_packet(&mut pkt) {
            Ok(()) => out.push(pkt),
            Err(ffmpeg_next::Error::Other { errno: EAGAIN }) | Err(ffmpeg_next::Error::Eof) => {
                return Ok(())
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A realtime VP8 encoder for test material and benches ([`CPU_USED`], one thread).
pub struct Vp8Encoder {
    enc: encoder::video::Encoder,
    width: u32,
    height: u32,
    last_pts: i64,
    packets: Vec<Packet>,
}

impl std::fmt::Debug for Vp8Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Encoder")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl Vp8Encoder {
    /// Open a `width`×`height` encoder at `bitrate_bps`, nominal `fps`, with libvpx's own
    /// keyframes at most every `gop` frames.
    pub fn new(width: u32, height: u32, bitrate_bps: u32, fps: u32, gop: u32) -> Result<Self> {
        Self::open(width, height, bitrate_bps, fps, gop, false)
    }

    /// As [`Self::new`], with two temporal layers as WebCodecs' `L1T2` makes them: every other
    /// frame is a base-layer frame, and the frames between refer to the base layer only and are
    /// referred to by none (libvpx's two-layer pattern; the base layer gets 60 % of the rate).
    pub fn with_two_temporal_layers(
        width: u32,
        height: u32,
        bitrate_bps: u32,
        fps: u32,
        gop: u32,
    ) -> Result<Self> {
        Self::open(width, height, bitrate_bps, fps, gop, true)
    }

    fn open(
        width: u32,
        height: u32,
        bitrate_bps: u32,
        fps: u32,
        gop: u32,
        two_temporal_layers: bool,
    ) -> Result<Self> {
        let settings = EncoderSettings {
            width,
            height,
            bitrate_bps,
            fps,
            gop,
            static_thresh: 1,
            cpu_used: CPU_USED,
            threads: 1,
            error_resilient: true,
            profile: 0,
            last_ref_only: false,
        };
        let mut options = realtime_options(&settings);
        if two_temporal_layers {
            let kbps = (bitrate_bps / 1000).max(2);
            options.set(
                "ts-parameters",
                &format!(
                    "ts_number_layers=2:ts_target_bitrate={},{kbps}:ts_rate_decimator=2,1:\
                     ts_periodicity=2:ts_layer_id=0,1:ts_layering_mode=2",
                    kbps * 3 / 5
                ),
            );
        }
        let enc = open_encoder_with(&settings, options)?;
        Ok(Vp8Encoder {
            enc,
            width,
            height,
            last_pts: i64::MIN,
            packets: Vec::new(),
        })
    }

    /// Encode one YUV420P picture of the encoder's size; `keyframe` forces a keyframe.
    pub fn encode(
        &mut self,
        picture: &mut Picture,
        pts_us: u64,
        keyframe: bool,
    ) -> Result<Vec<crate::testsrc::EncodedFrame>> {
        let f = &mut picture.0;
        if (f.width(), f.height(), f.format()) != (self.width, self.height, Pixel::YUV420P) {
            return Err(Error::InvalidConfig(format!(
                "picture {}x{} {:?} does not fit a {}x{} encoder",
                f.width(),
                f.height(),
                f.format(),
                self.width,
                self.height
            )));
        }
        let pts = (pts_us.min(i64::MAX as u64) as i64).max(self.last_pts.saturating_add(1));
        self.last_pts = pts;
        f.set_pts(Some(pts));
        set_force_key(f, keyframe);
        let res = encode(&mut self.enc, f, &mut self.packets);
        set_force_key(f, false);
        res?;
        Ok(self
            .packets
            .drain(..)
            .map(|pkt| crate::testsrc::EncodedFrame {
                data: pkt.data().unwrap_or_default().to_vec(),
                keyframe: pkt.is_key(),
                pts_us,
            })
            .collect())
    }
}

/// A decoded (or generated) YUV picture. Owns its pixels.
#[derive(Clone)]
pub struct Picture(pub(crate) frame::Video);

impl std::fmt::Debug for Picture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Picture")
            .field("width", &self.width())
            .field("height", &self.height())
            .field("format", &self.0.format())
            .finish()
    }
}

impl Picture {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.0.width()
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.0.height()
    }

    /// The luma plane, packed (no stride padding), `width * height` bytes.
    pub fn luma(&self) -> Vec<u8> {
        let (w, h) = (self.width() as usize, self.height() as usize);
        let stride = self.0.stride(0);
        let data = self.0.data(0);
        let mut out = Vec::with_capacity(w * h);
        for row in 0..h {
            out.extend_from_slice(&data[row * stride..row * stride + w]);
        }
        out
    }

    /// This picture scaled to `width`×`height` YUV420P with swscale (bilinear), e.g. as the
    /// reference for a PSNR check.
    pub fn scaled(&self, width: u32, height: u32) -> Result<Picture> {
        self.scaled_with(width, height, ScaleFilter::Bilinear)
    }

    /// This picture scaled to `width`×`height` YUV420P with swscale's `filter`.
    pub fn scaled_with(&self, width: u32, height: u32, filter: ScaleFilter) -> Result<Picture> {
        let mut sc = scaling::Context::get(
            self.0.format(),
            self.width(),
            self.height(),
            Pixel::YUV420P,
            width,
            height,
            filter.flags(),
        )?;
        let mut out = frame::Video::empty();
        sc.run(&self.0, &mut out)?;
        Ok(Picture(out))
    }

    /// The underlying FFmpeg frame.
    pub fn as_frame(&self) -> &frame::Video {
        &self.0
    }
}

/// Peak signal-to-noise ratio of the luma planes in dB, or `None` if the sizes differ.
/// Identical planes give `f64::INFINITY`.
pub fn psnr_y(a: &Picture, b: &Picture) -> Option<f64> {
    if a.width() != b.width() || a.height() != b.height() {
        return None;
    }
    let (la, lb) = (a.luma(), b.luma());
    if la.is_empty() {
        return None;
    }
    let sse: u64 = la
        .iter()
        .zip(&lb)
        .map(|(&x, &y)| {
            let d = i64::from(x) - i64::from(y);
            (d * d) as u64
        })
        .sum();
    if sse == 0 {
        return Some(f64::INFINITY);
    }
    let mse = sse as f64 / la.len() as f64;
    Some(10.0 * (255.0 * 255.0 / mse).log10())
}

/// How a [`Vp8Decoder`] decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderSettings {
    /// Decoder threads (slice threading: macroblock rows split between them). One is the most
    /// work per core; frame threading is never used (it would delay output by a frame per
    /// thread).
    pub threads: usize,
    /// Skip the in-loop deblocking filter. Faster, but the decoder's references then differ
    /// from the publisher's and the error grows until the next source keyframe.
    pub skip_loop_filter: bool,
    /// Skip frames no later frame refers to (FFmpeg's `skip_frame = nonref`): with a publisher
    /// that sends two temporal layers, only the base layer (every other frame) is decoded, so
    /// the layers made from it run at half the frame rate. No picture comes out for a skipped
    /// frame; the references stay exact.
    pub skip_nonref: bool,
}

impl Default for DecoderSettings {
    /// One thread, full decoding.
    fn default() -> Self {
        DecoderSettings {
            threads: 1,
            skip_loop_filter: false,
            skip_nonref: false,
        }
    }
}

/// A VP8 decoder (no frame delay: one frame out per frame in).
pub struct Vp8Decoder {
    dec: decoder::Video,
    frame: frame::Video,
    scratch: frame::Video,
}

impl std::fmt::Debug for Vp8Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Decoder").finish_non_exhaustive()
    }
}

impl Vp8Decoder {
    /// Open FFmpeg's native VP8 decoder, single-threaded.
    pub fn new() -> Result<Self> {
        Self::with_settings(DecoderSettings::default())
    }

    /// Open FFmpeg's native VP8 decoder with `settings`.
    pub fn with_settings(settings: DecoderSettings) -> Result<Self> {
        init();
        let codec = decoder::find(codec::Id::VP8).ok_or(Error::CodecMissing("vp8"))?;
        let mut ctx = codec::Context::new_with_codec(codec);
        // Slice threads only: a thread count without a type means no threading at all.
        ctx.set_threading(threading::Config {
            kind: threading::Type::Slice,
            ..threading::Config::count(settings.threads.max(1))
        });
        let mut dec = ctx.decoder().video()?;
        if settings.skip_loop_filter {
            dec.skip_loop_filter(ffmpeg_next::Discard::All);
        }
        if settings.skip_nonref {
            dec.skip_frame(ffmpeg_next::Discard::NonReference);
        }
        Ok(Vp8Decoder {
            dec,
            frame: frame::Video::empty(),
            scratch: frame::Video::empty(),
        })
    }

    /// Skip (or decode again) frames no later frame refers to, from the next frame on. The
    /// decoder stays open and its references stay exact either way, so no keyframe is needed.
    pub fn set_skip_nonref(&mut self, skip: bool) {
        self.dec.skip_frame(if skip {
            ffmpeg_next::Discard::NonReference
        } else {
            ffmpeg_next::Discard::Default
        });
    }

    /// Decode one VP8 frame. `Ok(None)` if the decoder produced no picture for it.
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<Picture>> {
        Ok(self
            .decode_in_place(data)?
            .then(|| Picture(self.frame.clone())))
    }

    /// Width and height of the last decoded picture (0×0 before the first).
    pub fn size(&self) -> (u32, u32) {
        (self.frame.width(), self.frame.height())
    }

    /// Decode without copying the picture out; `true` if a picture came out. Cheaper than
    /// [`Self::decode`] when only the size or the decode cost matters (load tests, benches).
    pub fn decode_only(&mut self, data: &[u8]) -> Result<bool> {
        self.decode_in_place(data)
    }

    /// Decode into the internal frame; `true` if a picture came out.
    pub(crate) fn decode_in_place(&mut self, data: &[u8]) -> Result<bool> {
        if data.is_empty() {
            return Err(Error::Decode(ffmpeg_next::Error::InvalidData));
        }
        let pkt = Packet::copy(data);
        self.dec.send_packet(&pkt).map_err(Error::Decode)?;
        // A failed receive_frame unreferences the frame it was given, so drain into a scratch
        // frame and keep the last picture.
        let mut got = false;
        loop {
            match self.dec.receive_frame(&mut self.scratch) {
                Ok(()) => {
                    std::mem::swap(&mut self.frame, &mut self.scratch);
                    got = true;
                }
                Err(ffmpeg_next::Error::Other { errno: EAGAIN }) | Err(ffmpeg_next::Error::Eof) => {
                    break
                }
                Err(e) => return Err(Error::Decode(e)),
            }
        }
        Ok(got)
    }

    /// The last decoded frame, for the transcoder to scale/encode without copying.
    pub(crate) fn frame_mut(&mut self) -> &mut frame::Video {
        &mut self.frame
    }

    /// Forget reference frames after an error; the next useful input is a keyframe.
    pub(crate) fn reset(&mut self) {
        self.dec.flush();
    }
}

/// Mark (or unmark) a frame as a forced keyframe. Always set explicitly: a reused frame keeps
/// its picture type, and decoded source keyframes arrive marked `I`.
pub(crate) fn set_force_key(frame: &mut frame::Video, key: bool) {
    frame.set_kind(if key {
        picture::Type::I
    } else {
        picture::Type::None
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EncoderSettings {
        EncoderSettings {
            width: 64,
            height: 48,
            bitrate_bps: 100_000,
            fps: 30,
            gop: 60,
            static_thresh: 1,
            cpu_used: -12,
            threads: 1,
            error_resilient: false,
            // Not the default: so the option test below also proves FFmpeg takes `profile`.
            profile: 1,
            last_ref_only: false,
        }
    }

    #[test]
    fn every_realtime_option_is_consumed_by_libvpx() {
        open_encoder(&settings()).expect("all options used");
    }

    #[test]
    fn misspelt_option_fails_loudly() {
        let mut opts = realtime_options(&settings());
        opts.set("cpu_usedd", "4");
        match open_encoder_with(&settings(), opts) {
            Err(Error::UnusedOptions { options, .. }) => assert_eq!(options, vec!["cpu_usedd"]),
            other => panic!("expected UnusedOptions, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn keyframe_header_parsing() {
        assert_eq!(keyframe_size(&[]), None);
        let key = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02];
        assert_eq!(keyframe_size(&key), Some((1280, 720)));
        let mut delta = key;
        delta[0] |= 1;
        assert_eq!(keyframe_size(&delta), None);
    }

    #[test]
    fn decoder_rejects_garbage_without_panicking() {
        let mut d = Vp8Decoder::new().unwrap();
        let _ = d.decode(&[0xff; 7]);
        let _ = d.decode(&[0x00; 64]);
        assert!(d.decode(&[]).is_err());
    }
}
