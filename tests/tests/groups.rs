//! Consumer groups end to end (issue 3): balanced confluent-kafka members with fail-over and
//! committed offsets that survive a restart, kafka-python manual commits inspected through
//! the admin APIs, kcat's `-G` balanced consumer, static membership, and hostile JoinGroups.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, JoinGroupRequest,
    JoinGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use strata_tests::tools::{kcat_bin, run_with_deadline, tail};
use strata_tests::wire::{decode_response, probe_api_versions, CLIENT_ID};
use strata_tests::{poll_until, run_kcat, run_python, Broker, FrameOutcome, RawConnection};

/// Kafka's error codes the tests expect (kafka-protocol's `ResponseError` numbering).
const NONE: i16 = 0;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const MEMBER_ID_REQUIRED: i16 = 79;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;

/// The broker's `group.min.session.timeout.ms` / `group.max.session.timeout.ms` (Kafka's defaults).
const MIN_SESSION_TIMEOUT_MS: i32 = 6_000;
const MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;

/// Newest JoinGroup version the codec speaks.
const CODEC_MAX_JOIN_GROUP: i16 = 9;
/// Newest SyncGroup version the codec speaks.
const CODEC_MAX_SYNC_GROUP: i16 = 5;
/// How long a JoinGroup/SyncGroup may take to be answered (no initial delay configured).
const GROUP_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// The RSS a broker may reach after a hostile group request.
const RSS_BOUND_KIB: u64 = 500 * 1024;
/// Deadline for one kcat `-G` run (it joins a group and reads a few hundred records).
const KCAT_GROUP_TIMEOUT: Duration = Duration::from_secs(90);

/// Groups rebalance at once: the tests are not about `group.initial.rebalance.delay.ms`.
fn group_broker(extra: &[(&str, &str)]) -> Broker {
    let mut overrides = vec![("group.initial.rebalance.delay.ms", "0")];
    overrides.extend_from_slice(extra);
    Broker::start_with(&overrides)
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------
// Real clients
// ---------------------------------------------------------------------------------------

#[test]
fn confluent_group_balances_fails_over_and_resumes_after_restart() {
    let mut broker = group_broker(&[]);
    let state = broker.scratch_dir().join("group-state.json");
    let state = state.to_str().unwrap().to_owned();
    let bootstrap = broker.bootstrap();
    let output = run_python(
        "ck_group_balance.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--phase",
            "balance",
            "--state",
            &state,
            "--records",
            "60000",
            "--records-after-leave",
            "6000",
        ],
    );
    let summary = stdout_of(&output);
    assert!(
        summary
            .contains("OK confluent-kafka group: 66000 records consumed exactly once by 3 members"),
        "summary: {summary}"
    );

    let status = broker.sigterm_and_wait();
    assert!(
        status.success(),
        "strata exited with {status} after SIGTERM, expected 0"
    );
    broker.restart();
    let bootstrap = broker.bootstrap();
    let output = run_python(
        "ck_group_balance.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--phase",
            "resume",
            "--state",
            &state,
            "--records-after-restart",
            "600",
        ],
    );
    let summary = stdout_of(&output);
    assert!(
        summary.contains("OK confluent-kafka group resume"),
        "summary: {summary}"
    );
}

#[test]
fn confluent_killed_member_expires_after_session_timeout() {
    let broker = group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let output = run_python("ck_session_expiry.py", &["--bootstrap", &bootstrap]);
    let summary = stdout_of(&output);
    assert!(
        summary.contains("OK confluent-kafka session expiry"),
        "summary: {summary}"
    );
}

#[test]
fn kafka_python_manual_commits_and_group_admin() {
    let broker = group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let output = run_python(
        "kp_group_admin.py",
        &["--bootstrap", &bootstrap, "--records", "900"],
    );
    let summary = stdout_of(&output);
    assert!(
        summary.contains("OK kafka-python group"),
        "summary: {summary}"
    );
}

