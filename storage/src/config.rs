//! Per-partition log settings (Kafka's topic-level `segment.*`, `retention.*`, `flush.*` keys)
//! and the topic-partition name that doubles as the log directory name.

use std::fmt;

/// A topic partition; its log directory is named `<topic>-<partition>` like Kafka's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The directory name, `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a directory name. Topics may contain '-', so the partition is what follows the
    /// LAST '-'. Deletion-pending (`.…-delete`) and other suffixed dirs are rejected.
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty()
            || partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let partition: i32 = partition.parse().ok()?;
        Some(TopicPartition {
            topic: topic.to_owned(),
            partition,
        })
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// `message.timestamp.type`: keep the producer's timestamps or stamp batches with broker time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// Per-partition log configuration; the broker fills it from topic configs.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`
    pub segment_bytes: u64,
    /// `segment.ms`
    pub segment_ms: i64,
    /// `segment.jitter.ms`
    pub segment_jitter_ms: i64,
    /// `index.interval.bytes`
    pub index_interval_bytes: u32,
    /// `segment.index.bytes`
    pub max_index_bytes: u32,
    /// `flush.messages`
    pub flush_interval_messages: u64,
    /// `flush.ms`
    pub flush_interval_ms: i64,
    /// `retention.ms`, -1 = forever
    pub retention_ms: i64,
    /// `retention.bytes`, -1 = unlimited
    pub retention_bytes: i64,
    /// `message.timestamp.type`
    pub message_timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms` and `message.timestamp.after.max.ms`: how far a
    /// CreateTime timestamp may lie from the broker's clock. Checked by the broker's produce
    /// validation, not by the log; here so that topic config changes reach the partition.
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_after_max_ms: i64,
    /// `compression.type` as a batch codec id (0 for `uncompressed`) and its
    /// `compression.<codec>.level`; `None` for `producer`. Applied by the broker's produce
    /// path (batches of another codec are recompressed), not by the log.
    pub compression: Option<(u8, i32)>,
    /// `file.delete.delay.ms`. Unused: deleted segments are unlinked at once, which is safe
    /// because in-flight reads hold the mapping (and so the inode) alive.
    pub file_delete_delay_ms: i64,
    /// `preallocate`. The active segment is always allocated ahead of the write position in
    /// growing steps (so a full disk fails the append, not a later store); this makes the
    /// step the whole segment.
    pub preallocate: bool,
    /// `cleanup.policy` contains `delete`: retention.ms / retention.bytes apply.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`: the log cleaner keeps the newest record per key.
    pub cleanup_compact: bool,
    /// `delete.retention.ms`: how long a tombstone (null value) outlives compaction.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: dirty / (clean + dirty) bytes needed before a clean.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: segments whose newest record is younger are left alone.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: dirty data this old is cleaned whatever the dirty ratio.
    pub max_compaction_lag_ms: i64,
}

impl LogConfig {
    /// Durable mode: `flush.messages=1` (Kafka's "sync every message"). Produce waits for an
    /// fsync covering its batch before acknowledging; concurrent producers share one fsync
    /// (group commit) instead of the log syncing once per append.
    pub fn durable(&self) -> bool {
        self.flush_interval_messages <= 1
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_jitter_ms: 0,
            index_interval_bytes: 4096,
            max_index_bytes: 10 * 1024 * 1024,
            flush_interval_messages: u64::MAX,
            flush_interval_ms: i64::MAX,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: i64::MAX,
            compression: None,
            file_delete_delay_ms: 60_000,
            preallocate: false,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_name_round_trips_topics_with_dashes() {
        let tp = TopicPartition::new("my-topic-name", 12);
        assert_eq!(tp.dir_name(), "my-topic-name-12");
        assert_eq!(TopicPartition::from_dir_name("my-topic-name-12"), Some(tp));
        assert_eq!(TopicPartition::from_dir_name("nodash"), None);
        assert_eq!(TopicPartition::from_dir_name("t-"), None);
        assert_eq!(TopicPartition::from_dir_name("-3"), None);
        assert_eq!(TopicPartition::from_dir_name("t-1.abc-delete"), None);
        assert_eq!(TopicPartition::from_dir_name("t-99999999999"), None);
    }
}
