//! Retention, DeleteRecords and the delayed deletion of segments, as Kafka does it: a doomed
//! segment's files are renamed `.deleted` (so a restart never loads them again) and unlinked
//! after `file.delete.delay.ms`, so that readers still holding the old mapping finish.
//!
//! The file work runs without the log's lock: [`Log::begin_retention`] (or
//! [`Log::begin_delete_records`]) drops the doomed segments from the log under it, so
//! readers stop finding them; [`RetentionWork::run`] renames their files and rewrites the
//! leader-epoch checkpoint (two fsyncs) without it; [`Log::finish_retention`] schedules the
//! unlinks under it again, and [`remove_deleted_files`] unlinks without it. The caller keeps
//! other changes to the log out meanwhile (the broker's per-partition writer lock). A crash
//! before the renames leaves the segments on disk, to be deleted again after the restart.

use std::path::{Path, PathBuf};

use crate::error::LogError;
use crate::leader_epoch::EpochCheckpoint;
use crate::log::Log;
use crate::roll::SegmentPlan;
use crate::segment::{self, LogSegment};

/// Segments waiting for their `.deleted` files to be removed.
#[derive(Debug, Default)]
pub(crate) struct PendingDeletes {
    /// (due time in ms, base offset), in scheduling order.
    due: Vec<(i64, i64)>,
}

impl PendingDeletes {
    /// Remembers to remove the `.deleted` files of a segment at `due_ms`.
    pub(crate) fn schedule(&mut self, base_offset: i64, due_ms: i64) {
        self.due.push((due_ms, base_offset));
    }

    fn take_due(&mut self, dir: &Path, now_ms: i64) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        self.due.retain(|&(due, base)| {
            if due > now_ms {
                return true;
            }
            paths.extend(segment::deleted_paths(dir, base));
            false
        });
        paths
    }
}

/// What retention or DeleteRecords left to do on disk; see [`RetentionWork::run`].
#[derive(Debug)]
#[must_use = "the segments are gone from the log but their files stay until this runs and finish_retention schedules the unlinks"]
pub struct RetentionWork {
    dir: PathBuf,
    /// (base offset, when its `.deleted` files may go): segments dropped from the log.
    doomed: Vec<(i64, i64)>,
    /// The leader-epoch checkpoint, when its entries changed.
    epochs: Option<EpochCheckpoint>,
}

impl RetentionWork {
    /// How many segments were dropped from the log.
    pub fn segments(&self) -> usize {
        self.doomed.len()
    }

    /// Renames the dropped segments' files `.deleted` and writes the leader-epoch checkpoint.
    /// Needs no access to the log; hand the outcome to [`Log::finish_retention`].
    pub fn run(&self) -> Result<(), LogError> {
        for &(base, _) in &self.doomed {
            segment::rename_to_deleted(&self.dir, base)?;
        }
        if let Some(epochs) = &self.epochs {
            epochs.write()?;
        }
        Ok(())
    }
}

/// Unlinks files returned by [`Log::take_due_deletions`]; call it without holding the log.
/// Files already gone are fine (a restart removes every leftover `.deleted` file anyway).
pub fn remove_deleted_files(paths: &[PathBuf]) -> Result<(), LogError> {
    segment::remove_files(paths)
}

impl Log {
    /// The `.deleted` files whose `file.delete.delay.ms` has passed, handed over for
    /// [`remove_deleted_files`] outside the log lock.
    pub fn take_due_deletions(&mut self, now_ms: i64) -> Vec<PathBuf> {
        self.pending_deletes.take_due(&self.dir, now_ms)
    }

    /// Segments renamed `.deleted` and not yet removed.
    pub fn pending_deletions(&self) -> usize {
        self.pending_deletes.due.len()
    }

