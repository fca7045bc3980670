//! How many 720p publishers one core can give two lower layers, and at what quality.
//!
//! `cargo run --release -p quicmeet-transcode --example capacity [frames] [--rounds N]
//! [--gop N] [--steps] [--only A,B] [--alone NAME] [--no-psnr] [--scene pattern|camera]
//! [--temporal]`
//!
//! Runs the transcoder variants interleaved in one process (A, B, A, B, …; `--rounds` times, 5
//! by default, 3 with `--steps`), because on a shared machine only figures taken side by side
//! compare. Costs are CPU time (the thread's run time from `/proc/thread-self/schedstat`), so
//! time spent waiting for a core while others compile does not count. For each variant it
//! prints the decode cost, the scaling cost, each layer's scale + encode cost, the whole
//! pipeline's cost per frame, 720p publishers per core at 30 fps, each layer's bitrate, and
//! each layer's mean Y-PSNR against the *uncompressed* test pattern scaled with Lanczos (a
//! filter none of the variants uses) and with bilinear (the old pipeline's own filter, which
//! therefore favours it). Figures are medians over the rounds; PSNR comes from the first round.
//!
//! Variants: `before` (the transcoder before issue 15: both layers scaled from the source with
//! swscale's bilinear, libvpx `cpu-used=12` in its time-budget mode, error resilience on) and
//! `after` (today's defaults). `--steps` adds each change on its own on top of `before`, and
//! what the defaults turned down; `--only A,B` keeps the step variants whose names contain A or
//! B. `--gop N` sets the source's keyframe interval (30 by default; browsers send far fewer).
//! `--no-psnr` skips the quality check (for a profiler: only the transcoder runs); `--alone NAME`
//! runs only the variant called NAME (the "x" column is then relative to it). `--scene camera`
//! transcodes a webcam-like scene (a still room, a person who moves and talks, sensor noise)
//! instead of the moving test pattern, the worst case where every pixel changes every frame;
//! its layers' PSNR is then measured against the scene without the noise. `--temporal` makes
//! the source with two temporal layers (WebCodecs' `L1T2`: every other frame is referred to by
//! none); `after` then decodes every frame, and `after, base layer only` (today's default)
//! decodes the base layer alone and so makes the lower layers at 15 fps (its PSNR counts the
//! frames it makes).

use std::collections::HashMap;
use std::time::Instant;

use quicmeet_transcode::layers::Config;
use quicmeet_transcode::testsrc::{self, ClipConfig, EncodedFrame, Scene};
use quicmeet_transcode::{
    psnr_y, DecoderSettings, LayerTranscoder, ScaleFilter, TrackKind, Tuning, Vp8Decoder,
};

/// Frames at the start of each pass that are not measured (encoder start-up, first keyframe).
const WARM_UP: usize = 30;
const FPS: f64 = 30.0;

struct Variant {
    name: String,
    config: Config,
}

/// The transcoder as it was before issue 15.
fn before() -> Config {
    let mut c = Config::new(TrackKind::Camera);
    c.tuning = Tuning {
        cascade: false,
        filter: ScaleFilter::Bilinear,
        encoder_threads: 1,
        error_resilient: true,
        decoder: DecoderSettings::default(),
        profiles: Vec::new(),
        last_ref_only: false,
    };
    for l in &mut c.layers {
        l.cpu_used = 12;
        l.static_thresh = 1;
    }
    c
}

fn variant(name: &str, f: impl FnOnce(&mut Config)) -> Variant {
    let mut config = before();
    f(&mut config);
    Variant {
        name: name.to_string(),
        config,
    }
}

