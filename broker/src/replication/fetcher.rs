//! Followers copying their leaders (Kafka's `ReplicaFetcherThread`): one task per leader
//! broker fetches every partition this broker follows there, over the leader's
//! inter-broker listener, with Kafka's own Fetch (replica id set) — so the leader's side is
//! the ordinary Fetch handler. After a change of leader or epoch, a partition first asks
//! the leader where its own latest epoch ends (OffsetForLeaderEpoch) and cuts whatever it
//! has beyond that: the divergent tail of a deposed leader.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strata_protocol::kafka_protocol;
use strata_storage::TopicPartition;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::client::{ClientError, LeaderConnection};
use super::inter_broker::{InterBrokerConfigError, InterBrokerSecurity, SharedSecurity};
use crate::errors::{from_code, ErrorCode};
use crate::partition::manager::now_ms;
use crate::partition::Partition;
use crate::server::Broker;

const FETCH_VERSION: i16 = 12;
const EPOCH_VERSION: i16 = 4;
/// Kafka's `replica.fetch.response.max.bytes` default.
const RESPONSE_MAX_BYTES: i32 = 10 * 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Following {
    partition: Arc<Partition>,
    /// Check for a divergent tail before the next fetch.
    truncate_first: bool,
    /// Not fetched before then (an error the next metadata image should resolve).
    paused_until: Option<Instant>,
}

type Followed = Arc<Mutex<HashMap<TopicPartition, Following>>>;

struct Fetcher {
    partitions: Followed,
    wake: Arc<Notify>,
    stop: CancellationToken,
}

/// The fetchers of this broker, one per leader it follows partitions of.
#[derive(Default)]
pub struct FetcherManager {
    by_leader: Mutex<HashMap<i32, Fetcher>>,
    context: OnceLock<(tokio::runtime::Handle, Weak<Broker>, SharedSecurity)>,
}

impl FetcherManager {
    /// Lets fetchers start (on `runtime`, the broker's main one). In a cluster, checks how
    /// they will reach the other brokers first (TLS stores, SASL login).
    pub fn start(
        &self,
        runtime: tokio::runtime::Handle,
        broker: &Arc<Broker>,
    ) -> Result<(), InterBrokerConfigError> {
        let security = if broker.metadata.is_cluster() {
            InterBrokerSecurity::from_config(&broker.config)?
        } else {
            InterBrokerSecurity::default()
        };
        let _ = self
            .context
            .set((runtime, Arc::downgrade(broker), Arc::new(security)));
        Ok(())
    }

