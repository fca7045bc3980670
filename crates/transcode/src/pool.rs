//! A bounded pool of OS threads hosting [`LayerTranscoder`]s, off the async runtime.
//!
//! Each published track is pinned to one worker (the least loaded when it is added) and has its
//! own bounded queue. [`Track::push`] never blocks: when the queue is full the frame is dropped,
//! and so is every following frame up to the next keyframe (a decoder cannot use deltas after a
//! gap, and queuing them would only add latency). A keyframe arriving at a full queue replaces
//! the stale frames in it. Outputs and requests go to a sink callback that must not block
//! (e.g. a `try_send` into a tokio channel), or to a `std::sync::mpsc` channel.
//!
//! Control messages (`set_active`, `request_keyframe`) are never dropped and stay in order with
//! the frames. Time comes from `Instant::now()` here: this is the I/O edge of the crate.
//!
//! Publishers that send two temporal layers (`L1T2`) let a worker halve its work by decoding
//! only their base layer; the lower layers then come at half the frame rate. With
//! [`TemporalPolicy::WhenBusy`] (the default) each worker does that only while it is busy: it
//! measures the share of wall time it spends transcoding over every
//! [`PoolConfig::load_window`], goes to the base layer when that share passes
//! [`BUSY_ABOVE`] or a queue dropped input, and back to every frame once it has stayed under
//! [`ROOM_BELOW`] for [`CALM_WINDOWS`] windows in a row (decoding every frame again about
//! doubles the share, so it then stays under the first threshold).

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use crate::layers::{self, LayerFrame, LayerTranscoder};
use crate::metrics::Metrics;
use crate::{vp8, Error, Result};

/// Pool sizing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Source frames that may wait per track before dropping starts (at least 1).
    pub queue_per_track: usize,
    /// How often workers run [`LayerTranscoder::tick`] (encoder linger) when idle.
    pub tick_interval: Duration,
    /// While a track waits for a source keyframe, repeat [`PoolEvent::SourceKeyframeNeeded`]
    /// this often.
    pub keyframe_request_interval: Duration,
    /// The workers' nice value (0 to 19; 0 leaves their priority alone). Above 0 the
    /// workers only get CPU that more urgent threads (a server's forwarding) leave, and when
    /// that is not enough their queues drop input, which is the pool's saturation signal.
    /// FFmpeg's own threads, started from a worker, inherit it. Linux only.
    pub nice: i32,
    /// Which frames of a two-temporal-layer publisher the workers decode. Overrides each
    /// transcoder's [`crate::layers::Tuning`] (`decoder.skip_nonref`).
    pub temporal: TemporalPolicy,
    /// The window over which [`TemporalPolicy::WhenBusy`] measures a worker's load.
    pub load_window: Duration,
}

/// Which frames of a publisher that sends two temporal layers the pool decodes. A publisher
/// with one temporal layer is decoded in full whatever the policy: all its frames are
/// references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporalPolicy {
    /// Every frame: lower layers at the publisher's frame rate, at full cost.
    EveryFrame,
    /// Only the base layer: lower layers at half the frame rate, at about half the cost.
    BaseLayer,
    /// Every frame while the worker has room, the base layer only while it is busy (see the
    /// [module docs](self)).
    WhenBusy,
}

impl std::str::FromStr for TemporalPolicy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "every-frame" => Ok(TemporalPolicy::EveryFrame),
            "base-layer" => Ok(TemporalPolicy::BaseLayer),
            "when-busy" => Ok(TemporalPolicy::WhenBusy),
            _ => Err(format!(
                "unknown temporal policy {s:?} (every-frame, base-layer or when-busy)"
            )),
        }
    }
}

/// [`TemporalPolicy::WhenBusy`]: a worker busier than this share of a window (or whose queues
/// dropped input in it) decodes only the base layer.
pub const BUSY_ABOVE: f64 = 0.85;
/// [`TemporalPolicy::WhenBusy`]: a worker on the base layer that stays under this share for
/// [`CALM_WINDOWS`] windows decodes every frame again.
pub const ROOM_BELOW: f64 = 0.40;
/// See [`ROOM_BELOW`].
pub const CALM_WINDOWS: u32 = 3;

