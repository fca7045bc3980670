//! The room actor's cluster side (docs/CLUSTER.md sections 4–9): mirrors of the meeting's
//! participants on other nodes, fed to the SFU room as remote members; this room's own facts
//! announced to the others; media, keyframe requests, host commands and signals across
//! nodes; a dead node's participants dropped.
//!
//! The SFU room stays sans-IO: it sees a mirror as a member with a `ConnId` of its own that
//! never has a connection, so its outputs for a mirror are simply not delivered.

use std::collections::HashMap;

use quicmeet_proto::{track, ClientMessage, EncodedFrame, Participant, Role, ServerMessage};
use quicmeet_sfu::{ConnId, Input, Remote};

use super::{cluster_hold::Hold, Actor};
use crate::cluster::{
    batch::{destinations, Dests},
    link::{Inbound, Link, Outbound},
    net::NodeChange,
    wire::{Command, End, Envelope, Event, KeyframeAsk, Member, Want},
};

/// One room's state of the cluster.
pub struct ClusterRoom {
    pub link: Link,
    epoch: u64,
    seq: u64,
    /// Per other node: the epoch and last sequence number of its events applied here.
    origins: HashMap<String, (u64, u64)>,
    /// Every mirrored participant: its node and its mirror's handle.
    mirrors: HashMap<u32, (String, ConnId)>,
    /// What each other node wants of this node's tracks.
    wants_of: HashMap<String, Vec<Want>>,
    /// The union of `wants_of`, per track.
    remote_wants: HashMap<u32, u8>,
    /// The nodes that want each (track, layer) of this node's, from `wants_of`.
    dests: HashMap<(u32, u8), Dests>,
    /// Frames for other nodes accepted in the actor's current turn, handed to the link
    /// together at its end ([`ClusterRoom::flush_media`]).
    media_out: Vec<(EncodedFrame, Dests)>,
    /// What this node last said it wants, and the media subjects it subscribes to.
    my_wants: Vec<Want>,
    /// A room starting here while other nodes hold the meeting: joins wait for their
    /// snapshots, so the first `welcome`s list everyone.
    pub(super) hold: Option<Hold>,
}

impl ClusterRoom {
    /// The cluster side of a room of meeting `code` starting now: if the directory says other
    /// nodes hold the meeting, its first joins wait for their snapshots ([`Hold`]).
    pub fn new(link: Link, code: &str) -> Self {
        let hold = Hold::starting(link.net(), code);
        Self {
            hold,
            link,
            epoch: random_epoch(),
            seq: 0,
            origins: HashMap::new(),
            mirrors: HashMap::new(),
            wants_of: HashMap::new(),
            remote_wants: HashMap::new(),
            dests: HashMap::new(),
            media_out: Vec::new(),
            my_wants: Vec::new(),
        }
    }

    /// Layers of this node's track `track_id` other nodes want.
    pub fn remote_wants(&self, track_id: u32) -> u8 {
        self.remote_wants.get(&track_id).copied().unwrap_or(0)
    }

    /// Whether `track_id` belongs to a participant of another node.
    pub fn is_remote_track(&self, track_id: u32) -> bool {
        self.mirrors.contains_key(&track::participant_of(track_id))
    }

    /// The node and participant id behind a mirror's handle.
    fn node_of(&self, conn: ConnId) -> Option<&str> {
        self.mirrors
            .values()
            .find(|(_, c)| *c == conn)
            .map(|(n, _)| n.as_str())
    }

    fn publish(&mut self, event: Event) {
        self.seq += 1;
        let env = Envelope {
            node: self.link.node_id().to_owned(),
            epoch: self.epoch,
            seq: self.seq,
            event,
        };
        self.link.send(Outbound::Event(env));
    }

    /// A frame this room accepted from one of its own publishers or its transcoder: on to
    /// the nodes that want its layer, at the end of the actor's turn.
    pub fn forward_local(&mut self, frame: &EncodedFrame) {
        let h = frame.header();
        if let Some(to) = self.dests.get(&(h.track_id, h.layer)) {
            self.media_out.push((frame.clone(), to.clone()));
        }
    }

