//! The WebTransport endpoint (HTTP/3 over QUIC) at `/wt?token=…`.
//!
//! The join token is checked before the session is accepted. Then the client opens the
//! control stream (bidirectional, u32 length + JSON messages, `hello` first); audio frames
//! ride datagrams; each video group of pictures rides its own unidirectional stream, opened
//! on the group's keyframe with a higher priority than the groups before it. When a
//! subscriber cannot take a group's frames as fast as they come, that group's stream is reset
//! and the subscriber waits for the next keyframe, which is asked of the publisher.
//!
//! Audio normally leaves from the room's fan-out (the `Datagrams` sink on the connection's
//! `ConnOut`); the writer here sends only audio that had to wait in the queue.

use std::{
    collections::HashMap,
    net::UdpSocket,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use quicmeet_proto::{
    control, wt::ControlStreamDecoder, ClientMessage, Decoded, EncodedFrame, MediaKind,
    ServerMessage, StreamDecoder,
};
use quicmeet_sfu::Popped;
use quicmeet_wt::SessionDatagrams;
use smallvec::SmallVec;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wtransport::{endpoint::IncomingSession, Connection, Endpoint, ServerConfig, VarInt};

use super::{conn::Strikes, room::RoomCmd, Attached, MediaHub, Transport};
use crate::certs::SharedCert;
use crate::task::AbortOnDrop;

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames a group stream may have waiting before the subscriber counts as lagging
/// (about half a second at 30 fps).
const GROUP_BACKLOG: usize = 16;
/// Bytes QUIC may hold unacknowledged per connection (about 1 s of 720p video at 2 Mbit/s):
/// past this, group streams back up and stale groups are reset instead of queued.
const SEND_WINDOW: u64 = 256 * 1024;
/// Longest an audio datagram may wait inside QUIC to be sent. QUIC sends datagrams before
/// stream data, so they wait only when the path cannot carry even the audio (a congestion
/// window shrunk by loss, an outage) or when the connection's task runs late on a busy server.
/// Past this age QUIC drops them unsent (our patch to quinn-proto, third_party/README.md):
/// audio that late is worth less than the fresh audio queued behind it, which a listener
/// then hears at once instead of after the backlog. 150 ms, the receive bound of browsers and
/// of the Rust client (`quicmeet_client::DATAGRAM_MAX_AGE`). 100 ms also cut into ordinary
/// loss recovery on a bursty link: it dropped audio that would have come in time, and lost
/// more than 16 KiB did in some runs (BENCHMARKS.md section 5, ninth pass). A saturated
/// machine runs a connection's task 40–50 ms late, well within either.
const DATAGRAM_MAX_AGE: Duration = Duration::from_millis(150);
/// Bytes of outgoing datagrams QUIC may buffer: a memory bound only, since
/// [`DATAGRAM_MAX_AGE`] bounds the wait. About 0.4 s of a 64-person meeting's audio (each
/// listener gets 63 streams of about 100-byte frames at 50 per second). When it was the only
/// bound it had to be small (16 KiB) to keep audio fresh on a lossy link, and then a busy
/// server overflowed it in large meetings (BENCHMARKS.md section 5, eighth and ninth passes).
const DATAGRAM_SEND_BUFFER: usize = 128 * 1024;
/// What one publisher may have in flight towards the server on one stream, and on all its
/// streams together: bounds how far a publisher's video can run ahead of what the server
/// reads, so a capped uplink backs up in the publisher (which can adapt) instead of
/// delivering seconds-old video.
const STREAM_RECEIVE_WINDOW: u32 = 256 * 1024;
const RECEIVE_WINDOW: u32 = 1024 * 1024;
/// Items the writer takes from the queue per lock (it sends them before taking more).
const WRITE_BATCH: usize = 16;
/// Application error code used when a lagging group's stream is reset.
const RESET_LAGGING: u32 = 0x10;
/// How long a closing connection waits for the peer to acknowledge the end of its control
/// stream (and so its `goodbye`) before the session is closed anyway.
const GOODBYE_ACK_WAIT: Duration = Duration::from_secs(2);

/// Ends the control stream and waits, at most [`GOODBYE_ACK_WAIT`], for the peer to acknowledge
/// everything on it. Unbounded, a peer that stopped reading its control stream (flow control
/// then holds the last bytes back) would keep a connection the room already let go open for
/// as long as QUIC keeps it alive, and that participant would never learn it had to leave.
async fn finish_control(ctl_send: &mut wtransport::SendStream) {
    let _ = tokio::time::timeout(GOODBYE_ACK_WAIT, ctl_send.finish()).await;
}

fn server_config(socket: UdpSocket, cert: &SharedCert) -> anyhow::Result<ServerConfig> {
    // The certificate comes from the shared resolver, so a renewed or reloaded certificate
    // reaches new sessions without touching the endpoint; open sessions keep theirs.
    let tls = (*cert.h3_config()?).clone();
    let mut transport = wtransport::quinn::TransportConfig::default();
    // Bound what one subscriber can have in flight or waiting inside QUIC: past this, writes
    // wait, the group stream's backlog grows, and the stale group is reset instead of
    // delivering seconds-old video. Stale audio datagrams are dropped rather than queued.
    transport.send_window(SEND_WINDOW);
    transport.datagram_send_buffer_size(DATAGRAM_SEND_BUFFER);
    transport.datagram_send_max_age(Some(DATAGRAM_MAX_AGE));
    transport.stream_receive_window(wtransport::quinn::VarInt::from_u32(STREAM_RECEIVE_WINDOW));
    transport.receive_window(wtransport::quinn::VarInt::from_u32(RECEIVE_WINDOW));
    Ok(ServerConfig::builder()
        .with_bind_socket(socket)
        .with_custom_tls_and_transport(tls, transport)
        .keep_alive_interval(Some(Duration::from_secs(5)))
        .max_idle_timeout(Some(Duration::from_secs(30)))?
        .build())
}

/// Runs the endpoint on `socket` until the hub's cancellation.
pub async fn serve(hub: Arc<MediaHub>, socket: UdpSocket, cert: SharedCert) -> anyhow::Result<()> {
    socket.set_nonblocking(true)?;
    let endpoint = Endpoint::server(server_config(socket, &cert)?)?;
    loop {
        tokio::select! {
            _ = hub.cancel.cancelled() => break,
            incoming = endpoint.accept() => {
                tokio::spawn(session(hub.clone(), incoming));
            }
        }
    }
    // Give sessions a moment to send their goodbye before closing everything.
    tokio::time::sleep(Duration::from_millis(200)).await;
    endpoint.close(VarInt::from_u32(0), b"server shutdown");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    Ok(())
}

fn token_from_path(path: &str) -> Option<String> {
    let (p, q) = path.split_once('?')?;
    if p != "/wt" {
        return None;
    }
    q.split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::to_owned)
}

