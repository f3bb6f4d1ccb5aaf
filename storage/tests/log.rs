//! Append/read/retention/truncation behaviour of `Log` through its public API.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use strata_storage::{LogConfig, LogError, TimestampType};

#[test]
fn append_read_round_trip_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    let mut sent = Vec::new();
    for i in 0..100u64 {
        let b = sized_batch(i, 100 + (i as usize % 7) * 30, 1_000 + i as i64);
        let info = log.append(&b, 5, 0).unwrap();
        assert_eq!(info.first_offset, i as i64);
        assert_eq!(info.last_offset, i as i64);
        assert_eq!(info.records, 1);
        sent.push(b);
    }
    assert!(
        log.segment_count() > 3,
        "expected several segments, found {}",
        log.segment_count()
    );
    assert_eq!(log.log_end_offset(), 100);
    let got = read_all(&log, 0);
    assert_eq!(got.len(), 100);
    for (i, (h, b)) in got.iter().enumerate() {
        assert_eq!(h.base_offset, i as i64);
        assert_eq!(h.partition_leader_epoch, 5);
        assert_eq!(payload(b), payload(&sent[i]));
    }
    assert_eq!(segment_files(dir.path(), "log").len(), log.segment_count());
}

#[test]
fn offsets_are_dense_for_multi_record_and_multi_batch_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    let mut expected = 0i64;
    for n in 1..20usize {
        let values: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 10]).collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        // Two batches in one append call.
        let mut two = batch(&refs);
        two.extend(batch(&refs[..1]));
        let info = log.append(&two, 0, 0).unwrap();
        assert_eq!(info.first_offset, expected);
        assert_eq!(info.last_offset, expected + n as i64);
        expected += n as i64 + 1;
    }
    let mut next = 0;
    for (h, _) in read_all(&log, 0) {
        assert_eq!(h.base_offset, next);
        next = h.last_offset() + 1;
    }
    assert_eq!(next, log.log_end_offset());
}

#[test]
fn read_inside_a_batch_returns_the_containing_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            index_interval_bytes: 1,
            ..small_config()
        },
        0,
    );
    for _ in 0..10 {
        log.append(&batch(&[b"a", b"b", b"c", b"d", b"e"]), 0, 0)
            .unwrap();
    }
    for target in [0i64, 3, 4, 5, 27, 49] {
        let r = log.read(target, 1, i64::MAX, true).unwrap();
        let got = batches(&r.records);
        assert_eq!(got.len(), 1);
        let h = got[0].0;
        assert!(
            h.base_offset <= target && target <= h.last_offset(),
            "target {target} not in {h:?}"
        );
        assert_eq!(r.first_offset, Some(h.base_offset));
        assert_eq!(r.next_offset, h.last_offset() + 1);
    }
}

