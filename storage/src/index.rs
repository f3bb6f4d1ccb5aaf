//! Sparse, memory-mapped segment indexes in Kafka's format: `.index` maps a relative offset to
//! a byte position (u32, u32 big-endian), `.timeindex` a timestamp to a relative offset
//! (i64, u32). Active indexes are mapped at `segment.index.bytes`, their blocks allocated in
//! growing steps as entries arrive (Kafka's index files are sparse instead, and a store into a
//! sparse page on a full disk is a SIGBUS), and trimmed on roll.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use memmap2::{Advice, MmapMut, MmapOptions};

use crate::error::{IoContext, LogError};
use crate::file_alloc;
use crate::segment::TrimFile;

/// One mapped index file holding `entries` fixed-size entries, with room for `capacity`.
#[derive(Debug)]
struct MappedIndex {
    path: PathBuf,
    file: Arc<File>,
    map: MmapMut,
    entry_size: usize,
    entries: usize,
    capacity: usize,
    /// Bytes of the file allocated on disk (its length): entries are stored below it only.
    allocated: usize,
}

/// Blocks an index will need soon, [from, to) of its file, allocated by the append that
/// planned them outside the log's lock. If the allocation fails (a full disk) the index
/// keeps its old size, and the entry that needed the room is skipped as before.
#[derive(Debug)]
pub(crate) struct IndexGrowth {
    file: Arc<File>,
    from: usize,
    to: usize,
    done: AtomicBool,
}

impl IndexGrowth {
    pub(crate) fn run(&self) {
        match file_alloc::allocate(&self.file, self.from as u64, self.to as u64) {
            Ok(()) => self.done.store(true, Ordering::Release),
            Err(e) => {
                tracing::debug!(error = %e, "index blocks not reserved ahead; the append will try again")
            }
        }
    }
}

/// Index blocks are allocated a page at first, then in steps that double with the index up
/// to 1 MiB (`file_alloc::grown_size`): a partition's two active indexes hold 8 KiB until it
/// has data, not 20 MiB.
const INDEX_STEPS: (usize, usize) = (4096, 1024 * 1024);

