//! QuicMeet's native client: join a meeting over WebTransport or WebSocket, send control
//! messages and media frames, receive what the server forwards.
//!
//! Used by the server's integration tests and by the load tester `quicmeet-loadtest`, so it
//! speaks exactly the wire protocol of `docs/CONTRACT.md` through the codecs of
//! [`quicmeet_proto`] and adds nothing of its own:
//!
//! - [`join()`] asks the REST API for a join token and the media endpoints ([`JoinInfo`]);
//! - [`connect`] opens the media connection and sends `hello{token}` first, answering a
//!   [`ClientSender`] and a [`ClientReceiver`] that can live in different tasks;
//! - on **WebTransport** the control stream is the first bidirectional stream (u32 length +
//!   JSON), audio goes in datagrams (or a one-frame unidirectional stream when it is larger
//!   than the connection's datagram limit) and video goes on one unidirectional stream per
//!   group of pictures per track, a keyframe opening a new stream with a higher priority;
//! - on **WebSocket** every message is binary with a type byte (0x01 control, 0x02 media);
//! - [`TrackPublisher`] numbers and stamps frames into a reused buffer.
//!
//! Receiving is backed by background tasks that start the moment the session is up (the
//! datagram reader first, so no early audio is lost) and feed one **bounded** channel. A caller
//! that stops calling [`ClientReceiver::recv`] therefore really stops reading: streams stop
//! being drained (QUIC flow control pushes back), datagrams pile up and are dropped by QUIC,
//! and the WebSocket's TCP window closes. The tests rely on that to play a stalled subscriber.
//! With [`ConnectOptions::datagram_max_age`] the client instead behaves as a browser does: it
//! keeps draining datagrams and drops those older than the bound, so a slow reader gets fresh
//! audio with gaps (reported by [`ClientReceiver::take_expired`]) rather than old audio.
//!
//! ```no_run
//! use std::time::Duration;
//! use quicmeet_client::proto::{track, ClientMessage, ServerMessage};
//! use quicmeet_client::{connect, join, Event, JoinAs, TrackPublisher, Transport};
//!
//! # async fn demo() -> quicmeet_client::Result<()> {
//! let http = reqwest::Client::new();
//! let guest = JoinAs::Guest { name: "Gus".into(), email: "gus@example.org".into() };
//! let info = join(&http, "http://localhost:8080", "abc-defg-hij", &guest).await?;
//! let (mut tx, mut rx) = connect(Transport::WebTransport, &info).await?;
//! let me = rx
//!     .wait_control(Duration::from_secs(5), |m| match m {
//!         ServerMessage::Welcome { participant_id, .. } => Some(*participant_id),
//!         _ => None,
//!     })
//!     .await?;
//! let mic = track::track_id(me, track::Slot::Mic).unwrap();
//! tx.send_control(&ClientMessage::Publish {
//!     track_id: mic, kind: track::Slot::Mic.kind(), codec: "opus".into(), width: None, height: None, layers_capable: false,
//! })
//! .await?;
//! let mut publisher = TrackPublisher::new(mic, track::Slot::Mic.kind());
//! tx.send_frame(&publisher.frame(false, b"opus packet")?).await?;
//! while let Some(ev) = rx.recv().await {
//!     match ev {
//!         Event::Media(m) => println!("{:?} via {:?}, {} µs", m.frame.header(), m.via, m.latency_us()),
//!         Event::Control(c) => println!("{c:?}"),
//!         Event::ProtocolError { code, .. } => eprintln!("bad bytes from the server: {code}"),
//!         Event::Closed(c) => println!("closed: {c:?}"),
//!     }
//! }
//! tx.close().await
//! # }
//! ```
//!
//! What this crate must never do: invent protocol (everything on the wire comes from
//! `quicmeet-proto`), encode JSON per media frame, buffer without bound, or panic on anything
//! the server sends. The raw hooks on [`ClientSender`] (`raw_*`, `send_control_json`) send
//! arbitrary bytes on purpose; they exist for tests of the server's input checks.