#[test]
fn confluent_static_member_restart_causes_no_rebalance() {
    let broker = group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let output = run_python(
        "ck_static_member.py",
        &["--bootstrap", &bootstrap, "--records", "400"],
    );
    let summary = stdout_of(&output);
    assert!(
        summary.contains("OK confluent-kafka static membership"),
        "summary: {summary}"
    );
}

/// kcat with `args`, killed and failed after `KCAT_GROUP_TIMEOUT` (a `-G` consumer that
/// never gets its records would otherwise wait forever).
fn kcat_group(args: &[&str]) -> Output {
    let mut cmd = Command::new(kcat_bin());
    cmd.args(args);
    let output = run_with_deadline(cmd, None, KCAT_GROUP_TIMEOUT);
    assert!(
        output.status.success(),
        "kcat {} failed with {}\n--- stderr ---\n{}",
        args.join(" "),
        output.status,
        tail(&output.stderr)
    );
    output
}

/// One balanced-consumer run: joins `group`, prints `count` records as
/// `partition|offset|value`, commits what it printed and leaves.
fn kcat_group_consume(
    broker: &Broker,
    group: &str,
    topic: &str,
    count: usize,
) -> Vec<(i32, i64, String)> {
    let bootstrap = broker.bootstrap();
    let count = count.to_string();
    let output = kcat_group(&[
        "-b",
        &bootstrap,
        "-G",
        group,
        "-c",
        &count,
        "-q",
        "-f",
        "%p|%o|%s\\n",
        "-X",
        "auto.offset.reset=earliest",
        "-X",
        "auto.commit.interval.ms=100",
        "-X",
        "session.timeout.ms=6000",
        "-X",
        "heartbeat.interval.ms=1000",
        topic,
    ]);
    stdout_of(&output)
        .lines()
        .map(|line| {
            let mut fields = line.splitn(3, '|');
            let partition = fields.next().and_then(|p| p.parse().ok());
            let offset = fields.next().and_then(|o| o.parse().ok());
            let value = fields.next();
            match (partition, offset, value) {
                (Some(p), Some(o), Some(v)) => (p, o, v.to_owned()),
                _ => panic!("kcat -G printed an unexpected line {line:?}"),
            }
        })
        .collect()
}

#[test]
fn kcat_balanced_consumer_commits_and_resumes() {
    const RECORDS: usize = 1000;
    const FIRST: usize = 600;
    let broker = group_broker(&[
        ("auto.create.topics.enable", "true"),
        ("num.partitions", "3"),
    ]);
    let topic = "kcat-group";
    let group = "kcat-balanced";
    let bootstrap = broker.bootstrap();
    let input: String = (0..RECORDS)
        .map(|i| format!("key-{i}:value-{i:05}\n"))
        .collect();
    run_kcat(
        &[
            "-b",
            &bootstrap,
            "-t",
            topic,
            "-P",
            "-K:",
            "-X",
            "acks=all",
            "-X",
            "message.timeout.ms=120000",
            "-m",
            "60",
        ],
        Some(input.as_bytes()),
    );

    let first = kcat_group_consume(&broker, group, topic, FIRST);
    assert_eq!(
        first.len(),
        FIRST,
        "the first kcat -G -c {FIRST} run printed {} records",
        first.len()
    );
    let second = kcat_group_consume(&broker, group, topic, RECORDS - FIRST);
    assert_eq!(
        second.len(),
        RECORDS - FIRST,
        "the second kcat -G run printed {} records",
        second.len()
    );

    // Together the two runs saw every record exactly once: the second started at the
    // offsets the first committed.
    let mut seen: BTreeMap<(i32, i64), &str> = BTreeMap::new();
    for (run, records) in [("first", &first), ("second", &second)] {
        for (p, o, v) in records {
            if let Some(earlier) = seen.insert((*p, *o), v) {
                panic!("partition {p} offset {o} ({earlier}) was delivered again in the {run} run");
            }
        }
    }
    let values: BTreeSet<&str> = seen.values().copied().collect();
    let expected: BTreeSet<String> = (0..RECORDS).map(|i| format!("value-{i:05}")).collect();
    let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(
        values, expected,
        "the two runs together must see every record once"
    );
    for p in 0..3 {
        let first_max = first.iter().filter(|r| r.0 == p).map(|r| r.1).max();
        let second_min = second.iter().filter(|r| r.0 == p).map(|r| r.1).min();
        if let (Some(a), Some(b)) = (first_max, second_min) {
            assert_eq!(
                b,
                a + 1,
                "partition {p}: the second run started at {b}, expected the commit {}",
                a + 1
            );
        }
    }

    // Nothing is left behind the committed offsets: a third run sees only a new record.
    run_kcat(
        &[
            "-b", &bootstrap, "-t", topic, "-P", "-K:", "-X", "acks=all", "-m", "60",
        ],
        Some(b"final:value-final\n"),
    );
    let third = kcat_group_consume(&broker, group, topic, 1);
    assert_eq!(third.len(), 1, "the third run printed {third:?}");
    assert_eq!(
        third[0].2, "value-final",
        "the third run must start after the committed offsets"
    );
}

