//! Media batches on the NATS hop (docs/CLUSTER.md section 7): the frames one node sends
//! another, several per NATS message.
//!
//! A batch is 1 to [`MAX_FRAMES`] frames back to back, each in the unchanged frame encoding
//! of PROTOCOL.md section 1; a frame's header says how long it is, so a batch needs no
//! framing of its own and a receiver takes its frames out without copying. A batch is closed
//! before it would pass [`MAX_BYTES`] (a frame larger than that goes alone).
//!
//! Batching never delays a frame: the link publishes every batch it started in the same turn
//! that took its frames off the outgoing queue ([`drain`]), so a batch only holds frames that
//! were already waiting together. Order inside a batch is the queue's order (audio first).
//!
//! Pure: no I/O, no clock. A malformed batch is refused as a whole, never half applied.

use std::{collections::HashMap, sync::Arc, time::Instant};

use bytes::{Bytes, BytesMut};
use quicmeet_proto::{frame::FrameHeader, Decoded, EncodedFrame};

use super::{
    media_queue::{Dropped, MediaQueue},
    wire::Want,
};

/// The nodes a frame goes to (shared by every frame of one track layer): node ids, or
/// [`SHARED`] alone.
pub type Dests = Arc<[String]>;

/// The destination "every node that wants any of this node's media" (its shared subject).
/// Not a node id (`*` is outside their grammar), so it never names one.
pub const SHARED: &str = "*";

/// A batch ready to publish to node `dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub dest: String,
    pub frames: usize,
    pub bytes: Bytes,
}

/// Frames per batch at most.
pub const MAX_FRAMES: usize = 64;
/// Bytes per batch at most, unless its only frame is larger.
pub const MAX_BYTES: usize = 64 * 1024;

/// Why a received batch was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("empty batch")]
    Empty,
    #[error("more than {MAX_FRAMES} frames in a batch")]
    TooManyFrames,
    #[error("frame {index} of the batch: {reason}")]
    BadFrame { index: usize, reason: String },
}

/// Takes a batch apart. Every frame shares `bytes`; any bad frame, a truncated last frame or
/// too many frames refuse the whole batch.
pub fn split(bytes: Bytes) -> Result<Vec<EncodedFrame>, BatchError> {
    if bytes.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if frames.len() == MAX_FRAMES {
            return Err(BatchError::TooManyFrames);
        }
        let bad = |reason: String| BatchError::BadFrame {
            index: frames.len(),
            reason,
        };
        let len = match FrameHeader::parse(&bytes[at..]) {
            Ok(Decoded::Complete(h)) => h.frame_len(),
            Ok(Decoded::NeedMore(_)) => return Err(bad("truncated header".into())),
            Err(e) => return Err(bad(e.to_string())),
        };
        let end = at
            .checked_add(len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| bad("truncated payload".into()))?;
        let f = EncodedFrame::decode(bytes.slice(at..end)).map_err(|e| bad(e.to_string()))?;
        frames.push(f);
        at = end;
    }
    Ok(frames)
}

/// One batch being filled.
#[derive(Debug, Default)]
struct Open {
    buf: BytesMut,
    frames: usize,
}

impl Open {
    fn fits(&self, len: usize) -> bool {
        self.frames == 0 || (self.frames < MAX_FRAMES && self.buf.len() + len <= MAX_BYTES)
    }

    fn take(&mut self, dest: &str) -> Batch {
        let frames = std::mem::take(&mut self.frames);
        Batch {
            dest: dest.to_owned(),
            frames,
            bytes: self.buf.split().freeze(),
        }
    }
}

/// Batches being filled, one per destination (a node id or [`SHARED`]).
#[derive(Debug, Default)]
pub struct Batcher {
    open: Vec<(String, Open)>,
}

impl Batcher {
    /// Adds `frame` to the batch for `dest`; returns that destination's previous batch when
    /// the frame did not fit in it any more (to publish now).
    pub fn add(&mut self, dest: &str, frame: &EncodedFrame) -> Option<Batch> {
        let i = match self.open.iter().position(|(d, _)| d == dest) {
            Some(i) => i,
            None => {
                self.open.push((dest.to_owned(), Open::default()));
                self.open.len() - 1
            }
        };
        let (d, open) = &mut self.open[i];
        let full = (!open.fits(frame.len())).then(|| open.take(d));
        open.buf.extend_from_slice(frame.as_bytes());
        open.frames += 1;
        full
    }

