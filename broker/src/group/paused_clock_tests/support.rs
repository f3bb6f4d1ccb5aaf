//! Shared fixtures for the coordinator tests: an in-memory `__consumer_offsets`, request
//! builders and a helper that forms a Stable group.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI16, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::group::{GroupConfig, GroupCoordinator, OffsetsLog, OffsetsRecord};

#[derive(Default)]
pub(super) struct MemLog {
    pub(super) partitions: Mutex<HashMap<i32, Vec<OffsetsRecord>>>,
    pub(super) fail_with: AtomicI16,
}

impl OffsetsLog for MemLog {
    fn append(
        &self,
        partition: i32,
        records: Vec<OffsetsRecord>,
    ) -> BoxFuture<'static, Result<(), i16>> {
        let fail = self.fail_with.load(Ordering::SeqCst);
        if fail == 0 {
            self.partitions
                .lock()
                .unwrap()
                .entry(partition)
                .or_default()
                .extend(records);
        }
        Box::pin(async move {
            if fail == 0 {
                Ok(())
            } else {
                Err(fail)
            }
        })
    }

    fn read_all(&self, partition: i32) -> Result<Vec<OffsetsRecord>, i16> {
        Ok(self
            .partitions
            .lock()
            .unwrap()
            .get(&partition)
            .cloned()
            .unwrap_or_default())
    }
}

pub(super) fn config() -> GroupConfig {
    GroupConfig {
        offsets_topic_num_partitions: 4,
        ..GroupConfig::default()
    }
}

pub(super) async fn start(cfg: GroupConfig, log: Arc<MemLog>) -> Arc<GroupCoordinator> {
    let n = cfg.offsets_topic_num_partitions;
    let c = GroupCoordinator::new(cfg, log);
    for p in 0..n {
        c.load_partition(p).await.unwrap();
    }
    c
}

pub(super) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub(super) fn code(e: E) -> i16 {
    e.code()
}

/// A ConsumerProtocolSubscription v1 for `topics`.
pub(super) fn subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1);
    b.put_i32(0);
    b.freeze()
}

pub(super) fn join_req(
    group: &str,
    member: &str,
    instance: Option<&str>,
    metadata: Bytes,
) -> JoinGroupRequest {
    let mut p = JoinGroupRequestProtocol::default();
    p.name = sb("range");
    p.metadata = metadata;
    let mut r = JoinGroupRequest::default();
    r.group_id = sb(group).into();
    r.session_timeout_ms = 10_000;
    r.rebalance_timeout_ms = 5_000;
    r.member_id = sb(member);
    r.group_instance_id = instance.map(sb);
    r.protocol_type = sb("consumer");
    r.protocols = vec![p];
    r
}

/// Dynamic join the way a v5+ client does it: MEMBER_ID_REQUIRED, then join again.
pub(super) async fn join_dynamic(
    c: &Arc<GroupCoordinator>,
    group: &str,
    topics: &[&str],
) -> JoinGroupResponse {
    let first = c
        .join_group(
            join_req(group, "", None, subscription(topics)),
            7,
            "client",
            "/10.0.0.1",
        )
        .await;
    assert_eq!(first.error_code, code(E::MemberIdRequired));
    assert!(first.member_id.starts_with("client-"));
    c.join_group(
        join_req(group, &first.member_id, None, subscription(topics)),
        7,
        "client",
        "/10.0.0.1",
    )
    .await
}

pub(super) fn sync_req(
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, &[u8])],
) -> SyncGroupRequest {
    let mut r = SyncGroupRequest::default();
    r.group_id = sb(group).into();
    r.member_id = sb(member);
    r.generation_id = generation;
    r.assignments = assignments
        .iter()
        .map(|(m, a)| {
            let mut x = SyncGroupRequestAssignment::default();
            x.member_id = sb(m);
            x.assignment = Bytes::copy_from_slice(a);
            x
        })
        .collect();
    r
}

