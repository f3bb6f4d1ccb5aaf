//! The openraft type configuration and the messages exchanged between nodes.

use std::io::Cursor;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use crate::NodeId;

openraft::declare_raft_types!(
    /// Commands and responses travel as JSON values so that storage, network and openraft
    /// types stay independent of the application's `StateMachine` type; only the adapter in
    /// `state_machine.rs` converts them.
    pub TypeConfig:
        D = serde_json::Value,
        R = serde_json::Value,
        NodeId = NodeId,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub(crate) type LogId = openraft::LogId<NodeId>;
pub(crate) type Vote = openraft::Vote<NodeId>;
pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type StorageError = openraft::StorageError<NodeId>;
pub(crate) type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
pub(crate) type Raft = openraft::Raft<TypeConfig>;

/// One request per frame; the answer is the matching `Response` variant.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Propose { command: serde_json::Value },
    Join { node_id: NodeId, addr: String },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Propose(Result<Proposed, Rejected>),
    Join(Result<(), Rejected>),
}

/// The leader's answer to a proposal: the state machine's response and the entry's index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Proposed {
    pub(crate) response: serde_json::Value,
    pub(crate) index: u64,
}

/// Why a node did not take a leader-only request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Rejected {
    /// Not the leader; the leader it knows of, if any. The command was not appended.
    NotLeader { leader: Option<(NodeId, String)> },
    /// Anything else (shutting down, membership change refused...).
    Failed(String),
}
