//! The cleaner merges consecutive small segments (as Kafka's groups them): a compacted topic
//! that rolls often does not keep one small segment per roll, offsets and records stay as
//! they were, and a crash in the middle of installing a merge recovers to the same log.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use bytes::Bytes;
use common::*;
use strata_protocol::kafka_protocol::records::RecordBatchDecoder;
use strata_storage::{Log, LogConfig};

type Rec = (i64, Vec<u8>, Vec<u8>);

fn records(log: &Log) -> Vec<Rec> {
    let mut out = Vec::new();
    for (_, b) in read_all(log, log.log_start_offset()) {
        let mut buf = Bytes::from(b);
        for r in RecordBatchDecoder::decode(&mut buf).unwrap().records {
            out.push((r.offset, r.key.unwrap().to_vec(), r.value.unwrap().to_vec()));
        }
    }
    out
}

/// A compacted log rolled by time every round: `rounds` small segments of 10 new keys each
/// (nothing superseded, so no segment shrinks), then the active one.
fn log_of_small_segments(dir: &std::path::Path, config: LogConfig, rounds: i64) -> Log {
    let mut log = open(dir, config, 0);
    let mut now = 1_000_000i64;
    for round in 0..rounds {
        for k in 0..10 {
            let (key, value) = (format!("k{round}.{k}"), format!("v{round}.{k}"));
            let b = keyed_batch(&[(Some(key.as_bytes()), Some(value.as_bytes()))], now);
            log.append(&b, 0, now).unwrap();
        }
        now += 1_000;
    }
    log
}

fn merge_config() -> LogConfig {
    LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        segment_ms: 500,
        segment_bytes: 1 << 20,
        max_index_bytes: 1 << 20,
        file_delete_delay_ms: 3_600_000,
        ..small_config()
    }
}

#[test]
fn small_segments_merge_into_one_with_every_record_and_offset_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_of_small_segments(dir.path(), merge_config(), 20);
    assert_eq!(log.segment_count(), 20);
    let before = records(&log);
    let stats = log.compact(10_000_000).unwrap().unwrap();
    assert_eq!(stats.segments_merged, 18, "{stats:?}");
    assert_eq!(stats.records_removed, 0);
    assert_eq!(
        log.segment_count(),
        2,
        "one merged segment and the active one"
    );
    assert_eq!(segment_files(dir.path(), "log").len(), 2);
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(records(&log), before);
    // The merged segment's indexes serve reads from any offset.
    for from in [0, 37, 150, 189] {
        let got = log.read(from, 1 << 20, i64::MAX, true).unwrap();
        let first = batches(&got.records)[0].0.base_offset;
        assert_eq!(first, from, "read from {from}");
    }
    drop(log);
    let log = open(dir.path(), merge_config(), 0);
    assert_eq!(records(&log), before);
    assert_eq!(log.recovery_report().merged_leftovers_removed, 0);
}

#[test]
fn a_merge_stops_at_segment_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 4096,
        ..merge_config()
    };
    let mut log = log_of_small_segments(dir.path(), config, 30);
    let sizes_before: u64 = std::fs::metadata(&segment_files(dir.path(), "log")[0])
        .unwrap()
        .len();
    assert!(sizes_before < 4096 / 2, "segments of {sizes_before} bytes");
    let before = records(&log);
    let stats = log.compact(10_000_000).unwrap().unwrap();
    assert!(stats.segments_merged > 0);
    let sealed = segment_files(dir.path(), "log");
    let sealed = &sealed[..sealed.len() - 1];
    assert!(sealed.len() > 1, "29 segments do not fit in one of 4 KiB");
    assert!(sealed.len() < 29);
    for path in sealed {
        let len = std::fs::metadata(path).unwrap().len();
        assert!(len <= 4096, "{} holds {len} bytes", path.display());
    }
    assert_eq!(records(&log), before);
}

#[test]
fn a_crash_before_the_absorbed_segments_are_renamed_recovers_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_of_small_segments(dir.path(), merge_config(), 8);
    // Supersede a few keys so the merged file differs from the originals' bytes.
    for k in 0..3 {
        let (key, value) = (format!("k2.{k}"), "newest".to_owned());
        let b = keyed_batch(&[(Some(key.as_bytes()), Some(value.as_bytes()))], 1_009_000);
        log.append(&b, 0, 1_009_000).unwrap();
    }
    let stats = log.compact(10_000_000).unwrap().unwrap();
    assert!(stats.segments_merged > 0);
    let after = records(&log);
    drop(log);
    // As if the broker died after renaming the merged file over the first segment and before
    // renaming the absorbed ones: put their files back.
    let deleted = segment_files(dir.path(), "deleted");
    assert!(!deleted.is_empty());
    for path in &deleted {
        let name = path.file_name().unwrap().to_str().unwrap();
        let restored = dir.path().join(name.trim_end_matches(".deleted"));
        std::fs::rename(path, restored).unwrap();
    }
    let log = open(dir.path(), merge_config(), 0);
    assert_eq!(
        log.recovery_report().merged_leftovers_removed,
        stats.segments_merged
    );
    assert_eq!(records(&log), after, "no superseded value came back");
    assert_eq!(log.segment_count(), 1 + stats.segments_cleaned);
}
