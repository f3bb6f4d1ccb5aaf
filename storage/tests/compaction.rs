//! The log cleaner: newest value per key, tombstone expiry, dirty ratio and lag gates,
//! compressed batches, reopen after cleaning, appends between plan and install, the install's
//! file work outside the log, keyless records on compacted topics, and a proptest of the core
//! invariant.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use common::*;
use proptest::prelude::*;
use strata_protocol::kafka_protocol::indexmap::IndexMap;
use strata_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as KTimestampType,
};
use strata_storage::{Log, LogConfig};

type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 1_000_000,
        ..small_config()
    }
}

/// Every record in the log as (offset, key, value), decoded with kafka-protocol's decoder.
fn records(log: &Log) -> Vec<Rec> {
    let mut out = Vec::new();
    for (_, b) in read_all(log, log.log_start_offset()) {
        let mut buf = Bytes::from(b);
        let set = RecordBatchDecoder::decode(&mut buf).unwrap();
        for r in set.records {
            out.push((
                r.offset,
                r.key.map(|k| k.to_vec()),
                r.value.map(|v| v.to_vec()),
            ));
        }
    }
    out
}

fn kv(k: &str, v: &str) -> (Option<&'static [u8]>, Option<&'static [u8]>) {
    (
        Some(Box::leak(k.as_bytes().to_vec().into_boxed_slice())),
        Some(Box::leak(v.as_bytes().to_vec().into_boxed_slice())),
    )
}

#[test]
fn compaction_keeps_newest_value_per_key_and_leaves_offset_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_superseded_records(dir.path());
    let leo = log.log_end_offset();
    let stats = log.compact(2000).unwrap().expect("a clean was due");
    assert_eq!(stats.records_removed, 2, "{stats:?}");
    assert_eq!(stats.records_kept, 3);
    let got = records(&log);
    let offsets: Vec<i64> = got.iter().map(|r| r.0).collect();
    assert_eq!(
        offsets,
        vec![2, 3, 4],
        "a@0 and b@1 are superseded; offsets keep their values"
    );
    assert_eq!(got[0].2.as_deref(), Some(&b"2"[..]));
    assert_eq!(got[2].1.as_deref(), Some(&b"b"[..]));
    assert_eq!(
        log.log_end_offset(),
        leo,
        "compaction never moves the log end"
    );
    assert_eq!(log.first_dirty_offset(), leo);
    // Nothing dirty left: no second pass.
    assert!(log.compact(3000).unwrap().is_none());
    // Reading from inside a gap returns the next batch that exists.
    let read = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    assert!(!read.records.is_empty());
}

#[test]
fn tombstones_survive_until_delete_retention_then_go() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: 10_000,
        ..compact_config()
    };
    let mut log = open(dir.path(), config, 0);
    log.append(&keyed_batch(&[kv("a", "1"), kv("b", "1")], 1000), 0, 0)
        .unwrap();
    log.append(&keyed_batch(&[(Some(b"a"), None)], 5000), 0, 0)
        .unwrap();
    log.roll(0).unwrap();
    log.compact(6000).unwrap().unwrap();
    let got = records(&log);
    assert_eq!(
        got,
        vec![
            (1, Some(b"b".to_vec()), Some(b"1".to_vec())),
            (2, Some(b"a".to_vec()), None)
        ],
        "the tombstone hides a@0 and stays while younger than delete.retention.ms"
    );
    // New dirty data makes a second pass run; by now the tombstone is old enough to go.
    log.append(&keyed_batch(&[kv("c", "1")], 20_000), 0, 0)
        .unwrap();
    log.roll(0).unwrap();
    let stats = log.compact(20_000).unwrap().unwrap();
    assert_eq!(stats.tombstones_removed, 1, "{stats:?}");
    let keys: Vec<_> = records(&log).into_iter().map(|r| r.1.unwrap()).collect();
    assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
}

