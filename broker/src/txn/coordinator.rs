//! The transaction coordinator (KIP-98): each transactional id's producer id and epoch, the
//! partitions its open transaction wrote to, and the commit or abort that ends it, written
//! to `__transaction_state` before it takes effect. Ending a transaction logs PrepareCommit
//! (or PrepareAbort), writes a marker into every partition of the transaction, then logs
//! CompleteCommit (CompleteAbort); a coordinator that stopped between the two finishes the
//! job when it loads. This broker is the coordinator of every transactional id, and its
//! markers are local appends, so EndTxn answers once the markers are in the logs.
//!
//! One lock guards every transactional id's state and is held across an operation's log
//! writes: operations on transactions are few next to produce and fetch, and this keeps
//! each one atomic (a timeout abort cannot interleave with the producer's own EndTxn).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use strata_protocol::kafka_protocol;
use strata_protocol::record_batch::{MarkerKind, RecordBatchHeader};

use super::producer_ids::ProducerIdManager;
use super::state_log::{decode_key, decode_value, encode_key, encode_value, TxnRecord, TxnState};
use crate::errors::ErrorCode;
use crate::group::GroupCoordinator;
use crate::offsets_topic::{encode_batch, OFFSETS_TOPIC};
use crate::partition::manager::{now_ms, ReplicaManager};

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// How much of the log one read pulls while loading a partition.
const LOAD_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Markers carry the coordinator's epoch; a single broker's coordinator never changes.
const COORDINATOR_EPOCH: i32 = 0;

pub struct TransactionConfig {
    pub state_log_partitions: i32,
    pub max_timeout_ms: i32,
}

pub struct TransactionCoordinator {
    txns: Mutex<HashMap<String, TxnRecord>>,
    replicas: Arc<ReplicaManager>,
    groups: Arc<GroupCoordinator>,
    config: TransactionConfig,
}

/// Why a request about a transaction was refused, before version-specific mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnError {
    /// A newer epoch exists: PRODUCER_FENCED (INVALID_PRODUCER_EPOCH for older versions).
    Fenced,
    Code(ErrorCode),
}

impl From<ErrorCode> for TxnError {
    fn from(code: ErrorCode) -> Self {
        TxnError::Code(code)
    }
}

impl TxnError {
    /// The code for a request version that knows PRODUCER_FENCED (`fenced_known`) or not.
    pub fn code(self, fenced_known: bool) -> ErrorCode {
        match self {
            TxnError::Fenced if fenced_known => ErrorCode::ProducerFenced,
            TxnError::Fenced => ErrorCode::InvalidProducerEpoch,
            TxnError::Code(code) => code,
        }
    }
}

