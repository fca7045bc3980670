//! Peer to peer for two (PROTOCOL.md §5.12), as far as the server takes part: the join answer's
//! settings (server flag, host switch, ICE servers), the relayed handshake, and `media_path`
//! keeping `/metrics` right.

mod common;
#[path = "common/meet.rs"]
mod meet;

use common::post;
use meet::{metric, Meet, Peer};
use quicmeet_client::proto::{ClientMessage, MediaPathKind, ServerMessage};
use quicmeet_client::Transport;
use serde_json::{json, Value};

async fn join_answer(m: &Meet, c: &reqwest::Client, code: &str) -> Value {
    let (st, body, _) = post(
        c,
        &m.s.url(&format!("/api/meetings/{code}/join")),
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_answers_carry_ice_servers_and_the_host_switch() {
    let m = Meet::start(
        "public",
        &[],
        &[
            "--ice-urls",
            "stun:turn.example.org:3478,turn:turn.example.org:3478?transport=udp",
            "--turn-username",
            "meet",
            "--turn-credential",
            "s3cret",
        ],
    )
    .await;
    let a = join_answer(&m, &m.host, &m.code).await;
    assert_eq!(a["p2p"]["enabled"], true);
    assert_eq!(a["p2p"]["server_enabled"], true);
    assert_eq!(
        a["p2p"]["ice_servers"],
        json!([
            {"urls": ["stun:turn.example.org:3478"]},
            {"urls": ["turn:turn.example.org:3478?transport=udp"], "username": "meet", "credential": "s3cret"}
        ])
    );
    // Only the host flips the switch; it shows in the meeting and in later join answers.
    let url = m.s.url(&format!("/api/meetings/{}/p2p", m.code));
    let mails = || std::fs::read_dir(&m.outbox).map(|d| d.count()).unwrap_or(0);
    let guest = reqwest::Client::new();
    let r = guest
        .put(&url)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let other = m.user("Olga Other", "olga@acme.test").await;
    let r = other
        .put(&url)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let before = mails();
    let r = m
        .host
        .put(&url)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["meeting"]["p2p"], false);
    let a = join_answer(&m, &m.host, &m.code).await;
    assert_eq!(a["p2p"]["enabled"], false);
    assert_eq!(a["p2p"]["server_enabled"], true);
    assert_eq!(mails(), before, "the switch sends no invitation mail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2p_off_on_the_server_turns_it_off_everywhere() {
    let m = Meet::start("public", &[], &["--p2p", "off"]).await;
    let a = join_answer(&m, &m.host, &m.code).await;
    assert_eq!(a["p2p"]["enabled"], false);
    assert_eq!(a["p2p"]["server_enabled"], false);
    assert_eq!(a["p2p"]["ice_servers"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_is_relayed_untouched_and_media_path_keeps_metrics_right() {
    let m = Meet::start("public", &[], &[]).await;
    let mut a = Peer::join("Ann", &m.join_host().await, Transport::WebTransport).await;
    let mut b = Peer::join(
        "Bob",
        &m.join_guest(&m.code, "Bob").await,
        Transport::WebSocket,
    )
    .await;
    let offer = json!({"p2p": 1, "type": "offer", "session": "1.1", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"});
    a.send(ClientMessage::Signal {
        to: b.id,
        data: offer.clone(),
    })
    .await;
    let aid = a.id;
    b.expect(
        "the offer",
        |msg| matches!(msg, ServerMessage::Signal { from, data } if *from == aid && *data == offer),
    )
    .await;
    assert_eq!(metric(&m, "quicmeet_p2p_participants").await, 0.0);

    let bid = b.id;
    for p in [&mut a, &mut b] {
        let peer = if p.id == aid { bid } else { aid };
        p.send(ClientMessage::MediaPath {
            path: MediaPathKind::P2p,
            peer: Some(peer),
        })
        .await;
        p.sync().await;
    }
    assert_eq!(metric(&m, "quicmeet_p2p_participants").await, 2.0);
    // Saying it twice counts once; back on the server, and leaving, take it off.
    a.send(ClientMessage::MediaPath {
        path: MediaPathKind::P2p,
        peer: Some(bid),
    })
    .await;
    a.send(ClientMessage::MediaPath {
        path: MediaPathKind::Server,
        peer: None,
    })
    .await;
    a.sync().await;
    assert_eq!(metric(&m, "quicmeet_p2p_participants").await, 1.0);
    b.send(ClientMessage::Leave {}).await;
    b.wait_closed().await;
    a.expect("participant_left", |msg| {
        matches!(msg, ServerMessage::ParticipantLeft { participant_id, .. } if *participant_id == bid)
    })
    .await;
    assert_eq!(metric(&m, "quicmeet_p2p_participants").await, 0.0);
}
