//! Pipelined requests on one connection, sent in one write: the replies come back in request
//! order, and a reply never waits behind a later request's long poll (the broker writes
//! replies of requests that arrived together in one go, but not when one of them waits).

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use bytes::BytesMut;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strata_tests::wire::{api_versions_request, encode_request};
use strata_tests::{Broker, RawConnection};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Length-prefixed frames, back to back, as one buffer to send in one write.
fn burst(frames: &[BytesMut]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
        out.extend_from_slice(frame);
    }
    out
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let broker = Broker::start();
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    let frames: Vec<BytesMut> = (1..=20)
        .map(|id| encode_request(ApiKey::ApiVersions, 3, id, &api_versions_request()).unwrap())
        .collect();
    conn.send_raw(&burst(&frames)).unwrap();
    for id in 1..=20 {
        // read_response checks the correlation id: the replies keep the requests' order.
        let response: ApiVersionsResponse = conn
            .read_response(ApiKey::ApiVersions, 3, id, TIMEOUT)
            .unwrap();
        assert_eq!(response.error_code, 0);
    }
}

#[test]
fn a_reply_does_not_wait_behind_a_long_polling_fetch() {
    let broker = Broker::start();
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    conn.create_topics(&[("quiet", 1)], TIMEOUT).unwrap();
    let long_poll = Duration::from_millis(3000);
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(long_poll.as_millis() as i32)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("quiet")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let metadata = MetadataRequest::default().with_topics(None);
    let frames = [
        encode_request(ApiKey::Metadata, 12, 1, &metadata).unwrap(),
        encode_request(ApiKey::Fetch, 12, 2, &fetch).unwrap(),
    ];
    let sent = Instant::now();
    conn.send_raw(&burst(&frames)).unwrap();

    let _: MetadataResponse = conn
        .read_response(ApiKey::Metadata, 12, 1, TIMEOUT)
        .unwrap();
    let metadata_after = sent.elapsed();
    let fetched: FetchResponse = conn.read_response(ApiKey::Fetch, 12, 2, TIMEOUT).unwrap();
    let fetch_after = sent.elapsed();

    // The Fetch really waited (nothing to read), so the Metadata reply had something to
    // wait behind; it must not have.
    assert_eq!(fetched.error_code, 0);
    assert!(
        fetch_after >= long_poll - Duration::from_millis(100),
        "the fetch long-polled: answered after {fetch_after:?}"
    );
    assert!(
        metadata_after < long_poll / 2,
        "the Metadata reply came {metadata_after:?} after sending, behind the fetch's wait"
    );
}
