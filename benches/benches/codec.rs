//! Micro-benches of the request front end: guarded request decoding (Produce with one 16 KiB
//! batch, Fetch of 1 and 100 partitions, Metadata) and produce-path record-batch validation.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest};
use strata_benches::client::encode_frame;
use strata_benches::fixtures;
use strata_benches::ops::topic_name;
use strata_protocol::decode_request;
use strata_protocol::record_batch::{validate_produce_records, verify_crc};

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
    }
    group.finish();
}

criterion_group!(benches, decoding, validation);
criterion_main!(benches);
