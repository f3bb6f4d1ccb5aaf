//! Gauges computed at scrape time from the broker's state: build and uptime, log dirs
//! (statvfs), topic and partition counts, consumer groups and their lag. Computing them on
//! demand costs nothing between scrapes and cannot drift from the state they describe.

use std::collections::HashMap;
use std::path::Path;

use prometheus::{Gauge, IntCounter, IntGauge, IntGaugeVec, Opts, Registry};
use strata_storage::LogDirs;

use super::MetricsError;
use crate::group::GroupState;
use crate::server::Broker;

/// Kafka's classic group states, always reported (at 0 when no group is in them) so that
/// dashboards see a stable set of series.
const GROUP_STATES: &[GroupState] = &[
    GroupState::Empty,
    GroupState::PreparingRebalance,
    GroupState::CompletingRebalance,
    GroupState::Stable,
    GroupState::Dead,
];

pub(super) struct StateGauges {
    build_info: IntGaugeVec,
    uptime_seconds: Gauge,
    ready: IntGauge,
    log_dir_used_bytes: IntGaugeVec,
    log_dir_free_bytes: IntGaugeVec,
    log_dir_total_bytes: IntGaugeVec,
    log_dir_offline: IntGaugeVec,
    topics: IntGauge,
    partitions: IntGauge,
    partitions_led: IntGauge,
    under_replicated_partitions: IntGauge,
    under_min_isr_partitions: IntGauge,
    offline_partitions: IntGauge,
    replica_max_lag: IntGauge,
    groups: IntGaugeVec,
    group_members: IntGaugeVec,
    group_lag: IntGaugeVec,
    group_max_lag: IntGaugeVec,
    fetch_sessions: IntGauge,
    fetch_session_partitions: IntGauge,
    fetch_session_evictions: IntCounter,
    transactions: IntGaugeVec,
    oldest_open_transaction: prometheus::Gauge,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    c: C,
) -> Result<C, MetricsError> {
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
    register(r, IntGauge::with_opts(Opts::new(name, help))?)
}

