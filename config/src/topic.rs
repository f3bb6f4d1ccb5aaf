//! Kafka's topic-level configs (what CreateTopics, DescribeConfigs and AlterConfigs talk
//! about): the topic key registry, its broker synonyms, and `TopicConfig::resolve`, which
//! overlays a topic's overrides on the broker's defaults.

use std::collections::BTreeMap;
use std::fmt;

use crate::broker::BrokerConfig;
use crate::error::ConfigError;
use crate::registry::{gzip_level, CLEANUP_POLICIES, COMPRESSION_TYPES, TIMESTAMP_TYPES};
use crate::types::{format_double, parse_value, validate, ConfigType, ConfigValue, Validator};

/// `cleanup.policy`: delete old segments, compact by key, or both. Both come in the order
/// they were given, which DescribeConfigs reports back as Kafka does (a declarative tool
/// comparing `delete,compact` with what it set must not see a difference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CleanupPolicy {
    Delete,
    Compact,
    /// Both, given as `compact,delete`.
    CompactDelete,
    /// Both, given as `delete,compact` (as Kafka's APPEND of compact to the default makes).
    DeleteCompact,
}

impl CleanupPolicy {
    pub fn deletes(self) -> bool {
        !matches!(self, CleanupPolicy::Compact)
    }

    pub fn compacts(self) -> bool {
        !matches!(self, CleanupPolicy::Delete)
    }

    /// From Kafka's list form (`compact,delete` in any order, case-insensitive).
    pub fn from_list<S: AsRef<str>>(items: &[S]) -> Result<CleanupPolicy, String> {
        let mut compact = false;
        let mut delete = false;
        let mut compact_first = false;
        for item in items {
            match item.as_ref().trim().to_ascii_lowercase().as_str() {
                "compact" => {
                    compact_first |= !delete;
                    compact = true;
                }
                "delete" => delete = true,
                other => {
                    return Err(format!(
                        "expected items among [compact, delete], found `{other}`"
                    ))
                }
            }
        }
        match (compact, delete) {
            (true, true) if compact_first => Ok(CleanupPolicy::CompactDelete),
            (true, true) => Ok(CleanupPolicy::DeleteCompact),
            (true, false) => Ok(CleanupPolicy::Compact),
            (false, true) => Ok(CleanupPolicy::Delete),
            (false, false) => Err("expected compact, delete or both, found nothing".to_owned()),
        }
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
            CleanupPolicy::DeleteCompact => "delete,compact",
        })
    }
}

/// The effective configuration of one topic.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TopicConfig {
    pub cleanup_policy: CleanupPolicy,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub segment_jitter_ms: i64,
    pub segment_index_bytes: u32,
    pub index_interval_bytes: u32,
    pub max_message_bytes: i32,
    pub message_timestamp_type: String,
    pub min_insync_replicas: i32,
    pub compression_type: String,
    pub compression_gzip_level: i32,
    pub compression_lz4_level: i32,
    pub compression_zstd_level: i32,
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub flush_messages: u64,
    pub flush_ms: i64,
    pub file_delete_delay_ms: i64,
    pub preallocate: bool,
    pub unclean_leader_election_enable: bool,
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_after_max_ms: i64,
    pub local_retention_ms: i64,
    pub local_retention_bytes: i64,
    pub remote_storage_enable: bool,
    pub remote_log_copy_disable: bool,
    pub remote_log_delete_on_disable: bool,
    pub leader_replication_throttled_replicas: Vec<String>,
    pub follower_replication_throttled_replicas: Vec<String>,
}

/// Kafka's topic defaults (what a broker with no settings gives every topic). A test
/// checks these against the registry's default strings.
impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            cleanup_policy: CleanupPolicy::Delete,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            segment_jitter_ms: 0,
            segment_index_bytes: 10_485_760,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            message_timestamp_type: "CreateTime".to_owned(),
            min_insync_replicas: 1,
            compression_type: "producer".to_owned(),
            compression_gzip_level: -1,
            compression_lz4_level: 9,
            compression_zstd_level: 3,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            flush_messages: i64::MAX.unsigned_abs(),
            flush_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
            preallocate: false,
            unclean_leader_election_enable: false,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: i64::MAX,
            local_retention_ms: -2,
            local_retention_bytes: -2,
            remote_storage_enable: false,
            remote_log_copy_disable: false,
            remote_log_delete_on_disable: false,
            leader_replication_throttled_replicas: Vec::new(),
            follower_replication_throttled_replicas: Vec::new(),
        }
    }
}