mod error;
mod frames;
mod join;
pub mod layers;
pub mod uplink;
mod ws;
mod wt;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quicmeet_proto::{ClientMessage, EncodedFrame, FrameHeader, ServerMessage};
use tokio::sync::mpsc;

pub use error::{ClientError, Result};
pub use frames::{build_frame, now_us, TrackPublisher};
pub use join::{join, parse_sha256_hex, JoinAs, JoinInfo, JoinParticipant, JoinStatus};
pub use quicmeet_proto as proto;
pub use quicmeet_proto::delay::{self, DelayMeter};
pub use tokio_tungstenite::tungstenite::Message as WsRawMessage;

/// Which media transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// WebTransport over QUIC (HTTP/3) on the server's UDP port.
    WebTransport,
    /// WebSocket on the server's HTTP port.
    WebSocket,
}

impl Transport {
    /// `"webtransport"` or `"websocket"`, as in the `participant.transport` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebTransport => "webtransport",
            Transport::WebSocket => "websocket",
        }
    }
}

/// How a media frame arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// A WebTransport datagram.
    Datagram,
    /// A WebTransport unidirectional stream.
    Stream,
    /// A WebSocket binary message.
    WebSocket,
}

/// A received media frame.
#[derive(Debug, Clone)]
pub struct MediaEvent {
    /// The frame as it was on the wire (header and payload, zero-copy).
    pub frame: EncodedFrame,
    /// How it came.
    pub via: Via,
    /// When the reader task got it off the network (before any queueing in this client).
    pub received_at: Instant,
    /// The same moment on the wall clock, µs since the Unix epoch (compare with
    /// `capture_ts_us` stamped by [`now_us`] on the same machine for one-way latency).
    pub received_unix_us: u64,
}

impl MediaEvent {
    /// One-way latency in µs, if the publisher stamped `capture_ts_us` with [`now_us`].
    pub fn latency_us(&self) -> i64 {
        self.received_unix_us as i64 - self.frame.header().capture_ts_us as i64
    }
}

/// Why the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// WebTransport application error code or WebSocket close code, when the peer gave one.
    pub code: Option<u64>,
    /// Reason text from the peer, or a description of the local error.
    pub reason: String,
}

/// Something the client received.
#[derive(Debug, Clone)]
pub enum Event {
    /// A control message from the server.
    Control(ServerMessage),
    /// A media frame.
    Media(MediaEvent),
    /// The server sent bytes this client could not decode (the connection may go on).
    ProtocolError {
        /// Stable code from the proto crate's error, or `text_message`.
        code: &'static str,
        /// Human text.
        detail: String,
    },
    /// The connection is over; the last event.
    Closed(CloseInfo),
}

