//! Cluster mode on the real binary: several `quicmeet` nodes sharing one private
//! `nats-server -js` (started here) behave as one service for accounts, sessions, meetings,
//! join tokens and the security rate limits (docs/CLUSTER.md sections 3 and 10), and one
//! meeting spans nodes: media, room events and host powers cross between them, and a node
//! killed with -9 leaves everyone else's rooms (sections 4–9, tests in `cluster/span.rs`); a
//! full node sends the next joiner elsewhere (section 8, `cluster/placement.rs`); a node cut
//! off while its meeting ends ends its room when it is back, and everything recovers after
//! nats-server restarts (sections 5 and 10, `cluster/faults.rs`); media batches forged on
//! NATS are refused without harm (section 7, `cluster/batches.rs`).

#[path = "cluster/batches.rs"]
mod batches;
mod common;
#[path = "cluster/faults.rs"]
mod faults;
#[path = "common/media.rs"]
mod media;
#[path = "common/meet.rs"]
mod meet;
#[path = "cluster/placement.rs"]
mod placement;
#[path = "cluster/span.rs"]
mod span;

use std::time::{Duration, Instant};

use common::{client, get, post, token_from_mail, verified_user, wait_mail, ServerProc};
use meet::{connect_raw, Peer, T};
use quicmeet_client::{proto::ServerMessage, ConnectOptions, Event, JoinAs, JoinInfo, Transport};
use quicmeet_store::nats_server::NatsServer;
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// One NATS server and `n` nodes pointing at it, each with its own data directory.
pub(crate) struct Cluster {
    nodes: Vec<ServerProc>,
    nats: NatsServer,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    fn start(n: usize, extra: &[&str]) -> Cluster {
        let nats = NatsServer::start();
        let tmp = tempfile::tempdir().unwrap();
        let url = nats.url();
        let nodes = (0..n)
            .map(|i| {
                let id = format!("node-{i}");
                let mut args = vec!["--nats-url", &url, "--node-id", &id];
                args.extend_from_slice(extra);
                ServerProc::start(&tmp.path().join(&id), &args)
            })
            .collect();
        Cluster {
            nodes,
            nats,
            _tmp: tmp,
        }
    }

    fn outbox(&self, i: usize) -> std::path::PathBuf {
        self.nodes[i].data_dir.join("outbox")
    }

    /// A guest's join answer from node `via`, with its media URLs pointed at node `media`.
    async fn guest_join(&self, via: usize, media: usize, code: &str, name: &str) -> JoinInfo {
        let mut j = quicmeet_client::join(
            &reqwest::Client::new(),
            &self.nodes[via].base,
            code,
            &JoinAs::Guest {
                name: name.into(),
                email: format!("{}@guest.test", name.to_lowercase()),
            },
        )
        .await
        .expect("join as guest");
        j.websocket_url = format!("ws://{}/ws", self.nodes[media].http);
        j
    }
}

