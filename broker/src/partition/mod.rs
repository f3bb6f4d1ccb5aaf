//! Replica state of one partition on this broker: its log, the idempotent-producer state,
//! leader epoch, log end offset and high watermark. One `Partition` per topic-partition,
//! shared as `Arc`. Two locks: `writer` serializes whatever changes the log (appends,
//! retention, cleaning, deletion); `local` guards its state and is held only briefly (to
//! assign offsets, publish an append, or slice the mapping for a read), never while an
//! append's records are copied into the file, so fetches do not wait for produces.
//! Lock order: `writer`, then `local`.

pub mod manager;

pub mod durable;
mod replica_set;
mod replication;
#[cfg(test)]
pub(crate) mod tests;
mod transactions;

pub use replica_set::{FetchEffect, Role};
pub use transactions::{Isolation, ProducerView};

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use strata_protocol::record_batch::{MarkerKind, RecordBatchHeader, RecordRules};
use strata_storage::{
    AppendStart, Log, LogConfig, LogError, RetentionWork, SegmentPlan, TimestampType,
    TopicPartition,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::errors::ErrorCode;
use crate::txn::partition_txns::{AbortedTxn, PartitionTxns};
use crate::txn::producer_state::{ProducerStateTable, SequenceCheck};

/// The log and the producer state move together: a sequence check and the append it
/// allows must be one atomic step; so do a transaction's records and its open state.
struct LocalReplica {
    log: Log,
    producers: ProducerStateTable,
    txns: PartitionTxns,
}

pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: Uuid,
    local: Mutex<Option<LocalReplica>>,
    /// Held by every change to the log, across an append's write (see the module docs).
    writer: Mutex<()>,
    leader_epoch: AtomicI32,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    high_watermark: AtomicI64,
    /// The first offset of the oldest open transaction, or the high watermark: what
    /// read_committed consumers may read up to.
    last_stable_offset: AtomicI64,
    /// Woken on every append (and on deletion) so that long-polling fetches re-check.
    appended: Notify,
    /// What produce checks and stores batches by, from the topic's config (read once a
    /// request, without the log's locks).
    produce_rules: RwLock<ProduceRules>,
    /// Durable mode (`flush.messages=1`) and its group-commit state.
    durable: durable::GroupCommit,
    /// Shared by every partition of the same log dir: set on the first I/O failure there,
    /// after which they all answer KAFKA_STORAGE_ERROR (Kafka's offline log dir).
    log_dir_offline: Arc<AtomicBool>,
    /// Leader or follower, and the leader's view of its followers (`replication`). Taken
    /// under `local` when offsets are published. Lock order: `writer`, `local`, this.
    replication: Mutex<replica_set::ReplicaSet>,
    /// When this broker last became the leader (ms), for the ISR's lag rule.
    leader_since_ms: AtomicI64,
    /// The high watermark checkpointed before the last stop (-1: none): where a replicated
    /// partition's starts again, not at its log end, whose tail the ISR may not all have.
    recovered_high_watermark: AtomicI64,
}

/// The part of a topic's config the produce path applies itself (the log applies the rest).
#[derive(Debug, Clone, Copy)]
struct ProduceRules {
    /// `cleanup.policy` includes compact: keyless records are refused, and the cleaner runs.
    compacted: bool,
    /// `message.timestamp.type=LogAppendTime`.
    log_append_time: bool,
    timestamp_before_max_ms: i64,
    timestamp_after_max_ms: i64,
    /// `compression.type` (codec, level); `None` for `producer`.
    compression: Option<(u8, i32)>,
}

impl ProduceRules {
    fn of(config: &LogConfig) -> Self {
        ProduceRules {
            compacted: config.cleanup_compact,
            log_append_time: config.message_timestamp_type == TimestampType::LogAppendTime,
            timestamp_before_max_ms: config.message_timestamp_before_max_ms,
            timestamp_after_max_ms: config.message_timestamp_after_max_ms,
            compression: config.compression,
        }
    }
}

/// Who wrote a batch, which decides how its producer fields are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppendOrigin {
    /// A producer: idempotence sequence checks.
    Client,
    /// A coordinator writing for a producer: only its epoch is checked.
    Coordinator,
    /// The transaction coordinator's marker ending a producer's transaction.
    Marker(MarkerKind),
    /// A follower copying its leader's batches: offsets, epochs and producer fields as they
    /// are, no checks (the leader made them).
    Replica,
}

