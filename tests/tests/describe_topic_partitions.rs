//! DescribeTopicPartitions (KIP-966) over a real socket: what Kafka's admin client (3.8+)
//! asks instead of Metadata for `kafka-topics --describe`. Topics in name order, partitions
//! paged by the response limit with a cursor, Kafka's errors for unknown topics and for a
//! cursor outside the topics asked for; and the authorized-operations bit fields it shares
//! with Metadata, DescribeCluster and DescribeGroups, through confluent-kafka.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::{
    ApiKey, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strata_tests::{Broker, RawConnection};

const TIMEOUT: Duration = Duration::from_secs(10);
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn create(conn: &mut RawConnection, topics: &[(&str, i32)]) {
    conn.create_topics(topics, TIMEOUT).unwrap();
}

fn describe(
    conn: &mut RawConnection,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsResponse {
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(name(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            Cursor::default()
                .with_topic_name(name(t))
                .with_partition_index(p)
        }));
    let id = conn
        .send_request(ApiKey::DescribeTopicPartitions, 0, &request)
        .unwrap();
    conn.read_response(ApiKey::DescribeTopicPartitions, 0, id, TIMEOUT)
        .unwrap()
}

/// (topic, partition) pairs of a response, in order.
fn pairs(response: &DescribeTopicPartitionsResponse) -> Vec<(String, i32)> {
    response
        .topics
        .iter()
        .flat_map(|t| {
            let topic = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            t.partitions
                .iter()
                .map(move |p| (topic.clone(), p.partition_index))
        })
        .collect()
}

fn cursor_of(response: &DescribeTopicPartitionsResponse) -> Option<(String, i32)> {
    response
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index))
}

#[test]
fn topics_come_in_name_order_and_partitions_page_by_the_limit() {
    let broker = Broker::start();
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    let versions = conn.api_versions(TIMEOUT).unwrap();
    assert!(
        versions
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::DescribeTopicPartitions as i16 && k.max_version == 0),
        "ApiVersions must advertise DescribeTopicPartitions v0"
    );
    create(&mut conn, &[("gamma", 1), ("alpha", 3), ("beta", 2)]);

    let all = describe(&mut conn, &[], 2000, None);
    let expected: Vec<(String, i32)> = [
        ("alpha", 0),
        ("alpha", 1),
        ("alpha", 2),
        ("beta", 0),
        ("beta", 1),
        ("gamma", 0),
    ]
    .iter()
    .map(|(t, p)| (t.to_string(), *p))
    .collect();
    assert_eq!(pairs(&all), expected);
    assert_eq!(cursor_of(&all), None);
    for t in &all.topics {
        assert_eq!(t.error_code, 0);
        assert!(!t.topic_id.is_nil(), "{:?} has no topic id", t.name);
        assert!(!t.is_internal);
        for p in &t.partitions {
            assert_eq!(p.error_code, 0);
            assert_eq!(
                p.leader_id.0, 1,
                "the single broker leads {:?}/{}",
                t.name, p.partition_index
            );
            assert_eq!(p.replica_nodes.len(), 1);
            assert_eq!(p.isr_nodes.len(), 1);
            assert_eq!(p.eligible_leader_replicas.as_deref(), Some(&[][..]));
            assert!(p.offline_replicas.is_empty());
        }
        // DESCRIBE (bit 8) at least: no authorizer means every operation is allowed.
        assert_ne!(t.topic_authorized_operations & (1 << 8), 0);
    }

    // Pages of two partitions: the cursor walks across topic boundaries.
    let mut paged = Vec::new();
    let mut cursor: Option<(String, i32)> = None;
    let mut pages = 0;
    loop {
        let page = describe(
            &mut conn,
            &[],
            2,
            cursor.as_ref().map(|(t, p)| (t.as_str(), *p)),
        );
        let got = pairs(&page);
        assert!(got.len() <= 2, "page {pages} has {} partitions", got.len());
        paged.extend(got);
        pages += 1;
        cursor = cursor_of(&page);
        if cursor.is_none() || pages > 10 {
            break;
        }
    }
    assert_eq!(paged, expected, "the pages together are the whole list");
    assert_eq!(pages, 3);

    // By name: unknown topics get Kafka's error; asked order does not matter.
    let named = describe(&mut conn, &["nope", "beta"], 2000, None);
    let codes: Vec<(String, i16, usize)> = named
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().unwrap().0.to_string(),
                t.error_code,
                t.partitions.len(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ("beta".to_string(), 0, 2),
            ("nope".to_string(), UNKNOWN_TOPIC_OR_PARTITION, 0)
        ]
    );

    // A cursor pointing outside the topics asked for is refused, as Kafka does.
    let refused = describe(&mut conn, &["alpha"], 2000, Some(("beta", 0)));
    assert_eq!(refused.topics.len(), 1);
    assert_eq!(refused.topics[0].error_code, INVALID_REQUEST);
}

