//! The client's control messages: the gate every message passes (rate limit, admission),
//! then one small handler per message. Host powers live in `host`, chat in `chat`,
//! subscriptions in `subscription`.

use std::time::{Duration, Instant};

use quicmeet_proto::track::{self, Slot};
use quicmeet_proto::{ClientMessage, MediaKind, MediaPathKind, ServerMessage, TrackInfo};

use super::state::Track;
use super::types::LAYERS;
use super::{ConnId, Output, Room};
use crate::bwe;

impl Room {
    pub(super) fn control(&mut self, now: Instant, from: ConnId, msg: ClientMessage) {
        let Some(admitted) = self.pass_gate(now, from) else {
            return;
        };
        match msg {
            ClientMessage::Ping { t } => self.send(from, ServerMessage::Pong { t }),
            ClientMessage::Leave {} => {
                self.outputs.push_back(Output::Disconnect {
                    who: from,
                    reason: "left",
                });
                self.remove_member(from, "left");
            }
            ClientMessage::Hello { .. } => self.error(from, "unexpected", "Already joined"),
            _ if !admitted => {
                self.error(from, "not_admitted", "Waiting for the host to let you in")
            }
            ClientMessage::Publish {
                track_id,
                kind,
                codec,
                width,
                height,
                layers_capable,
            } => {
                let capable = layers_capable && kind.is_video();
                self.publish(from, track_id, kind, codec, (width, height), capable)
            }
            ClientMessage::Unpublish { track_id } => self.unpublish(from, track_id),
            ClientMessage::Subscribe {
                track_id,
                max_width,
                max_height,
                layer,
            } => self.subscribe(now, from, track_id, max_width, max_height, layer),
            ClientMessage::Unsubscribe { track_id } => self.unsubscribe(from, track_id),
            ClientMessage::Mute { audio, video } => self.set_mute(from, audio, video),
            ClientMessage::Chat { text } => self.chat(now, from, text),
            ClientMessage::Reaction { emoji } => self.react(now, from, emoji),
            ClientMessage::Hand { raised } => self.raise_hand(now, from, raised),
            ClientMessage::KeyframeRequest { track_id } => {
                self.subscriber_keyframe_request(now, from, track_id)
            }
            ClientMessage::Admit { participant_id }
            | ClientMessage::Deny { participant_id }
            | ClientMessage::MuteParticipant { participant_id }
            | ClientMessage::Remove { participant_id } => {
                self.host_action(from, &msg, participant_id)
            }
            ClientMessage::EndMeeting {} => self.end_meeting(from),
            ClientMessage::Signal { to, data } => self.relay_signal(from, to, data),
            ClientMessage::MediaPath { path, .. } => self.set_media_path(from, path),
            ClientMessage::ReceiverReport { queue_ms } => self.receiver_report(now, from, queue_ms),
        }
    }

    /// `receiver_report` (PROTOCOL.md §5.6): the queue a subscriber sees on its downlink,
    /// taken only over WebSocket, where a proxy that ends TCP can hide the queue from the
    /// server's round trip. QUIC is end to end: its round trip and losses already show a
    /// WebTransport subscriber's queue, and what the report adds there is the receiver's own
    /// lateness. On a busy machine (two browsers on two cores) a browser's reports were 10–15
    /// ms on average with peaks up to 80 ms on loopback with no queue at all, and they held a
    /// two-person call on the 120×90 layer; without them it stayed on the full layer at the
    /// same latency, and the capped lab receiver's audio was no later (BENCHMARKS, "A quiet
    /// machine, and receiver reports over WebTransport").
    fn receiver_report(&mut self, now: Instant, from: ConnId, queue_ms: u32) {
        if self
            .members
            .get(&from)
            .is_none_or(|m| m.transport == "webtransport")
        {
            return;
        }
        self.bwe.handle_input(
            now,
            bwe::Input::Feedback {
                conn: from,
                feedback: bwe::Feedback::ReceiverDelay {
                    queue: Duration::from_millis(u64::from(queue_ms)),
                },
            },
        );
    }

    /// `media_path{p2p}` (PROTOCOL.md §5.12): a direct call carries the sender's media now, so
    /// its cached groups would show a late joiner an old picture; drop them. Caching starts
    /// again at the keyframe the sender opens with when it comes back to the server.
    fn set_media_path(&mut self, from: ConnId, path: MediaPathKind) {
        if path != MediaPathKind::P2p {
            return;
        }
        for t in self.tracks.values_mut().filter(|t| t.owner == from) {
            for gop in &mut t.gops {
                gop.complete = false;
                gop.frames.clear();
                gop.bytes = 0;
            }
        }
    }

    /// Charges the sender's control budget. `Some(admitted)` when the message may be
    /// handled; `None` when the sender is unknown or over its rate (answered already).
    fn pass_gate(&mut self, now: Instant, from: ConnId) -> Option<bool> {
        let m = self.members.get_mut(&from)?;
        // A remote participant's home node already charged its budget.
        if m.remote || m.control.try_take(now, 1.0) {
            return Some(m.admitted());
        }
        self.stats.control_rate_limited += 1;
        self.error(from, "rate_limited", "Too many messages");
        self.count_flood(now, from);
        None
    }

    /// Counts a refused frame or message; a sender that floods for several windows in a
    /// row is disconnected.
    pub(super) fn count_flood(&mut self, now: Instant, from: ConnId) {
        let c = &self.config;
        let Some(m) = self.members.get_mut(&from) else {
            return;
        };
        let f = &mut m.flood;
        if now >= f.window_start + c.flood_window {
            let flooded = f.drops >= c.flood_min_drops;
            let gap = now >= f.window_start + c.flood_window * 2;
            f.strikes = if flooded && !gap { f.strikes + 1 } else { 0 };
            f.drops = 0;
            f.window_start = now;
        }
        f.drops += 1;
        if f.drops >= c.flood_min_drops && f.strikes + 1 >= c.flood_windows {
            self.stats.flood_disconnects += 1;
            self.expel(
                from,
                ServerMessage::goodbye("flood", "Disconnected for sending too much"),
                "flood",
            );
        }
    }

