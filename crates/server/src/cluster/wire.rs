//! What nodes say to each other about a meeting (docs/CLUSTER.md sections 4–7), as JSON on
//! the subjects of [`super::subjects`]. Room events reuse PROTOCOL.md's server messages.
//! Media frames are not here: they cross as the unchanged frame encoding.

use quicmeet_proto::{ClientMessage, Participant, ServerMessage, TrackInfo};
use serde::{Deserialize, Serialize};

/// A room event from its home node, numbered per node and room.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The publishing node.
    pub node: String,
    /// The publishing room's start (a random number): a new room starts `seq` again.
    pub epoch: u64,
    /// 1, 2, 3, … per room; a gap means a lost event, and the receiver asks for a snapshot.
    pub seq: u64,
    pub event: Event,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// Everything the node's room holds of its own, as of `seq`.
    Snapshot {
        roster: Vec<Member>,
        wants: Vec<Want>,
    },
    /// A fact about one of the node's participants (`participant_joined`, `knock`,
    /// `participant_left`, `track_published`, `track_unpublished`, `mute_state`, `hand`,
    /// `reaction`, `chat`).
    Room { msg: ServerMessage },
    /// The layers of other nodes' tracks the node's subscribers want now (all of them).
    Wants { wants: Vec<Want> },
}

/// One of a node's own participants in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub participant: Participant,
    pub email: String,
    pub lobby: bool,
    pub tracks: Vec<TrackInfo>,
}

/// Layers (bit n = layer n) of a track that a node wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Want {
    pub track_id: u32,
    pub layers: u8,
}

/// A host power or signal for a participant of the receiving node, sent by `by` (a
/// participant of the sending node).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Command {
    pub node: String,
    pub by: u32,
    pub msg: ClientMessage,
}

/// A keyframe request for one of the receiving node's tracks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct KeyframeAsk {
    pub track_id: u32,
    pub layer: u8,
}

/// "Publish your snapshot", from `node`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sync {
    pub node: String,
}

/// End for all, by participant `by` of node `node`, after `ended_at` was stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct End {
    pub node: String,
    pub by: u32,
}
