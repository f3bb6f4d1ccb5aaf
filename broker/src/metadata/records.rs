//! The changes to the metadata image, as records. Every change is one of these, applied by
//! [`MetadataImage::apply`] the same way everywhere: on a single broker straight after the
//! admin request checked it, in a cluster on every node in the Raft log's order. So `apply`
//! must be deterministic: no clocks, no randomness, no local state (the topic's id is
//! chosen before the record is written).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BrokerInfo, MetadataImage, PartitionMetadata, TopicMetadata};
use crate::quota::QuotaEntity;
use crate::security::acl::AclBinding;
use crate::security::credentials::{CredentialChange, ScramUsers};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker joined or came back: its endpoints and rack; it is unfenced.
    RegisterBroker(BrokerInfo),
    /// The controller stopped hearing from a broker: it leads nothing until it registers.
    FenceBroker {
        node_id: i32,
    },
    /// A broker stopping on purpose (Kafka's controlled shutdown): fenced at once, so that
    /// the controller moves its leaderships to other in-sync replicas while it still
    /// serves, and kept fenced while it answers until it registers again.
    ShutDownBroker {
        node_id: i32,
    },
    CreateTopic(TopicMetadata),
    DeleteTopic {
        name: String,
    },
    AddPartitions {
        topic: String,
        partitions: Vec<PartitionMetadata>,
    },
    /// A partition's new leader and ISR (failover, ISR shrink and expand). Applies only on
    /// top of `expected_leader_epoch` and `expected_partition_epoch`, so a change computed
    /// from a stale image is refused instead of undoing a newer one.
    ChangePartition {
        topic: String,
        partition: i32,
        expected_leader_epoch: i32,
        expected_partition_epoch: i32,
        leader: i32,
        isr: Vec<i32>,
    },
    /// Replaces a topic's config overrides.
    SetTopicConfigs {
        topic: String,
        configs: BTreeMap<String, String>,
    },
    /// Replaces the dynamic configs of one BROKER resource (`""` or a node id); empty removes.
    SetBrokerConfigs {
        resource: String,
        configs: BTreeMap<String, String>,
    },
    /// A broker takes the producer ids [first, first + count) for its idempotent and
    /// transactional producers (Kafka's AllocateProducerIds): ids are unique cluster-wide.
    ReserveProducerIds {
        node_id: i32,
        first: i64,
        count: i64,
    },
    /// Sets (Some) or removes (None) quota values of entities.
    AlterClientQuotas {
        changes: QuotaChanges,
    },
    /// The cluster's id, proposed by each node as it joins: the first one stands (later
    /// ones change nothing), so every broker names the same cluster to clients.
    AgreeClusterId {
        cluster_id: String,
    },
    /// The first node to join a cluster whose ACLs and credentials nobody has set yet
    /// brings its own (from its files: `strata add-scram`, ACLs made before the cluster),
    /// as Kafka's bootstrap records do. Refused once seeded, so a restarted node's older
    /// files never bring back what was deleted since.
    SeedSecurity {
        acls: Vec<AclBinding>,
        scram: ScramUsers,
    },
    /// CreateAcls: adds these (already validated) ACLs; existing ones stay once.
    CreateAcls {
        acls: Vec<AclBinding>,
    },
    /// DeleteAcls: removes exactly these ACLs (what the request's filters matched).
    DeleteAcls {
        acls: Vec<AclBinding>,
    },
    /// AlterUserScramCredentials: upserts and deletions, in order.
    AlterScramCredentials {
        changes: Vec<CredentialChange>,
    },
}

/// Quota values to set (Some) or remove (None), by entity.
pub type QuotaChanges = Vec<(QuotaEntity, Vec<(String, Option<f64>)>)>;

/// Why a record did not apply. Deterministic too: every node refuses the same records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApplyError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("partition {topic}-{partition} does not exist")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("the cluster's ACLs and SCRAM credentials were set already")]
    SecuritySeeded,
    #[error("producer ids from {0} were taken meanwhile")]
    ProducerIdsTaken(i64),
    #[error("partition {topic}-{partition} changed meanwhile (leader epoch {leader_epoch}, partition epoch {partition_epoch})")]
    StaleChange {
        topic: String,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
}

impl MetadataRecord {
    /// A change of `p`'s leader and ISR, applying only on top of `p`'s current epochs.
    pub fn change_partition(
        topic: &str,
        p: &PartitionMetadata,
        leader: i32,
        isr: Vec<i32>,
    ) -> Self {
        MetadataRecord::ChangePartition {
            topic: topic.to_owned(),
            partition: p.partition,
            expected_leader_epoch: p.leader_epoch,
            expected_partition_epoch: p.partition_epoch,
            leader,
            isr,
        }
    }
}

