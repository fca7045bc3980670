//! What counting costs on the per-frame path: the media plane's relaxed atomics (what the
//! server uses) next to prometheus-client's own counter and histogram, and what one scrape
//! of `/metrics` costs. Run: `cargo bench -p quicmeet-server --bench metrics`.

use std::hint::black_box;
use std::sync::{atomic::Ordering, Arc};

use criterion::{criterion_group, criterion_main, Criterion};
use prometheus_client::metrics::{counter::Counter, histogram::Histogram};
use quicmeet_server::media::MediaMetrics;

fn counting(c: &mut Criterion) {
    let ours = MediaMetrics::default();
    c.bench_function("frame counters: AtomicU64 fetch_add x2 (server)", |b| {
        b.iter(|| {
            ours.frames_out.fetch_add(1, Ordering::Relaxed);
            ours.bytes_out.fetch_add(black_box(1200), Ordering::Relaxed);
        })
    });
    let (frames, bytes): (Counter, Counter) = (Counter::default(), Counter::default());
    c.bench_function("frame counters: prometheus-client Counter x2", |b| {
        b.iter(|| {
            frames.inc();
            bytes.inc_by(black_box(1200));
        })
    });
    c.bench_function("fan-out latency: atomic buckets observe_us (server)", |b| {
        b.iter(|| ours.forward_latency.observe_us(black_box(730)))
    });
    let h = Histogram::new([
        50e-6, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25,
    ]);
    c.bench_function(
        "fan-out latency: prometheus-client Histogram observe",
        |b| b.iter(|| h.observe(black_box(730e-6))),
    );
    let http = Arc::new(quicmeet_server::metrics::Metrics::default());
    c.bench_function("scrape: render the HTTP counters", |b| {
        b.iter(|| quicmeet_server::metrics::render(&http, Vec::new()).len())
    });
}

criterion_group!(benches, counting);
criterion_main!(benches);
