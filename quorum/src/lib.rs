//! The Raft quorum that orders Strata's cluster metadata changes.
//!
//! Built on `openraft` 0.9 (storage-v2): an fsynced append-only log and atomically replaced
//! vote/snapshot files under [`QuorumConfig::dir`], and a small length-prefixed JSON protocol
//! over one TCP listener per node. The application plugs in its state machine through
//! [`StateMachine`] and drives everything through [`Quorum`].
//!
//! On-disk layout of `dir`:
//! - `raft.log`: records `[u32 len][u32 crc32c][serde_json of an openraft Entry]`, big-endian;
//!   a torn tail is cut off at start-up.
//! - `vote.json`, `purged.json`: fsynced and replaced atomically.
//! - `committed.json`: replaced atomically but not fsynced (a stale value only means less
//!   replay at start-up).
//! - `snapshot.bin`: two records, the snapshot meta (JSON) and the state machine's bytes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;

mod background;
pub mod frame;
mod fsutil;
mod log_store;
mod network;
mod node;
mod server;
mod state_machine;
mod transport;
mod types;

#[cfg(test)]
mod log_store_tests;

pub use node::Quorum;
pub use transport::QuorumTls;

pub type NodeId = u64;

/// The application's replicated state machine (the broker's metadata image).
pub trait StateMachine: Send + Sync + 'static {
    type Command: Serialize + DeserializeOwned + std::fmt::Debug + Clone + Send + Sync + 'static;
    type Response: Serialize
        + DeserializeOwned
        + std::fmt::Debug
        + Clone
        + Default
        + Send
        + Sync
        + 'static;
    /// Applies one committed command, in log order, on every node. Must be deterministic.
    fn apply(&self, index: u64, command: &Self::Command) -> Self::Response;
    /// Serializes everything applied so far.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the whole state with a snapshot's (on install, and at start-up from the latest
    /// snapshot on disk).
    fn restore(&self, snapshot: &[u8]) -> Result<(), String>;
}

/// How one node of the quorum runs. Build it with [`QuorumConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: NodeId,
    /// Where this node's Raft listener binds ("host:port"; port 0 is not allowed because peers
    /// dial the configured address).
    pub listen_addr: String,
    /// The voters: id -> "host:port" of their Raft listener. If `node_id` is not among them,
    /// this node joins as a learner.
    pub voters: BTreeMap<NodeId, String>,
    /// This node's address as others should dial it (usually == listen_addr).
    pub advertised_addr: String,
    /// Directory for this node's Raft log, vote and snapshots (created if missing).
    pub dir: PathBuf,
    pub heartbeat_interval_ms: u64,
    /// A follower that stops hearing from its leader waits `election_timeout_max_ms` (the
    /// openraft 0.9 leader lease) plus a per-node random timeout in [min, max) before it
    /// campaigns, and twice max more if it learns that a peer has a longer log. With the
    /// defaults a failover takes about 3-4 s, up to ~8 s (measured: 3.6 s, 6.1 s, 7.2 s).
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many entries since the last one (0: never).
    pub snapshot_every: u64,
    /// Timeout of one RPC (Vote, InstallSnapshot chunk, forwarded proposal attempt); openraft
    /// bounds AppendEntries by the heartbeat interval itself.
    pub request_timeout_ms: u64,
    /// TLS for the listener and the connections to peers (None: plain TCP).
    pub tls: Option<QuorumTls>,
}

impl QuorumConfig {
    pub fn new(
        node_id: NodeId,
        listen_addr: impl Into<String>,
        voters: BTreeMap<NodeId, String>,
        dir: impl Into<PathBuf>,
    ) -> Self {
        let listen_addr = listen_addr.into();
        Self {
            node_id,
            advertised_addr: listen_addr.clone(),
            listen_addr,
            voters,
            dir: dir.into(),
            heartbeat_interval_ms: 150,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            snapshot_every: 10_000,
            request_timeout_ms: 2000,
            tls: None,
        }
    }

    pub fn is_voter(&self) -> bool {
        self.voters.contains_key(&self.node_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt file {}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("invalid quorum configuration: {0}")]
    Config(String),
    /// The deadline passed without a leader accepting the command: it was not applied.
    #[error("no leader accepted the command before the deadline")]
    NoLeader,
    /// The outcome is unknown: the deadline passed (or the connection to the leader broke)
    /// after the command was handed to a leader; it may still be applied.
    #[error(
        "timed out waiting for the command to be committed and applied; it may still be applied"
    )]
    Timeout,
    #[error("raft: {0}")]
    Raft(String),
    /// A command or response could not be (de)serialized.
    #[error("codec: {0}")]
    Codec(String),
    #[error("the quorum is shut down")]
    Shutdown,
}

impl QuorumError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
