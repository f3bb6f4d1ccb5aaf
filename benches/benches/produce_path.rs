//! Issue 2's produce-path bench: decode a Produce request frame, validate its batch (header,
//! CRC, then every record as the broker's produce handler does) and append it to a `Log` in a
//! temp dir — 1 KiB records in 16 KiB batches, reported in bytes/s of
//! request frame. The log is truncated outside the timed region so the disk never fills.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::RequestKind;
use strata_benches::fixtures::{self, bench_log_config, now_ms};
use strata_protocol::decode_request;
use strata_protocol::record_batch::{check_records, validate_produce_records, RecordRules};
use strata_storage::{Log, TopicPartition};

/// Truncate the log back to empty past this size (untimed).
const MAX_LOG_BYTES: u64 = 512 * 1024 * 1024;

fn produce_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("produce_path");
    group.measurement_time(Duration::from_secs(8));
    for record_size in [1024usize, 100] {
        let batch = fixtures::batch(record_size).unwrap();
        let frame = fixtures::produce_frame(&batch.to_bytes(), 9).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let tp = TopicPartition::new("bench", 0);
        let mut log = Log::open(
            dir.path().join("bench-0"),
            tp,
            bench_log_config(),
            0,
            now_ms(),
        )
        .unwrap();
        group.throughput(Throughput::Bytes(frame.len() as u64));
        let name = format!(
            "decode_validate_append/{}B_records_{}B_batch",
            record_size,
            batch.len()
        );
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let chunk = (iters - done).min(4096);
                    let start = Instant::now();
                    for _ in 0..chunk {
                        let request = decode_request(frame.clone()).unwrap();
                        let RequestKind::Produce(produce) = request.body else {
                            panic!("expected a Produce request");
                        };
                        for topic in &produce.topic_data {
                            for p in &topic.partition_data {
                                let records = p.records.as_deref().unwrap_or_default();
                                let summary = validate_produce_records(records, 1 << 20).unwrap();
                                assert_eq!(summary.batch_count, 1);
                                let rules = RecordRules::lenient(now_ms());
                                check_records(records, &summary.first, &rules).unwrap();
                                log.append(records, 0, now_ms()).unwrap();
                            }
                        }
                    }
                    timed += start.elapsed();
                    done += chunk;
                    if log.size_bytes() > MAX_LOG_BYTES {
                        log.truncate_to(0).unwrap();
                    }
                }
                timed
            });
        });
        log.close().unwrap();
    }
    group.finish();
}

criterion_group!(benches, produce_path);
criterion_main!(benches);
