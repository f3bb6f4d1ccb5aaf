//! Recovery fixtures: write a real log, damage its files the way crashes and bad disks do,
//! reopen, and check what survives.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::fs::OpenOptions;
use std::io::Write;

use common::*;
use strata_storage::Log;

fn write_log(
    dir: &std::path::Path,
    batches: u64,
) -> (Log, Vec<(strata_storage::RecordBatchHeader, Vec<u8>)>) {
    let mut log = open(dir, small_config(), 0);
    for i in 0..batches {
        log.append(&sized_batch(i, 300, i as i64 * 10), 0, 0)
            .unwrap();
    }
    let all = read_all(&log, 0);
    (log, all)
}

#[test]
fn half_written_last_batch_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (log, before) = write_log(dir.path(), 20);
    log.close().unwrap();
    let last = segment_files(dir.path(), "log").pop().unwrap();
    let torn = sized_batch(99, 300, 0);
    OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap()
        .write_all(&torn[..torn.len() / 2])
        .unwrap();

    let mut log = open(dir.path(), small_config(), 20);
    let report = log.recovery_report().clone();
    assert_eq!(report.truncated_bytes, (torn.len() / 2) as u64);
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(log.append(&batch(&[b"x"]), 0, 0).unwrap().first_offset, 20);
    assert_eq!(read_all(&log, 0).len(), 21);
}

#[test]
fn bad_crc_in_a_middle_segment_cuts_there_and_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (log, before) = write_log(dir.path(), 40);
    log.close().unwrap();
    let logs = segment_files(dir.path(), "log");
    assert!(logs.len() >= 3);
    // Flip a payload byte of the third batch of the second segment.
    let victim = &logs[1];
    let mut bytes = std::fs::read(victim).unwrap();
    let mut pos = 0;
    for _ in 0..2 {
        pos += strata_storage::RecordBatchHeader::parse(&bytes[pos..])
            .unwrap()
            .total_size();
    }
    let victim_offset = strata_storage::RecordBatchHeader::parse(&bytes[pos..])
        .unwrap()
        .base_offset;
    bytes[pos + 100] ^= 0xff;
    std::fs::write(victim, &bytes).unwrap();

    let log = open(dir.path(), small_config(), 0);
    let report = log.recovery_report().clone();
    assert_eq!(report.first_invalid_reason, Some("CRC32C mismatch"));
    assert_eq!(report.segments_deleted, logs.len() - 2);
    assert_eq!(log.log_end_offset(), victim_offset);
    assert_eq!(read_all(&log, 0), before[..victim_offset as usize].to_vec());
    assert_eq!(segment_files(dir.path(), "log").len(), 2);
    assert_eq!(segment_files(dir.path(), "index").len(), 2);
}

#[test]
fn crash_leaves_zero_filled_preallocated_tail_which_is_not_data_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, before) = write_log(dir.path(), 5);
    log.flush().unwrap();
    drop(log); // no close: the active segment keeps its preallocated zeros
    let last = segment_files(dir.path(), "log").pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    let data: u64 = before.iter().map(|(h, _)| h.total_size() as u64).sum();
    assert!(
        len > data,
        "expected a preallocated tail, file {len} data {data}"
    );

    let mut log = open(dir.path(), small_config(), 0);
    let report = log.recovery_report().clone();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(report.zero_tail_bytes, len - data);
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(log.append(&batch(&[b"x"]), 0, 0).unwrap().first_offset, 5);
}

