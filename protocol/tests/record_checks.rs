//! The produce path's record checks (Kafka's LogValidator rules) against batches from
//! kafka-protocol's encoder for every codec, hand-built malformed records, and arbitrary bytes.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test helpers, not only #[test] fns

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use proptest::prelude::*;
use strata_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strata_protocol::record_batch::*;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];
const NOW: i64 = 1_700_000_000_000;
const INVALID_RECORD: i16 = 87;
const INVALID_TIMESTAMP: i16 = 32;

fn record(i: i64, key: Option<&str>, timestamp: i64) -> Record {
    let mut headers = IndexMap::new();
    if i % 2 == 0 {
        headers.insert("trace".into(), Some(Bytes::from(format!("t-{i}"))));
        headers.insert("empty".into(), None);
    }
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i,
        // The encoder starts a new batch where offset - sequence changes.
        sequence: i as i32,
        timestamp,
        key: key.map(|k| Bytes::from(k.to_owned())),
        value: (i % 5 != 4).then(|| Bytes::from(vec![b'v'; 50 + i as usize])),
        headers,
    }
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

fn check(batch: &[u8], rules: &RecordRules) -> Result<(), RecordsRefused> {
    let header = RecordBatchHeader::parse(batch).unwrap();
    check_records(batch, &header, rules).map(|_| ())
}

fn keyed(n: i64) -> Vec<Record> {
    (0..n)
        .map(|i| record(i, Some(&format!("k{i}")), NOW + i))
        .collect()
}

#[test]
fn well_formed_batches_of_every_codec_pass() {
    let strict = RecordRules {
        require_keys: true,
        timestamp_before_max_ms: 1000,
        timestamp_after_max_ms: 1000,
        ..RecordRules::lenient(NOW)
    };
    for codec in CODECS {
        for n in [1, 2, 17, 1000] {
            let b = encode(&keyed(n), codec);
            assert_eq!(
                check(&b, &RecordRules::lenient(NOW)),
                Ok(()),
                "{codec:?} x{n}"
            );
            assert_eq!(check(&b, &strict), Ok(()), "{codec:?} x{n}");
        }
    }
}

#[test]
fn compacted_topics_name_every_keyless_record() {
    let rules = RecordRules {
        require_keys: true,
        ..RecordRules::lenient(NOW)
    };
    for codec in CODECS {
        let mut recs = keyed(6);
        recs[1].key = None;
        recs[4].key = None;
        let err = check(&encode(&recs, codec), &rules).unwrap_err();
        assert_eq!(err.error_code, INVALID_RECORD, "{codec:?}");
        let indexes: Vec<i32> = err.record_errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(indexes, [1, 4], "{codec:?}");
        assert!(err.message.contains("2 record errors"), "{}", err.message);
        assert!(err.record_errors[0].message.contains("without key"));
        // Without the rule the same batch passes.
        assert_eq!(
            check(&encode(&recs, codec), &RecordRules::lenient(NOW)),
            Ok(())
        );
    }
}

#[test]
fn timestamps_outside_the_window_are_invalid_timestamp() {
    let rules = RecordRules {
        timestamp_before_max_ms: 60_000,
        timestamp_after_max_ms: 1_000,
        ..RecordRules::lenient(NOW)
    };
    for codec in CODECS {
        let recs = vec![
            record(0, None, NOW - 60_000),    // edge: allowed
            record(1, None, NOW - 60_001),    // too old
            record(2, None, NOW + 1_000),     // edge: allowed
            record(3, None, NOW + 3_600_000), // an hour ahead
            record(4, None, -1),              // no timestamp: never judged
            record(5, None, NOW),
        ];
        let err = check(&encode(&recs, codec), &rules).unwrap_err();
        assert_eq!(err.error_code, INVALID_TIMESTAMP, "{codec:?}");
        let indexes: Vec<i32> = err.record_errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(indexes, [1, 3], "{codec:?}");
        assert!(err.record_errors[1]
            .message
            .contains(&format!("{}", NOW + 3_600_000)));
        // A LogAppendTime topic replaces the timestamps instead of judging them.
        let lat = RecordRules {
            log_append_time: true,
            ..rules
        };
        assert_eq!(check(&encode(&recs, codec), &lat), Ok(()), "{codec:?}");
    }
}

