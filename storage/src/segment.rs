//! A LogSegment: one `.log` file of whole record batches plus its `.index` and `.timeindex`.
//! The active segment is written through a shared writable mapping of its full virtual size,
//! with disk blocks allocated in chunks just ahead of the write position.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{Advice, MmapOptions, MmapRaw};

use crate::error::{IoContext, LogError};
use crate::file_alloc;
use crate::index::{OffsetIndex, TimeIndex};
use crate::LogConfig;
use strata_protocol::record_batch::{self, RecordBatchHeader, BATCH_HEADER_LEN};

/// Blocks are allocated this far ahead of the write position (capped at the segment size).
const ALLOC_CHUNK: usize = 16 * 1024 * 1024;
/// Positions in `.index` are u32 and Kafka caps `segment.bytes` at Int.MaxValue; so do we.
pub(crate) const MAX_SEGMENT_BYTES: usize = i32::MAX as usize;

pub(crate) fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

pub(crate) fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}.log", file_stem(base_offset)))
}

fn index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}.index", file_stem(base_offset)))
}

fn time_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}.timeindex", file_stem(base_offset)))
}

/// A reader's zero-copy view of committed bytes of a segment mapping.
struct MapSlice {
    map: Arc<MmapRaw>,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for MapSlice {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: [start, start+len) lies inside the mapping and inside bytes that were
        // committed (fully written) before this slice was created. Committed bytes are never
        // written again while any MapSlice holds the Arc: appends only write past the committed
        // size, LogSegment::truncate_to writes a new file (new inode) instead of cutting in place
        // when the Arc is shared, and trimming only drops bytes past the committed size. So the
        // memory is valid, initialized and not mutated for the lifetime of `&self`.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(self.start), self.len)
        }
    }
}

/// How a segment is brought up from disk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadMode {
    /// Batches whose last offset is >= this get their CRC checked (recovery point).
    pub(crate) crc_from_offset: i64,
    /// Open for appends (the active segment).
    pub(crate) writable: bool,
}

/// What loading a segment found and repaired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LoadOutcome {
    /// Bytes cut after the last valid batch that were not all zeros (torn or corrupt data).
    pub(crate) truncated_bytes: u64,
    /// Zero bytes cut (the preallocated tail of a segment that was not closed cleanly).
    pub(crate) zero_tail_bytes: u64,
    pub(crate) index_rebuilt: bool,
    /// Why the scan stopped early, if it did on non-zero bytes.
    pub(crate) invalid_reason: Option<&'static str>,
}

#[derive(Debug)]
pub(crate) struct LogSegment {
    base_offset: i64,
    dir: PathBuf,
    file: File,
    map: Arc<MmapRaw>,
    /// Committed bytes: whole batches with assigned offsets.
    size: usize,
    /// File length: bytes backed by disk blocks (>= size while writable).
    allocated: usize,
    flushed: usize,
    writable: bool,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    bytes_since_last_index: usize,
    index_interval: usize,
    preallocate: bool,
    /// Max timestamp of the first batch; segment.ms rolls are measured from it (as Kafka does).
    rolling_timestamp: Option<i64>,
    created_ms: i64,
    index_dirty: bool,
}

/// The header of the whole batch at `pos` of `data`, if one fits.
pub(crate) fn batch_at(data: &[u8], pos: usize) -> Option<RecordBatchHeader> {
    let rest = data.get(pos..)?;
    let h = RecordBatchHeader::parse(rest).ok()?;
    (h.total_size() <= rest.len()).then_some(h)
}