/// The state of [`TemporalPolicy::WhenBusy`] for one worker.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct LoadPolicy {
    base_only: bool,
    calm: u32,
}

impl LoadPolicy {
    /// One window ended with the worker busy for `busy` of it (0..1); `dropped` if its queues
    /// dropped input. Returns true when the worker should switch.
    fn window(&mut self, busy: f64, dropped: bool) -> bool {
        if !self.base_only {
            if dropped || busy > BUSY_ABOVE {
                self.base_only = true;
                self.calm = 0;
                return true;
            }
            return false;
        }
        if dropped || busy >= ROOM_BELOW {
            self.calm = 0;
            return false;
        }
        self.calm += 1;
        if self.calm >= CALM_WINDOWS {
            self.base_only = false;
            self.calm = 0;
            return true;
        }
        false
    }
}

impl Default for PoolConfig {
    /// One worker per available core, 4 frames per track.
    fn default() -> Self {
        PoolConfig {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            queue_per_track: 4,
            tick_interval: Duration::from_millis(250),
            keyframe_request_interval: Duration::from_secs(1),
            nice: 0,
            temporal: TemporalPolicy::WhenBusy,
            load_window: Duration::from_secs(1),
        }
    }
}

/// What the pool reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolEvent {
    /// An encoded lower-layer frame of `track_id`.
    Frame {
        /// The track it belongs to (as given to [`Pool::add_track`]).
        track_id: u32,
        /// The frame.
        frame: LayerFrame,
    },
    /// The track cannot go on until the publisher sends a keyframe: ask it for one.
    SourceKeyframeNeeded {
        /// The track.
        track_id: u32,
    },
}

/// Outcome of [`Track::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submit {
    /// Queued for the worker.
    Queued,
    /// Dropped: queue full, waiting for a keyframe after a drop, or track/pool gone.
    Dropped,
}

type Sink = Arc<dyn Fn(PoolEvent) + Send + Sync>;

enum Job {
    Media {
        data: Bytes,
        pts_us: u64,
        keyframe: bool,
    },
    SetActive(u8, bool),
    RequestKeyframe(u8),
}

#[derive(Default)]
struct TrackQueue {
    jobs: VecDeque<Job>,
    media: usize,
    dropping: bool,
    scheduled: bool,
}

#[derive(Default)]
struct WorkerState {
    queues: HashMap<u32, TrackQueue>,
    ready: VecDeque<u32>,
    added: Vec<(u32, layers::Config)>,
    removed: Vec<u32>,
    shutdown: bool,
}

struct Shared {
    state: Mutex<WorkerState>,
    cv: Condvar,
    tracks: AtomicUsize,
    /// A queue of this worker's dropped input since the worker last looked.
    dropped: AtomicBool,
}

impl Shared {
    fn enqueue(&self, id: u32, job: Job) -> bool {
        let mut st = self.state.lock();
        if st.shutdown {
            return false;
        }
        let Some(q) = st.queues.get_mut(&id) else {
            return false;
        };
        q.jobs.push_back(job);
        let schedule = !std::mem::replace(&mut q.scheduled, true);
        if schedule {
            st.ready.push_back(id);
        }
        drop(st);
        self.cv.notify_one();
        true
    }
}

