//! The TCP shim: a local proxy between one participant's WebSocket and the server's HTTP port
//! that paces each direction through the participant's link model.
//!
//! TCP is a byte stream, so nothing can be dropped: the shim cuts what it reads into
//! segments of one MSS, asks the model when each leaves ([`Link::offer_reliable`]: a segment
//! the wire loses costs a retransmission and holds up the ones behind it), and writes each on
//! time. It stops reading while the model's queue is over its bound, so the sender's socket
//! fills and TCP's flow control pushes back on it, as a real bottleneck would make it do.
//! The shim's own sockets have small receive buffers so that push-back is felt within a
//! fraction of a second instead of after megabytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::link::{Link, LinkSpec};
use super::udp::ShimStats;
use super::AbortOnDrop;

/// Payload of one segment on an internet path (MTU 1500).
pub const MSS: usize = 1448;
/// IPv4 and TCP headers (with timestamps) per segment, counted against the rate cap.
pub const TCP_OVERHEAD: usize = 52;
/// Receive buffer of the shim's sockets: bounds what the peer can have in flight into the
/// shim beyond the modelled queue (Linux doubles it). On a real path those bytes would sit in
/// the bottleneck's queue, which the model already bounds, so this is kept near the kernel's
/// minimum: at 700 kbit/s even 32 KiB would add 370 ms that no real link has.
const SOCKET_BUFFER: u32 = 4 * 1024;
/// Segments in flight per direction.
const MAX_SEGMENTS: usize = 4096;
/// Connections kept per shim (a participant has one; reconnects add more).
const MAX_CONNECTIONS: usize = 8;

struct Links {
    up: Mutex<Link>,
    down: Mutex<Link>,
}

/// A running TCP shim. Dropping it closes its connections.
pub struct TcpShim {
    addr: SocketAddr,
    links: Arc<Links>,
    _accept: AbortOnDrop,
}

impl std::fmt::Debug for TcpShim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpShim").field("addr", &self.addr).finish()
    }
}

impl TcpShim {
    /// Start a shim in front of `server` on loopback. `seed` fixes the links' random draws.
    pub async fn start(
        server: SocketAddr,
        up: LinkSpec,
        down: LinkSpec,
        seed: u64,
    ) -> std::io::Result<TcpShim> {
        let (sock, bind) = if server.is_ipv4() {
            (TcpSocket::new_v4()?, "127.0.0.1:0")
        } else {
            (TcpSocket::new_v6()?, "[::1]:0")
        };
        sock.set_recv_buffer_size(SOCKET_BUFFER)?;
        sock.bind(bind.parse().expect("literal"))?;
        let listener = sock.listen(64)?;
        let addr = listener.local_addr()?;
        let links = Arc::new(Links {
            up: Mutex::new(Link::new(up, seed)),
            down: Mutex::new(Link::new(down, seed ^ 0x5EED_D0A1)),
        });
        let accept = AbortOnDrop(tokio::spawn(accept(listener, server, links.clone())));
        Ok(TcpShim {
            addr,
            links,
            _accept: accept,
        })
    }

    /// Where the participant connects instead of the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counters so far (`lost` counts retransmitted segments).
    pub fn stats(&self) -> ShimStats {
        ShimStats {
            up: self.links.up.lock().stats(),
            down: self.links.down.lock().stats(),
            overflow: 0,
        }
    }
}

async fn accept(listener: TcpListener, server: SocketAddr, links: Arc<Links>) {
    // Dropped with this task, which closes every connection of the shim.
    let mut conns: Vec<[AbortOnDrop; 4]> = vec![];
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(upstream) = connect(server).await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let (cr, cw) = client.into_split();
        let (sr, sw) = upstream.into_split();
        let (up_tx, up_rx) = mpsc::channel(MAX_SEGMENTS);
        let (down_tx, down_rx) = mpsc::channel(MAX_SEGMENTS);
        let l = links.clone();
        let up_read = AbortOnDrop(tokio::spawn(async move { read(cr, &l.up, up_tx).await }));
        let l = links.clone();
        let down_read = AbortOnDrop(tokio::spawn(
            async move { read(sr, &l.down, down_tx).await },
        ));
        conns.retain(|c| !c.iter().all(|t| t.0.is_finished()));
        if conns.len() >= MAX_CONNECTIONS {
            conns.remove(0);
        }
        conns.push([
            up_read,
            AbortOnDrop(tokio::spawn(write(sw, up_rx))),
            down_read,
            AbortOnDrop(tokio::spawn(write(cw, down_rx))),
        ]);
    }
}

