//! Chat: validation, its own rate limit, history for late joiners, persistence.

use std::time::Instant;

use quicmeet_proto::control::MAX_CHAT_CHARS;
use quicmeet_proto::{ChatMessage, ServerMessage};

use super::{ConnId, Output, Room};

impl Room {
    pub(super) fn chat(&mut self, now: Instant, from: ConnId, text: String) {
        if text.trim().is_empty() {
            return self.error(from, "bad_request", "Empty message");
        }
        if text.chars().count() > MAX_CHAT_CHARS {
            return self.error(
                from,
                "too_long",
                "Chat messages are at most 2000 characters",
            );
        }
        let wall = self.wall_ms(now);
        let Some(m) = self.members.get_mut(&from) else {
            return self.violation();
        };
        if !m.remote && !m.chat.try_take(now, 1.0) {
            self.stats.control_rate_limited += 1;
            return self.error(from, "rate_limited", "You are sending messages too fast");
        }
        let ts_ms = wall.max(self.last_chat_ts);
        self.last_chat_ts = ts_ms;
        let local = !m.remote;
        let msg = ChatMessage {
            id: self.next_chat_id,
            participant_id: m.pid,
            name: m.name.clone(),
            text,
            ts_ms,
        };
        self.next_chat_id += self.config.chat_id_stride.max(1);
        self.stats.chat_messages += 1;
        if self.chat.len() >= self.config.chat_history_len {
            self.chat.pop_front();
        }
        if self.config.chat_history_len > 0 {
            self.chat.push_back(msg.clone());
        }
        self.outputs.push_back(Output::ChatPersist(msg.clone()));
        self.announce(local, ServerMessage::Chat(msg.clone()));
        self.broadcast(None, ServerMessage::Chat(msg));
    }
}