/// Sets the calling thread's nice value (Linux keeps one per thread). A failure only costs
/// the priority, so it is logged and the worker runs on.
#[allow(unsafe_code)]
fn set_thread_nice(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority have no memory effects; the id is this thread's.
        let r = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice.clamp(-20, 19))
        };
        if r != 0 {
            tracing::warn!(nice, error = %std::io::Error::last_os_error(), "cannot lower the transcoder's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The worker pool. Dropping it stops and joins the workers.
pub struct Pool {
    config: PoolConfig,
    workers: Vec<(Arc<Shared>, Option<JoinHandle<()>>)>,
    metrics: Arc<Metrics>,
    sink: Sink,
    ids: Arc<Mutex<HashSet<u32>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.config)
            .field("tracks", &self.ids.lock().len())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Start the workers; every event goes to `sink`, which runs on a worker thread (or on the
    /// thread calling [`Track::push`]) and must not block.
    pub fn new(
        config: PoolConfig,
        sink: impl Fn(PoolEvent) + Send + Sync + 'static,
    ) -> Result<Pool> {
        Self::with_metrics(config, Metrics::new_shared(), sink)
    }

    /// Like [`Pool::new`], reporting into the given counters.
    pub fn with_metrics(
        config: PoolConfig,
        metrics: Arc<Metrics>,
        sink: impl Fn(PoolEvent) + Send + Sync + 'static,
    ) -> Result<Pool> {
        if config.workers == 0 || config.queue_per_track == 0 {
            return Err(Error::InvalidConfig(
                "pool needs at least one worker and a queue of one".into(),
            ));
        }
        crate::init();
        let sink: Sink = Arc::new(sink);
        let mut workers = Vec::with_capacity(config.workers);
        for i in 0..config.workers {
            let shared = Arc::new(Shared {
                state: Mutex::new(WorkerState::default()),
                cv: Condvar::new(),
                tracks: AtomicUsize::new(0),
                dropped: AtomicBool::new(false),
            });
            let (w_shared, w_metrics, w_sink) = (shared.clone(), metrics.clone(), sink.clone());
            let tick = config.tick_interval.max(Duration::from_millis(1));
            let key_interval = config.keyframe_request_interval;
            let nice = config.nice;
            let (temporal, load_window) = (config.temporal, config.load_window.max(tick));
            let handle = std::thread::Builder::new()
                .name(format!("qm-transcode-{i}"))
                .spawn(move || {
                    if nice != 0 {
                        set_thread_nice(nice);
                    }
                    // Built on its thread: FFmpeg scaler contexts are not `Send`.
                    Worker::new(
                        w_shared,
                        w_metrics,
                        w_sink,
                        tick,
                        key_interval,
                        temporal,
                        load_window,
                    )
                    .run()
                })
                .map_err(|e| Error::InvalidConfig(format!("cannot spawn worker: {e}")))?;
            workers.push((shared, Some(handle)));
        }
        Ok(Pool {
            config,
            workers,
            metrics,
            sink,
            ids: Arc::new(Mutex::new(HashSet::new())),
        })
    }

    /// Start the workers and deliver events through a channel.
    pub fn with_channel(config: PoolConfig) -> Result<(Pool, mpsc::Receiver<PoolEvent>)> {
        let (tx, rx) = mpsc::channel();
        let pool = Pool::new(config, move |ev| {
            let _ = tx.send(ev);
        })?;
        Ok((pool, rx))
    }

    /// The pool's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Host a transcoder for `track_id` on the least loaded worker. The returned handle feeds
    /// it; dropping the handle removes the track.
    pub fn add_track(&self, track_id: u32, config: layers::Config) -> Result<Track> {
        config.validate()?;
        if !self.ids.lock().insert(track_id) {
            return Err(Error::DuplicateTrack(track_id));
        }
        let Some((shared, _)) = self
            .workers
            .iter()
            .min_by_key(|(s, _)| s.tracks.load(Ordering::Relaxed))
        else {
            return Err(Error::InvalidConfig("no workers".into()));
        };
        shared.tracks.fetch_add(1, Ordering::Relaxed);
        {
            let mut st = shared.state.lock();
            st.queues.insert(track_id, TrackQueue::default());
            st.added.push((track_id, config));
        }
        shared.cv.notify_one();
        Ok(Track {
            id: track_id,
            shared: shared.clone(),
            capacity: self.config.queue_per_track,
            metrics: self.metrics.clone(),
            sink: self.sink.clone(),
            ids: self.ids.clone(),
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for (shared, _) in &self.workers {
            shared.state.lock().shutdown = true;
            shared.cv.notify_all();
        }
        for (_, handle) in &mut self.workers {
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}

/// Handle of one track in the pool. Dropping it removes the track and its transcoder.
pub struct Track {
    id: u32,
    shared: Arc<Shared>,
    capacity: usize,
    metrics: Arc<Metrics>,
    sink: Sink,
    ids: Arc<Mutex<HashSet<u32>>>,
}

impl std::fmt::Debug for Track {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Track")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Track {
    /// The track id given to [`Pool::add_track`].
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Submit a source frame. Never blocks. Whether it is a keyframe is read from the VP8
    /// payload (the `keyframe` flag is only a hint for the caller's own bookkeeping).
    pub fn push(&self, data: Bytes, pts_us: u64, keyframe: bool) -> Submit {
        let is_key = vp8::keyframe_size(&data).is_some();
        if keyframe && !is_key {
            tracing::debug!(track = self.id, "keyframe flag on a non-keyframe payload");
        }
        let mut st = self.shared.state.lock();
        if st.shutdown {
            return Submit::Dropped;
        }
        let Some(q) = st.queues.get_mut(&self.id) else {
            return Submit::Dropped;
        };
        if is_key {
            q.dropping = false;
            if q.media >= self.capacity {
                // Everything queued is older than this keyframe: throw it away.
                let before = q.jobs.len();
                q.jobs.retain(|j| !matches!(j, Job::Media { .. }));
                let flushed = (before - q.jobs.len()) as u64;
                q.media = 0;
                Metrics::add(&self.metrics.frames_dropped, flushed);
                Metrics::sub(&self.metrics.queued_frames, flushed);
                self.shared.dropped.store(true, Ordering::Relaxed);
            }
        } else if q.dropping || q.media >= self.capacity {
            let started_dropping = !q.dropping;
            q.dropping = true;
            drop(st);
            Metrics::add(&self.metrics.frames_dropped, 1);
            self.shared.dropped.store(true, Ordering::Relaxed);
            if started_dropping {
                (self.sink)(PoolEvent::SourceKeyframeNeeded { track_id: self.id });
            }
            return Submit::Dropped;
        }
        q.jobs.push_back(Job::Media {
            data,
            pts_us,
            keyframe: is_key,
        });
        q.media += 1;
        Metrics::add(&self.metrics.queued_frames, 1);
        let schedule = !std::mem::replace(&mut q.scheduled, true);
        if schedule {
            st.ready.push_back(self.id);
        }
        drop(st);
        self.shared.cv.notify_one();
        Submit::Queued
    }

    /// Mark a layer as wanted or not (see [`LayerTranscoder::set_active`]).
    pub fn set_active(&self, layer: u8, active: bool) {
        self.shared.enqueue(self.id, Job::SetActive(layer, active));
    }

    /// Ask for a keyframe on a layer.
    pub fn request_keyframe(&self, layer: u8) {
        self.shared.enqueue(self.id, Job::RequestKeyframe(layer));
    }
}

impl Drop for Track {
    fn drop(&mut self) {
        {
            let mut st = self.shared.state.lock();
            if let Some(q) = st.queues.remove(&self.id) {
                Metrics::sub(&self.metrics.queued_frames, q.media as u64);
            }
            st.ready.retain(|id| *id != self.id);
            st.removed.push(self.id);
        }
        self.shared.cv.notify_one();
        self.shared.tracks.fetch_sub(1, Ordering::Relaxed);
        self.ids.lock().remove(&self.id);
    }
}

/// A transcoder and what is needed to rebuild it after a panic.
struct Slot {
    config: layers::Config,
    transcoder: LayerTranscoder,
    active: HashSet<u8>,
    last_key_request: Option<Instant>,
}

struct Worker {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    sink: Sink,
    tick: Duration,
    key_interval: Duration,
    slots: HashMap<u32, Slot>,
    temporal: TemporalPolicy,
    load: LoadPolicy,
    load_window: Duration,
    window_start: Instant,
    /// Time spent on jobs since `window_start`.
    busy: Duration,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.load.base_only {
            Metrics::sub(&self.metrics.workers_base_layer_only, 1);
        }
    }
}

impl Worker {
    fn new(
        shared: Arc<Shared>,
        metrics: Arc<Metrics>,
        sink: Sink,
        tick: Duration,
        key_interval: Duration,
        temporal: TemporalPolicy,
        load_window: Duration,
    ) -> Self {
        let base_only = temporal == TemporalPolicy::BaseLayer;
        if base_only {
            Metrics::add(&metrics.workers_base_layer_only, 1);
        }
        Worker {
            shared,
            metrics,
            sink,
            tick,
            key_interval,
            slots: HashMap::new(),
            temporal,
            load: LoadPolicy { base_only, calm: 0 },
            load_window,
            window_start: Instant::now(),
            busy: Duration::ZERO,
        }
    }

    /// A new (or rebuilt) transcoder, decoding what its worker decodes now (`base_only`).
    fn new_transcoder(
        config: layers::Config,
        metrics: &Arc<Metrics>,
        base_only: bool,
    ) -> Result<LayerTranscoder> {
        let mut t = LayerTranscoder::with_metrics(config, metrics.clone())?;
        t.set_base_layer_only(base_only);
        Ok(t)
    }

    /// Close a load window when it is due and switch between every frame and the base layer
    /// when [`TemporalPolicy::WhenBusy`] says so.
    fn measure_load(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < self.load_window {
            return;
        }
        let busy = self.busy.as_secs_f64() / elapsed.as_secs_f64();
        let dropped = self.shared.dropped.swap(false, Ordering::Relaxed);
        self.window_start = now;
        self.busy = Duration::ZERO;
        if self.temporal != TemporalPolicy::WhenBusy || !self.load.window(busy, dropped) {
            return;
        }
        let base_only = self.load.base_only;
        if base_only {
            Metrics::add(&self.metrics.workers_base_layer_only, 1);
        } else {
            Metrics::sub(&self.metrics.workers_base_layer_only, 1);
        }
        Metrics::add(&self.metrics.temporal_switches, 1);
        tracing::debug!(
            busy = format_args!("{:.0}%", busy * 100.0),
            dropped,
            base_only,
            "transcoder worker switches temporal layers"
        );
        for slot in self.slots.values_mut() {
            slot.transcoder.set_base_layer_only(base_only);
        }
    }

    fn run(mut self) {
        let mut last_tick = Instant::now();
        loop {
            let (added, removed, job) = {
                let mut st = self.shared.state.lock();
                loop {
                    if st.shutdown {
                        return;
                    }
                    let since = last_tick.elapsed();
                    if !st.added.is_empty()
                        || !st.removed.is_empty()
                        || !st.ready.is_empty()
                        || since >= self.tick
                    {
                        break;
                    }
                    self.shared.cv.wait_for(&mut st, self.tick - since);
                }
                let added = std::mem::take(&mut st.added);
                let removed = std::mem::take(&mut st.removed);
                let job = Self::next_job(&mut st, &self.metrics);
                (added, removed, job)
            };
            for id in removed {
                self.slots.remove(&id);
            }
            for (id, config) in added {
                match Self::new_transcoder(config.clone(), &self.metrics, self.load.base_only) {
                    Ok(transcoder) => {
                        self.slots.insert(
                            id,
                            Slot {
                                config,
                                transcoder,
                                active: HashSet::new(),
                                last_key_request: None,
                            },
                        );
                    }
                    Err(e) => tracing::error!(track = id, error = %e, "cannot create transcoder"),
                }
            }
            if let Some((id, job)) = job {
                let t0 = Instant::now();
                self.run_job(id, job);
                self.busy += t0.elapsed();
            }
            self.measure_load(Instant::now());
            if last_tick.elapsed() >= self.tick {
                let now = Instant::now();
                last_tick = now;
                let ids: Vec<u32> = self.slots.keys().copied().collect();
                for id in ids {
                    if let Some(slot) = self.slots.get_mut(&id) {
                        slot.transcoder.tick(now);
                    }
                    self.maybe_request_key(id, now);
                }
            }
        }
    }

    /// Pop one job, round-robin between tracks.
    fn next_job(st: &mut WorkerState, metrics: &Metrics) -> Option<(u32, Job)> {
        while let Some(id) = st.ready.pop_front() {
            let Some(q) = st.queues.get_mut(&id) else {
                continue;
            };
            let Some(job) = q.jobs.pop_front() else {
                q.scheduled = false;
                continue;
            };
            if matches!(job, Job::Media { .. }) {
                q.media -= 1;
                Metrics::sub(&metrics.queued_frames, 1);
            }
            if q.jobs.is_empty() {
                q.scheduled = false;
            } else {
                st.ready.push_back(id);
            }
            return Some((id, job));
        }
        None
    }

    fn run_job(&mut self, id: u32, job: Job) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let now = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| match &job {
            Job::Media {
                data,
                pts_us,
                keyframe,
            } => slot.transcoder.push(data, *pts_us, *keyframe, now),
            Job::SetActive(layer, active) => slot
                .transcoder
                .set_active(*layer, *active, now)
                .map(|()| Vec::new()),
            Job::RequestKeyframe(layer) => slot
                .transcoder
                .request_keyframe(*layer)
                .map(|()| Vec::new()),
        }));
        match result {
            Ok(Ok(frames)) => {
                if let Job::SetActive(layer, active) = job {
                    if active {
                        slot.active.insert(layer);
                    } else {
                        slot.active.remove(&layer);
                    }
                }
                for frame in frames {
                    (self.sink)(PoolEvent::Frame {
                        track_id: id,
                        frame,
                    });
                }
            }
            Ok(Err(e)) => tracing::debug!(track = id, error = %e, "transcoder input skipped"),
            Err(_) => {
                Metrics::add(&self.metrics.panics, 1);
                tracing::error!(track = id, "transcoder panicked; rebuilding it");
                match Self::new_transcoder(slot.config.clone(), &self.metrics, self.load.base_only)
                {
                    Ok(mut t) => {
                        for &layer in &slot.active {
                            let _ = t.set_active(layer, true, now);
                        }
                        slot.transcoder = t;
                    }
                    Err(e) => {
                        tracing::error!(track = id, error = %e, "cannot rebuild transcoder");
                        self.slots.remove(&id);
                        return;
                    }
                }
            }
        }
        self.maybe_request_key(id, now);
    }

    /// Emit `SourceKeyframeNeeded` when a track starts waiting, and again every interval.
    fn maybe_request_key(&mut self, id: u32, now: Instant) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        if !slot.transcoder.wants_source_keyframe() {
            slot.last_key_request = None;
            return;
        }
        let due = slot
            .last_key_request
            .is_none_or(|t| now.saturating_duration_since(t) >= self.key_interval);
        if due {
            slot.last_key_request = Some(now);
            (self.sink)(PoolEvent::SourceKeyframeNeeded { track_id: id });
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Nice values of this process's threads named `qm-transcode-*`.
    fn worker_nices() -> Vec<i32> {
        let mut out = vec![];
        for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let dir = e.path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if !comm.starts_with("qm-transcode-") {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            // Fields after "(comm)" start with the state (field 3); nice is field 19.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                if let Some(n) = rest.split_whitespace().nth(16) {
                    out.push(n.parse().unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn a_busy_worker_goes_to_the_base_layer_and_comes_back_only_with_room_to_spare() {
        let mut p = LoadPolicy::default();
        assert!(!p.window(0.80, false), "80 % busy: still every frame");
        assert!(p.window(0.90, false), "90 % busy: base layer");
        assert!(p.base_only);
        // Half the work now; 45 % would be 90 % again on every frame.
        assert!(!p.window(0.45, false));
        assert!(!p.window(0.30, false));
        assert!(!p.window(0.30, false));
        assert!(!p.window(0.30, true), "a drop resets the calm windows");
        for _ in 0..CALM_WINDOWS - 1 {
            assert!(!p.window(0.30, false));
        }
        assert!(p.window(0.30, false), "calm long enough: every frame again");
        assert!(!p.base_only);
        assert!(p.window(0.10, true), "a queue that drops switches at once");
        assert!(p.base_only);
    }

    #[test]
    fn workers_run_at_the_configured_nice_value() {
        let (pool, _rx) = Pool::with_channel(PoolConfig {
            workers: 2,
            nice: 7,
            ..PoolConfig::default()
        })
        .unwrap();
        // Other tests' pools (nice 0) may run in this process at the same time.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let niced = worker_nices().iter().filter(|n| **n == 7).count();
            if niced >= 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "workers at nice 7: {niced} of 2 ({:?})",
                worker_nices()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(pool);
    }
}
