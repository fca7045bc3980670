//! A room actor that panics (a server bug) ends only its own meeting: its participants get
//! `goodbye{reason:"error"}` on either transport, the process keeps running, another meeting
//! on the same server keeps forwarding, and the failed meeting can be joined again.
//!
//! The panic is triggered through the `fault-injection` feature (a magic chat text, see
//! `quicmeet_server::media::FAULT_PANIC_CHAT`), which only test builds turn on: release
//! builds of the binary have no way for a client to reach it.

mod common;
#[path = "common/meet.rs"]
mod meet;

use std::time::{Duration, Instant};

use meet::{Meet, Peer, T};
use quicmeet_client::proto::track::Slot;
use quicmeet_client::proto::{ClientMessage, ServerMessage};
use quicmeet_client::{Event, Transport};

async fn expect_error_goodbye(p: &mut Peer) {
    p.expect(
        "goodbye error",
        |m| matches!(m, ServerMessage::Goodbye { reason, .. } if reason == "error"),
    )
    .await;
    p.wait_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_room_closes_its_meeting_with_an_error_and_spares_the_others() {
    let mut m = Meet::start("public", &[], &[]).await;
    let other = m.create_meeting("public", &[]).await;

    let mut a1 = Peer::join("Ann", &m.join_host().await, Transport::WebTransport).await;
    let mut a2 = Peer::join(
        "Abe",
        &m.join_guest(&m.code, "Abe").await,
        Transport::WebSocket,
    )
    .await;
    let mut b1 = Peer::join(
        "Bea",
        &m.join_guest(&other, "Bea").await,
        Transport::WebSocket,
    )
    .await;
    let mut b2 = Peer::join(
        "Bob",
        &m.join_guest(&other, "Bob").await,
        Transport::WebSocket,
    )
    .await;
    let mut mic = b1.publish(Slot::Mic).await;
    let track = b1.track(Slot::Mic);
    b2.subscribe(track).await;

    a1.send(ClientMessage::Chat {
        text: quicmeet_server::media::FAULT_PANIC_CHAT.into(),
    })
    .await;
    expect_error_goodbye(&mut a1).await;
    expect_error_goodbye(&mut a2).await;

    // The other meeting still forwards, byte-exact and complete.
    let mut sent = vec![];
    for i in 0..25u8 {
        let f = mic.frame(false, &[i; 60]).unwrap();
        b1.tx.send_frame(&f).await.expect("send audio");
        sent.push(f);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + T;
    let mut got = vec![];
    while got.len() < sent.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, b2.rx.recv()).await {
            Ok(Some(Event::Media(ev))) => got.push(ev.frame),
            Ok(Some(Event::Closed(c))) => panic!("Bob was disconnected: {c:?}"),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    assert_eq!(got.len(), sent.len(), "Bob got {} of 25 frames", got.len());
    for (g, s) in got.iter().zip(&sent) {
        assert_eq!(g.as_bytes(), s.as_bytes());
    }
    b2.sync().await;

    // The process lives on, and the failed meeting starts afresh for whoever rejoins.
    m.assert_alive().await;
    let mut again = Peer::join("Ann", &m.join_host().await, Transport::WebSocket).await;
    again.sync().await;
    let metrics = reqwest::get(m.s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("quicmeet_room_panics_total 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("room_"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
