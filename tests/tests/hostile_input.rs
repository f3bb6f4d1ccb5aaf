//! Hostile bytes on a raw socket: each case must end in an error response or a closed
//! connection, after which the broker still serves fresh and already-open connections and
//! its memory stays bounded.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use bytes::BufMut;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use strata_tests::wire::{probe_api_versions, raw_request_header};
use strata_tests::{Broker, FrameOutcome, RawConnection};

/// The RSS a broker may reach after any hostile case (it holds nothing but a few connections).
const RSS_BOUND_KIB: u64 = 500 * 1024;
/// How long the broker may take to answer or drop a hostile connection.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(10);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A broker plus a well-behaved connection opened (and used) before the hostile input.
struct Scene {
    broker: Broker,
    bystander: RawConnection,
}

impl Scene {
    fn new() -> Scene {
        let broker = Broker::start();
        let mut bystander = RawConnection::connect(broker.addr()).unwrap();
        bystander
            .api_versions(RESPONSE_TIMEOUT)
            .expect("the bystander connection gets an ApiVersions answer before the attack");
        Scene { broker, bystander }
    }

    fn attacker(&self) -> RawConnection {
        RawConnection::connect(self.broker.addr()).unwrap()
    }

    /// The broker is alive, answers a fresh connection and the bystander, and its RSS is bounded.
    fn assert_unharmed(&mut self, case: &str) {
        self.broker.assert_running(case);
        probe_api_versions(self.broker.addr(), RESPONSE_TIMEOUT).unwrap_or_else(|e| {
            panic!("after {case}: a fresh connection got no ApiVersions answer: {e:#}")
        });
        self.bystander
            .api_versions(RESPONSE_TIMEOUT)
            .unwrap_or_else(|e| {
                panic!("after {case}: the already-open connection was disturbed: {e:#}")
            });
        let rss = self.broker.rss_kib();
        assert!(
            rss < RSS_BOUND_KIB,
            "after {case}: broker RSS is {rss} KiB, expected below {RSS_BOUND_KIB} KiB"
        );
    }
}

/// The attacker connection must be answered or closed, not left hanging.
fn assert_answered_or_closed(conn: &mut RawConnection, case: &str) -> FrameOutcome {
    let outcome = conn.answered_or_closed(VERDICT_TIMEOUT);
    assert_ne!(
        outcome,
        FrameOutcome::TimedOut,
        "{case}: expected an error response or a closed connection within {VERDICT_TIMEOUT:?}, got neither"
    );
    outcome
}

#[test]
fn garbage_frame_is_refused_and_broker_survives() {
    let mut scene = Scene::new();
    let mut conn = scene.attacker();
    let garbage: Vec<u8> = (0u32..64)
        .map(|i| (i.wrapping_mul(0x9e) ^ 0xa5) as u8)
        .collect();
    conn.send_frame(&garbage).unwrap();
    assert_answered_or_closed(&mut conn, "a frame of garbage");
    scene.assert_unharmed("a frame of garbage");
}

#[test]
fn frame_claiming_2gib_is_closed_without_allocating() {
    let mut scene = Scene::new();
    let mut conn = scene.attacker();
    conn.send_raw(&0x7fff_ffffu32.to_be_bytes()).unwrap();
    // Keep feeding it: a broker that buffers toward the claimed size shows up in RSS.
    let chunk = vec![0x41u8; 1024 * 1024];
    for _ in 0..16 {
        if conn.send_raw(&chunk).is_err() {
            break; // closed on us: the expected outcome
        }
    }
    let outcome = conn.answered_or_closed(VERDICT_TIMEOUT);
    assert_eq!(
        outcome,
        FrameOutcome::Closed,
        "a frame claiming 2 GiB (over socket.request.max.bytes) must be refused by closing the connection"
    );
    scene.assert_unharmed("a frame claiming 2 GiB");
}

#[test]
fn negative_frame_length_is_closed() {
    let mut scene = Scene::new();
    let mut conn = scene.attacker();
    conn.send_raw(&(-5i32).to_be_bytes()).unwrap();
    let outcome = conn.answered_or_closed(VERDICT_TIMEOUT);
    assert_eq!(
        outcome,
        FrameOutcome::Closed,
        "a negative frame length must close the connection"
    );
    scene.assert_unharmed("a negative frame length");
}

#[test]
fn two_byte_request_header_is_refused() {
    let mut scene = Scene::new();
    let mut conn = scene.attacker();
    // A complete frame whose whole content is 2 bytes: shorter than any request header.
    conn.send_frame(&[0x00, 0x12]).unwrap();
    assert_answered_or_closed(&mut conn, "a 2-byte request header");
    scene.assert_unharmed("a 2-byte request header");
}

