//! Media-plane test helpers shared by the end-to-end test files: real test media published
//! in real time, collecting what arrives, and checks on what a peer must not see.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use quicmeet_client::proto::{EncodedFrame, ServerMessage};
use quicmeet_client::{ConnectOptions, Event, MediaEvent, TrackPublisher, Transport};
use quicmeet_testkit::clip::{self, ClipConfig};

use crate::meet::{Peer, T};

/// These tests measure latency and memory; running a file's tests one at a time keeps one
/// test's servers from skewing another's figures on a small machine (cargo runs the test
/// files themselves one after the other).
/// (A tokio mutex: it works across the tests' runtimes and a failed test does not poison it.)
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const WT: Transport = Transport::WebTransport;
pub const WS: Transport = Transport::WebSocket;

/// Real VP8 (320x180, 30 fps) and Opus test material, made once per test.
pub fn real_media(
    video_frames: u32,
    keyframe_interval: u32,
    audio_frames: usize,
) -> (Vec<clip::EncodedFrame>, Vec<clip::EncodedFrame>) {
    let video = clip::vp8(&ClipConfig {
        width: 320,
        height: 180,
        fps: 30,
        frames: video_frames,
        keyframe_interval,
        bitrate_bps: 300_000,
    })
    .expect("VP8 clip");
    let audio = clip::opus(audio_frames).expect("Opus tone");
    (video, audio)
}

/// Sends `audio` at 50 fps and `video` at 30 fps in real time, interleaved; returns what was
/// sent per track.
pub async fn publish_clip(
    tx: &mut quicmeet_client::ClientSender,
    mut mic: TrackPublisher,
    mut cam: TrackPublisher,
    audio: &[clip::EncodedFrame],
    video: &[clip::EncodedFrame],
) -> HashMap<u32, Vec<EncodedFrame>> {
    let start = tokio::time::Instant::now();
    let (mut ai, mut vi) = (0usize, 0usize);
    let mut sent: HashMap<u32, Vec<EncodedFrame>> = HashMap::new();
    mic.set_audio_level(Some(20));
    while ai < audio.len() || vi < video.len() {
        let a_due = start + Duration::from_millis(20 * ai as u64);
        let v_due = start + Duration::from_micros(33_333 * vi as u64);
        let audio_next = ai < audio.len() && (vi >= video.len() || a_due <= v_due);
        let due = if audio_next { a_due } else { v_due };
        tokio::time::sleep_until(due).await;
        let f = if audio_next {
            ai += 1;
            mic.frame(false, &audio[ai - 1].data).unwrap()
        } else {
            vi += 1;
            cam.frame(video[vi - 1].keyframe, &video[vi - 1].data)
                .unwrap()
        };
        tx.send_frame(&f).await.expect("send frame");
        sent.entry(f.header().track_id).or_default().push(f);
    }
    tx.finish_groups();
    sent
}

/// Receives until `want` frames arrived (or the deadline), returning the media events.
pub async fn collect_media(
    rx: &mut quicmeet_client::ClientReceiver,
    want: usize,
    deadline: Instant,
) -> Vec<MediaEvent> {
    let mut got = vec![];
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(Event::Media(m))) => got.push(m),
            Ok(Some(Event::Closed(c))) => panic!("connection closed while receiving: {c:?}"),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    got
}

/// Asserts that none of the control messages `peer` got since `from` matches `pred`.
pub fn assert_none(peer: &Peer, from: usize, what: &str, pred: impl Fn(&ServerMessage) -> bool) {
    let bad: Vec<_> = peer.since(from).into_iter().filter(|m| pred(m)).collect();
    assert!(bad.is_empty(), "{} must not get {what}: {bad:?}", peer.name);
}

/// Connects with a token that must not work; returns how the server refused it. Either the
/// WebTransport session is refused outright, or the server answers `error`/`goodbye` and
/// closes; never `welcome` or `lobby`.
pub async fn expect_refused(what: &str, join: &quicmeet_client::JoinInfo, t: Transport) -> String {
    let opts = ConnectOptions {
        connect_timeout: T,
        ..ConnectOptions::default()
    };
    let (_tx, mut rx) = match crate::meet::connect_raw(join, t, opts).await {
        Err(e) => return format!("{what} over {t:?}: connection refused: {e}"),
        Ok(c) => c,
    };
    let mut said = vec![];
    let deadline = Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some(Event::Control(
                m @ (ServerMessage::Welcome { .. } | ServerMessage::Lobby { .. }),
            ))) => {
                panic!("{what} over {t:?} was let in: {m:?}")
            }
            Ok(Some(Event::Control(m))) => said.push(m),
            Ok(Some(Event::Closed(c))) => {
                assert!(
                    said.iter().any(|m| matches!(
                        m,
                        ServerMessage::Error { .. } | ServerMessage::Goodbye { .. }
                    )),
                    "{what} over {t:?}: closed ({c:?}) without saying why: {said:?}"
                );
                return format!("{what} over {t:?}: {said:?} then closed ({c:?})");
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("{what} over {t:?}: ended without a close event"),
            Err(_) => {
                panic!("{what} over {t:?}: neither refused nor closed within {T:?}: {said:?}")
            }
        }
    }
}
