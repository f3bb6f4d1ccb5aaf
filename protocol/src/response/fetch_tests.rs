//! The chunked Fetch encoder against kafka-protocol's own encoding (via `encode_response`): same
//! bytes for every version and layout, records shared rather than copied, few chunks.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchResponse, FetchableTopicResponse, LeaderIdAndEpoch,
    NodeEndpoint, PartitionData, SnapshotId,
};
use kafka_protocol::messages::{ApiKey, BrokerId, ProducerId, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use proptest::prelude::*;

use super::encode_fetch_response_chunks;
use crate::response::{encode_response, EncodeError};

/// Every version kafka-protocol can encode (Strata advertises 4..=17).
const VERSIONS: std::ops::RangeInclusive<i16> = 4..=18;

fn records(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| seed.wrapping_add(i as u8))
            .collect::<Vec<u8>>(),
    )
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn tags(keys: &[i32]) -> BTreeMap<i32, Bytes> {
    keys.iter()
        .map(|&k| (k, Bytes::from(vec![k as u8; (k as usize % 3) + 1])))
        .collect()
}

/// A partition with every field the version can carry set to a non-default value.
fn rich_partition(version: i16, index: i32, records: Option<Bytes>) -> PartitionData {
    let mut p = PartitionData::default()
        .with_partition_index(index)
        .with_error_code(0)
        .with_high_watermark(1_000 + i64::from(index))
        .with_last_stable_offset(990)
        .with_log_start_offset(7)
        .with_aborted_transactions(Some(vec![
            AbortedTransaction::default()
                .with_producer_id(ProducerId(42))
                .with_first_offset(500),
            AbortedTransaction::default()
                .with_producer_id(ProducerId(43))
                .with_first_offset(600),
        ]))
        .with_records(records);
    if version >= 11 {
        p = p.with_preferred_read_replica(BrokerId(2));
    }
    if version >= 12 {
        p = p
            .with_diverging_epoch(EpochEndOffset::default().with_epoch(3).with_end_offset(77))
            .with_current_leader(
                LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(1))
                    .with_leader_epoch(4),
            )
            .with_snapshot_id(SnapshotId::default().with_end_offset(50).with_epoch(2))
            .with_unknown_tagged_fields(tags(&[3, 9, 200]));
        if let Some(aborted) = p.aborted_transactions.as_mut().and_then(|a| a.first_mut()) {
            aborted.unknown_tagged_fields = tags(&[1]);
        }
    }
    p
}

fn topic(version: i16, name: &str, partitions: Vec<PartitionData>) -> FetchableTopicResponse {
    let mut t = FetchableTopicResponse::default()
        .with_topic(topic_name(name))
        .with_topic_id(uuid::Uuid::from_u128(
            0x1234_5678_9abc_def0_1122_3344_5566_7788,
        ))
        .with_partitions(partitions);
    if version >= 12 {
        t = t.with_unknown_tagged_fields(tags(&[0, 5]));
    }
    t
}

fn response(version: i16, topics: Vec<FetchableTopicResponse>) -> FetchResponse {
    let mut r = FetchResponse::default()
        .with_throttle_time_ms(25)
        .with_responses(topics);
    if version >= 7 {
        r = r.with_error_code(0).with_session_id(12345);
    }
    if version >= 12 {
        r = r.with_unknown_tagged_fields(tags(&[1, 300]));
    }
    if version >= 16 {
        r = r.with_node_endpoints(vec![
            NodeEndpoint::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("broker-1.example"))
                .with_port(9092)
                .with_rack(Some(StrBytes::from_static_str("rack-a"))),
            NodeEndpoint::default()
                .with_node_id(BrokerId(2))
                .with_host(StrBytes::from_static_str("broker-2.example"))
                .with_port(9093),
        ]);
    }
    r
}

/// The non-empty records of `resp`, in encoding order.
fn shared_records(resp: &FetchResponse) -> Vec<Bytes> {
    resp.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.clone())
        .filter(|r| !r.is_empty())
        .collect()
}

