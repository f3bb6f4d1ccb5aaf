//! strata-perf's client against a broker that lies. A tiny fake broker on a TCP socket answers
//! honestly where told to and otherwise with counts claiming 2^31 - 1 elements, which
//! kafka-protocol would reserve room for before reading one (an abort, not an error). Every
//! such response must come back as an error naming it; the strata-perf binary must exit with
//! its message, not die by a signal.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::process::Command;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, ConsumerProtocolAssignment, CreateTopicsRequest, FetchRequest,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, ListOffsetsRequest, MetadataRequest,
    OffsetCommitRequest, OffsetFetchRequest, ProduceRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use strata_benches::client::{ClientError, KafkaConnection};
use strata_benches::group::{self, GroupVersions};
use strata_benches::ops::{self, OpsError, Versions};
use strata_benches::security::ClientSecurity;
use strata_protocol::guard::{self, GuardError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The fake broker's answer to a request (api key, version): a response body, or `None` for
/// the honest default (ApiVersions only; anything else closes the connection).
type Answer = Arc<dyn Fn(ApiKey, i16) -> Option<Vec<u8>> + Send + Sync>;

/// Every API strata-perf speaks, offered in v0..=v20 so that it picks its own highest.
const ADVERTISED: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
    ApiKey::SaslHandshake,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::InitProducerId,
    ApiKey::SaslAuthenticate,
];

fn encoded<T: Encodable>(value: &T, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    value.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

fn honest_api_versions(version: i16) -> Vec<u8> {
    let keys = ADVERTISED
        .iter()
        .map(|k| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(0)
                .with_max_version(20)
        })
        .collect();
    encoded(&ApiVersionsResponse::default().with_api_keys(keys), version)
}

/// Starts the fake broker on the current runtime; returns its address.
async fn fake_broker(answer: Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                while let Ok(size) = socket.read_i32().await {
                    let mut frame = vec![0; size as usize];
                    if socket.read_exact(&mut frame).await.is_err() {
                        return;
                    }
                    let api_key =
                        ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).unwrap();
                    let version = i16::from_be_bytes([frame[2], frame[3]]);
                    let body = match (answer(api_key, version), api_key) {
                        (Some(body), _) => body,
                        (None, ApiKey::ApiVersions) => honest_api_versions(version),
                        (None, _) => return,
                    };
                    let mut out = BytesMut::new();
                    out.put_i32(0);
                    out.extend_from_slice(&frame[4..8]); // the correlation id
                    if api_key.response_header_version(version) >= 1 {
                        out.put_u8(0); // no header tagged fields
                    }
                    out.extend_from_slice(&body);
                    let size = (out.len() - 4) as i32;
                    out[..4].copy_from_slice(&size.to_be_bytes());
                    if socket.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// `prefix` (the fields before a response's first array, zeros) and then that array's count
/// claiming i32::MAX elements: a compact count (i32::MAX + 1 as a varint) when flexible.
fn huge_count(prefix: usize, flexible: bool) -> Vec<u8> {
    let mut body = vec![0; prefix];
    if flexible {
        body.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x08]);
    } else {
        body.extend_from_slice(&i32::MAX.to_be_bytes());
    }
    body.extend_from_slice(&[0; 32]);
    body
}

