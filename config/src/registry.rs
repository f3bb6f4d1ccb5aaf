//! The broker key registry: one row per `server.properties` key Strata knows, with Kafka's
//! name, type, default, validator and doc. Parsing, validation and DescribeConfigs all read
//! this table, so a key is described exactly once.

use crate::types::{ConfigType, ConfigValue, Validator};

/// One broker configuration key.
#[derive(Debug, Clone, Copy)]
pub struct BrokerKey {
    pub name: &'static str,
    pub config_type: ConfigType,
    /// Kafka's default as text; `None` is Kafka's `null` (unset).
    pub default: Option<&'static str>,
    pub validator: Validator,
    pub documentation: &'static str,
    /// Kafka can change it at runtime (DynamicBrokerConfig.AllDynamicConfigs).
    pub dynamic: bool,
    /// Strata applies a dynamic change of it at once (a topic default re-resolved into
    /// every live log, or a value read afresh where it is used). Kafka-dynamic keys without
    /// this flag are refused by AlterConfigs and described as read-only.
    pub live: bool,
}

impl BrokerKey {
    const fn new(
        name: &'static str,
        config_type: ConfigType,
        default: Option<&'static str>,
        validator: Validator,
        documentation: &'static str,
    ) -> Self {
        BrokerKey {
            name,
            config_type,
            default,
            validator,
            documentation,
            dynamic: false,
            live: false,
        }
    }

    const fn dynamic(mut self) -> Self {
        self.dynamic = true;
        self
    }

    /// Dynamic in Kafka and applied live by Strata.
    const fn live(mut self) -> Self {
        self.dynamic = true;
        self.live = true;
        self
    }

    /// PASSWORD values are never shown (DescribeConfigs, error messages).
    pub fn sensitive(&self) -> bool {
        matches!(self.config_type, ConfigType::Password)
    }
}

use ConfigType::{
    Boolean as B, Class as C, Double as D, Int as I, List as L, Long as LG, Password as P,
    Short as S, String as ST,
};
use Validator::{Any, AtLeast, Between, Custom, DoubleBetween, ListOf, OneOf};

const fn k(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    validator: Validator,
    doc: &'static str,
) -> BrokerKey {
    BrokerKey::new(name, ty, default, validator, doc)
}

const I32_MAX: &str = "2147483647";
const I64_MAX: &str = "9223372036854775807";

pub(crate) const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
pub(crate) const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
pub(crate) const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// gzip accepts Deflater's levels 1..=9 or -1 (its default level).
pub(crate) fn gzip_level(value: &ConfigValue) -> Result<(), String> {
    let n = value.as_i64()?;
    if n == -1 || (1..=9).contains(&n) {
        Ok(())
    } else {
        Err(format!("expected -1 or a level in [1, 9], found {n}"))
    }
}

/// `controller.quorum.voters`: empty, or `id@host:port` entries.
fn quorum_voters(value: &ConfigValue) -> Result<(), String> {
    let entries = value.as_list()?;
    crate::broker::parse_quorum_voters(entries).map(|_| ())
}

/// `strata.metrics.listener`: empty or `0` disables; otherwise `[http://]host:port`.
fn metrics_listener(value: &ConfigValue) -> Result<(), String> {
    let s = value.as_str()?;
    if s.is_empty() || s == "0" {
        return Ok(());
    }
    let address = s.strip_prefix("http://").unwrap_or(s);
    let port = address.rsplit_once(':').map(|(_, port)| port);
    match port.map(str::parse::<u16>) {
        Some(Ok(_)) => Ok(()),
        _ => Err(format!(
            "expected http://host:port (or empty or 0 to disable), found `{s}`"
        )),
    }
}

