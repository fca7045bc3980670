//! WebSocket framing: every binary WebSocket message starts with a type byte.
//!
//! `0x01` + UTF-8 JSON control message (at most [`MAX_CONTROL_LEN`] bytes of JSON), or
//! `0x02` + exactly one media frame. Text WebSocket messages are not used.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::control::{self, ControlError, MAX_CONTROL_LEN};
use crate::frame::{EncodedFrame, FrameError};

/// Type byte of a control message.
pub const TYPE_CONTROL: u8 = 0x01;
/// Type byte of a media frame.
pub const TYPE_MEDIA: u8 = 0x02;

/// One binary WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    /// A control message's JSON body; parse with [`control::decode_client`] or
    /// [`control::decode_server`].
    Control(Bytes),
    /// A media frame (shares the message's buffer).
    Media(EncodedFrame),
}

/// Why a WebSocket message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// Zero-length message.
    #[error("empty WebSocket message")]
    Empty,
    /// First byte is neither 0x01 nor 0x02.
    #[error("unknown WebSocket message type byte {0:#04x}")]
    UnknownType(u8),
    /// Control body above the limit.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The media frame is invalid.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

impl WsError {
    /// Stable code: `empty`, `unknown_type`, or the inner control / frame code.
    pub fn code(&self) -> &'static str {
        match self {
            WsError::Empty => "empty",
            WsError::UnknownType(_) => "unknown_type",
            WsError::Control(e) => e.code(),
            WsError::Frame(e) => e.code(),
        }
    }
}

impl WsMessage {
    /// Split a received binary message. Zero-copy: the parts share `msg`.
    ///
    /// Only the framing and the media frame are validated here; control JSON is parsed by the
    /// caller, which knows the direction.
    pub fn decode(msg: Bytes) -> Result<WsMessage, WsError> {
        let Some(&ty) = msg.first() else {
            return Err(WsError::Empty);
        };
        match ty {
            TYPE_CONTROL => {
                let len = msg.len() - 1;
                if len > MAX_CONTROL_LEN {
                    return Err(ControlError::TooLarge {
                        len,
                        max: MAX_CONTROL_LEN,
                    }
                    .into());
                }
                Ok(WsMessage::Control(msg.slice(1..)))
            }
            TYPE_MEDIA => Ok(WsMessage::Media(EncodedFrame::decode(msg.slice(1..))?)),
            other => Err(WsError::UnknownType(other)),
        }
    }

    /// Encode into one binary message (type byte plus body; copies the body once, because the
    /// WebSocket layer needs one contiguous buffer).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            WsMessage::Control(json) => prefixed(TYPE_CONTROL, json),
            WsMessage::Media(f) => prefixed(TYPE_MEDIA, f.as_bytes()),
        }
    }

    /// Encode a control message (client or server) as one binary message.
    pub fn encode_control<T: Serialize>(msg: &T) -> Result<Vec<u8>, ControlError> {
        let json = control::encode(msg);
        if json.len() > MAX_CONTROL_LEN {
            return Err(ControlError::TooLarge {
                len: json.len(),
                max: MAX_CONTROL_LEN,
            });
        }
        Ok(prefixed(TYPE_CONTROL, &json))
    }

    /// Encode a media frame as one binary message.
    pub fn encode_media(frame: &EncodedFrame) -> Vec<u8> {
        prefixed(TYPE_MEDIA, frame.as_bytes())
    }

    /// Like [`WsMessage::encode`] but into a reusable buffer.
    pub fn encode_into(&self, out: &mut BytesMut) {
        let (ty, body): (u8, &[u8]) = match self {
            WsMessage::Control(json) => (TYPE_CONTROL, json),
            WsMessage::Media(f) => (TYPE_MEDIA, f.as_bytes()),
        };
        out.reserve(1 + body.len());
        out.put_u8(ty);
        out.put_slice(body);
    }
}

fn prefixed(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + body.len());
    v.push(ty);
    v.extend_from_slice(body);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::ClientMessage;
    use crate::frame::{Frame, FrameHeader, MediaKind};

    #[test]
    fn round_trip_both_kinds() {
        let c = WsMessage::encode_control(&ClientMessage::Leave {}).unwrap();
        assert_eq!(c[0], TYPE_CONTROL);
        let WsMessage::Control(json) = WsMessage::decode(Bytes::from(c)).unwrap() else {
            panic!()
        };
        assert_eq!(
            control::decode_client(&json).unwrap(),
            ClientMessage::Leave {}
        );

        let f = Frame::new(
            FrameHeader {
                kind: MediaKind::Audio,
                layer: 0,
                keyframe: false,
                track_id: 16,
                seq: 1,
                capture_ts_us: 2,
                audio_level: Some(30),
                payload_len: 0,
            },
            Bytes::from_static(b"opus"),
        )
        .encode()
        .unwrap();
        let m = WsMessage::encode_media(&f);
        assert_eq!(
            WsMessage::decode(Bytes::from(m)).unwrap(),
            WsMessage::Media(f)
        );
    }

    #[test]
    fn errors() {
        assert_eq!(WsMessage::decode(Bytes::new()).unwrap_err().code(), "empty");
        assert_eq!(
            WsMessage::decode(Bytes::from_static(&[9]))
                .unwrap_err()
                .code(),
            "unknown_type"
        );
        assert_eq!(
            WsMessage::decode(Bytes::from_static(&[2, 1]))
                .unwrap_err()
                .code(),
            "truncated"
        );
    }
}
