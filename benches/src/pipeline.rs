//! Load loops over one connection: pipelined Produce (up to `in_flight` requests outstanding,
//! frames encoded once and re-stamped with a correlation id, and for an idempotent producer
//! with the batch's base sequence) and a Fetch loop that follows the offsets it is given.
//! Both report each response's latency to a callback.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceResponse};
use strata_protocol::record_batch::{increment_sequence, set_producer};

use crate::client::{decode_response, encode_frame, KafkaConnection};
use crate::ops::{self, FetchedPartition, OpsError};

/// One connection's share of a produce load.
#[derive(Debug, Clone)]
pub struct ProduceLoad {
    pub topic: String,
    /// Partitions led by this connection's broker; requests go round-robin over them.
    pub partitions: Vec<i32>,
    /// One magic-2 batch, sent as-is in every request.
    pub batch: Bytes,
    pub records_per_batch: u64,
    pub acks: i16,
    pub version: i16,
    /// Requests to send (one batch each).
    pub requests: u64,
    /// Requests outstanding at most (ignored with acks=0, which has no responses).
    pub in_flight: usize,
    /// Records per second this connection may send at most (as kafka-producer-perf-test's
    /// `--throughput`); `None` sends as fast as the window allows.
    pub throughput: Option<f64>,
    /// Send as an idempotent producer (Kafka's `enable.idempotence=true`); `None` sends
    /// batches without a producer id, as the template has them.
    pub idempotence: Option<Idempotence>,
}

/// An idempotent producer's identity and where its sequences stand, as Kafka's producer keeps
/// them: a producer id and epoch from InitProducerId, and for each partition the base
/// sequence of its next batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotence {
    pub producer_id: i64,
    pub epoch: i16,
    /// The next batch's base sequence for each of [`ProduceLoad::partitions`], in order.
    pub next_sequences: Vec<i32>,
}

impl ProduceLoad {
    /// The producer's sequences once this load is sent: requests go round-robin over the
    /// partitions, so each partition's count is known up front.
    pub fn idempotence_after(&self) -> Option<Idempotence> {
        let idempotence = self.idempotence.as_ref()?;
        let n = self.partitions.len().max(1) as u64;
        let next_sequences = idempotence
            .next_sequences
            .iter()
            .enumerate()
            .map(|(k, seq)| {
                let requests = self.requests / n + u64::from((k as u64) < self.requests % n);
                increment_sequence(*seq, sequence_step(requests * self.records_per_batch))
            })
            .collect();
        Some(Idempotence {
            next_sequences,
            ..idempotence.clone()
        })
    }
}

/// `records` as a step of Kafka's wrapping sequence arithmetic (modulo 2^31).
fn sequence_step(records: u64) -> i32 {
    (records % (1 << 31)) as i32
}

/// Where the batch sits in an encoded Produce frame of one partition: at the end, before the
/// tagged-field sections of flexible versions (partition, topic, request).
fn batch_position(frame: &[u8], batch: &[u8], version: i16) -> Result<usize, OpsError> {
    let trailer = if version >= 9 { 3 } else { 0 };
    frame
        .len()
        .checked_sub(trailer + batch.len())
        .filter(|at| frame.get(*at..*at + batch.len()) == Some(batch))
        .ok_or_else(|| {
            OpsError::Missing(format!(
                "expected the batch at the end of the Produce v{version} frame"
            ))
        })
}

/// Sends `load` and waits for every response. `on_response(latency, records)` runs per
/// acknowledged request (for acks=0, once per request written, with a zero latency).
pub async fn produce(
    conn: &mut KafkaConnection,
    load: &ProduceLoad,
    mut on_response: impl FnMut(Duration, u64),
) -> Result<(), OpsError> {
    if load.partitions.is_empty() || load.requests == 0 {
        return Ok(());
    }
    let client_id = "strata-perf";
    let mut frames = Vec::with_capacity(load.partitions.len());
    for p in &load.partitions {
        let request = ops::produce_request(&load.topic, &[*p], &load.batch, load.acks);
        frames.push(encode_frame(
            ApiKey::Produce,
            load.version,
            0,
            client_id,
            &request,
        )?);
    }
    // An idempotent producer's batches differ only in their base sequence (and so their CRC),
    // rewritten in the encoded frame before each send.
    let mut idempotent = match &load.idempotence {
        Some(idempotence) => {
            if idempotence.next_sequences.len() != load.partitions.len() {
                return Err(OpsError::Missing(format!(
                    "expected a sequence for each of {} partitions, found {}",
                    load.partitions.len(),
                    idempotence.next_sequences.len()
                )));
            }
            let positions = frames
                .iter()
                .map(|frame| batch_position(frame, &load.batch, load.version))
                .collect::<Result<Vec<_>, _>>()?;
            Some((idempotence.clone(), positions))
        }
        None => None,
    };
    let expects_response = load.acks != 0;
    let window = load.in_flight.max(1);
    let mut pending: VecDeque<(i32, Instant)> = VecDeque::with_capacity(window);
    let mut sent = 0u64;
    let paced_from = tokio::time::Instant::now();
    while sent < load.requests || !pending.is_empty() {
        if sent < load.requests && (pending.len() < window || !expects_response) {
            if let Some(rate) = load.throughput {
                // The next request leaves when the records already sent are due at `rate`;
                // responses that arrive meanwhile are read as they come, so that their latency
                // is the broker's and not the pacing's.
                let due = (sent * load.records_per_batch) as f64 / rate;
                let due = paced_from + Duration::from_secs_f64(due);
                while !pending.is_empty() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => break,
                        // recv_frame only awaits a channel, so dropping it when the deadline
                        // wins loses no response.
                        frame = conn.recv_frame() => {
                            let (id, started) = pending.pop_front().ok_or_else(|| {
                                OpsError::Missing("a response with no request outstanding".into())
                            })?;
                            take_response(load, id, started, frame?, &mut on_response)?;
                        }
                    }
                }
                tokio::time::sleep_until(due).await;
            }
            let index = (sent % frames.len() as u64) as usize;
            let Some(frame) = frames.get_mut(index) else {
                break;
            };
            if let Some((idempotence, positions)) = &mut idempotent {
                let at = positions.get(index).copied().unwrap_or_default();
                let batch = frame.get_mut(at..at + load.batch.len()).unwrap_or_default();
                if let Some(sequence) = idempotence.next_sequences.get_mut(index) {
                    set_producer(batch, idempotence.producer_id, idempotence.epoch, *sequence);
                    *sequence =
                        increment_sequence(*sequence, sequence_step(load.records_per_batch));
                }
            }
            let started = Instant::now();
            let id = conn.send_frame(frame, expects_response).await?;
            sent += 1;
            if expects_response {
                pending.push_back((id, started));
            } else {
                on_response(Duration::ZERO, load.records_per_batch);
            }
            continue;
        }
        let Some((id, started)) = pending.pop_front() else {
            break;
        };
        let frame = conn.recv_frame().await?;
        take_response(load, id, started, frame, &mut on_response)?;
    }
    Ok(())
}

