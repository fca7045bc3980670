//! WebTransport: control on the first bidirectional stream, audio in datagrams, video on one
//! unidirectional stream per group of pictures.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use quicmeet_proto::wt::encode_control;
use quicmeet_proto::{ClientMessage, ControlStreamDecoder, Decoded, EncodedFrame, StreamDecoder};
use quicmeet_wt::SessionDatagrams;
use tokio::sync::mpsc;
use wtransport::config::QuicTransportConfig;

/// Bytes of received datagrams QUIC keeps until the reader takes them, when the caller asks
/// for browser-like freshness: about 150 ms of fifty Opus tracks.
const DATAGRAM_RECEIVE_BUFFER: usize = 64 * 1024;
use wtransport::endpoint::endpoint_side::Client;
use wtransport::error::{ConnectionError, SendDatagramError, StreamReadError, StreamWriteError};
use wtransport::quinn;
use wtransport::tls::client::{build_default_tls_config, ServerHashVerification};
use wtransport::tls::rustls::client::danger::ServerCertVerifier;
use wtransport::tls::rustls::RootCertStore;
use wtransport::tls::{build_native_cert_store, Sha256Digest};
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream, VarInt};

use crate::error::{ClientError, Result};
use crate::{
    media_event, CloseInfo, ConnectOptions, Counters, Event, EventTx, JoinInfo, PathStats, Via,
};

/// Size of the read buffer of each stream reader.
const READ_CHUNK: usize = 16 * 1024;
/// Priority of the control stream: above every media stream.
const CONTROL_PRIORITY: i32 = i32::MAX;
/// Datagrams held for a slow caller when an age bound is set (a backstop; the age bound
/// normally empties the queue long before).
const MAX_PENDING_DATAGRAMS: usize = 4096;
/// How long to wait for the connection to close after the control stream ended.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

pub(crate) struct WtSender {
    _endpoint: Endpoint<Client>,
    conn: Connection,
    control: SendStream,
    /// The open group stream of each (track, layer): a publisher that makes a lower layer
    /// too sends it on groups of its own (PROTOCOL.md §3.1).
    groups: HashMap<(u32, u8), SendStream>,
    /// Incremented per group so newer groups get a higher send priority.
    group_priority: i32,
}

pub(crate) async fn connect(
    join: &JoinInfo,
    opts: &ConnectOptions,
    hello: &ClientMessage,
    tx: EventTx,
    counters: Arc<Counters>,
) -> Result<WtSender> {
    let verifier: Option<Arc<dyn ServerCertVerifier>> = if join.cert_hashes.is_empty() {
        None
    } else {
        Some(Arc::new(ServerHashVerification::new(
            join.cert_hashes.iter().map(|h| Sha256Digest::new(*h)),
        )))
    };
    let roots = if verifier.is_some() {
        RootCertStore::empty()
    } else {
        build_native_cert_store()
    };
    let tls = build_default_tls_config(Arc::new(roots), verifier);
    let mut transport = QuicTransportConfig::default();
    if let Some(w) = opts.receive_window {
        let w = quinn::VarInt::from_u32(w);
        transport.receive_window(w);
        transport.stream_receive_window(w);
    }
    if let Some(b) = opts.datagram_send_buffer {
        transport.datagram_send_buffer_size(b);
    }
    if opts.datagram_max_age.is_some() {
        // Audio that waits inside QUIC never reaches the age check of the reader: bound
        // what QUIC keeps (it drops the oldest), as a browser's small datagram queue does.
        // quinn's default (1.25 MB) held seconds of a big meeting's audio when this client
        // was short of CPU.
        transport.datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER));
    }
    if let Some(w) = opts.send_window {
        transport.send_window(w);
    }
    let config = ClientConfig::builder()
        .with_bind_default()
        .with_custom_tls_and_transport(tls, transport)
        .keep_alive_interval(opts.keep_alive)
        .max_idle_timeout(Some(opts.idle_timeout))
        .map_err(|e| ClientError::BadUrl {
            url: join.webtransport_url.clone(),
            reason: format!("idle timeout: {e}"),
        })?
        .build();
    let endpoint = Endpoint::client(config)?;
    let conn = endpoint.connect(join.webtransport_url_with_token()).await?;
    let _ = counters.quic.set(conn.quic_connection().clone());
    // Datagrams are read from QUIC by `SessionDatagrams`; wtransport's driver task would
    // otherwise be woken for every incoming one as well (our patch of wtransport,
    // third_party/README.md). Taken over first: audio may follow the welcome immediately.
    tokio::spawn(read_datagrams(
        SessionDatagrams::take_over(&conn),
        tx.clone(),
        counters.clone(),
        opts.datagram_max_age,
    ));
    tokio::spawn(accept_streams(conn.clone(), tx.clone(), counters.clone()));

    let (mut control, control_rx) = conn.open_bi().await?.await?;
    control.set_priority(CONTROL_PRIORITY);
    control.write_all(&encode_control(hello)?).await?;
    tokio::spawn(read_control(conn.clone(), control_rx, tx, counters));

    Ok(WtSender {
        _endpoint: endpoint,
        conn,
        control,
        groups: HashMap::new(),
        group_priority: 0,
    })
}