#[test]
fn a_key_fault_is_reported_before_a_timestamp_fault() {
    let rules = RecordRules {
        require_keys: true,
        timestamp_before_max_ms: 10,
        timestamp_after_max_ms: 10,
        ..RecordRules::lenient(NOW)
    };
    let recs = vec![
        record(0, None, NOW - 1_000),
        record(1, Some("k"), NOW - 1_000),
    ];
    let err = check(&encode(&recs, Compression::None), &rules).unwrap_err();
    // One timestamp fault makes the whole answer INVALID_TIMESTAMP, as in Kafka.
    assert_eq!(err.error_code, INVALID_TIMESTAMP);
    assert!(err.record_errors[0].message.contains("without key"));
    assert!(err.record_errors[1].message.contains("out of range"));
}

/// Sets the timestamp-type bit as a producer claiming LogAppendTime would (CRC left stale:
/// `check_records` judges records, the CRC was checked before it).
fn flag_log_append_time(batch: &mut [u8]) {
    batch[22] |= 0x08;
}

#[test]
fn producers_may_not_claim_log_append_time() {
    let mut b = encode(&keyed(3), Compression::None);
    flag_log_append_time(&mut b);
    let lat_topic = RecordRules {
        log_append_time: true,
        ..RecordRules::lenient(NOW)
    };
    let err = check(&b, &lat_topic).unwrap_err();
    assert_eq!(err.error_code, INVALID_TIMESTAMP);
    assert_eq!(err.record_errors.len(), 3);
    assert!(err.record_errors[0].message.contains("LogAppendTime"));
    // On a CreateTime topic Kafka reads such records at the batch's max timestamp, which
    // passes when it lies in the window and fails when it does not.
    assert_eq!(check(&b, &RecordRules::lenient(NOW)), Ok(()));
    let narrow = RecordRules {
        timestamp_before_max_ms: 0,
        timestamp_after_max_ms: 0,
        ..RecordRules::lenient(NOW + 10_000)
    };
    assert_eq!(
        check(&b, &narrow).unwrap_err().error_code,
        INVALID_TIMESTAMP
    );
}

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// A record's body as Kafka lays it out, fields given as raw varints/bytes.
fn body(key: Option<&[u8]>, value: &[u8], headers: &[(i64, &[u8])]) -> Vec<u8> {
    let mut b = vec![0u8]; // attributes
    varint(&mut b, 5); // timestamp delta
    varint(&mut b, 0); // offset delta
    match key {
        Some(k) => {
            varint(&mut b, k.len() as i64);
            b.extend(k);
        }
        None => varint(&mut b, -1),
    }
    varint(&mut b, value.len() as i64);
    b.extend(value);
    varint(&mut b, headers.len() as i64);
    for (len, bytes) in headers {
        varint(&mut b, *len);
        b.extend(*bytes);
        varint(&mut b, -1);
    }
    b
}

fn framed(body: &[u8], declared: i64) -> Vec<u8> {
    let mut r = Vec::new();
    varint(&mut r, declared);
    r.extend(body);
    r
}

/// An uncompressed batch holding `records` verbatim and declaring `count` records.
fn raw_batch(records: &[u8], count: i32) -> Vec<u8> {
    let mut b = encode(&keyed(1), Compression::None);
    b.truncate(61);
    b.extend(records);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    b
}

fn refused_invalid(records: &[u8], count: i32, what: &str) {
    let b = raw_batch(records, count);
    let err = check(&b, &RecordRules::lenient(NOW)).unwrap_err();
    assert_eq!(err.error_code, INVALID_RECORD, "{what}: {err:?}");
    assert!(err.record_errors.is_empty(), "{what}");
}

