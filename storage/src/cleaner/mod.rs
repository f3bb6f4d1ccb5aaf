//! The log cleaner (`cleanup.policy=compact`): rewrites sealed segments keeping only the newest
//! record per key, dropping tombstones older than `delete.retention.ms`. Offsets never move:
//! removed records leave gaps. Three phases so appends never wait on a clean: plan (under the
//! log lock, cheap), run (no lock: decode, dedupe, write `.log.cleaned` files, fsync), install
//! (the renames and reloads without the lock, the swap under it: see `install`).

mod install;
mod records;

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use strata_protocol::record_batch::{RecordBatchHeader, BATCH_HEADER_LEN};

pub use install::{CleanInstall, InstalledClean};

use crate::error::{IoContext, LogError};
use crate::log::Log;
use crate::segment;
use crate::LogConfig;

/// What one cleaning pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanerStats {
    /// Segments rewritten (a segment from which nothing could be removed is left as is).
    pub segments_cleaned: usize,
    /// Segments left without records and removed (their offsets become a gap that reads
    /// step over); never the log's first, which holds the log start offset.
    pub empty_segments_removed: usize,
    /// Segments merged into the segment before them (their kept records moved there).
    pub segments_merged: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_kept: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
    /// The first offset the next pass treats as dirty.
    pub first_dirty_offset: i64,
}

/// A sealed segment as the plan saw it: an immutable, zero-copy view of its bytes.
#[derive(Debug)]
struct SegmentSnapshot {
    base: i64,
    next_offset: i64,
    data: Bytes,
    dirty: bool,
}

/// Kafka's `log.cleaner.dedupe.buffer.size` default: the memory the offset map may use.
pub const DEFAULT_DEDUPE_BUFFER_SIZE: u64 = 128 * 1024 * 1024;
/// Bytes one offset-map entry costs: a 16-byte key digest and an 8-byte offset (as Kafka's
/// SkimpyOffsetMap), plus the hash table's slack.
const OFFSET_MAP_ENTRY_BYTES: u64 = 32;

/// A planned clean: owns views of the segments to rewrite, so it runs without the log lock.
#[derive(Debug)]
pub struct CleanTask {
    dir: PathBuf,
    config: LogConfig,
    generation: u64,
    end_offset: i64,
    segments: Vec<SegmentSnapshot>,
    dedupe_buffer_size: u64,
}

/// A sealed segment as a clean found it: its base offset, size and next offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Original {
    base: i64,
    size: usize,
    next_offset: i64,
}

/// The outcome for one group of consecutive segments: the first (`head`) is rewritten with
/// the kept records of all of them, and the others (`absorbed`) go (Kafka's cleaner groups
/// segments the same way, so a compacted topic does not keep one small segment per roll).
#[derive(Debug)]
struct CleanedSegment {
    head: Original,
    /// Later segments whose kept records are in `path` now.
    absorbed: Vec<Original>,
    /// The rewritten file; None when there was nothing to rewrite (an empty group).
    path: Option<PathBuf>,
    /// No record is left: the group can go, unless its head is the log's first (which holds
    /// the log start offset) — see `install`.
    empty: bool,
}

impl CleanedSegment {
    fn originals(&self) -> impl Iterator<Item = &Original> {
        std::iter::once(&self.head).chain(&self.absorbed)
    }
}

/// A group being written: consecutive cleaned segments whose kept bytes fit in one segment.
/// Its file is started only once the group needs rewriting (a segment lost records, or a
/// second segment joined); until then the head's bytes wait in `pending`.
struct Group {
    head: Original,
    absorbed: Vec<Original>,
    file: Option<(File, PathBuf)>,
    pending: Option<Bytes>,
    bytes: usize,
}

impl Group {
    fn new(head: Original) -> Self {
        Group {
            head,
            absorbed: Vec::new(),
            file: None,
            pending: None,
            bytes: 0,
        }
    }

    /// Adds the next segment's kept bytes (`changed`: it lost records). The first call is
    /// the head's.
    fn add(
        &mut self,
        dir: &Path,
        segment: Original,
        out: Vec<u8>,
        changed: bool,
    ) -> Result<(), LogError> {
        let is_head = segment == self.head;
        if !is_head {
            self.absorbed.push(segment);
        }
        self.bytes += out.len();
        if is_head && !changed {
            self.pending = Some(Bytes::from(out));
            return Ok(());
        }
        let (file, path) = match &mut self.file {
            Some(open) => open,
            None => {
                let path = cleaned_path(dir, self.head.base);
                let mut file = File::create(&path).at(&path)?;
                if let Some(head) = self.pending.take() {
                    file.write_all(&head).at(&path)?;
                }
                self.file.insert((file, path))
            }
        };
        file.write_all(&out).at(path)
    }

