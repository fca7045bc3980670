//! WebSocket fallback: binary messages with a type byte, 0x01 control JSON, 0x02 media frame.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use quicmeet_proto::ws::{TYPE_CONTROL, TYPE_MEDIA};
use quicmeet_proto::{control, ClientMessage, EncodedFrame, WsMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::Result;
use crate::{media_event, CloseInfo, Counters, Event, EventTx, JoinInfo, Via};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) struct WsSender {
    sink: SplitSink<Ws, Message>,
    /// Reused encode buffer; each message takes a frozen slice of it.
    buf: BytesMut,
}

pub(crate) async fn connect(
    join: &JoinInfo,
    hello: &ClientMessage,
    tx: EventTx,
    counters: Arc<Counters>,
) -> Result<WsSender> {
    let (ws, _resp) = tokio_tungstenite::connect_async(join.websocket_url.as_str()).await?;
    let (sink, stream) = ws.split();
    tokio::spawn(read(stream, tx, counters));
    let mut s = WsSender {
        sink,
        buf: BytesMut::with_capacity(64 * 1024),
    };
    s.send_control(hello).await?;
    Ok(s)
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

async fn read(mut stream: SplitStream<Ws>, tx: EventTx, counters: Arc<Counters>) {
    let mut close = None;
    while let Some(msg) = stream.next().await {
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
