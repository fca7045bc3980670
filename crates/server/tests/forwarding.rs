//! Forwarding end to end on the real `quicmeet` binary: every frame reaches every subscriber
//! byte-exact over both transports, a late joiner starts on a keyframe, and frames too large
//! for a datagram travel on streams. Every assertion is on bytes the participants received.
//!
//! Each test bounds every wait (helpers wait at most `meet::T`) and runs in well under 30 s.

mod common;
#[path = "common/media.rs"]
mod media;
#[path = "common/meet.rs"]
mod meet;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use media::*;
use meet::{Meet, Peer, T};
use quicmeet_client::proto::track::Slot;
use quicmeet_client::proto::{ClientMessage, MediaKind, ServerMessage};
use quicmeet_client::{MediaEvent, Transport, Via};
use quicmeet_testkit::Hist;

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

    let mut latency: HashMap<(Transport, MediaKind), Hist> = HashMap::new();
    for (name, transport, _, got, _) in &results {
        let mut by_track: HashMap<u32, Vec<&MediaEvent>> = HashMap::new();
        for ev in got {
            by_track
                .entry(ev.frame.header().track_id)
                .or_default()
                .push(ev);
            latency
                .entry((*transport, ev.frame.header().kind))
                .or_insert_with(Hist::precise)
                .record_signed(ev.latency_us());
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
    for ((t, k), h) in &latency {
        let s = h.summary();
        eprintln!(
            "FIGURE latency {t:?} {k:?}: p50 {:.2} ms, p99 {:.2} ms over {} frames",
            s.p50 as f64 / 1000.0,
            s.p99 as f64 / 1000.0,
            s.count
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
