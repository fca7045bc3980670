//! Property tests of the subscriber queue's drop policy under arbitrary push/pop sequences.

mod common;

use std::collections::HashMap;

use common::frame;
use proptest::prelude::*;
use quicmeet_proto::MediaKind;
use quicmeet_sfu::{Popped, Pushed, QueueConfig, QueueEvent, SubscriberQueue};

#[derive(Debug, Clone)]
enum Op {
    /// Push the next frame of one of three tracks: 16 audio, 17 video, 18 screen.
    Push {
        track: u8,
        keyframe: bool,
        len: usize,
    },
    Pop(u8),
    Control,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..3, prop::bool::weighted(0.1), 1usize..3000).prop_map(|(track, keyframe, len)| Op::Push { track, keyframe, len }),
        3 => (1u8..6).prop_map(Op::Pop),
        1 => Just(Op::Control),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn queue_keeps_its_promises(ops in proptest::collection::vec(op(), 1..400)) {
        let cfg = QueueConfig { max_control: 4, max_audio: 5, max_audio_bytes: 4000, max_video: 8, max_video_bytes: 12_000, ..QueueConfig::default() };
        let mut q = SubscriberQueue::new(cfg);
        let mut seq: HashMap<u32, u32> = HashMap::new();
        // Last video frame popped per track, and whether a gap was announced since.
        let mut last_popped: HashMap<u32, u32> = HashMap::new();
        let mut audio_pushed = 0u64;
        let mut need_reports: HashMap<u32, u32> = HashMap::new();
        for op in ops {
            match op {
                Op::Push { track, keyframe, len } => {
                    let (kind, track_id) = match track {
                        0 => (MediaKind::Audio, 16),
                        1 => (MediaKind::Video, 17),
                        _ => (MediaKind::Screen, 18),
                    };
                    let s = seq.entry(track_id).or_default();
                    let f = frame(kind, track_id, *s, keyframe && kind.is_video(), 0, len);
                    *s += 1;
                    if kind == MediaKind::Audio { audio_pushed += 1; }
                    let r = q.push_media(f);
                    if kind == MediaKind::Audio {
                        // Audio that fits its own bound is always queued.
                        prop_assert_eq!(r, Pushed::Queued);
                    }
                }
                Op::Control => {
                    let _ = q.push_control(bytes::Bytes::from_static(b"c"));
                }
                Op::Pop(n) => {
                    let mut saw_video = false;
                    for _ in 0..n {
                        let Some(p) = q.pop() else { break };
                        match p {
                            Popped::Control(_) => prop_assert!(!saw_video),
                            Popped::Media { frame, starts_group } => {
                                let h = frame.header();
                                if h.kind.is_video() {
                                    saw_video = true;
                                    prop_assert_eq!(starts_group, h.keyframe);
                                    // No hole inside a group: a delta follows its predecessor.
                                    // (The pushed stream itself may begin with deltas.)
                                    if !h.keyframe {
                                        let prev = last_popped.get(&h.track_id).copied();
                                        prop_assert!(
                                            prev == h.seq.checked_sub(1) || (prev.is_none() && h.seq == 0),
                                            "delta {} after {:?}", h.seq, prev
                                        );
                                    }
                                    last_popped.insert(h.track_id, h.seq);
                                } else {
                                    prop_assert!(!saw_video, "audio after video in one drain");
                                }
                            }
                        }
                    }
                }
            }
            while let Some(e) = q.poll_event() {
                if let QueueEvent::NeedKeyframe { track_id, .. } = e {
                    *need_reports.entry(track_id).or_default() += 1;
                    prop_assert!(q.is_waiting_for_keyframe(track_id));
                }
            }
            let st = q.stats();
            prop_assert!(st.video_depth <= cfg.max_video);
            prop_assert!(st.audio_depth <= cfg.max_audio);
            prop_assert!(st.control_depth <= cfg.max_control);
            prop_assert_eq!(st.video_depth + st.audio_depth + st.control_depth, q.len());
            prop_assert!(st.dropped_audio <= audio_pushed);
        }
        // A track is reported at most once per entry into the waiting state.
        prop_assert_eq!(need_reports.values().sum::<u32>() as u64, q.stats().keyframes_needed);
    }
}
