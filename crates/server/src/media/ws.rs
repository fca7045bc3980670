//! The WebSocket fallback at `/ws`: the same control messages and media frames as binary
//! messages with a type byte (0x01 control JSON, 0x02 media frame).
//!
//! TCP blocks the whole connection when one message is slow, so the writer drains the
//! subscriber queue control-first, then audio, then video; the queue drops video back to the
//! next keyframe when it grows (the room then asks the publisher for one). The writer keeps
//! sampling the path's statistics while a send waits for TCP (see [`super::STATS_PERIOD`]):
//! before, a writer stuck behind a full socket sent no sample for over a second, just when
//! the estimate needed one.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        Extension, State,
    },
    response::Response,
};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use quicmeet_proto::{control, frame::MAX_FRAME_LEN, ClientMessage, ServerMessage, WsMessage};
use quicmeet_sfu::Popped;

use super::{conn::Strikes, MediaHub, TcpSocket, Transport};
use crate::SharedState;

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn handler(
    State(state): State<SharedState>,
    tcp: Option<Extension<TcpSocket>>,
    ws: WebSocketUpgrade,
) -> Response {
    let hub = state.media.clone();
    let tcp = tcp.map(|Extension(t)| t);
    ws.max_message_size(MAX_FRAME_LEN + 1)
        .max_frame_size(MAX_FRAME_LEN + 1)
        .on_upgrade(move |socket| run(hub, socket, tcp))
}

fn control_message(msg: &ServerMessage) -> Message {
    Message::Binary(WsMessage::encode_control(msg).unwrap_or_default().into())
}

async fn refuse(mut socket: WebSocket, code: &str, message: &str) {
    let _ = socket
        .send(control_message(&ServerMessage::error(code, message)))
        .await;
    let reason = if code == "meeting_ended" {
        "ended"
    } else {
        code
    };
    let _ = socket
        .send(control_message(&ServerMessage::goodbye(reason, message)))
        .await;
    let _ = socket.send(Message::Close(None)).await;
}

