//! Media frame codec: a 28-byte big-endian header followed by the payload.
//!
//! ```text
//!  0 u8  version = 1
//!  1 u8  kind          0 audio, 1 video, 2 screen
//!  2 u8  layer         0 = full, 1, 2 = lower layers made by the transcoder
//!  3 u8  flags         bit0 keyframe, bit1 audio_level present, bits 2..7 reserved (0)
//!  4 u32 track_id      participant_id * 16 + slot
//!  8 u32 seq           per track and layer, wraps
//! 12 u64 capture_ts_us capture timestamp in microseconds
//! 20 u8  audio_level   0..=127 = -dBov when flag bit1 is set, else 0; bit 7 reserved (0)
//! 21 u8  reserved 0
//! 22 u16 reserved 0
//! 24 u32 payload_len   at most MAX_PAYLOAD
//! 28 ..  payload
//! ```
//!
//! Two representations exist. [`Frame`] is a header plus a separate payload, the natural shape
//! for a publisher building a frame. [`EncodedFrame`] keeps the whole wire encoding as one
//! [`Bytes`] next to its parsed header: the SFU forwards it by cloning the `Bytes` (a reference
//! count bump) and never re-encodes or copies the payload.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::decode::Decoded;

/// The only frame version this crate speaks.
pub const VERSION: u8 = 1;
/// Length of the fixed frame header in bytes.
pub const HEADER_LEN: usize = 28;
/// Largest payload a frame may carry (512 KiB).
pub const MAX_PAYLOAD: usize = 512 * 1024;
/// Largest encoded frame (header plus maximum payload).
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_PAYLOAD;

/// Flag bit 0: the frame is a keyframe (starts a group of pictures).
pub const FLAG_KEYFRAME: u8 = 0x01;
/// Flag bit 1: byte 20 carries an audio level.
pub const FLAG_AUDIO_LEVEL: u8 = 0x02;
const FLAGS_KNOWN: u8 = FLAG_KEYFRAME | FLAG_AUDIO_LEVEL;
/// Highest valid audio level value (-127 dBov, i.e. silence).
pub const MAX_AUDIO_LEVEL: u8 = 127;

/// What a frame carries; byte 1 of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum MediaKind {
    /// Opus audio (microphone or screen audio).
    Audio = 0,
    /// VP8 camera video.
    Video = 1,
    /// VP8 screen-share video.
    Screen = 2,
}

impl MediaKind {
    /// Parse the wire byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(MediaKind::Audio),
            1 => Some(MediaKind::Video),
            2 => Some(MediaKind::Screen),
            _ => None,
        }
    }

    /// The wire byte.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Video and screen frames form groups of pictures that start with a keyframe; audio does not.
    pub fn is_video(self) -> bool {
        !matches!(self, MediaKind::Audio)
    }
}

/// Why a frame could not be decoded. [`FrameError::code`] gives the stable string used in the
/// golden vectors and in metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Byte 0 is not [`VERSION`].
    #[error("unsupported frame version {0}")]
    BadVersion(u8),
    /// Byte 1 is not a known [`MediaKind`].
    #[error("unknown media kind {0}")]
    UnknownKind(u8),
    /// `payload_len` exceeds [`MAX_PAYLOAD`].
    #[error("frame payload of {len} bytes exceeds the limit of {max}")]
    Oversized {
        /// Announced payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A complete message (datagram, WebSocket message) ended before the frame did.
    #[error("frame truncated: {need} bytes needed, {have} present")]
    Truncated {
        /// Bytes the frame needs in total.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// A reserved bit or byte is not zero, or the audio level is out of range.
    #[error("reserved bits set in frame header")]
    ReservedBits,
    /// A complete message (datagram, WebSocket message) holds bytes after the frame.
    #[error("{0} trailing bytes after the frame")]
    TrailingBytes(usize),
}

impl FrameError {
    /// Stable snake_case code: `bad_version`, `unknown_kind`, `oversized`, `truncated`,
    /// `reserved_bits`, `trailing_bytes`.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::BadVersion(_) => "bad_version",
            FrameError::UnknownKind(_) => "unknown_kind",
            FrameError::Oversized { .. } => "oversized",
            FrameError::Truncated { .. } => "truncated",
            FrameError::ReservedBits => "reserved_bits",
            FrameError::TrailingBytes(_) => "trailing_bytes",
        }
    }
}