/// Options of [`connect_with`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Events buffered between the reader tasks and [`ClientReceiver::recv`]. When full, the
    /// readers stop reading from the network.
    pub event_buffer: usize,
    /// Upper bound on establishing the connection (handshake plus `hello`).
    pub connect_timeout: Duration,
    /// Sent as `hello.client`.
    pub client_name: Option<String>,
    /// Sent as `hello.uplink_reports`: the caller follows `uplink_report` while it publishes.
    pub uplink_reports: bool,
    /// WebTransport keep-alive interval (`None`: none).
    pub keep_alive: Option<Duration>,
    /// WebTransport idle timeout.
    pub idle_timeout: Duration,
    /// WebTransport flow-control window, per connection and per stream, in bytes (`None`:
    /// QUIC's defaults). A small window makes a receiver that stops reading push back on the
    /// server quickly instead of buffering megabytes.
    pub receive_window: Option<u32>,
    /// WebSocket: the TCP receive buffer (`SO_RCVBUF`) in bytes (`None`: the system's
    /// autotuned default). Small values make a stalled reader felt by the server sooner.
    pub tcp_recv_buffer: Option<u32>,
    /// WebSocket: the TCP send buffer (`SO_SNDBUF`) in bytes (`None`: autotuned). A small one
    /// makes a capped uplink felt as a slow [`ClientSender::send_frame`] instead of seconds
    /// of media queued in the kernel.
    pub tcp_send_buffer: Option<u32>,
    /// WebTransport: received datagrams older than this are dropped instead of delivered, as
    /// browsers do (Chromium's `incomingMaxAge`), so a reader that falls behind hears fresh
    /// audio with gaps rather than old audio. The datagram reader keeps draining the QUIC
    /// connection whatever the caller does, so the age is measured from the moment the
    /// datagram left the network. `None`: deliver every datagram, however late.
    pub datagram_max_age: Option<Duration>,
    /// WebTransport: bytes of outgoing datagrams QUIC may hold while the path is congested;
    /// beyond it the oldest are dropped (`None`: quinn's default, about 1 MB, which is seconds
    /// of audio on a capped uplink).
    pub datagram_send_buffer: Option<usize>,
    /// WebTransport: bytes of stream data sent but not yet acknowledged, at most (`None`:
    /// quinn's default). A small window makes a capped uplink push back on the sender
    /// instead of queueing seconds of video.
    pub send_window: Option<u64>,
}

/// Received datagrams older than this are dropped when [`ConnectOptions::datagram_max_age`]
/// asks for the browsers' behaviour: the age past which audio is worse than silence.
pub const DATAGRAM_MAX_AGE: Duration = Duration::from_millis(150);

/// What the QUIC connection knows about its path (WebTransport only): the uplink signals a
/// publisher adapts to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathStats {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Smallest round-trip time seen.
    pub min_rtt: Duration,
    /// Congestion window in bytes.
    pub cwnd: u64,
    /// Times the congestion controller backed off.
    pub congestion_events: u64,
    /// Packets declared lost.
    pub lost_packets: u64,
    /// Packets sent.
    pub sent_packets: u64,
    /// DATAGRAM frames sent. QUIC drops the oldest unsent datagrams when its send buffer is
    /// full and does not count them: datagrams handed to it minus this is what it dropped
    /// (or still holds).
    pub datagrams_sent: u64,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            event_buffer: 256,
            connect_timeout: Duration::from_secs(10),
            client_name: Some(concat!("quicmeet-client/", env!("CARGO_PKG_VERSION")).into()),
            uplink_reports: false,
            keep_alive: Some(Duration::from_secs(2)),
            idle_timeout: Duration::from_secs(10),
            receive_window: None,
            tcp_recv_buffer: None,
            tcp_send_buffer: None,
            datagram_max_age: None,
            datagram_send_buffer: None,
            send_window: None,
        }
    }
}

/// Counters kept by the reader tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    datagrams: AtomicU64,
    stream_frames: AtomicU64,
    streams_accepted: AtomicU64,
    streams_reset: AtomicU64,
    ws_frames: AtomicU64,
    control: AtomicU64,
    bad_media: AtomicU64,
    media_bytes: AtomicU64,
    datagrams_expired: AtomicU64,
    /// The QUIC connection under a WebTransport session, for its datagram counts.
    quic: std::sync::OnceLock<wtransport::quinn::Connection>,
    /// Headers of the latest expired datagrams, for [`ClientReceiver::take_expired`].
    expired: std::sync::Mutex<std::collections::VecDeque<FrameHeader>>,
}

/// Expired datagram headers kept for [`ClientReceiver::take_expired`].
const MAX_EXPIRED_KEPT: usize = 4096;

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Count a datagram dropped for its age and keep its header.
    pub(crate) fn expire(&self, ev: &Event) {
        Counters::add(&self.datagrams_expired, 1);
        if let Event::Media(m) = ev {
            if let Ok(mut q) = self.expired.lock() {
                if q.len() >= MAX_EXPIRED_KEPT {
                    q.pop_front();
                }
                q.push_back(*m.frame.header());
            }
        }
    }
}

