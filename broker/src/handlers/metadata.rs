//! Metadata: brokers (the addresses of the listener the client came in on), the cluster id,
//! the controller, and topics with partition leaders, epochs, replicas and ISR. Unknown
//! topics are created on the fly when both the client and `auto.create.topics.enable` allow.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use strata_protocol::kafka_protocol;
use uuid::Uuid;

use super::{str_bytes, RequestContext};
use crate::errors::ErrorCode;
use crate::metadata::{MetadataImage, TopicMetadata};
use crate::security::acl::AclOperation;
use crate::server::Broker;
use crate::topics::{self, NewTopic};

/// Kafka's "authorized operations were not requested" marker.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub fn handle(broker: &Broker, ctx: &RequestContext, request: MetadataRequest) -> MetadataResponse {
    let version = ctx.api_version;
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested: Option<Vec<(Option<String>, Uuid)>> = match request.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                .collect(),
        ),
    };
    // v4+ lets the client opt out of auto-creation; before that, it was always requested.
    let may_create = broker.config.auto_create_topics_enable
        && (version < 4 || request.allow_auto_topic_creation);

    let mut topics = Vec::new();
    match requested {
        None => {
            let image = broker.metadata.image();
            topics.extend(
                image
                    .topics
                    .values()
                    // Topics the principal may not DESCRIBE are hidden from the full list.
                    .filter(|t| ctx.allowed_topic(broker, AclOperation::Describe, &t.name))
                    .map(|t| topic_entry(broker, t, &image, version)),
            );
        }
        Some(list) => {
            for (name, id) in list {
                topics.push(lookup(broker, ctx, name, id, may_create, version));
            }
        }
    }
    let image = broker.metadata.image();
    // Fenced brokers are left out, as KRaft does: clients should not try them.
    let brokers = image
        .live_brokers()
        .filter_map(|b| {
            let endpoint = b.endpoint_for(&ctx.listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.node_id))
                    .with_host(str_bytes(endpoint.host.clone()))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(if version >= 1 {
                        b.rack.clone().map(str_bytes)
                    } else {
                        None
                    }),
            )
        })
        .collect();
    if request.include_topic_authorized_operations {
        // Entries that carry an error (unknown, refused) keep "not requested".
        for t in topics.iter_mut().filter(|t| t.error_code == 0) {
            if let Some(name) = &t.name {
                t.topic_authorized_operations = ctx.topic_operations(broker, name);
            }
        }
    }
    // v8-10 carry the cluster's operations; later versions moved them to DescribeCluster.
    let cluster_ops =
        if request.include_cluster_authorized_operations && (8..=10).contains(&version) {
            ctx.cluster_operations(broker)
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };
    // Fields are set only in the versions that carry them (the encoder refuses otherwise).
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id((version >= 2).then(|| str_bytes(image.cluster_id.clone())))
        .with_controller_id(BrokerId(if version >= 1 {
            image.controller_id
        } else {
            -1
        }))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops)
}

