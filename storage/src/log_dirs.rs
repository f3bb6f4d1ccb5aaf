//! `LogDirs`: the broker's `log.dirs`. Finds existing partition directories, places new logs
//! in the directory with the fewest partitions, keeps the per-directory checkpoint files and
//! reports free/used bytes (statvfs) for metrics.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::{checkpoint, TopicPartition};

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// The log cleaner's progress (first dirty offset) per compacted log.
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// Space on the filesystem holding a log dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogDirUsage {
    pub total_bytes: u64,
    pub free_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct LogDirs {
    dirs: Vec<PathBuf>,
}

impl LogDirs {
    /// Creates missing directories.
    pub fn new(dirs: Vec<PathBuf>) -> io::Result<LogDirs> {
        if dirs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "expected at least one log dir, found none",
            ));
        }
        for d in &dirs {
            std::fs::create_dir_all(d)?;
        }
        Ok(LogDirs { dirs })
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Partition directories in every log dir, with the log dir holding each.
    pub fn partitions(&self) -> io::Result<Vec<(PathBuf, TopicPartition)>> {
        let mut out = Vec::new();
        for d in &self.dirs {
            for entry in std::fs::read_dir(d)? {
                let entry = entry?;
                if !entry.file_type()?.is_dir() {
                    continue;
                }
                if let Some(tp) = entry
                    .file_name()
                    .to_str()
                    .and_then(TopicPartition::from_dir_name)
                {
                    out.push((entry.path(), tp));
                }
            }
        }
        Ok(out)
    }

    /// Where `tp` lives, or where a new log for it should go (fewest partitions).
    pub fn dir_for(&self, tp: &TopicPartition) -> io::Result<PathBuf> {
        let existing = self.partitions()?;
        if let Some((path, _)) = existing.iter().find(|(_, t)| t == tp) {
            return Ok(path.clone());
        }
        let count = |d: &Path| {
            existing
                .iter()
                .filter(|(p, _)| p.parent() == Some(d))
                .count()
        };
        let best = self.dirs.iter().min_by_key(|d| count(d));
        best.map(|d| d.join(tp.dir_name()))
            .ok_or_else(|| io::Error::other("no log dirs configured"))
    }

    /// Writes both checkpoints for the logs living in `log_dir`.
    pub fn write_checkpoints(
        log_dir: &Path,
        recovery_points: &[(TopicPartition, i64)],
        log_start_offsets: &[(TopicPartition, i64)],
    ) -> io::Result<()> {
        checkpoint::write_offsets(&log_dir.join(RECOVERY_POINT_CHECKPOINT), recovery_points)?;
        checkpoint::write_offsets(
            &log_dir.join(LOG_START_OFFSET_CHECKPOINT),
            log_start_offsets,
        )
    }

    pub fn usage(dir: &Path) -> io::Result<LogDirUsage> {
        let c = CString::new(dir.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: statvfs is plain old data; zeroed is a valid value and the call fills it.
        #[allow(unsafe_code)]
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let frsize = st.f_frsize as u64;
        Ok(LogDirUsage {
            total_bytes: st.f_blocks as u64 * frsize,
            free_bytes: st.f_bavail as u64 * frsize,
        })
    }
}
