//! The UDP shim: a local proxy between one participant's QUIC socket and the server's UDP port
//! that carries every datagram through the participant's uplink or downlink model.
//!
//! The participant connects to the shim's address instead of the server's. The shim keeps one
//! upstream socket per client 4-tuple, like a NAT: the server sees one stable address per QUIC
//! connection, and a client that rebinds (a reconnect opens a new endpoint) gets a new flow
//! rather than being mixed into the old one. Flows are bounded; the oldest is dropped first.
//!
//! Each direction has one reader that asks the link model what becomes of the datagram and one
//! sender that sleeps until the model's departure time. Departures of one link never go
//! backwards in time (the model keeps order), so a FIFO between them is enough.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::link::{Fate, Link, LinkSpec, LinkStats};
use super::AbortOnDrop;

/// IPv4 and UDP headers, counted against the rate cap.
pub const UDP_OVERHEAD: usize = 28;
/// Client 4-tuples kept per shim.
const MAX_FLOWS: usize = 8;
/// Datagrams in flight per direction (a bound on memory; the link's queue bound is the
/// real limit, this one only matters for uncapped links with long delays).
const MAX_IN_FLIGHT: usize = 16_384;
/// Largest UDP payload read.
const MAX_DATAGRAM: usize = 65_535;

/// A datagram on its way through a link.
struct Pkt<T> {
    at: Instant,
    bytes: Vec<u8>,
    to: T,
}

/// Counters of one shim.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShimStats {
    /// Participant → server.
    pub up: LinkStats,
    /// Server → participant.
    pub down: LinkStats,
    /// Datagrams dropped because too many were in flight (not the link's doing).
    pub overflow: u64,
}

struct Shared {
    up: Mutex<Link>,
    down: Mutex<Link>,
    overflow: std::sync::atomic::AtomicU64,
}

/// A running UDP shim. Dropping it stops its tasks.
pub struct UdpShim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _tasks: Vec<AbortOnDrop>,
}

impl std::fmt::Debug for UdpShim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpShim").field("addr", &self.addr).finish()
    }
}

impl UdpShim {
    /// Start a shim in front of `server` on loopback. `seed` fixes the links' random draws.
    pub async fn start(
        server: SocketAddr,
        up: LinkSpec,
        down: LinkSpec,
        seed: u64,
    ) -> std::io::Result<UdpShim> {
        let bind: SocketAddr = if server.is_ipv4() {
            "127.0.0.1:0".parse().expect("literal")
        } else {
            "[::1]:0".parse().expect("literal")
        };
        let front = Arc::new(UdpSocket::bind(bind).await?);
        let addr = front.local_addr()?;
        let shared = Arc::new(Shared {
            up: Mutex::new(Link::new(up, seed)),
            down: Mutex::new(Link::new(down, seed ^ 0x5EED_D0A1)),
            overflow: Default::default(),
        });
        let (up_tx, up_rx) = mpsc::channel::<Pkt<Arc<UdpSocket>>>(MAX_IN_FLIGHT);
        let (down_tx, down_rx) = mpsc::channel::<Pkt<SocketAddr>>(MAX_IN_FLIGHT);
        let tasks = vec![
            AbortOnDrop(tokio::spawn(send_up(up_rx))),
            AbortOnDrop(tokio::spawn(send_down(front.clone(), down_rx))),
            AbortOnDrop(tokio::spawn(read_front(
                front,
                server,
                bind,
                shared.clone(),
                up_tx,
                down_tx,
            ))),
        ];
        Ok(UdpShim {
            addr,
            shared,
            _tasks: tasks,
        })
    }

