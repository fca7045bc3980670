//! Opening a participant's connection: the REST join and the transport to QuicMeet (up to
//! `welcome`), or the baseline relay, behind one sending and one receiving half.

use std::time::{Duration, Instant};

use quicmeet_client::{ClientReceiver, ClientSender, ConnectOptions, Event};
use quicmeet_proto::{ClientMessage, MediaKind, ServerMessage};
use tokio::sync::mpsc;

use super::{Ctx, Spec, Target};
use crate::lab::Shims;
use crate::relay::{self, RelaySender};

/// The sending half of a connection.
pub(super) enum ConnTx {
    Qm(ClientSender),
    Relay(RelaySender),
}

impl ConnTx {
    pub(super) async fn send_control(&mut self, m: &ClientMessage) -> Result<(), String> {
        match self {
            ConnTx::Qm(s) => s.send_control(m).await.map_err(|e| e.to_string()),
            ConnTx::Relay(_) => Ok(()),
        }
    }

    pub(super) async fn send_frame(
        &mut self,
        f: &quicmeet_proto::EncodedFrame,
    ) -> Result<(), String> {
        match self {
            ConnTx::Qm(s) => s.send_frame(f).await.map_err(|e| e.to_string()),
            ConnTx::Relay(s) => s.send_frame(f).await.map_err(|e| e.to_string()),
        }
    }

    /// A handle for audio datagrams that does not wait behind video (WebTransport).
    pub(super) fn datagram_sender(&self) -> Option<quicmeet_client::DatagramSender> {
        match self {
            ConnTx::Qm(s) => s.datagram_sender(),
            ConnTx::Relay(_) => None,
        }
    }

    /// The QUIC path's statistics (WebTransport).
    pub(super) fn path_stats(&self) -> Option<quicmeet_client::PathStats> {
        match self {
            ConnTx::Qm(s) => s.path_stats(),
            ConnTx::Relay(_) => None,
        }
    }

    pub(super) async fn close(self) {
        match self {
            ConnTx::Qm(s) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), s.close()).await;
            }
            ConnTx::Relay(s) => s.close(),
        }
    }
}

/// The receiving half of a connection.
pub(super) enum ConnRx {
    Qm(ClientReceiver),
    Relay(mpsc::Receiver<Event>),
}

impl ConnRx {
    /// The client's counters (QuicMeet connections only).
    pub(super) fn stats(&self) -> Option<quicmeet_client::Stats> {
        match self {
            ConnRx::Qm(r) => Some(r.stats()),
            ConnRx::Relay(_) => None,
        }
    }

    /// Headers of datagrams the client dropped for their age since the last call.
    pub(super) fn take_expired(&mut self) -> Vec<quicmeet_proto::FrameHeader> {
        match self {
            ConnRx::Qm(r) => r.take_expired(),
            ConnRx::Relay(_) => vec![],
        }
    }

    pub(super) async fn recv(&mut self) -> Option<Event> {
        match self {
            ConnRx::Qm(r) => r.recv().await,
            ConnRx::Relay(r) => r.recv().await,
        }
    }
}

/// Publishers' datagram send buffer: about 200 ms of one Opus track, so a congested uplink
/// drops old audio instead of queueing seconds of it.
const PUBLISHER_DATAGRAM_BUFFER: usize = 2048;
/// Publishers' unacknowledged stream data at most: a capped uplink then pushes back on the
/// sender (which adapts) instead of hiding seconds of video in QUIC's buffers.
const PUBLISHER_SEND_WINDOW: u64 = 64 * 1024;
/// Publishers' TCP send buffer on WebSocket, for the same reason.
const PUBLISHER_TCP_SEND_BUFFER: u32 = 16 * 1024;

/// Connection options: every participant bounds its received datagrams by age as a browser
/// does; publishers that adapt also bound what they queue for sending, as a browser's small
/// send buffers do.
fn options(args: &crate::cli::Args, publisher: bool) -> ConnectOptions {
    let bound_sends = publisher && args.adapt == crate::cli::OnOff::On;
    ConnectOptions {
        event_buffer: 4096,
        client_name: Some("quicmeet-loadtest".into()),
        // Against a server that does not know the field it is ignored, and no reports come.
        uplink_reports: bound_sends,
        datagram_max_age: (args.datagram_max_age_ms > 0)
            .then(|| Duration::from_millis(args.datagram_max_age_ms)),
        datagram_send_buffer: bound_sends.then_some(PUBLISHER_DATAGRAM_BUFFER),
        send_window: bound_sends.then_some(PUBLISHER_SEND_WINDOW),
        tcp_send_buffer: bound_sends.then_some(PUBLISHER_TCP_SEND_BUFFER),
        ..ConnectOptions::default()
    }
}

