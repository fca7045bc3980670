//! What each rung of the publishers' adaptation ladder really sends: the camera clip the load
//! tester makes for each rung (`quicmeet_client::uplink::LADDER`, as `--adapt on` does),
//! encoded with the same realtime settings (and, as there, without the encoder's first
//! second), against the bitrate the rung asks for.
//!
//! `cargo run --release -p quicmeet-loadtest --example ladder_rates [WIDTH HEIGHT FPS KBPS]`
//! (default 1280 720 30 1500, the lab's 720p camera).

use quicmeet_client::uplink::LADDER;
use quicmeet_testkit::clip::{self, ClipConfig};

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
        let even = |x: u32| (x / r.scale_divisor).max(16) & !1;
        let f = (fps / r.fps_divisor).max(1);
        let cfg = ClipConfig {
            width: even(w),
            height: even(h),
            fps: f,
            // A warm-up second the tester leaves out (`media.rs`), then three.
            frames: f * 4,
            keyframe_interval: f,
            bitrate_bps: (f64::from(kbps) * 1000.0 * r.bitrate).round() as u32,
        };
        let mut frames = clip::vp8(&cfg).expect("VP8 clip");
        frames.drain(..f as usize);
        let bytes: usize = frames.iter().map(|x| x.data.len()).sum();
        let keys: Vec<usize> = frames
            .iter()
            .filter(|x| x.keyframe)
            .map(|x| x.data.len())
            .collect();
        println!(
            "{i:>4}  {:>4}x{:<4}  {f:>3}  {:>11}  {:>12}  {keys:?}",
            cfg.width,
            cfg.height,
            cfg.bitrate_bps / 1000,
            bytes * 8 / 3 / 1000
        );
    }
}