fn assert_refused_count<T: std::fmt::Debug>(result: Result<T, ClientError>, api_key: ApiKey) {
    match result {
        Err(ClientError::MalformedResponse {
            api_key: refused,
            reason: GuardError::ArrayTooLong { count, .. },
            ..
        }) => {
            assert_eq!(refused, api_key);
            assert_eq!(count, i32::MAX as u64, "{api_key:?}");
        }
        other => panic!("{api_key:?}: expected a refused array count, found {other:?}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn api_versions_claiming_i32_max_keys_is_an_error_not_an_abort() {
    runtime().block_on(async {
        // v0: error_code, then api_keys.
        let addr = fake_broker(Arc::new(|api_key, _| {
            (api_key == ApiKey::ApiVersions).then(|| huge_count(2, false))
        }))
        .await;
        let mut conn = KafkaConnection::connect(&addr, "test").await.unwrap();
        match ops::negotiate(&mut conn).await {
            Err(OpsError::Client(e)) => assert_refused_count::<()>(Err(e), ApiKey::ApiVersions),
            other => panic!("expected a refused ApiVersions response, found {other:?}"),
        }
    });
}

/// The version strata-perf negotiated for `api_key` with a broker offering v0..=v20.
fn negotiated(versions: &Versions, api_key: ApiKey) -> i16 {
    let g: GroupVersions = versions.group.unwrap();
    match api_key {
        ApiKey::Produce => versions.produce,
        ApiKey::Fetch => versions.fetch,
        ApiKey::Metadata => versions.metadata,
        ApiKey::ListOffsets => versions.list_offsets,
        ApiKey::CreateTopics => versions.create_topics.unwrap(),
        ApiKey::JoinGroup => g.join,
        ApiKey::OffsetFetch => g.offset_fetch,
        ApiKey::OffsetCommit => g.offset_commit,
        ApiKey::LeaveGroup => g.leave,
        other => panic!("no negotiated version for {other:?}"),
    }
}

/// Sends a default `Req` in `version` and asserts its response is refused for a count.
async fn refused<Req>(conn: &mut KafkaConnection, version: i16)
where
    Req: Request + Default,
    Req::Response: std::fmt::Debug,
{
    let api_key = ApiKey::try_from(Req::KEY).unwrap();
    let result = conn
        .call::<Req, Req::Response>(api_key, version, &Req::default())
        .await;
    assert_refused_count(result, api_key);
}

#[test]
fn every_response_with_an_array_claiming_i32_max_elements_is_an_error() {
    // Each API with an array, and the bytes of fields before its first one in the version
    // strata-perf picks from v0..=v20 (all flexible by then).
    let cases: &[(ApiKey, usize)] = &[
        (ApiKey::Metadata, 4),     // throttle_time_ms
        (ApiKey::CreateTopics, 4), // throttle_time_ms
        (ApiKey::Produce, 0),
        (ApiKey::Fetch, 10),       // throttle_time_ms, error_code, session_id
        (ApiKey::ListOffsets, 4),  // throttle_time_ms
        (ApiKey::JoinGroup, 14),   // throttle, error, generation, four strings
        (ApiKey::OffsetFetch, 4),  // throttle_time_ms
        (ApiKey::OffsetCommit, 4), // throttle_time_ms
        (ApiKey::LeaveGroup, 6),   // throttle_time_ms, error_code
    ];
    runtime().block_on(async {
        for &(hostile, prefix) in cases {
            let addr = fake_broker(Arc::new(move |api_key, _| {
                (api_key == hostile).then(|| huge_count(prefix, true))
            }))
            .await;
            let mut conn = KafkaConnection::connect(&addr, "test").await.unwrap();
            let versions = ops::negotiate(&mut conn).await.unwrap();
            let v = negotiated(&versions, hostile);
            assert!(
                v >= 9 || hostile.response_header_version(v) == 1,
                "{hostile:?} v{v} expected flexible"
            );
            let c = &mut conn;
            match hostile {
                ApiKey::Metadata => refused::<MetadataRequest>(c, v).await,
                ApiKey::CreateTopics => refused::<CreateTopicsRequest>(c, v).await,
                ApiKey::Produce => refused::<ProduceRequest>(c, v).await,
                ApiKey::Fetch => refused::<FetchRequest>(c, v).await,
                ApiKey::ListOffsets => refused::<ListOffsetsRequest>(c, v).await,
                ApiKey::JoinGroup => refused::<JoinGroupRequest>(c, v).await,
                ApiKey::OffsetFetch => refused::<OffsetFetchRequest>(c, v).await,
                ApiKey::OffsetCommit => refused::<OffsetCommitRequest>(c, v).await,
                ApiKey::LeaveGroup => refused::<LeaveGroupRequest>(c, v).await,
                other => panic!("no request written for {other:?}"),
            }
        }
    });
}

/// A well-formed but huge answer (17 MiB of Metadata: one topic name of that length) is
/// refused by size before decoding: kafka-protocol's structs can be ~30x the wire bytes.
#[test]
fn a_non_fetch_response_beyond_the_decoded_bound_is_refused_by_size() {
    use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
    use kafka_protocol::messages::MetadataResponse;
    use strata_benches::client::MAX_DECODED_RESPONSE;

    runtime().block_on(async {
        let answer: Answer = Arc::new(|api_key, version| {
            (api_key == ApiKey::Metadata).then(|| {
                let name = "t".repeat(MAX_DECODED_RESPONSE + 1024);
                let topic = MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(name))));
                encoded(
                    &MetadataResponse::default().with_topics(vec![topic]),
                    version,
                )
            })
        });
        let addr = fake_broker(answer).await;
        let mut conn = KafkaConnection::connect(&addr, "test").await.unwrap();
        let versions = ops::negotiate(&mut conn).await.unwrap();
        let result = ops::describe_topic(&mut conn, &versions, "t").await;
        match result {
            Err(OpsError::Client(ClientError::ResponseTooLarge { api_key, size, .. })) => {
                assert_eq!(api_key, ApiKey::Metadata);
                assert!(size > MAX_DECODED_RESPONSE, "{size}");
            }
            other => panic!("expected a refusal by size, found {other:?}"),
        }
    });
}