// ---------------------------------------------------------------------------------------
// Hostile JoinGroups on a raw connection
// ---------------------------------------------------------------------------------------

/// The newest version of `api` that both the broker (per ApiVersions) and the codec speak.
fn newest_version(broker: &Broker, api: ApiKey, codec_max: i16) -> i16 {
    let versions = probe_api_versions(broker.addr(), GROUP_RESPONSE_TIMEOUT).unwrap();
    let entry = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == api as i16)
        .unwrap_or_else(|| panic!("ApiVersions must list {api:?} (api key {})", api as i16));
    entry.max_version.min(codec_max)
}

/// The newest JoinGroup version both the broker and the codec speak; at least 4 (KIP-394).
fn join_group_version(broker: &Broker) -> i16 {
    let version = newest_version(broker, ApiKey::JoinGroup, CODEC_MAX_JOIN_GROUP);
    assert!(
        version >= 4,
        "JoinGroup max version {version} is below 4 (KIP-394 member ids)"
    );
    version
}

/// ConsumerProtocolSubscription v0: the topics, no user data.
fn consumer_subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    buf.put_i32(i32::try_from(topics.len()).unwrap());
    for topic in topics {
        buf.put_i16(i16::try_from(topic.len()).unwrap());
        buf.put_slice(topic.as_bytes());
    }
    buf.put_i32(-1);
    buf.freeze()
}

/// ConsumerProtocolAssignment v0: `partitions` of `topic`, no user data.
fn consumer_assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    buf.put_i32(1);
    buf.put_i16(i16::try_from(topic.len()).unwrap());
    buf.put_slice(topic.as_bytes());
    buf.put_i32(i32::try_from(partitions.len()).unwrap());
    for p in partitions {
        buf.put_i32(*p);
    }
    buf.put_i32(-1);
    buf.freeze()
}

struct Join<'a> {
    group: &'a str,
    member_id: &'a str,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    metadata: Bytes,
}

fn join_request(join: &Join<'_>) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(join.group.to_owned())))
        .with_session_timeout_ms(join.session_timeout_ms)
        .with_rebalance_timeout_ms(join.rebalance_timeout_ms)
        .with_member_id(StrBytes::from_string(join.member_id.to_owned()))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(join.metadata.clone())])
}

/// Errors a client answers by finding the coordinator again and retrying.
fn is_coordinator_retriable(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
    )
}