#[test]
fn min_cleanable_dirty_ratio_gates_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.9,
        ..compact_config()
    };
    let mut log = open(dir.path(), config, 0);
    for i in 0..4 {
        log.append(&keyed_batch(&[kv(&format!("k{i}"), "v")], 1000), 0, 0)
            .unwrap();
    }
    log.roll(0).unwrap();
    // Everything is dirty on the first pass: ratio 1.0 >= 0.9.
    assert!(log.compact(2000).unwrap().is_some());
    log.append(&keyed_batch(&[kv("k0", "w")], 1000), 0, 0)
        .unwrap();
    log.roll(0).unwrap();
    // One small dirty segment against a bigger clean one: below 0.9, nothing happens.
    assert!(log.plan_compaction(2000).is_none());
    let mut relaxed = log.config().clone();
    relaxed.min_cleanable_dirty_ratio = 0.1;
    log.set_config(relaxed.clone());
    assert!(log.plan_compaction(2000).is_some());
    // max.compaction.lag.ms forces a clean of old dirty data whatever the ratio.
    relaxed.min_cleanable_dirty_ratio = 0.99;
    relaxed.max_compaction_lag_ms = 500;
    log.set_config(relaxed);
    assert!(log.plan_compaction(2000).is_some());
}

#[test]
fn min_compaction_lag_protects_young_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_compaction_lag_ms: 10_000,
        ..compact_config()
    };
    let mut log = open(dir.path(), config, 0);
    log.append(&keyed_batch(&[kv("a", "1")], 1000), 0, 0)
        .unwrap();
    log.roll(0).unwrap();
    log.append(&keyed_batch(&[kv("a", "2")], 9000), 0, 0)
        .unwrap();
    log.roll(0).unwrap();
    // At 12 000 only the first segment (newest record at 1000) is old enough: nothing to drop.
    let stats = log.compact(12_000).unwrap().unwrap();
    assert_eq!(stats.records_removed, 0);
    assert_eq!(records(&log).len(), 2);
    // Later both are cleanable and a@0 goes.
    let stats = log.compact(30_000).unwrap().unwrap();
    assert_eq!(stats.records_removed, 1);
    assert_eq!(
        records(&log).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1]
    );
}

fn encoded(records: &[(&str, Option<&str>)], compression: Compression) -> Vec<u8> {
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: KTimestampType::Creation,
            offset: i as i64,
            sequence: -1 + i as i32,
            timestamp: 1000,
            key: Some(Bytes::copy_from_slice(k.as_bytes())),
            value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.to_vec()
}

#[test]
fn compressed_batches_are_cleaned_and_stay_compressed() {
    for compression in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), compact_config(), 0);
        log.append(
            &encoded(
                &[("a", Some("1")), ("b", Some("1")), ("a", Some("2"))],
                compression,
            ),
            0,
            0,
        )
        .unwrap();
        log.roll(0).unwrap();
        let stats = log.compact(2000).unwrap().unwrap();
        assert_eq!(stats.records_removed, 1, "{compression:?}");
        let all = read_all(&log, 0);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0.compression(), compression as u8, "{compression:?}");
        assert_eq!(
            all[0].0.last_offset_delta, 2,
            "the batch keeps its offset span"
        );
        let got: Vec<_> = records(&log)
            .into_iter()
            .map(|r| (r.0, r.2.unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![(1, b"1".to_vec()), (2, b"2".to_vec())],
            "{compression:?}"
        );
    }
}

#[test]
fn cleaned_log_survives_reopen_with_rebuilt_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config(), 0);
    for round in 0..30 {
        let v = format!("value-{round}");
        log.append(
            &keyed_batch(&[kv(&format!("k{}", round % 5), &v)], 1000),
            0,
            0,
        )
        .unwrap();
    }
    log.roll(0).unwrap();
    log.compact(2000).unwrap().unwrap();
    let before = records(&log);
    assert_eq!(before.len(), 5);
    let leo = log.log_end_offset();
    log.close().unwrap();
    assert!(segment_files(dir.path(), "cleaned").is_empty());
    let log = open(dir.path(), compact_config(), 0);
    assert_eq!(records(&log), before);
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(log.recovery_report().truncated_bytes, 0);
    for (offset, _, _) in &before {
        let read = log.read(*offset, 1, i64::MAX, true).unwrap();
        assert_eq!(read.first_offset, Some(*offset));
    }
}

