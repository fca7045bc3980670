//! Robustness end to end: malformed, oversized or unauthorised input gets an error or a drop,
//! never a crash, and the other participants keep receiving.
//!
//! Each test bounds every wait (helpers wait at most `meet::T`) and runs in well under 30 s.

mod common;
#[path = "common/media.rs"]
mod media;
#[path = "common/meet.rs"]
mod meet;

use std::time::{Duration, Instant};

use media::*;
use meet::{Meet, Peer};
use quicmeet_client::proto::track::Slot;
use quicmeet_client::proto::{MediaKind, ServerMessage};
use quicmeet_client::Event;

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