#[test]
fn malformed_records_inside_a_sound_batch_are_invalid_record() {
    let good = body(Some(b"k"), b"value", &[(1, b"h")]);
    let one = framed(&good, good.len() as i64);
    assert_eq!(
        check(&raw_batch(&one, 1), &RecordRules::lenient(NOW)),
        Ok(())
    );
    let two = [one.clone(), one.clone()].concat();
    assert_eq!(
        check(&raw_batch(&two, 2), &RecordRules::lenient(NOW)),
        Ok(())
    );

    refused_invalid(&one, 2, "fewer records than declared");
    refused_invalid(&two, 1, "bytes after the declared records");
    refused_invalid(
        &framed(&good, good.len() as i64 + 1),
        1,
        "size beyond the batch",
    );
    let padded = [framed(&good, good.len() as i64 + 1), vec![0]].concat();
    refused_invalid(&padded, 1, "fields shorter than the size");
    refused_invalid(
        &framed(&good, good.len() as i64 - 1),
        1,
        "fields longer than the size",
    );
    refused_invalid(&framed(&good, -3), 1, "negative size");
    let neg_header_key = body(None, b"v", &[(-1, b"")]);
    refused_invalid(
        &framed(&neg_header_key, neg_header_key.len() as i64),
        1,
        "null header key",
    );
    let mut neg_headers = body(None, b"v", &[]);
    *neg_headers.last_mut().unwrap() = 1; // zig-zag -1
    refused_invalid(
        &framed(&neg_headers, neg_headers.len() as i64),
        1,
        "negative header count",
    );
    let mut key_too_long = vec![0u8];
    varint(&mut key_too_long, 0);
    varint(&mut key_too_long, 0);
    varint(&mut key_too_long, 1_000_000);
    refused_invalid(
        &framed(&key_too_long, key_too_long.len() as i64),
        1,
        "key past the record",
    );
    let overlong = [vec![0xffu8; 6], vec![0]].concat();
    refused_invalid(&overlong, 1, "varint longer than five bytes");
    refused_invalid(&[], 1, "no records at all");
}

#[test]
fn compressed_batches_need_inner_offsets_in_order() {
    // kafka-protocol's encoder writes each record's delta from its `offset` field.
    let mut recs = keyed(4);
    recs[2].offset = 7;
    recs[2].sequence = 7;
    recs[3].offset = 8;
    recs[3].sequence = 8;
    for codec in CODECS {
        let b = encode(&recs, codec);
        let header = RecordBatchHeader::parse(&b).unwrap();
        assert_eq!(header.records_count, 4, "{codec:?}: one batch of four");
        let result = check(&b, &RecordRules::lenient(NOW));
        if codec == Compression::None {
            // Uncompressed deltas are not checked (nor are they by Kafka's in-place path).
            assert_eq!(result, Ok(()));
        } else {
            let err = result.unwrap_err();
            assert_eq!(err.error_code, INVALID_RECORD, "{codec:?}");
            assert!(err.message.contains("offset delta 7"), "{}", err.message);
        }
    }
}

#[test]
fn claimed_counts_beyond_the_bytes_and_cut_records_are_refused() {
    for codec in CODECS {
        let full = encode(&keyed(3), codec);
        let mut huge_count = full.clone();
        huge_count[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        huge_count[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        let err = check(&huge_count, &RecordRules::lenient(NOW)).unwrap_err();
        assert_eq!(err.error_code, INVALID_RECORD, "{codec:?}: {err:?}");
        if codec == Compression::None {
            for cut in 61..full.len() {
                let mut b = full[..cut].to_vec();
                b[8..12].copy_from_slice(&((cut - 12) as i32).to_be_bytes());
                let err = check(&b, &RecordRules::lenient(NOW)).unwrap_err();
                assert_eq!(err.error_code, INVALID_RECORD, "cut at {cut}");
            }
        }
    }
}

#[test]
fn a_compressed_stream_that_does_not_decompress_is_unknown_server_error() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut b = encode(&keyed(50), codec);
        let end = b.len();
        for byte in &mut b[61 + 4..end - 4] {
            *byte ^= 0xa5;
        }
        let err = check(&b, &RecordRules::lenient(NOW)).unwrap_err();
        assert!(
            err.error_code == -1 || err.error_code == INVALID_RECORD,
            "{codec:?}: {err:?}"
        );
    }
    // Codec ids 5-7 do not exist.
    let mut b = encode(&keyed(1), Compression::None);
    b[22] |= 0x05;
    let err = check(&b, &RecordRules::lenient(NOW)).unwrap_err();
    assert_eq!(err.error_code, -1);
    assert!(
        err.message.contains("compression type id 5"),
        "{}",
        err.message
    );
}

