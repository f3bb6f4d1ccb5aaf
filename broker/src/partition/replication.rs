//! A partition's part in replication: taking the leader or follower role the metadata
//! image gives it, the follower's copy of its leader's batches and its truncation, and the
//! leader's bookkeeping of its followers' fetches (high watermark, ISR).

use std::sync::atomic::Ordering;
use std::time::Duration;

use strata_protocol::record_batch::{verify_crc, BatchIter};

use super::replica_set::{FetchEffect, Role};
use super::{transactions, AppendOrigin, Partition, ReadOutcome};
use crate::errors::ErrorCode;

impl Partition {
    pub fn role(&self) -> Role {
        self.replication().role
    }

    pub fn is_leader(&self) -> bool {
        self.replication().is_leader()
    }

    /// The ISR as this broker last learned it, and the partition epoch it came with.
    pub fn isr(&self) -> (Vec<i32>, i32) {
        let set = self.replication();
        (set.isr.clone(), set.partition_epoch)
    }

    /// Takes the leadership the image gives this broker. Returns true for a new leadership
    /// (a new epoch), false for a change of replicas or ISR under the same one.
    pub fn become_leader(
        &self,
        node_id: i32,
        leader_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        partition_epoch: i32,
        now_ms: i64,
    ) -> bool {
        let new_leadership = {
            let set = self.replication();
            !set.is_leader() || self.leader_epoch() != leader_epoch || set.node_id != node_id
        };
        let _ = self.with_local(|local| {
            self.restart_high_watermark(replicas, local.log.log_end_offset());
            {
                let mut set = self.replication();
                set.node_id = node_id;
                set.lead(
                    new_leadership,
                    replicas,
                    isr,
                    partition_epoch,
                    local.log.log_end_offset(),
                );
            }
            self.leader_epoch.store(leader_epoch, Ordering::Release);
            if new_leadership {
                self.leader_since_ms.store(now_ms, Ordering::Release);
            }
            let _ = self.publish_offsets(local);
            Ok(())
        });
        self.appended.notify_waiters();
        new_leadership
    }

    /// Follows `leader` from now on. Returns true when the leader or its epoch changed (the
    /// fetcher then checks for a divergent tail before fetching).
    pub fn become_follower(
        &self,
        node_id: i32,
        leader: i32,
        leader_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        partition_epoch: i32,
    ) -> bool {
        let _ = self.with_local(|local| {
            self.restart_high_watermark(replicas, local.log.log_end_offset());
            Ok(())
        });
        let changed = {
            let mut set = self.replication();
            let changed =
                set.role != (Role::Follower { leader }) || self.leader_epoch() != leader_epoch;
            set.node_id = node_id;
            set.follow(leader, replicas, isr, partition_epoch);
            changed
        };
        self.leader_epoch.store(leader_epoch, Ordering::Release);
        // Produce and fetch waiters re-check and find they no longer lead.
        self.appended.notify_waiters();
        changed
    }

    /// The first role a replicated partition takes after opening: its high watermark goes
    /// back from the log end to the checkpointed one (0 without one), as Kafka's does, so
    /// that a tail not every ISR member has stays invisible until they do.
    fn restart_high_watermark(&self, replicas: &[i32], log_end_offset: i64) {
        let first_role = self.replication().node_id == -1;
        if first_role && replicas.len() > 1 {
            let recovered = self.recovered_high_watermark.load(Ordering::Acquire).max(0);
            self.high_watermark
                .store(recovered.min(log_end_offset), Ordering::Release);
        }
    }