/// A snapshot of what the receiver has seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Media frames that came in datagrams.
    pub datagrams: u64,
    /// Media frames that came on unidirectional streams.
    pub stream_frames: u64,
    /// Unidirectional streams the server opened.
    pub streams_accepted: u64,
    /// Of those, streams the server reset (a dropped group of pictures).
    pub streams_reset: u64,
    /// Media frames that came over WebSocket.
    pub ws_frames: u64,
    /// Control messages.
    pub control: u64,
    /// Media that could not be decoded (dropped).
    pub bad_media: u64,
    /// Encoded media bytes received.
    pub media_bytes: u64,
    /// Datagrams dropped unread because they were older than
    /// [`ConnectOptions::datagram_max_age`]: this client's own backlog, not the network's.
    pub datagrams_expired: u64,
    /// DATAGRAM frames QUIC received (WebTransport; 0 on WebSocket). QUIC drops the oldest
    /// unread ones when its receive buffer is full and does not count them, so this minus
    /// [`Self::datagrams`] (and any still unread) is what was lost inside this client because
    /// it read too slowly, not on the network.
    pub quic_datagrams_received: u64,
}

/// Where events are delivered.
pub(crate) type EventTx = mpsc::Sender<Event>;

/// Open a media connection with default options. See [`connect_with`].
pub async fn connect(
    transport: Transport,
    join: &JoinInfo,
) -> Result<(ClientSender, ClientReceiver)> {
    connect_with(transport, join, &ConnectOptions::default()).await
}

/// Open a media connection: handshake, control stream, `hello{token}`, and the reader tasks.
///
/// Returns as soon as `hello` is sent; the server's answer (`welcome`, `lobby`, `error`, …)
/// arrives as the first [`Event::Control`]. A WebTransport session the server refuses fails
/// here with [`ClientError::WebTransportConnect`].
pub async fn connect_with(
    transport: Transport,
    join: &JoinInfo,
    opts: &ConnectOptions,
) -> Result<(ClientSender, ClientReceiver)> {
    let (tx, rx) = mpsc::channel(opts.event_buffer.max(1));
    let counters = Arc::new(Counters::default());
    let hello = ClientMessage::Hello {
        token: join.token.clone(),
        client: opts.client_name.clone(),
        uplink_reports: opts.uplink_reports,
    };
    let fut = async {
        let inner = match transport {
            Transport::WebTransport => {
                SenderInner::Wt(wt::connect(join, opts, &hello, tx, counters.clone()).await?)
            }
            Transport::WebSocket => {
                SenderInner::Ws(ws::connect(join, opts, &hello, tx, counters.clone()).await?)
            }
        };
        Ok::<_, ClientError>(inner)
    };
    let inner = tokio::time::timeout(opts.connect_timeout, fut)
        .await
        .map_err(|_| ClientError::Timeout(format!("{} connection", transport.as_str())))??;
    Ok((
        ClientSender { inner, transport },
        ClientReceiver {
            rx,
            counters,
            max_age: opts.datagram_max_age,
            expired_seen: 0,
        },
    ))
}

enum SenderInner {
    Wt(wt::WtSender),
    Ws(ws::WsSender),
}

/// The sending half of a connection.
///
/// Dropping it closes the connection without `leave` (like [`ClientSender::abort`]); the
/// receiver then gets [`Event::Closed`]. Use [`ClientSender::close`] to leave politely.
pub struct ClientSender {
    inner: SenderInner,
    transport: Transport,
}

