//! Where a joiner lands (docs/CLUSTER.md section 8): every node advertises its public media
//! endpoints, certificate hash, load, capacity and meetings in the `qm_nodes` KV bucket; the
//! join answer names the node chosen by [`choose`] from that directory.
//!
//! The rule keeps a meeting's participants together (no media has to cross nodes) until the
//! node holding it is full (`--max-node-participants`); then further joiners go to the
//! least-loaded node, which joins the meeting over NATS. A client that connects elsewhere
//! still joins the same meeting (rooms span nodes).

use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// How often a node rewrites its record and rereads the others.
pub const ADVERTISE_EVERY: Duration = Duration::from_secs(2);
/// A record older than this belongs to a node that is gone (or cut off).
pub const STALE_AFTER_MS: i64 = 6_000;
/// The bucket forgets records of vanished nodes after this.
pub const RECORD_MAX_AGE: Duration = Duration::from_secs(30);
/// Time a joiner has, after its join answer, to connect before a node's record is trusted to
/// include it (join answers to connections take 20–300 ms on a busy node).
pub const CONNECT_GRACE_MS: i64 = 1_000;
/// Placements this node remembers at most (a burst of joins beyond it is judged on the
/// records alone until the next refresh).
const MAX_PENDING: usize = 4096;

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
    /// Connections after which the node counts as full (`--max-node-participants`); `None`:
    /// never full. Absent in records of nodes that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u64>,
    /// Codes of the meetings with a room on the node.
    pub meetings: Vec<String>,
    /// When the record was written (Unix ms).
    pub at_ms: i64,
}

/// A join answer this node handed out, pointing at `node` for meeting `code`, at `at_ms`.
/// Records are up to [`ADVERTISE_EVERY`] old, so without these a burst of joins would all
/// see the same counts and overfill one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub node: String,
    pub code: String,
    pub at_ms: i64,
}

impl Placement {
    /// Whether `n`'s record may not include this placement yet: it was written before the
    /// joiner had [`CONNECT_GRACE_MS`] to connect. A record written between the answer and
    /// the connection counts neither the joiner nor its meeting; forgetting the placement
    /// then made a burst of joins pile onto that node and split meetings that had just been
    /// placed. A joiner who connected quickly is counted twice until the next refresh, which
    /// errs towards spreading new meetings, never towards splitting one.
    fn unseen_by(&self, n: &NodeRecord) -> bool {
        self.node == n.id && n.at_ms < self.at_ms + CONNECT_GRACE_MS
    }
}

/// The placement rule, over live records and the placements made since they were written:
///
/// 1. a node that holds a room for `code` (or was just given one of its joiners) and is not
///    full: the lowest id, should several;
/// 2. otherwise the node with the fewest participants among those not full (ties: lowest id);
/// 3. when every node is full, the one with the fewest participants.
///
/// `None` when no record is live.
pub fn choose<'a>(
    nodes: &'a [NodeRecord],
    placed: &[Placement],
    code: &str,
    now_ms: i64,
) -> Option<&'a NodeRecord> {
    let load =
        |n: &NodeRecord| n.participants + placed.iter().filter(|p| p.unseen_by(n)).count() as u64;
    let full = |n: &NodeRecord| n.capacity.is_some_and(|c| load(n) >= c);
    let holds = |n: &NodeRecord| {
        n.meetings.iter().any(|m| m == code)
            || placed.iter().any(|p| p.code == code && p.unseen_by(n))
    };
    let live = || {
        nodes
            .iter()
            .filter(move |n| now_ms - n.at_ms <= STALE_AFTER_MS)
    };
    let least_loaded = |a: &&NodeRecord, b: &&NodeRecord| (load(a), &a.id).cmp(&(load(b), &b.id));
    live()
        .filter(|n| holds(n) && !full(n))
        .min_by(|a, b| a.id.cmp(&b.id))
        .or_else(|| live().filter(|n| !full(n)).min_by(least_loaded))
        .or_else(|| live().min_by(least_loaded))
}