    /// The group's outcome: None when there is nothing to install (a lone head that lost no
    /// records).
    fn finish(self) -> Result<Option<CleanedSegment>, LogError> {
        let empty = self.bytes == 0;
        let path = match self.file {
            Some((file, path)) => {
                file.sync_all().at(&path)?;
                Some(path)
            }
            None if empty => None,
            None => return Ok(None),
        };
        Ok(Some(CleanedSegment {
            head: self.head,
            absorbed: self.absorbed,
            path,
            empty,
        }))
    }
}

/// A finished clean, waiting to be installed by [`Log::install_compaction`].
#[derive(Debug)]
pub struct CleanedLog {
    generation: u64,
    end_offset: i64,
    segments: Vec<CleanedSegment>,
    stats: CleanerStats,
}

fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{}.log.cleaned", segment::file_stem(base)))
}

impl Log {
    /// Offsets below this were deduplicated by an earlier pass (checkpointed in
    /// cleaner-offset-checkpoint; the log start when nothing was cleaned yet).
    pub fn first_dirty_offset(&self) -> i64 {
        self.first_dirty_offset.max(self.log_start_offset)
    }

    /// Restores the cleaner's progress from cleaner-offset-checkpoint, so a restart does not
    /// re-read what earlier passes already deduplicated (clamped to the recovered log).
    pub fn restore_first_dirty_offset(&mut self, offset: i64) {
        self.first_dirty_offset = offset.clamp(self.log_start_offset, self.log_end_offset());
    }

    /// Decides whether a clean is due (compacting policy, something cleanable past
    /// `min.compaction.lag.ms`, dirty ratio at least `min.cleanable.dirty.ratio` or dirty data
    /// older than `max.compaction.lag.ms`) and, if so, snapshots the segments to rewrite.
    pub fn plan_compaction(&self, now_ms: i64) -> Option<CleanTask> {
        let config = &self.config;
        if !config.cleanup_compact || self.is_failed() {
            return None;
        }
        let lag_bound = now_ms.saturating_sub(config.min_compaction_lag_ms.max(0));
        let max_lag_bound = now_ms.saturating_sub(config.max_compaction_lag_ms.max(0));
        let first_dirty = self.first_dirty_offset();
        let mut end_offset = self.active.base_offset();
        let mut cleanable = Vec::new();
        for seg in self.sealed.values() {
            // The active segment is never cleaned; nor is anything younger than the lag.
            if seg.max_timestamp().is_some_and(|(_, ts)| ts > lag_bound) {
                end_offset = seg.base_offset();
                break;
            }
            cleanable.push(seg);
        }
        let (mut dirty, mut total, mut overdue) = (0u64, 0u64, false);
        for seg in &cleanable {
            total += seg.size() as u64;
            if seg.next_offset() > first_dirty {
                dirty += seg.size() as u64;
                overdue |= seg
                    .max_timestamp()
                    .is_some_and(|(_, ts)| ts < max_lag_bound);
            }
        }
        if dirty == 0 || first_dirty >= end_offset {
            return None;
        }
        let ratio = dirty as f64 / total.max(1) as f64;
        if ratio < config.min_cleanable_dirty_ratio && !overdue {
            return None;
        }
        Some(CleanTask {
            dir: self.dir.clone(),
            config: config.clone(),
            generation: self.generation,
            end_offset,
            segments: cleanable
                .into_iter()
                .map(|seg| SegmentSnapshot {
                    base: seg.base_offset(),
                    next_offset: seg.next_offset(),
                    data: seg.snapshot(),
                    dirty: seg.next_offset() > first_dirty,
                })
                .collect(),
            dedupe_buffer_size: DEFAULT_DEDUPE_BUFFER_SIZE,
        })
    }

    /// Plans, runs and installs one clean while holding the log (tests, tools). The broker
    /// runs the phases separately so that appends continue during [`CleanTask::run`].
    pub fn compact(&mut self, now_ms: i64) -> Result<Option<CleanerStats>, LogError> {
        let Some(task) = self.plan_compaction(now_ms) else {
            return Ok(None);
        };
        let cleaned = task.run(now_ms)?;
        self.install_compaction(cleaned).map(Some)
    }
}

