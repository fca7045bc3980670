//! Real test media: VP8 of a moving pattern or of a webcam-like scene and Opus of a tone, encoded by libvpx and
//! libopus through `quicmeet-transcode`, checked to be something a decoder can start on.

pub use quicmeet_transcode::testsrc::{ClipConfig, EncodedFrame, Scene};

use crate::{Error, Result};

/// The tone of [`opus`], in Hz.
pub const TONE_HZ: f32 = 440.0;

/// A VP8 clip of the moving test pattern as `cfg` asks; it is not empty and starts with a
/// keyframe.
pub fn vp8(cfg: &ClipConfig) -> Result<Vec<EncodedFrame>> {
    vp8_of(cfg, Scene::Pattern)
}

/// A VP8 clip of `scene` as `cfg` asks; it is not empty and starts with a keyframe.
pub fn vp8_of(cfg: &ClipConfig, scene: Scene) -> Result<Vec<EncodedFrame>> {
    checked(cfg, quicmeet_transcode::testsrc::vp8_clip_of(cfg, scene))
}

/// As [`vp8_of`], in two temporal layers (WebCodecs' `L1T2`, as the browser client sends its
/// camera).
pub fn vp8_two_temporal_layers_of(cfg: &ClipConfig, scene: Scene) -> Result<Vec<EncodedFrame>> {
    checked(
        cfg,
        quicmeet_transcode::testsrc::vp8_clip_two_temporal_layers(cfg, scene),
    )
}

fn checked(
    cfg: &ClipConfig,
    frames: quicmeet_transcode::Result<Vec<EncodedFrame>>,
) -> Result<Vec<EncodedFrame>> {
    let frames = frames.map_err(|e| {
        Error::Media(format!(
            "encoding the VP8 clip {}x{}: {e}",
            cfg.width, cfg.height
        ))
    })?;
    match frames.first() {
        None => Err(Error::Media("the VP8 encoder produced no frames".into())),
        Some(f) if !f.keyframe => Err(Error::Media(
            "the VP8 clip does not start with a keyframe".into(),
        )),
        Some(_) => Ok(frames),
    }
}

/// `frames` 20 ms Opus packets of a [`TONE_HZ`] tone.
pub fn opus(frames: usize) -> Result<Vec<EncodedFrame>> {
    quicmeet_transcode::testsrc::opus_tone(frames, TONE_HZ)
        .map_err(|e| Error::Media(format!("encoding the Opus tone: {e}")))
}
