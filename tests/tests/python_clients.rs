//! Python clients against a real broker: confluent-kafka (librdkafka 2.x) idempotent
//! producer with every codec plus an assign-based consumer, and kafka-python's admin,
//! producer and consumer; pipelined offset commits from both.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use strata_tests::{run_python, Broker};

#[test]
fn confluent_idempotent_producer_all_codecs_100k_records_exactly_once() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let output = run_python(
        "ck_idempotent.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--records-per-codec",
            "25000",
            "--partitions",
            "6",
        ],
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        summary.contains("OK confluent-kafka idempotent: 100000 records"),
        "summary: {summary}"
    );
}

#[test]
fn kafka_python_admin_produce_consume() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let output = run_python(
        "kp_admin.py",
        &["--bootstrap", &bootstrap, "--records", "2000"],
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("OK kafka-python"), "summary: {summary}");
}

#[test]
fn pipelined_produce_requests_are_appended_in_the_order_sent() {
    let broker = Broker::start();
    let output = run_python(
        "ck_pipelined_order.py",
        &["--bootstrap", &broker.bootstrap(), "--records", "20000"],
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("OK pipelined order"), "summary: {summary}");
}

#[test]
fn pipelined_async_commit_bursts_then_sync_commit_are_prompt_and_ordered() {
    let broker = Broker::start();
    let output = run_python(
        "ck_commit_bursts.py",
        &[
            "--bootstrap",
            &broker.bootstrap(),
            "--rounds",
            "50",
            "--async-per-round",
            "5",
            "--round-bound-s",
            "2.0",
        ],
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("OK commit bursts"), "summary: {summary}");
}
