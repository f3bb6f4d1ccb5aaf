//! `BrokerConfig`: the typed, validated broker configuration built from the layers
//! (Kafka defaults < development defaults < server.properties < --override) through the
//! key registry, plus the cross-key rules Kafka enforces at start-up.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::ConfigError;
use crate::listener::{parse_listeners, parse_protocol_map, Listener, SecurityProtocol};
use crate::registry::{broker_key, is_listener_override, BrokerKey};
use crate::types::{parse_value, validate, ConfigValue};

/// The broker's configuration. Field names follow Kafka's keys (`log.segment.bytes` ->
/// `log_segment_bytes`); derived fields (retention, roll time) already apply Kafka's
/// precedence between their keys.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BrokerConfig {
    pub node_id: i32,
    pub listeners: Vec<Listener>,
    /// What Metadata tells clients; defaults to `listeners` minus the controller listeners.
    pub advertised_listeners: Vec<Listener>,
    pub listener_security_protocol_map: BTreeMap<String, SecurityProtocol>,
    pub inter_broker_listener_name: Option<String>,
    pub controller_listener_names: Vec<String>,
    /// `controller.quorum.voters`: the metadata quorum's voters (node id -> host:port of
    /// their controller listener). Empty: a broker on its own, metadata in a local file.
    pub controller_quorum_voters: BTreeMap<i32, String>,
    pub broker_session_timeout_ms: i64,
    pub replica_fetch_max_bytes: i32,
    pub replica_fetch_min_bytes: i32,
    pub replica_fetch_wait_max_ms: i32,
    pub replica_fetch_backoff_ms: i64,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub unclean_leader_election_enable: bool,
    pub log_segment_bytes: u64,
    /// `log.roll.ms`, else `log.roll.hours` * 3600000.
    pub log_roll_ms: i64,
    /// `log.roll.jitter.ms`, else `log.roll.jitter.hours` * 3600000.
    pub log_roll_jitter_ms: i64,
    /// `log.retention.ms`, else `.minutes`, else `.hours`; any negative value is -1 (no limit).
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_index_interval_bytes: u32,
    pub log_index_size_max_bytes: u32,
    pub log_segment_delete_delay_ms: i64,
    pub log_flush_interval_messages: u64,
    /// `None`: fall back to `log_flush_scheduler_interval_ms`.
    pub log_flush_interval_ms: Option<i64>,
    pub log_flush_scheduler_interval_ms: i64,
    pub log_flush_offset_checkpoint_interval_ms: i32,
    pub log_message_timestamp_type: String,
    pub log_message_timestamp_before_max_ms: i64,
    pub log_message_timestamp_after_max_ms: i64,
    /// `delete`, `compact` or `compact,delete` (as configured, comma-joined).
    pub log_cleanup_policy: String,
    pub log_retention_check_interval_ms: i64,
    pub log_preallocate: bool,
    pub log_local_retention_ms: i64,
    pub log_local_retention_bytes: i64,
    pub log_cleaner_enable: bool,
    pub log_cleaner_delete_retention_ms: i64,
    pub log_cleaner_min_compaction_lag_ms: i64,
    pub log_cleaner_max_compaction_lag_ms: i64,
    pub log_cleaner_min_cleanable_ratio: f64,
    /// Memory the cleaner's offset map may use (a larger dirty section is cleaned in passes).
    pub log_cleaner_dedupe_buffer_size: i64,
    pub message_max_bytes: i32,
    pub socket_request_max_bytes: i32,
    /// SO_SNDBUF / SO_RCVBUF of accepted sockets; -1 leaves the kernel's (autotuned) default.
    pub socket_send_buffer_bytes: i32,
    pub socket_receive_buffer_bytes: i32,
    pub broker_rack: Option<String>,
    pub min_insync_replicas: i32,
    pub compression_type: String,
    pub compression_gzip_level: i32,
    pub compression_lz4_level: i32,
    pub compression_zstd_level: i32,
    pub replica_lag_time_max_ms: i64,
    pub offsets_topic_num_partitions: i32,
    /// Kafka's default is 3; capped to the cluster's size when the topic is created.
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_segment_bytes: i32,
    pub offsets_retention_minutes: i64,
    pub offsets_retention_check_interval_ms: i64,
    pub offset_metadata_max_bytes: i32,
    pub group_initial_rebalance_delay_ms: i32,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    pub group_max_size: i32,
    pub transactional_id_expiration_ms: i64,
    pub producer_id_expiration_ms: i64,
    pub transaction_max_timeout_ms: i32,
    pub transaction_state_log_num_partitions: i32,
    /// Like `offsets_topic_replication_factor`, for `__transaction_state`.
    pub transaction_state_log_replication_factor: i16,
    /// `quota.window.num` and `quota.window.size.seconds`: client quota rates are measured
    /// over that many windows of that length.
    pub quota_window_num: usize,
    pub quota_window_size_seconds: i64,
    /// How often the transaction coordinator aborts transactions past their timeout.
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: i64,
    /// Accepted and reported; Strata's runtime does not size a thread pool from it.
    pub num_network_threads: usize,
    /// `strata.connection.threads`: 0 for the shared runtime, else the connection threads.
    pub connection_threads: usize,
    pub connections_max_idle_ms: i64,
    /// `max.incremental.fetch.session.cache.slots`: fetch sessions kept; 0 turns them off.
    pub max_incremental_fetch_session_cache_slots: usize,
    /// `strata.metrics.listener`; `None` when set to empty or `0`.
    pub metrics_listener: Option<String>,
    pub cluster_id: Option<String>,
    /// Every key as given (file, then overrides on top), including unknown ones: what
    /// DescribeConfigs reports as STATIC_BROKER_CONFIG.
    pub originals: BTreeMap<String, String>,
    /// Defaults that replaced Kafka's own because no file was given (development mode).
    pub development_defaults: BTreeMap<String, String>,
    /// Dynamic cluster-wide defaults (AlterConfigs on BROKER ""), over `originals`:
    /// DYNAMIC_DEFAULT_BROKER_CONFIG. Empty until [`BrokerConfig::with_dynamic`].
    pub dynamic_default: BTreeMap<String, String>,
    /// Dynamic settings of this broker (AlterConfigs on BROKER "<node id>"), over
    /// everything else: DYNAMIC_BROKER_CONFIG.
    pub dynamic_broker: BTreeMap<String, String>,
}