    /// Where the participant sends instead of the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counters so far.
    pub fn stats(&self) -> ShimStats {
        ShimStats {
            up: self.shared.up.lock().stats(),
            down: self.shared.down.lock().stats(),
            overflow: self
                .shared
                .overflow
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

fn offer<T>(link: &Mutex<Link>, shared: &Shared, tx: &mpsc::Sender<Pkt<T>>, bytes: &[u8], to: T) {
    let now = Instant::now();
    // The send happens under the link's lock so that departures enter the FIFO in order.
    let mut l = link.lock();
    if let Fate::Deliver(at) = l.offer(now, bytes.len() + UDP_OVERHEAD) {
        let pkt = Pkt {
            at,
            bytes: bytes.to_vec(),
            to,
        };
        if tx.try_send(pkt).is_err() {
            shared
                .overflow
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

async fn read_front(
    front: Arc<UdpSocket>,
    server: SocketAddr,
    bind: SocketAddr,
    shared: Arc<Shared>,
    up_tx: mpsc::Sender<Pkt<Arc<UdpSocket>>>,
    down_tx: mpsc::Sender<Pkt<SocketAddr>>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // Dropped with this task (when the shim is dropped), which stops the flows' readers.
    let mut flows: VecDeque<(SocketAddr, Arc<UdpSocket>, AbortOnDrop)> = VecDeque::new();
    loop {
        let Ok((n, from)) = front.recv_from(&mut buf).await else {
            // ICMP errors surface here on some systems; the socket stays usable.
            tokio::task::yield_now().await;
            continue;
        };
        let sock = match flows.iter().find(|f| f.0 == from) {
            Some(f) => f.1.clone(),
            None => {
                let Ok(sock) = UdpSocket::bind(bind).await else {
                    continue;
                };
                if sock.connect(server).await.is_err() {
                    continue;
                }
                let sock = Arc::new(sock);
                let reader = AbortOnDrop(tokio::spawn(read_upstream(
                    sock.clone(),
                    from,
                    shared.clone(),
                    down_tx.clone(),
                )));
                if flows.len() >= MAX_FLOWS {
                    flows.pop_front();
                }
                flows.push_back((from, sock.clone(), reader));
                sock
            }
        };
        offer(&shared.up, &shared, &up_tx, &buf[..n], sock);
    }
}

async fn read_upstream(
    sock: Arc<UdpSocket>,
    client: SocketAddr,
    shared: Arc<Shared>,
    down_tx: mpsc::Sender<Pkt<SocketAddr>>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match sock.recv(&mut buf).await {
            Ok(n) => offer(&shared.down, &shared, &down_tx, &buf[..n], client),
            Err(_) => tokio::task::yield_now().await,
        }
    }
}

async fn send_up(mut rx: mpsc::Receiver<Pkt<Arc<UdpSocket>>>) {
    while let Some(p) = rx.recv().await {
        tokio::time::sleep_until(p.at.into()).await;
        let _ = p.to.send(&p.bytes).await;
    }
}

async fn send_down(front: Arc<UdpSocket>, mut rx: mpsc::Receiver<Pkt<SocketAddr>>) {
    while let Some(p) = rx.recv().await {
        tokio::time::sleep_until(p.at.into()).await;
        let _ = front.send_to(&p.bytes, p.to).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A UDP echo server on loopback.
    async fn echo() -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                let _ = s.send_to(&buf[..n], from).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn datagrams_cross_the_shim_with_its_delay_and_losses() {
        let server = echo().await;
        let up = LinkSpec {
            delay: Duration::from_millis(20),
            loss: 0.2,
            ..LinkSpec::default()
        };
        let down = LinkSpec {
            delay: Duration::from_millis(10),
            ..LinkSpec::default()
        };
        let shim = UdpShim::start(server, up, down, 42).await.unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let t0 = Instant::now();
        for i in 0..100u8 {
            a.send_to(&[b'a', i], shim.addr()).await.unwrap();
            b.send_to(&[b'b', i], shim.addr()).await.unwrap();
        }
        // Each client gets back only its own datagrams: one upstream flow per 4-tuple.
        let mut got = [0u64; 2];
        for (k, sock) in [&a, &b].into_iter().enumerate() {
            let mut buf = [0u8; 16];
            while let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(300), sock.recv(&mut buf)).await
            {
                assert_eq!(n, 2);
                assert_eq!(buf[0], [b'a', b'b'][k]);
                got[k] += 1;
            }
        }
        // Nothing comes back sooner than the two delays.
        assert!(t0.elapsed() >= Duration::from_millis(30));
        let st = shim.stats();
        assert_eq!(st.up.packets, 200);
        assert_eq!(got[0] + got[1], 200 - st.up.lost, "{st:?} {got:?}");
        assert!(st.up.lost > 15 && st.up.lost < 70, "20 % of 200: {st:?}");
        assert_eq!(st.down.packets, 200 - st.up.lost);
        assert_eq!((st.down.lost, st.overflow), (0, 0));
    }

    #[tokio::test]
    async fn a_rate_cap_drops_what_overflows_its_queue() {
        let server = echo().await;
        // 200 kbit/s with a 50 ms queue holds about 1250 bytes: a burst of 20 datagrams of
        // 500 bytes mostly overflows it.
        let up = LinkSpec {
            rate_bps: Some(200_000),
            queue: Duration::from_millis(50),
            ..LinkSpec::default()
        };
        let shim = UdpShim::start(server, up, LinkSpec::default(), 1)
            .await
            .unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..20 {
            c.send_to(&[0u8; 500], shim.addr()).await.unwrap();
        }
        let mut back = 0;
        let mut buf = [0u8; 600];
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(300), c.recv(&mut buf)).await
        {
            back += 1;
        }
        let st = shim.stats();
        assert!(st.up.queue_drops >= 10, "{st:?}");
        assert_eq!(back, 20 - st.up.queue_drops);
    }
}