async fn connect(server: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = if server.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_recv_buffer_size(SOCKET_BUFFER)?;
    let s = sock.connect(server).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Read one direction into segments, each stamped with its departure from the link. Ends
/// (dropping `tx`, which ends the writer) at EOF or on an error.
async fn read(mut src: OwnedReadHalf, link: &Mutex<Link>, tx: mpsc::Sender<(Instant, Vec<u8>)>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Read no more than the queue has room for.
        let room = {
            let l = link.lock();
            let now = Instant::now();
            match l.spec().rate_bps {
                Some(rate) => {
                    let backlog = l.backlog(now);
                    let bound = l.spec().queue;
                    if backlog > bound {
                        Err(backlog - bound)
                    } else {
                        let secs = (bound - backlog).as_secs_f64();
                        Ok(((secs * rate as f64 / 8.0) as usize).clamp(MSS, buf.len()))
                    }
                }
                None => Ok(buf.len()),
            }
        };
        let room = match room {
            Ok(r) => r,
            Err(wait) => {
                tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                continue;
            }
        };
        let n = match src.read(&mut buf[..room]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for seg in buf[..n].chunks(MSS) {
            let at = link
                .lock()
                .offer_reliable(Instant::now(), seg.len() + TCP_OVERHEAD);
            if tx.send((at, seg.to_vec())).await.is_err() {
                return;
            }
        }
    }
}

/// Write segments at their departure times, coalescing those already due.
async fn write(mut dst: OwnedWriteHalf, mut rx: mpsc::Receiver<(Instant, Vec<u8>)>) {
    let mut out = Vec::with_capacity(64 * 1024);
    while let Some((at, seg)) = rx.recv().await {
        tokio::time::sleep_until(at.into()).await;
        out.clear();
        out.extend_from_slice(&seg);
        while out.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok((at, seg)) if at <= Instant::now() => out.extend_from_slice(&seg),
                Ok((at, seg)) => {
                    if dst.write_all(&out).await.is_err() {
                        return;
                    }
                    out.clear();
                    tokio::time::sleep_until(at.into()).await;
                    out.extend_from_slice(&seg);
                }
                Err(_) => break,
            }
        }
        if dst.write_all(&out).await.is_err() {
            return;
        }
    }
    let _ = dst.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.into_split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_byte_stream_crosses_intact_at_the_capped_rate_despite_loss() {
        let server = echo().await;
        // 4 Mbit/s each way (500 kB/s) with 5 % of segments retransmitted.
        let link = LinkSpec {
            rate_bps: Some(4_000_000),
            queue: Duration::from_millis(100),
            delay: Duration::from_millis(5),
            loss: 0.05,
            ..LinkSpec::default()
        };
        let shim = TcpShim::start(server, link.clone(), link, 3).await.unwrap();
        let data: Vec<u8> = (0..150_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let s = TcpStream::connect(shim.addr()).await.unwrap();
        let (mut r, mut w) = s.into_split();
        let t0 = Instant::now();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut back = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut back))
            .await
            .expect("echo within 10 s")
            .unwrap();
        writer.await.unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data, "bytes arrive intact and in order");
        // 150 kB at 500 kB/s cannot take less than 0.3 s.
        assert!(
            t0.elapsed() >= Duration::from_millis(290),
            "{:?}",
            t0.elapsed()
        );
        let st = shim.stats();
        assert!(st.up.lost > 0 && st.down.lost > 0, "{st:?}");
        assert_eq!(st.up.queue_drops, 0);
    }
}
