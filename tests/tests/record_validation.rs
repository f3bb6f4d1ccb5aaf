//! Kafka's record-level produce rules against a real broker: batches whose CRC is right but
//! whose records are not (or which claim what clients may not) are refused with the Java
//! broker's codes, a decompression bomb is read in bounded memory, and real clients (kcat,
//! confluent-kafka, kafka-python) see the timestamp window and compacted-topic key rules.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strata_tests::tools::{run_kcat, run_python};
use strata_tests::{Broker, RawConnection};

const TIMEOUT: Duration = Duration::from_secs(30);
const PRODUCE_VERSION: i16 = 9;
const NONE: i16 = 0;
const UNKNOWN_SERVER_ERROR: i16 = -1;
const INVALID_RECORD: i16 = 87;

fn record(i: i64, value: Bytes) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i,
        sequence: i as i32,
        timestamp: 1_700_000_000_000 + i,
        key: Some(Bytes::from(format!("key-{i}"))),
        value: Some(value),
        headers: Default::default(),
    }
}

fn batch(values: &[&str], compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| record(i as i64, Bytes::from(v.to_string())))
        .collect();
    encode(&records, compression)
}

fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.to_vec()
}

/// Recomputes the CRC after an edit, so that only the edit is wrong.
fn recrc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Produces `records` to partition 0 of `topic` (acks=1) and returns the partition's error
/// code and message.
fn produce(conn: &mut RawConnection, topic: &str, records: Vec<u8>) -> (i16, Option<String>) {
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    let id = conn
        .send_request(ApiKey::Produce, PRODUCE_VERSION, &request)
        .unwrap();
    let response: ProduceResponse = conn
        .read_response(ApiKey::Produce, PRODUCE_VERSION, id, TIMEOUT)
        .unwrap();
    let p = &response.responses[0].partition_responses[0];
    (
        p.error_code,
        p.error_message.as_ref().map(|m| m.to_string()),
    )
}

fn assert_refused(conn: &mut RawConnection, topic: &str, records: Vec<u8>, code: i16, case: &str) {
    let (error, message) = produce(conn, topic, records);
    assert_eq!(error, code, "{case}: message {message:?}");
    assert!(
        message.as_deref().is_some_and(|m| !m.is_empty()),
        "{case}: expected an error message"
    );
}

#[test]
fn batches_kafka_refuses_are_refused_and_only_good_records_are_read() {
    let mut broker = Broker::start();
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    conn.create_topics(&[("checked", 1)], TIMEOUT).unwrap();

    assert_eq!(
        produce(
            &mut conn,
            "checked",
            batch(&["good-0", "good-1"], Compression::None)
        )
        .0,
        NONE
    );

    // The second record's length claims one byte more than its fields: the CRC is right.
    let mut bad_length = batch(&["bad-0", "bad-1"], Compression::None);
    let first_len = bad_length[61] as usize / 2; // zig-zag varint, one byte
    let second = 61 + 1 + first_len;
    bad_length[second] += 2;
    recrc(&mut bad_length);
    assert_refused(
        &mut conn,
        "checked",
        bad_length,
        INVALID_RECORD,
        "record length",
    );

    // One record fewer than the header declares.
    let mut short = batch(&["short-0", "short-1"], Compression::None);
    short[57..61].copy_from_slice(&3i32.to_be_bytes());
    short[23..27].copy_from_slice(&2i32.to_be_bytes());
    recrc(&mut short);
    assert_refused(&mut conn, "checked", short, INVALID_RECORD, "records count");

    let mut control = batch(&["control"], Compression::None);
    control[22] |= 0x20;
    recrc(&mut control);
    assert_refused(
        &mut conn,
        "checked",
        control,
        INVALID_RECORD,
        "control batch",
    );

    let mut based = batch(&["based"], Compression::None);
    based[0..8].copy_from_slice(&41i64.to_be_bytes());
    assert_refused(
        &mut conn,
        "checked",
        based,
        INVALID_RECORD,
        "base offset 41",
    );

    // A zstd stream that does not decompress: Kafka's broker answers UNKNOWN_SERVER_ERROR.
    let mut garbled = batch(&["z-0", "z-1", "z-2"], Compression::Zstd);
    let end = garbled.len();
    for b in &mut garbled[61 + 4..end] {
        *b ^= 0x5a;
    }
    recrc(&mut garbled);
    assert_refused(
        &mut conn,
        "checked",
        garbled,
        UNKNOWN_SERVER_ERROR,
        "garbled zstd",
    );

    assert_eq!(
        produce(&mut conn, "checked", batch(&["good-2"], Compression::Lz4)).0,
        NONE
    );
    broker.assert_running("after the refused batches");

    // kcat reads exactly the accepted records, at offsets 0..3.
    let out = run_kcat(
        &[
            "-b",
            &broker.bootstrap(),
            "-C",
            "-t",
            "checked",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%o %s\n",
        ],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "0 good-0\n1 good-1\n2 good-2\n"
    );
}