/// Asserts everything the chunked encoder promises for one response; returns the chunks.
fn check(version: i16, resp: &FetchResponse) -> Vec<Bytes> {
    let correlation_id = 0x0102_0304 ^ i32::from(version);
    let expected = encode_response(
        correlation_id,
        ApiKey::Fetch,
        version,
        &ResponseKind::Fetch(resp.clone()),
    )
    .unwrap();
    let chunks = encode_fetch_response_chunks(correlation_id, version, resp).unwrap();
    let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    assert_eq!(joined, &expected[..], "v{version}: bytes differ");

    let shared = shared_records(resp);
    let passed_through: Vec<(*const u8, usize)> = chunks
        .iter()
        .filter(|c| {
            shared
                .iter()
                .any(|r| r.as_ptr() == c.as_ptr() && r.len() == c.len())
        })
        .map(|c| (c.as_ptr(), c.len()))
        .collect();
    let wanted: Vec<(*const u8, usize)> = shared.iter().map(|r| (r.as_ptr(), r.len())).collect();
    assert_eq!(
        passed_through, wanted,
        "v{version}: every non-empty records must be its own chunk, in order, not a copy"
    );
    assert!(
        chunks.len() <= 2 * shared.len() + 1,
        "v{version}: {} chunks for {} records",
        chunks.len(),
        shared.len()
    );
    assert!(
        chunks.iter().all(|c| !c.is_empty()),
        "v{version}: empty chunk"
    );
    chunks
}

#[test]
fn empty_response_matches_in_every_version() {
    for version in VERSIONS {
        let chunks = check(version, &response(version, vec![]));
        assert_eq!(chunks.len(), 1);
        // Also the all-default response, with no tagged fields at all.
        check(version, &FetchResponse::default());
    }
}

#[test]
fn one_partition_with_records_matches_in_every_version() {
    for version in VERSIONS {
        let resp = response(
            version,
            vec![topic(
                version,
                "orders",
                vec![rich_partition(version, 0, Some(records(100, 1)))],
            )],
        );
        let chunks = check(version, &resp);
        // Before v12 the records are the very last bytes of the frame: nothing follows them.
        let expected = if version >= 12 { 3 } else { 2 };
        assert_eq!(chunks.len(), expected, "v{version}: head, records, tail");
    }
}

#[test]
fn topics_without_partitions_and_partitions_without_records_match() {
    for version in VERSIONS {
        let resp = response(
            version,
            vec![
                topic(version, "empty-topic", vec![]),
                topic(
                    version,
                    "no-records",
                    vec![
                        rich_partition(version, 0, None),
                        rich_partition(version, 1, Some(Bytes::new())),
                    ],
                ),
            ],
        );
        let chunks = check(version, &resp);
        assert_eq!(chunks.len(), 1, "v{version}: nothing to share, one chunk");
    }
}

#[test]
fn many_topics_and_mixed_partitions_match_in_every_version() {
    for version in VERSIONS {
        let mut errored = rich_partition(version, 3, None).with_error_code(6); // NOT_LEADER
        errored.aborted_transactions = None;
        let mut no_aborted = rich_partition(version, 4, Some(records(1, 9)));
        no_aborted.aborted_transactions = None;
        let mut empty_aborted = rich_partition(version, 5, Some(records(17, 3)));
        empty_aborted.aborted_transactions = Some(vec![]);
        let plain = PartitionData::default()
            .with_partition_index(6)
            .with_records(Some(records(64, 4)));
        let resp = response(
            version,
            vec![
                topic(
                    version,
                    "a",
                    vec![
                        rich_partition(version, 0, Some(records(300, 5))),
                        rich_partition(version, 1, None),
                        rich_partition(version, 2, Some(records(20_000, 6))),
                        errored,
                    ],
                ),
                topic(version, "b", vec![]),
                topic(
                    version,
                    "c-with-a-longer-name",
                    vec![no_aborted, empty_aborted, plain],
                ),
            ],
        );
        check(version, &resp);
    }
}

#[test]
fn records_chunks_are_slices_of_the_callers_buffer() {
    // As from a mapped segment: several partitions' records are slices of one buffer.
    let segment = records(4096, 0);
    for version in VERSIONS {
        let slices = [
            segment.slice(0..1000),
            segment.slice(1000..1001),
            segment.slice(2000..4096),
        ];
        let resp = response(
            version,
            vec![topic(
                version,
                "t",
                slices
                    .iter()
                    .enumerate()
                    .map(|(i, s)| rich_partition(version, i as i32, Some(s.clone())))
                    .collect(),
            )],
        );
        let chunks = check(version, &resp);
        for slice in &slices {
            assert!(
                chunks
                    .iter()
                    .any(|c| c.as_ptr() == slice.as_ptr() && c.len() == slice.len()),
                "v{version}: the slice at {:p} was copied",
                slice.as_ptr()
            );
        }
        // Head, then (records, fields up to the next records) per partition; before v12 nothing
        // follows the last records.
        let expected = 2 * slices.len() + usize::from(version >= 12);
        assert_eq!(chunks.len(), expected, "v{version}");
    }
}