    /// Hands the turn's frames for other nodes to the link, all at once: what one turn
    /// accepted can leave in one batch per node. A turn is bounded (the actor takes at most
    /// 65 commands before it settles), so this holds no frame longer than the turn.
    pub fn flush_media(&mut self) {
        if !self.media_out.is_empty() {
            self.link.media(self.media_out.drain(..));
        }
    }

    fn recompute_wants(&mut self) {
        self.remote_wants.clear();
        for w in self.wants_of.values().flatten() {
            *self.remote_wants.entry(w.track_id).or_default() |= w.layers;
        }
        self.dests = destinations(&self.wants_of);
    }
}

impl Actor {
    fn new_mirror_conn(&self) -> ConnId {
        self.hub.new_conn_id()
    }

    /// Something from another node.
    pub(super) fn cluster_inbound(&mut self, i: Inbound) {
        if self.cluster.is_none() {
            return;
        }
        match i {
            Inbound::Media { node, frames } => {
                // One batch; the actor hands its frames out together at the end of the turn.
                for f in frames {
                    // Only frames of the sending node's own participants.
                    let pid = track::participant_of(f.header().track_id);
                    if let Some(conn) = self.mirror(&node, pid) {
                        self.input(Input::Media(conn, f));
                    }
                }
            }
            Inbound::Event(env) => self.apply_envelope(env),
            Inbound::Command(cmd) => self.apply_command(cmd),
            Inbound::Keyframe(KeyframeAsk { track_id, layer }) => {
                self.input(Input::Remote(Remote::KeyframeRequest { track_id, layer }));
            }
            Inbound::Sync(_) => self.publish_snapshot(),
            Inbound::End(End { node, by }) => {
                tracing::info!(room = %self.code, node, by, "meeting ended on another node");
                self.input(Input::Remote(Remote::End));
            }
        }
    }

