//! Loading a broker configuration through the public API: development defaults, files,
//! overrides, Kafka's precedence rules and the errors an operator sees.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use strata_config::{load, parse_override, ConfigError, LoadedConfig, SecurityProtocol};

fn overrides(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn dev(pairs: &[(&str, &str)]) -> Result<LoadedConfig, ConfigError> {
    load(None, &overrides(pairs))
}

fn with_file(text: &str, pairs: &[(&str, &str)]) -> Result<LoadedConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.properties");
    std::fs::write(&path, text).unwrap();
    load(Some(&path), &overrides(pairs))
}

fn key_of(err: &ConfigError) -> &str {
    err.key()
        .unwrap_or_else(|| panic!("error names no key: {err}"))
}

#[test]
fn development_defaults() {
    let loaded = dev(&[]).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(c.node_id, 1);
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].name, "PLAINTEXT");
    assert_eq!(c.listeners[0].host, "127.0.0.1");
    assert_eq!(c.listeners[0].port, 9092);
    assert_eq!(
        c.listeners[0].security_protocol,
        SecurityProtocol::Plaintext
    );
    assert_eq!(c.advertised_listeners, c.listeners);
    assert_eq!(c.log_dirs, vec![PathBuf::from("./data")]);
    // Kafka's own defaults for everything else.
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.default_replication_factor, 1);
    assert!(c.auto_create_topics_enable);
    assert!(c.delete_topic_enable);
    assert_eq!(c.log_segment_bytes, 1 << 30);
    assert_eq!(c.log_roll_ms, 168 * 3_600_000);
    assert_eq!(c.log_retention_ms, 168 * 3_600_000);
    assert_eq!(c.log_retention_bytes, -1);
    assert_eq!(c.log_index_interval_bytes, 4096);
    assert_eq!(c.log_index_size_max_bytes, 10 * 1024 * 1024);
    assert_eq!(c.log_segment_delete_delay_ms, 60_000);
    assert_eq!(c.log_flush_interval_messages, i64::MAX as u64);
    assert_eq!(c.log_flush_interval_ms, None);
    assert_eq!(c.log_flush_scheduler_interval_ms, i64::MAX);
    assert_eq!(c.log_message_timestamp_type, "CreateTime");
    assert_eq!(c.log_cleanup_policy, "delete");
    assert_eq!(c.log_retention_check_interval_ms, 300_000);
    assert!(!c.log_preallocate);
    assert_eq!(c.message_max_bytes, 1_048_588);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.broker_rack, None);
    assert_eq!(c.min_insync_replicas, 1);
    assert_eq!(c.compression_type, "producer");
    assert_eq!(c.offsets_topic_num_partitions, 50);
    assert_eq!(c.offsets_topic_replication_factor, 3);
    assert_eq!(c.offsets_retention_minutes, 10_080);
    assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
    assert_eq!(c.group_min_session_timeout_ms, 6000);
    assert_eq!(c.group_max_session_timeout_ms, 1_800_000);
    assert_eq!(c.group_max_size, i32::MAX);
    assert_eq!(c.transactional_id_expiration_ms, 604_800_000);
    assert_eq!(c.producer_id_expiration_ms, 86_400_000);
    assert_eq!(c.num_network_threads, 3);
    assert_eq!(c.connections_max_idle_ms, 600_000);
    assert_eq!(c.metrics_listener.as_deref(), Some("http://127.0.0.1:9308"));
    assert_eq!(c.cluster_id, None);
    assert_eq!(c.inter_broker_listener_name, None);
    assert_eq!(c.listener_security_protocol_map.len(), 4);
    assert!(c.originals.is_empty());
}

#[test]
fn config_file_is_read_and_overrides_beat_it() {
    let text = "node.id=3\nlisteners=PLAINTEXT://127.0.0.1:19092\nlog.dirs=/var/a,/var/b\nnum.partitions=4\n";
    let c = with_file(text, &[]).unwrap().config;
    assert_eq!(c.node_id, 3);
    assert_eq!(c.listeners[0].port, 19092);
    assert_eq!(
        c.log_dirs,
        vec![PathBuf::from("/var/a"), PathBuf::from("/var/b")]
    );
    assert_eq!(c.num_partitions, 4);

    let c = with_file(text, &[("num.partitions", "6"), ("node.id", "9")])
        .unwrap()
        .config;
    assert_eq!(c.num_partitions, 6);
    assert_eq!(c.node_id, 9);
    assert_eq!(
        c.originals.get("num.partitions").map(String::as_str),
        Some("6")
    );
}

