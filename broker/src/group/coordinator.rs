//! The GroupCoordinator: the registry of groups (one lock each), partition loading from
//! `__consumer_offsets`, persistence helpers and the introspection the broker needs.
//! The request APIs live in `membership`, `offsets` and `admin`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;

use super::clock::Clock;
use super::schema::{GroupMetadataValue, OffsetCommitValue, OffsetsKey};
use super::state::{ClassicGroup, CommittedOffset, GroupState, Member};
use super::{codes, GroupConfig, OffsetsLog, OffsetsRecord, TopicValidator};

pub(crate) type GroupHandle = Mutex<ClassicGroup>;

/// Locks a group; a panic elsewhere must not make the group unusable forever.
pub(crate) fn lock(handle: &GroupHandle) -> MutexGuard<'_, ClassicGroup> {
    handle.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoadState {
    Loading,
    Loaded,
    /// Another broker leads the partition (in a cluster): its groups are not here.
    Elsewhere,
}

/// Kafka's classic group coordinator for the partitions of `__consumer_offsets` this
/// broker leads. Shared as `Arc`; every method is safe to call concurrently.
pub struct GroupCoordinator {
    pub(crate) config: GroupConfig,
    pub(crate) log: Arc<dyn OffsetsLog>,
    groups: RwLock<HashMap<String, Arc<GroupHandle>>>,
    partitions: Mutex<HashMap<i32, LoadState>>,
    pub(crate) clock: Clock,
    /// `true` once shut down; timers select on it.
    shutdown: watch::Sender<bool>,
    pub(crate) weak: Weak<GroupCoordinator>,
    incarnations: AtomicU64,
    topic_validator: RwLock<Option<TopicValidator>>,
    /// Offsets committed inside transactions not yet ended (`txn_offsets`).
    pub(crate) pending_txn_offsets: Mutex<super::txn_offsets::PendingTxnOffsets>,
}

impl GroupCoordinator {
    /// Creates the coordinator. Every partition starts unloaded (requests for its groups
    /// get COORDINATOR_LOAD_IN_PROGRESS) until [`Self::load_partition`] has run for it.
    /// Called inside a tokio runtime it also starts the offset-retention timer.
    pub fn new(config: GroupConfig, log: Arc<dyn OffsetsLog>) -> Arc<Self> {
        let coordinator = Arc::new_cyclic(|weak| Self {
            config,
            log,
            groups: RwLock::new(HashMap::new()),
            partitions: Mutex::new(HashMap::new()),
            clock: Clock::new(),
            shutdown: watch::Sender::new(false),
            weak: weak.clone(),
            incarnations: AtomicU64::new(0),
            topic_validator: RwLock::new(None),
            pending_txn_offsets: Mutex::new(HashMap::new()),
        });
        coordinator.start_retention_timer();
        coordinator
    }

    /// Installs the OffsetCommit topic-existence hook (see [`TopicValidator`]).
    pub fn set_topic_validator(&self, validator: TopicValidator) {
        *self
            .topic_validator
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(validator);
    }

