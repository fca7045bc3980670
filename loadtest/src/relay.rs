//! The cost floor: a minimal QUIC relay (plain quinn, no SFU logic) and the load tester's
//! client side of it.
//!
//! The relay knows nothing about tracks, layers, keyframes, queues or rate limits. A client
//! opens one bidirectional stream and writes 5 bytes (`u32` room, `u8` flags, bit 0 = "send me
//! media"), waits for the relay's 1-byte acknowledgement, then sends media exactly as on a QuicMeet WebTransport session: audio frames in
//! datagrams, video frames back to back on one unidirectional stream per group of pictures.
//! The relay copies every datagram to every other media-receiving connection of the room and
//! mirrors every unidirectional stream onto a new stream to each of them, chunk by chunk. That
//! is the least any forwarding server must do, so its CPU per forwarded frame is the floor
//! QuicMeet is compared with.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use parking_lot::Mutex;
use quicmeet_client::{now_us, CloseInfo, Event, MediaEvent, Via};
use quicmeet_proto::{Decoded, EncodedFrame, StreamDecoder};
use tokio::sync::mpsc;
use wtransport::quinn;
use wtransport::tls::client::ServerHashVerification;
use wtransport::tls::rustls;
use wtransport::tls::Sha256Digest;

/// ALPN of the relay protocol.
pub const ALPN: &[u8] = b"qm-relay/1";

fn transport_config() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(4096))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(16))
        .keep_alive_interval(Some(Duration::from_secs(2)))
        .max_idle_timeout(Some(quinn::VarInt::from_u32(10_000).into()))
        .datagram_receive_buffer_size(Some(1 << 20))
        .datagram_send_buffer_size(1 << 20);
    t
}

struct Member {
    id: u64,
    conn: quinn::Connection,
    wants_media: bool,
}

type Rooms = Arc<Mutex<HashMap<u32, Vec<Member>>>>;

