//! One room's connection to the other nodes hosting its meeting: a task that subscribes to
//! the meeting's event, command, keyframe, sync and end subjects and to exactly the media
//! subjects the room's local subscribers want, hands what arrives to the room actor, and
//! publishes what the actor sends out.
//!
//! The actor never waits on NATS: it hands messages to this task through a bounded channel
//! and media through a [`MediaQueue`] (audio ahead of video, stale audio and overflowing
//! video dropped and counted per kind, like a slow subscriber's queue). The task ends when the room drops its [`Link`], after publishing what was queued,
//! so a room's last `participant_left` still reaches the others.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use futures::{stream::select_all, StreamExt};
use parking_lot::Mutex;
use quicmeet_proto::EncodedFrame;
use tokio::sync::{mpsc, Notify};

use super::{
    media_queue::{Dropped, MediaQueue},
    net::Net,
    subjects::Subjects,
    wire::{self, Command, End, Envelope, KeyframeAsk},
};

/// Messages the actor queues for other nodes at most (events, commands, requests).
const OUT_QUEUE: usize = 1024;
/// Frames published per turn of the link task before it looks at events again.
const MEDIA_BATCH: usize = 64;

/// The room's media for other nodes, shared by the actor (push) and the link task (pop).
#[derive(Default)]
struct Outgoing {
    queue: Mutex<MediaQueue>,
    ready: Notify,
}

/// What the room hears from other nodes.
#[derive(Debug)]
pub enum Inbound {
    Event(Envelope),
    Command(Command),
    Keyframe(KeyframeAsk),
    Sync(wire::Sync),
    End(End),
    /// A media frame of another node's track, checked against its subject.
    Media(EncodedFrame),
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
    /// The (track, layer) pairs of other nodes' tracks to subscribe to; replaces the last.
    Interest(Vec<(u32, u8)>),
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

    /// Queues a frame of one of this room's own tracks for the nodes that want it.
    pub fn media(&self, frame: EncodedFrame) {
        let dropped = self
            .media
            .queue
            .lock()
            .push(frame, std::time::Instant::now());
        self.net.stats.count_dropped(dropped);
        self.media.ready.notify_one();
    }
}

type ToRoom = Arc<dyn Fn(Inbound) -> bool + Send + Sync>;

/// Aborts a media subscription's task when dropped.
struct Abort(tokio::task::JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

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
    // Subscribed first, then ask: every snapshot sent in answer reaches us.
    publish_json(&net, subjects.sync(), &wire::Sync { node: me.clone() }).await;
    let mut subs: HashMap<(u32, u8), Abort> = HashMap::new();
    loop {
        tokio::select! {
            biased;
            m = out.recv() => match m {
                Some(m) => outbound(&net, &subjects, &to_room, &mut subs, m).await,
                None => break,
            },
            _ = media.ready.notified() => {
                for _ in 0..MEDIA_BATCH {
                    let (f, dropped) = media.queue.lock().pop(std::time::Instant::now());
                    net.stats.count_dropped(dropped);
                    let Some(f) = f else { break };
                    let h = f.header();
                    if let Some(subject) = subjects.media(h.track_id, h.layer) {
                        let len = f.len();
                        if client.publish(subject, f.as_bytes().clone()).await.is_ok() {
                            net.stats.count_out(len);
                        }
                    }
                }
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

async fn outbound(
    net: &Arc<Net>,
    subjects: &Subjects,
    to_room: &ToRoom,
    subs: &mut HashMap<(u32, u8), Abort>,
    m: Outbound,
) {
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
        Outbound::Interest(want) => {
            subs.retain(|k, _| want.contains(k));
            for (track_id, layer) in want {
                if subs.contains_key(&(track_id, layer)) {
                    continue;
                }
                let Some(subject) = subjects.media(track_id, layer) else {
                    continue;
                };
                match net.client.subscribe(subject).await {
                    Ok(sub) => {
                        let task = tokio::spawn(receive_media(
                            net.clone(),
                            sub,
                            to_room.clone(),
                            track_id,
                            layer,
                        ));
                        subs.insert((track_id, layer), Abort(task));
                    }
                    Err(e) => {
                        tracing::warn!(track_id, layer, error = %e, "media subscription failed")
                    }
                }
            }
        }
    }
}

/// Hands one track layer's frames to the room; a frame whose header disagrees with the
/// subject it came on is dropped.
async fn receive_media(
    net: Arc<Net>,
    mut sub: async_nats::Subscriber,
    to_room: ToRoom,
    track_id: u32,
    layer: u8,
) {
    while let Some(m) = sub.next().await {
        let len = m.payload.len();
        match EncodedFrame::decode(m.payload) {
            Ok(f) if f.header().track_id == track_id && f.header().layer == layer => {
                net.stats.count_in(len);
                let audio = f.header().kind == quicmeet_proto::MediaKind::Audio;
                if !to_room(Inbound::Media(f)) {
                    net.stats.count_dropped(Dropped {
                        audio: u64::from(audio),
                        video: u64::from(!audio),
                    });
                }
            }
            _ => {
                net.stats
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
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
