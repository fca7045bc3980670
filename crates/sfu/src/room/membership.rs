//! Joining, the lobby, admission and leaving.

use std::time::Instant;

use quicmeet_proto::{Participant, Role, ServerMessage};

use super::state::{Admission, Member};
use super::{ConnId, Join, Output, Recipients, Room};
use crate::bwe;

impl Room {
    pub(super) fn join(&mut self, now: Instant, j: Join) {
        if self.members.contains_key(&j.conn) {
            self.error(j.conn, "already_joined", "This connection already joined");
            return;
        }
        if self.ended {
            return self.refuse(j.conn, "ended", "The meeting has ended");
        }
        let lobby = j.lobby && j.role != Role::Host;
        let full = if lobby {
            self.lobby_count() >= self.config.max_lobby
        } else {
            self.participant_count() >= self.config.max_participants
        };
        if full {
            return self.refuse(j.conn, "room_full", "The meeting is full");
        }
        if self.next_pid >= self.config.participant_ids.end {
            // This room's block of ids is used up (cluster mode); never reuse an id.
            return self.refuse(j.conn, "room_full", "The meeting is full");
        }
        let pid = self.next_pid;
        self.next_pid += 1;
        let member = Member::new(
            now,
            &self.config,
            Participant {
                id: pid,
                name: j.name,
                role: j.role,
                audio_muted: false,
                video_muted: false,
                hand_raised: false,
                transport: j.transport,
            },
            j.email,
            if lobby {
                Admission::Lobby
            } else {
                Admission::Admitted
            },
            false,
        );
        self.members.insert(j.conn, member);
        self.by_pid.insert(pid, j.conn);
        self.outputs.push_back(Output::Joined {
            conn: j.conn,
            participant_id: pid,
        });
        if lobby {
            self.send(
                j.conn,
                ServerMessage::Lobby {
                    message: "Waiting for the host to let you in".into(),
                },
            );
            self.knock(j.conn);
            if let Some(m) = self.members.get(&j.conn) {
                let msg = ServerMessage::Knock {
                    participant_id: m.pid,
                    name: m.name.clone(),
                    email: m.email.clone(),
                };
                self.announce(true, msg);
            }
        } else {
            self.admit_member(j.conn);
        }
    }

    /// Turns a connection away before it became a member.
    fn refuse(&mut self, conn: ConnId, reason: &'static str, message: &str) {
        self.send(conn, ServerMessage::goodbye(reason, message));
        self.outputs
            .push_back(Output::Disconnect { who: conn, reason });
    }

    pub(super) fn knock(&mut self, conn: ConnId) {
        let Some(m) = self.members.get(&conn) else {
            return self.violation();
        };
        let msg = ServerMessage::Knock {
            participant_id: m.pid,
            name: m.name.clone(),
            email: m.email.clone(),
        };
        let hosts = self.hosts();
        if !hosts.is_empty() {
            self.outputs.push_back(Output::Control {
                to: Recipients::Many(hosts),
                msg,
            });
        }
    }

    /// Mark admitted, send welcome, tell the others; a host also hears of the waiting lobby.
    pub(super) fn admit_member(&mut self, conn: ConnId) {
        let Some(m) = self.members.get_mut(&conn) else {
            return self.violation();
        };
        m.admission = Admission::Admitted;
        let (pid, role, local) = (m.pid, m.role, !m.remote);
        let participant = m.participant();
        let welcome = ServerMessage::Welcome {
            participant_id: pid,
            role,
            meeting: self.config.meeting.clone(),
            participants: self
                .by_pid
                .values()
                .filter_map(|c| self.members.get(c))
                .filter(|m| m.admitted())
                .map(Member::participant)
                .collect(),
            tracks: self.tracks.values().map(|t| t.info.clone()).collect(),
            chat: self.chat.iter().cloned().collect(),
        };
        self.send(conn, welcome);
        self.announce(
            local,
            ServerMessage::ParticipantJoined {
                participant: participant.clone(),
            },
        );
        self.broadcast(Some(conn), ServerMessage::ParticipantJoined { participant });
        if role == Role::Host && local {
            let knocks: Vec<ServerMessage> = self
                .by_pid
                .values()
                .filter_map(|c| self.members.get(c))
                .filter(|m| !m.admitted())
                .map(|m| ServerMessage::Knock {
                    participant_id: m.pid,
                    name: m.name.clone(),
                    email: m.email.clone(),
                })
                .collect();
            for msg in knocks {
                self.send(conn, msg);
            }
        }
    }

    /// Forget a member: its subscriptions, its tracks, and tell the others.
    pub(super) fn remove_member(&mut self, conn: ConnId, reason: &str) {
        let Some(m) = self.members.remove(&conn) else {
            return;
        };
        self.by_pid.remove(&m.pid);
        for t in &m.subscriptions {
            if let Some(track) = self.tracks.get_mut(t) {
                track.subs.retain(|s| s.conn != conn);
            }
            self.refresh_wanted(*t);
        }
        self.bwe.handle_input(self.now, bwe::Input::Leave(conn));
        let first = m.pid.saturating_mul(16);
        let owned: Vec<u32> = self
            .tracks
            .range(first..first.saturating_add(16))
            .map(|(id, _)| *id)
            .collect();
        for t in owned {
            self.drop_track(t);
        }
        if self.speaker == Some(m.pid) {
            self.speaker = None;
            self.bwe.handle_input(self.now, bwe::Input::Speaker(None));
        }
        let msg = ServerMessage::ParticipantLeft {
            participant_id: m.pid,
            reason: reason.to_owned(),
        };
        self.announce(!m.remote, msg.clone());
        if m.admitted() {
            self.broadcast(None, msg);
        } else {
            let hosts = self.hosts();
            if !hosts.is_empty() {
                self.outputs.push_back(Output::Control {
                    to: Recipients::Many(hosts),
                    msg,
                });
            }
        }
    }

    /// Remove a member on the room's initiative: last words, disconnect, tell the others.
    pub(super) fn expel(&mut self, conn: ConnId, last: ServerMessage, reason: &'static str) {
        self.send(conn, last);
        self.outputs
            .push_back(Output::Disconnect { who: conn, reason });
        self.remove_member(conn, reason);
    }

    pub(super) fn drop_track(&mut self, track_id: u32) {
        let Some(t) = self.tracks.remove(&track_id) else {
            return;
        };
        // A departing owner is already gone from `members`: its `participant_left` says it.
        let local = self.members.get(&t.owner).is_some_and(|m| !m.remote);
        self.announce(local, ServerMessage::TrackUnpublished { track_id });
        for s in &t.subs {
            if let Some(m) = self.members.get_mut(&s.conn) {
                m.subscriptions.retain(|x| *x != track_id);
            }
            self.bwe.handle_input(
                self.now,
                bwe::Input::Unsubscribe {
                    conn: s.conn,
                    track_id,
                },
            );
        }
        self.bwe
            .handle_input(self.now, bwe::Input::TrackGone(track_id));
        self.layers_version += 1;
        self.broadcast(None, ServerMessage::TrackUnpublished { track_id });
    }
}
