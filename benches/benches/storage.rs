//! Storage benches on `strata_storage::Log` alone: appends of 100 B and 1 KiB records in
//! 16 KiB batches (buffered, and durable with flush.messages=1), sequential reads of 1 MiB, single-batch reads at random offsets (the
//! offset-index lookup), rolling to a new segment, and recovery of a 256 MiB log from offset 0
//! (reported in bytes/s).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata_benches::fixtures::{self, bench_log_config, now_ms};
use strata_storage::{Log, LogConfig, TopicPartition};

const MAX_LOG_BYTES: u64 = 512 * 1024 * 1024;
const READ_BYTES: usize = 1024 * 1024;
const RECOVERY_LOG_BYTES: u64 = 256 * 1024 * 1024;

fn open(dir: &Path) -> Log {
    Log::open(
        dir.join("bench-0"),
        TopicPartition::new("bench", 0),
        bench_log_config(),
        0,
        now_ms(),
    )
    .unwrap()
}

/// Appends `batch` until the log holds at least `bytes`.
fn fill(log: &mut Log, batch: &[u8], bytes: u64) {
    while log.size_bytes() < bytes {
        log.append(batch, 0, now_ms()).unwrap();
    }
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage_append");
    group.measurement_time(Duration::from_secs(5));
    append_batches(&mut group, bench_log_config(), "16KiB_batch");
    group.finish();
    // Durable mode (flush.messages=1): every append waits for its fdatasync, one producer, so
    // no group commit; this is the latency floor of acks with durability, set by the disk.
    let mut group = c.benchmark_group("storage_append_durable");
    group.measurement_time(Duration::from_secs(5));
    group.sample_size(20);
    let durable = LogConfig {
        flush_interval_messages: 1,
        ..bench_log_config()
    };
    append_batches(&mut group, durable, "16KiB_batch_flush.messages=1");
    group.finish();
}

/// Appends 16 KiB batches of 100 B and 1 KiB records to a log with `config`, flushing when
/// the config says so (`flush_if_due`), as the broker does after each produce.
fn append_batches(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    config: LogConfig,
    name: &str,
) {
    for record_size in [100usize, 1024] {
        let batch = fixtures::batch(record_size).unwrap();
        let bytes = batch.to_bytes();
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(
            dir.path().join("bench-0"),
            TopicPartition::new("bench", 0),
            config.clone(),
            0,
            now_ms(),
        )
        .unwrap();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(
            BenchmarkId::new(name, format!("{record_size}B_records")),
            |b| {
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        let chunk = (iters - done).min(4096);
                        let start = Instant::now();
                        for _ in 0..chunk {
                            let now = now_ms();
                            log.append(&bytes, 0, now).unwrap();
                            log.flush_if_due(now).unwrap();
                        }
                        timed += start.elapsed();
                        done += chunk;
                        if log.size_bytes() > MAX_LOG_BYTES {
                            log.truncate_to(0).unwrap();
                        }
                    }
                    timed
                })
            },
        );
        log.close().unwrap();
    }
}

fn read(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage_read");
    group.measurement_time(Duration::from_secs(5));
    let batch = fixtures::batch(1024).unwrap().to_bytes();
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    fill(&mut log, &batch, 128 * 1024 * 1024);
    let end = log.log_end_offset();
    // Whole batches up to READ_BYTES: the size is the same from any batch boundary.
    let probe = log.read(0, READ_BYTES, i64::MAX, true).unwrap();
    let read_len = probe.records.len();
    let span = probe.next_offset;
    assert!(read_len > 0 && span > 0);
    group.throughput(Throughput::Bytes(read_len as u64));
    group.bench_function("sequential_1MiB", |b| {
        let mut offset = 0i64;
        b.iter(|| {
            let r = log.read(offset, READ_BYTES, i64::MAX, true).unwrap();
            offset = if r.next_offset + span >= end {
                0
            } else {
                r.next_offset
            };
            r.records.len()
        })
    });
    // Pseudo-random offsets (xorshift) so each lookup lands in a different index entry.
    group.throughput(Throughput::Elements(1));
    group.bench_function("index_lookup_one_batch", |b| {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        b.iter(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let offset = (x % end as u64) as i64;
            let r = log.read(offset, 1, i64::MAX, true).unwrap();
            assert!(r.first_offset.is_some_and(|f| f <= offset));
            r.next_offset
        })
    });
    log.close().unwrap();
    group.finish();
}

/// One roll: the next segment's log and index files created and mapped, the old segment
/// trimmed and sealed (`roll_inline`, all of it under the partition's state lock before
/// the roll was split), and the part of a split roll that still holds that lock
/// (`roll_under_lock`: `plan_roll` and `install_segment`; the file work is untimed). Appends
/// wait for all of it once per `segment.bytes`; fetches only for the second.
fn roll(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage_roll");
    group.measurement_time(Duration::from_secs(5));
    let batch = fixtures::batch(1024).unwrap().to_bytes();
    group.throughput(Throughput::Elements(1));
    for split in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        // Room for one batch a segment: every next append must roll.
        let config = LogConfig {
            segment_bytes: (batch.len() * 3 / 2) as u64,
            ..bench_log_config()
        };
        let mut log = Log::open(
            dir.path().join("bench-0"),
            TopicPartition::new("bench", 0),
            config,
            0,
            now_ms(),
        )
        .unwrap();
        let name = if split {
            "roll_under_lock"
        } else {
            "roll_inline"
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for i in 0..iters {
                    log.append(&batch, 0, now_ms()).unwrap();
                    if split {
                        let start = Instant::now();
                        let plan = log.plan_roll(&batch, now_ms()).unwrap().unwrap();
                        timed += start.elapsed();
                        let created = plan.create();
                        let start = Instant::now();
                        let seal = log.install_segment(created).unwrap();
                        timed += start.elapsed();
                        seal.run().unwrap();
                    } else {
                        let start = Instant::now();
                        log.roll(now_ms()).unwrap();
                        timed += start.elapsed();
                    }
                    // Keep the number of open segments (files, mappings) bounded.
                    if i % 256 == 255 {
                        log.truncate_to(0).unwrap();
                    }
                }
                timed
            })
        });
        log.close().unwrap();
    }
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage_recovery");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let batch = fixtures::batch(1024).unwrap().to_bytes();
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    fill(&mut log, &batch, RECOVERY_LOG_BYTES);
    let size = log.size_bytes();
    let end = log.log_end_offset();
    log.close().unwrap();
    group.throughput(Throughput::Bytes(size));
    group.bench_function("open_from_offset_0/256MiB", |b| {
        b.iter(|| {
            let log = open(dir.path());
            assert_eq!(log.log_end_offset(), end);
            log.close().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, append, read, roll, recovery);
criterion_main!(benches);
