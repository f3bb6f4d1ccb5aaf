//! Retention, DeleteRecords and the delayed deletion of segments, as Kafka does it: a doomed
//! segment's files are renamed `.deleted` at once (so a restart never loads them again) and
//! unlinked after `file.delete.delay.ms`, outside the log lock, so that readers still holding
//! the old mapping finish and a large unlink never stalls appends.

use std::path::{Path, PathBuf};

use crate::error::LogError;
use crate::log::Log;
use crate::segment::{self, LogSegment};

/// Segments waiting for their `.deleted` files to be removed.
#[derive(Debug, Default)]
pub(crate) struct PendingDeletes {
    /// (due time in ms, base offset), in scheduling order.
    due: Vec<(i64, i64)>,
}

impl PendingDeletes {
    /// Renames the segment's `.log`, `.index` and `.timeindex` to `<name>.deleted` and
    /// remembers to remove them at `due_ms`.
    pub(crate) fn schedule(
        &mut self,
        dir: &Path,
        base_offset: i64,
        due_ms: i64,
    ) -> Result<(), LogError> {
        segment::rename_to_deleted(dir, base_offset)?;
        self.due.push((due_ms, base_offset));
        Ok(())
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

    /// DeleteRecords: raises the log start offset to `offset` and deletes whole segments below it.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        self.check_writable()?;
        let end = self.log_end_offset();
        if offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: end,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.log_start_offset = offset;
        if self.active.size() > 0 && self.active.next_offset() <= offset {
            // Everything is below the new start: roll so the old active segment can go too.
            let now = self.last_now_ms;
            let r = self.roll(now);
            self.gate(r)?;
        }
        let r = self.delete_segments_while(|seg, _| seg.next_offset() <= offset);
        self.gate(r)?;
        Ok(self.log_start_offset)
    }

    /// retention.ms and retention.bytes, by whole sealed segments from the oldest; also drops
    /// segments wholly below the log start offset. Returns how many segments were deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        self.check_writable()?;
        self.last_now_ms = now_ms;
        let start = self.log_start_offset;
        let mut deleted = self.delete_segments_while(|seg, _| seg.next_offset() <= start);
        // retention.ms / retention.bytes belong to the `delete` policy; a compact-only log keeps
        // every segment (only DeleteRecords moves its start).
        if self.config.cleanup_delete {
            let retention_ms = self.config.retention_ms;
            let retention_bytes = self.config.retention_bytes;
            deleted = deleted
                .and_then(|n| {
                    let by_time = self.delete_segments_while(|seg, _| {
                        retention_ms >= 0
                            && now_ms.saturating_sub(seg.max_timestamp().map_or(-1, |(_, ts)| ts))
                                > retention_ms
                    })?;
                    Ok(n + by_time)
                })
                .and_then(|n| {
                    let by_size = self.delete_segments_while(|seg, total| {
                        retention_bytes >= 0
                            && total.saturating_sub(seg.size() as u64) >= retention_bytes as u64
                    })?;
                    Ok(n + by_size)
                });
        }
        let deleted = self.gate(deleted)?;
        if deleted > 0 {
            tracing::info!(partition = %self.topic_partition(), deleted, log_start_offset = self.log_start_offset, "retention deleted segments");
        }
        Ok(deleted)
    }

    /// Deletes the oldest sealed segments while `pred(segment, total log bytes)` holds.
    fn delete_segments_while(
        &mut self,
        pred: impl Fn(&LogSegment, u64) -> bool,
    ) -> Result<usize, LogError> {
        let mut deleted = 0;
        loop {
            let total = self.size_bytes();
            let Some(entry) = self.sealed.first_entry() else {
                break;
            };
            if !pred(entry.get(), total) {
                break;
            }
            let due = self
                .last_now_ms
                .saturating_add(self.config.file_delete_delay_ms.max(0));
            let seg = entry.remove();
            self.pending_deletes
                .schedule(&self.dir, seg.base_offset(), due)?;
            deleted += 1;
            self.dir_dirty = true;
        }
        let first_base = self
            .sealed
            .values()
            .next()
            .unwrap_or(&self.active)
            .base_offset();
        self.log_start_offset = self.log_start_offset.max(first_base);
        self.trim_leader_epochs()?;
        Ok(deleted)
    }
}