#[test]
fn appends_continue_between_plan_and_install() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config(), 0);
    log.append(&keyed_batch(&[kv("a", "1"), kv("a", "2")], 1000), 0, 0)
        .unwrap();
    log.roll(0).unwrap();
    let task = log.plan_compaction(2000).unwrap();
    // The cleaner runs without the log; appends and rolls go on meanwhile.
    log.append(&keyed_batch(&[kv("a", "3")], 1000), 0, 0)
        .unwrap();
    log.roll(0).unwrap();
    let cleaned = task.run(2000).unwrap();
    let stats = log.install_compaction(cleaned).unwrap();
    assert_eq!(stats.segments_cleaned, 1);
    let offsets: Vec<_> = records(&log).iter().map(|r| r.0).collect();
    assert_eq!(
        offsets,
        vec![1, 2],
        "a@2 is not yet deduplicated against, a@1 stays"
    );
    // A truncation between plan and install voids the plan.
    let task = log.plan_compaction(2000).unwrap();
    log.truncate_to(2).unwrap();
    let stats = log.install_compaction(task.run(2000).unwrap()).unwrap();
    assert_eq!(stats.segments_cleaned, 0);
    assert!(segment_files(dir.path(), "cleaned").is_empty());
}

#[test]
fn compact_only_policy_skips_time_and_size_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 10,
        retention_bytes: 1,
        ..compact_config()
    };
    let mut log = open(dir.path(), config.clone(), 0);
    log.append(&keyed_batch(&[kv("a", "1")], 1000), 0, 0)
        .unwrap();
    log.roll(0).unwrap();
    assert_eq!(log.apply_retention(1_000_000).unwrap(), 0);
    log.set_config(LogConfig {
        cleanup_delete: true,
        ..config
    });
    assert_eq!(
        log.apply_retention(1_000_000).unwrap(),
        1,
        "compact,delete also expires"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn compaction_keeps_exactly_the_newest_value_per_key(
        batches in prop::collection::vec(
            prop::collection::vec((0u8..6, prop::option::weighted(0.85, 0u16..1000)), 1..6),
            1..25,
        ),
        rolls in prop::collection::vec(any::<bool>(), 25),
        passes in 1usize..3,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig { delete_retention_ms: i64::MAX / 4, ..compact_config() }, 0);
        let mut newest: BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> = BTreeMap::new();
        let mut offset = 0i64;
        for (i, batch) in batches.iter().enumerate() {
            let owned: Vec<(Vec<u8>, Option<Vec<u8>>)> = batch
                .iter()
                .map(|(k, v)| (vec![b'k', *k], v.map(|v| v.to_be_bytes().to_vec())))
                .collect();
            let recs: Vec<KeyValue<'_>> =
                owned.iter().map(|(k, v)| (Some(k.as_slice()), v.as_deref())).collect();
            log.append(&keyed_batch(&recs, 1000), 0, 0).unwrap();
            for (k, v) in owned {
                newest.insert(k, (offset, v));
                offset += 1;
            }
            if rolls[i] {
                log.roll(0).unwrap();
            }
            if i % 7 == 6 && passes > 1 {
                log.compact(2000).unwrap();
            }
        }
        log.roll(0).unwrap();
        log.compact(2000).unwrap();
        let got = records(&log);
        prop_assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "offsets strictly increase");
        let expected: Vec<Rec> = {
            let mut e: Vec<Rec> = newest.into_iter().map(|(k, (o, v))| (o, Some(k), v)).collect();
            e.sort();
            e
        };
        prop_assert_eq!(got, expected);
        prop_assert_eq!(log.log_end_offset(), offset);
    }
}

