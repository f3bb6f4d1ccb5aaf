//! Metrics against a real (unstarted) broker opened in a temp dir: what the request hooks
//! record, what scrape-time gauges compute, and how the exposition text looks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, HeartbeatResponse, ResponseKind};

use super::FetchedPartitions;
use crate::server::Broker;
use crate::topics::{create_topic, delete_topic, NewTopic};

fn open_broker(dir: &tempfile::TempDir) -> Arc<Broker> {
    let overrides = vec![
        (
            "log.dirs".to_owned(),
            dir.path().join("data").display().to_string(),
        ),
        ("listeners".to_owned(), "PLAINTEXT://127.0.0.1:0".to_owned()),
    ];
    let loaded = strata_config::load(None, &overrides).unwrap();
    crate::server::open(loaded.config).unwrap()
}

fn create(broker: &Broker, name: &str, partitions: i32) {
    create_topic(
        broker,
        NewTopic {
            name,
            partitions,
            replication_factor: 1,
            configs: BTreeMap::new(),
            internal: false,
        },
        false,
    )
    .unwrap();
}

/// Series of the exposition text: `name{labels}` -> value (comments skipped).
fn series(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap();
            (key.to_owned(), value.parse::<f64>().unwrap())
        })
        .collect()
}

#[test]
fn topic_counters_follow_produce_and_fetch_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(&dir);
    create(&broker, "orders", 2);
    let m = &broker.metrics;
    m.produce_partition("orders", Ok((10, 1_000)));
    m.produce_partition("orders", Ok((5, 400)));
    m.produce_partition("orders", Err(3));
    m.fetched(
        "orders",
        FetchedPartitions {
            partitions: 2,
            failed: 1,
            bytes: 1_400,
        },
    );

    let s = series(&m.render(&broker).unwrap());
    assert_eq!(s["strata_topic_messages_in_total{topic=\"orders\"}"], 15.0);
    assert_eq!(s["strata_topic_bytes_in_total{topic=\"orders\"}"], 1_400.0);
    assert_eq!(s["strata_topic_bytes_out_total{topic=\"orders\"}"], 1_400.0);
    assert_eq!(
        s["strata_topic_requests_total{request=\"produce\",topic=\"orders\"}"],
        3.0
    );
    assert_eq!(
        s["strata_topic_failed_requests_total{request=\"produce\",topic=\"orders\"}"],
        1.0
    );
    assert_eq!(
        s["strata_topic_requests_total{request=\"fetch\",topic=\"orders\"}"],
        2.0
    );
    assert_eq!(
        s["strata_topic_failed_requests_total{request=\"fetch\",topic=\"orders\"}"],
        1.0
    );
}

#[test]
fn deleted_topics_stop_being_reported() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(&dir);
    create(&broker, "gone", 1);
    broker.metrics.produce_partition("gone", Ok((1, 70)));
    let before = broker.metrics.render(&broker).unwrap();
    assert!(before.contains("strata_topic_messages_in_total{topic=\"gone\"} 1"));
    delete_topic(&broker, "gone").unwrap();
    let after = broker.metrics.render(&broker).unwrap();
    assert!(!after.contains("topic=\"gone\""), "{after}");
    // Recreated, it starts from zero, in series the scrape sees (its handles are cached
    // per topic, so the deleted topic's must have gone with its series).
    create(&broker, "gone", 1);
    broker.metrics.produce_partition("gone", Ok((2, 90)));
    broker.metrics.fetched(
        "gone",
        FetchedPartitions {
            partitions: 1,
            failed: 0,
            bytes: 90,
        },
    );
    let s = series(&broker.metrics.render(&broker).unwrap());
    assert_eq!(s["strata_topic_messages_in_total{topic=\"gone\"}"], 2.0);
    assert_eq!(s["strata_topic_bytes_out_total{topic=\"gone\"}"], 90.0);
    assert_eq!(
        s["strata_topic_requests_total{request=\"produce\",topic=\"gone\"}"],
        1.0
    );
}

