//! The partitions this broker hosts, keyed by topic and index, and the log directories
//! they live in. Creating a partition picks the log dir with the fewest partitions;
//! recovery points are checkpointed per log dir so restarts scan only the unflushed tail.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use strata_storage::checkpoint;
use strata_storage::{Log, LogConfig, TopicPartition};
use uuid::Uuid;

use super::Partition;

const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// Kafka's high-watermark checkpoint, one per log dir.
const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("cannot open log for {tp} in {dir}: {reason}")]
    OpenLog {
        tp: String,
        dir: String,
        reason: String,
    },
}

pub struct ReplicaManager {
    log_dirs: Vec<PathBuf>,
    /// By topic, then index: a lookup borrows the request's topic name instead of building
    /// a key (it runs for every partition of every Produce and Fetch).
    partitions: RwLock<HashMap<String, BTreeMap<i32, Arc<Partition>>>>,
    /// Serialises log opening: two `Log`s over one directory would fight over its files.
    opening: Mutex<()>,
    /// Recovery points read at start-up, consumed as logs are opened.
    recovery_points: HashMap<TopicPartition, i64>,
    /// From log-start-offset-checkpoint: DeleteRecords' start offsets survive restarts.
    log_start_offsets: HashMap<TopicPartition, i64>,
    /// From replication-offset-checkpoint: the high watermarks of the last run.
    high_watermarks: HashMap<TopicPartition, i64>,
    /// From cleaner-offset-checkpoint: how far the log cleaner got.
    cleaner_offsets: HashMap<TopicPartition, i64>,
    /// One flag per log dir, shared by its partitions: set on the first I/O failure there.
    /// An offline dir gets no new partitions and no checkpoints; the rest keep serving.
    offline: HashMap<PathBuf, Arc<AtomicBool>>,
}

/// Every entry of the checkpoint `name` across the log dirs; an unreadable file is logged with
/// its `consequence` and skipped (a missing one reads as empty).
fn read_checkpoints(
    log_dirs: &[PathBuf],
    name: &str,
    consequence: &str,
) -> HashMap<TopicPartition, i64> {
    let mut all = HashMap::new();
    for dir in log_dirs {
        match checkpoint::read_offsets(&dir.join(name)) {
            Ok(entries) => all.extend(entries),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "unreadable {name}; {consequence}")
            }
        }
    }
    all
}

