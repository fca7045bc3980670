//! A room that starts on a node while other nodes already hold its meeting holds its first
//! joins until those nodes' snapshots arrived (at most [`HOLD_JOINS`]), so the joiners'
//! `welcome` lists the participants of every node, as on a single node (docs/CLUSTER.md
//! section 4). Which nodes to wait for comes from the node directory.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quicmeet_sfu::{ConnId, Input, Join};

use super::{Actor, ConnOut};
use crate::cluster::net::Net;

/// How long a starting room holds its first joins at most for the other nodes' snapshots
/// (they answer within a NATS round trip; a node that does not answer in time is only seen
/// later, through `participant_joined`).
pub const HOLD_JOINS: Duration = Duration::from_millis(300);

/// Joins held by a starting room, and the nodes whose snapshots it still waits for.
pub struct Hold {
    until: Instant,
    waiting: HashSet<String>,
    joins: Vec<(Join, Arc<ConnOut>)>,
}

impl Hold {
    /// The hold of a room of `code` starting now, if other live nodes hold the meeting.
    pub fn starting(net: &Net, code: &str) -> Option<Hold> {
        let waiting: HashSet<String> = net
            .directory
            .holders(code, &net.node_id, chrono::Utc::now().timestamp_millis())
            .into_iter()
            .collect();
        (!waiting.is_empty()).then(|| Hold {
            until: Instant::now() + HOLD_JOINS,
            waiting,
            joins: Vec::new(),
        })
    }
}

impl Actor {
    /// When held joins are let in at the latest.
    pub(super) fn hold_deadline(&self) -> Option<Instant> {
        self.cluster.as_ref()?.hold.as_ref().map(|h| h.until)
    }

    /// A snapshot of `node` arrived: one less to wait for.
    pub(super) fn snapshot_arrived(&mut self, node: &str) {
        if let Some(h) = self.cluster.as_mut().and_then(|c| c.hold.as_mut()) {
            h.waiting.remove(node);
        }
        self.release_held();
    }

    /// Keeps a join while the room waits for other nodes' snapshots; gives it back when the
    /// room is not waiting.
    pub(super) fn hold_join(
        &mut self,
        join: Join,
        out: Arc<ConnOut>,
    ) -> Option<(Join, Arc<ConnOut>)> {
        match self.cluster.as_mut().and_then(|c| c.hold.as_mut()) {
            Some(h) => {
                h.joins.push((join, out));
                None
            }
            None => Some((join, out)),
        }
    }

    /// A held joiner left before it was let in: `true` if it was held.
    pub(super) fn drop_held(&mut self, conn: ConnId) -> bool {
        let Some(h) = self.cluster.as_mut().and_then(|c| c.hold.as_mut()) else {
            return false;
        };
        let before = h.joins.len();
        h.joins.retain(|(j, _)| j.conn != conn);
        h.joins.len() != before
    }

    /// Whether joins are being held (the room must not retire meanwhile).
    pub(super) fn holding(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.hold.is_some())
    }

    /// Lets the held joins in once every awaited snapshot came, or the time is up.
    pub(super) fn release_held(&mut self) {
        let due = match self.cluster.as_ref().and_then(|c| c.hold.as_ref()) {
            Some(h) => h.waiting.is_empty() || Instant::now() >= h.until,
            None => return,
        };
        if !due {
            return;
        }
        let Some(h) = self.cluster.as_mut().and_then(|c| c.hold.take()) else {
            return;
        };
        if !h.waiting.is_empty() {
            tracing::debug!(room = %self.code, missing = ?h.waiting, "no snapshot in time; letting joins in");
        }
        for (join, out) in h.joins {
            self.conns.insert(join.conn, out);
            self.input(Input::Join(join));
        }
    }
}
