//! Offsets committed inside a transaction (TxnOffsetCommit, KIP-98): written to
//! `__consumer_offsets` as a transactional batch of the producer, held aside until the
//! transaction coordinator's marker for that producer reaches the group's partition, then
//! applied (commit) or dropped (abort). While held, OffsetFetch with `require_stable`
//! answers UNSTABLE_OFFSET_COMMIT for them, so a consumer taking over the partitions waits
//! for the transaction's outcome instead of reading an offset it is about to replace.

use std::collections::HashMap;
use std::sync::PoisonError;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use strata_protocol::kafka_protocol;
use tracing::warn;

use super::codes;
use super::coordinator::{lock, GroupCoordinator};
use super::schema::{OffsetCommitValue, OffsetsKey};
use super::state::{ClassicGroup, CommittedOffset, GroupState};
use super::OffsetsRecord;

/// One offset a transaction committed, not yet decided.
#[derive(Debug, Clone)]
pub(crate) struct PendingTxnOffset {
    group_id: String,
    topic: String,
    partition: i32,
    offset: CommittedOffset,
}

/// Pending offsets by (`__consumer_offsets` partition, producer id).
pub(crate) type PendingTxnOffsets = HashMap<(i32, i64), Vec<PendingTxnOffset>>;

impl GroupCoordinator {
    /// TxnOffsetCommit: checks the member as OffsetCommit does (an unknown member with
    /// generation -1 is an old client and accepted), writes the offsets as the producer's
    /// transactional batch, and holds them until the transaction ends.
    pub async fn txn_offset_commit(
        &self,
        req: &TxnOffsetCommitRequest,
        version: i16,
    ) -> TxnOffsetCommitResponse {
        let group_id = req.group_id.0.to_string();
        let outcome = self.txn_commit_inner(req, version, &group_id);
        let errors: Vec<Vec<i16>> = match outcome {
            Err(e) => req
                .topics
                .iter()
                .map(|t| vec![e; t.partitions.len()])
                .collect(),
            Ok((errors, None)) => errors,
            Ok((mut errors, Some((partition, pending, fut)))) => {
                match fut.await {
                    Ok(()) => {
                        let mut all = self
                            .pending_txn_offsets
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        all.entry((partition, req.producer_id.0))
                            .or_default()
                            .extend(pending);
                    }
                    Err(e) => {
                        for slot in errors.iter_mut().flatten() {
                            if *slot == codes::NONE {
                                *slot = e;
                            }
                        }
                    }
                }
                errors
            }
        };
        let topics = req
            .topics
            .iter()
            .zip(errors)
            .map(|(t, errs)| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .zip(errs)
                            .map(|(p, e)| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(e)
                            })
                            .collect(),
                    )
            })
            .collect();
        TxnOffsetCommitResponse::default().with_topics(topics)
    }

    #[allow(clippy::type_complexity)]
    fn txn_commit_inner(
        &self,
        req: &TxnOffsetCommitRequest,
        version: i16,
        group_id: &str,
    ) -> Result<
        (
            Vec<Vec<i16>>,
            Option<(
                i32,
                Vec<PendingTxnOffset>,
                futures::future::BoxFuture<'static, Result<(), i16>>,
            )>,
        ),
        i16,
    > {
        let partition = self.check_loaded(group_id)?;
        let handle = self.get_or_create_group(group_id, partition);
        let g = lock(&handle);
        validate_txn_commit(&g, req)?;
        let now_ms = self.clock.now_ms();
        let mut errors = Vec::with_capacity(req.topics.len());
        let mut records: Vec<OffsetsRecord> = Vec::new();
        let mut pending = Vec::new();
        for t in &req.topics {
            let topic = t.name.0.as_str();
            let mut topic_errors = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                // The committed leader epoch exists from v2.
                let epoch = if version >= 2 {
                    p.committed_leader_epoch
                } else {
                    -1
                };
                let checked = self.checked_offset(
                    topic,
                    p.partition_index,
                    p.committed_offset,
                    epoch,
                    p.committed_metadata.as_ref(),
                    now_ms,
                );
                let error = match checked {
                    Ok(offset) => {
                        records.push(GroupCoordinator::offset_record(
                            group_id,
                            topic,
                            p.partition_index,
                            Some(&offset),
                        ));
                        pending.push(PendingTxnOffset {
                            group_id: group_id.to_string(),
                            topic: topic.to_string(),
                            partition: p.partition_index,
                            offset,
                        });
                        codes::NONE
                    }
                    Err(e) => e,
                };
                topic_errors.push(error);
            }
            errors.push(topic_errors);
        }
        drop(g);
        if records.is_empty() {
            return Ok((errors, None));
        }
        let fut = self.log.append_transactional(
            partition,
            req.producer_id.0,
            req.producer_epoch,
            records,
        );
        Ok((errors, Some((partition, pending, fut))))
    }

    /// The transaction coordinator wrote `producer_id`'s marker to `partition` of
    /// `__consumer_offsets`: its held offsets there take effect (commit) or are dropped.
    pub fn complete_transaction(&self, partition: i32, producer_id: i64, commit: bool) {
        let taken = self
            .pending_txn_offsets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(partition, producer_id));
        let Some(offsets) = taken else {
            return;
        };
        if !commit {
            return;
        }
        for o in offsets {
            let handle = self.get_or_create_group(&o.group_id, partition);
            let mut g = lock(&handle);
            if g.state != GroupState::Dead {
                let _ = g.offsets.insert((o.topic, o.partition), o.offset);
            }
        }
    }

    /// Whether a transaction holds an undecided offset of `group_id` for the partition.
    pub(crate) fn has_pending_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let offsets_partition = self.partition_for(group_id);
        let all = self
            .pending_txn_offsets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.iter()
            .filter(|((p, _), _)| *p == offsets_partition)
            .flat_map(|(_, list)| list)
            .any(|o| o.group_id == group_id && o.topic == topic && o.partition == partition)
    }

    /// On load: the offsets of transactions still open in the partition's log.
    pub(super) fn hold_open_transactions(&self, partition: i32) -> Result<(), i16> {
        let open = self.log.read_open_transactions(partition)?;
        let mut held: PendingTxnOffsets = HashMap::new();
        for (producer_id, (key, value)) in open {
            let Ok(Some(OffsetsKey::OffsetCommit {
                group,
                topic,
                partition: p,
            })) = OffsetsKey::decode(&key)
            else {
                continue;
            };
            let Some(Ok(v)) = value.as_ref().map(OffsetCommitValue::decode) else {
                warn!(
                    partition,
                    group, "skipping an undecodable transactional offset commit"
                );
                continue;
            };
            held.entry((partition, producer_id))
                .or_default()
                .push(PendingTxnOffset {
                    group_id: group,
                    topic,
                    partition: p,
                    offset: CommittedOffset {
                        offset: v.offset,
                        leader_epoch: v.leader_epoch,
                        metadata: v.metadata,
                        commit_timestamp: v.commit_timestamp,
                    },
                });
        }
        let mut all = self
            .pending_txn_offsets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.retain(|(p, _), _| *p != partition);
        all.extend(held);
        Ok(())
    }
}

/// Kafka's checks of a transactional commit: an old client (no member, generation -1) is
/// accepted; otherwise the member and generation must be current.
fn validate_txn_commit(g: &ClassicGroup, req: &TxnOffsetCommitRequest) -> Result<(), i16> {
    let member_id = req.member_id.as_str();
    if req.generation_id < 0 && member_id.is_empty() {
        return Ok(());
    }
    if g.state == GroupState::Dead {
        return Err(codes::coordinator_not_available());
    }
    if let Some(iid) = &req.group_instance_id {
        if g.static_members
            .get(iid.as_str())
            .is_some_and(|id| id != member_id)
        {
            return Err(codes::fenced_instance_id());
        }
    }
    if !g.members.contains_key(member_id) {
        return Err(codes::unknown_member_id());
    }
    if req.generation_id != g.generation {
        return Err(codes::illegal_generation());
    }
    Ok(())
}
