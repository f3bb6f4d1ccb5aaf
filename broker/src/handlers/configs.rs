//! AlterConfigs (whole-set replacement, the legacy API), IncrementalAlterConfigs
//! (SET/DELETE/APPEND/SUBTRACT per key) and DescribeLogDirs. Topic changes are validated
//! against Kafka's topic keys, recorded in the metadata image and applied to the topic's
//! live logs. BROKER resources (`""` cluster-wide default, or this broker's id) change the
//! dynamic broker configs Kafka's way (`ConfigAdminManager.preprocess`), applied live.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, TopicName,
};
use strata_config::registry::broker_key;
use strata_config::topic::topic_key;
use strata_config::ConfigType;
use strata_protocol::kafka_protocol;

use super::{str_bytes, RequestContext};
use crate::errors::ErrorCode;
use crate::security::acl::AclOperation;
use crate::server::Broker;
use crate::topics;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

type Outcome = Result<(), (ErrorCode, String)>;

/// Kafka's `ConfigAdminManager.validateResourceNameIsCurrentNodeId`: a non-empty BROKER
/// resource name must be this broker's id (other brokers' configs go through them).
fn check_broker_name(broker: &Broker, name: &str) -> Outcome {
    if name.is_empty() {
        return Ok(());
    }
    let Ok(id) = name.parse::<i32>() else {
        return Err((
            ErrorCode::InvalidRequest,
            format!("Node id must be an integer, but it is: {name}"),
        ));
    };
    if id != broker.node_id() {
        return Err((
            ErrorCode::InvalidRequest,
            format!(
                "Unexpected broker id, expected {}, but received {name}",
                broker.node_id()
            ),
        ));
    }
    Ok(())
}

/// ALTER_CONFIGS on the topic, or on the cluster for broker resources, as Kafka checks.
fn may_alter(broker: &Broker, ctx: &RequestContext, resource_type: i8, name: &str) -> bool {
    match resource_type {
        RESOURCE_TOPIC => ctx.allowed_topic(broker, AclOperation::AlterConfigs, name),
        _ => ctx.allowed_cluster(broker, AclOperation::AlterConfigs),
    }
}

fn denied(resource_type: i8) -> Outcome {
    let code = if resource_type == RESOURCE_TOPIC {
        ErrorCode::TopicAuthorizationFailed
    } else {
        ErrorCode::ClusterAuthorizationFailed
    };
    Err((code, "Authorization failed.".into()))
}

fn unsupported_resource(resource_type: i8) -> Outcome {
    Err((
        ErrorCode::InvalidRequest,
        format!("unsupported resource type {resource_type}"),
    ))
}

/// What both alter APIs do with one resource: authorize, then change a topic's overrides
/// or a BROKER resource's dynamic configs with `change`.
fn alter_resource(
    broker: &Broker,
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    change: impl FnOnce(
        &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, (ErrorCode, String)>,
    validate_only: bool,
) -> Outcome {
    if !may_alter(broker, ctx, resource_type, name) {
        return denied(resource_type);
    }
    match resource_type {
        RESOURCE_TOPIC => topics::alter_topic_configs(broker, name, change, validate_only),
        RESOURCE_BROKER => {
            check_broker_name(broker, name)?;
            topics::alter_broker_configs(broker, name, change, validate_only)
        }
        other => unsupported_resource(other),
    }
}

pub fn alter_configs(
    broker: &Broker,
    ctx: &RequestContext,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let responses = tokio::task::block_in_place(|| {
        request
            .resources
            .into_iter()
            .map(|r| {
                // The legacy API replaces the topic's whole override set.
                let overrides: BTreeMap<String, String> = r
                    .configs
                    .iter()
                    .filter_map(|c| {
                        c.value
                            .as_ref()
                            .map(|v| (c.name.to_string(), v.to_string()))
                    })
                    .collect();
                let outcome = alter_resource(
                    broker,
                    ctx,
                    r.resource_type,
                    r.resource_name.as_str(),
                    |_| Ok(overrides),
                    request.validate_only,
                );
                let (code, message) = split(outcome);
                alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(code)
                    .with_error_message(message)
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
            })
            .collect()
    });
    AlterConfigsResponse::default().with_responses(responses)
}

pub fn incremental_alter_configs(
    broker: &Broker,
    ctx: &RequestContext,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = tokio::task::block_in_place(|| {
        request
            .resources
            .into_iter()
            .map(|r| {
                let ops: Vec<(String, i8, Option<String>)> = r
                    .configs
                    .iter()
                    .map(|c| {
                        (
                            c.name.to_string(),
                            c.config_operation,
                            c.value.as_ref().map(|v| v.to_string()),
                        )
                    })
                    .collect();
                let keys = if r.resource_type == RESOURCE_BROKER {
                    KeyKind::Broker
                } else {
                    KeyKind::Topic
                };
                let outcome = alter_resource(
                    broker,
                    ctx,
                    r.resource_type,
                    r.resource_name.as_str(),
                    |current| apply_incremental(current, &ops, keys),
                    request.validate_only,
                );
                let (code, message) = split(outcome);
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(code)
                    .with_error_message(message)
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
            })
            .collect()
    });
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn split(outcome: Outcome) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((code, message)) => (code.code(), Some(str_bytes(message))),
    }
}