    /// A node went silent (its participants leave as `disconnected`) or came back (its
    /// snapshot is asked for).
    pub(super) fn node_change(&mut self, change: NodeChange) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        match change {
            NodeChange::Up(_) => c.link.send(Outbound::Sync),
            NodeChange::Down(node) => {
                c.origins.remove(&node);
                c.wants_of.remove(&node);
                c.recompute_wants();
                let gone: Vec<(u32, ConnId)> = c
                    .mirrors
                    .iter()
                    .filter(|(_, (n, _))| *n == node)
                    .map(|(p, (_, conn))| (*p, *conn))
                    .collect();
                for (pid, _) in &gone {
                    c.mirrors.remove(pid);
                }
                self.layers_synced = None;
                for (_, conn) in gone {
                    self.input(Input::Leave(conn, "disconnected".into()));
                }
            }
        }
    }

    fn apply_envelope(&mut self, env: Envelope) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let Envelope {
            node,
            epoch,
            seq,
            event,
        } = env;
        let mut gap = false;
        match c.origins.get(&node).copied() {
            Some((e, last)) if e == epoch => {
                if seq <= last && !matches!(event, Event::Snapshot { .. }) {
                    return; // already applied (it was in a snapshot)
                }
                if matches!(event, Event::Snapshot { .. }) && seq < last {
                    return; // an older picture than what we have
                }
                gap = seq > last + 1 && !matches!(event, Event::Snapshot { .. });
            }
            _ => {}
        }
        c.origins.insert(node.clone(), (epoch, seq));
        match event {
            Event::Snapshot { roster, wants } => {
                self.set_wants(&node, wants);
                self.apply_snapshot(&node, roster);
                self.snapshot_arrived(&node);
            }
            Event::Wants { wants } => self.set_wants(&node, wants),
            Event::Room { msg } => self.apply_room_event(&node, msg),
        }
        if gap {
            tracing::debug!(room = %self.code, node, "lost cluster events; asking for snapshots");
            if let Some(c) = &self.cluster {
                c.link.send(Outbound::Sync);
            }
        }
    }

    fn set_wants(&mut self, node: &str, wants: Vec<Want>) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let own: Vec<Want> = wants
            .into_iter()
            .filter(|w| {
                self.pid_conn
                    .contains_key(&track::participant_of(w.track_id))
            })
            .collect();
        c.wants_of.insert(node.to_owned(), own);
        c.recompute_wants();
        self.layers_synced = None;
    }

    /// The mirror of `pid` if it belongs to `node`; `None` for unknown ids or ids another
    /// node speaks for (a node only ever speaks for its own participants).
    fn mirror(&self, node: &str, pid: u32) -> Option<ConnId> {
        let (n, conn) = self.cluster.as_ref()?.mirrors.get(&pid)?;
        (n == node).then_some(*conn)
    }

    /// Adds or updates a mirror; `None` when `pid` is one of ours or another node's.
    fn upsert_mirror(
        &mut self,
        node: &str,
        participant: Participant,
        email: String,
        lobby: bool,
    ) -> Option<ConnId> {
        let pid = participant.id;
        if self.pid_conn.contains_key(&pid) {
            return None;
        }
        let conn = match self.cluster.as_ref()?.mirrors.get(&pid) {
            Some((n, conn)) if n == node => *conn,
            Some(_) => return None,
            None => {
                let conn = self.new_mirror_conn();
                self.cluster
                    .as_mut()?
                    .mirrors
                    .insert(pid, (node.to_owned(), conn));
                conn
            }
        };
        self.input(Input::Remote(Remote::Member {
            conn,
            participant,
            email,
            lobby,
        }));
        Some(conn)
    }

    fn apply_room_event(&mut self, node: &str, msg: ServerMessage) {
        match msg {
            ServerMessage::ParticipantJoined { participant } => {
                let email = self
                    .mirror(node, participant.id)
                    .and_then(|c| self.room.remote_entry(c))
                    .map(|e| e.email)
                    .unwrap_or_default();
                self.upsert_mirror(node, participant, email, false);
            }
            ServerMessage::Knock {
                participant_id,
                name,
                email,
            } => {
                let p = Participant {
                    id: participant_id,
                    name,
                    role: Role::Guest,
                    audio_muted: false,
                    video_muted: false,
                    hand_raised: false,
                    transport: String::new(),
                };
                self.upsert_mirror(node, p, email, true);
            }
            ServerMessage::ParticipantLeft {
                participant_id,
                reason,
            } => {
                if let Some(conn) = self.mirror(node, participant_id) {
                    if let Some(c) = self.cluster.as_mut() {
                        c.mirrors.remove(&participant_id);
                    }
                    self.input(Input::Leave(conn, reason));
                }
            }
            ServerMessage::TrackPublished { track } => {
                if let Some(conn) = self.mirror(node, track.participant_id) {
                    let m = ClientMessage::Publish {
                        track_id: track.track_id,
                        kind: track.kind,
                        codec: track.codec,
                        width: track.width,
                        height: track.height,
                        layers_capable: false,
                    };
                    self.input(Input::Control(conn, m));
                }
            }
            ServerMessage::TrackUnpublished { track_id } => {
                if let Some(conn) = self.mirror(node, track::participant_of(track_id)) {
                    self.input(Input::Control(conn, ClientMessage::Unpublish { track_id }));
                }
            }
            ServerMessage::MuteState {
                participant_id,
                audio,
                video,
            } => {
                if let Some(conn) = self.mirror(node, participant_id) {
                    self.input(Input::Control(conn, ClientMessage::Mute { audio, video }));
                }
            }
            ServerMessage::Hand {
                participant_id,
                raised,
            } => {
                if let Some(conn) = self.mirror(node, participant_id) {
                    self.input(Input::Control(conn, ClientMessage::Hand { raised }));
                }
            }
            ServerMessage::Reaction {
                participant_id,
                emoji,
            } => {
                if let Some(conn) = self.mirror(node, participant_id) {
                    self.input(Input::Control(conn, ClientMessage::Reaction { emoji }));
                }
            }
            ServerMessage::Chat(m) => {
                if self.mirror(node, m.participant_id).is_some() {
                    self.input(Input::Remote(Remote::Chat(m)));
                }
            }
            other => {
                tracing::debug!(room = %self.code, node, msg = ?other, "ignored cluster event");
            }
        }
    }

    /// Makes the mirrors of `node` what its snapshot says.
    fn apply_snapshot(&mut self, node: &str, roster: Vec<Member>) {
        let Some(c) = self.cluster.as_ref() else {
            return;
        };
        let listed: Vec<u32> = roster.iter().map(|m| m.participant.id).collect();
        let stale: Vec<(u32, ConnId)> = c
            .mirrors
            .iter()
            .filter(|(p, (n, _))| n == node && !listed.contains(p))
            .map(|(p, (_, conn))| (*p, *conn))
            .collect();
        for (pid, conn) in stale {
            if let Some(c) = self.cluster.as_mut() {
                c.mirrors.remove(&pid);
            }
            self.input(Input::Leave(conn, "left".into()));
        }
        for m in roster {
            let before = self
                .mirror(node, m.participant.id)
                .and_then(|c| self.room.remote_entry(c));
            let p = m.participant.clone();
            let Some(conn) = self.upsert_mirror(node, m.participant, m.email, m.lobby) else {
                continue;
            };
            let now = self.room.remote_entry(conn);
            let (muted, hand, tracks) = match (&before, &now) {
                (Some(b), _) => (
                    (b.participant.audio_muted, b.participant.video_muted),
                    b.participant.hand_raised,
                    b.tracks.clone(),
                ),
                (None, Some(n)) => (
                    (n.participant.audio_muted, n.participant.video_muted),
                    n.participant.hand_raised,
                    n.tracks.clone(),
                ),
                (None, None) => continue,
            };
            if muted != (p.audio_muted, p.video_muted) {
                let msg = ClientMessage::Mute {
                    audio: p.audio_muted,
                    video: p.video_muted,
                };
                self.input(Input::Control(conn, msg));
            }
            if hand != p.hand_raised {
                let msg = ClientMessage::Hand {
                    raised: p.hand_raised,
                };
                self.input(Input::Control(conn, msg));
            }
            for t in tracks.iter().filter(|t| !m.tracks.contains(t)) {
                let msg = ClientMessage::Unpublish {
                    track_id: t.track_id,
                };
                self.input(Input::Control(conn, msg));
            }
            for t in m.tracks.iter().filter(|t| !tracks.contains(t)) {
                let msg = ClientMessage::Publish {
                    track_id: t.track_id,
                    kind: t.kind,
                    codec: t.codec.clone(),
                    width: t.width,
                    height: t.height,
                    layers_capable: false,
                };
                self.input(Input::Control(conn, msg));
            }
        }
    }

    /// A host power or signal from a participant of another node for one of ours: carried
    /// out as if the sender's mirror had sent it here, so this room checks it again.
    fn apply_command(&mut self, cmd: Command) {
        let target = match &cmd.msg {
            ClientMessage::Admit { participant_id }
            | ClientMessage::Deny { participant_id }
            | ClientMessage::MuteParticipant { participant_id }
            | ClientMessage::Remove { participant_id } => *participant_id,
            ClientMessage::Signal { to, .. } => *to,
            other => {
                tracing::debug!(room = %self.code, msg = other.type_name(), "refused cluster command");
                return;
            }
        };
        if !self.pid_conn.contains_key(&target) {
            return; // not ours (any more): the target left meanwhile
        }
        if let Some(by) = self.mirror(&cmd.node, cmd.by) {
            self.input(Input::Control(by, cmd.msg));
        }
    }

    /// Publishes this room's own participants, tracks and wants.
    pub(super) fn publish_snapshot(&mut self) {
        let roster = self
            .room
            .local_roster()
            .into_iter()
            .map(|e| Member {
                participant: e.participant,
                email: e.email,
                lobby: e.lobby,
                tracks: e.tracks,
            })
            .collect();
        if let Some(c) = self.cluster.as_mut() {
            let wants = c.my_wants.clone();
            // A snapshot is "as of" the last event: receivers continue at seq + 1.
            c.seq = c.seq.saturating_sub(1);
            c.publish(Event::Snapshot { roster, wants });
        }
    }

    /// After the room's wanted layers moved: subscribe to exactly the other nodes' track
    /// layers local subscribers want, and tell the publishers' nodes.
    pub(super) fn sync_interest(&mut self) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let mut wants: Vec<Want> = self
            .room
            .tracks()
            .filter(|t| c.is_remote_track(t.track_id))
            .map(|t| Want {
                track_id: t.track_id,
                layers: self.room.wanted_layers(t.track_id),
            })
            .filter(|w| w.layers != 0)
            .collect();
        wants.sort_by_key(|w| w.track_id);
        if wants == c.my_wants {
            return;
        }
        let layers = wants
            .iter()
            .flat_map(|w| {
                (0..=quicmeet_sfu::MAX_LAYER)
                    .filter(move |l| w.layers & (1 << l) != 0)
                    .map(move |l| (w.track_id, l))
            })
            .collect();
        let mut nodes: Vec<String> = wants
            .iter()
            .filter_map(|w| c.mirrors.get(&track::participant_of(w.track_id)))
            .map(|(n, _)| n.clone())
            .collect();
        nodes.sort();
        nodes.dedup();
        c.link.send(Outbound::Interest { layers, nodes });
        c.my_wants = wants.clone();
        c.publish(Event::Wants { wants });
    }

    /// Room output that concerns other nodes. `false` when it is not a cluster matter.
    pub(super) fn cluster_output(&mut self, out: &quicmeet_sfu::Output) -> bool {
        use quicmeet_sfu::Output;
        let Some(c) = self.cluster.as_mut() else {
            return false;
        };
        match out {
            Output::Announce(msg) => {
                c.publish(Event::Room { msg: msg.clone() });
                true
            }
            Output::RemoteCommand { target, by, msg } => {
                if let Some(node) = c.node_of(*target).map(str::to_owned) {
                    let cmd = Command {
                        node: c.link.node_id().to_owned(),
                        by: *by,
                        msg: msg.clone(),
                    };
                    c.link.send(Outbound::Command { node, cmd });
                }
                true
            }
            Output::KeyframeRequest {
                publisher,
                track_id,
                layer,
            } => match c.node_of(*publisher).map(str::to_owned) {
                Some(node) => {
                    let ask = KeyframeAsk {
                        track_id: *track_id,
                        layer: *layer,
                    };
                    c.link.send(Outbound::Keyframe { node, ask });
                    true
                }
                None => false,
            },
            Output::MeetingEnded { by } => {
                // The commit point is `ended_at` in the shared state; the message follows it.
                let written = self.hub.mark_ended(&self.code);
                let net = c.link.net().clone();
                let subject = c.link.subjects.end();
                let end = End {
                    node: net.node_id.clone(),
                    by: *by,
                };
                tokio::spawn(async move {
                    let _ = written.await;
                    if let Ok(body) = serde_json::to_vec(&end) {
                        let _ = net.client.publish(subject, body.into()).await;
                        let _ = net.client.flush().await;
                    }
                });
                true
            }
            _ => false,
        }
    }
}

/// A number that differs between a node's successive rooms of one meeting.
fn random_epoch() -> u64 {
    let mut b = [0u8; 8];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        return chrono::Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64 >> 11;
    }
    u64::from_le_bytes(b) >> 11
}