impl MappedIndex {
    /// Opens (creating if needed) `path`. Existing entries are kept when `keep` is true; a
    /// writable index gets room up to `max_bytes`, a sealed one exactly its entries.
    fn open(
        path: &Path,
        entry_size: usize,
        max_bytes: u32,
        keep: bool,
        writable: bool,
    ) -> Result<Self, LogError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(!keep)
            .open(path)
            .at(path)?;
        let len = usize::try_from(file.metadata().at(path)?.len()).unwrap_or(usize::MAX);
        if len % entry_size != 0 {
            return Err(LogError::Corrupt {
                path: path.display().to_string(),
                reason: format!("expected a multiple of {entry_size} bytes, found {len}"),
            });
        }
        let entries = len / entry_size;
        let max_entries = (max_bytes as usize / entry_size).max(1);
        let capacity = if writable {
            max_entries.max(entries)
        } else {
            entries
        };
        let allocated = if writable {
            let first = len.max(INDEX_STEPS.0.min(capacity * entry_size));
            file_alloc::allocate(&file, len as u64, first as u64).at(path)?;
            first
        } else {
            len
        };
        // SAFETY: the file is ours (one Log per directory, guarded by the broker's mutex) and is
        // never shrunk below the mapped length while this mapping lives, except by `trim`, which
        // then forbids further access beyond the kept entries.
        #[allow(unsafe_code)]
        let map =
            unsafe { MmapOptions::new().len(capacity * entry_size).map_mut(&file) }.at(path)?;
        // Lookups are binary searches and appends touch one new page now and then: without
        // this, each first touch of a page of the preallocated file ran the kernel's read-ahead
        // over the unwritten blocks ahead (page allocation and zeroing: ~7% of the broker's CPU
        // under produce load).
        if let Err(e) = map.advise(Advice::Random) {
            tracing::debug!(path = %path.display(), error = %e, "MADV_RANDOM not applied");
        }
        Ok(MappedIndex {
            path: path.to_owned(),
            file: Arc::new(file),
            map,
            entry_size,
            entries,
            capacity,
            allocated,
        })
    }

    fn entry(&self, i: usize) -> Option<&[u8]> {
        if i >= self.entries {
            return None;
        }
        self.map.get(i * self.entry_size..(i + 1) * self.entry_size)
    }

    fn push(&mut self, bytes: &[u8]) -> bool {
        if self.entries >= self.capacity {
            return false;
        }
        let at = self.entries * self.entry_size;
        if at + self.entry_size > self.allocated && !self.grow() {
            return false;
        }
        match self.map.get_mut(at..at + self.entry_size) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.entries += 1;
                true
            }
            None => false,
        }
    }

    /// Largest index i such that `le(entry i)`, assuming `le` is monotone (true then false).
    fn search(&self, le: impl Fn(&[u8]) -> bool) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).is_some_and(&le) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    fn truncate_entries(&mut self, n: usize) {
        if n < self.entries {
            if let Some(tail) = self
                .map
                .get_mut(n * self.entry_size..self.entries * self.entry_size)
            {
                tail.fill(0);
            }
            self.entries = n;
        }
    }

    /// The next allocation step, when fewer than `more` entries fit in what is allocated:
    /// an append plans it under the log's lock and runs it (`IndexGrowth::run`) without,
    /// so the lock is not held for `fallocate`.
    fn plan_growth(&self, more: usize) -> Option<IndexGrowth> {
        let needed = (self.entries + more).min(self.capacity) * self.entry_size;
        if needed <= self.allocated {
            return None;
        }
        let to = file_alloc::grown_size(
            self.allocated,
            needed,
            INDEX_STEPS,
            self.capacity * self.entry_size,
        );
        (to > self.allocated).then(|| IndexGrowth {
            file: Arc::clone(&self.file),
            from: self.allocated,
            to,
            done: AtomicBool::new(false),
        })
    }

    /// Takes a growth that ran: its blocks are there, entries may use them.
    fn grown(&mut self, growth: &IndexGrowth) {
        if growth.done.load(Ordering::Acquire) && Arc::ptr_eq(&growth.file, &self.file) {
            self.allocated = self.allocated.max(growth.to);
        }
    }

    /// Allocates the next step of blocks. On failure (a full disk) the entry is not stored:
    /// the index is sparse, so a lookup then scans from an earlier entry, and nothing is lost.
    fn grow(&mut self) -> bool {
        let needed = (self.entries + 1) * self.entry_size;
        let to = file_alloc::grown_size(
            self.allocated,
            needed,
            INDEX_STEPS,
            self.capacity * self.entry_size,
        );
        match file_alloc::allocate(&self.file, self.allocated as u64, to as u64) {
            Ok(()) => {
                self.allocated = to;
                true
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "index entry skipped: no room for the index");
                false
            }
        }
    }

    fn is_full(&self) -> bool {
        self.entries >= self.capacity
    }

    /// Takes no more entries; the returned trim shrinks the file to those it holds (no
    /// lookup reads past them, so it may run later, without the log's lock).
    fn seal(&mut self) -> TrimFile {
        self.capacity = self.entries;
        self.allocated = self.allocated.min(self.entries * self.entry_size);
        TrimFile {
            file: Arc::clone(&self.file),
            len: (self.entries * self.entry_size) as u64,
            path: self.path.clone(),
        }
    }

    fn flush(&self) -> Result<(), LogError> {
        self.map
            .flush_range(0, self.entries * self.entry_size)
            .at(&self.path)?;
        self.file.sync_all().at(&self.path)
    }
}

/// `.index`: relative offset of a batch's last offset -> file position of the batch.
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    inner: MappedIndex,
}

const OFFSET_ENTRY: usize = 8;
const TIME_ENTRY: usize = 12;

