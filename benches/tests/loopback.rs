//! The load client against an in-process broker: what it produces pipelined comes back in
//! full from Fetch, with acks=1 and acks=-1, over several partitions.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use strata_benches::batch::BatchTemplate;
use strata_benches::client::KafkaConnection;
use strata_benches::inproc::InProcessBroker;
use strata_benches::ops::{self, Versions};
use strata_benches::pipeline::{self, FetchLoad, ProduceLoad};

/// A connection to `addr` with versions negotiated and `topic` created.
async fn connect_with_topic(
    addr: &str,
    topic: &str,
    partitions: i32,
) -> (KafkaConnection, Versions) {
    let mut conn = KafkaConnection::connect(addr, "test").await.unwrap();
    let versions = ops::negotiate(&mut conn).await.unwrap();
    ops::create_topic(&mut conn, &versions, topic, partitions)
        .await
        .unwrap();
    (conn, versions)
}

#[test]
fn pipelined_produce_then_fetch_returns_every_record() {
    let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
    let broker = InProcessBroker::start(runtime.clone(), &[]).unwrap();
    runtime.block_on(async {
        let (mut conn, versions) = connect_with_topic(&broker.addr, "loop", 3).await;
        let layout = ops::describe_topic(&mut conn, &versions, "loop")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            layout.partitions.iter().map(|p| p.0).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        let batch = BatchTemplate::new(7, 100, 1_700_000_000_000).unwrap();
        let mut acknowledged = 0;
        for acks in [1, -1] {
            let load = ProduceLoad {
                topic: "loop".into(),
                partitions: vec![0, 1, 2],
                batch: batch.to_bytes(),
                records_per_batch: 7,
                acks,
                version: versions.produce,
                requests: 30,
                in_flight: 8,
                throughput: None,
                idempotence: None,
            };
            pipeline::produce(&mut conn, &load, |_, records| acknowledged += records)
                .await
                .unwrap();
        }
        assert_eq!(acknowledged, 2 * 30 * 7);
        let offsets = ops::earliest_offsets(&mut conn, &versions, "loop", &[0, 1, 2])
            .await
            .unwrap();
        assert_eq!(offsets, [(0, 0), (1, 0), (2, 0)]);
        let load = FetchLoad {
            topic: "loop".into(),
            offsets,
            version: versions.fetch,
            max_wait_ms: 100,
            max_bytes: 1 << 20,
            partition_max_bytes: 4096,
            records: 420,
            idle_timeout: Duration::from_secs(5),
        };
        let mut responses = 0;
        let total = pipeline::consume(&mut conn, &load, |_, _, _| responses += 1)
            .await
            .unwrap();
        assert_eq!(total, 420);
        // 4 KiB per partition per fetch: the 140 records of a partition take several fetches.
        assert!(responses > 1, "{responses}");
        // Nothing beyond what was produced.
        let tail = pipeline::fetch_once(&mut conn, &load, &[(0, 140), (1, 140), (2, 140)])
            .await
            .unwrap();
        assert!(
            tail.iter()
                .all(|p| p.records == 0 && p.high_watermark == 140),
            "{tail:?}"
        );
    });
    drop(broker);
}

#[test]
fn throughput_paces_requests_to_the_rate_asked_for() {
    let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
    let broker = InProcessBroker::start(runtime.clone(), &[]).unwrap();
    runtime.block_on(async {
        let (mut conn, versions) = connect_with_topic(&broker.addr, "paced", 1).await;
        let batch = BatchTemplate::new(10, 100, 1_700_000_000_000).unwrap();
        // 11 requests of 10 records at 200 records/s: the last may leave 100 records, 0.5 s,
        // after the first; unpaced, they would all be done in milliseconds.
        let load = ProduceLoad {
            topic: "paced".into(),
            partitions: vec![0],
            batch: batch.to_bytes(),
            records_per_batch: 10,
            acks: 1,
            version: versions.produce,
            requests: 11,
            in_flight: 5,
            throughput: Some(200.0),
            idempotence: None,
        };
        let started = std::time::Instant::now();
        let mut acknowledged = 0;
        let mut slowest = Duration::ZERO;
        pipeline::produce(&mut conn, &load, |latency, records| {
            acknowledged += records;
            slowest = slowest.max(latency);
        })
        .await
        .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(acknowledged, 110);
        assert!(
            elapsed >= Duration::from_millis(500),
            "11 requests at 200 records/s took {elapsed:?}"
        );
        // A response is read when it arrives, not when the pacing next has a moment: its
        // latency stays under the 50 ms between requests (with 5 in flight, reading only
        // once the window is full would report up to 200 ms).
        assert!(
            slowest < Duration::from_millis(40),
            "slowest request {slowest:?}"
        );
    });
}