/// Checks the Produce response to request `id`, sent at `started`, and reports it.
fn take_response(
    load: &ProduceLoad,
    id: i32,
    started: Instant,
    frame: Bytes,
    on_response: &mut impl FnMut(Duration, u64),
) -> Result<(), OpsError> {
    let response: ProduceResponse = decode_response(ApiKey::Produce, load.version, id, frame)?;
    ops::check_produce_response(&response)?;
    on_response(started.elapsed(), load.records_per_batch);
    Ok(())
}

/// One connection's share of a consume load.
#[derive(Debug, Clone)]
pub struct FetchLoad {
    pub topic: String,
    /// (partition, first offset to fetch)
    pub offsets: Vec<(i32, i64)>,
    pub version: i16,
    pub max_wait_ms: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
    /// Stop once this many records were fetched.
    pub records: u64,
    /// Give up when a fetch brings nothing for this long (the topic has fewer records).
    pub idle_timeout: Duration,
}

/// Fetches until `load.records` records arrived; one fetch outstanding at a time (the next
/// offsets depend on the previous answer, as in Kafka's consumer).
/// `on_response(latency, records, bytes)` runs per response.
pub async fn consume(
    conn: &mut KafkaConnection,
    load: &FetchLoad,
    on_response: impl FnMut(Duration, u64, u64),
) -> Result<u64, OpsError> {
    let progress = SharedProgress::default();
    let (end, _) = fetch_shared(conn, load.clone(), &progress, on_response).await?;
    let total = progress.records.load(Ordering::Relaxed);
    if end == FetchEnd::Idle {
        return Err(OpsError::Missing(format!(
            "expected {} records, found {total} before fetches ran dry for {:?}",
            load.records, load.idle_timeout
        )));
    }
    Ok(total)
}

/// Progress shared by fetch loops running side by side (one per leader).
#[derive(Debug, Default)]
pub struct SharedProgress {
    /// Records fetched by all the loops so far.
    pub records: AtomicU64,
    /// Set to make every loop return after its current fetch (a group's rebalance).
    pub stop: AtomicBool,
}

/// Why a `fetch_shared` loop returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchEnd {
    /// The loops have `load.records` records together.
    Target,
    /// `stop` was set.
    Stopped,
    /// Nothing arrived for `load.idle_timeout`.
    Idle,
}

/// Fetches from one connection, starting at `load.offsets`, until the loops sharing
/// `progress` have `load.records` records together, `progress.stop` is set, or nothing
/// arrives for `load.idle_timeout`; returns why, with the offsets to fetch next.
/// `on_response(latency, records, bytes)` runs per Fetch.
pub async fn fetch_shared(
    conn: &mut KafkaConnection,
    mut load: FetchLoad,
    progress: &SharedProgress,
    mut on_response: impl FnMut(Duration, u64, u64),
) -> Result<(FetchEnd, Vec<(i32, i64)>), OpsError> {
    let mut last_progress = Instant::now();
    loop {
        if progress.records.load(Ordering::Relaxed) >= load.records {
            return Ok((FetchEnd::Target, load.offsets));
        }
        if progress.stop.load(Ordering::Relaxed) {
            return Ok((FetchEnd::Stopped, load.offsets));
        }
        let started = Instant::now();
        let parts = fetch_once(conn, &load, &load.offsets).await?;
        let (mut records, mut bytes) = (0, 0);
        for p in parts {
            records += p.records;
            bytes += p.bytes;
            if let Some(slot) = load.offsets.iter_mut().find(|(q, _)| *q == p.partition) {
                slot.1 = p.next_offset;
            }
        }
        progress.records.fetch_add(records, Ordering::Relaxed);
        on_response(started.elapsed(), records, bytes);
        if records > 0 {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > load.idle_timeout {
            return Ok((FetchEnd::Idle, std::mem::take(&mut load.offsets)));
        }
    }
}

/// One Fetch at `offsets`.
pub async fn fetch_once(
    conn: &mut KafkaConnection,
    load: &FetchLoad,
    offsets: &[(i32, i64)],
) -> Result<Vec<FetchedPartition>, OpsError> {
    let request = ops::fetch_request(
        load.version,
        &load.topic,
        offsets,
        load.max_wait_ms,
        load.max_bytes,
        load.partition_max_bytes,
    );
    let response: FetchResponse = conn.call(ApiKey::Fetch, load.version, &request).await?;
    ops::summarise_fetch(&response, offsets)
}
