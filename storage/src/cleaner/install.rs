//! Installing a clean in three steps, so readers never wait for its file work:
//! [`Log::begin_install`] (under the log's lock: keep the cleaned segments whose originals
//! are unchanged), [`CleanInstall::run`] (without it: each cleaned file renamed over its
//! segment and reloaded, indexes rebuilt, the directory synced) and [`Log::finish_install`]
//! (under it again: the reloaded segments replace the old ones). Until the swap, readers keep
//! the old segments' mappings, whose bytes stay valid after the rename (the inode lives on
//! while mapped); the cleaned files hold the same offsets minus superseded records, so a
//! crash between the steps leaves a consistent log either way.
//!
//! The clean groups consecutive segments whose kept records fit in one segment (as Kafka's
//! cleaner does): the group's file replaces its first segment, and the later ones (absorbed)
//! are renamed `.deleted` after that, unlinked after `file.delete.delay.ms`. A crash between
//! the two leaves absorbed segments whose offsets the first now covers; recovery removes
//! such overlapping leftovers (their kept records are in the first). A group left without
//! records goes whole, unless it starts the log: its offsets become a gap, which reads step
//! over; the log's first segment stays, so the log start offset never moves.
//!
//! The caller keeps other changes to the log out from `begin_install` to `finish_install`
//! (the broker's per-partition writer lock): nothing may truncate or delete a segment whose
//! file is being replaced.

use std::path::PathBuf;

use super::{discard, CleanedLog, CleanedSegment, CleanerStats, Original};
use crate::error::{IoContext, LogError};
use crate::log::{sync_dir, Log};
use crate::segment::{self, LoadMode, LogSegment};
use crate::LogConfig;

/// Cleaned segments whose originals the log still holds unchanged; see [`Log::begin_install`].
#[derive(Debug)]
#[must_use = "the cleaned files are left on disk until this runs"]
pub struct CleanInstall {
    dir: PathBuf,
    config: LogConfig,
    now_ms: i64,
    /// False when the log moved on since the plan (a truncation): nothing is installed and
    /// the cleaner's progress stays where it was.
    current: bool,
    end_offset: i64,
    segments: Vec<CleanedSegment>,
    /// Segments left without records, to be removed.
    emptied: Vec<CleanedSegment>,
    /// When the removed segments' `.deleted` files may be unlinked.
    delete_due_ms: i64,
    stats: CleanerStats,
}

/// Cleaned segments in place on disk and loaded, for [`Log::finish_install`].
#[derive(Debug)]
pub struct InstalledClean {
    current: bool,
    end_offset: i64,
    /// (reloaded group head, the originals it replaces: head first).
    segments: Vec<(LogSegment, Vec<Original>)>,
    /// Originals of groups left without records, renamed `.deleted`.
    emptied: Vec<Original>,
    delete_due_ms: i64,
    stats: CleanerStats,
}

impl CleanInstall {
    /// Renames each group's file over its first segment (index files first: a crash after
    /// the rename then finds no stale index to trust), then the absorbed segments `.deleted`,
    /// reloads the first and syncs the directory. Needs no access to the log; hand the
    /// outcome to [`Log::finish_install`].
    pub fn run(self) -> Result<InstalledClean, LogError> {
        let mut loaded = Vec::with_capacity(self.segments.len());
        for cs in &self.emptied {
            discard(std::slice::from_ref(cs));
            for original in cs.originals() {
                segment::rename_to_deleted(&self.dir, original.base)?;
            }
        }
        for cs in &self.segments {
            let Some(cleaned) = &cs.path else {
                continue;
            };
            let base = cs.head.base;
            segment::delete_index_files(&self.dir, base)?;
            let log_path = segment::log_path(&self.dir, base);
            std::fs::rename(cleaned, &log_path).at(&log_path)?;
            for absorbed in &cs.absorbed {
                segment::rename_to_deleted(&self.dir, absorbed.base)?;
            }
            let mode = LoadMode {
                crc_from_offset: i64::MAX,
                writable: false,
            };
            let (seg, _) = LogSegment::load(&self.dir, base, &self.config, mode, self.now_ms)?;
            loaded.push((seg, cs.originals().copied().collect()));
        }
        if !loaded.is_empty() || !self.emptied.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(InstalledClean {
            current: self.current,
            end_offset: self.end_offset,
            segments: loaded,
            emptied: self
                .emptied
                .iter()
                .flat_map(|cs| cs.originals().copied())
                .collect(),
            delete_due_ms: self.delete_due_ms,
            stats: self.stats,
        })
    }
}

