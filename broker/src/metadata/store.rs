//! Owns the current metadata image, commits changes to it and tells the broker about each
//! new image. Alone, a broker commits a change by applying it and writing the whole image to
//! a snapshot file; in a cluster, by proposing it to the Raft quorum, whose state machine
//! applies it on every node (`cluster`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde::{Deserialize, Serialize};

use super::cluster::ClusterLink;
use super::records::{ApplyError, MetadataRecord};
use super::{durable_file, BrokerInfo, MetadataImage, TopicMetadata};

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(transparent)]
    Refused(#[from] ApplyError),
    #[error("cannot persist cluster metadata to {path}: {source}")]
    Persist {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cluster metadata file {path} is unreadable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// The quorum did not commit the change (no leader within the deadline, shutting down).
    #[error("the metadata quorum did not commit the change: {0}")]
    Quorum(String),
}

/// What the broker does with each new image: open and close replicas, change leaders,
/// reconfigure logs. Called in commit order, after the image is published.
pub trait Publisher: Send + Sync {
    fn publish(&self, before: &MetadataImage, after: &MetadataImage);
}

/// The persisted form of an image (the snapshot file alone, the Raft snapshot in a cluster).
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct Snapshot {
    topics: Vec<TopicMetadata>,
    /// Absent in snapshots written before dynamic broker configs existed.
    #[serde(default)]
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Absent in snapshots written before client quotas existed. A list, as JSON maps need
    /// string keys.
    #[serde(default)]
    client_quotas: Vec<(crate::quota::QuotaEntity, BTreeMap<String, f64>)>,
    /// Registered brokers; only in a cluster (alone, the broker is the only one).
    #[serde(default)]
    brokers: Vec<BrokerInfo>,
    #[serde(default)]
    fenced: Vec<i32>,
    #[serde(default)]
    shutting_down: Vec<i32>,
    #[serde(default)]
    next_producer_id: i64,
    /// A cluster's agreed id (absent alone and in older snapshots).
    #[serde(default)]
    cluster_id: Option<String>,
    /// A cluster's ACLs and SCRAM credentials (absent alone and in older snapshots).
    #[serde(default)]
    security: super::security::SecuritySnapshot,
}

impl Snapshot {
    pub(crate) fn of(image: &MetadataImage) -> Self {
        Snapshot {
            topics: image.topics.values().cloned().collect(),
            broker_configs: image.broker_configs.clone(),
            client_quotas: image
                .client_quotas
                .iter()
                .map(|(e, v)| (e.clone(), v.clone()))
                .collect(),
            brokers: image.brokers.values().cloned().collect(),
            fenced: image.fenced.iter().copied().collect(),
            shutting_down: image.shutting_down.iter().copied().collect(),
            next_producer_id: image.next_producer_id,
            security: image.security.snapshot(),
            cluster_id: image.cluster_id_agreed.then(|| image.cluster_id.clone()),
        }
    }

    /// The image it describes; the caller sets the cluster id and controller.
    pub(crate) fn into_image(self, cluster_id: String, controller_id: i32) -> MetadataImage {
        let cluster_id_agreed = self.cluster_id.is_some();
        let mut image = MetadataImage {
            cluster_id: self.cluster_id.unwrap_or(cluster_id),
            cluster_id_agreed,
            controller_id,
            brokers: self.brokers.into_iter().map(|b| (b.node_id, b)).collect(),
            fenced: self.fenced.into_iter().collect(),
            shutting_down: self.shutting_down.into_iter().collect(),
            topics: self
                .topics
                .into_iter()
                .map(|t| (t.name.clone(), t))
                .collect(),
            broker_configs: self.broker_configs,
            client_quotas: self.client_quotas.into_iter().collect(),
            next_producer_id: self.next_producer_id,
            security: super::security::ClusterSecurity::from_snapshot(self.security),
            topic_names_by_id: HashMap::new(),
        };
        image.reindex();
        image
    }
}

enum Mode {
    /// A broker on its own: the image lives in this file.
    Alone { snapshot_path: PathBuf },
    /// A member of a cluster: the quorum orders changes (set once it has started).
    Cluster(OnceLock<Arc<ClusterLink>>),
}

/// Readers call [`MetadataStore::image`] and keep the `Arc` for the whole request, so a
/// request sees one consistent view.
pub struct MetadataStore {
    current: RwLock<Arc<MetadataImage>>,
    /// Serialises installs, so images are published in the order they were made.
    write_lock: Mutex<()>,
    /// Held across an admin change's check and commit, so two creators of one topic
    /// cannot both pass the check.
    admin_lock: Mutex<()>,
    mode: Mode,
    publisher: OnceLock<Arc<dyn Publisher>>,
}

impl MetadataStore {
    /// A broker on its own: the image from `snapshot_path` (if any), with only this broker.
    pub fn open(
        snapshot_path: PathBuf,
        cluster_id: String,
        local_broker: BrokerInfo,
    ) -> Result<Self, MetadataError> {
        let snapshot = match std::fs::read(&snapshot_path) {
            Ok(bytes) => {
                serde_json::from_slice::<Snapshot>(&bytes).map_err(|e| MetadataError::Corrupt {
                    path: snapshot_path.to_path_buf(),
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
        let mut image = snapshot.into_image(cluster_id, local_broker.node_id);
        image.fenced.clear();
        image.shutting_down.clear();
        image.brokers = BTreeMap::from([(local_broker.node_id, local_broker)]);
        Ok(Self::with(image, Mode::Alone { snapshot_path }))
    }

    /// A cluster member: starts empty (no controller known); the quorum's state machine
    /// fills the image in, from its snapshot and log, once [`Self::link_cluster`] ran.
    pub fn for_cluster(cluster_id: String) -> Self {
        let image = MetadataImage {
            cluster_id,
            controller_id: -1,
            ..MetadataImage::default()
        };
        Self::with(image, Mode::Cluster(OnceLock::new()))
    }

    fn with(image: MetadataImage, mode: Mode) -> Self {
        Self {
            current: RwLock::new(Arc::new(image)),
            write_lock: Mutex::new(()),
            admin_lock: Mutex::new(()),
            mode,
            publisher: OnceLock::new(),
        }
    }

    pub(crate) fn link_cluster(&self, link: Arc<ClusterLink>) {
        if let Mode::Cluster(slot) = &self.mode {
            let _ = slot.set(link);
        }
    }

    /// The quorum, in a cluster (once started).
    pub fn cluster(&self) -> Option<&Arc<ClusterLink>> {
        match &self.mode {
            Mode::Cluster(slot) => slot.get(),
            Mode::Alone { .. } => None,
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.mode, Mode::Cluster(_))
    }

    /// Set once, when the broker is assembled; images before it are published by the
    /// broker's own start-up pass.
    pub fn set_publisher(&self, publisher: Arc<dyn Publisher>) {
        let _ = self.publisher.set(publisher);
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

    /// Commits `records` as one change (all apply or none), and returns once this broker's
    /// image has it. May block the calling thread (in a cluster, on the quorum).
    pub fn commit(&self, records: Vec<MetadataRecord>) -> Result<(), MetadataError> {
        match &self.mode {
            Mode::Alone { snapshot_path } => self.commit_alone(snapshot_path, &records),
            Mode::Cluster(link) => match link.get() {
                Some(link) => link.commit_blocking(records),
                None => Err(MetadataError::Quorum("the quorum has not started".into())),
            },
        }
    }

    /// [`Self::commit`] for async callers in a cluster (the controller's loops).
    pub async fn commit_async(&self, records: Vec<MetadataRecord>) -> Result<(), MetadataError> {
        match &self.mode {
            Mode::Alone { snapshot_path } => self.commit_alone(snapshot_path, &records),
            Mode::Cluster(link) => match link.get() {
                Some(link) => link.commit(records).await,
                None => Err(MetadataError::Quorum("the quorum has not started".into())),
            },
        }
    }

    fn commit_alone(
        &self,
        snapshot_path: &std::path::Path,
        records: &[MetadataRecord],
    ) -> Result<(), MetadataError> {
        let _writer = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.image();
        let mut next = (*before).clone();
        for record in records {
            next.apply(record)?;
        }
        let bytes = serde_json::to_vec_pretty(&Snapshot::of(&next)).map_err(|e| {
            MetadataError::Corrupt {
                path: snapshot_path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        durable_file::write_atomically(snapshot_path, &bytes).map_err(|source| {
            MetadataError::Persist {
                path: snapshot_path.to_path_buf(),
                source,
            }
        })?;
        self.install(&before, next);
        Ok(())
    }

    /// The quorum's state machine: one committed entry, on every node in log order.
    pub(crate) fn apply_committed(&self, records: &[MetadataRecord]) -> Result<(), ApplyError> {
        let _writer = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.image();
        let mut next = (*before).clone();
        for record in records {
            next.apply(record)?;
        }
        self.install(&before, next);
        Ok(())
    }

    /// The quorum's state machine: a whole image from a snapshot.
    pub(crate) fn restore(&self, snapshot: Snapshot) {
        let _writer = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.image();
        let next = snapshot.into_image(before.cluster_id.clone(), before.controller_id);
        self.install(&before, next);
    }

    /// The quorum's leader changed: Metadata answers name it as the controller.
    pub(crate) fn set_controller(&self, controller_id: i32) {
        let _writer = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.image();
        if before.controller_id != controller_id {
            let mut next = (*before).clone();
            next.controller_id = controller_id;
            self.install(&before, next);
        }
    }

    fn install(&self, before: &MetadataImage, next: MetadataImage) {
        let next = Arc::new(next);
        {
            let mut slot = self.current.write().unwrap_or_else(|p| p.into_inner());
            *slot = next.clone();
        }
        if let Some(publisher) = self.publisher.get() {
            publisher.publish(before, &next);
        }
    }
}