    /// A follower appends what its leader sent: whole batches, CRC-checked, kept as they
    /// are (offsets, epochs, producer fields), one append per run of batches of the same
    /// leader epoch (the epoch cache gains an entry where a run starts a new epoch).
    /// Returns the records appended.
    pub fn append_as_follower(&self, batches: &[u8], now_ms: i64) -> Result<u64, ErrorCode> {
        let mut records = 0u64;
        let mut run: Option<(
            usize,
            usize,
            strata_protocol::record_batch::RecordBatchHeader,
        )> = None;
        let mut iter = BatchIter::new(batches);
        for batch in iter.by_ref() {
            verify_crc(batch.bytes).map_err(|_| ErrorCode::CorruptMessage)?;
            let end = batch.position + batch.bytes.len();
            run = match run {
                Some((start, _, first))
                    if first.partition_leader_epoch == batch.header.partition_leader_epoch =>
                {
                    Some((start, end, first))
                }
                Some((start, stop, first)) => {
                    records += self.append_run(batches, start, stop, &first, now_ms)?;
                    Some((batch.position, end, batch.header))
                }
                None => Some((batch.position, end, batch.header)),
            };
        }
        if let Some((start, stop, first)) = run {
            records += self.append_run(batches, start, stop, &first, now_ms)?;
        }
        // A partial batch at the end of a fetch answer is normal (max_bytes cut it): the next
        // fetch starts at it. A header that does not parse is not.
        match iter.stop_reason() {
            None | Some(strata_protocol::record_batch::BatchError::Truncated { .. }) => Ok(records),
            Some(_) => Err(ErrorCode::CorruptMessage),
        }
    }

    fn append_run(
        &self,
        batches: &[u8],
        start: usize,
        stop: usize,
        first: &strata_protocol::record_batch::RecordBatchHeader,
        now_ms: i64,
    ) -> Result<u64, ErrorCode> {
        let run = batches.get(start..stop).ok_or(ErrorCode::CorruptMessage)?;
        Ok(self
            .append(run, first, now_ms, AppendOrigin::Replica)?
            .records)
    }

    /// A follower learned its leader's high watermark.
    pub fn set_leader_high_watermark(&self, high_watermark: i64) {
        let advanced = self
            .with_local(|local| {
                self.replication().leader_high_watermark = high_watermark;
                Ok(self.publish_offsets(local))
            })
            .unwrap_or(false);
        if advanced {
            self.appended.notify_waiters();
        }
    }

    /// Cuts the log back to `offset` (a follower's divergent tail) and rebuilds what was
    /// derived from the cut batches: producer state and open transactions.
    pub fn truncate_to(&self, offset: i64) -> Result<(), ErrorCode> {
        self.with_log_writer(|local| {
            if offset >= local.log.log_end_offset() {
                return Ok(());
            }
            tracing::info!(partition = %self.tp, from = local.log.log_end_offset(), to = offset,
                "truncating a divergent log tail");
            local
                .log
                .truncate_to(offset)
                .map_err(|e| self.log_error(&e))?;
            let (producers, txns) = transactions::rebuild_producer_state(&local.log);
            local.producers = producers;
            local.txns = txns;
            // The high watermark may not stay above the log.
            self.high_watermark
                .fetch_min(local.log.log_end_offset(), Ordering::AcqRel);
            let _ = self.publish_offsets(local);
            Ok(())
        })
    }

