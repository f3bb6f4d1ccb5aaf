//! `__consumer_offsets` as the group coordinator's durable store: group metadata and
//! committed offsets are records in this internal compacted topic (Kafka's own key/value
//! schemas, encoded by the coordinator), so they survive restarts and replicate like any
//! partition.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strata_protocol::kafka_protocol;
use strata_protocol::record_batch::{MarkerKind, RecordBatchHeader};

use crate::errors::ErrorCode;
use crate::group::OffsetsLog;
use crate::partition::manager::{now_ms, ReplicaManager};
use crate::server::Broker;
use crate::topics::{self, NewTopic};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How much of the log one read pulls while loading a partition.
const LOAD_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// How long a commit waits for the in-sync replicas (Kafka's `offsets.commit.timeout.ms`).
const REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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
    let replication_factor = topics::internal_topic_replication_factor(
        broker,
        OFFSETS_TOPIC,
        broker.config.offsets_topic_replication_factor,
    )?;
    let new = NewTopic {
        name: OFFSETS_TOPIC,
        partitions: broker.config.offsets_topic_num_partitions,
        replication_factor,
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
    /// `min.insync.replicas` as the broker started (Kafka's offset commits are acks=all
    /// appends held to it too).
    min_insync: usize,
}

impl OffsetsTopicLog {
    pub fn new(replicas: Arc<ReplicaManager>, min_insync: usize) -> Self {
        Self {
            replicas,
            min_insync: min_insync.max(1),
        }
    }
}

/// One uncompressed batch of internal-topic records (key, value; `None` is a tombstone).
pub(crate) fn encode_batch(records: &[(Bytes, Option<Bytes>)]) -> Result<BytesMut, String> {
    encode_producer_batch(records, None)
}

/// `encode_batch`, as a transactional batch of `(producer id, epoch)` when given.
fn encode_producer_batch(
    records: &[(Bytes, Option<Bytes>)],
    producer: Option<(i64, i16)>,
) -> Result<BytesMut, String> {
    let now = now_ms();
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            partition_leader_epoch: 0,
            producer_id: producer.map_or(-1, |p| p.0),
            producer_epoch: producer.map_or(-1, |p| p.1),
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // A coordinator's transactional batch is not sequence-checked (Kafka leaves it
            // without a sequence too).
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

/// What a client is told when its records did not make it into `__consumer_offsets`: Kafka
/// maps storage and replication failures of the offsets log to these.
fn commit_error(partition: i32, code: ErrorCode) -> i16 {
    tracing::warn!(partition, error = ?code, "cannot append to __consumer_offsets");
    match code {
        ErrorCode::RecordListTooLarge | ErrorCode::MessageTooLarge => {
            ErrorCode::InvalidCommitOffsetSize.code()
        }
        // A fenced or out-of-sequence transactional producer.
        ErrorCode::InvalidProducerEpoch | ErrorCode::OutOfOrderSequenceNumber => code.code(),
        // The coordinator moved meanwhile: the client looks it up again.
        ErrorCode::NotLeaderOrFollower => ErrorCode::NotCoordinator.code(),
        _ => ErrorCode::CoordinatorNotAvailable.code(),
    }
}

impl OffsetsTopicLog {
    fn append_batch(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
        producer: Option<(i64, i16)>,
    ) -> BoxFuture<'static, Result<(), i16>> {
        let replicas = self.replicas.clone();
        let min_insync = self.min_insync;
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            let batch = encode_producer_batch(&records, producer).map_err(|e| {
                tracing::error!(error = %e, "cannot encode a __consumer_offsets batch");
                ErrorCode::UnknownServerError.code()
            })?;
            let Some(p) = replicas.get(OFFSETS_TOPIC, partition) else {
                return Err(ErrorCode::NotCoordinator.code());
            };
            let header = RecordBatchHeader::parse(&batch)
                .map_err(|_| ErrorCode::UnknownServerError.code())?;
            if p.isr().0.len() < min_insync {
                return Err(commit_error(partition, ErrorCode::NotEnoughReplicas));
            }
            let appended = if producer.is_some() {
                p.append_as_coordinator(&batch, &header, now_ms())
            } else {
                p.append_as_leader(&batch, &header, now_ms())
            };
            // Like Kafka's (required acks -1): answered once every in-sync replica has the
            // records, so a commit the client saw survives the loss of this coordinator.
            let end = match appended {
                Ok(outcome) => outcome.last_offset + 1,
                Err(code) => return Err(commit_error(partition, code)),
            };
            p.wait_durable(end)
                .await
                .map_err(|code| commit_error(partition, code))?;
            p.wait_replicated(end, REPLICATION_TIMEOUT, min_insync)
                .await
                .map_err(|code| commit_error(partition, code))
        })
    }

    /// Every record in offset order with transactions resolved: a transaction's records
    /// where its commit marker is, aborted ones dropped; and the records of transactions
    /// still open at the end, by producer id.
    #[allow(clippy::type_complexity)]
    fn replay(
        &self,
        partition: i32,
    ) -> Result<
        (
            Vec<(Bytes, Option<Bytes>)>,
            Vec<(i64, (Bytes, Option<Bytes>))>,
        ),
        i16,
    > {
        let Some(p) = self.replicas.get(OFFSETS_TOPIC, partition) else {
            return Ok((Vec::new(), Vec::new()));
        };
        let mut out = Vec::new();
        let mut open: HashMap<i64, Vec<(Bytes, Option<Bytes>)>> = HashMap::new();
        // To the log end, as Kafka's loading does: a new leader's high watermark may lag
        // what its log holds (and what its predecessor acknowledged) for a fetch round.
        let mut offset = p.log_start_offset();
        while offset < p.log_end_offset() {
            let read = p
                .read_to_log_end(offset, LOAD_CHUNK_BYTES)
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
                        let commit = r.key.as_deref().and_then(MarkerKind::from_control_key)
                            == Some(MarkerKind::Commit);
                        if let Some(records) = open.remove(&r.producer_id) {
                            if commit {
                                out.extend(records);
                            }
                        }
                        continue;
                    }
                    let Some(key) = r.key else { continue };
                    if r.transactional {
                        open.entry(r.producer_id).or_default().push((key, r.value));
                    } else {
                        out.push((key, r.value));
                    }
                }
            }
            if last <= offset {
                break;
            }
            offset = last;
        }
        let open = open
            .into_iter()
            .flat_map(|(pid, records)| records.into_iter().map(move |r| (pid, r)))
            .collect();
        Ok((out, open))
    }
}

impl OffsetsLog for OffsetsTopicLog {
    fn append(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> BoxFuture<'static, Result<(), i16>> {
        self.append_batch(partition, records, None)
    }

    fn append_transactional(
        &self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> BoxFuture<'static, Result<(), i16>> {
        self.append_batch(partition, records, Some((producer_id, producer_epoch)))
    }

    fn read_all(&self, partition: i32) -> Result<Vec<(Bytes, Option<Bytes>)>, i16> {
        self.replay(partition).map(|(records, _)| records)
    }

    fn read_open_transactions(
        &self,
        partition: i32,
    ) -> Result<Vec<(i64, (Bytes, Option<Bytes>))>, i16> {
        self.replay(partition).map(|(_, open)| open)
    }
}
