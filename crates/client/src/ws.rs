//! WebSocket fallback: binary messages with a type byte, 0x01 control JSON, 0x02 media frame.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use quicmeet_proto::ws::{TYPE_CONTROL, TYPE_MEDIA};
use quicmeet_proto::{control, ClientMessage, EncodedFrame, WsMessage};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{ClientError, Result};
use crate::{media_event, CloseInfo, ConnectOptions, Counters, Event, EventTx, JoinInfo, Via};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) struct WsSender {
    sink: SplitSink<Ws, Message>,
    /// Dropped with the sender: tells the reader task to stop, which drops the socket.
    _cancel: oneshot::Sender<()>,
    /// Reused encode buffer; each message takes a frozen slice of it.
    buf: BytesMut,
}

pub(crate) async fn connect(
    join: &JoinInfo,
    opts: &ConnectOptions,
    hello: &ClientMessage,
    tx: EventTx,
    counters: Arc<Counters>,
) -> Result<WsSender> {
    let url = join.websocket_url.as_str();
    let tcp = tcp_connect(url, opts.tcp_recv_buffer, opts.tcp_send_buffer).await?;
    let (ws, _resp) = tokio_tungstenite::client_async_tls(url, tcp).await?;
    let (sink, stream) = ws.split();
    let (cancel_tx, cancel_rx) = oneshot::channel();
    tokio::spawn(read(stream, tx, counters, cancel_rx));
    let mut s = WsSender {
        sink,
        _cancel: cancel_tx,
        buf: BytesMut::with_capacity(64 * 1024),
    };
    s.send_control(hello).await?;
    Ok(s)
}

/// `host:port` of a `ws://` or `wss://` URL.
fn authority(url: &str) -> Result<(String, u16)> {
    let bad = |reason: &str| ClientError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (rest, default_port) = if let Some(r) = url.strip_prefix("ws://") {
        (r, 80)
    } else if let Some(r) = url.strip_prefix("wss://") {
        (r, 443)
    } else {
        return Err(bad("not a ws:// or wss:// URL"));
    };
    let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
    let auth = auth.rsplit('@').next().unwrap_or(auth);
    let (host, port) = if let Some(v6) = auth.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed IPv6 literal"))?;
        (h, after.strip_prefix(':'))
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (auth, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad("bad port"))?,
        None => default_port,
    };
    Ok((host.to_owned(), port))
}

/// Connect TCP to the URL's host, trying each resolved address, with optional receive and
/// send buffer sizes set before the handshake (so the window scale fits them).
async fn tcp_connect(
    url: &str,
    recv_buffer: Option<u32>,
    send_buffer: Option<u32>,
) -> Result<TcpStream> {
    let (host, port) = authority(url)?;
    let mut last = None;
    for addr in tokio::net::lookup_host((host.as_str(), port)).await? {
        let sock = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(n) = recv_buffer {
            sock.set_recv_buffer_size(n)?;
        }
        if let Some(n) = send_buffer {
            sock.set_send_buffer_size(n)?;
        }
        match sock.connect(addr).await {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
        .into())
}

impl WsSender {
    fn message(&mut self, ty: u8, body: &[u8]) -> Message {
        if self.buf.capacity() < 1 + body.len() {
            self.buf.reserve((1 + body.len()).max(64 * 1024));
        }
        self.buf.put_u8(ty);
        self.buf.put_slice(body);
        Message::Binary(self.buf.split().freeze())
    }

    pub(crate) async fn send_control(&mut self, msg: &ClientMessage) -> Result<()> {
        let json = control::encode(msg);
        if json.len() > control::MAX_CONTROL_LEN {
            return Err(quicmeet_proto::ControlError::TooLarge {
                len: json.len(),
                max: control::MAX_CONTROL_LEN,
            }
            .into());
        }
        let m = self.message(TYPE_CONTROL, &json);
        self.sink.send(m).await?;
        Ok(())
    }

    pub(crate) async fn send_frame(&mut self, frame: &EncodedFrame) -> Result<()> {
        let m = self.message(TYPE_MEDIA, frame.as_bytes());
        self.sink.send(m).await?;
        Ok(())
    }

    pub(crate) async fn raw(&mut self, msg: Message) -> Result<()> {
        self.sink.send(msg).await?;
        Ok(())
    }

    pub(crate) async fn close(mut self) -> Result<()> {
        let res = self.send_control(&ClientMessage::Leave {}).await;
        let _ = self.sink.close().await;
        res
    }

    pub(crate) fn abort(self) {
        // Dropping both halves drops the TCP connection without a close frame.
        drop(self.sink);
    }
}

async fn read(
    mut stream: SplitStream<Ws>,
    tx: EventTx,
    counters: Arc<Counters>,
    mut cancel: oneshot::Receiver<()>,
) {
    let mut close = None;
    loop {
        let msg = tokio::select! {
            m = stream.next() => match m {
                Some(m) => m,
                None => break,
            },
            _ = &mut cancel => {
                close.get_or_insert(CloseInfo {
                    code: None,
                    reason: "closed by this client".into(),
                });
                break;
            }
        };
        let ev = match msg {
            Ok(Message::Binary(b)) => match WsMessage::decode(b) {
                Ok(WsMessage::Media(frame)) => {
                    Counters::add(&counters.ws_frames, 1);
                    Counters::add(&counters.media_bytes, frame.len() as u64);
                    media_event(frame, Via::WebSocket)
                }
                Ok(WsMessage::Control(json)) => match control::decode_server(&json) {
                    Ok(m) => {
                        Counters::add(&counters.control, 1);
                        Event::Control(m)
                    }
                    Err(e) => Event::ProtocolError {
                        code: e.code(),
                        detail: format!("control message: {e}"),
                    },
                },
                Err(e) => {
                    Counters::add(&counters.bad_media, 1);
                    Event::ProtocolError {
                        code: e.code(),
                        detail: format!("WebSocket message: {e}"),
                    }
                }
            },
            Ok(Message::Text(t)) => Event::ProtocolError {
                code: "text_message",
                detail: format!("unexpected text message of {} bytes", t.len()),
            },
            Ok(Message::Close(f)) => {
                close = Some(match f {
                    Some(f) => CloseInfo {
                        code: Some(u64::from(u16::from(f.code))),
                        reason: f.reason.to_string(),
                    },
                    None => CloseInfo {
                        code: None,
                        reason: "closed".into(),
                    },
                });
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                close.get_or_insert(CloseInfo {
                    code: None,
                    reason: e.to_string(),
                });
                break;
            }
        };
        if tx.send(ev).await.is_err() {
            return;
        }
    }
    let info = close.unwrap_or(CloseInfo {
        code: None,
        reason: "connection ended".into(),
    });
    let _ = tx.send(Event::Closed(info)).await;
}

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn authorities() {
        assert_eq!(
            authority("ws://localhost:8080/ws").unwrap(),
            ("localhost".into(), 8080)
        );
        assert_eq!(
            authority("wss://h.example/ws").unwrap(),
            ("h.example".into(), 443)
        );
        assert_eq!(authority("ws://[::1]:9/ws?x").unwrap(), ("::1".into(), 9));
        assert!(authority("http://h/ws").is_err());
    }
}
