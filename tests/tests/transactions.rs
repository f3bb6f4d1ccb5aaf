//! Kafka transactions (KIP-98) end to end: confluent-kafka's transactional producer with
//! committed and aborted rounds read back under both isolation levels; fencing of a zombie
//! producer by a new one with the same transactional.id; consume-transform-produce with the
//! group's offsets committed inside the transactions; kafka-python's transactional producer
//! and read_committed consumer; ListOffsets LATEST over the wire under read_committed (the
//! last stable offset) and read_uncommitted (the high watermark), with a timed-out
//! transaction aborted by the coordinator; and a kill -9 with a transaction open, after
//! which the restarted coordinator aborts it so read_committed readers reach the log end;
//! the operators' ListTransactions, DescribeTransactions, DescribeProducers and WriteTxnMarkers
//! (`kafka-transactions.sh list`, `describe`, `abort`).

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::Duration;

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_transactions_response::TransactionState as DescribedTransaction;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListOffsetsRequest,
    ListOffsetsResponse, ListTransactionsRequest, ListTransactionsResponse, MetadataRequest,
    MetadataResponse, TopicName, TransactionalId, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use strata_tests::metrics::{scrape, series_value};
use strata_tests::tools::wait_with_deadline;
use strata_tests::{poll_until, run_python, spawn_python, Broker, RawConnection};

const SCRIPT: &str = "ck_transactions.py";
/// Lets a test see a timed-out transaction aborted within a second of its timeout.
const FAST_TXN_CLEANUP: (&str, &str) = (
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "200",
);
/// transaction.timeout.ms of the open-txn script's producer: long enough that the
/// transaction is certainly still open when the test looks at it (and crashes the broker),
/// short enough that waiting for the coordinator to abort it keeps the test quick.
const OPEN_TXN_TIMEOUT_MS: &str = "15000";
/// How long the open-txn script may take to report its open transaction.
const OPEN_REPORT_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the coordinator may take to abort a timed-out transaction (after its timeout).
const ABORT_TIMEOUT: Duration = Duration::from_secs(120);
const WIRE_TIMEOUT: Duration = Duration::from_secs(30);
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a ck_transactions.py sub-command and returns its summary line, asserting it is OK.
fn ck(mode: &str, broker: &Broker, args: &[&str]) -> String {
    let bootstrap = broker.bootstrap();
    let mut all = vec![mode, "--bootstrap", bootstrap.as_str()];
    all.extend_from_slice(args);
    let summary = stdout(&run_python(SCRIPT, &all));
    assert!(
        summary.contains(&format!("OK transactions {mode}")),
        "summary: {summary}"
    );
    eprintln!("{}", summary.trim());
    summary
}

/// A background open-txn script, killed (by its own handle) when dropped.
struct OpenTxnScript {
    child: Child,
    log: PathBuf,
}

/// The open transaction as the script reported it: `(partition, first, last)` offsets.
type OpenRanges = Vec<(i32, i64, i64)>;

impl OpenTxnScript {
    fn spawn(broker: &Broker, args: &[&str]) -> OpenTxnScript {
        let log = broker.scratch_dir().join("open-txn.log");
        let bootstrap = broker.bootstrap();
        let mut all = vec!["open-txn", "--bootstrap", bootstrap.as_str()];
        all.extend_from_slice(args);
        let child = spawn_python(SCRIPT, &all, &log);
        OpenTxnScript { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the "OPEN <topic> <p>:<first>-<last>,..." line; panics (with the script's
    /// output) if the script exits or the deadline passes first.
    fn wait_open(&mut self, topic: &str) -> OpenRanges {
        let log: &Path = &self.log;
        let child = &mut self.child;
        let found = poll_until(OPEN_REPORT_TIMEOUT, || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.starts_with("OPEN ")) {
                return Some(Ok(line.to_owned()));
            }
            match child.try_wait() {
                Ok(Some(status)) => Some(Err(status)),
                _ => None,
            }
        });
        let line = match found {
            Some(Ok(line)) => line,
            Some(Err(status)) => panic!(
                "the open-txn script exited with {status} before opening a transaction:\n{}",
                self.output()
            ),
            None => panic!(
                "the open-txn script did not report an open transaction within \
                 {OPEN_REPORT_TIMEOUT:?}:\n{}",
                self.output()
            ),
        };
        let mut words = line.split_whitespace().skip(1);
        assert_eq!(words.next(), Some(topic), "line: {line}");
        let ranges: OpenRanges = words
            .next()
            .unwrap_or_else(|| panic!("no offsets in {line:?}"))
            .split(',')
            .map(|range| {
                let (p, offsets) = range.split_once(':').unwrap();
                let (first, last) = offsets.split_once('-').unwrap();
                (
                    p.parse().unwrap(),
                    first.parse().unwrap(),
                    last.parse().unwrap(),
                )
            })
            .collect();
        assert!(!ranges.is_empty(), "line: {line}");
        ranges
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = wait_with_deadline(&mut self.child, Duration::from_secs(30));
    }
}

impl Drop for OpenTxnScript {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- open-txn script output ---\n{}", self.output());
        }
    }
}