fn discard(segments: &[CleanedSegment]) {
    for path in segments.iter().filter_map(|cs| cs.path.as_ref()) {
        let _ = std::fs::remove_file(path);
    }
}

/// The batches of a segment's bytes (the log only holds whole, validated batches).
fn batches(data: &Bytes) -> impl Iterator<Item = (Bytes, RecordBatchHeader)> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let h = segment::batch_at(data, pos)?;
        let bytes = data.slice(pos..pos + h.total_size());
        pos += h.total_size();
        Some((bytes, h))
    })
}

/// Record-level cleaning applies to plain data batches; control and transactional batches
/// are kept whole and their keys supersede nothing: whether a transaction's records count
/// is decided by its marker, which this cleaner does not track (Kafka's does).
fn cleanable_batch(h: &RecordBatchHeader) -> bool {
    !h.is_control() && !h.is_transactional()
}

impl CleanTask {
    /// Offsets up to which this clean deduplicates (the first segment it leaves alone).
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// `log.cleaner.dedupe.buffer.size`: memory for the offset map. A dirty section with more
    /// keys than fit is cleaned in several passes, each up to a segment boundary.
    pub fn set_dedupe_buffer_size(&mut self, bytes: u64) {
        self.dedupe_buffer_size = bytes;
    }

    /// Deduplicates and writes cleaned segment files, touching nothing the log reads.
    pub fn run(mut self, now_ms: i64) -> Result<CleanedLog, LogError> {
        let mut stats = CleanerStats::default();
        // The offset map: newest offset of every key (by digest) in the dirty section, filled
        // segment by segment while the next segment's records surely fit (its header record
        // counts bound its keys). The first dirty segment always goes in, so a pass progresses.
        let capacity = (self.dedupe_buffer_size / OFFSET_MAP_ENTRY_BYTES).max(1);
        let mut latest: HashMap<u128, i64> = HashMap::new();
        for (mapped_segments, seg) in self.segments.iter().filter(|s| s.dirty).enumerate() {
            let upper_bound: u64 = batches(&seg.data)
                .map(|(_, h)| u64::try_from(h.records_count).unwrap_or(0))
                .sum();
            if mapped_segments > 0 && latest.len() as u64 + upper_bound > capacity {
                // Clean up to here now; the next pass starts at this segment.
                self.end_offset = seg.base;
                break;
            }
            for (batch, h) in batches(&seg.data).filter(|(_, h)| cleanable_batch(h)) {
                let payload = records::record_payload(&batch, &h)?;
                for r in records::records(&payload, &h)? {
                    if let Some(key) = r.key {
                        let _ = latest.insert(key_digest(&key), r.offset);
                    }
                }
            }
        }
        let end_offset = self.end_offset;
        self.segments.retain(|s| s.base < end_offset);
        let tombstone_bound = now_ms.saturating_sub(self.config.delete_retention_ms.max(0));
        let max_group_bytes = max_group_bytes(&self.config);
        let mut cleaned = Vec::new();
        let mut group: Option<Group> = None;
        for seg in &self.segments {
            let mut out: Vec<u8> = Vec::with_capacity(seg.data.len());
            let mut changed = false;
            for (batch, h) in batches(&seg.data) {
                if !cleanable_batch(&h) {
                    out.extend_from_slice(&batch);
                    continue;
                }
                let payload = records::record_payload(&batch, &h)?;
                let all = records::records(&payload, &h)?;
                let total = all.len();
                let kept: Vec<_> = all
                    .into_iter()
                    .filter(|r| {
                        let Some(key) = &r.key else {
                            // Keyless records cannot be compacted; Kafka's cleaner drops them.
                            return false;
                        };
                        let newest = latest.get(&key_digest(key)).is_none_or(|&o| r.offset >= o);
                        let ts = if h.is_log_append_time() {
                            h.max_timestamp
                        } else {
                            r.timestamp
                        };
                        let expired_tombstone = !r.has_value && ts < tombstone_bound;
                        if newest && expired_tombstone {
                            stats.tombstones_removed += 1;
                        }
                        newest && !expired_tombstone
                    })
                    .collect();
                stats.records_kept += kept.len() as u64;
                stats.records_removed += (total - kept.len()) as u64;
                if kept.len() == total {
                    out.extend_from_slice(&batch);
                    continue;
                }
                changed = true;
                if !kept.is_empty() {
                    rebuild_batch(&mut out, &batch, &h, &kept)?;
                }
            }
            stats.bytes_before += seg.data.len() as u64;
            stats.bytes_after += out.len() as u64;
            let original = Original {
                base: seg.base,
                size: seg.data.len(),
                next_offset: seg.next_offset,
            };
            // Join the open group while the kept bytes fit in one segment and every offset
            // stays within the index's 32-bit relative offsets.
            let joins = group.as_ref().is_some_and(|g| {
                g.bytes.saturating_add(out.len()) <= max_group_bytes
                    && seg.next_offset.saturating_sub(g.head.base) <= i64::from(i32::MAX)
            });
            if !joins {
                if let Some(done) = group.take() {
                    cleaned.extend(done.finish()?);
                }
                group = Some(Group::new(original));
            }
            if let Some(g) = group.as_mut() {
                g.add(&self.dir, original, out, changed)?;
            }
        }
        if let Some(done) = group.take() {
            cleaned.extend(done.finish()?);
        }
        stats.segments_merged = cleaned.iter().map(|cs| cs.absorbed.len()).sum();
        Ok(CleanedLog {
            generation: self.generation,
            end_offset: self.end_offset,
            segments: cleaned,
            stats,
        })
    }
}

