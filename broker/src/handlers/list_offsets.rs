//! ListOffsets (earliest, latest, by timestamp, max timestamp) and OffsetForLeaderEpoch.
//! Timestamp lookups find the batch through the time index, then the exact record inside
//! it — the only place the broker decodes records, and not on the produce/fetch path.

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
};
use kafka_protocol::records::RecordBatchDecoder;
use strata_protocol::kafka_protocol;

use super::RequestContext;
use crate::errors::ErrorCode;
use crate::partition::{Isolation, Partition};
use crate::security::acl::AclOperation;
use crate::server::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    // leader_epoch exists from v4.
    let epoch_field = |epoch: i32| if ctx.api_version >= 4 { epoch } else { -1 };
    // v2+: read_committed consumers see offsets up to the last stable offset only.
    let isolation = Isolation::from_wire(request.isolation_level);
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let described = ctx.allowed_topic(broker, AclOperation::Describe, &name);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let outcome =
                        super::authorized_partition(broker, described, &name, p.partition_index)
                            .and_then(|partition| {
                                lookup(&partition, p.current_leader_epoch, p.timestamp, isolation)
                            });
                    match outcome {
                        Ok((offset, timestamp, epoch)) => base
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(epoch_field(epoch)),
                        Err(code) => base
                            .with_error_code(code.code())
                            .with_offset(-1)
                            .with_timestamp(-1)
                            .with_leader_epoch(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp, leader epoch) for one ListOffsets query.
fn lookup(
    partition: &Partition,
    current_leader_epoch: i32,
    timestamp: i64,
    isolation: Isolation,
) -> Result<(i64, i64, i32), ErrorCode> {
    let epoch = partition.check_leader_epoch(current_leader_epoch)?;
    if !partition.is_leader() {
        return Err(ErrorCode::NotLeaderOrFollower);
    }
    let fetchable = match isolation {
        Isolation::ReadUncommitted => partition.high_watermark(),
        Isolation::ReadCommitted => partition.last_stable_offset(),
    };
    // As Kafka: a record a consumer of this isolation could not fetch yet is not found.
    let visible = |found: (i64, i64, i32)| {
        if found.0 < fetchable {
            found
        } else {
            (-1, -1, -1)
        }
    };
    match timestamp {
        LATEST => Ok((fetchable, -1, epoch)),
        EARLIEST | EARLIEST_LOCAL => Ok((partition.log_start_offset(), -1, epoch)),
        LATEST_TIERED => Ok((-1, -1, -1)), // no tiered storage: Kafka answers "no offset"
        MAX_TIMESTAMP => match partition.batch_with_max_timestamp()? {
            Some((_, batch)) => Ok(max_record(&batch)
                .map(|(o, t)| visible((o, t, epoch)))
                .unwrap_or((-1, -1, -1))),
            None => Ok((-1, -1, -1)),
        },
        ts if ts >= 0 => match partition.batch_for_timestamp(ts)? {
            Some((_, batch)) => Ok(first_record_at_or_after(&batch, ts)
                .map(|(o, t)| visible((o, t, epoch)))
                .unwrap_or((-1, -1, -1))),
            None => Ok((-1, -1, -1)),
        },
        _ => Err(ErrorCode::InvalidRequest),
    }
}

fn records_of(batch: &Bytes) -> Vec<(i64, i64)> {
    let mut buf = batch.clone();
    match RecordBatchDecoder::decode(&mut buf) {
        Ok(set) => set
            .records
            .iter()
            .filter(|r| !r.control)
            .map(|r| (r.offset, r.timestamp))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot decode a stored batch for a timestamp lookup");
            Vec::new()
        }
    }
}

fn first_record_at_or_after(batch: &Bytes, ts: i64) -> Option<(i64, i64)> {
    records_of(batch).into_iter().find(|(_, t)| *t >= ts)
}

fn max_record(batch: &Bytes) -> Option<(i64, i64)> {
    // The first record holding the maximum, as Kafka reports it.
    records_of(batch)
        .into_iter()
        .fold(None, |best, (o, t)| match best {
            Some((_, bt)) if bt >= t => best,
            _ => Some((o, t)),
        })
}

/// End offsets come from each log's leader-epoch cache (Kafka's endOffsetFor); the current
/// epoch ends at the log end offset.
pub fn offset_for_leader_epoch(
    broker: &Broker,
    ctx: &RequestContext,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.topic.0.to_string();
            let described = ctx.allowed_topic(broker, AclOperation::Describe, &name);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let base = EpochEndOffset::default().with_partition(p.partition);
                    if !described {
                        return base
                            .with_error_code(ErrorCode::TopicAuthorizationFailed.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                    }
                    let Some(partition) = broker.replicas.get(&name, p.partition) else {
                        return base
                            .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                    };
                    if !partition.is_leader() {
                        return base
                            .with_error_code(ErrorCode::NotLeaderOrFollower.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                    }
                    let epoch = match partition.check_leader_epoch(p.current_leader_epoch) {
                        Ok(epoch) => epoch,
                        Err(code) => {
                            return base
                                .with_error_code(code.code())
                                .with_leader_epoch(-1)
                                .with_end_offset(-1);
                        }
                    };
                    if p.leader_epoch > epoch || p.leader_epoch < 0 {
                        return base.with_leader_epoch(-1).with_end_offset(-1);
                    }
                    // The log's leader-epoch cache (leader-epoch-checkpoint) knows where each
                    // epoch ended. An epoch newer than its last entry (nothing appended since
                    // it began) but not newer than ours still runs: it ends at the log end.
                    match partition.end_offset_for_epoch(p.leader_epoch) {
                        Ok((-1, _)) => base
                            .with_leader_epoch(p.leader_epoch)
                            .with_end_offset(partition.log_end_offset()),
                        Ok((e, end)) => base.with_leader_epoch(e).with_end_offset(end),
                        Err(code) => base
                            .with_error_code(code.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
