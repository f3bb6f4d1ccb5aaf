//! Bringing a partition directory up on start: find segments, verify every batch at or after
//! the recovery point (CRC32C, framing, offsets), cut the log at the first bad one, drop the
//! segments after a cut, clean leftovers and rebuild missing or corrupt indexes.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{IoContext, LogError};
use crate::segment::{self, LoadMode, LogSegment};
use crate::LogConfig;

/// What recovery found and repaired when a log was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    pub segments: usize,
    /// Segments whose batches were CRC-checked (those holding offsets >= the recovery point).
    pub segments_recovered: usize,
    /// Non-zero bytes cut after the last valid batch (torn writes, corruption).
    pub truncated_bytes: u64,
    /// Zero-filled preallocated tail cut (an unclean shutdown, not data loss).
    pub zero_tail_bytes: u64,
    pub indexes_rebuilt: usize,
    /// Whole segments deleted because they followed a corrupt one.
    pub segments_deleted: usize,
    pub leftover_files_removed: usize,
    /// Segments a clean had merged into the segment before them, left behind by a crash
    /// before their rename (the earlier segment's file already holds their kept records).
    pub merged_leftovers_removed: usize,
    pub first_invalid_reason: Option<&'static str>,
}

/// Parses `<20 digits>.<ext>` into (base offset, ext).
fn parse_segment_name(name: &str) -> Option<(i64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

pub(crate) struct Loaded {
    pub(crate) sealed: BTreeMap<i64, LogSegment>,
    pub(crate) active: LogSegment,
    pub(crate) report: RecoveryReport,
}

pub(crate) fn load(
    dir: &Path,
    config: &LogConfig,
    recovery_point: i64,
    now_ms: i64,
) -> Result<Loaded, LogError> {
    let mut report = RecoveryReport::default();
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        match parse_segment_name(name) {
            Some((base, "log")) => bases.push(base),
            Some((base, "index" | "timeindex")) => index_files.push((base, entry.path())),
            // Our interrupted truncation, Kafka's pending deletes/compaction: never valid data.
            Some((
                _,
                "log.truncating" | "log.deleted" | "index.deleted" | "timeindex.deleted"
                | "log.cleaned" | "log.swap",
            )) => {
                std::fs::remove_file(entry.path()).at(&entry.path())?;
                report.leftover_files_removed += 1;
            }
            _ => {}
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            std::fs::remove_file(&path).at(&path)?;
            report.leftover_files_removed += 1;
        }
    }

    let mut sealed = BTreeMap::new();
    let mut active = None;
    // Where the previous segment's offsets end: a later segment starting below it is a
    // merge leftover (segments never overlap otherwise).
    let mut covered_to: Option<i64> = None;
    let mut i = 0;
    while i < bases.len() {
        let base = bases.get(i).copied().unwrap_or_default();
        let next_base = bases.get(i + 1).copied();
        let is_last = next_base.is_none();
        if !is_last && covered_to.is_some_and(|end| base < end) {
            segment::delete_files(dir, base)?;
            report.merged_leftovers_removed += 1;
            i += 1;
            continue;
        }
        // Segments wholly below the recovery point were flushed: trust them, check framing only.
        let crc_from = if next_base.is_some_and(|n| n <= recovery_point) {
            i64::MAX
        } else {
            recovery_point
        };
        let mode = LoadMode {
            crc_from_offset: crc_from,
            writable: is_last,
        };
        let (seg, outcome) = LogSegment::load(dir, base, config, mode, now_ms)?;
        report.segments += 1;
        if crc_from != i64::MAX {
            report.segments_recovered += 1;
        }
        report.truncated_bytes += outcome.truncated_bytes;
        report.zero_tail_bytes += outcome.zero_tail_bytes;
        report.indexes_rebuilt += usize::from(outcome.index_rebuilt);
        if report.first_invalid_reason.is_none() {
            report.first_invalid_reason = outcome.invalid_reason;
        }
        if outcome.truncated_bytes > 0 && !is_last {
            // Everything after a corrupt batch is unreachable: Kafka deletes the later segments.
            for later in bases.get(i + 1..).unwrap_or_default() {
                segment::delete_files(dir, *later)?;
                report.segments_deleted += 1;
            }
            let mut seg = seg;
            let next = seg.next_offset();
            seg.truncate_to(next, config, now_ms)?;
            active = Some(seg);
            break;
        }
        covered_to = Some(seg.next_offset());
        if is_last {
            active = Some(seg);
        } else {
            sealed.insert(base, seg);
        }
        i += 1;
    }
    let active = match active {
        Some(a) => a,
        None => LogSegment::create(dir, 0, config, now_ms)?,
    };
    Ok(Loaded {
        sealed,
        active,
        report,
    })
}