/// Whose keys an IncrementalAlterConfigs resource names.
#[derive(Clone, Copy)]
enum KeyKind {
    Topic,
    Broker,
}

impl KeyKind {
    /// (is a LIST, default text) of a known key; `None` for unknown keys.
    fn shape(self, name: &str) -> Option<(bool, Option<&'static str>)> {
        match self {
            KeyKind::Topic => {
                topic_key(name).map(|k| (k.config_type == ConfigType::List, Some(k.default)))
            }
            KeyKind::Broker => {
                broker_key(name).map(|k| (k.config_type == ConfigType::List, k.default))
            }
        }
    }

    fn unknown(self, name: &str) -> (ErrorCode, String) {
        let what = match self {
            KeyKind::Topic => "topic",
            KeyKind::Broker => "broker",
        };
        (
            ErrorCode::InvalidConfig,
            format!("Unknown {what} config name: {name}"),
        )
    }
}

/// Kafka's IncrementalAlterConfigs semantics (`prepareIncrementalConfigs`) over a
/// resource's current configs (a topic's overrides, a BROKER resource's dynamic layer).
fn apply_incremental(
    current: &BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
    keys: KeyKind,
) -> Result<BTreeMap<String, String>, (ErrorCode, String)> {
    let mut next = current.clone();
    let mut seen = std::collections::HashSet::new();
    for (name, op, value) in ops {
        if !seen.insert(name.as_str()) {
            return Err((
                ErrorCode::InvalidRequest,
                format!("Error due to duplicate config keys: {name}"),
            ));
        }
        let Some((is_list, default)) = keys.shape(name) else {
            return Err(keys.unknown(name));
        };
        match *op {
            OP_SET => {
                let Some(v) = value else {
                    return Err((
                        ErrorCode::InvalidRequest,
                        format!("Null value not supported for : {name}"),
                    ));
                };
                let _ = next.insert(name.clone(), v.clone());
            }
            OP_DELETE => {
                let _ = next.remove(name);
            }
            OP_APPEND | OP_SUBTRACT if !is_list => {
                return Err((
                    ErrorCode::InvalidConfig,
                    format!("Config value append is not allowed for config key: {name}"),
                ));
            }
            OP_APPEND | OP_SUBTRACT => {
                let base = next
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| default.unwrap_or_default().to_string());
                let mut items: Vec<String> = base
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                let given: Vec<String> = value
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if *op == OP_APPEND {
                    for g in given {
                        if !items.contains(&g) {
                            items.push(g);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                let _ = next.insert(name.clone(), items.join(","));
            }
            other => {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!("Unknown config operation {other}"),
                ))
            }
        }
    }
    Ok(next)
}

