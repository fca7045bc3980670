//! One participant's connection as the rooms see it: a bounded outgoing queue that the room
//! fills and the transport's writer drains, and, on WebTransport, a direct way out for audio.
//!
//! Audio is most of what a big meeting forwards (one frame per talker every 20 ms, to every
//! other participant). Waking the subscriber's writer task for each of those frames cost
//! more than the rest of the forwarding together, so a fresh audio frame is handed to QUIC
//! straight from the fan-out whenever no audio is waiting in the queue (see
//! [`ConnOut::set_direct`]). The queue still takes over whenever audio backs up, so the order
//! of audio, its bound and its age limit are unchanged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use quicmeet_proto::EncodedFrame;
use quicmeet_sfu::{
    bwe::TransportStats, ConnId, Popped, Pushed, QueueConfig, QueueEvent, QueueStats,
    SubscriberQueue,
};
use smallvec::SmallVec;
use tokio::sync::Notify;

/// How a participant is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebTransport,
    WebSocket,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::WebTransport => "webtransport",
            Transport::WebSocket => "websocket",
        }
    }
}

/// A transport's unreliable, non-blocking way to send one audio frame at once (WebTransport
/// datagrams). It never waits: QUIC buffers the datagram (boundedly) and its connection task
/// sends it.
pub trait DirectSink: Send + Sync {
    /// True when the transport took the frame; false (too large for a datagram, connection
    /// gone) leaves the frame to the queue and the writer, which know what to do with it.
    /// `wire` is the frame's framing for the transport, shared by all its subscribers.
    fn send(&self, frame: &EncodedFrame, wire: &mut WireCache) -> bool;
}

/// One frame put into a transport's own framing (a WebTransport datagram is the session's
/// quarter stream id, then the frame). The fan-out keeps one per frame and hands the frame to
/// all its subscribers with it; their sessions nearly always share the prefix, so the framed
/// copy is made once per frame instead of once per subscriber.
#[derive(Default)]
pub struct WireCache {
    prefix: SmallVec<[u8; 8]>,
    framed: Bytes,
}

impl WireCache {
    /// `frame` (always the same frame for one cache) behind `prefix`, copied only the first
    /// time or when the prefix differs from the last one.
    pub fn framed(&mut self, prefix: &[u8], frame: &Bytes) -> Bytes {
        if self.framed.is_empty() || self.prefix.as_slice() != prefix {
            let mut b = bytes::BytesMut::with_capacity(prefix.len() + frame.len());
            b.extend_from_slice(prefix);
            b.extend_from_slice(frame);
            self.framed = b.freeze();
            self.prefix = prefix.into();
        }
        self.framed.clone()
    }
}

/// The outgoing side of a connection, shared by its room (producer) and its writer (consumer).
///
/// The queue's lock is held for one push or one pop: the room and the writer are the only
/// two parties, so it is rarely contended (measured in `benches/`).
pub struct ConnOut {
    pub id: ConnId,
    pub transport: Transport,
    queue: Mutex<SubscriberQueue>,
    notify: Notify,
    closing: AtomicBool,
    reason: Mutex<Option<&'static str>>,
    /// Tracks whose current group must be reset (WebTransport).
    resets: Mutex<SmallVec<[u32; 4]>>,
    /// Times the transport could not keep up (WebTransport group streams reset for backlog).
    transport_lag: AtomicU64,
    /// Tracks the queue cut back while popping (video that waited too long): the writer
    /// tells the room, which asks for a keyframe and counts it as lag.
    lagged: Mutex<SmallVec<[u32; 4]>>,
    /// Bytes handed to the transport so far (the drain rate, for the bandwidth estimate).
    drained: AtomicU64,
    /// Flushes the bandwidth estimate asked for so far, and whether the writer must still
    /// drop the video its transport buffered (see [`ConnOut::note_flushes`]).
    flushes_seen: AtomicU64,
    flush: AtomicBool,
    /// Where fresh audio goes without the writer, once the transport set it.
    direct: OnceLock<Box<dyn DirectSink>>,
}

impl ConnOut {
    pub fn new(id: ConnId, transport: Transport) -> Self {
        let config = match transport {
            // TCP blocks: keep the queue short so audio stays fresh and video drops early
            // (256 KiB is about a second of 720p video).
            Transport::WebSocket => QueueConfig {
                max_video_bytes: 256 * 1024,
                ..QueueConfig::default()
            },
            // QUIC streams buffer in the transport; this queue only smooths scheduling.
            Transport::WebTransport => QueueConfig {
                max_video: 240,
                max_video_bytes: 2 * 1024 * 1024,
                ..QueueConfig::default()
            },
        };
        Self {
            id,
            transport,
            queue: Mutex::new(SubscriberQueue::new(config)),
            notify: Notify::new(),
            closing: AtomicBool::new(false),
            reason: Mutex::new(None),
            resets: Mutex::new(SmallVec::new()),
            transport_lag: AtomicU64::new(0),
            lagged: Mutex::new(SmallVec::new()),
            drained: AtomicU64::new(0),
            flushes_seen: AtomicU64::new(0),
            flush: AtomicBool::new(false),
            direct: OnceLock::new(),
        }
    }

