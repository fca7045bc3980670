//! Media-plane test helpers: a meeting on the real `quicmeet` binary, and participants
//! connected to it with `quicmeet-client` over either transport.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use quicmeet_client::proto::track::{self, Slot};
use quicmeet_client::proto::{ClientMessage, MediaKind, ServerMessage};
use quicmeet_client::{
    ClientError, ClientReceiver, ClientSender, CloseInfo, ConnectOptions, Event, JoinAs, JoinInfo,
    MediaEvent, TrackPublisher, Transport,
};
use quicmeet_testkit::{process, rest};

use crate::common::{verified_user, ServerProc};

/// Upper bound of every single wait in these tests.
pub const T: Duration = Duration::from_secs(10);

/// A server with a verified host and one meeting.
pub struct Meet {
    pub s: ServerProc,
    pub code: String,
    pub host: reqwest::Client,
    pub outbox: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

impl Meet {
    /// Start a server (with `extra` arguments), sign up a host and create a meeting of `kind`.
    pub async fn start(kind: &str, invitees: &[&str], extra: &[&str]) -> Meet {
        let tmp = tempfile::tempdir().unwrap();
        let s = ServerProc::start(&tmp.path().join("data"), extra);
        let outbox = s.data_dir.join("outbox");
        let host = verified_user(&s, &outbox, "Hana Host", "hana@acme.test").await;
        let mut m = Meet {
            s,
            code: String::new(),
            host,
            outbox,
            _tmp: tmp,
        };
        m.code = m.create_meeting(kind, invitees).await;
        m
    }

    /// Another meeting hosted by the same host.
    pub async fn create_meeting(&self, kind: &str, invitees: &[&str]) -> String {
        let meeting = rest::Meeting {
            title: &format!("{kind} media test"),
            start: &crate::common::in_one_hour(),
            duration_minutes: 30,
            kind,
            invitees,
        };
        rest::create_meeting(&self.host, &self.s.base, meeting)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A verified, logged-in user.
    pub async fn user(&self, name: &str, email: &str) -> reqwest::Client {
        verified_user(&self.s, &self.outbox, name, email).await
    }

    /// Join `code` as a logged-in user.
    pub async fn join_user(&self, c: &reqwest::Client, code: &str) -> JoinInfo {
        quicmeet_client::join(c, &self.s.base, code, &JoinAs::Session)
            .await
            .expect("join as user")
    }

    /// Join the meeting as its host.
    pub async fn join_host(&self) -> JoinInfo {
        self.join_user(&self.host, &self.code).await
    }

    /// Join `code` as a guest.
    pub async fn join_guest(&self, code: &str, name: &str) -> JoinInfo {
        let email = format!("{}@guest.test", name.to_lowercase().replace(' ', "."));
        quicmeet_client::join(
            &reqwest::Client::new(),
            &self.s.base,
            code,
            &JoinAs::Guest {
                name: name.into(),
                email,
            },
        )
        .await
        .expect("join as guest")
    }

    /// The server's resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        process::rss_kib(self.s.child.id()).expect("VmRSS of the server")
    }

    /// The server process is still running and answers `/healthz`.
    pub async fn assert_alive(&mut self) {
        assert!(
            self.s.child.try_wait().unwrap().is_none(),
            "the server process exited"
        );
        let r = reqwest::get(self.s.url("/healthz")).await.unwrap();
        assert!(r.status().is_success(), "healthz: {}", r.status());
    }
}

/// A connected participant.
pub struct Peer {
    pub name: String,
    pub tx: ClientSender,
    pub rx: ClientReceiver,
    /// Participant id from `welcome` (0 while in the lobby).
    pub id: u32,
    pub transport: Transport,
    /// Every control message this peer received through the helpers, in order.
    pub log: Vec<ServerMessage>,
    /// Every media frame this peer received through the helpers, in order.
    pub media: Vec<MediaEvent>,
    pub closed: Option<CloseInfo>,
    /// Pings sent by [`Peer::sync`].
    pub ping: u64,
}

/// Connect with a small event buffer and default options otherwise.
pub async fn connect_raw(
    join: &JoinInfo,
    t: Transport,
    opts: ConnectOptions,
) -> Result<(ClientSender, ClientReceiver), ClientError> {
    quicmeet_client::connect_with(t, join, &opts).await
}

impl Peer {
    /// Connect and return at once (welcome or lobby not awaited).
    pub async fn connect_with(
        name: &str,
        join: &JoinInfo,
        t: Transport,
        opts: ConnectOptions,
    ) -> Peer {
        let (tx, rx) = connect_raw(join, t, opts)
            .await
            .unwrap_or_else(|e| panic!("{name}: connect over {t:?}: {e}"));
        Peer {
            name: name.into(),
            tx,
            rx,
            id: 0,
            transport: t,
            log: vec![],
            media: vec![],
            closed: None,
            ping: 0,
        }
    }