/// Every broker key Strata knows. Keys Kafka has but Strata merely tolerates are listed
/// too, so a stock `server.properties` loads without warnings.
pub static BROKER_KEYS: &[BrokerKey] = &[
    // --- identity and cluster ---
    k("node.id", I, None, AtLeast(0), "The node ID of this server (Kafka requires it; Strata's development mode defaults it to 1)."),
    k("broker.id", I, Some("-1"), AtLeast(-1), "Legacy name of node.id; if both are set they must agree."),
    k("process.roles", L, Some(""), Any, "The roles this node plays (broker, controller); accepted for compatibility."),
    k("controller.listener.names", L, None, Any, "Names of the listeners used by the controller."),
    k("controller.quorum.voters", L, Some(""), Custom(quorum_voters), "The metadata quorum's voters as id@host:port (their controller listeners); empty: a broker on its own."),
    k("broker.session.timeout.ms", I, Some("9000"), AtLeast(1), "A broker the controller has not heard from for this long is fenced and loses its leaderships."),
    k("broker.heartbeat.interval.ms", I, Some("2000"), AtLeast(1), "Accepted for compatibility; the quorum's own heartbeats tell the controller a broker is alive."),
    k("controller.quorum.bootstrap.servers", L, Some(""), Any, "Endpoints used to discover the controller quorum; accepted for compatibility."),
    k("broker.rack", ST, None, Any, "Rack (availability zone) of the broker, used for rack-aware replica placement and follower fetching."),
    k("cluster.id", ST, None, Any, "Strata: the cluster id to format new log dirs with (Kafka takes it from kafka-storage format)."),
    // --- network ---
    k("listeners", L, Some("PLAINTEXT://:9092"), Any, "Comma-separated URIs the broker listens on, NAME://host:port; an empty host binds every interface.").dynamic(),
    k("advertised.listeners", L, None, Any, "Listeners published to clients if different from listeners; 0.0.0.0 cannot be advertised.").dynamic(),
    k("listener.security.protocol.map", ST, Some(crate::listener::DEFAULT_PROTOCOL_MAP), Any, "Map between listener names and security protocols.").dynamic(),
    k("inter.broker.listener.name", ST, None, Any, "Name of the listener brokers use to talk to each other."),
    k("security.inter.broker.protocol", ST, Some("PLAINTEXT"), OneOf(PROTOCOLS), "Security protocol used to communicate between brokers."),
    k("num.network.threads", I, Some("3"), AtLeast(1), "Threads for network requests (accepted; Strata's runtime schedules connections itself).").dynamic(),
    k("num.io.threads", I, Some("8"), AtLeast(1), "Threads for processing requests (accepted for compatibility).").dynamic(),
    k("background.threads", I, Some("10"), AtLeast(1), "Threads for background tasks (accepted for compatibility).").dynamic(),
    k("queued.max.requests", I, Some("500"), AtLeast(1), "Queued requests allowed before blocking the network threads."),
    // Kafka defaults both to 102400; Strata leaves Linux to grow them with the connection
    // (-1): with 100 KiB buffers a 1 MB produce request cost the broker 1.5-1.8x the CPU
    // (benches/README.md, "Socket buffers").
    k("socket.send.buffer.bytes", I, Some("-1"), Any, "SO_SNDBUF of accepted sockets; -1 uses the OS default (autotuned)."),
    k("socket.receive.buffer.bytes", I, Some("-1"), Any, "SO_RCVBUF of accepted sockets; -1 uses the OS default (autotuned)."),
    k("socket.request.max.bytes", I, Some("104857600"), AtLeast(1), "The maximum number of bytes in a socket request."),
    k("socket.listen.backlog.size", I, Some("50"), AtLeast(1), "The maximum number of pending connections on a socket."),
    k("connections.max.idle.ms", LG, Some("600000"), Any, "Idle connections are closed after this many milliseconds."),
    k("max.connections", I, Some(I32_MAX), AtLeast(0), "The maximum number of connections the broker accepts.").dynamic(),
    k("max.connections.per.ip", I, Some(I32_MAX), AtLeast(0), "The maximum number of connections from one IP address.").dynamic(),
    k("strata.connection.threads", I, Some("0"), Between(0, 1024), "Strata: 0 runs connections on the shared runtime's workers (work stealing); N pins each connection to one of N threads with a runtime of its own, the least busy one when it is accepted (fewer cross-thread wake-ups for many small requests)."),
    k("strata.metrics.listener", ST, Some("http://127.0.0.1:9308"), Custom(metrics_listener), "Strata: address of the Prometheus /metrics endpoint; empty or 0 disables it."),
    k("metrics.listener", ST, None, Custom(metrics_listener), "Address of the Prometheus /metrics and /health endpoints (http://host:port); empty or 0 disables them. The documented name; wins over strata.metrics.listener."),
    // --- topics ---
    k("auto.create.topics.enable", B, Some("true"), Any, "Enable auto creation of topics on the server."),
    k("delete.topic.enable", B, Some("true"), Any, "Enables topic deletion."),
    k("auto.leader.rebalance.enable", B, Some("true"), Any, "Enables automatic leader balancing: the controller moves leaderships back to each partition's preferred (first) replica when it is in sync."),
    k("leader.imbalance.check.interval.seconds", LG, Some("300"), AtLeast(1), "How often the controller checks whether leaderships should move back to preferred replicas."),
    k("leader.imbalance.per.broker.percentage", I, Some("10"), AtLeast(0), "A broker's share of partitions it prefers but does not lead above which the controller moves them back."),
    k("num.partitions", I, Some("1"), AtLeast(1), "The default number of log partitions per topic."),
    k("default.replication.factor", I, Some("1"), AtLeast(1), "The default replication factor for automatically created topics."),
    k("unclean.leader.election.enable", B, Some("false"), Any, "Whether replicas not in the ISR may be elected leader as a last resort.").dynamic(),
    k("min.insync.replicas", I, Some("1"), AtLeast(1), "Minimum replicas that must acknowledge a write with acks=all.").dynamic(),
    k("message.max.bytes", I, Some("1048588"), AtLeast(0), "The largest record batch size allowed.").live(),
    k("compression.type", ST, Some("producer"), OneOf(COMPRESSION_TYPES), "The final compression type for topics; producer keeps the producer's codec.").dynamic(),
    k("compression.gzip.level", I, Some("-1"), Custom(gzip_level), "The compression level to use if compression.type is gzip.").dynamic(),
    k("compression.lz4.level", I, Some("9"), Between(1, 17), "The compression level to use if compression.type is lz4.").dynamic(),
    k("compression.zstd.level", I, Some("3"), Between(-131072, 22), "The compression level to use if compression.type is zstd.").dynamic(),
    // --- the log ---
    k("log.dir", L, Some("/tmp/kafka-logs"), Any, "The directory in which the log data is kept (supplemental for log.dirs)."),
    k("log.dirs", L, None, Any, "Comma-separated directories where log data is stored; if not set, log.dir is used."),
    k("log.segment.bytes", I, Some("1073741824"), AtLeast(1_048_576), "The maximum size of a single log file.").live(),
    k("log.roll.ms", LG, None, AtLeast(1), "The maximum time before a new log segment is rolled out; if not set, log.roll.hours is used.").live(),
    k("log.roll.hours", I, Some("168"), AtLeast(1), "The maximum time before a new log segment is rolled out, in hours (secondary to log.roll.ms)."),
    k("log.roll.jitter.ms", LG, None, AtLeast(0), "The maximum jitter to subtract from the roll time; if not set, log.roll.jitter.hours is used.").live(),
    k("log.roll.jitter.hours", I, Some("0"), AtLeast(0), "The maximum roll jitter in hours (secondary to log.roll.jitter.ms)."),
    k("log.retention.ms", LG, None, Any, "Milliseconds to keep a log file before deleting it; if not set, log.retention.minutes is used; -1 means no limit.").live(),
    k("log.retention.minutes", I, None, Any, "Minutes to keep a log file (secondary to log.retention.ms); if not set, log.retention.hours is used."),
    k("log.retention.hours", I, Some("168"), Any, "Hours to keep a log file (tertiary to log.retention.ms)."),
    k("log.retention.bytes", LG, Some("-1"), Any, "The maximum size of a partition's log before deleting old segments; -1 means no limit.").live(),
    k("log.retention.check.interval.ms", LG, Some("300000"), AtLeast(1), "How often the retention checker looks for deletable segments."),
    k("log.cleanup.policy", L, Some("delete"), ListOf(CLEANUP_POLICIES), "The default cleanup policy for segments beyond the retention window.").live(),
    k("log.index.size.max.bytes", I, Some("10485760"), AtLeast(4), "The maximum size in bytes of the offset index.").live(),
    k("log.index.interval.bytes", I, Some("4096"), AtLeast(0), "The interval with which an entry is added to the offset index.").live(),
    k("log.flush.interval.messages", LG, Some(I64_MAX), AtLeast(1), "Messages accumulated on a log partition before they are flushed to disk.").live(),
    k("log.flush.interval.ms", LG, None, Any, "Maximum time a message stays unflushed; if not set, log.flush.scheduler.interval.ms is used.").live(),
    k("log.flush.scheduler.interval.ms", LG, Some(I64_MAX), Any, "How often the log flusher checks whether any log needs flushing."),
    k("log.flush.offset.checkpoint.interval.ms", I, Some("60000"), AtLeast(0), "How often the recovery point is checkpointed."),
    k("log.flush.start.offset.checkpoint.interval.ms", I, Some("60000"), AtLeast(0), "How often the log start offset is checkpointed."),
    k("log.segment.delete.delay.ms", LG, Some("60000"), AtLeast(0), "Time to wait before deleting a file from the filesystem.").live(),
    k("log.preallocate", B, Some("false"), Any, "Whether to preallocate the file when a new segment is created.").live(),
    k("log.message.timestamp.type", ST, Some("CreateTime"), OneOf(TIMESTAMP_TYPES), "Whether record timestamps are the producer's (CreateTime) or the broker's (LogAppendTime).").live(),
    k("log.message.timestamp.before.max.ms", LG, Some(I64_MAX), AtLeast(0), "How far a CreateTime timestamp may lie before the broker's clock.").dynamic(),
    k("log.message.timestamp.after.max.ms", LG, Some(I64_MAX), AtLeast(0), "How far a CreateTime timestamp may lie after the broker's clock.").dynamic(),
    k("log.local.retention.ms", LG, Some("-2"), AtLeast(-2), "Local retention with tiered storage; -2 means log.retention.ms (tiered storage is not supported).").dynamic(),
    k("log.local.retention.bytes", LG, Some("-2"), AtLeast(-2), "Local retention with tiered storage; -2 means log.retention.bytes (tiered storage is not supported).").dynamic(),
    k("num.recovery.threads.per.data.dir", I, Some("1"), AtLeast(1), "Threads per data directory for log recovery at start-up and flushing at shutdown.").dynamic(),
    k("log.cleaner.enable", B, Some("true"), Any, "Enable the log cleaner (compaction)."),
    k("log.cleaner.threads", I, Some("1"), AtLeast(0), "Background threads for log cleaning.").dynamic(),
    k("log.cleaner.backoff.ms", LG, Some("15000"), AtLeast(0), "Sleep time when there are no logs to clean.").live(),
    k("log.cleaner.dedupe.buffer.size", LG, Some("134217728"), AtLeast(1), "Memory used for log deduplication across all cleaner threads.").live(),
    k("log.cleaner.delete.retention.ms", LG, Some("86400000"), AtLeast(0), "How long delete tombstones are retained on compacted topics.").live(),
    k("log.cleaner.min.compaction.lag.ms", LG, Some("0"), AtLeast(0), "The minimum time a record stays uncompacted.").live(),
    k("log.cleaner.max.compaction.lag.ms", LG, Some(I64_MAX), AtLeast(1), "The maximum time a record stays ineligible for compaction.").live(),
    k("log.cleaner.min.cleanable.ratio", D, Some("0.5"), DoubleBetween(0.0, 1.0), "The minimum ratio of dirty log to total log for a log to be eligible for cleaning.").live(),
    // --- replication ---
    k("replica.lag.time.max.ms", LG, Some("30000"), Any, "A follower that has not caught up for this long leaves the ISR."),
    k("num.replica.fetchers", I, Some("1"), AtLeast(1), "Fetcher threads per source broker.").dynamic(),
    k("replica.fetch.max.bytes", I, Some("1048576"), AtLeast(0), "Bytes fetched per partition by a follower."),
    k("replica.fetch.min.bytes", I, Some("1"), Any, "Minimum bytes expected for each follower fetch response."),
    k("replica.fetch.wait.max.ms", I, Some("500"), Any, "Maximum wait time for each follower fetch request."),
    k("replica.selector.class", ST, None, Any, "Set (e.g. org.apache.kafka.common.replica.RackAwareReplicaSelector) to let consumers with client.rack fetch from an in-sync replica in their rack (KIP-392)."),
    k("replica.fetch.backoff.ms", I, Some("1000"), AtLeast(0), "How long a follower waits after a failed fetch before retrying."),
    k("max.incremental.fetch.session.cache.slots", I, Some("1000"), AtLeast(0), "The maximum number of incremental fetch sessions (KIP-227) the broker keeps; 0 turns them off."),
    // --- groups and offsets ---
    k("offsets.topic.num.partitions", I, Some("50"), AtLeast(1), "The number of partitions of the __consumer_offsets topic."),
    k("offsets.topic.replication.factor", S, Some("3"), AtLeast(1), "The replication factor of the offsets topic (capped to the cluster size: 1 alone, else the larger of its voters and registered brokers; created once that many are live)."),
    k("offsets.topic.segment.bytes", I, Some("104857600"), AtLeast(1), "The segment size of the offsets topic."),
    k("offsets.retention.minutes", I, Some("10080"), AtLeast(1), "Committed offsets of an empty group are kept this long."),
    k("offsets.retention.check.interval.ms", LG, Some("600000"), AtLeast(1), "How often to check for stale offsets."),
    k("offset.metadata.max.bytes", I, Some("4096"), Any, "The maximum size of the metadata of an offset commit."),
    k("group.initial.rebalance.delay.ms", I, Some("3000"), Any, "How long the coordinator waits for more members to join a new group before the first rebalance."),
    k("group.min.session.timeout.ms", I, Some("6000"), Any, "The minimum session timeout for registered consumers."),
    k("group.max.session.timeout.ms", I, Some("1800000"), Any, "The maximum session timeout for registered consumers."),
    k("group.max.size", I, Some(I32_MAX), AtLeast(1), "The maximum number of consumers a single consumer group can hold."),
    // --- transactions and idempotence ---
    k("transactional.id.expiration.ms", I, Some("604800000"), AtLeast(1), "How long a transactional id lives without updates.").dynamic(),
    k("producer.id.expiration.ms", I, Some("86400000"), AtLeast(1), "How long a producer id's state is kept after its last write.").dynamic(),
    k("transaction.max.timeout.ms", I, Some("900000"), AtLeast(1), "The maximum transaction timeout a producer may ask for."),
    k("transaction.state.log.num.partitions", I, Some("50"), AtLeast(1), "The number of partitions of the transaction topic."),
    k("transaction.abort.timed.out.transaction.cleanup.interval.ms", I, Some("10000"), AtLeast(1), "How often transactions past their timeout are aborted."),
    // --- client quotas ---
    k("quota.window.num", I, Some("11"), AtLeast(2), "The number of samples client quota rates are measured over."),
    k("quota.window.size.seconds", I, Some("1"), AtLeast(1), "The length of one client quota sample."),
    k("transaction.state.log.replication.factor", S, Some("3"), AtLeast(1), "The replication factor of the transaction topic (capped like offsets.topic.replication.factor)."),
    k("transaction.state.log.min.isr", I, Some("2"), AtLeast(1), "min.insync.replicas of the transaction topic."),
    k("share.coordinator.state.topic.replication.factor", S, Some("3"), AtLeast(1), "Replication factor of the share-group state topic (accepted for compatibility)."),
    k("share.coordinator.state.topic.min.isr", S, Some("2"), AtLeast(1), "min.insync.replicas of the share-group state topic (accepted for compatibility)."),
    // --- security ---
    k("super.users", ST, None, Any, "Semicolon-separated principals (User:alice) that bypass ACLs."),
    k("authorizer.class.name", ST, Some(""), Any, "The authorizer; empty disables authorization."),
    k("allow.everyone.if.no.acl.found", B, Some("false"), Any, "Whether a resource without ACLs is open to everyone."),
    k("connection.failed.authentication.delay.ms", I, Some("100"), AtLeast(0), "How long a connection that failed authentication waits before its failure response and close."),
    k("sasl.enabled.mechanisms", L, Some("GSSAPI"), Any, "The SASL mechanisms enabled on the broker (Strata: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).").dynamic(),
    k("sasl.mechanism.inter.broker.protocol", ST, Some("GSSAPI"), Any, "The SASL mechanism for inter-broker communication.").dynamic(),
    k("sasl.mechanism.controller.protocol", ST, Some("GSSAPI"), Any, "The SASL mechanism for communication with controllers."),
    k("sasl.jaas.config", P, None, Any, "JAAS login context parameters for SASL connections.").dynamic(),
    k("ssl.protocol", ST, Some("TLSv1.3"), Any, "The TLS protocol used to build the SSL context.").dynamic(),
    k("ssl.enabled.protocols", L, Some("TLSv1.2,TLSv1.3"), Any, "The TLS protocols enabled for connections.").dynamic(),
    k("ssl.client.auth", ST, Some("none"), OneOf(&["required", "requested", "none"]), "Whether the broker requires, requests or ignores client certificates.").dynamic(),
    k("ssl.keystore.type", ST, Some("JKS"), Any, "The file format of the key store (Strata reads PEM).").dynamic(),
    k("ssl.keystore.location", ST, None, Any, "The location of the key store file.").dynamic(),
    k("ssl.keystore.password", P, None, Any, "The store password for the key store file.").dynamic(),
    k("ssl.key.password", P, None, Any, "The password of the private key in the key store.").dynamic(),
    k("ssl.keystore.certificate.chain", P, None, Any, "Certificate chain in PEM format.").dynamic(),
    k("ssl.keystore.key", P, None, Any, "Private key in PEM format.").dynamic(),
    k("ssl.truststore.type", ST, Some("JKS"), Any, "The file format of the trust store (Strata reads PEM).").dynamic(),
    k("ssl.truststore.location", ST, None, Any, "The location of the trust store file.").dynamic(),
    k("ssl.truststore.password", P, None, Any, "The password for the trust store file.").dynamic(),
    k("ssl.truststore.certificates", P, None, Any, "Trusted certificates in PEM format.").dynamic(),
    k("ssl.endpoint.identification.algorithm", ST, Some("https"), Any, "The endpoint identification algorithm to validate server hostnames.").dynamic(),
    // --- metrics ---
    k("metric.reporters", L, Some(""), Any, "Metrics reporter classes (accepted for compatibility).").dynamic(),
    k("create.topic.policy.class.name", C, None, Any, "The create topic policy class (accepted for compatibility)."),
    k("alter.config.policy.class.name", C, None, Any, "The alter configs policy class (accepted for compatibility)."),
];

