//! The roll in steps (`plan_roll`, `SegmentPlan::create`, `install_segment`, `SealWork::run`):
//! the new segment's files are made, and the old one's trimmed, while the log stays readable;
//! a plan the log moved past is refused without touching a live segment.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use strata_storage::{Log, LogError};

/// Appends 600-byte batches until the next one must roll; returns what was appended.
fn fill_active(log: &mut Log) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    for i in 0.. {
        let next = sized_batch(i, 600, i as i64);
        if log.plan_roll(&next, 0).unwrap().is_some() {
            break;
        }
        log.append(&next, 0, 0).unwrap();
        sent.push(next);
    }
    sent
}

fn len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn a_planned_roll_makes_the_next_segment_and_trims_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    let mut sent = fill_active(&mut log);
    assert!(
        sent.len() >= 2,
        "a 4 KiB segment holds several 600 B batches"
    );
    let end = log.log_end_offset();
    let next = sized_batch(99, 600, 99);
    let plan = log
        .plan_roll(&next, 0)
        .unwrap()
        .expect("the segment is full");

    // Creating the segment needs nothing of the log, which stays readable meanwhile.
    let created = plan.create();
    assert_eq!(read_all(&log, 0).len(), sent.len());
    assert_eq!(segment_files(dir.path(), "log").len(), 2);

    let seal = log.install_segment(created).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.log_end_offset(), end);
    let old_log = segment_files(dir.path(), "log")[0].clone();
    // Preallocated until the seal runs; cut to its committed bytes after.
    let committed: u64 = sent.iter().map(|b| b.len() as u64).sum();
    assert!(len(&old_log) >= committed);
    seal.run().unwrap();
    assert_eq!(len(&old_log), committed);
    let old_index = segment_files(dir.path(), "index")[0].clone();
    assert_eq!(len(&old_index) % 8, 0);
    assert!(len(&old_index) < 1024, "the index keeps its entries only");

    // The next append goes to the new segment without another roll.
    assert!(log.plan_roll(&next, 0).unwrap().is_none());
    let info = log.append(&next, 0, 0).unwrap();
    assert_eq!(info.first_offset, end);
    sent.push(next);
    log.close().unwrap();

    let log = open(dir.path(), small_config(), 0);
    let seen = read_all(&log, 0);
    assert_eq!(
        seen.iter().map(|(_, b)| payload(b)).collect::<Vec<_>>(),
        sent.iter().map(|b| payload(b)).collect::<Vec<_>>()
    );
}

#[test]
fn a_plan_the_log_moved_past_is_refused_and_its_files_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    let sent = fill_active(&mut log);
    let end = log.log_end_offset();
    let plan = log
        .plan_roll(&sized_batch(99, 600, 99), 0)
        .unwrap()
        .unwrap();
    // A truncation meanwhile (which the broker's writer lock rules out) voids the plan.
    log.truncate_to(end - 1).unwrap();
    let refused = log.install_segment(plan.create());
    assert!(
        matches!(refused, Err(LogError::Corrupt { .. })),
        "expected the stale plan refused, got {refused:?}"
    );
    assert_eq!(
        segment_files(dir.path(), "log").len(),
        1,
        "the refused segment's files are removed"
    );
    // Not an I/O failure: the log goes on taking appends.
    let info = log.append(&sized_batch(7, 100, 7), 0, 0).unwrap();
    assert_eq!(info.first_offset, end - 1);
    assert_eq!(read_all(&log, 0).len(), sent.len());
}

#[test]
fn a_stale_plan_never_truncates_a_live_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    fill_active(&mut log);
    let end = log.log_end_offset();
    let next = sized_batch(99, 600, 99);
    let plan = log.plan_roll(&next, 0).unwrap().unwrap();
    // An append meanwhile rolls by itself to a segment at the planned offset.
    log.append(&next, 0, 0).unwrap();
    let live = dir.path().join(format!("{end:020}.log"));
    let before = len(&live);
    assert!(log.install_segment(plan.create()).is_err());
    assert_eq!(
        len(&live),
        before,
        "the live segment at {end} must not be recreated"
    );
    let seen = read_all(&log, end);
    assert_eq!(seen.len(), 1);
    assert_eq!(payload(&seen[0].1), payload(&next));
}

#[test]
fn a_batch_too_large_for_any_segment_rolls_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    log.append(&sized_batch(0, 600, 0), 0, 0).unwrap();
    let huge = sized_batch(1, 8192, 1);
    assert!(log.plan_roll(&huge, 0).unwrap().is_none());
    assert!(matches!(
        log.begin_append(&huge, 0, 0),
        Err(LogError::RecordBatchTooLarge { .. })
    ));
    assert_eq!(log.segment_count(), 1);
}
