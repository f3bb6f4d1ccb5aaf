//! Durability across restarts: a clean SIGTERM restart keeps every acknowledged record, and
//! a kill -9 under produce load keeps every record whose acks=all delivery was reported,
//! with no corrupt batch left behind.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use strata_tests::tools::wait_with_deadline;
use strata_tests::{run_python, spawn_python, wait_until, Broker};

/// Small segments so the data spans several LogSegments (rolls happen under test).
const SEGMENT_BYTES: &str = "1048576";

fn count_lines(path: &std::path::Path) -> usize {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
        .unwrap_or(0)
}

#[test]
fn clean_restart_keeps_every_acknowledged_record() {
    let mut broker = Broker::start_with(&[("log.segment.bytes", SEGMENT_BYTES)]);
    let ack_log = broker.scratch_dir().join("acks.log");
    let ack_log = ack_log.to_str().unwrap().to_owned();
    let bootstrap = broker.bootstrap();
    run_python(
        "ack_producer.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            "durable",
            "--partitions",
            "3",
            "--records",
            "30000",
            "--ack-log",
            &ack_log,
        ],
    );
    let status = broker.sigterm_and_wait();
    assert!(
        status.success(),
        "strata exited with {status} after SIGTERM, expected 0"
    );

    broker.restart();
    let bootstrap = broker.bootstrap();
    run_python(
        "verify_acked.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            "durable",
            "--partitions",
            "3",
            "--ack-log",
            &ack_log,
            "--expect-acked",
            "30000",
        ],
    );

    // Still writable after the restart, continuing at the old log end offsets.
    run_python(
        "ack_producer.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            "durable",
            "--partitions",
            "3",
            "--records",
            "3000",
            "--start-index",
            "30000",
            "--no-create",
            "--ack-log",
            &ack_log,
        ],
    );
    run_python(
        "verify_acked.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            "durable",
            "--partitions",
            "3",
            "--ack-log",
            &ack_log,
            "--expect-acked",
            "33000",
        ],
    );
}

/// How the broker is stopped while a producer is writing to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interruption {
    Kill9,
    /// A graceful stop must still exit 0 while requests are in flight.
    Sigterm,
}

#[test]
fn kill9_under_load_keeps_every_acknowledged_record() {
    interrupted_under_load_keeps_every_acknowledged_record(Interruption::Kill9);
}

#[test]
fn sigterm_under_load_exits_zero_and_keeps_every_acknowledged_record() {
    interrupted_under_load_keeps_every_acknowledged_record(Interruption::Sigterm);
}

fn interrupted_under_load_keeps_every_acknowledged_record(how: Interruption) {
    let mut broker = Broker::start_with(&[("log.segment.bytes", SEGMENT_BYTES)]);
    let ack_log = broker.scratch_dir().join("acks.log");
    let producer_log = broker.scratch_dir().join("producer.log");
    let ack_log_arg = ack_log.to_str().unwrap().to_owned();
    let bootstrap = broker.bootstrap();
    let mut producer = spawn_python(
        "ack_producer.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            "crashy",
            "--partitions",
            "3",
            "--records",
            "5000000",
            "--ack-log",
            &ack_log_arg,
        ],
        &producer_log,
    );
    // Kill mid-way: once a good number of records are acknowledged and more are in flight.
    let enough_acked = strata_tests::poll_until(Duration::from_secs(180), || {
        if let Ok(Some(status)) = producer.try_wait() {
            return Some(Err(status));
        }
        (count_lines(&ack_log) >= 20_000).then_some(Ok(()))
    });
    match enough_acked {
        Some(Ok(())) => {}
        other => {
            let _ = producer.kill();
            let _ = producer.wait();
            panic!(
                "the background producer did not get 20,000 acknowledgements ({other:?}); its output:\n{}",
                std::fs::read_to_string(&producer_log).unwrap_or_default()
            );
        }
    }
    match how {
        Interruption::Kill9 => broker.kill9(),
        Interruption::Sigterm => {
            let status = broker.sigterm_and_wait();
            assert!(
                status.success(),
                "SIGTERM under load must exit 0, got {status}"
            );
        }
    }
    // No acknowledgement can arrive once the broker is gone; stop the producer.
    let _ = producer.kill();
    let _ = wait_with_deadline(&mut producer, Duration::from_secs(30));
    let acked = count_lines(&ack_log);
    assert!(acked >= 20_000, "only {acked} acknowledgements recorded");

    broker.restart();
    let bootstrap = broker.bootstrap();
    run_python(
        "verify_acked.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            "crashy",
            "--partitions",
            "3",
            "--ack-log",
            &ack_log_arg,
            "--min-acked",
            "20000",
        ],
    );
    // The repaired log accepts new writes.
    run_python(
        "ack_producer.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            "crashy",
            "--partitions",
            "3",
            "--records",
            "1000",
            "--start-index",
            "10000000",
            "--no-create",
            "--ack-log",
            &ack_log_arg,
        ],
    );
    wait_until(
        "the broker is still running after the post-crash writes",
        Duration::from_secs(5),
        || broker.is_running(),
    );
}
