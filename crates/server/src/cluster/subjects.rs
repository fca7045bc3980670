//! Every NATS subject a node publishes or subscribes to for a meeting (docs/CLUSTER.md
//! section 11), built in one place.
//!
//! The isolation rule: a room's [`Subjects`] is made from the meeting code of the room itself
//! (which came from the join grant in the shared state), and every other token is a node id
//! checked at start or a number. No text a client sent ever becomes part of a subject; a
//! token outside the grammar is refused here, so a subject can never name another meeting or
//! widen into a wildcard.

use quicmeet_sfu::MAX_LAYER;

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

    /// One layer of one track. `None` for a layer the SFU does not have.
    pub fn media(&self, track_id: u32, layer: u8) -> Option<String> {
        (layer <= MAX_LAYER).then(|| format!("{}.m.{track_id}.{layer}", self.prefix))
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
        assert!(s.media(17, 3).is_none());
        assert!(s.media(17, 255).is_none());
    }

    #[test]
    fn subjects_of_a_meeting_stay_under_its_code() {
        let s = Subjects::new("abc-defg-hij").unwrap();
        assert_eq!(s.events("node-1").unwrap(), "qm.abc-defg-hij.ev.node-1");
        assert_eq!(s.all_events(), "qm.abc-defg-hij.ev.*");
        assert_eq!(s.commands("n2").unwrap(), "qm.abc-defg-hij.cmd.n2");
        assert_eq!(s.keyframes("n2").unwrap(), "qm.abc-defg-hij.kf.n2");
        assert_eq!(
            s.media(u32::MAX, 2).unwrap(),
            "qm.abc-defg-hij.m.4294967295.2"
        );
        assert_eq!(s.sync(), "qm.abc-defg-hij.sync");
        assert_eq!(s.end(), "qm.abc-defg-hij.end");
        assert_eq!(heartbeat("node-0").unwrap(), "qm.hb.node-0");
    }
}