#[test]
fn unflushed_crash_with_torn_tail_in_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (log, before) = write_log(dir.path(), 8);
    drop(log);
    // Simulate a write that stopped mid-batch inside the preallocated area.
    let last = segment_files(dir.path(), "log").pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let data_in_last: usize = {
        let mut pos = 0;
        while let Ok(h) = strata_storage::RecordBatchHeader::parse(&bytes[pos..]) {
            pos += h.total_size();
        }
        pos
    };
    let torn = sized_batch(7, 300, 0);
    bytes.resize(data_in_last.max(bytes.len()), 0);
    bytes[data_in_last..data_in_last + 40].copy_from_slice(&torn[..40]);
    std::fs::write(&last, &bytes).unwrap();

    let log = open(dir.path(), small_config(), 0);
    assert!(log.recovery_report().truncated_bytes > 0);
    assert_eq!(read_all(&log, 0), before);
}

#[test]
fn missing_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, before) = write_log(dir.path(), 40);
    log.flush().unwrap();
    log.close().unwrap();
    for p in segment_files(dir.path(), "index")
        .into_iter()
        .chain(segment_files(dir.path(), "timeindex"))
    {
        std::fs::remove_file(p).unwrap();
    }
    // Recovery point at the log end: sealed segments are trusted, only their indexes rebuilt.
    let log = open(dir.path(), small_config(), 40);
    assert_eq!(log.recovery_report().indexes_rebuilt, log.segment_count());
    assert_eq!(read_all(&log, 0), before);
    for target in [0, 13, 27, 39] {
        let r = log.read(target, 1, i64::MAX, true).unwrap();
        assert_eq!(batches(&r.records)[0].0.base_offset, target);
    }
    assert_eq!(log.offset_for_timestamp(255), Some((26, 260)));
    let idx = segment_files(dir.path(), "index");
    assert!(
        std::fs::metadata(&idx[0]).unwrap().len() > 0,
        "rebuilt index has entries"
    );
}

#[test]
fn truncated_or_garbage_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (log, before) = write_log(dir.path(), 40);
    log.close().unwrap();
    let idx = segment_files(dir.path(), "index");
    let tidx = segment_files(dir.path(), "timeindex");
    // Odd length (torn entry).
    let f = OpenOptions::new().write(true).open(&idx[0]).unwrap();
    f.set_len(std::fs::metadata(&idx[0]).unwrap().len().saturating_sub(3))
        .unwrap();
    // Entries pointing past the end of the log.
    std::fs::write(
        &idx[1],
        [0u8, 0, 0, 1, 0x7f, 0, 0, 0, 0, 0, 0, 2, 0x7f, 0, 0, 1],
    )
    .unwrap();
    // Time index going backwards.
    let mut t = Vec::new();
    for (ts, off) in [(500i64, 1u32), (100, 2)] {
        t.extend(ts.to_be_bytes());
        t.extend(off.to_be_bytes());
    }
    std::fs::write(&tidx[1], t).unwrap();

    let log = open(dir.path(), small_config(), 40);
    assert!(log.recovery_report().indexes_rebuilt >= 2);
    assert_eq!(read_all(&log, 0), before);
    for target in 0..40 {
        let r = log.read(target, 1, i64::MAX, true).unwrap();
        assert_eq!(batches(&r.records)[0].0.base_offset, target);
        assert_eq!(
            log.offset_for_timestamp(target * 10),
            Some((target, target * 10))
        );
    }
}

#[test]
fn leftover_and_stray_files_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let (log, before) = write_log(dir.path(), 3);
    log.close().unwrap();
    std::fs::write(
        dir.path().join("00000000000000000000.log.truncating"),
        b"junk",
    )
    .unwrap();
    std::fs::write(dir.path().join("00000000000000000999.index"), b"junk").unwrap();
    let log = open(dir.path(), small_config(), 3);
    assert_eq!(log.recovery_report().leftover_files_removed, 2);
    assert!(!dir.path().join("00000000000000000999.index").exists());
    assert_eq!(read_all(&log, 0), before);
}

#[test]
fn garbage_log_file_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("00000000000000000000.log"),
        vec![0xffu8; 5000],
    )
    .unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.recovery_report().truncated_bytes, 5000);
    assert_eq!(log.append(&batch(&[b"a"]), 0, 0).unwrap().first_offset, 0);
}