#[test]
fn read_limits_max_bytes_min_one_batch_max_offset_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1 << 20,
            ..small_config()
        },
        0,
    );
    let b = sized_batch(0, 200, 0);
    let size = b.len();
    for _ in 0..10 {
        log.append(&b, 0, 0).unwrap();
    }
    assert_eq!(
        batches(&log.read(0, size * 3 + 10, i64::MAX, false).unwrap().records).len(),
        3
    );
    // KIP-74: one whole batch even when larger than max_bytes, but only if asked.
    assert_eq!(
        batches(&log.read(2, 10, i64::MAX, true).unwrap().records).len(),
        1
    );
    assert!(log.read(2, 10, i64::MAX, false).unwrap().records.is_empty());
    // High watermark: nothing at or above it.
    let r = log.read(0, 1 << 20, 4, true).unwrap();
    assert_eq!(batches(&r.records).len(), 4);
    assert_eq!(r.next_offset, 4);
    assert!(log.read(4, 1 << 20, 4, true).unwrap().records.is_empty());
    // Log end: empty; beyond: out of range.
    let r = log.read(10, 1 << 20, i64::MAX, true).unwrap();
    assert!(r.records.is_empty());
    assert_eq!(r.log_end_offset, 10);
    let err = log.read(11, 1 << 20, i64::MAX, true).unwrap_err();
    assert!(matches!(
        err,
        LogError::OffsetOutOfRange {
            offset: 11,
            log_start_offset: 0,
            log_end_offset: 10
        }
    ));
    assert_eq!(err.kafka_error_code(), 1);
    assert!(matches!(
        log.read(-1, 10, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn read_across_segment_boundary_stops_at_first_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..30 {
        log.append(&sized_batch(i, 500, 0), 0, 0).unwrap();
    }
    let r = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    let n = batches(&r.records).len();
    assert!(
        n > 0 && n < 30,
        "expected the first segment's batches only, found {n}"
    );
    let r2 = log.read(r.next_offset, 1 << 20, i64::MAX, true).unwrap();
    assert_eq!(batches(&r2.records)[0].0.base_offset, r.next_offset);
}

#[test]
fn offset_for_timestamp_and_max_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            index_interval_bytes: 100,
            ..small_config()
        },
        0,
    );
    // Batch i holds offsets 3i..3i+2 with timestamps 10i..10i+2.
    for i in 0..60i64 {
        log.append(&batch_with_ts(&[b"x", b"y", b"z"], 10 * i), 0, 0)
            .unwrap();
    }
    assert!(log.segment_count() > 1);
    assert_eq!(log.offset_for_timestamp(0), Some((0, 2)));
    assert_eq!(log.offset_for_timestamp(2), Some((0, 2)));
    assert_eq!(log.offset_for_timestamp(3), Some((3, 12)));
    assert_eq!(log.offset_for_timestamp(205), Some((63, 212)));
    assert_eq!(log.offset_for_timestamp(392), Some((117, 392)));
    assert_eq!(log.offset_for_timestamp(393), Some((120, 402)));
    assert_eq!(log.offset_for_timestamp(593), None);
    assert_eq!(log.max_timestamp(), Some((179, 592)));
}

#[test]
fn log_append_time_stamps_batches_and_keeps_crc_valid() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..small_config()
    };
    let mut log = open(dir.path(), config, 0);
    let info = log
        .append(&batch_with_ts(&[b"a", b"b"], 5), 0, 777)
        .unwrap();
    assert_eq!(info.log_append_time, Some(777));
    assert_eq!(info.max_timestamp, 777);
    let got = batches(&log.read(0, 1000, i64::MAX, true).unwrap().records);
    assert_eq!(got[0].0.max_timestamp, 777);
    assert!(got[0].0.is_log_append_time());
}

#[test]
fn one_append_of_many_batches_is_written_whole_and_survives_a_crc_checked_reopen() {
    // More batches than one pwritev carries (32), each with its own patched header and CRC.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        message_timestamp_type: TimestampType::LogAppendTime,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone(), 0);
    let mut many = Vec::new();
    for i in 0..75u64 {
        many.extend_from_slice(&sized_batch(i, 40 + (i as usize % 7) * 13, 5));
    }
    let info = log.append(&many, 9, 4242).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 74));
    let check = |log: &strata_storage::Log| {
        let got = read_all(log, 0);
        assert_eq!(got.len(), 75);
        for (i, (h, b)) in got.iter().enumerate() {
            assert_eq!(h.base_offset, i as i64);
            assert_eq!(h.partition_leader_epoch, 9);
            assert_eq!(h.max_timestamp, 4242);
            assert!(h.is_log_append_time());
            assert_eq!(
                payload(b),
                payload(&sized_batch(i as u64, 40 + (i % 7) * 13, 5))
            );
        }
    };
    check(&log);
    drop(log);
    // Recovery from offset 0 CRC-checks every batch.
    let log = open(dir.path(), config, 0);
    assert_eq!(log.recovery_report().truncated_bytes, 0);
    assert_eq!(log.log_end_offset(), 75);
    check(&log);
}

#[test]
fn invalid_and_oversized_appends_are_refused_without_changing_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    assert!(matches!(
        log.append(&[], 0, 0),
        Err(LogError::InvalidBatch { .. })
    ));
    let b = batch(&[b"ok"]);
    assert!(matches!(
        log.append(&b[..b.len() - 1], 0, 0),
        Err(LogError::InvalidBatch { .. })
    ));
    assert!(matches!(
        log.append(&b[..30], 0, 0),
        Err(LogError::InvalidBatch { .. })
    ));
    let err = log.append(&sized_batch(0, 5000, 0), 0, 0).unwrap_err();
    assert_eq!(err.kafka_error_code(), 18);
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.append(&b, 0, 0).unwrap().first_offset, 0);
}

