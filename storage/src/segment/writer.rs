//! The active segment's writer: appends, roll conditions, sealing, flushing and truncation.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::path::Path;
use std::sync::Arc;

use super::{
    file_stem, index_path, log_path, segment_capacity, time_index_path, LoadMode, LogSegment,
};
use crate::error::{IoContext, LogError};
use crate::file_alloc;
use crate::index::IndexGrowth;
use crate::LogConfig;
use strata_protocol::record_batch::{self, RecordBatchHeader, BATCH_HEADER_LEN};

/// Blocks are allocated ahead of the write position in steps of 64 KiB doubling with the
/// segment up to 16 MiB (`file_alloc::grown_size`; capped at the segment size): a thousand
/// partitions with a record each hold 64 MiB of blocks, not 16 GiB.
const ALLOC_STEPS: (usize, usize) = (64 * 1024, 16 * 1024 * 1024);

/// Batches written by one `pwritev` (two iovecs each: the patched header, then the records).
const BATCHES_PER_WRITE: usize = 32;
/// Kafka's v2 layout: the CRC32C sits at byte 17 and covers bytes 21.. (attributes onwards).
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;

/// The whole batch at `at` of `batches`.
fn whole_batch(batches: &[u8], at: usize) -> Result<&[u8], LogError> {
    let rest = batches.get(at..).unwrap_or_default();
    let h = RecordBatchHeader::parse(rest).map_err(|e| LogError::InvalidBatch {
        position: at,
        reason: e.to_string(),
    })?;
    rest.get(..h.total_size())
        .ok_or_else(|| LogError::InvalidBatch {
            position: at,
            reason: format!(
                "expected {} bytes of batch, found {}",
                h.total_size(),
                rest.len()
            ),
        })
}

/// Copies `batch`'s header into `header` and patches it as stored: base offset, partition
/// leader epoch and, for LogAppendTime, the timestamp type, max timestamp and CRC (computed
/// over the patched header and the untouched records). Returns the parsed header and the
/// records that follow it.
fn patch_header<'a>(
    batch: &'a [u8],
    header: &mut [u8; BATCH_HEADER_LEN],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) -> Option<(RecordBatchHeader, &'a [u8])> {
    let (head, body) = batch.split_at_checked(BATCH_HEADER_LEN)?;
    header.copy_from_slice(head);
    record_batch::set_base_offset(header, base_offset);
    record_batch::set_partition_leader_epoch(header, leader_epoch);
    if let Some(ts) = log_append_time {
        record_batch::set_log_append_time(header, ts);
        let crc = record_batch::crc32c_parts(&[header.get(CRC_FROM..)?, body]);
        header
            .get_mut(CRC_AT..CRC_FROM)?
            .copy_from_slice(&crc.to_be_bytes());
    }
    let h = RecordBatchHeader::parse(batch).ok()?;
    Some((RecordBatchHeader { base_offset, ..h }, body))
}

/// What one append into a segment assigned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentAppend {
    pub(crate) last_offset: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) offset_of_max_timestamp: i64,
}

/// Room reserved past a segment's committed end for one append. Its bytes are written
/// through a handle of the file, needing nothing else of the segment, so the log's lock need
/// not be held for the copy: readers of committed bytes never wait for a write.
#[derive(Debug)]
pub(crate) struct ReservedWrite {
    file: Arc<File>,
    position: usize,
    len: usize,
    /// The offset the first batch gets.
    next_offset: i64,
    /// Disk blocks to reserve first: [from, to) of the file.
    allocate: Option<(usize, usize)>,
    /// The offset and time indexes' next blocks, when this append may need them: reserved
    /// with the log's, outside the lock.
    index_growth: [Option<IndexGrowth>; 2],
    /// A follower's copy of its leader's batches: base offsets and leader epochs stay as
    /// sent (offsets may leave gaps where the leader's cleaner removed batches).
    pub(crate) keep_as_sent: bool,
}

