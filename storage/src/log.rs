//! `Log`: one partition's directory of segments. Assigns offsets on append, serves zero-copy
//! reads, flushes (with an fsync gate), and applies retention, DeleteRecords and truncation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{IoContext, LogError};
use crate::leader_epoch::{LeaderEpochCache, LEADER_EPOCH_CHECKPOINT};
pub use crate::recovery::RecoveryReport;
use crate::recovery::{self, Loaded};
use crate::segment::LogSegment;
use crate::{LogConfig, TopicPartition};
use strata_protocol::record_batch::RecordBatchHeader;

/// What an append assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// The broker time stamped on the batches when the topic uses LogAppendTime.
    pub log_append_time: Option<i64>,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    pub records: u64,
}

/// Whole batches read from one segment, as a slice of its mapping.
#[derive(Debug, Clone)]
pub struct LogReadInfo {
    pub records: Bytes,
    /// Where `records` lie in their segment file (None when there are none).
    pub region: Option<crate::segment::FileRegion>,
    /// Base offset of the first returned batch (may be below the requested offset).
    pub first_offset: Option<i64>,
    /// Offset to fetch next: one past the last returned batch (the requested offset if none).
    pub next_offset: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// One partition's log.
#[derive(Debug)]
pub struct Log {
    pub(crate) dir: PathBuf,
    tp: TopicPartition,
    pub(crate) config: LogConfig,
    pub(crate) sealed: BTreeMap<i64, LogSegment>,
    pub(crate) active: LogSegment,
    pub(crate) log_start_offset: i64,
    recovery_point: i64,
    last_flush_ms: i64,
    pub(crate) last_now_ms: i64,
    /// Set after a failed flush or write: the on-disk state is unknown, so writes are refused
    /// (the fsync gate) while reads of what is mapped keep working.
    failed: Option<String>,
    pub(crate) dir_dirty: bool,
    recovery_report: RecoveryReport,
    /// The cleaner's progress: offsets below were deduplicated (in memory only).
    pub(crate) first_dirty_offset: i64,
    /// Bumped when offsets are cut (truncation), which voids plans made before (cleaner,
    /// durable flushes).
    pub(crate) generation: u64,
    /// Segments renamed `.deleted` by retention, removed once `file.delete.delay.ms` passed.
    pub(crate) pending_deletes: crate::retention::PendingDeletes,
    /// Which leader epoch began at which offset (`leader-epoch-checkpoint`).
    pub(crate) leader_epochs: LeaderEpochCache,
    /// An append between `begin_append` and `finish_append`: its bytes may be landing past
    /// the active segment's committed end, which nothing else may move meanwhile.
    pub(crate) append_in_flight: bool,
}

impl Log {
    /// Opens (creating if missing) the log in `dir`, recovering everything from `recovery_point` on.
    pub fn open(
        dir: PathBuf,
        tp: TopicPartition,
        config: LogConfig,
        recovery_point: i64,
        now_ms: i64,
    ) -> Result<Log, LogError> {
        std::fs::create_dir_all(&dir).at(&dir)?;
        let Loaded {
            sealed,
            active,
            report,
        } = recovery::load(&dir, &config, recovery_point, now_ms)?;
        let log_start_offset = sealed.values().next().unwrap_or(&active).base_offset();
        let leo = active.next_offset();
        if report.truncated_bytes > 0 || report.segments_deleted > 0 {
            tracing::warn!(partition = %tp, ?report, log_end_offset = leo, "log recovery truncated invalid data");
        } else {
            tracing::info!(partition = %tp, ?report, log_end_offset = leo, "log loaded");
        }
        let had_epochs = dir.join(LEADER_EPOCH_CHECKPOINT).exists();
        let leader_epochs = match LeaderEpochCache::load(&dir) {
            Ok(cache) => had_epochs.then_some(cache),
            Err(e) => {
                tracing::warn!(partition = %tp, error = %e, "unreadable leader-epoch checkpoint; rebuilding it from batch headers");
                None
            }
        };
        let mut log = Log {
            leader_epochs: LeaderEpochCache::empty(&dir),
            dir,
            tp,
            config,
            sealed,
            active,
            log_start_offset,
            recovery_point: recovery_point.clamp(0, leo),
            last_flush_ms: now_ms,
            last_now_ms: now_ms,
            failed: None,
            dir_dirty: true,
            recovery_report: report,
            first_dirty_offset: log_start_offset,
            generation: 0,
            append_in_flight: false,
            pending_deletes: Default::default(),
        };
        log.load_leader_epochs(leader_epochs)?;
        Ok(log)
    }