/// The parsed 28-byte header. Plain `Copy` data: parsing never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// What the payload is.
    pub kind: MediaKind,
    /// 0 = full resolution; higher numbers are lower layers.
    pub layer: u8,
    /// The frame starts a group of pictures.
    pub keyframe: bool,
    /// Track this frame belongs to (`participant_id * 16 + slot`).
    pub track_id: u32,
    /// Sequence number per track and layer.
    pub seq: u32,
    /// Capture time in microseconds (publisher's clock).
    pub capture_ts_us: u64,
    /// Audio level 0..=127 (-dBov; 0 is loudest) when present.
    pub audio_level: Option<u8>,
    /// Length of the payload that follows the header.
    pub payload_len: u32,
}

impl FrameHeader {
    /// Parse and validate a header from the first [`HEADER_LEN`] bytes of `buf`.
    ///
    /// Returns `NeedMore` when `buf` is shorter than a header. Bytes after the header are not
    /// looked at. Checks are made in byte order, so the first bad field decides the error.
    pub fn parse(buf: &[u8]) -> Result<Decoded<FrameHeader>, FrameError> {
        if buf.is_empty() {
            return Ok(Decoded::NeedMore(HEADER_LEN));
        }
        if buf[0] != VERSION {
            return Err(FrameError::BadVersion(buf[0]));
        }
        if buf.len() >= 2 && MediaKind::from_u8(buf[1]).is_none() {
            return Err(FrameError::UnknownKind(buf[1]));
        }
        if buf.len() < HEADER_LEN {
            return Ok(Decoded::NeedMore(HEADER_LEN - buf.len()));
        }
        let mut b = &buf[..HEADER_LEN];
        let _version = b.get_u8();
        let kind = MediaKind::from_u8(b.get_u8()).ok_or(FrameError::UnknownKind(buf[1]))?;
        let layer = b.get_u8();
        let flags = b.get_u8();
        let track_id = b.get_u32();
        let seq = b.get_u32();
        let capture_ts_us = b.get_u64();
        let level = b.get_u8();
        let r1 = b.get_u8();
        let r2 = b.get_u16();
        let payload_len = b.get_u32();
        if flags & !FLAGS_KNOWN != 0 || r1 != 0 || r2 != 0 {
            return Err(FrameError::ReservedBits);
        }
        let audio_level = if flags & FLAG_AUDIO_LEVEL != 0 {
            if level > MAX_AUDIO_LEVEL {
                return Err(FrameError::ReservedBits);
            }
            Some(level)
        } else {
            if level != 0 {
                return Err(FrameError::ReservedBits);
            }
            None
        };
        if payload_len as usize > MAX_PAYLOAD {
            return Err(FrameError::Oversized {
                len: payload_len as usize,
                max: MAX_PAYLOAD,
            });
        }
        Ok(Decoded::Complete(FrameHeader {
            kind,
            layer,
            keyframe: flags & FLAG_KEYFRAME != 0,
            track_id,
            seq,
            capture_ts_us,
            audio_level,
            payload_len,
        }))
    }

    /// Total encoded length of the frame this header describes.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }

    /// The flags byte.
    pub fn flags(&self) -> u8 {
        let mut f = 0;
        if self.keyframe {
            f |= FLAG_KEYFRAME;
        }
        if self.audio_level.is_some() {
            f |= FLAG_AUDIO_LEVEL;
        }
        f
    }