/// Compressed batches (every codec Kafka has) go through the broker as they were sent and come
/// back whole: kafka-protocol's decoder (not ours) reads every record, with the offsets the
/// broker assigned.
#[test]
fn compressed_batches_round_trip_with_every_codec() {
    use kafka_protocol::messages::{ApiKey, FetchResponse};
    use kafka_protocol::records::RecordBatchDecoder;
    use strata_benches::batch::Compression;

    let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
    let broker = InProcessBroker::start(runtime.clone(), &[]).unwrap();
    runtime.block_on(async {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let topic = format!("{codec:?}").to_lowercase();
            let (mut conn, versions) = connect_with_topic(&broker.addr, &topic, 1).await;
            let batch = BatchTemplate::compressed(50, 100, 1_700_000_000_000, codec).unwrap();
            let load = ProduceLoad {
                topic: topic.clone(),
                partitions: vec![0],
                batch: batch.to_bytes(),
                records_per_batch: 50,
                acks: -1,
                version: versions.produce,
                requests: 4,
                in_flight: 2,
                throughput: None,
                idempotence: None,
            };
            pipeline::produce(&mut conn, &load, |_, _| {})
                .await
                .unwrap();
            let request =
                ops::fetch_request(versions.fetch, &topic, &[(0, 0)], 100, 1 << 20, 1 << 20);
            let response: FetchResponse = conn
                .call(ApiKey::Fetch, versions.fetch, &request)
                .await
                .unwrap();
            let mut records = response.responses[0].partitions[0].records.clone().unwrap();
            // Stored and served as sent: four batches of the compressed size.
            assert_eq!(records.len(), 4 * batch.len(), "{codec:?}");
            let sets = RecordBatchDecoder::decode_all(&mut records).unwrap();
            let offsets: Vec<i64> = sets
                .iter()
                .flat_map(|s| s.records.iter().map(|r| r.offset))
                .collect();
            assert_eq!(offsets, (0..200).collect::<Vec<i64>>(), "{codec:?}");
            assert!(sets
                .iter()
                .flat_map(|s| &s.records)
                .all(|r| r.value.as_ref().is_some_and(|v| v.len() == 100)));
        }
    });
}

