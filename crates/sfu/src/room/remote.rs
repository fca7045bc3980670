//! Participants of other nodes (cluster mode, docs/CLUSTER.md section 4).
//!
//! A meeting that spans nodes has one room per node. Each room holds its own participants and
//! a mirror of the others' (members flagged `remote`, under a `ConnId` the server picks). A
//! mirror is never decided about here: its home node admits, mutes, removes it and announces
//! the result, which arrives as [`Remote`] inputs and as ordinary control input from the
//! mirror's `ConnId`. What this room decides about its own participants leaves as
//! [`super::Output::Announce`]; host powers and signals aimed at a mirror leave as
//! [`super::Output::RemoteCommand`].

use std::time::Instant;

use quicmeet_proto::{track, ChatMessage, Participant, ServerMessage, TrackInfo};

use super::state::{Admission, Member};
use super::{ConnId, Output, Room};

/// What another node of the cluster decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Remote {
    /// A participant of another node joined, knocked (`lobby`), was admitted or changed
    /// (a snapshot). `conn` is the handle the server picked for its mirror.
    Member {
        /// The mirror's handle.
        conn: ConnId,
        /// The participant as its home node describes it.
        participant: Participant,
        /// Shown to hosts with a knock.
        email: String,
        /// Still waiting in its home node's lobby.
        lobby: bool,
    },
    /// A chat message its author's node accepted (id and time assigned there).
    Chat(ChatMessage),
    /// Another node's subscriber needs a keyframe of one of this room's own tracks; it goes
    /// through the same per-track, per-layer limit as a local request.
    KeyframeRequest {
        /// The track.
        track_id: u32,
        /// The layer.
        layer: u8,
    },
    /// A host on another node ended the meeting (after recording it in the shared state).
    End,
}

/// One of this room's own participants, as a snapshot for other nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterEntry {
    /// The participant.
    pub participant: Participant,
    /// Its e-mail (hosts see it with a knock).
    pub email: String,
    /// Waiting in the lobby.
    pub lobby: bool,
    /// Its published tracks.
    pub tracks: Vec<TrackInfo>,
}

/// The smallest chat id above `seen` that is `offset` modulo `stride`.
pub(super) fn chat_id_after(seen: u64, stride: u64, offset: u64) -> u64 {
    let stride = stride.max(1);
    let x = seen + 1;
    x + (offset % stride + stride - x % stride) % stride
}

impl Room {
    pub(super) fn remote(&mut self, now: Instant, r: Remote) {
        match r {
            Remote::Member {
                conn,
                participant,
                email,
                lobby,
            } => self.remote_member(now, conn, participant, email, lobby),
            Remote::Chat(c) => self.remote_chat(c),
            Remote::KeyframeRequest { track_id, layer } => {
                let local = self
                    .tracks
                    .get(&track_id)
                    .and_then(|t| self.members.get(&t.owner))
                    .is_some_and(|m| !m.remote);
                if local {
                    self.request_keyframe(now, track_id, layer);
                }
            }
            Remote::End => {
                if !self.ended {
                    self.end_here();
                }
            }
        }
    }

    fn remote_member(
        &mut self,
        now: Instant,
        conn: ConnId,
        p: Participant,
        email: String,
        lobby: bool,
    ) {
        if self.ended {
            return;
        }
        if let Some(m) = self.members.get_mut(&conn) {
            if !m.remote || m.pid != p.id {
                return self.violation();
            }
            m.name = p.name;
            m.role = p.role;
            m.transport = p.transport;
            m.email = email;
            let admit = !lobby && !m.admitted();
            if admit {
                self.admit_member(conn);
            }
            return;
        }
        if self.by_pid.contains_key(&p.id) || track::track_id(p.id, track::Slot::Mic).is_none() {
            // Ids are unique across nodes by construction; a clash is a bug elsewhere.
            return self.violation();
        }
        let pid = p.id;
        let admission = if lobby {
            Admission::Lobby
        } else {
            Admission::Admitted
        };
        let member = Member::new(now, &self.config, p, email, admission, true);
        self.members.insert(conn, member);
        self.by_pid.insert(pid, conn);
        if lobby {
            self.knock(conn);
        } else {
            self.admit_member(conn);
        }
    }

    fn remote_chat(&mut self, c: ChatMessage) {
        if self.ended {
            return;
        }
        let (stride, offset) = (self.config.chat_id_stride, self.config.chat_id_offset);
        if c.id >= self.next_chat_id {
            self.next_chat_id = chat_id_after(c.id, stride, offset);
        }
        self.last_chat_ts = self.last_chat_ts.max(c.ts_ms);
        if self.chat.len() >= self.config.chat_history_len {
            self.chat.pop_front();
        }
        if self.config.chat_history_len > 0 {
            self.chat.push_back(c.clone());
        }
        self.broadcast(None, ServerMessage::Chat(c));
    }

    /// Emits [`Output::Announce`] when the fact is about a local participant and the room
    /// announces (cluster mode).
    pub(super) fn announce(&mut self, local: bool, msg: ServerMessage) {
        if local && self.config.announce {
            self.outputs.push_back(Output::Announce(msg));
        }
    }

    /// This room's own participants (lobby included) and their tracks.
    pub fn local_roster(&self) -> Vec<RosterEntry> {
        self.by_pid
            .values()
            .filter_map(|c| self.members.get(c).map(|m| (*c, m)))
            .filter(|(_, m)| !m.remote)
            .map(|(c, m)| self.entry(c, m))
            .collect()
    }

