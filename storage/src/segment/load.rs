//! Bringing one segment up from disk: map it, reuse or rebuild its indexes, walk its batches
//! from the last trusted index entry (CRC-checking those past the recovery point) and cut the
//! file after the last valid batch.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

use memmap2::MmapOptions;

use super::{
    batch_at, index_path, log_path, segment_capacity, time_index_path, LoadMode, LoadOutcome,
    LogSegment, MAX_SEGMENT_BYTES,
};
use crate::error::{IoContext, LogError};
use crate::index::{OffsetIndex, TimeIndex};
use crate::LogConfig;
use strata_protocol::record_batch::{self, RecordBatchHeader};

impl LogSegment {
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
        // Read-only even for the active segment: appends are pwrites, and a mapping nobody can
        // write through cannot be corrupted by a stray store.
        let map = MmapOptions::new()
            .len(map_len)
            .map_raw_read_only(&file)
            .at(&path)?;
        if !mode.writable {
            super::advise_sealed(&map);
        }

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
        // A corrupt (odd-sized) index file is treated like a missing one. `fresh_with_room`:
        // the indexes just opened are new and can take the rebuild's entries as they are (a
        // new segment's indexes are created once, not twice).
        let room = mode.writable || recovering;
        let (mut offset_index, mut time_index, mut rebuild, fresh_with_room) =
            match open_indexes(had_indexes, room) {
                Ok((o, t)) => (o, t, !had_indexes, !had_indexes && room),
                Err(LogError::Corrupt { .. }) => {
                    let (o, t) = open_indexes(false, true)?;
                    (o, t, true, true)
                }
                Err(e) => return Err(e),
            };
        if !rebuild && (!offset_index.is_sane(file_len) || !time_index.is_sane(u32::MAX)) {
            rebuild = true;
        }
        if rebuild && !fresh_with_room {
            let (o, t) = open_indexes(false, true)?;
            offset_index = o;
            time_index = t;
        }

        let mut seg = LogSegment {
            base_offset,
            dir: dir.to_owned(),
            file: Arc::new(file),
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
}
