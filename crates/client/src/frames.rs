//! Building media frames: a per-track publisher that numbers frames, and a one-shot builder
//! for tests.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use quicmeet_proto::frame::HEADER_LEN;
use quicmeet_proto::{EncodedFrame, Frame, FrameError, FrameHeader, MediaKind};

/// Wall-clock time in microseconds since the Unix epoch, the clock the client puts in
/// `capture_ts_us`, so that a receiver on the same machine can compute one-way latency.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Build one encoded frame (one copy of the payload).
pub fn build_frame(
    kind: MediaKind,
    track_id: u32,
    seq: u32,
    keyframe: bool,
    capture_ts_us: u64,
    payload: &[u8],
) -> Result<EncodedFrame, FrameError> {
    Frame::new(
        FrameHeader {
            kind,
            layer: 0,
            keyframe,
            track_id,
            seq,
            capture_ts_us,
            audio_level: None,
            payload_len: 0,
        },
        Bytes::copy_from_slice(payload),
    )
    .encode()
}

/// Numbers the frames of one track: `seq` counts up from 0 and `capture_ts_us` is
/// [`now_us`] unless given. Encodes into one reusable buffer, so a steady stream of frames
/// costs one allocation per buffer refill rather than one per frame.
#[derive(Debug)]
pub struct TrackPublisher {
    track_id: u32,
    kind: MediaKind,
    layer: u8,
    next_seq: u32,
    audio_level: Option<u8>,
    buf: BytesMut,
}

impl TrackPublisher {
    /// A publisher for `track_id` (`participant_id * 16 + slot`) of this kind.
    pub fn new(track_id: u32, kind: MediaKind) -> Self {
        TrackPublisher {
            track_id,
            kind,
            layer: 0,
            next_seq: 0,
            audio_level: None,
            buf: BytesMut::new(),
        }
    }

    /// A publisher for a lower layer (1 half, 2 quarter) of a video track that the server
    /// asked this client to make (`produce_layer`, PROTOCOL.md §5.6). The layer has its own
    /// `seq` from 0; its first frame must be a keyframe.
    pub fn for_layer(track_id: u32, kind: MediaKind, layer: u8) -> Self {
        TrackPublisher {
            layer,
            ..TrackPublisher::new(track_id, kind)
        }
    }

    /// The layer this publisher's frames carry.
    pub fn layer(&self) -> u8 {
        self.layer
    }

    /// The track id.
    pub fn track_id(&self) -> u32 {
        self.track_id
    }

    /// The media kind.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// The sequence number the next frame gets.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Put this audio level (0..=127, -dBov) in the following frames; `None` leaves it out.
    pub fn set_audio_level(&mut self, level: Option<u8>) {
        self.audio_level = level;
    }

    /// The next frame, stamped with [`now_us`].
    pub fn frame(&mut self, keyframe: bool, payload: &[u8]) -> Result<EncodedFrame, FrameError> {
        self.frame_at(keyframe, now_us(), payload)
    }

    /// The next frame with an explicit capture time.
    pub fn frame_at(
        &mut self,
        keyframe: bool,
        capture_ts_us: u64,
        payload: &[u8],
    ) -> Result<EncodedFrame, FrameError> {
        if payload.len() > quicmeet_proto::frame::MAX_PAYLOAD {
            return Err(FrameError::Oversized {
                len: payload.len(),
                max: quicmeet_proto::frame::MAX_PAYLOAD,
            });
        }
        let header = FrameHeader {
            kind: self.kind,
            layer: self.layer,
            keyframe,
            track_id: self.track_id,
            seq: self.next_seq,
            capture_ts_us,
            audio_level: self.audio_level.map(|l| l.min(127)),
            payload_len: payload.len() as u32,
        };
        let need = HEADER_LEN + payload.len();
        if self.buf.capacity() < need {
            self.buf.reserve(need.max(64 * 1024));
        }
        self.buf.put_slice(&header.to_bytes());
        self.buf.put_slice(payload);
        let bytes = self.buf.split().freeze();
        self.next_seq = self.next_seq.wrapping_add(1);
        EncodedFrame::decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publisher_numbers_frames_and_round_trips() {
        let mut p = TrackPublisher::new(33, MediaKind::Video);
        let a = p.frame_at(true, 5, b"key").unwrap();
        let b = p.frame_at(false, 6, b"delta").unwrap();
        assert_eq!((a.header().seq, b.header().seq), (0, 1));
        assert!(a.header().keyframe && !b.header().keyframe);
        assert_eq!(&b.payload()[..], b"delta");
        let c = build_frame(MediaKind::Video, 33, 1, false, 6, b"delta").unwrap();
        assert_eq!(b.as_bytes(), c.as_bytes());
        let mut audio = TrackPublisher::new(32, MediaKind::Audio);
        audio.set_audio_level(Some(200));
        let f = audio.frame(false, b"opus").unwrap();
        assert_eq!(f.header().audio_level, Some(127));
    }
}