/// FindCoordinator for `group`, as every client sends before JoinGroup (it also makes the
/// broker create `__consumer_offsets`); retried while the coordinator is not ready.
fn find_coordinator(conn: &mut RawConnection, group: &str) {
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_owned()))
        .with_key_type(0);
    let answer = poll_until(GROUP_RESPONSE_TIMEOUT, || {
        let id = conn
            .send_request(ApiKey::FindCoordinator, 1, &request)
            .unwrap();
        let response: FindCoordinatorResponse = conn
            .read_response(ApiKey::FindCoordinator, 1, id, GROUP_RESPONSE_TIMEOUT)
            .unwrap();
        if is_coordinator_retriable(response.error_code) {
            return None;
        }
        Some(response)
    })
    .unwrap_or_else(|| panic!("FindCoordinator({group}) kept answering a retriable error"));
    assert_eq!(
        answer.error_code, NONE,
        "FindCoordinator({group}) failed with error {}",
        answer.error_code
    );
}

/// One JoinGroup (after FindCoordinator), retried like a client while the coordinator loads.
fn join_group(conn: &mut RawConnection, version: i16, join: &Join<'_>) -> JoinGroupResponse {
    find_coordinator(conn, join.group);
    let request = join_request(join);
    poll_until(GROUP_RESPONSE_TIMEOUT, || {
        let id = conn
            .send_request(ApiKey::JoinGroup, version, &request)
            .unwrap();
        let response: JoinGroupResponse = conn
            .read_response(ApiKey::JoinGroup, version, id, GROUP_RESPONSE_TIMEOUT)
            .unwrap_or_else(|e| panic!("JoinGroup v{version} for {}: {e:#}", join.group));
        (!is_coordinator_retriable(response.error_code)).then_some(response)
    })
    .unwrap_or_else(|| {
        panic!(
            "JoinGroup v{version} for {} kept answering a coordinator-not-ready error",
            join.group
        )
    })
}

/// Joins `group` the KIP-394 way: a first JoinGroup without member id must be refused with
/// MEMBER_ID_REQUIRED and a member id, the second (with it) must succeed.
fn join_with_member_id(
    conn: &mut RawConnection,
    version: i16,
    join: &Join<'_>,
) -> JoinGroupResponse {
    let first = join_group(conn, version, join);
    assert_eq!(
        first.error_code, MEMBER_ID_REQUIRED,
        "JoinGroup v{version} without member id must get MEMBER_ID_REQUIRED (79), got {}",
        first.error_code
    );
    let member_id = first.member_id.as_str().to_owned();
    assert!(
        !member_id.is_empty(),
        "MEMBER_ID_REQUIRED must come with a member id"
    );
    join_group(
        conn,
        version,
        &Join {
            member_id: &member_id,
            metadata: join.metadata.clone(),
            ..*join
        },
    )
}

#[test]
fn join_group_session_timeout_outside_bounds_is_invalid_session_timeout() {
    let mut broker = group_broker(&[]);
    let newest = join_group_version(&broker);
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    for version in [1, newest] {
        for session_timeout_ms in [
            -1,
            0,
            1_000,
            MIN_SESSION_TIMEOUT_MS - 1,
            MAX_SESSION_TIMEOUT_MS + 1,
            i32::MAX,
        ] {
            let response = join_group(
                &mut conn,
                version,
                &Join {
                    group: "hostile-session",
                    member_id: "",
                    session_timeout_ms,
                    rebalance_timeout_ms: 30_000,
                    metadata: consumer_subscription(&["t"]),
                },
            );
            assert_eq!(
                response.error_code, INVALID_SESSION_TIMEOUT,
                "JoinGroup v{version} with session timeout {session_timeout_ms} ms (bounds \
                 {MIN_SESSION_TIMEOUT_MS}..={MAX_SESSION_TIMEOUT_MS}) must get \
                 INVALID_SESSION_TIMEOUT (26), got {}",
                response.error_code
            );
        }
    }
    // The bounds themselves are valid: the group forms with the minimum.
    let response = join_with_member_id(
        &mut conn,
        newest,
        &Join {
            group: "hostile-session",
            member_id: "",
            session_timeout_ms: MIN_SESSION_TIMEOUT_MS,
            rebalance_timeout_ms: 30_000,
            metadata: consumer_subscription(&["t"]),
        },
    );
    assert_eq!(
        response.error_code, NONE,
        "JoinGroup with session timeout = group.min.session.timeout.ms must succeed"
    );
    broker.assert_running("JoinGroups with invalid session timeouts");
}

