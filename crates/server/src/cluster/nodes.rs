//! Where a joiner lands (docs/CLUSTER.md section 8): every node advertises its public media
//! endpoints, certificate hash, load and meetings in the `qm_nodes` KV bucket; the join answer
//! names the node chosen by [`choose`] from that directory.
//!
//! The rule keeps a meeting's participants together (no media has to cross nodes): a meeting
//! that has a room on a live node goes there, a new one goes to the least-loaded node. A client
//! that connects elsewhere still joins the same meeting (rooms span nodes).

use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// How often a node rewrites its record and rereads the others.
pub const ADVERTISE_EVERY: Duration = Duration::from_secs(2);
/// A record older than this belongs to a node that is gone (or cut off).
pub const STALE_AFTER_MS: i64 = 6_000;
/// The bucket forgets records of vanished nodes after this.
pub const RECORD_MAX_AGE: Duration = Duration::from_secs(30);

/// What a node tells the others about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    /// WebTransport URL browsers use (without the token).
    pub wt_url: String,
    /// WebSocket URL browsers use.
    pub ws_url: String,
    /// SHA-256 (hex) of the node's self-signed development certificate, if it uses one.
    pub cert_sha256_hex: Option<String>,
    /// Media connections on the node.
    pub participants: u64,
    /// Codes of the meetings with a room on the node.
    pub meetings: Vec<String>,
    /// When the record was written (Unix ms).
    pub at_ms: i64,
}

/// The placement rule. Among live records: the node holding `code` (the lowest id, should two
/// claim it); else the node with the fewest participants (ties: lowest id). `None` when no
/// record is live.
pub fn choose<'a>(nodes: &'a [NodeRecord], code: &str, now_ms: i64) -> Option<&'a NodeRecord> {
    let live = || {
        nodes
            .iter()
            .filter(move |n| now_ms - n.at_ms <= STALE_AFTER_MS)
    };
    live()
        .filter(|n| n.meetings.iter().any(|m| m == code))
        .min_by(|a, b| a.id.cmp(&b.id))
        .or_else(|| live().min_by(|a, b| (a.participants, &a.id).cmp(&(b.participants, &b.id))))
}

/// This node's view of the directory, refreshed every [`ADVERTISE_EVERY`].
#[derive(Default)]
pub struct Directory {
    nodes: RwLock<Vec<NodeRecord>>,
}

impl Directory {
    pub fn replace(&self, nodes: Vec<NodeRecord>) {
        *self.nodes.write() = nodes;
    }

    /// The record of the node a joiner of `code` should use.
    pub fn choose(&self, code: &str, now_ms: i64) -> Option<NodeRecord> {
        choose(&self.nodes.read(), code, now_ms).cloned()
    }

    /// Live nodes in the directory.
    pub fn live_count(&self, now_ms: i64) -> usize {
        self.nodes
            .read()
            .iter()
            .filter(|n| now_ms - n.at_ms <= STALE_AFTER_MS)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, participants: u64, meetings: &[&str], at_ms: i64) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            wt_url: format!("https://{id}:4433/wt"),
            ws_url: format!("ws://{id}:8080/ws"),
            cert_sha256_hex: None,
            participants,
            meetings: meetings.iter().map(|s| s.to_string()).collect(),
            at_ms,
        }
    }

    #[test]
    fn a_meeting_stays_on_the_node_that_holds_it_even_when_busier() {
        let nodes = [
            node("a", 40, &["abc-defg-hij"], 10_000),
            node("b", 1, &[], 10_000),
        ];
        assert_eq!(choose(&nodes, "abc-defg-hij", 11_000).unwrap().id, "a");
    }

    #[test]
    fn a_new_meeting_goes_to_the_least_loaded_node_ties_by_id() {
        let nodes = [
            node("c", 3, &[], 10_000),
            node("b", 2, &["x"], 10_000),
            node("a", 2, &[], 10_000),
        ];
        assert_eq!(choose(&nodes, "new-meet-ing", 10_000).unwrap().id, "a");
    }

    #[test]
    fn stale_records_are_ignored() {
        let nodes = [
            node("a", 0, &["abc-defg-hij"], 0),
            node("b", 9, &[], 10_000),
        ];
        assert_eq!(choose(&nodes, "abc-defg-hij", 10_000).unwrap().id, "b");
        assert!(choose(&nodes[..1], "abc-defg-hij", 10_000).is_none());
    }
}