    /// Every batch started, each once; the batcher is empty afterwards (its buffers stay).
    pub fn finish(&mut self) -> impl Iterator<Item = Batch> + '_ {
        self.open
            .iter_mut()
            .filter(|(_, o)| o.frames > 0)
            .map(|(d, o)| o.take(d))
    }

    /// Forgets the buffers of destinations with nothing open (nodes that left keep none).
    pub fn forget_idle(&mut self) {
        self.open.retain(|(_, o)| o.frames > 0);
    }
}

/// Where each (track, layer) of this node goes, from what each other node wants of this
/// node's tracks: a layer that every node wanting anything wants goes once to [`SHARED`]
/// (NATS copies it to each); any other layer goes to each node that wants it, by name.
pub fn destinations(wants_of: &HashMap<String, Vec<Want>>) -> HashMap<(u32, u8), Dests> {
    let mut by_layer: HashMap<(u32, u8), Vec<String>> = HashMap::new();
    for (node, wants) in wants_of {
        for w in wants {
            for l in (0..=quicmeet_sfu::MAX_LAYER).filter(|l| w.layers & (1 << l) != 0) {
                by_layer
                    .entry((w.track_id, l))
                    .or_default()
                    .push(node.clone());
            }
        }
    }
    let mut wanting: Vec<&String> = wants_of
        .iter()
        .filter(|(_, w)| w.iter().any(|w| w.layers != 0))
        .map(|(n, _)| n)
        .collect();
    wanting.sort();
    let shared = Dests::from(vec![SHARED.to_owned()]);
    by_layer
        .into_iter()
        .map(|(k, mut nodes)| {
            nodes.sort();
            let to = if nodes.iter().eq(wanting.iter().copied()) {
                shared.clone()
            } else {
                Dests::from(nodes)
            };
            (k, to)
        })
        .collect()
}