/// Writes the checkpoint `name` of one log dir, logging a failure (the next tick retries).
fn write_checkpoint(dir: &Path, name: &str, entries: &[(TopicPartition, i64)]) {
    if let Err(e) = checkpoint::write_offsets(&dir.join(name), entries) {
        tracing::error!(dir = %dir.display(), error = %e, "writing {name} failed");
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl ReplicaManager {
    pub fn new(log_dirs: Vec<PathBuf>) -> Self {
        let read = |name: &str, consequence: &str| read_checkpoints(&log_dirs, name, consequence);
        let recovery_points = read(
            RECOVERY_POINT_CHECKPOINT,
            "logs there will be fully scanned",
        );
        let log_start_offsets = read(
            strata_storage::LOG_START_OFFSET_CHECKPOINT,
            "log starts fall back to the first segment",
        );
        let high_watermarks = read(
            REPLICATION_OFFSET_CHECKPOINT,
            "lost acknowledged records cannot be detected",
        );
        let cleaner_offsets = read(
            strata_storage::CLEANER_OFFSET_CHECKPOINT,
            "compacted logs there are cleaned from their start again",
        );
        Self {
            partitions: RwLock::new(HashMap::new()),
            opening: Mutex::new(()),
            recovery_points,
            log_start_offsets,
            high_watermarks,
            cleaner_offsets,
            offline: log_dirs
                .iter()
                .map(|d| (d.clone(), Arc::new(AtomicBool::new(false))))
                .collect(),
            log_dirs,
        }
    }

    pub fn log_dirs(&self) -> &[PathBuf] {
        &self.log_dirs
    }

    /// Whether `dir` (one of `log.dirs`) failed with an I/O error since start.
    pub fn is_log_dir_offline(&self, dir: &Path) -> bool {
        self.offline
            .get(dir)
            .is_some_and(|f| f.load(Ordering::Acquire))
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .and_then(|by_index| by_index.get(&partition))
            .cloned()
    }

    /// Several partitions of one topic under one lock and one lookup of the topic (a fetch
    /// may name thousands).
    pub fn get_many(
        &self,
        topic: &str,
        partitions: impl IntoIterator<Item = i32>,
    ) -> Vec<Option<Arc<Partition>>> {
        let all = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        let by_index = all.get(topic);
        partitions
            .into_iter()
            .map(|p| by_index.and_then(|b| b.get(&p)).cloned())
            .collect()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flat_map(BTreeMap::values)
            .cloned()
            .collect()
    }

    fn dir_name(tp: &TopicPartition) -> String {
        format!("{}-{}", tp.topic, tp.partition)
    }

    /// The log dir holding a hosted partition's directory.
    pub fn log_dir_of(&self, tp: &TopicPartition) -> Option<PathBuf> {
        let name = Self::dir_name(tp);
        self.log_dirs
            .iter()
            .find(|d| d.join(&name).is_dir())
            .cloned()
    }

    /// Where an existing partition's data is, or the least-loaded log dir for a new one.
    fn choose_dir(&self, tp: &TopicPartition) -> PathBuf {
        let name = Self::dir_name(tp);
        if let Some(existing) = self.log_dirs.iter().find(|d| d.join(&name).is_dir()) {
            return existing.clone();
        }
        let partitions = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        let mut counts: HashMap<&Path, usize> =
            self.log_dirs.iter().map(|d| (d.as_path(), 0)).collect();
        for p in partitions.values().flat_map(BTreeMap::values) {
            if let Some(dir) = self
                .log_dirs
                .iter()
                .find(|d| d.join(Self::dir_name(&p.tp)).is_dir())
            {
                *counts.entry(dir.as_path()).or_default() += 1;
            }
        }
        self.log_dirs
            .iter()
            .filter(|d| !self.is_log_dir_offline(d))
            .min_by_key(|d| counts.get(d.as_path()).copied().unwrap_or(0))
            .cloned()
            .unwrap_or_else(|| PathBuf::from("./data"))
    }

    /// Opens (recovering) or creates the log of a partition this broker hosts.
    pub fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        topic_id: Uuid,
        leader_epoch: i32,
        config: LogConfig,
    ) -> Result<Arc<Partition>, ReplicaError> {
        if let Some(existing) = self.get(topic, partition) {
            return Ok(existing);
        }
        let _opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = self.get(topic, partition) {
            return Ok(existing);
        }
        let tp = TopicPartition {
            topic: topic.to_string(),
            partition,
        };
        let dir = self.choose_dir(&tp);
        if self.is_log_dir_offline(&dir) {
            return Err(ReplicaError::OpenLog {
                tp: tp.to_string(),
                dir: dir.display().to_string(),
                reason: "the log dir is offline after an I/O error".into(),
            });
        }
        let recovery_point = self.recovery_points.get(&tp).copied().unwrap_or(0);
        let log = Log::open(
            dir.join(Self::dir_name(&tp)),
            tp.clone(),
            config,
            recovery_point,
            now_ms(),
        )
        .map_err(|e| ReplicaError::OpenLog {
            tp: tp.to_string(),
            dir: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut log = log;
        if let Some(start) = self.log_start_offsets.get(&tp) {
            log.restore_log_start_offset(*start);
        }
        if let Some(&offset) = self.cleaner_offsets.get(&tp) {
            log.restore_first_dirty_offset(offset);
        }
        if let Some(&hw) = self.high_watermarks.get(&tp) {
            // The high watermark is what acks=all acknowledged; a log that recovered shorter
            // lost acknowledged records (unflushed when the machine went down). Say so loudly:
            // with one replica there is no other copy to fetch them back from.
            if log.log_end_offset() < hw {
                tracing::error!(partition = %tp, high_watermark = hw, log_end_offset = log.log_end_offset(),
                    "log recovered below its checkpointed high watermark: acknowledged records were lost (enable flush.messages=1 or replication)");
            }
        }
        let offline = self.offline.get(&dir).cloned().unwrap_or_default();
        let checkpointed_hw = self.high_watermarks.get(&tp).copied();
        let partition_state =
            Arc::new(Partition::new(tp, topic_id, log, leader_epoch).in_log_dir(offline));
        if let Some(hw) = checkpointed_hw {
            partition_state.set_recovered_high_watermark(hw);
        }
        let mut map = self.partitions.write().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(topic.to_string())
            .or_default()
            .entry(partition)
            .or_insert(partition_state);
        Ok(entry.clone())
    }

    /// Forgets and deletes every partition of `topic`.
    pub fn delete_topic(&self, topic: &str) {
        let removed: Vec<Arc<Partition>> = {
            let mut map = self.partitions.write().unwrap_or_else(|p| p.into_inner());
            map.remove(topic)
                .map(|by_index| by_index.into_values().collect())
                .unwrap_or_default()
        };
        for p in removed {
            p.delete();
        }
    }

    /// Writes each log dir's checkpoints: recovery points, log start offsets, high watermarks
    /// and the cleaner's progress, each atomically (temp file, fsync, rename, fsync dir).
    pub fn checkpoint_recovery_points(&self) {
        let partitions = self.all();
        for dir in self.log_dirs.iter().filter(|d| !self.is_log_dir_offline(d)) {
            let here: Vec<&Arc<Partition>> = partitions
                .iter()
                .filter(|p| dir.join(Self::dir_name(&p.tp)).is_dir())
                .collect();
            let entries = |f: &dyn Fn(&Partition) -> Option<i64>| -> Vec<(TopicPartition, i64)> {
                here.iter()
                    .filter_map(|p| f(p).map(|offset| (p.tp.clone(), offset)))
                    .collect()
            };
            write_checkpoint(
                dir,
                RECOVERY_POINT_CHECKPOINT,
                &entries(&|p| p.recovery_point()),
            );
            write_checkpoint(
                dir,
                strata_storage::LOG_START_OFFSET_CHECKPOINT,
                &entries(&|p| Some(p.log_start_offset())),
            );
            write_checkpoint(
                dir,
                REPLICATION_OFFSET_CHECKPOINT,
                &entries(&|p| Some(p.high_watermark())),
            );
            write_checkpoint(
                dir,
                strata_storage::CLEANER_OFFSET_CHECKPOINT,
                &entries(&|p| p.cleaner_offset()),
            );
        }
    }

    /// Flush and close every log, then checkpoint: what a clean shutdown does.
    pub fn shutdown(&self) {
        let partitions = self.all();
        for p in &partitions {
            if let Err(e) = p.flush() {
                tracing::error!(partition = %p.tp, error = %e, "flush at shutdown failed");
            }
        }
        self.checkpoint_recovery_points();
        for p in &partitions {
            p.close();
        }
    }
}