/// Broker keys Kafka treats as one setting at different units: DescribeConfigs reports
/// each as a synonym of the others, highest priority first.
pub static BROKER_SYNONYM_GROUPS: &[&[&str]] = &[
    &["log.roll.ms", "log.roll.hours"],
    &["log.roll.jitter.ms", "log.roll.jitter.hours"],
    &[
        "log.retention.ms",
        "log.retention.minutes",
        "log.retention.hours",
    ],
    &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
];

/// The registry row for `name`, if Strata knows the key.
pub fn broker_key(name: &str) -> Option<&'static BrokerKey> {
    BROKER_KEYS.iter().find(|key| key.name == name)
}

/// Per-listener overrides (`listener.name.sasl_ssl.ssl.keystore.location`) are Kafka
/// syntax; they are not warned about even though the table does not list them.
pub fn is_listener_override(name: &str) -> bool {
    name.starts_with("listener.name.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{parse_value, validate};

    #[test]
    fn every_default_parses_and_passes_its_validator() {
        for key in BROKER_KEYS {
            if let Some(default) = key.default {
                let value = parse_value(key.config_type, default)
                    .unwrap_or_else(|e| panic!("{}: default {default:?}: {e}", key.name));
                validate(&key.validator, &value)
                    .unwrap_or_else(|e| panic!("{}: default {default:?}: {e}", key.name));
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = BROKER_KEYS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a key is listed twice");
    }

    #[test]
    fn synonym_groups_name_registered_keys() {
        for group in BROKER_SYNONYM_GROUPS {
            for name in *group {
                assert!(broker_key(name).is_some(), "{name} is not registered");
            }
        }
    }
}