impl MetadataImage {
    /// Applies one record; on error the image is unchanged.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ApplyError> {
        match record {
            MetadataRecord::RegisterBroker(info) => {
                let _ = self.fenced.remove(&info.node_id);
                let _ = self.shutting_down.remove(&info.node_id);
                let _ = self.brokers.insert(info.node_id, info.clone());
            }
            MetadataRecord::FenceBroker { node_id } => {
                let _ = self.fenced.insert(*node_id);
            }
            MetadataRecord::ShutDownBroker { node_id } => {
                let _ = self.fenced.insert(*node_id);
                let _ = self.shutting_down.insert(*node_id);
            }
            MetadataRecord::CreateTopic(topic) => {
                if self.topics.contains_key(&topic.name) {
                    return Err(ApplyError::TopicExists(topic.name.clone()));
                }
                let _ = self.topics.insert(topic.name.clone(), topic.clone());
            }
            MetadataRecord::DeleteTopic { name } => {
                if self.topics.remove(name).is_none() {
                    return Err(ApplyError::UnknownTopic(name.clone()));
                }
            }
            MetadataRecord::AddPartitions { topic, partitions } => {
                let t = self
                    .topics
                    .get_mut(topic)
                    .ok_or_else(|| ApplyError::UnknownTopic(topic.clone()))?;
                for p in partitions {
                    // Only the next partition in line: a retried record adds nothing twice.
                    if usize::try_from(p.partition).ok() == Some(t.partitions.len()) {
                        t.partitions.push(p.clone());
                    }
                }
            }
            MetadataRecord::ChangePartition {
                topic,
                partition,
                expected_leader_epoch,
                expected_partition_epoch,
                leader,
                isr,
            } => {
                let unknown = || ApplyError::UnknownPartition {
                    topic: topic.clone(),
                    partition: *partition,
                };
                let p = self
                    .topics
                    .get_mut(topic)
                    .ok_or_else(unknown)?
                    .partitions
                    .iter_mut()
                    .find(|p| p.partition == *partition)
                    .ok_or_else(unknown)?;
                if p.leader_epoch != *expected_leader_epoch
                    || p.partition_epoch != *expected_partition_epoch
                {
                    return Err(ApplyError::StaleChange {
                        topic: topic.clone(),
                        partition: *partition,
                        leader_epoch: p.leader_epoch,
                        partition_epoch: p.partition_epoch,
                    });
                }
                if p.leader != *leader {
                    p.leader = *leader;
                    p.leader_epoch = p.leader_epoch.saturating_add(1);
                }
                p.isr.clone_from(isr);
                p.partition_epoch = p.partition_epoch.saturating_add(1);
            }
            MetadataRecord::SetTopicConfigs { topic, configs } => {
                self.topics
                    .get_mut(topic)
                    .ok_or_else(|| ApplyError::UnknownTopic(topic.clone()))?
                    .configs
                    .clone_from(configs);
            }
            MetadataRecord::SetBrokerConfigs { resource, configs } => {
                if configs.is_empty() {
                    let _ = self.broker_configs.remove(resource);
                } else {
                    let _ = self
                        .broker_configs
                        .insert(resource.clone(), configs.clone());
                }
            }
            MetadataRecord::ReserveProducerIds { first, count, .. } => {
                if *first != self.next_producer_id || *count <= 0 {
                    return Err(ApplyError::ProducerIdsTaken(*first));
                }
                self.next_producer_id = first.saturating_add(*count);
            }
            MetadataRecord::AlterClientQuotas { changes } => {
                for (entity, ops) in changes {
                    let values = self.client_quotas.entry(entity.clone()).or_default();
                    for (key, value) in ops {
                        match value {
                            Some(v) => {
                                let _ = values.insert(key.clone(), *v);
                            }
                            None => {
                                let _ = values.remove(key);
                            }
                        }
                    }
                    if values.is_empty() {
                        let _ = self.client_quotas.remove(entity);
                    }
                }
            }
            MetadataRecord::AgreeClusterId { cluster_id } => {
                if !self.cluster_id_agreed {
                    self.cluster_id.clone_from(cluster_id);
                    self.cluster_id_agreed = true;
                }
            }
            MetadataRecord::SeedSecurity { acls, scram } => {
                if !self.security.seed(acls, scram) {
                    return Err(ApplyError::SecuritySeeded);
                }
            }
            MetadataRecord::CreateAcls { acls } => self.security.create_acls(acls),
            MetadataRecord::DeleteAcls { acls } => self.security.delete_acls(acls),
            MetadataRecord::AlterScramCredentials { changes } => {
                self.security.alter_scram(changes);
            }
        }
        self.reindex();
        Ok(())
    }
}