    /// Brings the leader-epoch cache in line with the recovered log: entries past the log end
    /// go (recovery may have cut the tail), and epochs of batches appended after the last
    /// checkpoint (those past the recovery point) are added. Without a usable file, every
    /// batch header is read once to rebuild it.
    fn load_leader_epochs(&mut self, loaded: Option<LeaderEpochCache>) -> Result<(), LogError> {
        let rebuild = loaded.is_none();
        let mut cache = loaded.unwrap_or_else(|| LeaderEpochCache::empty(&self.dir));
        let mut changed = cache.truncate_from_end(self.log_end_offset());
        let from = if rebuild {
            self.log_start_offset
        } else {
            self.recovery_point
        };
        for h in self.batch_headers(from) {
            changed |= cache.assign(h.partition_leader_epoch, h.base_offset);
        }
        changed |= cache.truncate_from_start(self.log_start_offset);
        self.leader_epochs = cache;
        if changed {
            self.leader_epochs.write()?;
        }
        Ok(())
    }

    /// Kafka's OffsetForLeaderEpoch answer from this log: the largest epoch <= `requested` and
    /// the offset where the following epoch began (the log end for the latest epoch);
    /// (-1, -1) for an epoch the log does not know.
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        self.leader_epochs
            .end_offset_for(requested, self.log_end_offset())
    }

    /// The leader-epoch cache: (epoch, start offset), oldest first.
    pub fn leader_epochs(&self) -> &[(i32, i64)] {
        self.leader_epochs.entries()
    }

    /// Re-aligns the leader-epoch cache after the log start or end moved, rewriting its
    /// checkpoint when it changed.
    pub(crate) fn trim_leader_epochs(&mut self) -> Result<(), LogError> {
        if self.trim_leader_epochs_in_memory() {
            self.leader_epochs.write()?;
        }
        Ok(())
    }

