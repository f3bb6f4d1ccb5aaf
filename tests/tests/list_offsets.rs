//! ListOffsets at every version Strata advertises (v1-v10; the Java client 4.x asks v10):
//! earliest, latest and by timestamp, over a real socket after kcat produced the records.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strata_tests::{run_kcat, Broker, RawConnection};

const TIMEOUT: Duration = Duration::from_secs(10);
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

#[test]
fn every_advertised_version_answers_earliest_latest_and_by_timestamp() {
    let broker = Broker::start_with(&[("auto.create.topics.enable", "true")]);
    let bootstrap = broker.bootstrap();
    let out = run_kcat(
        &[
            "-b", &bootstrap, "-t", "offsets", "-P", "-p", "0", "-X", "acks=all",
        ],
        Some(b"a\nb\nc\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    let versions = conn.api_versions(TIMEOUT).unwrap();
    let max = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ListOffsets as i16)
        .unwrap()
        .max_version;
    assert_eq!(max, 10);
    for version in 1..=max {
        for (timestamp, expected) in [(EARLIEST, 0), (LATEST, 3), (0, 0)] {
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("offsets")))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(timestamp)])])
                .with_timeout_ms(if version >= 10 { 5_000 } else { 0 });
            let id = conn
                .send_request(ApiKey::ListOffsets, version, &request)
                .unwrap();
            let response: ListOffsetsResponse = conn
                .read_response(ApiKey::ListOffsets, version, id, TIMEOUT)
                .unwrap();
            let p = &response.topics[0].partitions[0];
            assert_eq!(
                (p.error_code, p.offset),
                (0, expected),
                "v{version} timestamp {timestamp}: {p:?}"
            );
        }
    }
}