async fn session(hub: Arc<MediaHub>, incoming: IncomingSession) {
    let Ok(Ok(request)) = tokio::time::timeout(Duration::from_secs(10), incoming).await else {
        return;
    };
    let path = request.path().to_owned();
    if !(path == "/wt" || path.starts_with("/wt?")) {
        request.not_found().await;
        return;
    }
    // Check the token before accepting the session.
    let grant = match token_from_path(&path) {
        Some(token) => match hub.authenticate(&token).await {
            Ok(g) => Some(g),
            Err(r) => {
                hub.metrics
                    .refused_connections
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(code = r.code, "WebTransport session refused");
                request.forbidden().await;
                return;
            }
        },
        None => None,
    };
    let Ok(conn) = request.accept().await else {
        return;
    };
    // Incoming datagrams are read from QUIC by `SessionDatagrams`, not by wtransport's driver
    // task, which would otherwise be woken (and re-poll all it waits on) for every one.
    let incoming_datagrams = SessionDatagrams::take_over(&conn);
    let conn = Arc::new(conn);

    // The client's first bidirectional stream is the control stream; hello comes first.
    let Ok(Ok((mut ctl_send, mut ctl_recv))) =
        tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi()).await
    else {
        conn.close(VarInt::from_u32(1), b"no control stream");
        return;
    };
    let mut decoder = ControlStreamDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    let hello = tokio::time::timeout(HELLO_TIMEOUT, async {
        loop {
            match decoder.decode_client() {
                Ok(Decoded::Complete(m)) => return Ok(m),
                Ok(Decoded::NeedMore(_)) => {}
                Err(e) => return Err((e.code(), e.to_string())),
            }
            match ctl_recv.read(&mut buf).await {
                Ok(Some(n)) => decoder.push(&buf[..n]),
                _ => return Err(("closed", "control stream closed".to_owned())),
            }
        }
    })
    .await;
    let refuse = |code: &str, message: &str| {
        let mut v = Vec::new();
        for m in [
            ServerMessage::error(code, message),
            ServerMessage::goodbye(
                if code == "meeting_ended" {
                    "ended"
                } else {
                    code
                },
                message,
            ),
        ] {
            if let Ok(b) = quicmeet_proto::wt::encode_control(&m) {
                v.extend_from_slice(&b);
            }
        }
        v
    };
    let (token, uplink_reports) = match hello {
        Ok(Ok(ClientMessage::Hello {
            token,
            uplink_reports,
            ..
        })) => (token, uplink_reports),
        Ok(Ok(_)) => {
            let _ = ctl_send
                .write_all(&refuse(
                    "hello_required",
                    "The first message must be hello.",
                ))
                .await;
            conn.close(VarInt::from_u32(1), b"hello required");
            return;
        }
        Ok(Err((code, msg))) => {
            let _ = ctl_send.write_all(&refuse(code, &msg)).await;
            conn.close(VarInt::from_u32(1), b"bad hello");
            return;
        }
        Err(_) => {
            let _ = ctl_send
                .write_all(&refuse("hello_timeout", "No hello within 10 seconds."))
                .await;
            conn.close(VarInt::from_u32(1), b"hello timeout");
            return;
        }
    };
    let grant = match grant {
        Some(g) => g,
        None => match hub.authenticate(&token).await {
            Ok(g) => g,
            Err(r) => {
                hub.metrics
                    .refused_connections
                    .fetch_add(1, Ordering::Relaxed);
                let _ = ctl_send.write_all(&refuse(r.code, &r.message)).await;
                finish_control(&mut ctl_send).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                conn.close(VarInt::from_u32(2), r.code.as_bytes());
                return;
            }
        },
    };
    let attached = match hub.attach(&grant, Transport::WebTransport).await {
        Ok(a) => Arc::new(a.with_uplink_reports(uplink_reports)),
        Err(r) => {
            let _ = ctl_send.write_all(&refuse(r.code, &r.message)).await;
            conn.close(VarInt::from_u32(2), r.code.as_bytes());
            return;
        }
    };
    hub.metrics.sessions_wt.fetch_add(1, Ordering::Relaxed);
    let datagrams = Arc::new(DatagramCount::default());
    attached
        .out
        .set_direct(Box::new(Datagrams::new(&conn, datagrams.clone())));
    let stop = CancellationToken::new();

    // Whatever else the hello chunk carried belongs to the control stream.
    let control_reader = {
        let attached = attached.clone();
        let hub = hub.clone();
        let stop = stop.clone();
        async move {
            let mut strikes = Strikes::default();
            loop {
                loop {
                    match decoder.decode_client() {
                        Ok(Decoded::Complete(ClientMessage::Hello { .. })) => {
                            attached.out.push_control(Bytes::from(control::encode(
                                &ServerMessage::error(
                                    "already_joined",
                                    "hello was already accepted",
                                ),
                            )));
                        }
                        Ok(Decoded::Complete(m)) => {
                            if !attached.control(m).await {
                                return;
                            }
                        }
                        Ok(Decoded::NeedMore(_)) => break,
                        Err(e) => {
                            hub.metrics.protocol_errors.fetch_add(1, Ordering::Relaxed);
                            attached.out.push_control(Bytes::from(control::encode(
                                &ServerMessage::error(e.code(), e.to_string()),
                            )));
                            if strikes.hit()
                                || matches!(
                                    e,
                                    quicmeet_proto::control::ControlError::TooLarge { .. }
                                )
                            {
                                attached.out.push_control(Bytes::from(control::encode(
                                    &ServerMessage::goodbye(
                                        "protocol_error",
                                        "The control stream is corrupt.",
                                    ),
                                )));
                                attached.out.close("protocol_error");
                                return;
                            }
                        }
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = ctl_recv.read(&mut buf) => match r {
                        Ok(Some(n)) => decoder.push(&buf[..n]),
                        _ => return,
                    }
                }
            }
        }
    };

    // A task of its own: it wakes for every incoming audio frame, and in the select below it
    // made every such wake-up poll the control reader, the stream acceptor and the writer too.
    let datagram_reader = {
        let attached = attached.clone();
        let hub = hub.clone();
        let mut incoming = incoming_datagrams;
        AbortOnDrop::spawn(async move {
            let mut strikes = Strikes::default();
            while let Some(d) = incoming.next().await {
                match EncodedFrame::decode(d) {
                    Ok(f) => attached.media(f),
                    Err(e) => {
                        hub.metrics.protocol_errors.fetch_add(1, Ordering::Relaxed);
                        attached.out.push_control(Bytes::from(control::encode(
                            &ServerMessage::error(e.code(), e.to_string()),
                        )));
                        if strikes.hit() {
                            attached.out.close("protocol_error");
                            return;
                        }
                    }
                }
            }
        })
    };

    let stream_reader = {
        let attached = attached.clone();
        let conn = conn.clone();
        let hub = hub.clone();
        async move {
            while let Ok(mut s) = conn.accept_uni().await {
                let attached = attached.clone();
                let hub = hub.clone();
                tokio::spawn(async move {
                    let mut dec = StreamDecoder::new();
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        loop {
                            match dec.decode() {
                                Ok(Decoded::Complete(f)) => attached.media(f),
                                Ok(Decoded::NeedMore(_)) => break,
                                Err(e) => {
                                    hub.metrics.protocol_errors.fetch_add(1, Ordering::Relaxed);
                                    attached.out.push_control(Bytes::from(control::encode(
                                        &ServerMessage::error(e.code(), e.to_string()),
                                    )));
                                    s.stop(VarInt::from_u32(3));
                                    return;
                                }
                            }
                        }
                        match s.read(&mut buf).await {
                            Ok(Some(n)) => dec.push(&buf[..n]),
                            _ => return,
                        }
                    }
                });
            }
        }
    };

    let writer = write_loop(
        hub.clone(),
        conn.clone(),
        attached.clone(),
        ctl_send,
        datagrams.clone(),
    );
    tokio::pin!(writer);

    let writer_done = tokio::select! {
        _ = control_reader => false,
        _ = datagram_reader => false,
        _ = stream_reader => false,
        _ = &mut writer => true,
        _ = conn.closed() => true,
    };
    stop.cancel();
    // A reader that gave up (protocol error) queued an error and a goodbye: let the writer
    // flush them before the connection closes.
    if !writer_done && attached.out.is_closing() {
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut writer).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    conn.close(
        VarInt::from_u32(0),
        attached.out.close_reason().unwrap_or("left").as_bytes(),
    );
    datagrams.report_closed(conn.quic_connection().stats(), &hub);
    drop(attached);
}

