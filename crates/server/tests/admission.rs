//! Admission end to end: join tokens are single-use, short-lived and bound to their meeting,
//! and a refused token never yields `welcome` or `lobby`.
//!
//! Each test bounds every wait (helpers wait at most `meet::T`) and runs in well under 30 s.

mod common;
#[path = "common/media.rs"]
mod media;
#[path = "common/meet.rs"]
mod meet;

use std::time::Duration;

use media::*;
use meet::{Meet, Peer};
use quicmeet_client::proto::ServerMessage;
use quicmeet_client::ConnectOptions;

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