#[test]
fn a_small_dedupe_buffer_cleans_in_passes_to_the_same_result() {
    // 30 keys written 4 times over many small segments; with room for ~8 keys per pass the
    // cleaner must stop at segment boundaries and finish over several passes.
    let fill = |log: &mut Log| {
        for round in 0..4 {
            for k in 0..30 {
                let (key, value) = (format!("k{k}"), format!("v{round}"));
                log.append(&keyed_batch(&[kv(&key, &value)], 1000), 0, 0)
                    .unwrap();
            }
        }
        log.append(&keyed_batch(&[kv("tail", "x")], 1000), 0, 0)
            .unwrap();
        log.roll(0).unwrap();
    };
    let (one, many) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut reference = open(one.path(), compact_config(), 0);
    fill(&mut reference);
    reference.compact(NOW).unwrap().unwrap();
    let mut log = open(many.path(), compact_config(), 0);
    fill(&mut log);
    let mut passes = 0;
    while let Some(mut task) = log.plan_compaction(NOW) {
        task.set_dedupe_buffer_size(8 * 32);
        let cleaned = task.run(NOW).unwrap();
        let stats = log.install_compaction(cleaned).unwrap();
        passes += 1;
        assert!(passes < 100, "no progress: {stats:?}");
    }
    assert!(passes > 2, "expected several passes, got {passes}");
    // Once every pass ran, every key holds only its newest value, as after one big pass...
    let newest = |log: &Log| -> BTreeMap<Vec<u8>, (i64, Vec<u8>)> {
        records(log)
            .into_iter()
            .map(|(o, k, v)| (k.unwrap(), (o, v.unwrap())))
            .collect()
    };
    assert_eq!(newest(&log), newest(&reference));
    assert!(newest(&log).values().all(|(_, v)| v == b"v3" || v == b"x"));
    // ...and the progress survives: nothing is due any more, from the cleaner's offset on.
    assert_eq!(log.first_dirty_offset(), log.log_end_offset());
}

#[test]
fn cleaner_progress_restored_from_its_checkpoint_skips_cleaned_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config(), 0);
    for i in 0..20 {
        log.append(&keyed_batch(&[kv("k", &format!("{i}"))], 1000), 0, 0)
            .unwrap();
    }
    log.roll(0).unwrap();
    log.compact(NOW).unwrap().unwrap();
    let cleaned_to = log.first_dirty_offset();
    assert_eq!(cleaned_to, 20);
    drop(log);
    let mut log = open(dir.path(), compact_config(), 0);
    assert_eq!(
        log.first_dirty_offset(),
        0,
        "without the checkpoint, all is dirty"
    );
    log.restore_first_dirty_offset(cleaned_to);
    assert!(
        log.plan_compaction(NOW).is_none(),
        "nothing dirty after a restore"
    );
    // A restored offset never points past the recovered log.
    log.restore_first_dirty_offset(1_000);
    assert_eq!(log.first_dirty_offset(), log.log_end_offset());
}

/// Well past every batch timestamp (1000) and min.compaction.lag.ms.
const NOW: i64 = 100_000;

/// Two sealed segments where a@0, b@1 are superseded by a@2, b@4.
fn log_with_superseded_records(dir: &std::path::Path) -> Log {
    let mut log = open(dir, compact_config(), 0);
    log.append(&keyed_batch(&[kv("a", "1"), kv("b", "1")], 1000), 0, 0)
        .unwrap();
    log.append(&keyed_batch(&[kv("a", "2"), kv("c", "1")], 1000), 0, 0)
        .unwrap();
    log.roll(0).unwrap();
    log.append(&keyed_batch(&[kv("b", "2")], 1000), 0, 0)
        .unwrap();
    log.roll(0).unwrap();
    log
}

#[test]
fn a_clean_is_installed_with_its_file_work_outside_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_superseded_records(dir.path());
    let cleaned = log.plan_compaction(2000).unwrap().run(2000).unwrap();
    assert_eq!(segment_files(dir.path(), "cleaned").len(), 1);
    let install = log.begin_install(cleaned).unwrap();
    let first = dir.path().join(format!("{:020}.log", 0));
    let size_before = std::fs::metadata(&first).unwrap().len();

    // The renames and reloads need nothing of the log, which serves the old segments meanwhile.
    let installed = install.run();
    assert!(std::fs::metadata(&first).unwrap().len() < size_before);
    assert!(segment_files(dir.path(), "cleaned").is_empty());
    let offsets = |log: &Log| records(log).iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(
        offsets(&log),
        [0, 1, 2, 3, 4],
        "old segments until the swap"
    );

    let stats = log.finish_install(installed).unwrap();
    assert_eq!(stats.segments_cleaned, 1);
    assert_eq!(offsets(&log), [2, 3, 4]);
    drop(log);
    let log = open(dir.path(), compact_config(), 0);
    assert_eq!(offsets(&log), [2, 3, 4]);
}

