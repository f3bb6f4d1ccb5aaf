//! Errors of the log, each mapped to the Kafka error code a Java broker would send.

use std::io;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error(
        "offset {offset} is out of range: expected one in [{log_start_offset}, {log_end_offset}]"
    )]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("record batches of {size} bytes are larger than segment.bytes {segment_bytes}")]
    RecordBatchTooLarge { size: usize, segment_bytes: u64 },
    #[error("invalid record batch at byte {position}: {reason}")]
    InvalidBatch { position: usize, reason: String },
    #[error("log directory {path} failed earlier ({cause}); refusing writes until restart")]
    StorageFailed { path: String, cause: String },
    #[error(
        "no space left for {path}: expected room to write, found the filesystem full ({source})"
    )]
    DiskFull { path: String, source: io::Error },
    #[error("I/O error on {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("corrupt file {path}: {reason}")]
    Corrupt { path: String, reason: String },
    /// A caller broke the append protocol: another change while an append is in flight.
    #[error("log {path}: expected no append in flight, found one (appends must be serialized)")]
    AppendInFlight { path: String },
    /// A follower's copy of its leader's batches does not start at its log end.
    #[error("replicated batches start at offset {found}, expected the log end {expected}")]
    ReplicaOffsetMismatch { expected: i64, found: i64 },
}

impl LogError {
    /// The Kafka error code for this failure.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            LogError::OffsetOutOfRange { .. } => 1, // OFFSET_OUT_OF_RANGE
            LogError::RecordBatchTooLarge { .. } => 18, // RECORD_LIST_TOO_LARGE
            LogError::InvalidBatch { .. } => 87,    // INVALID_RECORD
            LogError::Corrupt { .. } => 2,          // CORRUPT_MESSAGE
            LogError::AppendInFlight { .. } => -1,  // UNKNOWN_SERVER_ERROR
            LogError::ReplicaOffsetMismatch { .. } => 1, // OFFSET_OUT_OF_RANGE
            LogError::StorageFailed { .. } | LogError::Io { .. } | LogError::DiskFull { .. } => 56, // KAFKA_STORAGE_ERROR
        }
    }

    /// An I/O failure of the log directory (a failed write, flush or fsync, or a log whose
    /// fsync gate closed earlier): Kafka takes the whole directory offline for these. A full
    /// disk is not one (nothing was written; produce recovers when space returns).
    pub fn is_log_dir_failure(&self) -> bool {
        matches!(self, LogError::Io { .. } | LogError::StorageFailed { .. })
    }

    /// Turns an out-of-space I/O error (ENOSPC, EDQUOT) into [`LogError::DiskFull`].
    pub(crate) fn classify_no_space(self) -> LogError {
        match self {
            LogError::Io { path, source }
                if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) =>
            {
                LogError::DiskFull { path, source }
            }
            other => other,
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: io::Error) -> LogError {
        LogError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Attaches a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, LogError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, LogError> {
        self.map_err(|e| LogError::io(path, e))
    }
}
