//! What the per-subscriber queue's lock costs on the media hot path: one push (room actor)
//! and one pop (transport writer) per forwarded frame, through `ConnOut` (a mutex around
//! `SubscriberQueue`) versus the bare queue, uncontended and with the writer on another thread.
//!
//! `cargo bench -p quicmeet-server --bench conn_queue -- --warm-up-time 1 --measurement-time 3`

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quicmeet_proto::{EncodedFrame, Frame, FrameHeader, MediaKind};
use quicmeet_server::media::{conn::WireCache, ConnOut, Transport};
use quicmeet_sfu::{ConnId, QueueConfig, SubscriberQueue};
use smallvec::SmallVec;

fn frame(kind: MediaKind, seq: u32, key: bool) -> EncodedFrame {
    let header = FrameHeader {
        kind,
        layer: 0,
        keyframe: key,
        track_id: 17,
        seq,
        capture_ts_us: 1,
        audio_level: None,
        payload_len: 0,
    };
    Frame::new(
        header,
        Bytes::from(vec![7u8; if kind == MediaKind::Audio { 80 } else { 1200 }]),
    )
    .encode()
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let frames: Vec<EncodedFrame> = (0..64)
        .map(|i| {
            frame(
                if i % 3 == 0 {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                },
                i,
                i == 1,
            )
        })
        .collect();
    let mut g = c.benchmark_group("subscriber_queue");
    g.throughput(Throughput::Elements(1));

    g.bench_function("bare SubscriberQueue push+pop", |b| {
        let mut q = SubscriberQueue::new(QueueConfig::default());
        let mut i = 0;
        b.iter(|| {
            q.push_media(frames[i % 64].clone());
            i += 1;
            q.pop()
        })
    });

    g.bench_function("ConnOut push+pop (mutex, uncontended)", |b| {
        let out = ConnOut::new(ConnId(1), Transport::WebSocket);
        let mut ev = SmallVec::new();
        let mut i = 0;
        b.iter(|| {
            ev.clear();
            out.push_media(frames[i % 64].clone(), &mut ev, &mut WireCache::default());
            i += 1;
            out.pop()
        })
    });

    g.bench_function("ConnOut push (writer popping on another thread)", |b| {
        let out = Arc::new(ConnOut::new(ConnId(1), Transport::WebTransport));
        let stop = Arc::new(AtomicBool::new(false));
        let (o2, s2) = (out.clone(), stop.clone());
        let writer = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                if o2.pop().is_none() {
                    std::hint::spin_loop();
                }
            }
        });
        let mut ev = SmallVec::new();
        let mut i = 0;
        b.iter(|| {
            ev.clear();
            out.push_media(frames[i % 64].clone(), &mut ev, &mut WireCache::default());
            i += 1;
        });
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