/// The outcome of a leader append, as Produce reports it.
#[derive(Debug, Clone, Copy)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
    pub records: u64,
}

/// A fetch-side read: zero-copy record bytes plus the partition's offsets at read time.
#[derive(Debug, Clone)]
pub struct ReadOutcome {
    pub records: Bytes,
    /// Where `records` lie in their segment file, for sendfile.
    pub region: Option<strata_storage::FileRegion>,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// For read_committed reads: the aborted transactions with records in what was read.
    pub aborted: Option<Vec<AbortedTxn>>,
}

impl Partition {
    pub fn new(tp: TopicPartition, topic_id: Uuid, log: Log, leader_epoch: i32) -> Self {
        // Idempotence and open transactions survive restarts: rebuilt from the batches.
        let (producers, txns) = transactions::rebuild_producer_state(&log);
        let stable = txns.first_unstable_offset();
        let (lso, leo) = (log.log_start_offset(), log.log_end_offset());
        let produce_rules = RwLock::new(ProduceRules::of(log.config()));
        let durable = durable::GroupCommit::new(log.config().durable(), log.recovery_point());
        Self {
            tp,
            topic_id,
            local: Mutex::new(Some(LocalReplica {
                log,
                producers,
                txns,
            })),
            writer: Mutex::new(()),
            leader_epoch: AtomicI32::new(leader_epoch),
            log_start_offset: AtomicI64::new(lso),
            log_end_offset: AtomicI64::new(leo),
            // Single replica: everything in the log is replicated to the whole ISR.
            high_watermark: AtomicI64::new(leo),
            last_stable_offset: AtomicI64::new(stable.map_or(leo, |first| first.min(leo))),
            appended: Notify::new(),
            produce_rules,
            durable,
            log_dir_offline: Arc::new(AtomicBool::new(false)),
            replication: Mutex::new(replica_set::ReplicaSet::alone(-1)),
            leader_since_ms: AtomicI64::new(0),
            recovered_high_watermark: AtomicI64::new(-1),
        }
    }

    /// The high watermark checkpointed before the last stop (see `replication`).
    pub fn set_recovered_high_watermark(&self, high_watermark: i64) {
        self.recovered_high_watermark
            .store(high_watermark, Ordering::Release);
    }

    /// Ties the partition to its log dir's offline flag (see [`manager::ReplicaManager`]).
    pub fn in_log_dir(mut self, offline: Arc<AtomicBool>) -> Self {
        self.log_dir_offline = offline;
        self
    }

    /// The partition's log dir failed: it answers KAFKA_STORAGE_ERROR until restart.
    pub fn log_dir_offline(&self) -> bool {
        self.log_dir_offline.load(Ordering::Acquire)
    }

    /// Maps a log error to its Kafka code; an I/O failure takes the whole log dir offline.
    fn log_error(&self, e: &LogError) -> ErrorCode {
        let code = crate::errors::from_code(e.kafka_error_code());
        if e.is_log_dir_failure() {
            if !self.log_dir_offline.swap(true, Ordering::AcqRel) {
                tracing::error!(partition = %self.tp, error = %e,
                    "log dir failed: every partition in it answers KAFKA_STORAGE_ERROR until restart");
            }
        } else if code != ErrorCode::OffsetOutOfRange {
            tracing::warn!(partition = %self.tp, error = %e, "log operation failed");
        }
        code
    }

    /// Applies changed topic configs to the log (future rolls, retention, cleaning, flushing).
    pub fn set_log_config(&self, config: LogConfig) {
        *self
            .produce_rules
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = ProduceRules::of(&config);
        self.durable.set_enabled(config.durable());
        let _ = self.with_log_writer(|local| {
            local.log.set_config(config);
            Ok(())
        });
    }

    /// What produce checks the records of a batch against: keys on compacted topics and the
    /// CreateTime window, from the topic's current config.
    pub fn record_rules(&self, now_ms: i64) -> RecordRules {
        let rules = self.produce_rules();
        RecordRules {
            now_ms,
            log_append_time: rules.log_append_time,
            timestamp_before_max_ms: rules.timestamp_before_max_ms,
            timestamp_after_max_ms: rules.timestamp_after_max_ms,
            require_keys: rules.compacted,
        }
    }