#[test]
fn state_gauges_count_topics_partitions_and_log_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(&dir);
    create(&broker, "a", 3);
    create(&broker, "b", 1);
    let s = series(&broker.metrics.render(&broker).unwrap());
    assert_eq!(s["strata_topics"], 2.0);
    assert_eq!(s["strata_partitions"], 4.0);
    assert_eq!(s["strata_partitions_led"], 4.0);
    assert_eq!(s["strata_under_replicated_partitions"], 0.0);
    assert_eq!(s["strata_offline_partitions"], 0.0);
    assert_eq!(s["strata_broker_ready"], 0.0);
    let log_dir = dir.path().join("data").display().to_string();
    let label = format!("{{log_dir=\"{log_dir}\"}}");
    assert_eq!(s[&format!("strata_log_dir_offline{label}")], 0.0);
    assert!(s[&format!("strata_log_dir_free_bytes{label}")] > 0.0);
    assert!(
        s[&format!("strata_log_dir_total_bytes{label}")]
            >= s[&format!("strata_log_dir_free_bytes{label}")]
    );
    assert!(s.contains_key(&format!("strata_log_dir_used_bytes{label}")));
    assert!(s["strata_uptime_seconds"] >= 0.0);
    assert_eq!(
        s[&format!(
            "strata_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )],
        1.0
    );
    // Every classic group state is present even with no groups.
    for state in [
        "Empty",
        "PreparingRebalance",
        "CompletingRebalance",
        "Stable",
        "Dead",
    ] {
        assert_eq!(
            s[&format!("strata_consumer_groups{{state=\"{state}\"}}")],
            0.0
        );
    }
    assert!(s.contains_key("strata_process_resident_memory_bytes"));
    assert!(s.contains_key("strata_process_open_fds"));
    assert!(s.contains_key("strata_process_cpu_seconds_total"));

    broker.metrics.set_ready(true);
    let s = series(&broker.metrics.render(&broker).unwrap());
    assert_eq!(s["strata_broker_ready"], 1.0);
}

#[test]
fn request_timer_counts_on_drop_and_errors_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(&dir);
    let m = &broker.metrics;
    {
        let _t = m.start_request(ApiKey::Heartbeat, None);
        m.count_response_errors(
            ApiKey::Heartbeat,
            &ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(27)),
        );
    }
    {
        let received = std::time::Instant::now();
        let _t = m.start_request(ApiKey::Metadata, Some(received));
    }
    let s = series(&m.render(&broker).unwrap());
    assert_eq!(s["strata_requests_total{api=\"Heartbeat\"}"], 1.0);
    assert_eq!(
        s["strata_request_errors_total{api=\"Heartbeat\",error=\"REBALANCE_IN_PROGRESS\"}"],
        1.0
    );
    assert_eq!(
        s["strata_request_processing_seconds_count{api=\"Heartbeat\"}"],
        1.0
    );
    // Without a receive time only processing is known (an API's series exist from its first
    // request on, at 0 until observed).
    assert_eq!(
        s["strata_request_total_seconds_count{api=\"Heartbeat\"}"],
        0.0
    );
    assert_eq!(
        s["strata_request_errors_total{api=\"Heartbeat\",error=\"NONE\"}"],
        0.0
    );
    assert_eq!(
        s["strata_request_total_seconds_count{api=\"Metadata\"}"],
        1.0
    );
    assert_eq!(
        s["strata_request_queue_seconds_count{api=\"Metadata\"}"],
        1.0
    );
}

#[test]
fn connections_gauge_goes_down_with_the_guard() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(&dir);
    let m = &broker.metrics;
    let key = "strata_connections{listener=\"PLAINTEXT\",protocol=\"PLAINTEXT\"}";
    let first = m.connection_opened("PLAINTEXT", "PLAINTEXT");
    let second = m.connection_opened("PLAINTEXT", "PLAINTEXT");
    assert_eq!(series(&m.render(&broker).unwrap())[key], 2.0);
    drop(first);
    assert_eq!(series(&m.render(&broker).unwrap())[key], 1.0);
    drop(second);
    let s = series(&m.render(&broker).unwrap());
    assert_eq!(s[key], 0.0);
    assert_eq!(
        s["strata_connections_accepted_total{listener=\"PLAINTEXT\",protocol=\"PLAINTEXT\"}"],
        2.0
    );
}

#[test]
fn sasl_mechanism_labels_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(&dir);
    let m = &broker.metrics;
    m.sasl_authentication("SCRAM-SHA-256", true);
    m.sasl_authentication("scram-sha-256", false);
    m.sasl_authentication("made-up-by-a-client", false);
    let s = series(&m.render(&broker).unwrap());
    assert_eq!(
        s["strata_sasl_authentications_total{mechanism=\"SCRAM-SHA-256\",result=\"success\"}"],
        1.0
    );
    assert_eq!(
        s["strata_sasl_authentications_total{mechanism=\"SCRAM-SHA-256\",result=\"failure\"}"],
        1.0
    );
    assert_eq!(
        s["strata_sasl_authentications_total{mechanism=\"other\",result=\"failure\"}"],
        1.0
    );
}

#[test]
fn no_lag_series_without_commits() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(&dir);
    create(&broker, "lagged", 1);
    // No group has committed: no lag series, but the state gauges are there.
    let text = broker.metrics.render(&broker).unwrap();
    assert!(!text.contains("strata_consumer_group_lag{"));
}
