//! What a broker does with each new metadata image (Kafka's `BrokerMetadataPublisher`):
//! deleted topics' logs go, the logs of partitions it now hosts open, configs reach the live
//! logs, and every hosted partition takes the role the image gives it — leader, or follower
//! of another broker (whose fetcher then copies from that leader).

use std::sync::{Arc, Weak};

use crate::metadata::{MetadataImage, PartitionMetadata, Publisher, TopicMetadata};
use crate::partition::manager::now_ms;
use crate::server::Broker;
use crate::topics;

pub struct ReplicaPublisher {
    broker: Weak<Broker>,
}

impl ReplicaPublisher {
    pub fn new(broker: &Arc<Broker>) -> Arc<Self> {
        Arc::new(Self {
            broker: Arc::downgrade(broker),
        })
    }
}

impl Publisher for ReplicaPublisher {
    fn publish(&self, before: &MetadataImage, after: &MetadataImage) {
        if let Some(broker) = self.broker.upgrade() {
            publish(&broker, before, after);
        }
    }
}

/// Brings this broker's replicas in line with `after`, given it was in line with `before`.
pub fn publish(broker: &Arc<Broker>, before: &MetadataImage, after: &MetadataImage) {
    crate::security::replicated::publish(broker, before, after);
    for (name, topic) in &before.topics {
        if after.topics.get(name).map(|t| t.id) != Some(topic.id) {
            broker.replicas.delete_topic(name);
            tracing::info!(topic = %name, "deleted topic's logs");
        }
    }
    let configs_changed = before.broker_configs != after.broker_configs;
    if configs_changed {
        broker.set_current_config(crate::server::effective_config(&broker.config, after));
    }
    for (name, topic) in &after.topics {
        let old = before.topics.get(name).filter(|t| t.id == topic.id);
        let topic_changed = old.is_none_or(|o| o.configs != topic.configs);
        if old.is_some_and(|o| o.partitions == topic.partitions)
            && !topic_changed
            && !configs_changed
        {
            continue;
        }
        apply_topic(broker, topic, old, topic_changed || configs_changed);
    }
}

fn apply_topic(
    broker: &Arc<Broker>,
    topic: &TopicMetadata,
    old: Option<&TopicMetadata>,
    reconfigure: bool,
) {
    let node = broker.node_id();
    let config = match topics::resolve_topic_config(broker, &topic.configs) {
        Ok(config) => topics::log_config(&config),
        Err((_, reason)) => {
            tracing::error!(topic = %topic.name, %reason, "topic config does not resolve; its logs keep their config");
            return;
        }
    };
    for p in topic
        .partitions
        .iter()
        .filter(|p| p.replicas.contains(&node))
    {
        let unchanged = old
            .and_then(|o| o.partitions.iter().find(|q| q.partition == p.partition))
            .is_some_and(|q| q == p);
        let partition = match broker.replicas.get(&topic.name, p.partition) {
            Some(existing) => {
                if reconfigure {
                    existing.set_log_config(config.clone());
                }
                if unchanged {
                    continue;
                }
                existing
            }
            None => match broker.replicas.open_partition(
                &topic.name,
                p.partition,
                topic.id,
                p.leader_epoch,
                config.clone(),
            ) {
                Ok(opened) => opened,
                Err(e) => {
                    tracing::error!(topic = %topic.name, partition = p.partition, error = %e,
                        "cannot open the log of a partition this broker hosts");
                    continue;
                }
            },
        };
        take_role(broker, &partition, p);
    }
}

/// Leader or follower, as the image says.
pub fn take_role(
    broker: &Arc<Broker>,
    partition: &Arc<crate::partition::Partition>,
    p: &PartitionMetadata,
) {
    let node = broker.node_id();
    if p.leader == node {
        let new = partition.become_leader(
            node,
            p.leader_epoch,
            &p.replicas,
            &p.isr,
            p.partition_epoch,
            now_ms(),
        );
        if new {
            tracing::info!(partition = %partition.tp, epoch = p.leader_epoch, isr = ?p.isr, "leading");
            if partition.tp.topic == crate::offsets_topic::OFFSETS_TOPIC
                && broker.metadata.is_cluster()
            {
                // This broker now coordinates the partition's groups: load them.
                let (owner, index) = (broker.clone(), p.partition);
                broker.fetchers.spawn(async move {
                    if let Err(code) = owner.groups.load_partition(index).await {
                        tracing::error!(partition = index, code, "loading groups failed");
                    }
                });
            }
        }
        broker.fetchers.stop_following(partition);
    } else {
        let changed = partition.become_follower(
            node,
            p.leader,
            p.leader_epoch,
            &p.replicas,
            &p.isr,
            p.partition_epoch,
        );
        if changed {
            tracing::info!(partition = %partition.tp, leader = p.leader, epoch = p.leader_epoch, "following");
            if partition.tp.topic == crate::offsets_topic::OFFSETS_TOPIC {
                broker.groups.unload_partition(p.partition);
            }
        }
        broker.fetchers.follow(partition, p.leader, changed);
    }
}
