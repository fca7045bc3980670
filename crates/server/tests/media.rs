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

/// The tests in this file measure latency and memory; running them one at a time keeps one
/// test's servers from skewing another's figures on a small machine.
/// (A tokio mutex: it works across the tests' runtimes and a failed test does not poison it.)
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let _serial = SERIAL.lock().await;
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
    let _serial = SERIAL.lock().await;
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

    let Peer {
        tx: mut ptx,
        rx: prx,
        ..
    } = p;
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
        let first = got
            .first()
            .unwrap_or_else(|| panic!("{}: no video", peer.name))
            .clone();
        results.push((peer.name.clone(), subscribed, first));
    }
    let (sent, ptx) = sender.await.unwrap();
    // The rest of the stream for each late joiner: contiguous from the first keyframe.
    for peer in late.iter_mut() {
        let rest = collect_media(
            &mut peer.rx,
            usize::MAX,
            Instant::now() + Duration::from_millis(500),
        )
        .await;
        peer.media = rest;
    }
    let frame_interval = Duration::from_micros(33_333);
    let slack = Duration::from_millis(250);
    for ((name, subscribed, first), peer) in results.iter().zip(&late) {
        let h = first.frame.header();
        assert!(
            h.keyframe,
            "{name}: first video frame is not a keyframe: {h:?}"
        );
        let waited = first.received_at.duration_since(*subscribed);
        eprintln!(
            "FIGURE late joiner {name} ({:?}): keyframe seq {} after {:.1} ms",
            peer.transport,
            h.seq,
            waited.as_secs_f64() * 1000.0
        );
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
            assert_eq!(
                ev.frame.as_bytes(),
                sent[seq as usize].0.as_bytes(),
                "{name}"
            );
        }
        assert_eq!(
            seq as usize,
            sent.len() - 1,
            "{name}: did not get the stream to the end"
        );
    }

    // A subscriber's decoder asks for a keyframe: the publisher, and only it, is asked.
    let mut p = Peer {
        name: "Pia".into(),
        tx: ptx,
        rx: prx,
        id: track / 16,
        transport: WT,
        log: vec![],
        media: vec![],
        closed: None,
        ping: 0,
    };
    p.sync().await; // everything sent to the publisher so far is read and logged
    let mark = late[1].log.len();
    late[0]
        .send(ClientMessage::KeyframeRequest { track_id: track })
        .await;
    p.expect("keyframe_request", |m| {
        matches!(m, ServerMessage::KeyframeRequest { track_id, layer: 0 } if *track_id == track)
    })
    .await;
    late[1].sync().await;
    assert_none(&late[1], mark, "keyframe_request", |m| {
        matches!(m, ServerMessage::KeyframeRequest { .. })
    });
    // Asking for a track one does not subscribe to is an error.
    late[1]
        .send(ClientMessage::Unsubscribe { track_id: track })
        .await;
    late[1]
        .send(ClientMessage::KeyframeRequest { track_id: track })
        .await;
    late[1].expect_error("not_subscribed").await;
    p.tx.close().await.ok();
}

/// One received frame, as the stall test measures it.
#[derive(Clone, Copy, Debug)]
struct Rx {
    kind: MediaKind,
    keyframe: bool,
    seq: u32,
    capture_us: u64,
    received_us: u64,
}

fn rx_of(ev: &MediaEvent) -> Rx {
    let h = ev.frame.header();
    Rx {
        kind: h.kind,
        keyframe: h.keyframe,
        seq: h.seq,
        capture_us: h.capture_ts_us,
        received_us: ev.received_unix_us,
    }
}

