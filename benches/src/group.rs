//! A consumer-group member for the load tool (`strata-perf consume --group`), as
//! kafka-consumer-perf-test consumes: FindCoordinator, JoinGroup (retried with the member id a
//! broker asks for), the range assignment computed by whichever member leads, SyncGroup,
//! heartbeats on a connection of their own, starting positions from OffsetFetch (the earliest
//! offset where nothing is committed), positions committed when a generation ends (a
//! rebalance, or the run's end), and LeaveGroup. The classic protocol every Kafka-compatible
//! broker speaks; no KIP-848 heartbeats, no static membership.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata_protocol::guard::{self, ConsumerProtocol};

use crate::client::KafkaConnection;
use crate::ops::{topic_name, OpsError};

/// The versions of each group API this member sends: the classic protocol's shapes (one
/// coordinator per FindCoordinator, one group per OffsetFetch) that Kafka 2.4 and later
/// accept, the highest both sides speak.
pub(crate) const GROUP_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::FindCoordinator, 1, 3),
    (ApiKey::JoinGroup, 4, 7),
    (ApiKey::SyncGroup, 3, 4),
    (ApiKey::Heartbeat, 3, 4),
    (ApiKey::OffsetFetch, 2, 7),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::LeaveGroup, 3, 4),
];

/// Versions chosen for the group APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupVersions {
    pub find_coordinator: i16,
    pub join: i16,
    pub sync: i16,
    pub heartbeat: i16,
    pub offset_fetch: i16,
    pub offset_commit: i16,
    pub leave: i16,
}

// Kafka's error codes a member acts on.
const NONE: i16 = 0;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

/// Kafka's session timeout default for consumers (45 s), and the rebalance timeout
/// (max.poll.interval.ms, 5 min).
const SESSION_TIMEOUT_MS: i32 = 45_000;
const REBALANCE_TIMEOUT_MS: i32 = 300_000;
const PROTOCOL_TYPE: &str = "consumer";
const JOIN_ATTEMPTS: usize = 100;
/// Kafka's retry.backoff.ms default.
const RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);
const ASSIGNOR: &str = "range";

/// One member's place in one generation of its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub group: String,
    pub member_id: String,
    pub generation: i32,
}

/// What a heartbeat (or a commit) said about the generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Still a member of this generation.
    Current,
    /// The group is rebalancing or moved on: rejoin (with the same member id).
    Rejoin,
    /// The coordinator no longer knows this member: rejoin as a new one.
    Unknown,
}

fn standing(code: i16, what: &str) -> Result<Standing, OpsError> {
    match code {
        NONE => Ok(Standing::Current),
        REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | NOT_COORDINATOR => Ok(Standing::Rejoin),
        UNKNOWN_MEMBER_ID => Ok(Standing::Unknown),
        code => Err(kafka_error(what, code)),
    }
}

fn kafka_error(what: &str, code: i16) -> OpsError {
    OpsError::Kafka {
        what: what.to_owned(),
        code,
    }
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_owned()))
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// `host:port` of the group's coordinator.
pub async fn find_coordinator(
    conn: &mut KafkaConnection,
    v: &GroupVersions,
    group: &str,
) -> Result<String, OpsError> {
    let request = FindCoordinatorRequest::default()
        .with_key(str_bytes(group))
        .with_key_type(0);
    let response: FindCoordinatorResponse = conn
        .call(ApiKey::FindCoordinator, v.find_coordinator, &request)
        .await?;
    if response.error_code != NONE {
        return Err(kafka_error(
            &format!("FindCoordinator {group}"),
            response.error_code,
        ));
    }
    Ok(format!("{}:{}", response.host.as_str(), response.port))
}

