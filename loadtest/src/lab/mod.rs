//! The impairment lab: every simulated participant can sit behind its own access link, with an
//! uplink and a downlink that each have a rate cap with a bounded queue, one-way delay and
//! jitter, random loss and bursty loss. It runs in userspace and needs no root.
//!
//! - [`link`] is the model of one direction, sans-IO and deterministic (simulated time, seeded
//!   random draws), so its behaviour is unit-tested exactly;
//! - [`udp`] puts a participant's WebTransport (QUIC) traffic through the model: a UDP proxy
//!   per participant, one upstream socket per client 4-tuple;
//! - [`tcp`] does the same for its WebSocket: a TCP proxy that paces rate and delay (TCP
//!   recovers loss itself; a lost segment costs a retransmission and head-of-line blocking);
//! - [`profile`] names the networks (`4g`, `wifi-bad`, `lossy2`, …) and parses explicit specs.
//!
//! A participant's shims are started on its first connection, from the addresses in its join
//! answer, and live as long as the participant, so its link state carries over reconnects.
//!
//! What this module must never do: proxy to anything but the server the participant was sent
//! to, bind anything but loopback, or queue without a bound.

pub mod link;
pub mod profile;
pub mod report;
pub mod tcp;
pub mod udp;

use std::net::SocketAddr;

use tokio::task::JoinHandle;

pub use link::{Burst, Fate, Link, LinkSpec, LinkStats};
pub use profile::{Impairment, SpecError, PROFILES};
pub use tcp::TcpShim;
pub use udp::{ShimStats, UdpShim};

/// A task that is aborted when this handle is dropped.
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Which participants are impaired and how.
#[derive(Debug, Clone)]
pub struct Lab {
    /// The link.
    pub impairment: Impairment,
    /// Only the first N participants of each room (`None`: all of them).
    pub first: Option<usize>,
}

impl Lab {
    /// Whether the participant with this index within its room sits behind the link.
    pub fn applies(&self, k_in_room: usize) -> bool {
        self.first.is_none_or(|n| k_in_room < n)
    }
}

/// The `host:port` part of `scheme://host:port/path` and where it sits in the string.
fn authority(url: &str) -> Option<(std::ops::Range<usize>, String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let start = scheme.len() + 3;
    let len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..len];
    let default_port = match scheme {
        "https" | "wss" => 443,
        "http" | "ws" => 80,
        _ => return None,
    };
    let (host, port) = if let Some(v6) = auth.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (auth, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some((start..start + len, host.to_owned(), port))
}

/// Resolve a URL's authority to a loopback socket address; also where the authority sits.
async fn resolve(url: &str) -> std::io::Result<(SocketAddr, std::ops::Range<usize>)> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad URL {url}"));
    let (range, host, port) = authority(url).ok_or_else(bad)?;
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .next()
        .ok_or_else(bad)?;
    if !addr.ip().is_loopback() {
        // The lab only ever stands between a participant and a server on this machine.
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("the impairment lab needs a loopback server, not {addr}"),
        ));
    }
    Ok((addr, range))
}

/// `url` with its authority replaced by `to`.
fn rewrite(url: &str, range: std::ops::Range<usize>, to: SocketAddr) -> String {
    let mut s = url.to_owned();
    s.replace_range(range, &to.to_string());
    s
}

/// One participant's shims, started on demand.
#[derive(Debug)]
pub struct Shims {
    impairment: Impairment,
    seed: u64,
    udp: Option<(SocketAddr, UdpShim)>,
    tcp: Option<(SocketAddr, TcpShim)>,
}

impl Shims {
    /// Shims for one participant; `seed` fixes its links' random draws.
    pub fn new(impairment: Impairment, seed: u64) -> Self {
        Shims {
            impairment,
            seed,
            udp: None,
            tcp: None,
        }
    }

    /// The link.
    pub fn impairment(&self) -> &Impairment {
        &self.impairment
    }

    /// The address to use instead of the UDP server `server` (a shim in front of it).
    pub async fn udp(&mut self, server: SocketAddr) -> std::io::Result<SocketAddr> {
        if let Some((s, shim)) = &self.udp {
            if *s == server {
                return Ok(shim.addr());
            }
        }
        let i = &self.impairment;
        let shim = UdpShim::start(server, i.up.clone(), i.down.clone(), self.seed).await?;
        let addr = shim.addr();
        self.udp = Some((server, shim));
        Ok(addr)
    }

    /// The address to use instead of the TCP server `server`.
    pub async fn tcp(&mut self, server: SocketAddr) -> std::io::Result<SocketAddr> {
        if let Some((s, shim)) = &self.tcp {
            if *s == server {
                return Ok(shim.addr());
            }
        }
        let i = &self.impairment;
        let shim = TcpShim::start(server, i.up.clone(), i.down.clone(), self.seed ^ 1).await?;
        let addr = shim.addr();
        self.tcp = Some((server, shim));
        Ok(addr)
    }

    /// Send a join answer's WebTransport and WebSocket connections through the shims.
    pub async fn route(&mut self, join: &mut quicmeet_client::JoinInfo) -> std::io::Result<()> {
        let (server, at) = resolve(&join.webtransport_url).await?;
        join.webtransport_url = rewrite(&join.webtransport_url, at, self.udp(server).await?);
        let (server, at) = resolve(&join.websocket_url).await?;
        join.websocket_url = rewrite(&join.websocket_url, at, self.tcp(server).await?);
        Ok(())
    }

    /// What the shims counted so far (both transports summed).
    pub fn stats(&self) -> ShimStats {
        let mut s = ShimStats::default();
        let parts = [
            self.udp.as_ref().map(|u| u.1.stats()),
            self.tcp.as_ref().map(|t| t.1.stats()),
        ];
        for p in parts.into_iter().flatten() {
            s.up = s.up.add(&p.up);
            s.down = s.down.add(&p.down);
            s.overflow += p.overflow;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_and_rewrites() {
        let url = "https://127.0.0.1:4433/wt?x=1";
        let (r, h, p) = authority(url).unwrap();
        assert_eq!((h.as_str(), p), ("127.0.0.1", 4433));
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(rewrite(url, r, to), "https://127.0.0.1:9/wt?x=1");
        assert_eq!(authority("ws://[::1]:80/ws").unwrap().1, "::1");
        assert_eq!(authority("wss://localhost/ws").unwrap().2, 443);
        assert!(authority("ftp://h/x").is_none());
    }

    #[tokio::test]
    async fn only_loopback_servers_are_shimmed() {
        assert!(resolve("https://127.0.0.1:4433/wt").await.is_ok());
        let e = resolve("https://192.0.2.1:4433/wt").await.err().unwrap();
        assert!(e.to_string().contains("loopback"), "{e}");
    }

    #[test]
    fn the_first_n_of_each_room() {
        let lab = Lab {
            impairment: "lossy2".parse().unwrap(),
            first: Some(1),
        };
        assert!(lab.applies(0) && !lab.applies(1));
        let all = Lab { first: None, ..lab };
        assert!(all.applies(7));
    }
}