/// Latency p50/p95/p99 (ms) and loss (frames sent in `[from, to)` and never received) for one
/// receiver.
fn phase_figures(sent: &[Rx], got: &[Rx], from: u64, to: u64) -> ([f64; 3], usize, usize) {
    let in_phase = |r: &&Rx| r.capture_us >= from && r.capture_us < to;
    let mut lat: Vec<i64> = got
        .iter()
        .filter(in_phase)
        .map(|r| r.received_us as i64 - r.capture_us as i64)
        .collect();
    let have: std::collections::HashSet<(MediaKind, u32)> =
        got.iter().map(|r| (r.kind, r.seq)).collect();
    let expected: Vec<&Rx> = sent.iter().filter(in_phase).collect();
    let lost = expected
        .iter()
        .filter(|r| !have.contains(&(r.kind, r.seq)))
        .count();
    let mut ms = |p| percentile(&mut lat, p) as f64 / 1000.0;
    ([ms(50.0), ms(95.0), ms(99.0)], lost, expected.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_does_not_hurt_the_others_and_recovers() {
    let _serial = SERIAL.lock().await;
    let m = Meet::start("public", &[], &[]).await;
    let mut p = Peer::join("Pub", &m.join_host().await, WT).await;
    let mic = p.publish(Slot::Mic).await;
    let cam = p.publish(Slot::Camera).await;
    let (mic_id, cam_id) = (mic.track_id(), cam.track_id());

    // Stallers read through tiny windows so the server feels them stop at once.
    let stall_wt = ConnectOptions {
        event_buffer: 4,
        receive_window: Some(64 * 1024),
        ..ConnectOptions::default()
    };
    let stall_ws = ConnectOptions {
        event_buffer: 4,
        tcp_recv_buffer: Some(16 * 1024),
        ..ConnectOptions::default()
    };
    let mut subs = vec![
        Peer::join("GoodWt", &m.join_guest(&m.code, "GoodWt").await, WT).await,
        Peer::join("GoodWs", &m.join_guest(&m.code, "GoodWs").await, WS).await,
    ];
    for (name, t, o) in [("StallWt", WT, stall_wt), ("StallWs", WS, stall_ws)] {
        let mut s = Peer::connect_with(name, &m.join_guest(&m.code, name).await, t, o).await;
        s.welcome().await;
        subs.push(s);
    }
    for s in subs.iter_mut() {
        s.subscribe(mic_id).await;
        s.subscribe(cam_id).await;
    }

    let t0 = Instant::now();
    let t0_us = quicmeet_client::now_us();
    let at = move |ms: u64| t0 + Duration::from_millis(ms);
    let us = move |ms: u64| t0_us + ms * 1000;
    let (stall_ms, resume_ms, end_ms) = (4_000u64, 10_000u64, 13_000u64);

    // Publisher: audio 50/s (100 B), video 30/s, keyframe every second (12 kB + 29 × 3.8 kB
    // ≈ 1 Mbit/s).
    let Peer { tx: mut ptx, .. } = p;
    let publisher = tokio::spawn(async move {
        let (mut mic, mut cam) = (mic, cam);
        mic.set_audio_level(Some(25));
        let key = vec![0x9du8; 12_000];
        let delta = vec![0x42u8; 3_800];
        let mut sent = vec![];
        let (mut a, mut v) = (0u64, 0u64);
        let start = tokio::time::Instant::now();
        loop {
            let a_due = Duration::from_millis(20 * a);
            let v_due = Duration::from_micros(33_333 * v);
            let due = a_due.min(v_due);
            if due >= Duration::from_millis(end_ms) {
                break;
            }
            tokio::time::sleep_until(start + due).await;
            let f = if a_due <= v_due {
                a += 1;
                mic.frame(false, &[0x11; 100]).unwrap()
            } else {
                v += 1;
                let k = (v - 1) % 30 == 0;
                cam.frame(k, if k { &key } else { &delta }).unwrap()
            };
            ptx.send_frame(&f).await.unwrap();
            sent.push(rx_of(&MediaEvent {
                frame: f,
                via: Via::Stream,
                received_at: Instant::now(),
                received_unix_us: 0,
            }));
        }
        (sent, ptx)
    });

    // Receivers: the good ones read all along; the stallers stop between stall and resume.
    let mut receivers = vec![];
    for (i, s) in subs.into_iter().enumerate() {
        let stalls = i >= 2;
        receivers.push(tokio::spawn(async move {
            let Peer {
                mut rx, name, tx, ..
            } = s;
            let mut got = vec![];
            let mut stalled = false;
            let deadline = at(end_ms + 1_000);
            loop {
                if stalls && !stalled && Instant::now() >= at(stall_ms) {
                    stalled = true;
                    tokio::time::sleep_until(at(resume_ms).into()).await;
                }
                let wake = if stalls && !stalled {
                    at(stall_ms).min(deadline)
                } else {
                    deadline
                };
                match tokio::time::timeout_at(wake.into(), rx.recv()).await {
                    Ok(Some(Event::Media(ev))) => got.push(rx_of(&ev)),
                    Ok(Some(Event::Closed(c))) => panic!("{name} was disconnected: {c:?}"),
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("{name}: connection ended"),
                    Err(_) if Instant::now() >= deadline => break,
                    Err(_) => {}
                }
            }
            (name, got, rx.stats(), tx)
        }));
    }

    // The server's memory while the subscribers stall.
    let pid = m.s.child.id();
    let rss = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    };
    tokio::time::sleep_until(at(stall_ms).into()).await;
    let rss_before = rss(pid);
    let mut rss_max = rss_before;
    while Instant::now() < at(resume_ms) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        rss_max = rss_max.max(rss(pid));
    }

    let (sent, ptx) = publisher.await.unwrap();
    let mut results = vec![];
    for r in receivers {
        results.push(r.await.unwrap());
    }

    let (a_from, a_to) = (us(500), us(stall_ms));
    let (b_from, b_to) = (us(stall_ms + 500), us(resume_ms));
    for (name, got, stats, _) in &results[..2] {
        let ([a50, a95, a99], alost, an) = phase_figures(&sent, got, a_from, a_to);
        let ([b50, b95, b99], blost, bn) = phase_figures(&sent, got, b_from, b_to);
        eprintln!(
            "FIGURE {name}: before the stall p50/p95/p99 {a50:.2}/{a95:.2}/{a99:.2} ms lost {alost}/{an}; \
             during {b50:.2}/{b95:.2}/{b99:.2} ms lost {blost}/{bn}; {stats:?}"
        );
        // p99 of a few hundred frames is one or two frames: on a shared 2-core machine it
        // moves with the neighbours' load, so the bound is on p50 and p95.
        assert!(
            b95 <= a95 + 40.0 && b50 <= a50 + 10.0,
            "{name}: latency rose while others stalled: p50 {a50:.2} → {b50:.2} ms, p95 {a95:.2} → {b95:.2} ms"
        );
        assert!(
            blost <= alost + bn / 100,
            "{name}: loss rose while others stalled: {alost}/{an} → {blost}/{bn}"
        );
    }
    for (name, got, stats, _) in &results[2..] {
        let resume_us = us(resume_ms);
        let fresh_audio = got
            .iter()
            .find(|r| r.kind == MediaKind::Audio && r.capture_us >= resume_us)
            .unwrap_or_else(|| panic!("{name}: no fresh audio after resuming"));
        let after = (fresh_audio.received_us - resume_us) as f64 / 1000.0;
        let stall_lost = phase_figures(&sent, got, us(stall_ms), resume_us);
        eprintln!(
            "FIGURE {name}: fresh audio {after:.1} ms after resuming; during the stall it missed {}/{} frames; {stats:?}",
            stall_lost.1, stall_lost.2
        );
        assert!(
            after < 2_000.0,
            "{name}: fresh audio only {after:.1} ms after resuming"
        );
        // Video the server dropped for it was dropped back to a keyframe: after every gap
        // the next frame is a keyframe, so the decoder never sees a broken group.
        let mut last: Option<u32> = None;
        let mut gaps = 0;
        for r in got.iter().filter(|r| r.kind != MediaKind::Audio) {
            match last {
                Some(l) if r.seq <= l => continue, // a late frame of an older group stream
                Some(l) if r.seq != l + 1 => {
                    gaps += 1;
                    assert!(
                        r.keyframe,
                        "{name}: video resumed at delta {} after {l}",
                        r.seq
                    );
                }
                _ => {}
            }
            last = Some(r.seq);
        }
        eprintln!("FIGURE {name}: {gaps} video gaps, each resumed at a keyframe");
    }
    let grew = rss_max.saturating_sub(rss_before);
    eprintln!("FIGURE server RSS {rss_before} KiB at the stall, max {rss_max} KiB during it (+{grew} KiB)");
    assert!(
        grew < 48 * 1024,
        "server memory grew by {grew} KiB while subscribers stalled"
    );
    ptx.close().await.ok();
}