type Apply = fn(&mut TopicConfig, &ConfigValue) -> Result<(), String>;
type Get = fn(&TopicConfig) -> String;
type FromBroker = fn(&BrokerConfig) -> String;

/// One topic-level key: Kafka's definition plus how it maps onto `TopicConfig` and
/// which broker keys supply its default.
#[derive(Clone, Copy)]
pub struct TopicKey {
    pub name: &'static str,
    pub config_type: ConfigType,
    /// Kafka's topic default, used when no broker synonym supplies one.
    pub default: &'static str,
    pub validator: Validator,
    pub documentation: &'static str,
    /// Broker keys supplying the default, highest priority first (Kafka's
    /// ServerTopicConfigSynonyms).
    pub synonyms: &'static [&'static str],
    from_broker: Option<FromBroker>,
    apply: Apply,
    get: Get,
}

impl fmt::Debug for TopicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicKey")
            .field("name", &self.name)
            .field("config_type", &self.config_type)
            .field("default", &self.default)
            .field("synonyms", &self.synonyms)
            .finish_non_exhaustive()
    }
}

impl TopicKey {
    /// The value of this key in `config`, formatted as DescribeConfigs reports it.
    pub fn value_of(&self, config: &TopicConfig) -> String {
        (self.get)(config)
    }
}

/// Tiered storage needs a remote log manager Strata does not have; Kafka refuses the
/// same way when the broker has it disabled.
fn no_tiered_storage(value: &ConfigValue) -> Result<(), String> {
    if value.as_bool()? {
        Err("tiered storage is not supported by this broker: expected false, found true".to_owned())
    } else {
        Ok(())
    }
}

/// `leader/follower.replication.throttled.replicas`: `*` or `partition:broker` pairs.
fn throttled_replicas(value: &ConfigValue) -> Result<(), String> {
    let items = value.as_list()?;
    if items.len() == 1 && items.first().map(String::as_str) == Some("*") {
        return Ok(());
    }
    for item in items {
        let ok = item.split_once(':').is_some_and(|(p, b)| {
            p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
        });
        if !ok {
            return Err(format!(
                "expected `*` or partition:broker pairs, found `{item}`"
            ));
        }
    }
    Ok(())
}

use ConfigType::{Boolean as B, Double as D, Int as I, List as L, Long as LG, String as ST};
use Validator::{Any, AtLeast, Between, Custom, DoubleBetween, ListOf, OneOf};