/// This node's view of the directory, refreshed every [`ADVERTISE_EVERY`], and the joiners it
/// placed since.
#[derive(Default)]
pub struct Directory {
    inner: RwLock<View>,
}

#[derive(Default)]
struct View {
    nodes: Vec<NodeRecord>,
    placed: Vec<Placement>,
}

impl Directory {
    /// A fresh reading of the bucket: placements the new records already include are
    /// forgotten.
    pub fn replace(&self, nodes: Vec<NodeRecord>) {
        let mut v = self.inner.write();
        v.placed.retain(|p| nodes.iter().any(|n| p.unseen_by(n)));
        v.nodes = nodes;
    }

    /// The record of the node a joiner of `code` should use; remembers the placement.
    pub fn choose(&self, code: &str, now_ms: i64) -> Option<NodeRecord> {
        let mut v = self.inner.write();
        let chosen = choose(&v.nodes, &v.placed, code, now_ms).cloned()?;
        if v.placed.len() >= MAX_PENDING {
            v.placed.remove(0);
        }
        v.placed.push(Placement {
            node: chosen.id.clone(),
            code: code.to_owned(),
            at_ms: now_ms,
        });
        Some(chosen)
    }

    /// Other live nodes than `me` that hold a room for `code`, or that this node recently
    /// sent one of its joiners to: the nodes whose snapshot a room starting here waits for
    /// before its first `welcome`.
    pub fn holders(&self, code: &str, me: &str, now_ms: i64) -> Vec<String> {
        let v = self.inner.read();
        let mut out: Vec<String> = v
            .nodes
            .iter()
            .filter(|n| n.id != me && now_ms - n.at_ms <= STALE_AFTER_MS)
            .filter(|n| {
                n.meetings.iter().any(|m| m == code)
                    || v.placed.iter().any(|p| p.code == code && p.unseen_by(n))
            })
            .map(|n| n.id.clone())
            .collect();
        out.sort();
        out
    }

    /// Live nodes in the directory.
    pub fn live_count(&self, now_ms: i64) -> usize {
        self.inner
            .read()
            .nodes
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
            capacity: None,
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
        assert_eq!(choose(&nodes, &[], "abc-defg-hij", 11_000).unwrap().id, "a");
    }

    #[test]
    fn a_new_meeting_goes_to_the_least_loaded_node_ties_by_id() {
        let nodes = [
            node("c", 3, &[], 10_000),
            node("b", 2, &["x"], 10_000),
            node("a", 2, &[], 10_000),
        ];
        assert_eq!(choose(&nodes, &[], "new-meet-ing", 10_000).unwrap().id, "a");
    }

    #[test]
    fn stale_records_are_ignored() {
        let nodes = [
            node("a", 0, &["abc-defg-hij"], 0),
            node("b", 9, &[], 10_000),
        ];
        assert_eq!(choose(&nodes, &[], "abc-defg-hij", 10_000).unwrap().id, "b");
        assert!(choose(&nodes[..1], &[], "abc-defg-hij", 10_000).is_none());
    }

    fn capped(id: &str, participants: u64, cap: u64, meetings: &[&str]) -> NodeRecord {
        NodeRecord {
            capacity: Some(cap),
            ..node(id, participants, meetings, 10_000)
        }
    }

    #[test]
    fn a_full_node_sends_its_meetings_next_joiner_to_the_least_loaded_node() {
        let code = "abc-defg-hij";
        let nodes = [
            capped("a", 3, 4, &[code]),
            capped("b", 2, 4, &["other-meet-ing"]),
            capped("c", 1, 4, &[]),
        ];
        // Not full yet: stays on a, however busy.
        assert_eq!(choose(&nodes, &[], code, 10_000).unwrap().id, "a");
        let full = [
            capped("a", 4, 4, &[code]),
            nodes[1].clone(),
            nodes[2].clone(),
        ];
        assert_eq!(choose(&full, &[], code, 10_000).unwrap().id, "c");
        // Once c holds part of the meeting, it keeps getting its joiners, even though b is
        // less loaded by then.
        let spread = [
            full[0].clone(),
            capped("b", 0, 4, &[]),
            capped("c", 2, 4, &[code]),
        ];
        assert_eq!(choose(&spread, &[], code, 10_000).unwrap().id, "c");
        // Everyone full: the least loaded, rather than no answer.
        let all = [capped("a", 5, 4, &[code]), capped("b", 4, 4, &[])];
        assert_eq!(choose(&all, &[], code, 10_000).unwrap().id, "b");
    }

