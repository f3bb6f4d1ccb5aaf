//! Produce: validate each partition's record batch as sent (magic 2, CRC32C, sizes, then each
//! record's framing, keys on compacted topics and the timestamp window, as Kafka's
//! LogValidator), check idempotent sequences, and append it to the partition's log with
//! offsets patched in place. Record bytes are walked, not copied, unless the batch must be
//! stored otherwise than sent (the topic's compression.type names another codec, or the
//! producer's max timestamp is wrong): then it is rebuilt, as Kafka's broker rebuilds it.

use std::borrow::Cow;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use strata_protocol::kafka_protocol;
use strata_protocol::record_batch::{
    check_records, recompress_batch, set_create_time_max_timestamp, validate_produce_records,
    RecordBatchHeader, RecordsRefused,
};

use super::{str_bytes, RequestContext};
use crate::errors::ErrorCode;
use crate::partition::manager::now_ms;
use crate::security::acl::AclOperation;
use crate::server::{is_internal_topic, Broker};

/// Why one partition's data was refused: Kafka's code, and for v8+ its message and the
/// records at fault.
struct Refusal {
    code: ErrorCode,
    message: Option<Cow<'static, str>>,
    record_errors: Vec<BatchIndexAndErrorMessage>,
}

impl From<ErrorCode> for Refusal {
    fn from(code: ErrorCode) -> Self {
        Refusal {
            code,
            message: None,
            record_errors: Vec::new(),
        }
    }
}

impl Refusal {
    fn because(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Refusal {
            message: Some(message.into()),
            ..code.into()
        }
    }

    fn records(refused: RecordsRefused) -> Self {
        Refusal {
            code: crate::errors::from_code(refused.error_code),
            record_errors: refused
                .record_errors
                .into_iter()
                .map(|fault| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(fault.batch_index)
                        .with_batch_index_error_message(Some(str_bytes(fault.message)))
                })
                .collect(),
            message: Some(Cow::Owned(refused.message)),
        }
    }
}

/// The most decompressed bytes a batch may hold to be recompressed for its topic, in units of
/// `max.message.bytes` (32 MiB at the default): the records must be held in memory meanwhile.
const RECOMPRESS_PLAIN_FACTOR: usize = 32;

