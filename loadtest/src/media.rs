//! Test media encoded once at start-up and replayed by every publisher.
//!
//! The camera clip is real VP8 (libvpx through `quicmeet-transcode`) of a moving test pattern,
//! long enough to hold several groups of pictures, with a keyframe every `--keyframe-secs`;
//! the microphone is real Opus (20 ms packets of a tone). A [`Player`] walks a clip in a loop
//! at the clip's frame rate and, on a keyframe request, jumps to the clip's next keyframe, so
//! what goes on the wire is a stream a decoder would accept.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use quicmeet_testkit::clip::{self, ClipConfig, Scene};

use crate::cli::{Args, OnOff};

/// One encoded frame of a clip.
#[derive(Debug, Clone)]
pub struct ClipFrame {
    /// Codec payload.
    pub data: Bytes,
    /// A decoder can start here.
    pub keyframe: bool,
}

/// A clip replayed in a loop.
#[derive(Debug)]
pub struct Clip {
    /// The frames; frame 0 is a keyframe.
    pub frames: Vec<ClipFrame>,
    /// Time between frames.
    pub interval: Duration,
    /// Width and height for `publish`.
    pub size: Option<(u32, u32)>,
}

impl Clip {
    /// Mean payload bit rate of the clip.
    pub fn kbps(&self) -> f64 {
        let bytes: usize = self.frames.iter().map(|f| f.data.len()).sum();
        let secs = self.interval.as_secs_f64() * self.frames.len() as f64;
        bytes as f64 * 8.0 / secs.max(1e-9) / 1000.0
    }
}

/// Everything publishers send.
#[derive(Debug, Default)]
pub struct Library {
    /// Camera clip.
    pub video: Option<Arc<Clip>>,
    /// Screen-share clip.
    pub screen: Option<Arc<Clip>>,
    /// Microphone clip.
    pub audio: Option<Arc<Clip>>,
    /// The camera clip at each rung of the publishers' adaptation ladder
    /// ([`quicmeet_client::uplink::LADDER`]); empty when publishers do not adapt.
    pub video_ladder: Vec<Arc<Clip>>,
    /// The camera at half and quarter size (index = layer; 0 unused), for layers the server
    /// asks publishers to make (`--publisher-layers on`).
    pub video_layers: [Option<Arc<Clip>>; 3],
}

/// What a VP8 clip is made of.
#[derive(Debug, Clone, Copy)]
pub struct ClipSpec {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target bitrate, kbit/s.
    pub kbps: u32,
    /// Seconds between keyframes.
    pub keyframe_secs: f64,
    /// What the picture shows.
    pub scene: Scene,
    /// Temporal layers, 1 or 2 (`L1T2`, as browsers send the camera: every other frame is
    /// referred to by none).
    pub temporal_layers: u8,
}

fn vp8(spec: ClipSpec) -> Result<Arc<Clip>> {
    vp8_groups(spec, 3, false)
}

/// A clip of at most `max_groups` groups of pictures. With `warm_up`, one more group is
/// encoded first and left out: an encoder's first frames follow its start-up, not the
/// bitrate (at 720p libvpx sends the same 3–4 KB frames whatever it was asked for), and a
/// publisher that moves to a rung's clip mid-call must send what that rung sends once
/// running, as a real encoder told a new bitrate does.
fn vp8_groups(spec: ClipSpec, max_groups: u32, warm_up: bool) -> Result<Arc<Clip>> {
    let ClipSpec {
        width,
        height,
        fps,
        kbps,
        keyframe_secs,
        scene,
        temporal_layers,
    } = spec;
    let fps = fps.clamp(1, 120);
    let interval = ((keyframe_secs * f64::from(fps)).round() as u32).max(1);
    // At most three groups of pictures, at most ~6 s of video: enough variety, bounded
    // start-up.
    let groups = (180 / interval).clamp(1, max_groups.max(1));
    let skip = if warm_up { interval as usize } else { 0 };
    let cfg = ClipConfig {
        width,
        height,
        fps,
        frames: interval * groups + skip as u32,
        keyframe_interval: interval,
        bitrate_bps: kbps.saturating_mul(1000).max(20_000),
    };
    let frames = if temporal_layers >= 2 {
        clip::vp8_two_temporal_layers_of(&cfg, scene)?
    } else {
        clip::vp8_of(&cfg, scene)?
    }
    .into_iter()
    .map(|f| ClipFrame {
        data: Bytes::from(f.data),
        keyframe: f.keyframe,
    })
    .collect();
    Ok(Arc::new(Clip {
        frames: without_warm_up(frames, skip),
        interval: Duration::from_secs_f64(1.0 / f64::from(fps)),
        size: Some((width, height)),
    }))
}