fn targets(rooms: &Rooms, room: u32, me: u64) -> Vec<quinn::Connection> {
    rooms
        .lock()
        .get(&room)
        .map(|v| {
            v.iter()
                .filter(|m| m.id != me && m.wants_media)
                .map(|m| m.conn.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Run the relay on `addr` for at most `max_secs`; prints `RELAY_READY quic=ADDR hash=HEX`.
pub async fn run_relay(addr: SocketAddr, max_secs: u64) -> Result<()> {
    let identity = wtransport::Identity::self_signed(["localhost", "127.0.0.1"])
        .map_err(|e| anyhow!("self-signed certificate: {e}"))?;
    let hash = identity.certificate_chain().as_slice()[0].hash();
    let mut tls = wtransport::tls::server::build_default_tls_config(identity);
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| anyhow!("QUIC TLS config: {e}"))?;
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    sc.transport_config(Arc::new(transport_config()));
    let ep = quinn::Endpoint::server(sc, addr).context("binding the relay")?;
    println!(
        "RELAY_READY quic={} hash={}",
        ep.local_addr()?,
        hash.fmt(wtransport::tls::Sha256DigestFmt::DottedHex)
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let rooms: Rooms = Arc::default();
    let next_id = Arc::new(AtomicU64::new(1));
    let accept = async {
        while let Some(inc) = ep.accept().await {
            let rooms = rooms.clone();
            let id = next_id.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                if let Ok(conn) = inc.await {
                    let _ = serve(conn, id, rooms).await;
                }
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = tokio::time::sleep(Duration::from_secs(max_secs)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    ep.close(quinn::VarInt::from_u32(0), b"bye");
    Ok(())
}

async fn serve(conn: quinn::Connection, id: u64, rooms: Rooms) -> Result<()> {
    let (mut send, mut recv) = conn.accept_bi().await?;
    let mut hello = [0u8; 5];
    recv.read_exact(&mut hello).await?;
    let room = u32::from_be_bytes([hello[0], hello[1], hello[2], hello[3]]);
    rooms.lock().entry(room).or_default().push(Member {
        id,
        conn: conn.clone(),
        wants_media: hello[4] & 1 == 1,
    });
    // Acknowledge: from now on this connection receives the room's media.
    send.write_all(&[1]).await?;
    let dgrams = {
        let conn = conn.clone();
        let rooms = rooms.clone();
        async move {
            while let Ok(d) = conn.read_datagram().await {
                for t in targets(&rooms, room, id) {
                    let _ = t.send_datagram(d.clone());
                }
            }
        }
    };
    let streams = {
        let conn = conn.clone();
        let rooms = rooms.clone();
        async move {
            while let Ok(s) = conn.accept_uni().await {
                let outs = targets(&rooms, room, id);
                tokio::spawn(mirror(s, outs));
            }
        }
    };
    tokio::join!(dgrams, streams);
    if let Some(v) = rooms.lock().get_mut(&room) {
        v.retain(|m| m.id != id);
    }
    Ok(())
}

/// Copy one incoming unidirectional stream onto a new stream to each target.
async fn mirror(mut s: quinn::RecvStream, targets: Vec<quinn::Connection>) {
    let mut outs = Vec::with_capacity(targets.len());
    for t in &targets {
        if let Ok(o) = t.open_uni().await {
            outs.push(o);
        }
    }
    loop {
        match s.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => {
                for o in outs.iter_mut() {
                    let _ = o.write_chunk(chunk.bytes.clone()).await;
                }
            }
            Ok(None) => {
                for o in outs.iter_mut() {
                    let _ = o.finish();
                }
                return;
            }
            Err(_) => {
                for o in outs.iter_mut() {
                    let _ = o.reset(quinn::VarInt::from_u32(0));
                }
                return;
            }
        }
    }
}

/// The tester's connection to the relay: sending half.
pub struct RelaySender {
    _ep: quinn::Endpoint,
    conn: quinn::Connection,
    _control: quinn::SendStream,
    groups: HashMap<u32, quinn::SendStream>,
    priority: i32,
}

/// Parse `RELAY_READY`'s `hash=` (64 hex digits).
pub fn parse_hash(hex_str: &str) -> Result<[u8; 32]> {
    quicmeet_client::parse_sha256_hex(hex_str).map_err(|e| anyhow!("{e}"))
}

/// Connect to the relay, join `room`; media events arrive on the returned channel.
pub async fn connect(
    addr: SocketAddr,
    cert_hash: [u8; 32],
    room: u32,
    wants_media: bool,
) -> Result<(RelaySender, mpsc::Receiver<Event>)> {
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = Arc::new(
        ServerHashVerification::new(std::iter::once(Sha256Digest::new(cert_hash))),
    );
    let mut tls = wtransport::tls::client::build_default_tls_config(
        Arc::new(rustls::RootCertStore::empty()),
        Some(verifier),
    );
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| anyhow!("QUIC TLS config: {e}"))?;
    let mut cc = quinn::ClientConfig::new(Arc::new(crypto));
    cc.transport_config(Arc::new(transport_config()));
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    ep.set_default_client_config(cc);
    let conn = ep.connect(addr, "localhost")?.await?;
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(read_datagrams(conn.clone(), tx.clone()));
    tokio::spawn(accept_streams(conn.clone(), tx));
    let (mut control, mut ack) = conn.open_bi().await?;
    control.write_all(&hello_bytes(room, wants_media)).await?;
    let mut b = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(10), ack.read_exact(&mut b))
        .await
        .context("relay did not acknowledge the hello")??;
    Ok((
        RelaySender {
            _ep: ep,
            conn,
            _control: control,
            groups: HashMap::new(),
            priority: 0,
        },
        rx,
    ))
}

impl RelaySender {
    /// Send one frame: audio in a datagram, video on the track's group stream.
    pub async fn send_frame(&mut self, frame: &EncodedFrame) -> Result<()> {
        let h = frame.header();
        if !h.kind.is_video() {
            self.conn
                .send_datagram(frame.as_bytes().clone())
                .map_err(|e| anyhow!("datagram: {e}"))?;
            return Ok(());
        }
        let track = h.track_id;
        if h.keyframe || !self.groups.contains_key(&track) {
            if let Some(mut old) = self.groups.remove(&track) {
                let _ = old.finish();
            }
            let s = self.conn.open_uni().await?;
            self.priority = self.priority.wrapping_add(1) & 0x3fff_ffff;
            let _ = s.set_priority(self.priority);
            self.groups.insert(track, s);
        }
        if let Some(s) = self.groups.get_mut(&track) {
            if s.write_all(frame.as_bytes()).await.is_err() {
                self.groups.remove(&track);
            }
        }
        Ok(())
    }

    /// Close the connection.
    pub fn close(mut self) {
        for (_, mut s) in self.groups.drain() {
            let _ = s.finish();
        }
        self.conn.close(quinn::VarInt::from_u32(0), b"leave");
    }
}

fn media(frame: EncodedFrame, via: Via) -> Event {
    Event::Media(MediaEvent {
        frame,
        via,
        received_at: std::time::Instant::now(),
        received_unix_us: now_us(),
    })
}

async fn read_datagrams(conn: quinn::Connection, tx: mpsc::Sender<Event>) {
    loop {
        match conn.read_datagram().await {
            Ok(d) => {
                if let Ok(f) = EncodedFrame::decode(d) {
                    if tx.send(media(f, Via::Datagram)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = tx
                    .send(Event::Closed(CloseInfo {
                        code: None,
                        reason: e.to_string(),
                    }))
                    .await;
                return;
            }
        }
    }
}

async fn accept_streams(conn: quinn::Connection, tx: mpsc::Sender<Event>) {
    while let Ok(s) = conn.accept_uni().await {
        tokio::spawn(read_group(s, tx.clone()));
    }
}

async fn read_group(mut s: quinn::RecvStream, tx: mpsc::Sender<Event>) {
    let mut dec = StreamDecoder::new();
    loop {
        match s.read_chunk(64 * 1024, true).await {
            Ok(Some(c)) => dec.push(&c.bytes),
            _ => return,
        }
        while let Ok(Decoded::Complete(f)) = dec.decode() {
            if tx.send(media(f, Via::Stream)).await.is_err() {
                return;
            }
        }
    }
}

/// Bytes of a relay hello: `u32` room, `u8` flags (bit 0: send me media).
pub fn hello_bytes(room: u32, wants_media: bool) -> Bytes {
    let mut v = room.to_be_bytes().to_vec();
    v.push(u8::from(wants_media));
    Bytes::from(v)
}