/// `batch` rebuilt with the topic's codec; refused as Kafka's broker refuses a rebuilt batch
/// over `max.message.bytes` (MESSAGE_TOO_LARGE).
fn recompress(
    batch: &[u8],
    header: &RecordBatchHeader,
    (codec, level): (u8, i32),
    max_message_bytes: usize,
) -> Result<Vec<u8>, Refusal> {
    let max_plain = max_message_bytes.saturating_mul(RECOMPRESS_PLAIN_FACTOR);
    let rebuilt = recompress_batch(batch, header, codec, level, max_plain).map_err(|e| {
        Refusal::because(
            crate::errors::from_code(e.kafka_error_code()),
            e.to_string(),
        )
    })?;
    if rebuilt.len() > max_message_bytes {
        return Err(Refusal::because(
            ErrorCode::MessageTooLarge,
            format!(
                "the batch is {} bytes with the topic's compression.type, above max.message.bytes {max_message_bytes}",
                rebuilt.len()
            ),
        ));
    }
    Ok(rebuilt)
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let transactional_id = request.transactional_id.as_ref().map(|t| t.0.to_string());
    let mut request_bytes = 0usize;
    let version = ctx.api_version;
    let image = broker.metadata.image();
    let replication_timeout = std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = topic.name.0.to_string();
        let topic_meta = image.topic(&name);
        let max_message_bytes = topic_meta
            .and_then(|t| t.configs.get("max.message.bytes"))
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or_else(|| broker.current_config().message_max_bytes)
            .max(0) as usize;
        let min_insync = topic_meta
            .and_then(|t| t.configs.get("min.insync.replicas"))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or_else(|| broker.current_config().min_insync_replicas.max(1) as usize);
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let batch_bytes = data.records.as_ref().map_or(0, |r| r.len() as u64);
            request_bytes += batch_bytes as usize;
            let outcome = (|| {
                if !matches!(acks, -1..=1) {
                    return Err(ErrorCode::InvalidRequiredAcks.into());
                }
                if let Some(txn_id) = &transactional_id {
                    if !ctx.allowed_transactional_id(broker, AclOperation::Write, txn_id) {
                        return Err(ErrorCode::TransactionalIdAuthorizationFailed.into());
                    }
                }
                // Kafka checks WRITE before existence, so names cannot be probed.
                if !ctx.allowed_topic(broker, AclOperation::Write, &name) {
                    return Err(ErrorCode::TopicAuthorizationFailed.into());
                }
                if topic_meta.is_none() {
                    return Err(ErrorCode::UnknownTopicOrPartition.into());
                }
                if is_internal_topic(&name) {
                    return Err(Refusal::because(
                        ErrorCode::InvalidTopicException,
                        "cannot produce to an internal topic",
                    ));
                }
                let partition = broker
                    .replicas
                    .get(&name, data.index)
                    .ok_or(ErrorCode::UnknownTopicOrPartition)?;
                if !partition.is_leader() {
                    return Err(ErrorCode::NotLeaderOrFollower.into());
                }
                if acks == -1 && partition.isr().0.len() < min_insync {
                    return Err(Refusal::because(
                        ErrorCode::NotEnoughReplicas,
                        "fewer in-sync replicas than min.insync.replicas",
                    ));
                }
                let records = data.records.as_deref().unwrap_or_default();
                let summary =
                    validate_produce_records(records, max_message_bytes).map_err(|e| {
                        Refusal::because(
                            crate::errors::from_code(e.kafka_error_code()),
                            e.to_string(),
                        )
                    })?;
                if summary.batch_count != 1 {
                    // Kafka: a v3+ produce request carries exactly one batch per partition.
                    return Err(Refusal::because(
                        ErrorCode::InvalidRecord,
                        "exactly one record batch per partition is allowed",
                    ));
                }
                if summary.first.is_transactional() {
                    let Some(txn_id) = &transactional_id else {
                        return Err(Refusal::because(
                            ErrorCode::InvalidRecord,
                            "transactional records need the request's transactional id",
                        ));
                    };
                    // The partition must be in the producer's open transaction, or its records
                    // could never be committed or aborted (KIP-890's check).
                    broker
                        .transactions
                        .verify_partition(
                            txn_id,
                            summary.producer_id,
                            summary.producer_epoch,
                            &name,
                            data.index,
                        )
                        .map_err(|code| {
                            let why = if code == ErrorCode::InvalidTxnState {
                                "the partition is not in the producer's open transaction"
                            } else {
                                "the producer is not its transactional id's current instance"
                            };
                            Refusal::because(code, why)
                        })?;
                }
                let now = now_ms();
                let rules = partition.record_rules(now);
                let checked =
                    check_records(records, &summary.first, &rules).map_err(Refusal::records)?;
                // The batch as stored, when it differs from the batch as sent: the topic's
                // compression.type names another codec, or (as Kafka's broker) the producer's
                // max timestamp is not its records' (a rebuilt batch takes it too).
                let mut rebuilt = match partition.recompression(summary.first.compression()) {
                    Some(codec) => Some(recompress(
                        records,
                        &summary.first,
                        codec,
                        max_message_bytes,
                    )?),
                    None => None,
                };
                if let Some(ts) = checked.corrected_max_timestamp(&summary.first, &rules) {
                    let batch = rebuilt.get_or_insert_with(|| records.to_vec());
                    set_create_time_max_timestamp(batch, ts);
                }
                let (records, header) = match &rebuilt {
                    Some(batch) => (
                        &batch[..],
                        RecordBatchHeader::parse(batch).map_err(|e| {
                            Refusal::because(ErrorCode::UnknownServerError, e.to_string())
                        })?,
                    ),
                    None => (records, summary.first),
                };
                partition
                    .append_as_leader(records, &header, now)
                    .map(|done| (done, partition))
                    .map_err(Refusal::from)
            })();
            // Durable mode holds the acknowledgement until the batch is synced; acks=all
            // until every in-sync replica has it (the high watermark passed it).
            let outcome = match outcome {
                Ok((done, partition)) => {
                    let mut synced = partition.wait_durable(done.last_offset + 1).await;
                    if synced.is_ok() && acks == -1 {
                        synced = partition
                            .wait_replicated(done.last_offset + 1, replication_timeout, min_insync)
                            .await;
                    }
                    synced.map(|()| done).map_err(Refusal::from)
                }
                Err(e) => Err(e),
            };
            if topic_meta.is_some() {
                // Only existing topics become labels; a retried duplicate appends nothing.
                broker.metrics.produce_partition(
                    &name,
                    match &outcome {
                        Ok(done) if done.records > 0 => Ok((done.records, batch_bytes)),
                        Ok(_) => Ok((0, 0)),
                        Err(refusal) => Err(refusal.code.code()),
                    },
                );
            }
            let response = PartitionProduceResponse::default().with_index(data.index);
            partitions.push(match outcome {
                Ok(done) => response
                    .with_base_offset(done.base_offset)
                    .with_log_append_time_ms(done.log_append_time)
                    .with_log_start_offset(if version >= 5 {
                        done.log_start_offset
                    } else {
                        -1
                    }),
                Err(refusal) => {
                    tracing::debug!(topic = %name, partition = data.index, error = ?refusal.code,
                        message = refusal.message.as_deref(), "produce refused");
                    let response = response
                        .with_error_code(refusal.code.code())
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1);
                    if version >= 8 {
                        response
                            .with_error_message(refusal.message.map(|m| str_bytes(m.into_owned())))
                            .with_record_errors(refusal.record_errors)
                    } else {
                        response
                    }
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    // Quotas count what the producer sent, whatever became of it (as Kafka's request size).
    let throttle = ctx.throttle(
        broker,
        &image.client_quotas,
        crate::quota::QuotaKind::Produce,
        request_bytes,
    );
    (acks != 0).then(|| {
        ProduceResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(throttle)
    })
}