#[test]
fn size_prefix_counts_every_chunk() {
    for version in VERSIONS {
        let resp = response(
            version,
            vec![topic(
                version,
                "t",
                vec![
                    rich_partition(version, 0, Some(records(1234, 0))),
                    rich_partition(version, 1, Some(records(5, 0))),
                ],
            )],
        );
        let chunks = check(version, &resp);
        let total: usize = chunks.iter().map(Bytes::len).sum();
        let prefix: [u8; 4] = chunks[0][..4].try_into().unwrap();
        assert_eq!(i32::from_be_bytes(prefix) as usize, total - 4);
    }
}

#[test]
fn flexible_tagged_fields_survive_at_every_level() {
    // Only tagged fields differ between these two: the chunked encoding must differ too.
    for version in 12..=18 {
        let with_tags = response(
            version,
            vec![topic(
                version,
                "t",
                vec![rich_partition(version, 0, Some(records(10, 0)))],
            )],
        );
        let mut without_tags = with_tags.clone();
        without_tags.unknown_tagged_fields.clear();
        without_tags.node_endpoints.clear();
        for t in &mut without_tags.responses {
            t.unknown_tagged_fields.clear();
            for p in &mut t.partitions {
                p.unknown_tagged_fields.clear();
                p.diverging_epoch = EpochEndOffset::default();
                p.current_leader = LeaderIdAndEpoch::default();
                p.snapshot_id = SnapshotId::default();
            }
        }
        let a: Vec<u8> = check(version, &with_tags).concat();
        let b: Vec<u8> = check(version, &without_tags).concat();
        assert!(a.len() > b.len(), "v{version}: tagged fields were dropped");
    }
}

#[test]
fn invalid_responses_fail_like_encode_response() {
    let fails_both = |version: i16, resp: FetchResponse| {
        let chunked = encode_fetch_response_chunks(1, version, &resp);
        assert!(
            matches!(chunked, Err(EncodeError::Codec { api_key: ApiKey::Fetch, version: v, .. }) if v == version),
            "v{version}: expected a codec error, found {chunked:?}"
        );
        assert!(encode_response(1, ApiKey::Fetch, version, &ResponseKind::Fetch(resp)).is_err());
    };
    // session_id does not exist before v7.
    fails_both(6, FetchResponse::default().with_session_id(5));
    // preferred_read_replica does not exist before v11, even next to shared records.
    let p = PartitionData::default()
        .with_preferred_read_replica(BrokerId(3))
        .with_records(Some(records(10, 0)));
    fails_both(10, response(10, vec![topic(10, "t", vec![p])]));
    // Versions the codec does not know.
    fails_both(3, FetchResponse::default());
    fails_both(19, FetchResponse::default());
}

/// One partition of a random layout: records length (None = null), error, aborted list.
fn arb_partition() -> impl Strategy<Value = (Option<usize>, i16, Option<usize>, bool)> {
    (
        prop::option::of(prop_oneof![Just(0usize), 1usize..200, 16_000usize..17_000]),
        prop_oneof![Just(0i16), Just(1), Just(6)],
        prop::option::of(0usize..3),
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_layouts_match_encode_response(
        version in 4i16..=18,
        layout in prop::collection::vec(
            ("[a-z]{1,12}", prop::collection::vec(arb_partition(), 0..5)),
            0..4,
        ),
    ) {
        let topics = layout
            .iter()
            .map(|(name, parts)| {
                let partitions = parts
                    .iter()
                    .enumerate()
                    .map(|(i, &(len, error, aborted, rich))| {
                        let recs = len.map(|n| records(n, i as u8));
                        let mut p = if rich {
                            rich_partition(version, i as i32, recs)
                        } else {
                            PartitionData::default().with_partition_index(i as i32).with_records(recs)
                        };
                        p.error_code = error;
                        p.aborted_transactions = aborted.map(|n| {
                            (0..n)
                                .map(|k| AbortedTransaction::default().with_first_offset(k as i64))
                                .collect()
                        });
                        p
                    })
                    .collect();
                topic(version, name, partitions)
            })
            .collect();
        check(version, &response(version, topics));
    }
}

/// A partition as the broker's Fetch handler builds them: no tagged fields, every field valid
/// for `version`.
fn plain_partition(
    version: i16,
    index: i32,
    (records_len, error, aborted, offsets): (Option<usize>, i16, Option<usize>, (i64, i64, i64)),
) -> PartitionData {
    let mut p = PartitionData::default()
        .with_partition_index(index)
        .with_error_code(error)
        .with_high_watermark(offsets.0)
        .with_last_stable_offset(offsets.1)
        .with_log_start_offset(offsets.2)
        .with_records(records_len.map(|n| records(n, index as u8)))
        .with_aborted_transactions(aborted.map(|n| {
            (0..n)
                .map(|k| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(1_000 + k as i64))
                        .with_first_offset(k as i64 * 7)
                })
                .collect()
        }));
    if version >= 11 {
        p = p.with_preferred_read_replica(BrokerId(index % 3 - 1));
    }
    p
}

