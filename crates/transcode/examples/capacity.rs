//! How many 720p publishers one core can give two lower layers, measured with plain timers.
//!
//! `cargo run --release -p quicmeet-transcode --example capacity [frames]`

use std::time::Instant;

use quicmeet_transcode::layers::Config;
use quicmeet_transcode::testsrc::{self, ClipConfig};
use quicmeet_transcode::{LayerTranscoder, TrackKind};

fn main() {
    let frames: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(150);
    let clip = testsrc::vp8_clip(&ClipConfig::hd(frames)).expect("clip");
    let mut t = LayerTranscoder::new(Config::new(TrackKind::Camera)).expect("transcoder");
    let now = Instant::now();
    t.set_active(1, true, now).unwrap();
    t.set_active(2, true, now).unwrap();
    // Warm up on the first second, then measure.
    let warm = clip.len().min(30);
    for f in &clip[..warm] {
        t.push(&f.data, f.pts_us, f.keyframe, now).unwrap();
    }
    let before = t.metrics().snapshot();
    let start = Instant::now();
    let mut bytes = [0usize; 3];
    for f in &clip[warm..] {
        for o in t.push(&f.data, f.pts_us, f.keyframe, now).unwrap() {
            bytes[usize::from(o.layer)] += o.data.len();
        }
    }
    let wall = start.elapsed().as_secs_f64() * 1e3;
    let after = t.metrics().snapshot();
    let n = (clip.len() - warm) as f64;
    let ms = |a: u64, b: u64| (a - b) as f64 / 1e6 / n;
    let full = wall / n;
    let secs = n / 30.0;
    println!("frames measured: {n}");
    println!(
        "decode 720p          {:6.2} ms/frame",
        ms(after.decode_ns, before.decode_ns)
    );
    println!(
        "scale (both layers)  {:6.2} ms/frame",
        ms(after.scale_ns, before.scale_ns)
    );
    println!(
        "encode (both layers) {:6.2} ms/frame",
        ms(after.encode_ns, before.encode_ns)
    );
    println!("full pipeline        {full:6.2} ms/frame");
    println!(
        "layer bitrates: 360p {:.0} kbit/s, 180p {:.0} kbit/s",
        bytes[1] as f64 * 8.0 / secs / 1e3,
        bytes[2] as f64 * 8.0 / secs / 1e3
    );
    println!(
        "720p publishers per core at 30 fps with two lower layers: {:.1} (= 33.3 ms / {full:.2} ms)",
        33.333 / full
    );
}