    #[test]
    fn joiners_placed_since_the_last_refresh_count_until_a_record_includes_them() {
        let code = "abc-defg-hij";
        let dir = Directory::default();
        dir.replace(vec![capped("a", 0, 2, &[]), capped("b", 0, 2, &[])]);
        // A burst of five joiners within one refresh: two on a (the first makes a hold the
        // meeting), then b, which holds it from then on.
        let got: Vec<String> = (0..5)
            .map(|i| dir.choose(code, 10_100 + i).unwrap().id)
            .collect();
        assert_eq!(got, ["a", "a", "b", "b", "a"]);
        // The next records include the connections: the placements are forgotten.
        // (One of a's joiners never connected.)
        let at = |n: NodeRecord| NodeRecord { at_ms: 12_000, ..n };
        dir.replace(vec![
            at(capped("a", 1, 2, &[code])),
            at(capped("b", 2, 2, &[code])),
        ]);
        assert!(dir.inner.read().placed.is_empty());
        assert_eq!(dir.choose(code, 12_500).unwrap().id, "a");
        assert_eq!(
            dir.choose(code, 12_600).unwrap().id,
            "a",
            "all full: least loaded"
        );
        assert_eq!(dir.choose(code, 12_700).unwrap().id, "b");
        assert_eq!(dir.holders(code, "a", 12_800), ["b"]);
        assert!(dir.holders("new-meet-ing", "a", 12_800).is_empty());
    }

    #[test]
    fn a_record_written_before_the_joiners_connected_does_not_undo_their_placements() {
        let dir = Directory::default();
        dir.replace(vec![node("a", 0, &[], 10_000), node("b", 0, &[], 10_000)]);
        // Four meetings of two, joined in one burst: each meeting on one node, two per node.
        let codes = [
            "aaa-aaaa-aaa",
            "bbb-bbbb-bbb",
            "ccc-cccc-ccc",
            "ddd-dddd-ddd",
        ];
        let first: Vec<String> = codes
            .iter()
            .enumerate()
            .map(|(i, c)| dir.choose(c, 10_100 + i as i64).unwrap().id)
            .collect();
        assert_eq!(first, ["a", "b", "a", "b"]);
        // Both nodes rewrite their records 200 ms later, before anyone has connected.
        dir.replace(vec![node("a", 0, &[], 10_300), node("b", 0, &[], 10_300)]);
        // The second joiner of each meeting (in the other order) still goes where the first
        // went.
        for (c, want) in codes.iter().zip(&first).rev() {
            assert_eq!(&dir.choose(c, 10_400).unwrap().id, want, "{c}");
        }
        // And a fifth meeting still sees two nodes with four joiners each: the lowest id.
        assert_eq!(dir.choose("eee-eeee-eee", 10_500).unwrap().id, "a");
        assert_eq!(dir.choose("fff-ffff-fff", 10_500).unwrap().id, "b");
        // Records written after the grace include the connections: the placements go.
        let holding = |n: &str| -> Vec<&str> {
            codes
                .iter()
                .chain(&["eee-eeee-eee", "fff-ffff-fff"])
                .zip(first.iter().chain(&["a".to_owned(), "b".to_owned()]))
                .filter(|(_, w)| *w == n)
                .map(|(c, _)| *c)
                .collect()
        };
        dir.replace(vec![
            node("a", 5, &holding("a"), 12_000),
            node("b", 5, &holding("b"), 12_000),
        ]);
        assert!(dir.inner.read().placed.is_empty());
    }
}