fn variants(steps: bool) -> Vec<Variant> {
    let mut v = vec![
        variant("before", |_| {}),
        Variant {
            name: "after".into(),
            config: Config::new(TrackKind::Camera),
        },
    ];
    if !steps {
        return v;
    }
    v.push(variant("cascade (bilinear)", |c| c.tuning.cascade = true));
    for (a, b) in [(-6, -6), (-8, -8), (-12, -12), (-16, -16)] {
        v.push(variant(&format!("cpu-used {a}/{b}"), |c| {
            c.layers[0].cpu_used = a;
            c.layers[1].cpu_used = b;
        }));
    }
    for (name, filter) in [
        ("scale fast-bilinear", ScaleFilter::FastBilinear),
        ("scale area", ScaleFilter::Area),
        ("scale bicubic", ScaleFilter::Bicubic),
    ] {
        v.push(variant(name, |c| c.tuning.filter = filter));
    }
    v.push(variant("scale bicubic + cascade", |c| {
        c.tuning.filter = ScaleFilter::Bicubic;
        c.tuning.cascade = true;
    }));
    v.push(variant("error-resilient off", |c| {
        c.tuning.error_resilient = false
    }));
    v.push(variant("encoder threads 2", |c| {
        c.tuning.encoder_threads = 2
    }));
    v.push(variant("decoder skip loop filter", |c| {
        c.tuning.decoder.skip_loop_filter = true
    }));
    // What the defaults turned down: a faster 360p speed, the decoder's loop filter.
    let after = || Config::new(TrackKind::Camera);
    // Today's defaults without the encode breakout (the defaults until the fourth pass).
    let no_breakout = || {
        let mut c = after();
        for l in &mut c.layers {
            l.static_thresh = 1;
        }
        c
    };
    let mut faster = after();
    faster.layers[0].cpu_used = -16;
    let mut no_lf = after();
    no_lf.tuning.decoder.skip_loop_filter = true;
    // The same speeds with the other filters, with and without the cascade.
    let mut bilinear = after();
    bilinear.tuning.filter = ScaleFilter::Bilinear;
    bilinear.tuning.cascade = false;
    let mut area = after();
    area.tuning.filter = ScaleFilter::Area;
    let mut bicubic = after();
    bicubic.tuning.filter = ScaleFilter::Bicubic;
    let mut bilinear6 = bilinear.clone();
    bilinear6.layers[0].cpu_used = -6;
    bilinear6.layers[1].cpu_used = -6;
    // Third pass (perf4): more libvpx speeds per layer and the encode breakout, on top of after.
    for (a, b) in [
        (-13, -8),
        (-14, -8),
        (-15, -8),
        (-12, -10),
        (-12, -12),
        (-12, -16),
    ] {
        let mut c = after();
        c.layers[0].cpu_used = a;
        c.layers[1].cpu_used = b;
        v.push(Variant {
            name: format!("after, cpu-used {a}/{b}"),
            config: c,
        });
    }
    // Fourth pass: faster speeds on top of the breakout.
    for (a, b) in [(-14, -8), (-12, -12), (-14, -12), (-16, -12)] {
        let mut c = after();
        c.layers[0].cpu_used = a;
        c.layers[1].cpu_used = b;
        v.push(Variant {
            name: format!("after + cpu-used {a}/{b}"),
            config: c,
        });
    }
    // Third and fourth passes: the encode breakout (static-thresh) per layer, on top of after
    // without it; "no breakout" is after as it was before the fourth pass.
    for (a, b) in [
        (1, 1),
        (100, 100),
        (1000, 1000),
        (2000, 1000),
        (2000, 2000),
        (3000, 1000),
        (5000, 5000),
    ] {
        let mut c = no_breakout();
        c.layers[0].static_thresh = a;
        c.layers[1].static_thresh = b;
        v.push(Variant {
            name: if (a, b) == (1, 1) {
                "no breakout".into()
            } else {
                format!("static-thresh {a}/{b}")
            },
            config: c,
        });
    }
    // Sixth pass: VP8 profiles (simple loop filter, bilinear prediction) and last-frame-only
    // prediction in the layer encoders, on top of after.
    for p in [[1, 1], [0, 1], [1, 0], [2, 2], [3, 3]] {
        let mut c = after();
        c.tuning.profiles = p.to_vec();
        v.push(Variant {
            name: format!("after, profile {}/{}", p[0], p[1]),
            config: c,
        });
    }
    let mut last_only = after();
    last_only.tuning.last_ref_only = true;
    v.push(Variant {
        name: "after, last ref only".into(),
        config: last_only,
    });
    for p in [0u8, 1, 2] {
        for (a, b) in [(-12, -12), (-14, -8), (-14, -12), (-16, -8), (-16, -12)] {
            let mut c = after();
            c.tuning.last_ref_only = true;
            c.tuning.profiles = vec![p, p];
            c.layers[0].cpu_used = a;
            c.layers[1].cpu_used = b;
            v.push(Variant {
                name: format!("grid p{p} {a}/{b}"),
                config: c,
            });
        }
    }
    for p in [1u8, 2] {
        let mut c = after();
        c.tuning.last_ref_only = true;
        c.tuning.profiles = vec![p, p];
        v.push(Variant {
            name: format!("after, profile {p}/{p} + last ref only"),
            config: c,
        });
    }
    for (name, config) in [
        ("after, 360p at -16", faster),
        ("after + skip loop filter", no_lf),
        ("after, bilinear, no cascade", bilinear),
        ("after, bilinear, -6/-6", bilinear6),
        ("after, area", area),
        ("after, bicubic", bicubic),
    ] {
        v.push(Variant {
            name: name.into(),
            config,
        });
    }
    v
}

