//! End-to-end latency, as Kafka's `kafka-e2e-latency` tool (EndToEndLatency) measures it: one
//! record at a time, timed from writing its Produce until a consumer's Fetch brings it back.
//! The Fetch goes out before the record, as a Kafka consumer keeps one outstanding, so the
//! figure includes how soon a broker answers a Fetch parked in its long poll once the record
//! lands: one that lets the Fetch sit until `fetch.max.wait.ms` shows it here.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceResponse};
use strata_protocol::record_batch::{BatchIter, BATCH_HEADER_LEN};

use crate::batch::BatchTemplate;
use crate::client::{decode_response, KafkaConnection};
use crate::fixtures::now_ms;
use crate::ops::{self, OpsError};

/// Bytes at the front of every value that name its record (the run's nonce plus the record's
/// index), so that the record fetched is known to be the one just written.
pub const TAG_LEN: usize = 8;
/// How long one record may take to come back before the run fails.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// The consumer's fetch.max.bytes and max.partition.fetch.bytes (Kafka's defaults: 50 MiB, 1 MiB).
const FETCH_MAX_BYTES: i32 = 52_428_800;
const PARTITION_MAX_BYTES: i32 = 1_048_576;

/// One latency run against a partition's leader.
#[derive(Debug, Clone)]
pub struct LatencyLoad {
    pub topic: String,
    pub partition: i32,
    pub acks: i16,
    pub produce_version: i16,
    pub fetch_version: i16,
    /// The consumer's fetch.max.wait.ms: how long a Fetch may wait at the broker.
    pub max_wait_ms: i32,
    pub records: u64,
    /// Bytes of each value; raised to [`TAG_LEN`] when smaller.
    pub record_size: usize,
    /// How long to wait between sending the consumer's Fetch and writing the record, as
    /// records that arrive apart (the Fetch is then surely waiting at the broker); not
    /// counted in the latency.
    pub pause: Duration,
    /// Makes this run's values its own, so a record of another run is never taken for one of
    /// ours.
    pub nonce: u64,
}

/// What one record took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySample {
    /// From writing the Produce to reading its response (None with acks=0, which has none).
    pub acknowledged: Option<Duration>,
    /// From writing the Produce to reading the Fetch response that carries the record.
    pub delivered: Duration,
    /// Where the record landed.
    pub offset: i64,
}

/// Writes `load.records` records one after another, each only once the previous one came
/// back, reading from `start_offset` (the partition's end when the run starts). `producer` and
/// `consumer` are separate connections to the partition's leader with nothing outstanding.
pub async fn measure(
    producer: &mut KafkaConnection,
    consumer: &mut KafkaConnection,
    load: &LatencyLoad,
    start_offset: i64,
    mut on_sample: impl FnMut(LatencySample),
) -> Result<(), OpsError> {
    let mut value = vec![b'x'; load.record_size.max(TAG_LEN)];
    let mut fetch_offset = start_offset;
    for index in 0..load.records {
        let tag = load.nonce.wrapping_add(index).to_be_bytes();
        if let Some(front) = value.get_mut(..TAG_LEN) {
            front.copy_from_slice(&tag);
        }
        let batch = BatchTemplate::single(&value, now_ms())?.to_bytes();
        // Brokers keep an uncompressed batch's records as sent (offsets and timestamps are
        // deltas in the header's terms), so the record comes back as these bytes.
        let records = batch.slice(BATCH_HEADER_LEN.min(batch.len())..);
        let produce = ops::produce_request(&load.topic, &[load.partition], &batch, load.acks);
        let fetch_id = send_fetch(consumer, load, fetch_offset).await?;
        if !load.pause.is_zero() {
            tokio::time::sleep(load.pause).await;
        }
        let started = Instant::now();
        let produce_id = producer
            .send(
                ApiKey::Produce,
                load.produce_version,
                &produce,
                load.acks != 0,
            )
            .await?;
        let acknowledged = async {
            if load.acks == 0 {
                return Ok(None);
            }
            let frame = producer.recv_frame().await?;
            let at = started.elapsed();
            let response: ProduceResponse =
                decode_response(ApiKey::Produce, load.produce_version, produce_id, frame)?;
            ops::check_produce_response(&response)?;
            Ok::<_, OpsError>(Some(at))
        };
        let delivered =
            fetch_until_found(consumer, load, fetch_id, fetch_offset, &records, started);
        let (acknowledged, (delivered, offset)) = tokio::time::timeout(DELIVERY_TIMEOUT, async {
            tokio::try_join!(acknowledged, delivered)
        })
        .await
        .map_err(|_| {
            OpsError::Missing(format!(
                "record {index} was not fetched back from {}-{} within {DELIVERY_TIMEOUT:?} \
                 (a topic whose compression.type recompresses records hides them from this check)",
                load.topic, load.partition
            ))
        })??;
        fetch_offset = offset + 1;
        on_sample(LatencySample {
            acknowledged,
            delivered,
            offset,
        });
    }
    Ok(())
}

