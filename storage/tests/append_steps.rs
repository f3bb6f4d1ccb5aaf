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

#[test]
fn a_new_epochs_checkpoint_is_written_by_the_unlocked_step_before_it_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join(strata_storage::LEADER_EPOCH_CHECKPOINT);
    let mut log = open(dir.path(), small_config(), 0);
    log.append(&batch(&[b"first"]), 0, 0).unwrap();
    assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n1\n0 0\n");
    // Appends of the current epoch leave the file alone.
    let same = batch(&[b"same epoch"]);
    let mut pending = log.begin_append(&same, 0, 0).unwrap();
    std::fs::remove_file(&checkpoint).unwrap();
    pending.write();
    log.finish_append(pending).unwrap();
    assert!(
        !checkpoint.exists(),
        "rewritten for an epoch it already had"
    );
    // A new epoch's first append: on disk after the unlocked write, before anything is
    // published (a flush may make the records durable as soon as they are).
    let next = batch(&[b"new epoch"]);
    let mut pending = log.begin_append(&next, 5, 0).unwrap();
    assert!(!checkpoint.exists());
    pending.write();
    assert_eq!(
        std::fs::read_to_string(&checkpoint).unwrap(),
        "0\n2\n0 0\n5 2\n"
    );
    assert_eq!(log.leader_epochs(), &[(0, 0)]);
    log.finish_append(pending).unwrap();
    assert_eq!(log.leader_epochs(), &[(0, 0), (5, 2)]);
    assert_eq!(log.end_offset_for_epoch(0), (0, 2));
}

#[test]
fn a_failed_epoch_checkpoint_write_fails_the_append_and_closes_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join(strata_storage::LEADER_EPOCH_CHECKPOINT);
    let mut log = open(dir.path(), small_config(), 0);
    log.append(&batch(&[b"first"]), 0, 0).unwrap();
    // A non-empty directory where the checkpoint goes: the rename onto it fails.
    std::fs::remove_file(&checkpoint).unwrap();
    std::fs::create_dir(&checkpoint).unwrap();
    std::fs::write(checkpoint.join("in-the-way"), b"x").unwrap();
    let next = batch(&[b"new epoch"]);
    let mut pending = log.begin_append(&next, 1, 0).unwrap();
    pending.write();
    let failed = log.finish_append(pending).unwrap_err();
    assert!(
        failed.to_string().contains("leader-epoch-checkpoint"),
        "the error names the file: {failed}"
    );
    assert!(log.is_failed());
    assert!(log.begin_append(&next, 1, 0).is_err());
    assert_eq!(log.leader_epochs(), &[(0, 0)]);
}

/// A follower's copy keeps its leader's offsets and epochs, gaps included (the leader's
/// cleaner removed batches), and refuses batches that would go back before its end.
#[test]
fn a_replica_append_keeps_offsets_and_epochs_as_sent() {
    use strata_protocol::record_batch::{set_base_offset, set_partition_leader_epoch};
    use strata_storage::AppendStart;
    let as_sent = |values: &[&[u8]], base: i64, epoch: i32| {
        let mut b = batch(values);
        set_base_offset(&mut b, base);
        set_partition_leader_epoch(&mut b, epoch);
        b
    };
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    // Offsets 0..=1, then (after a gap the leader's cleaner made) 5..=6, all of epoch 3.
    let mut run = as_sent(&[b"a", b"b"], 0, 3);
    run.extend_from_slice(&as_sent(&[b"c", b"d"], 5, 3));
    let AppendStart::Ready(pending) = log.start_replica_append(&run, 3, 0).unwrap() else {
        panic!("expected room in a fresh segment");
    };
    assert_eq!(pending.first_offset(), 0);
    let info = log.finish_append(pending).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 6));
    assert_eq!(log.log_end_offset(), 7);
    let seen = read_all(&log, 0);
    let offsets: Vec<(i64, i32)> = seen
        .iter()
        .map(|(h, _)| (h.base_offset, h.partition_leader_epoch))
        .collect();
    assert_eq!(offsets, vec![(0, 3), (5, 3)]);
    assert_eq!(
        read_all(&log, 3).first().map(|(h, _)| h.base_offset),
        Some(5)
    );
    assert_eq!(log.end_offset_for_epoch(3), (3, 7));

    // Going back before the log end is a divergence, not an append.
    let stale = as_sent(&[b"x"], 6, 4);
    assert!(matches!(
        log.start_replica_append(&stale, 4, 0),
        Err(LogError::ReplicaOffsetMismatch {
            expected: 7,
            found: 6
        })
    ));
    // The next epoch starts where its first batch does, past another gap.
    let next = as_sent(&[b"e"], 9, 4);
    let AppendStart::Ready(pending) = log.start_replica_append(&next, 4, 0).unwrap() else {
        panic!("expected room");
    };
    let _ = log.finish_append(pending).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.end_offset_for_epoch(3), (3, 9));
    // Recovery reads the gaps back as they are (the log was not flushed: from scratch).
    drop(log);
    let log = open(dir.path(), small_config(), 0);
    assert_eq!(log.log_end_offset(), 10);
    let bases: Vec<i64> = read_all(&log, 0)
        .iter()
        .map(|(h, _)| h.base_offset)
        .collect();
    assert_eq!(bases, vec![0, 5, 9]);
}
