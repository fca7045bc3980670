//! Faults across nodes (docs/CLUSTER.md sections 5 and 10): a node cut off from NATS while
//! the meeting ends ends its room once it is back (the end-for-all backstop), and a meeting
//! spanning nodes gets its media and room events back after nats-server restarts.

use std::time::{Duration, Instant};

use quicmeet_client::proto::track::Slot;
use quicmeet_client::proto::{ClientMessage, ServerMessage};
use quicmeet_store::nats_server::NatsServer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::common::ServerProc;
use super::meet::Peer;
use super::span::{publish_both, spanning_meeting, warm_up};
use super::{wait_health, Cluster};

/// A TCP forwarder between one node and the NATS server that the test can cut (every
/// connection through it closes, new ones are closed at once) and heal: a partition of that
/// node alone, while the other nodes keep NATS.
struct Partition {
    port: u16,
    open: watch::Sender<bool>,
}

impl Partition {
    async fn start(nats_port: u16) -> Partition {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, rx) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*rx.borrow() {
                    continue;
                }
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", nats_port)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut up) => {}
                        _ = rx.wait_for(|open| !open) => {}
                    }
                });
            }
        });
        Partition { port, open }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn cut(&self) {
        self.open.send_replace(false);
    }

    fn heal(&self) {
        self.open.send_replace(true);
    }
}

fn ended(m: &ServerMessage) -> bool {
    matches!(m, ServerMessage::Goodbye { reason, .. } if reason == "ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_while_the_meeting_ends_ends_its_room_when_it_is_back() {
    let nats = NatsServer::start();
    let partition = Partition::start(nats.port()).await;
    let tmp = tempfile::tempdir().unwrap();
    let (direct, through) = (nats.url(), partition.url());
    let nodes = vec![
        ServerProc::start(
            &tmp.path().join("node-0"),
            &["--nats-url", &direct, "--node-id", "node-0"],
        ),
        ServerProc::start(
            &tmp.path().join("node-1"),
            &["--nats-url", &through, "--node-id", "node-1"],
        ),
    ];
    let cl = Cluster {
        nodes,
        nats,
        _tmp: tmp,
    };
    let (mut ann, mut bob) = spanning_meeting(&cl).await;

    partition.cut();
    wait_health(&cl.nodes[1], 503).await;
    // The host on node-0 ends the meeting: committed in KV, `end` published, but node-1
    // hears nothing.
    ann.send(ClientMessage::EndMeeting {}).await;
    ann.expect("goodbye ended", ended).await;
    ann.wait_closed().await;
    bob.sync().await;
    assert!(
        !bob.log.iter().any(ended) && bob.closed.is_none(),
        "node-1 cannot have heard the end: {:?}",
        bob.log
    );

    // Back on NATS, node-1 rereads the meeting and ends its half of it.
    let healed = Instant::now();
    partition.heal();
    bob.expect("goodbye ended, after the reconnect", ended)
        .await;
    bob.wait_closed().await;
    eprintln!(
        "the backstop ended node-1's room {:?} after the partition healed",
        healed.elapsed()
    );
}

/// Waits until `p` can watch `publisher`'s track `track_id` again: if the outage made the
/// track go (its node counted as dead for a while), waits for it to come back and
/// subscribes anew.
async fn resubscribe_if_gone(p: &mut Peer, from: usize, track_id: u32) {
    let gone = p.log[from..]
        .iter()
        .any(|m| matches!(m, ServerMessage::TrackUnpublished { track_id: t } if *t == track_id));
    if !gone {
        return;
    }
    let back = |log: &[ServerMessage]| {
        let last_gone = log.iter().rposition(
            |m| matches!(m, ServerMessage::TrackUnpublished { track_id: t } if *t == track_id),
        );
        let last_back = log.iter().rposition(
            |m| matches!(m, ServerMessage::TrackPublished { track } if track.track_id == track_id),
        );
        last_back > last_gone
    };
    if !back(&p.log) {
        p.expect(
            "the track back after the outage",
            |m| matches!(m, ServerMessage::TrackPublished { track } if track.track_id == track_id),
        )
        .await;
    }
    p.subscribe(track_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_and_room_events_recover_after_nats_server_restarts() {
    let mut cl = Cluster::start(2, &[]);
    let (mut ann, mut bob) = spanning_meeting(&cl).await;
    let (mut bob_mic, _bob_cam) = publish_both(&mut bob, &mut ann).await;
    let mic = bob.track(Slot::Mic);
    ann.subscribe(mic).await;
    warm_up(&mut bob, &mut bob_mic, &mut ann).await;

    // NATS goes away long enough for each node to count the other as dead (Ann sees Bob
    // leave as `disconnected`), then comes back on the same port with the same JetStream
    // store directory.
    let from = ann.log.len();
    let bob_from = bob.log.len();
    let (ann_id, bob_id) = (ann.id, bob.id);
    cl.nats.kill();
    for node in &cl.nodes {
        wait_health(node, 503).await;
    }
    ann.expect("Bob dropped while NATS is down", |m| {
        matches!(m, ServerMessage::ParticipantLeft { participant_id, reason } if *participant_id == bob_id && reason == "disconnected")
    })
    .await;
    cl.nats.restart();
    for node in &cl.nodes {
        wait_health(node, 200).await;
    }
    // The mirrors are rebuilt from snapshots: Bob and his tracks are back on Ann's side.
    ann.expect("Bob back after the restart", |m| {
        matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == bob_id)
    })
    .await;
    resubscribe_if_gone(&mut ann, from, mic).await;
    // Bob's node may count Ann's as dead a moment later than the other way round: once it
    // did, Ann is back on Bob's side too before the room events are checked.
    bob.sync().await;
    let left = |m: &ServerMessage| matches!(m, ServerMessage::ParticipantLeft { participant_id, .. } if *participant_id == ann_id);
    let back = |m: &ServerMessage| matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == ann_id);
    if let Some(i) = bob.log[bob_from..].iter().rposition(left) {
        if !bob.log[bob_from + i..].iter().any(back) {
            bob.expect("Ann back after the restart", back).await;
        }
    }

    // Media crosses again ...
    warm_up(&mut bob, &mut bob_mic, &mut ann).await;
    // ... and so do room events, both ways. (JetStream may need a moment after its restart
    // before chat, which is stored in KV, is accepted; the chat is retried until then.)
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut round = 0;
    'chat: loop {
        round += 1;
        let text = format!("after the restart {round}");
        bob.send(ClientMessage::Chat { text: text.clone() }).await;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, ann.rx.recv()).await {
                Ok(Some(quicmeet_client::Event::Control(m))) => {
                    let hit = matches!(&m, ServerMessage::Chat(c) if c.text == text);
                    ann.log.push(m);
                    if hit {
                        break 'chat;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("Ann's connection ended"),
                Err(_) => break,
            }
        }
        assert!(
            Instant::now() < deadline,
            "Bob's chat never reached Ann after the restart: {:?}",
            bob.log
        );
    }
    ann.send(ClientMessage::Hand { raised: true }).await;
    bob.expect("Ann's hand after the restart", |m| {
        matches!(m, ServerMessage::Hand { participant_id, raised: true } if *participant_id == ann_id)
    })
    .await;
}
