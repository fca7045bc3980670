//! Cost of each transcoding stage per frame, single-threaded, on the 720p test pattern.
//!
//! `cargo bench -p quicmeet-transcode --bench layers -- --warm-up-time 1 --measurement-time 3`
//! The single-stage rows use swscale's bilinear and the test-material encoder (`cpu-used=12`,
//! libvpx's time-budget mode), i.e. the settings before issue 15; the full pipeline row uses
//! today's defaults. For the layers' own costs, quality and "publishers per core" run
//! `cargo run --release -p quicmeet-transcode --example capacity 300`.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use quicmeet_transcode::ffmpeg::format::Pixel;
use quicmeet_transcode::ffmpeg::software::scaling;
use quicmeet_transcode::ffmpeg::util::frame;
use quicmeet_transcode::layers::Config;
use quicmeet_transcode::testsrc::{self, ClipConfig};
use quicmeet_transcode::{LayerTranscoder, Picture, TrackKind, Vp8Decoder, Vp8Encoder};

const FRAMES: u32 = 60;

fn stages(c: &mut Criterion) {
    quicmeet_transcode::init();
    let cfg = ClipConfig::hd(FRAMES);
    let clip = testsrc::vp8_clip(&cfg).expect("clip");

    let mut g = c.benchmark_group("per_frame");

    let mut dec = Vp8Decoder::new().unwrap();
    let mut i = 0usize;
    g.bench_function("decode_720p", |b| {
        b.iter(|| {
            dec.decode_only(&clip[i % clip.len()].data).unwrap();
            i += 1;
        })
    });

    let source: Picture = Vp8Decoder::new()
        .unwrap()
        .decode(&clip[0].data)
        .unwrap()
        .unwrap();
    for (name, w, h) in [
        ("scale_720p_to_360p", 640, 360),
        ("scale_720p_to_180p", 320, 180),
    ] {
        let src = source.as_frame();
        let mut sc = scaling::Context::get(
            src.format(),
            src.width(),
            src.height(),
            Pixel::YUV420P,
            w,
            h,
            scaling::Flags::BILINEAR,
        )
        .unwrap();
        let mut out = frame::Video::empty();
        g.bench_function(name, |b| b.iter(|| sc.run(src, &mut out).unwrap()));
    }

    for (name, w, h, rate) in [
        ("encode_360p_500k", 640, 360, 500_000),
        ("encode_180p_150k", 320, 180, 150_000),
    ] {
        let mut pics: Vec<Picture> = (0..30)
            .map(|k| testsrc::pattern(1280, 720, k).scaled(w, h).unwrap())
            .collect();
        let mut enc = Vp8Encoder::new(w, h, rate, 30, 300).unwrap();
        let mut n = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                let k = (n % 30) as usize;
                enc.encode(&mut pics[k], n * 33_333, false).unwrap();
                n += 1;
            })
        });
    }

    let mut t = LayerTranscoder::new(Config::new(TrackKind::Camera)).unwrap();
    let now = Instant::now();
    t.set_active(1, true, now).unwrap();
    t.set_active(2, true, now).unwrap();
    let mut n = 0u64;
    g.bench_function("full_pipeline_720p_to_360p_and_180p", |b| {
        b.iter(|| {
            let f = &clip[(n % u64::from(FRAMES)) as usize];
            t.push(&f.data, n * 33_333, f.keyframe, now).unwrap();
            n += 1;
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
