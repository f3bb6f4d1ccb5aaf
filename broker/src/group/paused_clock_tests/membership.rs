//! Rebalance tests on tokio's paused clock: timers fire deterministically as virtual time
//! advances, so delays and timeouts are asserted exactly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::*;
use tokio::time::Instant;

use super::support::*;

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
