//! Record-batch views against batches built by kafka-protocol's own encoder, for every codec.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test helpers, not only #[test] fns

use bytes::BytesMut;
use indexmap::IndexMap;
use strata_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strata_protocol::record_batch::*;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn records(n: i64, producer_id: i64, base_sequence: i32) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: if producer_id >= 0 { 3 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i,
            // The encoder groups records whose offset - sequence is constant into one batch.
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp: 1_700_000_000_000 + i,
            key: Some(format!("key-{i}").into_bytes().into()),
            value: Some(vec![b'v'; 100 + i as usize].into()),
            headers: IndexMap::new(),
        })
        .collect()
}

fn batch(n: i64, compression: Compression, producer_id: i64, base_sequence: i32) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let recs = records(n, producer_id, base_sequence);
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.to_vec()
}

#[test]
fn parses_and_verifies_batches_of_every_codec() {
    for (code, codec) in CODECS.iter().enumerate() {
        let b = batch(5, *codec, 77, 10);
        let h = RecordBatchHeader::parse(&b).unwrap();
        assert_eq!(h.magic, 2);
        assert_eq!(h.total_size(), b.len(), "{codec:?}");
        assert_eq!(h.records_count, 5);
        assert_eq!(h.last_offset_delta, 4);
        assert_eq!(h.last_offset(), h.base_offset + 4);
        assert_eq!(h.compression(), code as u8, "{codec:?}");
        assert_eq!(h.producer_id, 77);
        assert!(h.has_producer_id());
        assert_eq!(h.base_sequence, 10);
        assert_eq!(h.last_sequence(), 14);
        assert_eq!(h.base_timestamp, 1_700_000_000_000);
        assert_eq!(h.max_timestamp, 1_700_000_000_004);
        assert!(!h.is_transactional() && !h.is_control() && !h.is_log_append_time());
        verify_crc(&b).unwrap();
        let summary = validate_produce_records(&b, 1 << 20).unwrap();
        assert_eq!(summary.batch_count, 1);
        assert_eq!(summary.record_count, 5);
        assert_eq!((summary.producer_id, summary.producer_epoch), (77, 3));
        assert_eq!((summary.first_sequence, summary.last_sequence), (10, 14));
    }
}

#[test]
fn a_flipped_byte_anywhere_under_the_crc_is_corrupt_message() {
    for codec in CODECS {
        let b = batch(3, codec, -1, -1);
        for at in 21..b.len() {
            let mut bad = b.clone();
            bad[at] ^= 0x40;
            let err = verify_crc(&bad).unwrap_err();
            assert!(
                matches!(err, BatchError::CorruptMessage { .. }),
                "{codec:?} byte {at}: {err}"
            );
            assert_eq!(err.kafka_error_code(), 2);
        }
    }
}

#[test]
fn corrupt_payload_is_refused_by_produce_validation() {
    let mut b = batch(3, Compression::None, -1, -1);
    let last = b.len() - 1;
    b[last] ^= 1;
    let err = validate_produce_records(&b, 1 << 20).unwrap_err();
    assert_eq!(err.kafka_error_code(), 2);
}

#[test]
fn set_log_append_time_keeps_the_crc_valid_and_the_codec_agrees() {
    for codec in CODECS {
        let mut b = batch(4, codec, -1, -1);
        set_log_append_time(&mut b, 1_800_000_000_000);
        verify_crc(&b).unwrap();
        let h = RecordBatchHeader::parse(&b).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 1_800_000_000_000);
        let mut bytes = bytes::Bytes::from(b.clone());
        let decoded = RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert!(decoded
            .records
            .iter()
            .all(|r| r.timestamp_type == TimestampType::LogAppend));
    }
}

#[test]
fn set_base_offset_and_epoch_round_trip_without_touching_the_crc() {
    let mut b = batch(3, Compression::Lz4, -1, -1);
    set_base_offset(&mut b, 123_456_789);
    set_partition_leader_epoch(&mut b, 42);
    verify_crc(&b).unwrap();
    let h = RecordBatchHeader::parse(&b).unwrap();
    assert_eq!(h.base_offset, 123_456_789);
    assert_eq!(h.last_offset(), 123_456_791);
    assert_eq!(h.partition_leader_epoch, 42);
    let mut bytes = bytes::Bytes::from(b);
    let decoded = RecordBatchDecoder::decode(&mut bytes).unwrap();
    let offsets: Vec<i64> = decoded.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![123_456_789, 123_456_790, 123_456_791]);
}

#[test]
fn last_sequence_wraps_like_kafka() {
    let b = batch(3, Compression::None, 5, i32::MAX - 1);
    let h = RecordBatchHeader::parse(&b).unwrap();
    assert_eq!(h.last_sequence(), 0);
    assert_eq!(increment_sequence(i32::MAX, 1), 0);
    assert_eq!(increment_sequence(5, 3), 8);
    assert_eq!(increment_sequence(0, 10), 10);
    assert_eq!(increment_sequence(i32::MAX - 5, 5), i32::MAX);
    // Kafka: increment - (MAX - sequence) - 1
    assert_eq!(increment_sequence(i32::MAX - 5, 10), 10 - 5 - 1);
    let none = RecordBatchHeader::parse(&batch(2, Compression::None, -1, -1)).unwrap();
    assert_eq!(none.last_sequence(), -1);
    assert!(!none.has_producer_id());
}