/// Joins `group` subscribed to `topic`, leads the assignment if chosen, and returns the
/// generation with the partitions of `topic` (from `partitions`, all of them) assigned to this
/// member. `member_id` is empty on the first join.
pub async fn join(
    conn: &mut KafkaConnection,
    v: &GroupVersions,
    group: &str,
    member_id: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<(Member, Vec<i32>), OpsError> {
    let mut member_id = member_id.to_owned();
    // Each retry is a broker's answer (a member id to use, a rebalance that started
    // meanwhile); a coordinator that keeps answering so is not converging.
    for _ in 0..JOIN_ATTEMPTS {
        let request = JoinGroupRequest::default()
            .with_group_id(group_id(group))
            .with_session_timeout_ms(SESSION_TIMEOUT_MS)
            .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
            .with_member_id(str_bytes(&member_id))
            .with_protocol_type(str_bytes(PROTOCOL_TYPE))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(str_bytes(ASSIGNOR))
                .with_metadata(subscription(topic)?)]);
        let joined: JoinGroupResponse = conn.call(ApiKey::JoinGroup, v.join, &request).await?;
        match joined.error_code {
            NONE => {}
            // KIP-394: the first join only hands out the member id to join with.
            MEMBER_ID_REQUIRED => {
                member_id = joined.member_id.to_string();
                continue;
            }
            UNKNOWN_MEMBER_ID => {
                member_id.clear();
                continue;
            }
            REBALANCE_IN_PROGRESS => continue,
            // The coordinator is still reading its __consumer_offsets partition (a group's
            // first request can race its creation): retriable, after Kafka's retry.backoff.ms.
            COORDINATOR_LOAD_IN_PROGRESS => {
                tokio::time::sleep(RETRY_BACKOFF).await;
                continue;
            }
            code => return Err(kafka_error(&format!("JoinGroup {group}"), code)),
        }
        let member = Member {
            group: group.to_owned(),
            member_id: joined.member_id.to_string(),
            generation: joined.generation_id,
        };
        let assignments = if joined.leader == joined.member_id {
            let members = joined
                .members
                .iter()
                .map(|m| Ok((m.member_id.to_string(), subscribed_topics(&m.metadata)?)))
                .collect::<Result<Vec<_>, OpsError>>()?;
            assign_range(&members, topic, partitions)
                .into_iter()
                .map(|(id, assigned)| {
                    Ok(SyncGroupRequestAssignment::default()
                        .with_member_id(str_bytes(&id))
                        .with_assignment(assignment(topic, &assigned)?))
                })
                .collect::<Result<Vec<_>, OpsError>>()?
        } else {
            Vec::new()
        };
        let request = SyncGroupRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id(member.generation)
            .with_member_id(str_bytes(&member.member_id))
            .with_protocol_type(Some(str_bytes(PROTOCOL_TYPE)))
            .with_protocol_name(Some(str_bytes(ASSIGNOR)))
            .with_assignments(assignments);
        let synced: SyncGroupResponse = conn.call(ApiKey::SyncGroup, v.sync, &request).await?;
        match standing(synced.error_code, &format!("SyncGroup {group}"))? {
            Standing::Current => {}
            Standing::Rejoin => {
                member_id = member.member_id;
                continue;
            }
            Standing::Unknown => {
                member_id.clear();
                continue;
            }
        }
        let assigned = assigned_partitions(&synced.assignment, topic)?;
        return Ok((member, assigned));
    }
    Err(OpsError::Missing(format!(
        "JoinGroup {group}: no stable generation after {JOIN_ATTEMPTS} attempts"
    )))
}

/// One heartbeat.
pub async fn heartbeat(
    conn: &mut KafkaConnection,
    v: &GroupVersions,
    member: &Member,
) -> Result<Standing, OpsError> {
    let request = HeartbeatRequest::default()
        .with_group_id(group_id(&member.group))
        .with_generation_id(member.generation)
        .with_member_id(str_bytes(&member.member_id));
    let response: HeartbeatResponse = conn.call(ApiKey::Heartbeat, v.heartbeat, &request).await?;
    standing(response.error_code, &format!("Heartbeat {}", member.group))
}

/// The committed offset of each of `partitions` (-1 where none is).
pub async fn committed(
    conn: &mut KafkaConnection,
    v: &GroupVersions,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, i64)>, OpsError> {
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(partitions.to_vec())]));
    let response: OffsetFetchResponse = conn
        .call(ApiKey::OffsetFetch, v.offset_fetch, &request)
        .await?;
    if response.error_code != NONE {
        return Err(kafka_error(
            &format!("OffsetFetch {group}"),
            response.error_code,
        ));
    }
    let mut found = BTreeMap::new();
    for p in response.topics.iter().flat_map(|t| &t.partitions) {
        if p.error_code != NONE {
            return Err(kafka_error(
                &format!("OffsetFetch {group} {topic}-{}", p.partition_index),
                p.error_code,
            ));
        }
        found.insert(p.partition_index, p.committed_offset);
    }
    Ok(partitions
        .iter()
        .map(|p| (*p, found.get(p).copied().unwrap_or(-1)))
        .collect())
}

