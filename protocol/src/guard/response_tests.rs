//! Proves the response shapes against the codec, as `tests` does for requests: for every
//! (api, version) a shape is checked for, a body laid out from the shape (two-element arrays,
//! distinct values, known and unknown tagged fields) is decoded by kafka-protocol into a
//! populated response, whose own encoding must be those very bytes and pass the guard. Default
//! responses (nulls, empty arrays) encoded by the codec must pass too, and hostile counts not.

use super::dsl::Shape;
use super::response_shapes::{ALL, CONSUMER_PROTOCOL_ASSIGNMENT, CONSUMER_PROTOCOL_SUBSCRIPTION};
use super::tests::shaped_body;
use super::{check_consumer_protocol, check_response, check_response_frame};
use super::{ConsumerProtocol, GuardError};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};

const CORRELATION_ID: i32 = 4242;

fn body_for(shape: &Shape, version: i16) -> Vec<u8> {
    shaped_body(shape.fields, version, version >= shape.flexible_from)
}

/// A response frame (no size prefix): the codec's header for `api_key`/`version` (with an
/// unknown tagged field when the header has a tagged section), then `body`.
fn frame_for(api_key: ApiKey, version: i16, body: &[u8]) -> (Bytes, usize) {
    let header_version = api_key.response_header_version(version);
    let mut header = ResponseHeader::default().with_correlation_id(CORRELATION_ID);
    if header_version >= 1 {
        header = header.with_unknown_tagged_field(7, Bytes::from_static(b"hdr"));
    }
    let mut buf = BytesMut::new();
    header.encode(&mut buf, header_version).unwrap();
    let start = buf.len();
    buf.extend_from_slice(body);
    (buf.freeze(), start)
}

/// Every (api key, shape, version) the guard checks responses for.
fn checked_versions() -> impl Iterator<Item = (ApiKey, &'static Shape, i16)> {
    ALL.iter().flat_map(|(api_key, shape)| {
        (shape.versions.min..=shape.versions.max).map(move |v| (*api_key, shape, v))
    })
}

#[test]
fn response_shapes_match_the_codec_for_every_checked_version() {
    let mut checked = 0;
    for (api_key, shape, version) in checked_versions() {
        let what = format!("{api_key:?} v{version}");
        let shaped = body_for(shape, version);

        // The codec reads every shaped byte into a populated response...
        let mut rest = Bytes::from(shaped.clone());
        let response = ResponseKind::decode(api_key, &mut rest, version)
            .unwrap_or_else(|e| panic!("{what}: decode of the shaped body failed: {e:#}"));
        assert!(
            rest.is_empty(),
            "{what}: codec left {} bytes the shape wrote",
            rest.len()
        );
        // ...whose own encoding is exactly those bytes, which the guard accepts whole.
        let mut encoded = BytesMut::new();
        response.encode(&mut encoded, version).unwrap();
        assert_eq!(
            &encoded[..],
            &shaped[..],
            "{what}: the codec's encoding differs from the shaped bytes"
        );
        let (frame, _) = frame_for(api_key, version, &encoded);
        let end = check_response_frame(&frame, api_key, version)
            .unwrap_or_else(|e| panic!("{what}: guard refused the codec's encoding: {e}"));
        assert_eq!(end, frame.len(), "{what}: guard stopped early");
        checked += 1;
    }
    assert!(checked > 100, "only {checked} (api, version) pairs checked");
}