/// How many kept bytes one merged segment may hold: at most `segment.bytes`, and no more
/// than its rebuilt indexes have room for (an entry per `index.interval.bytes`, 12 bytes a
/// time-index entry within `segment.index.bytes`), as Kafka's grouping bounds both.
fn max_group_bytes(config: &LogConfig) -> usize {
    let to_usize = |v: u64| usize::try_from(v.max(1)).unwrap_or(usize::MAX);
    let index_entries = to_usize((u64::from(config.max_index_bytes) / 12).saturating_sub(1));
    to_usize(config.segment_bytes)
        .min(index_entries.saturating_mul(to_usize(u64::from(config.index_interval_bytes))))
}

/// A 128-bit digest of a record key (two SipHash passes with distinct prefixes): the offset
/// map holds digests, not keys, so its memory per key is fixed whatever the key's size, as in
/// Kafka's SkimpyOffsetMap (MD5). A collision needs ~2^64 keys.
fn key_digest(key: &[u8]) -> u128 {
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0x5a)) << 64) | u128::from(half(0xa5))
}

/// Writes a batch holding only `kept` records. As Kafka's cleaner does, the base offset, last
/// offset delta, timestamps and producer fields stay those of the original batch, so record
/// deltas are copied verbatim and the batch still spans its original offsets.
fn rebuild_batch(
    out: &mut Vec<u8>,
    original: &[u8],
    h: &RecordBatchHeader,
    kept: &[records::RecordView],
) -> Result<(), LogError> {
    let raw: Vec<u8> = kept.iter().flat_map(|r| r.raw.iter().copied()).collect();
    let payload = records::compress(h.compression(), &raw)?;
    let header = original
        .get(..BATCH_HEADER_LEN)
        .ok_or_else(|| LogError::InvalidBatch {
            position: 0,
            reason: format!(
                "expected a {BATCH_HEADER_LEN}-byte header, found {} bytes",
                original.len()
            ),
        })?;
    let count = i32::try_from(kept.len()).unwrap_or(i32::MAX);
    let length = i32::try_from(payload.len() + BATCH_HEADER_LEN - 12).map_err(|_| {
        LogError::InvalidBatch {
            position: 0,
            reason: format!("cleaned batch of {} bytes is too large", payload.len()),
        }
    })?;
    let start = out.len();
    out.extend_from_slice(header);
    out.extend_from_slice(&payload);
    let batch = out.get_mut(start..).unwrap_or_default();
    if let Some(dst) = batch.get_mut(8..12) {
        dst.copy_from_slice(&length.to_be_bytes());
    }
    if let Some(dst) = batch.get_mut(57..61) {
        dst.copy_from_slice(&count.to_be_bytes());
    }
    let crc = strata_protocol::record_batch::crc32c(batch.get(21..).unwrap_or_default());
    if let Some(dst) = batch.get_mut(17..21) {
        dst.copy_from_slice(&crc.to_be_bytes());
    }
    Ok(())
}