/// Commits `offsets` (partition, next offset to read) for this generation. A group that has
/// moved on refuses them (Kafka's CommitFailedException): that is `Rejoin` or `Unknown`,
/// and the next owner of those partitions reads them again.
pub async fn commit(
    conn: &mut KafkaConnection,
    v: &GroupVersions,
    member: &Member,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Result<Standing, OpsError> {
    if offsets.is_empty() {
        return Ok(Standing::Current);
    }
    let partitions = offsets
        .iter()
        .map(|(p, o)| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(&member.group))
        .with_generation_id_or_member_epoch(member.generation)
        .with_member_id(str_bytes(&member.member_id))
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(partitions)]);
    let response: OffsetCommitResponse = conn
        .call(ApiKey::OffsetCommit, v.offset_commit, &request)
        .await?;
    let what = format!("OffsetCommit {}", member.group);
    let mut worst = Standing::Current;
    for p in response.topics.iter().flat_map(|t| &t.partitions) {
        match standing(p.error_code, &what)? {
            Standing::Current => {}
            other => worst = other,
        }
    }
    Ok(worst)
}

/// Leaves the group, so the others rebalance at once instead of after the session timeout.
pub async fn leave(
    conn: &mut KafkaConnection,
    v: &GroupVersions,
    member: &Member,
) -> Result<(), OpsError> {
    let request = LeaveGroupRequest::default()
        .with_group_id(group_id(&member.group))
        .with_members(vec![
            MemberIdentity::default().with_member_id(str_bytes(&member.member_id))
        ]);
    let response: LeaveGroupResponse = conn.call(ApiKey::LeaveGroup, v.leave, &request).await?;
    match response.error_code {
        // Already gone (a rebalance dropped it): nothing to leave.
        NONE | UNKNOWN_MEMBER_ID => Ok(()),
        code => Err(kafka_error(&format!("LeaveGroup {}", member.group), code)),
    }
}

/// Kafka's range assignor for one topic: members sorted by id, each gets a contiguous run of
/// the sorted partitions, the first `partitions % members` one more. Members not subscribed
/// to `topic` get nothing (but are listed, so that they get an empty assignment).
pub fn assign_range(
    members: &[(String, Vec<String>)],
    topic: &str,
    partitions: &[i32],
) -> BTreeMap<String, Vec<i32>> {
    let mut out: BTreeMap<String, Vec<i32>> =
        members.iter().map(|(id, _)| (id.clone(), vec![])).collect();
    let subscribed: Vec<&String> = out
        .keys()
        .filter(|id| {
            members
                .iter()
                .any(|(m, topics)| m == *id && topics.iter().any(|t| t == topic))
        })
        .collect();
    let mut sorted = partitions.to_vec();
    sorted.sort_unstable();
    let (n, k) = (sorted.len(), subscribed.len());
    let mut rest = sorted.as_slice();
    let mut runs = Vec::with_capacity(k);
    for (i, id) in subscribed.into_iter().enumerate() {
        let take = (n / k + usize::from(i < n % k)).min(rest.len());
        let (run, after) = rest.split_at(take);
        runs.push((id.clone(), run.to_vec()));
        rest = after;
    }
    for (id, run) in runs {
        out.insert(id, run);
    }
    out
}

/// The consumer protocol's embedded encodings: a version (int16), then the struct.
fn embedded<T: Encodable>(version: i16, value: &T) -> Result<Bytes, OpsError> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    value
        .encode(&mut buf, version)
        .map_err(|e| OpsError::Missing(format!("encoding the consumer protocol: {e:#}")))?;
    Ok(buf.freeze())
}

/// Reads a consumer-protocol message another member wrote (it reaches us through the
/// broker, so it is as hostile as any network input): checked by the guard, then decoded.
fn decode_embedded<T: Decodable + Default>(
    bytes: &Bytes,
    message: ConsumerProtocol,
    what: &str,
) -> Result<T, OpsError> {
    if bytes.is_empty() {
        return Ok(T::default());
    }
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Err(OpsError::Missing(format!("{what}: truncated")));
    }
    // Later versions only add fields at the end, so a newer member's bytes read as the
    // newest version we know (as Kafka's ConsumerProtocol reads them).
    let version = buf.get_i16().clamp(0, 3);
    guard::check_consumer_protocol(&buf, message, version).map_err(|e| {
        OpsError::Missing(format!("{what}: malformed, refused before decoding: {e}"))
    })?;
    T::decode(&mut buf, version).map_err(|e| OpsError::Missing(format!("{what}: {e:#}")))
}

