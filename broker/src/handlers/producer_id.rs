//! InitProducerId: for idempotent producers a fresh producer id with epoch 0; for a
//! transactional id, the transaction coordinator's producer id and next epoch.

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
    if let Some(txn_id) = request.transactional_id.as_ref().map(|t| t.0.to_string()) {
        if !ctx.allowed_transactional_id(broker, AclOperation::Write, &txn_id) {
            return failed(ErrorCode::TransactionalIdAuthorizationFailed);
        }
        if let Err((code, msg)) =
            tokio::task::block_in_place(|| super::transactions::ensure_transaction_topic(broker))
        {
            tracing::error!(error = %msg, "cannot create __transaction_state");
            return failed(code);
        }
        // v3+ (KIP-360): a producer may name its current id and epoch to bump it itself.
        let expected =
            (request.producer_id.0 >= 0).then_some((request.producer_id.0, request.producer_epoch));
        let outcome = tokio::task::block_in_place(|| {
            broker.transactions.init_producer_id(
                &txn_id,
                request.transaction_timeout_ms,
                expected,
                &broker.producer_ids,
            )
        });
        return match outcome {
            Ok((id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            // PRODUCER_FENCED exists from v4.
            Err(e) => failed(e.code(ctx.api_version >= 4)),
        };
    }
    // KIP-679: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic, lets a client be
    // an idempotent producer.
    if !ctx.allowed_cluster(broker, AclOperation::IdempotentWrite)
        && !ctx.allowed_any(broker, AclOperation::Write, ResourceType::Topic)
    {
        return failed(ErrorCode::ClusterAuthorizationFailed);
    }
    let id = if broker.metadata.is_cluster() {
        broker
            .producer_ids
            .next_id_in_cluster(&broker.metadata, broker.node_id())
            .map_err(|e| e.to_string())
    } else {
        broker.producer_ids.next_id().map_err(|e| e.to_string())
    };
    match id {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            failed(ErrorCode::KafkaStorageError)
        }
    }
}
