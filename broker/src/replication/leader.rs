//! The leader's side of replication: answering a follower's fetch (its progress moves the
//! high watermark), and changing the ISR through the metadata quorum — adding a follower
//! that caught up, dropping one that fell behind for `replica.lag.time.max.ms` (Kafka's
//! AlterPartition, here a record the leader commits itself).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::errors::ErrorCode;
use crate::metadata::MetadataRecord;
use crate::partition::manager::now_ms;
use crate::partition::{Partition, ReadOutcome};
use crate::server::Broker;

/// Reads for follower `follower` from `fetch_offset` and records its progress.
pub fn serve_follower(
    broker: &Broker,
    partition: &Arc<Partition>,
    follower: i32,
    fetch_offset: i64,
    follower_log_start: i64,
    max_bytes: usize,
) -> Result<ReadOutcome, ErrorCode> {
    let mut read = partition.read_to_log_end(fetch_offset, max_bytes)?;
    let effect =
        partition.record_follower_fetch(follower, fetch_offset, follower_log_start, now_ms());
    read.high_watermark = partition.high_watermark();
    if effect.rejoins_isr {
        let (mut isr, _) = partition.isr();
        if !isr.contains(&follower) {
            isr.push(follower);
            isr.sort_unstable();
            tracing::info!(partition = %partition.tp, follower, "follower caught up: adding it to the ISR");
            change_isr(broker, partition, isr);
        }
    }
    Ok(read)
}

/// Commits `isr` as the partition's new ISR (same leader, same epoch), unless the image
/// moved on meanwhile (then the record is refused and the next check starts over).
pub fn change_isr(broker: &Broker, partition: &Arc<Partition>, isr: Vec<i32>) {
    let (current, partition_epoch) = partition.isr();
    let counted = broker.metrics.isr_change_counter(isr.len() > current.len());
    partition.set_isr_change_in_flight(true);
    let record = MetadataRecord::ChangePartition {
        topic: partition.tp.topic.clone(),
        partition: partition.tp.partition,
        expected_leader_epoch: partition.leader_epoch(),
        expected_partition_epoch: partition_epoch,
        leader: broker.node_id(),
        isr,
    };
    let store = broker.metadata.clone();
    let partition = partition.clone();
    let commit = async move {
        match store.commit_async(vec![record]).await {
            Ok(()) => counted.inc(),
            Err(e) => {
                tracing::info!(partition = %partition.tp, error = %e, "ISR change not committed");
                partition.set_isr_change_in_flight(false);
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let _task = runtime.spawn(commit);
        }
        Err(_) => tracing::warn!("ISR change outside a runtime; skipped"),
    }
}

/// Every so often, drops the followers that fell behind from the ISRs this broker leads.
pub async fn isr_expiry_loop(broker: Arc<Broker>, stop: CancellationToken) {
    let max_lag = broker.config.replica_lag_time_max_ms.max(1);
    let period = Duration::from_millis((max_lag / 2).clamp(100, 5_000) as u64);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let now = now_ms();
        for partition in broker.replicas.all() {
            if !partition.is_leader() {
                continue;
            }
            let lagging = partition.lagging_followers(now, max_lag);
            if lagging.is_empty() {
                continue;
            }
            let (isr, _) = partition.isr();
            let shrunk: Vec<i32> = isr.into_iter().filter(|r| !lagging.contains(r)).collect();
            tracing::warn!(partition = %partition.tp, ?lagging, isr = ?shrunk,
                "followers fell behind for replica.lag.time.max.ms: shrinking the ISR");
            change_isr(&broker, &partition, shrunk);
        }
    }
}
