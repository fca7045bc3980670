//! Forwarding a frame allocates nothing in steady state: a regression guard for the hot path
//! (the bench `benches/fanout.rs` prints the same figure).
#![allow(unsafe_code)] // the counting allocator below

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

mod common;

use common::*;
use quicmeet_proto::{MediaKind, Role};
use quicmeet_sfu::{Output, Popped, QueueConfig, RoomConfig, SubscriberQueue};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Only the test's own thread counts: the test harness's threads allocate on their own
    // schedule (more often on a loaded machine), which says nothing about the room.
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    if COUNTED.with(|c| c.get()) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn forwarding_allocates_nothing_in_steady_state() {
    COUNTED.with(|c| c.set(true));
    let mut s = Sim::new(RoomConfig::default());
    s.join(1, "Pub", Role::Member, false);
    for c in 2..=21 {
        s.join(c, "Sub", Role::Member, false);
    }
    s.publish(1, 17, MediaKind::Video);
    for c in 2..=21 {
        s.subscribe(c, 17);
    }
    let frames: Vec<_> = (0..30).map(|i| video(17, i, i == 0)).collect();
    let mut queues: Vec<SubscriberQueue> = (0..=21)
        .map(|_| SubscriberQueue::new(QueueConfig::default()))
        .collect();
    let mut run = |s: &mut Sim, n: usize| {
        let mut forwarded = 0u64;
        for i in 0..n {
            s.advance(33);
            s.room.handle_input(
                s.now,
                quicmeet_sfu::Input::Media(quicmeet_sfu::ConnId(1), frames[i % 30].clone()),
            );
            while let Some(o) = s.room.poll_output() {
                if let Output::Media { to, frame } = o {
                    queues[to.0 as usize].push_media(frame);
                    forwarded += 1;
                }
            }
            for q in &mut queues {
                while let Some(Popped::Media { frame, .. }) = q.pop() {
                    drop(frame);
                }
            }
        }
        forwarded
    };
    run(&mut s, 120); // warm up: GOP cache and output deque reach their size
    let before = ALLOCS.load(Ordering::Relaxed);
    let forwarded = run(&mut s, 600);
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(forwarded, 600 * 20);
    assert_eq!(
        allocs, 0,
        "{allocs} allocations for {forwarded} forwarded frames"
    );
}