/// A connection that got its `welcome`.
pub(super) struct Joined {
    pub(super) tx: ConnTx,
    pub(super) rx: ConnRx,
    /// Participant id.
    pub(super) pid: u32,
    /// Tracks already in the room: `(track, owner, kind)`.
    pub(super) tracks: Vec<(u32, u32, MediaKind)>,
}

/// Join and connect; returns the connection, the REST join time and the transport time up to
/// `welcome` (µs), or the error kind the report counts.
pub(super) async fn connect(
    ctx: &Ctx,
    spec: &Spec,
    shims: Option<&mut Shims>,
) -> Result<(Joined, u64, u64), String> {
    let t0 = Instant::now();
    match &ctx.target {
        Target::Quicmeet { base, codes } => {
            let code = &codes[spec.room % codes.len().max(1)];
            let mut join = crate::api::join_guest(&ctx.http, base, code, &spec.name)
                .await
                .map_err(|(k, _)| k)?;
            let api_us = t0.elapsed().as_micros() as u64;
            let node = crate::cluster::node_of(&join.websocket_url);
            if let Some(s) = shims {
                s.route(&mut join).await.map_err(|e| {
                    tracing::warn!(error = %e, "starting the lab's shims");
                    "lab_shim".to_owned()
                })?;
            }
            let t1 = Instant::now();
            let opts = options(&ctx.args, spec.publisher);
            let (tx, mut rx) = quicmeet_client::connect_with(spec.transport, &join, &opts)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, transport = spec.transport.as_str(), "connect failed");
                    format!("connect_{}", spec.transport.as_str())
                })?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            loop {
                let ev = tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .map_err(|_| "welcome_timeout".to_owned())?;
                match ev {
                    Some(Event::Control(ServerMessage::Welcome {
                        participant_id,
                        tracks,
                        ..
                    })) => {
                        let connect_us = t1.elapsed().as_micros() as u64;
                        ctx.shared.placed.lock().insert(
                            spec.index,
                            crate::cluster::Placed {
                                room: spec.room,
                                participant_id,
                                node,
                            },
                        );
                        let tracks = tracks
                            .into_iter()
                            .map(|t| (t.track_id, t.participant_id, t.kind))
                            .collect();
                        return Ok((
                            Joined {
                                tx: ConnTx::Qm(tx),
                                rx: ConnRx::Qm(rx),
                                pid: participant_id,
                                tracks,
                            },
                            api_us,
                            connect_us,
                        ));
                    }
                    Some(Event::Control(ServerMessage::Lobby { .. })) => return Err("lobby".into()),
                    Some(Event::Control(ServerMessage::Goodbye { reason, .. })) => {
                        return Err(format!("goodbye_{reason}"))
                    }
                    Some(Event::Control(ServerMessage::Error { code, .. })) => {
                        return Err(format!("hello_error_{code}"))
                    }
                    Some(Event::Closed(_)) | None => return Err("closed_before_welcome".into()),
                    Some(_) => {}
                }
            }
        }
        Target::Relay { addr, hash } => {
            let addr = match shims {
                Some(s) => s.udp(*addr).await.map_err(|e| {
                    tracing::warn!(error = %e, "starting the lab's shim");
                    "lab_shim".to_owned()
                })?,
                None => *addr,
            };
            let (tx, rx) = relay::connect(addr, *hash, spec.room as u32, spec.watches)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "relay connect failed");
                    "connect_relay".to_owned()
                })?;
            let connect_us = t0.elapsed().as_micros() as u64;
            // The relay has no signalling: ids and tracks follow from the room layout.
            let pid = spec.k as u32 + 1;
            let mut tracks = vec![];
            for k in 0..ctx.args.publishers_per_room {
                let other = Spec::of(&ctx.args, spec.room * ctx.args.per_room() + k);
                for (slot, kind) in other.slots(&ctx.args, &ctx.lib) {
                    tracks.push(((k as u32 + 1) * 16 + slot, k as u32 + 1, kind));
                }
            }
            Ok((
                Joined {
                    tx: ConnTx::Relay(tx),
                    rx: ConnRx::Relay(rx),
                    pid,
                    tracks,
                },
                0,
                connect_us,
            ))
        }
    }
}
