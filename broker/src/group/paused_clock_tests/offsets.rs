//! Offset, persistence and admin-API tests on tokio's paused clock.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;

use super::support::*;
use crate::group::GroupCoordinator;

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
