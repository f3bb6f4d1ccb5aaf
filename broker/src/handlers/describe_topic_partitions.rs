//! DescribeTopicPartitions (KIP-966): what Metadata says of topics, plus eligible leader
//! replicas, paged by partition count. Kafka's admin client (3.8+) prefers it to Metadata
//! for `describeTopics`, so `kafka-topics --describe` uses it when the broker offers it.
//! Strata keeps no eligible leader replicas (ELR is off, as in Kafka by default): those lists
//! are empty.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use strata_protocol::kafka_protocol;

use super::metadata::partition_states;
use super::{str_bytes, RequestContext};
use crate::errors::ErrorCode;
use crate::metadata::{MetadataImage, TopicMetadata};
use crate::security::acl::AclOperation;
use crate::server::Broker;

/// Kafka's `max.request.partition.size.limit` default: the most partitions one response
/// carries, whatever the client asks for.
const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let requested: BTreeSet<String> = request
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .collect();
    let cursor = request
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index.max(0)));
    // Kafka refuses a cursor that points outside the topics asked for.
    if let Some((topic, _)) = &cursor {
        if !requested.is_empty() && !requested.contains(topic) {
            return DescribeTopicPartitionsResponse::default().with_topics(
                requested
                    .iter()
                    .map(|name| error_topic(name, ErrorCode::InvalidRequest))
                    .collect(),
            );
        }
    }
    let mut budget = if request.response_partition_limit > 0 {
        request
            .response_partition_limit
            .min(MAX_PARTITIONS_PER_RESPONSE)
    } else {
        MAX_PARTITIONS_PER_RESPONSE
    };

    let image = broker.metadata.image();
    // Topics in name order (both sources are sorted), from the cursor's topic on.
    let names: Vec<&str> = if requested.is_empty() {
        image.topics.keys().map(String::as_str).collect()
    } else {
        requested.iter().map(String::as_str).collect()
    };
    let start_topic = cursor.as_ref().map(|(t, _)| t.as_str());
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names
        .into_iter()
        .filter(|n| start_topic.is_none_or(|s| *n >= s))
    {
        if budget == 0 {
            next_cursor = Some(cursor_at(name, 0));
            break;
        }
        // Authorization first, so that a refused name says nothing about whether the topic
        // exists; undescribable topics are hidden from the full list (as Metadata does).
        if !ctx.allowed_topic(broker, AclOperation::Describe, name) {
            if !requested.is_empty() {
                topics.push(error_topic(name, ErrorCode::TopicAuthorizationFailed));
            }
            continue;
        }
        let Some(topic) = image.topic(name) else {
            if !requested.is_empty() {
                topics.push(error_topic(name, ErrorCode::UnknownTopicOrPartition));
            }
            continue;
        };
        let first = match &cursor {
            Some((t, p)) if t == name => *p,
            _ => 0,
        };
        let (entry, resume_at) = topic_entry(broker, ctx, topic, &image, first, &mut budget);
        topics.push(entry);
        if let Some(partition) = resume_at {
            next_cursor = Some(cursor_at(name, partition));
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

/// The topic's partitions from `first` on, as many as `budget` allows; the partition to
/// resume at when some were left out.
fn topic_entry(
    broker: &Broker,
    ctx: &RequestContext,
    topic: &TopicMetadata,
    image: &MetadataImage,
    first: i32,
    budget: &mut i32,
) -> (DescribeTopicPartitionsResponseTopic, Option<i32>) {
    let mut partitions = Vec::new();
    let mut resume_at = None;
    for p in partition_states(broker, topic, image).filter(|p| p.partition >= first) {
        if *budget == 0 {
            resume_at = Some(p.partition);
            break;
        }
        *budget -= 1;
        partitions.push(
            DescribeTopicPartitionsResponsePartition::default()
                .with_error_code(p.error_code)
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas)
                .with_isr_nodes(p.isr)
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
                .with_offline_replicas(p.offline_replicas),
        );
    }
    let operations = ctx.topic_operations(broker, &topic.name);
    let entry = DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(operations);
    (entry, resume_at)
}

fn cursor_at(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(str_bytes(topic.to_owned())))
        .with_partition_index(partition)
}

fn error_topic(name: &str, code: ErrorCode) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(code.code())
        .with_name(Some(TopicName(str_bytes(name.to_owned()))))
}