    /// Lets the fan-out send fresh audio straight to the transport (set once, by a transport
    /// whose audio is unreliable and unordered anyway: WebTransport datagrams).
    pub fn set_direct(&self, sink: Box<dyn DirectSink>) {
        let _ = self.direct.set(sink);
    }

    /// Queues an encoded control message (JSON body). False when the control queue overflowed:
    /// the subscriber is hopelessly behind and gets disconnected.
    pub fn push_control(&self, json: Bytes) -> bool {
        let ok = self.queue.lock().push_control(json).is_ok();
        if !ok {
            self.close("slow_consumer");
        }
        self.notify.notify_one();
        ok
    }

    /// Queues a media frame, or sends a fresh audio frame at once (see the module docs);
    /// returns what happened and how many frames were dropped doing it (the pushed one, or
    /// older ones evicted for it), and collects the queue's events.
    pub fn push_media(
        &self,
        frame: EncodedFrame,
        events: &mut SmallVec<[QueueEvent; 2]>,
        wire: &mut WireCache,
    ) -> (Pushed, u64) {
        let audio = !frame.header().kind.is_video();
        let (pushed, evicted) = {
            let mut q = self.queue.lock();
            // Only while no audio waits, so audio never overtakes audio; the lock is held
            // across the hand-over so the writer cannot pop audio in between.
            if audio && q.audio_len() == 0 && !self.is_closing() {
                if let Some(sink) = self.direct.get() {
                    if sink.send(&frame, wire) {
                        drop(q);
                        self.drained
                            .fetch_add(frame.len() as u64, Ordering::Relaxed);
                        return (Pushed::Queued, 0);
                    }
                }
            }
            let before = q.dropped_frames();
            let p = q.push_media_at(frame, Instant::now());
            while let Some(e) = q.poll_event() {
                events.push(e);
            }
            // Frames dropped by this push, the pushed one included when it was refused:
            // older queued frames evicted to make room count too.
            (p, q.dropped_frames() - before)
        };
        for e in events.iter() {
            if let QueueEvent::ResetGroup { track_id } = e {
                let mut r = self.resets.lock();
                if !r.contains(track_id) {
                    r.push(*track_id);
                }
            }
        }
        self.notify.notify_one();
        (pushed, evicted)
    }

    /// Next item to send, control first, then audio, then video. Audio that waited too long
    /// is dropped here rather than sent late, and video that waited too long cuts its track
    /// back to the next keyframe (see [`ConnOut::take_lagged`]).
    pub fn pop(&self) -> Option<Popped> {
        let mut one = SmallVec::<[Popped; 1]>::new();
        self.pop_batch(&mut one, 1);
        one.pop()
    }

    /// Takes up to `max` items in send order (as [`ConnOut::pop`]) under one lock and one
    /// clock reading: a writer woken once sends everything that arrived meanwhile.
    pub fn pop_batch<A: smallvec::Array<Item = Popped>>(
        &self,
        batch: &mut SmallVec<A>,
        max: usize,
    ) {
        let mut drained = 0u64;
        let mut q = self.queue.lock();
        let now = Instant::now();
        while batch.len() < max {
            let Some(item) = q.pop_at(now) else { break };
            if let Popped::Media { frame, .. } = &item {
                drained += frame.len() as u64;
            }
            batch.push(item);
        }
        while let Some(e) = q.poll_event() {
            match e {
                QueueEvent::NeedKeyframe { track_id, .. } => {
                    let mut l = self.lagged.lock();
                    if !l.contains(&track_id) {
                        l.push(track_id);
                    }
                }
                QueueEvent::ResetGroup { track_id } => {
                    let mut r = self.resets.lock();
                    if !r.contains(&track_id) {
                        r.push(track_id);
                    }
                }
            }
        }
        drop(q);
        if drained > 0 {
            self.drained.fetch_add(drained, Ordering::Relaxed);
        }
    }

    /// Tracks cut back while popping since the last call.
    pub fn take_lagged(&self) -> SmallVec<[u32; 4]> {
        std::mem::take(&mut *self.lagged.lock())
    }

    /// What the queue knows about the downlink: bytes drained so far, bytes waiting, and how
    /// often the pacer held video back.
    pub fn queue_sample(&self) -> TransportStats {
        let (queued, paced) = {
            let q = self.queue.lock();
            (q.bytes() as u64, q.stats().paced)
        };
        TransportStats {
            drained_bytes: Some(self.drained.load(Ordering::Relaxed)),
            queued_bytes: Some(queued),
            paced: Some(paced),
            ..TransportStats::default()
        }
    }

    /// Paces this subscriber's video at `bps` (`None`: unpaced), as the room's bandwidth
    /// policy says. Wakes the writer, which may now send video it held back.
    pub fn set_video_pace(&self, bps: Option<u64>) {
        let mut q = self.queue.lock();
        let before = q.paced_until();
        q.set_video_pace(bps, Instant::now());
        if before.is_some() {
            drop(q);
            self.notify.notify_one();
        }
    }