/// A public meeting made through node `node` by the logged-in `host`; returns its code.
async fn public_meeting(cl: &Cluster, host: &reqwest::Client, node: usize, title: &str) -> String {
    let (st, body, _) = post(
        host,
        &cl.nodes[node].url("/api/meetings"),
        json!({"title": title, "start": common::in_one_hour(), "duration_minutes": 30,
               "type": "public", "invitees": []}),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    body["meeting"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_on_one_node_verify_on_another_log_in_on_a_third() {
    let cl = Cluster::start(3, &[]);
    let (a, b, c) = (&cl.nodes[0], &cl.nodes[1], &cl.nodes[2]);
    let web = client();
    let (st, body, _) = post(
        &web,
        &a.url("/api/auth/signup"),
        json!({"name": "Ada", "email": "ada@acme.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let token = token_from_mail(&wait_mail(&cl.outbox(0), "ada@acme.test", "/verify?token=").await);

    // Not verified yet, on any node.
    let (st, body, _) = post(
        &client(),
        &c.url("/api/auth/login"),
        json!({"email": "ada@acme.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(st, 403, "{body}");

    let (st, body, _) = post(&web, &b.url("/api/auth/verify"), json!({"token": token})).await;
    assert_eq!(st, 200, "{body}");
    // The token was consumed on B; A cannot take it again.
    let (st, body, _) = post(&web, &a.url("/api/auth/verify"), json!({"token": token})).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["code"], "token_invalid");

    let (st, body, _) = post(
        &web,
        &c.url("/api/auth/login"),
        json!({"email": "ada@acme.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    // The session made on C is known to A (cookies are per host, not per port).
    let (st, me) = get(&web, &a.url("/api/me")).await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["user"]["email"], "ada@acme.test");

    // One account per address across the cluster.
    let (st, body, _) = post(
        &client(),
        &b.url("/api/auth/signup"),
        json!({"name": "Ada 2", "email": "ADA@acme.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(st, 409, "{body}");

    // Logging out on B ends the session on every node.
    let (st, body, _) = post(&web, &b.url("/api/auth/logout"), json!({})).await;
    assert!(st == 200 || st == 204, "{st} {body}");
    let (st, _) = get(&web, &c.url("/api/me")).await;
    assert_eq!(st, 401);
}

/// Connects over WebSocket with a token that must not work; returns the refusal's code.
async fn refused_code(j: &JoinInfo) -> String {
    let opts = ConnectOptions {
        connect_timeout: T,
        ..ConnectOptions::default()
    };
    let (_tx, mut rx) = match connect_raw(j, Transport::WebSocket, opts).await {
        Err(e) => return format!("connect failed: {e}"),
        Ok(c) => c,
    };
    let deadline = Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some(Event::Control(ServerMessage::Error { code, .. }))) => return code,
            Ok(Some(Event::Control(
                m @ (ServerMessage::Welcome { .. } | ServerMessage::Lobby { .. }),
            ))) => panic!("a used token was let in: {m:?}"),
            Ok(Some(Event::Closed(c))) => return format!("closed: {c:?}"),
            Ok(Some(_)) => {}
            Ok(None) => return "ended".into(),
            Err(_) => panic!("neither refused nor closed within {T:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_tokens_are_single_use_across_nodes() {
    let cl = Cluster::start(3, &[]);
    let host = verified_user(&cl.nodes[0], &cl.outbox(0), "Hana", "hana@acme.test").await;
    // The meeting is made on B with the session from A.
    let code = public_meeting(&cl, &host, 1, "Cluster").await;

    // Token from C, used on A: works once; B and C (and A again) refuse it.
    let j = cl.guest_join(2, 0, &code, "Gus").await;
    let mut gus = Peer::join("Gus on A", &j, Transport::WebSocket).await;
    for node in [1, 2, 0] {
        let mut again = j.clone();
        again.websocket_url = format!("ws://{}/ws", cl.nodes[node].http);
        assert_eq!(
            refused_code(&again).await,
            "token_invalid",
            "reuse on node {node}"
        );
    }
    gus.sync().await;
    assert!(gus.closed.is_none(), "the first connection stays up");

    // Two nodes racing for one fresh token: exactly one lets it in.
    for round in 0..3 {
        let j = cl.guest_join(0, 1, &code, &format!("Racer{round}")).await;
        let mut on_c = j.clone();
        on_c.websocket_url = format!("ws://{}/ws", cl.nodes[2].http);
        let opts = || ConnectOptions {
            connect_timeout: T,
            ..ConnectOptions::default()
        };
        let (x, y) = tokio::join!(
            connect_raw(&j, Transport::WebSocket, opts()),
            connect_raw(&on_c, Transport::WebSocket, opts())
        );
        let mut admitted = 0;
        for conn in [x, y] {
            let (_tx, mut rx) = conn.expect("the WebSocket itself opens");
            let deadline = Instant::now() + T;
            loop {
                match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                    Ok(Some(Event::Control(ServerMessage::Welcome { .. }))) => {
                        admitted += 1;
                        break;
                    }
                    Ok(Some(Event::Control(ServerMessage::Error { code, .. }))) => {
                        assert_eq!(code, "token_invalid");
                        break;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => panic!("round {round}: no answer within {T:?}"),
                }
            }
        }
        assert_eq!(admitted, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_limit_holds_across_nodes() {
    // Two attempts per account per minute; each node alone would allow two more.
    let cl = Cluster::start(3, &["--auth-rate-per-min", "2"]);
    // The shared counters use one-minute windows: a round that straddles a minute boundary
    // proves nothing, so it is repeated with a fresh account.
    for round in 0..3 {
        let minute = || chrono::Utc::now().timestamp() / 60;
        let started = minute();
        let email = format!("victim{round}@acme.test");
        let mut answers = vec![];
        for node in [0, 1, 2] {
            let (st, body, _) = post(
                &client(),
                &cl.nodes[node].url("/api/auth/login"),
                json!({"email": email, "password": "guess"}),
            )
            .await;
            answers.push((st, body["error"]["code"].clone()));
        }
        if minute() != started {
            continue;
        }
        assert_eq!(answers[0].0, 401, "{answers:?}");
        assert_eq!(answers[1].0, 401, "{answers:?}");
        assert_eq!(answers[2].0, 429, "{answers:?}");
        assert_eq!(answers[2].1, "rate_limited");
        return;
    }
    panic!("three rounds in a row crossed a minute boundary");
}

pub(crate) async fn health(s: &ServerProc) -> (u16, serde_json::Value) {
    get(&client(), &s.url("/healthz")).await
}

pub(crate) async fn wait_health(s: &ServerProc, status: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (st, body) = health(s).await;
        if st == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz stayed {st} {body}, wanted {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_nats_refuses_joins_clearly_and_recovers_when_it_returns() {
    let mut cl = Cluster::start(2, &[]);
    let host = verified_user(&cl.nodes[0], &cl.outbox(0), "Hana", "hana@acme.test").await;
    let code = public_meeting(&cl, &host, 0, "Faults").await;
    let body = wait_health(&cl.nodes[1], 200).await;
    assert_eq!(body["nats"], "up");

    // A guest connected before the outage keeps its connection.
    let j = cl.guest_join(1, 1, &code, "Early").await;
    let mut early = Peer::join("Early", &j, Transport::WebSocket).await;

    cl.nats.kill();
    let body = wait_health(&cl.nodes[1], 503).await;
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["nats"], "down");
    let guest = json!({"name": "Late", "email": "late@guest.test"});
    let (st, body, _) = post(
        &client(),
        &cl.nodes[1].url(&format!("/api/meetings/{code}/join")),
        guest.clone(),
    )
    .await;
    assert_eq!(st, 503, "{body}");
    assert_eq!(body["error"]["code"], "cluster_unavailable");
    early.sync().await;
    assert!(
        early.closed.is_none(),
        "local rooms keep running without NATS"
    );

    cl.nats.restart();
    for node in &cl.nodes {
        wait_health(node, 200).await;
    }
    // State written before the outage is all there: the host's session and meeting.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (st, body, _) = post(
            &host,
            &cl.nodes[1].url(&format!("/api/meetings/{code}/join")),
            json!({}),
        )
        .await;
        if st == 200 {
            assert_eq!(body["participant"]["role"], "host", "{body}");
            break;
        }
        // JetStream may take a moment to load its streams after the restart.
        assert_eq!(st, 503, "{body}");
        assert!(Instant::now() < deadline, "joins did not recover: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asks node `via` to let a guest into `code` until the answer's media node is `want`
/// (the directory refreshes every 2 s); returns that answer. Each answer counts as a joiner
/// placed on its node until that node's record names them or for 10 s (docs/CLUSTER.md
/// section 8), and so holds the meeting there: callers let the directory catch up before
/// asking, so that the first ask lands, and asks are 3.5 s apart to keep unanswered ones few.
pub(crate) async fn join_lands_on(cl: &Cluster, via: usize, code: &str, want: usize) -> JoinInfo {
    let quic_port = format!(":{}/wt", cl.nodes[want].quic.port());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let j = quicmeet_client::join(
            &reqwest::Client::new(),
            &cl.nodes[via].base,
            code,
            &JoinAs::Guest {
                name: "Lander".into(),
                email: "lander@guest.test".into(),
            },
        )
        .await
        .expect("join as guest");
        if j.webtransport_url.ends_with(&quic_port) {
            assert!(
                j.websocket_url
                    .ends_with(&format!(":{}/ws", cl.nodes[want].http.port())),
                "{j:?}"
            );
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "joining {code} via node {via} never pointed at node {want}: {j:?}"
        );
        tokio::time::sleep(Duration::from_millis(3_500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joiners_land_on_the_node_holding_their_meeting_new_meetings_on_the_least_loaded() {
    let cl = Cluster::start(2, &[]);
    for node in &cl.nodes {
        let deadline = Instant::now() + Duration::from_secs(15);
        while health(node).await.1["nodes"] != 2 {
            assert!(Instant::now() < deadline, "the nodes never saw each other");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // /metrics shows the cluster from each node's side, with measured NATS and KV latency.
    for node in &cl.nodes {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = client()
                .get(node.url("/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let value = |name: &str| -> f64 {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name} ")))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or_else(|| panic!("{name} missing from /metrics"))
            };
            assert_eq!(value("quicmeet_nats_up"), 1.0);
            assert_eq!(value("quicmeet_cluster_nodes"), 2.0);
            let (rtt, kv) = (
                value("quicmeet_nats_rtt_seconds"),
                value("quicmeet_kv_put_seconds"),
            );
            if rtt > 0.0 && kv > 0.0 {
                assert!(rtt < 1.0 && kv < 3.0, "rtt {rtt} s, kv {kv} s");
                break;
            }
            assert!(Instant::now() < deadline, "no NATS/KV latency measured");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let host = verified_user(&cl.nodes[0], &cl.outbox(0), "Hana", "hana@acme.test").await;
    let codes = [
        public_meeting(&cl, &host, 0, "One").await,
        public_meeting(&cl, &host, 0, "Two").await,
    ];
    // Both idle: the tie goes to node-0, whichever node answers.
    let j = join_lands_on(&cl, 1, &codes[0], 0).await;
    // The answer from node 1 carries node 0's certificate hash: WebTransport to node 0 works.
    let mut first = Peer::join("First", &j, Transport::WebTransport).await;
    // Node 0 now holds meeting one and is busier (once its record says so): a new meeting
    // goes to node 1 ...
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let j2 = join_lands_on(&cl, 0, &codes[1], 1).await;
    let mut second = Peer::join("Second", &j2, Transport::WebSocket).await;
    // ... while meeting one stays on node 0, asked through either node.
    for via in [1, 0] {
        let j = join_lands_on(&cl, via, &codes[0], 0).await;
        let mut p = Peer::join("Later", &j, Transport::WebSocket).await;
        let pid = p.id;
        first
            .expect("the later joiner, in the same room", |m| {
                matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == pid)
            })
            .await;
        p.sync().await;
    }
    second.sync().await;
}
