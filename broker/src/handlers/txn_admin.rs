//! The operators' side of transactions, what `kafka-transactions.sh` uses: ListTransactions
//! and DescribeTransactions (the coordinator's view), DescribeProducers (a partition's
//! producers and their open transactions) and WriteTxnMarkers (its `abort` of a hanging
//! transaction, which Kafka's coordinators also send to partition leaders).

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedTransaction,
};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TopicName, TransactionalId, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use strata_protocol::kafka_protocol;
use strata_protocol::record_batch::MarkerKind;

use super::{str_bytes, RequestContext};
use crate::errors::ErrorCode;
use crate::offsets_topic::OFFSETS_TOPIC;
use crate::partition::manager::now_ms;
use crate::security::acl::AclOperation;
use crate::server::Broker;
use crate::txn::state_log::TxnState;

pub fn describe_transactions(
    broker: &Broker,
    ctx: &RequestContext,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let asked: Vec<String> = request
        .transactional_ids
        .iter()
        .map(|id| id.0.to_string())
        .collect();
    let known = broker.transactions.view(Some(&asked));
    let states = asked
        .into_iter()
        .map(|id| {
            let base = DescribedTransaction::default()
                .with_transactional_id(TransactionalId(str_bytes(id.clone())))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            if !ctx.allowed_transactional_id(broker, AclOperation::Describe, &id) {
                return base.with_error_code(ErrorCode::TransactionalIdAuthorizationFailed.code());
            }
            let Some(view) = known.iter().find(|v| v.transactional_id == id) else {
                return base.with_error_code(ErrorCode::TransactionalIdNotFound.code());
            };
            let r = &view.record;
            let mut topics: Vec<TopicData> = Vec::new();
            for (topic, partition) in &r.partitions {
                // Kafka lists only the topics the principal may describe.
                if !ctx.allowed_topic(broker, AclOperation::Describe, topic) {
                    continue;
                }
                match topics.last_mut() {
                    Some(t) if t.topic.0.as_str() == topic => t.partitions.push(*partition),
                    _ => topics.push(
                        TopicData::default()
                            .with_topic(TopicName(str_bytes(topic.clone())))
                            .with_partitions(vec![*partition]),
                    ),
                }
            }
            base.with_transaction_state(str_bytes(r.state.name()))
                .with_transaction_timeout_ms(r.timeout_ms)
                .with_transaction_start_time_ms(r.start_ms)
                .with_producer_id(ProducerId(r.producer_id))
                .with_producer_epoch(r.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub fn list_transactions(
    broker: &Broker,
    ctx: &RequestContext,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let unknown: Vec<_> = request
        .state_filters
        .iter()
        .filter(|s| !TxnState::ALL.iter().any(|t| t.name() == s.as_str()))
        .cloned()
        .collect();
    let now = crate::partition::manager::now_ms();
    let states = broker
        .transactions
        .view(None)
        .into_iter()
        .filter(|v| {
            let r = &v.record;
            (request.state_filters.is_empty()
                || request.state_filters.iter().any(|s| s.as_str() == r.state.name()))
                && (request.producer_id_filters.is_empty()
                    || request.producer_id_filters.contains(&ProducerId(r.producer_id)))
                // v1: only transactions running longer than the filter (ms), if set.
                && (request.duration_filter < 0
                    || (r.start_ms >= 0 && now - r.start_ms >= request.duration_filter))
                && ctx.allowed_transactional_id(broker, AclOperation::Describe, &v.transactional_id)
        })
        .map(|v| {
            ListedTransaction::default()
                .with_transactional_id(TransactionalId(str_bytes(v.transactional_id)))
                .with_producer_id(ProducerId(v.record.producer_id))
                .with_transaction_state(str_bytes(v.record.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}

/// DescribeProducers: READ on the topic, as Kafka checks it.
pub fn describe_producers(
    broker: &Broker,
    ctx: &RequestContext,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let readable = ctx.allowed_topic(broker, AclOperation::Read, name);
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| {
                    let base = PartitionResponse::default().with_partition_index(index);
                    let producers = if readable {
                        broker
                            .replicas
                            .get(name, index)
                            .ok_or(ErrorCode::UnknownTopicOrPartition)
                            .and_then(|p| p.producers())
                    } else {
                        Err(ErrorCode::TopicAuthorizationFailed)
                    };
                    match producers {
                        Ok(all) => base.with_active_producers(
                            all.iter()
                                .map(|v| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(v.producer_id))
                                        .with_producer_epoch(i32::from(v.epoch))
                                        .with_last_sequence(v.last_sequence)
                                        .with_last_timestamp(v.last_timestamp)
                                        .with_coordinator_epoch(0)
                                        .with_current_txn_start_offset(
                                            v.open_transaction_from.unwrap_or(-1),
                                        )
                                })
                                .collect(),
                        ),
                        Err(code) => base.with_error_code(code.code()),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

/// WriteTxnMarkers: CLUSTER_ACTION on the cluster (brokers and operators' tools only). Each
/// marker ends its producer's transaction in the partitions named, as the coordinator's
/// own markers do; a partition whose producer has a newer epoch refuses it.
pub fn write_txn_markers(
    broker: &Broker,
    ctx: &RequestContext,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let allowed = ctx.allowed_cluster(broker, AclOperation::ClusterAction);
    let now = now_ms();
    let markers = request
        .markers
        .into_iter()
        .map(|marker| {
            let kind = if marker.transaction_result {
                MarkerKind::Commit
            } else {
                MarkerKind::Abort
            };
            let topics = marker
                .topics
                .iter()
                .map(|topic| {
                    let name = topic.name.0.as_str();
                    let partitions = topic
                        .partition_indexes
                        .iter()
                        .map(|&index| {
                            let outcome = if allowed {
                                tokio::task::block_in_place(|| {
                                    write_marker(broker, name, index, &marker, kind, now)
                                })
                            } else {
                                Err(ErrorCode::ClusterAuthorizationFailed)
                            };
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(index)
                                .with_error_code(crate::errors::code_of(&outcome))
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(topic.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}

fn write_marker(
    broker: &Broker,
    topic: &str,
    index: i32,
    marker: &kafka_protocol::messages::write_txn_markers_request::WritableTxnMarker,
    kind: MarkerKind,
    now: i64,
) -> Result<(), ErrorCode> {
    let partition = broker
        .replicas
        .get(topic, index)
        .ok_or(ErrorCode::UnknownTopicOrPartition)?;
    let producer_id = marker.producer_id.0;
    partition.append_marker(
        producer_id,
        marker.producer_epoch,
        marker.coordinator_epoch,
        kind,
        now,
    )?;
    tracing::info!(
        topic,
        partition = index,
        producer_id,
        commit = marker.transaction_result,
        "transaction marker written by WriteTxnMarkers"
    );
    if topic == OFFSETS_TOPIC {
        broker
            .groups
            .complete_transaction(index, producer_id, kind == MarkerKind::Commit);
    }
    Ok(())
}