/// `frames` without the first `skip` (the warm-up group), starting on the keyframe that
/// follows it.
fn without_warm_up(mut frames: Vec<ClipFrame>, skip: usize) -> Vec<ClipFrame> {
    frames.drain(..skip.min(frames.len()));
    frames
}

/// The camera clip a publisher sends at `rung` of its adaptation ladder
/// ([`quicmeet_client::uplink::LADDER`]), for a camera of `width`×`height` at `fps` and
/// `kbps`: the rung's share of each, even sizes as VP8 wants, one group of pictures after
/// the encoder's warm-up group (which is left out).
pub fn ladder_clip(top: ClipSpec, rung: &quicmeet_client::uplink::Rung) -> Result<Arc<Clip>> {
    let even = |x: u32| (x / rung.scale_divisor).max(16) & !1;
    let spec = ClipSpec {
        width: even(top.width),
        height: even(top.height),
        fps: (top.fps / rung.fps_divisor).max(1),
        kbps: (f64::from(top.kbps) * rung.bitrate).round() as u32,
        ..top
    };
    vp8_groups(spec, 1, true)
}

impl Library {
    /// Encode what `args` asks for.
    pub fn build(args: &Args) -> Result<Library> {
        let t = Instant::now();
        let camera = args.video_res.size().map(|(width, height)| ClipSpec {
            width,
            height,
            fps: args.fps,
            kbps: args.video_kbps,
            keyframe_secs: args.keyframe_secs,
            scene: args.video_scene.scene(),
            temporal_layers: args.video_temporal_layers,
        });
        let video = match camera {
            Some(spec) => Some(vp8(spec)?),
            None => None,
        };
        let mut video_ladder = vec![];
        if let (Some(v), Some(top), OnOff::On) = (&video, camera, args.adapt) {
            video_ladder.push(v.clone());
            // One group each (after the encoder's warm-up) keeps start-up short.
            for r in &quicmeet_client::uplink::LADDER[1..] {
                video_ladder.push(ladder_clip(top, r)?);
            }
        }
        let mut video_layers: [Option<Arc<Clip>>; 3] = Default::default();
        if let (Some(top), OnOff::On) = (camera, args.publisher_layers) {
            // The server's own targets for these layers are about a third and an eighth of a
            // 720p camera's bitrate.
            for (layer, share) in [(1usize, 3u32), (2, 8)] {
                let even = |x: u32| (x >> layer).max(16) & !1;
                video_layers[layer] = Some(vp8(ClipSpec {
                    width: even(top.width),
                    height: even(top.height),
                    kbps: (top.kbps / share).max(50),
                    // Forwarded as they are: the server decodes none of them.
                    temporal_layers: 1,
                    ..top
                })?);
            }
        }
        // A screen share is the test pattern at 5 fps (no scene of a screen exists yet).
        let screen = if args.screen {
            Some(vp8(ClipSpec {
                width: 1280,
                height: 720,
                fps: 5,
                kbps: 800,
                keyframe_secs: 3.0,
                scene: Scene::Pattern,
                temporal_layers: 1,
            })?)
        } else {
            None
        };
        let audio = if args.audio == OnOff::On {
            let pkts = clip::opus(50)?;
            Some(Arc::new(Clip {
                frames: pkts
                    .into_iter()
                    .map(|p| ClipFrame {
                        data: Bytes::from(p.data),
                        keyframe: false,
                    })
                    .collect(),
                interval: Duration::from_millis(20),
                size: None,
            }))
        } else {
            None
        };
        tracing::info!(
            elapsed_ms = t.elapsed().as_millis() as u64,
            "test media encoded"
        );
        Ok(Library {
            video,
            screen,
            audio,
            video_ladder,
            video_layers,
        })
    }
}