    /// Connect and wait for `welcome`.
    pub async fn join(name: &str, join: &JoinInfo, t: Transport) -> Peer {
        let mut p = Peer::connect_with(name, join, t, ConnectOptions::default()).await;
        p.welcome().await;
        p
    }

    /// Wait for `welcome` and take the participant id from it.
    pub async fn welcome(&mut self) -> ServerMessage {
        let w = self
            .expect("welcome", |m| matches!(m, ServerMessage::Welcome { .. }))
            .await;
        if let ServerMessage::Welcome { participant_id, .. } = &w {
            self.id = *participant_id;
        }
        w
    }

    pub fn track(&self, slot: Slot) -> u32 {
        track::track_id(self.id, slot).unwrap()
    }

    pub async fn send(&mut self, m: ClientMessage) {
        let name = self.name.clone();
        self.tx
            .send_control(&m)
            .await
            .unwrap_or_else(|e| panic!("{name}: send {}: {e}", m.type_name()));
    }

    fn record(&mut self, ev: Event) -> Option<ServerMessage> {
        match ev {
            Event::Control(m) => {
                self.log.push(m.clone());
                Some(m)
            }
            Event::Media(m) => {
                self.media.push(m);
                None
            }
            Event::ProtocolError { code, detail } => {
                panic!(
                    "{}: the server sent undecodable bytes: {code}: {detail}",
                    self.name
                )
            }
            Event::Closed(c) => {
                self.closed = Some(c);
                None
            }
        }
    }

    /// Wait (at most [`T`]) for a control message matching `pred`; everything received is
    /// logged.
    pub async fn expect(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&ServerMessage) -> bool,
    ) -> ServerMessage {
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(ev)) => ev,
                Ok(None) => panic!(
                    "{}: connection ended while waiting for {what}; got {:?}",
                    self.name, self.log
                ),
                Err(_) => panic!(
                    "{}: no {what} within {T:?}; got {:?} closed={:?}",
                    self.name, self.log, self.closed
                ),
            };
            if let Some(m) = self.record(ev) {
                if pred(&m) {
                    return m;
                }
            }
        }
    }

    /// Wait for an `error` with this code.
    pub async fn expect_error(&mut self, code: &str) -> ServerMessage {
        self.expect(
            &format!("error {code}"),
            |m| matches!(m, ServerMessage::Error { code: c, .. } if c == code),
        )
        .await
    }

    /// Round trip a `ping`: afterwards, everything the room queued for this peer before the
    /// ping was processed has been received (one room actor, FIFO control queue).
    pub async fn sync(&mut self) {
        self.ping += 1;
        let t = self.ping;
        self.send(ClientMessage::Ping { t: t.into() }).await;
        self.expect(
            "pong",
            |m| matches!(m, ServerMessage::Pong { t: got } if got.as_u64() == Some(t)),
        )
        .await;
    }

    /// Wait until the connection ends; returns how it ended.
    pub async fn wait_closed(&mut self) -> CloseInfo {
        let deadline = Instant::now() + T;
        while self.closed.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(ev)) => {
                    self.record(ev);
                }
                Ok(None) => break,
                Err(_) => panic!(
                    "{}: still connected after {T:?}; got {:?}",
                    self.name, self.log
                ),
            }
        }
        self.closed.clone().unwrap_or(CloseInfo {
            code: None,
            reason: "ended".into(),
        })
    }

    /// Publish a track of this slot and wait for the server's `track_published`.
    pub async fn publish(&mut self, slot: Slot) -> TrackPublisher {
        let track_id = self.track(slot);
        let kind = slot.kind();
        let (codec, width, height) = if kind == MediaKind::Audio {
            ("opus", None, None)
        } else {
            ("vp8", Some(320), Some(180))
        };
        self.send(ClientMessage::Publish {
            track_id,
            kind,
            codec: codec.into(),
            width,
            height,
            layers_capable: false,
        })
        .await;
        self.expect(
            "own track_published",
            |m| matches!(m, ServerMessage::TrackPublished { track } if track.track_id == track_id),
        )
        .await;
        TrackPublisher::new(track_id, kind)
    }

    /// Subscribe to a track (full layer) and make sure the server processed it.
    pub async fn subscribe(&mut self, track_id: u32) {
        self.send(ClientMessage::Subscribe {
            track_id,
            max_width: None,
            max_height: None,
            layer: Some(0),
        })
        .await;
        self.sync().await;
        assert!(
            !self
                .log
                .iter()
                .any(|m| matches!(m, ServerMessage::Error { .. })),
            "{}: subscribe {track_id}: {:?}",
            self.name,
            self.log
        );
    }

    /// Control messages received since index `from` of the log, minus pongs.
    pub fn since(&self, from: usize) -> Vec<&ServerMessage> {
        self.log[from..]
            .iter()
            .filter(|m| !matches!(m, ServerMessage::Pong { .. }))
            .collect()
    }
}

/// An unlabelled sample of the meeting server's /metrics, by its full name.
pub async fn metric(m: &Meet, name: &str) -> f64 {
    let text = reqwest::get(m.s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
        .trim()
        .parse()
        .unwrap()
}