/// Dropping the sender closes the session: the reader tasks hold clones of the connection and
/// would otherwise keep it (and its keep-alives) going as long as the server stays quiet.
impl Drop for WtSender {
    fn drop(&mut self) {
        self.conn.close(VarInt::from_u32(0), b"closed");
    }
}

impl WtSender {
    pub(crate) async fn send_control(&mut self, msg: &ClientMessage) -> Result<()> {
        let bytes = encode_control(msg)?;
        self.control.write_all(&bytes).await?;
        Ok(())
    }

    pub(crate) async fn send_frame(&mut self, frame: &EncodedFrame) -> Result<()> {
        let h = frame.header();
        if !h.kind.is_video() {
            let fits = self
                .conn
                .max_datagram_size()
                .is_some_and(|max| frame.len() <= max);
            if fits {
                match self.conn.send_datagram(frame.as_bytes()) {
                    Ok(()) => return Ok(()),
                    Err(SendDatagramError::TooLarge) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return self.raw_uni_stream(frame.as_bytes()).await;
        }
        let track = (h.track_id, h.layer);
        if h.keyframe || !self.groups.contains_key(&track) {
            if let Some(mut old) = self.groups.remove(&track) {
                let _ = old.quic_stream_mut().finish();
            }
            let stream = self.conn.open_uni().await?.await?;
            self.group_priority = self.group_priority.wrapping_add(1) & 0x3fff_ffff;
            stream.set_priority(self.group_priority);
            self.groups.insert(track, stream);
        }
        let Some(stream) = self.groups.get_mut(&track) else {
            return Ok(());
        };
        match stream.write_all(frame.as_bytes()).await {
            Ok(()) => Ok(()),
            // The server stopped the group: it does not want the rest of it.
            Err(StreamWriteError::Stopped(_)) => {
                self.groups.remove(&track);
                Ok(())
            }
            Err(e) => {
                self.groups.remove(&track);
                Err(e.into())
            }
        }
    }

    pub(crate) fn finish_groups(&mut self) {
        for (_, mut s) in self.groups.drain() {
            let _ = s.quic_stream_mut().finish();
        }
    }

    pub(crate) fn connection(&self) -> Connection {
        self.conn.clone()
    }

    pub(crate) fn path_stats(&self) -> PathStats {
        let stats = self.conn.quic_connection().stats();
        let p = stats.path;
        PathStats {
            datagrams_sent: stats.frame_tx.datagram,
            rtt: p.rtt,
            min_rtt: p.min_rtt,
            cwnd: p.cwnd,
            congestion_events: p.congestion_events,
            lost_packets: p.lost_packets,
            sent_packets: p.sent_packets,
        }
    }

    pub(crate) fn max_datagram_size(&self) -> Option<usize> {
        self.conn.max_datagram_size()
    }

    pub(crate) async fn close(mut self) -> Result<()> {
        let res = self.send_control(&ClientMessage::Leave {}).await;
        self.finish_groups();
        let _ = self.control.quic_stream_mut().finish();
        // Give the leave a moment to be delivered before the close frame.
        let _ = tokio::time::timeout(Duration::from_millis(200), self.conn.closed()).await;
        self.conn.close(VarInt::from_u32(0), b"leave");
        res
    }

    pub(crate) fn abort(self) {
        self.conn.close(VarInt::from_u32(1), b"abort");
    }

    pub(crate) async fn raw_control_stream(&mut self, bytes: &[u8]) -> Result<()> {
        self.control.write_all(bytes).await?;
        Ok(())
    }

    pub(crate) fn raw_datagram(&self, bytes: &[u8]) -> Result<()> {
        self.conn.send_datagram(bytes)?;
        Ok(())
    }

    pub(crate) async fn raw_uni_stream(&self, bytes: &[u8]) -> Result<()> {
        let mut s = self.conn.open_uni().await?.await?;
        match s.write_all(bytes).await {
            Ok(()) | Err(StreamWriteError::Stopped(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let _ = s.quic_stream_mut().finish();
        Ok(())
    }
}

fn close_info(e: &ConnectionError) -> CloseInfo {
    match e {
        ConnectionError::ApplicationClosed(c) => CloseInfo {
            code: Some(c.code().into_inner()),
            reason: String::from_utf8_lossy(c.reason()).into_owned(),
        },
        other => CloseInfo {
            code: None,
            reason: other.to_string(),
        },
    }
}

fn datagram_event(payload: bytes::Bytes, counters: &Counters) -> Option<Event> {
    match EncodedFrame::decode(payload) {
        Ok(frame) => {
            Counters::add(&counters.datagrams, 1);
            Counters::add(&counters.media_bytes, frame.len() as u64);
            Some(media_event(frame, Via::Datagram))
        }
        Err(_) => {
            Counters::add(&counters.bad_media, 1);
            None
        }
    }
}

async fn read_datagrams(
    mut datagrams: SessionDatagrams,
    tx: EventTx,
    counters: Arc<Counters>,
    max_age: Option<Duration>,
) {
    let Some(max_age) = max_age else {
        // Every datagram is delivered: when the caller stops reading, QUIC's receive buffer
        // fills and drops them.
        while let Some(d) = datagrams.next().await {
            if let Some(ev) = datagram_event(d, &counters) {
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
        }
        return;
    };
    // Keep draining QUIC while the caller is slow, holding what it has not taken yet in a
    // queue bounded by age (and, as a backstop, by count), as browsers do.
    let mut pending: VecDeque<Event> = VecDeque::new();
    let fresh = |ev: &Event| match ev {
        Event::Media(m) => m.received_at.elapsed() <= max_age,
        _ => true,
    };
    // Each wake-up takes every datagram already read and hands over as many events as the
    // channel has room for: one datagram per turn of the `select!` cost this client more CPU
    // than the relay's client in the same meeting.
    let admit = |ev: Event, pending: &mut VecDeque<Event>| {
        if pending.len() >= MAX_PENDING_DATAGRAMS {
            if let Some(old) = pending.pop_front() {
                counters.expire(&old);
            }
        }
        pending.push_back(ev);
    };
    loop {
        tokio::select! {
            d = datagrams.next() => {
                let Some(d) = d else { return };
                if let Some(ev) = datagram_event(d, &counters) {
                    admit(ev, &mut pending);
                }
                // At most a queue's worth, so a flood cannot keep this turn from handing over.
                for _ in 0..MAX_PENDING_DATAGRAMS {
                    match datagrams.next().now_or_never() {
                        Some(Some(d)) => {
                            if let Some(ev) = datagram_event(d, &counters) {
                                admit(ev, &mut pending);
                            }
                        }
                        Some(None) => return,
                        None => break,
                    }
                }
            }
            permit = tx.reserve(), if !pending.is_empty() => {
                let Ok(mut permit) = permit else { return };
                // The first fresh event takes this permit, the next ones whatever room is left.
                while let Some(ev) = pending.pop_front() {
                    if !fresh(&ev) {
                        counters.expire(&ev);
                        continue;
                    }
                    permit.send(ev);
                    match tx.try_reserve() {
                        Ok(p) => permit = p,
                        Err(mpsc::error::TrySendError::Full(())) => break,
                        Err(mpsc::error::TrySendError::Closed(())) => return,
                    }
                }
            }
        }
    }
}

async fn accept_streams(conn: Connection, tx: EventTx, counters: Arc<Counters>) {
    while let Ok(stream) = conn.accept_uni().await {
        Counters::add(&counters.streams_accepted, 1);
        tokio::spawn(read_group(stream, tx.clone(), counters.clone()));
    }
}

/// Read one unidirectional stream of frames back to back. A reset ends the group quietly.
async fn read_group(mut stream: RecvStream, tx: EventTx, counters: Arc<Counters>) {
    let mut dec = StreamDecoder::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match stream.read(&mut buf).await {
            Ok(Some(n)) => dec.push(&buf[..n]),
            Ok(None) => break,
            Err(StreamReadError::Reset(_)) => {
                Counters::add(&counters.streams_reset, 1);
                return;
            }
            Err(_) => return,
        }
        loop {
            match dec.decode() {
                Ok(Decoded::Complete(frame)) => {
                    Counters::add(&counters.stream_frames, 1);
                    Counters::add(&counters.media_bytes, frame.len() as u64);
                    if tx.send(media_event(frame, Via::Stream)).await.is_err() {
                        return;
                    }
                }
                Ok(Decoded::NeedMore(_)) => break,
                Err(e) => {
                    Counters::add(&counters.bad_media, 1);
                    let _ = tx
                        .send(Event::ProtocolError {
                            code: e.code(),
                            detail: format!("media stream: {e}"),
                        })
                        .await;
                    stream.stop(VarInt::from_u32(0));
                    return;
                }
            }
        }
    }
    if !dec.is_clean_end() {
        Counters::add(&counters.bad_media, 1);
    }
}

async fn read_control(
    conn: Connection,
    mut stream: RecvStream,
    tx: EventTx,
    counters: Arc<Counters>,
) {
    let mut dec = ControlStreamDecoder::new();
    let mut buf = vec![0u8; READ_CHUNK];
    'read: loop {
        match stream.read(&mut buf).await {
            Ok(Some(n)) => dec.push(&buf[..n]),
            Ok(None) | Err(_) => break,
        }
        loop {
            let ev = match dec.decode_server() {
                Ok(Decoded::Complete(m)) => {
                    Counters::add(&counters.control, 1);
                    Event::Control(m)
                }
                Ok(Decoded::NeedMore(_)) => break,
                Err(e) => {
                    let poisoned = matches!(e, quicmeet_proto::ControlError::TooLarge { .. });
                    let ev = Event::ProtocolError {
                        code: e.code(),
                        detail: format!("control stream: {e}"),
                    };
                    if poisoned {
                        let _ = tx.send(ev).await;
                        break 'read;
                    }
                    ev
                }
            };
            if tx.send(ev).await.is_err() {
                return;
            }
        }
    }
    let info = match tokio::time::timeout(CLOSE_GRACE, conn.closed()).await {
        Ok(e) => close_info(&e),
        Err(_) => CloseInfo {
            code: None,
            reason: "control stream ended".into(),
        },
    };
    let _ = tx.send(Event::Closed(info)).await;
}