/// Every topic-level key Kafka defines (non-internal), sorted by name.
pub static TOPIC_KEYS: &[TopicKey] = &[
    TopicKey { name: "cleanup.policy", config_type: L, default: "delete", validator: ListOf(CLEANUP_POLICIES), documentation: "delete discards old segments, compact keeps the latest record per key; both may be given.", synonyms: &["log.cleanup.policy"],
        from_broker: Some(|b| b.log_cleanup_policy.clone()), apply: |t, v| { t.cleanup_policy = CleanupPolicy::from_list(v.as_list()?)?; Ok(()) }, get: |t| t.cleanup_policy.to_string() },
    TopicKey { name: "compression.gzip.level", config_type: I, default: "-1", validator: Custom(gzip_level), documentation: "The compression level to use if compression.type is gzip.", synonyms: &["compression.gzip.level"],
        from_broker: Some(|b| b.compression_gzip_level.to_string()), apply: |t, v| { t.compression_gzip_level = v.as_i32()?; Ok(()) }, get: |t| t.compression_gzip_level.to_string() },
    TopicKey { name: "compression.lz4.level", config_type: I, default: "9", validator: Between(1, 17), documentation: "The compression level to use if compression.type is lz4.", synonyms: &["compression.lz4.level"],
        from_broker: Some(|b| b.compression_lz4_level.to_string()), apply: |t, v| { t.compression_lz4_level = v.as_i32()?; Ok(()) }, get: |t| t.compression_lz4_level.to_string() },
    TopicKey { name: "compression.type", config_type: ST, default: "producer", validator: OneOf(COMPRESSION_TYPES), documentation: "The final compression type of the topic; producer keeps the producer's codec.", synonyms: &["compression.type"],
        from_broker: Some(|b| b.compression_type.clone()), apply: |t, v| { t.compression_type = v.as_str()?.to_owned(); Ok(()) }, get: |t| t.compression_type.clone() },
    TopicKey { name: "compression.zstd.level", config_type: I, default: "3", validator: Between(-131072, 22), documentation: "The compression level to use if compression.type is zstd.", synonyms: &["compression.zstd.level"],
        from_broker: Some(|b| b.compression_zstd_level.to_string()), apply: |t, v| { t.compression_zstd_level = v.as_i32()?; Ok(()) }, get: |t| t.compression_zstd_level.to_string() },
    TopicKey { name: "delete.retention.ms", config_type: LG, default: "86400000", validator: AtLeast(0), documentation: "How long delete tombstones are retained on compacted topics.", synonyms: &["log.cleaner.delete.retention.ms"],
        from_broker: Some(|b| b.log_cleaner_delete_retention_ms.to_string()), apply: |t, v| { t.delete_retention_ms = v.as_i64()?; Ok(()) }, get: |t| t.delete_retention_ms.to_string() },
    TopicKey { name: "file.delete.delay.ms", config_type: LG, default: "60000", validator: AtLeast(0), documentation: "The time to wait before deleting a file from the filesystem.", synonyms: &["log.segment.delete.delay.ms"],
        from_broker: Some(|b| b.log_segment_delete_delay_ms.to_string()), apply: |t, v| { t.file_delete_delay_ms = v.as_i64()?; Ok(()) }, get: |t| t.file_delete_delay_ms.to_string() },
    TopicKey { name: "flush.messages", config_type: LG, default: "9223372036854775807", validator: AtLeast(1), documentation: "Messages written to the log before a forced fsync.", synonyms: &["log.flush.interval.messages"],
        from_broker: Some(|b| b.log_flush_interval_messages.to_string()), apply: |t, v| { t.flush_messages = v.as_u64()?; Ok(()) }, get: |t| t.flush_messages.to_string() },
    TopicKey { name: "flush.ms", config_type: LG, default: "9223372036854775807", validator: AtLeast(0), documentation: "Time between forced fsyncs of the log.", synonyms: &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
        from_broker: Some(|b| b.log_flush_interval_ms.unwrap_or(b.log_flush_scheduler_interval_ms).to_string()), apply: |t, v| { t.flush_ms = v.as_i64()?; Ok(()) }, get: |t| t.flush_ms.to_string() },
    TopicKey { name: "follower.replication.throttled.replicas", config_type: L, default: "", validator: Custom(throttled_replicas), documentation: "Replicas whose follower-side replication is throttled (accepted; Strata does not throttle).", synonyms: &[],
        from_broker: None, apply: |t, v| { t.follower_replication_throttled_replicas = v.as_list()?.to_vec(); Ok(()) }, get: |t| t.follower_replication_throttled_replicas.join(",") },
    TopicKey { name: "index.interval.bytes", config_type: I, default: "4096", validator: AtLeast(0), documentation: "How often an entry is added to the offset index.", synonyms: &["log.index.interval.bytes"],
        from_broker: Some(|b| b.log_index_interval_bytes.to_string()), apply: |t, v| { t.index_interval_bytes = v.as_u32()?; Ok(()) }, get: |t| t.index_interval_bytes.to_string() },
    TopicKey { name: "leader.replication.throttled.replicas", config_type: L, default: "", validator: Custom(throttled_replicas), documentation: "Replicas whose leader-side replication is throttled (accepted; Strata does not throttle).", synonyms: &[],
        from_broker: None, apply: |t, v| { t.leader_replication_throttled_replicas = v.as_list()?.to_vec(); Ok(()) }, get: |t| t.leader_replication_throttled_replicas.join(",") },
    TopicKey { name: "local.retention.bytes", config_type: LG, default: "-2", validator: AtLeast(-2), documentation: "Local retention with tiered storage; -2 means retention.bytes.", synonyms: &["log.local.retention.bytes"],
        from_broker: Some(|b| b.log_local_retention_bytes.to_string()), apply: |t, v| { t.local_retention_bytes = v.as_i64()?; Ok(()) }, get: |t| t.local_retention_bytes.to_string() },
    TopicKey { name: "local.retention.ms", config_type: LG, default: "-2", validator: AtLeast(-2), documentation: "Local retention with tiered storage; -2 means retention.ms.", synonyms: &["log.local.retention.ms"],
        from_broker: Some(|b| b.log_local_retention_ms.to_string()), apply: |t, v| { t.local_retention_ms = v.as_i64()?; Ok(()) }, get: |t| t.local_retention_ms.to_string() },
    TopicKey { name: "max.compaction.lag.ms", config_type: LG, default: "9223372036854775807", validator: AtLeast(1), documentation: "The maximum time a record stays ineligible for compaction.", synonyms: &["log.cleaner.max.compaction.lag.ms"],
        from_broker: Some(|b| b.log_cleaner_max_compaction_lag_ms.to_string()), apply: |t, v| { t.max_compaction_lag_ms = v.as_i64()?; Ok(()) }, get: |t| t.max_compaction_lag_ms.to_string() },
    TopicKey { name: "max.message.bytes", config_type: I, default: "1048588", validator: AtLeast(0), documentation: "The largest record batch size allowed by the topic.", synonyms: &["message.max.bytes"],
        from_broker: Some(|b| b.message_max_bytes.to_string()), apply: |t, v| { t.max_message_bytes = v.as_i32()?; Ok(()) }, get: |t| t.max_message_bytes.to_string() },
    TopicKey { name: "message.timestamp.after.max.ms", config_type: LG, default: "9223372036854775807", validator: AtLeast(0), documentation: "How far a CreateTime timestamp may lie after the broker's clock.", synonyms: &["log.message.timestamp.after.max.ms"],
        from_broker: Some(|b| b.log_message_timestamp_after_max_ms.to_string()), apply: |t, v| { t.message_timestamp_after_max_ms = v.as_i64()?; Ok(()) }, get: |t| t.message_timestamp_after_max_ms.to_string() },
    TopicKey { name: "message.timestamp.before.max.ms", config_type: LG, default: "9223372036854775807", validator: AtLeast(0), documentation: "How far a CreateTime timestamp may lie before the broker's clock.", synonyms: &["log.message.timestamp.before.max.ms"],
        from_broker: Some(|b| b.log_message_timestamp_before_max_ms.to_string()), apply: |t, v| { t.message_timestamp_before_max_ms = v.as_i64()?; Ok(()) }, get: |t| t.message_timestamp_before_max_ms.to_string() },
    TopicKey { name: "message.timestamp.type", config_type: ST, default: "CreateTime", validator: OneOf(TIMESTAMP_TYPES), documentation: "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's clock.", synonyms: &["log.message.timestamp.type"],
        from_broker: Some(|b| b.log_message_timestamp_type.clone()), apply: |t, v| { t.message_timestamp_type = v.as_str()?.to_owned(); Ok(()) }, get: |t| t.message_timestamp_type.clone() },
    TopicKey { name: "min.cleanable.dirty.ratio", config_type: D, default: "0.5", validator: DoubleBetween(0.0, 1.0), documentation: "How dirty a log must be before the cleaner compacts it.", synonyms: &["log.cleaner.min.cleanable.ratio"],
        from_broker: Some(|b| format_double(b.log_cleaner_min_cleanable_ratio)), apply: |t, v| { t.min_cleanable_dirty_ratio = v.as_f64()?; Ok(()) }, get: |t| format_double(t.min_cleanable_dirty_ratio) },
    TopicKey { name: "min.compaction.lag.ms", config_type: LG, default: "0", validator: AtLeast(0), documentation: "The minimum time a record stays uncompacted.", synonyms: &["log.cleaner.min.compaction.lag.ms"],
        from_broker: Some(|b| b.log_cleaner_min_compaction_lag_ms.to_string()), apply: |t, v| { t.min_compaction_lag_ms = v.as_i64()?; Ok(()) }, get: |t| t.min_compaction_lag_ms.to_string() },
    TopicKey { name: "min.insync.replicas", config_type: I, default: "1", validator: AtLeast(1), documentation: "Minimum replicas that must acknowledge a write with acks=all.", synonyms: &["min.insync.replicas"],
        from_broker: Some(|b| b.min_insync_replicas.to_string()), apply: |t, v| { t.min_insync_replicas = v.as_i32()?; Ok(()) }, get: |t| t.min_insync_replicas.to_string() },
    TopicKey { name: "preallocate", config_type: B, default: "false", validator: Any, documentation: "Whether to preallocate the file when a new segment is created.", synonyms: &["log.preallocate"],
        from_broker: Some(|b| b.log_preallocate.to_string()), apply: |t, v| { t.preallocate = v.as_bool()?; Ok(()) }, get: |t| t.preallocate.to_string() },
    TopicKey { name: "remote.log.copy.disable", config_type: B, default: "false", validator: Any, documentation: "Stops copying segments to remote storage (tiered storage; accepted).", synonyms: &[],
        from_broker: None, apply: |t, v| { t.remote_log_copy_disable = v.as_bool()?; Ok(()) }, get: |t| t.remote_log_copy_disable.to_string() },
    TopicKey { name: "remote.log.delete.on.disable", config_type: B, default: "false", validator: Any, documentation: "Deletes remote data when tiered storage is disabled (accepted).", synonyms: &[],
        from_broker: None, apply: |t, v| { t.remote_log_delete_on_disable = v.as_bool()?; Ok(()) }, get: |t| t.remote_log_delete_on_disable.to_string() },
    TopicKey { name: "remote.storage.enable", config_type: B, default: "false", validator: Custom(no_tiered_storage), documentation: "Tiered storage for the topic (not supported: only false is accepted).", synonyms: &[],
        from_broker: None, apply: |t, v| { t.remote_storage_enable = v.as_bool()?; Ok(()) }, get: |t| t.remote_storage_enable.to_string() },
    TopicKey { name: "retention.bytes", config_type: LG, default: "-1", validator: Any, documentation: "The maximum size a partition's log may grow to before old segments are deleted; -1 means no limit.", synonyms: &["log.retention.bytes"],
        from_broker: Some(|b| b.log_retention_bytes.to_string()), apply: |t, v| { t.retention_bytes = v.as_i64()?; Ok(()) }, get: |t| t.retention_bytes.to_string() },
    TopicKey { name: "retention.ms", config_type: LG, default: "604800000", validator: AtLeast(-1), documentation: "How long a log segment is kept before deletion; -1 means no limit.", synonyms: &["log.retention.ms", "log.retention.minutes", "log.retention.hours"],
        from_broker: Some(|b| b.log_retention_ms.to_string()), apply: |t, v| { t.retention_ms = v.as_i64()?; Ok(()) }, get: |t| t.retention_ms.to_string() },
    TopicKey { name: "segment.bytes", config_type: I, default: "1073741824", validator: AtLeast(1_048_576), documentation: "The segment file size of the log.", synonyms: &["log.segment.bytes"],
        from_broker: Some(|b| b.log_segment_bytes.to_string()), apply: |t, v| { t.segment_bytes = v.as_u64()?; Ok(()) }, get: |t| t.segment_bytes.to_string() },
    TopicKey { name: "segment.index.bytes", config_type: I, default: "10485760", validator: AtLeast(4), documentation: "The size of the offset index of each segment.", synonyms: &["log.index.size.max.bytes"],
        from_broker: Some(|b| b.log_index_size_max_bytes.to_string()), apply: |t, v| { t.segment_index_bytes = v.as_u32()?; Ok(()) }, get: |t| t.segment_index_bytes.to_string() },
    TopicKey { name: "segment.jitter.ms", config_type: LG, default: "0", validator: AtLeast(0), documentation: "The maximum random jitter subtracted from segment.ms.", synonyms: &["log.roll.jitter.ms", "log.roll.jitter.hours"],
        from_broker: Some(|b| b.log_roll_jitter_ms.to_string()), apply: |t, v| { t.segment_jitter_ms = v.as_i64()?; Ok(()) }, get: |t| t.segment_jitter_ms.to_string() },
    TopicKey { name: "segment.ms", config_type: LG, default: "604800000", validator: AtLeast(1), documentation: "The time after which the active segment is rolled even if not full.", synonyms: &["log.roll.ms", "log.roll.hours"],
        from_broker: Some(|b| b.log_roll_ms.to_string()), apply: |t, v| { t.segment_ms = v.as_i64()?; Ok(()) }, get: |t| t.segment_ms.to_string() },
    TopicKey { name: "unclean.leader.election.enable", config_type: B, default: "false", validator: Any, documentation: "Whether replicas not in the ISR may be elected leader as a last resort.", synonyms: &["unclean.leader.election.enable"],
        from_broker: Some(|b| b.unclean_leader_election_enable.to_string()), apply: |t, v| { t.unclean_leader_election_enable = v.as_bool()?; Ok(()) }, get: |t| t.unclean_leader_election_enable.to_string() },
];

