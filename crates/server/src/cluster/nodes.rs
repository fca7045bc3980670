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
/// A joiner placed on a node who has not connected within this is not coming: the placement
/// stops counting (join answers to connections take 20–300 ms on a busy node).
pub const PLACEMENT_TTL_MS: i64 = 10_000;
/// How long a node's record lists a joiner it accepted ([`NodeRecord::joined`]): past the
/// placement's own life and a refresh, so every placing node sees it once.
pub const JOINED_KEEP_MS: i64 = PLACEMENT_TTL_MS + 4_000;
/// Joiners a record lists at most (a burst beyond it is counted by the placements' expiry).
const MAX_JOINED: usize = 1024;
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
    /// Joiners whose connections the node accepted in the last [`JOINED_KEEP_MS`], by
    /// [`joiner_id`]: a placing node forgets exactly the placements a record already counts.
    /// Absent in records of nodes that predate it (their placements then expire).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joined: Vec<String>,
}

/// A joiner's name in the directory: the first 6 bytes of the SHA-256 of their join token, in
/// hex. Both the node that answers the join and the node the joiner connects to can compute
/// it, and it says nothing usable about the token.
pub fn joiner_id(token: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    hex::encode(&d.as_ref()[..6])
}

/// A join answer this node handed out, pointing `joiner` at `node` for meeting `code`, at
/// `at_ms`. Records are up to [`ADVERTISE_EVERY`] old, so without these a burst of joins would
/// all see the same counts and overfill one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub node: String,
    pub code: String,
    pub at_ms: i64,
    pub joiner: String,
}

impl Placement {
    /// Whether this placement still counts on `n`: `n`'s record does not list the joiner as
    /// connected (so its `participants` does not include them) and the joiner may still
    /// come. Counting until the record *names* the joiner is exact: a record written between
    /// the answer and the connection counts neither, one written after counts the joiner once.
    fn pending_on(&self, n: &NodeRecord, now_ms: i64) -> bool {
        self.node == n.id
            && now_ms - self.at_ms < PLACEMENT_TTL_MS
            && !n.joined.contains(&self.joiner)
    }
}

/// The placements of `placed` that still count on `n`.
fn pending_on<'p>(
    placed: &'p [Placement],
    n: &'p NodeRecord,
    now_ms: i64,
) -> impl Iterator<Item = &'p Placement> + 'p {
    placed.iter().filter(move |p| p.pending_on(n, now_ms))
}

/// What a meeting that has just started on a node is expected to grow to, when the live
/// records hold no meeting to average: a small team meeting.
pub const DEFAULT_MEETING_SIZE: f64 = 4.0;
/// A new meeting never counts as more than this many people, however large the cluster's
/// meetings are on average (one town hall must not make every new meeting count as 200).
pub const MAX_EXPECTED_MEETING_SIZE: f64 = 16.0;

/// The placement rule, over live records and the placements made since they were written:
///
/// 1. a node that holds a room for `code` (or was just given one of its joiners) and is not
///    full: the lowest id, should several;
/// 2. otherwise the node with the least expected load among those not full (ties: lowest id):
///    its participants, plus for each meeting this node has just started there (placements
///    its record does not count yet, for a meeting it does not list) the larger of the
///    joiners placed and the cluster's average meeting size. A meeting whose first joiner has
///    just arrived will have more, so when many meetings start at once they are spread by
///    what they will weigh, not by their first joiner;
/// 3. when every node is full, the one with the fewest participants.
///
/// "Full" counts only placed and connected joiners.
///
/// `None` when no record is live.
pub fn choose<'a>(
    nodes: &'a [NodeRecord],
    placed: &[Placement],
    code: &str,
    now_ms: i64,
) -> Option<&'a NodeRecord> {
    let live = || {
        nodes
            .iter()
            .filter(move |n| now_ms - n.at_ms <= STALE_AFTER_MS)
    };
    let load = |n: &NodeRecord| n.participants + pending_on(placed, n, now_ms).count() as u64;
    let full = |n: &NodeRecord| n.capacity.is_some_and(|c| load(n) >= c);
    let holds = |n: &NodeRecord| {
        n.meetings.iter().any(|m| m == code)
            || pending_on(placed, n, now_ms).any(|p| p.code == code)
    };
    let (people, meetings) = live().fold((0u64, 0usize), |(p, m), n| {
        (p + n.participants, m + n.meetings.len())
    });
    let typical = if meetings == 0 {
        DEFAULT_MEETING_SIZE
    } else {
        (people as f64 / meetings as f64).clamp(1.0, MAX_EXPECTED_MEETING_SIZE)
    };
    // Participants, plus what this node sent there since: meetings the record lists count
    // their joiners, meetings new to the node count at least `typical`.
    let expected = |n: &NodeRecord| -> f64 {
        let mut new: Vec<(&str, u64)> = vec![];
        let mut known = 0u64;
        for p in pending_on(placed, n, now_ms) {
            if n.meetings.contains(&p.code) {
                known += 1;
            } else if let Some(e) = new.iter_mut().find(|(c, _)| *c == p.code) {
                e.1 += 1;
            } else {
                new.push((&p.code, 1));
            }
        }
        let young: f64 = new.iter().map(|(_, k)| (*k as f64).max(typical)).sum();
        (n.participants + known) as f64 + young
    };
    let least_expected = |a: &&NodeRecord, b: &&NodeRecord| {
        expected(a)
            .total_cmp(&expected(b))
            .then_with(|| a.id.cmp(&b.id))
    };
    let least_loaded = |a: &&NodeRecord, b: &&NodeRecord| (load(a), &a.id).cmp(&(load(b), &b.id));
    live()
        .filter(|n| holds(n) && !full(n))
        .min_by(|a, b| a.id.cmp(&b.id))
        .or_else(|| live().filter(|n| !full(n)).min_by(least_expected))
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
    /// Joiners who connected here, oldest first, with when.
    joined: std::collections::VecDeque<(i64, String)>,
}