/// CPU time this thread has run, in ns (Linux `/proc/thread-self/schedstat`, first field).
/// Time spent waiting for a CPU does not count, so other jobs on a shared machine change it
/// far less than the wall clock.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat (Linux)")
}

/// One measured pass of a variant over the clip.
#[derive(Clone, Copy, Default)]
struct Pass {
    decode: f64,
    /// Scaling, both layers (part of `layer`).
    scale: f64,
    layer: [f64; 2],
    full: f64,
    kbps: [f64; 2],
}

/// A layer's encoded frames: (capture time in µs, VP8 payload).
type Stream = Vec<(u64, Vec<u8>)>;

fn run(config: &Config, clip: &[EncodedFrame], keep: bool) -> (Pass, Vec<Stream>) {
    let mut t = LayerTranscoder::new(config.clone()).expect("transcoder");
    let now = Instant::now();
    t.set_active(1, true, now).unwrap();
    t.set_active(2, true, now).unwrap();
    let warm = clip.len().min(WARM_UP);
    let mut kept: Vec<Stream> = vec![Vec::new(), Vec::new()];
    let mut keep_out = |out: Vec<quicmeet_transcode::LayerFrame>| {
        for o in out {
            if keep {
                kept[usize::from(o.layer) - 1].push((o.pts_us, o.data.to_vec()));
            }
        }
    };
    for f in &clip[..warm] {
        keep_out(t.push(&f.data, f.pts_us, f.keyframe, now).unwrap());
    }
    let m0 = t.metrics().snapshot();
    let s0 = [t.layer_stats(1).unwrap(), t.layer_stats(2).unwrap()];
    let start = Instant::now();
    let cpu0 = thread_cpu_ns();
    for f in &clip[warm..] {
        keep_out(t.push(&f.data, f.pts_us, f.keyframe, now).unwrap());
    }
    let cpu = (thread_cpu_ns() - cpu0) as f64 / 1e6;
    let wall = start.elapsed().as_secs_f64() * 1e3;
    let m1 = t.metrics().snapshot();
    let s1 = [t.layer_stats(1).unwrap(), t.layer_stats(2).unwrap()];
    let n = (clip.len() - warm) as f64;
    // Stage timers are wall clock; scale them by the pass's CPU/wall ratio so that preemption
    // by other jobs is taken out of every figure alike.
    let cpu_share = (cpu / wall).min(1.0);
    let ms = |ns: u64| ns as f64 / 1e6 / n * cpu_share;
    let mut pass = Pass {
        decode: ms(m1.decode_ns - m0.decode_ns),
        full: cpu / n,
        ..Pass::default()
    };
    pass.scale = ms(s1[0].scale_ns + s1[1].scale_ns - s0[0].scale_ns - s0[1].scale_ns);
    for k in 0..2 {
        pass.layer[k] = ms(s1[k].scale_ns + s1[k].encode_ns - s0[k].scale_ns - s0[k].encode_ns);
        pass.kbps[k] = (s1[k].bytes - s0[k].bytes) as f64 * 8.0 / (n / FPS) / 1e3;
    }
    (pass, kept)
}

