//! What the kernel knows about a WebSocket subscriber's TCP connection (`TCP_INFO`), for the
//! bandwidth estimate: round trip, congestion window, retransmissions and the kernel's own
//! delivery-rate estimate.
//!
//! The socket is named by its raw descriptor, captured when the connection was accepted
//! ([`TcpSocket`]). That descriptor stays open for as long as the HTTP connection (and so the
//! upgraded WebSocket that runs on it) is alive; it is only read while the WebSocket task
//! runs.

use std::os::fd::RawFd;
use std::time::Duration;

use quicmeet_sfu::bwe::TransportStats;

/// The accepted TCP socket under an HTTP request, put in the request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct TcpSocket(pub RawFd);

/// `struct tcp_info` of `linux/tcp.h`, up to `tcpi_delivery_rate` (Linux 4.9). Older
/// kernels fill less; what they leave out stays zero and is treated as unknown.
#[repr(C)]
#[derive(Default)]
struct RawTcpInfo {
    state: u8,
    ca_state: u8,
    retransmits: u8,
    probes: u8,
    backoff: u8,
    options: u8,
    wscale: u8,
    /// Bit 0: `tcpi_delivery_rate_app_limited`.
    delivery_flags: u8,
    rto: u32,
    ato: u32,
    snd_mss: u32,
    rcv_mss: u32,
    unacked: u32,
    sacked: u32,
    lost: u32,
    retrans: u32,
    fackets: u32,
    last_data_sent: u32,
    last_ack_sent: u32,
    last_data_recv: u32,
    last_ack_recv: u32,
    pmtu: u32,
    rcv_ssthresh: u32,
    rtt_us: u32,
    rttvar: u32,
    snd_ssthresh: u32,
    snd_cwnd: u32,
    advmss: u32,
    reordering: u32,
    rcv_rtt: u32,
    rcv_space: u32,
    total_retrans: u32,
    pacing_rate: u64,
    max_pacing_rate: u64,
    bytes_acked: u64,
    bytes_received: u64,
    segs_out: u32,
    segs_in: u32,
    notsent_bytes: u32,
    min_rtt: u32,
    data_segs_in: u32,
    data_segs_out: u32,
    /// Bytes per second.
    delivery_rate: u64,
}

impl TcpSocket {
    /// The kernel's view of this socket's send path; `None` if it cannot be read.
    // The one getsockopt the safe socket crates do not wrap.
    #[allow(unsafe_code)]
    pub fn stats(self) -> Option<TransportStats> {
        let mut info = RawTcpInfo::default();
        let mut len = std::mem::size_of::<RawTcpInfo>() as libc::socklen_t;
        // SAFETY: `info` is a plain-old-data struct of `len` bytes that the kernel fills (or
        // fills in part, reporting the length); the descriptor is a live TCP socket (see
        // the module docs), and a stale one only makes the call fail.
        let rc = unsafe {
            libc::getsockopt(
                self.0,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut RawTcpInfo).cast(),
                &mut len,
            )
        };
        if rc != 0 || (len as usize) < std::mem::offset_of!(RawTcpInfo, pacing_rate) {
            return None;
        }
        let full = len as usize >= std::mem::size_of::<RawTcpInfo>();
        let mss = u64::from(info.snd_mss.max(1));
        // An application-limited delivery rate measures what we offered, not what the path
        // carries: leave it out, the congestion window still bounds the path.
        let app_limited = info.delivery_flags & 1 != 0;
        Some(TransportStats {
            rtt: (info.rtt_us > 0).then(|| Duration::from_micros(u64::from(info.rtt_us))),
            cwnd_bytes: (info.snd_cwnd > 0).then(|| u64::from(info.snd_cwnd) * mss),
            bytes_in_flight: Some(u64::from(info.unacked) * mss),
            sent_packets: full.then_some(u64::from(info.data_segs_out)),
            lost_packets: full.then_some(u64::from(info.total_retrans)),
            delivery_rate_bps: (full && !app_limited && info.delivery_rate > 0)
                .then(|| info.delivery_rate.saturating_mul(8)),
            ..TransportStats::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn a_live_socket_reports_round_trip_window_and_segments() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let payload = vec![7u8; 256 * 1024];
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; payload.len()];
            client.read_exact(&mut got).unwrap();
        });
        server.write_all(&vec![7u8; 256 * 1024]).unwrap();
        reader.join().unwrap();
        let s = TcpSocket(server.as_raw_fd()).stats().expect("TCP_INFO");
        assert!(s.rtt.is_some_and(|r| r < Duration::from_secs(1)), "{s:?}");
        assert!(s.cwnd_bytes.is_some_and(|c| c > 0), "{s:?}");
        assert!(s.sent_packets.is_some_and(|n| n > 0), "{s:?}");
        assert_eq!(s.lost_packets, Some(0), "loopback retransmitted: {s:?}");
    }

    #[test]
    fn a_descriptor_that_is_not_a_tcp_socket_reads_as_unknown() {
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        assert_eq!(TcpSocket(file.as_raw_fd()).stats(), None);
        assert_eq!(TcpSocket(-1).stats(), None);
    }
}