    /// Write the 28 header bytes. The caller is responsible for a valid `audio_level`
    /// (0..=127) and for `payload_len` matching the payload.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut w = &mut out[..];
        w.put_u8(VERSION);
        w.put_u8(self.kind.as_u8());
        w.put_u8(self.layer);
        w.put_u8(self.flags());
        w.put_u32(self.track_id);
        w.put_u32(self.seq);
        w.put_u64(self.capture_ts_us);
        w.put_u8(self.audio_level.unwrap_or(0));
        w.put_u8(0);
        w.put_u16(0);
        w.put_u32(self.payload_len);
        out
    }
}

/// A frame as a header plus a separate payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header; `payload_len` is overwritten from `payload` when encoding.
    pub header: FrameHeader,
    /// The codec payload (one Opus packet or one VP8 frame).
    pub payload: Bytes,
}

impl Frame {
    /// Build a frame; `header.payload_len` is set from the payload.
    pub fn new(mut header: FrameHeader, payload: Bytes) -> Self {
        header.payload_len = payload.len() as u32;
        Frame { header, payload }
    }

    /// Encode into the wire representation (one allocation, one copy of the payload).
    ///
    /// Fails with `Oversized` when the payload is above [`MAX_PAYLOAD`] and with
    /// `ReservedBits` when the audio level is above 127, so nothing this crate encodes is
    /// refused by its own decoder.
    pub fn encode(&self) -> Result<EncodedFrame, FrameError> {
        if self.payload.len() > MAX_PAYLOAD {
            return Err(FrameError::Oversized {
                len: self.payload.len(),
                max: MAX_PAYLOAD,
            });
        }
        if matches!(self.header.audio_level, Some(l) if l > MAX_AUDIO_LEVEL) {
            return Err(FrameError::ReservedBits);
        }
        let mut header = self.header;
        header.payload_len = self.payload.len() as u32;
        let mut buf = BytesMut::with_capacity(header.frame_len());
        buf.put_slice(&header.to_bytes());
        buf.put_slice(&self.payload);
        Ok(EncodedFrame {
            header,
            bytes: buf.freeze(),
        })
    }
}

/// A frame in its wire encoding, kept as one [`Bytes`] together with its parsed header.
///
/// Cloning is cheap (a reference count bump plus 32 bytes of header), which is how the SFU
/// fans a frame out to many subscribers without copying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    header: FrameHeader,
    bytes: Bytes,
}

impl EncodedFrame {
    /// Decode one complete message (a datagram, a WebSocket media message minus its type byte)
    /// that must hold exactly one frame. Zero-copy: the result shares `bytes`.
    pub fn decode(bytes: Bytes) -> Result<EncodedFrame, FrameError> {
        let header = match FrameHeader::parse(&bytes)? {
            Decoded::Complete(h) => h,
            Decoded::NeedMore(_) => {
                return Err(FrameError::Truncated {
                    need: HEADER_LEN,
                    have: bytes.len(),
                })
            }
        };
        let need = header.frame_len();
        if bytes.len() < need {
            return Err(FrameError::Truncated {
                need,
                have: bytes.len(),
            });
        }
        if bytes.len() > need {
            return Err(FrameError::TrailingBytes(bytes.len() - need));
        }
        Ok(EncodedFrame { header, bytes })
    }

    /// Decode from a borrowed slice (copies it once); convenient in tests and fuzzing.
    pub fn decode_slice(buf: &[u8]) -> Result<EncodedFrame, FrameError> {
        Self::decode(Bytes::copy_from_slice(buf))
    }

    /// The parsed header.
    pub fn header(&self) -> &FrameHeader {
        &self.header
    }

    /// The whole wire encoding (header and payload).
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Give up the header and keep the wire encoding.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Encoded length in bytes (header plus payload).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The payload, sharing the same buffer.
    pub fn payload(&self) -> Bytes {
        self.bytes.slice(HEADER_LEN..)
    }

    /// Split into header and payload (no copy).
    pub fn to_frame(&self) -> Frame {
        Frame {
            header: self.header,
            payload: self.payload(),
        }
    }
}

