//! The Kafka requests the load generators send, built for whatever versions the broker
//! advertises: ApiVersions, Metadata, CreateTopics, ListOffsets, InitProducerId, Produce and
//! Fetch.
//! Topics are addressed by name, so versions stay below those that require topic ids.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest,
    CreateTopicsResponse, FetchRequest, FetchResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strata_protocol::record_batch::BatchIter;

use crate::client::{ClientError, KafkaConnection};
use crate::group::{GroupVersions, GROUP_APIS};

/// Why a broker conversation failed beyond the socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(
        "expected the broker to support {api_key:?} in v{min}..=v{max}, it advertises {found}"
    )]
    NoCommonVersion {
        api_key: ApiKey,
        min: i16,
        max: i16,
        found: String,
    },
    #[error("{what}: expected error code 0, found {code}")]
    Kafka { what: String, code: i16 },
    #[error("{0}")]
    Missing(String),
    #[error(transparent)]
    Batch(#[from] crate::batch::BatchBuildError),
}

/// The highest version of each request this client can send by topic name.
const OURS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::InitProducerId, 0, 5),
];

/// Versions chosen for one broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub produce: i16,
    pub fetch: i16,
    pub metadata: i16,
    pub list_offsets: i16,
    /// None when the broker does not offer CreateTopics in a range we speak.
    pub create_topics: Option<i16>,
    /// None when the broker does not offer InitProducerId (no idempotent producers).
    pub init_producer_id: Option<i16>,
    /// None when the broker lacks one of the consumer-group APIs in a range we speak.
    pub group: Option<GroupVersions>,
}

/// Asks ApiVersions (v0, which every broker answers) and picks the versions to use.
pub async fn negotiate(conn: &mut KafkaConnection) -> Result<Versions, OpsError> {
    let response: ApiVersionsResponse = conn
        .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
        .await?;
    if response.error_code != 0 {
        return Err(OpsError::Kafka {
            what: "ApiVersions".into(),
            code: response.error_code,
        });
    }
    let theirs: HashMap<i16, (i16, i16)> = response
        .api_keys
        .iter()
        .map(|k| (k.api_key, (k.min_version, k.max_version)))
        .collect();
    let pick = |api_key: ApiKey| common_version(&theirs, OURS, api_key);
    Ok(Versions {
        produce: pick(ApiKey::Produce)?,
        fetch: pick(ApiKey::Fetch)?,
        metadata: pick(ApiKey::Metadata)?,
        list_offsets: pick(ApiKey::ListOffsets)?,
        create_topics: pick(ApiKey::CreateTopics).ok(),
        init_producer_id: pick(ApiKey::InitProducerId).ok(),
        group: pick_group(&theirs),
    })
}

/// The highest version of `api_key` in both the broker's range (`theirs`) and ours (`table`).
fn common_version(
    theirs: &HashMap<i16, (i16, i16)>,
    table: &[(ApiKey, i16, i16)],
    api_key: ApiKey,
) -> Result<i16, OpsError> {
    let (_, min, max) = table
        .iter()
        .find(|(k, _, _)| *k == api_key)
        .copied()
        .unwrap_or((api_key, 0, -1));
    let found = theirs.get(&(api_key as i16)).copied();
    match found {
        Some((lo, hi)) if hi.min(max) >= lo.max(min) => Ok(hi.min(max)),
        _ => Err(OpsError::NoCommonVersion {
            api_key,
            min,
            max,
            found: found.map_or("nothing".into(), |(lo, hi)| format!("v{lo}..=v{hi}")),
        }),
    }
}

/// The group APIs' versions, if the broker offers all of them in ranges we speak.
fn pick_group(theirs: &HashMap<i16, (i16, i16)>) -> Option<GroupVersions> {
    let pick = |api_key: ApiKey| common_version(theirs, GROUP_APIS, api_key).ok();
    Some(GroupVersions {
        find_coordinator: pick(ApiKey::FindCoordinator)?,
        join: pick(ApiKey::JoinGroup)?,
        sync: pick(ApiKey::SyncGroup)?,
        heartbeat: pick(ApiKey::Heartbeat)?,
        offset_fetch: pick(ApiKey::OffsetFetch)?,
        offset_commit: pick(ApiKey::OffsetCommit)?,
        leave: pick(ApiKey::LeaveGroup)?,
    })
}