fn lookup(
    broker: &Broker,
    ctx: &RequestContext,
    name: Option<String>,
    id: Uuid,
    may_create: bool,
    version: i16,
) -> MetadataResponseTopic {
    let image = broker.metadata.image();
    // A topic id, when given, decides (as Kafka's broker resolves by id whenever one is
    // non-zero): Java's admin sends the id with an empty name, not a null one.
    let Some(name) = name.filter(|_| id.is_nil()) else {
        return match image.topic_by_id(&id) {
            Some(t) if !ctx.allowed_topic(broker, AclOperation::Describe, &t.name) => {
                MetadataResponseTopic::default()
                    .with_name(None)
                    .with_topic_id(id)
                    .with_error_code(ErrorCode::TopicAuthorizationFailed.code())
            }
            Some(t) => topic_entry(broker, t, &image, version),
            // No name (null, not empty), as Kafka answers an id it does not know.
            None => MetadataResponseTopic::default()
                .with_name(None)
                .with_topic_id(id)
                .with_error_code(ErrorCode::UnknownTopicId.code()),
        };
    };
    let error_only = |code: ErrorCode| {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(name.clone()))))
            .with_error_code(code.code())
    };
    if !ctx.allowed_topic(broker, AclOperation::Describe, &name) {
        return error_only(ErrorCode::TopicAuthorizationFailed);
    }
    if let Some(t) = image.topic(&name) {
        return topic_entry(broker, t, &image, version);
    }
    if let Err((code, _)) = topics::validate_topic_name(&name) {
        return error_only(code);
    }
    if !may_create || crate::server::is_internal_topic(&name) {
        return error_only(ErrorCode::UnknownTopicOrPartition);
    }
    // Auto-creation needs CREATE on the cluster or on the topic, as CreateTopics does.
    if !ctx.allowed_cluster(broker, AclOperation::Create)
        && !ctx.allowed_topic(broker, AclOperation::Create, &name)
    {
        return error_only(ErrorCode::TopicAuthorizationFailed);
    }
    let new = NewTopic {
        name: &name,
        partitions: -1,
        replication_factor: -1,
        configs: Default::default(),
        internal: false,
    };
    match topics::create_topic(broker, new, false) {
        Ok(t) => topic_entry(broker, &t, &broker.metadata.image(), version),
        // Lost a race with another creator: answer from the image.
        Err((ErrorCode::TopicAlreadyExists, _)) => match broker.metadata.image().topic(&name) {
            Some(t) => topic_entry(broker, t, &image, version),
            None => error_only(ErrorCode::LeaderNotAvailable),
        },
        Err((code, msg)) => {
            tracing::warn!(topic = %name, error = %msg, "auto-creation failed");
            error_only(code)
        }
    }
}

/// What Metadata and DescribeTopicPartitions both say about one partition.
pub(super) struct PartitionState {
    pub(super) partition: i32,
    /// LEADER_NOT_AVAILABLE when the leader is gone or its log dir failed; 0 otherwise.
    pub(super) error_code: i16,
    /// -1 when there is no live leader.
    pub(super) leader: i32,
    pub(super) leader_epoch: i32,
    pub(super) replicas: Vec<BrokerId>,
    pub(super) isr: Vec<BrokerId>,
    pub(super) offline_replicas: Vec<BrokerId>,
}

pub(super) fn partition_states<'a>(
    broker: &'a Broker,
    topic: &'a TopicMetadata,
    image: &'a MetadataImage,
) -> impl Iterator<Item = PartitionState> + 'a {
    let node_id = broker.config.node_id;
    topic.partitions.iter().map(move |p| {
        // A replica whose log dir failed is offline (KIP-858): with no other replica to take
        // over, the partition has no leader, as KRaft reports it.
        let dir_offline = broker
            .replicas
            .get(&topic.name, p.partition)
            .is_some_and(|local| local.log_dir_offline());
        let replica_offline = |r: &i32| {
            !image.brokers.contains_key(r)
                || image.fenced.contains(r)
                || (dir_offline && *r == node_id)
        };
        let leader_alive = image.brokers.contains_key(&p.leader) && !replica_offline(&p.leader);
        PartitionState {
            partition: p.partition,
            error_code: if leader_alive {
                0
            } else {
                ErrorCode::LeaderNotAvailable.code()
            },
            leader: if leader_alive { p.leader } else { -1 },
            leader_epoch: p.leader_epoch,
            replicas: p.replicas.iter().map(|r| BrokerId(*r)).collect(),
            isr: p.isr.iter().map(|r| BrokerId(*r)).collect(),
            offline_replicas: p
                .replicas
                .iter()
                .filter(|r| replica_offline(r))
                .map(|r| BrokerId(*r))
                .collect(),
        }
    })
}

fn topic_entry(
    broker: &Broker,
    topic: &TopicMetadata,
    image: &MetadataImage,
    version: i16,
) -> MetadataResponseTopic {
    let partitions = partition_states(broker, topic, image)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_error_code(p.error_code)
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(if version >= 7 { p.leader_epoch } else { -1 })
                .with_replica_nodes(p.replicas)
                .with_isr_nodes(p.isr)
                .with_offline_replicas(if version >= 5 {
                    p.offline_replicas
                } else {
                    Vec::new()
                })
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(if version >= 10 { topic.id } else { Uuid::nil() })
        .with_is_internal(version >= 1 && topic.internal)
        .with_partitions(partitions)
}
