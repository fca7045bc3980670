//! One meeting across two nodes (docs/CLUSTER.md sections 4–9): a host on node A over
//! WebTransport and a guest on node B over WebSocket see each other, receive each other's
//! media byte-exact, chat, mute, the host removes the guest across nodes, and a node killed
//! with -9 drops out of the other node's room within 5 s.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use quicmeet_client::proto::track::Slot;
use quicmeet_client::proto::{ClientMessage, EncodedFrame, MediaKind, ServerMessage};
use quicmeet_client::{Event, JoinAs, MediaEvent, TrackPublisher};

use super::common::{client, verified_user};
use super::media::{collect_media, publish_clip, real_media, WS, WT};
use super::meet::Peer;
use super::{public_meeting, Cluster};

/// Node 0's host over WebTransport and node 1's guest over WebSocket in one meeting, each
/// having seen the other join.
pub(super) async fn spanning_meeting(cl: &Cluster) -> (Peer, Peer) {
    let (_, ann, bob) = spanning_meeting_code(cl).await;
    (ann, bob)
}

/// [`spanning_meeting`], with the meeting's code.
pub(super) async fn spanning_meeting_code(cl: &Cluster) -> (String, Peer, Peer) {
    let host = verified_user(&cl.nodes[0], &cl.outbox(0), "Ann", "ann@acme.test").await;
    let code = public_meeting(cl, &host, 0, "Spanning").await;
    let hj = quicmeet_client::join(&host, &cl.nodes[0].base, &code, &JoinAs::Session)
        .await
        .expect("host join");
    assert!(
        hj.webtransport_url
            .ends_with(&format!(":{}/wt", cl.nodes[0].quic.port())),
        "an idle cluster places the first joiner on node-0: {hj:?}"
    );
    let mut ann = Peer::join("Ann on A", &hj, WT).await;
    // The guest's token comes from node B and is used on node B, whatever the placement
    // rule would advise: the meeting's room there joins the one on A.
    let gj = cl.guest_join(1, 1, &code, "Bob").await;
    let mut bob = Peer::join("Bob on B", &gj, WS).await;
    let bob_id = bob.id;
    assert_ne!(bob_id, ann.id, "participant ids are unique across nodes");
    ann.expect("Bob joining on the other node", |m| {
        matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == bob_id && participant.name == "Bob")
    })
    .await;
    let ann_id = ann.id;
    let in_welcome = bob.log.iter().any(|m| {
        matches!(m, ServerMessage::Welcome { participants, .. } if participants.iter().any(|p| p.id == ann_id))
    });
    if !in_welcome {
        bob.expect("Ann, on the other node", |m| {
            matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == ann_id && participant.role == quicmeet_client::proto::Role::Host)
        })
        .await;
    }
    (code, ann, bob)
}

/// Publishes mic and camera and waits until `other` heard of both tracks.
pub(super) async fn publish_both(
    p: &mut Peer,
    other: &mut Peer,
) -> (TrackPublisher, TrackPublisher) {
    let mic = p.publish(Slot::Mic).await;
    let cam = p.publish(Slot::Camera).await;
    let cam_id = p.track(Slot::Camera);
    let seen = |o: &Peer| {
        o.log.iter().any(
            |m| matches!(m, ServerMessage::TrackPublished { track } if track.track_id == cam_id),
        )
    };
    if !seen(other) {
        other
            .expect("the other node's camera track", |m| {
                matches!(m, ServerMessage::TrackPublished { track } if track.track_id == cam_id)
            })
            .await;
    }
    (mic, cam)
}

/// Sends probe audio frames from `from` until `to` receives one: the cross-node
/// subscription and the publisher node's interest are then in place. Returns how many
/// probes were sent (their sequence numbers come before the clip's).
pub(super) async fn warm_up(from: &mut Peer, mic: &mut TrackPublisher, to: &mut Peer) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut sent = 0;
    loop {
        let f = mic.frame(false, &[0xF8, 0xFF, 0xFE]).unwrap();
        from.tx.send_frame(&f).await.expect("probe");
        sent += 1;
        let until = tokio::time::Instant::now() + Duration::from_millis(40);
        while let Ok(Some(ev)) = tokio::time::timeout_at(until, to.rx.recv()).await {
            match ev {
                Event::Media(m) if m.frame.header().track_id == mic.track_id() => return sent,
                Event::Control(m) => to.log.push(m),
                _ => {}
            }
        }
        assert!(
            Instant::now() < deadline,
            "{}'s audio never reached {} across nodes",
            from.name,
            to.name
        );
    }
}

