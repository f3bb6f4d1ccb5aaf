//! The transactional APIs of producers (KIP-98): AddPartitionsToTxn (client versions 0–3),
//! AddOffsetsToTxn, EndTxn, TxnOffsetCommit; InitProducerId with a transactional id is in
//! `producer_id`, the operators' APIs in `txn_admin`. The state lives in
//! `crate::txn::coordinator`; these check authorization and shape the answers.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use strata_protocol::kafka_protocol;

use super::RequestContext;
use crate::errors::ErrorCode;
use crate::offsets_topic::OFFSETS_TOPIC;
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::Broker;
use crate::txn::coordinator::TRANSACTION_STATE_TOPIC;

impl RequestContext {
    pub fn allowed_transactional_id(
        &self,
        broker: &Broker,
        operation: AclOperation,
        transactional_id: &str,
    ) -> bool {
        self.allowed(
            broker,
            operation,
            ResourceType::TransactionalId,
            transactional_id,
        )
    }
}

/// The coordinator's work (log appends, markers) runs off the async workers.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

pub fn add_partitions_to_txn(
    broker: &Broker,
    ctx: &RequestContext,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let txn_id = request.v3_and_below_transactional_id.0.to_string();
    // PRODUCER_FENCED exists from v2; older clients get INVALID_PRODUCER_EPOCH.
    let fenced_known = ctx.api_version >= 2;
    let image = broker.metadata.image();
    let whole = if ctx.api_version >= 4 {
        // Versions 4+ are Kafka's broker-to-broker verification; no client sends them.
        Some(ErrorCode::UnsupportedVersion)
    } else if !ctx.allowed_transactional_id(broker, AclOperation::Write, &txn_id) {
        Some(ErrorCode::TransactionalIdAuthorizationFailed)
    } else {
        None
    };
    // Per-partition refusals first, as Kafka: one refusal makes the others
    // OPERATION_NOT_ATTEMPTED and nothing is added.
    let mut refusals: Vec<Vec<Option<ErrorCode>>> = Vec::new();
    let mut wanted = Vec::new();
    for topic in &request.v3_and_below_topics {
        let name = topic.name.0.as_str();
        let refusal = if whole.is_some() {
            whole
        } else if !ctx.allowed_topic(broker, AclOperation::Write, name) {
            Some(ErrorCode::TopicAuthorizationFailed)
        } else if crate::server::is_internal_topic(name) {
            // Offsets join through AddOffsetsToTxn; nothing else internal may.
            Some(ErrorCode::InvalidTopicException)
        } else {
            None
        };
        let known = image.topic(name);
        refusals.push(
            topic
                .partitions
                .iter()
                .map(|&p| {
                    refusal.or_else(|| {
                        let exists = known.is_some_and(|t| {
                            usize::try_from(p).is_ok_and(|i| i < t.partitions.len())
                        });
                        (!exists).then_some(ErrorCode::UnknownTopicOrPartition)
                    })
                })
                .collect(),
        );
        wanted.extend(topic.partitions.iter().map(|&p| (name.to_string(), p)));
    }
    let any_refused = refusals.iter().flatten().any(Option::is_some);
    let outcome: Result<(), ErrorCode> = if any_refused {
        Ok(())
    } else {
        blocking(|| {
            broker.transactions.add_partitions(
                &txn_id,
                request.v3_and_below_producer_id.0,
                request.v3_and_below_producer_epoch,
                &wanted,
            )
        })
        .map_err(|e| e.code(fenced_known))
    };
    let results = request
        .v3_and_below_topics
        .iter()
        .zip(refusals)
        .map(|(topic, refused)| {
            let partitions = topic
                .partitions
                .iter()
                .zip(refused)
                .map(|(&p, refusal)| {
                    let code = match (refusal, any_refused, &outcome) {
                        (Some(code), _, _) => code.code(),
                        (None, true, _) => ErrorCode::OperationNotAttempted.code(),
                        (None, false, Err(code)) => code.code(),
                        (None, false, Ok(())) => 0,
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

pub fn add_offsets_to_txn(
    broker: &Broker,
    ctx: &RequestContext,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let txn_id = request.transactional_id.0.as_str();
    let group_id = request.group_id.0.as_str();
    let outcome = if !ctx.allowed_transactional_id(broker, AclOperation::Write, txn_id) {
        Err(ErrorCode::TransactionalIdAuthorizationFailed)
    } else if !ctx.allowed_group(broker, AclOperation::Read, group_id) {
        Err(ErrorCode::GroupAuthorizationFailed)
    } else {
        // The group's offsets partition joins the transaction; its marker decides the
        // offsets TxnOffsetCommit writes there.
        let partition = (
            OFFSETS_TOPIC.to_string(),
            broker.groups.partition_for(group_id),
        );
        blocking(|| {
            broker.transactions.add_partitions(
                txn_id,
                request.producer_id.0,
                request.producer_epoch,
                &[partition],
            )
        })
        .map_err(|e| e.code(ctx.api_version >= 2))
    };
    AddOffsetsToTxnResponse::default().with_error_code(crate::errors::code_of(&outcome))
}

pub fn end_txn(broker: &Broker, ctx: &RequestContext, request: EndTxnRequest) -> EndTxnResponse {
    let txn_id = request.transactional_id.0.as_str();
    let outcome = if !ctx.allowed_transactional_id(broker, AclOperation::Write, txn_id) {
        Err(ErrorCode::TransactionalIdAuthorizationFailed)
    } else {
        blocking(|| {
            broker.transactions.end_transaction(
                txn_id,
                request.producer_id.0,
                request.producer_epoch,
                request.committed,
            )
        })
        .map_err(|e| e.code(ctx.api_version >= 2))
    };
    EndTxnResponse::default().with_error_code(crate::errors::code_of(&outcome))
}

pub async fn txn_offset_commit(
    broker: &Broker,
    ctx: &RequestContext,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let txn_id = request.transactional_id.0.as_str();
    let group_id = request.group_id.0.as_str();
    let refusal = if !ctx.allowed_transactional_id(broker, AclOperation::Write, txn_id) {
        Some(ErrorCode::TransactionalIdAuthorizationFailed)
    } else if !ctx.allowed_group(broker, AclOperation::Read, group_id) {
        Some(ErrorCode::GroupAuthorizationFailed)
    } else {
        // The offsets partition must be in the producer's transaction (AddOffsetsToTxn),
        // or the offsets could never be decided.
        let partition = broker.groups.partition_for(group_id);
        broker
            .transactions
            .verify_partition(
                txn_id,
                request.producer_id.0,
                request.producer_epoch,
                OFFSETS_TOPIC,
                partition,
            )
            .err()
    };
    if let Some(code) = refusal {
        return refused_txn_offsets(&request, code);
    }
    // Topics the principal may not read are refused one by one, as in OffsetCommit.
    let denied: Vec<bool> = request
        .topics
        .iter()
        .map(|t| !ctx.allowed_topic(broker, AclOperation::Read, t.name.0.as_str()))
        .collect();
    if denied.iter().any(|d| *d) {
        let mut response = refused_txn_offsets(&request, ErrorCode::TopicAuthorizationFailed);
        for (topic, denied) in response.topics.iter_mut().zip(&denied) {
            if !denied {
                for p in &mut topic.partitions {
                    p.error_code = ErrorCode::OperationNotAttempted.code();
                }
            }
        }
        return response;
    }
    broker
        .groups
        .txn_offset_commit(&request, ctx.api_version)
        .await
}

fn refused_txn_offsets(
    request: &TxnOffsetCommitRequest,
    code: ErrorCode,
) -> TxnOffsetCommitResponse {
    use kafka_protocol::messages::txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
    };
    let topics = request
        .topics
        .iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code.code())
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// Creates `__transaction_state` on first use (as Kafka does), compacted like Kafka's.
pub fn ensure_transaction_topic(broker: &Broker) -> Result<(), (ErrorCode, String)> {
    use std::collections::BTreeMap;
    if broker
        .metadata
        .image()
        .topic(TRANSACTION_STATE_TOPIC)
        .is_some()
    {
        return Ok(());
    }
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("compression.type".to_string(), "uncompressed".to_string()),
        ("segment.bytes".to_string(), (100 * 1024 * 1024).to_string()),
    ]);
    let replication_factor = crate::topics::internal_topic_replication_factor(
        broker,
        TRANSACTION_STATE_TOPIC,
        broker.config.transaction_state_log_replication_factor,
    )?;
    let new = crate::topics::NewTopic {
        name: TRANSACTION_STATE_TOPIC,
        partitions: broker.config.transaction_state_log_num_partitions,
        replication_factor,
        configs,
        internal: true,
    };
    match crate::topics::create_topic(broker, new, false) {
        Ok(_) | Err((ErrorCode::TopicAlreadyExists, _)) => Ok(()),
        Err(e) => Err(e),
    }
}
