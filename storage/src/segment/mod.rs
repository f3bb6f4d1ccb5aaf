//! A LogSegment: one `.log` file of whole record batches plus its `.index` and `.timeindex`.
//! This module holds the segment and its zero-copy read side; `load` brings a segment up from
//! disk (validating and cutting it), `writer` appends to the active segment, flushes and seals it.
//! Appends go through `pwrite` into blocks reserved ahead with `fallocate`; the shared mapping
//! serves reads (the page cache is one, so readers see written bytes without msync).

mod load;
mod writer;
pub use writer::SealWork;
pub(crate) use writer::{ReservedWrite, TrimFile};

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{Advice, MmapRaw};

use crate::error::LogError;
use crate::index::{OffsetIndex, TimeIndex};
use crate::LogConfig;
use strata_protocol::record_batch::{RecordBatchHeader, BATCH_HEADER_LEN};

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

/// Where a read's records lie in their segment file, so that a sender can have the kernel copy
/// them from the page cache to a socket (sendfile) instead of writing them from the mapping.
/// The bytes at `position` are the read's `records`, committed and never rewritten in place
/// while the records' mapping slice is alive (see `MapSlice`); a sender keeps that slice
/// alongside, both to uphold this and to fall back to it.
#[derive(Debug, Clone)]
pub struct FileRegion {
    pub file: Arc<File>,
    pub position: u64,
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
    /// Shared with readers that send records straight from the file (`FileRegion`).
    file: Arc<File>,
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

/// Sealed segments are read front to back by consumers catching up (or by the cleaner and
/// recovery), so their mappings get MADV_SEQUENTIAL: larger readahead on faults, and pages
/// read through them are not promoted in the page cache, so a one-off scan of old data does
/// not push the hot tail out. MADV_WILLNEED on the bytes after each read was tried and
/// dropped: on cached data it costs ~17 ns a page (the 1 MiB read bench went from 1.1 to
/// 19 us) for readahead that faults on a VM_SEQ_READ mapping start anyway. The active
/// segment keeps the default: its readers tail what was just written (already cached), and
/// those pages should count as recently used.
fn advise_sealed(map: &MmapRaw) {
    if let Err(e) = map.advise(Advice::Sequential) {
        tracing::debug!(error = %e, "MADV_SEQUENTIAL not applied");
    }
}

/// The virtual size of an active segment's mapping.
pub(crate) fn segment_capacity(config: &LogConfig) -> usize {
    usize::try_from(config.segment_bytes)
        .unwrap_or(MAX_SEGMENT_BYTES)
        .clamp(BATCH_HEADER_LEN, MAX_SEGMENT_BYTES)
}

/// Batches found by a segment read.
#[derive(Debug, Clone)]
pub(crate) struct SegmentRead {
    pub(crate) records: Bytes,
    /// Where `records` start in the segment file.
    pub(crate) region: Option<FileRegion>,
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

    /// What time-based retention ages the segment by: its largest record timestamp, or for a
    /// segment with no records (emptied by the cleaner) when it was created or loaded, as
    /// Kafka falls back to the file's modification time.
    pub(crate) fn largest_timestamp(&self) -> i64 {
        self.max_timestamp().map_or(self.created_ms, |(_, ts)| ts)
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
        let (records, region) = if end > start {
            let records = Bytes::from_owner(MapSlice {
                map: Arc::clone(&self.map),
                start,
                len: end - start,
            });
            let region = FileRegion {
                file: Arc::clone(&self.file),
                position: start as u64,
            };
            (records, Some(region))
        } else {
            (Bytes::new(), None)
        };
        Some(SegmentRead {
            records,
            region,
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

    /// Unlinks the segment's files. Readers' mappings keep the data alive until they finish.
    pub(crate) fn delete(self) -> Result<(), LogError> {
        delete_files(&self.dir, self.base_offset)
    }
}

/// A segment's files as retention leaves them: `<name>.log.deleted` and so on.
pub(crate) fn deleted_paths(dir: &Path, base_offset: i64) -> [PathBuf; 3] {
    [
        log_path(dir, base_offset),
        index_path(dir, base_offset),
        time_index_path(dir, base_offset),
    ]
    .map(|p| {
        let mut name = p.into_os_string();
        name.push(".deleted");
        PathBuf::from(name)
    })
}

/// Renames a segment's files to their `.deleted` names (a missing index is fine: it is
/// rebuilt when needed, so it may never have been written).
pub(crate) fn rename_to_deleted(dir: &Path, base_offset: i64) -> Result<(), LogError> {
    let live = [
        log_path(dir, base_offset),
        index_path(dir, base_offset),
        time_index_path(dir, base_offset),
    ];
    for (from, to) in live.iter().zip(deleted_paths(dir, base_offset)) {
        match std::fs::rename(from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::io(from, e)),
        }
    }
    Ok(())
}

/// Unlinks each of `paths`, ignoring ones already gone.
pub(crate) fn remove_files<P: AsRef<Path>>(paths: &[P]) -> Result<(), LogError> {
    for path in paths {
        let path = path.as_ref();
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::io(path, e)),
        }
    }
    Ok(())
}

/// Unlinks a segment's `.index` and `.timeindex` (they are rebuilt when missing).
pub(crate) fn delete_index_files(dir: &Path, base_offset: i64) -> Result<(), LogError> {
    remove_files(&[
        index_path(dir, base_offset),
        time_index_path(dir, base_offset),
    ])
}

/// Unlinks a segment's `.log`, `.index` and `.timeindex`, ignoring ones already gone.
pub(crate) fn delete_files(dir: &Path, base_offset: i64) -> Result<(), LogError> {
    remove_files(&[
        log_path(dir, base_offset),
        index_path(dir, base_offset),
        time_index_path(dir, base_offset),
    ])
}