    /// The room's bandwidth estimate has asked for `flushes` flushes so far: when that grew,
    /// the bottleneck's queue is full and the video the transport already buffered (handed
    /// over unpaced, before the cut) must go rather than keep it full in front of the audio.
    /// Wakes the writer, which resets its video streams (see [`ConnOut::take_flush`]).
    pub fn note_flushes(&self, flushes: u64) {
        if self.flushes_seen.fetch_max(flushes, Ordering::Relaxed) < flushes {
            self.flush.store(true, Ordering::Relaxed);
            self.notify.notify_one();
        }
    }

    /// Whether the writer must drop the video its transport buffered (once per flush the estimate asked for).
    pub fn take_flush(&self) -> bool {
        self.flush.swap(false, Ordering::Relaxed)
    }

    /// When the writer should try again for video the pacer holds back now.
    pub fn paced_until(&self) -> Option<Instant> {
        self.queue.lock().paced_until()
    }

    /// Tracks whose group stream should be reset now.
    pub fn take_resets(&self) -> SmallVec<[u32; 4]> {
        std::mem::take(&mut *self.resets.lock())
    }

    /// Forgets a track (unsubscribed or unpublished).
    pub fn forget_track(&self, track_id: u32) {
        self.queue.lock().forget_track(track_id);
    }

    /// Records that the transport could not keep up with this subscriber.
    pub fn note_lag(&self) {
        self.transport_lag.fetch_add(1, Ordering::Relaxed);
    }

    /// Monotonic count of signs that this subscriber cannot keep up: video the queue had to
    /// drop plus transport backlog resets. The layer controller watches its growth.
    pub fn lag_events(&self) -> u64 {
        let s = self.queue.lock().stats();
        s.keyframes_needed + self.transport_lag.load(Ordering::Relaxed)
    }

    pub fn queue_stats(&self) -> QueueStats {
        self.queue.lock().stats()
    }

    /// Asks the writer to flush what is queued and close, for `reason`.
    pub fn close(&self, reason: &'static str) {
        let mut r = self.reason.lock();
        if r.is_none() {
            *r = Some(reason);
        }
        self.closing.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub fn close_reason(&self) -> Option<&'static str> {
        *self.reason.lock()
    }

    /// Waits until something was queued or the connection is closing.
    pub async fn wait(&self) {
        self.notify.notified().await
    }
}

/// Counts a client's protocol errors; too many in a short time means it is broken or hostile.
pub struct Strikes {
    count: u32,
    window_start: std::time::Instant,
}

impl Default for Strikes {
    fn default() -> Self {
        Self {
            count: 0,
            window_start: std::time::Instant::now(),
        }
    }
}

impl Strikes {
    /// Maximum protocol errors tolerated within ten seconds.
    pub const LIMIT: u32 = 20;

    /// Records one error; true when the connection should be dropped.
    pub fn hit(&mut self) -> bool {
        let now = std::time::Instant::now();
        if now.duration_since(self.window_start) > std::time::Duration::from_secs(10) {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count > Self::LIMIT
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{atomic::Ordering, Arc};

    use quicmeet_proto::MediaKind;
    use quicmeet_sfu::{ConnId, Popped};
    use smallvec::SmallVec;

    use super::{ConnOut, Transport, WireCache};
    use crate::media::fanout::tests::{frame, Recorder};

    #[test]
    fn audio_never_overtakes_queued_audio() {
        let rec = Arc::new(Recorder::default());
        let out = ConnOut::new(ConnId(1), Transport::WebTransport);
        out.set_direct(Box::new(rec.clone()));
        let push = |seq| {
            let mut ev = SmallVec::new();
            out.push_media(
                frame(MediaKind::Audio, 17, seq),
                &mut ev,
                &mut WireCache::default(),
            )
        };
        // The transport refuses frame 0 (say, too large): it waits in the queue, and so
        // does frame 1 although the transport would take it.
        rec.refuse.store(true, Ordering::Relaxed);
        push(0);
        rec.refuse.store(false, Ordering::Relaxed);
        push(1);
        assert!(rec.sent.lock().is_empty());
        let seqs: Vec<u32> = std::iter::from_fn(|| out.pop())
            .map(|p| match p {
                Popped::Media { frame, .. } => frame.header().seq,
                Popped::Control(_) => u32::MAX,
            })
            .collect();
        assert_eq!(seqs, [0, 1]);
        // Queue empty again: fresh audio goes straight out, and counts as drained.
        push(2);
        assert_eq!(rec.sent.lock().len(), 1);
        assert!(out.pop().is_none());
        assert!(out.queue_sample().drained_bytes.unwrap() > 0);
    }

    #[test]
    fn video_always_takes_the_queue() {
        let rec = Arc::new(Recorder::default());
        let out = ConnOut::new(ConnId(1), Transport::WebTransport);
        out.set_direct(Box::new(rec.clone()));
        let mut ev = SmallVec::new();
        out.push_media(
            frame(MediaKind::Video, 33, 0),
            &mut ev,
            &mut WireCache::default(),
        );
        assert!(rec.sent.lock().is_empty());
        assert!(matches!(out.pop(), Some(Popped::Media { .. })));
    }
}
