//! A flush done without the log lock (durable mode's group commit, and `flush.messages` /
//! `flush.ms` flushes): under the lock a [`PendingFlush`] takes
//! duplicates of the unflushed segments' handles and the log end offset; the fsyncs run
//! unlocked (appends continue, and every append that lands meanwhile rides the next sync:
//! group commit); under the lock again the recovery point advances.

use std::fs::File;
use std::path::PathBuf;

use crate::error::{IoContext, LogError};
use crate::log::{sync_dir, Log};

/// One segment's unflushed bytes.
#[derive(Debug)]
pub(crate) struct FlushPart {
    pub(crate) base_offset: i64,
    pub(crate) file: File,
    pub(crate) to: usize,
    pub(crate) path: PathBuf,
}

/// A flush that makes every offset below [`PendingFlush::upto`] durable once synced.
#[derive(Debug)]
pub struct PendingFlush {
    upto: i64,
    generation: u64,
    parts: Vec<FlushPart>,
    dir: Option<PathBuf>,
}

impl PendingFlush {
    /// Offsets below this are durable once [`PendingFlush::sync`] succeeds.
    pub fn upto(&self) -> i64 {
        self.upto
    }

    /// fdatasync of each part (and the directory if entries changed). Call it without
    /// holding the log.
    pub fn sync(&self) -> Result<(), LogError> {
        for part in &self.parts {
            part.file.sync_data().at(&part.path)?;
        }
        if let Some(dir) = &self.dir {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

impl Log {
    /// Starts a lock-free flush of everything appended so far.
    pub fn begin_flush(&mut self) -> Result<PendingFlush, LogError> {
        self.check_writable()?;
        let recovery_point = self.recovery_point();
        let parts: Result<Vec<FlushPart>, LogError> = self
            .sealed
            .values()
            .filter(|s| s.next_offset() > recovery_point)
            .chain(std::iter::once(&self.active))
            .filter_map(|seg| seg.pending_flush().transpose())
            .collect();
        let parts = self.gate(parts)?;
        Ok(PendingFlush {
            upto: self.log_end_offset(),
            generation: self.generation,
            parts,
            dir: self.dir_dirty.then(|| self.dir.clone()),
        })
    }

    /// Ends a flush started by [`Log::begin_flush`] with the outcome of its sync. A failed sync
    /// closes the fsync gate; a flush overtaken by a truncation leaves the recovery point alone.
    /// Returns the offset below which everything is durable.
    pub fn finish_flush(
        &mut self,
        pending: PendingFlush,
        synced: Result<(), LogError>,
    ) -> Result<i64, LogError> {
        self.gate(synced)?;
        if pending.generation != self.generation {
            return Ok(self.recovery_point().min(pending.upto));
        }
        for part in &pending.parts {
            if part.base_offset == self.active.base_offset() {
                self.active.mark_flushed(part.to);
            } else if let Some(seg) = self.sealed.get_mut(&part.base_offset) {
                seg.mark_flushed(part.to);
            }
        }
        if pending.dir.is_some() {
            self.dir_dirty = false;
        }
        self.advance_recovery_point(pending.upto);
        Ok(self.recovery_point())
    }
}
