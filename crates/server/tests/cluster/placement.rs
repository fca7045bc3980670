//! Where joiners land once a node is full (docs/CLUSTER.md section 8): with
//! `--max-node-participants`, the node holding a meeting takes its joiners until it is full;
//! the next one is sent to another node, joins the same meeting there over NATS, and sees and
//! hears everyone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use quicmeet_client::proto::{EncodedFrame, MediaKind, ServerMessage};
use quicmeet_client::{Event, JoinAs, MediaEvent};

use super::common::verified_user;
use super::media::{publish_clip, real_media, WS, WT};
use super::meet::Peer;
use super::span::{assert_byte_exact, publish_both, warm_up};
use super::{health, join_lands_on, public_meeting, Cluster};

/// Waits until every node's directory lists `n` live nodes.
async fn wait_nodes(cl: &Cluster, n: u64) {
    for node in &cl.nodes {
        let deadline = Instant::now() + Duration::from_secs(15);
        while health(node).await.1["nodes"] != n {
            assert!(Instant::now() < deadline, "the nodes never saw each other");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Receives until `want` clip frames of the tracks in `from` arrived (probe audio, sequence
/// numbers below `from[track]`, does not count) or the deadline passes.
async fn collect_clip(
    rx: &mut quicmeet_client::ClientReceiver,
    from: &HashMap<u32, u32>,
    want: usize,
    deadline: Instant,
) -> Vec<MediaEvent> {
    let mut got = vec![];
    let counts = |got: &Vec<MediaEvent>| {
        got.iter()
            .filter(|m: &&MediaEvent| {
                let h = m.frame.header();
                from.get(&h.track_id)
                    .is_some_and(|skip| h.kind == MediaKind::Video || h.seq >= *skip)
            })
            .count()
    };
    while counts(&got) < want {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(Event::Media(m))) => got.push(m),
            Ok(Some(Event::Closed(c))) => panic!("closed while receiving: {c:?}"),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_joiner_after_a_full_node_lands_on_another_and_sees_and_hears_everyone() {
    let cl = Cluster::start(2, &["--max-node-participants", "2"]);
    wait_nodes(&cl, 2).await;
    let host = verified_user(&cl.nodes[0], &cl.outbox(0), "Ann", "ann@acme.test").await;
    let code = public_meeting(&cl, &host, 0, "Placement").await;
    let on_node = |j: &quicmeet_client::JoinInfo, i: usize| {
        j.webtransport_url
            .ends_with(&format!(":{}/wt", cl.nodes[i].quic.port()))
    };

    // An idle cluster puts the meeting on node-0, which takes its first two joiners.
    let aj = quicmeet_client::join(&host, &cl.nodes[0].base, &code, &JoinAs::Session)
        .await
        .expect("host join");
    assert!(on_node(&aj, 0), "{aj:?}");
    let mut ann = Peer::join("Ann", &aj, WT).await;
    let bj = cl.guest_join(0, 0, &code, "Bob").await;
    assert!(on_node(&bj, 0), "node-0 is not full yet: {bj:?}");
    let mut bob = Peer::join("Bob", &bj, WT).await;

    // Node-0 is full: the third joiner, asking node-1, is sent to node-1 (node-1 may need
    // one directory refresh, 2 s, to see node-0's second connection).
    let mut cj = join_lands_on(&cl, 1, &code, 1).await;
    cj.websocket_url = format!("ws://{}/ws", cl.nodes[1].http);
    let mut carol = Peer::join("Carol", &cj, WS).await;
    let carol_id = carol.id;
    for p in [&mut ann, &mut bob] {
        p.expect("Carol joining on node-1", |m| {
            matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == carol_id)
        })
        .await;
    }
    // Node-1's room started for Carol while node-0 holds the meeting: it waited for node-0's
    // snapshot, so Carol's welcome already lists both.
    let welcome = carol
        .log
        .iter()
        .find_map(|m| match m {
            ServerMessage::Welcome { participants, .. } => Some(participants.clone()),
            _ => None,
        })
        .expect("Carol's welcome");
    for (id, name) in [(ann.id, "Ann"), (bob.id, "Bob")] {
        assert!(
            welcome.iter().any(|p| p.id == id && p.name == name),
            "{name} missing from Carol's welcome: {welcome:?}"
        );
    }

    // Everyone publishes; Carol watches both, both watch Carol.
    let (mut ann_mic, ann_cam) = publish_both(&mut ann, &mut carol).await;
    let (mut bob_mic, bob_cam) = publish_both(&mut bob, &mut carol).await;
    let (mut carol_mic, carol_cam) = publish_both(&mut carol, &mut ann).await;
    let carol_cam_id = carol.track(quicmeet_client::proto::track::Slot::Camera);
    if !bob.log.iter().any(
        |m| matches!(m, ServerMessage::TrackPublished { track } if track.track_id == carol_cam_id),
    ) {
        bob.expect("Carol's camera", |m| {
            matches!(m, ServerMessage::TrackPublished { track } if track.track_id == carol_cam_id)
        })
        .await;
    }
    for other in [ann.id, bob.id] {
        carol.subscribe(other * 16).await;
        carol.subscribe(other * 16 + 1).await;
    }
    for p in [&mut ann, &mut bob] {
        p.subscribe(carol_id * 16).await;
        p.subscribe(carol_id * 16 + 1).await;
    }
    let ann_probes = warm_up(&mut ann, &mut ann_mic, &mut carol).await;
    let bob_probes = warm_up(&mut bob, &mut bob_mic, &mut carol).await;
    let mut carol_probes = warm_up(&mut carol, &mut carol_mic, &mut ann).await;
    carol_probes += warm_up(&mut carol, &mut carol_mic, &mut bob).await;

    // All three send a real clip at once; each receives what it watches, byte-exact.
    let (video, audio) = real_media(45, 30, 60);
    let per = audio.len() + video.len();
    let deadline = Instant::now() + Duration::from_secs(15);
    let skips: HashMap<u32, u32> = [
        (ann.id, ann_probes),
        (bob.id, bob_probes),
        (carol_id, carol_probes),
    ]
    .into_iter()
    .flat_map(|(id, probes)| [(id * 16, probes), (id * 16 + 1, 0)])
    .collect();
    let watched = |ids: &[u32]| -> HashMap<u32, u32> {
        skips
            .iter()
            .filter(|(t, _)| ids.contains(&(**t / 16)))
            .map(|(t, s)| (*t, *s))
            .collect()
    };
    let (ann_id, bob_id) = (ann.id, bob.id);
    let mut tasks = vec![];
    for (mut p, mic, cam, from) in [
        (ann, ann_mic, ann_cam, watched(&[carol_id])),
        (bob, bob_mic, bob_cam, watched(&[carol_id])),
        (carol, carol_mic, carol_cam, watched(&[ann_id, bob_id])),
    ] {
        let (audio, video) = (audio.clone(), video.clone());
        tasks.push(tokio::spawn(async move {
            let want = per * from.len() / 2;
            let (sent, got) = tokio::join!(
                publish_clip(&mut p.tx, mic, cam, &audio, &video),
                collect_clip(&mut p.rx, &from, want, deadline)
            );
            (p, sent, got, from)
        }));
    }
    let mut sent_all: HashMap<u32, Vec<EncodedFrame>> = HashMap::new();
    let mut results = vec![];
    for t in tasks {
        let (p, sent, got, from) = t.await.unwrap();
        sent_all.extend(sent);
        results.push((p, got, from));
    }
    for (p, got, from) in &results {
        let theirs: HashMap<u32, Vec<EncodedFrame>> = sent_all
            .iter()
            .filter(|(t, _)| from.contains_key(t))
            .map(|(t, f)| (*t, f.clone()))
            .collect();
        assert_eq!(theirs.len(), from.len());
        for (track, frames) in &theirs {
            let skip = from[track];
            let one: HashMap<u32, Vec<EncodedFrame>> = [(*track, frames.clone())].into();
            assert_byte_exact(&p.name, &one, got, skip);
        }
    }
}
