//! Fetch: whole batches from each requested partition, up to the high watermark, as
//! zero-copy slices of the segment mappings. When less than `min_bytes` is available the
//! request long-polls: it sleeps until an append to one of its partitions wakes it or
//! `max_wait_ms` passes — no polling loop. Fetch sessions are not granted (session id 0),
//! which clients handle by sending full fetch requests.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use strata_protocol::kafka_protocol;
use strata_storage::FileRegion;
use tokio::time::Instant;
use uuid::Uuid;

use super::{str_bytes, RequestContext};
use crate::errors::ErrorCode;
use crate::partition::Partition;
use crate::security::acl::AclOperation;
use crate::server::Broker;

/// Upper bound on how long one fetch may park, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);

struct WantedPartition {
    topic_slot: usize,
    partition_index: i32,
    fetch_offset: i64,
    partition_max_bytes: usize,
    current_leader_epoch: i32,
    partition: Result<Arc<Partition>, ErrorCode>,
}

/// A Fetch response and where its records lie in segment files.
pub struct FetchOutcome {
    pub response: FetchResponse,
    pub regions: FileRegions,
}

/// The file region of each non-empty records slice of a response, so the connection can send
/// those bytes with sendfile. A slice is recognised by its address and length when the
/// encoder hands it back as a chunk of its own; the encoder emits records in the order they
/// were read, so the search resumes where the last match was (linear over a response).
#[derive(Default)]
pub struct FileRegions {
    regions: Vec<(usize, usize, FileRegion)>,
    next: usize,
}

impl FileRegions {
    fn add(&mut self, records: &Bytes, region: Option<FileRegion>) {
        if let Some(region) = region.filter(|_| !records.is_empty()) {
            self.regions
                .push((records.as_ptr() as usize, records.len(), region));
        }
    }

    /// The file region whose records are exactly `chunk`, if any.
    pub fn region_of(&mut self, chunk: &Bytes) -> Option<FileRegion> {
        let key = (chunk.as_ptr() as usize, chunk.len());
        let found = (self.next..self.regions.len())
            .chain(0..self.next)
            .find(|&i| {
                self.regions
                    .get(i)
                    .is_some_and(|(ptr, len, _)| (*ptr, *len) == key)
            })?;
        self.next = found + 1;
        self.regions.get(found).map(|(_, _, region)| region.clone())
    }
}