/// The registry row for a topic-level key.
pub fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|key| key.name == name)
}

/// Parses and validates a value for a topic key; the error names `reported_key`.
fn parse_for(key: &TopicKey, reported_key: &str, raw: &str) -> Result<ConfigValue, ConfigError> {
    let value = parse_value(key.config_type, raw)
        .map_err(|reason| ConfigError::invalid(reported_key, raw, reason))?;
    validate(&key.validator, &value)
        .map_err(|reason| ConfigError::invalid(reported_key, raw, reason))?;
    Ok(value)
}

/// Checks one topic override on its own (AlterConfigs validate-only, CreateTopics).
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), ConfigError> {
    let key = topic_key(name).ok_or_else(|| ConfigError::UnknownTopicConfig {
        key: name.to_owned(),
    })?;
    parse_for(key, name, value).map(|_| ())
}

impl TopicConfig {
    /// Broker defaults (synonyms: retention.ms <- log.retention.ms, segment.bytes <-
    /// log.segment.bytes, ...) overlaid with the topic's overrides; an unknown topic key
    /// or a bad value -> a ConfigError naming the key (the broker maps it to
    /// INVALID_CONFIG).
    pub fn resolve(
        broker: &BrokerConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, ConfigError> {
        if let Some(unknown) = overrides.keys().find(|name| topic_key(name).is_none()) {
            return Err(ConfigError::UnknownTopicConfig {
                key: unknown.clone(),
            });
        }
        let mut config = TopicConfig::default();
        for key in TOPIC_KEYS {
            let (reported, raw) = match overrides.get(key.name) {
                Some(raw) => (key.name, raw.clone()),
                None => match key.from_broker {
                    Some(from_broker) => (
                        key.synonyms.first().copied().unwrap_or(key.name),
                        from_broker(broker),
                    ),
                    None => (key.name, key.default.to_owned()),
                },
            };
            let value = parse_for(key, reported, &raw)?;
            (key.apply)(&mut config, &value)
                .map_err(|reason| ConfigError::invalid(reported, &raw, reason))?;
        }
        if config.min_compaction_lag_ms > config.max_compaction_lag_ms {
            return Err(ConfigError::invalid(
                "min.compaction.lag.ms",
                &config.min_compaction_lag_ms.to_string(),
                format!(
                    "expected at most max.compaction.lag.ms ({})",
                    config.max_compaction_lag_ms
                ),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_matches_the_registry_defaults() {
        // Scramble, then rebuild every field from the registry's default strings.
        let mut from_registry = TopicConfig {
            retention_ms: 1,
            segment_bytes: 1,
            ..TopicConfig::default()
        };
        for key in TOPIC_KEYS {
            let value = parse_for(key, key.name, key.default)
                .unwrap_or_else(|e| panic!("{}: {e}", key.name));
            (key.apply)(&mut from_registry, &value).unwrap();
        }
        assert_eq!(from_registry, TopicConfig::default());
    }

    #[test]
    fn keys_are_sorted_unique_and_synonyms_registered() {
        let names: Vec<&str> = TOPIC_KEYS.iter().map(|k| k.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for key in TOPIC_KEYS {
            for synonym in key.synonyms {
                assert!(
                    crate::registry::broker_key(synonym).is_some(),
                    "{} -> {synonym} is not a broker key",
                    key.name
                );
            }
        }
    }

    #[test]
    fn get_round_trips_through_apply() {
        let config = TopicConfig::default();
        for key in TOPIC_KEYS {
            let text = key.value_of(&config);
            let value = parse_for(key, key.name, &text).unwrap();
            let mut again = config.clone();
            (key.apply)(&mut again, &value).unwrap();
            assert_eq!(again, config, "{}", key.name);
        }
    }

    #[test]
    fn cleanup_policy_lists() {
        assert_eq!(
            CleanupPolicy::from_list(&["delete", "compact"]),
            Ok(CleanupPolicy::DeleteCompact)
        );
        assert_eq!(
            CleanupPolicy::from_list(&["compact", "delete", "compact"]),
            Ok(CleanupPolicy::CompactDelete)
        );
        assert_eq!(CleanupPolicy::DeleteCompact.to_string(), "delete,compact");
        assert!(CleanupPolicy::DeleteCompact.compacts() && CleanupPolicy::DeleteCompact.deletes());
        assert_eq!(
            CleanupPolicy::from_list(&["Compact"]),
            Ok(CleanupPolicy::Compact)
        );
        assert!(CleanupPolicy::from_list::<&str>(&[]).is_err());
        assert!(CleanupPolicy::from_list(&["shred"]).is_err());
        assert!(CleanupPolicy::CompactDelete.compacts() && CleanupPolicy::CompactDelete.deletes());
    }
}
