//! WebTransport session I/O shared by the server and the Rust client (load tester).
//!
//! [`SessionDatagrams`] reads a session's incoming datagrams from QUIC itself instead of through
//! wtransport's driver task. The driver hands datagrams on one at a time through a one-slot
//! channel: a second task wake-up per datagram, each a turn of the run queue late on a busy
//! machine (a load tester short of CPU, with hundreds of tasks in the run queue, read a fifth
//! of what arrived in a 40-person meeting; QUIC dropped the rest from its full receive
//! buffer). The driver is also woken, and re-polls everything it waits on, for every datagram.
//! Reading QUIC directly takes every waiting datagram in one wake-up. With our patch of wtransport (`third_party/README.md`) the driver
//! stops reading datagrams once told to; what it read before that is taken from it, so none is
//! lost at the hand-over.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::FutureExt;
use wtransport::Connection;

/// A session's incoming datagram payloads, read from QUIC, every waiting one in a wake-up.
pub struct SessionDatagrams {
    conn: Connection,
    quic: wtransport::quinn::Connection,
    session: u64,
    ready: VecDeque<Bytes>,
    /// The driver stopped reading datagrams and what it read was taken: from then on only QUIC
    /// is read, so a wake-up no longer also polls the driver's channel.
    handed_over: bool,
}

impl std::fmt::Debug for SessionDatagrams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDatagrams")
            .field("session", &self.session)
            .field("ready", &self.ready.len())
            .field("handed_over", &self.handed_over)
            .finish()
    }
}

impl SessionDatagrams {
    /// Tells wtransport's driver to stop reading this session's datagrams and returns the
    /// reader that takes over. Call it as soon as the session is established: until the
    /// reader is polled, datagrams wait in QUIC's receive buffer.
    pub fn take_over(conn: &Connection) -> Self {
        conn.application_reads_datagrams();
        Self {
            conn: conn.clone(),
            quic: conn.quic_connection().clone(),
            session: conn.session_id().into_u64(),
            ready: VecDeque::new(),
            handed_over: false,
        }
    }

    /// Keeps the payload of a datagram of this session; others are dropped, as wtransport
    /// drops them.
    fn keep(&mut self, d: Bytes) {
        match quicmeet_proto::wt::datagram_session(&d) {
            Some((session, n)) if session == self.session => self.ready.push_back(d.slice(n..)),
            _ => {}
        }
    }

    /// The next datagram's payload, in arrival order; `None` once the connection is closed.
    /// Cancel-safe: a datagram read and not yet returned stays queued here. Until the driver
    /// has stopped, the one or two datagrams it still holds may come after later ones read
    /// from QUIC (datagrams are unordered anyway; the server takes over before media flows).
    pub async fn next(&mut self) -> Option<Bytes> {
        while self.ready.is_empty() {
            if self.handed_over {
                let d = self.quic.read_datagram().await.ok()?;
                self.keep(d);
            } else {
                if self.conn.datagram_handover_complete() {
                    // Whatever the driver read is in its channel by now; nothing follows it.
                    self.handed_over = true;
                    // `unconstrained`: with the task's cooperative budget spent, tokio's channel
                    // would say "not ready" although the datagram is there, and it would be lost.
                    while let Some(Ok(d)) =
                        tokio::task::unconstrained(self.conn.receive_datagram()).now_or_never()
                    {
                        self.ready.push_back(d.payload());
                    }
                    continue;
                }
                tokio::select! {
                    // The driver's datagrams arrived first: take them first.
                    biased;
                    d = self.conn.receive_datagram() => self.ready.push_back(d.ok()?.payload()),
                    d = self.quic.read_datagram() => self.keep(d.ok()?),
                }
            }
            // Everything else already waiting, in the same wake-up.
            while let Some(Ok(d)) = self.quic.read_datagram().now_or_never() {
                self.keep(d);
            }
        }
        self.ready.pop_front()
    }
}