impl Directory {
    /// A fresh reading of the bucket: placements the new records count, and expired ones,
    /// are forgotten.
    pub fn replace(&self, nodes: Vec<NodeRecord>, now_ms: i64) {
        let mut v = self.inner.write();
        v.placed
            .retain(|p| nodes.iter().any(|n| p.pending_on(n, now_ms)));
        v.nodes = nodes;
    }

    /// The record of the node `joiner` (see [`joiner_id`]) of `code` should use; remembers
    /// the placement.
    pub fn choose(&self, code: &str, joiner: String, now_ms: i64) -> Option<NodeRecord> {
        let mut v = self.inner.write();
        let chosen = choose(&v.nodes, &v.placed, code, now_ms).cloned()?;
        if v.placed.len() >= MAX_PENDING {
            v.placed.remove(0);
        }
        v.placed.push(Placement {
            node: chosen.id.clone(),
            code: code.to_owned(),
            at_ms: now_ms,
            joiner,
        });
        Some(chosen)
    }

    /// A joiner connected to this node: its next records list them.
    pub fn note_joined(&self, joiner: String, now_ms: i64) {
        let mut v = self.inner.write();
        if v.joined.len() >= MAX_JOINED {
            v.joined.pop_front();
        }
        v.joined.push_back((now_ms, joiner));
    }