/// The highest ListOffsets version the broker advertises.
fn list_offsets_max_version(conn: &mut RawConnection) -> i16 {
    conn.api_versions(WIRE_TIMEOUT)
        .unwrap()
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ListOffsets as i16)
        .expect("ListOffsets is advertised")
        .max_version
}

/// ListOffsets for one partition at `version`; `isolation` is sent from v2 on.
fn list_offset(
    conn: &mut RawConnection,
    version: i16,
    topic: &str,
    partition: i32,
    timestamp: i64,
    isolation: i8,
) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])])
        .with_timeout_ms(if version >= 10 { 5_000 } else { 0 });
    let id = conn
        .send_request(ApiKey::ListOffsets, version, &request)
        .unwrap();
    let response: ListOffsetsResponse = conn
        .read_response(ApiKey::ListOffsets, version, id, WIRE_TIMEOUT)
        .unwrap();
    let p = &response.topics[0].partitions[0];
    assert_eq!(
        p.error_code, 0,
        "ListOffsets v{version} {topic}[{partition}] timestamp {timestamp} isolation {isolation}: {p:?}"
    );
    p.offset
}

/// `(read_committed LATEST, read_uncommitted LATEST)`: the last stable offset and the high
/// watermark.
fn lso_and_hw(conn: &mut RawConnection, version: i16, topic: &str, partition: i32) -> (i64, i64) {
    (
        list_offset(conn, version, topic, partition, LATEST, READ_COMMITTED),
        list_offset(conn, version, topic, partition, LATEST, READ_UNCOMMITTED),
    )
}

#[test]
fn confluent_committed_and_aborted_rounds_read_committed_sees_only_committed() {
    let broker = Broker::start_with(&[("transaction.state.log.num.partitions", "5")]);
    ck(
        "commit-abort",
        &broker,
        &[
            "--topic",
            "txn-rounds",
            "--partitions",
            "3",
            "--rounds",
            "6",
            "--per-round",
            "300",
        ],
    );
    // The coordinator keeps its state in the internal __transaction_state topic, with the
    // configured number of partitions.
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_static_str("__transaction_state")),
        ))]))
        .with_allow_auto_topic_creation(false);
    let id = conn.send_request(ApiKey::Metadata, 12, &request).unwrap();
    let metadata: MetadataResponse = conn
        .read_response(ApiKey::Metadata, 12, id, WIRE_TIMEOUT)
        .unwrap();
    let topic = &metadata.topics[0];
    assert_eq!(topic.error_code, 0, "{topic:?}");
    assert!(
        topic.is_internal,
        "__transaction_state is not internal: {topic:?}"
    );
    assert_eq!(topic.partitions.len(), 5, "{topic:?}");
}

#[test]
fn a_new_producer_with_the_same_transactional_id_fences_the_old_one() {
    let broker = Broker::start();
    let summary = ck(
        "fencing",
        &broker,
        &[
            "--topic",
            "txn-fencing",
            "--partitions",
            "2",
            "--records",
            "200",
        ],
    );
    assert!(
        summary.contains("A's commit failed with"),
        "summary: {summary}"
    );
}

