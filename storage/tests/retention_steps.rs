//! Retention and DeleteRecords in steps (`begin_retention` / `begin_delete_records`,
//! `RetentionWork::run`, `finish_retention`): the log drops its segments first, the files are
//! renamed and the leader-epoch checkpoint rewritten after, without the log.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use strata_storage::{LogConfig, LogError, LEADER_EPOCH_CHECKPOINT};

fn epoch_checkpoint(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT)).unwrap()
}

#[test]
fn retention_drops_segments_from_the_log_before_their_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: 5000,
        file_delete_delay_ms: 0,
        ..small_config()
    };
    let mut log = open(dir.path(), config, 0);
    for i in 0..60 {
        log.append(&sized_batch(i, 300, 0), 7, 1_000).unwrap();
    }
    let segments_before = segment_files(dir.path(), "log").len();
    let checkpoint_before = epoch_checkpoint(dir.path());

    let work = log.begin_retention(1_000).unwrap();
    let dropped = work.segments();
    assert!(dropped > 0);
    let start = log.log_start_offset();
    assert!(start > 0);
    // The log no longer serves them; their files and the checkpoint are untouched so far.
    assert!(matches!(
        log.read(0, 1 << 20, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, start)[0].0.base_offset, start);
    assert_eq!(segment_files(dir.path(), "log").len(), segments_before);
    assert!(segment_files(dir.path(), "deleted").is_empty());
    assert_eq!(epoch_checkpoint(dir.path()), checkpoint_before);

    let ran = work.run();
    assert!(ran.is_ok());
    assert_eq!(segment_files(dir.path(), "deleted").len(), 3 * dropped);
    assert_eq!(segment_files(dir.path(), "log").len(), log.segment_count());
    assert!(
        epoch_checkpoint(dir.path()).ends_with(&format!("7 {start}\n")),
        "the epoch's first entry now starts at the log start offset: {}",
        epoch_checkpoint(dir.path())
    );
    assert_eq!(log.finish_retention(work, ran).unwrap(), dropped);
    assert_eq!(log.pending_deletions(), dropped);
    let due = log.take_due_deletions(1_000);
    strata_storage::remove_deleted_files(&due).unwrap();
    assert!(segment_files(dir.path(), "deleted").is_empty());

    // A restart agrees.
    drop(log);
    let log = open(dir.path(), small_config(), 0);
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(log.log_end_offset(), 60);
}

/// Offsets 0..40 in 300-byte batches, one a batch, over several 4 KiB segments.
fn log_of_40_batches(dir: &std::path::Path) -> strata_storage::Log {
    let mut log = open(dir, small_config(), 0);
    for i in 0..40 {
        log.append(&sized_batch(i, 300, 0), 0, 0).unwrap();
    }
    log
}

#[test]
fn delete_records_moves_the_start_first_and_renames_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_of_40_batches(dir.path());
    let work = log.begin_delete_records(20).unwrap();
    assert_eq!(log.log_start_offset(), 20);
    assert!(work.segments() > 0);
    assert!(segment_files(dir.path(), "deleted").is_empty());
    let ran = work.run();
    let dropped = log.finish_retention(work, ran).unwrap();
    assert_eq!(segment_files(dir.path(), "deleted").len(), 3 * dropped);
    assert_eq!(read_all(&log, 20)[0].0.last_offset(), 20);
}

#[test]
fn a_failed_rename_closes_the_log_for_writes_and_schedules_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_of_40_batches(dir.path());
    let work = log.begin_delete_records(20).unwrap();
    let failure = Err(LogError::Io {
        path: dir.path().display().to_string(),
        source: std::io::Error::other("injected"),
    });
    assert!(log.finish_retention(work, failure).is_err());
    assert!(log.is_failed());
    assert_eq!(log.pending_deletions(), 0);
    assert!(log.append(&sized_batch(99, 300, 0), 0, 0).is_err());
    // Reads of what is left go on.
    assert_eq!(read_all(&log, 20)[0].0.last_offset(), 20);
}

#[test]
fn delete_records_of_everything_rolls_first_with_the_files_made_outside_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..10 {
        log.append(&sized_batch(i, 100, 0), 0, 1_000).unwrap();
    }
    let end = log.log_end_offset();
    // Short of the end: the active segment keeps records, no roll.
    assert!(log.delete_records_roll(end - 1).unwrap().is_none());
    assert!(log.delete_records_roll(end + 1).unwrap().is_none());
    let plan = log
        .delete_records_roll(end)
        .unwrap()
        .expect("deleting every record rolls first");
    let segments = log.segment_count();
    // The new segment's files are made without the log; installing it is the only change.
    let created = plan.create();
    assert_eq!(log.segment_count(), segments);
    log.install_segment(created).unwrap().run().unwrap();
    assert_eq!(log.segment_count(), segments + 1);
    assert!(
        log.delete_records_roll(end).unwrap().is_none(),
        "rolled already"
    );
    let work = log.begin_delete_records(end).unwrap();
    assert_eq!(
        work.segments(),
        segments,
        "every segment holding records goes"
    );
    let ran = work.run();
    log.finish_retention(work, ran).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (end, end));
    assert_eq!(log.segment_count(), 1);
    log.append(&sized_batch(99, 100, 0), 0, 1_000).unwrap();
    assert_eq!(read_all(&log, end)[0].0.base_offset, end);
}
