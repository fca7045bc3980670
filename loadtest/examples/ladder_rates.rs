//! What each rung of the publishers' adaptation ladder really sends: the camera clip the load
//! tester makes for each rung (`quicmeet_client::uplink::LADDER`, as `--adapt on` does, by
//! the same function: one group of pictures after the encoder's warm-up group), against the
//! bitrate the rung asks for.
//!
//! `cargo run --release -p quicmeet-loadtest --example ladder_rates [WIDTH HEIGHT FPS KBPS]`
//! (default 1280 720 30 1500, the lab's 720p camera).

use quicmeet_client::uplink::LADDER;
use quicmeet_loadtest::media::{ladder_clip, ClipSpec};
use quicmeet_testkit::clip::Scene;

/// The load tester's default keyframe interval (`--keyframe-secs`).
const KEYFRAME_SECS: f64 = 2.0;

fn main() {
    let a: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let [w, h, fps, kbps] = match a.as_slice() {
        [w, h, f, k] => [*w, *h, *f, *k],
        _ => [1280, 720, 30, 1500],
    };
    println!("rung  size       fps  asks kbit/s  sends kbit/s  keyframes (bytes)");
    for (i, r) in LADDER.iter().enumerate() {
        // The clip the tester's publishers send at this rung (the top rung included, made
        // the same way here so every row is measured alike).
        let top = ClipSpec {
            width: w,
            height: h,
            fps,
            kbps,
            keyframe_secs: KEYFRAME_SECS,
            scene: Scene::Pattern,
            temporal_layers: 1,
        };
        let clip = ladder_clip(top, r).expect("VP8 clip");
        let (cw, ch) = clip.size.unwrap_or_default();
        let keys: Vec<usize> = clip
            .frames
            .iter()
            .filter(|x| x.keyframe)
            .map(|x| x.data.len())
            .collect();
        println!(
            "{i:>4}  {cw:>4}x{ch:<4}  {:>3}  {:>11}  {:>12.0}  {keys:?}",
            (1.0 / clip.interval.as_secs_f64()).round(),
            (f64::from(kbps) * r.bitrate).round(),
            clip.kbps()
        );
    }
}