impl LogSegment {
    /// Creates an empty active segment at `base_offset`, replacing leftovers of the same name.
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        let path = log_path(dir, base_offset);
        File::create(&path).at(&path)?;
        let _ = std::fs::remove_file(index_path(dir, base_offset));
        let _ = std::fs::remove_file(time_index_path(dir, base_offset));
        let mode = LoadMode {
            crc_from_offset: i64::MAX,
            writable: true,
        };
        let (mut seg, _) = Self::load(dir, base_offset, config, mode, now_ms)?;
        seg.created_ms = now_ms;
        Ok(seg)
    }

    /// Opens an existing segment, validating batches and indexes and cutting it at the first
    /// invalid batch. Indexes are reused when sane, rebuilt otherwise.
    pub(crate) fn load(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        mode: LoadMode,
        now_ms: i64,
    ) -> Result<(Self, LoadOutcome), LogError> {
        let path = log_path(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .at(&path)?;
        let file_len = usize::try_from(file.metadata().at(&path)?.len()).unwrap_or(usize::MAX);
        if file_len > MAX_SEGMENT_BYTES {
            return Err(LogError::Corrupt {
                path: path.display().to_string(),
                reason: format!(
                    "expected a segment of at most {MAX_SEGMENT_BYTES} bytes, found {file_len}"
                ),
            });
        }
        let map_len = if mode.writable {
            segment_capacity(config).max(file_len)
        } else {
            file_len
        };
        let map = if mode.writable {
            MmapOptions::new().len(map_len).map_raw(&file)
        } else {
            MmapOptions::new().len(map_len).map_raw_read_only(&file)
        }
        .at(&path)?;
        let _ = map.advise(Advice::Sequential);

        let idx_path = index_path(dir, base_offset);
        let tidx_path = time_index_path(dir, base_offset);
        let had_indexes = idx_path.exists() && tidx_path.exists();
        // Indexes that will gain entries (active, or being recovered) need room; a sealed
        // index that gains entries is trimmed again after the scan.
        let recovering = mode.crc_from_offset != i64::MAX;
        let open_indexes = |keep: bool, room: bool| -> Result<(OffsetIndex, TimeIndex), LogError> {
            Ok((
                OffsetIndex::open(&idx_path, config.max_index_bytes, keep, room)?,
                TimeIndex::open(&tidx_path, config.max_index_bytes, keep, room)?,
            ))
        };
        // A corrupt (odd-sized) index file is treated like a missing one.
        let (mut offset_index, mut time_index, mut rebuild) =
            match open_indexes(had_indexes, mode.writable || recovering) {
                Ok((o, t)) => (o, t, !had_indexes),
                Err(LogError::Corrupt { .. }) => {
                    let (o, t) = open_indexes(false, true)?;
                    (o, t, true)
                }
                Err(e) => return Err(e),
            };
        if !rebuild && (!offset_index.is_sane(file_len) || !time_index.is_sane(u32::MAX)) {
            rebuild = true;
        }
        if rebuild {
            let (o, t) = open_indexes(false, true)?;
            offset_index = o;
            time_index = t;
        }

        let mut seg = LogSegment {
            base_offset,
            dir: dir.to_owned(),
            file,
            map: Arc::new(map),
            size: 0,
            allocated: file_len,
            flushed: 0,
            writable: mode.writable,
            offset_index,
            time_index,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            bytes_since_last_index: 0,
            index_interval: config.index_interval_bytes as usize,
            preallocate: config.preallocate,
            rolling_timestamp: None,
            created_ms: now_ms,
            index_dirty: rebuild,
        };
        let outcome = match seg.scan_and_cut(file_len, mode, rebuild, true)? {
            Some(outcome) => outcome,
            // The batch the index pointed at is itself bad: offsets before it are unknown
            // without the index, so scan the whole segment.
            None => {
                let (o, t) = open_indexes(false, true)?;
                seg.offset_index = o;
                seg.time_index = t;
                seg.index_dirty = true;
                seg.scan_and_cut(file_len, mode, true, false)?
                    .unwrap_or_default()
            }
        };
        if !mode.writable && (rebuild || recovering || outcome.index_rebuilt) {
            seg.offset_index.trim()?;
            seg.time_index.trim()?;
        }
        seg.flushed = seg.size;
        Ok((seg, outcome))
    }

    /// Walks batches from the last trusted index point, rebuilding index entries past it, and
    /// cuts the file after the last valid batch.
    fn scan_and_cut(
        &mut self,
        file_len: usize,
        mode: LoadMode,
        rebuilt: bool,
        use_index: bool,
    ) -> Result<Option<LoadOutcome>, LogError> {
        // Resume from the index entry at or before the first offset needing a CRC check.
        let resume = if !use_index || mode.crc_from_offset <= self.base_offset {
            None
        } else {
            let rel = u32::try_from(mode.crc_from_offset - self.base_offset).unwrap_or(u32::MAX);
            self.offset_index.lookup(rel)
        };
        let start_pos = match resume {
            Some((rel, pos)) => {
                self.offset_index
                    .truncate_to_position(pos.saturating_add(1));
                self.time_index.truncate_to_offset(rel.saturating_add(1));
                pos as usize
            }
            None => {
                self.offset_index.truncate_to_position(0);
                self.time_index.truncate_to_offset(0);
                0
            }
        };
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        self.bytes_since_last_index = 0;
        self.next_offset = self.base_offset;
        if let Some((ts, rel)) = self.time_index.last_entry() {
            self.max_timestamp = ts;
            self.offset_of_max_timestamp = self.base_offset + i64::from(rel);
        }
        // SAFETY: no reader exists yet (the segment is being built) and [0, file_len) is inside
        // both the mapping and the file.
        #[allow(unsafe_code)]
        let data: &[u8] = unsafe { std::slice::from_raw_parts(self.map.as_ptr(), file_len) };
        if let Some(first) = batch_at(data, 0) {
            self.rolling_timestamp = Some(first.max_timestamp);
        }
        let mut pos = start_pos;
        let mut expected = if start_pos == 0 {
            self.base_offset
        } else {
            i64::MIN
        };
        let mut reason = None;
        while pos < file_len {
            let rest = data.get(pos..).unwrap_or_default();
            let h = match RecordBatchHeader::parse(rest) {
                Ok(h) => h,
                Err(_) => {
                    reason = Some("unparseable or torn batch header");
                    break;
                }
            };
            if h.total_size() > rest.len() {
                reason = Some("batch extends past end of file (torn write)");
                break;
            }
            if h.base_offset < expected || h.base_offset < self.base_offset {
                reason = Some("batch offsets go backwards");
                break;
            }
            if h.last_offset_delta < 0 || h.last_offset() - self.base_offset > i64::from(i32::MAX) {
                reason = Some("batch offset too far from segment base");
                break;
            }
            if h.last_offset() >= mode.crc_from_offset
                && record_batch::verify_crc(rest.get(..h.total_size()).unwrap_or_default()).is_err()
            {
                reason = Some("CRC32C mismatch");
                break;
            }
            self.index_batch(&h, pos);
            expected = h.last_offset() + 1;
            self.next_offset = expected;
            pos += h.total_size();
        }
        if start_pos > 0 && pos == start_pos {
            return Ok(None);
        }
        self.size = pos;
        let tail = data.get(pos..).unwrap_or_default();
        let zero_tail = tail.iter().all(|&b| b == 0);
        let mut outcome = LoadOutcome {
            index_rebuilt: rebuilt,
            ..LoadOutcome::default()
        };
        if pos < file_len {
            if zero_tail {
                outcome.zero_tail_bytes = (file_len - pos) as u64;
            } else {
                outcome.truncated_bytes = (file_len - pos) as u64;
                outcome.invalid_reason = reason;
            }
            if !self.writable || !zero_tail {
                // Keep the file equal to its valid bytes; a writable segment's zero tail stays allocated.
                let path = log_path(&self.dir, self.base_offset);
                self.file.set_len(pos as u64).at(&path)?;
                self.allocated = pos;
            }
        }
        Ok(Some(outcome))
    }

    /// Per-batch index maintenance, shared by append and recovery (Kafka's rule: an entry once
    /// more than index.interval.bytes were written since the previous one).
    fn index_batch(&mut self, h: &RecordBatchHeader, pos: usize) {
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.last_offset();
        }
        if self.bytes_since_last_index > self.index_interval {
            let rel = u32::try_from(h.last_offset() - self.base_offset).unwrap_or(u32::MAX);
            let rel_max =
                u32::try_from(self.offset_of_max_timestamp - self.base_offset).unwrap_or(0);
            let pos = u32::try_from(pos).unwrap_or(u32::MAX);
            self.offset_index.append(rel, pos);
            self.time_index.maybe_append(self.max_timestamp, rel_max);
            self.bytes_since_last_index = 0;
            self.index_dirty = true;
        }
        self.bytes_since_last_index += h.total_size();
    }
}