#[test]
fn overrides_beat_development_defaults_and_the_last_one_wins() {
    let c = dev(&[
        ("node.id", "7"),
        ("log.dirs", "/tmp/x"),
        ("num.partitions", "2"),
        ("num.partitions", "5"),
    ])
    .unwrap()
    .config;
    assert_eq!(c.node_id, 7);
    assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/x")]);
    assert_eq!(c.num_partitions, 5);
}

#[test]
fn a_config_file_without_node_id_is_refused() {
    let err = with_file("listeners=PLAINTEXT://127.0.0.1:9092\n", &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Missing { .. }), "{err}");
    assert_eq!(key_of(&err), "node.id");
    // Kafka's legacy broker.id still names the node.
    let c = with_file("broker.id=4\n", &[]).unwrap().config;
    assert_eq!(c.node_id, 4);
    let err = with_file("broker.id=4\nnode.id=5\n", &[]).unwrap_err();
    assert_eq!(key_of(&err), "broker.id");
}

#[test]
fn a_config_file_uses_kafka_defaults_not_development_ones() {
    let c = with_file("node.id=1\n", &[]).unwrap().config;
    assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/kafka-logs")]);
    assert_eq!(c.listeners[0].host, "");
    assert_eq!(c.listeners[0].port, 9092);
    // The empty host binds every interface; the advertised one must be a real name.
    assert!(!c.advertised_listeners[0].host.is_empty());
}

#[test]
fn invalid_values_name_the_key() {
    for (key, value) in [
        ("node.id", "abc"),
        ("node.id", "-5"),
        ("num.partitions", "many"),
        ("num.partitions", "0"),
        ("log.segment.bytes", "-1"),
        ("log.segment.bytes", "1000"),
        ("message.max.bytes", "lots"),
        ("auto.create.topics.enable", "yes"),
        ("compression.type", "brotli"),
        ("log.message.timestamp.type", "Whenever"),
        ("log.cleanup.policy", "shred"),
        ("log.cleaner.min.cleanable.ratio", "1.5"),
        ("offsets.topic.replication.factor", "40000"),
        ("strata.metrics.listener", "nowhere"),
    ] {
        let err = dev(&[(key, value)]).unwrap_err();
        assert_eq!(key_of(&err), key, "{key}={value}: {err}");
        let text = err.to_string();
        assert!(text.contains(key) && text.contains(value), "{text}");
    }
}

#[test]
fn invalid_listeners_name_the_key() {
    for value in [
        "FOO://x",
        "FOO://x:9092",
        "PLAINTEXT://x",
        "PLAINTEXT://x:70000",
        "nonsense",
        "PLAINTEXT://a:1,PLAINTEXT://b:2",
        "",
    ] {
        let err = dev(&[("listeners", value)]).unwrap_err();
        assert_eq!(key_of(&err), "listeners", "listeners={value}: {err}");
    }
    let err = dev(&[("listener.security.protocol.map", "PLAINTEXT:TLS")]).unwrap_err();
    assert_eq!(key_of(&err), "listener.security.protocol.map");
}

#[test]
fn invalid_value_in_a_file_names_the_key() {
    let err = with_file("# broken\nnode.id=1\nmessage.max.bytes=lots\n", &[]).unwrap_err();
    assert_eq!(key_of(&err), "message.max.bytes");
}

#[test]
fn unknown_keys_warn_but_load() {
    let loaded = dev(&[("strata.tests.no.such.key", "1"), ("foo.bar", "x")]).unwrap();
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    assert!(loaded.warnings.iter().any(|w| w.contains("foo.bar")));
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.contains("strata.tests.no.such.key")));
    // Kept for DescribeConfigs and for other parts of the broker.
    assert_eq!(
        loaded.config.originals.get("foo.bar").map(String::as_str),
        Some("x")
    );
    // Per-listener overrides are Kafka syntax, not unknown keys.
    let loaded = dev(&[("listener.name.plaintext.ssl.keystore.location", "/k")]).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded
            .config
            .listener_value("PLAINTEXT", "ssl.keystore.location"),
        Some("/k")
    );
    assert_eq!(
        loaded.config.listener_value("SSL", "ssl.keystore.location"),
        None
    );
}