/// Asserts that none of the control messages `peer` got since `from` matches `pred`.
fn assert_none(peer: &Peer, from: usize, what: &str, pred: impl Fn(&ServerMessage) -> bool) {
    let bad: Vec<_> = peer.since(from).into_iter().filter(|m| pred(m)).collect();
    assert!(bad.is_empty(), "{} must not get {what}: {bad:?}", peer.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_events_reach_the_right_people_only() {
    let _serial = SERIAL.lock().await;
    let m = Meet::start("private", &["mia@acme.test"], &[]).await;
    let mia = m.user("Mia Member", "mia@acme.test").await;
    let mut h = Peer::join("Host", &m.join_host().await, WT).await;
    let mut mm = Peer::join("Mia", &m.join_user(&mia, &m.code).await, WS).await;

    // An outsider knocks: only the host hears it; the outsider waits in the lobby.
    let oj = m.join_guest(&m.code, "Otto").await;
    assert_eq!(oj.status, quicmeet_client::JoinStatus::Waiting);
    let (mark_h, mark_m) = (h.log.len(), mm.log.len());
    let mut o = Peer::connect_with("Otto", &oj, WT, ConnectOptions::default()).await;
    o.expect("lobby", |m| matches!(m, ServerMessage::Lobby { .. }))
        .await;
    let knock = h
        .expect("knock", |m| matches!(m, ServerMessage::Knock { .. }))
        .await;
    let ServerMessage::Knock {
        participant_id: knocker,
        name,
        email,
    } = knock
    else {
        unreachable!()
    };
    assert_eq!((name.as_str(), email.as_str()), ("Otto", "otto@guest.test"));
    mm.sync().await;
    assert_none(&mm, mark_m, "knock", |m| {
        matches!(m, ServerMessage::Knock { .. })
    });
    // In the lobby nothing but ping and leave is allowed.
    o.send(ClientMessage::Chat {
        text: "let me in".into(),
    })
    .await;
    o.expect_error("not_admitted").await;
    o.sync().await;

    // The host admits: the knocker gets welcome, the others participant_joined.
    h.send(ClientMessage::Admit {
        participant_id: knocker,
    })
    .await;
    o.welcome().await;
    assert_eq!(o.id, knocker);
    for p in [&mut h, &mut mm] {
        p.expect("participant_joined", |m| {
            matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == knocker)
        })
        .await;
    }
    assert_none(&h, mark_h, "chat from the lobby", |m| {
        matches!(m, ServerMessage::Chat(_))
    });

    // Broadcasts reach everyone, the author included.
    mm.send(ClientMessage::Chat {
        text: "hello room 👋".into(),
    })
    .await;
    let mid = mm.id;
    for p in [&mut h, &mut mm, &mut o] {
        p.expect("chat", |m| {
            matches!(m, ServerMessage::Chat(c) if c.text == "hello room 👋" && c.participant_id == mid && c.name == "Mia Member")
        })
        .await;
    }
    o.send(ClientMessage::Mute {
        audio: true,
        video: true,
    })
    .await;
    let oid = o.id;
    for p in [&mut h, &mut mm, &mut o] {
        p.expect("mute_state", |m| {
            matches!(m, ServerMessage::MuteState { participant_id, audio: true, video: true } if *participant_id == oid)
        })
        .await;
    }
    mm.send(ClientMessage::Hand { raised: true }).await;
    for p in [&mut h, &mut mm, &mut o] {
        p.expect("hand", |m| {
            matches!(m, ServerMessage::Hand { participant_id, raised: true } if *participant_id == mid)
        })
        .await;
    }
    o.send(ClientMessage::Reaction {
        emoji: "🎉".into()
    })
    .await;
    for p in [&mut h, &mut mm, &mut o] {
        p.expect("reaction", |m| {
            matches!(m, ServerMessage::Reaction { participant_id, emoji } if *participant_id == oid && emoji == "🎉")
        })
        .await;
    }

    // Targeted messages reach their target only.
    let (mark_h, mark_o) = (h.log.len(), o.log.len());
    let hid = h.id;
    h.send(ClientMessage::MuteParticipant {
        participant_id: mid,
    })
    .await;
    mm.expect(
        "please_mute",
        |m| matches!(m, ServerMessage::PleaseMute { by } if *by == hid),
    )
    .await;
    h.send(ClientMessage::Signal {
        to: oid,
        data: serde_json::json!({"sdp": "v=0"}),
    })
    .await;
    o.expect("signal", |m| {
        matches!(m, ServerMessage::Signal { from, data } if *from == hid && data["sdp"] == "v=0")
    })
    .await;
    let mark_m = mm.log.len();
    h.sync().await;
    o.sync().await;
    mm.sync().await;
    assert_none(&h, mark_h, "please_mute or signal", |m| {
        matches!(
            m,
            ServerMessage::PleaseMute { .. } | ServerMessage::Signal { .. }
        )
    });
    assert_none(&o, mark_o, "please_mute", |m| {
        matches!(m, ServerMessage::PleaseMute { .. })
    });
    assert_none(&mm, mark_m, "signal", |m| {
        matches!(m, ServerMessage::Signal { .. })
    });

    // Host powers are the host's: a guest's end_meeting and a member's remove are refused
    // and nothing happens.
    let marks = [h.log.len(), mm.log.len(), o.log.len()];
    o.send(ClientMessage::EndMeeting {}).await;
    o.expect_error("forbidden").await;
    mm.send(ClientMessage::Remove {
        participant_id: oid,
    })
    .await;
    mm.expect_error("forbidden").await;
    for (p, mark) in [&mut h, &mut mm, &mut o].into_iter().zip(marks) {
        p.sync().await;
        assert_none(p, mark, "goodbye or participant_left", |m| {
            matches!(
                m,
                ServerMessage::Goodbye { .. } | ServerMessage::ParticipantLeft { .. }
            )
        });
        assert!(p.closed.is_none(), "{} was disconnected", p.name);
    }
    mm.send(ClientMessage::Chat {
        text: "still here".into(),
    })
    .await;
    o.expect(
        "chat after the refused end",
        |m| matches!(m, ServerMessage::Chat(c) if c.text == "still here"),
    )
    .await;

    // Remove: the target gets goodbye and is disconnected; the others see it leave.
    h.send(ClientMessage::Remove {
        participant_id: oid,
    })
    .await;
    o.expect(
        "goodbye removed",
        |m| matches!(m, ServerMessage::Goodbye { reason, .. } if reason == "removed"),
    )
    .await;
    o.wait_closed().await;
    for p in [&mut h, &mut mm] {
        p.expect("participant_left removed", |m| {
            matches!(m, ServerMessage::ParticipantLeft { participant_id, reason } if *participant_id == oid && reason == "removed")
        })
        .await;
    }

    // End for all: everyone gets goodbye ended and is disconnected.
    let early = [
        m.join_guest(&m.code, "Early Wt").await,
        m.join_guest(&m.code, "Early Ws").await,
    ];
    h.send(ClientMessage::EndMeeting {}).await;
    for p in [&mut h, &mut mm] {
        p.expect(
            "goodbye ended",
            |m| matches!(m, ServerMessage::Goodbye { reason, .. } if reason == "ended"),
        )
        .await;
        p.wait_closed().await;
    }
    // Later: the REST join is refused, and a token fetched before the end does not let
    // anyone back into the room.
    match quicmeet_client::join(&mia, &m.s.base, &m.code, &quicmeet_client::JoinAs::Session).await {
        Err(quicmeet_client::ClientError::JoinRefused { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (410, "meeting_ended"));
        }
        other => panic!("join after the end: {other:?}"),
    }
    for t in [WT, WS] {
        let said = expect_refused(
            "a token from before the end",
            &early[usize::from(t == WS)],
            t,
        )
        .await;
        eprintln!("{said}");
    }
    // The host starts it again; then the member may come back.
    let mut h2 = Peer::join("Host again", &m.join_host().await, WT).await;
    let mut back = Peer::join("Mia back", &m.join_user(&mia, &m.code).await, WS).await;
    let mid2 = back.id;
    h2.expect(
        "participant_joined after the restart",
        |m| matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == mid2),
    )
    .await;
    back.sync().await;
}