fn subscription(topic: &str) -> Result<Bytes, OpsError> {
    embedded(
        0,
        &ConsumerProtocolSubscription::default().with_topics(vec![str_bytes(topic)]),
    )
}

fn subscribed_topics(metadata: &Bytes) -> Result<Vec<String>, OpsError> {
    let s: ConsumerProtocolSubscription = decode_embedded(
        metadata,
        ConsumerProtocol::Subscription,
        "a member's subscription",
    )?;
    Ok(s.topics.iter().map(|t| t.to_string()).collect())
}

fn assignment(topic: &str, partitions: &[i32]) -> Result<Bytes, OpsError> {
    embedded(
        0,
        &ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            AssignedTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions.to_vec()),
        ]),
    )
}

fn assigned_partitions(bytes: &Bytes, topic: &str) -> Result<Vec<i32>, OpsError> {
    let a: ConsumerProtocolAssignment =
        decode_embedded(bytes, ConsumerProtocol::Assignment, "the assignment")?;
    let mut out: Vec<i32> = a
        .assigned_partitions
        .iter()
        .filter(|t| t.topic.as_str() == topic)
        .flat_map(|t| t.partitions.iter().copied())
        .collect();
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[&str]) -> Vec<(String, Vec<String>)> {
        ids.iter()
            .map(|id| ((*id).to_owned(), vec!["t".to_owned()]))
            .collect()
    }

    #[test]
    fn range_gives_contiguous_runs_the_first_members_one_more() {
        let out = assign_range(&members(&["b", "a", "c"]), "t", &[4, 0, 1, 2, 3, 6, 5]);
        assert_eq!(out["a"], [0, 1, 2]);
        assert_eq!(out["b"], [3, 4]);
        assert_eq!(out["c"], [5, 6]);
        let out = assign_range(&members(&["a", "b", "c"]), "t", &[0]);
        assert_eq!((out["a"].len(), out["b"].len(), out["c"].len()), (1, 0, 0));
        let mut other = members(&["a"]);
        other.push(("z".into(), vec!["elsewhere".into()]));
        let out = assign_range(&other, "t", &[0, 1]);
        assert_eq!(out["a"], [0, 1]);
        assert!(out["z"].is_empty());
    }

    #[test]
    fn embedded_encodings_read_back() {
        let bytes = assignment("t", &[2, 0]).unwrap();
        assert_eq!(assigned_partitions(&bytes, "t").unwrap(), [0, 2]);
        assert!(assigned_partitions(&bytes, "u").unwrap().is_empty());
        assert!(assigned_partitions(&Bytes::new(), "t").unwrap().is_empty());
        let sub = subscription("orders").unwrap();
        assert_eq!(subscribed_topics(&sub).unwrap(), ["orders"]);
        assert!(subscribed_topics(&Bytes::from_static(&[0])).is_err());
    }

    #[test]
    fn embedded_counts_beyond_the_bytes_are_refused_before_decoding() {
        // Version 0, then a first array claiming i32::MAX elements: the codec would reserve
        // them all before reading one.
        let mut hostile = BytesMut::new();
        hostile.put_i16(0);
        hostile.put_i32(i32::MAX);
        hostile.put_i32(0);
        let hostile = hostile.freeze();
        for result in [
            subscribed_topics(&hostile).map(|_| ()),
            assigned_partitions(&hostile, "t").map(|_| ()),
        ] {
            match result {
                Err(OpsError::Missing(message)) => assert!(
                    message.contains("malformed, refused before decoding")
                        && message.contains("claims 2147483647 elements"),
                    "{message}"
                ),
                other => panic!("expected a refusal, found {other:?}"),
            }
        }
        // A newer member's version reads as v3, its extra fields left alone.
        let mut newer = BytesMut::new();
        newer.put_i16(9);
        ConsumerProtocolAssignment::default()
            .with_assigned_partitions(vec![AssignedTopic::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![4])])
            .encode(&mut newer, 3)
            .unwrap();
        newer.put_i32(77);
        assert_eq!(assigned_partitions(&newer.freeze(), "t").unwrap(), [4]);
    }

    #[test]
    fn every_group_version_sent_has_a_response_shape() {
        for (api_key, min, max) in GROUP_APIS {
            let (lo, hi) = guard::response_versions(*api_key).unwrap();
            assert!(lo <= *min && *max <= hi, "{api_key:?} v{min}..=v{max}");
        }
    }
}