impl ReservedWrite {
    /// Writes the batches with `pwritev`: each batch goes out as its header, patched on the
    /// stack (offsets, leader epoch, LogAppendTime), and its records as the producer sent
    /// them. Nothing is copied in user space and no page of the mapping is faulted for
    /// writing: the kernel copies once into the page cache, which the read mapping shares.
    /// `batches` must be the ones the reservation was made for; a batch that does not parse
    /// (which validation rules out) fails as `InvalidData`.
    pub(crate) fn write(
        &self,
        batches: &[u8],
        leader_epoch: i32,
        log_append_time: Option<i64>,
    ) -> io::Result<()> {
        let invalid = |at: usize| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected a whole record batch at byte {at} of an append"),
            )
        };
        let len = batches.len();
        if len != self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("expected {} bytes of batches, found {len}", self.len),
            ));
        }
        if let Some((from, to)) = self.allocate {
            file_alloc::allocate(&self.file, from as u64, to as u64)?;
        }
        for growth in self.index_growth.iter().flatten() {
            growth.run();
        }
        let mut headers = [[0u8; BATCH_HEADER_LEN]; BATCHES_PER_WRITE];
        let mut records: [&[u8]; BATCHES_PER_WRITE] = [&[]; BATCHES_PER_WRITE];
        let mut next = self.next_offset;
        let mut at = 0usize;
        while at < len {
            let group_at = at;
            let mut n = 0;
            for (header, rest) in headers.iter_mut().zip(records.iter_mut()) {
                if at >= len {
                    break;
                }
                let batch = whole_batch(batches, at).map_err(|_| invalid(at))?;
                let (base, epoch) = if self.keep_as_sent {
                    let sent = RecordBatchHeader::parse(batch).map_err(|_| invalid(at))?;
                    (sent.base_offset, sent.partition_leader_epoch)
                } else {
                    (next, leader_epoch)
                };
                let (h, body) = patch_header(batch, header, base, epoch, log_append_time)
                    .ok_or_else(|| invalid(at))?;
                *rest = body;
                next = h.last_offset() + 1;
                at += h.total_size();
                n += 1;
            }
            let mut slices: [IoSlice<'_>; 2 * BATCHES_PER_WRITE] =
                [IoSlice::new(&[]); 2 * BATCHES_PER_WRITE];
            for ((pair, header), body) in slices
                .chunks_exact_mut(2)
                .zip(&headers)
                .zip(&records)
                .take(n)
            {
                if let [h, b] = pair {
                    *h = IoSlice::new(header);
                    *b = IoSlice::new(body);
                }
            }
            let slices = slices.get_mut(..2 * n).unwrap_or_default();
            file_alloc::write_all_vectored_at(
                &self.file,
                slices,
                (self.position + group_at) as u64,
            )?;
        }
        Ok(())
    }
}