#[test]
fn consume_transform_produce_copies_each_record_exactly_once() {
    let broker = Broker::start();
    ck(
        "ctp",
        &broker,
        &[
            "--input",
            "txn-ctp-in",
            "--output",
            "txn-ctp-out",
            "--partitions",
            "2",
            "--records",
            "2000",
            "--txn-size",
            "100",
            "--abort-every",
            "3",
        ],
    );
}

#[test]
fn kafka_python_transactional_producer_and_read_committed_consumer() {
    let broker = Broker::start();
    let output = run_python(
        "kp_transactions.py",
        &[
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            "kp-txn",
            "--partitions",
            "3",
            "--rounds",
            "6",
            "--per-round",
            "90",
        ],
    );
    let summary = stdout(&output);
    assert!(
        summary.contains("OK kafka-python transactions"),
        "summary: {summary}"
    );
    eprintln!("{}", summary.trim());
}

#[test]
fn list_offsets_latest_is_the_last_stable_offset_under_read_committed() {
    let broker = Broker::start_with(&[FAST_TXN_CLEANUP]);
    let topic = "txn-lso";
    ck(
        "commit-txn",
        &broker,
        &[
            "--topic",
            topic,
            "--partitions",
            "1",
            "--create",
            "--records",
            "10",
        ],
    );
    let mut script = OpenTxnScript::spawn(
        &broker,
        &[
            "--topic",
            topic,
            "--partitions",
            "1",
            "--records",
            "5",
            "--txn-timeout-ms",
            OPEN_TXN_TIMEOUT_MS,
        ],
    );
    let ranges = script.wait_open(topic);
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    let (_, first, last) = ranges[0];
    // Offsets 0-9: the committed records, 10: their commit marker, 11-15: the open ones.
    assert_eq!(
        (first, last),
        (11, 15),
        "the open transaction's records are not right after the committed ones and their marker"
    );

    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    let max = list_offsets_max_version(&mut conn);
    assert!(max >= 2, "ListOffsets v{max} has no isolation level");
    for version in 2..=max {
        assert_eq!(
            lso_and_hw(&mut conn, version, topic, 0),
            (first, last + 1),
            "ListOffsets v{version} LATEST (read_committed, read_uncommitted) with a transaction \
             open from offset {first}"
        );
        assert_eq!(
            list_offset(&mut conn, version, topic, 0, EARLIEST, READ_COMMITTED),
            0,
            "ListOffsets v{version} EARLIEST under read_committed"
        );
    }
    // v1 has no isolation level: it is read_uncommitted.
    assert_eq!(
        list_offset(&mut conn, 1, topic, 0, LATEST, READ_UNCOMMITTED),
        last + 1,
        "ListOffsets v1 LATEST"
    );
    // The metrics show the open transaction and its age.
    let open = |series: &std::collections::HashMap<String, f64>| {
        series_value(series, "strata_transactions", &[("state", "Ongoing")])
    };
    let series = scrape(&broker);
    assert_eq!(open(&series), 1.0, "one transaction open");
    assert!(
        series_value(&series, "strata_transaction_oldest_open_seconds", &[]) > 0.0,
        "the open transaction has an age"
    );

    // The producer goes away without ending its transaction: once it times out, the
    // coordinator aborts it, and the abort marker (offset 16) makes the log stable again.
    script.kill();
    let settled = poll_until(
        Duration::from_millis(OPEN_TXN_TIMEOUT_MS.parse().unwrap()) + ABORT_TIMEOUT,
        || {
            let (lso, hw) = lso_and_hw(&mut conn, max, topic, 0);
            (lso == hw).then_some((lso, hw))
        },
    );
    let last_seen = lso_and_hw(&mut conn, max, topic, 0);
    assert_eq!(
        settled,
        Some((last + 2, last + 2)),
        "the timed-out transaction was not aborted with one marker: (LSO, HW) now {last_seen:?}"
    );
    let series = scrape(&broker);
    assert_eq!(open(&series), 0.0, "no transaction open after the abort");
    assert_eq!(
        series_value(&series, "strata_transaction_oldest_open_seconds", &[]),
        0.0
    );
    assert_eq!(
        series_value(
            &series,
            "strata_transactions",
            &[("state", "CompleteAbort")]
        ),
        1.0,
        "the timed-out transaction's id"
    );
}

