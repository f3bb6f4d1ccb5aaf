//! Topic config resolution and the DescribeConfigs listings, through the public API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;

use strata_config::{
    describe_broker, describe_topic, load, validate_topic_config, BrokerConfig, CleanupPolicy,
    ConfigEntry, ConfigError, ConfigSource, ConfigType, TopicConfig,
};

fn broker(pairs: &[(&str, &str)]) -> BrokerConfig {
    let overrides: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    load(None, &overrides).unwrap().config
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn entry<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no entry {name}"))
}

#[test]
fn defaults_of_a_default_broker_are_kafkas_topic_defaults() {
    let resolved = TopicConfig::resolve(&broker(&[]), &BTreeMap::new()).unwrap();
    assert_eq!(resolved, TopicConfig::default());
    assert_eq!(resolved.retention_ms, 604_800_000);
    assert_eq!(resolved.segment_bytes, 1_073_741_824);
    assert_eq!(resolved.cleanup_policy, CleanupPolicy::Delete);
}

#[test]
fn broker_settings_become_topic_defaults_through_synonyms() {
    let b = broker(&[
        ("log.retention.hours", "2"),
        ("log.segment.bytes", "2097152"),
        ("message.max.bytes", "5000"),
        ("log.roll.ms", "60000"),
        ("log.flush.scheduler.interval.ms", "1000"),
        ("log.cleanup.policy", "compact,delete"),
        ("log.cleaner.min.cleanable.ratio", "0.25"),
        ("unclean.leader.election.enable", "true"),
    ]);
    let t = TopicConfig::resolve(&b, &BTreeMap::new()).unwrap();
    assert_eq!(t.retention_ms, 7_200_000);
    assert_eq!(t.segment_bytes, 2_097_152);
    assert_eq!(t.max_message_bytes, 5000);
    assert_eq!(t.segment_ms, 60_000);
    assert_eq!(t.flush_ms, 1000);
    assert_eq!(t.cleanup_policy, CleanupPolicy::CompactDelete);
    assert!((t.min_cleanable_dirty_ratio - 0.25).abs() < f64::EPSILON);
    assert!(t.unclean_leader_election_enable);
}

#[test]
fn topic_overrides_beat_broker_defaults() {
    let b = broker(&[("log.retention.ms", "1000")]);
    let t = TopicConfig::resolve(
        &b,
        &map(&[
            ("retention.ms", "-1"),
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1048576"),
            ("max.message.bytes", "100"),
            ("message.timestamp.type", "LogAppendTime"),
            ("min.insync.replicas", "2"),
            ("compression.type", "zstd"),
        ]),
    )
    .unwrap();
    assert_eq!(t.retention_ms, -1);
    assert_eq!(t.cleanup_policy, CleanupPolicy::Compact);
    assert_eq!(t.segment_bytes, 1_048_576);
    assert_eq!(t.max_message_bytes, 100);
    assert_eq!(t.message_timestamp_type, "LogAppendTime");
    assert_eq!(t.min_insync_replicas, 2);
    assert_eq!(t.compression_type, "zstd");
}

#[test]
fn bad_topic_values_and_unknown_keys_name_the_key() {
    let b = broker(&[]);
    for (key, value) in [
        ("retention.ms", "soon"),
        ("retention.ms", "-2"),
        ("segment.bytes", "1024"),
        ("cleanup.policy", "shred"),
        ("cleanup.policy", ""),
        ("min.insync.replicas", "0"),
        ("compression.type", "brotli"),
        ("message.timestamp.type", "Now"),
        ("min.cleanable.dirty.ratio", "2"),
        ("preallocate", "maybe"),
        ("remote.storage.enable", "true"),
        ("leader.replication.throttled.replicas", "x"),
        ("max.message.bytes", "3000000000"),
    ] {
        let err = TopicConfig::resolve(&b, &map(&[(key, value)])).unwrap_err();
        assert_eq!(err.key(), Some(key), "{key}={value}: {err}");
        assert!(validate_topic_config(key, value).is_err(), "{key}={value}");
    }
    let err = TopicConfig::resolve(&b, &map(&[("retention.hours", "1")])).unwrap_err();
    assert!(
        matches!(err, ConfigError::UnknownTopicConfig { .. }),
        "{err}"
    );
    assert_eq!(err.key(), Some("retention.hours"));
    // Kafka's cross-check.
    let err = TopicConfig::resolve(
        &b,
        &map(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ]),
    )
    .unwrap_err();
    assert_eq!(err.key(), Some("min.compaction.lag.ms"));
    assert!(validate_topic_config("retention.ms", "1000").is_ok());
    assert!(validate_topic_config("leader.replication.throttled.replicas", "0:1,1:2").is_ok());
}