#[test]
fn metadata_with_huge_topics_array_count_is_refused() {
    let mut scene = Scene::new();
    let mut conn = scene.attacker();
    // Metadata v4 (not flexible): topics is an INT32-counted array.
    let mut frame = raw_request_header(ApiKey::Metadata as i16, 4, 7, false);
    frame.put_i32(0x7fff_ffff);
    conn.send_frame(&frame).unwrap();
    assert_answered_or_closed(&mut conn, "Metadata v4 with 0x7fffffff topics");
    scene.assert_unharmed("Metadata v4 with 0x7fffffff topics");
}

#[test]
fn metadata_with_huge_compact_array_varint_is_refused() {
    let mut scene = Scene::new();
    let mut conn = scene.attacker();
    // Metadata v12 (flexible): topics is a COMPACT_ARRAY, length+1 as an unsigned varint.
    let mut frame = raw_request_header(ApiKey::Metadata as i16, 12, 8, true);
    frame.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // varint 0xffffffff
    conn.send_frame(&frame).unwrap();
    assert_answered_or_closed(&mut conn, "Metadata v12 with a huge compact-array varint");
    scene.assert_unharmed("Metadata v12 with a huge compact-array varint");

    // An over-long varint (more than 5 bytes) must not be accepted either.
    let mut conn = scene.attacker();
    let mut frame = raw_request_header(ApiKey::Metadata as i16, 12, 9, true);
    frame.put_slice(&[0xff; 12]);
    conn.send_frame(&frame).unwrap();
    assert_answered_or_closed(&mut conn, "Metadata v12 with a 12-byte varint");
    scene.assert_unharmed("Metadata v12 with a 12-byte varint");
}

#[test]
fn unknown_api_key_is_refused() {
    let mut scene = Scene::new();
    let mut conn = scene.attacker();
    let frame = raw_request_header(0x7777, 0, 10, false);
    conn.send_frame(&frame).unwrap();
    assert_answered_or_closed(&mut conn, "an unknown API key");
    scene.assert_unharmed("an unknown API key");
}

#[test]
fn unsupported_metadata_version_is_refused() {
    let mut scene = Scene::new();
    let mut conn = scene.attacker();
    let frame = raw_request_header(ApiKey::Metadata as i16, 99, 11, true);
    conn.send_frame(&frame).unwrap();
    assert_answered_or_closed(&mut conn, "Metadata v99");
    scene.assert_unharmed("Metadata v99");
}

#[test]
fn api_versions_v127_gets_v0_error_response_listing_ranges() {
    let mut scene = Scene::new();
    let mut conn = scene.attacker();
    // KIP-511: a too-new ApiVersions request is answered with a v0-shaped body carrying
    // UNSUPPORTED_VERSION (35) and at least ApiVersions' own range (all Kafka lists), so the
    // client can retry with a version both sides know.
    let mut frame = raw_request_header(ApiKey::ApiVersions as i16, 127, 42, true);
    frame.put_u8(1); // client_software_name: empty compact string
    frame.put_u8(1); // client_software_version: empty compact string
    frame.put_u8(0); // no tagged fields
    conn.send_frame(&frame).unwrap();
    let mut body = match conn.read_frame(RESPONSE_TIMEOUT) {
        FrameOutcome::Frame(body) => body,
        other => panic!("ApiVersions v127 must be answered (KIP-511), got {other:?}"),
    };
    let header = ResponseHeader::decode(&mut body, 0).unwrap();
    assert_eq!(
        header.correlation_id, 42,
        "correlation id of the ApiVersions v127 answer"
    );
    let response = ApiVersionsResponse::decode(&mut body, 0)
        .expect("the answer to ApiVersions v127 decodes as an ApiVersions v0 body");
    assert_eq!(response.error_code, 35, "expected UNSUPPORTED_VERSION (35)");
    let api_versions = response
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .expect("the ranges list ApiVersions itself");
    assert_eq!(api_versions.min_version, 0);
    assert!(
        api_versions.max_version >= 3,
        "ApiVersions max version {} (clients expect >= 3)",
        api_versions.max_version
    );
    scene.assert_unharmed("ApiVersions v127");
}

#[test]
fn many_partial_frames_do_not_grow_memory() {
    let mut scene = Scene::new();
    // 64 connections each claim a 90 MiB frame (under the 100 MiB default limit) and send
    // 1 MiB of it: a broker that preallocates the claimed size would need ~5.6 GiB.
    let mut attackers = Vec::new();
    for _ in 0..64 {
        let mut conn = scene.attacker();
        let mut bytes = (90i32 * 1024 * 1024).to_be_bytes().to_vec();
        bytes.extend(std::iter::repeat_n(0u8, 1024 * 1024));
        if conn.send_raw(&bytes).is_ok() {
            attackers.push(conn);
        }
    }
    scene.assert_unharmed("64 connections each partway through a 90 MiB frame");
    drop(attackers);
    scene.assert_unharmed("64 half-sent 90 MiB frames abandoned");
}