/// A default response of `api_key`: nulls where the codec's defaults are null, empty arrays.
fn default_response(api_key: ApiKey) -> ResponseKind {
    match api_key {
        ApiKey::ApiVersions => ResponseKind::ApiVersions(Default::default()),
        ApiKey::Metadata => ResponseKind::Metadata(Default::default()),
        ApiKey::Produce => ResponseKind::Produce(Default::default()),
        ApiKey::Fetch => ResponseKind::Fetch(Default::default()),
        ApiKey::ListOffsets => ResponseKind::ListOffsets(Default::default()),
        ApiKey::CreateTopics => ResponseKind::CreateTopics(Default::default()),
        ApiKey::InitProducerId => ResponseKind::InitProducerId(Default::default()),
        ApiKey::FindCoordinator => ResponseKind::FindCoordinator(Default::default()),
        ApiKey::JoinGroup => ResponseKind::JoinGroup(Default::default()),
        ApiKey::SyncGroup => ResponseKind::SyncGroup(Default::default()),
        ApiKey::Heartbeat => ResponseKind::Heartbeat(Default::default()),
        ApiKey::LeaveGroup => ResponseKind::LeaveGroup(Default::default()),
        ApiKey::OffsetCommit => ResponseKind::OffsetCommit(Default::default()),
        ApiKey::OffsetFetch => ResponseKind::OffsetFetch(Default::default()),
        ApiKey::SaslHandshake => ResponseKind::SaslHandshake(Default::default()),
        ApiKey::SaslAuthenticate => ResponseKind::SaslAuthenticate(Default::default()),
        ApiKey::OffsetForLeaderEpoch => ResponseKind::OffsetForLeaderEpoch(Default::default()),
        other => panic!("no default response written for {other:?}"),
    }
}

#[test]
fn default_responses_encoded_by_the_codec_pass_the_guard() {
    for (api_key, _, version) in checked_versions() {
        let mut body = BytesMut::new();
        default_response(api_key)
            .encode(&mut body, version)
            .unwrap_or_else(|e| panic!("{api_key:?} v{version}: encode failed: {e:#}"));
        let (frame, _) = frame_for(api_key, version, &body);
        let end = check_response_frame(&frame, api_key, version)
            .unwrap_or_else(|e| panic!("{api_key:?} v{version}: guard refused: {e}"));
        assert_eq!(
            end,
            frame.len(),
            "{api_key:?} v{version}: guard stopped early"
        );
    }
}

#[test]
fn every_cut_of_every_shaped_response_is_refused_by_the_guard() {
    for (api_key, shape, version) in checked_versions() {
        let (frame, _) = frame_for(api_key, version, &body_for(shape, version));
        for cut in 0..frame.len() {
            assert!(
                check_response(&frame[..cut], api_key, version).is_err(),
                "{api_key:?} v{version} cut at {cut} of {} accepted",
                frame.len()
            );
        }
    }
}

#[test]
fn response_headers_follow_the_schemas_flexible_versions_but_api_versions_keeps_v0() {
    for (api_key, shape, version) in checked_versions() {
        let flexible = version >= shape.flexible_from && api_key != ApiKey::ApiVersions;
        assert_eq!(
            api_key.response_header_version(version),
            i16::from(flexible),
            "{api_key:?} v{version}"
        );
    }
    // KIP-511: an ApiVersions v3 response is flexible, its header is not. A header tagged
    // section read into it would swallow the error code; the guard reads what the codec reads.
    let mut frame = BytesMut::new();
    frame.put_i32(CORRELATION_ID);
    let mut body = BytesMut::new();
    default_response(ApiKey::ApiVersions)
        .encode(&mut body, 3)
        .unwrap();
    frame.extend_from_slice(&body);
    assert_eq!(
        check_response_frame(&frame, ApiKey::ApiVersions, 3),
        Ok(frame.len())
    );
}

/// The header and the start of a body whose first field is an array claiming i32::MAX
/// elements (int32 count, or compact count i32::MAX + 1 in flexible versions).
fn claiming_i32_max(api_key: ApiKey, version: i16, before_array: &[u8]) -> Vec<u8> {
    let mut frame = BytesMut::new();
    frame.put_i32(CORRELATION_ID);
    if api_key.response_header_version(version) >= 1 {
        frame.put_u8(0); // no header tagged fields
    }
    frame.extend_from_slice(before_array);
    let flexible = ALL
        .iter()
        .any(|(k, s)| *k == api_key && version >= s.flexible_from);
    if flexible {
        // unsigned varint of 2^31 (count + 1)
        frame.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x08]);
    } else {
        frame.put_i32(i32::MAX);
    }
    frame.extend_from_slice(&[0; 16]);
    frame.to_vec()
}