#[test]
fn retention_renames_segments_deleted_and_removes_them_after_file_delete_delay_ms() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        file_delete_delay_ms: 60_000,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone(), 0);
    for i in 0..60 {
        log.append(&sized_batch(i, 300, 0), 0, 1_000).unwrap();
    }
    // A reader still holding a slice of the first segment keeps reading it.
    let held = log.read(0, 1 << 20, i64::MAX, true).unwrap().records;
    log.set_config(LogConfig {
        retention_bytes: 5000,
        ..config.clone()
    });
    let deleted = log.apply_retention(1_000).unwrap();
    assert!(deleted > 0);
    assert_eq!(segment_files(dir.path(), "log").len(), log.segment_count());
    assert_eq!(segment_files(dir.path(), "deleted").len(), 3 * deleted);
    assert_eq!(log.pending_deletions(), deleted);
    assert_eq!(batches(&held)[0].0.base_offset, 0);
    // Appends go on while the files wait; nothing is due before the delay passes.
    log.append(&sized_batch(60, 300, 0), 0, 2_000).unwrap();
    assert!(log.take_due_deletions(60_999).is_empty());
    let due = log.take_due_deletions(61_000);
    assert_eq!(due.len(), 3 * deleted);
    strata_storage::remove_deleted_files(&due).unwrap();
    assert!(segment_files(dir.path(), "deleted").is_empty());
    assert_eq!(log.pending_deletions(), 0);
    // Removing twice (or files a restart already removed) is not an error.
    strata_storage::remove_deleted_files(&due).unwrap();
    assert_eq!(
        read_all(&log, log.log_start_offset())
            .last()
            .unwrap()
            .0
            .last_offset(),
        60
    );
}

#[test]
fn leftover_deleted_segments_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..40 {
        log.append(&sized_batch(i, 300, 0), 0, 0).unwrap();
    }
    log.delete_records_before(20).unwrap();
    assert!(!segment_files(dir.path(), "deleted").is_empty());
    drop(log); // a crash before file.delete.delay.ms passed
    let log = open(dir.path(), small_config(), 0);
    assert!(segment_files(dir.path(), "deleted").is_empty());
    assert!(log.recovery_report().leftover_files_removed > 0);
    assert!(log.log_start_offset() <= 20);
    assert_eq!(log.log_end_offset(), 40);
}

#[test]
fn retention_by_size_deletes_oldest_whole_segments_never_the_active() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..60 {
        log.append(&sized_batch(i, 300, 0), 0, 0).unwrap();
    }
    let segments = log.segment_count();
    log.set_config(LogConfig {
        retention_bytes: 5000,
        ..small_config()
    });
    let deleted = log.apply_retention(0).unwrap();
    assert!(deleted > 0);
    assert_eq!(log.segment_count(), segments - deleted);
    assert!(log.size_bytes() <= 5000 + 4096, "size {}", log.size_bytes());
    assert!(log.log_start_offset() > 0);
    assert_eq!(segment_files(dir.path(), "log").len(), log.segment_count());
    let got = read_all(&log, log.log_start_offset());
    assert_eq!(got.last().unwrap().0.last_offset(), 59);
    assert!(matches!(
        log.read(0, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Even retention 0 keeps the active segment.
    log.set_config(LogConfig {
        retention_bytes: 0,
        ..small_config()
    });
    log.apply_retention(0).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 60);
}

#[test]
fn retention_by_time_uses_segment_max_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            retention_ms: 1000,
            ..small_config()
        },
        0,
    );
    for i in 0..40i64 {
        log.append(&sized_batch(i as u64, 300, i * 100), 0, 0)
            .unwrap();
    }
    assert_eq!(log.apply_retention(1000).unwrap(), 0);
    let before = log.segment_count();
    // now = 3000: segments whose newest record is older than 2000 go.
    let deleted = log.apply_retention(3000).unwrap();
    assert!(deleted > 0 && deleted < before);
    let first = read_all(&log, log.log_start_offset());
    let first_segment_last_ts = first.iter().map(|(h, _)| h.max_timestamp).max().unwrap();
    assert!(first_segment_last_ts >= 2000);
    assert!(log.offset_for_timestamp(0).unwrap().0 >= log.log_start_offset());
}

