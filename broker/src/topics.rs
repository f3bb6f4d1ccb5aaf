//! Topic lifecycle shared by CreateTopics, Metadata auto-creation, CreatePartitions,
//! DeleteTopics and the internal topics: validate like Kafka, place the replicas, then
//! commit the change to the metadata image; the image's publisher
//! (`replication::publisher`) opens, reconfigures and deletes the logs on every broker
//! that hosts them. Also the topic defaults' other source, dynamic broker configs.

use std::collections::BTreeMap;

use strata_config::TopicConfig;
use strata_protocol::record_batch::compression::{
    CODEC_GZIP, CODEC_LZ4, CODEC_NONE, CODEC_SNAPPY, CODEC_ZSTD,
};
use strata_storage::{LogConfig, TimestampType};

use crate::errors::ErrorCode;
use crate::metadata::{
    kafka_uuid, ApplyError, MetadataError, MetadataRecord, PartitionMetadata, TopicMetadata,
};
use crate::server::Broker;

/// Kafka's limit: a topic name must leave room for ".<partition>" style suffixes in a file name.
const MAX_TOPIC_NAME_LEN: usize = 249;

pub type TopicResult<T> = Result<T, (ErrorCode, String)>;

pub fn validate_topic_name(name: &str) -> TopicResult<()> {
    let fail = |why: String| Err((ErrorCode::InvalidTopicException, why));
    if name.is_empty() {
        return fail("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return fail("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return fail(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return fail(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Kafka refuses topics whose names differ only by '.' versus '_' (their metric names collide).
fn collides(a: &str, b: &str) -> bool {
    a != b && a.replace('.', "_") == b.replace('.', "_")
}

pub fn log_config(topic: &TopicConfig) -> LogConfig {
    LogConfig {
        segment_bytes: topic.segment_bytes,
        segment_ms: topic.segment_ms,
        segment_jitter_ms: topic.segment_jitter_ms,
        index_interval_bytes: topic.index_interval_bytes,
        max_index_bytes: topic.segment_index_bytes,
        flush_interval_messages: topic.flush_messages,
        flush_interval_ms: topic.flush_ms,
        retention_ms: topic.retention_ms,
        retention_bytes: topic.retention_bytes,
        message_timestamp_type: if topic.message_timestamp_type == "LogAppendTime" {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        message_timestamp_before_max_ms: topic.message_timestamp_before_max_ms,
        message_timestamp_after_max_ms: topic.message_timestamp_after_max_ms,
        compression: match topic.compression_type.as_str() {
            "uncompressed" => Some((CODEC_NONE, 0)),
            "gzip" => Some((CODEC_GZIP, topic.compression_gzip_level)),
            "snappy" => Some((CODEC_SNAPPY, 0)),
            "lz4" => Some((CODEC_LZ4, topic.compression_lz4_level)),
            "zstd" => Some((CODEC_ZSTD, topic.compression_zstd_level)),
            _ => None, // "producer": batches are stored as sent
        },
        file_delete_delay_ms: topic.file_delete_delay_ms,
        preallocate: topic.preallocate,
        cleanup_delete: topic.cleanup_policy.deletes(),
        cleanup_compact: topic.cleanup_policy.compacts(),
        delete_retention_ms: topic.delete_retention_ms,
        min_cleanable_dirty_ratio: topic.min_cleanable_dirty_ratio,
        min_compaction_lag_ms: topic.min_compaction_lag_ms,
        max_compaction_lag_ms: topic.max_compaction_lag_ms,
    }
}

pub fn resolve_topic_config(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
) -> TopicResult<TopicConfig> {
    TopicConfig::resolve(&broker.current_config(), overrides)
        .map_err(|e| (ErrorCode::InvalidConfig, e.to_string()))
}

pub struct NewTopic<'a> {
    pub name: &'a str,
    /// -1: the broker's num.partitions.
    pub partitions: i32,
    /// -1: the broker's default.replication.factor.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

/// The replication factor of an internal topic created on first use (`__consumer_offsets`,
/// `__transaction_state`): `configured`, capped to the cluster's size — 1 for a broker
/// alone; in a cluster, its voters or its registered brokers, whichever are more (a cluster
/// still starting must not get a topic it cannot replicate later). Until that many brokers
/// are live, creation waits: COORDINATOR_NOT_AVAILABLE, which clients retry, as Kafka's
/// answers while its cluster is smaller than the configured factor.
pub fn internal_topic_replication_factor(
    broker: &Broker,
    name: &str,
    configured: i16,
) -> Result<i16, (ErrorCode, String)> {
    if !broker.metadata.is_cluster() {
        return Ok(1);
    }
    let image = broker.metadata.image();
    let size = broker
        .config
        .controller_quorum_voters
        .len()
        .max(image.brokers.len());
    let wanted = usize::try_from(configured.max(1))
        .unwrap_or(1)
        .min(size.max(1));
    let live = image.live_brokers().count();
    if live < wanted {
        return Err((
            ErrorCode::CoordinatorNotAvailable,
            format!(
                "{name} is created with replication factor {wanted} once that many brokers are \
                 live; {live} are"
            ),
        ));
    }
    Ok(i16::try_from(wanted).unwrap_or(i16::MAX))
}

/// Validates and (unless `validate_only`) creates a topic. Returns its metadata.
pub fn create_topic(
    broker: &Broker,
    new: NewTopic<'_>,
    validate_only: bool,
) -> TopicResult<TopicMetadata> {
    validate_topic_name(new.name)?;
    let _admin = broker.metadata.admin_guard();
    if new.name.starts_with("__") && !new.internal && crate::server::is_internal_topic(new.name) {
        return Err((
            ErrorCode::InvalidRequest,
            format!("Topic {} is reserved for internal use", new.name),
        ));
    }
    let partitions = if new.partitions == -1 {
        broker.config.num_partitions
    } else {
        new.partitions
    };
    if partitions <= 0 {
        return Err((
            ErrorCode::InvalidPartitions,
            "Number of partitions must be larger than 0.".into(),
        ));
    }
    let replication_factor = if new.replication_factor == -1 {
        broker.config.default_replication_factor
    } else {
        new.replication_factor
    };
    if replication_factor <= 0 {
        return Err((
            ErrorCode::InvalidReplicationFactor,
            "Replication factor must be larger than 0.".into(),
        ));
    }
    let image = broker.metadata.image();
    let live_brokers = image.live_brokers().count();
    if usize::try_from(replication_factor).unwrap_or(usize::MAX) > live_brokers {
        return Err((
            ErrorCode::InvalidReplicationFactor,
            format!(
                "Unable to replicate the partition {replication_factor} time(s): The target replication factor of \
                 {replication_factor} cannot be reached because only {live_brokers} broker(s) are registered."
            ),
        ));
    }
    resolve_topic_config(broker, &new.configs)?;
    if image.topic(new.name).is_some() {
        return Err((
            ErrorCode::TopicAlreadyExists,
            format!("Topic '{}' already exists.", new.name),
        ));
    }
    if let Some(other) = image.topics.keys().find(|t| collides(t, new.name)) {
        return Err((
            ErrorCode::InvalidTopicException,
            format!("Topic '{}' collides with existing topic: {other}", new.name),
        ));
    }
    let placement = crate::replication::placement::rack_alternated(&image);
    let replication = usize::try_from(replication_factor).unwrap_or(1);
    let topic = TopicMetadata {
        name: new.name.to_string(),
        id: kafka_uuid::random_uuid(),
        partitions: place_partitions(&placement, 0..partitions, replication),
        configs: new.configs,
        internal: new.internal,
    };
    if validate_only {
        return Ok(topic);
    }
    // The image first; its publisher opens the logs (here and on every replica's broker).
    broker
        .metadata
        .commit(vec![MetadataRecord::CreateTopic(topic.clone())])
        .map_err(|e| match e {
            MetadataError::Refused(ApplyError::TopicExists(t)) => (
                ErrorCode::TopicAlreadyExists,
                format!("Topic '{t}' already exists."),
            ),
            other => (ErrorCode::KafkaStorageError, other.to_string()),
        })?;
    tracing::info!(topic = %topic.name, partitions, "created topic");
    Ok(topic)
}

/// New partitions' replicas, spread over `placement` from a random start (so that topics
/// do not all lead on the same brokers); the first replica leads, all are in sync.
fn place_partitions(
    placement: &[i32],
    indexes: std::ops::Range<i32>,
    replication: usize,
) -> Vec<PartitionMetadata> {
    let start = rand::random::<usize>();
    indexes
        .map(|p| {
            let replicas = crate::replication::placement::replicas_of(
                placement,
                start,
                usize::try_from(p).unwrap_or(0),
                replication,
            );
            PartitionMetadata {
                partition: p,
                leader: replicas.first().copied().unwrap_or(-1),
                leader_epoch: 0,
                isr: replicas.clone(),
                replicas,
                partition_epoch: 0,
            }
        })
        .collect()
}

pub fn delete_topic(broker: &Broker, name: &str) -> TopicResult<()> {
    let _admin = broker.metadata.admin_guard();
    if crate::server::is_internal_topic(name) {
        return Err((
            ErrorCode::InvalidRequest,
            format!("Topic {name} is an internal topic and cannot be deleted"),
        ));
    }
    broker
        .metadata
        .commit(vec![MetadataRecord::DeleteTopic {
            name: name.to_owned(),
        }])
        .map_err(|e| match e {
            MetadataError::Refused(ApplyError::UnknownTopic(_)) => (
                ErrorCode::UnknownTopicOrPartition,
                "This server does not host this topic-partition.".into(),
            ),
            other => (ErrorCode::KafkaStorageError, other.to_string()),
        })?;
    tracing::info!(topic = %name, "deleted topic");
    Ok(())
}

pub fn add_partitions(
    broker: &Broker,
    name: &str,
    new_count: i32,
    validate_only: bool,
) -> TopicResult<()> {
    let _admin = broker.metadata.admin_guard();
    let image = broker.metadata.image();
    let Some(topic) = image.topic(name) else {
        return Err((
            ErrorCode::UnknownTopicOrPartition,
            format!("The topic '{name}' does not exist."),
        ));
    };
    let current = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    if new_count <= current {
        let msg = if new_count == current {
            format!("Topic already has {current} partitions.")
        } else {
            format!("The topic {name} currently has {current} partition(s); {new_count} would not be an increase.")
        };
        return Err((ErrorCode::InvalidPartitions, msg));
    }
    if validate_only {
        return Ok(());
    }
    resolve_topic_config(broker, &topic.configs)?;
    let placement = crate::replication::placement::rack_alternated(&image);
    let replication = topic
        .partitions
        .first()
        .map_or(1, |p| p.replicas.len().max(1));
    if replication > placement.len() {
        return Err((
            ErrorCode::InvalidReplicationFactor,
            format!(
                "Unable to replicate the partition {replication} time(s): only {} broker(s) are registered.",
                placement.len()
            ),
        ));
    }
    let partitions = place_partitions(&placement, current..new_count, replication);
    broker
        .metadata
        .commit(vec![MetadataRecord::AddPartitions {
            topic: name.to_owned(),
            partitions,
        }])
        .map_err(|e| (ErrorCode::KafkaStorageError, e.to_string()))?;
    tracing::info!(topic = %name, from = current, to = new_count, "added partitions");
    Ok(())
}

/// Replaces a topic's config overrides with what `change` computes from the current ones,
/// after validating the result as a whole; applies it to the topic's live logs.
pub fn alter_topic_configs(
    broker: &Broker,
    name: &str,
    change: impl FnOnce(&BTreeMap<String, String>) -> TopicResult<BTreeMap<String, String>>,
    validate_only: bool,
) -> TopicResult<()> {
    let _admin = broker.metadata.admin_guard();
    let image = broker.metadata.image();
    let Some(topic) = image.topic(name) else {
        return Err((
            ErrorCode::UnknownTopicOrPartition,
            format!("Topic {name} does not exist"),
        ));
    };
    let next = change(&topic.configs)?;
    resolve_topic_config(broker, &next)?;
    if validate_only {
        return Ok(());
    }
    // The publisher hands the re-resolved config to the topic's live logs.
    broker
        .metadata
        .commit(vec![MetadataRecord::SetTopicConfigs {
            topic: name.to_owned(),
            configs: next,
        }])
        .map_err(|e| (ErrorCode::KafkaStorageError, e.to_string()))?;
    tracing::info!(topic = %name, "topic configs changed");
    Ok(())
}

/// Replaces the dynamic configs of one BROKER resource (`""`: cluster-wide default, else
/// this broker's node id, which the caller has checked) with what `change` computes from
/// the current ones. Checked as Kafka's `DynamicBrokerConfig` does, the whole effective
/// configuration revalidated, every topic's config re-resolved; then (unless
/// `validate_only`) persisted in the image and applied at once to every live log, as
/// Kafka's `DynamicLogConfig.reconfigure` updates the logs without their own override.
pub fn alter_broker_configs(
    broker: &Broker,
    resource: &str,
    change: impl FnOnce(&BTreeMap<String, String>) -> TopicResult<BTreeMap<String, String>>,
    validate_only: bool,
) -> TopicResult<()> {
    let _admin = broker.metadata.admin_guard();
    let image = broker.metadata.image();
    let next = change(&image.dynamic_configs_of(resource))?;
    strata_config::check_dynamic_keys(next.keys()).map_err(|e| {
        let code = if e.is_invalid_config() {
            ErrorCode::InvalidConfig
        } else {
            ErrorCode::InvalidRequest
        };
        (code, e.to_string())
    })?;
    let node = broker.node_id().to_string();
    let (default, per_broker) = if resource.is_empty() {
        (next.clone(), image.dynamic_configs_of(&node))
    } else {
        (image.dynamic_configs_of(""), next.clone())
    };
    // Kafka answers a value that fails validation with INVALID_REQUEST (KAFKA-13609).
    let effective = broker
        .config
        .with_dynamic(&default, &per_broker)
        .map_err(|e| (ErrorCode::InvalidRequest, e.to_string()))?;
    for topic in image.topics.values() {
        TopicConfig::resolve(&effective, &topic.configs).map_err(|e| {
            (
                ErrorCode::InvalidRequest,
                format!("topic {} would become invalid: {e}", topic.name),
            )
        })?;
    }
    if validate_only {
        return Ok(());
    }
    // The publisher recomputes the effective config and re-resolves every live log.
    broker
        .metadata
        .commit(vec![MetadataRecord::SetBrokerConfigs {
            resource: resource.to_owned(),
            configs: next,
        }])
        .map_err(|e| (ErrorCode::KafkaStorageError, e.to_string()))?;
    tracing::info!(
        resource = if resource.is_empty() {
            "<cluster default>"
        } else {
            resource
        },
        "dynamic broker configs changed"
    );
    Ok(())
}
