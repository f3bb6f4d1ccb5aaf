//! The active controller's duties (the node leading the metadata quorum): fence a broker it
//! has not heard from for `broker.session.timeout.ms` — take it out of every ISR and give
//! the partitions it led to another in-sync replica, on another rack when there is one
//! (Kafka's clean election: never a replica outside the ISR) — and unfence a broker that
//! answers again (unless it is shutting down on purpose); elect leaders for partitions left
//! without one once an ISR member is back. A broker's controlled shutdown fences it itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::metadata::{MetadataImage, MetadataRecord, PartitionMetadata};
use crate::server::Broker;

const PERIOD: Duration = Duration::from_millis(250);

pub async fn controller_loop(broker: Arc<Broker>, stop: CancellationToken) {
    let session = Duration::from_millis(broker.config.broker_session_timeout_ms.max(1) as u64);
    let rebalance = LeaderRebalance::from_config(&broker.config);
    let mut last_rebalance = Instant::now();
    let mut active_since: Option<Instant> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(PERIOD) => {}
        }
        let Some(link) = broker.metadata.cluster().cloned() else {
            continue;
        };
        if !link.is_leader() {
            active_since = None;
            continue;
        }
        let since = *active_since.get_or_insert_with(Instant::now);
        let contact = link.last_contact();
        let image = broker.metadata.image();
        let now = Instant::now();
        // A new controller gives everyone a full session before judging them.
        let alive = |node: i32| {
            node == broker.node_id()
                || contact
                    .get(&node)
                    .map_or(now.duration_since(since) < session, |at| {
                        now.duration_since(*at) < session
                    })
        };
        let mut records = duties(&image, broker.node_id(), &alive);
        if records.is_empty() {
            if let Some(rebalance) =
                rebalance.filter(|r| now.duration_since(last_rebalance) >= r.every)
            {
                last_rebalance = now;
                records = preferred_leaders(&image, rebalance.max_imbalance_percent);
            }
        }
        if records.is_empty() {
            continue;
        }
        for record in &records {
            tracing::info!(?record, "controller: metadata change");
        }
        if let Err(e) = link.commit(records).await {
            tracing::warn!(error = %e, "controller: change not committed; retrying");
        }
    }
}

/// `auto.leader.rebalance.enable` and its schedule.
#[derive(Clone, Copy)]
struct LeaderRebalance {
    every: Duration,
    max_imbalance_percent: i64,
}

impl LeaderRebalance {
    fn from_config(config: &strata_config::BrokerConfig) -> Option<Self> {
        let enabled = config
            .get("auto.leader.rebalance.enable")
            .is_none_or(|v| v.trim().eq_ignore_ascii_case("true"));
        let number = |key: &str, default: i64| {
            config
                .get(key)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(default)
        };
        enabled.then(|| LeaderRebalance {
            every: Duration::from_secs(
                u64::try_from(number("leader.imbalance.check.interval.seconds", 300).max(1))
                    .unwrap_or(300),
            ),
            max_imbalance_percent: number("leader.imbalance.per.broker.percentage", 10),
        })
    }
}

/// Kafka's automatic preferred-leader election: for each broker whose share of the
/// partitions it prefers (is the first replica of) but does not lead exceeds
/// `max_imbalance_percent`, those partitions go back to it where it is in sync and unfenced.
/// After a rolling restart this spreads leaderships again, instead of leaving the last
/// broker restarted leading nothing.
pub fn preferred_leaders(image: &MetadataImage, max_imbalance_percent: i64) -> Vec<MetadataRecord> {
    let mut by_preferred: BTreeMap<i32, (i64, Vec<MetadataRecord>)> = BTreeMap::new();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            let Some(&preferred) = p.replicas.first() else {
                continue;
            };
            let entry = by_preferred.entry(preferred).or_default();
            entry.0 += 1;
            if let Ok(change) = preferred_election(image, &topic.name, p) {
                entry.1.push(change);
            }
        }
    }
    by_preferred
        .into_values()
        .filter(|(total, moves)| {
            i64::try_from(moves.len())
                .unwrap_or(i64::MAX)
                .saturating_mul(100)
                > max_imbalance_percent.saturating_mul(*total)
        })
        .flat_map(|(_, moves)| moves)
        .collect()
}