#[test]
fn delete_records_before_raises_log_start_and_drops_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..50 {
        log.append(&sized_batch(i, 300, 0), 0, 0).unwrap();
    }
    let segments = log.segment_count();
    assert_eq!(log.delete_records_before(25).unwrap(), 25);
    assert_eq!(log.log_start_offset(), 25);
    assert!(log.segment_count() < segments);
    assert!(matches!(
        log.read(24, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        batches(&log.read(25, 100, i64::MAX, true).unwrap().records)[0]
            .0
            .base_offset,
        25
    );
    assert_eq!(
        log.delete_records_before(10).unwrap(),
        25,
        "never lowers the start"
    );
    assert!(matches!(
        log.delete_records_before(51),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.delete_records_before(50).unwrap(), 50);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(
        log.append(&batch(&[b"next"]), 0, 0).unwrap().first_offset,
        50
    );
}

#[test]
fn truncate_to_drops_the_tail_and_keeps_readers_slices_intact() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..40 {
        log.append(&sized_batch(i, 300, 0), 0, 0).unwrap();
    }
    // A fetch in flight holds bytes of the active segment while we truncate and overwrite.
    let held = log.read(38, 1 << 20, i64::MAX, true).unwrap().records;
    let held_copy = held.to_vec();
    log.truncate_to(38).unwrap();
    assert_eq!(log.log_end_offset(), 38);
    log.append(&sized_batch(999, 300, 0), 0, 0).unwrap();
    assert_eq!(
        held.as_ref(),
        held_copy.as_slice(),
        "truncation changed bytes a reader held"
    );
    // Truncate into an older segment.
    log.truncate_to(5).unwrap();
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(segment_files(dir.path(), "log").len(), log.segment_count());
    let got = read_all(&log, 0);
    assert_eq!(got.len(), 5);
    assert_eq!(
        log.append(&batch(&[b"after"]), 0, 0).unwrap().first_offset,
        5
    );
    assert_eq!(
        log.truncate_to(100).map(|_| log.log_end_offset()).unwrap(),
        6
    );
    // And reopening sees exactly that.
    log.close().unwrap();
    let log = open(dir.path(), small_config(), 6);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(read_all(&log, 0).len(), 6);
}

#[test]
fn reopen_after_close_keeps_everything_and_trims_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..50 {
        log.append(&sized_batch(i, 250, i as i64), 1, 0).unwrap();
    }
    let before = read_all(&log, 0);
    let size = log.size_bytes();
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), 50);
    let rp = log.recovery_point();
    log.close().unwrap();
    let on_disk: u64 = segment_files(dir.path(), "log")
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(on_disk, size, "close must trim the preallocated tail");
    let mut log = open(dir.path(), small_config(), rp);
    assert_eq!(log.recovery_report().truncated_bytes, 0);
    assert_eq!(log.log_end_offset(), 50);
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(log.offset_for_timestamp(20), Some((20, 20)));
    assert_eq!(
        log.append(&batch(&[b"more"]), 1, 0).unwrap().first_offset,
        50
    );
    let headers: Vec<i64> = log.batch_headers(45).map(|h| h.base_offset).collect();
    assert_eq!(headers, vec![45, 46, 47, 48, 49, 50]);
}

#[test]
fn flush_if_due_follows_flush_messages_and_flush_ms() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_interval_messages: 3,
        flush_interval_ms: 1000,
        ..small_config()
    };
    let mut log = open(dir.path(), config, 0);
    log.append(&batch(&[b"a", b"b"]), 0, 0).unwrap();
    log.flush_if_due(10).unwrap();
    assert_eq!(log.recovery_point(), 0);
    log.append(&batch(&[b"c"]), 0, 0).unwrap();
    log.flush_if_due(20).unwrap();
    assert_eq!(log.recovery_point(), 3);
    log.append(&batch(&[b"d"]), 0, 0).unwrap();
    log.flush_if_due(500).unwrap();
    assert_eq!(log.recovery_point(), 3);
    log.flush_if_due(1020).unwrap();
    assert_eq!(log.recovery_point(), 4);
}