pub(super) fn hb(
    group: &str,
    member: &str,
    generation: i32,
    instance: Option<&str>,
) -> HeartbeatRequest {
    let mut r = HeartbeatRequest::default();
    r.group_id = sb(group).into();
    r.member_id = sb(member);
    r.generation_id = generation;
    r.group_instance_id = instance.map(sb);
    r
}

pub(super) fn commit_req(
    group: &str,
    member: &str,
    generation: i32,
    offsets: &[(&str, i32, i64, &str)],
) -> OffsetCommitRequest {
    let mut r = OffsetCommitRequest::default();
    r.group_id = sb(group).into();
    r.member_id = sb(member);
    r.generation_id_or_member_epoch = generation;
    r.topics = offsets
        .iter()
        .map(|(t, p, o, m)| {
            let mut part = OffsetCommitRequestPartition::default();
            part.partition_index = *p;
            part.committed_offset = *o;
            part.committed_metadata = Some(sb(m));
            let mut topic = OffsetCommitRequestTopic::default();
            topic.name = sb(t).into();
            topic.partitions = vec![part];
            topic
        })
        .collect();
    r
}

pub(super) fn commit_errors(r: &OffsetCommitResponse) -> Vec<i16> {
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// (offset, metadata) of one partition via OffsetFetch v7.
pub(super) async fn fetch_one(
    c: &GroupCoordinator,
    group: &str,
    topic: &str,
    partition: i32,
) -> (i64, String) {
    let mut t = OffsetFetchRequestTopic::default();
    t.name = sb(topic).into();
    t.partition_indexes = vec![partition];
    let mut r = OffsetFetchRequest::default();
    r.group_id = sb(group).into();
    r.topics = Some(vec![t]);
    let resp = c.offset_fetch(r, 7).await;
    assert_eq!(resp.error_code, 0);
    let p = &resp.topics[0].partitions[0];
    (
        p.committed_offset,
        p.metadata
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

pub(super) fn state_of(c: &GroupCoordinator, group: &str) -> Option<(&'static str, usize)> {
    c.group_states()
        .into_iter()
        .find(|(g, ..)| g == group)
        .map(|(_, s, n)| (s, n))
}

/// Forms a Stable group of `n` dynamic members; returns (generation, leader, members).
pub(super) async fn stable_group(
    c: &Arc<GroupCoordinator>,
    group: &str,
    n: usize,
) -> (i32, String, Vec<String>) {
    let mut joins = Vec::new();
    for _ in 0..n {
        let c = c.clone();
        let group = group.to_string();
        joins.push(tokio::spawn(async move {
            join_dynamic(&c, &group, &["t"]).await
        }));
    }
    let mut responses = Vec::new();
    for j in joins {
        responses.push(j.await.unwrap());
    }
    let generation = responses[0].generation_id;
    let leader = responses[0].leader.to_string();
    let members: Vec<String> = responses.iter().map(|r| r.member_id.to_string()).collect();
    let mut syncs = Vec::new();
    for m in &members {
        let assignments: Vec<(String, Vec<u8>)> = if *m == leader {
            members
                .iter()
                .map(|x| (x.clone(), format!("a-{x}").into_bytes()))
                .collect()
        } else {
            Vec::new()
        };
        let c = c.clone();
        let (group, m) = (group.to_string(), m.clone());
        syncs.push(tokio::spawn(async move {
            let a: Vec<(&str, &[u8])> = assignments
                .iter()
                .map(|(m, a)| (m.as_str(), a.as_slice()))
                .collect();
            c.sync_group(sync_req(&group, &m, generation, &a), 4).await
        }));
    }
    for (s, m) in syncs.into_iter().zip(&members) {
        let r = s.await.unwrap();
        assert_eq!(r.error_code, 0);
        assert_eq!(r.assignment, Bytes::from(format!("a-{m}")));
    }
    (generation, leader, members)
}
