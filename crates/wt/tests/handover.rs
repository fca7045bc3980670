//! A real WebTransport session over loopback: datagrams sent before, during and after the
//! server's reader takes over from wtransport's driver all arrive, once each, and in order but
//! for what the driver held at the hand-over.

use std::time::Duration;

mod common;

use quicmeet_wt::SessionDatagrams;
use wtransport::{ClientConfig, Endpoint};

const EARLY: u32 = 40;
const LATE: u32 = 200;

/// A client and a server connection of one session, and the endpoints they live on.
async fn session() -> (
    wtransport::Connection,
    wtransport::Connection,
    (
        Endpoint<wtransport::endpoint::endpoint_side::Server>,
        Endpoint<wtransport::endpoint::endpoint_side::Client>,
    ),
) {
    let common::LoopbackServer {
        endpoint: server,
        port,
        cert_hash: hash,
        ..
    } = common::loopback_server();
    let accept = tokio::spawn(async move {
        let request = server.accept().await.await.expect("session request");
        let conn = request.accept().await.expect("session");
        (server, conn)
    });
    let client = Endpoint::client(
        ClientConfig::builder()
            .with_bind_default()
            .with_server_certificate_hashes([hash])
            .build(),
    )
    .expect("client endpoint");
    let conn = client
        .connect(format!("https://127.0.0.1:{port}/"))
        .await
        .expect("connect");
    let (server, server_conn) = accept.await.unwrap();
    (conn, server_conn, (server, client))
}

fn payload(i: u32) -> Vec<u8> {
    let mut p = i.to_be_bytes().to_vec();
    p.resize(100, (i % 251) as u8);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_or_reordered_at_the_handover() {
    let (client, server, _endpoints) = session().await;
    // Sent while wtransport's driver still reads datagrams: it takes the first into its
    // channel, the rest wait in QUIC.
    for i in 0..EARLY {
        client.send_datagram(payload(i)).expect("send");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut reader = SessionDatagrams::take_over(&server);
    let sender = tokio::spawn(async move {
        for i in EARLY..EARLY + LATE {
            client.send_datagram(payload(i)).expect("send");
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        client
    });
    let mut got = Vec::new();
    while got.len() < (EARLY + LATE) as usize {
        let d = tokio::time::timeout(Duration::from_secs(5), reader.next())
            .await
            .unwrap_or_else(|_| panic!("only {} datagrams arrived: {got:?}", got.len()))
            .expect("connection open");
        assert_eq!(d.len(), 100, "the payload, without the session header");
        got.push(u32::from_be_bytes(d[..4].try_into().unwrap()));
    }
    // Nothing lost, nothing twice.
    let mut sorted = got.clone();
    sorted.sort_unstable();
    let expected: Vec<u32> = (0..EARLY + LATE).collect();
    assert_eq!(sorted, expected, "every datagram exactly once");
    // QUIC datagrams are unordered, and at the hand-over the driver may deliver the one or two
    // it held (one in its channel, one it was reading) after later ones the reader took from
    // QUIC. Nothing else is reordered on loopback.
    let late = got.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(late <= 2, "{late} datagrams out of order: {got:?}");
    let client = sender.await.unwrap();
    client.close(0u32.into(), b"done");
    let end = tokio::time::timeout(Duration::from_secs(5), reader.next())
        .await
        .expect("the reader ends when the session closes");
    assert!(end.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drivers_last_datagram_survives_a_spent_task_budget() {
    let (client, server, _endpoints) = session().await;
    // The driver takes the first into its channel; the rest wait in QUIC.
    for i in 0..4 {
        client.send_datagram(payload(i)).expect("send");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut reader = SessionDatagrams::take_over(&server);
    // Let the driver finish its turn and stop reading datagrams.
    for _ in 0..100 {
        if server.datagram_handover_complete() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(server.datagram_handover_complete());
    // Spend this task's cooperative budget, as a busy reader task would have, then read in
    // the same poll: the datagram in the driver's channel must still be taken.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u8>();
    for _ in 0..1000 {
        tx.send(0).unwrap();
    }
    let mut spent = 0;
    while let Some(Some(_)) = futures::FutureExt::now_or_never(rx.recv()) {
        spent += 1;
    }
    assert!(spent < 1000, "the budget was never spent ({spent} reads)");
    let mut got = Vec::new();
    while got.len() < 4 {
        let d = tokio::time::timeout(Duration::from_secs(5), reader.next())
            .await
            .unwrap_or_else(|_| panic!("only {got:?} arrived"))
            .expect("connection open");
        got.push(u32::from_be_bytes(d[..4].try_into().unwrap()));
    }
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2, 3]);
}