    fn pid_of(&mut self, conn: ConnId) -> Option<u32> {
        let pid = self.members.get(&conn).map(|m| m.pid);
        if pid.is_none() {
            self.violation();
        }
        pid
    }

    fn publish(
        &mut self,
        from: ConnId,
        track_id: u32,
        kind: MediaKind,
        codec: String,
        (width, height): (Option<u32>, Option<u32>),
        layers_capable: bool,
    ) {
        let Some(pid) = self.pid_of(from) else {
            return;
        };
        let slot_ok = track::slot_of(track_id).map(Slot::kind) == Some(kind);
        if track::participant_of(track_id) != pid || !slot_ok {
            return self.error(
                from,
                "bad_track",
                "track_id must be your participant_id * 16 + the slot of this kind",
            );
        }
        if self.tracks.contains_key(&track_id) {
            return self.error(from, "already_published", "Track already published");
        }
        if codec.is_empty() || codec.len() > 32 {
            return self.error(from, "bad_request", "Invalid codec name");
        }
        let info = TrackInfo {
            track_id,
            participant_id: pid,
            kind,
            codec,
            width,
            height,
        };
        self.tracks.insert(
            track_id,
            Track {
                info: info.clone(),
                owner: from,
                subs: Vec::new(),
                gops: Default::default(),
                keyframes: Default::default(),
                broken: [false; LAYERS],
                wanted: 0,
                rx_bytes: [0; LAYERS],
                demand: (0, true),
                layers_capable,
                sources: Default::default(),
                unrequested_told: [false; LAYERS],
            },
        );
        if kind.is_video() {
            let pixels = width.zip(height).map(|(w, h)| u64::from(w) * u64::from(h));
            self.bwe.handle_input(
                self.now,
                bwe::Input::Published {
                    track_id,
                    screen: kind == MediaKind::Screen,
                    pixels,
                },
            );
        }
        self.layers_version += 1;
        let local = self.members.get(&from).is_some_and(|m| !m.remote);
        self.announce(
            local,
            ServerMessage::TrackPublished {
                track: info.clone(),
            },
        );
        self.broadcast(None, ServerMessage::TrackPublished { track: info });
    }

    fn unpublish(&mut self, from: ConnId, track_id: u32) {
        let Some(pid) = self.pid_of(from) else {
            return;
        };
        if track::participant_of(track_id) != pid || !self.tracks.contains_key(&track_id) {
            return self.error(from, "unknown_track", "Not one of your published tracks");
        }
        self.drop_track(track_id);
    }

    fn set_mute(&mut self, from: ConnId, audio: bool, video: bool) {
        let Some(m) = self.members.get_mut(&from) else {
            return self.violation();
        };
        m.audio_muted = audio;
        m.video_muted = video;
        if audio {
            m.loudness = 0.0;
        }
        let (participant_id, local) = (m.pid, !m.remote);
        let msg = ServerMessage::MuteState {
            participant_id,
            audio,
            video,
        };
        self.announce(local, msg.clone());
        self.broadcast(None, msg);
    }

    fn react(&mut self, now: Instant, from: ConnId, emoji: String) {
        if emoji.is_empty() || emoji.len() > 32 {
            return self.error(from, "bad_request", "A reaction is one emoji");
        }
        if !self.take_reaction(now, from) {
            return;
        }
        let Some(participant_id) = self.pid_of(from) else {
            return;
        };
        let msg = ServerMessage::Reaction {
            participant_id,
            emoji,
        };
        let local = self.members.get(&from).is_some_and(|m| !m.remote);
        self.announce(local, msg.clone());
        self.broadcast(None, msg);
    }

    fn raise_hand(&mut self, now: Instant, from: ConnId, raised: bool) {
        if !self.take_reaction(now, from) {
            return;
        }
        let Some(m) = self.members.get_mut(&from) else {
            return self.violation();
        };
        m.hand_raised = raised;
        let (participant_id, local) = (m.pid, !m.remote);
        let msg = ServerMessage::Hand {
            participant_id,
            raised,
        };
        self.announce(local, msg.clone());
        self.broadcast(None, msg);
    }

    fn take_reaction(&mut self, now: Instant, from: ConnId) -> bool {
        let Some(m) = self.members.get_mut(&from) else {
            self.violation();
            return false;
        };
        if m.remote || m.reaction.try_take(now, 1.0) {
            return true;
        }
        self.stats.control_rate_limited += 1;
        self.error(from, "rate_limited", "Slow down");
        false
    }

    /// Passes WebRTC signalling to another admitted participant.
    fn relay_signal(&mut self, from: ConnId, to: u32, data: serde_json::Value) {
        let target = self
            .by_pid
            .get(&to)
            .copied()
            .filter(|t| self.members.get(t).is_some_and(|m| m.admitted()));
        let Some(target) = target else {
            return self.error(from, "unknown_participant", "No such participant");
        };
        let Some(from_pid) = self.pid_of(from) else {
            return;
        };
        if self.members.get(&target).is_some_and(|m| m.remote) {
            return self.outputs.push_back(Output::RemoteCommand {
                target,
                by: from_pid,
                msg: ClientMessage::Signal { to, data },
            });
        }
        self.send(
            target,
            ServerMessage::Signal {
                from: from_pid,
                data,
            },
        );
    }
}
