//! End-to-end tests of the media plane against the real `quicmeet` binary on loopback:
//! participants connect with `quicmeet-client` over WebTransport and WebSocket, and every
//! assertion is on bytes they actually received.
//!
//! Each test bounds every wait (helpers wait at most `meet::T`) and runs in well under 30 s.

mod common;
#[path = "common/meet.rs"]
mod meet;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use meet::{percentile, Meet, Peer, T};
use quicmeet_client::proto::track::Slot;
use quicmeet_client::proto::{ClientMessage, EncodedFrame, MediaKind, ServerMessage};
use quicmeet_client::{ConnectOptions, Event, MediaEvent, TrackPublisher, Transport, Via};
use quicmeet_transcode::testsrc::{self, ClipConfig};

const WT: Transport = Transport::WebTransport;
const WS: Transport = Transport::WebSocket;

/// Real VP8 (320x180, 30 fps) and Opus test material, made once per test.
fn real_media(
    video_frames: u32,
    keyframe_interval: u32,
    audio_frames: usize,
) -> (Vec<testsrc::EncodedFrame>, Vec<testsrc::EncodedFrame>) {
    let video = testsrc::vp8_clip(&ClipConfig {
        width: 320,
        height: 180,
        fps: 30,
        frames: video_frames,
        keyframe_interval,
        bitrate_bps: 300_000,
    })
    .expect("VP8 clip");
    let audio = testsrc::opus_tone(audio_frames, 440.0).expect("Opus tone");
    (video, audio)
}