impl std::fmt::Debug for ClientSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSender")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl ClientSender {
    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Send a control message.
    pub async fn send_control(&mut self, msg: &ClientMessage) -> Result<()> {
        match &mut self.inner {
            SenderInner::Wt(s) => s.send_control(msg).await,
            SenderInner::Ws(s) => s.send_control(msg).await,
        }
    }

    /// Send a media frame. On WebTransport, audio goes in a datagram when it fits
    /// ([`ClientSender::max_datagram_size`]) and on a one-frame stream otherwise; video and
    /// screen frames go on the track's current group stream, a keyframe opening a new one.
    /// A group stream the server stopped is dropped silently (the server does not want that
    /// group any more); the track's next frame opens a new stream.
    pub async fn send_frame(&mut self, frame: &EncodedFrame) -> Result<()> {
        match &mut self.inner {
            SenderInner::Wt(s) => s.send_frame(frame).await,
            SenderInner::Ws(s) => s.send_frame(frame).await,
        }
    }

    /// End the current group stream of every track (WebTransport; no-op on WebSocket).
    pub fn finish_groups(&mut self) {
        if let SenderInner::Wt(s) = &mut self.inner {
            s.finish_groups();
        }
    }

    /// Largest datagram payload the connection takes now (WebTransport only).
    pub fn max_datagram_size(&self) -> Option<usize> {
        match &self.inner {
            SenderInner::Wt(s) => s.max_datagram_size(),
            SenderInner::Ws(_) => None,
        }
    }

    /// A handle that sends audio datagrams without waiting for this sender (WebTransport
    /// only), so audio never waits behind a video write blocked by flow control.
    pub fn datagram_sender(&self) -> Option<DatagramSender> {
        match &self.inner {
            SenderInner::Wt(s) => Some(DatagramSender(s.connection())),
            SenderInner::Ws(_) => None,
        }
    }

    /// The QUIC path's statistics (WebTransport only).
    pub fn path_stats(&self) -> Option<PathStats> {
        match &self.inner {
            SenderInner::Wt(s) => Some(s.path_stats()),
            SenderInner::Ws(_) => None,
        }
    }

    /// Send `leave{}` and close the connection.
    pub async fn close(self) -> Result<()> {
        match self.inner {
            SenderInner::Wt(s) => s.close().await,
            SenderInner::Ws(s) => s.close().await,
        }
    }

    /// Close the connection without saying goodbye (a crash, as the server sees it).
    pub fn abort(self) {
        match self.inner {
            SenderInner::Wt(s) => s.abort(),
            SenderInner::Ws(s) => s.abort(),
        }
    }

    /// Send arbitrary bytes as a control message body: length-prefixed on the WebTransport
    /// control stream, behind the 0x01 type byte on WebSocket. For tests of input checks.
    pub async fn send_control_json(&mut self, json: &[u8]) -> Result<()> {
        match &mut self.inner {
            SenderInner::Wt(s) => {
                let mut b = Vec::with_capacity(4 + json.len());
                b.extend_from_slice(&(json.len() as u32).to_be_bytes());
                b.extend_from_slice(json);
                s.raw_control_stream(&b).await
            }
            SenderInner::Ws(s) => {
                let mut b = Vec::with_capacity(1 + json.len());
                b.push(quicmeet_proto::ws::TYPE_CONTROL);
                b.extend_from_slice(json);
                s.raw(WsRawMessage::Binary(b.into())).await
            }
        }
    }

    /// Write raw bytes on the WebTransport control stream (no framing added).
    pub async fn raw_control_stream(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.inner {
            SenderInner::Wt(s) => s.raw_control_stream(bytes).await,
            SenderInner::Ws(_) => Err(ClientError::WrongTransport("raw_control_stream")),
        }
    }

    /// Send raw bytes as one WebTransport datagram.
    pub fn raw_datagram(&self, bytes: &[u8]) -> Result<()> {
        match &self.inner {
            SenderInner::Wt(s) => s.raw_datagram(bytes),
            SenderInner::Ws(_) => Err(ClientError::WrongTransport("raw_datagram")),
        }
    }

    /// Open a WebTransport unidirectional stream, write raw bytes, and finish it.
    pub async fn raw_uni_stream(&self, bytes: &[u8]) -> Result<()> {
        match &self.inner {
            SenderInner::Wt(s) => s.raw_uni_stream(bytes).await,
            SenderInner::Ws(_) => Err(ClientError::WrongTransport("raw_uni_stream")),
        }
    }

    /// Send any WebSocket message (text, binary without a type byte, ping, …).
    pub async fn raw_ws(&mut self, msg: WsRawMessage) -> Result<()> {
        match &mut self.inner {
            SenderInner::Ws(s) => s.raw(msg).await,
            SenderInner::Wt(_) => Err(ClientError::WrongTransport("raw_ws")),
        }
    }
}

