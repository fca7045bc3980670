//! One room's connection to the other nodes hosting its meeting: a task that subscribes to
//! the meeting's event, command, keyframe, sync and end subjects and to the media batches
//! other nodes send this node, hands what arrives to the room actor, and publishes what the
//! actor sends out.
//!
//! The actor never waits on NATS: it hands messages to this task through a bounded channel
//! and media through a [`MediaQueue`] (audio ahead of video, stale audio and overflowing
//! video dropped and counted per kind, like a slow subscriber's queue). Media leaves as
//! [`batch`]es, one NATS message per destination node for whatever was queued together.
//! The task ends when the room drops its [`Link`], after publishing what was queued,
//! so a room's last `participant_left` still reaches the others.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Instant,
};

use crate::task::AbortOnDrop;
use bytes::Bytes;
use futures::{stream::select_all, StreamExt};
use parking_lot::Mutex;
use quicmeet_proto::EncodedFrame;
use tokio::sync::{mpsc, Notify};

use super::{
    batch::{self, Batcher, Dests, SHARED},
    media_queue::{Dropped, MediaQueue},
    net::Net,
    subjects::Subjects,
    wire::{self, Command, End, Envelope, KeyframeAsk},
};

/// Messages the actor queues for other nodes at most (events, commands, requests).
const OUT_QUEUE: usize = 1024;
/// Frames taken off the queue per turn of the link task before it looks at events again.
const MEDIA_TURN: usize = 256;

/// The room's media for other nodes, shared by the actor (push) and the link task (pop).
#[derive(Default)]
struct Outgoing {
    queue: Mutex<MediaQueue<Dests>>,
    ready: Notify,
}

/// The (track, layer) pairs of other nodes' tracks the room wants now; frames of anything
/// else that arrive are dropped.
type Interest = Arc<Mutex<HashSet<(u32, u8)>>>;

/// What the room hears from other nodes.
#[derive(Debug)]
pub enum Inbound {
    Event(Envelope),
    Command(Command),
    Keyframe(KeyframeAsk),
    Sync(wire::Sync),
    End(End),
    /// Media frames of node `node`'s tracks, from one batch, each of a track layer the room
    /// wants.
    Media {
        node: String,
        frames: Vec<EncodedFrame>,
    },
}

/// What the room sends to other nodes.
#[derive(Debug)]
pub enum Outbound {
    Event(Envelope),
    Command {
        node: String,
        cmd: Command,
    },
    Keyframe {
        node: String,
        ask: KeyframeAsk,
    },
    /// The (track, layer) pairs of other nodes' tracks the room wants, and the nodes they
    /// belong to (whose shared media to subscribe to); replaces the last.
    Interest {
        layers: Vec<(u32, u8)>,
        nodes: Vec<String>,
    },
    /// Ask every node for its snapshot.
    Sync,
}

/// The room's handle on its link task.
pub struct Link {
    pub subjects: Subjects,
    out: mpsc::Sender<Outbound>,
    media: Arc<Outgoing>,
    net: Arc<Net>,
}

impl Link {
    /// Starts the link of meeting `subjects` for a room whose input is `to_room`.
    pub fn start(
        net: Arc<Net>,
        subjects: Subjects,
        to_room: impl Fn(Inbound) -> bool + Send + Sync + 'static,
    ) -> Link {
        let (out, out_rx) = mpsc::channel(OUT_QUEUE);
        let media = Arc::new(Outgoing::default());
        tokio::spawn(run(
            net.clone(),
            subjects.clone(),
            Arc::new(to_room),
            out_rx,
            media.clone(),
        ));
        Link {
            subjects,
            out,
            media,
            net,
        }
    }

    pub fn node_id(&self) -> &str {
        &self.net.node_id
    }

    pub fn net(&self) -> &Arc<Net> {
        &self.net
    }

