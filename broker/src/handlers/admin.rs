//! Topic administration: CreateTopics (with validate-only and per-topic configs),
//! DeleteTopics (by name or, v6+, by id), CreatePartitions and DeleteRecords. The work is
//! file-system heavy (creating and removing logs), so it runs off the async workers.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    TopicName,
};
use strata_protocol::kafka_protocol;

use super::{str_bytes, RequestContext};
use crate::errors::ErrorCode;
use crate::security::acl::AclOperation;
use crate::server::Broker;
use crate::topics::{self, NewTopic};

pub async fn create_topics(
    broker: &Broker,
    ctx: &RequestContext,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let version = ctx.api_version;
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    // CREATE on the cluster covers every topic; otherwise each topic needs its own.
    let cluster_create = ctx.allowed_cluster(broker, AclOperation::Create);
    let results = tokio::task::block_in_place(|| {
        request
            .topics
            .into_iter()
            .map(|topic| {
                let name = topic.name.0.to_string();
                let result = CreatableTopicResult::default().with_name(topic.name.clone());
                if duplicates.contains(&name) {
                    return result
                        .with_error_code(ErrorCode::InvalidRequest.code())
                        .with_error_message((version >= 1).then(|| str_bytes(format!("Duplicate topic name {name} in the request"))));
                }
                if !cluster_create && !ctx.allowed_topic(broker, AclOperation::Create, &name) {
                    return result
                        .with_error_code(ErrorCode::TopicAuthorizationFailed.code())
                        .with_error_message((version >= 1).then(|| str_bytes("Authorization failed.")));
                }
                let mut configs = BTreeMap::new();
                for c in &topic.configs {
                    if let Some(v) = &c.value {
                        let _ = configs.insert(c.name.to_string(), v.to_string());
                    }
                }
                let partitions_and_rf = if topic.assignments.is_empty() {
                    Ok((topic.num_partitions, topic.replication_factor))
                } else if topic.num_partitions != -1 || topic.replication_factor != -1 {
                    Err((
                        ErrorCode::InvalidRequest,
                        "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".to_string(),
                    ))
                } else {
                    validate_assignments(broker, &topic.assignments)
                };
                let outcome = partitions_and_rf.and_then(|(partitions, rf)| {
                    topics::create_topic(
                        broker,
                        NewTopic { name: &name, partitions, replication_factor: rf, configs, internal: false },
                        request.validate_only,
                    )
                });
                match outcome {
                    Ok(created) => {
                        let mut result = result;
                        if version >= 7 && !request.validate_only {
                            result = result.with_topic_id(created.id);
                        }
                        if version >= 5 {
                            result = result
                                .with_num_partitions(i32::try_from(created.partitions.len()).unwrap_or(i32::MAX))
                                .with_replication_factor(
                                    created.partitions.first().map(|p| p.replicas.len() as i16).unwrap_or(1),
                                );
                            result = result.with_configs(Some(
                                strata_config::describe_topic(&broker.current_config(), &created.configs)
                                    .into_iter()
                                    .map(|e| {
                                        CreatableTopicConfigs::default()
                                            .with_name(str_bytes(e.name))
                                            .with_value(if e.sensitive { None } else { e.value.map(str_bytes) })
                                            .with_read_only(e.read_only)
                                            .with_config_source(e.source.id())
                                            .with_is_sensitive(e.sensitive)
                                    })
                                    .collect(),
                            ));
                        }
                        result
                    }
                    Err((code, message)) => result
                        .with_error_code(code.code())
                        .with_error_message((version >= 1).then(|| str_bytes(message))),
                }
            })
            .collect()
    });
    CreateTopicsResponse::default().with_topics(results)
}

/// Explicit replica assignments: every partition index 0..n exactly once, same replica count,
/// only known brokers, no broker twice in one partition.
fn validate_assignments(
    broker: &Broker,
    assignments: &[kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment],
) -> Result<(i32, i16), (ErrorCode, String)> {
    let image = broker.metadata.image();
    let mut indexes: Vec<i32> = assignments.iter().map(|a| a.partition_index).collect();
    indexes.sort_unstable();
    if indexes
        .iter()
        .enumerate()
        .any(|(i, p)| i64::from(*p) != i as i64)
    {
        return Err((
            ErrorCode::InvalidReplicaAssignment,
            "Partitions should be a consecutive 0-based integer sequence".into(),
        ));
    }
    let rf = assignments.first().map(|a| a.broker_ids.len()).unwrap_or(0);
    for a in assignments {
        let unique: HashSet<i32> = a.broker_ids.iter().map(|b| b.0).collect();
        if a.broker_ids.len() != rf || unique.len() != rf || rf == 0 {
            return Err((
                ErrorCode::InvalidReplicaAssignment,
                "All partitions should have the same number of distinct replicas".into(),
            ));
        }
        if let Some(missing) = unique.iter().find(|b| !image.brokers.contains_key(b)) {
            return Err((
                ErrorCode::BrokerNotAvailable,
                format!("Unknown broker id {missing} in the replica assignment"),
            ));
        }
    }
    Ok((
        i32::try_from(assignments.len()).unwrap_or(i32::MAX),
        i16::try_from(rf).unwrap_or(i16::MAX),
    ))
}

