//! Micro-benches of the request front end: guarded request decoding (Produce with one 16 KiB
//! batch, Fetch of 1 and 100 partitions, Metadata), produce-path record-batch validation, and
//! Fetch response encoding (the plain responses a broker sends, and the general path that
//! responses with tagged fields take).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest};
use strata_benches::batch::{BatchTemplate, Compression};
use strata_benches::client::encode_frame;
use strata_benches::fixtures;
use strata_benches::ops::topic_name;
use strata_protocol::record_batch::{
    check_records, validate_produce_records, verify_crc, RecordBatchHeader, RecordRules,
};
use strata_protocol::{decode_request, encode_fetch_response_chunks};

fn decoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_request");
    group.measurement_time(Duration::from_secs(3));
    for record_size in [1024usize, 100] {
        let batch = fixtures::batch(record_size).unwrap().to_bytes();
        for version in [3i16, 9] {
            let frame = fixtures::produce_frame(&batch, version).unwrap();
            group.throughput(Throughput::Bytes(frame.len() as u64));
            group.bench_function(
                format!("produce_v{version}/{record_size}B_records_16KiB_batch"),
                |b| b.iter(|| decode_request(black_box(frame.clone())).unwrap()),
            );
        }
    }
    for partitions in [1, 100] {
        let frame = fixtures::fetch_frame(12, partitions).unwrap();
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("fetch_v12/{partitions}_partitions"), |b| {
            b.iter(|| decode_request(black_box(frame.clone())).unwrap())
        });
    }
    let metadata = MetadataRequest::default().with_topics(Some(
        (0..10)
            .map(|i| {
                MetadataRequestTopic::default().with_name(Some(topic_name(&format!("topic-{i}"))))
            })
            .collect(),
    ));
    let frame = encode_frame(ApiKey::Metadata, 12, 1, "bench", &metadata)
        .unwrap()
        .freeze()
        .slice(4..);
    group.throughput(Throughput::Elements(1));
    group.bench_function("metadata_v12/10_topics", |b| {
        b.iter(|| decode_request(black_box(frame.clone())).unwrap())
    });
    group.finish();
}

fn validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_produce_records");
    group.measurement_time(Duration::from_secs(3));
    for record_size in [1024usize, 100] {
        let batch = fixtures::batch(record_size).unwrap().to_bytes();
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(format!("{record_size}B_records_16KiB_batch"), |b| {
            b.iter(|| validate_produce_records(black_box(&batch), 1 << 20).unwrap())
        });
        group.bench_function(
            format!("crc32c_only/{record_size}B_records_16KiB_batch"),
            |b| b.iter(|| verify_crc(black_box(&batch)).unwrap()),
        );
        // The record walk that follows on the produce path, with a timestamp window set (a
        // day either way) so that every record's timestamp is judged too.
        let now = fixtures::now_ms();
        let rules = RecordRules {
            timestamp_before_max_ms: 86_400_000,
            timestamp_after_max_ms: 86_400_000,
            ..RecordRules::lenient(now)
        };
        let records = BatchTemplate::records_per_batch(fixtures::BATCH_BYTES, record_size);
        for (name, codec) in [
            ("none", Compression::None),
            ("lz4", Compression::Lz4),
            ("zstd", Compression::Zstd),
        ] {
            let batch = BatchTemplate::compressed(records, record_size, now, codec)
                .unwrap()
                .to_bytes();
            let header = RecordBatchHeader::parse(&batch).unwrap();
            group.throughput(Throughput::Bytes(batch.len() as u64));
            group.bench_function(
                format!("check_records_{name}/{record_size}B_records_16KiB_batch"),
                |b| b.iter(|| check_records(black_box(&batch), &header, &rules).unwrap()),
            );
        }
    }
    group.finish();
}

/// A Fetch response of `partitions` partitions of one topic, each with `records` (shared, not
/// copied, by the encoder); `leader_hint` sets a tagged field, which takes the general path.
fn fetch_response(partitions: i32, records: &Bytes, leader_hint: bool) -> FetchResponse {
    let partitions = (0..partitions)
        .map(|i| {
            let mut p = PartitionData::default()
                .with_partition_index(i)
                .with_high_watermark(1_000)
                .with_last_stable_offset(1_000)
                .with_log_start_offset(0)
                .with_records(Some(records.clone()));
            if leader_hint {
                p.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(1))
                    .with_leader_epoch(3);
            }
            p
        })
        .collect();
    FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(topic_name("bench"))
        .with_topic_id(uuid::Uuid::from_u128(7))
        .with_partitions(partitions)])
}

fn fetch_encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_fetch_response");
    group.measurement_time(Duration::from_secs(3));
    let records = fixtures::batch(100).unwrap().to_bytes();
    for partitions in [1, 8] {
        for (path, leader_hint) in [("plain", false), ("general", true)] {
            let resp = fetch_response(partitions, &records, leader_hint);
            group.bench_function(format!("v16/{partitions}_partitions/{path}"), |b| {
                b.iter(|| encode_fetch_response_chunks(7, 16, black_box(&resp)).unwrap())
            });
        }
    }
    group.finish();
}

/// The batch checksum alone: crc-fast (what the broker uses) against the crc32c crate (what it
/// used before), on a produce request's batch and on a 1 MB one (librdkafka's large batches).
fn checksum(c: &mut Criterion) {
    let mut group = c.benchmark_group("crc32c");
    group.measurement_time(Duration::from_secs(3));
    let data: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for len in [16 * 1024, 1_000_000] {
        let buf = data.get(..len).unwrap_or_default();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(format!("crc-fast/{len}B"), |b| {
            b.iter(|| strata_protocol::record_batch::crc32c(black_box(buf)))
        });
        group.bench_function(format!("crc32c-crate/{len}B"), |b| {
            b.iter(|| crc32c::crc32c(black_box(buf)))
        });
    }
    group.finish();
}

criterion_group!(benches, decoding, validation, fetch_encoding, checksum);
criterion_main!(benches);