    fn produce_rules(&self) -> ProduceRules {
        // A poisoned lock still holds a whole (Copy) value: nothing was left half-written.
        *self
            .produce_rules
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The codec and level a batch compressed with `codec` must be stored with instead, when
    /// the topic's `compression.type` names another one.
    pub fn recompression(&self, codec: u8) -> Option<(u8, i32)> {
        self.produce_rules()
            .compression
            .filter(|&(target, _)| target != codec)
    }

    /// One compaction pass if one is due: plan and install under the lock (brief), the
    /// rewrite without it, so producers keep appending meanwhile.
    pub fn clean(&self, now_ms: i64, dedupe_buffer_size: u64) {
        if !self.produce_rules().compacted {
            return;
        }
        let Ok(Some(mut task)) = self.with_local(|local| Ok(local.log.plan_compaction(now_ms)))
        else {
            return;
        };
        task.set_dedupe_buffer_size(dedupe_buffer_size);
        let cleaned = match task.run(now_ms) {
            Ok(cleaned) => cleaned,
            Err(e) => {
                tracing::error!(partition = %self.tp, error = %e, "log cleaning failed; will retry");
                return;
            }
        };
        // The renames and reloads run without the state lock (fetches go on); only the swap
        // takes it. `writer` keeps truncation and retention out meanwhile.
        let _writing = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let install = self.with_local(|local| {
            local.log.begin_install(cleaned).map_err(|e| {
                tracing::error!(partition = %self.tp, error = %e, "installing cleaned segments refused");
                ErrorCode::KafkaStorageError
            })
        });
        let Ok(install) = install else {
            return;
        };
        let installed = install.run();
        let _ = self.with_local(|local| {
            match local.log.finish_install(installed) {
                Ok(stats) => tracing::info!(partition = %self.tp, ?stats, "log cleaned"),
                Err(e) => tracing::error!(partition = %self.tp, error = %e, "installing cleaned segments failed"),
            }
            let _ = self.publish_offsets(local);
            Ok(())
        });
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }
    pub fn last_stable_offset(&self) -> i64 {
        self.last_stable_offset.load(Ordering::Acquire)
    }

    /// Kafka's check of a client's `current_leader_epoch` (-1 = not sent): newer than ours is
    /// UNKNOWN_LEADER_EPOCH (we are behind), older is FENCED_LEADER_EPOCH (the client is).
    /// Returns our epoch.
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<i32, ErrorCode> {
        let epoch = self.leader_epoch();
        if current_leader_epoch < 0 || current_leader_epoch == epoch {
            Ok(epoch)
        } else if current_leader_epoch > epoch {
            Err(ErrorCode::UnknownLeaderEpoch)
        } else {
            Err(ErrorCode::FencedLeaderEpoch)
        }
    }

    /// OffsetForLeaderEpoch from the log's leader-epoch cache: the largest epoch <= `epoch`
    /// and where the next one began (the log end for the current epoch), (-1, -1) if unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Result<(i32, i64), ErrorCode> {
        self.with_local(|local| Ok(local.log.end_offset_for_epoch(epoch)))
    }

    /// A future that completes on the next append; create it BEFORE checking for data.
    pub fn appended(&self) -> &Notify {
        &self.appended
    }