    /// Runs `task` on the broker's main runtime (publishers run on whatever thread
    /// committed the change).
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        match self.context.get() {
            Some((runtime, _, _)) => {
                let _task = runtime.spawn(task);
            }
            None => tracing::warn!("background task before the broker started; skipped"),
        }
    }

    fn fetchers(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Fetcher>> {
        self.by_leader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `partition` follows `leader` (-1: none, the partition is offline). `changed`: a new
    /// leader or epoch, so the tail is checked first.
    pub fn follow(&self, partition: &Arc<Partition>, leader: i32, changed: bool) {
        let mut fetchers = self.fetchers();
        for (id, fetcher) in fetchers.iter() {
            if *id != leader {
                let _ = lock(&fetcher.partitions).remove(&partition.tp);
            }
        }
        if leader < 0 {
            return;
        }
        let Some((runtime, broker, security)) = self.context.get() else {
            tracing::warn!(partition = %partition.tp, "cannot follow before the broker started");
            return;
        };
        let fetcher = fetchers.entry(leader).or_insert_with(|| {
            let fetcher = Fetcher {
                partitions: Arc::default(),
                wake: Arc::default(),
                stop: CancellationToken::new(),
            };
            let _task = runtime.spawn(run(
                broker.clone(),
                security.clone(),
                leader,
                fetcher.partitions.clone(),
                fetcher.wake.clone(),
                fetcher.stop.clone(),
            ));
            fetcher
        });
        {
            let mut followed = lock(&fetcher.partitions);
            let entry = followed
                .entry(partition.tp.clone())
                .or_insert_with(|| Following {
                    partition: partition.clone(),
                    truncate_first: true,
                    paused_until: None,
                });
            if changed {
                entry.partition = partition.clone();
                entry.truncate_first = true;
                entry.paused_until = None;
            }
        }
        fetcher.wake.notify_one();
    }

    pub fn stop_following(&self, partition: &Partition) {
        for fetcher in self.fetchers().values() {
            let _ = lock(&fetcher.partitions).remove(&partition.tp);
        }
    }

    /// Stops every fetcher (shutdown).
    pub fn shutdown(&self) {
        for (_, fetcher) in self.fetchers().drain() {
            fetcher.stop.cancel();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One leader's fetcher: connect, check tails, fetch, append, repeat.
async fn run(
    broker: Weak<Broker>,
    security: SharedSecurity,
    leader: i32,
    followed: Followed,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut connection: Option<LeaderConnection> = None;
    let mut failures = 0u32;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let backoff = Duration::from_millis(broker.config.replica_fetch_backoff_ms.max(10) as u64);
        let now = Instant::now();
        let batch: Vec<(TopicPartition, Following)> = lock(&followed)
            .iter()
            .filter(|(_, f)| f.paused_until.is_none_or(|t| t <= now))
            .map(|(tp, f)| (tp.clone(), f.clone()))
            .collect();
        if batch.is_empty() {
            drop(broker);
            tokio::select! {
                () = stop.cancelled() => return,
                () = wake.notified() => {}
                () = tokio::time::sleep(backoff) => {}
            }
            continue;
        }
        let step = async {
            if connection.is_none() {
                connection = Some(connect(&broker, &security, leader).await?);
            }
            let Some(conn) = connection.as_mut() else {
                return Ok(());
            };
            let truncating: Vec<&(TopicPartition, Following)> =
                batch.iter().filter(|(_, f)| f.truncate_first).collect();
            if !truncating.is_empty() {
                check_tails(&broker, conn, &followed, &truncating).await?;
            }
            let fetching: Vec<&(TopicPartition, Following)> =
                batch.iter().filter(|(_, f)| !f.truncate_first).collect();
            if !fetching.is_empty() {
                fetch(&broker, conn, &followed, &fetching, backoff).await?;
            }
            Ok::<(), ClientError>(())
        };
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = step => outcome,
        };
        match outcome {
            Ok(()) => failures = 0,
            Err(e) => {
                connection = None;
                failures = failures.saturating_add(1);
                // Loud once, then quiet while the leader stays unreachable.
                if failures == 1 {
                    tracing::warn!(leader, error = %e, "replica fetcher: the leader is unreachable; retrying");
                } else {
                    tracing::debug!(leader, error = %e, "replica fetcher: retrying");
                }
                drop(broker);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}

async fn connect(
    broker: &Broker,
    security: &InterBrokerSecurity,
    leader: i32,
) -> Result<LeaderConnection, ClientError> {
    let image = broker.metadata.image();
    let endpoint = image
        .brokers
        .get(&leader)
        .and_then(|b| b.endpoint_for(&security.listener))
        .ok_or_else(|| ClientError::Connect {
            addr: format!("node {leader}"),
            reason: "not registered in the metadata".into(),
        })?;
    LeaderConnection::connect(&endpoint.host, endpoint.port, broker.node_id(), security).await
}

/// Asks the leader where each partition's latest epoch ends and truncates there.
async fn check_tails(
    broker: &Broker,
    conn: &mut LeaderConnection,
    followed: &Followed,
    truncating: &[&(TopicPartition, Following)],
) -> Result<(), ClientError> {
    let mut by_topic: HashMap<&str, Vec<OffsetForLeaderPartition>> = HashMap::new();
    let mut no_history = Vec::new();
    for (tp, f) in truncating {
        match f.partition.latest_epoch() {
            Some(epoch) => by_topic.entry(tp.topic.as_str()).or_default().push(
                OffsetForLeaderPartition::default()
                    .with_partition(tp.partition)
                    .with_current_leader_epoch(f.partition.leader_epoch())
                    .with_leader_epoch(epoch),
            ),
            // Nothing written yet: nothing can diverge.
            None => no_history.push(tp.clone()),
        }
    }
    settle(followed, &no_history);
    if by_topic.is_empty() {
        return Ok(());
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(broker.node_id()))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response: OffsetForLeaderEpochResponse = conn
        .call(
            ApiKey::OffsetForLeaderEpoch,
            EPOCH_VERSION,
            &request,
            REQUEST_TIMEOUT,
        )
        .await?;
    for topic in response.topics {
        for p in topic.partitions {
            let tp = TopicPartition {
                topic: topic.topic.0.to_string(),
                partition: p.partition,
            };
            let Some(partition) = lock(followed).get(&tp).map(|f| f.partition.clone()) else {
                continue;
            };
            if p.error_code != 0 {
                pause(followed, &tp, from_code(p.error_code));
                continue;
            }
            // Kafka's rule: the leader's end of the largest epoch both know, or less if this
            // log ends that epoch earlier; with no common epoch, the high watermark.
            let target = if p.leader_epoch < 0 || p.end_offset < 0 {
                partition.high_watermark()
            } else {
                let (epoch, own_end) = partition
                    .end_offset_for_epoch(p.leader_epoch)
                    .unwrap_or((-1, -1));
                if epoch == p.leader_epoch && own_end >= 0 {
                    p.end_offset.min(own_end)
                } else {
                    p.end_offset
                }
            };
            match partition.truncate_to(target) {
                Ok(()) => settle(followed, std::slice::from_ref(&tp)),
                Err(code) => pause(followed, &tp, code),
            }
        }
    }
    Ok(())
}

/// One fetch from the leader, appended.
async fn fetch(
    broker: &Broker,
    conn: &mut LeaderConnection,
    followed: &Followed,
    fetching: &[&(TopicPartition, Following)],
    backoff: Duration,
) -> Result<(), ClientError> {
    let config = &broker.config;
    let mut by_topic: HashMap<&str, Vec<FetchPartition>> = HashMap::new();
    for (tp, f) in fetching {
        by_topic.entry(tp.topic.as_str()).or_default().push(
            FetchPartition::default()
                .with_partition(tp.partition)
                .with_current_leader_epoch(f.partition.leader_epoch())
                .with_fetch_offset(f.partition.log_end_offset())
                .with_log_start_offset(f.partition.log_start_offset())
                .with_partition_max_bytes(config.replica_fetch_max_bytes),
        );
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(broker.node_id()))
        .with_max_wait_ms(config.replica_fetch_wait_max_ms)
        .with_min_bytes(config.replica_fetch_min_bytes)
        .with_max_bytes(RESPONSE_MAX_BYTES)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let wait = Duration::from_millis(config.replica_fetch_wait_max_ms.max(0) as u64);
    let response: FetchResponse = conn
        .call(
            ApiKey::Fetch,
            FETCH_VERSION,
            &request,
            REQUEST_TIMEOUT + wait,
        )
        .await?;
    if response.error_code != 0 {
        tracing::debug!(code = response.error_code, "replica fetch refused");
        tokio::time::sleep(backoff).await;
        return Ok(());
    }
    let now = now_ms();
    for topic in response.responses {
        for p in topic.partitions {
            let tp = TopicPartition {
                topic: topic.topic.0.to_string(),
                partition: p.partition_index,
            };
            let Some(partition) = lock(followed).get(&tp).map(|f| f.partition.clone()) else {
                continue;
            };
            match p.error_code {
                0 => {}
                1 if p.log_start_offset > partition.log_end_offset() => {
                    // OFFSET_OUT_OF_RANGE below the leader's log start: nothing this log
                    // holds is in the leader's any more; start over where the leader's starts.
                    if let Err(code) = partition.truncate_fully_and_start_at(p.log_start_offset) {
                        pause(followed, &tp, code);
                    }
                    continue;
                }
                1 => {
                    // OFFSET_OUT_OF_RANGE past the leader's end: our tail diverged.
                    mark_truncate(followed, &tp);
                    continue;
                }
                code => {
                    pause(followed, &tp, from_code(code));
                    continue;
                }
            }
            if let Some(records) = p.records.filter(|r| !r.is_empty()) {
                if let Err(code) = partition.append_as_follower(&records, now) {
                    if code == ErrorCode::OffsetOutOfRange {
                        mark_truncate(followed, &tp);
                    } else {
                        pause(followed, &tp, code);
                    }
                    continue;
                }
            }
            partition.set_leader_high_watermark(p.high_watermark);
            if let Err(code) = partition.follow_leader_log_start(p.log_start_offset) {
                tracing::warn!(partition = %tp, error = ?code, "following the leader's log start failed");
            }
        }
    }
    Ok(())
}

fn settle(followed: &Followed, done: &[TopicPartition]) {
    let mut followed = lock(followed);
    for tp in done {
        if let Some(f) = followed.get_mut(tp) {
            f.truncate_first = false;
        }
    }
}

fn mark_truncate(followed: &Followed, tp: &TopicPartition) {
    if let Some(f) = lock(followed).get_mut(tp) {
        f.truncate_first = true;
    }
}

/// A partition error the next metadata image should resolve (a leader that moved on): wait
/// a little before asking again.
fn pause(followed: &Followed, tp: &TopicPartition, code: ErrorCode) {
    tracing::debug!(partition = %tp, error = ?code, "replica fetch of a partition paused");
    if let Some(f) = lock(followed).get_mut(tp) {
        f.paused_until = Some(Instant::now() + Duration::from_millis(500));
    }
}