    /// Drops leader-epoch entries outside [log start, log end); true when the checkpoint
    /// must be rewritten.
    pub(crate) fn trim_leader_epochs_in_memory(&mut self) -> bool {
        let changed = self.leader_epochs.truncate_from_end(self.log_end_offset());
        self.leader_epochs
            .truncate_from_start(self.log_start_offset)
            || changed
    }

    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery_report
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// New topic configs apply to future rolls, retention and flushes.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active.next_offset()
    }

    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Only ever raises the recovery point, and never past the log end.
    pub(crate) fn advance_recovery_point(&mut self, upto: i64) {
        self.recovery_point = self.recovery_point.max(upto.min(self.log_end_offset()));
    }

    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    pub fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }

    /// Restores a log start offset from log-start-offset-checkpoint (only ever raises it).
    pub fn restore_log_start_offset(&mut self, offset: i64) {
        self.log_start_offset = self.log_start_offset.max(offset.min(self.log_end_offset()));
        if let Err(e) = self.trim_leader_epochs() {
            tracing::warn!(partition = %self.tp, error = %e, "rewriting leader-epoch checkpoint failed");
        }
    }

    fn segments(&self) -> impl Iterator<Item = &LogSegment> {
        self.sealed.values().chain(std::iter::once(&self.active))
    }

    pub(crate) fn check_writable(&self) -> Result<(), LogError> {
        match &self.failed {
            Some(cause) => Err(LogError::StorageFailed {
                path: self.dir.display().to_string(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses further writes until restart, as after a failed write.
    pub(crate) fn fail(&mut self, e: &LogError) {
        tracing::error!(partition = %self.tp, error = %e, "log write failed; refusing further writes");
        self.failed = Some(e.to_string());
    }

    /// Closes the fsync gate on I/O failure: after it, nothing on disk can be trusted to match.
    pub(crate) fn gate<T>(&mut self, r: Result<T, LogError>) -> Result<T, LogError> {
        // A full disk is refused before anything is written (blocks are reserved ahead of
        // mapped writes), so the log stays sound and writable once space returns.
        let r = r.map_err(LogError::classify_no_space);
        if let Err(e @ LogError::Io { .. }) = &r {
            self.fail(e);
        }
        r
    }

    fn segment_for(&self, offset: i64) -> Option<&LogSegment> {
        if offset >= self.active.base_offset() {
            return Some(&self.active);
        }
        self.sealed.range(..=offset).next_back().map(|(_, s)| s)
    }

    /// Reads whole batches from the one containing `start_offset`, up to `max_bytes` (at least
    /// one batch when `min_one_batch`), stopping before batches reaching `max_offset`.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<LogReadInfo, LogError> {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        if start_offset < start || start_offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset: start_offset,
                log_start_offset: start,
                log_end_offset: end,
            });
        }
        let mut info = LogReadInfo {
            records: Bytes::new(),
            region: None,
            first_offset: None,
            next_offset: start_offset,
            log_start_offset: start,
            log_end_offset: end,
        };
        if start_offset == end || start_offset >= max_offset {
            return Ok(info);
        }
        let first_base = self
            .segment_for(start_offset)
            .map_or(i64::MIN, LogSegment::base_offset);
        for seg in self.segments().filter(|s| s.base_offset() >= first_base) {
            if let Some(read) = seg.read(start_offset, max_bytes, max_offset, min_one_batch) {
                if !read.records.is_empty() {
                    info.first_offset = Some(read.first_offset);
                    info.next_offset = read.next_offset;
                }
                info.records = read.records;
                info.region = read.region;
                break;
            }
        }
        Ok(info)
    }

    /// The first batch whose max timestamp is >= `ts`: (offset, timestamp); offset clamped to the log start.
    pub fn offset_for_timestamp(&self, ts: i64) -> Option<(i64, i64)> {
        self.segments()
            .filter(|s| s.max_timestamp().is_some_and(|(_, max)| max >= ts))
            .find_map(|s| s.find_by_timestamp(ts))
            .map(|(offset, found)| (offset.max(self.log_start_offset), found))
    }

    /// The largest timestamp in the log and the last offset of the batch holding it.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.segments().filter_map(LogSegment::max_timestamp).fold(
            None,
            |best: Option<(i64, i64)>, cur| match best {
                Some(b) if b.1 >= cur.1 => Some(b),
                _ => Some(cur),
            },
        )
    }

    /// Syncs every segment and index holding offsets past the recovery point; advances it to the
    /// log end. A failure closes the fsync gate.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.check_writable()?;
        let r = self.flush_inner();
        self.gate(r)
    }

    fn flush_inner(&mut self) -> Result<(), LogError> {
        let recovery_point = self.recovery_point;
        for seg in self
            .sealed
            .values_mut()
            .filter(|s| s.next_offset() > recovery_point)
        {
            seg.flush()?;
        }
        self.active.flush()?;
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        self.recovery_point = self.log_end_offset();
        Ok(())
    }

    /// Flushes when `flush.messages` or `flush.ms` say so.
    pub fn flush_if_due(&mut self, now_ms: i64) -> Result<(), LogError> {
        if self.claim_due_flush(now_ms) {
            self.flush()?;
        }
        Ok(())
    }

    /// Whether `flush.messages` or `flush.ms` call for a flush now. When they do, the
    /// `flush.ms` interval restarts from `now_ms`: the caller flushes, with [`Log::flush`] or
    /// without holding the log ([`Log::begin_flush`]).
    pub fn claim_due_flush(&mut self, now_ms: i64) -> bool {
        let unflushed = u64::try_from(self.log_end_offset() - self.recovery_point).unwrap_or(0);
        let due_by_count = unflushed >= self.config.flush_interval_messages.max(1);
        let due_by_time = unflushed > 0
            && now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_interval_ms;
        if due_by_count || due_by_time {
            self.last_flush_ms = now_ms;
        }
        due_by_count || due_by_time
    }

    /// Drops every offset >= `offset` (whole batches: a batch containing `offset` goes too, so
    /// the log end may land below `offset`). Used by replication to cut divergent tails.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        self.check_writable()?;
        self.check_no_append_in_flight()?;
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let r = self.truncate_inner(offset);
        self.gate(r)
    }

    fn truncate_inner(&mut self, offset: i64) -> Result<(), LogError> {
        self.generation += 1;
        self.first_dirty_offset = self.first_dirty_offset.min(offset);
        let now = self.last_now_ms;
        if offset >= self.active.base_offset() {
            self.active.truncate_to(offset, &self.config, now)?;
        } else {
            let doomed: Vec<i64> = self.sealed.range(offset..).map(|(b, _)| *b).collect();
            for base in doomed {
                if let Some(seg) = self.sealed.remove(&base) {
                    seg.delete()?;
                }
            }
            // The last survivor becomes the active segment (or a fresh one if none survives).
            let mut new_active = match self.sealed.pop_last() {
                Some((_, seg)) => seg,
                None => LogSegment::create(&self.dir, offset.max(0), &self.config, now)?,
            };
            new_active.truncate_to(offset, &self.config, now)?;
            let old = std::mem::replace(&mut self.active, new_active);
            old.delete()?;
        }
        self.dir_dirty = true;
        let leo = self.log_end_offset();
        self.recovery_point = self.recovery_point.min(leo);
        if self.sealed.is_empty() && self.active.size() == 0 {
            self.log_start_offset = self.active.base_offset();
        }
        self.log_start_offset = self.log_start_offset.min(leo);
        self.trim_leader_epochs()
    }

    /// Empties the log and starts it again at `offset`: for a follower whose whole log lies
    /// below its leader's log start (it was away while the leader's retention or
    /// DeleteRecords moved past it), so nothing it holds is in the leader's log any more.
    /// Every segment goes, the log continues at `offset`, and the leader-epoch cache is
    /// cleared (the next batches copied from the leader bring their epochs).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        self.check_writable()?;
        self.check_no_append_in_flight()?;
        let r = self.reset_inner(offset.max(0));
        self.gate(r)
    }

    fn reset_inner(&mut self, offset: i64) -> Result<(), LogError> {
        self.generation += 1;
        let now = self.last_now_ms;
        for (_, seg) in std::mem::take(&mut self.sealed) {
            seg.delete()?;
        }
        if self.active.base_offset() == offset {
            // Same file name as the segment the log needs: empty it in place.
            self.active.truncate_to(offset, &self.config, now)?;
        } else {
            let fresh = LogSegment::create(&self.dir, offset, &self.config, now)?;
            std::mem::replace(&mut self.active, fresh).delete()?;
        }
        self.dir_dirty = true;
        self.log_start_offset = offset;
        self.recovery_point = offset;
        self.first_dirty_offset = offset;
        self.leader_epochs = LeaderEpochCache::empty(&self.dir);
        self.leader_epochs.write()
    }
}