pub async fn delete_topics(
    broker: &Broker,
    ctx: &RequestContext,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let image = broker.metadata.image();
    let version = ctx.api_version;
    // v6+ names topics by name or id in `topics`; before that, by name in `topic_names`.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if ctx.api_version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let responses = tokio::task::block_in_place(|| {
        targets
            .into_iter()
            .map(|(name, id)| {
                let resolved = match &name {
                    Some(n) => image
                        .topic(n)
                        .map(|t| (t.name.clone(), t.id))
                        .ok_or(ErrorCode::UnknownTopicOrPartition),
                    None => image
                        .topic_by_id(&id)
                        .map(|t| (t.name.clone(), t.id))
                        .ok_or(ErrorCode::UnknownTopicId),
                };
                // DELETE on the topic; a name we do not know is checked too, so a denied
                // principal cannot tell whether it exists.
                let checked_name = match (&resolved, &name) {
                    (Ok((n, _)), _) => Some(n.as_str()),
                    (Err(_), Some(n)) => Some(n.as_str()),
                    (Err(_), None) => None,
                };
                let resolved = match checked_name {
                    Some(n) if !ctx.allowed_topic(broker, AclOperation::Delete, n) => {
                        Err(ErrorCode::TopicAuthorizationFailed)
                    }
                    _ => resolved,
                };
                let base = DeletableTopicResult::default()
                    .with_name(name.clone().map(|n| TopicName(str_bytes(n))))
                    .with_topic_id(if version >= 6 { id } else { uuid::Uuid::nil() });
                match resolved
                    .map_err(|c| (c, String::new()))
                    .and_then(|(n, tid)| topics::delete_topic(broker, &n).map(|()| (n, tid)))
                {
                    Ok((n, tid)) => base
                        .with_name(Some(TopicName(str_bytes(n))))
                        .with_topic_id(if version >= 6 { tid } else { uuid::Uuid::nil() }),
                    Err((code, msg)) => base.with_error_code(code.code()).with_error_message(
                        (version >= 5 && !msg.is_empty()).then(|| str_bytes(msg)),
                    ),
                }
            })
            .collect()
    });
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Broker,
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = tokio::task::block_in_place(|| {
        request
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let result = CreatePartitionsTopicResult::default().with_name(t.name);
                if !ctx.allowed_topic(broker, AclOperation::Alter, &name) {
                    return result
                        .with_error_code(ErrorCode::TopicAuthorizationFailed.code())
                        .with_error_message(Some(str_bytes("Authorization failed.")));
                }
                if let Some(assignments) = &t.assignments {
                    let image = broker.metadata.image();
                    if let Some(bad) = assignments
                        .iter()
                        .flat_map(|a| a.broker_ids.iter())
                        .find(|b| !image.brokers.contains_key(&b.0))
                    {
                        return result
                            .with_error_code(ErrorCode::InvalidReplicaAssignment.code())
                            .with_error_message(Some(str_bytes(format!(
                                "Unknown broker id {} in the assignment",
                                bad.0
                            ))));
                    }
                }
                match topics::add_partitions(broker, &name, t.count, request.validate_only) {
                    Ok(()) => result,
                    Err((code, msg)) => result
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes(msg))),
                }
            })
            .collect()
    });
    CreatePartitionsResponse::default().with_results(results)
}

pub async fn delete_records(
    broker: &Broker,
    ctx: &RequestContext,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    // The leader deletes at once; the answer waits (Kafka's DelayedDeleteRecords) until every
    // in-sync follower's log start followed, at most the request's timeout.
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.0.to_string();
        let deletable = ctx.allowed_topic(broker, AclOperation::Delete, &name);
        let mut deleted = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let outcome = super::authorized_partition(broker, deletable, &name, p.partition_index)
                .and_then(|partition| {
                    // The leader deletes; its followers' log starts follow its own.
                    if !partition.is_leader() {
                        return Err(ErrorCode::NotLeaderOrFollower);
                    }
                    // -1 means "up to the high watermark".
                    let offset = if p.offset == -1 {
                        partition.high_watermark()
                    } else {
                        p.offset
                    };
                    if offset < 0 {
                        return Err(ErrorCode::OffsetOutOfRange);
                    }
                    partition.delete_records_before(offset)?;
                    Ok((partition, offset))
                });
            deleted.push((p.partition_index, outcome));
        }
        let mut partitions = Vec::with_capacity(deleted.len());
        for (index, outcome) in deleted {
            let base = DeleteRecordsPartitionResult::default().with_partition_index(index);
            let outcome = match outcome {
                Ok((partition, offset)) => {
                    wait_for_low_watermark(&partition, offset, deadline).await
                }
                Err(code) => Err(code),
            };
            partitions.push(match outcome {
                Ok(low) => base.with_low_watermark(low),
                Err(code) => base.with_error_code(code.code()).with_low_watermark(-1),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Waits until every in-sync replica's log start reached `offset` (REQUEST_TIMED_OUT at
/// `deadline`, as Kafka's); returns the low watermark then.
async fn wait_for_low_watermark(
    partition: &crate::partition::Partition,
    offset: i64,
    deadline: tokio::time::Instant,
) -> Result<i64, ErrorCode> {
    loop {
        let low = partition.low_watermark();
        if low >= offset {
            return Ok(low);
        }
        if !partition.is_leader() {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ErrorCode::RequestTimedOut);
        }
        // Followers report their log start with each fetch (every few hundred ms at most).
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
