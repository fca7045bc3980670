//! The queue's drop policy, pinned case by case.

use std::time::Duration;

use super::*;
use quicmeet_proto::{Frame, FrameHeader, MediaKind};

fn frame(kind: MediaKind, track_id: u32, seq: u32, keyframe: bool, len: usize) -> EncodedFrame {
    Frame::new(
        FrameHeader {
            kind,
            layer: 0,
            keyframe,
            track_id,
            seq,
            capture_ts_us: seq as u64 * 1000,
            audio_level: None,
            payload_len: 0,
        },
        Bytes::from(vec![seq as u8; len]),
    )
    .encode()
    .unwrap()
}

fn small() -> QueueConfig {
    QueueConfig {
        max_control: 2,
        max_audio: 3,
        max_audio_bytes: 10_000,
        max_video: 4,
        max_video_bytes: 10_000,
        ..QueueConfig::default()
    }
}

fn seqs(q: &mut SubscriberQueue) -> Vec<(u32, u32)> {
    let mut out = vec![];
    while let Some(p) = q.pop() {
        if let Popped::Media { frame, .. } = p {
            out.push((frame.header().track_id, frame.header().seq));
        }
    }
    out
}

#[test]
fn pops_control_then_audio_then_video() {
    let mut q = SubscriberQueue::new(small());
    q.push_media(frame(MediaKind::Video, 17, 1, true, 10));
    q.push_media(frame(MediaKind::Audio, 16, 2, false, 10));
    q.push_control(Bytes::from_static(b"c")).unwrap();
    assert_eq!(q.pop(), Some(Popped::Control(Bytes::from_static(b"c"))));
    let Some(Popped::Media {
        frame: a,
        starts_group,
    }) = q.pop()
    else {
        panic!()
    };
    assert_eq!((a.header().track_id, starts_group), (16, false));
    let Some(Popped::Media {
        frame: v,
        starts_group,
    }) = q.pop()
    else {
        panic!()
    };
    assert_eq!((v.header().track_id, starts_group), (17, true));
    assert!(q.pop().is_none());
    assert_eq!(q.bytes(), 0);
}

#[test]
fn control_overflow_is_an_error_not_a_drop() {
    let mut q = SubscriberQueue::new(small());
    q.push_control(Bytes::from_static(b"1")).unwrap();
    q.push_control(Bytes::from_static(b"2")).unwrap();
    assert_eq!(
        q.push_control(Bytes::from_static(b"3")),
        Err(ControlOverflow)
    );
    assert_eq!(q.stats().control_overflows, 1);
}

#[test]
fn audio_drops_oldest_only_over_its_own_bound() {
    let mut q = SubscriberQueue::new(small());
    for s in 0..5 {
        assert_eq!(
            q.push_media(frame(MediaKind::Audio, 16, s, false, 10)),
            Pushed::Queued
        );
    }
    assert_eq!(q.stats().dropped_audio, 2);
    assert_eq!(seqs(&mut q), vec![(16, 2), (16, 3), (16, 4)]);
}

#[test]
fn video_backlog_drops_to_next_keyframe_and_reports_once() {
    let mut q = SubscriberQueue::new(small());
    q.push_media(frame(MediaKind::Video, 17, 0, true, 100));
    for s in 1..4 {
        assert_eq!(
            q.push_media(frame(MediaKind::Video, 17, s, false, 100)),
            Pushed::Queued
        );
    }
    // Audio meanwhile is untouched by video pressure.
    q.push_media(frame(MediaKind::Audio, 16, 100, false, 10));
    // Fifth video frame exceeds max_video = 4.
    assert_eq!(
        q.push_media(frame(MediaKind::Video, 17, 4, false, 100)),
        Pushed::Dropped
    );
    assert_eq!(
        q.poll_event(),
        Some(QueueEvent::ResetGroup { track_id: 17 })
    );
    assert_eq!(
        q.poll_event(),
        Some(QueueEvent::NeedKeyframe {
            track_id: 17,
            layer: 0
        })
    );
    assert_eq!(q.poll_event(), None);
    assert!(q.is_waiting_for_keyframe(17));
    // More deltas: dropped silently, no second report.
    assert_eq!(
        q.push_media(frame(MediaKind::Video, 17, 5, false, 100)),
        Pushed::Dropped
    );
    assert_eq!(q.poll_event(), None);
    // The keyframe resumes the track.
    assert_eq!(
        q.push_media(frame(MediaKind::Video, 17, 6, true, 100)),
        Pushed::Queued
    );
    assert_eq!(
        q.push_media(frame(MediaKind::Video, 17, 7, false, 100)),
        Pushed::Queued
    );
    assert_eq!(seqs(&mut q), vec![(16, 100), (17, 6), (17, 7)]);
    let s = q.stats();
    assert_eq!(
        (s.dropped_video, s.dropped_audio, s.keyframes_needed),
        (6, 0, 1)
    );
}