#[test]
fn replication_factor_and_quorum_voters_are_checked() {
    let three = dev(&[("default.replication.factor", "3")]).unwrap();
    assert_eq!(three.config.default_replication_factor, 3);
    let err = dev(&[("default.replication.factor", "0")]).unwrap_err();
    assert_eq!(key_of(&err), "default.replication.factor");

    let cluster = dev(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        ),
        ("controller.listener.names", "CONTROLLER"),
        (
            "controller.quorum.voters",
            "1@127.0.0.1:9093,2@h2:9093,3@h3:9093",
        ),
    ])
    .unwrap();
    assert_eq!(cluster.config.controller_quorum_voters.len(), 3);
    assert_eq!(
        cluster.config.controller_listener().map(|l| l.port),
        Some(9093)
    );
    for bad in ["1@h", "x@h:1", "1@h:1,1@g:2", "h:9093"] {
        let err = dev(&[
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            ),
            ("controller.listener.names", "CONTROLLER"),
            ("controller.quorum.voters", bad),
        ])
        .unwrap_err();
        assert_eq!(key_of(&err), "controller.quorum.voters", "{bad}");
    }
    let err = dev(&[("controller.quorum.voters", "1@127.0.0.1:9093")]).unwrap_err();
    assert_eq!(key_of(&err), "controller.listener.names");
}

#[test]
fn retention_precedence_is_ms_then_minutes_then_hours() {
    let c = |pairs: &[(&str, &str)]| dev(pairs).unwrap().config.log_retention_ms;
    assert_eq!(c(&[("log.retention.hours", "1")]), 3_600_000);
    assert_eq!(
        c(&[("log.retention.hours", "1"), ("log.retention.minutes", "2")]),
        120_000
    );
    assert_eq!(
        c(&[
            ("log.retention.hours", "1"),
            ("log.retention.minutes", "2"),
            ("log.retention.ms", "5000")
        ]),
        5000
    );
    assert_eq!(
        c(&[("log.retention.ms", "-1"), ("log.retention.hours", "1")]),
        -1
    );
    // Kafka turns any negative retention into "forever".
    assert_eq!(c(&[("log.retention.hours", "-3")]), -1);
}

#[test]
fn roll_time_falls_back_to_hours() {
    let c = dev(&[("log.roll.hours", "2")]).unwrap().config;
    assert_eq!(c.log_roll_ms, 7_200_000);
    let c = dev(&[("log.roll.hours", "2"), ("log.roll.ms", "1000")])
        .unwrap()
        .config;
    assert_eq!(c.log_roll_ms, 1000);
    assert_eq!(
        key_of(&dev(&[("log.roll.hours", "0")]).unwrap_err()),
        "log.roll.hours"
    );
}

#[test]
fn log_dirs_fall_back_to_log_dir() {
    let c = dev(&[("log.dir", "/srv/one")]).unwrap().config;
    assert_eq!(c.log_dirs, vec![PathBuf::from("/srv/one")]);
    let c = dev(&[("log.dir", "/srv/one"), ("log.dirs", "/srv/two")])
        .unwrap()
        .config;
    assert_eq!(c.log_dirs, vec![PathBuf::from("/srv/two")]);
    let err = dev(&[("log.dirs", "/a,/a")]).unwrap_err();
    assert_eq!(key_of(&err), "log.dirs");
}

#[test]
fn wildcard_hosts_cannot_be_advertised() {
    let err = dev(&[("listeners", "PLAINTEXT://0.0.0.0:9092")]).unwrap_err();
    assert_eq!(key_of(&err), "advertised.listeners");
    assert!(err.to_string().contains("0.0.0.0"), "{err}");
    let c = dev(&[
        ("listeners", "PLAINTEXT://0.0.0.0:9092"),
        ("advertised.listeners", "PLAINTEXT://broker1.example:9092"),
    ])
    .unwrap()
    .config;
    assert_eq!(c.listeners[0].host, "0.0.0.0");
    assert_eq!(c.advertised_listeners[0].host, "broker1.example");
    let err = dev(&[
        ("listeners", "PLAINTEXT://0.0.0.0:9092"),
        ("advertised.listeners", "SSL://broker1.example:9093"),
    ])
    .unwrap_err();
    assert_eq!(key_of(&err), "advertised.listeners");
}