fn plain_response(version: i16, topics: Vec<(String, u128, Vec<PartitionData>)>) -> FetchResponse {
    let mut r = FetchResponse::default()
        .with_throttle_time_ms(3)
        .with_responses(
            topics
                .into_iter()
                .map(|(name, id, partitions)| {
                    FetchableTopicResponse::default()
                        .with_topic(topic_name(&name))
                        .with_topic_id(uuid::Uuid::from_u128(id))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    if version >= 7 {
        r = r.with_error_code(0).with_session_id(77);
    }
    r
}

#[test]
fn plain_responses_take_the_direct_path_in_every_version() {
    for version in VERSIONS {
        let resp = plain_response(
            version,
            vec![(
                "orders".into(),
                9,
                vec![
                    plain_partition(version, 0, (Some(300), 0, None, (10, 10, 0))),
                    plain_partition(version, 1, (None, 6, Some(2), (-1, -1, -1))),
                    plain_partition(version, 2, (Some(0), 0, Some(0), (5, 4, 1))),
                ],
            )],
        );
        assert!(
            super::super::fetch_plain::encode(1, version, &resp, 64).is_some(),
            "v{version}"
        );
        check(version, &resp);
    }
}

#[test]
fn anything_unusual_leaves_the_direct_path() {
    let plain = |version| {
        plain_response(
            version,
            vec![(
                "t".into(),
                1,
                vec![plain_partition(version, 0, (Some(5), 0, None, (1, 1, 0)))],
            )],
        )
    };
    let mut tagged = plain(12);
    tagged.responses[0].partitions[0]
        .current_leader
        .leader_epoch = 3;
    let mut endpoints = plain(16);
    endpoints.node_endpoints = vec![NodeEndpoint::default().with_port(1)];
    let mut topic_tags = plain(12);
    topic_tags.responses[0].unknown_tagged_fields = tags(&[4]);
    let mut session_before_7 = plain(6);
    session_before_7.session_id = 5;
    let mut replica_before_11 = plain(10);
    replica_before_11.responses[0].partitions[0].preferred_read_replica = BrokerId(2);
    for (version, resp) in [
        (12, tagged),
        (16, endpoints),
        (12, topic_tags),
        (6, session_before_7),
        (10, replica_before_11),
        (3, plain(4)),
        (19, plain(18)),
    ] {
        assert!(
            super::super::fetch_plain::encode(1, version, &resp, 64).is_none(),
            "v{version}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_plain_responses_match_encode_response(
        version in 4i16..=18,
        layout in prop::collection::vec(
            (
                "[a-z._-]{1,40}",
                any::<u128>(),
                prop::collection::vec(
                    (
                        prop::option::of(prop_oneof![Just(0usize), 1usize..300, 40_000usize..41_000]),
                        prop_oneof![Just(0i16), Just(1), Just(3), Just(6), Just(74)],
                        prop::option::of(0usize..4),
                        (any::<i64>(), any::<i64>(), any::<i64>()),
                    ),
                    0..6,
                ),
            ),
            0..4,
        ),
    ) {
        let topics = layout
            .into_iter()
            .map(|(name, id, parts)| {
                let partitions = parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, shape)| plain_partition(version, i as i32, shape))
                    .collect();
                (name, id, partitions)
            })
            .collect();
        let resp = plain_response(version, topics);
        prop_assert!(super::super::fetch_plain::encode(1, version, &resp, 64).is_some());
        check(version, &resp);
    }
}
