//! End-to-end over loopback: a real broker started in this process (`strata_broker::server`),
//! driven by the pipelined `kafka-protocol` client of `strata_benches`. Produce with acks=1
//! and acks=-1, and Fetch; 100 B and 1 KiB records in 16 KiB batches; 1 and 8 partitions.
//! One criterion iteration is one request (Produce: one batch; Fetch: up to 256 KiB a partition).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata_benches::client::KafkaConnection;
use strata_benches::fixtures;
use strata_benches::inproc::InProcessBroker;
use strata_benches::ops::{self, Versions};
use strata_benches::pipeline::{self, FetchLoad, ProduceLoad};

const IN_FLIGHT: usize = 16;
const PARTITION_MAX_BYTES: i32 = 256 * 1024;

/// A broker and a connection to it. Fields drop in order: connection, broker (stopped
/// gracefully, its temp dir deleted), runtime.
struct Rig {
    conn: KafkaConnection,
    _broker: InProcessBroker,
    runtime: Arc<tokio::runtime::Runtime>,
    versions: Versions,
}

impl Rig {
    fn start() -> Rig {
        let runtime = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        );
        let broker = InProcessBroker::start(
            runtime.clone(),
            &[
                ("log.segment.bytes", "67108864"),
                ("log.retention.bytes", "268435456"),
                ("log.retention.check.interval.ms", "1000"),
            ],
        )
        .unwrap();
        let (conn, versions) = runtime.block_on(async {
            let mut conn = KafkaConnection::connect(&broker.addr, "strata-bench")
                .await
                .unwrap();
            let versions = ops::negotiate(&mut conn).await.unwrap();
            (conn, versions)
        });
        Rig {
            runtime,
            _broker: broker,
            conn,
            versions,
        }
    }

    fn topic(&mut self, name: &str, partitions: i32) -> Vec<i32> {
        let versions = self.versions;
        self.runtime
            .block_on(ops::create_topic(
                &mut self.conn,
                &versions,
                name,
                partitions,
            ))
            .unwrap();
        (0..partitions).collect()
    }
}

// Every bench gets its own broker and log dir: data written by one bench (and the kernel's
// writeback of it) must not slow the next.
fn produce(c: &mut Criterion) {
    let mut group = c.benchmark_group("e2e_produce");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    let mut topic_seq = 0;
    for (acks, elements) in [(1i16, false), (-1, false), (1, true)] {
        for record_size in [100usize, 1024] {
            for partitions in [1i32, 8] {
                if elements && partitions == 8 {
                    continue;
                }
                topic_seq += 1;
                let mut rig = Rig::start();
                let topic = format!("produce-{topic_seq}");
                let parts = rig.topic(&topic, partitions);
                let batch = fixtures::batch(record_size).unwrap();
                let mut load = ProduceLoad {
                    topic,
                    partitions: parts,
                    batch: batch.to_bytes(),
                    records_per_batch: batch.records() as u64,
                    acks,
                    version: rig.versions.produce,
                    requests: 0,
                    in_flight: IN_FLIGHT,
                    throughput: None,
                    idempotence: None,
                };
                let (kind, throughput) = if elements {
                    ("records", Throughput::Elements(batch.records() as u64))
                } else {
                    ("bytes", Throughput::Bytes(batch.len() as u64))
                };
                group.throughput(throughput);
                let id = BenchmarkId::new(
                    format!("acks={acks}/{kind}"),
                    format!("{record_size}B_x{}_p{partitions}", batch.records()),
                );
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        load.requests = iters;
                        let conn = &mut rig.conn;
                        rig.runtime.block_on(async {
                            let start = Instant::now();
                            pipeline::produce(conn, &load, |_, _| {}).await.unwrap();
                            start.elapsed()
                        })
                    })
                });
            }
        }
    }
    group.finish();
}

fn fetch(c: &mut Criterion) {
    let mut group = c.benchmark_group("e2e_fetch");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    for (record_size, partitions, elements) in [
        (100usize, 1i32, false),
        (1024, 1, false),
        (100, 8, false),
        (1024, 8, false),
        (100, 1, true),
    ] {
        let mut rig = Rig::start();
        let topic = format!("fetch-{record_size}-{partitions}-{elements}");
        let parts = rig.topic(&topic, partitions);
        let batch = fixtures::batch(record_size).unwrap();
        // 32 MiB per partition to read from.
        let fill = ProduceLoad {
            topic: topic.clone(),
            partitions: parts.clone(),
            batch: batch.to_bytes(),
            records_per_batch: batch.records() as u64,
            acks: 1,
            version: rig.versions.produce,
            requests: (32 * 1024 * 1024 / batch.len() as u64) * partitions as u64,
            throughput: None,
            idempotence: None,
            in_flight: IN_FLIGHT,
        };
        rig.runtime
            .block_on(pipeline::produce(&mut rig.conn, &fill, |_, _| {}))
            .unwrap();
        let load = FetchLoad {
            topic: topic.clone(),
            offsets: parts.iter().map(|p| (*p, 0)).collect(),
            version: rig.versions.fetch,
            max_wait_ms: 500,
            max_bytes: 64 * 1024 * 1024,
            partition_max_bytes: PARTITION_MAX_BYTES,
            records: 0,
            idle_timeout: Duration::from_secs(5),
        };
        let probe = rig
            .runtime
            .block_on(pipeline::fetch_once(&mut rig.conn, &load, &load.offsets))
            .unwrap();
        let bytes: u64 = probe.iter().map(|p| p.bytes).sum();
        let records: u64 = probe.iter().map(|p| p.records).sum();
        let span = probe.iter().map(|p| p.next_offset).max().unwrap();
        let end = probe.iter().map(|p| p.high_watermark).min().unwrap();
        assert!(bytes > 0 && span > 0 && end > 2 * span);
        let (kind, throughput) = if elements {
            ("records", Throughput::Elements(records))
        } else {
            ("bytes", Throughput::Bytes(bytes))
        };
        group.throughput(throughput);
        let id = BenchmarkId::new(
            kind,
            format!(
                "{record_size}B_p{partitions}_{}KiB_per_partition",
                PARTITION_MAX_BYTES / 1024
            ),
        );
        group.bench_function(id, |b| {
            let mut offsets = load.offsets.clone();
            b.iter_custom(|iters| {
                let conn = &mut rig.conn;
                rig.runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let got = pipeline::fetch_once(conn, &load, &offsets).await.unwrap();
                        for p in got {
                            if let Some(slot) = offsets.iter_mut().find(|(q, _)| *q == p.partition)
                            {
                                // Wrap before the end so every fetch returns a full chunk.
                                slot.1 = if p.next_offset + span >= end {
                                    0
                                } else {
                                    p.next_offset
                                };
                            }
                        }
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, produce, fetch);
criterion_main!(benches);
