//! One participant's connection as the rooms see it: a bounded outgoing queue that the room
//! fills and the transport's writer drains.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
        }
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

    /// Queues a media frame; returns what the queue did and how many frames it dropped doing
    /// it (the pushed one, or older ones evicted for it), and collects its events.
    pub fn push_media(
        &self,
        frame: EncodedFrame,
        events: &mut SmallVec<[QueueEvent; 2]>,
    ) -> (Pushed, u64) {
        let (pushed, evicted) = {
            let mut q = self.queue.lock();
            let before = q.stats();
            let p = q.push_media_at(frame, Instant::now());
            let after = q.stats();
            while let Some(e) = q.poll_event() {
                events.push(e);
            }
            // Frames dropped by this push, the pushed one included when it was refused:
            // older queued frames evicted to make room count too.
            let dropped = (after.dropped_audio + after.dropped_video)
                - (before.dropped_audio + before.dropped_video);
            (p, dropped)
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
        let mut q = self.queue.lock();
        let item = q.pop_at(Instant::now());
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
        if let Some(Popped::Media { frame, .. }) = &item {
            self.drained
                .fetch_add(frame.len() as u64, Ordering::Relaxed);
        }
        item
    }

    /// Tracks cut back while popping since the last call.
    pub fn take_lagged(&self) -> SmallVec<[u32; 4]> {
        std::mem::take(&mut *self.lagged.lock())
    }

    /// What the queue knows about the downlink: bytes drained so far and bytes waiting.
    pub fn queue_sample(&self) -> TransportStats {
        TransportStats {
            drained_bytes: Some(self.drained.load(Ordering::Relaxed)),
            queued_bytes: Some(self.queue.lock().bytes() as u64),
            ..TransportStats::default()
        }
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