#[test]
fn a_decompression_bomb_is_walked_in_a_bounded_window() {
    // 64 MiB of one record's zeros compress to a few KiB with zstd and lz4; the walk reads
    // them through its window (a full inflate would hold all 64 MiB).
    let big = Record {
        value: Some(Bytes::from(vec![0u8; 64 << 20])),
        ..record(0, Some("k"), NOW)
    };
    for codec in [Compression::Lz4, Compression::Zstd] {
        let b = encode(std::slice::from_ref(&big), codec);
        assert!(b.len() < 1 << 20, "{codec:?}: {} bytes", b.len());
        assert_eq!(check(&b, &RecordRules::lenient(NOW)), Ok(()), "{codec:?}");
    }
}

#[test]
fn produce_validation_refuses_what_kafka_refuses_from_clients() {
    let good = encode(&keyed(2), Compression::None);
    assert!(validate_produce_records(&good, 1 << 20).is_ok());
    let recrc = |b: &mut Vec<u8>| {
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    };
    let mut nonzero = good.clone();
    nonzero[0..8].copy_from_slice(&7i64.to_be_bytes());
    let e = validate_produce_records(&nonzero, 1 << 20).unwrap_err();
    assert_eq!(
        (e.kafka_error_code(), e),
        (87, BatchError::NonZeroBaseOffset { base_offset: 7 })
    );
    let mut control = good.clone();
    control[22] |= 0x20;
    recrc(&mut control);
    let e = validate_produce_records(&control, 1 << 20).unwrap_err();
    assert_eq!((e.kafka_error_code(), e), (87, BatchError::ControlBatch));
    let mut no_sequence = good.clone();
    no_sequence[43..51].copy_from_slice(&5i64.to_be_bytes()); // producer id 5
    no_sequence[53..57].copy_from_slice(&(-1i32).to_be_bytes()); // base sequence -1
    recrc(&mut no_sequence);
    let e = validate_produce_records(&no_sequence, 1 << 20).unwrap_err();
    assert_eq!(e.kafka_error_code(), 87);
    assert!(matches!(
        e,
        BatchError::InvalidSequence {
            producer_id: 5,
            base_sequence: -1
        }
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_records_never_panic(
        records in proptest::collection::vec(any::<u8>(), 0..300),
        count in 1i32..40,
        codec in 0u8..8,
    ) {
        let mut b = raw_batch(&records, count);
        b[22] = (b[22] & !0x07) | codec;
        let rules = RecordRules { require_keys: true, timestamp_before_max_ms: 5, ..RecordRules::lenient(NOW) };
        let _ = check(&b, &rules);
    }

    #[test]
    fn mutated_batches_never_panic(
        codec_index in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut b = encode(&keyed(8), CODECS[codec_index]);
        for (at, byte) in edits {
            let i = 61 + at.index(b.len() - 61);
            b[i] = byte;
        }
        let _ = check(&b, &RecordRules::lenient(NOW));
    }
}

#[test]
fn recompressed_batches_hold_the_same_records_under_the_new_codec() {
    use strata_protocol::kafka_protocol::records::RecordBatchDecoder;
    let recs = keyed(40);
    for source in CODECS {
        let original = encode(&recs, source);
        let header = RecordBatchHeader::parse(&original).unwrap();
        let expected = RecordBatchDecoder::decode(&mut Bytes::from(original.clone())).unwrap();
        for (target, level) in [
            (0u8, 0),
            (1, -1),
            (1, 9),
            (2, 0),
            (3, 9),
            (3, 1),
            (4, 3),
            (4, -5),
        ] {
            let rebuilt = recompress_batch(&original, &header, target, level, 1 << 20).unwrap();
            let h = RecordBatchHeader::parse(&rebuilt).unwrap();
            assert_eq!(h.total_size(), rebuilt.len());
            assert_eq!(h.compression(), target, "{source:?} -> {target}");
            assert_eq!(
                (
                    h.base_timestamp,
                    h.max_timestamp,
                    h.records_count,
                    h.last_offset_delta
                ),
                (
                    header.base_timestamp,
                    header.max_timestamp,
                    header.records_count,
                    header.last_offset_delta
                )
            );
            assert!(verify_crc(&rebuilt).is_ok(), "{source:?} -> {target}");
            assert!(validate_produce_records(&rebuilt, 1 << 20).is_ok());
            assert_eq!(check(&rebuilt, &RecordRules::lenient(NOW)), Ok(()));
            let decoded = RecordBatchDecoder::decode(&mut Bytes::from(rebuilt)).unwrap();
            assert_eq!(decoded.records.len(), expected.records.len());
            for (a, b) in decoded.records.iter().zip(&expected.records) {
                assert_eq!(
                    (&a.key, &a.value, &a.headers, a.timestamp, a.offset),
                    (&b.key, &b.value, &b.headers, b.timestamp, b.offset)
                );
            }
        }
    }
    // Records that decompress past the limit are too large to hold.
    let zeros = encode(
        &[Record {
            value: Some(Bytes::from(vec![0u8; 4 << 20])),
            ..record(0, Some("k"), NOW)
        }],
        Compression::Zstd,
    );
    let header = RecordBatchHeader::parse(&zeros).unwrap();
    let err = recompress_batch(&zeros, &header, 3, 9, 1 << 20).unwrap_err();
    assert_eq!(err.kafka_error_code(), 10);
}

#[test]
fn the_records_max_timestamp_replaces_a_wrong_one_on_create_time_topics() {
    let recs = vec![
        record(0, Some("a"), NOW + 5),
        record(1, Some("b"), NOW + 9),
        record(2, Some("c"), NOW + 2),
    ];
    for codec in CODECS {
        let good = encode(&recs, codec);
        let header = RecordBatchHeader::parse(&good).unwrap();
        let checked = check_records(&good, &header, &RecordRules::lenient(NOW)).unwrap();
        assert_eq!(checked.max_timestamp, NOW + 9, "{codec:?}");
        assert_eq!(
            checked.corrected_max_timestamp(&header, &RecordRules::lenient(NOW)),
            None
        );

        let mut wrong = good.clone();
        wrong[35..43].copy_from_slice(&NOW.to_be_bytes());
        let header = RecordBatchHeader::parse(&wrong).unwrap();
        let checked = check_records(&wrong, &header, &RecordRules::lenient(NOW)).unwrap();
        let fix = checked.corrected_max_timestamp(&header, &RecordRules::lenient(NOW));
        assert_eq!(fix, Some(NOW + 9), "{codec:?}");
        // LogAppendTime topics stamp their own.
        let lat = RecordRules {
            log_append_time: true,
            ..RecordRules::lenient(NOW)
        };
        assert_eq!(checked.corrected_max_timestamp(&header, &lat), None);
        set_create_time_max_timestamp(&mut wrong, NOW + 9);
        assert_eq!(
            wrong, good,
            "{codec:?}: the fixed batch is the encoder's, CRC included"
        );
    }
    // A producer's LogAppendTime flag on a CreateTime topic is cleared, as Kafka does.
    let mut flagged = encode(&recs, Compression::None);
    flagged[22] |= 0x08;
    let header = RecordBatchHeader::parse(&flagged).unwrap();
    let checked = check_records(&flagged, &header, &RecordRules::lenient(NOW)).unwrap();
    assert_eq!(
        checked.max_timestamp,
        NOW + 9,
        "flagged records read at the max timestamp"
    );
    let fix = checked
        .corrected_max_timestamp(&header, &RecordRules::lenient(NOW))
        .unwrap();
    set_create_time_max_timestamp(&mut flagged, fix);
    assert_eq!(flagged, encode(&recs, Compression::None));
}