/// Where a topic's partitions live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLayout {
    /// (partition, leader broker id), sorted by partition.
    pub partitions: Vec<(i32, i32)>,
    /// broker id -> "host:port"
    pub brokers: HashMap<i32, String>,
    pub controller_id: i32,
}

/// Metadata for one topic; `None` when the broker says it does not exist.
pub async fn describe_topic(
    conn: &mut KafkaConnection,
    versions: &Versions,
    topic: &str,
) -> Result<Option<TopicLayout>, OpsError> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    let response: MetadataResponse = conn
        .call(ApiKey::Metadata, versions.metadata, &request)
        .await?;
    let brokers = response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let Some(t) = response.topics.first() else {
        return Err(OpsError::Missing(format!(
            "expected metadata for topic {topic}, found no topics"
        )));
    };
    // UNKNOWN_TOPIC_OR_PARTITION (3): not there yet; LEADER_NOT_AVAILABLE (5): being created.
    if t.error_code == 3 || t.error_code == 5 || t.partitions.is_empty() {
        return Ok(None);
    }
    if t.error_code != 0 {
        return Err(OpsError::Kafka {
            what: format!("Metadata for {topic}"),
            code: t.error_code,
        });
    }
    let mut partitions: Vec<(i32, i32)> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    partitions.sort_unstable();
    Ok(Some(TopicLayout {
        partitions,
        brokers,
        controller_id: response.controller_id.0,
    }))
}

/// CreateTopics with `partitions` partitions and replication factor -1 (the broker's default).
/// TOPIC_ALREADY_EXISTS (36) counts as success.
pub async fn create_topic(
    conn: &mut KafkaConnection,
    versions: &Versions,
    topic: &str,
    partitions: i32,
) -> Result<(), OpsError> {
    let Some(version) = versions.create_topics else {
        return Err(OpsError::Missing(
            "expected the broker to offer CreateTopics v2..=v7, found none".into(),
        ));
    };
    // Replication factor -1 (broker default) needs v4+.
    let replication_factor = if version >= 4 { -1 } else { 1 };
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)])
        .with_timeout_ms(30_000);
    let response: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, version, &request).await?;
    for t in &response.topics {
        if t.error_code != 0 && t.error_code != 36 {
            return Err(OpsError::Kafka {
                what: format!("CreateTopics {topic}"),
                code: t.error_code,
            });
        }
    }
    Ok(())
}

/// A producer id and epoch for an idempotent (not transactional) producer, as Kafka's producer
/// asks for them with `enable.idempotence=true`.
pub async fn init_producer_id(
    conn: &mut KafkaConnection,
    versions: &Versions,
) -> Result<(i64, i16), OpsError> {
    let Some(version) = versions.init_producer_id else {
        return Err(OpsError::Missing(
            "expected the broker to offer InitProducerId v0..=v5 for an idempotent producer, \
             found none"
                .into(),
        ));
    };
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse =
        conn.call(ApiKey::InitProducerId, version, &request).await?;
    if response.error_code != 0 {
        return Err(OpsError::Kafka {
            what: "InitProducerId".into(),
            code: response.error_code,
        });
    }
    Ok((response.producer_id.0, response.producer_epoch))
}

/// A Produce request carrying one batch for each of `partitions`.
pub fn produce_request(
    topic: &str,
    partitions: &[i32],
    batch: &Bytes,
    acks: i16,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(
                partitions
                    .iter()
                    .map(|p| {
                        PartitionProduceData::default()
                            .with_index(*p)
                            .with_records(Some(batch.clone()))
                    })
                    .collect(),
            )])
}

/// Records the broker accepted, or the first partition error.
pub fn check_produce_response(response: &ProduceResponse) -> Result<(), OpsError> {
    for t in &response.responses {
        for p in &t.partition_responses {
            if p.error_code != 0 {
                return Err(OpsError::Kafka {
                    what: format!("Produce to {}-{}", t.name.as_str(), p.index),
                    code: p.error_code,
                });
            }
        }
    }
    Ok(())
}

/// A sessionless Fetch for `offsets` = (partition, fetch offset).
pub fn fetch_request(
    version: i16,
    topic: &str,
    offsets: &[(i32, i64)],
    max_wait_ms: i32,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> FetchRequest {
    let mut request = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(
                offsets
                    .iter()
                    .map(|(p, offset)| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(*offset)
                            .with_partition_max_bytes(partition_max_bytes)
                    })
                    .collect(),
            )]);
    if version < 15 {
        request = request.with_replica_id(BrokerId(-1));
    }
    request
}

