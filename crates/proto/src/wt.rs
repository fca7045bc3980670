//! WebTransport framing of the control stream: each message is a `u32` big-endian length
//! followed by that many bytes of UTF-8 JSON (at most [`MAX_CONTROL_LEN`]).
//!
//! Media needs no extra framing on WebTransport: a datagram holds exactly one frame
//! ([`crate::frame::EncodedFrame::decode`]) and a unidirectional stream holds frames back to
//! back ([`crate::frame::StreamDecoder`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::control::{self, ClientMessage, ControlError, ServerMessage, MAX_CONTROL_LEN};
use crate::decode::Decoded;

/// Length of the prefix in front of each control message.
pub const LEN_PREFIX: usize = 4;

/// Frame a JSON body for the control stream.
pub fn frame_control_json(json: &[u8]) -> Result<Bytes, ControlError> {
    if json.len() > MAX_CONTROL_LEN {
        return Err(ControlError::TooLarge {
            len: json.len(),
            max: MAX_CONTROL_LEN,
        });
    }
    let mut b = BytesMut::with_capacity(LEN_PREFIX + json.len());
    b.put_u32(json.len() as u32);
    b.put_slice(json);
    Ok(b.freeze())
}

/// Encode and frame a control message (client or server) for the control stream.
pub fn encode_control<T: Serialize>(msg: &T) -> Result<Bytes, ControlError> {
    frame_control_json(&control::encode(msg))
}

/// Incremental decoder for the control stream.
///
/// Push bytes as they arrive; [`ControlStreamDecoder::decode_json`] yields each message body,
/// [`ControlStreamDecoder::decode_client`] / [`ControlStreamDecoder::decode_server`] parse it
/// too. A length above the limit poisons the decoder (the stream cannot be resynchronised);
/// a body that is not a valid message does not, since the framing is still intact.
#[derive(Debug, Default)]
pub struct ControlStreamDecoder {
    buf: BytesMut,
    failed: Option<ControlError>,
}

impl ControlStreamDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next message body, if complete.
    pub fn decode_json(&mut self) -> Result<Decoded<Bytes>, ControlError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.buf.len() < LEN_PREFIX {
            return Ok(Decoded::NeedMore(LEN_PREFIX - self.buf.len()));
        }
        let len = (&self.buf[..LEN_PREFIX]).get_u32() as usize;
        if len > MAX_CONTROL_LEN {
            let e = ControlError::TooLarge {
                len,
                max: MAX_CONTROL_LEN,
            };
            self.failed = Some(e.clone());
            self.buf = BytesMut::new();
            return Err(e);
        }
        let need = LEN_PREFIX + len;
        if self.buf.len() < need {
            return Ok(Decoded::NeedMore(need - self.buf.len()));
        }
        self.buf.advance(LEN_PREFIX);
        Ok(Decoded::Complete(self.buf.split_to(len).freeze()))
    }

    /// The next client message, if complete.
    pub fn decode_client(&mut self) -> Result<Decoded<ClientMessage>, ControlError> {
        match self.decode_json()? {
            Decoded::Complete(b) => control::decode_client(&b).map(Decoded::Complete),
            Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        }
    }

    /// The next server message, if complete.
    pub fn decode_server(&mut self) -> Result<Decoded<ServerMessage>, ControlError> {
        match self.decode_json()? {
            Decoded::Complete(b) => control::decode_server(&b).map(Decoded::Complete),
            Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere() {
        let a = encode_control(&ClientMessage::Leave {}).unwrap();
        let b = encode_control(&ClientMessage::Hand { raised: true }).unwrap();
        assert_eq!(&a[..4], &[0, 0, 0, (a.len() - 4) as u8]);
        let mut wire = a.to_vec();
        wire.extend_from_slice(&b);
        for cut in 0..=wire.len() {
            let mut d = ControlStreamDecoder::new();
            let mut out = vec![];
            d.push(&wire[..cut]);
            while let Decoded::Complete(m) = d.decode_client().unwrap() {
                out.push(m);
            }
            d.push(&wire[cut..]);
            while let Decoded::Complete(m) = d.decode_client().unwrap() {
                out.push(m);
            }
            assert_eq!(
                out,
                vec![
                    ClientMessage::Leave {},
                    ClientMessage::Hand { raised: true }
                ]
            );
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn oversized_length_poisons() {
        let mut d = ControlStreamDecoder::new();
        d.push(&((MAX_CONTROL_LEN as u32) + 1).to_be_bytes());
        assert_eq!(d.decode_json().unwrap_err().code(), "too_large");
        d.push(b"{}");
        assert_eq!(d.decode_json().unwrap_err().code(), "too_large");
        assert!(frame_control_json(&vec![b' '; MAX_CONTROL_LEN + 1]).is_err());
    }

    #[test]
    fn bad_body_does_not_poison() {
        let mut d = ControlStreamDecoder::new();
        d.push(&frame_control_json(br#"{"v":1,"type":"nope"}"#).unwrap());
        d.push(&encode_control(&ClientMessage::Leave {}).unwrap());
        assert_eq!(d.decode_client().unwrap_err().code(), "unknown_message");
        assert_eq!(
            d.decode_client().unwrap(),
            Decoded::Complete(ClientMessage::Leave {})
        );
    }
}