impl Log {
    /// Headers of every batch whose last offset is >= `from_offset`, oldest first (to rebuild
    /// producer state on start).
    pub fn batch_headers(&self, from_offset: i64) -> impl Iterator<Item = RecordBatchHeader> + '_ {
        let first_base = self
            .segment_for(from_offset)
            .map_or(i64::MIN, LogSegment::base_offset);
        self.segments()
            .filter(move |s| s.base_offset() >= first_base)
            .flat_map(move |s| {
                let start = s.find_batch(from_offset).map_or(s.size(), |(pos, _)| pos);
                s.headers_from(start).map(|(_, h)| h)
            })
    }

    /// Bytes of committed batches across all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments().map(|s| s.size() as u64).sum()
    }

    /// Flushes and trims the active segment to its real size.
    pub fn close(mut self) -> Result<(), LogError> {
        self.check_no_append_in_flight()?;
        self.flush()?;
        let r = self.active.seal();
        self.gate(r)?;
        let r = sync_dir(&self.dir);
        self.gate(r)
    }

    /// Renames the directory to `<topic>-<partition>.<id>-delete` (so a crash mid-delete leaves
    /// a name that is never loaded as a partition) and removes it.
    pub fn delete(self) -> Result<(), LogError> {
        let Log {
            dir,
            sealed,
            active,
            ..
        } = self;
        drop(sealed);
        drop(active);
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("log")
            .to_owned();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let unique = format!(
            "{:016x}{:08x}{:08x}",
            nanos as u64,
            std::process::id(),
            (nanos >> 64) as u32
        );
        let doomed = dir.with_file_name(format!("{name}.{unique}-delete"));
        std::fs::rename(&dir, &doomed).at(&dir)?;
        if let Some(parent) = doomed.parent() {
            sync_dir(parent)?;
        }
        std::fs::remove_dir_all(&doomed).at(&doomed)
    }
}

/// fsync a directory so created, renamed and deleted entries survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}