#[test]
fn undescribable_topics_are_hidden_and_refused_by_name_whether_or_not_they_exist() {
    use kafka_protocol::messages::create_acls_request::AclCreation;
    use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
    const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    // Without ACLs everyone may do everything here, so the anonymous plaintext client can set
    // up topics and a DENY DESCRIBE on every topic whose name starts with "secret".
    let broker = Broker::start_with(&[
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("allow.everyone.if.no.acl.found", "true"),
    ]);
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    create(&mut conn, &[("public", 1), ("secret-plans", 2)]);
    let deny = CreateAclsRequest::default().with_creations(vec![AclCreation::default()
        .with_resource_type(2) // TOPIC
        .with_resource_name(StrBytes::from_static_str("secret"))
        .with_resource_pattern_type(4) // PREFIXED
        .with_principal(StrBytes::from_static_str("User:ANONYMOUS"))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(8) // DESCRIBE
        .with_permission_type(2)]); // DENY
    let id = conn.send_request(ApiKey::CreateAcls, 2, &deny).unwrap();
    let created: CreateAclsResponse = conn
        .read_response(ApiKey::CreateAcls, 2, id, TIMEOUT)
        .unwrap();
    assert_eq!(
        created.results[0].error_code, 0,
        "{:?}",
        created.results[0].error_message
    );

    let all = describe(&mut conn, &[], 2000, None);
    assert_eq!(
        pairs(&all),
        vec![("public".to_string(), 0)],
        "secret-plans is hidden"
    );

    // By name, an existing and a missing denied topic answer alike: nothing leaks.
    let named = describe(
        &mut conn,
        &["secret-plans", "secret-missing", "public"],
        2000,
        None,
    );
    let codes: Vec<(String, i16)> = named
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("public".to_string(), 0),
            ("secret-missing".to_string(), TOPIC_AUTHORIZATION_FAILED),
            ("secret-plans".to_string(), TOPIC_AUTHORIZATION_FAILED),
        ]
    );
}

/// librdkafka asks authorized operations through Metadata, DescribeCluster and
/// DescribeGroups; they share DescribeTopicPartitions' bit-field logic.
#[test]
fn confluent_kafka_sees_authorized_operations_and_a_deny_acl_removes_one() {
    let broker = Broker::start_with(&[
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("allow.everyone.if.no.acl.found", "true"),
    ]);
    strata_tests::run_python(
        "ck_authorized_operations.py",
        &["--bootstrap", &broker.bootstrap()],
    );
}

/// Metadata v12 by topic id, as Kafka's admin client sends it for `describeTopics` of ids and
/// `kafka-topics --describe --topic-id`: the id with an empty (not null) name. The id decides,
/// as on Kafka's broker; an unknown one is UNKNOWN_TOPIC_ID with the id and no name.
#[test]
fn metadata_resolves_a_topic_id_sent_with_an_empty_name() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    const UNKNOWN_TOPIC_ID: i16 = 100;

    let broker = Broker::start();
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    create(&mut conn, &[("by-id", 3), ("other", 1)]);
    let all = conn.metadata(12, TIMEOUT).unwrap();
    let id = all
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "by-id"))
        .unwrap()
        .topic_id;
    assert!(!id.is_nil());
    let unknown = uuid::Uuid::from_u128(0x5354_5241_5441_0000_0000_0000_0000_0001);

    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default()
            .with_topic_id(id)
            .with_name(Some(name(""))),
        MetadataRequestTopic::default()
            .with_topic_id(unknown)
            .with_name(Some(name(""))),
    ]));
    let corr = conn.send_request(ApiKey::Metadata, 12, &request).unwrap();
    let response: MetadataResponse = conn
        .read_response(ApiKey::Metadata, 12, corr, TIMEOUT)
        .unwrap();
    let found = &response.topics[0];
    assert_eq!(found.error_code, 0, "{found:?}");
    assert_eq!(found.name.as_ref().unwrap().0.as_str(), "by-id");
    assert_eq!(found.topic_id, id);
    assert_eq!(found.partitions.len(), 3);
    let missing = &response.topics[1];
    assert_eq!(
        (missing.error_code, missing.topic_id, missing.name.is_none()),
        (UNKNOWN_TOPIC_ID, unknown, true),
        "{missing:?}"
    );
}