#[test]
fn join_group_v4_plus_without_member_id_gets_member_id_required() {
    let mut broker = group_broker(&[]);
    let newest = join_group_version(&broker);
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    let mut ids = BTreeSet::new();
    for version in [4, newest] {
        let group = format!("hostile-member-id-v{version}");
        let join = Join {
            group: &group,
            member_id: "",
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            metadata: consumer_subscription(&["t"]),
        };
        let refused = join_group(&mut conn, version, &join);
        assert_eq!(
            refused.error_code, MEMBER_ID_REQUIRED,
            "JoinGroup v{version} without member id must get MEMBER_ID_REQUIRED (79), got {}",
            refused.error_code
        );
        let member_id = refused.member_id.as_str().to_owned();
        assert!(
            member_id.starts_with(CLIENT_ID),
            "v{version}: the assigned member id {member_id:?} should be the client id plus a unique suffix"
        );
        assert!(
            ids.insert(member_id.clone()),
            "member id {member_id} handed out twice"
        );

        let joined = join_group(
            &mut conn,
            version,
            &Join {
                member_id: &member_id,
                ..join
            },
        );
        assert_eq!(
            joined.error_code, NONE,
            "v{version}: JoinGroup with the assigned member id failed"
        );
        assert_eq!(
            joined.member_id.as_str(),
            member_id,
            "v{version}: member id changed on rejoin"
        );
        assert_eq!(
            joined.leader.as_str(),
            member_id,
            "v{version}: the only member must lead"
        );
        assert!(
            joined.generation_id >= 1,
            "v{version}: generation {}",
            joined.generation_id
        );
        assert_eq!(
            joined.protocol_name.as_ref().map(|s| s.as_str()),
            Some("range"),
            "v{version}: the selected protocol"
        );
        assert_eq!(
            joined.members.len(),
            1,
            "v{version}: the leader gets the member list"
        );
        assert_eq!(joined.members[0].metadata, consumer_subscription(&["t"]));
    }
    broker.assert_running("JoinGroups without member id");
}

#[test]
fn absurd_rebalance_timeout_does_not_stick_the_group() {
    let mut broker = group_broker(&[]);
    let newest = join_group_version(&broker);
    let group = "hostile-rebalance";
    let topic = "hostile-rebalance-topic";
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    let joined = join_with_member_id(
        &mut conn,
        newest,
        &Join {
            group,
            member_id: "",
            session_timeout_ms: MIN_SESSION_TIMEOUT_MS,
            rebalance_timeout_ms: i32::MAX,
            metadata: consumer_subscription(&[topic]),
        },
    );
    assert_eq!(
        joined.error_code, NONE,
        "JoinGroup with rebalance timeout i32::MAX and a valid session timeout must be accepted"
    );
    let sync_version = newest_version(&broker, ApiKey::SyncGroup, CODEC_MAX_SYNC_GROUP);
    let member_id = joined.member_id.clone();
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(member_id.clone())
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(member_id)
            .with_assignment(consumer_assignment(topic, &[0, 1]))]);
    let id = conn
        .send_request(ApiKey::SyncGroup, sync_version, &sync)
        .unwrap();
    let synced: SyncGroupResponse = conn
        .read_response(ApiKey::SyncGroup, sync_version, id, GROUP_RESPONSE_TIMEOUT)
        .unwrap();
    assert_eq!(
        synced.error_code, NONE,
        "SyncGroup of the raw leader failed"
    );
    assert_eq!(
        synced.assignment,
        consumer_assignment(topic, &[0, 1]),
        "SyncGroup must hand back the leader's assignment"
    );

    // The raw member goes silent (no heartbeat, no LeaveGroup). A real consumer joining now
    // triggers a rebalance the silent member never answers; its session timeout, not its
    // 24-day rebalance timeout, must end the wait.
    drop(conn);
    let bootstrap = broker.bootstrap();
    let output = run_python(
        "kp_join_after.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--deadline",
            "45",
        ],
    );
    let summary = stdout_of(&output);
    assert!(
        summary.contains("OK kafka-python joined"),
        "summary: {summary}"
    );
    broker.assert_running("a member with rebalance timeout i32::MAX");
}