/// The virtual size of an active segment's mapping.
pub(crate) fn segment_capacity(config: &LogConfig) -> usize {
    usize::try_from(config.segment_bytes)
        .unwrap_or(MAX_SEGMENT_BYTES)
        .clamp(BATCH_HEADER_LEN, MAX_SEGMENT_BYTES)
}

/// What one append into a segment assigned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentAppend {
    pub(crate) last_offset: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) offset_of_max_timestamp: i64,
}

/// Batches found by a segment read.
#[derive(Debug, Clone)]
pub(crate) struct SegmentRead {
    pub(crate) records: Bytes,
    pub(crate) first_offset: i64,
    pub(crate) next_offset: i64,
}

impl LogSegment {
    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// One past the last offset in this segment (the base offset when empty).
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub(crate) fn max_timestamp(&self) -> Option<(i64, i64)> {
        (self.offset_of_max_timestamp >= 0)
            .then_some((self.offset_of_max_timestamp, self.max_timestamp))
    }

    /// A zero-copy view of every committed byte (the cleaner reads it without the log lock).
    pub(crate) fn snapshot(&self) -> Bytes {
        if self.size == 0 {
            return Bytes::new();
        }
        Bytes::from_owner(MapSlice {
            map: Arc::clone(&self.map),
            start: 0,
            len: self.size,
        })
    }

