//! The transaction coordinator over real partition logs in a temporary directory: fencing,
//! timeouts, retries and wrong states, and a coordinator that restarts between PrepareCommit
//! and its markers.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::Arc;

use strata_protocol::record_batch::RecordBatchHeader;
use strata_storage::LogConfig;
use uuid::Uuid;

use super::coordinator::{
    TransactionConfig, TransactionCoordinator, TxnError, TRANSACTION_STATE_TOPIC,
};
use super::producer_ids::ProducerIdManager;
use super::state_log::TxnState;
use crate::errors::ErrorCode;
use crate::group::{GroupConfig, GroupCoordinator};
use crate::offsets_topic::OffsetsTopicLog;
use crate::partition::manager::{now_ms, ReplicaManager};
use crate::partition::tests::txn_batch;
use crate::partition::{Isolation, Partition};

struct Fixture {
    _dir: tempfile::TempDir,
    replicas: Arc<ReplicaManager>,
    groups: Arc<GroupCoordinator>,
    ids: ProducerIdManager,
}

impl Fixture {
    fn new() -> Self {
        Self::with_config(LogConfig::default())
    }

    fn with_config(config: LogConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let replicas = Arc::new(ReplicaManager::new(vec![dir.path().join("logs")]));
        for p in 0..2 {
            replicas
                .open_partition(TRANSACTION_STATE_TOPIC, p, Uuid::nil(), 0, config.clone())
                .unwrap();
            replicas
                .open_partition("t", p, Uuid::nil(), 0, config.clone())
                .unwrap();
        }
        let groups = GroupCoordinator::new(
            GroupConfig::default(),
            Arc::new(OffsetsTopicLog::new(replicas.clone(), 1)),
        );
        let ids = ProducerIdManager::open(dir.path().join("producer-ids"));
        Fixture {
            _dir: dir,
            replicas,
            groups,
            ids,
        }
    }

    /// A coordinator with no memory of earlier ones (what a restart leaves).
    fn coordinator(&self) -> TransactionCoordinator {
        TransactionCoordinator::new(
            self.replicas.clone(),
            self.groups.clone(),
            TransactionConfig {
                state_log_partitions: 2,
                max_timeout_ms: 60_000,
            },
        )
    }

    fn partition(&self, p: i32) -> Arc<Partition> {
        self.replicas.get("t", p).unwrap()
    }

    /// Appends one transactional record of the producer to t-`p`, as its Produce would.
    fn write(&self, p: i32, pid: i64, epoch: i16, seq: i32) {
        let batch = txn_batch(pid, epoch, seq, 1);
        let header = RecordBatchHeader::parse(&batch).unwrap();
        self.partition(p)
            .append_as_leader(&batch, &header, now_ms())
            .unwrap();
    }

    /// Whether read_committed readers of t-`p` see everything (no open transaction).
    fn stable(&self, p: i32) -> bool {
        let partition = self.partition(p);
        partition.last_stable_offset() == partition.high_watermark()
    }

    fn aborted_count(&self, p: i32) -> usize {
        self.partition(p)
            .read_isolated(0, 1 << 20, true, Isolation::ReadCommitted)
            .unwrap()
            .aborted
            .unwrap()
            .len()
    }
}

fn state(c: &TransactionCoordinator, id: &str) -> (TxnState, i16) {
    let view = c.view(Some(&[id.to_string()]));
    (view[0].record.state, view[0].record.producer_epoch)
}

fn both() -> Vec<(String, i32)> {
    vec![("t".to_string(), 0), ("t".to_string(), 1)]
}

#[test]
fn a_new_instance_fences_the_old_one_and_aborts_its_transaction() {
    let f = Fixture::new();
    let c = f.coordinator();
    let (pid, epoch) = c.init_producer_id("app", 30_000, None, &f.ids).unwrap();
    assert_eq!(epoch, 0);
    c.add_partitions("app", pid, epoch, &both()).unwrap();
    f.write(0, pid, epoch, 0);
    assert!(!f.stable(0));

    let (pid2, epoch2) = c.init_producer_id("app", 30_000, None, &f.ids).unwrap();
    assert_eq!((pid2, epoch2), (pid, 1));
    assert!(f.stable(0), "the old instance's transaction was aborted");
    assert_eq!(f.aborted_count(0), 1);
    assert_eq!(state(&c, "app"), (TxnState::Empty, 1));
    // The old instance is fenced everywhere.
    assert_eq!(
        c.end_transaction("app", pid, epoch, true),
        Err(TxnError::Fenced)
    );
    assert_eq!(
        c.add_partitions("app", pid, epoch, &both()),
        Err(TxnError::Fenced)
    );
    assert_eq!(
        c.verify_partition("app", pid, epoch, "t", 0),
        Err(ErrorCode::InvalidProducerEpoch)
    );
    // KIP-360: naming a stale (pid, epoch) to bump is refused too.
    assert_eq!(
        c.init_producer_id("app", 30_000, Some((pid, 0)), &f.ids),
        Err(TxnError::Fenced)
    );
}