/// Reads the answer to a JoinGroup sent with `send_request`; a close or silence fails.
fn read_join_answer(
    conn: &mut RawConnection,
    version: i16,
    correlation_id: i32,
    what: &str,
) -> JoinGroupResponse {
    match conn.read_frame(GROUP_RESPONSE_TIMEOUT) {
        FrameOutcome::Frame(frame) => {
            decode_response(ApiKey::JoinGroup, version, correlation_id, frame).unwrap()
        }
        other => panic!("{what}: expected a JoinGroup answer (error or acceptance), got {other:?}"),
    }
}

#[test]
fn one_mib_protocol_metadata_is_answered_without_harm() {
    const BIG: usize = 1024 * 1024;
    let mut broker = group_broker(&[]);
    let newest = join_group_version(&broker);
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    let metadata = Bytes::from(vec![0x5au8; BIG]);
    let join = Join {
        group: "hostile-big-metadata",
        member_id: "",
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        metadata: metadata.clone(),
    };
    find_coordinator(&mut conn, join.group);
    let id = conn
        .send_request(ApiKey::JoinGroup, newest, &join_request(&join))
        .unwrap();
    // 1 MiB is far below socket.request.max.bytes (100 MiB), so Kafka answers: an error,
    // or MEMBER_ID_REQUIRED and then, on the rejoin, acceptance. Either is fine; silence or
    // a dropped connection is not.
    let first = read_join_answer(&mut conn, newest, id, "JoinGroup with 1 MiB of metadata");
    if first.error_code == MEMBER_ID_REQUIRED {
        let member_id = first.member_id.as_str().to_owned();
        let rejoin = Join {
            member_id: &member_id,
            metadata: metadata.clone(),
            ..join
        };
        let id = conn
            .send_request(ApiKey::JoinGroup, newest, &join_request(&rejoin))
            .unwrap();
        let joined = read_join_answer(&mut conn, newest, id, "the 1 MiB rejoin");
        if joined.error_code == NONE {
            // Kafka stores the metadata as given and hands it to the leader unchanged.
            assert_eq!(joined.members.len(), 1, "the leader gets the member list");
            assert!(
                joined.members[0].metadata == metadata,
                "the 1 MiB metadata came back altered ({} bytes)",
                joined.members[0].metadata.len()
            );
        }
    }

    broker.assert_running("JoinGroup with 1 MiB of protocol metadata");
    let rss = broker.rss_kib();
    assert!(
        rss < RSS_BOUND_KIB,
        "broker RSS {rss} KiB after 1 MiB metadata, expected below {RSS_BOUND_KIB} KiB"
    );
    // The coordinator still forms ordinary groups.
    let mut fresh = RawConnection::connect(broker.addr()).unwrap();
    let normal = join_with_member_id(
        &mut fresh,
        newest,
        &Join {
            group: "after-big-metadata",
            member_id: "",
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            metadata: consumer_subscription(&["t"]),
        },
    );
    assert_eq!(
        normal.error_code, NONE,
        "a normal group could not form after the 1 MiB JoinGroup"
    );
}