/// What the metrics show of the coordinator.
pub struct TxnSummary {
    pub by_state: Vec<(&'static str, usize)>,
    pub oldest_open_ms: Option<i64>,
}

/// One transaction as DescribeTransactions and ListTransactions report it.
#[derive(Debug, Clone)]
pub struct TxnView {
    pub transactional_id: String,
    pub record: TxnRecord,
}

impl TransactionCoordinator {
    pub fn new(
        replicas: Arc<ReplicaManager>,
        groups: Arc<GroupCoordinator>,
        config: TransactionConfig,
    ) -> Self {
        Self {
            txns: Mutex::new(HashMap::new()),
            replicas,
            groups,
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, TxnRecord>> {
        self.txns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Kafka's partition of a transactional id: Java's String hash, as for groups.
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        crate::group::partition_for(transactional_id, self.config.state_log_partitions)
    }

    /// Loads every transactional id from `__transaction_state` (the newest record of each
    /// wins) and finishes transactions caught between prepare and complete. Run at start-up
    /// once the logs are open, and when the topic is created.
    pub fn load(&self) -> Result<usize, ErrorCode> {
        let mut loaded = HashMap::new();
        for partition in 0..self.config.state_log_partitions {
            let Some(p) = self.replicas.get(TRANSACTION_STATE_TOPIC, partition) else {
                continue;
            };
            let mut offset = p.log_start_offset();
            while offset < p.high_watermark() {
                let read = p.read(offset, LOAD_CHUNK_BYTES, true)?;
                if read.records.is_empty() {
                    break;
                }
                let mut buf = read.records.clone();
                let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf)
                    .map_err(|e| {
                        tracing::error!(partition, error = %e, "cannot decode {TRANSACTION_STATE_TOPIC}");
                        ErrorCode::CorruptMessage
                    })?;
                let mut next = offset;
                for set in sets {
                    for r in set.records {
                        next = next.max(r.offset + 1);
                        let Some(id) = r.key.as_deref().and_then(decode_key) else {
                            continue;
                        };
                        match r.value.as_deref().map(decode_value) {
                            Some(Some(record)) => {
                                loaded.insert(id, record);
                            }
                            Some(None) => {
                                tracing::warn!(transactional_id = %id, "unreadable transaction state record skipped")
                            }
                            None => {
                                loaded.remove(&id);
                            }
                        }
                    }
                }
                if next <= offset {
                    break;
                }
                offset = next;
            }
        }
        let count = loaded.len();
        let mut txns = self.lock();
        *txns = loaded;
        let unfinished: Vec<(String, bool)> = txns
            .iter()
            .filter_map(|(id, r)| match r.state {
                TxnState::PrepareCommit => Some((id.clone(), true)),
                TxnState::PrepareAbort => Some((id.clone(), false)),
                _ => None,
            })
            .collect();
        for (id, commit) in unfinished {
            if let Some(mut record) = txns.get(&id).cloned() {
                tracing::info!(transactional_id = %id, commit, "finishing a transaction prepared before the restart");
                self.write_markers_and_complete(&id, &mut record, commit)
                    .map_err(|e| e.code(true))?;
                txns.insert(id, record);
            }
        }
        Ok(count)
    }

    /// Aborts transactions open in a partition that no transactional id's open transaction
    /// includes: their coordinator state was lost (a `__transaction_state` partition lost or
    /// deleted, a crash between a partition's write reaching disk and its state record), and
    /// nothing else would ever end them, holding read_committed consumers back for good
    /// (Kafka's "hanging transactions", which its operators abort by hand). Run at start-up,
    /// after `load`, before clients are served; returns how many it aborted.
    pub fn abort_unknown_transactions(&self) -> usize {
        let now = now_ms();
        let txns = self.lock();
        let mut aborted = 0;
        for partition in self.replicas.all() {
            let (topic, index) = (&partition.tp.topic, partition.tp.partition);
            for (producer_id, epoch) in partition.open_transactions() {
                let known = txns.values().any(|r| {
                    r.producer_id == producer_id
                        && r.state == TxnState::Ongoing
                        && r.partitions.iter().any(|(t, p)| t == topic && *p == index)
                });
                if known {
                    continue;
                }
                tracing::warn!(topic = %topic, partition = index, producer_id, epoch,
                    "aborting a transaction no transactional id accounts for");
                match partition.append_marker(
                    producer_id,
                    epoch,
                    COORDINATOR_EPOCH,
                    MarkerKind::Abort,
                    now,
                ) {
                    Ok(_) => {
                        aborted += 1;
                        if topic == OFFSETS_TOPIC {
                            self.groups.complete_transaction(index, producer_id, false);
                        }
                    }
                    Err(code) => {
                        tracing::error!(topic = %topic, partition = index, producer_id, error = ?code,
                        "cannot abort a transaction no transactional id accounts for")
                    }
                }
            }
        }
        aborted
    }

    /// InitProducerId with a transactional id: a new producer id for a new id, else the
    /// next epoch of its producer id, which fences every older instance of the producer;
    /// an open transaction of the old instance is aborted first.
    pub fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        ids: &ProducerIdManager,
    ) -> Result<(i64, i16), TxnError> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ErrorCode::InvalidTransactionTimeout.into());
        }
        // The state log's key holds the id as a Kafka (i16-length) string.
        if transactional_id.len() > i16::MAX as usize {
            return Err(ErrorCode::InvalidRequest.into());
        }
        let now = now_ms();
        let mut txns = self.lock();
        let Some(current) = txns.get(transactional_id).cloned() else {
            if expected.is_some() {
                // KIP-360: a producer recovering an id the coordinator does not know.
                return Err(ErrorCode::InvalidProducerIdMapping.into());
            }
            let producer_id = ids.next_id().map_err(|e| {
                tracing::error!(error = %e, "cannot allocate a producer id");
                ErrorCode::KafkaStorageError
            })?;
            let record = TxnRecord {
                producer_id,
                producer_epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                last_update_ms: now,
                start_ms: -1,
            };
            self.persist(transactional_id, &record)?;
            txns.insert(transactional_id.to_string(), record);
            return Ok((producer_id, 0));
        };
        if let Some((pid, epoch)) = expected {
            // KIP-360: only the current instance may bump its own epoch this way.
            if pid != current.producer_id || epoch != current.producer_epoch {
                return Err(TxnError::Fenced);
            }
        }
        let mut record = current;
        match record.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(ErrorCode::ConcurrentTransactions.into())
            }
            TxnState::Ongoing => {
                // Fence the old instance with the next epoch, abort its transaction with that
                // epoch, and hand the same epoch to the new instance.
                self.bump_epoch(&mut record, ids)?;
                self.write_markers_and_complete(transactional_id, &mut record, false)?;
            }
            TxnState::Dead => return Err(ErrorCode::ConcurrentTransactions.into()),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                self.bump_epoch(&mut record, ids)?;
            }
        }
        record.state = TxnState::Empty;
        record.timeout_ms = timeout_ms;
        record.partitions.clear();
        record.start_ms = -1;
        record.last_update_ms = now;
        self.persist(transactional_id, &record)?;
        let result = (record.producer_id, record.producer_epoch);
        txns.insert(transactional_id.to_string(), record);
        Ok(result)
    }

    /// The next epoch, or a new producer id at epoch 0 once the epoch would overflow.
    fn bump_epoch(&self, record: &mut TxnRecord, ids: &ProducerIdManager) -> Result<(), TxnError> {
        if record.producer_epoch >= i16::MAX - 1 {
            record.producer_id = ids.next_id().map_err(|e| {
                tracing::error!(error = %e, "cannot allocate a producer id");
                ErrorCode::KafkaStorageError
            })?;
            record.producer_epoch = 0;
        } else {
            record.producer_epoch += 1;
        }
        Ok(())
    }

    /// The transaction of `transactional_id` must be this producer's current one.
    fn current<'a>(
        txns: &'a HashMap<String, TxnRecord>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> Result<&'a TxnRecord, TxnError> {
        let record = txns
            .get(transactional_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if record.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping.into());
        }
        if record.producer_epoch != epoch {
            return Err(TxnError::Fenced);
        }
        Ok(record)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the partitions join the open transaction (which
    /// this starts if none is open).
    pub fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), TxnError> {
        let mut txns = self.lock();
        let record = Self::current(&txns, transactional_id, producer_id, epoch)?;
        match record.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(ErrorCode::ConcurrentTransactions.into())
            }
            TxnState::Dead => return Err(ErrorCode::InvalidTxnState.into()),
            TxnState::Ongoing if partitions.iter().all(|p| record.partitions.contains(p)) => {
                return Ok(())
            }
            _ => {}
        }
        let mut record = record.clone();
        let now = now_ms();
        if record.state != TxnState::Ongoing {
            record.state = TxnState::Ongoing;
            record.start_ms = now;
            record.partitions.clear();
        }
        record.partitions.extend(partitions.iter().cloned());
        record.last_update_ms = now;
        self.persist(transactional_id, &record)?;
        txns.insert(transactional_id.to_string(), record);
        Ok(())
    }

    /// Whether a transactional produce to `topic`/`partition` belongs to the producer's open
    /// transaction (KIP-890's check: a record outside it could never be committed or aborted).
    pub fn verify_partition(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ErrorCode> {
        let txns = self.lock();
        let record = Self::current(&txns, transactional_id, producer_id, epoch)
            .map_err(|e| e.code(false))?;
        let member = record
            .partitions
            .iter()
            .any(|(t, p)| t == topic && *p == partition);
        if record.state == TxnState::Ongoing && member {
            Ok(())
        } else {
            Err(ErrorCode::InvalidTxnState)
        }
    }

    /// EndTxn: commits or aborts the open transaction. A retry of an end that already
    /// happened succeeds; ending the other way, or with nothing open, is INVALID_TXN_STATE.
    pub fn end_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        let mut txns = self.lock();
        let record = Self::current(&txns, transactional_id, producer_id, epoch)?;
        match (record.state, commit) {
            (TxnState::Ongoing, _) => {}
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => return Ok(()),
            // An abort with nothing written (the producer began but sent nothing) is fine.
            (TxnState::Empty, false) => return Ok(()),
            (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => {
                return Err(ErrorCode::ConcurrentTransactions.into())
            }
            _ => return Err(ErrorCode::InvalidTxnState.into()),
        }
        let mut record = record.clone();
        self.write_markers_and_complete(transactional_id, &mut record, commit)?;
        txns.insert(transactional_id.to_string(), record);
        Ok(())
    }

    /// Aborts every open transaction older than its timeout, fencing its producer with the
    /// next epoch (its late commit then fails instead of committing an aborted transaction).
    pub fn abort_timed_out(&self, ids: &ProducerIdManager) {
        let now = now_ms();
        let mut txns = self.lock();
        let expired: Vec<String> = txns
            .iter()
            .filter(|(_, r)| {
                r.state == TxnState::Ongoing
                    && r.start_ms.saturating_add(i64::from(r.timeout_ms)) < now
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let Some(mut record) = txns.get(&id).cloned() else {
                continue;
            };
            tracing::info!(transactional_id = %id, producer_id = record.producer_id,
                "aborting a transaction past its timeout");
            let aborted = self
                .bump_epoch(&mut record, ids)
                .and_then(|()| self.write_markers_and_complete(&id, &mut record, false));
            match aborted {
                Ok(()) => {
                    txns.insert(id, record);
                }
                Err(e) => {
                    tracing::error!(transactional_id = %id, error = ?e, "aborting a timed-out transaction failed")
                }
            }
        }
    }

    /// `transactional.id.expiration.ms`: forgets ids whose last transaction ended (or that
    /// never began one) that long ago, with a tombstone in `__transaction_state`. Their
    /// producers start over as new ones. Returns how many went.
    pub fn expire_transactional_ids(&self, expiration_ms: i64) -> usize {
        let now = now_ms();
        let mut txns = self.lock();
        let idle: Vec<String> = txns
            .iter()
            .filter(|(_, r)| {
                matches!(
                    r.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                ) && now.saturating_sub(r.last_update_ms) >= expiration_ms
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut expired = 0;
        for id in idle {
            match self.append_state(&id, None) {
                Ok(()) => {
                    txns.remove(&id);
                    expired += 1;
                }
                Err(code) => {
                    tracing::error!(transactional_id = %id, error = ?code, "cannot expire a transactional id")
                }
            }
        }
        expired
    }

    /// Logs Prepare*, writes the markers, logs Complete*; `record` is updated to the result.
    fn write_markers_and_complete(
        &self,
        transactional_id: &str,
        record: &mut TxnRecord,
        commit: bool,
    ) -> Result<(), TxnError> {
        let now = now_ms();
        let (prepare, complete, kind) = if commit {
            (
                TxnState::PrepareCommit,
                TxnState::CompleteCommit,
                MarkerKind::Commit,
            )
        } else {
            (
                TxnState::PrepareAbort,
                TxnState::CompleteAbort,
                MarkerKind::Abort,
            )
        };
        if record.state != prepare {
            record.state = prepare;
            record.last_update_ms = now;
            self.persist(transactional_id, record)?;
        }
        for (topic, partition) in &record.partitions {
            let Some(p) = self.replicas.get(topic, *partition) else {
                // Deleted since: nothing left to mark.
                continue;
            };
            let written = p
                .append_marker(
                    record.producer_id,
                    record.producer_epoch,
                    COORDINATOR_EPOCH,
                    kind,
                    now,
                )
                .and_then(|_| p.sync_if_durable());
            if let Err(code) = written {
                // The transaction stays prepared; a restart (or the next attempt) finishes it.
                tracing::error!(transactional_id, topic, partition, error = ?code, "cannot write a transaction marker");
                return Err(ErrorCode::CoordinatorNotAvailable.into());
            }
            if topic == OFFSETS_TOPIC {
                self.groups
                    .complete_transaction(*partition, record.producer_id, commit);
            }
        }
        record.state = complete;
        record.partitions.clear();
        record.last_update_ms = now_ms();
        self.persist(transactional_id, record)?;
        Ok(())
    }

    /// Appends `record` as the newest state of `transactional_id`.
    fn persist(&self, transactional_id: &str, record: &TxnRecord) -> Result<(), ErrorCode> {
        self.append_state(transactional_id, Some(record))
    }

    /// Appends a state record, or a tombstone (`None`) that forgets the id.
    fn append_state(
        &self,
        transactional_id: &str,
        record: Option<&TxnRecord>,
    ) -> Result<(), ErrorCode> {
        let partition = self.partition_for(transactional_id);
        let Some(p) = self.replicas.get(TRANSACTION_STATE_TOPIC, partition) else {
            return Err(ErrorCode::CoordinatorNotAvailable);
        };
        let batch = encode_batch(&[(encode_key(transactional_id), record.map(encode_value))])
            .map_err(|e| {
                tracing::error!(error = %e, "cannot encode a transaction state record");
                ErrorCode::UnknownServerError
            })?;
        let header = RecordBatchHeader::parse(&batch).map_err(|_| ErrorCode::UnknownServerError)?;
        p.append_as_leader(&batch, &header, now_ms())
            .and_then(|_| p.sync_if_durable())
            .map_err(|code| {
                tracing::error!(transactional_id, error = ?code, "cannot append to {TRANSACTION_STATE_TOPIC}");
                ErrorCode::CoordinatorNotAvailable
            })
    }

    /// Counts by state and the age of the oldest open transaction, for the metrics.
    pub fn summary(&self) -> TxnSummary {
        let now = now_ms();
        let txns = self.lock();
        // Every state has a series (0 when empty), so dashboards and alerts find them.
        let mut by_state: std::collections::BTreeMap<&'static str, usize> =
            TxnState::ALL.iter().map(|s| (s.name(), 0)).collect();
        let mut oldest_open_ms = None;
        for r in txns.values() {
            *by_state.entry(r.state.name()).or_default() += 1;
            if r.state == TxnState::Ongoing {
                let age = (now - r.start_ms).max(0);
                oldest_open_ms = Some(oldest_open_ms.map_or(age, |o: i64| o.max(age)));
            }
        }
        TxnSummary {
            by_state: by_state.into_iter().collect(),
            oldest_open_ms,
        }
    }

    /// Logs a state directly, as a coordinator that stopped half-way would have left it.
    #[cfg(test)]
    pub(crate) fn persist_for_tests(&self, transactional_id: &str, record: &TxnRecord) {
        self.persist(transactional_id, record)
            .unwrap_or_else(|e| panic!("persist: {e:?}"));
    }

    /// Transactions for DescribeTransactions (the ids asked for) or ListTransactions (all).
    pub fn view(&self, ids: Option<&[String]>) -> Vec<TxnView> {
        let txns = self.lock();
        let view = |(id, record): (&String, &TxnRecord)| TxnView {
            transactional_id: id.clone(),
            record: record.clone(),
        };
        match ids {
            Some(ids) => ids
                .iter()
                .filter_map(|id| txns.get_key_value(id).map(view))
                .collect(),
            None => txns.iter().map(view).collect(),
        }
    }
}