/// Datagrams this session handed to QUIC, and how many of QUIC's drops were already counted.
///
/// quinn drops the oldest queued datagrams when its send buffer is full and counts none of
/// it; what it sent is in its stats (`frame_tx.datagram`). Once the connection is closed,
/// handed minus sent is what it dropped (past [`DATAGRAM_MAX_AGE`], from a full buffer, or
/// unsent at the close), added to `quicmeet_media_dropped_quic_datagrams_total` when the
/// session ends; those past the age limit, which quinn does count, also go to
/// `quicmeet_media_quic_datagrams_expired_total`. Not while it runs: then the difference also
/// holds what is merely waiting in QUIC's buffer, and there is no way to tell how many
/// datagrams that is.
#[derive(Default)]
struct DatagramCount {
    handed: AtomicU64,
}

impl DatagramCount {
    fn handed(&self) {
        self.handed.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds this closed session's drops to the hub's counters, from quinn's final statistics.
    fn report_closed(&self, stats: wtransport::quinn::ConnectionStats, hub: &MediaHub) {
        let sent = stats.frame_tx.datagram;
        let dropped = self.handed.load(Ordering::Relaxed).saturating_sub(sent);
        hub.metrics
            .dropped_quic_datagrams
            .fetch_add(dropped, Ordering::Relaxed);
        hub.metrics
            .expired_quic_datagrams
            .fetch_add(stats.expired_datagrams, Ordering::Relaxed);
    }
}

/// Audio straight from the room's fan-out into the session's datagrams. Sent through quinn
/// with the HTTP/3 datagram framing done here (RFC 9297: the quarter stream id of the
/// session's CONNECT stream as a varint, then the payload), byte for byte what
/// `wtransport::Connection::send_datagram` sends, but framed once per frame for the whole
/// room instead of copied once per subscriber.
struct Datagrams {
    quic: wtransport::quinn::Connection,
    prefix: SmallVec<[u8; 8]>,
    count: Arc<DatagramCount>,
}

impl Datagrams {
    fn new(conn: &Connection, count: Arc<DatagramCount>) -> Self {
        let (header, n) = quicmeet_proto::wt::datagram_header(conn.session_id().into_u64());
        let prefix = SmallVec::from_slice(&header[..n]);
        Self {
            quic: conn.quic_connection().clone(),
            prefix,
            count,
        }
    }
}

impl super::conn::DirectSink for Datagrams {
    fn send(&self, frame: &EncodedFrame, wire: &mut super::conn::WireCache) -> bool {
        let d = wire.framed(&self.prefix, frame.as_bytes());
        let ok = self.quic.send_datagram(d).is_ok();
        if ok {
            self.count.handed();
        }
        ok
    }
}

struct Group {
    tx: mpsc::Sender<Bytes>,
    cancel: CancellationToken,
}

impl Group {
    fn start(conn: Arc<Connection>, priority: i32, hub: Arc<MediaHub>) -> Group {
        let (tx, mut rx) = mpsc::channel::<Bytes>(GROUP_BACKLOG);
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            let opened = tokio::select! {
                _ = c2.cancelled() => return,
                s = async {
                    match conn.open_uni().await {
                        Ok(opening) => opening.await.ok(),
                        Err(_) => None,
                    }
                } => s,
            };
            let Some(mut s) = opened else { return };
            s.set_priority(priority);
            loop {
                tokio::select! {
                    biased;
                    _ = c2.cancelled() => {
                        hub.metrics.group_resets.fetch_add(1, Ordering::Relaxed);
                        let _ = s.reset(VarInt::from_u32(RESET_LAGGING));
                        return;
                    }
                    b = rx.recv() => match b {
                        Some(b) => {
                            if s.quic_stream_mut().write_chunk(b).await.is_err() {
                                return;
                            }
                        }
                        None => {
                            let _ = s.finish().await;
                            return;
                        }
                    }
                }
            }
        });
        Group { tx, cancel }
    }

    /// True when frames of this group are still waiting to be written.
    fn has_backlog(&self) -> bool {
        self.tx.capacity() < GROUP_BACKLOG
    }
}

