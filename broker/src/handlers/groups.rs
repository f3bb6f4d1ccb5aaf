//! Consumer-group APIs. FindCoordinator is answered here (this broker leads every
//! `__consumer_offsets` partition for now); everything else is the group coordinator's.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use strata_protocol::kafka_protocol;

use super::{str_bytes, RequestContext};
use crate::errors::ErrorCode;
use crate::offsets_topic::{ensure_offsets_topic, OFFSETS_TOPIC};
use crate::security::acl::AclOperation;
use crate::server::Broker;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Creates `__consumer_offsets` on first use and loads its (empty) partitions into the
/// coordinator, so the first group request is served instead of told to retry.
async fn prepare_offsets_topic(broker: &Broker) -> Result<(), (ErrorCode, String)> {
    let created = tokio::task::block_in_place(|| ensure_offsets_topic(broker))?;
    // In a cluster each partition's leader loads it when it takes the leadership.
    if created && !broker.metadata.is_cluster() {
        let partitions = broker
            .metadata
            .image()
            .topic(OFFSETS_TOPIC)
            .map(|t| t.partitions.len())
            .unwrap_or(0);
        for p in 0..i32::try_from(partitions).unwrap_or(0) {
            broker.groups.load_partition(p).await.map_err(|code| {
                (
                    crate::errors::from_code(code),
                    format!("loading {OFFSETS_TOPIC}-{p} failed"),
                )
            })?;
        }
    }
    Ok(())
}

pub async fn find_coordinator(
    broker: &Broker,
    ctx: &RequestContext,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    // v4+ batches keys; earlier versions carry one key and answer in the top-level fields.
    let batched = ctx.api_version >= 4;
    let keys: Vec<StrBytes> = if batched {
        request.coordinator_keys.clone()
    } else {
        vec![request.key.clone()]
    };
    let image = broker.metadata.image();
    let cluster = broker.metadata.is_cluster();
    let prepared = match request.key_type {
        KEY_TYPE_GROUP => prepare_offsets_topic(broker).await.map_err(|(code, msg)| {
            tracing::error!(error = %msg, "cannot create __consumer_offsets");
            (code, msg)
        }),
        KEY_TYPE_TRANSACTION if cluster => Err((
            ErrorCode::CoordinatorNotAvailable,
            "transactions are not available in a Strata cluster yet".to_owned(),
        )),
        KEY_TYPE_TRANSACTION => {
            tokio::task::block_in_place(|| super::transactions::ensure_transaction_topic(broker))
                .map_err(|(code, msg)| {
                    tracing::error!(error = %msg, "cannot create __transaction_state");
                    (code, msg)
                })
        }
        other => Err((
            ErrorCode::InvalidRequest,
            format!("unknown coordinator key type {other}"),
        )),
    };
    let coordinators: Vec<Coordinator> = keys
        .into_iter()
        .map(|key| {
            // DESCRIBE on the group or the transactional id, checked per key.
            let denied = match request.key_type {
                KEY_TYPE_GROUP => {
                    (!ctx.allowed_group(broker, AclOperation::Describe, key.as_str())).then_some((
                        ErrorCode::GroupAuthorizationFailed,
                        "Group authorization failed.",
                    ))
                }
                KEY_TYPE_TRANSACTION => {
                    (!ctx.allowed_transactional_id(broker, AclOperation::Describe, key.as_str()))
                        .then_some((
                            ErrorCode::TransactionalIdAuthorizationFailed,
                            "Transactional Id authorization failed.",
                        ))
                }
                _ => None,
            };
            let partition = broker.groups.partition_for(key.as_str());
            let c = Coordinator::default().with_key(key);
            if let Some((code, message)) = denied {
                return c
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1);
            }
            // Alone, this broker coordinates everything; in a cluster, the leader of the
            // key's __consumer_offsets partition does.
            let node = if cluster {
                image
                    .topic(crate::offsets_topic::OFFSETS_TOPIC)
                    .and_then(|t| t.partitions.iter().find(|p| p.partition == partition))
                    .map_or(-1, |p| p.leader)
            } else {
                broker.node_id()
            };
            let endpoint = image
                .live_brokers()
                .find(|b| b.node_id == node)
                .and_then(|b| b.endpoint_for(&ctx.listener).cloned());
            match (&prepared, &endpoint) {
                (Ok(()), Some(e)) => c
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(e.host.clone()))
                    .with_port(i32::from(e.port)),
                (Err((code, msg)), _) => c
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(msg.clone())))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
                (Ok(()), None) => c
                    .with_error_code(ErrorCode::CoordinatorNotAvailable.code())
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            }
        })
        .collect();
    if batched {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let Some(c) = coordinators.into_iter().next() else {
        return FindCoordinatorResponse::default()
            .with_error_code(ErrorCode::InvalidRequest.code());
    };
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(if ctx.api_version >= 1 {
            c.error_message
        } else {
            None
        })
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}