/// Frames of `sent` (per track) must arrive at `got` complete, in order and byte-exact;
/// probe frames (sequence numbers below `skip`) are left out.
pub(super) fn assert_byte_exact(
    who: &str,
    sent: &HashMap<u32, Vec<EncodedFrame>>,
    got: &[MediaEvent],
    skip: u32,
) {
    for (track, frames) in sent {
        let recv: Vec<&EncodedFrame> = got
            .iter()
            .map(|e| &e.frame)
            .filter(|f| f.header().track_id == *track)
            .filter(|f| f.header().kind == MediaKind::Video || f.header().seq >= skip)
            .collect();
        assert_eq!(
            recv.len(),
            frames.len(),
            "{who} got {} of {} frames of track {track}",
            recv.len(),
            frames.len()
        );
        for (i, (r, s)) in recv.iter().zip(frames).enumerate() {
            assert_eq!(
                r.as_bytes(),
                s.as_bytes(),
                "{who}: frame {i} of track {track} differs"
            );
        }
    }
}

/// A cross-node counter from a node's /metrics.
pub(super) async fn cross_metric(cl: &Cluster, node: usize, name: &str) -> f64 {
    let text = client()
        .get(cl.nodes[node].url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from node {node}'s /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_spans_nodes_media_events_and_host_powers_cross() {
    let cl = Cluster::start(2, &[]);
    let (mut ann, mut bob) = spanning_meeting(&cl).await;
    let (mut ann_mic, ann_cam) = publish_both(&mut ann, &mut bob).await;
    let (mut bob_mic, bob_cam) = publish_both(&mut bob, &mut ann).await;
    let (ann_id, bob_id) = (ann.id, bob.id);
    for (p, other) in [(&mut ann, bob_id), (&mut bob, ann_id)] {
        p.subscribe(other * 16).await;
        p.subscribe(other * 16 + 1).await;
    }
    let ann_probes = warm_up(&mut ann, &mut ann_mic, &mut bob).await;
    let bob_probes = warm_up(&mut bob, &mut bob_mic, &mut ann).await;

    // Both publish a real clip at once and receive the other's across the nodes.
    let (video, audio) = real_media(45, 30, 60);
    let want = audio.len() + video.len();
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut tasks = vec![];
    for (mut p, mic, cam) in [(ann, ann_mic, ann_cam), (bob, bob_mic, bob_cam)] {
        let (audio, video) = (audio.clone(), video.clone());
        tasks.push(tokio::spawn(async move {
            let mut rx = p.rx;
            let recv = tokio::spawn(async move {
                let got = collect_media(&mut rx, want, deadline).await;
                (got, rx)
            });
            let sent = publish_clip(&mut p.tx, mic, cam, &audio, &video).await;
            let (got, rx) = recv.await.unwrap();
            p.rx = rx;
            (p, sent, got)
        }));
    }
    let (mut ann, ann_sent, ann_got) = tasks.remove(0).await.unwrap();
    let (mut bob, bob_sent, bob_got) = tasks.remove(0).await.unwrap();
    assert_byte_exact("Bob on B (WebSocket)", &ann_sent, &bob_got, ann_probes);
    assert_byte_exact("Ann on A (WebTransport)", &bob_sent, &ann_got, bob_probes);

    // Each node counts what crossed.
    for node in [0, 1] {
        for name in [
            "quicmeet_cluster_frames_out_total",
            "quicmeet_cluster_frames_in_total",
            "quicmeet_cluster_bytes_out_total",
            "quicmeet_cluster_bytes_in_total",
        ] {
            let v = cross_metric(&cl, node, name).await;
            assert!(v >= want as f64, "node {node}: {name} = {v}, want ≥ {want}");
        }
    }

    // Chat and mute cross nodes; chat ids are the meeting's, the same on both sides.
    bob.send(ClientMessage::Chat {
        text: "hello from B".into(),
    })
    .await;
    let at_ann = ann
        .expect("Bob's chat", |m| matches!(m, ServerMessage::Chat(c) if c.text == "hello from B" && c.participant_id == bob_id))
        .await;
    let at_bob = bob
        .expect(
            "own chat back",
            |m| matches!(m, ServerMessage::Chat(c) if c.text == "hello from B"),
        )
        .await;
    assert_eq!(
        at_ann, at_bob,
        "one chat message, the same id and time everywhere"
    );
    ann.send(ClientMessage::Mute {
        audio: true,
        video: false,
    })
    .await;
    bob.expect("Ann's mute", |m| {
        matches!(m, ServerMessage::MuteState { participant_id, audio: true, video: false } if *participant_id == ann_id)
    })
    .await;

    // A guest has no host powers on its own node either.
    bob.send(ClientMessage::Remove {
        participant_id: ann_id,
    })
    .await;
    bob.expect_error("forbidden").await;

    // The host on A removes the guest on B.
    ann.send(ClientMessage::Remove {
        participant_id: bob_id,
    })
    .await;
    bob.expect(
        "goodbye removed",
        |m| matches!(m, ServerMessage::Goodbye { reason, .. } if reason == "removed"),
    )
    .await;
    bob.wait_closed().await;
    ann.expect("Bob removed", |m| {
        matches!(m, ServerMessage::ParticipantLeft { participant_id, reason } if *participant_id == bob_id && reason == "removed")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_leaves_the_other_nodes_rooms_within_5_s() {
    let mut cl = Cluster::start(2, &[]);
    let (mut ann, mut bob) = spanning_meeting(&cl).await;
    let (_mic, _cam) = publish_both(&mut bob, &mut ann).await;
    let bob_id = bob.id;
    ann.sync().await;
    let killed = Instant::now();
    cl.nodes[1].kill9();
    ann.expect("Bob dropped as disconnected", |m| {
        matches!(m, ServerMessage::ParticipantLeft { participant_id, reason } if *participant_id == bob_id && reason == "disconnected")
    })
    .await;
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(5),
        "the dead node's participant left after {took:?}"
    );
    // Its tracks went with it (announced before the departure), and the meeting goes on.
    let cam = bob_id * 16 + 1;
    assert!(
        ann.log
            .iter()
            .any(|m| matches!(m, ServerMessage::TrackUnpublished { track_id } if *track_id == cam)),
        "{:?}",
        ann.log
    );
    ann.sync().await;
    assert!(ann.closed.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_hands_reactions_cross_nodes_and_end_for_all_ends_every_node() {
    let cl = Cluster::start(2, &[]);
    let (mut ann, mut bob) = spanning_meeting(&cl).await;
    let (ann_id, bob_id) = (ann.id, bob.id);

    let data = serde_json::json!({"sdp": "v=0 offer"});
    bob.send(ClientMessage::Signal {
        to: ann_id,
        data: data.clone(),
    })
    .await;
    ann.expect(
        "Bob's signal",
        |m| matches!(m, ServerMessage::Signal { from, data: d } if *from == bob_id && *d == data),
    )
    .await;
    bob.send(ClientMessage::Hand { raised: true }).await;
    ann.expect("Bob's hand", |m| {
        matches!(m, ServerMessage::Hand { participant_id, raised: true } if *participant_id == bob_id)
    })
    .await;
    ann.send(ClientMessage::Reaction {
        emoji: "👍".into()
    })
    .await;
    bob.expect("Ann's reaction", |m| {
        matches!(m, ServerMessage::Reaction { participant_id, emoji } if *participant_id == ann_id && emoji == "👍")
    })
    .await;

    ann.send(ClientMessage::EndMeeting {}).await;
    for p in [&mut ann, &mut bob] {
        p.expect(
            "goodbye ended",
            |m| matches!(m, ServerMessage::Goodbye { reason, .. } if reason == "ended"),
        )
        .await;
        p.wait_closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knock_on_one_node_is_admitted_or_denied_by_the_host_on_another() {
    let cl = Cluster::start(2, &[]);
    let host = verified_user(&cl.nodes[0], &cl.outbox(0), "Ann", "ann@acme.test").await;
    let (st, body, _) = super::common::post(
        &host,
        &cl.nodes[0].url("/api/meetings"),
        serde_json::json!({"title": "Private", "start": super::common::in_one_hour(),
            "duration_minutes": 30, "type": "private", "invitees": []}),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let code = body["meeting"]["code"].as_str().unwrap().to_owned();
    let hj = quicmeet_client::join(&host, &cl.nodes[0].base, &code, &JoinAs::Session)
        .await
        .expect("host join");
    let mut ann = Peer::join("Ann on A", &hj, WT).await;

    for (name, admit) in [("Otto", true), ("Dora", false)] {
        let j = cl.guest_join(1, 1, &code, name).await;
        assert_eq!(j.status, quicmeet_client::JoinStatus::Waiting);
        let mut k = Peer::connect_with(name, &j, WS, Default::default()).await;
        k.expect("lobby", |m| matches!(m, ServerMessage::Lobby { .. }))
            .await;
        let knock = ann
            .expect(
                "a knock from the other node",
                |m| matches!(m, ServerMessage::Knock { name: n, .. } if n == name),
            )
            .await;
        let ServerMessage::Knock { participant_id, .. } = knock else {
            unreachable!()
        };
        if admit {
            ann.send(ClientMessage::Admit { participant_id }).await;
            k.welcome().await;
            assert_eq!(k.id, participant_id);
            ann.expect("the admitted guest joined", |m| {
                matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == participant_id)
            })
            .await;
        } else {
            ann.send(ClientMessage::Deny { participant_id }).await;
            k.expect("denied", |m| matches!(m, ServerMessage::Denied { .. }))
                .await;
            k.wait_closed().await;
            ann.expect("the denied knock is gone", |m| {
                matches!(m, ServerMessage::ParticipantLeft { participant_id: p, reason } if *p == participant_id && reason == "denied")
            })
            .await;
        }
    }
}