#[test]
fn every_version_strata_perf_negotiates_has_a_response_shape() {
    runtime().block_on(async {
        let addr = fake_broker(Arc::new(|_, _| None)).await;
        let mut conn = KafkaConnection::connect(&addr, "test").await.unwrap();
        let versions = ops::negotiate(&mut conn).await.unwrap();
        let g = versions.group.unwrap();
        let mut sent = vec![
            (ApiKey::ApiVersions, 0),
            (ApiKey::Produce, versions.produce),
            (ApiKey::Fetch, versions.fetch),
            (ApiKey::Metadata, versions.metadata),
            (ApiKey::ListOffsets, versions.list_offsets),
            (ApiKey::CreateTopics, versions.create_topics.unwrap()),
            (ApiKey::FindCoordinator, g.find_coordinator),
            (ApiKey::JoinGroup, g.join),
            (ApiKey::SyncGroup, g.sync),
            (ApiKey::Heartbeat, g.heartbeat),
            (ApiKey::OffsetFetch, g.offset_fetch),
            (ApiKey::OffsetCommit, g.offset_commit),
            (ApiKey::LeaveGroup, g.leave),
            // security.rs: SaslHandshake v1, SaslAuthenticate v2.
            (ApiKey::SaslHandshake, 1),
            (ApiKey::SaslAuthenticate, 2),
        ];
        // The idempotent producer's InitProducerId, v0..=v5 (its version is negotiated too).
        sent.extend((0..=5).map(|v| (ApiKey::InitProducerId, v)));
        for (api_key, version) in sent {
            let (min, max) = guard::response_versions(api_key)
                .unwrap_or_else(|| panic!("no response shape for {api_key:?}"));
            assert!(
                (min..=max).contains(&version),
                "{api_key:?} v{version} outside the shape's v{min}..=v{max}"
            );
        }
    });
}

/// A consumer-protocol message of version 0 whose first array claims i32::MAX elements.
fn hostile_embedded() -> Bytes {
    let mut bytes = BytesMut::new();
    bytes.put_i16(0);
    bytes.put_i32(i32::MAX);
    bytes.extend_from_slice(&[0; 16]);
    bytes.freeze()
}

fn str_bytes(s: &'static str) -> StrBytes {
    StrBytes::from_static_str(s)
}

/// A JoinGroup response making this member ("me") part of generation 1 led by `leader`.
fn joined(leader: &'static str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_generation_id(1)
        .with_protocol_name(Some(str_bytes("range")))
        .with_leader(str_bytes(leader))
        .with_member_id(str_bytes("me"))
}

/// Joins a group through a fake broker answering `answer`; the join must fail with a message
/// starting with `refused` that names the huge count.
async fn join_refused(answer: Answer, refused: &str) {
    let addr = fake_broker(answer).await;
    let mut conn = KafkaConnection::connect(&addr, "test").await.unwrap();
    let versions = ops::negotiate(&mut conn).await.unwrap();
    let g = versions.group.unwrap();
    match group::join(&mut conn, &g, "g", "", "t", &[0]).await {
        Err(OpsError::Missing(message)) => assert!(
            message.starts_with(refused) && message.contains("claims 2147483647 elements"),
            "{message}"
        ),
        other => panic!("expected {refused}, found {other:?}"),
    }
}