async fn run(hub: Arc<MediaHub>, mut socket: WebSocket, tcp: Option<TcpSocket>) {
    // The first message must be hello with a join token.
    let first = tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await;
    let (token, uplink_reports) = match first {
        Ok(Some(Ok(Message::Binary(b)))) => match WsMessage::decode(b) {
            Ok(WsMessage::Control(json)) => match control::decode_client(&json) {
                Ok(ClientMessage::Hello {
                    token,
                    uplink_reports,
                    ..
                }) => (token, uplink_reports),
                Ok(_) => {
                    return refuse(socket, "hello_required", "The first message must be hello.")
                        .await
                }
                Err(e) => return refuse(socket, e.code(), &e.to_string()).await,
            },
            _ => {
                return refuse(
                    socket,
                    "hello_required",
                    "The first message must be a hello control message.",
                )
                .await
            }
        },
        Ok(Some(Ok(_))) => {
            return refuse(
                socket,
                "binary_required",
                "Messages are binary: 0x01 + control JSON or 0x02 + media frame.",
            )
            .await
        }
        Err(_) => return refuse(socket, "hello_timeout", "No hello within 10 seconds.").await,
        _ => return,
    };
    let grant = match hub.authenticate(&token).await {
        Ok(g) => g,
        Err(r) => {
            hub.metrics
                .refused_connections
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return refuse(socket, r.code, &r.message).await;
        }
    };
    let attached = match hub.attach(&grant, Transport::WebSocket).await {
        Ok(a) => a.with_uplink_reports(uplink_reports),
        Err(r) => return refuse(socket, r.code, &r.message).await,
    };
    hub.metrics
        .sessions_ws
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let out = attached.out.clone();
    let cancel = hub.cancel.clone();

    // The kernel's view of the TCP path, plus the queue's drain while backlogged.
    // `sending`: taken while a send waits for TCP, when a keyframe's burst backs the queue
    // up for a moment on any path, so the backlog is left out (on loopback it took the
    // burst for the path's limit and moved a fast subscriber down a layer).
    let report_stats = |sending: bool| {
        let queue = out.queue_sample();
        let tcp = tcp.and_then(TcpSocket::stats).unwrap_or_default();
        attached.report_stats(quicmeet_sfu::bwe::TransportStats {
            drained_bytes: queue.drained_bytes,
            queued_bytes: if sending { None } else { queue.queued_bytes },
            // Unlike WebTransport, a backlog the pacer made still counts as the path's
            // limit here, so the estimate ratchets down while video is held back. Through
            // the lab's TCP shim (which hides the path's queue from the server's round
            // trip) reporting the pacer's count raised the capped subscriber's audio median
            // from 31 to 154 ms (BENCHMARKS §3, third pass), when WebSocket had no delay
            // signal. Receivers' reports are one now (sixth pass); reporting the count
            // again has not been measured with them.
            paced: None,
            ..tcp
        });
    };
    let writer = async {
        let mut stats_tick = super::StatsClock::start(false);
        loop {
            while let Some(item) = out.pop() {
                // One copy per message: the WebSocket layer needs the type byte and the body
                // in one buffer.
                let msg = match item {
                    Popped::Control(json) => WsMessage::Control(json).encode(),
                    Popped::Media { frame, .. } => WsMessage::encode_media(&frame),
                };
                // A send waits while TCP pushes back, which is when the estimate needs its
                // samples most: keep sampling while it waits.
                let send = sink.send(Message::Binary(msg.into()));
                tokio::pin!(send);
                loop {
                    tokio::select! {
                        sent = &mut send => {
                            if sent.is_err() {
                                return;
                            }
                            break;
                        }
                        _ = stats_tick.tick() => report_stats(true),
                    }
                }
            }
            attached.report_lagged().await;
            if out.is_closing() {
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
            let paced = out.paced_until();
            tokio::select! {
                _ = out.wait() => {}
                // Video the pacer held back may leave now.
                _ = super::sleep_until_paced(paced), if paced.is_some() => {}
                _ = stats_tick.tick() => report_stats(false),
                _ = cancel.cancelled() => {
                    let _ = sink.send(control_message(&ServerMessage::goodbye(
                        "shutdown", "The server is restarting. Reconnect in a moment."))).await;
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
            }
        }
    };

    let reader =
        async {
            let mut strikes = Strikes::default();
            while let Some(msg) = stream.next().await {
                let Ok(msg) = msg else { break };
                let err = match msg {
                    Message::Binary(b) => match WsMessage::decode(b) {
                        Ok(WsMessage::Media(frame)) => {
                            attached.media(frame);
                            continue;
                        }
                        Ok(WsMessage::Control(json)) => match control::decode_client(&json) {
                            Ok(ClientMessage::Hello { .. }) => {
                                ServerMessage::error("already_joined", "hello was already accepted")
                            }
                            Ok(m) => {
                                if !attached.control(m).await {
                                    break;
                                }
                                continue;
                            }
                            Err(e) => ServerMessage::error(e.code(), e.to_string()),
                        },
                        Err(e) => ServerMessage::error(e.code(), e.to_string()),
                    },
                    Message::Text(_) => ServerMessage::error(
                        "binary_required",
                        "Text messages are not part of the protocol; send binary messages.",
                    ),
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                hub.metrics
                    .protocol_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                attached
                    .out
                    .push_control(Bytes::from(control::encode(&err)));
                if strikes.hit() {
                    attached.out.push_control(Bytes::from(control::encode(
                        &ServerMessage::goodbye("protocol_error", "Too many malformed messages."),
                    )));
                    attached.out.close("protocol_error");
                    break;
                }
            }
        };

    {
        tokio::pin!(writer);
        tokio::pin!(reader);
        tokio::select! {
            _ = &mut writer => {}
            _ = &mut reader => {
                // Let the writer flush a goodbye for a short while.
                if out.is_closing() {
                    let _ = tokio::time::timeout(Duration::from_secs(2), &mut writer).await;
                }
            }
        }
    }
    drop(attached);
}
