//! Hostile and malformed frames: every one must come back as an error, never a panic, an
//! abort or a giant allocation. The first test is the known crash in the unguarded codec.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test helpers, not only #[test] fns

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use strata_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use strata_protocol::kafka_protocol::messages::{
    ApiKey, MetadataRequest, RequestHeader, RequestKind, TopicName,
};
use strata_protocol::kafka_protocol::protocol::{Encodable, StrBytes};
use strata_protocol::{decode_request, RequestError};

fn header(api_key: i16, version: i16, header_version: i16) -> BytesMut {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
        .with_correlation_id(99)
        .with_client_id(Some(StrBytes::from_static_str("evil")))
        .encode(&mut buf, header_version)
        .unwrap();
    buf
}

fn assert_malformed(frame: Bytes) {
    match decode_request(frame) {
        Err(RequestError::Malformed { correlation_id, .. }) => assert_eq!(correlation_id, 99),
        other => panic!("expected Malformed, found {other:?}"),
    }
}

#[test]
fn metadata_with_a_huge_topic_count_is_refused_not_allocated() {
    // Metadata v1: header v1, then topics: int32 count = i32::MAX and nothing else.
    let mut frame = header(3, 1, 1);
    frame.put_i32(i32::MAX);
    assert_malformed(frame.freeze());
    // The flexible flavour: compact array count = u32::MAX as a varint.
    let mut frame = header(3, 12, 2);
    frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_malformed(frame.freeze());
}

#[test]
fn short_headers_are_truncated_not_panics() {
    for len in 0..8 {
        let frame = Bytes::from(vec![0u8; len]);
        assert_eq!(decode_request(frame), Err(RequestError::Truncated { len }));
    }
}

#[test]
fn unknown_keys_and_unsupported_versions_keep_the_correlation_id() {
    let mut frame = BytesMut::new();
    frame.put_i16(999);
    frame.put_i16(0);
    frame.put_i32(7);
    assert_eq!(
        decode_request(frame.freeze()),
        Err(RequestError::UnknownApiKey {
            api_key: 999,
            correlation_id: 7
        })
    );
    for (key, version) in [
        (18, 5),
        (3, 13),
        (1, 3),
        (0, 0),
        (0, 2),
        (0, 12),
        (24, 4),
        (26, 5),
    ] {
        let mut frame = BytesMut::new();
        frame.put_i16(key);
        frame.put_i16(version);
        frame.put_i32(8);
        let err = decode_request(frame.freeze()).unwrap_err();
        assert!(
            matches!(
                err,
                RequestError::UnsupportedVersion {
                    correlation_id: 8,
                    ..
                }
            ),
            "{key} v{version}: {err:?}"
        );
        assert_eq!(err.kafka_error_code(), 35);
    }
}

#[test]
fn lengths_beyond_the_frame_and_overlong_varints_are_malformed() {
    // Non-flexible string length past the end (client_id in header v1).
    let mut frame = BytesMut::new();
    frame.put_i16(3);
    frame.put_i16(1);
    frame.put_i32(99);
    frame.put_i16(i16::MAX);
    assert_malformed(frame.freeze());
    // Negative (not -1) lengths.
    let mut frame = header(3, 1, 1);
    frame.put_i32(-2);
    assert_malformed(frame.freeze());
    // A varint with six continuation bytes.
    let mut frame = header(3, 12, 2);
    frame.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert_malformed(frame.freeze());
    // Tagged section claiming u32::MAX fields of u32::MAX bytes.
    let mut frame = header(18, 3, 2);
    frame.extend_from_slice(&[0x01, b'a', 0x01, b'b']);
    frame.extend_from_slice(&[
        0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f,
    ]);
    assert_malformed(frame.freeze());
    // A known tagged field whose content overruns its declared size (Fetch v12 cluster_id).
    let mut frame = header(1, 12, 2);
    frame.put_i32(-1); // replica_id
    frame.put_i32(500); // max_wait_ms
    frame.put_i32(1); // min_bytes
    frame.put_i32(1 << 20); // max_bytes
    frame.put_i8(0); // isolation_level
    frame.put_i32(0); // session_id
    frame.put_i32(-1); // session_epoch
    frame.put_u8(1); // topics: empty
    frame.put_u8(1); // forgotten: empty
    frame.put_u8(1); // rack_id: ""
    frame.extend_from_slice(&[0x01, 0x00, 0x01, 0x05, b'a', b'b', b'c', b'd']); // tag 0, size 1, string of 4
    assert_malformed(frame.freeze());
}

fn metadata_v(version: i16) -> Bytes {
    let body = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("orders")))),
            MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("payments")))),
        ]))
        // Non-default where the version carries it; v0-3 only allow the default (true).
        .with_allow_auto_topic_creation(version < 4);
    let header_version = ApiKey::Metadata.request_header_version(version);
    let mut frame = header(3, version, header_version);
    RequestKind::Metadata(body)
        .encode(&mut frame, version)
        .unwrap();
    frame.freeze()
}

#[test]
fn every_truncation_and_count_mutation_of_a_valid_request_is_an_error() {
    for version in 0..=12 {
        let frame = metadata_v(version);
        assert!(decode_request(frame.clone()).is_ok(), "v{version}");
        for cut in 0..frame.len() {
            assert!(
                decode_request(frame.slice(..cut)).is_err(),
                "v{version} cut {cut}"
            );
        }
        // Overwrite every 4-byte window with i32::MAX and every byte with 0xff: may decode
        // (if it hit a plain integer) but must not panic or abort.
        for at in 0..frame.len().saturating_sub(4) {
            let mut m = frame.to_vec();
            m[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
            let _ = decode_request(Bytes::from(m));
            let mut m = frame.to_vec();
            m[at] = 0xff;
            let _ = decode_request(Bytes::from(m));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_request(Bytes::from(bytes));
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_prefix_never_panic(
        key_index in 0usize..strata_protocol::versions::SUPPORTED.len(),
        version_offset in 0i16..20,
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let range = strata_protocol::versions::SUPPORTED[key_index];
        let version = range.min + version_offset % (range.max - range.min + 1);
        let mut frame = header(range.api_key as i16, version, range.api_key.request_header_version(version));
        frame.extend_from_slice(&body);
        let _ = decode_request(frame.freeze());
    }

    #[test]
    fn mutated_valid_requests_never_panic(
        version in 0i16..=12,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut m = metadata_v(version).to_vec();
        for (at, byte) in edits {
            let i = at.index(m.len());
            m[i] = byte;
        }
        let _ = decode_request(Bytes::from(m));
    }
}
