//! Fan-out throughput of the room, including each subscriber's queue, and allocations per
//! forwarded frame.
//!
//! `cargo bench -p quicmeet-sfu --bench fanout -- --warm-up-time 1 --measurement-time 3`
//!
//! Scenarios: one publisher to 50 subscribers, and 10 publishers each watched by the same
//! 10 subscribers (every subscriber subscribes to every publisher). One iteration feeds one
//! 1200-byte VP8-sized frame (a keyframe every 30) through `Room::handle_input`, pushes every
//! `Output::Media` into the subscriber's `SubscriberQueue` and drains the queues, as the
//! server's transport tasks would. Throughput is reported per input frame; multiply by the
//! fan-out (50 or 10) for forwarded frames.
//!
//! Before the criterion runs, a counting global allocator measures heap allocations per
//! input frame and per forwarded frame in steady state and prints them.
#![allow(unsafe_code)] // the counting allocator below

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quicmeet_proto::{ClientMessage, EncodedFrame, Frame, FrameHeader, MediaKind, Role};
use quicmeet_sfu::{ConnId, Input, Join, Output, QueueConfig, Room, RoomConfig, SubscriberQueue};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Setup {
    room: Room,
    now: Instant,
    /// Indexed by connection id.
    queues: Vec<SubscriberQueue>,
    /// Per publisher: a ring of frames (keyframe first, then 29 deltas).
    frames: Vec<Vec<EncodedFrame>>,
    publishers: Vec<u64>,
    i: usize,
}

fn frame(track_id: u32, seq: u32, keyframe: bool) -> EncodedFrame {
    Frame::new(
        FrameHeader {
            kind: MediaKind::Video,
            layer: 0,
            keyframe,
            track_id,
            seq,
            capture_ts_us: u64::from(seq) * 33_333,
            audio_level: None,
            payload_len: 0,
        },
        Bytes::from(vec![0x5a; if keyframe { 12_000 } else { 1200 }]),
    )
    .encode()
    .unwrap()
}

fn setup(publishers: u64, subscribers: u64) -> Setup {
    let now = Instant::now();
    let config = RoomConfig {
        max_participants: 1000,
        publish_frames_per_sec: 1e12,
        publish_frames_burst: 1e12,
        publish_bytes_per_sec: 1e15,
        publish_bytes_burst: 1e15,
        ..RoomConfig::default()
    };
    let mut room = Room::new(config, now, 0, vec![]);
    let total = publishers + subscribers;
    for c in 1..=total {
        room.handle_input(
            now,
            Input::Join(Join {
                conn: ConnId(c),
                name: format!("p{c}"),
                email: String::new(),
                role: Role::Member,
                lobby: false,
                transport: "webtransport".into(),
            }),
        );
    }
    let pubs: Vec<u64> = (1..=publishers).collect();
    for &p in &pubs {
        // Participant ids equal connection ids here (joined in order from 1).
        let track_id = p as u32 * 16 + 1;
        room.handle_input(
            now,
            Input::Control(
                ConnId(p),
                ClientMessage::Publish {
                    track_id,
                    kind: MediaKind::Video,
                    codec: "vp8".into(),
                    width: Some(1280),
                    height: Some(720),
                    layers_capable: false,
                },
            ),
        );
        for s in publishers + 1..=total {
            room.handle_input(
                now,
                Input::Control(
                    ConnId(s),
                    ClientMessage::Subscribe {
                        track_id,
                        max_width: None,
                        max_height: None,
                        layer: None,
                    },
                ),
            );
        }
    }
    while room.poll_output().is_some() {}
    let frames = pubs
        .iter()
        .map(|&p| {
            (0..30)
                .map(|i| frame(p as u32 * 16 + 1, i, i == 0))
                .collect()
        })
        .collect();
    let queues = (0..=total)
        .map(|_| {
            SubscriberQueue::new(QueueConfig {
                max_video_bytes: 4 * 1024 * 1024,
                ..QueueConfig::default()
            })
        })
        .collect();
    Setup {
        room,
        now,
        queues,
        frames,
        publishers: pubs,
        i: 0,
    }
}

impl Setup {
    /// Feed one frame and carry out everything it causes. Returns frames forwarded.
    fn step(&mut self) -> usize {
        let p = self.i % self.publishers.len();
        let k = (self.i / self.publishers.len()) % 30;
        self.i += 1;
        self.now += Duration::from_micros(100);
        let f = self.frames[p][k].clone();
        self.room
            .handle_input(self.now, Input::Media(ConnId(self.publishers[p]), f));
        let mut n = 0;
        while let Some(o) = self.room.poll_output() {
            if let Output::Media { to, frame } = o {
                self.queues[to.0 as usize].push_media(frame);
                n += 1;
            }
        }
        for q in &mut self.queues {
            while let Some(item) = q.pop() {
                black_box(item);
            }
        }
        n
    }
}

fn report_allocations(name: &str, publishers: u64, subscribers: u64) {
    let probe = ALLOCS.load(Ordering::Relaxed);
    black_box(Vec::<u8>::with_capacity(64));
    assert!(
        ALLOCS.load(Ordering::Relaxed) > probe,
        "the counting allocator is active"
    );
    let mut s = setup(publishers, subscribers);
    for _ in 0..3000 {
        s.step();
    }
    let frames_in = 30_000u64;
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut forwarded = 0u64;
    for _ in 0..frames_in {
        forwarded += s.step() as u64;
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    println!(
        "allocations [{name}]: {allocs} for {frames_in} input frames / {forwarded} forwarded = {:.4} per input frame, {:.5} per forwarded frame",
        allocs as f64 / frames_in as f64,
        allocs as f64 / forwarded as f64
    );
}

fn fanout(c: &mut Criterion) {
    report_allocations("1 pub -> 50 subs", 1, 50);
    report_allocations("10 pubs -> 10 subs each", 10, 10);

    let mut g = c.benchmark_group("fanout");
    g.throughput(Throughput::Elements(1));
    let mut s = setup(1, 50);
    g.bench_function("1pub_50subs_per_input_frame", |b| b.iter(|| s.step()));
    let mut s = setup(10, 10);
    g.bench_function("10pubs_10subs_per_input_frame", |b| b.iter(|| s.step()));
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
