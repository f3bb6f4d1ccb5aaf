//! Requests encoded by kafka-protocol itself come back equal from `decode_request`, with
//! record batches as zero-copy slices; responses are framed with the right header version.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test helpers, not only #[test] fns

use bytes::{Buf, Bytes, BytesMut};
use strata_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strata_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use strata_protocol::kafka_protocol::messages::*;
use strata_protocol::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata_protocol::{decode_request, encode_response};
use uuid::Uuid;

fn frame(api_key: ApiKey, version: i16, body: RequestKind) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(31337)
        .with_client_id(Some(StrBytes::from_static_str("rdkafka")))
        .encode(&mut buf, api_key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    buf.freeze()
}

fn check(api_key: ApiKey, version: i16, body: RequestKind) {
    let f = frame(api_key, version, body.clone());
    let req = decode_request(f).unwrap_or_else(|e| panic!("{api_key:?} v{version}: {e}"));
    assert_eq!(req.api_key, api_key);
    assert_eq!(req.api_version, version);
    assert_eq!(req.correlation_id, 31337);
    assert_eq!(req.header.client_id.as_deref(), Some("rdkafka"));
    assert_eq!(req.body, body, "{api_key:?} v{version}");
}

fn name(s: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(s))
}

#[test]
fn produce_v3_to_v11_keeps_records_as_slices_of_the_frame() {
    let records = Bytes::from_static(b"not-really-a-batch-but-opaque-here");
    for version in 3..=11 {
        let body = ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx-1"))))
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name("orders"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records.clone())),
                    PartitionProduceData::default()
                        .with_index(7)
                        .with_records(None),
                ])]);
        check(ApiKey::Produce, version, RequestKind::Produce(body.clone()));
        let f = frame(ApiKey::Produce, version, RequestKind::Produce(body));
        let range = f.as_ptr() as usize..f.as_ptr() as usize + f.len();
        let req = decode_request(f.clone()).unwrap();
        let RequestKind::Produce(p) = req.body else {
            panic!("not a produce body")
        };
        let got = p.topic_data[0].partition_data[0].records.clone().unwrap();
        assert!(
            range.contains(&(got.as_ptr() as usize)),
            "v{version}: records were copied"
        );
    }
}

#[test]
fn fetch_v4_to_v17_with_topics_and_tagged_fields() {
    for version in 4..=17 {
        let mut topic = FetchTopic::default().with_partitions(vec![FetchPartition::default()
            .with_partition(3)
            .with_fetch_offset(1234)
            .with_partition_max_bytes(1 << 20)]);
        if version >= 13 {
            topic = topic.with_topic_id(Uuid::from_u128(0x1234_5678));
        } else {
            topic = topic.with_topic(name("orders"));
        }
        let mut body = FetchRequest::default()
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_topics(vec![topic]);
        if version >= 11 {
            body = body.with_rack_id(StrBytes::from_static_str("az-1"));
        }
        if version >= 12 {
            body = body.with_cluster_id(Some(StrBytes::from_static_str("cluster-x")));
            body.unknown_tagged_fields
                .insert(77, Bytes::from_static(b"zz"));
        }
        check(ApiKey::Fetch, version, RequestKind::Fetch(body));
    }
}

#[test]
fn metadata_api_versions_and_join_group_for_every_version() {
    for version in 0..=12 {
        let mut topic =
            metadata_request::MetadataRequestTopic::default().with_name(Some(name("t")));
        if version >= 10 {
            topic = topic.with_topic_id(Uuid::from_u128(9));
        }
        let body = MetadataRequest::default()
            .with_topics(Some(vec![topic]))
            .with_allow_auto_topic_creation(version < 4);
        check(ApiKey::Metadata, version, RequestKind::Metadata(body));
    }
    for version in 0..=4 {
        let mut body = ApiVersionsRequest::default();
        if version >= 3 {
            body = body
                .with_client_software_name(StrBytes::from_static_str("librdkafka"))
                .with_client_software_version(StrBytes::from_static_str("2.3.0"));
        }
        check(ApiKey::ApiVersions, version, RequestKind::ApiVersions(body));
    }
    for version in 0..=9 {
        let mut body = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_session_timeout_ms(10_000)
            .with_member_id(StrBytes::from_static_str("m-1"))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
            )
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from_static(b"\x00\x01meta"))]);
        if version >= 1 {
            body = body.with_rebalance_timeout_ms(60_000);
        }
        if version >= 5 {
            body = body.with_group_instance_id(Some(StrBytes::from_static_str("static-1")));
        }
        check(ApiKey::JoinGroup, version, RequestKind::JoinGroup(body));
    }
}

#[test]
fn responses_carry_size_prefix_correlation_id_and_the_right_header_version() {
    // ApiVersions: header v0 (no tagged fields) even at v3+.
    let body = ResponseKind::ApiVersions(ApiVersionsResponse::default().with_error_code(35));
    let out = encode_response(5, ApiKey::ApiVersions, 3, &body).unwrap();
    let mut b = out.freeze();
    assert_eq!(b.get_i32() as usize, b.len());
    assert_eq!(b.get_i32(), 5);
    let decoded = ApiVersionsResponse::decode(&mut b, 3).unwrap();
    assert_eq!(decoded.error_code, 35);
    assert!(!b.has_remaining());

    // Metadata v9+: flexible response header v1 (one empty tagged-field byte after the id).
    for version in [3i16, 9, 12] {
        let body = ResponseKind::Metadata(MetadataResponse::default().with_throttle_time_ms(3));
        let mut b = encode_response(6, ApiKey::Metadata, version, &body)
            .unwrap()
            .freeze();
        assert_eq!(b.get_i32() as usize, b.len());
        let header =
            ResponseHeader::decode(&mut b, ApiKey::Metadata.response_header_version(version))
                .unwrap();
        assert_eq!(header.correlation_id, 6);
        let decoded = MetadataResponse::decode(&mut b, version).unwrap();
        assert_eq!(decoded.throttle_time_ms, 3);
        assert!(!b.has_remaining(), "v{version}");
    }
}