#[test]
fn a_prepared_commit_is_finished_by_the_next_coordinator() {
    let f = Fixture::new();
    let c = f.coordinator();
    let (pid, epoch) = c.init_producer_id("app", 30_000, None, &f.ids).unwrap();
    c.add_partitions("app", pid, epoch, &both()).unwrap();
    f.write(0, pid, epoch, 0);
    f.write(1, pid, epoch, 0);
    // The coordinator logs PrepareCommit and stops before writing any marker.
    let mut prepared = c.view(Some(&["app".to_string()]))[0].record.clone();
    prepared.state = TxnState::PrepareCommit;
    c.persist_for_tests("app", &prepared);
    drop(c);
    assert!(!f.stable(0) && !f.stable(1));

    let restarted = f.coordinator();
    assert_eq!(restarted.load(), Ok(1));
    assert!(f.stable(0) && f.stable(1), "commit markers written on load");
    assert_eq!((f.aborted_count(0), f.aborted_count(1)), (0, 0));
    assert_eq!(state(&restarted, "app"), (TxnState::CompleteCommit, 0));
    // The same producer goes on with its next transaction.
    restarted
        .add_partitions("app", pid, epoch, &both())
        .unwrap();
    assert_eq!(state(&restarted, "app").0, TxnState::Ongoing);
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let f = Fixture::new();
    let c = f.coordinator();
    let (pid, epoch) = c.init_producer_id("slow", 1, None, &f.ids).unwrap();
    let (fast_pid, fast_epoch) = c.init_producer_id("fast", 60_000, None, &f.ids).unwrap();
    c.add_partitions("slow", pid, epoch, &both()).unwrap();
    c.add_partitions("fast", fast_pid, fast_epoch, &[("t".to_string(), 1)])
        .unwrap();
    f.write(0, pid, epoch, 0);
    // The timeout is 1 ms: wait (on the clock, bounded) until it has certainly passed.
    let started = now_ms();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while now_ms() < started + 3 && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    c.abort_timed_out(&f.ids);
    assert_eq!(state(&c, "slow"), (TxnState::CompleteAbort, epoch + 1));
    assert_eq!(state(&c, "fast").0, TxnState::Ongoing, "within its timeout");
    assert!(f.stable(0));
    assert_eq!(f.aborted_count(0), 1);
    assert_eq!(
        c.end_transaction("slow", pid, epoch, true),
        Err(TxnError::Fenced)
    );
}

#[test]
fn retries_succeed_and_wrong_states_are_refused() {
    let f = Fixture::new();
    let c = f.coordinator();
    assert_eq!(
        c.init_producer_id("app", 60_001, None, &f.ids),
        Err(TxnError::Code(ErrorCode::InvalidTransactionTimeout))
    );
    let too_long = "x".repeat(i16::MAX as usize + 1);
    assert_eq!(
        c.init_producer_id(&too_long, 30_000, None, &f.ids),
        Err(TxnError::Code(ErrorCode::InvalidRequest)),
        "an id the state log cannot hold"
    );
    let (pid, epoch) = c.init_producer_id("app", 30_000, None, &f.ids).unwrap();
    // Nothing open: an abort is a no-op, a commit is INVALID_TXN_STATE.
    assert_eq!(c.end_transaction("app", pid, epoch, false), Ok(()));
    assert_eq!(
        c.end_transaction("app", pid, epoch, true),
        Err(TxnError::Code(ErrorCode::InvalidTxnState))
    );
    c.add_partitions("app", pid, epoch, &[("t".to_string(), 0)])
        .unwrap();
    // A partition outside the transaction may not take its records.
    assert_eq!(
        c.verify_partition("app", pid, epoch, "t", 1),
        Err(ErrorCode::InvalidTxnState)
    );
    assert_eq!(c.verify_partition("app", pid, epoch, "t", 0), Ok(()));
    f.write(0, pid, epoch, 0);
    assert_eq!(c.end_transaction("app", pid, epoch, true), Ok(()));
    // A retried commit succeeds; an abort after it does not.
    assert_eq!(c.end_transaction("app", pid, epoch, true), Ok(()));
    assert_eq!(
        c.end_transaction("app", pid, epoch, false),
        Err(TxnError::Code(ErrorCode::InvalidTxnState))
    );
    assert_eq!(
        c.end_transaction("app", pid + 1, epoch, true),
        Err(TxnError::Code(ErrorCode::InvalidProducerIdMapping))
    );
    assert_eq!(
        c.end_transaction("nobody", pid, epoch, true),
        Err(TxnError::Code(ErrorCode::InvalidProducerIdMapping))
    );
    assert!(f.stable(0));
    // Everything above survives a restart of the coordinator.
    let restarted = f.coordinator();
    assert_eq!(restarted.load(), Ok(1));
    assert_eq!(state(&restarted, "app"), (TxnState::CompleteCommit, 0));
}

