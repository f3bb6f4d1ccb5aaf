//! Rolling to a new segment with its file work outside the log's lock: [`Log::plan_roll`]
//! or [`Log::start_append`] (under the caller's lock: must the next append roll, and at
//! which offset),
//! [`SegmentPlan::create`] (the new segment's log and index files created and mapped,
//! without it), [`Log::install_segment`] (under it again: the new segment becomes the active
//! one and the old one stops taking appends) and [`SealWork::run`] (the old segment's files
//! trimmed to what they hold, without it). Readers look no further than a segment's
//! committed bytes, so neither step without the lock changes what they see; a fetch does not
//! wait for file creation (about a millisecond on ext4, more on a busy journal).
//!
//! The caller keeps every other change to the log out from `plan_roll` to `SealWork::run`
//! (the broker's per-partition writer lock); `install_segment` refuses a plan the log moved
//! past.

use std::path::PathBuf;

use crate::error::LogError;
use crate::log::Log;
use crate::segment::{segment_capacity, LogSegment, SealWork};
use crate::LogConfig;

/// Where and how the next segment is to be created; see [`Log::plan_roll`].
#[derive(Debug)]
#[must_use]
pub struct SegmentPlan {
    dir: PathBuf,
    base_offset: i64,
    config: LogConfig,
    now_ms: i64,
    generation: u64,
}

/// A created, still empty segment for [`Log::install_segment`].
#[derive(Debug)]
pub struct NewSegment {
    segment: LogSegment,
    generation: u64,
}

impl SegmentPlan {
    /// Creates and maps the segment's files; fails if a segment file of that name exists.
    /// Needs no access to the log.
    pub fn create(self) -> Result<NewSegment, LogError> {
        let segment =
            LogSegment::create_new(&self.dir, self.base_offset, &self.config, self.now_ms)?;
        Ok(NewSegment {
            segment,
            generation: self.generation,
        })
    }
}

impl Log {
    /// Whether appending `batches` now must roll first (Kafka's roll conditions: size, age,
    /// full indexes, offset range), and if so the segment to create: at the log end offset.
    pub fn plan_roll(&self, batches: &[u8], now_ms: i64) -> Result<Option<SegmentPlan>, LogError> {
        self.check_writable()?;
        self.check_no_append_in_flight()?;
        // Too large for any segment: `begin_append` refuses it, with nothing rolled for it.
        if batches.len() > segment_capacity(&self.config) || !self.roll_due_for(batches, now_ms)? {
            return Ok(None);
        }
        Ok(Some(self.segment_plan(now_ms)))
    }

    pub(crate) fn segment_plan(&self, now_ms: i64) -> SegmentPlan {
        SegmentPlan {
            dir: self.dir.clone(),
            base_offset: self.log_end_offset(),
            config: self.config.clone(),
            now_ms,
            generation: self.generation,
        }
    }

    /// Makes a segment from [`SegmentPlan::create`] the active one (a failed creation is
    /// recorded as any failed write is: the log refuses writes until restart). The old active
    /// segment takes no more appends; run the returned work to trim its files.
    pub fn install_segment(
        &mut self,
        created: Result<NewSegment, LogError>,
    ) -> Result<SealWork, LogError> {
        let new = self.gate(created)?;
        self.check_writable()?;
        self.check_no_append_in_flight()?;
        let base = new.segment.base_offset();
        if new.generation != self.generation
            || base != self.log_end_offset()
            || self.active.size() == 0
        {
            // Created exclusively, so the files are this plan's own.
            new.segment.delete()?;
            return Err(LogError::Corrupt {
                path: self.dir.display().to_string(),
                reason: format!(
                    "expected a new segment at the log end offset {}, found one at {base} (the log changed since the roll was planned)",
                    self.log_end_offset()
                ),
            });
        }
        let mut old = std::mem::replace(&mut self.active, new.segment);
        let seal = old.seal_in_memory();
        self.sealed.insert(old.base_offset(), old);
        self.dir_dirty = true;
        tracing::debug!(partition = %self.topic_partition(), base_offset = base, "rolled segment");
        Ok(seal)
    }

    /// Seals the active segment and starts a new one at the log end offset (the steps above
    /// at once, for a caller that holds the log throughout). Nothing to do on an empty one.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.check_writable()?;
        self.check_no_append_in_flight()?;
        if self.active.size() == 0 {
            return Ok(());
        }
        let created = self.segment_plan(now_ms).create();
        let seal = self.install_segment(created)?;
        let r = seal.run();
        self.gate(r)
    }
}