pub fn describe_log_dirs(
    broker: &Broker,
    ctx: &RequestContext,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let version = ctx.api_version;
    if !ctx.allowed_cluster(broker, AclOperation::Describe) {
        // Kafka answers an unauthorised DescribeLogDirs with no results (and, v3+, the error).
        let response = DescribeLogDirsResponse::default();
        return if version >= 3 {
            response.with_error_code(ErrorCode::ClusterAuthorizationFailed.code())
        } else {
            response
        };
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let partitions = broker.replicas.all();
    let results = broker
        .replicas
        .log_dirs()
        .iter()
        .map(|dir| {
            let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
            for p in &partitions {
                if broker.replicas.log_dir_of(&p.tp).as_deref() != Some(dir.as_path()) {
                    continue;
                }
                let included = wanted.as_ref().is_none_or(|w| {
                    w.iter()
                        .any(|(t, ps)| *t == p.tp.topic && ps.contains(&p.tp.partition))
                });
                if included {
                    by_topic.entry(p.tp.topic.clone()).or_default().push(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(p.tp.partition)
                            .with_partition_size(i64::try_from(p.size_bytes()).unwrap_or(i64::MAX))
                            .with_offset_lag(0),
                    );
                }
            }
            let topics = by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    DescribeLogDirsTopic::default()
                        .with_name(TopicName(str_bytes(name)))
                        .with_partitions(partitions)
                })
                .collect();
            let mut result = DescribeLogDirsResult::default()
                .with_log_dir(str_bytes(dir.display().to_string()))
                .with_topics(topics);
            match strata_storage::LogDirs::usage(dir) {
                Ok(usage) if version >= 4 => {
                    result = result
                        .with_total_bytes(i64::try_from(usage.total_bytes).unwrap_or(i64::MAX))
                        .with_usable_bytes(i64::try_from(usage.free_bytes).unwrap_or(i64::MAX));
                }
                Ok(_) => {}
                Err(_) => result = result.with_error_code(ErrorCode::KafkaStorageError.code()),
            }
            // A log dir that failed with an I/O error is offline, as Kafka reports it.
            if broker.replicas.is_log_dir_offline(dir) {
                result = result.with_error_code(ErrorCode::KafkaStorageError.code());
            }
            result
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_operations_follow_kafka() {
        let current = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let ops = vec![
            ("retention.ms".to_string(), OP_DELETE, None),
            (
                "cleanup.policy".to_string(),
                OP_APPEND,
                Some("compact".to_string()),
            ),
            (
                "segment.bytes".to_string(),
                OP_SET,
                Some("1048576".to_string()),
            ),
        ];
        let next = apply_incremental(&current, &ops, KeyKind::Topic).unwrap();
        assert!(!next.contains_key("retention.ms"));
        assert_eq!(
            next.get("cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
        assert_eq!(
            next.get("segment.bytes").map(String::as_str),
            Some("1048576")
        );
        let subtract = vec![(
            "cleanup.policy".to_string(),
            OP_SUBTRACT,
            Some("delete".to_string()),
        )];
        assert_eq!(
            apply_incremental(&next, &subtract, KeyKind::Topic)
                .unwrap()
                .get("cleanup.policy")
                .map(String::as_str),
            Some("compact")
        );
        // APPEND on a non-list key and unknown keys are refused
        assert!(apply_incremental(
            &current,
            &[("retention.ms".to_string(), OP_APPEND, Some("1".into()))],
            KeyKind::Topic
        )
        .is_err());
        assert!(apply_incremental(
            &current,
            &[("no.such".to_string(), OP_SET, Some("1".into()))],
            KeyKind::Topic
        )
        .is_err());
        // Broker keys: APPEND to a list starts from Kafka's default.
        let broker = apply_incremental(
            &BTreeMap::new(),
            &[(
                "log.cleanup.policy".to_string(),
                OP_APPEND,
                Some("compact".into()),
            )],
            KeyKind::Broker,
        )
        .unwrap();
        assert_eq!(
            broker.get("log.cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
        let unknown = apply_incremental(
            &BTreeMap::new(),
            &[("no.such".to_string(), OP_SET, Some("1".into()))],
            KeyKind::Broker,
        );
        assert_eq!(
            unknown.unwrap_err(),
            (
                ErrorCode::InvalidConfig,
                "Unknown broker config name: no.such".to_string()
            )
        );
    }
}