async fn send_fetch(
    consumer: &mut KafkaConnection,
    load: &LatencyLoad,
    offset: i64,
) -> Result<i32, OpsError> {
    let request = ops::fetch_request(
        load.fetch_version,
        &load.topic,
        &[(load.partition, offset)],
        load.max_wait_ms,
        FETCH_MAX_BYTES,
        PARTITION_MAX_BYTES,
    );
    Ok(consumer
        .send(ApiKey::Fetch, load.fetch_version, &request, true)
        .await?)
}

/// Reads Fetch responses (sending the next Fetch after each one that lacks the record) until
/// the batch holding `records` arrives; returns when it arrived and its offset.
async fn fetch_until_found(
    consumer: &mut KafkaConnection,
    load: &LatencyLoad,
    mut id: i32,
    mut offset: i64,
    records: &[u8],
    started: Instant,
) -> Result<(Duration, i64), OpsError> {
    loop {
        let frame = consumer.recv_frame().await?;
        let arrived = started.elapsed();
        let response: FetchResponse =
            decode_response(ApiKey::Fetch, load.fetch_version, id, frame)?;
        match search(&response, load.partition, offset, records)? {
            Search::Found(at) => return Ok((arrived, at)),
            Search::NotYet(next) => offset = next,
        }
        id = send_fetch(consumer, load, offset).await?;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Search {
    /// The record, at this offset.
    Found(i64),
    /// Not among the records returned; fetch again from this offset.
    NotYet(i64),
}

/// Looks for the batch whose records are `records` at or after `from` in `partition`.
fn search(
    response: &FetchResponse,
    partition: i32,
    from: i64,
    records: &[u8],
) -> Result<Search, OpsError> {
    let mut next = from;
    let fetched = ops::fetched_partitions(response)?;
    for p in fetched.iter().filter(|p| p.partition_index == partition) {
        for batch in BatchIter::new(p.records.as_deref().unwrap_or_default()) {
            let last = batch.header.last_offset();
            if last < from {
                continue;
            }
            if batch.bytes.get(BATCH_HEADER_LEN..) == Some(records) {
                return Ok(Search::Found(last));
            }
            // Someone else's record (or an earlier run's): read on past it.
            next = next.max(last + 1);
        }
    }
    Ok(Search::NotYet(next))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use strata_protocol::record_batch::set_base_offset;

    fn response(partition: i32, batches: &[(i64, &[u8])]) -> FetchResponse {
        let mut records = Vec::new();
        for (base_offset, value) in batches {
            let mut batch = BatchTemplate::single(value, 1).unwrap().to_bytes().to_vec();
            set_base_offset(&mut batch, *base_offset);
            records.extend(batch);
        }
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(ops::topic_name("t"))
            .with_partitions(vec![PartitionData::default()
                .with_partition_index(partition)
                .with_records(Some(records.into()))])])
    }

    /// The records of the one-record batch `measure` writes for `value` (at another time than
    /// the fetched ones: the header's timestamps are not compared).
    fn records_of(value: &[u8]) -> Vec<u8> {
        let batch = BatchTemplate::single(value, 2).unwrap().to_bytes();
        batch[BATCH_HEADER_LEN..].to_vec()
    }

    #[test]
    fn search_finds_the_record_by_its_value_and_reads_past_others() {
        let ours = b"00000007xxxx";
        let got = response(0, &[(4, b"00000006xxxx"), (5, ours), (6, b"00000008xxxx")]);
        assert_eq!(
            search(&got, 0, 5, &records_of(ours)).unwrap(),
            Search::Found(5)
        );
        // Records before the fetch offset are not candidates.
        assert_eq!(
            search(&got, 0, 6, &records_of(ours)).unwrap(),
            Search::NotYet(7)
        );
        // Another partition's records are not ours.
        assert_eq!(
            search(&got, 1, 5, &records_of(ours)).unwrap(),
            Search::NotYet(5)
        );
        // A value that only ends like ours is another record.
        let longer = b"y00000007xxxx";
        let got = response(0, &[(9, longer)]);
        assert_eq!(
            search(&got, 0, 9, &records_of(ours)).unwrap(),
            Search::NotYet(10)
        );
    }

    #[test]
    fn search_reports_fetch_errors() {
        let mut got = response(0, &[]);
        got.responses[0].partitions[0].error_code = 1;
        assert!(matches!(
            search(&got, 0, 0, &records_of(b"x")),
            Err(OpsError::Kafka { code: 1, .. })
        ));
    }
}