/// Sends frames as WebTransport datagrams, independently of the [`ClientSender`] it came
/// from. Sending never waits: when the path is congested QUIC drops the oldest queued
/// datagrams ([`ConnectOptions::datagram_send_buffer`]).
#[derive(Clone)]
pub struct DatagramSender(wtransport::Connection);

impl std::fmt::Debug for DatagramSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramSender").finish_non_exhaustive()
    }
}

impl DatagramSender {
    /// Send one frame in a datagram. Fails with [`ClientError::Datagram`] when it does not
    /// fit (the caller then sends it on a stream through the [`ClientSender`]).
    pub fn send_frame(&self, frame: &EncodedFrame) -> Result<()> {
        self.0.send_datagram(frame.as_bytes())?;
        Ok(())
    }
}

/// The receiving half of a connection.
#[derive(Debug)]
pub struct ClientReceiver {
    rx: mpsc::Receiver<Event>,
    counters: Arc<Counters>,
    max_age: Option<Duration>,
    expired_seen: u64,
}

impl ClientReceiver {
    /// Whether `ev` is a datagram older than the age bound (then it is counted and dropped).
    fn expired(&self, ev: &Event) -> bool {
        let old = match (self.max_age, ev) {
            (Some(max), Event::Media(m)) => m.via == Via::Datagram && m.received_at.elapsed() > max,
            _ => false,
        };
        if old {
            self.counters.expire(ev);
        }
        old
    }

    /// Headers of the datagrams dropped for their age since the last call (the latest few
    /// thousand): this client's own drops, which a caller accounting loss should not blame
    /// on the network.
    pub fn take_expired(&mut self) -> Vec<FrameHeader> {
        let n = self.counters.datagrams_expired.load(Ordering::Relaxed);
        if n == self.expired_seen {
            return vec![];
        }
        self.expired_seen = n;
        match self.counters.expired.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => vec![],
        }
    }

    /// The next event; `None` after [`Event::Closed`] once every reader task has ended.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            let ev = self.rx.recv().await?;
            if !self.expired(&ev) {
                return Some(ev);
            }
        }
    }

    /// The next event, waiting at most `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Event>> {
        tokio::time::timeout(timeout, self.recv())
            .await
            .map_err(|_| ClientError::Timeout("an event".into()))
    }

    /// An event if one is buffered now.
    pub fn try_recv(&mut self) -> Option<Event> {
        while let Ok(ev) = self.rx.try_recv() {
            if !self.expired(&ev) {
                return Some(ev);
            }
        }
        None
    }

    /// Receive until `pick` returns `Some` for a control message, within `timeout`.
    /// Everything else received meanwhile (media, other control messages) is discarded.
    pub async fn wait_control<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .map_err(|_| ClientError::Timeout("a control message".into()))?;
            match ev {
                Some(Event::Control(m)) => {
                    if let Some(t) = pick(&m) {
                        return Ok(t);
                    }
                }
                Some(_) => {}
                None => return Err(ClientError::Closed),
            }
        }
    }

    /// Counters of what arrived so far.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            datagrams: g(&c.datagrams),
            stream_frames: g(&c.stream_frames),
            streams_accepted: g(&c.streams_accepted),
            streams_reset: g(&c.streams_reset),
            ws_frames: g(&c.ws_frames),
            control: g(&c.control),
            bad_media: g(&c.bad_media),
            media_bytes: g(&c.media_bytes),
            datagrams_expired: g(&c.datagrams_expired),
            quic_datagrams_received: c.quic.get().map_or(0, |q| q.stats().frame_rx.datagram),
        }
    }
}