/// Connects with a token that must not work; returns how the server refused it. Either the
/// WebTransport session is refused outright, or the server answers `error`/`goodbye` and
/// closes; never `welcome` or `lobby`.
async fn expect_refused(what: &str, join: &quicmeet_client::JoinInfo, t: Transport) -> String {
    let opts = ConnectOptions {
        connect_timeout: T,
        ..ConnectOptions::default()
    };
    let (_tx, mut rx) = match meet::connect_raw(join, t, opts).await {
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

fn error_code(said: &str, code: &str) -> bool {
    said.contains(&format!("code: \"{code}\""))
        || said.contains("SessionRejected")
        || said.contains("rejected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_tokens_are_single_use_short_lived_and_bound_to_their_meeting() {
    let _serial = SERIAL.lock().await;
    let m = Meet::start("public", &[], &["--join-token-ttl-secs", "1"]).await;

    // Reused, on the same and on the other transport.
    for t in [WT, WS] {
        let j = m.join_guest(&m.code, &format!("Once {t:?}")).await;
        let mut p = Peer::join("first use", &j, t).await;
        for again in [WT, WS] {
            let said = expect_refused("a reused token", &j, again).await;
            eprintln!("{said}");
            assert!(error_code(&said, "token_invalid"), "{said}");
        }
        p.sync().await;
        assert!(
            p.closed.is_none(),
            "the first connection survived the reuse attempts"
        );
    }

    // Expired (the server runs with one-second tokens).
    let expired = [
        m.join_guest(&m.code, "Late Wt").await,
        m.join_guest(&m.code, "Late Ws").await,
    ];
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    for (j, t) in expired.iter().zip([WT, WS]) {
        let said = expect_refused("an expired token", j, t).await;
        eprintln!("{said}");
        assert!(error_code(&said, "token_expired"), "{said}");
    }

    // Made up.
    let mut forged = m.join_guest(&m.code, "Forger").await;
    forged.token = "A".repeat(43);
    for t in [WT, WS] {
        eprintln!("{}", expect_refused("a forged token", &forged, t).await);
    }

    // A token is for its own meeting only: it never puts anyone into another meeting.
    let mut a = Peer::join("In one", &m.join_host().await, WT).await;
    let other = m.create_meeting("public", &[]).await;
    let mark = a.log.len();
    let mut b = Peer::connect_with(
        "In two",
        &m.join_guest(&other, "Two").await,
        WS,
        ConnectOptions::default(),
    )
    .await;
    let w = b.welcome().await;
    let ServerMessage::Welcome {
        meeting,
        participants,
        ..
    } = w
    else {
        unreachable!()
    };
    assert_eq!(meeting.code, other);
    assert_eq!(participants.len(), 1, "{participants:?}");
    a.sync().await;
    assert_none(&a, mark, "participant_joined from another meeting", |m| {
        matches!(m, ServerMessage::ParticipantJoined { .. })
    });
    // A token of a meeting cancelled after the join is refused.
    let j = m.join_guest(&other, "Too Late").await;
    let r = m
        .host
        .delete(m.s.url(&format!("/api/meetings/{other}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let said = expect_refused("a token of a cancelled meeting", &j, WT).await;
    eprintln!("{said}");
}

/// A frame header (28 bytes) with the given track and payload length, followed by `payload`.
fn raw_frame(
    kind: MediaKind,
    track_id: u32,
    seq: u32,
    payload_len: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = vec![1, kind as u8, 0, 0];
    v.extend_from_slice(&track_id.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&quicmeet_client::now_us().to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(&payload_len.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_an_error_or_a_drop_and_the_others_keep_receiving() {
    let _serial = SERIAL.lock().await;
    use quicmeet_client::WsRawMessage;
    const MAX: u32 = quicmeet_client::proto::frame::MAX_PAYLOAD as u32;
    let mut m = Meet::start("public", &[], &[]).await;
    let mut p = Peer::join("Pub", &m.join_host().await, WT).await;
    let mut mic = p.publish(Slot::Mic).await;
    let mic_id = mic.track_id();
    let mut watchers = vec![
        Peer::join("WatchWt", &m.join_guest(&m.code, "WatchWt").await, WT).await,
        Peer::join("WatchWs", &m.join_guest(&m.code, "WatchWs").await, WS).await,
    ];
    for w in watchers.iter_mut() {
        w.subscribe(mic_id).await;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let Peer { tx: mut ptx, .. } = p;
    let mut stop = stop_rx.clone();
    let publisher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut sent = 0u32;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tick.tick() => {
                    let f = mic.frame(false, b"real audio").unwrap();
                    ptx.send_frame(&f).await.unwrap();
                    sent += 1;
                }
            }
        }
        (sent, ptx)
    });
    let mut collectors = vec![];
    for mut w in watchers {
        let mut stop = stop_rx.clone();
        collectors.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    ev = w.rx.recv() => match ev {
                        Some(Event::Media(e)) => w.media.push(e),
                        Some(Event::Control(c)) => w.log.push(c),
                        Some(Event::Closed(c)) => panic!("{} was disconnected: {c:?}", w.name),
                        Some(_) => {}
                        None => panic!("{}: connection ended", w.name),
                    }
                }
            }
            w
        }));
    }

    // WebTransport offender: each bad input is answered with an error and the session stays.
    let mut x = Peer::join("BadWt", &m.join_guest(&m.code, "BadWt").await, WT).await;
    let own_mic = x.track(Slot::Mic);
    x.tx.raw_datagram(b"\xffnot a frame at all").unwrap();
    x.expect_error("bad_version").await;
    let f = raw_frame(MediaKind::Audio, own_mic, 0, 50, &[7; 45]);
    x.tx.raw_datagram(&f).unwrap();
    x.expect_error("truncated").await;
    x.tx.raw_uni_stream(&[0x07; 1000]).await.unwrap();
    x.expect_error("bad_version").await;
    x.tx.raw_uni_stream(&raw_frame(
        MediaKind::Video,
        own_mic + 1,
        0,
        MAX + 1,
        &[0; 100],
    ))
    .await
    .unwrap();
    x.expect_error("oversized").await;
    for (json, code) in [
        (
            &br#"{"v":1,"type":"launch_rockets"}"#[..],
            "unknown_message",
        ),
        (b"\x00\x01 not json", "bad_json"),
        (br#"{"v":2,"type":"ping","t":1}"#, "bad_version"),
        (br#"{"v":1,"type":"subscribe"}"#, "invalid_message"),
        (br#"[1,2,3]"#, "bad_json"),
    ] {
        x.tx.send_control_json(json).await.unwrap();
        x.expect_error(code).await;
    }
    // Frames for somebody else's track are dropped without reaching anyone.
    for seq in 0..5 {
        x.tx.raw_datagram(&raw_frame(
            MediaKind::Audio,
            mic_id,
            900_000 + seq,
            6,
            b"FORGED",
        ))
        .unwrap();
    }
    x.sync().await;
    assert!(x.closed.is_none());
    // A control length above 64 KiB breaks the framing: error, goodbye, disconnect.
    // (The server queues error + goodbye, but today they are lost because the session's
    // writer is dropped when the reader ends; the close reason still says why. Reported.)
    let mark = x.log.len();
    x.tx.raw_control_stream(&(65_537u32).to_be_bytes())
        .await
        .unwrap();
    let c = x.wait_closed().await;
    let said = x.since(mark);
    eprintln!("WT offender after a too-large control length: {said:?} then {c:?}");
    assert!(
        said.iter()
            .any(|m| matches!(m, ServerMessage::Error { code, .. } if code == "too_large"))
            || c.reason.contains("protocol_error"),
        "no clear reason for the disconnect: {said:?} {c:?}"
    );

    // WebSocket offender.
    let mut y = Peer::join("BadWs", &m.join_guest(&m.code, "BadWs").await, WS).await;
    let own = y.track(Slot::Mic);
    let cases: Vec<(WsRawMessage, &str)> = vec![
        (WsRawMessage::Text("hello?".into()), "binary_required"),
        (
            WsRawMessage::Binary(vec![0x07, 1, 2].into()),
            "unknown_type",
        ),
        (WsRawMessage::Binary(Vec::new().into()), "empty"),
        (
            WsRawMessage::Binary(
                [
                    &[2u8][..],
                    &raw_frame(MediaKind::Audio, own, 0, 50, &[1; 10]),
                ]
                .concat()
                .into(),
            ),
            "truncated",
        ),
        (
            WsRawMessage::Binary(
                [
                    &[2u8][..],
                    &raw_frame(MediaKind::Audio, own, 0, MAX + 1, &[1; 10]),
                ]
                .concat()
                .into(),
            ),
            "oversized",
        ),
        (
            WsRawMessage::Binary(
                [
                    &[2u8][..],
                    &raw_frame(MediaKind::Audio, own, 0, 2, &[1; 10]),
                ]
                .concat()
                .into(),
            ),
            "trailing_bytes",
        ),
        (
            WsRawMessage::Binary([&[1u8][..], &vec![b' '; 70_000]].concat().into()),
            "too_large",
        ),
        (
            WsRawMessage::Binary(
                [&[1u8][..], &br#"{"v":1,"type":"warp"}"#[..]]
                    .concat()
                    .into(),
            ),
            "unknown_message",
        ),
    ];
    for (msg, code) in cases {
        y.tx.raw_ws(msg).await.unwrap();
        y.expect_error(code).await;
    }
    y.sync().await;
    assert!(
        y.closed.is_none(),
        "WS offender still connected after recoverable errors"
    );
    // A message above the largest frame is refused by the WebSocket layer: disconnected.
    let huge = [&[2u8][..], &vec![0u8; 600 * 1024]].concat();
    let _ = y.tx.raw_ws(WsRawMessage::Binary(huge.into())).await;
    let c = y.wait_closed().await;
    eprintln!("WS offender after a 600 KiB message: {c:?}");

    // Many bad datagrams in a row: disconnected as broken.
    let mut z = Peer::join("Spammer", &m.join_guest(&m.code, "Spammer").await, WT).await;
    for _ in 0..40 {
        let _ = z.tx.raw_datagram(b"\x09junk");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let c = z.wait_closed().await;
    eprintln!("WT offender after 40 bad datagrams: {c:?}");

    // A flood of frames: goodbye flood, and the others see it leave for that reason.
    let mut f = Peer::join("Flooder", &m.join_guest(&m.code, "Flooder").await, WS).await;
    let fid = f.id;
    let mut fmic = f.publish(Slot::Mic).await;
    let flood_start = Instant::now();
    let mut flood_sent = 0u32;
    while f.closed.is_none() && flood_start.elapsed() < Duration::from_secs(8) {
        for _ in 0..10 {
            let fr = fmic.frame(false, &[0x55; 60]).unwrap();
            if f.tx.send_frame(&fr).await.is_err() {
                break;
            }
            flood_sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        while let Some(ev) = f.rx.try_recv() {
            match ev {
                Event::Control(c) => f.log.push(c),
                Event::Closed(c) => f.closed = Some(c),
                _ => {}
            }
        }
    }
    eprintln!(
        "FIGURE flooder sent {flood_sent} frames in {:?} before being cut off",
        flood_start.elapsed()
    );
    let is_flood_bye =
        |m: &ServerMessage| matches!(m, ServerMessage::Goodbye { reason, .. } if reason == "flood");
    if !f.log.iter().any(is_flood_bye) {
        f.expect("goodbye flood", is_flood_bye).await;
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_tx.send(true).unwrap();
    let (sent, ptx) = publisher.await.unwrap();
    for c in collectors {
        let w = c.await.unwrap();
        let seqs: Vec<u32> = w
            .media
            .iter()
            .filter(|e| e.frame.header().track_id == mic_id)
            .map(|e| e.frame.header().seq)
            .collect();
        assert!(
            !w.media.iter().any(|e| &e.frame.payload()[..] == b"FORGED" || e.frame.header().track_id != mic_id),
            "{}: got frames that were not the publisher's",
            w.name
        );
        let missing = sent as usize - seqs.len();
        let in_order = seqs.windows(2).all(|p| p[1] > p[0]);
        eprintln!(
            "FIGURE {}: got {}/{} of the publisher's audio frames during the abuse",
            w.name,
            seqs.len(),
            sent
        );
        assert!(in_order, "{}: audio out of order", w.name);
        assert!(
            missing <= 3 + sent as usize / 100,
            "{}: missed {missing} of {sent} frames",
            w.name
        );
        assert!(
            w.log.iter().any(|m| matches!(m, ServerMessage::ParticipantLeft { participant_id, reason } if *participant_id == fid && reason == "flood")),
            "{}: no participant_left flood: {:?}",
            w.name,
            w.log
        );
    }
    m.assert_alive().await;
    ptx.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_share_and_audio_too_large_for_a_datagram_travel_on_streams() {
    let _serial = SERIAL.lock().await;
    let m = Meet::start("public", &[], &[]).await;
    let mut p = Peer::join("Presenter", &m.join_host().await, WT).await;
    let mut mic = p.publish(Slot::Mic).await;
    let mut screen = p.publish(Slot::ScreenVideo).await;
    let mut subs = [
        Peer::join("ViewWt", &m.join_guest(&m.code, "ViewWt").await, WT).await,
        Peer::join("ViewWs", &m.join_guest(&m.code, "ViewWs").await, WS).await,
    ];
    for s in subs.iter_mut() {
        s.subscribe(mic.track_id()).await;
        s.subscribe(screen.track_id()).await;
    }
    let limit = p.tx.max_datagram_size().expect("datagrams negotiated");
    let mut sent = vec![];
    for i in 0..12u8 {
        // Every third audio frame is larger than a datagram may be.
        let big = i % 3 == 0;
        let audio = mic
            .frame(false, &vec![i; if big { limit + 500 } else { 160 }])
            .unwrap();
        assert_eq!(audio.len() > limit, big);
        p.tx.send_frame(&audio).await.unwrap();
        let shot = screen
            .frame(i % 6 == 0, &vec![0xa0 | (i & 0x0f); 30_000])
            .unwrap();
        p.tx.send_frame(&shot).await.unwrap();
        sent.push(audio);
        sent.push(shot);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    for s in subs.iter_mut() {
        let got = collect_media(&mut s.rx, sent.len(), Instant::now() + T).await;
        assert_eq!(got.len(), sent.len(), "{}", s.name);
        for want in &sent {
            let h = want.header();
            let ev = got
                .iter()
                .find(|e| e.frame.header().track_id == h.track_id && e.frame.header().seq == h.seq)
                .unwrap_or_else(|| panic!("{}: missing {h:?}", s.name));
            assert_eq!(ev.frame.as_bytes(), want.as_bytes(), "{}", s.name);
            let via = match (s.transport, h.kind, want.len() > limit) {
                (Transport::WebSocket, _, _) => Via::WebSocket,
                (_, MediaKind::Audio, false) => Via::Datagram,
                _ => Via::Stream,
            };
            assert_eq!(ev.via, via, "{}: {h:?}", s.name);
        }
        let stats = s.rx.stats();
        eprintln!("FIGURE {}: {stats:?} (datagram limit {limit} B)", s.name);
        if s.transport == WT {
            // Two screen groups plus one stream per large audio frame.
            assert!(stats.streams_accepted >= 2 + 4, "{stats:?}");
        }
    }
}