    /// Empties the log and starts it again at `offset`, the leader's log start: this
    /// follower's whole log lies below it (it was away while the leader's retention or
    /// DeleteRecords moved on), so none of it is in the leader's log any more.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), ErrorCode> {
        self.with_log_writer(|local| {
            tracing::info!(partition = %self.tp, log_end_offset = local.log.log_end_offset(),
                leader_log_start_offset = offset,
                "this replica's log lies wholly below its leader's log start: starting it over there");
            local
                .log
                .truncate_fully_and_start_at(offset)
                .map_err(|e| self.log_error(&e))?;
            let (producers, txns) = transactions::rebuild_producer_state(&local.log);
            local.producers = producers;
            local.txns = txns;
            self.high_watermark
                .store(local.log.log_end_offset(), Ordering::Release);
            let _ = self.publish_offsets(local);
            Ok(())
        })
    }

    /// A follower's log start follows its leader's (retention and DeleteRecords run on the
    /// leader; Kafka's followers raise theirs from every fetch answer), never past what the
    /// follower knows is committed.
    pub fn follow_leader_log_start(&self, leader_log_start_offset: i64) -> Result<(), ErrorCode> {
        let target = leader_log_start_offset.min(self.high_watermark());
        if target <= self.log_start_offset() {
            return Ok(());
        }
        self.delete_records_before(target).map(|_| ())
    }

    /// On a follower: how many offsets its log end is behind its leader's high watermark
    /// as of the last fetch answer (Kafka's replica MaxLag); None on a leader.
    pub fn follower_lag(&self) -> Option<i64> {
        let leader_high_watermark = {
            let set = self.replication();
            if set.is_leader() {
                return None;
            }
            set.leader_high_watermark
        };
        Some((leader_high_watermark - self.log_end_offset()).max(0))
    }

    /// On a leader: the in-sync followers that hold `offset` (KIP-392's candidates).
    pub fn followers_holding(&self, offset: i64) -> Vec<i32> {
        self.replication().followers_holding(offset)
    }

    /// Kafka's low watermark (what DeleteRecords reports and waits for): the smallest log
    /// start among this leader and its in-sync followers; -1 while one of them has not
    /// told it yet. A follower's own log start on a follower.
    pub fn low_watermark(&self) -> i64 {
        let own = self.log_start_offset();
        self.replication()
            .smallest_follower_log_start()
            .map_or(own, |f| f.min(own))
    }

    /// The newest leader epoch in this log's epoch cache (what a follower asks its leader
    /// about before fetching), if any batch was ever written.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.with_local(|local| Ok(local.log.leader_epochs().last().map(|(epoch, _)| *epoch)))
            .ok()
            .flatten()
    }

    /// The leader's side of a follower's fetch: its progress, the high watermark (waking
    /// acks=all producers and consumers when it moves), whether it may rejoin the ISR.
    pub fn record_follower_fetch(
        &self,
        follower: i32,
        fetch_offset: i64,
        follower_log_start: i64,
        now_ms: i64,
    ) -> FetchEffect {
        let result = self.with_local(|local| {
            let leader_end = local.log.log_end_offset();
            let hw = self.high_watermark();
            let effect = self.replication().record_fetch(
                follower,
                fetch_offset,
                follower_log_start,
                leader_end,
                hw,
                now_ms,
            );
            let advanced = effect.high_watermark_advanced && self.publish_offsets(local);
            Ok(FetchEffect {
                high_watermark_advanced: advanced,
                ..effect
            })
        });
        let effect = result.unwrap_or_default();
        if effect.high_watermark_advanced {
            self.appended.notify_waiters();
        }
        effect
    }

    /// Reads whole batches up to the log end, not the high watermark: what a follower
    /// copies, and what a new group coordinator loads.
    pub fn read_to_log_end(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome, ErrorCode> {
        self.with_local(|local| {
            let end = local.log.log_end_offset();
            let info = local
                .log
                .read(offset, max_bytes, end, true)
                .map_err(|e| self.log_error(&e))?;
            Ok(ReadOutcome {
                records: info.records,
                region: info.region,
                high_watermark: self.high_watermark(),
                last_stable_offset: self.last_stable_offset(),
                log_start_offset: local.log.log_start_offset(),
                log_end_offset: end,
                aborted: None,
            })
        })
    }

    /// On the leader: ISR members behind for longer than `max_lag_ms`.
    pub fn lagging_followers(&self, now_ms: i64, max_lag_ms: i64) -> Vec<i32> {
        let since = self.leader_since_ms.load(Ordering::Acquire);
        self.replication().lagging(now_ms, max_lag_ms, since)
    }

    /// An ISR change was proposed: no other until the image shows its outcome.
    pub fn set_isr_change_in_flight(&self, in_flight: bool) {
        self.replication().isr_change_in_flight = in_flight;
    }

    /// Waits until the high watermark reaches `offset` (acks=all): every in-sync replica has
    /// the records below it. REQUEST_TIMED_OUT after `timeout`, as Kafka's delayed produce;
    /// NOT_LEADER_OR_FOLLOWER if this broker stops leading meanwhile; and, as Kafka's,
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND when the high watermark got there only because the
    /// ISR shrank below `min_insync` (fewer copies than the producer was promised).
    pub async fn wait_replicated(
        &self,
        offset: i64,
        timeout: Duration,
        min_insync: usize,
    ) -> Result<(), ErrorCode> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.high_watermark() >= offset {
                if self.isr().0.len() < min_insync {
                    return Err(ErrorCode::NotEnoughReplicasAfterAppend);
                }
                return Ok(());
            }
            if !self.is_leader() {
                return Err(ErrorCode::NotLeaderOrFollower);
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(deadline) => return Err(ErrorCode::RequestTimedOut),
            }
        }
    }
}
