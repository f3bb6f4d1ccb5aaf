//! A partition's side of transactions: markers appended for the coordinator, and the
//! producer and transaction state rebuilt from the log when it opens.

use strata_protocol::record_batch::{encode_marker, read_marker, MarkerKind, RecordBatchHeader};
use strata_storage::Log;

use super::{AppendOutcome, Partition};
use crate::errors::ErrorCode;
use crate::txn::partition_txns::PartitionTxns;
use crate::txn::producer_state::ProducerStateTable;

/// One producer's state in a partition, as DescribeProducers reports it.
#[derive(Debug, Clone, Copy)]
pub struct ProducerView {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// The first offset of its open transaction here.
    pub open_transaction_from: Option<i64>,
}

/// Fetch's and ListOffsets' `isolation_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadUncommitted,
    ReadCommitted,
}

impl Isolation {
    /// The wire value: 1 is read_committed; anything else reads uncommitted, as Kafka does.
    pub fn from_wire(level: i8) -> Self {
        if level == 1 {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        }
    }
}

impl Partition {
    /// Appends the marker that ends `producer_id`'s transaction here (commit or abort). The
    /// marker's epoch may fence the producer (a newer epoch than its batches'), never go back.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        kind: MarkerKind,
        now_ms: i64,
    ) -> Result<AppendOutcome, ErrorCode> {
        if !self.is_leader() {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        let batch = encode_marker(producer_id, producer_epoch, coordinator_epoch, kind, now_ms);
        let header = RecordBatchHeader::parse(&batch).map_err(|_| ErrorCode::UnknownServerError)?;
        self.append(&batch, &header, now_ms, super::AppendOrigin::Marker(kind))
    }

    /// In durable mode (`flush.messages=1`), returns once everything appended so far is on
    /// disk, as a durable produce's acknowledgement does; else at once. The coordinator's
    /// markers and state records take this path, so a durable topic's commit is durable too.
    pub fn sync_if_durable(&self) -> Result<(), ErrorCode> {
        if self.is_durable() {
            self.flush_without_locks().map(|_| ())
        } else {
            Ok(())
        }
    }

    /// `producer.id.expiration.ms`: forgets producers idle that long, but never one with an
    /// open transaction here. Returns how many were forgotten.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.with_local(|local| {
            let txns = &local.txns;
            Ok(local
                .producers
                .expire(now_ms, expiration_ms, |pid| txns.is_open(pid)))
        })
        .unwrap_or(0)
    }

    /// Every producer this partition keeps state for (DescribeProducers).
    pub fn producers(&self) -> Result<Vec<ProducerView>, ErrorCode> {
        self.with_local(|local| {
            let mut all: Vec<ProducerView> = local
                .producers
                .iter()
                .map(|(producer_id, entry)| {
                    let last = entry.batches.back();
                    ProducerView {
                        producer_id,
                        epoch: entry.epoch,
                        last_sequence: last.map_or(-1, |b| b.last_seq),
                        last_timestamp: last.map_or(-1, |b| b.timestamp),
                        open_transaction_from: local.txns.open_from(producer_id),
                    }
                })
                .collect();
            all.sort_by_key(|p| p.producer_id);
            Ok(all)
        })
    }

    /// The producers with an open transaction here, with their current epochs.
    pub fn open_transactions(&self) -> Vec<(i64, i16)> {
        self.with_local(|local| {
            Ok(local
                .txns
                .open_producers()
                .map(|pid| (pid, local.producers.entry(pid).map_or(0, |e| e.epoch)))
                .collect())
        })
        .unwrap_or_default()
    }
}

/// Producer state (idempotence) and transaction state from every batch in the log: data
/// batches record their sequences and open transactions, markers close them. A marker whose
/// record cannot be read is logged and treated as an abort (its records stay hidden from
/// read_committed consumers rather than appearing). Every producer found counts as seen
/// now: a restart gives each a full `producer.id.expiration.ms`.
pub(super) fn rebuild_producer_state(log: &Log) -> (ProducerStateTable, PartitionTxns) {
    let opened_at = crate::partition::manager::now_ms();
    let mut producers = ProducerStateTable::default();
    let mut txns = PartitionTxns::default();
    let start = log.log_start_offset();
    for header in log.batch_headers(start) {
        replay_batch(
            &mut producers,
            &mut txns,
            &header,
            || read_batch_marker(log, &header),
            opened_at,
            log.topic_partition(),
        );
    }
    (producers, txns)
}

/// One stored batch's effect on producer and transaction state: data batches record their
/// sequences and open transactions, markers (read by `marker` when needed) close them. For
/// the log read back at start-up, and for a follower's copy of its leader's batches.
pub(super) fn replay_batch(
    producers: &mut ProducerStateTable,
    txns: &mut PartitionTxns,
    header: &RecordBatchHeader,
    marker: impl FnOnce() -> Option<MarkerKind>,
    now_ms: i64,
    partition: &strata_storage::TopicPartition,
) {
    if !header.has_producer_id() {
        return;
    }
    if header.is_control() {
        let kind = marker().unwrap_or_else(|| {
            tracing::error!(%partition, offset = header.base_offset,
                "unreadable transaction marker; treating it as an abort");
            MarkerKind::Abort
        });
        producers.record_marker(header.producer_id, header.producer_epoch, now_ms);
        txns.on_marker(
            header.producer_id,
            kind,
            header.base_offset,
            header.last_offset() + 1,
        );
        return;
    }
    producers.record(
        header,
        header.base_offset,
        header.last_offset(),
        header.max_timestamp,
    );
    producers.seen(header.producer_id, now_ms);
    if header.is_transactional() {
        txns.on_data(header.producer_id, header.base_offset);
    }
}

fn read_batch_marker(log: &Log, header: &RecordBatchHeader) -> Option<MarkerKind> {
    let read = log
        .read(header.base_offset, header.total_size(), i64::MAX, true)
        .ok()?;
    read_marker(&read.records).map(|m| m.kind)
}