/// Build a media event stamped now.
pub(crate) fn media_event(frame: EncodedFrame, via: Via) -> Event {
    Event::Media(MediaEvent {
        frame,
        via,
        received_at: Instant::now(),
        received_unix_us: now_us(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(ws: &str, wt: &str) -> JoinInfo {
        JoinInfo {
            status: JoinStatus::Ready,
            token: "t".into(),
            expires_in_secs: 60,
            participant: JoinParticipant {
                name: "N".into(),
                email: "n@x.test".into(),
                role: "guest".into(),
            },
            webtransport_url: wt.into(),
            cert_hashes: vec![[0; 32]],
            websocket_url: ws.into(),
        }
    }

    fn media(seq: u32, via: Via, age: Duration) -> Event {
        let frame = build_frame(
            quicmeet_proto::MediaKind::Audio,
            16,
            seq,
            false,
            now_us(),
            b"opus",
        )
        .unwrap();
        Event::Media(MediaEvent {
            frame,
            via,
            received_at: Instant::now() - age,
            received_unix_us: now_us(),
        })
    }

    #[tokio::test]
    async fn a_slow_reader_gets_fresh_datagrams_and_learns_which_it_missed() {
        let (tx, rx) = mpsc::channel(16);
        let mut r = ClientReceiver {
            rx,
            counters: Arc::default(),
            max_age: Some(DATAGRAM_MAX_AGE),
            expired_seen: 0,
        };
        let old = Duration::from_millis(400);
        tx.send(media(1, Via::Datagram, old)).await.unwrap();
        tx.send(media(2, Via::Stream, old)).await.unwrap();
        tx.send(media(3, Via::Datagram, Duration::ZERO))
            .await
            .unwrap();
        drop(tx);
        let seqs: Vec<u32> = std::iter::from_fn(|| r.try_recv())
            .map(|e| match e {
                Event::Media(m) => m.frame.header().seq,
                _ => unreachable!(),
            })
            .collect();
        // The stale datagram is dropped; streams are reliable and never aged out.
        assert_eq!(seqs, [2, 3]);
        assert_eq!(r.stats().datagrams_expired, 1);
        let missed: Vec<u32> = r.take_expired().iter().map(|h| h.seq).collect();
        assert_eq!(missed, [1]);
        assert!(r.take_expired().is_empty());
        // Without an age bound every datagram is delivered, however late.
        let (tx, rx) = mpsc::channel(4);
        let mut keep = ClientReceiver {
            rx,
            counters: Arc::default(),
            max_age: None,
            expired_seen: 0,
        };
        tx.send(media(1, Via::Datagram, old)).await.unwrap();
        assert!(keep.recv().await.is_some());
    }

    #[tokio::test]
    async fn connect_failures_are_typed_errors() {
        let opts = ConnectOptions {
            connect_timeout: Duration::from_secs(3),
            ..ConnectOptions::default()
        };
        let bad = info("http://127.0.0.1:1/ws", "https://127.0.0.1:1/wt");
        let e = connect_with(Transport::WebSocket, &bad, &opts)
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::BadUrl { .. }), "{e}");
        // Nothing listens on port 1: TCP is refused at once.
        let closed = info("ws://127.0.0.1:1/ws", "https://127.0.0.1:1/wt");
        let e = connect_with(Transport::WebSocket, &closed, &opts)
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Io(_)), "{e}");
        // No QUIC server answers: the handshake times out (or fails) with a typed error.
        let e = connect_with(Transport::WebTransport, &closed, &opts)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::Timeout(_) | ClientError::WebTransportConnect(_)
            ),
            "{e}"
        );
    }
}