#[test]
fn a_failed_install_refuses_writes_and_keeps_serving_the_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_superseded_records(dir.path());
    let cleaned = log.plan_compaction(2000).unwrap().run(2000).unwrap();
    let _install = log.begin_install(cleaned).unwrap();
    let failure = Err(strata_storage::LogError::Io {
        path: dir.path().display().to_string(),
        source: std::io::Error::other("injected"),
    });
    assert!(log.finish_install(failure).is_err());
    assert!(log.is_failed());
    assert_eq!(records(&log).len(), 5);
}

#[test]
fn a_clean_planned_before_a_truncation_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_superseded_records(dir.path());
    let first_dirty = log.first_dirty_offset();
    let cleaned = log.plan_compaction(2000).unwrap().run(2000).unwrap();
    assert_eq!(segment_files(dir.path(), "cleaned").len(), 1);
    log.truncate_to(4).unwrap();
    let install = log.begin_install(cleaned).unwrap();
    assert!(
        segment_files(dir.path(), "cleaned").is_empty(),
        "the voided clean's files are discarded"
    );
    let stats = log.finish_install(install.run()).unwrap();
    assert_eq!(stats.segments_cleaned, 0);
    assert_eq!(log.first_dirty_offset(), first_dirty);
    assert_eq!(records(&log).len(), 4);
}

/// Four rounds of 5 versions of 200 keys, segments rolled by time: the cleaner empties the
/// older segments (the newest versions are in the last ones) and removes them, but for the
/// first, so the log start offset stays at 0, as Kafka's does (retention's "below the log
/// start" test looks at where the next segment starts, so an emptied first segment still
/// covers its offsets). A consumer at any offset reads on from the next record instead of
/// being reset.
#[test]
fn compaction_never_moves_the_log_start_offset_even_when_it_empties_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 500,
        segment_bytes: 1 << 20,
        retention_ms: 3_600_000,
        ..compact_config()
    };
    for cleanup_delete in [false, true] {
        let dir = dir.path().join(format!("delete-{cleanup_delete}"));
        let config = LogConfig {
            cleanup_delete,
            ..config.clone()
        };
        let mut log = open(&dir, config.clone(), 0);
        let mut now = 1_000_000i64;
        for round in 0..4 {
            for version in 0..5 {
                for k in 0..200 {
                    let (key, value) = (format!("k{k}"), format!("v{round}.{version}"));
                    let b = keyed_batch(&[(Some(key.as_bytes()), Some(value.as_bytes()))], now);
                    log.append(&b, 0, now).unwrap();
                }
            }
            now += 1000;
            log.compact(now).unwrap();
            assert_eq!(log.apply_retention(now).unwrap(), 0, "round {round}");
            assert_eq!(log.log_start_offset(), 0, "round {round}");
        }
        // Of the 8 segments rolled, the emptied ones went and the records left were merged
        // into the first (which holds the log start): it and the active one are left.
        assert_eq!(log.segment_count(), 2);
        assert_eq!(segment_files(&dir, "log").len(), 2);
        assert!(log.pending_deletions() > 0);
        // Read from 0, the log goes on to the records left: the newest version of every key.
        let got = records(&log);
        assert!(got.first().unwrap().0 > 0);
        let newest: BTreeMap<Vec<u8>, Vec<u8>> = got
            .iter()
            .map(|(_, k, v)| (k.clone().unwrap(), v.clone().unwrap()))
            .collect();
        assert_eq!(newest.len(), 200);
        assert!(newest.values().all(|v| v == b"v3.4"));
        drop(log);
        let log = open(&dir, config, 0);
        assert_eq!(log.log_start_offset(), 0);
        assert_eq!(records(&log), got);
    }
}