/// Mean Y-PSNR of a decoded layer stream against the uncompressed scene (the camera scene
/// without its sensor noise) scaled with Lanczos and, second, with bilinear (the reference of the tests). The stream is decoded from its first
/// frame (a keyframe); every frame counts.
fn psnr(
    frames: &Stream,
    scene: Scene,
    index_of: &HashMap<u64, u32>,
    (w, h): (u32, u32),
) -> [f64; 2] {
    let mut dec = Vp8Decoder::new().unwrap();
    let (mut sum, mut n) = ([0.0; 2], 0);
    for (pts, data) in frames {
        let Ok(Some(pic)) = dec.decode(data) else {
            continue;
        };
        let source = scene.reference(1280, 720, index_of[pts]);
        for (k, filter) in [ScaleFilter::Lanczos, ScaleFilter::Bilinear]
            .into_iter()
            .enumerate()
        {
            let reference = source.scaled_with(w, h, filter).unwrap();
            sum[k] += psnr_y(&pic, &reference).unwrap();
        }
        n += 1;
    }
    sum.map(|s| s / f64::from(n.max(1)))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut frames, mut rounds, mut gop, mut steps) = (150u32, 0usize, 30u32, false);
    let mut only: Vec<String> = Vec::new();
    let mut alone: Option<String> = None;
    let mut quality_check = true;
    let mut scene = Scene::Pattern;
    let mut temporal = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--gop" => gop = args.next().and_then(|v| v.parse().ok()).unwrap_or(30),
            "--steps" => steps = true,
            "--scene" => {
                scene = match args.next().as_deref() {
                    Some("camera") => Scene::Camera,
                    Some("pattern") => Scene::Pattern,
                    other => panic!("--scene pattern|camera, not {other:?}"),
                }
            }
            // The publisher sends two temporal layers (L1T2); adds the variant that decodes
            // the base layer only.
            "--temporal" => temporal = true,
            // For profilers: nothing but the transcoder runs.
            "--no-psnr" => quality_check = false,
            // For profilers: exactly one variant (by its full name).
            "--alone" => {
                steps = true;
                alone = args.next();
            }
            "--only" => {
                steps = true;
                only = args
                    .next()
                    .map(|v| {
                        v.split(',')
                            .filter(|o| !o.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
            }
            n => frames = n.parse().expect("frames"),
        }
    }
    quicmeet_transcode::init();
    use quicmeet_transcode::ffmpeg::util::log;
    log::set_level(log::Level::Error);
    let cfg = ClipConfig {
        keyframe_interval: gop.max(1),
        ..ClipConfig::hd(frames.max(WARM_UP as u32 + 30))
    };
    let clip = if temporal {
        testsrc::vp8_clip_two_temporal_layers(&cfg, scene).expect("clip")
    } else {
        testsrc::vp8_clip_of(&cfg, scene).expect("clip")
    };
    let index_of: HashMap<u64, u32> = (0..cfg.frames).map(|i| (cfg.pts_us(i), i)).collect();

    // Idle cost: a publisher whose lower layers nobody watches.
    let mut idle = LayerTranscoder::new(Config::new(TrackKind::Camera)).expect("transcoder");
    let now = Instant::now();
    let start = Instant::now();
    for f in &clip {
        idle.push(&f.data, f.pts_us, f.keyframe, now).unwrap();
    }
    let idle_ns = start.elapsed().as_secs_f64() * 1e9 / clip.len() as f64;

    // Two variants alone are cheap: more rounds for a steadier median.
    if rounds == 0 {
        rounds = if steps { 3 } else { 5 };
    }
    let mut vs = variants(steps);
    if temporal {
        let mut base = vs
            .iter()
            .find(|v| v.name == "after")
            .expect("after")
            .config
            .clone();
        base.tuning.decoder.skip_nonref = true;
        vs.push(Variant {
            name: "after, base layer only".into(),
            config: base,
        });
        // `after` itself (today's defaults) skips non-reference frames too: here it decodes
        // every frame, as it did before the seventh pass.
        for v in vs.iter_mut().filter(|v| v.name == "after") {
            v.config.tuning.decoder.skip_nonref = false;
        }
    }
    if !only.is_empty() {
        vs.retain(|v| {
            v.name == "before"
                || v.name == "after"
                || only.iter().any(|o| v.name.contains(o.as_str()))
        });
    }
    if let Some(name) = &alone {
        vs.retain(|v| &v.name == name);
        assert!(!vs.is_empty(), "no variant named {name:?}");
    }
    let mut passes: Vec<Vec<Pass>> = vec![Vec::new(); vs.len()];
    let mut quality = vec![[[0.0f64; 2]; 2]; vs.len()];
    for round in 0..rounds.max(1) {
        for (k, v) in vs.iter().enumerate() {
            let check = round == 0 && quality_check;
            let (pass, kept) = run(&v.config, &clip, check);
            passes[k].push(pass);
            if check {
                quality[k] = [
                    psnr(&kept[0], scene, &index_of, (640, 360)),
                    psnr(&kept[1], scene, &index_of, (320, 180)),
                ];
            }
        }
    }

    println!(
        "720p30 {} source, {} frames measured per pass (keyframe every {gop}), {} rounds interleaved",
        match scene {
            Scene::Pattern => "test-pattern",
            Scene::Camera => "camera-like",
        },
        clip.len() - WARM_UP,
        rounds.max(1)
    );
    println!(
        "idle publisher (no layer watched): {idle_ns:.0} ns per frame, {} frames decoded",
        idle.metrics().snapshot().frames_decoded
    );
    println!(
        "{:<28} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5} {:>8} {:>13} {:>13} {:>7} {:>7}",
        "variant",
        "decode",
        "scale",
        "360p",
        "180p",
        "full",
        "x",
        "pub/core",
        "PSNR360 L/B",
        "PSNR180 L/B",
        "kb/s360",
        "kb/s180"
    );
    let base = median(passes[0].iter().map(|p| p.full).collect());
    for (k, v) in vs.iter().enumerate() {
        let p = &passes[k];
        let full = median(p.iter().map(|p| p.full).collect());
        println!(
            "{:<28} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>5.2} {:>8.1} {:>6.2}/{:<6.2} {:>6.2}/{:<6.2} {:>7.0} {:>7.0}",
            v.name,
            median(p.iter().map(|p| p.decode).collect()),
            median(p.iter().map(|p| p.scale).collect()),
            median(p.iter().map(|p| p.layer[0]).collect()),
            median(p.iter().map(|p| p.layer[1]).collect()),
            full,
            base / full,
            1000.0 / FPS / full,
            quality[k][0][0],
            quality[k][0][1],
            quality[k][1][0],
            quality[k][1][1],
            median(p.iter().map(|p| p.kbps[0]).collect()),
            median(p.iter().map(|p| p.kbps[1]).collect()),
        );
    }
    println!(
        "ms of CPU per source frame (this thread's run time; the stage timers are scaled to it)\n\
         scale = both layers' scaling; 360p/180p = that layer's scale + encode; full = the whole\n\
         pipeline; x = before's full / this full; pub/core = 720p publishers with both layers\n\
         per core at 30 fps; PSNR (dB) of the decoded layer against the uncompressed source\n\
         scaled with Lanczos (L) and with bilinear (B, the old pipeline's own filter)"
    );
}