#[test]
fn iterator_yields_whole_batches_and_stops_at_a_torn_tail() {
    let mut buf = Vec::new();
    let mut ends = Vec::new();
    for (i, codec) in CODECS.iter().enumerate() {
        let mut b = batch(i as i64 + 1, *codec, -1, -1);
        set_base_offset(&mut b, i as i64 * 10);
        buf.extend_from_slice(&b);
        ends.push(buf.len());
    }
    let mut it = BatchIter::new(&buf);
    let got: Vec<_> = it.by_ref().collect();
    assert_eq!(got.len(), 5);
    assert_eq!(it.valid_len(), buf.len());
    assert!(it.stop_reason().is_none());
    assert_eq!(got[2].header.base_offset, 20);
    assert_eq!(got[2].position, ends[1]);
    for cut in 0..buf.len() {
        let mut it = BatchIter::new(&buf[..cut]);
        let n = it.by_ref().count();
        let valid = ends
            .iter()
            .copied()
            .filter(|&e| e <= cut)
            .max()
            .unwrap_or(0);
        assert_eq!(it.valid_len(), valid, "cut {cut}");
        assert_eq!(n, ends.iter().filter(|&&e| e <= cut).count());
        assert_eq!(it.stop_reason().is_some(), cut != valid);
    }
}

#[test]
fn produce_validation_reports_kafka_error_codes() {
    let good = batch(2, Compression::Zstd, -1, -1);
    // Too large for the configured max.message.bytes.
    let err = validate_produce_records(&good, good.len() - 1).unwrap_err();
    assert_eq!(err.kafka_error_code(), 10);
    // Old magic.
    let mut old = good.clone();
    old[16] = 1;
    assert_eq!(
        validate_produce_records(&old, 1 << 20)
            .unwrap_err()
            .kafka_error_code(),
        43
    );
    // records_count inconsistent with last_offset_delta (CRC fixed up so only that is wrong).
    let mut bad_count = good.clone();
    bad_count[57..61].copy_from_slice(&7i32.to_be_bytes());
    let crc = crc32c::crc32c(&bad_count[21..]);
    bad_count[17..21].copy_from_slice(&crc.to_be_bytes());
    let err = validate_produce_records(&bad_count, 1 << 20).unwrap_err();
    assert!(matches!(err, BatchError::InvalidRecordCount { .. }));
    assert_eq!(err.kafka_error_code(), 87);
    // Trailing garbage, truncation, empty, impossible length.
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0; 5]);
    assert_eq!(
        validate_produce_records(&trailing, 1 << 20)
            .unwrap_err()
            .kafka_error_code(),
        2
    );
    assert!(validate_produce_records(&good[..good.len() - 1], 1 << 20).is_err());
    assert_eq!(
        validate_produce_records(&[], 1 << 20).unwrap_err(),
        BatchError::Empty
    );
    let mut negative = good.clone();
    negative[8..12].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(matches!(
        validate_produce_records(&negative, 1 << 20).unwrap_err(),
        BatchError::InvalidBatchLength { .. }
    ));
    // Two batches: accepted, counted.
    let mut two = good.clone();
    two.extend_from_slice(&good);
    let s = validate_produce_records(&two, 1 << 20).unwrap();
    assert_eq!((s.batch_count, s.record_count), (2, 4));
}

#[test]
fn short_buffers_never_panic() {
    let b = batch(1, Compression::None, -1, -1);
    for cut in 0..BATCH_HEADER_LEN {
        assert!(RecordBatchHeader::parse(&b[..cut]).is_err());
        assert!(verify_crc(&b[..cut]).is_err());
        let mut short = b[..cut].to_vec();
        set_base_offset(&mut short, 1);
        set_partition_leader_epoch(&mut short, 1);
        set_log_append_time(&mut short, 1);
    }
}

#[test]
fn producer_fields_are_set_under_a_valid_crc() {
    let mut b = batch(5, Compression::None, -1, -1);
    set_producer(&mut b, 4242, 3, 17);
    let header = RecordBatchHeader::parse(&b).unwrap();
    assert_eq!(
        (
            header.producer_id,
            header.producer_epoch,
            header.base_sequence
        ),
        (4242, 3, 17)
    );
    verify_crc(&b).unwrap();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// crc-fast (SIMD folding, several code paths by length) computes the same CRC32C as the
    /// crc32c crate, whole or in parts, at every length around its block sizes.
    #[test]
    fn crc32c_agrees_with_an_independent_implementation(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..5000),
        cut in proptest::prelude::any::<proptest::sample::Index>(),
    ) {
        proptest::prop_assert_eq!(crc32c(&data), crc32c::crc32c(&data));
        let (head, tail) = data.split_at(cut.index(data.len() + 1));
        proptest::prop_assert_eq!(crc32c_parts(&[head, tail]), crc32c::crc32c(&data));
    }
}

#[test]
fn crc32c_agrees_on_large_buffers() {
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for len in [65_536, 1_000_000, 1_048_583, 3_000_000] {
        assert_eq!(crc32c(&data[..len]), crc32c::crc32c(&data[..len]), "{len}");
    }
}