#[test]
fn a_decompression_bomb_for_a_compacted_topic_is_read_in_bounded_memory() {
    let mut broker = Broker::start();
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    conn.create_topics_with_configs(&[("bombed", 1, &[("cleanup.policy", "compact")])], TIMEOUT)
        .unwrap();
    let before = broker.peak_rss_kib();
    // 200 MiB of zeros in one keyed record: a few KiB of zstd. Compacted topics have every
    // record's key checked, which reads the records; inflating them whole would take the
    // broker's peak RSS up by 200 MiB.
    const VALUE: usize = 200 << 20;
    let bomb = encode(
        &[record(0, Bytes::from(vec![0u8; VALUE]))],
        Compression::Zstd,
    );
    assert!(bomb.len() < 1 << 20, "the bomb is {} bytes", bomb.len());
    assert_eq!(produce(&mut conn, "bombed", bomb).0, NONE);
    let after = broker.peak_rss_kib();
    assert!(
        after < before + 100 * 1024,
        "broker peak RSS grew from {before} KiB to {after} KiB reading a {VALUE}-byte record"
    );
    broker.assert_running("after the bomb");
}

/// message.timestamp.before/after.max.ms and compacted-topic keys through confluent-kafka and
/// kafka-python (tests/python/record_rules.py): refusals with INVALID_TIMESTAMP and
/// INVALID_RECORD, a widened window applied live, only accepted records read back.
#[test]
fn clients_see_the_timestamp_window_and_key_rules() {
    let broker = Broker::start();
    let out = run_python("record_rules.py", &["--bootstrap", &broker.bootstrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK record rules"));
}

/// Kafka's broker stores the records' largest timestamp as the batch's max timestamp
/// whatever the producer wrote (the time index and timestamp lookups rely on it).
#[test]
fn a_wrong_max_timestamp_is_stored_as_the_records_largest() {
    let broker = Broker::start();
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    conn.create_topics(&[("stamped", 1)], TIMEOUT).unwrap();
    let mut sent = batch(&["a", "b", "c"], Compression::None);
    let true_max = i64::from_be_bytes(sent[35..43].try_into().unwrap());
    sent[35..43].copy_from_slice(&5i64.to_be_bytes());
    recrc(&mut sent);
    assert_eq!(produce(&mut conn, "stamped", sent.clone()).0, NONE);

    let segment = broker.data_dir().join("stamped-0/00000000000000000000.log");
    let stored = std::fs::read(&segment).unwrap();
    let length = i32::from_be_bytes(stored[8..12].try_into().unwrap()) as usize;
    let stored = &stored[..12 + length];
    assert_eq!(stored.len(), sent.len());
    assert_eq!(
        i64::from_be_bytes(stored[35..43].try_into().unwrap()),
        true_max
    );
    assert_eq!(
        u32::from_be_bytes(stored[17..21].try_into().unwrap()),
        crc32c::crc32c(&stored[21..]),
        "the stored CRC covers the corrected header"
    );
    // The records themselves are as sent.
    assert_eq!(&stored[61..], &sent[61..]);
}
