//! End-to-end latency (`strata-perf latency`) against an in-process broker: every record is
//! written, found by its value in a waiting consumer's Fetch, and the broker wakes that Fetch
//! when the record lands instead of letting it sit out fetch.max.wait.ms; records other
//! producers write to the same partition meanwhile are read past, not taken for ours.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FetchResponse};
use kafka_protocol::records::RecordBatchDecoder;
use strata_benches::batch::BatchTemplate;
use strata_benches::client::KafkaConnection;
use strata_benches::inproc::InProcessBroker;
use strata_benches::latency::{self, LatencyLoad, LatencySample};
use strata_benches::ops;
use strata_benches::pipeline::{self, ProduceLoad};

const MAX_WAIT_MS: i32 = 4_000;

#[test]
fn each_record_comes_back_through_a_woken_fetch_with_others_writing_alongside() {
    let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
    let broker = InProcessBroker::start(runtime.clone(), &[]).unwrap();
    runtime.block_on(async {
        let addr = broker.addr.clone();
        let mut admin = KafkaConnection::connect(&addr, "test").await.unwrap();
        let versions = ops::negotiate(&mut admin).await.unwrap();
        ops::create_topic(&mut admin, &versions, "e2e", 1)
            .await
            .unwrap();
        // Records from before the run: it starts at the partition's end, past them.
        // One-record batches, as ours are: only the value tells them apart.
        let before = BatchTemplate::new(1, 100, 1_700_000_000_000).unwrap();
        let mut other = ProduceLoad {
            topic: "e2e".into(),
            partitions: vec![0],
            batch: before.to_bytes(),
            records_per_batch: 1,
            acks: 1,
            version: versions.produce,
            requests: 20,
            in_flight: 1,
            throughput: None,
            idempotence: None,
        };
        pipeline::produce(&mut admin, &other, |_, _| {})
            .await
            .unwrap();
        let start = ops::latest_offsets(&mut admin, &versions, "e2e", &[0])
            .await
            .unwrap();
        assert_eq!(start, [(0, 20)]);

        // Another producer writes to the partition, paced, all along.
        other.requests = 200;
        other.throughput = Some(500.0);
        let mut writer = KafkaConnection::connect(&addr, "other").await.unwrap();
        let alongside = tokio::spawn(async move {
            let mut records = 0;
            pipeline::produce(&mut writer, &other, |_, r| records += r)
                .await
                .unwrap();
            records
        });

        let mut all: Vec<(u64, LatencySample)> = Vec::new();
        for (acks, nonce) in [(1i16, 1_000u64), (-1, 2_000), (0, 3_000)] {
            let load = LatencyLoad {
                topic: "e2e".into(),
                partition: 0,
                acks,
                produce_version: versions.produce,
                fetch_version: versions.fetch,
                max_wait_ms: MAX_WAIT_MS,
                records: 100,
                record_size: 100,
                // The consumer's Fetch is waiting at the broker before each record is written.
                pause: Duration::from_millis(3),
                nonce,
            };
            let mut producer = KafkaConnection::connect(&addr, "p").await.unwrap();
            let mut consumer = KafkaConnection::connect(&addr, "c").await.unwrap();
            let from = all.last().map_or(20, |(_, s)| s.offset + 1);
            let mut samples = Vec::new();
            latency::measure(&mut producer, &mut consumer, &load, from, |s| {
                samples.push(s)
            })
            .await
            .unwrap();
            assert_eq!(samples.len(), 100, "acks={acks}");
            assert_eq!(
                samples.iter().all(|s| s.acknowledged.is_some()),
                acks != 0,
                "acks={acks}"
            );
            all.extend(
                samples
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| (nonce + i as u64, s)),
            );
        }
        let others = alongside.await.unwrap();
        assert_eq!(others, 200);

        let end = ops::latest_offsets(&mut admin, &versions, "e2e", &[0])
            .await
            .unwrap();
        assert_eq!(end, [(0, 20 + 300 + 200)], "ours and the other producer's");
        // Each sample names the offset of the very record it wrote (read back by
        // kafka-protocol's decoder): its value starts with the run's nonce plus its index.
        let values = read_values(&mut admin, versions.fetch, 20, 520).await;
        for (tag, sample) in &all {
            let value = values.get(&sample.offset).unwrap();
            assert_eq!(value.get(..8), Some(&tag.to_be_bytes()[..]), "{sample:?}");
        }
        let slowest = all.iter().map(|(_, s)| s.delivered).max().unwrap();
        // A Fetch parked at the broker is answered when the record lands, not after
        // fetch.max.wait.ms (4 s), which a broker that did not wake it would let it sit out.
        assert!(
            slowest < Duration::from_millis(MAX_WAIT_MS as u64 / 2),
            "slowest delivery {slowest:?}"
        );
    });
    drop(broker);
}

/// Every record's value in partition 0 of `e2e`, by offset, from `from` to `end`.
async fn read_values(
    conn: &mut KafkaConnection,
    fetch_version: i16,
    from: i64,
    end: i64,
) -> HashMap<i64, Bytes> {
    let mut values = HashMap::new();
    let mut offset = from;
    while offset < end {
        let request =
            ops::fetch_request(fetch_version, "e2e", &[(0, offset)], 100, 1 << 20, 1 << 20);
        let response: FetchResponse = conn
            .call(ApiKey::Fetch, fetch_version, &request)
            .await
            .unwrap();
        let mut records = response.responses[0].partitions[0].records.clone().unwrap();
        while !records.is_empty() {
            for record in RecordBatchDecoder::decode(&mut records).unwrap().records {
                offset = offset.max(record.offset + 1);
                values.insert(record.offset, record.value.unwrap());
            }
        }
    }
    values
}

#[test]
fn the_binary_prints_percentiles_and_refuses_records_too_small_to_name() {
    let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
    let broker = InProcessBroker::start(runtime.clone(), &[]).unwrap();
    let run = |args: &str| {
        Command::new(env!("CARGO_BIN_EXE_strata-perf"))
            .args([
                "latency",
                "--bootstrap",
                &broker.addr,
                "--topic",
                "cli",
                "--quiet",
            ])
            .args(args.split_whitespace())
            .output()
            .unwrap()
    };
    let out = run("--records 50 --acks -1 --interval-ms 1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("latency: 50 records in"), "{stdout}");
    assert!(
        stdout.contains("latency: end to end (produce written to record fetched): avg"),
        "{stdout}"
    );
    assert!(
        stdout.contains("latency: produce acknowledged: avg"),
        "{stdout}"
    );

    let refused = run("--records 5 --record-size 7");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--record-size must be at least 8"),
        "{refused:?}"
    );
    drop(broker);
}
