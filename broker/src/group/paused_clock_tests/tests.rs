//! Coordinator tests: paused tokio clock (timers fire deterministically as virtual time
//! advances), an in-memory `__consumer_offsets`, real kafka-protocol request types.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::time::Instant;

use crate::group::{GroupConfig, GroupCoordinator, OffsetsLog, OffsetsRecord};

#[derive(Default)]
struct MemLog {
    partitions: Mutex<HashMap<i32, Vec<OffsetsRecord>>>,
    fail_with: AtomicI16,
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

fn config() -> GroupConfig {
    GroupConfig {
        offsets_topic_num_partitions: 4,
        ..GroupConfig::default()
    }
}

async fn start(cfg: GroupConfig, log: Arc<MemLog>) -> Arc<GroupCoordinator> {
    let n = cfg.offsets_topic_num_partitions;
    let c = GroupCoordinator::new(cfg, log);
    for p in 0..n {
        c.load_partition(p).await.unwrap();
    }
    c
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn code(e: E) -> i16 {
    e.code()
}

/// A ConsumerProtocolSubscription v1 for `topics`.
fn subscription(topics: &[&str]) -> Bytes {
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

fn join_req(
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
async fn join_dynamic(
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

fn sync_req(
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

fn hb(group: &str, member: &str, generation: i32, instance: Option<&str>) -> HeartbeatRequest {
    let mut r = HeartbeatRequest::default();
    r.group_id = sb(group).into();
    r.member_id = sb(member);
    r.generation_id = generation;
    r.group_instance_id = instance.map(sb);
    r
}

fn commit_req(
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

fn commit_errors(r: &OffsetCommitResponse) -> Vec<i16> {
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// (offset, metadata) of one partition via OffsetFetch v7.
async fn fetch_one(
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

fn state_of(c: &GroupCoordinator, group: &str) -> Option<(&'static str, usize)> {
    c.group_states()
        .into_iter()
        .find(|(g, ..)| g == group)
        .map(|(_, s, n)| (s, n))
}

/// Forms a Stable group of `n` dynamic members; returns (generation, leader, members).
async fn stable_group(
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

#[tokio::test(start_paused = true)]
async fn three_members_join_and_sync() {
    let c = start(config(), Arc::default()).await;
    let t0 = Instant::now();
    let mut joins = Vec::new();
    for _ in 0..3 {
        let c = c.clone();
        joins.push(tokio::spawn(
            async move { join_dynamic(&c, "g", &["t"]).await },
        ));
    }
    let mut responses = Vec::new();
    for j in joins {
        responses.push(j.await.unwrap());
    }
    // The first rebalance of an empty group waits group.initial.rebalance.delay.ms (3s);
    // members 2 and 3 arrived during it, so it waits once more, capped by the 5s
    // rebalance timeout, as Kafka's InitialDelayedJoin does.
    assert_eq!(t0.elapsed(), Duration::from_millis(5000));
    assert!(responses
        .iter()
        .all(|r| r.error_code == 0 && r.generation_id == 1));
    assert!(responses
        .iter()
        .all(|r| r.protocol_name.as_deref().map(|s| s.to_string()) == Some("range".to_string())));
    let leader = responses[0].leader.clone();
    assert!(responses.iter().all(|r| r.leader == leader));
    for r in &responses {
        let expected = if r.member_id == leader { 3 } else { 0 };
        assert_eq!(r.members.len(), expected);
    }
    assert_eq!(state_of(&c, "g"), Some(("CompletingRebalance", 3)));
    // A heartbeat before SyncGroup is fine (CompletingRebalance).
    assert_eq!(
        c.heartbeat(hb("g", &responses[1].member_id, 1, None), 4)
            .await
            .error_code,
        0
    );
    drop(responses);
    let c2 = c.clone();
    let (generation, _, members) = stable_group(&c2, "g2", 3).await;
    assert_eq!(generation, 1);
    assert_eq!(state_of(&c, "g2"), Some(("Stable", 3)));
    for m in &members {
        assert_eq!(c.heartbeat(hb("g2", m, 1, None), 4).await.error_code, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn member_id_required_then_unknown_and_expired_pending_ids() {
    let c = start(config(), Arc::default()).await;
    let first = c
        .join_group(join_req("g", "", None, subscription(&["t"])), 4, "cid", "h")
        .await;
    assert_eq!(first.error_code, code(E::MemberIdRequired));
    // v3 and below have no MEMBER_ID_REQUIRED: the member joins directly.
    let old = tokio::spawn({
        let c = c.clone();
        async move {
            c.join_group(
                join_req("old", "", None, subscription(&["t"])),
                3,
                "cid",
                "h",
            )
            .await
        }
    });
    let old = old.await.unwrap();
    assert_eq!((old.error_code, old.generation_id), (0, 1));
    // A made-up member id of an unknown group is refused.
    let r = c
        .join_group(
            join_req("nope", "ghost", None, subscription(&["t"])),
            7,
            "cid",
            "h",
        )
        .await;
    assert_eq!(r.error_code, code(E::UnknownMemberId));
    // The handed-out id expires after the session timeout if never used.
    tokio::time::sleep(Duration::from_millis(10_001)).await;
    let r = c
        .join_group(
            join_req("g", &first.member_id, None, subscription(&["t"])),
            7,
            "cid",
            "h",
        )
        .await;
    assert_eq!(r.error_code, code(E::UnknownMemberId));
}

#[tokio::test(start_paused = true)]
async fn initial_delay_extends_while_members_arrive() {
    let c = start(config(), Arc::default()).await;
    let t0 = Instant::now();
    let a = tokio::spawn({
        let c = c.clone();
        async move { join_dynamic(&c, "g", &["t"]).await }
    });
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let b = join_dynamic(&c, "g", &["t"]).await;
    let a = a.await.unwrap();
    // Delay 3s, extended once by 3s more because b arrived, capped by the 5s rebalance timeout.
    assert_eq!(t0.elapsed(), Duration::from_millis(5000));
    assert_eq!((a.generation_id, b.generation_id), (1, 1));
    assert_eq!(state_of(&c, "g"), Some(("CompletingRebalance", 2)));
}

#[tokio::test(start_paused = true)]
async fn session_expiry_moves_member_out() {
    let c = start(config(), Arc::default()).await;
    let (generation, _, members) = stable_group(&c, "g", 2).await;
    let (alive, silent) = (&members[0], &members[1]);
    let deadline = Instant::now() + Duration::from_secs(30);
    // Only `alive` heartbeats; within the 10s session timeout `silent` is removed.
    let t0 = Instant::now();
    loop {
        assert!(Instant::now() < deadline, "rebalance never started");
        let r = c.heartbeat(hb("g", alive, generation, None), 4).await;
        if r.error_code == code(E::RebalanceInProgress) {
            break;
        }
        assert_eq!(r.error_code, 0);
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    assert!(t0.elapsed() >= Duration::from_secs(9) && t0.elapsed() <= Duration::from_secs(11));
    let r = c
        .join_group(
            join_req("g", alive, None, subscription(&["t"])),
            7,
            "client",
            "h",
        )
        .await;
    assert_eq!(
        (r.error_code, r.generation_id, r.members.len()),
        (0, generation + 1, 1)
    );
    assert_eq!(
        c.heartbeat(hb("g", silent, generation, None), 4)
            .await
            .error_code,
        code(E::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn rebalance_timeout_kicks_members_that_do_not_rejoin() {
    let c = start(config(), Arc::default()).await;
    let (generation, _, members) = stable_group(&c, "g", 2).await;
    let (rejoiner, laggard) = (members[0].clone(), members[1].clone());
    let t0 = Instant::now();
    let join = tokio::spawn({
        let c = c.clone();
        async move {
            c.join_group(
                join_req("g", &rejoiner, None, subscription(&["t"])),
                7,
                "client",
                "h",
            )
            .await
        }
    });
    tokio::task::yield_now().await;
    // The laggard still heartbeats (so its session stays alive) but never rejoins.
    assert_eq!(
        c.heartbeat(hb("g", &laggard, generation, None), 4)
            .await
            .error_code,
        code(E::RebalanceInProgress)
    );
    let r = join.await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(5000));
    assert_eq!(
        (r.error_code, r.generation_id, r.members.len()),
        (0, generation + 1, 1)
    );
    assert_eq!(
        c.heartbeat(hb("g", &laggard, generation, None), 4)
            .await
            .error_code,
        code(E::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn member_that_never_syncs_is_removed_after_rebalance_timeout() {
    let c = start(config(), Arc::default()).await;
    let mut joins = Vec::new();
    for _ in 0..2 {
        let c = c.clone();
        joins.push(tokio::spawn(
            async move { join_dynamic(&c, "g", &["t"]).await },
        ));
    }
    let a = joins.remove(0).await.unwrap();
    let b = joins.remove(0).await.unwrap();
    let (leader, follower) = if a.member_id == a.leader {
        (a, b)
    } else {
        (b, a)
    };
    // The follower syncs, the leader never does: after the rebalance timeout the leader is
    // dropped and the follower's SyncGroup is told to rejoin.
    let r = c
        .sync_group(sync_req("g", &follower.member_id, 1, &[]), 4)
        .await;
    assert_eq!(r.error_code, code(E::RebalanceInProgress));
    assert_eq!(
        c.heartbeat(hb("g", &leader.member_id, 1, None), 4)
            .await
            .error_code,
        code(E::UnknownMemberId)
    );
}

fn static_join(group: &str, member: &str, instance: &str, topics: &[&str]) -> JoinGroupRequest {
    join_req(group, member, Some(instance), subscription(topics))
}

#[tokio::test(start_paused = true)]
async fn static_member_rejoins_without_rebalance_and_old_incarnation_is_fenced() {
    let c = start(config(), Arc::default()).await;
    let j1 = tokio::spawn({
        let c = c.clone();
        async move {
            c.join_group(static_join("g", "", "i1", &["t"]), 9, "c1", "h")
                .await
        }
    });
    let j2 = tokio::spawn({
        let c = c.clone();
        async move {
            c.join_group(static_join("g", "", "i2", &["t"]), 9, "c2", "h")
                .await
        }
    });
    let (r1, r2) = (j1.await.unwrap(), j2.await.unwrap());
    assert_eq!((r1.error_code, r2.error_code), (0, 0));
    assert!(r1.member_id.starts_with("i1-"));
    let (leader, follower) = if r1.member_id == r1.leader {
        (r1, r2)
    } else {
        (r2, r1)
    };
    assert_eq!(
        leader
            .members
            .iter()
            .filter(|m| m.group_instance_id.is_some())
            .count(),
        2
    );
    let f = tokio::spawn({
        let c = c.clone();
        let id = follower.member_id.to_string();
        async move { c.sync_group(sync_req("g", &id, 1, &[]), 5).await }
    });
    let assignments = [
        (leader.member_id.as_str(), &b"L"[..]),
        (follower.member_id.as_str(), &b"F"[..]),
    ];
    assert_eq!(
        c.sync_group(sync_req("g", &leader.member_id, 1, &assignments), 5)
            .await
            .assignment,
        Bytes::from("L")
    );
    assert_eq!(f.await.unwrap().assignment, Bytes::from("F"));

    // The follower's instance restarts: new member id, same generation, no rebalance.
    let fid = follower.group_instance_id_of();
    let r = c
        .join_group(static_join("g", "", &fid, &["t"]), 9, "c2", "h")
        .await;
    assert_eq!((r.error_code, r.generation_id), (0, 1));
    assert_ne!(r.member_id, follower.member_id);
    assert_eq!(state_of(&c, "g"), Some(("Stable", 2)));
    let s = c.sync_group(sync_req("g", &r.member_id, 1, &[]), 5).await;
    assert_eq!((s.error_code, s.assignment.clone()), (0, Bytes::from("F")));
    // The previous incarnation is fenced everywhere.
    let old = follower.member_id.to_string();
    assert_eq!(
        c.heartbeat(hb("g", &old, 1, Some(&fid)), 4)
            .await
            .error_code,
        code(E::FencedInstanceId)
    );
    let mut sync = sync_req("g", &old, 1, &[]);
    sync.group_instance_id = Some(sb(&fid));
    assert_eq!(
        c.sync_group(sync, 5).await.error_code,
        code(E::FencedInstanceId)
    );
    let rejoin = c
        .join_group(static_join("g", &old, &fid, &["t"]), 9, "c2", "h")
        .await;
    assert_eq!(rejoin.error_code, code(E::FencedInstanceId));
    let mut commit = commit_req("g", &old, 1, &[("t", 0, 5, "")]);
    commit.group_instance_id = Some(sb(&fid));
    assert_eq!(
        commit_errors(&c.offset_commit(commit, 8).await),
        vec![code(E::FencedInstanceId)]
    );

    // A restart with a different subscription does rebalance.
    let c2 = c.clone();
    let changed = tokio::spawn(async move {
        c2.join_group(static_join("g", "", &fid, &["t", "u"]), 9, "c2", "h")
            .await
    });
    tokio::task::yield_now().await;
    assert_eq!(state_of(&c, "g"), Some(("PreparingRebalance", 2)));
    let lid = leader.member_id.to_string();
    let relead = c
        .join_group(static_join("g", &lid, "i1", &["t"]), 9, "c1", "h")
        .await;
    assert_eq!((relead.error_code, relead.generation_id), (0, 2));
    assert_eq!(changed.await.unwrap().generation_id, 2);
}

trait InstanceOf {
    fn group_instance_id_of(&self) -> String;
}

impl InstanceOf for JoinGroupResponse {
    fn group_instance_id_of(&self) -> String {
        // Static member ids are "<group.instance.id>-<uuid>".
        self.member_id.split('-').next().unwrap().to_string()
    }
}

#[tokio::test(start_paused = true)]
async fn fencing_and_generation_errors() {
    let c = start(config(), Arc::default()).await;
    let (generation, _, members) = stable_group(&c, "g", 1).await;
    let m = &members[0];
    assert_eq!(
        c.heartbeat(hb("g", m, generation + 1, None), 4)
            .await
            .error_code,
        code(E::IllegalGeneration)
    );
    assert_eq!(
        c.heartbeat(hb("g", "stranger", generation, None), 4)
            .await
            .error_code,
        code(E::UnknownMemberId)
    );
    assert_eq!(
        c.heartbeat(hb("absent", m, generation, None), 4)
            .await
            .error_code,
        code(E::UnknownMemberId)
    );
    let bad_gen = commit_req("g", m, generation + 5, &[("t", 0, 1, "")]);
    assert_eq!(
        commit_errors(&c.offset_commit(bad_gen, 8).await),
        vec![code(E::IllegalGeneration)]
    );
    // A simple consumer (generation -1) cannot commit into an active group.
    let simple = commit_req("g", "", -1, &[("t", 0, 1, "")]);
    assert_eq!(
        commit_errors(&c.offset_commit(simple, 8).await),
        vec![code(E::UnknownMemberId)]
    );
    let s = c.sync_group(sync_req("g", m, generation - 1, &[]), 4).await;
    assert_eq!(s.error_code, code(E::IllegalGeneration));
    // Another protocol type cannot join the group.
    let mut other = join_req("g", "", None, subscription(&["t"]));
    other.protocol_type = sb("connect");
    assert_eq!(
        c.join_group(other, 7, "c", "h").await.error_code,
        code(E::InconsistentGroupProtocol)
    );
    // LeaveGroup v3+ reports per member.
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = sb("g").into();
    let mut known = MemberIdentity::default();
    known.member_id = sb(m);
    let mut unknown = MemberIdentity::default();
    unknown.member_id = sb("nobody");
    leave.members = vec![known, unknown];
    let r = c.leave_group(leave, 4).await;
    assert_eq!(
        r.members.iter().map(|m| m.error_code).collect::<Vec<_>>(),
        vec![0, code(E::UnknownMemberId)]
    );
    assert_eq!(state_of(&c, "g"), Some(("Empty", 0)));
}

#[tokio::test(start_paused = true)]
async fn commit_and_fetch_round_trip_with_metadata() {
    let c = start(config(), Arc::default()).await;
    let r = c
        .offset_commit(
            commit_req("simple", "", -1, &[("t", 0, 42, "hello"), ("t", 1, 7, "")]),
            8,
        )
        .await;
    assert_eq!(commit_errors(&r), vec![0, 0]);
    assert_eq!(
        fetch_one(&c, "simple", "t", 0).await,
        (42, "hello".to_string())
    );
    assert_eq!(fetch_one(&c, "simple", "t", 9).await, (-1, String::new()));
    assert_eq!(
        fetch_one(&c, "never-seen", "t", 0).await,
        (-1, String::new())
    );
    // Too-large metadata is refused for that partition only.
    let big = "x".repeat(4097);
    let r = c
        .offset_commit(
            commit_req("simple", "", -1, &[("t", 0, 50, &big), ("u", 0, 3, "")]),
            8,
        )
        .await;
    assert_eq!(commit_errors(&r), vec![code(E::OffsetMetadataTooLarge), 0]);
    assert_eq!(fetch_one(&c, "simple", "t", 0).await.0, 42);
    // Fetch everything, and several groups at once (v8).
    let mut all = OffsetFetchRequest::default();
    all.group_id = sb("simple").into();
    all.topics = None;
    let resp = c.offset_fetch(all, 5).await;
    let mut got: Vec<(String, i32, i64)> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index, p.committed_offset))
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![("t".into(), 0, 42), ("t".into(), 1, 7), ("u".into(), 0, 3)]
    );
    let mut multi = OffsetFetchRequest::default();
    let mut g1 = OffsetFetchRequestGroup::default();
    g1.group_id = sb("simple").into();
    g1.topics = None;
    let mut g2 = OffsetFetchRequestGroup::default();
    g2.group_id = sb("other").into();
    multi.groups = vec![g1, g2];
    multi.require_stable = true;
    let resp = c.offset_fetch(multi, 8).await;
    assert_eq!(resp.groups.len(), 2);
    assert_eq!(
        resp.groups[0]
            .topics
            .iter()
            .map(|t| t.partitions.len())
            .sum::<usize>(),
        3
    );
    assert!(resp.groups[1].topics.is_empty());
    // A failing log surfaces its error and leaves the previous offset in place.
    let log = Arc::new(MemLog::default());
    let c = start(config(), log.clone()).await;
    log.fail_with
        .store(code(E::NotEnoughReplicas), Ordering::SeqCst);
    let r = c
        .offset_commit(commit_req("s", "", -1, &[("t", 0, 1, "")]), 8)
        .await;
    assert_eq!(commit_errors(&r), vec![code(E::NotEnoughReplicas)]);
    assert_eq!(fetch_one(&c, "s", "t", 0).await.0, -1);
}

#[tokio::test(start_paused = true)]
async fn topic_validator_rejects_unknown_partitions() {
    let c = start(config(), Arc::default()).await;
    c.set_topic_validator(Arc::new(|topic: &str, partition: i32| {
        topic == "t" && partition < 2
    }));
    let r = c
        .offset_commit(
            commit_req(
                "s",
                "",
                -1,
                &[("t", 0, 1, ""), ("t", 5, 1, ""), ("zz", 0, 1, "")],
            ),
            8,
        )
        .await;
    let unknown = code(E::UnknownTopicOrPartition);
    assert_eq!(commit_errors(&r), vec![0, unknown, unknown]);
}

#[tokio::test(start_paused = true)]
async fn state_reloads_from_the_log_after_restart() {
    let log = Arc::new(MemLog::default());
    let c = start(config(), log.clone()).await;
    let (generation, leader, members) = stable_group(&c, "g", 2).await;
    let r = c
        .offset_commit(
            commit_req("g", &leader, generation, &[("t", 3, 100, "meta")]),
            8,
        )
        .await;
    assert_eq!(commit_errors(&r), vec![0]);
    let r = c
        .offset_commit(commit_req("simple", "", -1, &[("t", 0, 5, "")]), 8)
        .await;
    assert_eq!(commit_errors(&r), vec![0]);
    c.shutdown();
    drop(c);

    let c = GroupCoordinator::new(config(), log.clone());
    // Before loading, the coordinator says so instead of answering wrongly.
    let mut f = OffsetFetchRequest::default();
    f.group_id = sb("g").into();
    assert_eq!(
        c.offset_fetch(f, 7).await.error_code,
        code(E::CoordinatorLoadInProgress)
    );
    for p in 0..4 {
        c.load_partition(p).await.unwrap();
    }
    assert_eq!(fetch_one(&c, "g", "t", 3).await, (100, "meta".to_string()));
    assert_eq!(fetch_one(&c, "simple", "t", 0).await.0, 5);
    assert_eq!(state_of(&c, "g"), Some(("Stable", 2)));
    let mut d = DescribeGroupsRequest::default();
    d.groups = vec![sb("g").into()];
    let desc = c.describe_groups(d, 5).await;
    let g = &desc.groups[0];
    assert_eq!(
        (g.group_state.as_str(), g.protocol_data.as_str()),
        ("Stable", "range")
    );
    let mut assigned: Vec<String> = g
        .members
        .iter()
        .map(|m| String::from_utf8(m.member_assignment.to_vec()).unwrap())
        .collect();
    assigned.sort();
    let mut expected: Vec<String> = members.iter().map(|m| format!("a-{m}")).collect();
    expected.sort();
    assert_eq!(assigned, expected);
    // Loaded members keep their generation: a heartbeat is accepted...
    assert_eq!(
        c.heartbeat(hb("g", &members[0], generation, None), 4)
            .await
            .error_code,
        0
    );
    // ...and members that never come back expire after their session timeout.
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    assert_eq!(
        c.heartbeat(hb("g", &members[0], generation, None), 4)
            .await
            .error_code,
        0
    );
    tokio::time::sleep(Duration::from_millis(4_001)).await;
    assert_eq!(
        c.heartbeat(hb("g", &members[0], generation, None), 4)
            .await
            .error_code,
        code(E::RebalanceInProgress)
    );
}

#[tokio::test(start_paused = true)]
async fn delete_groups_only_when_empty() {
    let log = Arc::new(MemLog::default());
    let c = start(config(), log.clone()).await;
    stable_group(&c, "busy", 1).await;
    c.offset_commit(commit_req("idle", "", -1, &[("t", 0, 9, "")]), 8)
        .await;
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = vec![sb("busy").into(), sb("idle").into(), sb("ghost").into()];
    let r = c.delete_groups(req, 2).await;
    let errors: Vec<i16> = r.results.iter().map(|x| x.error_code).collect();
    assert_eq!(
        errors,
        vec![code(E::NonEmptyGroup), 0, code(E::GroupIdNotFound)]
    );
    assert_eq!(fetch_one(&c, "idle", "t", 0).await.0, -1);
    assert_eq!(state_of(&c, "idle"), None);
    // Tombstones: a restarted coordinator does not resurrect the group.
    let c = start(config(), log).await;
    assert_eq!(state_of(&c, "idle"), None);
    assert_eq!(fetch_one(&c, "idle", "t", 0).await.0, -1);
}

#[tokio::test(start_paused = true)]
async fn offset_delete_refuses_subscribed_topics() {
    let c = start(config(), Arc::default()).await;
    let (generation, leader, _) = stable_group(&c, "g", 1).await;
    let r = c
        .offset_commit(
            commit_req(
                "g",
                &leader,
                generation,
                &[("t", 0, 1, ""), ("u", 0, 2, "")],
            ),
            8,
        )
        .await;
    assert_eq!(commit_errors(&r), vec![0, 0]);
    let mut req = OffsetDeleteRequest::default();
    req.group_id = sb("g").into();
    for topic in ["t", "u"] {
        let mut p = OffsetDeleteRequestPartition::default();
        p.partition_index = 0;
        let mut t = OffsetDeleteRequestTopic::default();
        t.name = sb(topic).into();
        t.partitions = vec![p];
        req.topics.push(t);
    }
    let r = c.offset_delete(req.clone(), 0).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        code(E::GroupSubscribedToTopic)
    );
    assert_eq!(r.topics[1].partitions[0].error_code, 0);
    assert_eq!(fetch_one(&c, "g", "t", 0).await.0, 1);
    assert_eq!(fetch_one(&c, "g", "u", 0).await.0, -1);
    req.group_id = sb("missing").into();
    assert_eq!(
        c.offset_delete(req, 0).await.error_code,
        code(E::GroupIdNotFound)
    );
}

#[tokio::test(start_paused = true)]
async fn list_groups_with_state_and_type_filters() {
    let c = start(config(), Arc::default()).await;
    stable_group(&c, "active", 1).await;
    c.offset_commit(commit_req("idle", "", -1, &[("t", 0, 9, "")]), 8)
        .await;
    let mut req = ListGroupsRequest::default();
    req.states_filter = vec![sb("stable")];
    let r = c.list_groups(req.clone(), 4).await;
    assert_eq!(
        r.groups
            .iter()
            .map(|g| g.group_id.0.to_string())
            .collect::<Vec<_>>(),
        vec!["active"]
    );
    assert_eq!(r.groups[0].group_state.as_str(), "Stable");
    assert_eq!(r.groups[0].protocol_type.as_str(), "consumer");
    // Before v4 the filter does not exist: everything is listed.
    assert_eq!(c.list_groups(req, 3).await.groups.len(), 2);
    let mut types = ListGroupsRequest::default();
    types.types_filter = vec![sb("consumer")];
    assert!(c.list_groups(types.clone(), 5).await.groups.is_empty());
    types.types_filter = vec![sb("Classic")];
    assert_eq!(c.list_groups(types, 5).await.groups.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn offsets_of_empty_groups_expire_after_retention() {
    let log = Arc::new(MemLog::default());
    let c = start(config(), log.clone()).await;
    c.offset_commit(commit_req("s", "", -1, &[("t", 0, 9, "")]), 8)
        .await;
    tokio::time::sleep(Duration::from_secs(10_080 * 60 - 1)).await;
    c.expire_offsets().await;
    assert_eq!(fetch_one(&c, "s", "t", 0).await.0, 9);
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.expire_offsets().await;
    assert_eq!(fetch_one(&c, "s", "t", 0).await.0, -1);
    assert_eq!(state_of(&c, "s"), None);
    assert_eq!(start(config(), log).await.committed_offsets(), Vec::new());
}

#[tokio::test(start_paused = true)]
async fn hostile_join_parameters_get_errors_not_stuck_groups() {
    let mut cfg = config();
    cfg.group_max_size = 1;
    let c = start(cfg, Arc::default()).await;
    for session in [0, -1, 5999, 1_800_001, i32::MAX] {
        let mut r = join_req("g", "", None, subscription(&["t"]));
        r.session_timeout_ms = session;
        assert_eq!(
            c.join_group(r, 7, "c", "h").await.error_code,
            code(E::InvalidSessionTimeout)
        );
    }
    let huge = join_req("g", "", None, Bytes::from(vec![0u8; 2 * 1024 * 1024]));
    assert_eq!(
        c.join_group(huge, 7, "c", "h").await.error_code,
        code(E::UnknownServerError)
    );
    let mut none = join_req("g", "", None, subscription(&["t"]));
    none.protocols.clear();
    assert_eq!(
        c.join_group(none, 7, "c", "h").await.error_code,
        code(E::InconsistentGroupProtocol)
    );
    let empty_id = join_req("", "", None, subscription(&["t"]));
    assert_eq!(
        c.join_group(empty_id, 7, "c", "h").await.error_code,
        code(E::InvalidGroupId)
    );
    // Absurd rebalance timeouts still complete within the initial delay.
    let mut neg = join_req("neg", "", None, subscription(&["t"]));
    neg.rebalance_timeout_ms = -5;
    let first = c.join_group(neg.clone(), 7, "c", "h").await;
    neg.member_id = first.member_id.clone();
    let t0 = Instant::now();
    let r = c.join_group(neg, 7, "c", "h").await;
    assert_eq!((r.error_code, r.generation_id), (0, 1));
    assert!(t0.elapsed() <= Duration::from_millis(3000));
    // group.max.size
    let second = c
        .join_group(join_req("neg", "", None, subscription(&["t"])), 7, "c", "h")
        .await;
    assert_eq!(second.error_code, code(E::GroupMaxSizeReached));
}

#[tokio::test(start_paused = true)]
async fn cooperative_rebalances_in_a_row() {
    let c = start(config(), Arc::default()).await;
    let (mut generation, _, mut members) = stable_group(&c, "g", 2).await;
    // Cooperative assignors rebalance twice in a row; each round every member rejoins.
    for _ in 0..3 {
        let mut joins = Vec::new();
        for m in &members {
            let c = c.clone();
            let m = m.clone();
            joins.push(tokio::spawn(async move {
                c.join_group(
                    join_req("g", &m, None, subscription(&["t"])),
                    7,
                    "client",
                    "h",
                )
                .await
            }));
        }
        let mut responses = Vec::new();
        for j in joins {
            responses.push(j.await.unwrap());
        }
        assert!(responses
            .iter()
            .all(|r| r.error_code == 0 && r.generation_id == generation + 1));
        generation += 1;
        let leader = responses[0].leader.to_string();
        let mut syncs = Vec::new();
        for r in &responses {
            let c = c.clone();
            let id = r.member_id.to_string();
            let assignments: Vec<(String, Vec<u8>)> = if id == leader {
                members.iter().map(|m| (m.clone(), b"x".to_vec())).collect()
            } else {
                Vec::new()
            };
            syncs.push(tokio::spawn(async move {
                let a: Vec<(&str, &[u8])> = assignments
                    .iter()
                    .map(|(m, a)| (m.as_str(), a.as_slice()))
                    .collect();
                c.sync_group(sync_req("g", &id, generation, &a), 4).await
            }));
        }
        for s in syncs {
            assert_eq!(s.await.unwrap().assignment, Bytes::from("x"));
        }
        members = responses.iter().map(|r| r.member_id.to_string()).collect();
        assert_eq!(state_of(&c, "g"), Some(("Stable", 2)));
    }
}

#[test]
fn partition_for_matches_java_string_hash_code() {
    use crate::group::coordinator::partition_for;
    // Hash values printed by Java's String.hashCode (jshell).
    assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
    assert_eq!(partition_for("zzzzzzz", 50), 215_481_018 % 50);
    // Negative hash: Kafka's Utils.abs, not `& 0x7fffffff` (which would give 15).
    assert_eq!(
        partition_for("kafka-python-default-group", 50),
        243_457_783 % 50
    );
    assert_eq!(partition_for("kafka-python-default-group", 50), 33);
    // Integer.MIN_VALUE maps to partition 0.
    assert_eq!(partition_for("polygenelubricants", 50), 0);
    // Non-BMP characters hash as two UTF-16 units.
    assert_eq!(partition_for("\u{1F600}", 1000), 1_772_899 % 1000);
}

fn encodes<T: Encodable>(msg: &T, versions: std::ops::RangeInclusive<i16>) {
    for v in versions {
        let mut buf = BytesMut::new();
        msg.encode(&mut buf, v)
            .unwrap_or_else(|e| panic!("version {v}: {e}"));
    }
}

#[tokio::test(start_paused = true)]
async fn every_response_encodes_at_every_version() {
    let c = start(config(), Arc::default()).await;
    stable_group(&c, "g", 1).await;
    c.offset_commit(commit_req("g2", "", -1, &[("t", 0, 1, "m")]), 8)
        .await;
    for v in 0..=9 {
        encodes(
            &c.join_group(join_req("g", "", None, subscription(&["t"])), v, "c", "h")
                .await,
            v..=v,
        );
        encodes(
            &c.join_group(
                join_req("x", "bad", None, subscription(&["t"])),
                v,
                "c",
                "h",
            )
            .await,
            v..=v,
        );
    }
    for v in 0..=5 {
        encodes(&c.sync_group(sync_req("g", "bad", 1, &[]), v).await, v..=v);
        let mut leave = LeaveGroupRequest::default();
        leave.group_id = sb("zz").into();
        leave.member_id = sb("m");
        encodes(&c.leave_group(leave, v).await, v..=v);
    }
    for v in 0..=4 {
        encodes(&c.heartbeat(hb("g", "m", 1, None), v).await, v..=v);
    }
    for v in 2..=10 {
        encodes(
            &c.offset_commit(commit_req("g2", "", -1, &[("t", 0, 1, "")]), v.min(9))
                .await,
            v..=v,
        );
    }
    for v in 1..=9 {
        let mut f = OffsetFetchRequest::default();
        f.group_id = sb("g2").into();
        f.topics = None;
        let mut grp = OffsetFetchRequestGroup::default();
        grp.group_id = sb("g2").into();
        grp.topics = None;
        f.groups = vec![grp];
        encodes(&c.offset_fetch(f, v).await, v..=v);
    }
    for v in 0..=5 {
        encodes(&c.list_groups(ListGroupsRequest::default(), v).await, v..=v);
    }
    for v in 0..=6 {
        let mut d = DescribeGroupsRequest::default();
        d.groups = vec![sb("g").into(), sb("nothing").into()];
        encodes(&c.describe_groups(d, v).await, v..=v);
    }
    let mut del = DeleteGroupsRequest::default();
    del.groups_names = vec![sb("g").into()];
    encodes(&c.delete_groups(del, 2).await, 0..=2);
    let mut od = OffsetDeleteRequest::default();
    od.group_id = sb("g2").into();
    encodes(&c.offset_delete(od, 0).await, 0..=0);
}