pub async fn handle(broker: &Broker, ctx: &RequestContext, request: FetchRequest) -> FetchOutcome {
    if request.session_id != 0 {
        // We never hand out sessions, so an incremental fetch names one we don't know.
        return FetchOutcome {
            response: FetchResponse::default()
                .with_error_code(ErrorCode::FetchSessionIdNotFound.code()),
            regions: FileRegions::default(),
        };
    }
    let uses_topic_ids = ctx.api_version >= 13;
    let image = broker.metadata.image();
    let mut topics: Vec<(TopicName, Uuid)> = Vec::with_capacity(request.topics.len());
    let mut wanted = Vec::new();
    for topic in request.topics {
        let (name, unknown) = if uses_topic_ids {
            match image.topic_by_id(&topic.topic_id) {
                Some(t) => (t.name.clone(), None),
                None => (String::new(), Some(ErrorCode::UnknownTopicId)),
            }
        } else {
            let name = topic.topic.0.to_string();
            let unknown = image
                .topic(&name)
                .is_none()
                .then_some(ErrorCode::UnknownTopicOrPartition);
            (name, unknown)
        };
        // READ is checked before existence (an id we do not know stays UNKNOWN_TOPIC_ID).
        let unknown = match unknown {
            Some(ErrorCode::UnknownTopicId) => unknown,
            _ if !ctx.allowed_topic(broker, AclOperation::Read, &name) => {
                Some(ErrorCode::TopicAuthorizationFailed)
            }
            other => other,
        };
        let slot = topics.len();
        // v13+ identifies topics by id only; the name field no longer exists on the wire.
        let wire_name = if uses_topic_ids {
            TopicName::default()
        } else {
            TopicName(str_bytes(name.clone()))
        };
        topics.push((wire_name, topic.topic_id));
        for p in topic.partitions {
            let partition = match unknown {
                Some(code) => Err(code),
                None => broker
                    .replicas
                    .get(&name, p.partition)
                    .ok_or(ErrorCode::UnknownTopicOrPartition),
            };
            wanted.push(WantedPartition {
                topic_slot: slot,
                partition_index: p.partition,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: p.current_leader_epoch,
                partition,
            });
        }
    }

    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if request.max_bytes <= 0 {
        usize::MAX
    } else {
        request.max_bytes as usize
    };
    loop {
        // Register for wake-ups BEFORE reading, so an append between the read and the
        // wait is not missed.
        let mut wakeups: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>> = wanted
            .iter()
            .filter_map(|w| w.partition.as_ref().ok())
            .map(|p| Box::pin(p.appended().notified()))
            .collect();
        for w in &mut wakeups {
            w.as_mut().enable();
        }
        let (responses, regions, bytes, any_error) =
            read_once(&wanted, topics.len(), max_bytes, ctx.api_version);
        if bytes >= min_bytes || any_error || wakeups.is_empty() || Instant::now() >= deadline {
            record_metrics(broker, &wanted, &responses);
            return FetchOutcome {
                response: assemble(&topics, responses),
                regions,
            };
        }
        tokio::select! {
            _ = select_all(wakeups) => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn read_once(
    wanted: &[WantedPartition],
    topic_count: usize,
    max_bytes: usize,
    version: i16,
) -> (Vec<Vec<PartitionData>>, FileRegions, usize, bool) {
    let log_start = |offset: i64| if version >= 5 { offset } else { -1 };
    let mut per_topic: Vec<Vec<PartitionData>> = (0..topic_count).map(|_| Vec::new()).collect();
    let mut regions = FileRegions::default();
    let mut total = 0usize;
    let mut any_error = false;
    for w in wanted {
        let data = PartitionData::default()
            .with_partition_index(w.partition_index)
            .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1));
        let data = match &w.partition {
            Err(code) => {
                any_error = true;
                error_data(data, *code)
            }
            Ok(p) => {
                if let Err(code) = p.check_leader_epoch(w.current_leader_epoch) {
                    any_error = true;
                    error_data(data, code)
                } else {
                    let budget = w.partition_max_bytes.min(max_bytes.saturating_sub(total));
                    // KIP-74: the first non-empty partition returns at least one whole batch.
                    let min_one_batch = total == 0;
                    match p.read(w.fetch_offset, budget, min_one_batch) {
                        Ok(read) => {
                            total += read.records.len();
                            regions.add(&read.records, read.region);
                            data.with_high_watermark(read.high_watermark)
                                .with_last_stable_offset(read.high_watermark)
                                .with_log_start_offset(log_start(read.log_start_offset))
                                .with_records(Some(read.records))
                        }
                        Err(code) => {
                            any_error = true;
                            error_data(data, code)
                                .with_high_watermark(p.high_watermark())
                                .with_last_stable_offset(p.high_watermark())
                                .with_log_start_offset(log_start(p.log_start_offset()))
                        }
                    }
                }
            }
        };
        if let Some(slot) = per_topic.get_mut(w.topic_slot) {
            slot.push(data);
        }
    }
    (per_topic, regions, total, any_error)
}

/// Per-topic fetch metrics, once per request (not per long-poll round). `read_once` pushes
/// each topic's partitions in `wanted` order, so the k-th wanted of a slot is its k-th entry.
fn record_metrics(broker: &Broker, wanted: &[WantedPartition], responses: &[Vec<PartitionData>]) {
    let mut seen = vec![0usize; responses.len()];
    for w in wanted {
        let Some(k) = seen.get_mut(w.topic_slot) else {
            continue;
        };
        let data = responses.get(w.topic_slot).and_then(|slot| slot.get(*k));
        *k += 1;
        // Unknown topics are not labelled: their names come from the client.
        if let (Ok(p), Some(data)) = (&w.partition, data) {
            let bytes = data.records.as_ref().map_or(0, |r| r.len() as u64);
            broker
                .metrics
                .fetch_partition(&p.tp.topic, data.error_code, bytes);
        }
    }
}

fn error_data(data: PartitionData, code: ErrorCode) -> PartitionData {
    data.with_error_code(code.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Bytes::new()))
}

fn assemble(topics: &[(TopicName, Uuid)], per_topic: Vec<Vec<PartitionData>>) -> FetchResponse {
    let responses = topics
        .iter()
        .zip(per_topic)
        .map(|((name, id), partitions)| {
            FetchableTopicResponse::default()
                .with_topic(name.clone())
                .with_topic_id(*id)
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_regions_match_records_chunks_by_address_in_any_order() {
        let file = Arc::new(tempfile::tempfile().unwrap());
        let region = |position| FileRegion {
            file: Arc::clone(&file),
            position,
        };
        let data = Bytes::from(vec![7u8; 64]);
        let (a, b) = (data.slice(0..16), data.slice(16..48));
        let mut regions = FileRegions::default();
        regions.add(&a, Some(region(100)));
        regions.add(&b, Some(region(200)));
        regions.add(&Bytes::new(), Some(region(300))); // no records: nothing to send
        assert_eq!(regions.region_of(&a).map(|r| r.position), Some(100));
        assert_eq!(regions.region_of(&b).map(|r| r.position), Some(200));
        // Same address, other length (a merged piece): not a region.
        assert!(regions.region_of(&data.slice(0..8)).is_none());
        assert!(regions.region_of(&Bytes::from_static(b"header")).is_none());
        // Out of order still matches (the search wraps).
        assert_eq!(regions.region_of(&a).map(|r| r.position), Some(100));
    }
}