impl Log {
    /// Keeps the cleaned segments whose originals are unchanged since the plan (deleted by
    /// retention, truncated: their cleaned copies are discarded), or none when the log was
    /// truncated meanwhile. Refused, discarding everything, when the log refuses writes.
    pub fn begin_install(&self, cleaned: CleanedLog) -> Result<CleanInstall, LogError> {
        let CleanedLog {
            generation,
            end_offset,
            mut segments,
            stats,
        } = cleaned;
        if let Err(e) = self.check_writable() {
            discard(&segments);
            return Err(e);
        }
        let current = generation == self.generation;
        segments.retain(|cs| {
            let unchanged = current && cs.originals().all(|o| self.holds_unchanged(o));
            if !unchanged {
                discard(std::slice::from_ref(cs));
            }
            unchanged
        });
        let first = self.sealed.keys().next().copied();
        let (emptied, segments): (Vec<_>, Vec<_>) = segments
            .into_iter()
            .partition(|cs| cs.empty && Some(cs.head.base) != first);
        Ok(CleanInstall {
            dir: self.dir.clone(),
            config: self.config.clone(),
            now_ms: self.last_now_ms,
            current,
            end_offset,
            segments,
            emptied,
            delete_due_ms: self
                .last_now_ms
                .saturating_add(self.config.file_delete_delay_ms.max(0)),
            stats,
        })
    }

    /// Swaps the reloaded segments in and records the cleaner's progress. A failed run is
    /// recorded as any failed write is (the log refuses writes until restart; reads go on
    /// from the old segments, which hold the same offsets).
    pub fn finish_install(
        &mut self,
        installed: Result<InstalledClean, LogError>,
    ) -> Result<CleanerStats, LogError> {
        let InstalledClean {
            current,
            end_offset,
            segments,
            emptied,
            delete_due_ms,
            mut stats,
        } = self.gate(installed)?;
        if !current {
            stats.segments_cleaned = 0;
            stats.first_dirty_offset = self.first_dirty_offset();
            return Ok(stats);
        }
        let mut installed = 0;
        for (seg, originals) in segments {
            for original in &originals {
                self.check_unchanged(original)?;
            }
            // Readers of the old segments keep their mappings (and unlinked inodes) alive.
            drop(self.sealed.insert(seg.base_offset(), seg));
            for absorbed in originals.iter().skip(1) {
                drop(self.sealed.remove(&absorbed.base));
                self.pending_deletes.schedule(absorbed.base, delete_due_ms);
                self.dir_dirty = true;
            }
            installed += 1;
        }
        for original in &emptied {
            self.check_unchanged(original)?;
            drop(self.sealed.remove(&original.base));
            self.pending_deletes.schedule(original.base, delete_due_ms);
            self.dir_dirty = true;
        }
        stats.segments_cleaned = installed;
        stats.empty_segments_removed = emptied.len();
        self.first_dirty_offset = self.first_dirty_offset.max(end_offset);
        stats.first_dirty_offset = self.first_dirty_offset();
        Ok(stats)
    }

    /// Whether the sealed segment at `original.base` is still the one the clean read.
    fn holds_unchanged(&self, original: &Original) -> bool {
        self.sealed
            .get(&original.base)
            .is_some_and(|s| s.size() == original.size && s.next_offset() == original.next_offset)
    }

    /// A segment whose files were already replaced must be as the clean found it: only a
    /// change the caller's lock rules out fails this, and then writes are refused until a
    /// restart reloads what is on disk.
    fn check_unchanged(&mut self, original: &Original) -> Result<(), LogError> {
        if self.holds_unchanged(original) {
            return Ok(());
        }
        let e = LogError::Corrupt {
            path: segment::log_path(&self.dir, original.base)
                .display()
                .to_string(),
            reason: "expected the cleaned segment's original unchanged until the swap".to_owned(),
        };
        self.fail(&e);
        Err(e)
    }

    /// Swaps cleaned segments in (the steps at once, for a caller that holds the log
    /// throughout).
    pub fn install_compaction(&mut self, cleaned: CleanedLog) -> Result<CleanerStats, LogError> {
        let install = self.begin_install(cleaned)?;
        let installed = install.run();
        self.finish_install(installed)
    }
}
