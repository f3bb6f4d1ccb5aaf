//! `__consumer_offsets` as the group coordinator's durable store: group metadata and
//! committed offsets are records in this internal compacted topic (Kafka's own key/value
//! schemas, encoded by the coordinator), so they survive restarts and will replicate like
//! any partition once replication exists.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strata_protocol::kafka_protocol;
use strata_protocol::record_batch::RecordBatchHeader;

use crate::errors::ErrorCode;
use crate::group::OffsetsLog;
use crate::partition::manager::{now_ms, ReplicaManager};
use crate::server::Broker;
use crate::topics::{self, NewTopic};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How much of the log one read pulls while loading a partition.
const LOAD_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Creates `__consumer_offsets` if it does not exist yet (Kafka creates it on first use);
/// true when this call created it.
pub fn ensure_offsets_topic(broker: &Broker) -> Result<bool, (ErrorCode, String)> {
    if broker.metadata.image().topic(OFFSETS_TOPIC).is_some() {
        return Ok(false);
    }
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("compression.type".to_string(), "producer".to_string()),
        ("segment.bytes".to_string(), (100 * 1024 * 1024).to_string()),
    ]);
    let new = NewTopic {
        name: OFFSETS_TOPIC,
        partitions: broker.config.offsets_topic_num_partitions,
        replication_factor: 1,
        configs,
        internal: true,
    };
    match topics::create_topic(broker, new, false) {
        Ok(_) => Ok(true),
        Err((ErrorCode::TopicAlreadyExists, _)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The coordinator's view of `__consumer_offsets`: only the partitions, never the whole
/// broker (which owns the coordinator — no reference cycle).
pub struct OffsetsTopicLog {
    replicas: Arc<ReplicaManager>,
}

impl OffsetsTopicLog {
    pub fn new(replicas: Arc<ReplicaManager>) -> Self {
        Self { replicas }
    }
}

fn encode_batch(records: &[(Bytes, Option<Bytes>)]) -> Result<BytesMut, String> {
    let now = now_ms();
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(buf)
}

impl OffsetsLog for OffsetsTopicLog {
    fn append(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> BoxFuture<'static, Result<(), i16>> {
        let replicas = self.replicas.clone();
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            let batch = encode_batch(&records).map_err(|e| {
                tracing::error!(error = %e, "cannot encode a __consumer_offsets batch");
                ErrorCode::UnknownServerError.code()
            })?;
            let Some(p) = replicas.get(OFFSETS_TOPIC, partition) else {
                return Err(ErrorCode::NotCoordinator.code());
            };
            let header = RecordBatchHeader::parse(&batch)
                .map_err(|_| ErrorCode::UnknownServerError.code())?;
            p.append_as_leader(&batch, &header, now_ms()).map(|_| ()).map_err(|code| {
                tracing::error!(partition, error = ?code, "cannot append to __consumer_offsets");
                // Kafka maps storage failures of the offsets log to these for clients.
                match code {
                    ErrorCode::RecordListTooLarge | ErrorCode::MessageTooLarge => ErrorCode::InvalidCommitOffsetSize.code(),
                    _ => ErrorCode::CoordinatorNotAvailable.code(),
                }
            })
        })
    }

    fn read_all(&self, partition: i32) -> Result<Vec<(Bytes, Option<Bytes>)>, i16> {
        let Some(p) = self.replicas.get(OFFSETS_TOPIC, partition) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut offset = p.log_start_offset();
        while offset < p.high_watermark() {
            let read = p
                .read(offset, LOAD_CHUNK_BYTES, true)
                .map_err(|c| c.code())?;
            if read.records.is_empty() {
                break;
            }
            let mut buf = read.records.clone();
            let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| {
                tracing::error!(partition, error = %e, "cannot decode __consumer_offsets");
                ErrorCode::CorruptMessage.code()
            })?;
            let mut last = offset;
            for set in sets {
                for r in set.records {
                    last = last.max(r.offset + 1);
                    if r.control {
                        continue;
                    }
                    if let Some(key) = r.key {
                        out.push((key, r.value));
                    }
                }
            }
            if last <= offset {
                break;
            }
            offset = last;
        }
        Ok(out)
    }
}