    /// A mirror's state as this room knows it (`None` for unknown or local connections).
    pub fn remote_entry(&self, conn: ConnId) -> Option<RosterEntry> {
        let m = self.members.get(&conn).filter(|m| m.remote)?;
        Some(self.entry(conn, m))
    }

    fn entry(&self, conn: ConnId, m: &Member) -> RosterEntry {
        RosterEntry {
            participant: m.participant(),
            email: m.email.clone(),
            lobby: !m.admitted(),
            tracks: self
                .tracks
                .values()
                .filter(|t| t.owner == conn)
                .map(|t| t.info.clone())
                .collect(),
        }
    }

    /// Members of this room that are not mirrors of another node's participants.
    pub fn local_count(&self) -> usize {
        self.members.values().filter(|m| !m.remote).count()
    }
}

#[cfg(test)]
mod tests {
    use super::chat_id_after;

    #[test]
    fn chat_ids_stay_in_their_lane_above_what_was_seen() {
        assert_eq!(chat_id_after(0, 1, 0), 1);
        assert_eq!(chat_id_after(41, 1, 0), 42);
        assert_eq!(chat_id_after(0, 1024, 5), 5);
        assert_eq!(chat_id_after(5, 1024, 5), 1029);
        assert_eq!(chat_id_after(1030, 1024, 7), 1031);
        assert_eq!(chat_id_after(1031, 1024, 7), 2055);
    }

    use std::time::Instant;

    use quicmeet_proto::{ClientMessage, Participant, Role, ServerMessage};

    use crate::{ConnId, Input, Join, Output, Remote, Room, RoomConfig};

    fn drain(room: &mut Room) -> Vec<Output> {
        std::iter::from_fn(|| room.poll_output()).collect()
    }

    fn clustered() -> (Room, Instant) {
        let now = Instant::now();
        let config = RoomConfig {
            announce: true,
            participant_ids: 1025..2049,
            ..RoomConfig::default()
        };
        let mut room = Room::new(config, now, 1_764_000_000_000, vec![]);
        room.handle_input(
            now,
            Input::Join(Join {
                conn: ConnId(1),
                name: "Ann".into(),
                email: String::new(),
                role: Role::Host,
                lobby: false,
                transport: "webtransport".into(),
            }),
        );
        room.handle_input(
            now,
            Input::Remote(Remote::Member {
                conn: ConnId(900),
                participant: Participant {
                    id: 7,
                    name: "Bob".into(),
                    role: Role::Guest,
                    audio_muted: false,
                    video_muted: false,
                    hand_raised: false,
                    transport: "websocket".into(),
                },
                email: "bob@x.test".into(),
                lobby: false,
            }),
        );
        (room, now)
    }

    #[test]
    fn a_remote_member_is_shown_never_announced_and_host_powers_go_to_its_node() {
        let (mut room, now) = clustered();
        let outs = drain(&mut room);
        assert_eq!(
            room.participant_id(ConnId(1)),
            Some(1025),
            "ids from the room's block"
        );
        let announced: Vec<&ServerMessage> = outs
            .iter()
            .filter_map(|o| match o {
                Output::Announce(m) => Some(m),
                _ => None,
            })
            .collect();
        assert!(
            matches!(announced.as_slice(), [ServerMessage::ParticipantJoined { participant }] if participant.id == 1025),
            "only the local join is announced: {announced:?}"
        );
        assert!(outs.iter().any(|o| matches!(o,
            Output::Control { to, msg: ServerMessage::ParticipantJoined { participant } }
                if to.contains(ConnId(1)) && participant.id == 7)));
        assert_eq!(room.local_count(), 1);
        assert_eq!(room.participant_count(), 2);

        // The host removes the remote member: the room forwards, and keeps the mirror until
        // the member's node says it left.
        room.handle_input(
            now,
            Input::Control(ConnId(1), ClientMessage::Remove { participant_id: 7 }),
        );
        let outs = drain(&mut room);
        assert_eq!(
            outs,
            vec![Output::RemoteCommand {
                target: ConnId(900),
                by: 1025,
                msg: ClientMessage::Remove { participant_id: 7 },
            }]
        );
        assert_eq!(room.participant_count(), 2);
        room.handle_input(now, Input::Leave(ConnId(900), "removed".into()));
        let outs = drain(&mut room);
        assert!(
            outs.iter().all(|o| !matches!(o, Output::Announce(_))),
            "{outs:?}"
        );
        assert!(outs.iter().any(|o| matches!(o,
            Output::Control { msg: ServerMessage::ParticipantLeft { participant_id: 7, reason }, .. } if reason == "removed")));
    }

    #[test]
    fn remote_chat_keeps_its_id_and_local_ids_move_above_it() {
        let (mut room, now) = clustered();
        drain(&mut room);
        let chat = quicmeet_proto::ChatMessage {
            id: 5000,
            participant_id: 7,
            name: "Bob".into(),
            text: "hi".into(),
            ts_ms: 1_764_000_000_001,
        };
        room.handle_input(now, Input::Remote(Remote::Chat(chat.clone())));
        let outs = drain(&mut room);
        assert!(outs.iter().any(|o| matches!(o,
            Output::Control { to, msg: ServerMessage::Chat(c) } if to.contains(ConnId(1)) && *c == chat)));
        assert!(!outs
            .iter()
            .any(|o| matches!(o, Output::ChatPersist(_) | Output::Announce(_))));
        room.handle_input(
            now,
            Input::Control(ConnId(1), ClientMessage::Chat { text: "yo".into() }),
        );
        let mine = drain(&mut room)
            .into_iter()
            .find_map(|o| match o {
                Output::ChatPersist(c) => Some(c),
                _ => None,
            })
            .unwrap();
        assert_eq!(mine.id, 5001);
    }
}