/// Sends `audio` at 50 fps and `video` at 30 fps in real time, interleaved; returns what was
/// sent per track.
async fn publish_clip(
    tx: &mut quicmeet_client::ClientSender,
    mut mic: TrackPublisher,
    mut cam: TrackPublisher,
    audio: &[testsrc::EncodedFrame],
    video: &[testsrc::EncodedFrame],
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
async fn collect_media(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_over_both_transports_receive_every_frame_byte_exact() {
    let m = Meet::start("public", &[], &[]).await;
    let (video, audio) = real_media(60, 30, 100);
    assert!(video[0].keyframe && video[30].keyframe && !video[1].keyframe);

    let joins = [
        m.join_host().await,
        m.join_guest(&m.code, "Bea").await,
        m.join_guest(&m.code, "Cal").await,
    ];
    let mut peers = vec![
        Peer::join("Ann", &joins[0], WT).await,
        Peer::join("Bea", &joins[1], WT).await,
        Peer::join("Cal", &joins[2], WS).await,
    ];
    let mut pubs = vec![];
    for p in peers.iter_mut() {
        let mic = p.publish(Slot::Mic).await;
        let cam = p.publish(Slot::Camera).await;
        pubs.push((mic, cam));
    }
    let ids: Vec<u32> = peers.iter().map(|p| p.id).collect();
    for i in 0..peers.len() {
        for &other in ids.iter().filter(|&&o| o != ids[i]) {
            peers[i].subscribe(other * 16).await;
            peers[i].subscribe(other * 16 + 1).await;
        }
    }

    // Everyone publishes the clip and receives the other two at the same time.
    let want_each = 2 * (audio.len() + video.len());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut tasks = vec![];
    for (p, (mic, cam)) in peers.into_iter().zip(pubs) {
        let (audio, video) = (audio.clone(), video.clone());
        tasks.push(tokio::spawn(async move {
            let Peer {
                mut tx,
                mut rx,
                name,
                transport,
                ..
            } = p;
            let recv = tokio::spawn(async move {
                let got = collect_media(&mut rx, want_each, deadline).await;
                (got, rx)
            });
            let sent = publish_clip(&mut tx, mic, cam, &audio, &video).await;
            let (got, _rx) = recv.await.unwrap();
            (name, transport, sent, got, tx)
        }));
    }
    let mut results = vec![];
    for t in tasks {
        results.push(t.await.unwrap());
    }

    let mut latency: HashMap<(Transport, MediaKind), Vec<i64>> = HashMap::new();
    for (name, transport, _, got, _) in &results {
        let mut by_track: HashMap<u32, Vec<&MediaEvent>> = HashMap::new();
        for ev in got {
            by_track
                .entry(ev.frame.header().track_id)
                .or_default()
                .push(ev);
            latency
                .entry((*transport, ev.frame.header().kind))
                .or_default()
                .push(ev.latency_us());
            let expected_via = match (transport, ev.frame.header().kind) {
                (Transport::WebSocket, _) => Via::WebSocket,
                (_, MediaKind::Audio) => Via::Datagram,
                _ => Via::Stream,
            };
            assert_eq!(ev.via, expected_via, "{name}: {:?}", ev.frame.header());
        }
        for (pname, _, sent, _, _) in results.iter().filter(|r| &r.0 != name) {
            for (track, frames) in sent {
                let recv = by_track.get(track).map(Vec::as_slice).unwrap_or(&[]);
                assert_eq!(
                    recv.len(),
                    frames.len(),
                    "{name} got {} of {} frames of {pname}'s track {track}",
                    recv.len(),
                    frames.len()
                );
                for (i, (r, s)) in recv.iter().zip(frames).enumerate() {
                    assert_eq!(
                        r.frame.header().seq,
                        i as u32,
                        "{name}: {pname} track {track}"
                    );
                    assert_eq!(
                        r.frame.as_bytes(),
                        s.as_bytes(),
                        "{name}: frame {i} of {pname}'s track {track} differs"
                    );
                }
            }
        }
        assert_eq!(
            got.len(),
            want_each,
            "{name} received frames of tracks it did not subscribe to"
        );
    }
    for ((t, k), v) in latency.iter_mut() {
        let (p50, p99) = (percentile(v, 50.0), percentile(v, 99.0));
        eprintln!(
            "FIGURE latency {t:?} {k:?}: p50 {:.2} ms, p99 {:.2} ms over {} frames",
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0,
            v.len()
        );
    }
    for (_, _, _, _, tx) in results {
        tx.close().await.ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_a_keyframe_first_within_a_frame_interval() {
    let m = Meet::start("public", &[], &[]).await;
    // Groups of 45 frames (1.5 s at 30 fps); subscribing at frame ~60 lands mid-group.
    let (video, _) = real_media(120, 45, 1);
    let mut p = Peer::join("Pia", &m.join_host().await, WT).await;
    let cam = p.publish(Slot::Camera).await;
    let track = cam.track_id();
    let mut late = vec![
        Peer::join("Lou", &m.join_guest(&m.code, "Lou").await, WT).await,
        Peer::join("Lea", &m.join_guest(&m.code, "Lea").await, WS).await,
    ];

    let Peer { tx: mut ptx, .. } = p;
    let sender = tokio::spawn(async move {
        let mut cam = cam;
        let start = tokio::time::Instant::now();
        let mut sent = vec![];
        for (i, v) in video.iter().enumerate() {
            tokio::time::sleep_until(start + Duration::from_micros(33_333 * i as u64)).await;
            let f = cam.frame(v.keyframe, &v.data).unwrap();
            ptx.send_frame(&f).await.unwrap();
            sent.push((f, Instant::now()));
        }
        (sent, ptx)
    });
    tokio::time::sleep(Duration::from_millis(2000)).await;

    let mut results = vec![];
    for peer in late.iter_mut() {
        let subscribed = Instant::now();
        peer.send(ClientMessage::Subscribe {
            track_id: track,
            max_width: None,
            max_height: None,
            layer: Some(0),
        })
        .await;
        let got = collect_media(&mut peer.rx, 1, subscribed + T).await;
        let first = got.first().unwrap_or_else(|| panic!("{}: no video", peer.name)).clone();
        results.push((peer.name.clone(), subscribed, first));
    }
    let (sent, ptx) = sender.await.unwrap();
    // The rest of the stream for each late joiner: contiguous from the first keyframe.
    for peer in late.iter_mut() {
        let rest = collect_media(&mut peer.rx, usize::MAX, Instant::now() + Duration::from_millis(500)).await;
        peer.media = rest;
    }
    let frame_interval = Duration::from_micros(33_333);
    let slack = Duration::from_millis(250);
    for ((name, subscribed, first), peer) in results.iter().zip(&late) {
        let h = first.frame.header();
        assert!(h.keyframe, "{name}: first video frame is not a keyframe: {h:?}");
        let waited = first.received_at.duration_since(*subscribed);
        eprintln!("FIGURE late joiner {name} ({:?}): keyframe seq {} after {:.1} ms", peer.transport, h.seq, waited.as_secs_f64() * 1000.0);
        assert!(
            waited <= frame_interval + slack,
            "{name}: first keyframe after {waited:?}"
        );
        // Byte-exact copy of the keyframe that was sent, and every frame after it in order.
        let (sent_key, _) = &sent[h.seq as usize];
        assert_eq!(first.frame.as_bytes(), sent_key.as_bytes(), "{name}");
        let mut seq = h.seq;
        for ev in &peer.media {
            seq += 1;
            assert_eq!(ev.frame.header().seq, seq, "{name}: gap after the keyframe");
            assert_eq!(ev.frame.as_bytes(), sent[seq as usize].0.as_bytes(), "{name}");
        }
        assert_eq!(seq as usize, sent.len() - 1, "{name}: did not get the stream to the end");
    }
    ptx.close().await.ok();
}
