//! Room events end to end: the lobby (knock, admit), broadcasts, targeted messages, host
//! powers (remove, end for all, restart) reach exactly the participants who should see them,
//! over both transports.
//!
//! Each test bounds every wait (helpers wait at most `meet::T`) and runs in well under 30 s.

mod common;
#[path = "common/media.rs"]
mod media;
#[path = "common/meet.rs"]
mod meet;

use media::*;
use meet::{Meet, Peer};
use quicmeet_client::proto::{ClientMessage, ServerMessage};
use quicmeet_client::ConnectOptions;

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