async fn write_loop(
    hub: Arc<MediaHub>,
    conn: Arc<Connection>,
    attached: Arc<Attached>,
    mut ctl_send: wtransport::SendStream,
    datagrams: Arc<DatagramCount>,
) {
    let out = attached.out.clone();
    let mut groups: HashMap<u32, Group> = HashMap::new();
    let mut next_priority: i32 = 0;
    let mut batch: SmallVec<[Popped; WRITE_BATCH]> = SmallVec::new();
    let mut stats_tick = super::StatsClock::start(true);
    loop {
        for track in out.take_resets() {
            if let Some(g) = groups.remove(&track) {
                g.cancel.cancel();
            }
        }
        if out.take_flush() {
            // The path's queue is full and the estimate was cut: what QUIC still buffers of
            // each video group was handed over at the old rate. Reset the groups so it is
            // not sent; each track resumes at its next keyframe, on the layer that fits.
            let tracks: SmallVec<[u32; 8]> = groups.keys().copied().collect();
            for track in tracks {
                if let Some(g) = groups.remove(&track) {
                    g.cancel.cancel();
                }
                attached.keyframe_needed(track).await;
            }
        }
        loop {
            batch.clear();
            out.pop_batch(&mut batch, WRITE_BATCH);
            if batch.is_empty() {
                break;
            }
            // Read once per batch, not per frame. The room queues the goodbye and then closes,
            // so a batch popped between the two writes that goodbye as an ordinary (unbounded)
            // message; the window is the room's next few instructions, and the close then takes
            // effect from the next batch.
            let closing = out.is_closing();
            for item in batch.drain(..) {
                match item {
                    Popped::Control(json) => {
                        let Ok(framed) = quicmeet_proto::wt::frame_control_json(&json) else {
                            continue;
                        };
                        if closing {
                            // The connection is going (its goodbye is among these messages):
                            // video QUIC still holds for it must not stand in front of the
                            // goodbye, in the send buffer or in the peer's flow control.
                            for (_, g) in groups.drain() {
                                g.cancel.cancel();
                            }
                        }
                        let write = ctl_send.write_all(&framed);
                        let written = if closing {
                            matches!(
                                tokio::time::timeout(GOODBYE_ACK_WAIT, write).await,
                                Ok(Ok(()))
                            )
                        } else {
                            write.await.is_ok()
                        };
                        if !written {
                            return;
                        }
                    }
                    // Nothing more of a connection that is going.
                    Popped::Media { .. } if closing => {}
                    Popped::Media {
                        frame,
                        starts_group,
                    } => {
                        let kind = frame.header().kind;
                        let track = frame.header().track_id;
                        if kind == MediaKind::Audio {
                            match conn.send_datagram(frame.as_bytes()) {
                                Ok(()) => datagrams.handed(),
                                Err(wtransport::error::SendDatagramError::TooLarge) => {
                                    // Rare large audio frames go on a stream of their own.
                                    hub.metrics
                                        .datagrams_too_large
                                        .fetch_add(1, Ordering::Relaxed);
                                    let g = Group::start(conn.clone(), i32::MAX, hub.clone());
                                    let _ = g.tx.try_send(frame.into_bytes());
                                }
                                Err(_) => return,
                            }
                            continue;
                        }
                        if starts_group {
                            if let Some(old) = groups.remove(&track) {
                                // A group with frames still waiting is stale: reset it, don't queue.
                                if old.has_backlog() {
                                    old.cancel.cancel();
                                }
                            }
                            next_priority = next_priority.wrapping_add(1);
                            groups.insert(
                                track,
                                Group::start(conn.clone(), next_priority, hub.clone()),
                            );
                        }
                        let Some(g) = groups.get(&track) else {
                            // Waiting for this track's next keyframe.
                            hub.metrics
                                .dropped_stream_backlog
                                .fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        if g.tx.try_send(frame.into_bytes()).is_err() {
                            // The subscriber cannot keep up with this group: reset it and ask
                            // for a keyframe to start over.
                            hub.metrics
                                .dropped_stream_backlog
                                .fetch_add(1, Ordering::Relaxed);
                            if let Some(g) = groups.remove(&track) {
                                g.cancel.cancel();
                            }
                            attached.keyframe_needed(track).await;
                        }
                    }
                }
            }
        }
        attached.report_lagged().await;
        if out.is_closing() {
            finish_control(&mut ctl_send).await;
            return;
        }
        let paced = out.paced_until();
        tokio::select! {
            _ = out.wait() => {}
            // Video the pacer held back may leave now.
            _ = super::sleep_until_paced(paced), if paced.is_some() => {}
            _ = stats_tick.tick() => attached.report_stats(path_stats(&conn, &out)),
            _ = hub.cancel.cancelled() => {
                if let Ok(b) = quicmeet_proto::wt::encode_control(&ServerMessage::goodbye(
                    "shutdown", "The server is restarting. Reconnect in a moment.")) {
                    let _ = tokio::time::timeout(GOODBYE_ACK_WAIT, ctl_send.write_all(&b)).await;
                }
                finish_control(&mut ctl_send).await;
                out.close("shutdown");
                return;
            }
        }
    }
}

/// QUIC's view of the subscriber's downlink plus the queue's drain.
fn path_stats(conn: &Connection, out: &super::ConnOut) -> quicmeet_sfu::bwe::TransportStats {
    let s = conn.quic_connection().stats();
    quicmeet_sfu::bwe::TransportStats {
        rtt: Some(s.path.rtt),
        cwnd_bytes: Some(s.path.cwnd),
        sent_packets: Some(s.path.sent_packets),
        lost_packets: Some(s.path.lost_packets),
        congestion_events: Some(s.path.congestion_events),
        sent_bytes: Some(s.udp_tx.bytes),
        lost_bytes: Some(s.path.lost_bytes),
        ..out.queue_sample()
    }
}

impl Attached {
    /// Tells the room this subscriber needs a keyframe of `track_id` to resume.
    pub async fn keyframe_needed(&self, track_id: u32) {
        let _ = self
            .room
            .send(RoomCmd::KeyframeNeeded(self.out.id, track_id))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::token_from_path;

    #[test]
    fn token_is_read_from_the_wt_path_only() {
        assert_eq!(token_from_path("/wt?token=abc").as_deref(), Some("abc"));
        assert_eq!(token_from_path("/wt?x=1&token=abc").as_deref(), Some("abc"));
        assert_eq!(token_from_path("/other?token=abc"), None);
        assert_eq!(token_from_path("/wt"), None);
    }
}