#[test]
fn byte_bound_applies_to_video() {
    let mut q = SubscriberQueue::new(small());
    q.push_media(frame(MediaKind::Video, 17, 0, true, 6000));
    assert_eq!(
        q.push_media(frame(MediaKind::Video, 17, 1, false, 6000)),
        Pushed::Dropped
    );
    assert!(q.is_waiting_for_keyframe(17));
    assert!(q.is_empty());
}

#[test]
fn keyframe_under_pressure_evicts_the_track_furthest_behind() {
    let mut q = SubscriberQueue::new(small());
    q.push_media(frame(MediaKind::Screen, 18, 0, true, 100));
    q.push_media(frame(MediaKind::Screen, 18, 1, false, 100));
    q.push_media(frame(MediaKind::Video, 33, 0, true, 100));
    q.push_media(frame(MediaKind::Video, 33, 1, false, 100));
    // Keyframe of 33 while full: 33's stale frames go, and that is enough room.
    assert_eq!(
        q.push_media(frame(MediaKind::Video, 33, 2, true, 100)),
        Pushed::Queued
    );
    assert!(!q.is_waiting_for_keyframe(33));
    assert!(!q.is_waiting_for_keyframe(18));
    assert_eq!(seqs(&mut q), vec![(18, 0), (18, 1), (33, 2)]);

    // Keyframe that only fits after cutting another track.
    let mut q = SubscriberQueue::new(small());
    for s in 0..4 {
        q.push_media(frame(MediaKind::Screen, 18, s, s == 0, 100));
    }
    assert_eq!(
        q.push_media(frame(MediaKind::Video, 33, 0, true, 100)),
        Pushed::Queued
    );
    assert!(q.is_waiting_for_keyframe(18));
    assert_eq!(
        q.poll_event(),
        Some(QueueEvent::ResetGroup { track_id: 18 })
    );
    assert_eq!(seqs(&mut q), vec![(33, 0)]);
}

#[test]
fn video_fill_reports_the_fuller_bound() {
    let mut q = SubscriberQueue::new(small());
    assert_eq!(q.video_fill(), 0.0);
    q.push_media(frame(MediaKind::Video, 17, 0, true, 100));
    assert_eq!(q.video_fill(), 0.25); // 1 of 4 frames beats 128 of 10 000 bytes
    q.push_media(frame(MediaKind::Video, 17, 1, false, 7000));
    assert!(q.video_fill() > 0.7);
}

#[test]
fn forget_track_clears_state() {
    let mut q = SubscriberQueue::new(small());
    q.push_media(frame(MediaKind::Video, 17, 0, false, 20_000));
    assert!(q.is_waiting_for_keyframe(17));
    q.push_media(frame(MediaKind::Audio, 16, 0, false, 10));
    q.forget_track(17);
    q.forget_track(16);
    assert!(!q.is_waiting_for_keyframe(17));
    assert!(q.is_empty());
    assert_eq!(q.bytes(), 0);
}

#[test]
fn stale_audio_is_dropped_not_sent() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut q = SubscriberQueue::new(QueueConfig::default());
    q.push_media_at(frame(MediaKind::Audio, 16, 0, false, 100), ms(0));
    q.push_media_at(frame(MediaKind::Audio, 16, 1, false, 100), ms(100));
    q.push_media_at(frame(MediaKind::Audio, 16, 2, false, 100), ms(140));
    // At 200 ms the first frame waited 200 ms (> 150): dropped; the others go out.
    let mut sent = vec![];
    while let Some(Popped::Media { frame, .. }) = q.pop_at(ms(200)) {
        sent.push(frame.header().seq);
    }
    assert_eq!(sent, vec![1, 2]);
    assert_eq!(q.stats().stale_audio, 1);
    assert_eq!(q.stats().dropped_audio, 1);
    // Without a time nothing ages (the byte and count bounds still apply).
    q.push_media(frame(MediaKind::Audio, 16, 3, false, 100));
    assert!(matches!(q.pop_at(ms(10_000)), Some(Popped::Media { .. })));
}

