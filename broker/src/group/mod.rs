//! The classic consumer-group coordinator: JoinGroup/SyncGroup/Heartbeat/LeaveGroup
//! rebalancing, committed offsets, and the admin group APIs, persisted in the internal
//! compacted topic `__consumer_offsets` with Kafka's own record schemas.
//!
//! The request handlers call [`GroupCoordinator`]; durable storage is reached only through
//! the [`OffsetsLog`] trait, so this module knows nothing of partitions or the network.
//! Group state lives behind one lock per group (never held across an `.await`); JoinGroup
//! and SyncGroup responses that must wait for a rebalance wait on channels, not threads.

mod admin;
mod clock;
mod coordinator;
mod membership;
mod offsets;
mod protocol;
mod rebalance;
pub mod schema;
mod state;
mod txn_offsets;

// Deterministic timing tests on tokio's paused clock (`test-util`, a dev-dependency).
#[cfg(test)]
mod paused_clock_tests {
    mod membership;
    mod offsets;
    mod support;
}

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

pub(crate) use coordinator::partition_for;
pub use coordinator::GroupCoordinator;
pub use state::GroupState;

/// Broker settings the coordinator follows; names mirror Kafka's `server.properties` keys.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `offsets.topic.num.partitions`
    pub offsets_topic_num_partitions: i32,
    /// `group.initial.rebalance.delay.ms`
    pub group_initial_rebalance_delay_ms: i32,
    /// `group.min.session.timeout.ms`
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`
    pub group_max_size: i32,
    /// `offsets.retention.minutes`
    pub offsets_retention_minutes: i64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// `node.id` of this broker (the coordinator of every partition for now).
    pub node_id: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            offsets_topic_num_partitions: 50,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: i32::MAX,
            offsets_retention_minutes: 10_080,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            node_id: 0,
        }
    }
}

/// One record of `__consumer_offsets`: key and value (`None` is a tombstone).
pub type OffsetsRecord = (Bytes, Option<Bytes>);

/// Where the coordinator persists and loads its state: the internal compacted topic
/// `__consumer_offsets`. The broker implements this on top of the partition logs (records
/// become one magic-2 batch, acks=all semantics).
pub trait OffsetsLog: Send + Sync + 'static {
    /// Appends the records atomically to `partition`; resolves once they are durable, or
    /// to the Kafka error code the client should get.
    fn append(
        &self,
        partition: i32,
        records: Vec<OffsetsRecord>,
    ) -> BoxFuture<'static, Result<(), i16>>;
    /// Every record of the partition from its log start, in offset order (for loading on
    /// start/failover). Records of a transaction appear where its commit marker is;
    /// aborted and still-open transactions' records do not appear.
    fn read_all(&self, partition: i32) -> Result<Vec<OffsetsRecord>, i16>;
    /// Appends the records as one transactional batch of the producer (TxnOffsetCommit).
    fn append_transactional(
        &self,
        _partition: i32,
        _producer_id: i64,
        _producer_epoch: i16,
        _records: Vec<OffsetsRecord>,
    ) -> BoxFuture<'static, Result<(), i16>> {
        Box::pin(async { Err(kafka_protocol::error::ResponseError::UnsupportedVersion.code()) })
    }
    /// The records of transactions not yet ended in the partition, with their producer ids.
    fn read_open_transactions(&self, _partition: i32) -> Result<Vec<(i64, OffsetsRecord)>, i16> {
        Ok(Vec::new())
    }
}

/// Hook for OffsetCommit: does `topic`/`partition` exist? Partitions for which it answers
/// `false` get UNKNOWN_TOPIC_OR_PARTITION and are not stored. Installed by the broker with
/// [`GroupCoordinator::set_topic_validator`]; without one every partition is accepted.
pub type TopicValidator = Arc<dyn Fn(&str, i32) -> bool + Send + Sync>;

/// Kafka's wire error codes used by the coordinator (kafka-protocol's `ResponseError`
/// table, as plain `i16` because responses carry them that way).
pub(crate) mod codes {
    use kafka_protocol::error::ResponseError as E;

    pub(crate) const NONE: i16 = 0;
    pub(crate) fn code(e: E) -> i16 {
        e.code()
    }
    pub(crate) fn unknown_member_id() -> i16 {
        code(E::UnknownMemberId)
    }
    pub(crate) fn illegal_generation() -> i16 {
        code(E::IllegalGeneration)
    }
    pub(crate) fn rebalance_in_progress() -> i16 {
        code(E::RebalanceInProgress)
    }
    pub(crate) fn fenced_instance_id() -> i16 {
        code(E::FencedInstanceId)
    }
    pub(crate) fn coordinator_not_available() -> i16 {
        code(E::CoordinatorNotAvailable)
    }
    pub(crate) fn not_coordinator() -> i16 {
        code(E::NotCoordinator)
    }
    pub(crate) fn load_in_progress() -> i16 {
        code(E::CoordinatorLoadInProgress)
    }
    pub(crate) fn inconsistent_protocol() -> i16 {
        code(E::InconsistentGroupProtocol)
    }
    pub(crate) fn invalid_group_id() -> i16 {
        code(E::InvalidGroupId)
    }
}