#[test]
fn transactions_no_transactional_id_accounts_for_are_aborted_at_start() {
    let f = Fixture::new();
    let c = f.coordinator();
    let (pid, epoch) = c.init_producer_id("app", 30_000, None, &f.ids).unwrap();
    c.add_partitions("app", pid, epoch, &[("t".to_string(), 1)])
        .unwrap();
    f.write(1, pid, epoch, 0);
    // A producer whose coordinator state is gone (say, __transaction_state was lost).
    f.write(0, 999, 4, 0);
    assert!(!f.stable(0) && !f.stable(1));

    let restarted = f.coordinator();
    assert_eq!(restarted.load(), Ok(1));
    assert_eq!(restarted.abort_unknown_transactions(), 1);
    assert!(f.stable(0), "the unaccounted transaction was aborted");
    assert_eq!(f.aborted_count(0), 1);
    assert!(
        !f.stable(1),
        "the known open transaction is left to its producer"
    );
    assert_eq!(restarted.end_transaction("app", pid, epoch, true), Ok(()));
    assert!(f.stable(1));
    assert_eq!(restarted.abort_unknown_transactions(), 0);
}

/// In durable mode the commit markers and the state records are on disk before EndTxn
/// answers, as a durable produce's records are before its acknowledgement.
#[test]
fn in_durable_mode_markers_and_state_are_synced_before_end_txn_answers() {
    let f = Fixture::with_config(LogConfig {
        flush_interval_messages: 1,
        ..LogConfig::default()
    });
    let c = f.coordinator();
    let (pid, epoch) = c.init_producer_id("app", 30_000, None, &f.ids).unwrap();
    c.add_partitions("app", pid, epoch, &both()).unwrap();
    f.write(0, pid, epoch, 0);
    c.end_transaction("app", pid, epoch, true).unwrap();
    for p in 0..2 {
        let partition = f.partition(p);
        assert_eq!(
            partition.recovery_point(),
            Some(partition.high_watermark()),
            "t-{p}: its marker is synced"
        );
    }
    let state = f
        .replicas
        .get(TRANSACTION_STATE_TOPIC, c.partition_for("app"))
        .unwrap();
    assert_eq!(state.recovery_point(), Some(state.high_watermark()));
}

#[test]
fn idle_transactional_ids_expire_with_a_tombstone_open_ones_stay() {
    let f = Fixture::new();
    let c = f.coordinator();
    let (idle_pid, idle_epoch) = c.init_producer_id("idle", 30_000, None, &f.ids).unwrap();
    let (pid, epoch) = c.init_producer_id("busy", 30_000, None, &f.ids).unwrap();
    c.add_partitions("busy", pid, epoch, &both()).unwrap();
    assert_eq!(
        c.expire_transactional_ids(3_600_000),
        0,
        "nothing idle an hour"
    );
    assert_eq!(c.expire_transactional_ids(0), 1, "only the idle id goes");
    assert!(c.view(Some(&["idle".to_string()])).is_empty());
    assert_eq!(
        c.end_transaction("idle", idle_pid, idle_epoch, false),
        Err(TxnError::Code(ErrorCode::InvalidProducerIdMapping))
    );
    // The tombstone is in the log: a restarted coordinator does not bring the id back.
    let restarted = f.coordinator();
    assert_eq!(restarted.load(), Ok(1));
    assert_eq!(state(&restarted, "busy").0, TxnState::Ongoing);
    assert!(restarted.view(Some(&["idle".to_string()])).is_empty());
}