#[test]
fn describe_topic_sources_and_synonyms() {
    let b = broker(&[
        ("log.retention.ms", "1000"),
        ("log.segment.bytes", "2097152"),
    ]);
    let entries = describe_topic(&b, &map(&[("cleanup.policy", "compact")]));

    // Every topic key is listed exactly once.
    let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count);
    assert!(count >= 30, "only {count} topic keys");

    let cleanup = entry(&entries, "cleanup.policy");
    assert_eq!(cleanup.source, ConfigSource::DynamicTopic);
    assert_eq!(cleanup.source.id(), 1);
    assert_eq!(cleanup.value.as_deref(), Some("compact"));
    assert_eq!(cleanup.config_type, ConfigType::List);
    assert_eq!(cleanup.config_type.id(), 7);
    assert_eq!(
        cleanup.synonyms[0],
        (
            "cleanup.policy".to_owned(),
            Some("compact".to_owned()),
            ConfigSource::DynamicTopic
        )
    );
    assert_eq!(
        cleanup.synonyms[1],
        (
            "log.cleanup.policy".to_owned(),
            Some("delete".to_owned()),
            ConfigSource::DefaultConfig
        )
    );

    let retention = entry(&entries, "retention.ms");
    assert_eq!(retention.source, ConfigSource::StaticBroker);
    assert_eq!(retention.source.id(), 4);
    assert_eq!(retention.value.as_deref(), Some("1000"));
    let synonym_names: Vec<&str> = retention.synonyms.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        synonym_names,
        vec!["log.retention.ms", "log.retention.hours"]
    );
    assert_eq!(retention.synonyms[1].1.as_deref(), Some("168"));
    assert_eq!(retention.synonyms[1].2, ConfigSource::DefaultConfig);

    let segment = entry(&entries, "segment.bytes");
    assert_eq!(segment.source, ConfigSource::StaticBroker);
    assert_eq!(segment.value.as_deref(), Some("2097152"));
    assert_eq!(segment.config_type, ConfigType::Int);

    let ratio = entry(&entries, "min.cleanable.dirty.ratio");
    assert_eq!(ratio.source, ConfigSource::DefaultConfig);
    assert_eq!(ratio.source.id(), 5);
    assert_eq!(ratio.value.as_deref(), Some("0.5"));
    assert!(ratio.is_default());

    // No broker synonym: default source, no synonyms.
    let throttled = entry(&entries, "leader.replication.throttled.replicas");
    assert_eq!(throttled.source, ConfigSource::DefaultConfig);
    assert!(throttled.synonyms.is_empty());
    assert_eq!(throttled.value.as_deref(), Some(""));
    assert!(entries.iter().all(|e| !e.read_only && !e.sensitive));
}