impl BrokerConfig {
    /// The effective text of a key: set dynamically for this broker, else as a dynamic
    /// cluster default, else as given, else the development default, else Kafka's default.
    /// `None` for unset keys without default (and unknown keys not given).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.dynamic_broker
            .get(key)
            .or_else(|| self.dynamic_default.get(key))
            .or_else(|| self.originals.get(key))
            .or_else(|| self.development_defaults.get(key))
            .map(String::as_str)
            .or_else(|| broker_key(key).and_then(|k| k.default))
    }

    /// A key as seen by one listener: `listener.name.<name>.<key>` wins over `<key>`, as
    /// in Kafka (e.g. a keystore per listener).
    pub fn listener_value(&self, listener_name: &str, key: &str) -> Option<&str> {
        let prefixed = format!("listener.name.{}.{key}", listener_name.to_ascii_lowercase());
        self.originals
            .get(&prefixed)
            .map(String::as_str)
            .or_else(|| self.get(key))
    }

    /// The listener the metadata quorum binds: the first of `controller.listener.names`.
    pub fn controller_listener(&self) -> Option<&Listener> {
        self.listeners
            .iter()
            .find(|l| self.controller_listener_names.contains(&l.name))
    }

    /// The listener brokers use to reach each other: `inter.broker.listener.name`, else
    /// the first advertised listener with `security.inter.broker.protocol`.
    pub fn inter_broker_listener(&self) -> Option<&Listener> {
        match &self.inter_broker_listener_name {
            Some(name) => self.advertised_listeners.iter().find(|l| &l.name == name),
            None => {
                let protocol = self
                    .get("security.inter.broker.protocol")
                    .and_then(SecurityProtocol::from_name)
                    .unwrap_or(SecurityProtocol::Plaintext);
                self.advertised_listeners
                    .iter()
                    .find(|l| l.security_protocol == protocol)
            }
        }
    }
}

