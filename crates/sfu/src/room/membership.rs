//! Joining, the lobby, admission and leaving.

use std::time::Instant;

use quicmeet_proto::{Role, ServerMessage};

use super::state::{Admission, Flood, Member};
use super::{ConnId, Join, Output, Recipients, Room};
use crate::bwe;
use crate::rate::TokenBucket;

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
        let pid = self.next_pid;
        self.next_pid += 1;
        let c = &self.config;
        let member = Member {
            pid,
            name: j.name,
            email: j.email,
            role: j.role,
            admission: if lobby {
                Admission::Lobby
            } else {
                Admission::Admitted
            },
            audio_muted: false,
            video_muted: false,
            hand_raised: false,
            transport: j.transport,
            publish_frames: TokenBucket::new(now, c.publish_frames_per_sec, c.publish_frames_burst),
            publish_bytes: TokenBucket::new(now, c.publish_bytes_per_sec, c.publish_bytes_burst),
            control: TokenBucket::new(now, c.control_per_sec, c.control_burst),
            chat: TokenBucket::new(now, c.chat_per_sec, c.chat_burst),
            reaction: TokenBucket::new(now, c.reaction_per_sec, c.reaction_burst),
            flood: Flood {
                window_start: now,
                drops: 0,
                strikes: 0,
            },
            subscriptions: Vec::new(),
            loudness: 0.0,
            last_audio: None,
        };
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

    fn knock(&mut self, conn: ConnId) {
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
        let (pid, role) = (m.pid, m.role);
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
        self.broadcast(Some(conn), ServerMessage::ParticipantJoined { participant });
        if role == Role::Host {
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