/// Why a partition's preferred (first) replica cannot take its leadership now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPreferredElection {
    /// It leads already.
    NotNeeded,
    /// It is not in sync, not registered, or fenced (or the partition has no replicas).
    NotAvailable,
}

/// The change that gives `p`'s leadership to its preferred replica, when that replica is in
/// sync and unfenced: for automatic rebalancing and for ElectLeaders alike.
pub fn preferred_election(
    image: &MetadataImage,
    topic: &str,
    p: &PartitionMetadata,
) -> Result<MetadataRecord, NoPreferredElection> {
    let &preferred = p
        .replicas
        .first()
        .ok_or(NoPreferredElection::NotAvailable)?;
    if p.leader == preferred {
        return Err(NoPreferredElection::NotNeeded);
    }
    let available = p.isr.contains(&preferred)
        && image.brokers.contains_key(&preferred)
        && !image.fenced.contains(&preferred);
    if !available {
        return Err(NoPreferredElection::NotAvailable);
    }
    Ok(MetadataRecord::change_partition(
        topic,
        p,
        preferred,
        p.isr.clone(),
    ))
}

/// What the controller should change given who is alive.
pub fn duties(
    image: &MetadataImage,
    controller: i32,
    alive: &dyn Fn(i32) -> bool,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    let mut fenced = image.fenced.clone();
    for (id, info) in &image.brokers {
        let is_fenced = image.fenced.contains(id);
        if !is_fenced && !alive(*id) && *id != controller {
            tracing::warn!(
                node = id,
                "controller: broker stopped answering; fencing it"
            );
            records.push(MetadataRecord::FenceBroker { node_id: *id });
            let _ = fenced.insert(*id);
        } else if is_fenced && alive(*id) && !image.shutting_down.contains(id) {
            records.push(MetadataRecord::RegisterBroker(info.clone()));
            let _ = fenced.remove(id);
        }
    }
    let usable = |id: i32| image.brokers.contains_key(&id) && !fenced.contains(&id);
    let racks: BTreeMap<i32, Option<&str>> = image
        .brokers
        .values()
        .map(|b| (b.node_id, b.rack.as_deref()))
        .collect();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            let isr: Vec<i32> = p.isr.iter().copied().filter(|r| usable(*r)).collect();
            let leader_ok = p.leader >= 0 && usable(p.leader);
            if leader_ok && isr.len() == p.isr.len() {
                continue;
            }
            let (leader, isr) = if leader_ok {
                (p.leader, isr)
            } else if isr.is_empty() {
                // No in-sync replica left: offline (no unclean election); the ISR keeps the
                // last members so that whichever comes back first leads with all acked data.
                if p.leader == -1 {
                    continue;
                }
                (-1, p.isr.clone())
            } else {
                // Prefer a new leader on another rack than the failed one (its rack may be
                // the one that failed), in replica order.
                let old_rack = racks.get(&p.leader).copied().flatten();
                let pick = p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|r| isr.contains(r))
                    .min_by_key(|r| {
                        racks.get(r).copied().flatten() == old_rack && old_rack.is_some()
                    });
                (pick.unwrap_or(-1), isr)
            };
            if leader == p.leader && isr == p.isr {
                continue;
            }
            records.push(MetadataRecord::change_partition(
                &topic.name,
                p,
                leader,
                isr,
            ));
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{BrokerInfo, PartitionMetadata, TopicMetadata};

    fn image() -> MetadataImage {
        let mut image = MetadataImage::default();
        for (id, rack) in [(1, "a"), (2, "a"), (3, "b")] {
            let _ = image.brokers.insert(
                id,
                BrokerInfo {
                    node_id: id,
                    endpoints: Vec::new(),
                    rack: Some(rack.into()),
                },
            );
        }
        let _ = image.topics.insert(
            "t".into(),
            TopicMetadata {
                name: "t".into(),
                id: uuid::Uuid::nil(),
                partitions: vec![PartitionMetadata {
                    partition: 0,
                    leader: 1,
                    leader_epoch: 4,
                    replicas: vec![1, 2, 3],
                    isr: vec![1, 2, 3],
                    partition_epoch: 7,
                }],
                configs: BTreeMap::new(),
                internal: false,
            },
        );
        image
    }

    fn partition_0(image: &MetadataImage) -> Option<PartitionMetadata> {
        image
            .topics
            .get("t")
            .and_then(|t| t.partitions.first())
            .cloned()
    }

    #[test]
    fn a_dead_leader_is_fenced_and_replaced_by_an_isr_member_on_another_rack() {
        let mut image = image();
        let records = duties(&image, 3, &|id| id != 1);
        assert!(matches!(
            records.first(),
            Some(MetadataRecord::FenceBroker { node_id: 1 })
        ));
        let change = records.get(1).cloned();
        let Some(MetadataRecord::ChangePartition { leader, isr, .. }) = change else {
            panic!("expected a partition change, found {records:?}");
        };
        assert_eq!(
            (leader, isr),
            (3, vec![2, 3]),
            "rack b, not 2 on the failed rack a"
        );
        for r in &records {
            image
                .apply(r)
                .map_err(|e| e.to_string())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let p = partition_0(&image);
        assert_eq!(
            p.map(|p| (p.leader, p.leader_epoch, p.partition_epoch)),
            Some((3, 5, 8))
        );
        assert!(
            duties(&image, 3, &|id| id != 1).is_empty(),
            "nothing left to do"
        );
    }

    #[test]
    fn with_no_isr_member_alive_the_partition_goes_offline_then_returns_with_it() {
        let mut image = image();
        let all_dead = duties(&image, 9, &|_| false);
        for r in &all_dead {
            let _ = image.apply(r);
        }
        let p = partition_0(&image);
        assert_eq!(p.map(|p| (p.leader, p.isr)), Some((-1, vec![1, 2, 3])));
        let back = duties(&image, 9, &|id| id == 2);
        for r in &back {
            let _ = image.apply(r);
        }
        let p = partition_0(&image);
        assert_eq!(p.map(|p| (p.leader, p.isr)), Some((2, vec![2])));
    }

    #[test]
    fn a_broker_shutting_down_hands_over_and_stays_fenced_while_it_answers() {
        let mut image = image();
        image
            .apply(&MetadataRecord::ShutDownBroker { node_id: 1 })
            .unwrap();
        // Everyone still answers; 1 is not unfenced, its leadership moves (rack b first).
        let records = duties(&image, 3, &|_| true);
        let [MetadataRecord::ChangePartition { leader, isr, .. }] = records.as_slice() else {
            panic!("expected only a partition change, found {records:?}");
        };
        assert_eq!((*leader, isr.clone()), (3, vec![2, 3]));
        for r in &records {
            image.apply(r).unwrap();
        }
        assert!(duties(&image, 3, &|_| true).is_empty(), "1 stays fenced");
        // Its next start registers it again, and it is an ordinary broker once more.
        let info = image.brokers.get(&1).cloned().unwrap();
        image.apply(&MetadataRecord::RegisterBroker(info)).unwrap();
        assert!(image.fenced.is_empty() && image.shutting_down.is_empty());
    }

    #[test]
    fn leaderships_go_back_to_in_sync_preferred_replicas_past_the_imbalance_threshold() {
        let mut image = image();
        // Partition 0 prefers broker 1 but broker 2 leads it.
        let set_leader = |image: &mut MetadataImage, leader: i32| {
            let p = image
                .topics
                .get_mut("t")
                .and_then(|t| t.partitions.first_mut())
                .unwrap();
            p.leader = leader;
        };
        set_leader(&mut image, 2);
        let moves = preferred_leaders(&image, 10);
        let [MetadataRecord::ChangePartition { leader, isr, .. }] = moves.as_slice() else {
            panic!("expected one move, found {moves:?}");
        };
        assert_eq!((*leader, isr.clone()), (1, vec![1, 2, 3]));
        // Not while 1 is fenced, nor when the share is within the threshold (1 of 1 = 100%).
        let _ = image.fenced.insert(1);
        assert!(preferred_leaders(&image, 10).is_empty());
        let _ = image.fenced.remove(&1);
        assert!(preferred_leaders(&image, 100).is_empty());
        // Nor when it already leads.
        set_leader(&mut image, 1);
        assert!(preferred_leaders(&image, 0).is_empty());
    }
}