impl LogSegment {
    /// Creates an empty active segment at `base_offset`, replacing leftovers of the same name.
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        Self::create_with(dir, base_offset, config, now_ms, false)
    }

    /// As `create`, but refusing to replace an existing segment file: a roll planned under
    /// a lock and carried out without it can never truncate a live segment.
    pub(crate) fn create_new(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        Self::create_with(dir, base_offset, config, now_ms, true)
    }

    fn create_with(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        exclusive: bool,
    ) -> Result<Self, LogError> {
        let path = log_path(dir, base_offset);
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(!exclusive)
            .create_new(exclusive)
            .open(&path)
            .at(&path)?;
        let _ = std::fs::remove_file(index_path(dir, base_offset));
        let _ = std::fs::remove_file(time_index_path(dir, base_offset));
        let mode = LoadMode {
            crc_from_offset: i64::MAX,
            writable: true,
        };
        match Self::load(dir, base_offset, config, mode, now_ms) {
            Ok((mut seg, _)) => {
                seg.created_ms = now_ms;
                Ok(seg)
            }
            Err(e) => {
                // Created exclusively, the files are ours: leave none behind (a full disk
                // fails in `load`'s fallocate), so the retry finds the name free.
                if exclusive {
                    let _ = super::delete_files(dir, base_offset);
                }
                Err(e)
            }
        }
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

    /// Reserves `len` bytes past the committed end (the disk blocks are allocated by the
    /// write). Nothing becomes visible to readers until `commit`.
    pub(crate) fn reserve(&mut self, len: usize) -> Result<ReservedWrite, LogError> {
        // The path is for error messages only: built on failure, not per append.
        let path = || log_path(&self.dir, self.base_offset);
        let end = self
            .size
            .checked_add(len)
            .filter(|&e| e <= self.map.len() && self.writable)
            .ok_or_else(|| LogError::Corrupt {
                path: path().display().to_string(),
                reason: format!(
                    "expected room for {len} bytes after {} in a writable segment",
                    self.size
                ),
            })?;
        // Blocks past the allocated end are reserved by the write, before its first byte (a
        // full disk fails there, cleanly), so the state lock is not held for `fallocate`.
        let allocate = (end > self.allocated).then(|| {
            let target = if self.preallocate_all() {
                self.map.len()
            } else {
                file_alloc::grown_size(self.allocated, end, ALLOC_STEPS, self.map.len())
            };
            (self.allocated, target)
        });
        // An append adds at most one index entry per batch, and only past each
        // `index.interval.bytes` of log.
        let entries = len / self.index_interval.max(1) + 2;
        Ok(ReservedWrite {
            file: Arc::clone(&self.file),
            position: self.size,
            len,
            next_offset: self.next_offset,
            keep_as_sent: false,
            allocate,
            index_growth: [
                self.offset_index.plan_growth(entries),
                self.time_index.plan_growth(entries),
            ],
        })
    }

    /// Publishes a reserved write whose bytes are all in the file: offsets, index entries and
    /// the committed size move together. Refused when the segment moved on since `reserve`.
    pub(crate) fn commit(
        &mut self,
        reserved: &ReservedWrite,
        batches: &[u8],
        log_append_time: Option<i64>,
    ) -> Result<SegmentAppend, LogError> {
        if reserved.position != self.size
            || reserved.next_offset != self.next_offset
            || reserved.len != batches.len()
            || !Arc::ptr_eq(&reserved.file, &self.file)
        {
            return Err(LogError::Corrupt {
                path: log_path(&self.dir, self.base_offset).display().to_string(),
                reason: format!(
                    "expected the write reserved at byte {} to be committed next, found the segment at byte {}",
                    reserved.position, self.size
                ),
            });
        }
        let [offsets, times] = &reserved.index_growth;
        if let Some(growth) = offsets {
            self.offset_index.grown(growth);
        }
        if let Some(growth) = times {
            self.time_index.grown(growth);
        }
        let mut next = self.next_offset;
        let mut at = 0usize;
        let mut max_ts = (-1i64, -1i64);
        while let Some(h) = super::batch_at(batches, at) {
            let h = RecordBatchHeader {
                base_offset: if reserved.keep_as_sent {
                    h.base_offset
                } else {
                    next
                },
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
        self.size += reserved.len;
        self.next_offset = next;
        if let Some((_, to)) = reserved.allocate {
            self.allocated = self.allocated.max(to);
        }
        Ok(SegmentAppend {
            last_offset: next - 1,
            max_timestamp: max_ts.1,
            offset_of_max_timestamp: max_ts.0,
        })
    }

    fn preallocate_all(&self) -> bool {
        self.preallocate
    }

    /// Makes the segment read-only: trims the file and indexes to their real sizes.
    pub(crate) fn seal(&mut self) -> Result<(), LogError> {
        self.seal_in_memory().run()
    }

    /// The in-memory half of `seal`: no more appends, sizes fixed. The returned work trims
    /// the files; it needs no access to the segment, and no reader looks past the bytes kept.
    pub(crate) fn seal_in_memory(&mut self) -> SealWork {
        if !self.writable {
            return SealWork::default();
        }
        self.writable = false;
        self.allocated = self.size;
        self.index_dirty = true;
        SealWork {
            trims: vec![
                TrimFile {
                    file: Arc::clone(&self.file),
                    len: self.size as u64,
                    path: log_path(&self.dir, self.base_offset),
                },
                self.offset_index.seal(),
                self.time_index.seal(),
            ],
            map: Some(Arc::clone(&self.map)),
        }
    }

    /// What a lock-free flush must sync: a duplicate of the file handle and the unflushed byte
    /// range (None when everything is flushed).
    pub(crate) fn pending_flush(&self) -> Result<Option<crate::flush::FlushPart>, LogError> {
        if self.flushed >= self.size {
            return Ok(None);
        }
        let path = log_path(&self.dir, self.base_offset);
        Ok(Some(crate::flush::FlushPart {
            base_offset: self.base_offset,
            file: self.file.try_clone().at(&path)?,
            to: self.size,
            path,
        }))
    }

    /// Records that bytes up to `to` reached disk (a lock-free flush finished).
    pub(crate) fn mark_flushed(&mut self, to: usize) {
        self.flushed = self.flushed.max(to.min(self.size));
    }

    /// fdatasync of everything written since the last flush (appends are pwrites: no mapped
    /// page is dirty, so no msync is needed).
    pub(crate) fn flush(&mut self) -> Result<(), LogError> {
        let path = log_path(&self.dir, self.base_offset);
        if self.flushed < self.size {
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

/// A file to cut to `len` bytes.
#[derive(Debug)]
pub(crate) struct TrimFile {
    pub(crate) file: Arc<File>,
    pub(crate) len: u64,
    pub(crate) path: std::path::PathBuf,
}

impl TrimFile {
    pub(crate) fn cut(&self) -> Result<(), LogError> {
        self.file.set_len(self.len).at(&self.path)
    }
}

/// Trimming a sealed segment's files to what they hold (their preallocated tails go) and
/// advising the kernel of its read pattern; see [`LogSegment::seal_in_memory`].
#[derive(Debug, Default)]
#[must_use = "the sealed segment's files keep their preallocated tails until this runs"]
pub struct SealWork {
    trims: Vec<TrimFile>,
    map: Option<Arc<memmap2::MmapRaw>>,
}

impl SealWork {
    /// Cuts the files. A failure leaves a zero tail that recovery cuts on the next start.
    pub fn run(self) -> Result<(), LogError> {
        for trim in &self.trims {
            trim.cut()?;
        }
        if let Some(map) = &self.map {
            super::advise_sealed(map);
        }
        Ok(())
    }
}
