//! Every NATS subject a node publishes or subscribes to for a meeting (docs/CLUSTER.md
//! section 11), built in one place.
//!
//! The isolation rule: a room's [`Subjects`] is made from the meeting code of the room itself
//! (which came from the join grant in the shared state), and every other token is a node id
//! checked at start or a number. No text a client sent ever becomes part of a subject; a
//! token outside the grammar is refused here, so a subject can never name another meeting or
//! widen into a wildcard.

/// True for a node id usable as one subject token: 1–64 of `[a-z0-9-]`.
pub fn valid_node_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Heartbeats of `node`.
pub fn heartbeat(node: &str) -> Option<String> {
    valid_node_id(node).then(|| format!("qm.hb.{node}"))
}

/// Heartbeats of every node.
pub const HEARTBEATS: &str = "qm.hb.*";

/// The subjects of one meeting.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// `None` unless `code` is a meeting code (`abc-defg-hij`).
    pub fn new(code: &str) -> Option<Self> {
        quicmeet_store::is_meeting_code(code).then(|| Self {
            prefix: format!("qm.{code}"),
        })
    }

    fn node(&self, what: &str, node: &str) -> Option<String> {
        valid_node_id(node).then(|| format!("{}.{what}.{node}", self.prefix))
    }

    /// Room events published by `node`.
    pub fn events(&self, node: &str) -> Option<String> {
        self.node("ev", node)
    }

    /// Room events of every node.
    pub fn all_events(&self) -> String {
        format!("{}.ev.*", self.prefix)
    }

    /// Host commands and signals for the participants of `node`.
    pub fn commands(&self, node: &str) -> Option<String> {
        self.node("cmd", node)
    }

    /// Keyframe requests for the tracks of `node`.
    pub fn keyframes(&self, node: &str) -> Option<String> {
        self.node("kf", node)
    }

    /// "Send me your snapshot" (a node that starts hosting the meeting, or lost events).
    pub fn sync(&self) -> String {
        format!("{}.sync", self.prefix)
    }

    /// End for all.
    pub fn end(&self) -> String {
        format!("{}.end", self.prefix)
    }

    /// Media batches node `from` sends node `to` alone (frames only `to` asked for).
    pub fn media(&self, from: &str, to: &str) -> Option<String> {
        (valid_node_id(from) && valid_node_id(to))
            .then(|| format!("{}.mb.{from}.{to}", self.prefix))
    }

    /// Media batches node `from` sends every node that wants any of its media (frames all
    /// of them asked for).
    pub fn media_shared(&self, from: &str) -> Option<String> {
        self.node("ma", from)
    }

    /// Media batches for node `to` alone, from every node.
    pub fn media_to(&self, to: &str) -> Option<String> {
        self.node("mb.*", to)
    }

    /// The sending node of a media batch that came on `subject` to node `to`; `None` unless
    /// the subject is [`Subjects::media`]`(from, to)` or [`Subjects::media_shared`]`(from)` of
    /// this meeting with a valid `from` other than `to`.
    pub fn media_from<'a>(&self, subject: &'a str, to: &str) -> Option<&'a str> {
        let rest = subject.strip_prefix(self.prefix.as_str())?;
        let from = match rest.strip_prefix(".ma.") {
            Some(from) => from,
            None => rest
                .strip_prefix(".mb.")?
                .strip_suffix(to)?
                .strip_suffix('.')?,
        };
        (valid_node_id(from) && from != to).then_some(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_tokens_never_make_a_subject() {
        for bad in [
            "abc-defg-hi*",
            "abc.defg.hij",
            "abc-defg-hij.x",
            ">",
            "*",
            "ABC-DEFG-HIJ",
            "abc-defg-hij ",
            "",
        ] {
            assert!(Subjects::new(bad).is_none(), "{bad:?}");
        }
        let s = Subjects::new("abc-defg-hij").unwrap();
        for bad in ["node.a", "node-*", ">", "", "Node", "a b", &"x".repeat(65)] {
            assert!(s.events(bad).is_none(), "{bad:?}");
            assert!(s.commands(bad).is_none(), "{bad:?}");
            assert!(s.keyframes(bad).is_none(), "{bad:?}");
            assert!(heartbeat(bad).is_none(), "{bad:?}");
        }
        for bad in ["node.a", "*", ">", "", "n 1"] {
            assert!(s.media(bad, "n2").is_none(), "{bad:?}");
            assert!(s.media("n2", bad).is_none(), "{bad:?}");
            assert!(s.media_to(bad).is_none(), "{bad:?}");
            assert!(s.media_shared(bad).is_none(), "{bad:?}");
        }
        // Only a media subject of this meeting, for this node, from one valid other node.
        for bad in [
            "qm.abc-defg-hij.mb.n2",
            "qm.abc-defg-hij.mb.n1.n2.n2",
            "qm.abc-defg-hij.mb.*.n2",
            "qm.abc-defg-hij.mb..n2",
            "qm.abc-defg-hij.mb.n2.n2",
            "qm.abc-defg-hij.ev.n1.n2",
            "qm.abc-defg-hik.mb.n1.n2",
            "qm.abc-defg-hij.mb.n1.xn2",
            "qm.abc-defg-hij.ma.n2",
            "qm.abc-defg-hij.ma.n1.n3",
            "qm.abc-defg-hij.ma.*",
            "qm.abc-defg-hik.ma.n1",
        ] {
            assert_eq!(s.media_from(bad, "n2"), None, "{bad:?}");
        }
    }

    #[test]
    fn subjects_of_a_meeting_stay_under_its_code() {
        let s = Subjects::new("abc-defg-hij").unwrap();
        assert_eq!(s.events("node-1").unwrap(), "qm.abc-defg-hij.ev.node-1");
        assert_eq!(s.all_events(), "qm.abc-defg-hij.ev.*");
        assert_eq!(s.commands("n2").unwrap(), "qm.abc-defg-hij.cmd.n2");
        assert_eq!(s.keyframes("n2").unwrap(), "qm.abc-defg-hij.kf.n2");
        assert_eq!(s.media("n1", "n2").unwrap(), "qm.abc-defg-hij.mb.n1.n2");
        assert_eq!(s.media_to("n2").unwrap(), "qm.abc-defg-hij.mb.*.n2");
        let sent = s.media("node-7", "n2").unwrap();
        assert_eq!(s.media_from(&sent, "n2"), Some("node-7"));
        assert_eq!(s.media_shared("n1").unwrap(), "qm.abc-defg-hij.ma.n1");
        assert_eq!(s.media_from("qm.abc-defg-hij.ma.n1", "n2"), Some("n1"));
        assert_eq!(s.sync(), "qm.abc-defg-hij.sync");
        assert_eq!(s.end(), "qm.abc-defg-hij.end");
        assert_eq!(heartbeat("node-0").unwrap(), "qm.hb.node-0");
    }
}
