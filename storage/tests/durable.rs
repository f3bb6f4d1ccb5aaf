//! Durable mode's lock-free flush (begin / sync / finish) and a full disk: refused appends
//! and rolls that damage nothing and succeed again once space returns.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use strata_storage::{LogConfig, LogError};

#[test]
fn lock_free_flush_covers_what_was_appended_before_it_began() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_interval_messages: 1,
        ..small_config()
    };
    assert!(config.durable());
    let mut log = open(dir.path(), config, 0);
    log.append(&batch(&[b"a", b"b"]), 0, 0).unwrap();
    let pending = log.begin_flush().unwrap();
    assert_eq!(pending.upto(), 2);
    // Appends (even a roll) go on while the sync runs.
    for _ in 0..80 {
        log.append(&batch(&[b"c"]), 0, 0).unwrap();
    }
    assert!(log.segment_count() > 1, "the appends rolled");
    let synced = pending.sync();
    assert_eq!(log.finish_flush(pending, synced).unwrap(), 2);
    assert_eq!(log.recovery_point(), 2);
    // The next flush covers the rest (group commit: one sync for all 80 appends).
    let pending = log.begin_flush().unwrap();
    assert_eq!(pending.upto(), 82);
    let synced = pending.sync();
    assert_eq!(log.finish_flush(pending, synced).unwrap(), 82);
    assert_eq!(log.recovery_point(), log.log_end_offset());
    // Nothing left: an empty flush completes at once.
    let pending = log.begin_flush().unwrap();
    let synced = pending.sync();
    assert_eq!(log.finish_flush(pending, synced).unwrap(), 82);
}

#[test]
fn a_truncation_during_a_flush_keeps_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for _ in 0..10 {
        log.append(&batch(&[b"x"]), 0, 0).unwrap();
    }
    let pending = log.begin_flush().unwrap();
    log.truncate_to(4).unwrap();
    for _ in 0..10 {
        log.append(&batch(&[b"y"]), 0, 0).unwrap();
    }
    let synced = pending.sync();
    let durable = log.finish_flush(pending, synced).unwrap();
    assert!(
        durable <= 4,
        "offsets 4.. were rewritten after the flush began: {durable}"
    );
    assert!(log.recovery_point() <= 4);
}

#[test]
fn a_failed_sync_closes_the_fsync_gate() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    log.append(&batch(&[b"x"]), 0, 0).unwrap();
    let pending = log.begin_flush().unwrap();
    let failure = Err(LogError::Io {
        path: "injected".into(),
        source: std::io::Error::other("EIO"),
    });
    assert!(log.finish_flush(pending, failure).is_err());
    assert!(log.is_failed());
    let err = log.append(&batch(&[b"y"]), 0, 0).unwrap_err();
    assert_eq!(err.kafka_error_code(), 56);
    assert_eq!(read_all(&log, 0).len(), 1, "reads keep working");
}

/// Mounts a small tmpfs at `dir`; false (with the reason printed) where mounting is not allowed.
fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here ({}); disk-full behaviour is untested",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("SKIPPED: no mount(8) ({e}); disk-full behaviour is untested");
            false
        }
    }
}

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_appends_damages_nothing_and_recovers() {
    let mnt = tempfile::tempdir().unwrap();
    if !mount_tmpfs(mnt.path(), "8m") {
        return;
    }
    let _unmount = Unmount(mnt.path());
    let filler = mnt.path().join("filler");
    std::fs::write(&filler, vec![1u8; 3 << 20]).unwrap();
    let dir = mnt.path().join("t-0");
    let config = LogConfig {
        segment_bytes: 1 << 20,
        max_index_bytes: 4096,
        ..small_config()
    };
    let mut log = strata_storage::Log::open(dir.clone(), tp(), config.clone(), 0, 0).unwrap();
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..200u64 {
        match log.append(&sized_batch(i, 100 * 1024, 0), 0, 0) {
            Ok(info) => acked.push((info.first_offset, i)),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("an 8 MiB filesystem fills up");
    assert!(matches!(err, LogError::DiskFull { .. }), "{err}");
    assert_eq!(err.kafka_error_code(), 56);
    assert!(
        !log.is_failed(),
        "a full disk must not close the fsync gate"
    );
    // Everything acknowledged reads back intact (CRCs checked by read_all).
    let read = read_all(&log, 0);
    assert_eq!(read.len(), acked.len());
    for ((offset, tag), (h, b)) in acked.iter().zip(&read) {
        assert_eq!(h.base_offset, *offset);
        assert!(b.windows(8).any(|w| w == tag.to_be_bytes()));
    }
    // Retrying while still full keeps failing cleanly.
    assert!(log.append(&sized_batch(999, 100 * 1024, 0), 0, 0).is_err());
    assert_eq!(log.log_end_offset(), acked.len() as i64);
    // Space returns: appends succeed again.
    std::fs::remove_file(&filler).unwrap();
    let info = log.append(&sized_batch(1000, 100 * 1024, 0), 0, 0).unwrap();
    assert_eq!(info.first_offset, acked.len() as i64);
    log.close().unwrap();
    let log = strata_storage::Log::open(dir, tp(), config, 0, 0).unwrap();
    assert_eq!(log.log_end_offset(), acked.len() as i64 + 1);
    assert_eq!(log.recovery_report().truncated_bytes, 0);
}

/// A roll that finds the disk full (the new segment's index preallocation fails) leaves no
/// file behind and no closed gate: once space returns the same roll succeeds.
#[test]
fn a_roll_on_a_full_disk_leaves_nothing_behind_and_succeeds_later() {
    use std::io::Write;

    let mnt = tempfile::tempdir().unwrap();
    if !mount_tmpfs(mnt.path(), "8m") {
        return;
    }
    let _unmount = Unmount(mnt.path());
    let dir = mnt.path().join("t-0");
    let config = LogConfig {
        segment_bytes: 256 * 1024,
        max_index_bytes: 1 << 20,
        ..small_config()
    };
    let mut log = strata_storage::Log::open(dir.clone(), tp(), config, 0, 0).unwrap();
    let next = sized_batch(0, 100 * 1024, 0);
    while log.plan_roll(&next, 0).unwrap().is_none() {
        log.append(&next, 0, 0).unwrap();
    }
    // Fill what is left of the filesystem.
    let mut filler = std::fs::File::create(mnt.path().join("filler")).unwrap();
    while filler.write_all(&[1u8; 64 * 1024]).is_ok() {}
    drop(filler);

    let plan = log.plan_roll(&next, 0).unwrap().unwrap();
    let created = plan.create();
    assert!(created.is_err(), "the index preallocation needs space");
    assert_eq!(segment_files(&dir, "log").len(), 1, "no file left behind");
    assert_eq!(segment_files(&dir, "index").len(), 1);
    let err = log.install_segment(created).unwrap_err();
    assert!(matches!(err, LogError::DiskFull { .. }), "{err}");
    assert!(
        !log.is_failed(),
        "a full disk must not close the fsync gate"
    );

    std::fs::remove_file(mnt.path().join("filler")).unwrap();
    let plan = log.plan_roll(&next, 0).unwrap().unwrap();
    log.install_segment(plan.create()).unwrap().run().unwrap();
    assert_eq!(log.segment_count(), 2);
    let end = log.log_end_offset();
    assert_eq!(log.append(&next, 0, 0).unwrap().first_offset, end);
}