    /// DeleteRecords (the steps at once, for a caller that holds the log throughout): raises
    /// the log start offset to `offset` and deletes whole segments below it.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        let work = self.begin_delete_records(offset)?;
        let ran = work.run();
        self.finish_retention(work, ran)?;
        Ok(self.log_start_offset)
    }

    /// Whether DeleteRecords up to `offset` must roll first (every record is below it, so
    /// the active segment must go too): the segment to create, for a caller that does a
    /// roll's file work outside its lock ([`SegmentPlan::create`], [`Log::install_segment`])
    /// before [`Log::begin_delete_records`]. None when no roll is due (or the request is one
    /// `begin_delete_records` refuses).
    pub fn delete_records_roll(&self, offset: i64) -> Result<Option<SegmentPlan>, LogError> {
        self.check_writable()?;
        self.check_no_append_in_flight()?;
        let due = offset > self.log_start_offset
            && offset <= self.log_end_offset()
            && self.active.size() > 0
            && self.active.next_offset() <= offset;
        Ok(due.then(|| self.segment_plan(self.last_now_ms)))
    }

    /// DeleteRecords' change to the log: the log start offset raised to `offset`, whole
    /// segments below it dropped (their files are `RetentionWork::run`'s).
    pub fn begin_delete_records(&mut self, offset: i64) -> Result<RetentionWork, LogError> {
        self.check_writable()?;
        self.check_no_append_in_flight()?;
        let end = self.log_end_offset();
        if offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: end,
            });
        }
        let mut work = self.retention_work();
        if offset <= self.log_start_offset {
            return Ok(work);
        }
        self.log_start_offset = offset;
        if self.active.size() > 0 && self.active.next_offset() <= offset {
            // Everything is below the new start: roll so the old active segment can go too
            // (inline here; the broker rolls first, see `delete_records_roll`).
            let now = self.last_now_ms;
            let r = self.roll(now);
            self.gate(r)?;
        }
        self.drop_segments_while(&mut work, |_, next_base, _| next_base <= offset);
        self.finish_drop(&mut work);
        Ok(work)
    }

    /// retention.ms and retention.bytes (the steps at once, for a caller that holds the log
    /// throughout). Returns how many segments were deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let work = self.begin_retention(now_ms)?;
        let ran = work.run();
        self.finish_retention(work, ran)
    }

    /// Retention's change to the log: by whole sealed segments from the oldest, those past
    /// retention.ms or beyond retention.bytes are dropped, and those wholly below the log
    /// start offset (their files are `RetentionWork::run`'s).
    pub fn begin_retention(&mut self, now_ms: i64) -> Result<RetentionWork, LogError> {
        self.check_writable()?;
        self.check_no_append_in_flight()?;
        self.last_now_ms = now_ms;
        let mut work = self.retention_work();
        let start = self.log_start_offset;
        self.drop_segments_while(&mut work, |_, next_base, _| next_base <= start);
        // retention.ms / retention.bytes belong to the `delete` policy; a compact-only log keeps
        // every segment (only DeleteRecords moves its start).
        if self.config.cleanup_delete {
            let retention_ms = self.config.retention_ms;
            let retention_bytes = self.config.retention_bytes;
            self.drop_segments_while(&mut work, |seg, _, _| {
                retention_ms >= 0 && now_ms.saturating_sub(seg.largest_timestamp()) > retention_ms
            });
            self.drop_segments_while(&mut work, |seg, _, total| {
                retention_bytes >= 0
                    && total.saturating_sub(seg.size() as u64) >= retention_bytes as u64
            });
        }
        self.finish_drop(&mut work);
        Ok(work)
    }

    /// Schedules the unlinks of what `work` renamed (after `file.delete.delay.ms`); a failed
    /// run is recorded as any failed write is (the log refuses writes until restart).
    /// Returns how many segments were deleted.
    pub fn finish_retention(
        &mut self,
        work: RetentionWork,
        ran: Result<(), LogError>,
    ) -> Result<usize, LogError> {
        self.gate(ran)?;
        for &(base, due) in &work.doomed {
            self.pending_deletes.schedule(base, due);
        }
        let deleted = work.doomed.len();
        if deleted > 0 {
            tracing::info!(partition = %self.topic_partition(), deleted, log_start_offset = self.log_start_offset, "deleted segments");
        }
        Ok(deleted)
    }

    fn retention_work(&self) -> RetentionWork {
        RetentionWork {
            dir: self.dir.clone(),
            doomed: Vec::new(),
            epochs: None,
        }
    }

    /// Drops the oldest sealed segments from the log while `pred(segment, the next segment's
    /// base offset, total log bytes)` holds, adding them to `work`. Below the log start means
    /// the next segment starts at or below it (Kafka's test): a segment the cleaner emptied
    /// still covers its offsets, so it does not move the log start offset.
    fn drop_segments_while(
        &mut self,
        work: &mut RetentionWork,
        pred: impl Fn(&LogSegment, i64, u64) -> bool,
    ) {
        let due = self
            .last_now_ms
            .saturating_add(self.config.file_delete_delay_ms.max(0));
        loop {
            let total = self.size_bytes();
            let mut bases = self.sealed.keys().copied();
            let (Some(first), next_base) = (bases.next(), bases.next()) else {
                break;
            };
            let next_base = next_base.unwrap_or_else(|| self.active.base_offset());
            if !self
                .sealed
                .get(&first)
                .is_some_and(|seg| pred(seg, next_base, total))
            {
                break;
            }
            drop(self.sealed.remove(&first));
            work.doomed.push((first, due));
            self.dir_dirty = true;
        }
    }

    /// After dropping segments: the log start offset is at least the first one left, and
    /// the leader-epoch entries before it go (the checkpoint is rewritten by `work`).
    fn finish_drop(&mut self, work: &mut RetentionWork) {
        let first_base = self
            .sealed
            .values()
            .next()
            .unwrap_or(&self.active)
            .base_offset();
        self.log_start_offset = self.log_start_offset.max(first_base);
        if self.trim_leader_epochs_in_memory() {
            work.epochs = Some(self.leader_epochs.snapshot());
        }
    }
}