    /// The committed bytes, for this crate's own short-lived scans.
    fn data(&self) -> &[u8] {
        // SAFETY: [0, size) is committed, inside the mapping and the file; it is not mutated
        // while `&self` is borrowed (writers need `&mut self` and only write past `size`).
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr(), self.size)
        }
    }

    /// Headers of the committed batches from byte `pos` on.
    pub(crate) fn headers_from(
        &self,
        pos: usize,
    ) -> impl Iterator<Item = (usize, RecordBatchHeader)> + '_ {
        let data = self.data();
        let mut pos = pos;
        std::iter::from_fn(move || {
            let h = batch_at(data, pos)?;
            let at = pos;
            pos += h.total_size();
            Some((at, h))
        })
    }

    /// Position and header of the first batch whose last offset is >= `offset`.
    pub(crate) fn find_batch(&self, offset: i64) -> Option<(usize, RecordBatchHeader)> {
        let rel = u32::try_from(offset.saturating_sub(self.base_offset).max(0)).unwrap_or(u32::MAX);
        let start = self
            .offset_index
            .lookup(rel)
            .map_or(0, |(_, pos)| pos as usize);
        self.headers_from(start)
            .find(|(_, h)| h.last_offset() >= offset)
    }

    /// Kafka's roll conditions for an append of `len` bytes ending at `last_offset`.
    pub(crate) fn should_roll(
        &self,
        len: usize,
        max_timestamp: i64,
        last_offset: i64,
        now_ms: i64,
        config: &LogConfig,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        let jitter = jitter_ms(self.base_offset, config.segment_jitter_ms);
        let waited = match self.rolling_timestamp {
            Some(first) => max_timestamp.saturating_sub(first),
            None => now_ms.saturating_sub(self.created_ms),
        };
        self.size.saturating_add(len) > segment_capacity(config)
            || waited > config.segment_ms.saturating_sub(jitter)
            || self.offset_index.is_full()
            || self.time_index.is_full()
            || last_offset.saturating_sub(self.base_offset) > i64::from(i32::MAX)
            || !self.writable
    }

    /// Copies `batches` (validated, whole batches holding `total_size` bytes) into the mapping
    /// in one memcpy, then patches offsets, leader epoch and LogAppendTime in place.
    pub(crate) fn append(
        &mut self,
        batches: &[u8],
        leader_epoch: i32,
        log_append_time: Option<i64>,
    ) -> Result<SegmentAppend, LogError> {
        let path = log_path(&self.dir, self.base_offset);
        let len = batches.len();
        let end = self
            .size
            .checked_add(len)
            .filter(|&e| e <= self.map.len() && self.writable)
            .ok_or_else(|| LogError::Corrupt {
                path: path.display().to_string(),
                reason: format!(
                    "expected room for {len} bytes after {} in a writable segment",
                    self.size
                ),
            })?;
        if end > self.allocated {
            let chunk = if self.preallocate_all() {
                self.map.len()
            } else {
                ALLOC_CHUNK
            };
            let target = end
                .div_ceil(chunk)
                .saturating_mul(chunk)
                .min(self.map.len());
            file_alloc::allocate(&self.file, self.allocated as u64, target as u64).at(&path)?;
            // Fault the new chunk in, writable, with one madvise instead of one page fault
            // per 4 KiB page inside the copy below (a third of produce CPU in the profile).
            // Best effort: kernels before 5.14 do not know MADV_POPULATE_WRITE.
            #[cfg(target_os = "linux")]
            if let Err(e) = self.map.advise_range(
                memmap2::Advice::PopulateWrite,
                self.allocated,
                target - self.allocated,
            ) {
                tracing::debug!(error = %e, "MADV_POPULATE_WRITE not applied");
            }
            self.allocated = target;
        }
        // SAFETY: [size, end) lies inside the mapping and inside allocated file blocks (so no
        // SIGBUS). These bytes are past the committed size, so no reader slice covers them, and
        // `&mut self` excludes other writers; the &mut slice ends before `size` is published.
        #[allow(unsafe_code)]
        let dst: &mut [u8] = unsafe {
            let ptr = self.map.as_mut_ptr().add(self.size);
            std::ptr::copy_nonoverlapping(batches.as_ptr(), ptr, len);
            std::slice::from_raw_parts_mut(ptr, len)
        };
        let mut next = self.next_offset;
        let mut at = 0usize;
        let mut max_ts = (-1i64, -1i64);
        while at < len {
            let h = RecordBatchHeader::parse(dst.get(at..).unwrap_or_default()).map_err(|e| {
                LogError::InvalidBatch {
                    position: at,
                    reason: e.to_string(),
                }
            })?;
            // Exactly one batch: set_log_append_time recomputes the CRC over the whole slice.
            let batch =
                dst.get_mut(at..at + h.total_size())
                    .ok_or_else(|| LogError::InvalidBatch {
                        position: at,
                        reason: format!(
                            "expected {} bytes of batch, found {}",
                            h.total_size(),
                            len - at
                        ),
                    })?;
            record_batch::set_base_offset(batch, next);
            record_batch::set_partition_leader_epoch(batch, leader_epoch);
            if let Some(ts) = log_append_time {
                record_batch::set_log_append_time(batch, ts);
            }
            let h = RecordBatchHeader {
                base_offset: next,
                max_timestamp: log_append_time.unwrap_or(h.max_timestamp),
                ..h
            };
            if h.max_timestamp > max_ts.1 {
                max_ts = (h.last_offset(), h.max_timestamp);
            }
            if self.rolling_timestamp.is_none() {
                self.rolling_timestamp = Some(h.max_timestamp);
            }
            self.index_batch(&h, self.size + at);
            next = h.last_offset() + 1;
            at += h.total_size();
        }
        self.size = end;
        self.next_offset = next;
        Ok(SegmentAppend {
            last_offset: next - 1,
            max_timestamp: max_ts.1,
            offset_of_max_timestamp: max_ts.0,
        })
    }

    fn preallocate_all(&self) -> bool {
        self.preallocate
    }

    /// Zero-copy read of whole batches starting at the one containing `start_offset`.
    pub(crate) fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Option<SegmentRead> {
        let (start, first) = self.find_batch(start_offset)?;
        let mut end = start;
        let mut next_offset = first.base_offset;
        for (pos, h) in self.headers_from(start) {
            if h.last_offset() >= max_offset {
                break;
            }
            let new_end = pos + h.total_size();
            if new_end - start > max_bytes && !(min_one_batch && end == start) {
                break;
            }
            end = new_end;
            next_offset = h.last_offset() + 1;
        }
        let records = if end > start {
            Bytes::from_owner(MapSlice {
                map: Arc::clone(&self.map),
                start,
                len: end - start,
            })
        } else {
            Bytes::new()
        };
        Some(SegmentRead {
            records,
            first_offset: first.base_offset,
            next_offset,
        })
    }

    /// First batch whose max timestamp is >= `ts`: (its base offset, its max timestamp).
    pub(crate) fn find_by_timestamp(&self, ts: i64) -> Option<(i64, i64)> {
        if self.max_timestamp < ts {
            return None;
        }
        let start = self
            .time_index
            .lookup(ts)
            .and_then(|(_, rel)| self.offset_index.lookup(rel))
            .map_or(0, |(_, pos)| pos as usize);
        self.headers_from(start)
            .find(|(_, h)| h.max_timestamp >= ts)
            .map(|(_, h)| (h.base_offset, h.max_timestamp))
    }

    /// Makes the segment read-only: trims the file and indexes to their real sizes.
    pub(crate) fn seal(&mut self) -> Result<(), LogError> {
        if !self.writable {
            return Ok(());
        }
        let path = log_path(&self.dir, self.base_offset);
        // Only bytes past `size` go, which no reader slice covers.
        self.file.set_len(self.size as u64).at(&path)?;
        self.allocated = self.size;
        self.offset_index.trim()?;
        self.time_index.trim()?;
        self.writable = false;
        self.index_dirty = true;
        Ok(())
    }

    /// What a lock-free flush must sync: a duplicate of the file handle and the mapping, and
    /// the unflushed byte range (None when everything is flushed).
    pub(crate) fn pending_flush(&self) -> Result<Option<crate::flush::FlushPart>, LogError> {
        if self.flushed >= self.size {
            return Ok(None);
        }
        let path = log_path(&self.dir, self.base_offset);
        Ok(Some(crate::flush::FlushPart {
            base_offset: self.base_offset,
            file: self.file.try_clone().at(&path)?,
            map: Arc::clone(&self.map),
            from: self.flushed,
            to: self.size,
            path,
        }))
    }

    /// Records that bytes up to `to` reached disk (a lock-free flush finished).
    pub(crate) fn mark_flushed(&mut self, to: usize) {
        self.flushed = self.flushed.max(to.min(self.size));
    }

    /// msync + fsync of everything written since the last flush.
    pub(crate) fn flush(&mut self) -> Result<(), LogError> {
        let path = log_path(&self.dir, self.base_offset);
        if self.flushed < self.size {
            self.map
                .flush_range(self.flushed, self.size - self.flushed)
                .at(&path)?;
            self.file.sync_data().at(&path)?;
            self.flushed = self.size;
        }
        if self.index_dirty {
            self.offset_index.flush()?;
            self.time_index.flush()?;
            self.index_dirty = false;
        }
        Ok(())
    }

    /// Drops every batch whose last offset is >= `offset` and reopens the segment for appends.
    /// When readers still hold slices of the mapping, the kept prefix is written to a new file
    /// that replaces the old one, so their bytes never change under them.
    pub(crate) fn truncate_to(
        &mut self,
        offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let cut = self.find_batch(offset).map_or(self.size, |(pos, _)| pos);
        let path = log_path(&self.dir, self.base_offset);
        if cut < self.size && Arc::strong_count(&self.map) > 1 {
            let tmp = self
                .dir
                .join(format!("{}.log.truncating", file_stem(self.base_offset)));
            let mut out = File::create(&tmp).at(&tmp)?;
            out.write_all(self.data().get(..cut).unwrap_or_default())
                .at(&tmp)?;
            out.sync_all().at(&tmp)?;
            std::fs::rename(&tmp, &path).at(&path)?;
        } else {
            // Unshared: cutting in place is safe, our own mapping is not read past `cut` again.
            self.file.set_len(cut as u64).at(&path)?;
        }
        let mode = LoadMode {
            crc_from_offset: i64::MAX,
            writable: true,
        };
        let (mut seg, _) = LogSegment::load(&self.dir, self.base_offset, config, mode, now_ms)?;
        seg.index_dirty = true;
        seg.flushed = 0;
        *self = seg;
        Ok(())
    }

    /// Unlinks the segment's files. Readers' mappings keep the data alive until they finish.
    pub(crate) fn delete(self) -> Result<(), LogError> {
        delete_files(&self.dir, self.base_offset)
    }
}

/// Unlinks a segment's `.index` and `.timeindex` (they are rebuilt when missing).
pub(crate) fn delete_index_files(dir: &Path, base_offset: i64) -> Result<(), LogError> {
    for path in [
        index_path(dir, base_offset),
        time_index_path(dir, base_offset),
    ] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::io(&path, e)),
        }
    }
    Ok(())
}

/// Unlinks a segment's `.log`, `.index` and `.timeindex`, ignoring ones already gone.
pub(crate) fn delete_files(dir: &Path, base_offset: i64) -> Result<(), LogError> {
    for path in [
        log_path(dir, base_offset),
        index_path(dir, base_offset),
        time_index_path(dir, base_offset),
    ] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::io(&path, e)),
        }
    }
    Ok(())
}

/// A per-segment jitter in [0, jitter_ms), derived from the base offset so it is stable
/// across restarts (Kafka draws it at random per segment).
fn jitter_ms(base_offset: i64, jitter_ms: i64) -> i64 {
    if jitter_ms <= 0 {
        return 0;
    }
    let mut x = base_offset as u64 ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x % jitter_ms as u64) as i64
}