    fn with_local<T>(
        &self,
        f: impl FnOnce(&mut LocalReplica) -> Result<T, ErrorCode>,
    ) -> Result<T, ErrorCode> {
        if self.log_dir_offline() {
            return Err(ErrorCode::KafkaStorageError);
        }
        let mut guard = self.local.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(local) => f(local),
            None => Err(ErrorCode::UnknownTopicOrPartition),
        }
    }

    /// `with_local` for changes to the log: holds `writer` too, so no append is in flight.
    fn with_log_writer<T>(
        &self,
        f: impl FnOnce(&mut LocalReplica) -> Result<T, ErrorCode>,
    ) -> Result<T, ErrorCode> {
        let _writing = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.with_local(f)
    }

    /// Publishes the log's offsets; returns whether the high watermark moved up.
    fn publish_offsets(&self, local: &mut LocalReplica) -> bool {
        let log = &local.log;
        let leo = log.log_end_offset();
        let before = self.high_watermark();
        // Never backwards on the leader (a follower not heard from yet holds it, it does not
        // lower it); never above the log (a follower's truncation may lower it).
        let hw = self.replication().high_watermark(leo).max(before).min(leo);
        local.txns.forget_before(log.log_start_offset());
        self.log_start_offset
            .store(log.log_start_offset(), Ordering::Release);
        self.log_end_offset.store(leo, Ordering::Release);
        self.high_watermark.store(hw, Ordering::Release);
        let stable = local.txns.first_unstable_offset().map_or(hw, |f| f.min(hw));
        self.last_stable_offset.store(stable, Ordering::Release);
        hw > before
    }

    fn replication(&self) -> std::sync::MutexGuard<'_, replica_set::ReplicaSet> {
        self.replication.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one validated batch as the leader. An idempotent batch is checked against the
    /// producer state first; a retried batch returns its original offsets and is not written.
    pub fn append_as_leader(
        &self,
        batch: &[u8],
        header: &RecordBatchHeader,
        now_ms: i64,
    ) -> Result<AppendOutcome, ErrorCode> {
        self.append(batch, header, now_ms, AppendOrigin::Client)
    }

    /// Appends a batch a coordinator wrote for a producer (TxnOffsetCommit's offsets): its
    /// epoch may not be older than the producer's, and its sequence is not checked (Kafka's
    /// `AppendOrigin.COORDINATOR`).
    pub fn append_as_coordinator(
        &self,
        batch: &[u8],
        header: &RecordBatchHeader,
        now_ms: i64,
    ) -> Result<AppendOutcome, ErrorCode> {
        // Only the leader writes; a follower's log takes its leader's batches only.
        if !self.is_leader() {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        self.append(batch, header, now_ms, AppendOrigin::Coordinator)
    }

    fn append(
        &self,
        batch: &[u8],
        header: &RecordBatchHeader,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<AppendOutcome, ErrorCode> {
        let epoch = self.leader_epoch();
        let _writing = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        // Under `local`: the sequence check, offsets and room. The records are copied into
        // the file without it (readers go on), then published under it again; so is a roll's
        // file work.
        let mut pending = loop {
            let step = self.with_local(|local| {
                if origin == AppendOrigin::Replica {
                    return local
                        .log
                        .start_replica_append(batch, header.partition_leader_epoch, now_ms)
                        .map(ControlFlow::Continue)
                        .map_err(|e| self.log_error(&e));
                }
                if origin != AppendOrigin::Client && header.has_producer_id() {
                    local
                        .producers
                        .check_marker(header.producer_id, header.producer_epoch)
                        .map_err(|e| crate::errors::from_code(e.kafka_error_code()))?;
                } else if header.has_producer_id() {
                    match local.producers.check(header) {
                        Ok(SequenceCheck::Append) => {}
                        Ok(SequenceCheck::Duplicate(dup)) => {
                            return Ok(ControlFlow::Break(AppendOutcome {
                                base_offset: dup.first_offset,
                                last_offset: dup.last_offset,
                                log_append_time: -1,
                                log_start_offset: local.log.log_start_offset(),
                                records: 0,
                            }))
                        }
                        Err(e) => return Err(crate::errors::from_code(e.kafka_error_code())),
                    }
                }
                local
                    .log
                    .start_append(batch, epoch, now_ms)
                    .map(ControlFlow::Continue)
                    .map_err(|e| self.log_error(&e))
            })?;
            match step {
                ControlFlow::Continue(AppendStart::Ready(pending)) => break pending,
                // A retried idempotent batch: its original offsets, nothing written.
                ControlFlow::Break(duplicate) => return Ok(duplicate),
                // Then the sequence check and the room again, on the new segment.
                ControlFlow::Continue(AppendStart::RollFirst(plan)) => self.roll(plan)?,
            }
        };
        pending.write();
        // Not `with_local`: the append must finish even if the log dir went offline meanwhile
        // (its own failed write is reported by `finish_append`).
        let outcome = {
            let mut guard = self.local.lock().unwrap_or_else(|p| p.into_inner());
            let local = guard.as_mut().ok_or(ErrorCode::UnknownTopicOrPartition)?;
            let info = local
                .log
                .finish_append(pending)
                .map_err(|e| self.log_error(&e))?;
            let pid = header.producer_id;
            match origin {
                AppendOrigin::Marker(kind) => {
                    local
                        .producers
                        .record_marker(pid, header.producer_epoch, now_ms);
                    let end = local.log.log_end_offset();
                    local.txns.on_marker(pid, kind, info.first_offset, end);
                }
                AppendOrigin::Replica => {
                    // A run of the leader's batches: each one's producer and transaction.
                    for copied in strata_protocol::record_batch::BatchIter::new(batch) {
                        transactions::replay_batch(
                            &mut local.producers,
                            &mut local.txns,
                            &copied.header,
                            || {
                                strata_protocol::record_batch::read_marker(copied.bytes)
                                    .map(|m| m.kind)
                            },
                            now_ms,
                            &self.tp,
                        );
                    }
                }
                _ if !header.has_producer_id() => {}
                AppendOrigin::Client => {
                    local.producers.record(
                        header,
                        info.first_offset,
                        info.last_offset,
                        info.max_timestamp,
                    );
                    local.producers.seen(pid, now_ms);
                }
                AppendOrigin::Coordinator => {
                    local
                        .producers
                        .record_marker(pid, header.producer_epoch, now_ms);
                }
            }
            if origin != AppendOrigin::Replica
                && header.is_transactional()
                && !header.is_control()
                && header.has_producer_id()
            {
                local.txns.on_data(pid, info.first_offset);
            }
            let _ = self.publish_offsets(local);
            AppendOutcome {
                base_offset: info.first_offset,
                last_offset: info.last_offset,
                log_append_time: info.log_append_time.unwrap_or(-1),
                log_start_offset: local.log.log_start_offset(),
                records: info.records,
            }
        };
        if outcome.records > 0 {
            self.appended.notify_waiters();
        }
        Ok(outcome)
    }

    /// A planned roll: the next segment's files are created, and the old segment's trimmed,
    /// without `local` (fetches go on). The caller holds `writer`, as `install_segment` needs.
    fn roll(&self, plan: SegmentPlan) -> Result<(), ErrorCode> {
        let created = plan.create();
        let seal = self.with_local(|local| {
            local
                .log
                .install_segment(created)
                .map_err(|e| self.log_error(&e))
        })?;
        seal.run().map_err(|e| self.log_error(&e))
    }

    /// Reads whole batches from `offset` up to the high watermark.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadOutcome, ErrorCode> {
        self.read_isolated(offset, max_bytes, min_one_batch, Isolation::ReadUncommitted)
    }

    /// Reads whole batches from `offset` up to the high watermark, or for read_committed up
    /// to the last stable offset, with the aborted transactions in what was read.
    pub fn read_isolated(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        isolation: Isolation,
    ) -> Result<ReadOutcome, ErrorCode> {
        self.with_local(|local| {
            let hw = self.high_watermark();
            let lso = self.last_stable_offset();
            let upper = match isolation {
                Isolation::ReadUncommitted => hw,
                Isolation::ReadCommitted => lso,
            };
            let info = local
                .log
                .read(offset, max_bytes, upper, min_one_batch)
                .map_err(|e| self.log_error(&e))?;
            let aborted = match isolation {
                Isolation::ReadUncommitted => None,
                Isolation::ReadCommitted if info.records.is_empty() => Some(Vec::new()),
                Isolation::ReadCommitted => {
                    Some(local.txns.aborted_between(offset, info.next_offset))
                }
            };
            Ok(ReadOutcome {
                records: info.records,
                region: info.region,
                high_watermark: hw,
                last_stable_offset: lso,
                log_start_offset: local.log.log_start_offset(),
                log_end_offset: local.log.log_end_offset(),
                aborted,
            })
        })
    }

    /// The first batch whose max timestamp is at or after `timestamp` (from the time index),
    /// with its bytes so the caller can find the exact record.
    pub fn batch_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, Bytes)>, ErrorCode> {
        self.with_local(|local| {
            let Some((offset, _)) = local.log.offset_for_timestamp(timestamp) else {
                return Ok(None);
            };
            let hw = self.high_watermark();
            let info = local
                .log
                .read(offset, 1, hw, true)
                .map_err(|e| self.log_error(&e))?;
            Ok(Some((offset, info.records)))
        })
    }

    /// Offset and bytes of the batch holding the largest timestamp (ListOffsets MAX_TIMESTAMP).
    pub fn batch_with_max_timestamp(&self) -> Result<Option<(i64, Bytes)>, ErrorCode> {
        self.with_local(|local| {
            let Some((offset, _)) = local.log.max_timestamp() else {
                return Ok(None);
            };
            let hw = self.high_watermark();
            let info = local
                .log
                .read(offset, 1, hw, true)
                .map_err(|e| self.log_error(&e))?;
            Ok(Some((offset, info.records)))
        })
    }

    /// DeleteRecords: the log start offset moves under the state lock; the dropped segments'
    /// renames and the leader-epoch checkpoint's fsyncs run without it (fetches go on), and
    /// so does the roll that deleting every record needs first.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, ErrorCode> {
        let _writing = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let roll = self.with_local(|local| {
            if offset > self.high_watermark() {
                return Err(ErrorCode::OffsetOutOfRange);
            }
            local
                .log
                .delete_records_roll(offset)
                .map_err(|e| self.log_error(&e))
        })?;
        if let Some(plan) = roll {
            self.roll(plan)?;
        }
        let work = self.with_local(|local| {
            if offset > self.high_watermark() {
                return Err(ErrorCode::OffsetOutOfRange);
            }
            let work = local
                .log
                .begin_delete_records(offset)
                .map_err(|e| self.log_error(&e))?;
            let _ = self.publish_offsets(local);
            Ok(work)
        })?;
        self.finish_retention(work)
    }

    /// Runs a retention step's file work without the state lock and records its outcome;
    /// returns the log start offset. The caller holds `writer`.
    fn finish_retention(&self, work: RetentionWork) -> Result<i64, ErrorCode> {
        let ran = work.run();
        self.with_local(|local| {
            local
                .log
                .finish_retention(work, ran)
                .map_err(|e| self.log_error(&e))?;
            Ok(local.log.log_start_offset())
        })
    }

    pub fn size_bytes(&self) -> u64 {
        self.with_local(|local| Ok(local.log.size_bytes()))
            .unwrap_or(0)
    }

    /// The log cleaner's first dirty offset, for compacted logs only.
    pub fn cleaner_offset(&self) -> Option<i64> {
        if !self.produce_rules().compacted {
            return None;
        }
        self.with_local(|local| Ok(local.log.first_dirty_offset()))
            .ok()
    }

    pub fn recovery_point(&self) -> Option<i64> {
        self.with_local(|local| Ok(local.log.recovery_point())).ok()
    }

    /// Background maintenance: flush policy, retention, and removing the `.deleted` files of
    /// segments whose `file.delete.delay.ms` passed (unlinked after the log lock is released).
    pub fn maintain(&self, now_ms: i64, retention_due: bool) {
        // `flush.messages` / `flush.ms`: the fsync runs without the partition's locks, so
        // produce and fetch go on while it waits for the disk (failures are logged by
        // `log_error` and close the log for writes).
        let flush_due = self.with_local(|local| Ok(local.log.claim_due_flush(now_ms)));
        if flush_due == Ok(true) {
            let _ = self.flush_without_locks();
        }
        if retention_due {
            // Segments leave the log under the state lock; their renames and the leader-epoch
            // checkpoint's fsyncs run without it. Failures are logged by `log_error`.
            let _writing = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let work = self.with_local(|local| {
                let work = local
                    .log
                    .begin_retention(now_ms)
                    .map_err(|e| self.log_error(&e));
                let _ = self.publish_offsets(local);
                work
            });
            if let Ok(work) = work {
                let _ = self.finish_retention(work);
            }
        }
        let due = self.with_local(|local| Ok(local.log.take_due_deletions(now_ms)));
        if let Ok(paths) = due {
            if let Err(e) = strata_storage::remove_deleted_files(&paths) {
                tracing::error!(partition = %self.tp, error = %e, "removing deleted segments failed");
            }
        }
    }

    /// Flushes what is appended so far: the unflushed segments' handles are taken under the
    /// state lock, synced without it, and the recovery point advanced under it again.
    /// Returns the offset below which everything is on disk.
    fn flush_without_locks(&self) -> Result<i64, ErrorCode> {
        let pending =
            self.with_local(|local| local.log.begin_flush().map_err(|e| self.log_error(&e)))?;
        let synced = pending.sync();
        self.with_local(|local| {
            local
                .log
                .finish_flush(pending, synced)
                .map_err(|e| self.log_error(&e))
        })
    }

    pub fn flush(&self) -> Result<(), ErrorCode> {
        self.with_local(|local| local.log.flush().map_err(|e| self.log_error(&e)))
    }

    /// Closes the log (flush + trim); the partition answers UNKNOWN_TOPIC_OR_PARTITION after.
    pub fn close(&self) {
        let _writing = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let taken = self.local.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(local) = taken {
            if let Err(e) = local.log.close() {
                tracing::error!(partition = %self.tp, error = %e, "closing log failed");
            }
        }
        self.appended.notify_waiters();
    }

    /// Removes the partition's data for good (topic deletion).
    pub fn delete(&self) {
        let _writing = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let taken = self.local.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(local) = taken {
            if let Err(e) = local.log.delete() {
                tracing::error!(partition = %self.tp, error = %e, "deleting log failed");
            }
        }
        self.appended.notify_waiters();
    }
}
