//! The operations endpoint of a real broker: health answers, /metrics counts exactly what
//! real clients (kafka-python) produced, consumed and committed, the exposition parses with
//! prometheus_client without duplicate series, and the shipped Grafana dashboard queries
//! only metrics the broker exports.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use strata_tests::metrics::{http, metrics_addr, scrape, series_key as key, series_value as value};
use strata_tests::tools::workspace_root;
use strata_tests::{poll_until, run_python, wait_until, Broker, RawConnection};

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(30);

fn json_field(output: &std::process::Output, field: &str) -> i64 {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pattern = format!("\"{field}\": ");
    let at = stdout
        .find(&pattern)
        .unwrap_or_else(|| panic!("no {field} in {stdout}"))
        + pattern.len();
    stdout[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn health_endpoints_answer_and_unknown_paths_do_not() {
    let broker = Broker::start();
    let addr = metrics_addr(&broker);
    assert_eq!(
        http(addr, "GET", "/health/live"),
        (200, "live\n".to_owned())
    );
    // The harness waited for ApiVersions: recovery is done and listeners accept.
    assert_eq!(
        http(addr, "GET", "/health/ready"),
        (200, "ready\n".to_owned())
    );
    assert_eq!(http(addr, "GET", "/no/such/path").0, 404);
    assert_eq!(http(addr, "POST", "/metrics").0, 405);
    let series = scrape(&broker);
    assert_eq!(value(&series, "strata_broker_ready", &[]), 1.0);
    // The harness's readiness probe is an ApiVersions request.
    assert!(value(&series, "strata_requests_total", &[("api", "ApiVersions")]) >= 1.0);
}

#[test]
fn metrics_listener_zero_disables_the_endpoint() {
    let broker = Broker::start_with(&[("metrics.listener", "0")]);
    assert_eq!(broker.metrics_addr(), None);
    assert!(broker.log_contents().contains("metrics endpoint disabled"));
}

#[test]
fn messages_in_rises_by_exactly_the_records_produced_and_bytes_out_by_what_was_read() {
    const N: i64 = 500;
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let topic = "metrics-in-out";
    let labels = [("topic", topic)];
    let before = scrape(&broker);
    assert_eq!(
        value(&before, "strata_topic_messages_in_total", &labels),
        0.0
    );

    let produced = run_python(
        "metrics_clients.py",
        &[
            "produce",
            "--bootstrap",
            &bootstrap,
            "--topic",
            topic,
            "--records",
            &N.to_string(),
        ],
    );
    assert_eq!(json_field(&produced, "produced"), N);
    let after_produce = scrape(&broker);
    assert_eq!(
        value(&after_produce, "strata_topic_messages_in_total", &labels),
        N as f64,
        "messages-in must count each acknowledged record once"
    );
    let bytes_in = value(&after_produce, "strata_topic_bytes_in_total", &labels);
    assert!(bytes_in > 0.0, "bytes in: {bytes_in}");
    assert!(
        value(
            &after_produce,
            "strata_topic_requests_total",
            &[("topic", topic), ("request", "produce")]
        ) >= 1.0
    );
    assert!(
        value(
            &after_produce,
            "strata_requests_total",
            &[("api", "Produce")]
        ) >= 1.0
    );
    assert!(
        value(
            &after_produce,
            "strata_request_processing_seconds_count",
            &[("api", "Produce")]
        ) >= 1.0
    );
    assert!(
        value(
            &after_produce,
            "strata_request_errors_total",
            &[("api", "Produce"), ("error", "NONE")]
        ) >= 1.0
    );

    let consumed = run_python(
        "metrics_clients.py",
        &[
            "consume",
            "--bootstrap",
            &bootstrap,
            "--topic",
            topic,
            "--records",
            &N.to_string(),
        ],
    );
    assert_eq!(json_field(&consumed, "consumed"), N);
    let payload = json_field(&consumed, "payload_bytes") as f64;
    let after_consume = scrape(&broker);
    let bytes_out = value(&after_consume, "strata_topic_bytes_out_total", &labels)
        - value(&after_produce, "strata_topic_bytes_out_total", &labels);
    assert!(
        bytes_out >= payload,
        "bytes out rose by {bytes_out}, less than the {payload} key+value bytes read"
    );
    // Nothing was produced meanwhile: messages-in stays put.
    assert_eq!(
        value(&after_consume, "strata_topic_messages_in_total", &labels),
        N as f64
    );
    assert!(
        value(
            &after_consume,
            "strata_topic_requests_total",
            &[("topic", topic), ("request", "fetch")]
        ) >= 1.0
    );
}

#[test]
fn group_lag_reads_n_minus_k_and_exposition_matches_the_dashboard() {
    const N: i64 = 200;
    const K: i64 = 75;
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("metrics-lag", "metrics-lag-group");
    run_python(
        "metrics_clients.py",
        &[
            "produce",
            "--bootstrap",
            &bootstrap,
            "--topic",
            topic,
            "--records",
            &N.to_string(),
        ],
    );
    run_python(
        "metrics_clients.py",
        &[
            "consume",
            "--bootstrap",
            &bootstrap,
            "--topic",
            topic,
            "--records",
            &N.to_string(),
        ],
    );
    let committed = run_python(
        "metrics_clients.py",
        &[
            "commit",
            "--bootstrap",
            &bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--offset",
            &K.to_string(),
        ],
    );
    assert_eq!(json_field(&committed, "committed"), K);

    let lag_labels = [("group", group), ("topic", topic), ("partition", "0")];
    let series = poll_until(SETTLE, || {
        let s = scrape(&broker);
        s.contains_key(&key("strata_consumer_group_lag", &lag_labels))
            .then_some(s)
    })
    .unwrap_or_else(|| panic!("no lag series for {group} after {SETTLE:?}"));
    assert_eq!(
        value(&series, "strata_consumer_group_lag", &lag_labels),
        (N - K) as f64
    );
    assert_eq!(
        value(
            &series,
            "strata_consumer_group_max_lag",
            &[("group", group)]
        ),
        (N - K) as f64
    );
    let groups: f64 = [
        "Empty",
        "PreparingRebalance",
        "CompletingRebalance",
        "Stable",
        "Dead",
    ]
    .iter()
    .map(|s| value(&series, "strata_consumer_groups", &[("state", s)]))
    .sum();
    assert!(groups >= 1.0, "no group counted by state");
    assert!(value(&series, "strata_topics", &[]) >= 2.0); // the topic and __consumer_offsets
    assert_eq!(
        value(&series, "strata_under_replicated_partitions", &[]),
        0.0
    );
    assert_eq!(value(&series, "strata_offline_partitions", &[]), 0.0);

    // A real Prometheus parser, no duplicate series, and every dashboard query names an
    // exported metric (after the traffic above created the per-topic and per-API series).
    let url = format!("http://{}/metrics", metrics_addr(&broker));
    let dashboard = workspace_root().join("ops/grafana/strata-dashboard.json");
    let output = run_python(
        "metrics_clients.py",
        &[
            "exposition",
            "--url",
            &url,
            "--dashboard",
            dashboard.to_str().unwrap(),
            "--require",
            "strata_consumer_group_lag",
            "--require",
            "strata_topic_bytes_out_total",
            "--require",
            "strata_request_processing_seconds_bucket",
            "--require",
            "strata_process_cpu_seconds_total",
            "--require",
            "strata_log_dir_free_bytes",
        ],
    );
    assert!(json_field(&output, "dashboard_queries") >= 10);
}

#[test]
fn connections_gauge_follows_open_and_closed_connections() {
    let broker = Broker::start();
    let labels = [("listener", "PLAINTEXT"), ("protocol", "PLAINTEXT")];
    let open_now = |b: &Broker| value(&scrape(b), "strata_connections", &labels);
    // The harness's probe connection may still be closing: wait for the idle count.
    wait_until("no client connections", SETTLE, || open_now(&broker) == 0.0);
    let mut conns: Vec<RawConnection> = (0..3)
        .map(|_| RawConnection::connect(broker.addr()).unwrap())
        .collect();
    for c in &mut conns {
        c.api_versions(HTTP_TIMEOUT).unwrap();
    }
    assert_eq!(open_now(&broker), 3.0);
    drop(conns);
    wait_until("connections gauge back to 0", SETTLE, || {
        open_now(&broker) == 0.0
    });
    let accepted = value(
        &scrape(&broker),
        "strata_connections_accepted_total",
        &labels,
    );
    assert!(accepted >= 4.0, "accepted {accepted}"); // 3 + the harness probe
}

#[test]
fn describe_configs_through_kafka_python_admin() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let topic = "metrics-configs";
    run_python(
        "metrics_clients.py",
        &[
            "produce",
            "--bootstrap",
            &bootstrap,
            "--topic",
            topic,
            "--records",
            "1",
        ],
    );
    let output = run_python(
        "metrics_clients.py",
        &[
            "describe-configs",
            "--bootstrap",
            &bootstrap,
            "--topic",
            topic,
        ],
    );
    assert!(json_field(&output, "topic_configs") >= 10);
    assert!(json_field(&output, "broker_configs") >= 10);
}

/// A `strata` process started by the test itself (the harness waits for ApiVersions, which
/// never comes while recovery is held); killed when dropped, so a failed assertion does not
/// leave it running.
struct HeldBroker {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl HeldBroker {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HeldBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The health endpoint starts before log recovery: during recovery (held by the broker's
/// test hook until a file disappears) /health/live is 200, /health/ready 503, /metrics has
/// the process metrics and strata_broker_ready 0, and the Kafka port is not open; once
/// recovery finishes, ready turns 200 and the logs recovered are served.
#[test]
fn health_live_answers_during_log_recovery_and_ready_only_after_it() {
    // Some data to recover first, from a normal run.
    let mut first = Broker::start();
    run_python(
        "metrics_clients.py",
        &[
            "produce",
            "--bootstrap",
            &first.bootstrap(),
            "--topic",
            "recovered",
            "--records",
            "50",
        ],
    );
    assert!(first.sigterm_and_wait().success());

    let scratch = first.scratch_dir();
    let hold = scratch.join("hold-recovery");
    std::fs::write(&hold, b"held by the test\n").unwrap();
    let log = scratch.join("held-broker.log");
    let out = std::fs::File::create(&log).unwrap();
    let port = strata_tests::free_port();
    let child = std::process::Command::new(strata_tests::tools::strata_bin())
        .arg("--override")
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
        .arg("--override")
        .arg(format!("log.dirs={}", first.data_dir().display()))
        .arg("--override")
        .arg("metrics.listener=http://127.0.0.1:0")
        .env("STRATA_TEST_HOLD_RECOVERY_WHILE_FILE_EXISTS", &hold)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let held = HeldBroker { child, log };

    wait_until("the broker holds log recovery", SETTLE, || {
        held.log().contains("holding log recovery")
    });
    let addr: SocketAddr = {
        const MARK: &str = "metrics listening on http://";
        let log = held.log();
        let at = log
            .find(MARK)
            .unwrap_or_else(|| panic!("no metrics line:\n{log}"))
            + MARK.len();
        log[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(!held.log().contains("logs loaded"), "recovery was not held");
    assert_eq!(
        http(addr, "GET", "/health/live"),
        (200, "live\n".to_owned())
    );
    assert_eq!(http(addr, "GET", "/health/ready").0, 503);
    let (status, body) = http(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\nstrata_broker_ready 0\n"), "{body}");
    assert!(
        body.contains("strata_process_resident_memory_bytes "),
        "{body}"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the Kafka listener accepts before recovery finished"
    );

    std::fs::remove_file(&hold).unwrap();
    wait_until("/health/ready answers 200", SETTLE, || {
        http(addr, "GET", "/health/ready").0 == 200
    });
    let log = held.log();
    assert!(log.contains("logs loaded"), "{log}");
    let (_, body) = http(addr, "GET", "/metrics");
    assert!(body.contains("\nstrata_broker_ready 1\n"), "{body}");
    assert!(
        body.contains("strata_partitions 1\n") || body.contains("\nstrata_partitions 1"),
        "the recovered partition is not reported:\n{body}"
    );
}