#[test]
fn video_that_waited_too_long_cuts_its_track_back_to_a_keyframe() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut q = SubscriberQueue::new(QueueConfig::default());
    q.push_media_at(frame(MediaKind::Video, 17, 0, true, 1000), ms(0));
    q.push_media_at(frame(MediaKind::Video, 17, 1, false, 1000), ms(30));
    q.push_media_at(frame(MediaKind::Video, 33, 0, true, 1000), ms(390));
    // At 450 ms track 17's frames are 450 and 420 ms old (> 400): cut; 33 is fresh.
    q.push_media_at(frame(MediaKind::Audio, 16, 0, false, 100), ms(450));
    let mut sent = vec![];
    while let Some(Popped::Media { frame, .. }) = q.pop_at(ms(450)) {
        sent.push((frame.header().track_id, frame.header().seq));
    }
    assert_eq!(sent, vec![(16, 0), (33, 0)]);
    assert_eq!(
        std::iter::from_fn(|| q.poll_event()).collect::<Vec<_>>(),
        vec![
            QueueEvent::ResetGroup { track_id: 17 },
            QueueEvent::NeedKeyframe {
                track_id: 17,
                layer: 0
            }
        ]
    );
    assert_eq!(q.stats().stale_video, 1);
    // Deltas of 17 are refused until its keyframe.
    assert_eq!(
        q.push_media_at(frame(MediaKind::Video, 17, 2, false, 1000), ms(460)),
        Pushed::Dropped
    );
    assert_eq!(
        q.push_media_at(frame(MediaKind::Video, 17, 3, true, 1000), ms(470)),
        Pushed::Queued
    );
}

#[test]
fn pushing_new_video_expires_video_that_waited_too_long() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut q = SubscriberQueue::new(QueueConfig::default());
    q.push_media_at(frame(MediaKind::Video, 17, 0, true, 1000), ms(0));
    q.push_media_at(frame(MediaKind::Video, 33, 0, true, 1000), ms(500));
    assert_eq!(q.stats().video_depth, 1, "track 17's stale frame went");
    assert!(q.is_waiting_for_keyframe(17));
}

#[test]
fn paced_video_waits_while_audio_and_control_pass() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut q = SubscriberQueue::new(QueueConfig::default());
    // 400 kbit/s = 50 bytes per ms, 2 kB saved up.
    q.set_video_pace(Some(400_000), ms(0));
    q.push_media_at(frame(MediaKind::Video, 17, 0, true, 5_000), ms(0));
    q.push_media_at(frame(MediaKind::Video, 17, 1, false, 1_000), ms(0));
    // The keyframe leaves whole; the next frame waits until its debt (3 kB and the
    // header) is paid, 60 ms later.
    assert!(matches!(q.pop_at(ms(0)), Some(Popped::Media { .. })));
    assert_eq!(q.pop_at(ms(0)), None);
    let at = q.paced_until().unwrap();
    assert!(at >= ms(60) && at < ms(62), "{:?}", at - t0);
    assert_eq!(q.stats().paced, 1);
    // Audio and control are not paced.
    q.push_media_at(frame(MediaKind::Audio, 16, 0, false, 100), ms(10));
    q.push_control(Bytes::from_static(b"{}")).unwrap();
    assert!(matches!(q.pop_at(ms(10)), Some(Popped::Control(_))));
    assert!(matches!(q.pop_at(ms(10)), Some(Popped::Media { .. })));
    assert_eq!(q.pop_at(ms(10)), None);
    assert_eq!(q.pop_at(ms(55)), None);
    let Some(Popped::Media { frame, .. }) = q.pop_at(ms(62)) else {
        panic!("the paced frame leaves once its time came");
    };
    assert_eq!(frame.header().seq, 1);
    // Unpaced again: nothing waits.
    q.set_video_pace(None, ms(62));
    q.push_media_at(frame_of(2), ms(62));
    assert!(q.pop_at(ms(62)).is_some());
    assert_eq!(q.paced_until(), None);
}

fn frame_of(seq: u32) -> EncodedFrame {
    frame(MediaKind::Video, 17, seq, false, 1_000)
}