/// Incremental decoder for a byte stream carrying frames back to back (a WebTransport
/// unidirectional stream holds one group of pictures this way).
///
/// Feed bytes with [`StreamDecoder::push`] as they arrive and call
/// [`StreamDecoder::decode`] until it answers `NeedMore`. A frame's bytes are copied once,
/// into the decoder's buffer; the frame handed out shares that buffer. After an error the
/// stream is corrupt: the decoder keeps answering the same error and the caller should reset
/// the stream.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    buf: BytesMut,
    failed: Option<FrameError>,
}

impl StreamDecoder {
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

    /// Decode the next frame if it is complete.
    ///
    /// The header is validated as soon as its bytes are present, so an oversized or malformed
    /// frame is refused before its payload is buffered.
    pub fn decode(&mut self) -> Result<Decoded<EncodedFrame>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let header = match FrameHeader::parse(&self.buf) {
            Ok(Decoded::Complete(h)) => h,
            Ok(Decoded::NeedMore(n)) => return Ok(Decoded::NeedMore(n)),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = BytesMut::new();
                return Err(e);
            }
        };
        let need = header.frame_len();
        if self.buf.len() < need {
            self.buf.reserve(need - self.buf.len());
            return Ok(Decoded::NeedMore(need - self.buf.len()));
        }
        let bytes = self.buf.split_to(need).freeze();
        Ok(Decoded::Complete(EncodedFrame { header, bytes }))
    }

    /// True when the stream ended cleanly: no error and no partial frame buffered. Call when
    /// the peer finishes the stream.
    pub fn is_clean_end(&self) -> bool {
        self.failed.is_none() && self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> FrameHeader {
        FrameHeader {
            kind: MediaKind::Video,
            layer: 1,
            keyframe: true,
            track_id: 0x11,
            seq: 7,
            capture_ts_us: 1_000_000,
            audio_level: None,
            payload_len: 0,
        }
    }

    #[test]
    fn header_bytes_are_big_endian_at_contract_offsets() {
        let f = Frame::new(header(), Bytes::from_static(b"abc"))
            .encode()
            .unwrap();
        let b = f.as_bytes();
        assert_eq!(b.len(), HEADER_LEN + 3);
        assert_eq!(&b[0..4], &[1, 1, 1, 1]);
        assert_eq!(&b[4..8], &[0, 0, 0, 0x11]);
        assert_eq!(&b[8..12], &[0, 0, 0, 7]);
        assert_eq!(&b[12..20], &1_000_000u64.to_be_bytes());
        assert_eq!(&b[20..24], &[0, 0, 0, 0]);
        assert_eq!(&b[24..28], &[0, 0, 0, 3]);
        assert_eq!(&b[28..], b"abc");
    }

    #[test]
    fn decode_shares_the_buffer() {
        let f = Frame::new(header(), Bytes::from_static(b"payload"))
            .encode()
            .unwrap();
        let wire = f.as_bytes().clone();
        let d = EncodedFrame::decode(wire.clone()).unwrap();
        assert_eq!(d.as_bytes().as_ptr(), wire.as_ptr());
        assert_eq!(&d.payload()[..], b"payload");
        assert_eq!(d.header().payload_len, 7);
    }

    #[test]
    fn audio_level_flag_and_range() {
        let mut h = header();
        h.kind = MediaKind::Audio;
        h.audio_level = Some(127);
        let f = Frame::new(h, Bytes::new()).encode().unwrap();
        assert_eq!(f.as_bytes()[3], FLAG_KEYFRAME | FLAG_AUDIO_LEVEL);
        let mut raw = f.as_bytes().to_vec();
        raw[20] = 128;
        assert_eq!(
            EncodedFrame::decode_slice(&raw),
            Err(FrameError::ReservedBits)
        );
        raw[20] = 5;
        raw[3] = FLAG_KEYFRAME; // level byte set without the flag
        assert_eq!(
            EncodedFrame::decode_slice(&raw),
            Err(FrameError::ReservedBits)
        );
        h.audio_level = Some(200);
        assert_eq!(
            Frame::new(h, Bytes::new()).encode(),
            Err(FrameError::ReservedBits)
        );
    }

    #[test]
    fn errors_have_codes() {
        let ok = Frame::new(header(), Bytes::from_static(b"x"))
            .encode()
            .unwrap();
        let mut raw = ok.as_bytes().to_vec();
        raw[0] = 2;
        let e = EncodedFrame::decode_slice(&raw).unwrap_err();
        assert_eq!(e.code(), "bad_version");
        raw[0] = 1;
        raw[1] = 3;
        assert_eq!(
            EncodedFrame::decode_slice(&raw).unwrap_err().code(),
            "unknown_kind"
        );
        raw[1] = 1;
        raw[24..28].copy_from_slice(&((MAX_PAYLOAD as u32) + 1).to_be_bytes());
        assert_eq!(
            EncodedFrame::decode_slice(&raw).unwrap_err().code(),
            "oversized"
        );
        let ok = ok.as_bytes();
        assert_eq!(
            EncodedFrame::decode_slice(&ok[..ok.len() - 1])
                .unwrap_err()
                .code(),
            "truncated"
        );
        assert_eq!(
            EncodedFrame::decode_slice(&ok[..10]).unwrap_err().code(),
            "truncated"
        );
        let mut long = ok.to_vec();
        long.push(0);
        assert_eq!(
            EncodedFrame::decode_slice(&long).unwrap_err().code(),
            "trailing_bytes"
        );
        let mut r = ok.to_vec();
        r[3] |= 0x80;
        assert_eq!(
            EncodedFrame::decode_slice(&r).unwrap_err().code(),
            "reserved_bits"
        );
        let mut r = ok.to_vec();
        r[22] = 1;
        assert_eq!(
            EncodedFrame::decode_slice(&r).unwrap_err().code(),
            "reserved_bits"
        );
    }

    #[test]
    fn encode_refuses_oversized_payload() {
        let f = Frame::new(header(), Bytes::from(vec![0u8; MAX_PAYLOAD + 1]));
        assert!(matches!(f.encode(), Err(FrameError::Oversized { .. })));
        let f = Frame::new(header(), Bytes::from(vec![0u8; MAX_PAYLOAD]));
        assert_eq!(f.encode().unwrap().len(), MAX_FRAME_LEN);
    }

    #[test]
    fn stream_decoder_needs_more_then_completes() {
        let a = Frame::new(header(), Bytes::from_static(b"first"))
            .encode()
            .unwrap();
        let mut h2 = header();
        h2.keyframe = false;
        h2.seq = 8;
        let b = Frame::new(h2, Bytes::from_static(b"second!"))
            .encode()
            .unwrap();
        let mut wire = a.as_bytes().to_vec();
        wire.extend_from_slice(b.as_bytes());

        let mut d = StreamDecoder::new();
        assert_eq!(d.decode().unwrap(), Decoded::NeedMore(HEADER_LEN));
        d.push(&wire[..3]);
        assert_eq!(d.decode().unwrap(), Decoded::NeedMore(HEADER_LEN - 3));
        d.push(&wire[3..HEADER_LEN]);
        assert_eq!(d.decode().unwrap(), Decoded::NeedMore(5));
        d.push(&wire[HEADER_LEN..]);
        assert_eq!(d.decode().unwrap(), Decoded::Complete(a));
        assert_eq!(d.decode().unwrap(), Decoded::Complete(b));
        assert_eq!(d.decode().unwrap(), Decoded::NeedMore(HEADER_LEN));
        assert!(d.is_clean_end());
    }

    #[test]
    fn stream_decoder_rejects_oversized_header_early_and_stays_failed() {
        let mut raw = Frame::new(header(), Bytes::new())
            .encode()
            .unwrap()
            .as_bytes()
            .to_vec();
        raw[24..28].copy_from_slice(&u32::MAX.to_be_bytes());
        let mut d = StreamDecoder::new();
        d.push(&raw);
        assert!(matches!(d.decode(), Err(FrameError::Oversized { .. })));
        d.push(&[1, 2, 3]);
        assert!(matches!(d.decode(), Err(FrameError::Oversized { .. })));
        assert!(!d.is_clean_end());
    }
}