/// Walks a clip in a loop.
#[derive(Debug)]
pub struct Player {
    clip: Arc<Clip>,
    next: usize,
    /// A keyframe was asked for: jump to the next one.
    pub want_keyframe: bool,
}

impl Player {
    /// Start at frame 0 (a keyframe).
    pub fn new(clip: Arc<Clip>) -> Self {
        Player {
            clip,
            next: 0,
            want_keyframe: false,
        }
    }

    /// Frame interval.
    pub fn interval(&self) -> Duration {
        self.clip.interval
    }

    /// The next frame to send.
    pub fn next_frame(&mut self) -> &ClipFrame {
        let n = self.clip.frames.len();
        if self.want_keyframe {
            self.want_keyframe = false;
            if !self.clip.frames[self.next % n].keyframe {
                let skip = (0..n)
                    .find(|k| self.clip.frames[(self.next + k) % n].keyframe)
                    .unwrap_or(0);
                self.next = (self.next + skip) % n;
            }
        }
        let i = self.next % n;
        self.next = (i + 1) % n;
        &self.clip.frames[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(keys: &[bool]) -> Arc<Clip> {
        Arc::new(Clip {
            frames: keys
                .iter()
                .map(|k| ClipFrame {
                    data: Bytes::from_static(b"x"),
                    keyframe: *k,
                })
                .collect(),
            interval: Duration::from_millis(33),
            size: None,
        })
    }

    #[test]
    fn the_warm_up_group_is_left_out_and_the_clip_starts_on_the_next_keyframe() {
        let frames = |keys: &[bool]| -> Vec<ClipFrame> {
            keys.iter()
                .enumerate()
                .map(|(i, k)| ClipFrame {
                    data: Bytes::from(vec![i as u8]),
                    keyframe: *k,
                })
                .collect()
        };
        let kept = without_warm_up(frames(&[true, false, false, true, false, false]), 3);
        let ids: Vec<u8> = kept.iter().map(|f| f.data[0]).collect();
        assert_eq!(ids, [3, 4, 5]);
        assert!(kept[0].keyframe);
        // Nothing to leave out: the clip is unchanged.
        assert_eq!(without_warm_up(frames(&[true, false]), 0).len(), 2);
    }

    #[test]
    fn the_camera_scene_reaches_the_clip() {
        let spec = |scene| ClipSpec {
            width: 160,
            height: 120,
            fps: 10,
            kbps: 100,
            keyframe_secs: 1.0,
            scene,
            temporal_layers: 1,
        };
        let pattern = vp8(spec(Scene::Pattern)).unwrap();
        let camera = vp8(spec(Scene::Camera)).unwrap();
        assert!(camera.frames[0].keyframe);
        assert_eq!(camera.frames.len(), pattern.frames.len());
        assert_ne!(
            camera.frames[0].data, pattern.frames[0].data,
            "a different picture"
        );
    }

    #[test]
    fn a_warmed_up_clip_is_one_group_that_starts_on_a_keyframe() {
        let spec = ClipSpec {
            width: 160,
            height: 120,
            fps: 10,
            kbps: 100,
            keyframe_secs: 1.0,
            scene: Scene::Pattern,
            temporal_layers: 1,
        };
        let c = vp8_groups(spec, 1, true).unwrap();
        assert_eq!(c.frames.len(), 10);
        assert!(c.frames[0].keyframe);
        assert!(c.frames[1..].iter().all(|f| !f.keyframe));
    }

    #[test]
    fn player_loops_and_jumps_to_the_next_keyframe_on_request() {
        let mut p = Player::new(clip(&[true, false, false, true, false]));
        let seq: Vec<bool> = (0..6).map(|_| p.next_frame().keyframe).collect();
        assert_eq!(seq, [true, false, false, true, false, true]);
        p.want_keyframe = true; // next would be index 1
        assert!(p.next_frame().keyframe); // jumped to index 3
        assert!(!p.next_frame().keyframe);
    }
}
