//! InitProducerId for idempotent producers: a fresh producer id with epoch 0. Transactional
//! ids need the transaction coordinator, which does not exist yet.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use strata_protocol::kafka_protocol;

use super::RequestContext;
use crate::errors::ErrorCode;
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::Broker;

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let failed = |code: ErrorCode| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        // Not an authorization problem: no transaction coordinator exists yet.
        return failed(ErrorCode::InvalidRequest);
    }
    // KIP-679: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic, lets a client be
    // an idempotent producer.
    if !ctx.allowed_cluster(broker, AclOperation::IdempotentWrite)
        && !ctx.allowed_any(broker, AclOperation::Write, ResourceType::Topic)
    {
        return failed(ErrorCode::ClusterAuthorizationFailed);
    }
    match broker.producer_ids.next_id() {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            failed(ErrorCode::KafkaStorageError)
        }
    }
}
