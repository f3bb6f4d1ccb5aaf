//! kcat (librdkafka's CLI) against a real broker: metadata listing, and 10,000 keyed records
//! with headers produced and consumed back identical and in order.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use strata_tests::{run_kcat, Broker};

const RECORDS: usize = 10_000;

fn kcat_broker() -> Broker {
    Broker::start_with(&[
        ("auto.create.topics.enable", "true"),
        ("num.partitions", "1"),
    ])
}

fn produce_lines(broker: &Broker, topic: &str, lines: &str) {
    let bootstrap = broker.bootstrap();
    run_kcat(
        &[
            "-b",
            &bootstrap,
            "-t",
            topic,
            "-P",
            "-p",
            "0",
            "-K:",
            "-H",
            "k=v",
            "-H",
            "trace=abc",
            "-X",
            "acks=all",
            "-X",
            "message.timeout.ms=120000",
            "-m",
            "60",
        ],
        Some(lines.as_bytes()),
    );
}

#[test]
fn kcat_lists_broker_and_topics() {
    let broker = kcat_broker();
    produce_lines(&broker, "kcat-listed", "a:1\nb:2\n");
    let bootstrap = broker.bootstrap();
    let output = run_kcat(&["-b", &bootstrap, "-L", "-m", "60"], None);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("1 brokers:"),
        "kcat -L should list one broker:\n{text}"
    );
    assert!(
        text.contains(&format!("broker 1 at 127.0.0.1:{}", broker.port())),
        "kcat -L should show broker 1 at the listener address:\n{text}"
    );
    assert!(
        text.contains("topic \"kcat-listed\" with 1 partitions:"),
        "kcat -L should list topic kcat-listed with 1 partition:\n{text}"
    );
    assert!(
        text.contains("partition 0, leader 1, replicas: 1, isrs: 1"),
        "kcat -L should show partition 0 led by broker 1:\n{text}"
    );
}

#[test]
fn kcat_roundtrips_10000_keyed_records_with_headers_in_order() {
    let broker = kcat_broker();
    let topic = "kcat-roundtrip";
    let mut input = String::new();
    let mut expected = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let key = format!("key-{i:05}");
        let value = format!("value-{i:05}-{}", "x".repeat(i % 50));
        input.push_str(&format!("{key}:{value}\n"));
        expected.push(format!("{key}|{value}|k=v,trace=abc"));
    }
    produce_lines(&broker, topic, &input);

    let bootstrap = broker.bootstrap();
    let output = run_kcat(
        &[
            "-b",
            &bootstrap,
            "-t",
            topic,
            "-C",
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k|%s|%h\\n",
            "-m",
            "60",
        ],
        None,
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(
        got.len(),
        RECORDS,
        "kcat -C returned {} records, expected {RECORDS}",
        got.len()
    );
    for (i, (got, want)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "record {i} differs (order or content)");
    }

    // The offsets are dense from 0: the last record sits at offset RECORDS-1.
    let output = run_kcat(
        &[
            "-b", &bootstrap, "-t", topic, "-C", "-p", "0", "-o", "-1", "-e", "-q", "-f",
            "%o|%k\\n", "-m", "60",
        ],
        None,
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text.trim(),
        format!("{}|key-{:05}", RECORDS - 1, RECORDS - 1),
        "kcat -o -1 should return the last record at offset {}",
        RECORDS - 1
    );
}
