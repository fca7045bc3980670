//! Host powers: admit or deny a knock, ask someone to mute, remove someone, end the meeting.
//! The role comes from the server's `Join`, never from the client.

use quicmeet_proto::{ClientMessage, Role, ServerMessage};

use super::{ConnId, Output, Recipients, Room};

impl Room {
    pub(super) fn host_action(&mut self, from: ConnId, msg: &ClientMessage, target_pid: u32) {
        let Some(host) = self.members.get(&from) else {
            return self.violation();
        };
        if host.role != Role::Host {
            return self.error(
                from,
                "forbidden",
                &format!("Only the host can {}", msg.type_name().replace('_', " ")),
            );
        }
        let host_pid = host.pid;
        let Some(&target) = self.by_pid.get(&target_pid) else {
            return self.error(from, "unknown_participant", "No such participant");
        };
        let Some((target_admitted, remote)) =
            self.members.get(&target).map(|m| (m.admitted(), m.remote))
        else {
            return self.violation();
        };
        // A participant of another node: the checks above were made on this room's mirror,
        // and its home node carries the action out (and announces the result).
        let forward = |room: &mut Room| {
            room.outputs.push_back(Output::RemoteCommand {
                target,
                by: host_pid,
                msg: msg.clone(),
            });
        };
        match msg {
            ClientMessage::Admit { .. } => {
                if target_admitted {
                    return self.error(from, "not_in_lobby", "Already admitted");
                }
                if self.participant_count() >= self.config.max_participants {
                    return self.error(from, "room_full", "The meeting is full");
                }
                if remote {
                    return forward(self);
                }
                self.admit_member(target);
            }
            ClientMessage::Deny { .. } => {
                if target_admitted {
                    return self.error(from, "not_in_lobby", "Already admitted");
                }
                if remote {
                    return forward(self);
                }
                self.expel(
                    target,
                    ServerMessage::Denied {
                        reason: "denied".into(),
                    },
                    "denied",
                );
            }
            ClientMessage::MuteParticipant { .. } => {
                if !target_admitted {
                    return self.error(from, "not_admitted", "Still in the lobby");
                }
                if remote {
                    return forward(self);
                }
                self.send(target, ServerMessage::PleaseMute { by: host_pid });
            }
            ClientMessage::Remove { .. } if remote => forward(self),
            ClientMessage::Remove { .. } => {
                self.expel(
                    target,
                    ServerMessage::goodbye("removed", "The host removed you from the meeting"),
                    "removed",
                );
            }
            _ => {}
        }
    }

    pub(super) fn end_meeting(&mut self, from: ConnId) {
        let Some(m) = self.members.get(&from) else {
            return self.violation();
        };
        if m.role != Role::Host {
            return self.error(from, "forbidden", "Only the host can end the meeting");
        }
        let by = m.pid;
        self.end_here();
        self.outputs.push_back(Output::MeetingEnded { by });
    }

    /// Everyone here gets `goodbye{reason:"ended"}` and is disconnected; the room is over.
    pub(super) fn end_here(&mut self) {
        let all: Vec<ConnId> = self.by_pid.values().copied().collect();
        self.outputs.push_back(Output::Control {
            to: Recipients::Many(all.clone()),
            msg: ServerMessage::goodbye("ended", "The host ended the meeting"),
        });
        for c in &all {
            self.outputs.push_back(Output::Disconnect {
                who: *c,
                reason: "ended",
            });
        }
        for c in self.members.keys() {
            self.bwe
                .handle_input(self.now, crate::bwe::Input::Leave(*c));
        }
        self.members.clear();
        self.by_pid.clear();
        self.tracks.clear();
        self.layers_version += 1;
        self.ended = true;
    }
}
