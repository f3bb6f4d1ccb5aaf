//! OffsetCommit, OffsetFetch and OffsetDelete, and the expiry of offsets after
//! `offsets.retention.minutes`. Offsets change in memory only after their records are
//! durable in `__consumer_offsets`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::codes::{self, code};
use super::coordinator::{lock, GroupCoordinator};
use super::rebalance::millis;
use super::state::{ClassicGroup, CommittedOffset, GroupState};

/// Offsets per topic: (topic, [(partition, committed offset if any)]).
type FetchedTopics = Vec<(StrBytes, Vec<(i32, Option<CommittedOffset>)>)>;

/// One group's answer to OffsetFetch before it is shaped for the request version.
struct FetchedGroup {
    group_id: StrBytes,
    error: i16,
    topics: FetchedTopics,
}

impl GroupCoordinator {
    /// OffsetCommit from a group member (generation and member checked) or from a
    /// simple consumer (generation -1, group empty or absent).
    pub async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        let group_id = req.group_id.0.to_string();
        let mut errors: Vec<Vec<i16>> = req
            .topics
            .iter()
            .map(|t| vec![codes::NONE; t.partitions.len()])
            .collect();
        let mut pending: Vec<(usize, usize, String, i32, CommittedOffset)> = Vec::new();
        let outcome = self.commit_inner(&req, version, &group_id, &mut errors, &mut pending);
        if let Some((handle, fut)) = outcome {
            match fut.await {
                Ok(()) => {
                    let mut g = lock(&handle);
                    if g.state != GroupState::Dead {
                        for (_, _, topic, p, o) in pending {
                            let _ = g.offsets.insert((topic, p), o);
                        }
                    }
                }
                Err(e) => {
                    for (ti, pi, ..) in pending {
                        if let Some(slot) = errors.get_mut(ti).and_then(|t| t.get_mut(pi)) {
                            *slot = e;
                        }
                    }
                }
            }
        }
        let mut r = OffsetCommitResponse::default();
        r.topics = req
            .topics
            .iter()
            .zip(errors)
            .map(|(t, errs)| {
                let mut rt = OffsetCommitResponseTopic::default();
                rt.name = t.name.clone();
                if version >= 10 {
                    rt.topic_id = t.topic_id;
                }
                rt.partitions = t
                    .partitions
                    .iter()
                    .zip(errs)
                    .map(|(p, e)| {
                        let mut rp = OffsetCommitResponsePartition::default();
                        rp.partition_index = p.partition_index;
                        rp.error_code = e;
                        rp
                    })
                    .collect();
                rt
            })
            .collect();
        r
    }

    #[allow(clippy::type_complexity)]
    fn commit_inner(
        &self,
        req: &OffsetCommitRequest,
        version: i16,
        group_id: &str,
        errors: &mut [Vec<i16>],
        pending: &mut Vec<(usize, usize, String, i32, CommittedOffset)>,
    ) -> Option<(
        Arc<super::coordinator::GroupHandle>,
        futures::future::BoxFuture<'static, Result<(), i16>>,
    )> {
        let fail_all = |errors: &mut [Vec<i16>], e: i16| {
            errors.iter_mut().flatten().for_each(|slot| *slot = e)
        };
        let partition = match self.check_loaded(group_id) {
            Ok(p) => p,
            Err(e) => {
                fail_all(errors, e);
                return None;
            }
        };
        let generation = req.generation_id_or_member_epoch;
        let handle = match self.get_group(group_id) {
            Some(h) => h,
            None if generation < 0 => self.get_or_create_group(group_id, partition),
            None => {
                let e = if version >= 9 {
                    code(E::GroupIdNotFound)
                } else {
                    codes::illegal_generation()
                };
                fail_all(errors, e);
                return None;
            }
        };
        let mut g = lock(&handle);
        if let Err(e) = self.validate_commit(&mut g, req) {
            fail_all(errors, e);
            return None;
        }
        let now_ms = self.clock.now_ms();
        let mut records = Vec::new();
        for (ti, t) in req.topics.iter().enumerate() {
            let topic = t.name.0.as_str();
            for (pi, p) in t.partitions.iter().enumerate() {
                // The committed leader epoch exists from v6.
                let epoch = if version >= 6 {
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
                    Ok(o) => {
                        records.push(GroupCoordinator::offset_record(
                            group_id,
                            topic,
                            p.partition_index,
                            Some(&o),
                        ));
                        pending.push((ti, pi, topic.to_string(), p.partition_index, o));
                        codes::NONE
                    }
                    Err(e) => e,
                };
                if let Some(slot) = errors.get_mut(ti).and_then(|t| t.get_mut(pi)) {
                    *slot = error;
                }
            }
        }
        if records.is_empty() {
            return None;
        }
        let fut = self.append(g.partition, records);
        drop(g);
        Some((handle, fut))
    }

    /// One partition's offset as OffsetCommit and TxnOffsetCommit check it: the partition must
    /// exist and the metadata fit `offset.metadata.max.bytes`.
    pub(super) fn checked_offset(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        leader_epoch: i32,
        metadata: Option<&StrBytes>,
        now_ms: i64,
    ) -> Result<CommittedOffset, i16> {
        let metadata = metadata.map(|m| m.to_string()).unwrap_or_default();
        if !self.topic_exists(topic, partition) {
            return Err(code(E::UnknownTopicOrPartition));
        }
        if metadata.len() > self.config.offset_metadata_max_bytes {
            return Err(code(E::OffsetMetadataTooLarge));
        }
        Ok(CommittedOffset {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp: now_ms,
        })
    }

    /// Kafka's commit checks: simple consumers may commit to an empty group; members must
    /// be current, and not while their generation's assignment is being distributed.
    fn validate_commit(&self, g: &mut ClassicGroup, req: &OffsetCommitRequest) -> Result<(), i16> {
        if g.state == GroupState::Dead {
            return Err(codes::coordinator_not_available());
        }
        let member_id = req.member_id.as_str();
        if let Some(iid) = &req.group_instance_id {
            if g.static_members
                .get(iid.as_str())
                .is_some_and(|id| id != member_id)
            {
                return Err(codes::fenced_instance_id());
            }
        }
        let generation = req.generation_id_or_member_epoch;
        if generation < 0 && g.state == GroupState::Empty {
            return Ok(());
        }
        if !g.members.contains_key(member_id) {
            return Err(codes::unknown_member_id());
        }
        if generation != g.generation {
            return Err(codes::illegal_generation());
        }
        match g.state {
            GroupState::CompletingRebalance => Err(codes::rebalance_in_progress()),
            GroupState::Stable | GroupState::PreparingRebalance => {
                if let Some(m) = g.members.get_mut(member_id) {
                    m.session_deadline = Instant::now() + millis(m.session_timeout_ms);
                }
                Ok(())
            }
            GroupState::Empty | GroupState::Dead => Err(codes::unknown_member_id()),
        }
    }

    /// OffsetFetch of listed partitions (-1 when none is committed) or of all of a group's
    /// offsets; v8+ for several groups at once. With `require_stable` (v7+), a partition
    /// whose offset an open transaction is about to change answers UNSTABLE_OFFSET_COMMIT
    /// (retriable) instead of the offset it will replace.
    pub async fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        let mut r = OffsetFetchResponse::default();
        let unstable = |group: &str, topic: &str, p: i32| {
            req.require_stable && self.has_pending_offset(group, topic, p)
        };
        if version >= 8 {
            r.groups = req
                .groups
                .iter()
                .map(|rg| {
                    let topics = rg.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.0.clone(), t.partition_indexes.clone()))
                            .collect::<Vec<_>>()
                    });
                    let fetched = self.fetch_group(rg.group_id.0.clone(), topics);
                    let group = rg.group_id.0.as_str();
                    let mut out = OffsetFetchResponseGroup::default();
                    out.group_id = fetched.group_id.into();
                    out.error_code = fetched.error;
                    out.topics = fetched
                        .topics
                        .into_iter()
                        .map(|(name, parts)| {
                            let mut t = OffsetFetchResponseTopics::default();
                            t.name = TopicName(name.clone());
                            t.partitions = parts
                                .into_iter()
                                .map(|(p, o)| {
                                    let mut rp = OffsetFetchResponsePartitions::default();
                                    rp.partition_index = p;
                                    let o = if unstable(group, name.as_str(), p) {
                                        rp.error_code = code(E::UnstableOffsetCommit);
                                        None
                                    } else {
                                        o
                                    };
                                    fill(
                                        &o,
                                        &mut rp.committed_offset,
                                        &mut rp.committed_leader_epoch,
                                        &mut rp.metadata,
                                    );
                                    rp
                                })
                                .collect();
                            t
                        })
                        .collect();
                    out
                })
                .collect();
            return r;
        }
        let topics = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.0.clone(), t.partition_indexes.clone()))
                .collect::<Vec<_>>()
        });
        let fetched = self.fetch_group(req.group_id.0.clone(), topics.clone());
        let group_error = fetched.error;
        if version >= 2 {
            r.error_code = group_error;
        }
        // Before v2 the group error can only travel in each listed partition.
        let partition_error = if version < 2 {
            group_error
        } else {
            codes::NONE
        };
        let shaped: FetchedTopics = if group_error != codes::NONE {
            topics
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, None)).collect()))
                .collect()
        } else {
            fetched.topics
        };
        r.topics = shaped
            .into_iter()
            .map(|(name, parts)| {
                let mut t = OffsetFetchResponseTopic::default();
                t.name = TopicName(name.clone());
                t.partitions = parts
                    .into_iter()
                    .map(|(p, o)| {
                        let mut rp = OffsetFetchResponsePartition::default();
                        rp.partition_index = p;
                        rp.error_code = partition_error;
                        let o = if partition_error == codes::NONE
                            && unstable(req.group_id.0.as_str(), name.as_str(), p)
                        {
                            rp.error_code = code(E::UnstableOffsetCommit);
                            None
                        } else {
                            o
                        };
                        fill(
                            &o,
                            &mut rp.committed_offset,
                            &mut rp.committed_leader_epoch,
                            &mut rp.metadata,
                        );
                        rp
                    })
                    .collect();
                t
            })
            .collect();
        r
    }

    fn fetch_group(
        &self,
        group_id: StrBytes,
        topics: Option<Vec<(StrBytes, Vec<i32>)>>,
    ) -> FetchedGroup {
        let mut out = FetchedGroup {
            group_id: group_id.clone(),
            error: codes::NONE,
            topics: Vec::new(),
        };
        if let Err(e) = self.check_loaded(group_id.as_str()) {
            out.error = e;
            return out;
        }
        let handle = self.get_group(group_id.as_str());
        let guard = handle.as_ref().map(|h| lock(h));
        let offsets = guard
            .as_ref()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| &g.offsets);
        match topics {
            Some(topics) => {
                for (topic, partitions) in topics {
                    let parts = partitions
                        .into_iter()
                        .map(|p| {
                            (
                                p,
                                offsets
                                    .and_then(|o| o.get(&(topic.to_string(), p)))
                                    .cloned(),
                            )
                        })
                        .collect();
                    out.topics.push((topic, parts));
                }
            }
            None => {
                let mut all: Vec<(&(String, i32), &CommittedOffset)> =
                    offsets.map(|o| o.iter().collect()).unwrap_or_default();
                all.sort_by(|a, b| a.0.cmp(b.0));
                for ((topic, p), o) in all {
                    match out.topics.last_mut() {
                        Some((t, parts)) if t.as_str() == topic => {
                            parts.push((*p, Some(o.clone())))
                        }
                        _ => out.topics.push((
                            StrBytes::from_string(topic.clone()),
                            vec![(*p, Some(o.clone()))],
                        )),
                    }
                }
            }
        }
        out
    }

    /// OffsetDelete: removes committed offsets of partitions the group does not consume.
    pub async fn offset_delete(
        &self,
        req: OffsetDeleteRequest,
        version: i16,
    ) -> OffsetDeleteResponse {
        let _ = version;
        let mut r = OffsetDeleteResponse::default();
        let group_id = req.group_id.0.as_str();
        if let Err(e) = self.check_loaded(group_id) {
            r.error_code = e;
            return r;
        }
        let Some(handle) = self.get_group(group_id) else {
            r.error_code = code(E::GroupIdNotFound);
            return r;
        };
        let mut removed = Vec::new();
        let fut = {
            let mut g = lock(&handle);
            if g.state == GroupState::Dead {
                r.error_code = code(E::GroupIdNotFound);
                return r;
            }
            let consumer =
                g.protocol_type.as_deref() == Some(super::protocol::CONSUMER_PROTOCOL_TYPE);
            if g.state != GroupState::Empty && !consumer {
                r.error_code = code(E::NonEmptyGroup);
                return r;
            }
            let subscribed = if g.state == GroupState::Empty {
                Some(HashSet::new())
            } else {
                g.subscribed_topics()
            };
            let mut records = Vec::new();
            for t in &req.topics {
                let topic = t.name.0.as_str();
                let in_use = subscribed.as_ref().is_none_or(|s| s.contains(topic));
                let mut rt = OffsetDeleteResponseTopic::default();
                rt.name = t.name.clone();
                for p in &t.partitions {
                    let mut rp = OffsetDeleteResponsePartition::default();
                    rp.partition_index = p.partition_index;
                    if in_use {
                        rp.error_code = code(E::GroupSubscribedToTopic);
                    } else if g
                        .offsets
                        .remove(&(topic.to_string(), p.partition_index))
                        .is_some()
                    {
                        records.push(GroupCoordinator::offset_record(
                            &g.group_id,
                            topic,
                            p.partition_index,
                            None,
                        ));
                        removed.push((topic.to_string(), p.partition_index));
                    }
                    rt.partitions.push(rp);
                }
                r.topics.push(rt);
            }
            if records.is_empty() {
                return r;
            }
            self.append(g.partition, records)
        };
        if let Err(e) = fut.await {
            r.error_code = e;
        }
        r
    }

    /// Expires offsets per `offsets.retention.minutes`: for an empty group counted from
    /// when it became empty (from the commit for groups that never had members), for an
    /// active consumer group only for topics it no longer subscribes to (KIP-496). A group
    /// left empty without offsets is deleted.
    pub async fn expire_offsets(&self) {
        let retention_ms = self.config.offsets_retention_minutes.saturating_mul(60_000);
        let now_ms = self.clock.now_ms();
        let mut waits = Vec::new();
        for handle in self.all_groups() {
            let mut g = lock(&handle);
            if g.state == GroupState::Dead {
                continue;
            }
            let subscribed = if g.state == GroupState::Empty {
                None
            } else {
                g.subscribed_topics()
            };
            if g.state != GroupState::Empty && subscribed.is_none() {
                continue;
            }
            let state_ts = g.state_timestamp_ms;
            let simple = g.protocol_type.is_none();
            let expired: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|((topic, _), o)| {
                    let base = match &subscribed {
                        Some(topics) if topics.contains(topic) => return false,
                        Some(_) => o.commit_timestamp,
                        None if simple => o.commit_timestamp,
                        None => state_ts.max(o.commit_timestamp),
                    };
                    base.saturating_add(retention_ms) <= now_ms
                })
                .map(|(k, _)| k.clone())
                .collect();
            let mut records = Vec::new();
            for key in expired {
                let _ = g.offsets.remove(&key);
                records.push(GroupCoordinator::offset_record(
                    &g.group_id,
                    &key.0,
                    key.1,
                    None,
                ));
            }
            if g.state == GroupState::Empty && g.offsets.is_empty() {
                g.transition(GroupState::Dead, now_ms);
                records.push(GroupCoordinator::group_tombstone(&g.group_id));
                self.remove_group(&g.group_id.clone(), &handle);
            }
            if !records.is_empty() {
                waits.push(self.append(g.partition, records));
            }
        }
        for w in waits {
            if let Err(e) = w.await {
                tracing::warn!(code = e, "could not persist expired offsets");
            }
        }
    }

    pub(crate) fn start_retention_timer(&self) {
        let weak = self.weak.clone();
        let every = Duration::from_millis(
            u64::try_from(self.config.offsets_retention_check_interval_ms)
                .unwrap_or(600_000)
                .max(1),
        );
        self.spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                let _ = ticker.tick().await;
                let Some(c) = weak.upgrade() else { return };
                c.expire_offsets().await;
            }
        });
    }
}

fn fill(
    o: &Option<CommittedOffset>,
    offset: &mut i64,
    epoch: &mut i32,
    metadata: &mut Option<StrBytes>,
) {
    match o {
        Some(o) => {
            *offset = o.offset;
            *epoch = o.leader_epoch;
            *metadata = Some(StrBytes::from_string(o.metadata.clone()));
        }
        None => {
            *offset = -1;
            *epoch = -1;
            *metadata = Some(StrBytes::from_static_str(""));
        }
    }
}