    /// The joiners this node's record lists now.
    pub fn recently_joined(&self, now_ms: i64) -> Vec<String> {
        let mut v = self.inner.write();
        while v
            .joined
            .front()
            .is_some_and(|(at, _)| now_ms - at >= JOINED_KEEP_MS)
        {
            v.joined.pop_front();
        }
        v.joined.iter().map(|(_, j)| j.clone()).collect()
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
                    || v.placed
                        .iter()
                        .any(|p| p.code == code && p.pending_on(n, now_ms))
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
            joined: vec![],
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

    /// A record written at `at_ms` that names `joined` as connected.
    fn rec(n: NodeRecord, at_ms: i64, joined: &[&str]) -> NodeRecord {
        NodeRecord {
            at_ms,
            joined: joined.iter().map(|s| s.to_string()).collect(),
            ..n
        }
    }

    fn pending(dir: &Directory) -> Vec<String> {
        dir.inner
            .read()
            .placed
            .iter()
            .map(|p| p.joiner.clone())
            .collect()
    }

    #[test]
    fn placements_count_until_the_nodes_record_names_the_joiner_or_they_expire() {
        let code = "abc-defg-hij";
        let dir = Directory::default();
        dir.replace(vec![capped("a", 0, 2, &[]), capped("b", 0, 2, &[])], 10_000);
        // A burst of five joiners within one refresh: two on a (the first makes a hold the
        // meeting), then b, which holds it from then on.
        let got: Vec<String> = (0..5)
            .map(|i| dir.choose(code, format!("j{i}"), 10_100 + i).unwrap().id)
            .collect();
        assert_eq!(got, ["a", "a", "b", "b", "a"]);
        // a's next record names j0 only (j1 and j4 have not connected yet); b's names both.
        dir.replace(
            vec![
                rec(capped("a", 1, 2, &[code]), 12_000, &["j0"]),
                rec(capped("b", 2, 2, &[code]), 12_000, &["j2", "j3"]),
            ],
            12_000,
        );
        assert_eq!(pending(&dir), ["j1", "j4"]);
        // Both full (a: one connected and two on their way): the least loaded.
        assert_eq!(dir.choose(code, "j5".into(), 12_500).unwrap().id, "b");
        // j1 and j4 never came: ten seconds after their answers they stop counting.
        dir.replace(
            vec![
                rec(capped("a", 1, 2, &[code]), 20_000, &["j0"]),
                rec(capped("b", 3, 2, &[code]), 20_000, &["j2", "j3", "j5"]),
            ],
            20_200,
        );
        assert!(pending(&dir).is_empty());
        assert_eq!(
            dir.choose(code, "j6".into(), 20_300).unwrap().id,
            "a",
            "a has room again"
        );
        assert_eq!(dir.holders(code, "a", 20_400), ["b"]);
        assert!(dir.holders("new-meet-ing", "a", 20_400).is_empty());
    }

    #[test]
    fn a_record_written_before_the_joiners_connected_does_not_undo_their_placements() {
        let dir = Directory::default();
        dir.replace(
            vec![node("a", 0, &[], 10_000), node("b", 0, &[], 10_000)],
            10_000,
        );
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
            .map(|(i, c)| {
                dir.choose(c, format!("{c}/1"), 10_100 + i as i64)
                    .unwrap()
                    .id
            })
            .collect();
        assert_eq!(first, ["a", "b", "a", "b"]);
        // Both nodes rewrite their records 200 ms later, before anyone has connected.
        dir.replace(
            vec![node("a", 0, &[], 10_300), node("b", 0, &[], 10_300)],
            10_300,
        );
        // The second joiner of each meeting (in the other order) still goes where the first
        // went.
        for (c, want) in codes.iter().zip(&first).rev() {
            assert_eq!(
                &dir.choose(c, format!("{c}/2"), 10_400).unwrap().id,
                want,
                "{c}"
            );
        }
        // And a fifth and sixth meeting see two nodes with four joiners each.
        assert_eq!(
            dir.choose("eee-eeee-eee", "e".into(), 10_500).unwrap().id,
            "a"
        );
        assert_eq!(
            dir.choose("fff-ffff-fff", "f".into(), 10_500).unwrap().id,
            "b"
        );
        // Records that name every joiner as connected count them: the placements go.
        let on = |n: &str| -> Vec<String> {
            codes
                .iter()
                .zip(&first)
                .filter(|(_, w)| *w == n)
                .flat_map(|(c, _)| [format!("{c}/1"), format!("{c}/2")])
                .chain([if n == "a" { "e" } else { "f" }.to_owned()])
                .collect()
        };
        let (on_a, on_b) = (on("a"), on("b"));
        fn names(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        dir.replace(
            vec![
                rec(node("a", 5, &[], 12_000), 12_000, &names(&on_a)),
                rec(node("b", 5, &[], 12_000), 12_000, &names(&on_b)),
            ],
            12_000,
        );
        assert!(pending(&dir).is_empty());
    }

    #[test]
    fn meetings_that_start_together_are_spread_by_what_they_will_weigh() {
        let dir = Directory::default();
        dir.replace(
            vec![
                node("a", 0, &[], 10_000),
                node("b", 0, &[], 10_000),
                node("c", 0, &[], 10_000),
            ],
            10_000,
        );
        let mut per_node: std::collections::BTreeMap<String, u32> = Default::default();
        let mut join = |code: &str, who: &str| {
            let n = dir
                .choose(code, format!("{code}/{who}"), 10_100)
                .unwrap()
                .id;
            *per_node.entry(n).or_default() += 1;
        };
        // Meeting 1 fills up at once; then five meetings each get their first joiner before
        // any gets its second. Counted by first joiners alone, a looks busiest and b and c
        // take all five (4 / 12 / 8 in the end); counted by what a new meeting will weigh,
        // each node gets two meetings.
        for w in 0..4 {
            join("m1", &w.to_string());
        }
        for m in ["m2", "m3", "m4", "m5", "m6"] {
            join(m, "0");
        }
        for m in ["m2", "m3", "m4", "m5", "m6"] {
            for w in 1..4 {
                join(m, &w.to_string());
            }
        }
        assert_eq!(
            per_node.values().copied().collect::<Vec<_>>(),
            [8, 8, 8],
            "{per_node:?}"
        );
    }

    #[test]
    fn a_node_lists_its_joiners_for_a_while_and_a_joiner_id_hides_the_token() {
        let dir = Directory::default();
        dir.note_joined("x".into(), 1_000);
        dir.note_joined("y".into(), 5_000);
        assert_eq!(dir.recently_joined(6_000), ["x", "y"]);
        assert_eq!(dir.recently_joined(1_000 + JOINED_KEEP_MS), ["y"]);
        let id = joiner_id("a-join-token");
        assert_eq!(id.len(), 12);
        assert_eq!(id, joiner_id("a-join-token"));
        assert_ne!(id, joiner_id("another-token"));
        assert!(!id.contains("token"));
    }
}