#[test]
fn kill9_with_a_transaction_open_restarted_coordinator_aborts_it() {
    const COMMITTED: &str = "300";
    const OPEN: &str = "150";
    let mut broker = Broker::start_with(&[FAST_TXN_CLEANUP]);
    let topic = "txn-restart";
    let open_txn_id = "txn-restart-open";
    ck(
        "commit-txn",
        &broker,
        &[
            "--topic",
            topic,
            "--partitions",
            "3",
            "--create",
            "--records",
            COMMITTED,
        ],
    );
    let mut script = OpenTxnScript::spawn(
        &broker,
        &[
            "--topic",
            topic,
            "--partitions",
            "3",
            "--records",
            OPEN,
            "--txn-id",
            open_txn_id,
            "--txn-timeout-ms",
            OPEN_TXN_TIMEOUT_MS,
        ],
    );
    let ranges = script.wait_open(topic);
    assert_eq!(ranges.len(), 3, "{ranges:?}");

    // The transaction is open when the broker dies: each partition's last stable offset is
    // the transaction's first offset there.
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    let max = list_offsets_max_version(&mut conn);
    for &(p, first, last) in &ranges {
        assert_eq!(
            lso_and_hw(&mut conn, max, topic, p),
            (first, last + 1),
            "{topic}[{p}] (LSO, HW) before the crash, with the transaction open from {first}"
        );
    }
    drop(conn);
    script.kill();
    broker.kill9();
    broker.restart();

    // After the restart the coordinator finds the transaction timed out and aborts it:
    // read_committed readers reach the log end and see only the committed records.
    ck(
        "verify-committed",
        &broker,
        &[
            "--topic",
            topic,
            "--partitions",
            "3",
            "--expect-committed",
            COMMITTED,
            "--expect-open",
            OPEN,
            "--stable-timeout-s",
            "180",
        ],
    );
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    for &(p, _, last) in &ranges {
        assert_eq!(
            lso_and_hw(&mut conn, max, topic, p),
            (last + 2, last + 2),
            "{topic}[{p}] (LSO, HW) after the abort: one abort marker after the open records"
        );
    }

    // The aborted transaction's id is usable again: a new producer with it commits.
    ck(
        "commit-txn",
        &broker,
        &[
            "--topic",
            topic,
            "--partitions",
            "3",
            "--records",
            COMMITTED,
            "--start-index",
            COMMITTED,
            "--txn-id",
            open_txn_id,
        ],
    );
    ck(
        "verify-committed",
        &broker,
        &[
            "--topic",
            topic,
            "--partitions",
            "3",
            "--expect-committed",
            "600",
            "--expect-open",
            OPEN,
        ],
    );
    broker.assert_running("after the transactions following the restart");
}

/// ListTransactions with one state filter: the transactional ids, sorted.
fn list_transactions(conn: &mut RawConnection, state: &str) -> Vec<String> {
    let request = ListTransactionsRequest::default()
        .with_state_filters(vec![StrBytes::from_string(state.to_owned())])
        .with_duration_filter(-1);
    let id = conn
        .send_request(ApiKey::ListTransactions, 1, &request)
        .unwrap();
    let response: ListTransactionsResponse = conn
        .read_response(ApiKey::ListTransactions, 1, id, WIRE_TIMEOUT)
        .unwrap();
    assert_eq!(response.error_code, 0, "{response:?}");
    let mut ids: Vec<String> = response
        .transaction_states
        .iter()
        .map(|t| t.transactional_id.0.to_string())
        .collect();
    ids.sort();
    ids
}

fn describe_transaction(conn: &mut RawConnection, txn_id: &str) -> DescribedTransaction {
    let request =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
            StrBytes::from_string(txn_id.to_owned()),
        )]);
    let id = conn
        .send_request(ApiKey::DescribeTransactions, 0, &request)
        .unwrap();
    let response: DescribeTransactionsResponse = conn
        .read_response(ApiKey::DescribeTransactions, 0, id, WIRE_TIMEOUT)
        .unwrap();
    response.transaction_states.into_iter().next().unwrap()
}

