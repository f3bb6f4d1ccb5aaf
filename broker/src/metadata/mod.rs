//! The cluster metadata image: brokers, topics, partition assignments, leaders, topic
//! configs and dynamic broker configs. Every broker serves Metadata from one immutable snapshot; changes go through
//! [`MetadataStore`], which today persists them to a snapshot file in the first log dir and
//! will later be fed by the Raft metadata log instead.

pub mod durable_file;
pub mod kafka_uuid;
pub mod meta_properties;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a partition lives and who leads it. Node ids everywhere, so replication can fill
/// in more replicas without changing the shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
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
#[derive(Debug, Clone)]
pub struct BrokerEndpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone)]
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
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicMetadata>,
    /// Dynamic broker configs by resource name: `""` is the cluster-wide default,
    /// `"<node id>"` one broker's own (AlterConfigs on BROKER resources). Absent = none.
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Client quotas (AlterClientQuotas), by entity.
    pub client_quotas: crate::quota::QuotaTable,
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

    fn reindex(&mut self) {
        self.topic_names_by_id = self
            .topics
            .values()
            .map(|t| (t.id, t.name.clone()))
            .collect();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("cannot persist cluster metadata to {path}: {source}")]
    Persist {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cluster metadata file {path} is unreadable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize, Default)]
struct Snapshot {
    topics: Vec<TopicMetadata>,
    /// Absent in snapshots written before dynamic broker configs existed.
    #[serde(default)]
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Absent in snapshots written before client quotas existed. A list, as JSON maps need
    /// string keys.
    #[serde(default)]
    client_quotas: Vec<(crate::quota::QuotaEntity, BTreeMap<String, f64>)>,
}

/// Owns the current image and orders changes to it. Readers call [`MetadataStore::image`]
/// and keep the `Arc` for the whole request, so a request sees one consistent view.
pub struct MetadataStore {
    current: RwLock<Arc<MetadataImage>>,
    /// Serialises writers so that read-modify-write of the image and its file never interleave.
    write_lock: Mutex<()>,
    /// Held across multi-step admin changes (create logs, then record the topic) so that
    /// two creators of one topic cannot interleave.
    admin_lock: Mutex<()>,
    snapshot_path: PathBuf,
}

impl MetadataStore {
    pub fn open(
        snapshot_path: PathBuf,
        cluster_id: String,
        local_broker: BrokerInfo,
    ) -> Result<Self, MetadataError> {
        let snapshot = match std::fs::read(&snapshot_path) {
            Ok(bytes) => {
                serde_json::from_slice::<Snapshot>(&bytes).map_err(|e| MetadataError::Corrupt {
                    path: snapshot_path.clone(),
                    reason: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Snapshot::default(),
            Err(source) => {
                return Err(MetadataError::Persist {
                    path: snapshot_path,
                    source,
                })
            }
        };
        let mut image = MetadataImage {
            cluster_id,
            controller_id: local_broker.node_id,
            brokers: BTreeMap::from([(local_broker.node_id, local_broker)]),
            topics: snapshot
                .topics
                .into_iter()
                .map(|t| (t.name.clone(), t))
                .collect(),
            broker_configs: snapshot.broker_configs,
            client_quotas: snapshot.client_quotas.into_iter().collect(),
            topic_names_by_id: HashMap::new(),
        };
        image.reindex();
        Ok(Self {
            current: RwLock::new(Arc::new(image)),
            write_lock: Mutex::new(()),
            admin_lock: Mutex::new(()),
            snapshot_path,
        })
    }

    /// Serialises topic creation, deletion and partition changes.
    pub fn admin_guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.admin_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies `change` to a copy of the image, persists it, then publishes it.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut MetadataImage) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        let _writer = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = (*self.image()).clone();
        let out = change(&mut next)?;
        next.reindex();
        let snapshot = Snapshot {
            topics: next.topics.values().cloned().collect(),
            broker_configs: next.broker_configs.clone(),
            client_quotas: next
                .client_quotas
                .iter()
                .map(|(e, v)| (e.clone(), v.clone()))
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&snapshot).map_err(|e| MetadataError::Corrupt {
            path: self.snapshot_path.clone(),
            reason: e.to_string(),
        })?;
        durable_file::write_atomically(&self.snapshot_path, &bytes).map_err(|source| {
            MetadataError::Persist {
                path: self.snapshot_path.clone(),
                source,
            }
        })?;
        let mut slot = self.current.write().unwrap_or_else(|p| p.into_inner());
        *slot = Arc::new(next);
        Ok(out)
    }
}