/// What one Fetch returned for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchedPartition {
    pub partition: i32,
    pub records: u64,
    pub bytes: u64,
    /// One past the last offset returned (the fetch offset when nothing came back).
    pub next_offset: i64,
    pub high_watermark: i64,
}

/// Every partition a Fetch response carries; the response's error, or the first partition's,
/// as an error.
pub fn fetched_partitions(response: &FetchResponse) -> Result<Vec<&PartitionData>, OpsError> {
    if response.error_code != 0 {
        return Err(OpsError::Kafka {
            what: "Fetch".into(),
            code: response.error_code,
        });
    }
    let mut out = Vec::new();
    for t in &response.responses {
        for p in &t.partitions {
            if p.error_code != 0 {
                return Err(OpsError::Kafka {
                    what: format!("Fetch of {}-{}", t.topic.as_str(), p.partition_index),
                    code: p.error_code,
                });
            }
            out.push(p);
        }
    }
    Ok(out)
}

/// Sums what a Fetch response carries per partition, starting from `offsets`.
pub fn summarise_fetch(
    response: &FetchResponse,
    offsets: &[(i32, i64)],
) -> Result<Vec<FetchedPartition>, OpsError> {
    let mut out = Vec::new();
    for p in fetched_partitions(response)? {
        let from = offsets
            .iter()
            .find(|(q, _)| *q == p.partition_index)
            .map_or(0, |(_, o)| *o);
        let mut summary = FetchedPartition {
            partition: p.partition_index,
            next_offset: from,
            high_watermark: p.high_watermark,
            ..FetchedPartition::default()
        };
        let records = p.records.as_deref().unwrap_or_default();
        for batch in BatchIter::new(records) {
            let h = batch.header;
            // A batch may start before the fetch offset; count only what is new.
            let last = h.last_offset();
            if last < from {
                continue;
            }
            let first_new = h.base_offset.max(from);
            summary.records += u64::try_from(last - first_new + 1).unwrap_or(0);
            summary.bytes += batch.bytes.len() as u64;
            summary.next_offset = last + 1;
        }
        out.push(summary);
    }
    Ok(out)
}

/// The earliest offset of each partition (ListOffsets, timestamp -2).
pub async fn earliest_offsets(
    conn: &mut KafkaConnection,
    versions: &Versions,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, i64)>, OpsError> {
    list_offsets(conn, versions, topic, partitions, -2).await
}

/// The log end offset of each partition (ListOffsets, timestamp -1): where the next record
/// will land.
pub async fn latest_offsets(
    conn: &mut KafkaConnection,
    versions: &Versions,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, i64)>, OpsError> {
    list_offsets(conn, versions, topic, partitions, -1).await
}

/// Each partition's offset for `timestamp` (-2 earliest, -1 latest), sorted by partition.
async fn list_offsets(
    conn: &mut KafkaConnection,
    versions: &Versions,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<Vec<(i32, i64)>, OpsError> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let response: ListOffsetsResponse = conn
        .call(ApiKey::ListOffsets, versions.list_offsets, &request)
        .await?;
    let mut out = Vec::new();
    for t in &response.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                return Err(OpsError::Kafka {
                    what: format!("ListOffsets of {}-{}", t.name.as_str(), p.partition_index),
                    code: p.error_code,
                });
            }
            out.push((p.partition_index, p.offset));
        }
    }
    out.sort_unstable();
    Ok(out)
}

pub fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchTemplate;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};

    #[test]
    fn fetch_summary_counts_only_records_at_or_after_the_fetch_offset() {
        let batch = BatchTemplate::new(10, 20, 0).unwrap().to_bytes();
        let response =
            FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![PartitionData::default()
                    .with_partition_index(0)
                    .with_high_watermark(10)
                    .with_records(Some(batch.clone()))])]);
        let s = summarise_fetch(&response, &[(0, 4)]).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].records, 6);
        assert_eq!(s[0].next_offset, 10);
        assert_eq!(s[0].bytes, batch.len() as u64);
    }

    #[test]
    fn fetch_summary_reports_partition_errors() {
        let response =
            FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![PartitionData::default()
                    .with_partition_index(2)
                    .with_error_code(1)])]);
        let err = summarise_fetch(&response, &[(2, 0)]).unwrap_err();
        assert!(matches!(err, OpsError::Kafka { code: 1, .. }), "{err}");
    }
}