/// An idempotent load (strata-perf --idempotence): every batch carries the producer id and
/// epoch the broker handed out, and each partition's base sequences run 0, 3, 6, ... across
/// two loads (whole batches, then the remainder), as Kafka's producer numbers them. The
/// broker checks them: a load that skips ahead is refused with OUT_OF_ORDER_SEQUENCE_NUMBER.
#[test]
fn idempotent_loads_number_each_partitions_batches() {
    use kafka_protocol::messages::{ApiKey, FetchResponse};
    use strata_benches::ops::OpsError;
    use strata_benches::pipeline::Idempotence;
    use strata_protocol::record_batch::BatchIter;

    let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
    let broker = InProcessBroker::start(runtime.clone(), &[]).unwrap();
    runtime.block_on(async {
        let (mut conn, versions) = connect_with_topic(&broker.addr, "idem", 2).await;
        let (producer_id, epoch) = ops::init_producer_id(&mut conn, &versions).await.unwrap();
        assert!(producer_id >= 0, "{producer_id}");
        let batch = BatchTemplate::new(3, 50, 1_700_000_000_000).unwrap();
        let whole = ProduceLoad {
            topic: "idem".into(),
            partitions: vec![0, 1],
            batch: batch.to_bytes(),
            records_per_batch: 3,
            acks: -1,
            version: versions.produce,
            requests: 9,
            in_flight: 5,
            throughput: None,
            idempotence: Some(Idempotence {
                producer_id,
                epoch,
                next_sequences: vec![0, 0],
            }),
        };
        // Nine requests over two partitions: five batches to 0, four to 1.
        let after = whole.idempotence_after().unwrap();
        assert_eq!(after.next_sequences, [15, 12]);
        let tail = ProduceLoad {
            requests: 1,
            idempotence: Some(after.clone()),
            ..whole.clone()
        };
        let mut acknowledged = 0;
        for load in [&whole, &tail] {
            pipeline::produce(&mut conn, load, |_, n| acknowledged += n)
                .await
                .unwrap();
        }
        assert_eq!(acknowledged, 30);

        let request = ops::fetch_request(
            versions.fetch,
            "idem",
            &[(0, 0), (1, 0)],
            100,
            1 << 20,
            1 << 20,
        );
        let response: FetchResponse = conn
            .call(ApiKey::Fetch, versions.fetch, &request)
            .await
            .unwrap();
        for p in &response.responses[0].partitions {
            let records = p.records.clone().unwrap_or_default();
            let stored: Vec<(i64, i16, i32, i64)> = BatchIter::new(&records)
                .map(|b| {
                    let h = b.header;
                    (
                        h.producer_id,
                        h.producer_epoch,
                        h.base_sequence,
                        h.base_offset,
                    )
                })
                .collect();
            let batches = if p.partition_index == 0 { 6 } else { 4 };
            let expected: Vec<(i64, i16, i32, i64)> = (0..batches)
                .map(|i| (producer_id, epoch, 3 * i, 3 * i64::from(i)))
                .collect();
            assert_eq!(stored, expected, "partition {}", p.partition_index);
        }

        // A load whose sequences skip ahead of what the broker has.
        let skipped = ProduceLoad {
            partitions: vec![1],
            requests: 1,
            idempotence: Some(Idempotence {
                producer_id,
                epoch,
                next_sequences: vec![after.next_sequences[1] + 30],
            }),
            ..whole.clone()
        };
        let refused = pipeline::produce(&mut conn, &skipped, |_, _| {}).await;
        assert!(
            matches!(refused, Err(OpsError::Kafka { code: 45, .. })),
            "{refused:?}"
        );
    });
}

/// The load client over SASL_SSL with SCRAM-SHA-512 and PLAIN, from the client properties
/// file the broker's quickstart writes (as a managed cluster's users have): what it produces
/// comes back.
/// A wrong password, and a truststore that does not hold the broker's CA, are refused.
#[test]
fn produce_and_fetch_over_sasl_ssl_from_a_client_properties_file() {
    use strata_benches::client::ClientError;
    use strata_benches::security::ClientSecurity;

    let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
    let (broker, secure, properties) = InProcessBroker::start_secure(runtime.clone()).unwrap();
    let text = std::fs::read_to_string(&properties).unwrap();
    let security = ClientSecurity::from_properties(&text).unwrap();
    runtime.block_on(async {
        let mut conn = KafkaConnection::connect_with(&secure, "test", &security)
            .await
            .unwrap();
        let versions = ops::negotiate(&mut conn).await.unwrap();
        common::produce_and_fetch(&mut conn, &versions, "secured", 20, 4).await;

        // PLAIN with the same credentials (the broker checks them against the SCRAM ones).
        let plain = text.replace("sasl.mechanism=SCRAM-SHA-512", "sasl.mechanism=PLAIN");
        let mut conn = KafkaConnection::connect_with(
            &secure,
            "test",
            &ClientSecurity::from_properties(&plain).unwrap(),
        )
        .await
        .unwrap();
        let offsets = ops::earliest_offsets(&mut conn, &versions, "secured", &[0])
            .await
            .unwrap();
        assert_eq!(offsets, [(0, 0)]);

        let wrong = text
            .lines()
            .map(|l| {
                if l.starts_with("sasl.jaas.config") {
                    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"wrong\";".to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let refused = KafkaConnection::connect_with(
            &secure,
            "test",
            &ClientSecurity::from_properties(&wrong).unwrap(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(refused, ClientError::Authentication { .. }),
            "{refused}"
        );

        // The system's CAs (no truststore line) do not include the quickstart's own CA.
        let untrusted: String = text
            .lines()
            .filter(|l| !l.starts_with("ssl.truststore"))
            .map(|l| format!("{l}\n"))
            .collect();
        if let Ok(security) = ClientSecurity::from_properties(&untrusted) {
            let refused = KafkaConnection::connect_with(&secure, "test", &security)
                .await
                .unwrap_err();
            assert!(refused.to_string().contains("certificate"), "{refused}");
        }
    });
    drop(broker);
}
