//! Shared by the loopback tests: a round trip through a secured connection.

use std::time::Duration;

use strata_benches::batch::BatchTemplate;
use strata_benches::client::KafkaConnection;
use strata_benches::ops::{self, Versions};
use strata_benches::pipeline::{self, FetchLoad, ProduceLoad};

/// Creates `topic` (one partition), produces `requests` batches of 5 records with acks=all,
/// `in_flight` at a time, and fetches them all back; panics unless every record is
/// acknowledged and read.
pub(crate) async fn produce_and_fetch(
    conn: &mut KafkaConnection,
    versions: &Versions,
    topic: &str,
    requests: u64,
    in_flight: usize,
) {
    ops::create_topic(conn, versions, topic, 1).await.unwrap();
    let batch = BatchTemplate::new(5, 100, 1_700_000_000_000).unwrap();
    let load = ProduceLoad {
        topic: topic.into(),
        partitions: vec![0],
        batch: batch.to_bytes(),
        records_per_batch: 5,
        acks: -1,
        version: versions.produce,
        requests,
        in_flight,
        throughput: None,
        idempotence: None,
    };
    let mut acknowledged = 0;
    pipeline::produce(conn, &load, |_, records| acknowledged += records)
        .await
        .unwrap();
    let expected = 5 * requests;
    assert_eq!(acknowledged, expected);
    let load = FetchLoad {
        topic: topic.into(),
        offsets: vec![(0, 0)],
        version: versions.fetch,
        max_wait_ms: 100,
        max_bytes: 1 << 20,
        partition_max_bytes: 1 << 20,
        records: expected,
        idle_timeout: Duration::from_secs(5),
    };
    let total = pipeline::consume(conn, &load, |_, _, _| {}).await.unwrap();
    assert_eq!(total, expected);
}
