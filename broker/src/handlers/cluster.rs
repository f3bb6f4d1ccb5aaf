//! DescribeCluster and DescribeConfigs (topics and brokers, with Kafka's config sources,
//! synonyms and documentation — librdkafka and kafka-topics read these).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeConfigsResponse,
};
use strata_config::ConfigEntry;
use strata_protocol::kafka_protocol;

use super::{str_bytes, RequestContext};
use crate::errors::ErrorCode;
use crate::security::acl::AclOperation;
use crate::server::Broker;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;

pub fn describe_cluster(
    broker: &Broker,
    ctx: &RequestContext,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    const ENDPOINT_TYPE_BROKER: i8 = 1;
    if ctx.api_version >= 1 && request.endpoint_type != ENDPOINT_TYPE_BROKER {
        return DescribeClusterResponse::default()
            .with_error_code(ErrorCode::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes(
                "only broker endpoints are served by brokers",
            )))
            .with_endpoint_type(request.endpoint_type);
    }
    if !ctx.allowed_cluster(broker, AclOperation::Describe) {
        return DescribeClusterResponse::default()
            .with_error_code(ErrorCode::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes("Cluster authorization failed.")))
            .with_endpoint_type(ENDPOINT_TYPE_BROKER);
    }
    let image = broker.metadata.image();
    let brokers = image
        .brokers
        .values()
        .filter_map(|b| {
            let e = b.endpoint_for(&ctx.listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.node_id))
                    .with_host(str_bytes(e.host.clone()))
                    .with_port(i32::from(e.port))
                    .with_rack(b.rack.clone().map(str_bytes)),
            )
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_TYPE_BROKER)
        .with_cluster_id(str_bytes(image.cluster_id.clone()))
        .with_controller_id(BrokerId(image.controller_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            ctx.cluster_operations(broker)
        } else {
            i32::MIN
        })
}

pub fn describe_configs(
    broker: &Broker,
    ctx: &RequestContext,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let version = ctx.api_version;
    let image = broker.metadata.image();
    // Static + dynamic broker configs: topic defaults and broker keys as they apply now.
    let config = broker.current_config();
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            // DESCRIBE_CONFIGS on the topic, or on the cluster for broker resources.
            let authorized = match resource.resource_type {
                RESOURCE_TOPIC => ctx
                    .allowed_topic(broker, AclOperation::DescribeConfigs, &name)
                    .then_some(())
                    .ok_or(ErrorCode::TopicAuthorizationFailed),
                RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => ctx
                    .allowed_cluster(broker, AclOperation::DescribeConfigs)
                    .then_some(())
                    .ok_or(ErrorCode::ClusterAuthorizationFailed),
                _ => Ok(()),
            };
            let entries: Result<Vec<ConfigEntry>, (ErrorCode, String)> = match resource.resource_type {
                _ if authorized.is_err() => Err((
                    authorized.err().unwrap_or(ErrorCode::UnknownServerError),
                    "Authorization failed.".to_string(),
                )),
                RESOURCE_TOPIC => match image.topic(&name) {
                    Some(t) => Ok(strata_config::describe_topic(&config, &t.configs)),
                    None => Err((ErrorCode::UnknownTopicOrPartition, format!("Topic {name} does not exist"))),
                },
                RESOURCE_BROKER => {
                    // Kafka (ConfigHelper): "" lists only the dynamic cluster defaults.
                    if name.is_empty() {
                        Ok(strata_config::describe_broker_defaults(&config))
                    } else if name == broker.node_id().to_string() {
                        Ok(strata_config::describe_broker(&config))
                    } else {
                        Err((
                            ErrorCode::InvalidRequest,
                            format!("Unexpected broker id, expected {} or empty string, but received {name}", broker.node_id()),
                        ))
                    }
                }
                RESOURCE_BROKER_LOGGER => Ok(Vec::new()),
                other => Err((ErrorCode::InvalidRequest, format!("Unsupported resource type {other}"))),
            };
            match entries {
                Err((code, message)) => result.with_error_code(code.code()).with_error_message(Some(str_bytes(message))),
                Ok(entries) => {
                    let wanted = resource.configuration_keys.as_ref();
                    let configs = entries
                        .into_iter()
                        .filter(|e| wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name)))
                        .map(|e| config_result(e, version, request.include_synonyms, request.include_documentation))
                        .collect();
                    result.with_configs(configs)
                }
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn config_result(
    e: ConfigEntry,
    version: i16,
    synonyms: bool,
    documentation: bool,
) -> DescribeConfigsResourceResult {
    let value = if e.sensitive { None } else { e.value.clone() };
    let mut out = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(e.name.clone()))
        .with_value(value.map(str_bytes))
        .with_read_only(e.read_only)
        .with_config_source(e.source.id())
        .with_is_sensitive(e.sensitive)
        .with_config_type(if version >= 3 { e.config_type.id() } else { 0 });
    if version >= 1 && synonyms {
        out = out.with_synonyms(
            e.synonyms
                .iter()
                .map(|(name, value, source)| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(name.clone()))
                        .with_value(if e.sensitive {
                            None
                        } else {
                            value.clone().map(str_bytes)
                        })
                        .with_source(source.id())
                })
                .collect(),
        );
    }
    if version >= 3 && documentation {
        out = out.with_documentation(e.documentation.clone().map(str_bytes));
    }
    out
}