#[test]
fn controller_listeners_are_not_advertised() {
    let c = dev(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        ),
        ("controller.listener.names", "CONTROLLER"),
    ])
    .unwrap()
    .config;
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(
        c.listeners[1].security_protocol,
        SecurityProtocol::Plaintext
    );
    assert_eq!(c.advertised_listeners.len(), 1);
    assert_eq!(c.advertised_listeners[0].name, "PLAINTEXT");
}

#[test]
fn custom_listener_names_and_inter_broker_listener() {
    let c = dev(&[
        (
            "listeners",
            "INTERNAL://127.0.0.1:9092,EXTERNAL://127.0.0.1:9093",
        ),
        (
            "listener.security.protocol.map",
            "INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL",
        ),
        ("inter.broker.listener.name", "internal"),
    ])
    .unwrap()
    .config;
    assert_eq!(c.listeners[1].security_protocol, SecurityProtocol::SaslSsl);
    assert_eq!(c.inter_broker_listener_name.as_deref(), Some("INTERNAL"));
    assert_eq!(c.inter_broker_listener().map(|l| l.port), Some(9092));
    let err = dev(&[("inter.broker.listener.name", "NOPE")]).unwrap_err();
    assert_eq!(key_of(&err), "inter.broker.listener.name");
}

#[test]
fn metrics_listener_can_be_disabled() {
    for off in ["", "0"] {
        let c = dev(&[("strata.metrics.listener", off)]).unwrap().config;
        assert_eq!(c.metrics_listener, None, "strata.metrics.listener={off:?}");
    }
    let c = dev(&[("strata.metrics.listener", "127.0.0.1:0")])
        .unwrap()
        .config;
    assert_eq!(c.metrics_listener.as_deref(), Some("127.0.0.1:0"));
}

#[test]
fn stock_kafka_server_properties_loads_without_warnings() {
    // The KRaft combined-mode server.properties shipped with Kafka 3.x/4.x, trimmed of
    // comments.
    let text = r"
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
";
    let loaded = with_file(text, &[]).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(c.inter_broker_listener_name.as_deref(), Some("PLAINTEXT"));
    assert_eq!(c.advertised_listeners[0].host, "localhost");
    assert_eq!(c.offsets_topic_replication_factor, 1);
}

#[test]
fn file_errors_name_the_file_and_line() {
    let missing = Path::new("/nonexistent/strata/server.properties");
    let err = load(Some(missing), &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }), "{err}");
    assert!(err
        .to_string()
        .contains("/nonexistent/strata/server.properties"));
    let err = with_file("node.id=1\nbad=\\uZZZZ\n", &[]).unwrap_err();
    match err {
        ConfigError::Syntax { line, .. } => assert_eq!(line, 2),
        other => panic!("expected a syntax error, got {other}"),
    }
}

#[test]
fn properties_syntax_reaches_the_config() {
    let text = "node.id : 2\nlisteners PLAINTEXT://127.0.0.1:9000,\\\n    SSL://127.0.0.1:9001\n! comment\nlog.dirs = /d \n";
    let c = with_file(text, &[]).unwrap().config;
    assert_eq!(c.node_id, 2);
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(c.listeners[1].security_protocol, SecurityProtocol::Ssl);
    assert_eq!(c.log_dirs, vec![PathBuf::from("/d")]);
}

#[test]
fn warnings_never_echo_values() {
    // A misspelt password key is unknown, but its value is still a secret.
    let loaded = dev(&[("ssl.keystore.pasword", "hunter2")]).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].contains("ssl.keystore.pasword"));
    assert!(
        !loaded.warnings[0].contains("hunter2"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn parse_override_splits_on_the_first_equals() {
    assert_eq!(
        parse_override("log.dirs=/a=b").unwrap(),
        ("log.dirs".to_owned(), "/a=b".to_owned())
    );
    assert_eq!(
        parse_override(" num.partitions = 6 ").unwrap(),
        ("num.partitions".to_owned(), "6".to_owned())
    );
    assert_eq!(
        parse_override("broker.rack=").unwrap(),
        ("broker.rack".to_owned(), String::new())
    );
    assert!(matches!(
        parse_override("node.id"),
        Err(ConfigError::InvalidOverride { .. })
    ));
    assert!(parse_override("=1").is_err());
}

#[test]
fn cross_key_rules() {
    let err = dev(&[
        ("group.min.session.timeout.ms", "10000"),
        ("group.max.session.timeout.ms", "5000"),
    ])
    .unwrap_err();
    assert_eq!(key_of(&err), "group.max.session.timeout.ms");
}