fn u32_at(e: &[u8], at: usize) -> u32 {
    e.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

impl OffsetIndex {
    pub(crate) fn open(
        path: &Path,
        max_bytes: u32,
        keep: bool,
        writable: bool,
    ) -> Result<Self, LogError> {
        Ok(OffsetIndex {
            inner: MappedIndex::open(path, OFFSET_ENTRY, max_bytes, keep, writable)?,
        })
    }

    pub(crate) fn entries(&self) -> usize {
        self.inner.entries
    }

    pub(crate) fn entry(&self, i: usize) -> Option<(u32, u32)> {
        self.inner.entry(i).map(|e| (u32_at(e, 0), u32_at(e, 4)))
    }

    /// See `MappedIndex::plan_growth`.
    pub(crate) fn plan_growth(&self, more: usize) -> Option<IndexGrowth> {
        self.inner.plan_growth(more)
    }

    pub(crate) fn grown(&mut self, growth: &IndexGrowth) {
        self.inner.grown(growth);
    }

    pub(crate) fn append(&mut self, relative_offset: u32, position: u32) -> bool {
        let mut e = [0u8; OFFSET_ENTRY];
        e[..4].copy_from_slice(&relative_offset.to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.inner.push(&e)
    }

    /// The entry with the largest relative offset <= `target`, if any.
    pub(crate) fn lookup(&self, target: u32) -> Option<(u32, u32)> {
        let i = self.inner.search(|e| u32_at(e, 0) <= target)?;
        self.entry(i)
    }

    /// Entries must strictly increase in offset and position and point inside the log.
    pub(crate) fn is_sane(&self, log_size: usize) -> bool {
        let mut prev: Option<(u32, u32)> = None;
        for i in 0..self.entries() {
            let Some((off, pos)) = self.entry(i) else {
                return false;
            };
            if pos as usize >= log_size.max(1)
                || prev.is_some_and(|(po, pp)| off <= po || pos <= pp)
            {
                return false;
            }
            prev = Some((off, pos));
        }
        true
    }

    /// Keeps only entries pointing before `position`.
    pub(crate) fn truncate_to_position(&mut self, position: u32) {
        let keep = self
            .inner
            .search(|e| u32_at(e, 4) < position)
            .map_or(0, |i| i + 1);
        self.inner.truncate_entries(keep);
    }

    pub(crate) fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    pub(crate) fn seal(&mut self) -> TrimFile {
        self.inner.seal()
    }

    /// Seals and trims at once.
    pub(crate) fn trim(&mut self) -> Result<(), LogError> {
        self.inner.seal().cut()
    }

    pub(crate) fn flush(&self) -> Result<(), LogError> {
        self.inner.flush()
    }
}

/// `.timeindex`: max timestamp so far -> relative offset where it was first reached.
#[derive(Debug)]
pub(crate) struct TimeIndex {
    inner: MappedIndex,
}

impl TimeIndex {
    pub(crate) fn open(
        path: &Path,
        max_bytes: u32,
        keep: bool,
        writable: bool,
    ) -> Result<Self, LogError> {
        Ok(TimeIndex {
            inner: MappedIndex::open(path, TIME_ENTRY, max_bytes, keep, writable)?,
        })
    }

    pub(crate) fn entries(&self) -> usize {
        self.inner.entries
    }

    pub(crate) fn entry(&self, i: usize) -> Option<(i64, u32)> {
        self.inner.entry(i).map(|e| {
            let ts = e
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(-1, i64::from_be_bytes);
            (ts, u32_at(e, 8))
        })
    }

    pub(crate) fn last_entry(&self) -> Option<(i64, u32)> {
        self.entries().checked_sub(1).and_then(|i| self.entry(i))
    }

    /// Appends only when the timestamp grows, keeping the index sorted on both columns.
    /// See `MappedIndex::plan_growth`.
    pub(crate) fn plan_growth(&self, more: usize) -> Option<IndexGrowth> {
        self.inner.plan_growth(more)
    }

    pub(crate) fn grown(&mut self, growth: &IndexGrowth) {
        self.inner.grown(growth);
    }

    pub(crate) fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) -> bool {
        if self
            .last_entry()
            .is_some_and(|(ts, off)| timestamp <= ts || relative_offset < off)
        {
            return true;
        }
        let mut e = [0u8; TIME_ENTRY];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&relative_offset.to_be_bytes());
        self.inner.push(&e)
    }

    /// The entry with the largest timestamp <= `target`, if any.
    pub(crate) fn lookup(&self, target: i64) -> Option<(i64, u32)> {
        let i = self.inner.search(|e| {
            e.get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(i64::MIN, i64::from_be_bytes)
                <= target
        })?;
        self.entry(i)
    }

    /// Timestamps strictly increase, offsets do not decrease and stay below `max_relative`.
    pub(crate) fn is_sane(&self, max_relative: u32) -> bool {
        let mut prev: Option<(i64, u32)> = None;
        for i in 0..self.entries() {
            let Some((ts, off)) = self.entry(i) else {
                return false;
            };
            if off > max_relative || prev.is_some_and(|(pt, po)| ts <= pt || off < po) {
                return false;
            }
            prev = Some((ts, off));
        }
        true
    }

    /// Keeps only entries with relative offset < `relative_offset`.
    pub(crate) fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self
            .inner
            .search(|e| u32_at(e, 8) < relative_offset)
            .map_or(0, |i| i + 1);
        self.inner.truncate_entries(keep);
    }

    pub(crate) fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    pub(crate) fn seal(&mut self) -> TrimFile {
        self.inner.seal()
    }

    /// Seals and trims at once.
    pub(crate) fn trim(&mut self) -> Result<(), LogError> {
        self.inner.seal().cut()
    }

    pub(crate) fn flush(&self) -> Result<(), LogError> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_finds_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::open(&dir.path().join("0.index"), 80, false, true).unwrap();
        assert_eq!(idx.lookup(5), None);
        for i in 0..10u32 {
            assert!(idx.append(i * 10, i * 100 + 1));
        }
        assert!(idx.is_full());
        assert!(!idx.append(1000, 5000));
        assert_eq!(idx.lookup(0), Some((0, 1)));
        assert_eq!(idx.lookup(35), Some((30, 301)));
        assert_eq!(idx.lookup(u32::MAX), Some((90, 901)));
        assert!(idx.is_sane(10_000));
        assert!(!idx.is_sane(500));
        idx.truncate_to_position(301);
        assert_eq!(idx.entries(), 3);
    }

    #[test]
    fn growth_planned_under_the_lock_runs_outside_it_and_is_taken_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let len = |p: &Path| std::fs::metadata(p).unwrap().len();
        let mut idx = OffsetIndex::open(&path, 10 * 1024 * 1024, false, true).unwrap();
        // Room for 512 entries: none needed for two more.
        assert!(idx.plan_growth(2).is_none());
        for i in 0..511u32 {
            assert!(idx.append(i, i));
        }
        let growth = idx.plan_growth(2).expect("the page is nearly full");
        // Planned, not run: nothing changes until it runs and is taken.
        idx.grown(&growth);
        assert_eq!(len(&path), 4096);
        growth.run();
        assert_eq!(len(&path), 8192, "the blocks are reserved by the run");
        idx.grown(&growth);
        assert!(idx.plan_growth(2).is_none(), "the index knows it has room");
        assert!(idx.append(511, 511) && idx.append(512, 512));
        assert_eq!(len(&path), 8192, "no growth at append time");
    }

    #[test]
    fn an_active_index_allocates_blocks_as_entries_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let len = |p: &Path| std::fs::metadata(p).unwrap().len();
        let mut idx = OffsetIndex::open(&path, 10 * 1024 * 1024, false, true).unwrap();
        // A page, not the 10 MiB the index may grow to.
        assert_eq!(len(&path), 4096);
        for i in 0..600u32 {
            assert!(idx.append(i, i * 4096));
        }
        assert_eq!(len(&path), 8192);
        assert_eq!(idx.lookup(599), Some((599, 599 * 4096)));
        // Steps double: 4 KiB, 8 KiB, 16 KiB...
        for i in 600..2000u32 {
            assert!(idx.append(i, i * 4096));
        }
        assert_eq!(len(&path), 16384);
        idx.trim().unwrap();
        assert_eq!(len(&path), 2000 * 8);
        // Reopened active after a clean roll-back: it grows again from there.
        let mut idx = OffsetIndex::open(&path, 10 * 1024 * 1024, true, true).unwrap();
        assert_eq!(idx.entries(), 2000);
        assert!(idx.append(2000, 2000 * 4096));
        assert_eq!(idx.lookup(u32::MAX), Some((2000, 2000 * 4096)));
    }

    #[test]
    fn time_index_keeps_increasing_timestamps_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TimeIndex::open(&dir.path().join("0.timeindex"), 1200, false, true).unwrap();
        assert!(idx.maybe_append(100, 0));
        assert!(idx.maybe_append(90, 1));
        assert!(idx.maybe_append(200, 5));
        assert_eq!(idx.entries(), 2);
        assert_eq!(idx.lookup(150), Some((100, 0)));
        assert_eq!(idx.lookup(50), None);
        assert!(idx.is_sane(5));
        assert!(!idx.is_sane(4));
        idx.trim().unwrap();
        let reopened = TimeIndex::open(&dir.path().join("0.timeindex"), 1200, true, false).unwrap();
        assert_eq!(reopened.last_entry(), Some((200, 5)));
    }
}
