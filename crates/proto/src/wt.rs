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

/// The header of a WebTransport datagram on the wire (HTTP/3 datagrams, RFC 9297): the
/// quarter stream id of the session's CONNECT stream as a QUIC variable-length integer
/// (RFC 9000 §16), then the payload (one frame). Returns the bytes and how many are used.
pub fn datagram_header(session_stream_id: u64) -> ([u8; 8], usize) {
    let v = session_stream_id >> 2;
    let mut out = [0u8; 8];
    let n = match v {
        0..=0x3f => {
            out[0] = v as u8;
            1
        }
        0x40..=0x3fff => {
            out[..2].copy_from_slice(&(v as u16 | 0x4000).to_be_bytes());
            2
        }
        0x4000..=0x3fff_ffff => {
            out[..4].copy_from_slice(&(v as u32 | 0x8000_0000).to_be_bytes());
            4
        }
        _ => {
            out.copy_from_slice(
                &((v & 0x3fff_ffff_ffff_ffff) | 0xc000_0000_0000_0000).to_be_bytes(),
            );
            8
        }
    };
    (out, n)
}

/// Reads a WebTransport datagram's header (see [`datagram_header`]): the session's stream id
/// and where the payload starts. `None` when the datagram is too short for its header.
pub fn datagram_session(d: &[u8]) -> Option<(u64, usize)> {
    let first = *d.first()?;
    let n = 1usize << (first >> 6);
    let b = d.get(..n)?;
    let mut v = u64::from(first & 0x3f);
    for x in &b[1..] {
        v = (v << 8) | u64::from(*x);
    }
    Some((v << 2, n))
}

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
    fn datagram_header_is_the_quarter_stream_id_as_a_quic_varint() {
        // RFC 9000 appendix A.1's examples, as quarter stream ids.
        for (quarter, want) in [
            (0u64, &[0x00u8][..]),
            (37, &[0x25]),
            (15_293, &[0x7b, 0xbd]),
            (494_878_333, &[0x9d, 0x7f, 0x3e, 0x7d]),
            (
                151_288_809_941_952_652,
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
            ),
        ] {
            let (h, n) = datagram_header(quarter << 2);
            assert_eq!(&h[..n], want, "{quarter}");
            let mut d = h[..n].to_vec();
            d.extend_from_slice(b"frame");
            assert_eq!(datagram_session(&d), Some((quarter << 2, n)), "{quarter}");
        }
    }

    #[test]
    fn a_datagram_too_short_for_its_header_is_refused() {
        assert_eq!(datagram_session(&[]), None);
        assert_eq!(datagram_session(&[0x7b]), None);
        assert_eq!(datagram_session(&[0x9d, 0x7f, 0x3e]), None);
        // A header and nothing else is a session's empty datagram.
        assert_eq!(datagram_session(&[0x25]), Some((37 << 2, 1)));
    }

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