    pub(crate) fn topic_exists(&self, topic: &str, partition: i32) -> bool {
        match &*self
            .topic_validator
            .read()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Some(v) => v(topic, partition),
            None => true,
        }
    }

    /// The `__consumer_offsets` partition of a group: Kafka's
    /// `Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions`, where `hashCode` is
    /// Java's String hash over UTF-16 code units and `Utils.abs(MIN_VALUE)` is 0.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.config.offsets_topic_num_partitions)
    }

    /// Stops every timer and fails the responses still waiting on a rebalance (they get
    /// COORDINATOR_NOT_AVAILABLE, so clients look for the coordinator again).
    pub fn shutdown(&self) {
        let _ = self.shutdown.send_replace(true);
        for handle in self.all_groups() {
            let mut g = lock(&handle);
            for m in g.members.values_mut() {
                m.join_waiter = None;
                m.sync_waiter = None;
            }
        }
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Runs `fut` on the runtime until it ends or the coordinator shuts down.
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut stop = self.shutdown.subscribe();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            drop(rt.spawn(async move {
                tokio::select! {
                    _ = stop.wait_for(|stopped| *stopped) => {}
                    _ = fut => {}
                }
            }));
        }
    }

    pub(crate) fn next_incarnation(&self) -> u64 {
        self.incarnations.fetch_add(1, Ordering::Relaxed)
    }

    /// `Ok(partition)` when the group's partition is loaded, else the error to return.
    pub(crate) fn check_loaded(&self, group_id: &str) -> Result<i32, i16> {
        let partition = self.partition_for(group_id);
        let partitions = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match partitions.get(&partition) {
            Some(LoadState::Loaded) if !self.is_shut_down() => Ok(partition),
            Some(LoadState::Loaded) => Err(codes::coordinator_not_available()),
            // Clients look the coordinator up again.
            Some(LoadState::Elsewhere) => Err(codes::not_coordinator()),
            // Never-loaded partitions answer like loading ones: the broker loads every
            // partition at start, and clients retry this error against the same broker.
            _ => Err(codes::load_in_progress()),
        }
    }

    pub(crate) fn any_partition_loading(&self) -> bool {
        let partitions = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        partitions.values().any(|s| *s == LoadState::Loading)
    }

    pub(crate) fn get_group(&self, group_id: &str) -> Option<Arc<GroupHandle>> {
        self.groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(group_id)
            .cloned()
    }

    pub(crate) fn get_or_create_group(&self, group_id: &str, partition: i32) -> Arc<GroupHandle> {
        if let Some(g) = self.get_group(group_id) {
            return g;
        }
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        groups
            .entry(group_id.to_string())
            .or_insert_with(|| {
                Arc::new(Mutex::new(ClassicGroup::new(
                    group_id.to_string(),
                    partition,
                    self.clock.now_ms(),
                )))
            })
            .clone()
    }

    /// Forgets a group that reached Dead, unless the registry already holds a newer one.
    pub(crate) fn remove_group(&self, group_id: &str, handle: &Arc<GroupHandle>) {
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        if groups.get(group_id).is_some_and(|g| Arc::ptr_eq(g, handle)) {
            let _ = groups.remove(group_id);
        }
    }

    pub(crate) fn all_groups(&self) -> Vec<Arc<GroupHandle>> {
        self.groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Starts the append of `records` now (so appends reach the log in the order the
    /// group lock decided them) and returns the wait for durability. The `OffsetsLog`
    /// must enqueue in `append` itself, not when the future is first polled.
    pub(crate) fn append(
        &self,
        partition: i32,
        records: Vec<OffsetsRecord>,
    ) -> BoxFuture<'static, Result<(), i16>> {
        self.log.append(partition, records)
    }

    /// Appends in the background (records whose failure no client waits for).
    pub(crate) fn append_detached(
        &self,
        group_id: &str,
        partition: i32,
        records: Vec<OffsetsRecord>,
    ) {
        let fut = self.append(partition, records);
        let group_id = group_id.to_string();
        self.spawn(async move {
            if let Err(code) = fut.await {
                warn!(group = %group_id, code, "could not persist group state to __consumer_offsets");
            }
        });
    }

    pub(crate) fn group_metadata_record(g: &ClassicGroup) -> OffsetsRecord {
        let key = OffsetsKey::GroupMetadata {
            group: g.group_id.clone(),
        }
        .encode();
        (key, Some(g.to_metadata_value().encode()))
    }

    pub(crate) fn group_tombstone(group_id: &str) -> OffsetsRecord {
        (
            OffsetsKey::GroupMetadata {
                group: group_id.to_string(),
            }
            .encode(),
            None,
        )
    }

    pub(crate) fn offset_record(
        group_id: &str,
        topic: &str,
        partition: i32,
        offset: Option<&CommittedOffset>,
    ) -> OffsetsRecord {
        let key = OffsetsKey::OffsetCommit {
            group: group_id.to_string(),
            topic: topic.to_string(),
            partition,
        }
        .encode();
        let value = offset.map(|o| {
            OffsetCommitValue {
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata.clone(),
                commit_timestamp: o.commit_timestamp,
                expire_timestamp: -1,
            }
            .encode()
        });
        (key, value)
    }

    /// Loads one `__consumer_offsets` partition: replays its records (newest per key
    /// wins, tombstones delete) into groups and offsets, then serves its groups. Loaded
    /// groups with members are Stable and their members must heartbeat within their
    /// session timeout, as after a Kafka coordinator failover.
    pub async fn load_partition(&self, partition: i32) -> Result<(), i16> {
        {
            let mut partitions = self
                .partitions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if partitions.get(&partition) == Some(&LoadState::Loaded) {
                return Ok(());
            }
            let _ = partitions.insert(partition, LoadState::Loading);
        }
        let result = self
            .replay(partition)
            .and_then(|()| self.hold_open_transactions(partition));
        let mut partitions = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(()) => {
                let _ = partitions.insert(partition, LoadState::Loaded);
                Ok(())
            }
            Err(code) => {
                let _ = partitions.remove(&partition);
                Err(code)
            }
        }
    }

    /// This broker no longer leads `partition` (or never did, in a cluster): its groups
    /// leave memory, members waiting on a rebalance are answered at once (and look the
    /// coordinator up again), and requests for them get NOT_COORDINATOR.
    pub fn unload_partition(&self, partition: i32) {
        let _ = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(partition, LoadState::Elsewhere);
        let dropped: Vec<Arc<GroupHandle>> = {
            let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
            let ids: Vec<String> = groups
                .keys()
                .filter(|g| self.partition_for(g) == partition)
                .cloned()
                .collect();
            ids.iter().filter_map(|g| groups.remove(g)).collect()
        };
        for handle in &dropped {
            let mut g = lock(handle);
            for m in g.members.values_mut() {
                m.join_waiter = None;
                m.sync_waiter = None;
            }
        }
        if !dropped.is_empty() {
            tracing::info!(
                partition,
                groups = dropped.len(),
                "groups unloaded: another broker coordinates them now"
            );
        }
    }

    fn replay(&self, partition: i32) -> Result<(), i16> {
        let records = self.log.read_all(partition)?;
        let mut metadata: HashMap<String, Option<GroupMetadataValue>> = HashMap::new();
        let mut offsets: HashMap<(String, String, i32), Option<OffsetCommitValue>> = HashMap::new();
        for (key, value) in records {
            let key = match OffsetsKey::decode(&key) {
                Ok(Some(k)) => k,
                Ok(None) => continue,
                Err(e) => {
                    warn!(partition, error = %e, "skipping undecodable __consumer_offsets key");
                    continue;
                }
            };
            match key {
                OffsetsKey::GroupMetadata { group } => {
                    let value = match value.as_ref().map(GroupMetadataValue::decode).transpose() {
                        Ok(v) => v,
                        Err(e) => {
                            warn!(partition, group, error = %e, "skipping undecodable group metadata");
                            continue;
                        }
                    };
                    let _ = metadata.insert(group, value);
                }
                OffsetsKey::OffsetCommit {
                    group,
                    topic,
                    partition: p,
                } => {
                    let value = match value.as_ref().map(OffsetCommitValue::decode).transpose() {
                        Ok(v) => v,
                        Err(e) => {
                            warn!(partition, group, error = %e, "skipping undecodable offset commit");
                            continue;
                        }
                    };
                    let _ = offsets.insert((group, topic, p), value);
                }
            }
        }
        let now_ms = self.clock.now_ms();
        let mut loaded: HashMap<String, ClassicGroup> = HashMap::new();
        for (group_id, value) in metadata {
            let Some(value) = value else { continue };
            let group = self.group_from_metadata(group_id.clone(), partition, value, now_ms);
            let _ = loaded.insert(group_id, group);
        }
        for ((group_id, topic, p), value) in offsets {
            let Some(v) = value else { continue };
            let group = loaded
                .entry(group_id.clone())
                .or_insert_with(|| ClassicGroup::new(group_id, partition, now_ms));
            let _ = group.offsets.insert(
                (topic, p),
                CommittedOffset {
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: v.metadata,
                    commit_timestamp: v.commit_timestamp,
                },
            );
        }
        let mut timers = Vec::new();
        {
            let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
            for (group_id, group) in loaded {
                // An empty group without offsets is a deleted group that compaction has not
                // cleaned yet (Kafka keeps such metadata only while it has a generation).
                for m in group.members.values() {
                    timers.push((group_id.clone(), m.member_id.clone(), m.incarnation));
                }
                let _ = groups.insert(group_id, Arc::new(Mutex::new(group)));
            }
        }
        for (group_id, member_id, incarnation) in timers {
            if let Some(handle) = self.get_group(&group_id) {
                self.start_session_timer(handle, member_id, incarnation);
            }
        }
        Ok(())
    }

    fn group_from_metadata(
        &self,
        group_id: String,
        partition: i32,
        v: GroupMetadataValue,
        now_ms: i64,
    ) -> ClassicGroup {
        let mut g = ClassicGroup::new(group_id, partition, now_ms);
        g.generation = v.generation;
        g.protocol_type = Some(v.protocol_type).filter(|p| !p.is_empty());
        g.protocol_name = v.protocol;
        g.leader = v.leader;
        if v.current_state_timestamp >= 0 {
            g.state_timestamp_ms = v.current_state_timestamp;
        }
        let protocol = g.protocol_name.clone().unwrap_or_default();
        for m in v.members {
            let incarnation = self.next_incarnation();
            let session = Duration::from_millis(u64::try_from(m.session_timeout_ms).unwrap_or(0));
            if let Some(iid) = &m.group_instance_id {
                let _ = g.static_members.insert(iid.clone(), m.member_id.clone());
            }
            let member = Member {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                join_waiter: None,
                sync_waiter: None,
                session_deadline: Instant::now() + session,
                incarnation,
            };
            let _ = g.members.insert(m.member_id, member);
        }
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        if g.leader
            .as_ref()
            .is_some_and(|l| !g.members.contains_key(l))
        {
            g.leader = g.members.keys().next().cloned();
        }
        g
    }

    /// Committed offsets of every group: (group, topic, partition, offset).
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let mut out = Vec::new();
        for handle in self.all_groups() {
            let g = lock(&handle);
            for ((topic, partition), o) in &g.offsets {
                out.push((g.group_id.clone(), topic.clone(), *partition, o.offset));
            }
        }
        out.sort();
        out
    }

    /// Every group with its Kafka state name and member count.
    pub fn group_states(&self) -> Vec<(String, &'static str, usize)> {
        let mut out: Vec<_> = self
            .all_groups()
            .iter()
            .map(|h| {
                let g = lock(h);
                (g.group_id.clone(), g.state.name(), g.members.len())
            })
            .collect();
        out.sort();
        out
    }
}

/// Java's `String.hashCode` (over UTF-16 units) and Kafka's `Utils.abs(h) % n`.
pub(crate) fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let hash = group_id.encode_utf16().fold(0_i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions.max(1)
}