#[test]
fn arrays_claiming_i32_max_elements_are_refused() {
    let cases: &[(ApiKey, i16, &[u8])] = &[
        // error_code, then api_keys
        (ApiKey::ApiVersions, 0, &[0, 0]),
        (ApiKey::ApiVersions, 3, &[0, 0]),
        // throttle_time_ms, then brokers
        (ApiKey::Metadata, 1, &[]),
        (ApiKey::Metadata, 12, &[0, 0, 0, 0]),
        // responses first
        (ApiKey::Produce, 3, &[]),
        (ApiKey::Produce, 12, &[]),
        // throttle_time_ms, error_code, session_id, then responses
        (ApiKey::Fetch, 7, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        (ApiKey::Fetch, 12, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        // error_code, then mechanisms ([]string)
        (ApiKey::SaslHandshake, 1, &[0, 0]),
    ];
    for (api_key, version, before) in cases {
        let frame = claiming_i32_max(*api_key, *version, before);
        match check_response(&frame, *api_key, *version) {
            Err(GuardError::ArrayTooLong { count, .. }) => {
                assert_eq!(count, i32::MAX as u64, "{api_key:?} v{version}")
            }
            other => panic!("{api_key:?} v{version}: expected ArrayTooLong, found {other:?}"),
        }
    }
}

#[test]
fn short_frames_and_unshaped_responses_are_errors() {
    for len in 0..4 {
        assert!(matches!(
            check_response(&[0u8; 4][..len], ApiKey::Metadata, 1),
            Err(GuardError::Truncated { .. })
        ));
    }
    assert_eq!(
        check_response(&[0; 64], ApiKey::Produce, 13),
        Err(GuardError::UnsupportedVersion {
            message: "ProduceResponse",
            version: 13,
            min: 3,
            max: 12
        })
    );
    assert_eq!(
        check_response(&[0; 64], ApiKey::DescribeGroups, 0),
        Err(GuardError::NoResponseShape {
            api_key: ApiKey::DescribeGroups
        })
    );
}

#[test]
fn consumer_protocol_shapes_match_the_codec() {
    for (message, shape) in [
        (
            ConsumerProtocol::Subscription,
            &CONSUMER_PROTOCOL_SUBSCRIPTION,
        ),
        (ConsumerProtocol::Assignment, &CONSUMER_PROTOCOL_ASSIGNMENT),
    ] {
        for version in shape.versions.min..=shape.versions.max {
            let what = format!("{message:?} v{version}");
            let body = body_for(shape, version);
            assert_eq!(
                check_consumer_protocol(&body, message, version),
                Ok(body.len()),
                "{what}"
            );
            let mut rest = Bytes::from(body.clone());
            let mut again = BytesMut::new();
            match message {
                ConsumerProtocol::Subscription => {
                    ConsumerProtocolSubscription::decode(&mut rest, version)
                        .unwrap()
                        .encode(&mut again, version)
                        .unwrap();
                }
                ConsumerProtocol::Assignment => {
                    ConsumerProtocolAssignment::decode(&mut rest, version)
                        .unwrap()
                        .encode(&mut again, version)
                        .unwrap();
                }
            }
            assert!(rest.is_empty(), "{what}: codec left {} bytes", rest.len());
            assert_eq!(&again[..], &body[..], "{what}: re-encoding differs");
            for cut in 0..body.len() {
                assert!(
                    check_consumer_protocol(&body[..cut], message, version).is_err(),
                    "{what}: cut at {cut} accepted"
                );
            }
        }
    }
    // A subscription whose topics claim i32::MAX names, and an unknown version.
    let mut hostile = i32::MAX.to_be_bytes().to_vec();
    hostile.extend_from_slice(&[0; 8]);
    assert!(matches!(
        check_consumer_protocol(&hostile, ConsumerProtocol::Subscription, 0),
        Err(GuardError::ArrayTooLong { .. })
    ));
    assert!(matches!(
        check_consumer_protocol(&hostile, ConsumerProtocol::Assignment, 4),
        Err(GuardError::UnsupportedVersion { .. })
    ));
}