    /// Queues a message; a full queue drops it (counted), and a gap in events makes the
    /// receivers ask for a snapshot.
    pub fn send(&self, m: Outbound) {
        if self.out.try_send(m).is_err() {
            self.net
                .stats
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Queues frames of this room's own tracks, each for the nodes that want it; the link
    /// task publishes them together.
    pub fn media(&self, frames: impl IntoIterator<Item = (EncodedFrame, Dests)>) {
        let now = Instant::now();
        let mut dropped = Dropped::default();
        {
            let mut q = self.media.queue.lock();
            for (f, to) in frames {
                let d = q.push(f, to, now);
                dropped.audio += d.audio;
                dropped.video += d.video;
            }
        }
        self.net.stats.count_dropped(dropped);
        self.media.ready.notify_one();
    }
}

type ToRoom = Arc<dyn Fn(Inbound) -> bool + Send + Sync>;

#[derive(Clone, Copy)]
enum Kind {
    Event,
    Command,
    Keyframe,
    Sync,
    End,
}

async fn run(
    net: Arc<Net>,
    subjects: Subjects,
    to_room: ToRoom,
    mut out: mpsc::Receiver<Outbound>,
    media: Arc<Outgoing>,
) {
    let client = &net.client;
    let me = net.node_id.clone();
    let wanted = [
        (Some(subjects.all_events()), Kind::Event),
        (subjects.commands(&me), Kind::Command),
        (subjects.keyframes(&me), Kind::Keyframe),
        (Some(subjects.sync()), Kind::Sync),
        (Some(subjects.end()), Kind::End),
    ];
    let mut streams = Vec::new();
    for (subject, kind) in wanted {
        let Some(subject) = subject else { continue };
        match client.subscribe(subject.clone()).await {
            Ok(s) => streams.push(s.map(move |m| (kind, m)).boxed()),
            Err(e) => tracing::warn!(%subject, error = %e, "subscribing failed"),
        }
    }
    let mut inbound = select_all(streams);
    let interest = Interest::default();
    // One subscription for the frames other nodes send this node alone, whatever the track;
    // the shared ones follow the interest (below).
    let _media_in = match subjects.media_to(&me) {
        Some(subject) => listen(&net, &subjects, subject, &to_room, &interest).await,
        None => None,
    };
    // Subscribed first, then ask: every snapshot sent in answer reaches us.
    publish_json(&net, subjects.sync(), &wire::Sync { node: me.clone() }).await;
    let mut batcher = Batcher::default();
    let mut batches = Vec::new();
    // Per node whose media the room wants: the subscription to its shared batches.
    // Dropping a subscription's handle aborts its task.
    let mut shared: HashMap<String, AbortOnDrop> = HashMap::new();
    loop {
        tokio::select! {
            biased;
            m = out.recv() => match m {
                Some(Outbound::Interest { layers, nodes }) => {
                    *interest.lock() = layers.into_iter().collect();
                    shared.retain(|n, _| nodes.contains(n));
                    for node in nodes {
                        if shared.contains_key(&node) {
                            continue;
                        }
                        let Some(subject) = subjects.media_shared(&node) else {
                            continue;
                        };
                        if let Some(sub) = listen(&net, &subjects, subject, &to_room, &interest).await {
                            shared.insert(node, sub);
                        }
                    }
                }
                Some(m) => outbound(&net, &subjects, m).await,
                None => break,
            },
            _ = media.ready.notified() => {
                let dropped = batch::drain(
                    &mut media.queue.lock(),
                    &mut batcher,
                    Instant::now(),
                    MEDIA_TURN,
                    &mut batches,
                );
                net.stats.count_dropped(dropped);
                for b in batches.drain(..) {
                    let subject = if b.dest == SHARED {
                        subjects.media_shared(&me)
                    } else {
                        subjects.media(&me, &b.dest)
                    };
                    let Some(subject) = subject else { continue };
                    let len = b.bytes.len();
                    if client.publish(subject, b.bytes).await.is_ok() {
                        net.stats.count_out(b.frames, len);
                    }
                }
                batcher.forget_idle();
                if !media.queue.lock().is_empty() {
                    // Come back for the rest after a look at events and commands.
                    media.ready.notify_one();
                }
            }
            Some((kind, m)) = inbound.next() => {
                let ok = match kind {
                    Kind::Event => decode::<Envelope>(&m.payload)
                        .filter(|e| e.node != me && Some(m.subject.as_str()) == subjects.events(&e.node).as_deref())
                        .map(Inbound::Event),
                    Kind::Command => decode(&m.payload).map(Inbound::Command),
                    Kind::Keyframe => decode(&m.payload).map(Inbound::Keyframe),
                    Kind::Sync => decode::<wire::Sync>(&m.payload).filter(|s| s.node != me).map(Inbound::Sync),
                    Kind::End => decode::<End>(&m.payload).filter(|e| e.node != me).map(Inbound::End),
                };
                if let Some(i) = ok {
                    net.stats.events_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    to_room(i);
                }
            }
        }
    }
    // The room is gone: flush what it queued last (its participants' departures); its
    // remaining media is worthless now.
    let _ = client.flush().await;
}

async fn outbound(net: &Arc<Net>, subjects: &Subjects, m: Outbound) {
    match m {
        Outbound::Event(e) => {
            if let Some(s) = subjects.events(&e.node) {
                publish_json(net, s, &e).await;
            }
        }
        Outbound::Command { node, cmd } => {
            if let Some(s) = subjects.commands(&node) {
                publish_json(net, s, &cmd).await;
            }
        }
        Outbound::Keyframe { node, ask } => {
            if let Some(s) = subjects.keyframes(&node) {
                publish_json(net, s, &ask).await;
            }
        }
        Outbound::Sync => {
            publish_json(
                net,
                subjects.sync(),
                &wire::Sync {
                    node: net.node_id.clone(),
                },
            )
            .await;
        }
        // Kept by the task itself (its subscriptions and the set its receivers check).
        Outbound::Interest { .. } => {}
    }
}

/// Subscribes to media batches on `subject`, handed to the room by a task of their own
/// until the returned guard is dropped.
async fn listen(
    net: &Arc<Net>,
    subjects: &Subjects,
    subject: String,
    to_room: &ToRoom,
    interest: &Interest,
) -> Option<AbortOnDrop> {
    match net.client.subscribe(subject.clone()).await {
        Ok(sub) => Some(AbortOnDrop::spawn(receive_media(
            net.clone(),
            subjects.clone(),
            sub,
            to_room.clone(),
            interest.clone(),
        ))),
        Err(e) => {
            tracing::warn!(%subject, error = %e, "subscribing failed");
            None
        }
    }
}

/// Hands the frames other nodes send this room to the room, a batch at a time. A batch from
/// a subject that is not this node's, or that does not parse, is dropped whole; frames of a
/// track layer the room does not want (any more) are dropped one by one. The room itself
/// checks that each frame's track belongs to a participant of the sending node.
async fn receive_media(
    net: Arc<Net>,
    subjects: Subjects,
    mut sub: async_nats::Subscriber,
    to_room: ToRoom,
    interest: Interest,
) {
    let me = net.node_id.clone();
    while let Some(m) = sub.next().await {
        let Some(node) = subjects.media_from(m.subject.as_str(), &me) else {
            net.stats.count_refused_batch();
            continue;
        };
        let len = m.payload.len();
        let mut frames = match batch::split(m.payload) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(node, error = %e, "malformed media batch dropped");
                net.stats.count_refused_batch();
                continue;
            }
        };
        net.stats.count_in(frames.len(), len);
        let mut unwanted = Dropped::default();
        {
            let want = interest.lock();
            frames.retain(|f| {
                let h = f.header();
                let keep = want.contains(&(h.track_id, h.layer));
                if !keep {
                    count_kind(&mut unwanted, f);
                }
                keep
            });
        }
        net.stats.count_dropped(unwanted);
        if frames.is_empty() {
            continue;
        }
        let mut refused = Dropped::default();
        for f in &frames {
            count_kind(&mut refused, f);
        }
        let node = node.to_owned();
        if !to_room(Inbound::Media { node, frames }) {
            net.stats.count_dropped(refused);
        }
    }
}

fn count_kind(d: &mut Dropped, f: &EncodedFrame) {
    if f.header().kind == quicmeet_proto::MediaKind::Audio {
        d.audio += 1;
    } else {
        d.video += 1;
    }
}

fn decode<T: serde::de::DeserializeOwned>(b: &Bytes) -> Option<T> {
    serde_json::from_slice(b).ok()
}

async fn publish_json(net: &Net, subject: String, v: &impl serde::Serialize) {
    let Ok(body) = serde_json::to_vec(v) else {
        return;
    };
    match net.client.publish(subject, body.into()).await {
        Ok(()) => {
            net.stats
                .events_out
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Err(e) => tracing::debug!(error = %e, "publishing to the cluster failed"),
    }
}