#[test]
fn hostile_subscriptions_and_assignments_from_other_members_are_errors() {
    runtime().block_on(async {
        // As the leader: a member's subscription claims i32::MAX topics.
        let as_leader: Answer = Arc::new(|api_key, version| {
            let member = JoinGroupResponseMember::default()
                .with_member_id(str_bytes("other"))
                .with_metadata(hostile_embedded());
            (api_key == ApiKey::JoinGroup)
                .then(|| encoded(&joined("me").with_members(vec![member]), version))
        });
        join_refused(as_leader, "a member's subscription: malformed").await;

        // As a follower: the assignment the leader sent claims i32::MAX topics.
        let as_follower: Answer = Arc::new(|api_key, version| match api_key {
            ApiKey::JoinGroup => Some(encoded(&joined("leader"), version)),
            ApiKey::SyncGroup => Some(encoded(
                &SyncGroupResponse::default().with_assignment(hostile_embedded()),
                version,
            )),
            _ => None,
        });
        join_refused(as_follower, "the assignment: malformed").await;
    });
}

#[test]
fn a_join_while_the_coordinator_is_loading_is_retried() {
    // Not hostile, just early: COORDINATOR_LOAD_IN_PROGRESS (14) is retriable, as for Kafka's
    // consumer; the second JoinGroup makes this member a follower assigned partition 0.
    let joins = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let answer: Answer = Arc::new(move |api_key, version| match api_key {
        ApiKey::JoinGroup if joins.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 => {
            Some(encoded(&joined("leader").with_error_code(14), version))
        }
        ApiKey::JoinGroup => Some(encoded(&joined("leader"), version)),
        ApiKey::SyncGroup => {
            let mut assignment = BytesMut::new();
            assignment.put_i16(0);
            ConsumerProtocolAssignment::default()
                .with_assigned_partitions(vec![AssignedTopic::default()
                    .with_topic(TopicName(str_bytes("t")))
                    .with_partitions(vec![0])])
                .encode(&mut assignment, 0)
                .unwrap();
            let synced = SyncGroupResponse::default().with_assignment(assignment.freeze());
            Some(encoded(&synced, version))
        }
        _ => None,
    });
    runtime().block_on(async {
        let addr = fake_broker(answer).await;
        let mut conn = KafkaConnection::connect(&addr, "test").await.unwrap();
        let versions = ops::negotiate(&mut conn).await.unwrap();
        let g = versions.group.unwrap();
        let (member, assigned) = group::join(&mut conn, &g, "g", "", "t", &[0])
            .await
            .unwrap();
        assert_eq!((member.generation, assigned), (1, vec![0]));
    });
}

#[test]
fn a_sasl_handshake_claiming_i32_max_mechanisms_fails_authentication() {
    runtime().block_on(async {
        // SaslHandshake v1 (never flexible): error_code, then mechanisms.
        let addr = fake_broker(Arc::new(|api_key, _| {
            (api_key == ApiKey::SaslHandshake).then(|| huge_count(2, false))
        }))
        .await;
        let security = ClientSecurity::from_properties(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
             sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule \
             required username=\"u\" password=\"p\";\n",
        )
        .unwrap();
        match KafkaConnection::connect_with(&addr, "test", &security).await {
            Err(ClientError::Authentication { reason, .. }) => assert!(
                reason.contains("malformed SaslHandshake v1 response")
                    && reason.contains("claims 2147483647 elements"),
                "{reason}"
            ),
            other => panic!("expected a failed authentication, found {other:?}"),
        }
    });
}

#[test]
fn strata_perf_exits_with_an_error_not_an_abort() {
    let runtime = runtime();
    let addr = runtime.block_on(fake_broker(Arc::new(|api_key, _| {
        (api_key == ApiKey::ApiVersions).then(|| huge_count(2, false))
    })));
    // The runtime's worker threads serve the fake broker while the binary runs.
    let output = Command::new(env!("CARGO_BIN_EXE_strata-perf"))
        .args(["produce", "--bootstrap", &addr, "--topic", "t"])
        .args(["--records", "1", "--quiet"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // An abort or a crash would end by a signal, with no exit code.
    assert_eq!(
        output.status.code(),
        Some(1),
        "{:?}: {stderr}",
        output.status
    );
    assert!(
        stderr.contains("malformed ApiVersions v0 response")
            && stderr.contains("api_keys: array at offset 6 claims 2147483647 elements"),
        "{stderr}"
    );
}