/// Takes up to `max` frames off `queue` (audio first, stale audio dropped: the queue's
/// rules) and appends every batch they make to `out`, the unfilled ones included: nothing
/// stays behind to wait for more frames.
pub fn drain(
    queue: &mut MediaQueue<Dests>,
    batcher: &mut Batcher,
    now: Instant,
    max: usize,
    out: &mut Vec<Batch>,
) -> Dropped {
    let mut dropped = Dropped::default();
    for _ in 0..max {
        let (next, d) = queue.pop(now);
        dropped.audio += d.audio;
        dropped.video += d.video;
        let Some((frame, dests)) = next else { break };
        for dest in dests.iter() {
            out.extend(batcher.add(dest, &frame));
        }
    }
    out.extend(batcher.finish());
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use quicmeet_proto::{frame::HEADER_LEN, Frame, MediaKind};

    fn frame(kind: MediaKind, track_id: u32, seq: u32, len: usize) -> EncodedFrame {
        let h = FrameHeader {
            kind,
            layer: 0,
            keyframe: seq == 0,
            audio_level: (kind == MediaKind::Audio).then_some(9),
            track_id,
            seq,
            capture_ts_us: 1_000 * u64::from(seq),
            payload_len: 0,
        };
        let payload: Vec<u8> = (0..len).map(|i| (i as u32 ^ seq) as u8).collect();
        Frame::new(h, Bytes::from(payload)).encode().unwrap()
    }

    fn all(b: &mut Batcher) -> Vec<Batch> {
        b.finish().collect()
    }

    #[test]
    fn frames_come_out_of_a_batch_byte_exact_and_in_order() {
        let sent = vec![
            frame(MediaKind::Audio, 16, 1, 80),
            frame(MediaKind::Audio, 32, 7, 0),
            frame(MediaKind::Video, 17, 0, 3_000),
            frame(MediaKind::Screen, 18, 2, 1),
        ];
        let mut b = Batcher::default();
        for f in &sent {
            assert!(b.add("node-b", f).is_none());
        }
        let out = all(&mut b);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].dest, "node-b");
        assert_eq!(out[0].frames, sent.len());
        let total: usize = sent.iter().map(EncodedFrame::len).sum();
        assert_eq!(out[0].bytes.len(), total, "no bytes of its own");
        let got = split(out[0].bytes.clone()).unwrap();
        assert_eq!(got, sent);
        assert!(all(&mut b).is_empty(), "each batch is handed out once");
    }

    #[test]
    fn each_destination_gets_only_its_own_frames() {
        let a = frame(MediaKind::Audio, 16, 1, 10);
        let v = frame(MediaKind::Video, 17, 1, 10);
        let mut b = Batcher::default();
        b.add("n1", &a);
        b.add("n2", &v);
        b.add("n1", &v);
        let out = all(&mut b);
        let of = |d: &str| split(out.iter().find(|b| b.dest == d).unwrap().bytes.clone()).unwrap();
        assert_eq!(of("n1"), [a.clone(), v.clone()]);
        assert_eq!(of("n2"), [v]);
    }

    #[test]
    fn batches_stay_within_their_bounds_and_lose_nothing() {
        let mut b = Batcher::default();
        let mut published = Vec::new();
        let mut sent = Vec::new();
        // Many small frames (the frame count bound), then large ones (the byte bound), then
        // one larger than a whole batch (alone).
        for seq in 0..200u32 {
            sent.push(frame(MediaKind::Audio, 16, seq, 20));
        }
        for seq in 0..50u32 {
            sent.push(frame(MediaKind::Video, 17, seq, 9_000));
        }
        sent.push(frame(MediaKind::Video, 17, 50, MAX_BYTES + 1));
        sent.push(frame(MediaKind::Audio, 16, 200, 20));
        for f in &sent {
            published.extend(b.add("n", f));
        }
        published.extend(all(&mut b));
        let mut got = Vec::new();
        for b in &published {
            let frames = split(b.bytes.clone()).unwrap();
            assert_eq!(frames.len(), b.frames);
            assert!((1..=MAX_FRAMES).contains(&frames.len()));
            assert!(
                b.bytes.len() <= MAX_BYTES || frames.len() == 1,
                "{}",
                b.bytes.len()
            );
            got.extend(frames);
        }
        assert_eq!(got, sent);
        // The small frames fill whole batches by count, the large ones by bytes, and the
        // oversized one travels alone.
        let least = 200 / MAX_FRAMES + 50 * 9_000 / MAX_BYTES + 1;
        assert!(published.len() >= least, "{}", published.len());
    }

    #[test]
    fn malformed_batches_are_refused_whole_without_panic() {
        let good = frame(MediaKind::Audio, 16, 1, 40);
        let mut two = BytesMut::new();
        two.extend_from_slice(good.as_bytes());
        two.extend_from_slice(good.as_bytes());
        let two = two.freeze();
        assert_eq!(split(two.clone()).unwrap().len(), 2);

        assert_eq!(split(Bytes::new()), Err(BatchError::Empty));
        // A frame cut anywhere: in its header or its payload.
        for cut in [1, HEADER_LEN - 1, HEADER_LEN, two.len() - 1] {
            let e = split(two.slice(..cut)).unwrap_err();
            assert!(matches!(e, BatchError::BadFrame { .. }), "{cut}: {e:?}");
        }
        // Garbage after a good frame refuses the good frame too.
        let mut tail = BytesMut::from(good.as_bytes().as_ref());
        tail.extend_from_slice(&[0xff; 40]);
        assert_eq!(
            split(tail.freeze()),
            Err(BatchError::BadFrame {
                index: 1,
                reason: quicmeet_proto::FrameError::BadVersion(0xff).to_string()
            })
        );
        // A header that claims more payload than there is.
        let mut long = BytesMut::from(good.as_bytes().as_ref());
        long[24..28].copy_from_slice(&1_000u32.to_be_bytes());
        assert!(split(long.freeze()).is_err());
        // Too many (empty-payload) frames.
        let tiny = frame(MediaKind::Audio, 16, 1, 0);
        let mut many = BytesMut::new();
        for _ in 0..=MAX_FRAMES {
            many.extend_from_slice(tiny.as_bytes());
        }
        assert_eq!(split(many.freeze()), Err(BatchError::TooManyFrames));
        // Every prefix and a byte flipped anywhere: an error or frames, never a panic.
        for cut in 0..two.len() {
            let _ = split(two.slice(..cut));
        }
        for i in 0..HEADER_LEN {
            let mut m = BytesMut::from(two.as_ref());
            m[i] ^= 0xa5;
            let _ = split(m.freeze());
        }
    }

    #[test]
    fn a_drain_sends_audio_first_and_keeps_nothing_back() {
        use std::time::Duration;
        let t = Instant::now();
        let both: Dests = Arc::from(vec!["n1".to_owned(), "n2".to_owned()]);
        let one: Dests = Arc::from(vec!["n2".to_owned()]);
        let mut q = MediaQueue::default();
        let v1 = frame(MediaKind::Video, 17, 1, 2_000);
        let v2 = frame(MediaKind::Video, 33, 1, 2_000);
        let stale = frame(MediaKind::Audio, 16, 1, 60);
        let a = frame(MediaKind::Audio, 16, 2, 60);
        q.push(v1.clone(), both.clone(), t);
        q.push(stale, both.clone(), t);
        q.push(v2.clone(), one, t + Duration::from_millis(160));
        q.push(a.clone(), both, t + Duration::from_millis(160));
        let mut b = Batcher::default();
        let mut out = Vec::new();
        let d = drain(
            &mut q,
            &mut b,
            t + Duration::from_millis(160),
            100,
            &mut out,
        );
        assert_eq!(
            d,
            Dropped { audio: 1, video: 0 },
            "audio past its age is not sent"
        );
        assert!(q.is_empty());
        let of = |n: &str| split(out.iter().find(|x| x.dest == n).unwrap().bytes.clone());
        assert_eq!(of("n1").unwrap(), [a.clone(), v1.clone()]);
        assert_eq!(of("n2").unwrap(), [a.clone(), v1, v2]);
        assert_eq!(out.len(), 2);

        // A lone audio frame leaves in the same drain that took it: no batch waits for more.
        let mut out = Vec::new();
        q.push(a.clone(), Arc::from(vec!["n1".to_owned()]), t);
        drain(&mut q, &mut b, t, 100, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(split(out[0].bytes.clone()).unwrap(), [a]);
        assert_eq!(b.finish().count(), 0);

        // A drain takes at most `max` frames; the rest waits for the next one, in order.
        for seq in 0..10 {
            q.push(
                frame(MediaKind::Video, 17, seq, 10),
                Arc::from(vec!["n1".to_owned()]),
                t,
            );
        }
        let mut out = Vec::new();
        drain(&mut q, &mut b, t, 4, &mut out);
        assert_eq!(out.iter().map(|b| b.frames).sum::<usize>(), 4);
        assert!(!q.is_empty());
        drain(&mut q, &mut b, t, 100, &mut out);
        let seqs: Vec<u32> = out
            .iter()
            .flat_map(|b| split(b.bytes.clone()).unwrap())
            .map(|f| f.header().seq)
            .collect();
        assert_eq!(seqs, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_layer_every_wanting_node_wants_is_sent_once_others_by_name() {
        let want = |track_id, layers| Want { track_id, layers };
        let mut wants_of = HashMap::new();
        // n1 wants track 17 at layers 0 and 1 and track 33 at 0; n2 wants 17 at layer 0 only;
        // n3 wants nothing of ours.
        wants_of.insert("n1".to_owned(), vec![want(17, 0b11), want(33, 0b1)]);
        wants_of.insert("n2".to_owned(), vec![want(17, 0b1)]);
        wants_of.insert("n3".to_owned(), vec![]);
        let d = destinations(&wants_of);
        let names = |k| d[&k].iter().cloned().collect::<Vec<String>>();
        assert_eq!(names((17, 0)), [SHARED]);
        assert_eq!(names((17, 1)), ["n1"]);
        assert_eq!(names((33, 0)), ["n1"]);
        assert_eq!(d.len(), 3, "nothing nobody asked for");
        // One node wanting: its layers go shared (its one subscription covers both).
        wants_of.remove("n2");
        let d = destinations(&wants_of);
        assert_eq!(d[&(17, 1)].as_ref(), [SHARED.to_owned()]);
        assert!(destinations(&HashMap::new()).is_empty());
    }
}