#[test]
fn describe_topic_survives_invalid_overrides() {
    let entries = describe_topic(
        &broker(&[]),
        &map(&[("retention.ms", "soon"), ("segment.ms", " 5000 ")]),
    );
    let retention = entry(&entries, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("soon"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    // Valid overrides are reported normalised.
    assert_eq!(entry(&entries, "segment.ms").value.as_deref(), Some("5000"));
}

#[test]
fn describe_broker_sources_and_sensitivity() {
    let b = broker(&[
        ("num.partitions", "6"),
        ("log.retention.minutes", "30"),
        ("ssl.keystore.password", "hunter2"),
    ]);
    let entries = describe_broker(&b);

    let partitions = entry(&entries, "num.partitions");
    assert_eq!(partitions.source, ConfigSource::StaticBroker);
    assert_eq!(partitions.value.as_deref(), Some("6"));
    assert!(partitions.read_only);
    assert_eq!(partitions.config_type, ConfigType::Int);

    // Development defaults are defaults.
    let node = entry(&entries, "node.id");
    assert_eq!(node.value.as_deref(), Some("1"));
    assert_eq!(node.source, ConfigSource::DefaultConfig);

    let rack = entry(&entries, "broker.rack");
    assert_eq!(rack.value, None);
    assert_eq!(rack.source, ConfigSource::DefaultConfig);

    // log.retention.ms is unset, but its synonym group carries the minutes override.
    let ms = entry(&entries, "log.retention.ms");
    assert_eq!(ms.value, None);
    assert_eq!(ms.source, ConfigSource::StaticBroker);
    let names: Vec<&str> = ms.synonyms.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, vec!["log.retention.minutes", "log.retention.hours"]);

    let password = entry(&entries, "ssl.keystore.password");
    assert!(password.sensitive);
    assert_eq!(password.value, None);
    assert_eq!(password.source, ConfigSource::StaticBroker);
    assert_eq!(password.config_type, ConfigType::Password);
    assert_eq!(password.config_type.id(), 9);
    assert!(password.synonyms.iter().all(|s| s.1.is_none()));
    for e in &entries {
        assert_ne!(e.value.as_deref(), Some("hunter2"), "{} leaks", e.name);
    }

    // Sorted by name, one entry per key.
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted);

    let segment = entry(&entries, "log.segment.bytes");
    assert!(
        !segment.read_only,
        "Kafka can change log.segment.bytes at runtime"
    );
}

#[test]
fn dynamic_layers_show_as_sources_and_synonyms_in_kafkas_order() {
    let b = broker(&[("log.retention.hours", "2")])
        .with_dynamic(
            &map(&[
                ("log.retention.ms", "5000"),
                ("log.segment.bytes", "2097152"),
            ]),
            &map(&[("log.segment.bytes", "3145728")]),
        )
        .unwrap();
    // A topic without overrides inherits the dynamic default, with its source.
    let topic = describe_topic(&b, &BTreeMap::new());
    let retention = entry(&topic, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("5000"));
    assert_eq!(retention.source, ConfigSource::DynamicDefaultBroker);
    let order: Vec<(&str, ConfigSource)> = retention
        .synonyms
        .iter()
        .map(|s| (s.0.as_str(), s.2))
        .collect();
    assert_eq!(
        order,
        vec![
            ("log.retention.ms", ConfigSource::DynamicDefaultBroker),
            ("log.retention.hours", ConfigSource::StaticBroker),
            ("log.retention.hours", ConfigSource::DefaultConfig),
        ]
    );
    // Per-broker beats the default.
    let segment = entry(&topic, "segment.bytes");
    assert_eq!(segment.value.as_deref(), Some("3145728"));
    assert_eq!(segment.source, ConfigSource::DynamicBroker);
    let sources: Vec<ConfigSource> = segment.synonyms.iter().map(|s| s.2).collect();
    assert_eq!(
        sources,
        vec![
            ConfigSource::DynamicBroker,
            ConfigSource::DynamicDefaultBroker,
            ConfigSource::DefaultConfig
        ]
    );

    let brokers = describe_broker(&b);
    let seg = entry(&brokers, "log.segment.bytes");
    assert_eq!(seg.value.as_deref(), Some("3145728"));
    assert_eq!(seg.source, ConfigSource::DynamicBroker);
    assert!(!seg.read_only);
    assert!(entry(&brokers, "log.dirs").read_only);

    // BROKER "": only what is set at the cluster default level.
    let defaults = strata_config::describe_broker_defaults(&b);
    let names: Vec<&str> = defaults.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["log.retention.ms", "log.segment.bytes"]);
    let seg = entry(&defaults, "log.segment.bytes");
    assert_eq!(seg.value.as_deref(), Some("2097152"));
    assert_eq!(seg.source, ConfigSource::DynamicDefaultBroker);
    assert!(seg
        .synonyms
        .iter()
        .all(|s| s.2 == ConfigSource::DynamicDefaultBroker));
}