#[test]
fn time_based_roll_uses_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_ms: 100,
            segment_bytes: 1 << 20,
            ..small_config()
        },
        0,
    );
    log.append(&batch_with_ts(&[b"a"], 1000), 0, 1000).unwrap();
    log.append(&batch_with_ts(&[b"b"], 1050), 0, 1050).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&batch_with_ts(&[b"c"], 1101), 0, 1101).unwrap();
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn delete_removes_the_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(tp().dir_name());
    let mut log = open(&dir, small_config(), 0);
    log.append(&batch(&[b"a"]), 0, 0).unwrap();
    let held = log.read(0, 100, i64::MAX, true).unwrap().records;
    log.delete().unwrap();
    assert!(!dir.exists());
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    assert_eq!(batches(&held).len(), 1, "in-flight reads survive deletion");
}

#[test]
fn leader_epoch_checkpoint_follows_appends_truncation_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join(strata_storage::LEADER_EPOCH_CHECKPOINT);
    let mut log = open(dir.path(), small_config(), 0);
    assert!(
        !checkpoint.exists(),
        "nothing to record before the first append"
    );
    for (epoch, n) in [(0, 5), (2, 5), (2, 3), (4, 2)] {
        for i in 0..n {
            log.append(&sized_batch(i, 100, 0), epoch, 0).unwrap();
        }
    }
    assert_eq!(log.leader_epochs(), &[(0, 0), (2, 5), (4, 13)]);
    assert_eq!(
        std::fs::read_to_string(&checkpoint).unwrap(),
        "0\n3\n0 0\n2 5\n4 13\n"
    );
    assert_eq!(log.end_offset_for_epoch(4), (4, 15));
    assert_eq!(log.end_offset_for_epoch(3), (2, 13));
    assert_eq!(log.end_offset_for_epoch(1), (0, 5));
    assert_eq!(log.end_offset_for_epoch(7), (-1, -1));
    // Truncation below epoch 4's start drops it, on disk too.
    log.truncate_to(10).unwrap();
    assert_eq!(log.leader_epochs(), &[(0, 0), (2, 5)]);
    assert_eq!(log.end_offset_for_epoch(2), (2, 10));
    drop(log);
    // A restart loads the file; a lost file is rebuilt from the batch headers.
    let log = open(dir.path(), small_config(), 0);
    assert_eq!(log.leader_epochs(), &[(0, 0), (2, 5)]);
    drop(log);
    std::fs::write(&checkpoint, "garbage").unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    assert_eq!(log.leader_epochs(), &[(0, 0), (2, 5)]);
    assert_eq!(
        std::fs::read_to_string(&checkpoint).unwrap(),
        "0\n2\n0 0\n2 5\n"
    );
    // DeleteRecords moves the first epoch's start with the log start.
    log.delete_records_before(7).unwrap();
    assert_eq!(log.leader_epochs(), &[(2, 7)]);
}

/// A follower whose whole log lies below its leader's log start starts over there: every
/// segment goes, the log continues at the new start (after a restart too), and the epoch
/// cache is empty until the leader's batches bring epochs again.
#[test]
fn truncate_fully_and_start_at_empties_the_log_and_moves_its_start() {
    use strata_protocol::record_batch::{set_base_offset, set_partition_leader_epoch};
    use strata_storage::AppendStart;
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..60 {
        log.append(&sized_batch(i, 100, 0), 2, 0).unwrap();
    }
    assert!(log.segment_count() > 1, "several segments to delete");
    log.truncate_fully_and_start_at(500).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert_eq!(log.segment_count(), 1);
    assert!(log.leader_epochs().is_empty());
    assert!(read_all(&log, 500).is_empty());
    let names: Vec<String> = segment_files(dir.path(), "log")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["00000000000000000500.log".to_owned()]);

    // The leader's next batch lands at the new start, with its epoch.
    let mut next = batch(&[b"after"]);
    set_base_offset(&mut next, 500);
    set_partition_leader_epoch(&mut next, 7);
    let AppendStart::Ready(pending) = log.start_replica_append(&next, 7, 0).unwrap() else {
        panic!("expected room in the fresh segment");
    };
    let _ = log.finish_append(pending).unwrap();
    assert_eq!(log.leader_epochs(), &[(7, 500)]);
    log.flush().unwrap();
    drop(log);
    let mut log = open(dir.path(), small_config(), 0);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 501));
    assert_eq!(log.leader_epochs(), &[(7, 500)]);

    // Starting over at the active segment's own base empties it in place.
    log.truncate_fully_and_start_at(500).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert!(read_all(&log, 500).is_empty());
}