/// `controller.quorum.voters` entries (`id@host:port`) by node id.
pub fn parse_quorum_voters(entries: &[String]) -> Result<BTreeMap<i32, String>, String> {
    let mut voters = BTreeMap::new();
    for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let (id, address) = entry
            .split_once('@')
            .ok_or_else(|| format!("expected id@host:port, found `{entry}`"))?;
        let id: i32 = id
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| format!("`{entry}`: the node id must be a non-negative integer"))?;
        let port_ok = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!("`{entry}`: expected host:port after the @"));
        }
        if voters.insert(id, address.to_owned()).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    Ok(voters)
}

/// Reads typed values out of the layers, every one through the registry.
struct Layers<'a> {
    given: &'a BTreeMap<String, String>,
    dev: &'a BTreeMap<String, String>,
}

impl Layers<'_> {
    fn is_given(&self, name: &str) -> bool {
        self.given.contains_key(name)
    }

    fn raw(&self, key: &BrokerKey) -> Option<&str> {
        self.given
            .get(key.name)
            .or_else(|| self.dev.get(key.name))
            .map(String::as_str)
            .or(key.default)
    }

    /// The parsed, validated value, or `None` when unset with a null default.
    fn value(&self, name: &str) -> Result<Option<ConfigValue>, ConfigError> {
        let key = broker_key(name).ok_or_else(|| ConfigError::Missing {
            key: name.to_owned(),
            reason: "not a registered broker key (a Strata bug)".to_owned(),
        })?;
        let Some(raw) = self.raw(key) else {
            return Ok(None);
        };
        parse_checked(key, raw).map(Some)
    }

    fn required(&self, name: &str) -> Result<ConfigValue, ConfigError> {
        self.value(name)?.ok_or_else(|| ConfigError::Missing {
            key: name.to_owned(),
            reason: "it has no default".to_owned(),
        })
    }

    fn typed<T>(
        &self,
        name: &str,
        get: impl Fn(&ConfigValue) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let value = self.required(name)?;
        get(&value).map_err(|reason| ConfigError::invalid(name, &value.to_string(), reason))
    }

    fn opt_typed<T>(
        &self,
        name: &str,
        get: impl Fn(&ConfigValue) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.value(name)? {
            None => Ok(None),
            Some(value) => get(&value)
                .map(Some)
                .map_err(|reason| ConfigError::invalid(name, &value.to_string(), reason)),
        }
    }

    fn i32(&self, name: &str) -> Result<i32, ConfigError> {
        self.typed(name, ConfigValue::as_i32)
    }
    fn i64(&self, name: &str) -> Result<i64, ConfigError> {
        self.typed(name, ConfigValue::as_i64)
    }
    /// A non-negative int key as a count (of threads, say).
    fn count(&self, name: &str) -> Result<usize, ConfigError> {
        self.typed(name, |v| {
            v.as_u32().map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
    fn bool(&self, name: &str) -> Result<bool, ConfigError> {
        self.typed(name, ConfigValue::as_bool)
    }
    fn string(&self, name: &str) -> Result<String, ConfigError> {
        self.typed(name, |v| v.as_str().map(str::to_owned))
    }
    fn opt_string(&self, name: &str) -> Result<Option<String>, ConfigError> {
        self.opt_typed(name, |v| v.as_str().map(str::to_owned))
    }
    fn list(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        self.typed(name, |v| v.as_list().map(<[String]>::to_vec))
    }
    fn opt_list(&self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        self.opt_typed(name, |v| v.as_list().map(<[String]>::to_vec))
    }
}

/// Parses and validates `raw` for `key`; the error names the key and hides passwords.
pub(crate) fn parse_checked(key: &BrokerKey, raw: &str) -> Result<ConfigValue, ConfigError> {
    let shown = if key.sensitive() { "[hidden]" } else { raw };
    let value = parse_value(key.config_type, raw)
        .map_err(|reason| ConfigError::invalid(key.name, shown, reason))?;
    validate(&key.validator, &value)
        .map_err(|reason| ConfigError::invalid(key.name, shown, reason))?;
    Ok(value)
}

const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

/// Builds the configuration: validates every given key (unknown ones become warnings),
/// then reads each field and applies Kafka's cross-key rules.
pub(crate) fn build(
    given: BTreeMap<String, String>,
    dev: BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<BrokerConfig, ConfigError> {
    for (name, raw) in &given {
        match broker_key(name) {
            Some(key) => {
                let _ = parse_checked(key, raw)?;
            }
            None if is_listener_override(name) => {}
            // The value stays out of the message: a misspelt password key is still a
            // password.
            None => warnings.push(format!("unknown configuration key `{name}` ignored")),
        }
    }
    let r = Layers {
        given: &given,
        dev: &dev,
    };

    let node_id = node_id(&r)?;
    let controller_listener_names: Vec<String> = r
        .opt_list("controller.listener.names")?
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !n.is_empty())
        .map(|n| n.to_ascii_uppercase())
        .collect();
    let protocol_map = protocol_map(&r, &controller_listener_names)?;
    let listeners = parse_listeners("listeners", &r.list("listeners")?, &protocol_map)?;
    if listeners.is_empty() {
        return Err(ConfigError::invalid(
            "listeners",
            "",
            "expected at least one NAME://host:port",
        ));
    }
    let advertised_listeners = advertised_listeners(
        &r,
        &listeners,
        &controller_listener_names,
        &protocol_map,
        warnings,
    )?;
    let inter_broker_listener_name = match r.opt_string("inter.broker.listener.name")? {
        Some(name) if !name.is_empty() => {
            let name = name.to_ascii_uppercase();
            if !advertised_listeners.iter().any(|l| l.name == name) {
                return Err(ConfigError::invalid(
                    "inter.broker.listener.name",
                    &name,
                    format!(
                        "expected the name of an advertised listener, one of [{}]",
                        names(&advertised_listeners)
                    ),
                ));
            }
            Some(name)
        }
        _ => None,
    };

    let log_dirs = log_dirs(&r)?;
    let controller_quorum_voters = parse_quorum_voters(&r.list("controller.quorum.voters")?)
        .map_err(|reason| {
            ConfigError::invalid(
                "controller.quorum.voters",
                &r.list("controller.quorum.voters")
                    .unwrap_or_default()
                    .join(","),
                reason,
            )
        })?;
    if !controller_quorum_voters.is_empty()
        && !listeners
            .iter()
            .any(|l| controller_listener_names.contains(&l.name))
    {
        return Err(ConfigError::invalid(
            "controller.listener.names",
            &controller_listener_names.join(","),
            "with controller.quorum.voters set, listeners must include one of these (the \
             metadata quorum's own listener, e.g. CONTROLLER://host:9093)",
        ));
    }

    let log_retention_ms = {
        let ms = r.opt_typed("log.retention.ms", ConfigValue::as_i64)?;
        let minutes = r.opt_typed("log.retention.minutes", ConfigValue::as_i64)?;
        let millis = match (ms, minutes) {
            (Some(ms), _) => ms,
            (None, Some(minutes)) => minutes.saturating_mul(MINUTE_MS),
            (None, None) => r.i64("log.retention.hours")?.saturating_mul(HOUR_MS),
        };
        // Kafka: any negative retention means "keep forever".
        if millis < 0 {
            -1
        } else {
            millis
        }
    };
    let log_roll_ms = match r.opt_typed("log.roll.ms", ConfigValue::as_i64)? {
        Some(ms) => ms,
        None => r.i64("log.roll.hours")?.saturating_mul(HOUR_MS),
    };
    let log_roll_jitter_ms = match r.opt_typed("log.roll.jitter.ms", ConfigValue::as_i64)? {
        Some(ms) => ms,
        None => r.i64("log.roll.jitter.hours")?.saturating_mul(HOUR_MS),
    };

    let log_cleanup_policy = r.list("log.cleanup.policy")?.join(",");
    let metrics_listener = r
        .opt_string("strata.metrics.listener")?
        .filter(|s| !s.is_empty() && s != "0");
    let cluster_id = r.opt_string("cluster.id")?.filter(|s| !s.is_empty());
    let broker_rack = r.opt_string("broker.rack")?.filter(|s| !s.is_empty());

    let config = BrokerConfig {
        node_id,
        listeners,
        advertised_listeners,
        listener_security_protocol_map: protocol_map,
        inter_broker_listener_name,
        controller_listener_names,
        controller_quorum_voters,
        broker_session_timeout_ms: r.i64("broker.session.timeout.ms")?,
        replica_fetch_max_bytes: r.i32("replica.fetch.max.bytes")?,
        replica_fetch_min_bytes: r.i32("replica.fetch.min.bytes")?,
        replica_fetch_wait_max_ms: r.i32("replica.fetch.wait.max.ms")?,
        replica_fetch_backoff_ms: r.i64("replica.fetch.backoff.ms")?,
        log_dirs,
        num_partitions: r.i32("num.partitions")?,
        default_replication_factor: r.typed("default.replication.factor", ConfigValue::as_i16)?,
        auto_create_topics_enable: r.bool("auto.create.topics.enable")?,
        delete_topic_enable: r.bool("delete.topic.enable")?,
        unclean_leader_election_enable: r.bool("unclean.leader.election.enable")?,
        log_segment_bytes: r.typed("log.segment.bytes", ConfigValue::as_u64)?,
        log_roll_ms,
        log_roll_jitter_ms,
        log_retention_ms,
        log_retention_bytes: r.i64("log.retention.bytes")?,
        log_index_interval_bytes: r.typed("log.index.interval.bytes", ConfigValue::as_u32)?,
        log_index_size_max_bytes: r.typed("log.index.size.max.bytes", ConfigValue::as_u32)?,
        log_segment_delete_delay_ms: r.i64("log.segment.delete.delay.ms")?,
        log_flush_interval_messages: r.typed("log.flush.interval.messages", ConfigValue::as_u64)?,
        log_flush_interval_ms: r.opt_typed("log.flush.interval.ms", ConfigValue::as_i64)?,
        log_flush_scheduler_interval_ms: r.i64("log.flush.scheduler.interval.ms")?,
        log_flush_offset_checkpoint_interval_ms: r
            .i32("log.flush.offset.checkpoint.interval.ms")?,
        log_message_timestamp_type: r.string("log.message.timestamp.type")?,
        log_message_timestamp_before_max_ms: r.i64("log.message.timestamp.before.max.ms")?,
        log_message_timestamp_after_max_ms: r.i64("log.message.timestamp.after.max.ms")?,
        log_cleanup_policy,
        log_retention_check_interval_ms: r.i64("log.retention.check.interval.ms")?,
        log_preallocate: r.bool("log.preallocate")?,
        log_local_retention_ms: r.i64("log.local.retention.ms")?,
        log_local_retention_bytes: r.i64("log.local.retention.bytes")?,
        log_cleaner_enable: r.bool("log.cleaner.enable")?,
        log_cleaner_dedupe_buffer_size: r.i64("log.cleaner.dedupe.buffer.size")?,
        log_cleaner_delete_retention_ms: r.i64("log.cleaner.delete.retention.ms")?,
        log_cleaner_min_compaction_lag_ms: r.i64("log.cleaner.min.compaction.lag.ms")?,
        log_cleaner_max_compaction_lag_ms: r.i64("log.cleaner.max.compaction.lag.ms")?,
        log_cleaner_min_cleanable_ratio: r
            .typed("log.cleaner.min.cleanable.ratio", ConfigValue::as_f64)?,
        message_max_bytes: r.i32("message.max.bytes")?,
        socket_request_max_bytes: r.i32("socket.request.max.bytes")?,
        socket_send_buffer_bytes: r.i32("socket.send.buffer.bytes")?,
        socket_receive_buffer_bytes: r.i32("socket.receive.buffer.bytes")?,
        broker_rack,
        min_insync_replicas: r.i32("min.insync.replicas")?,
        compression_type: r.string("compression.type")?,
        compression_gzip_level: r.i32("compression.gzip.level")?,
        compression_lz4_level: r.i32("compression.lz4.level")?,
        compression_zstd_level: r.i32("compression.zstd.level")?,
        replica_lag_time_max_ms: r.i64("replica.lag.time.max.ms")?,
        offsets_topic_num_partitions: r.i32("offsets.topic.num.partitions")?,
        offsets_topic_replication_factor: r
            .typed("offsets.topic.replication.factor", ConfigValue::as_i16)?,
        offsets_topic_segment_bytes: r.i32("offsets.topic.segment.bytes")?,
        offsets_retention_minutes: r.i64("offsets.retention.minutes")?,
        offsets_retention_check_interval_ms: r.i64("offsets.retention.check.interval.ms")?,
        offset_metadata_max_bytes: r.i32("offset.metadata.max.bytes")?,
        group_initial_rebalance_delay_ms: r.i32("group.initial.rebalance.delay.ms")?,
        group_min_session_timeout_ms: r.i32("group.min.session.timeout.ms")?,
        group_max_session_timeout_ms: r.i32("group.max.session.timeout.ms")?,
        group_max_size: r.i32("group.max.size")?,
        transactional_id_expiration_ms: r.i64("transactional.id.expiration.ms")?,
        producer_id_expiration_ms: r.i64("producer.id.expiration.ms")?,
        transaction_max_timeout_ms: r.i32("transaction.max.timeout.ms")?,
        transaction_state_log_num_partitions: r.i32("transaction.state.log.num.partitions")?,
        transaction_state_log_replication_factor: r.typed(
            "transaction.state.log.replication.factor",
            ConfigValue::as_i16,
        )?,
        quota_window_num: r.count("quota.window.num")?,
        quota_window_size_seconds: r.i64("quota.window.size.seconds")?,
        transaction_abort_timed_out_transaction_cleanup_interval_ms: r
            .i64("transaction.abort.timed.out.transaction.cleanup.interval.ms")?,
        num_network_threads: r.count("num.network.threads")?,
        connection_threads: r.count("strata.connection.threads")?,
        connections_max_idle_ms: r.i64("connections.max.idle.ms")?,
        max_incremental_fetch_session_cache_slots: r
            .count("max.incremental.fetch.session.cache.slots")?,
        metrics_listener,
        cluster_id,
        originals: given.clone(),
        development_defaults: dev.clone(),
        dynamic_default: BTreeMap::new(),
        dynamic_broker: BTreeMap::new(),
    };

    if config.group_min_session_timeout_ms > config.group_max_session_timeout_ms {
        return Err(ConfigError::invalid(
            "group.max.session.timeout.ms",
            &config.group_max_session_timeout_ms.to_string(),
            format!(
                "expected at least group.min.session.timeout.ms ({})",
                config.group_min_session_timeout_ms
            ),
        ));
    }
    if config.log_cleaner_min_compaction_lag_ms > config.log_cleaner_max_compaction_lag_ms {
        return Err(ConfigError::invalid(
            "log.cleaner.min.compaction.lag.ms",
            &config.log_cleaner_min_compaction_lag_ms.to_string(),
            format!(
                "expected at most log.cleaner.max.compaction.lag.ms ({})",
                config.log_cleaner_max_compaction_lag_ms
            ),
        ));
    }
    Ok(config)
}

fn names(listeners: &[Listener]) -> String {
    listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `node.id`, falling back to the legacy `broker.id`; both set means both must agree.
fn node_id(r: &Layers<'_>) -> Result<i32, ConfigError> {
    let broker_id = if r.is_given("broker.id") {
        Some(r.i32("broker.id")?).filter(|id| *id >= 0)
    } else {
        None
    };
    let given_node = if r.is_given("node.id") {
        Some(r.i32("node.id")?)
    } else {
        None
    };
    match (given_node, broker_id) {
        (Some(node), Some(broker)) if node != broker => Err(ConfigError::invalid(
            "broker.id",
            &broker.to_string(),
            format!("expected the same id as node.id ({node}) when both are set"),
        )),
        (Some(node), _) => Ok(node),
        (None, Some(broker)) => Ok(broker),
        // Development mode supplies node.id=1; with a file Kafka insists on one.
        (None, None) => {
            r.opt_typed("node.id", ConfigValue::as_i32)?
                .ok_or_else(|| ConfigError::Missing {
                    key: "node.id".to_owned(),
                    reason: "every node needs an id when a config file is given (e.g. node.id=1)"
                        .to_owned(),
                })
        }
    }
}

fn protocol_map(
    r: &Layers<'_>,
    controller_names: &[String],
) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    let key = "listener.security.protocol.map";
    let mut map = parse_protocol_map(key, &r.string(key)?)?;
    // Kafka maps controller listeners to PLAINTEXT when the map was left at its default.
    if !r.is_given(key) {
        for name in controller_names {
            let _ = map
                .entry(name.clone())
                .or_insert(SecurityProtocol::Plaintext);
        }
    }
    Ok(map)
}

fn is_wildcard(host: &str) -> bool {
    host == "0.0.0.0" || host == "::" || host == "0:0:0:0:0:0:0:0"
}

/// The host advertised for a listener bound to every interface (empty host), as Kafka
/// uses the machine's canonical host name.
fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn advertised_listeners(
    r: &Layers<'_>,
    listeners: &[Listener],
    controller_names: &[String],
    protocols: &BTreeMap<String, SecurityProtocol>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Listener>, ConfigError> {
    let key = "advertised.listeners";
    let explicit = r.opt_list(key)?.filter(|l| l.iter().any(|s| !s.is_empty()));
    let mut advertised = match &explicit {
        Some(items) => {
            let parsed = parse_listeners(key, items, protocols)?;
            if let Some(stray) = parsed
                .iter()
                .find(|a| !listeners.iter().any(|l| l.name == a.name))
            {
                return Err(ConfigError::invalid(
                    key,
                    &items.join(","),
                    format!(
                        "listener name {} is not in listeners (expected a subset of [{}])",
                        stray.name,
                        names(listeners)
                    ),
                ));
            }
            parsed
        }
        None => listeners
            .iter()
            .filter(|l| !controller_names.contains(&l.name))
            .cloned()
            .collect(),
    };
    for listener in &mut advertised {
        if is_wildcard(&listener.host) {
            let reason = if explicit.is_some() {
                format!(
                    "{listener} uses the non-routable meta-address {}; advertise a host clients can reach",
                    listener.host
                )
            } else {
                format!(
                    "it defaults to listeners, and {listener} binds the non-routable meta-address {}; set advertised.listeners to a host clients can reach",
                    listener.host
                )
            };
            return Err(ConfigError::invalid(key, &listener.to_string(), reason));
        }
        if listener.host.is_empty() {
            listener.host = local_host_name();
            warnings.push(format!(
                "advertised.listeners: {} binds every interface; advertising host {}",
                listener.name, listener.host
            ));
        }
    }
    Ok(advertised)
}

fn log_dirs(r: &Layers<'_>) -> Result<Vec<PathBuf>, ConfigError> {
    let (key, items) = match r.opt_list("log.dirs")? {
        Some(items) => ("log.dirs", items),
        None => ("log.dir", r.list("log.dir")?),
    };
    if items.is_empty() || items.iter().any(String::is_empty) {
        return Err(ConfigError::invalid(
            key,
            &items.join(","),
            "expected a comma-separated list of non-empty directories",
        ));
    }
    let mut dirs: Vec<PathBuf> = Vec::with_capacity(items.len());
    for item in &items {
        let dir = PathBuf::from(item);
        if dirs.contains(&dir) {
            return Err(ConfigError::invalid(
                key,
                &items.join(","),
                format!("directory {item} is listed twice"),
            ));
        }
        dirs.push(dir);
    }
    Ok(dirs)
}
