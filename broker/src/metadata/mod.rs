//! The cluster metadata image: brokers, topics, partition assignments, leaders, topic
//! configs, dynamic broker configs, client quotas, and (in a cluster) ACLs and SCRAM
//! credentials. Every broker serves Metadata from one
//! immutable snapshot; changes are [`MetadataRecord`]s committed through [`MetadataStore`]:
//! on a single broker persisted to a snapshot file in the first log dir, in a cluster
//! ordered by the Raft quorum (`cluster`).

pub mod cluster;
pub mod durable_file;
pub mod kafka_uuid;
pub mod meta_properties;
pub mod records;
pub mod security;
mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use records::{ApplyError, MetadataRecord};
pub use store::{MetadataError, MetadataStore, Publisher};

/// Where a partition lives and who leads it. Node ids everywhere, so replication can fill
/// in more replicas without changing the shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Bumped by every change of leader or ISR (Kafka's partition epoch), so that a change
    /// computed from an older state is refused. Absent in images written before clusters.
    #[serde(default)]
    pub partition_epoch: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionMetadata>,
    /// Only the topic's own overrides; defaults come from the broker config.
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

/// One advertised endpoint of a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// The endpoint clients that arrived on `listener` should use (Kafka answers Metadata
    /// with the addresses of the listener the request came in on).
    pub fn endpoint_for(&self, listener: &str) -> Option<&BrokerEndpoint> {
        self.endpoints
            .iter()
            .find(|e| e.listener == listener)
            .or_else(|| self.endpoints.first())
    }
}

/// An immutable snapshot; cheap to share (`Arc`), replaced whole on every change.
#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    pub cluster_id: String,
    pub controller_id: i32,
    /// In a cluster: `cluster_id` is the one the members agreed on (the first to join
    /// proposed its own), not this node's meta.properties'.
    pub cluster_id_agreed: bool,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Registered brokers the controller has stopped hearing from: they lead nothing and
    /// are left out of Metadata answers until they register again.
    pub fenced: BTreeSet<i32>,
    /// Fenced brokers that are stopping on purpose (controlled shutdown): still answering,
    /// but not to be unfenced until they register again.
    pub shutting_down: BTreeSet<i32>,
    pub topics: BTreeMap<String, TopicMetadata>,
    /// Dynamic broker configs by resource name: `""` is the cluster-wide default,
    /// `"<node id>"` one broker's own (AlterConfigs on BROKER resources). Absent = none.
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Client quotas (AlterClientQuotas), by entity.
    pub client_quotas: crate::quota::QuotaTable,
    /// In a cluster: the first producer id no broker has reserved yet.
    pub next_producer_id: i64,
    /// In a cluster: its ACLs and SCRAM credentials.
    pub security: security::ClusterSecurity,
    topic_names_by_id: HashMap<Uuid, String>,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicMetadata> {
        self.topic_names_by_id
            .get(id)
            .and_then(|n| self.topics.get(n))
    }

    /// The dynamic broker configs of one BROKER resource (`""` or a node id).
    pub fn dynamic_configs_of(&self, resource: &str) -> BTreeMap<String, String> {
        self.broker_configs
            .get(resource)
            .cloned()
            .unwrap_or_default()
    }

    /// Registered, unfenced brokers.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers
            .values()
            .filter(|b| !self.fenced.contains(&b.node_id))
    }

    fn reindex(&mut self) {
        self.topic_names_by_id = self
            .topics
            .values()
            .map(|t| (t.id, t.name.clone()))
            .collect();
    }
}