/// DescribeProducers for one partition: `(producer id, epoch, current txn start offset)`.
fn describe_producers(conn: &mut RawConnection, topic: &str) -> Vec<(i64, i32, i64)> {
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
        .with_partition_indexes(vec![0])]);
    let id = conn
        .send_request(ApiKey::DescribeProducers, 0, &request)
        .unwrap();
    let response: DescribeProducersResponse = conn
        .read_response(ApiKey::DescribeProducers, 0, id, WIRE_TIMEOUT)
        .unwrap();
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "DescribeProducers {topic}[0]: {p:?}");
    p.active_producers
        .iter()
        .map(|s| {
            (
                s.producer_id.0,
                s.producer_epoch,
                s.current_txn_start_offset,
            )
        })
        .collect()
}

/// What `kafka-transactions.sh describe-producers` and `abort` do: find the producer of the
/// open transaction, then end it with a WriteTxnMarkers abort sent to the partition.
#[test]
fn an_operator_aborts_an_open_transaction_with_write_txn_markers() {
    let broker = Broker::start();
    let topic = "txn-admin";
    let mut script = OpenTxnScript::spawn(
        &broker,
        &[
            "--topic",
            topic,
            "--partitions",
            "1",
            "--create",
            "--records",
            "5",
            "--txn-timeout-ms",
            "600000",
            "--txn-id",
            "admin-open",
        ],
    );
    let ranges = script.wait_open(topic);
    let (_, first, last) = ranges[0];
    let mut conn = RawConnection::connect(broker.addr()).unwrap();

    // `kafka-transactions.sh list` and `describe`: the coordinator's view of the id.
    assert_eq!(
        list_transactions(&mut conn, "Ongoing"),
        vec!["admin-open".to_owned()]
    );
    assert!(list_transactions(&mut conn, "CompleteCommit").is_empty());
    let described = describe_transaction(&mut conn, "admin-open");
    assert_eq!(described.error_code, 0, "{described:?}");
    assert_eq!(described.transaction_state.as_str(), "Ongoing");
    assert_eq!(described.transaction_timeout_ms, 600_000);
    let topics: Vec<(String, Vec<i32>)> = described
        .topics
        .iter()
        .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
        .collect();
    assert_eq!(topics, vec![(topic.to_owned(), vec![0])]);
    assert_eq!(
        describe_transaction(&mut conn, "nobody").error_code,
        105,
        "TRANSACTIONAL_ID_NOT_FOUND"
    );

    let producers = describe_producers(&mut conn, topic);
    assert_eq!(producers.len(), 1, "{producers:?}");
    let (producer_id, epoch, started) = producers[0];
    assert_eq!(producer_id, described.producer_id.0, "the id's producer");
    assert_eq!(started, first, "the open transaction's first offset");
    assert_eq!(lso_and_hw(&mut conn, 4, topic, 0), (first, last + 1));

    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(kafka_protocol::messages::ProducerId(producer_id))
            .with_producer_epoch(i16::try_from(epoch).unwrap())
            .with_transaction_result(false)
            .with_coordinator_epoch(0)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_indexes(vec![0])])]);
    let id = conn
        .send_request(ApiKey::WriteTxnMarkers, 1, &request)
        .unwrap();
    let response: WriteTxnMarkersResponse = conn
        .read_response(ApiKey::WriteTxnMarkers, 1, id, WIRE_TIMEOUT)
        .unwrap();
    let code = response.markers[0].topics[0].partitions[0].error_code;
    assert_eq!(code, 0, "WriteTxnMarkers: {response:?}");
    assert_eq!(
        lso_and_hw(&mut conn, 4, topic, 0),
        (last + 2, last + 2),
        "the abort marker ends the transaction: read_committed readers reach the log end"
    );
    let after = describe_producers(&mut conn, topic);
    assert_eq!(after, vec![(producer_id, epoch, -1)], "no transaction open");
    // The aborted records stay invisible to read_committed readers.
    ck(
        "verify-committed",
        &broker,
        &[
            "--topic",
            topic,
            "--partitions",
            "1",
            "--expect-committed",
            "0",
            "--expect-open",
            "5",
        ],
    );
}
