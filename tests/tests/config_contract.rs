//! The CLI/config contract of the `strata` binary: `--override key=value` with Kafka's key
//! names; an invalid value is a non-zero exit naming the key; an unknown key only warns;
//! SIGTERM is a graceful exit 0.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use strata_tests::wire::probe_api_versions;
use strata_tests::{free_port, run_strata_to_exit, wait_until, write_file, Broker, RawConnection};

const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs strata with a private listener/log dir plus `extra` args; it must refuse to start.
fn assert_refuses(extra: &[&str], key: &str) {
    let dir = tempfile::tempdir().unwrap();
    let listeners = format!("listeners=PLAINTEXT://127.0.0.1:{}", free_port());
    let log_dirs = format!("log.dirs={}", dir.path().join("data").display());
    let mut args = vec!["--override", &listeners, "--override", &log_dirs];
    args.extend_from_slice(extra);
    let output = run_strata_to_exit(&args, dir.path(), EXIT_TIMEOUT);
    let text = output_text(&output);
    assert!(
        !output.status.success(),
        "strata {args:?} should refuse to start, but exited with {}:\n{text}",
        output.status
    );
    assert!(
        text.contains(key),
        "strata {args:?} exited with {} but its message does not name `{key}`:\n{text}",
        output.status
    );
}

#[test]
fn invalid_node_id_exits_nonzero_naming_the_key() {
    assert_refuses(&["--override", "node.id=abc"], "node.id");
}

#[test]
fn invalid_numeric_values_exit_nonzero_naming_the_key() {
    assert_refuses(&["--override", "num.partitions=many"], "num.partitions");
    assert_refuses(&["--override", "log.segment.bytes=-1"], "log.segment.bytes");
}

#[test]
fn invalid_value_in_config_file_exits_nonzero_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("server.properties");
    write_file(&props, "# a broken config\nmessage.max.bytes=lots\n");
    let props = props.display().to_string();
    assert_refuses(&["--config", &props], "message.max.bytes");
}

#[test]
fn unknown_key_only_warns() {
    let mut broker = Broker::start_with(&[("strata.tests.no.such.key", "1")]);
    broker.assert_running("started with an unknown key");
    // The warning may be written just after the listener opens; wait for it with a deadline.
    wait_until(
        "the broker log warns about strata.tests.no.such.key",
        Duration::from_secs(10),
        || {
            broker.log_contents().lines().any(|line| {
                line.contains("strata.tests.no.such.key")
                    && line.to_ascii_lowercase().contains("warn")
            })
        },
    );
}

#[test]
fn node_id_override_is_what_metadata_reports() {
    let broker = Broker::start_with(&[("node.id", "7")]);
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    let metadata = conn.metadata(1, Duration::from_secs(10)).unwrap();
    let ids: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
    assert_eq!(ids, vec![7], "Metadata brokers for node.id=7");
    assert_eq!(
        metadata.controller_id.0, 7,
        "a single KRaft-style node is its own controller"
    );
    let broker_entry = &metadata.brokers[0];
    assert_eq!(broker_entry.host.as_str(), "127.0.0.1");
    assert_eq!(broker_entry.port, i32::from(broker.port()));
}

#[test]
fn config_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let props = dir.path().join("server.properties");
    write_file(
        &props,
        &format!(
            // metrics.listener=0: parallel test brokers must not fight over the default port.
            "node.id=3\nlisteners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={}\nmetrics.listener=0\n",
            dir.path().join("data").display()
        ),
    );
    let mut child = std::process::Command::new(strata_tests::tools::strata_bin())
        .arg("--config")
        .arg(&props)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let served = strata_tests::poll_until(Duration::from_secs(30), || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Err(format!("strata --config exited early with {status}")));
        }
        probe_api_versions(addr, Duration::from_secs(2))
            .ok()
            .map(Ok)
    });
    let metadata = match served {
        Some(Ok(_)) => RawConnection::connect(addr)
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                c.metadata(1, Duration::from_secs(10))
                    .map_err(|e| format!("{e:#}"))
            }),
        Some(Err(e)) => Err(e),
        None => Err("no ApiVersions answer within 30 s".to_owned()),
    };
    // Stop it before asserting, so a failure leaves no stray process behind.
    let _ = child.kill();
    let _ = child.wait();
    let metadata = metadata.unwrap_or_else(|e| panic!("strata --config {}: {e}", props.display()));
    let ids: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
    assert_eq!(ids, vec![3], "node.id from server.properties");
}

#[test]
fn sigterm_is_a_graceful_exit_zero() {
    let mut broker = Broker::start();
    let status = broker.sigterm_and_wait();
    assert!(
        status.success(),
        "strata exited with {status} after SIGTERM, expected 0"
    );
    assert!(
        probe_api_versions(broker.addr(), Duration::from_secs(2)).is_err(),
        "the listener still answers after the broker exited"
    );
}
