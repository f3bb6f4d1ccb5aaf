//! A topic's `compression.type`: batches produced with another codec are stored with the
//! topic's (as Kafka's broker rebuilds them), read back unchanged by kcat (librdkafka), and
//! `producer` keeps what the producer sent. The codec is read off the segment files.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::time::Duration;

use strata_tests::tools::run_kcat;
use strata_tests::wire::TopicConfigs;
use strata_tests::{Broker, RawConnection};

const TIMEOUT: Duration = Duration::from_secs(30);
const RECORDS: usize = 300;

/// The codec of every batch in a partition's segment files (attributes' low three bits).
fn stored_codecs(partition_dir: &Path) -> Vec<u8> {
    let mut segments: Vec<_> = std::fs::read_dir(partition_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let mut codecs = Vec::new();
    for segment in segments {
        let bytes = std::fs::read(&segment).unwrap();
        let mut at = 0;
        // Batches back to back; the preallocated tail is zeros (batch length 0).
        while at + 61 <= bytes.len() {
            let length = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            if length <= 0 {
                break;
            }
            codecs.push(bytes[at + 22] & 0x07);
            at += 12 + length as usize;
        }
    }
    codecs
}

fn lines() -> String {
    (0..RECORDS)
        .map(|i| format!("record-{i:05}-{}\n", "abc".repeat(i % 40)))
        .collect()
}

fn produce(broker: &Broker, topic: &str, codec: &str) {
    run_kcat(
        &[
            "-b",
            &broker.bootstrap(),
            "-P",
            "-t",
            topic,
            "-p",
            "0",
            "-z",
            codec,
            "-X",
            "linger.ms=50",
        ],
        Some(lines().as_bytes()),
    );
}

fn consume(broker: &Broker, topic: &str) -> String {
    let out = run_kcat(
        &[
            "-b",
            &broker.bootstrap(),
            "-C",
            "-t",
            topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%s\\n",
            "-m",
            "60",
        ],
        None,
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn topics_store_batches_with_their_compression_type() {
    let broker = Broker::start();
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    // (topic, its compression.type config, the producer's codec, the codec stored)
    let cases: [(&str, TopicConfigs<'_>, &str, u8); 5] = [
        ("to-zstd", &[("compression.type", "zstd")], "none", 4),
        ("to-none", &[("compression.type", "uncompressed")], "lz4", 0),
        (
            "to-gzip",
            &[
                ("compression.type", "gzip"),
                ("compression.gzip.level", "1"),
            ],
            "snappy",
            1,
        ),
        ("to-lz4", &[("compression.type", "lz4")], "zstd", 3),
        ("as-sent", &[], "snappy", 2),
    ];
    let topics: Vec<_> = cases.iter().map(|(t, c, _, _)| (*t, 1, *c)).collect();
    conn.create_topics_with_configs(&topics, TIMEOUT).unwrap();
    for (topic, _, producer_codec, stored) in cases {
        produce(&broker, topic, producer_codec);
        assert_eq!(
            consume(&broker, topic),
            lines(),
            "{topic}: records read back"
        );
        let codecs = stored_codecs(&broker.data_dir().join(format!("{topic}-0")));
        assert!(!codecs.is_empty(), "{topic}: no batches found on disk");
        assert!(
            codecs.iter().all(|&c| c == stored),
            "{topic}: produced with {producer_codec}, stored codecs {codecs:?}, expected all {stored}"
        );
    }
}
