//! The three-step append (`begin_append`, `PendingAppend::write`, `finish_append`): readers
//! see nothing of an append until it finishes, and nothing else may change the log meanwhile.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use strata_storage::LogError;

#[test]
fn an_append_in_flight_is_invisible_until_it_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    log.append(&batch(&[b"first"]), 0, 0).unwrap();
    let second = batch(&[b"second", b"third"]);
    let mut pending = log.begin_append(&second, 0, 0).unwrap();
    assert_eq!(pending.first_offset(), 1);
    pending.write();
    // Written to the file, not yet published: the log end and reads stay where they were.
    assert_eq!(log.log_end_offset(), 1);
    let seen = read_all(&log, 0);
    assert_eq!(
        seen.len(),
        1,
        "expected only the committed batch, found {seen:?}"
    );
    let info = log.finish_append(pending).unwrap();
    assert_eq!(
        (info.first_offset, info.last_offset, info.records),
        (1, 2, 2)
    );
    assert_eq!(log.log_end_offset(), 3);
    let seen = read_all(&log, 0);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].0.base_offset, 1);
    assert_eq!(payload(&seen[1].1), payload(&second));
}

#[test]
fn nothing_else_changes_the_log_while_an_append_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    log.append(&batch(&[b"first"]), 0, 0).unwrap();
    let next = batch(&[b"second"]);
    let pending = log.begin_append(&next, 0, 0).unwrap();
    let other = batch(&[b"other"]);
    assert!(matches!(
        log.begin_append(&other, 0, 0),
        Err(LogError::AppendInFlight { .. })
    ));
    assert!(matches!(log.roll(0), Err(LogError::AppendInFlight { .. })));
    assert!(matches!(
        log.truncate_to(0),
        Err(LogError::AppendInFlight { .. })
    ));
    // Finishing without an explicit write writes first; then the log accepts changes again.
    let info = log.finish_append(pending).unwrap();
    assert_eq!(info.first_offset, 1);
    log.append(&other, 0, 0).unwrap();
    let seen = read_all(&log, 0);
    let payloads: Vec<&[u8]> = seen.iter().map(|(_, b)| payload(b)).collect();
    assert_eq!(
        payloads,
        [
            payload(&batch(&[b"first"])),
            payload(&next),
            payload(&other)
        ]
    );
    assert_eq!(
        seen.iter().map(|(h, _)| h.base_offset).collect::<Vec<_>>(),
        [0, 1, 2]
    );
}

#[test]
fn appends_in_three_steps_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sent: Vec<Vec<u8>> = (0..50u64).map(|i| sized_batch(i, 200, i as i64)).collect();
    {
        let mut log = open(dir.path(), small_config(), 0);
        for b in &sent {
            let mut pending = log.begin_append(b, 3, 0).unwrap();
            pending.write();
            log.finish_append(pending).unwrap();
        }
        log.close().unwrap();
    }
    let log = open(dir.path(), small_config(), 50);
    let seen = read_all(&log, 0);
    assert_eq!(seen.len(), 50);
    for (i, (h, b)) in seen.iter().enumerate() {
        assert_eq!(h.base_offset, i as i64);
        assert_eq!(h.partition_leader_epoch, 3);
        assert_eq!(payload(b), payload(&sent[i]));
    }
}