fn int_gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, MetricsError> {
    register(r, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

impl StateGauges {
    pub(super) fn new(r: &Registry) -> Result<StateGauges, MetricsError> {
        Ok(StateGauges {
            build_info: int_gauge_vec(
                r,
                "strata_build_info",
                "Always 1; the labels say which Strata build is running.",
                &["version"],
            )?,
            uptime_seconds: register(
                r,
                Gauge::with_opts(Opts::new(
                    "strata_uptime_seconds",
                    "Seconds since the broker started (opened its logs).",
                ))?,
            )?,
            ready: int_gauge(
                r,
                "strata_broker_ready",
                "1 once logs are recovered and listeners accept connections, 0 before and during shutdown.",
            )?,
            log_dir_used_bytes: int_gauge_vec(
                r,
                "strata_log_dir_used_bytes",
                "Bytes of partition logs stored in the log dir.",
                &["log_dir"],
            )?,
            log_dir_free_bytes: int_gauge_vec(
                r,
                "strata_log_dir_free_bytes",
                "Bytes available to the broker on the log dir's filesystem (statvfs f_bavail).",
                &["log_dir"],
            )?,
            log_dir_total_bytes: int_gauge_vec(
                r,
                "strata_log_dir_total_bytes",
                "Size of the log dir's filesystem in bytes.",
                &["log_dir"],
            )?,
            log_dir_offline: int_gauge_vec(
                r,
                "strata_log_dir_offline",
                "1 when the log dir cannot be used (missing, not a directory, or statvfs fails), else 0.",
                &["log_dir"],
            )?,
            topics: int_gauge(r, "strata_topics", "Topics in the cluster, internal ones included.")?,
            partitions: int_gauge(
                r,
                "strata_partitions",
                "Partitions with a replica on this broker.",
            )?,
            partitions_led: int_gauge(
                r,
                "strata_partitions_led",
                "Partitions whose leader is this broker.",
            )?,
            under_replicated_partitions: int_gauge(
                r,
                "strata_under_replicated_partitions",
                "Partitions led by this broker whose ISR is smaller than their replica set.",
            )?,
            under_min_isr_partitions: int_gauge(
                r,
                "strata_under_min_isr_partitions",
                "Partitions led by this broker whose ISR is smaller than min.insync.replicas: acks=all producers to them are refused.",
            )?,
            replica_max_lag: int_gauge(
                r,
                "strata_replica_max_lag",
                "The largest number of offsets a partition this broker follows is behind its leader's high watermark (as of its last fetch).",
            )?,
            offline_partitions: int_gauge(
                r,
                "strata_offline_partitions",
                "Partitions without a live leader (or led here with no open log).",
            )?,
            groups: int_gauge_vec(
                r,
                "strata_consumer_groups",
                "Consumer groups coordinated by this broker, by state.",
                &["state"],
            )?,
            group_members: int_gauge_vec(
                r,
                "strata_consumer_group_members",
                "Members of the consumer group.",
                &["group"],
            )?,
            group_lag: int_gauge_vec(
                r,
                "strata_consumer_group_lag",
                "Log end offset minus the group's committed offset, per partition (never below 0).",
                &["group", "topic", "partition"],
            )?,
            group_max_lag: int_gauge_vec(
                r,
                "strata_consumer_group_max_lag",
                "The largest partition lag of the consumer group.",
                &["group"],
            )?,
            fetch_sessions: int_gauge(
                r,
                "strata_fetch_sessions",
                "Incremental fetch sessions (KIP-227) in the cache (Kafka's NumIncrementalFetchSessions).",
            )?,
            fetch_session_partitions: int_gauge(
                r,
                "strata_fetch_session_partitions",
                "Partitions cached over all fetch sessions (NumIncrementalFetchPartitionsCached).",
            )?,
            fetch_session_evictions: register(
                r,
                IntCounter::with_opts(Opts::new(
                    "strata_fetch_session_evictions_total",
                    "Fetch sessions evicted to make room for new ones (IncrementalFetchSessionEvictionsPerSec).",
                ))?,
            )?,
            transactions: int_gauge_vec(
                r,
                "strata_transactions",
                "Transactional ids by the state of their latest transaction (Ongoing ones are open).",
                &["state"],
            )?,
            oldest_open_transaction: register(
                r,
                prometheus::Gauge::with_opts(Opts::new(
                    "strata_transaction_oldest_open_seconds",
                    "Age of the oldest open transaction (0 when none): a hanging transaction holds read_committed consumers back.",
                ))?,
            )?,
        })
    }

    /// Recomputes every gauge. Vectors are reset first, so deleted groups, topics and log
    /// dirs disappear instead of lingering with their last value.
    pub(super) fn refresh(&self, broker: &Broker, ready: bool) {
        self.build_info.reset();
        self.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        self.uptime_seconds
            .set(broker.started_at.elapsed().as_secs_f64());
        self.ready.set(i64::from(ready));
        self.refresh_partitions(broker);
        self.refresh_log_dirs(broker);
        self.refresh_groups(broker);
        self.refresh_fetch_sessions(broker);
        self.refresh_transactions(broker);
    }

    fn refresh_transactions(&self, broker: &Broker) {
        let summary = broker.transactions.summary();
        self.transactions.reset();
        for (state, count) in summary.by_state {
            self.transactions
                .with_label_values(&[state])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.oldest_open_transaction
            .set(summary.oldest_open_ms.map_or(0.0, |ms| ms as f64 / 1000.0));
    }

    fn refresh_fetch_sessions(&self, broker: &Broker) {
        let stats = broker.fetch_sessions.stats();
        self.fetch_sessions
            .set(i64::try_from(stats.sessions).unwrap_or(i64::MAX));
        self.fetch_session_partitions
            .set(i64::try_from(stats.partitions).unwrap_or(i64::MAX));
        // The cache counts evictions itself; the counter catches up at each scrape.
        let counted = self.fetch_session_evictions.get();
        self.fetch_session_evictions
            .inc_by(stats.evictions.saturating_sub(counted));
    }

    fn refresh_partitions(&self, broker: &Broker) {
        let image = broker.metadata.image();
        let node = broker.node_id();
        let (mut hosted, mut led, mut under_replicated, mut offline) = (0i64, 0i64, 0i64, 0i64);
        let mut under_min_isr = 0i64;
        let default_min_isr = broker.current_config().min_insync_replicas.max(1);
        for topic in image.topics.values() {
            let min_isr = topic
                .configs
                .get("min.insync.replicas")
                .and_then(|v| v.parse::<i32>().ok())
                .unwrap_or(default_min_isr);
            for p in &topic.partitions {
                let leader_alive = p.leader >= 0 && image.brokers.contains_key(&p.leader);
                if p.replicas.contains(&node) {
                    hosted += 1;
                }
                if p.leader == node {
                    led += 1;
                    if p.isr.len() < p.replicas.len() {
                        under_replicated += 1;
                    }
                    if i32::try_from(p.isr.len()).unwrap_or(i32::MAX) < min_isr {
                        under_min_isr += 1;
                    }
                }
                let led_here_without_log =
                    p.leader == node && broker.replicas.get(&topic.name, p.partition).is_none();
                if !leader_alive || led_here_without_log {
                    offline += 1;
                }
            }
        }
        self.topics
            .set(i64::try_from(image.topics.len()).unwrap_or(i64::MAX));
        self.partitions.set(hosted);
        self.partitions_led.set(led);
        self.under_replicated_partitions.set(under_replicated);
        self.under_min_isr_partitions.set(under_min_isr);
        self.offline_partitions.set(offline);
        let max_lag = broker
            .replicas
            .all()
            .iter()
            .filter_map(|p| p.follower_lag())
            .max()
            .unwrap_or(0);
        self.replica_max_lag.set(max_lag);
    }

    fn refresh_log_dirs(&self, broker: &Broker) {
        let dirs = broker.replicas.log_dirs();
        let mut used: HashMap<&Path, u64> = dirs.iter().map(|d| (d.as_path(), 0)).collect();
        for p in broker.replicas.all() {
            let dir_name = format!("{}-{}", p.tp.topic, p.tp.partition);
            if let Some(dir) = dirs.iter().find(|d| d.join(&dir_name).is_dir()) {
                *used.entry(dir.as_path()).or_default() += p.size_bytes();
            }
        }
        for vec in [
            &self.log_dir_used_bytes,
            &self.log_dir_free_bytes,
            &self.log_dir_total_bytes,
            &self.log_dir_offline,
        ] {
            vec.reset();
        }
        for dir in dirs {
            let label = dir.display().to_string();
            let label = [label.as_str()];
            let bytes = used.get(dir.as_path()).copied().unwrap_or(0);
            self.log_dir_used_bytes
                .with_label_values(&label)
                .set(saturating_i64(bytes));
            let usage = if dir.is_dir() && !broker.replicas.is_log_dir_offline(dir) {
                LogDirs::usage(dir).ok()
            } else {
                None
            };
            match usage {
                Some(u) => {
                    self.log_dir_free_bytes
                        .with_label_values(&label)
                        .set(saturating_i64(u.free_bytes));
                    self.log_dir_total_bytes
                        .with_label_values(&label)
                        .set(saturating_i64(u.total_bytes));
                    self.log_dir_offline.with_label_values(&label).set(0);
                }
                None => {
                    self.log_dir_free_bytes.with_label_values(&label).set(0);
                    self.log_dir_total_bytes.with_label_values(&label).set(0);
                    self.log_dir_offline.with_label_values(&label).set(1);
                }
            }
        }
    }

    fn refresh_groups(&self, broker: &Broker) {
        for vec in [
            &self.groups,
            &self.group_members,
            &self.group_lag,
            &self.group_max_lag,
        ] {
            vec.reset();
        }
        let mut by_state: HashMap<&str, i64> = GROUP_STATES.iter().map(|s| (s.name(), 0)).collect();
        for (group, state, members) in broker.groups.group_states() {
            *by_state.entry(state).or_default() += 1;
            self.group_members
                .with_label_values(&[group.as_str()])
                .set(i64::try_from(members).unwrap_or(i64::MAX));
        }
        for (state, count) in by_state {
            self.groups.with_label_values(&[state]).set(count);
        }
        let mut max_lag: HashMap<String, i64> = HashMap::new();
        for (group, topic, partition, committed) in broker.groups.committed_offsets() {
            // Lag is only known where the partition's log is: on its leader, this broker.
            let Some(p) = broker.replicas.get(&topic, partition) else {
                continue;
            };
            let lag = p.log_end_offset().saturating_sub(committed).max(0);
            self.group_lag
                .with_label_values(&[group.as_str(), topic.as_str(), &partition.to_string()])
                .set(lag);
            let max = max_lag.entry(group).or_insert(0);
            *max = (*max).max(lag);
        }
        for (group, lag) in max_lag {
            self.group_max_lag
                .with_label_values(&[group.as_str()])
                .set(lag);
        }
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
