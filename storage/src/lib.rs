//! Strata log storage: one partition's log in Kafka's on-disk layout
//! (`<topic>-<partition>/<20-digit base offset>.log|.index|.timeindex`), appended with
//! positioned vectored writes, read through memory mappings, recovered on start, trimmed by
//! retention.
//!
//! The broker owns one [`Log`] per partition (behind a mutex); [`checkpoint`] reads and writes
//! Kafka's offset checkpoint files and [`LogDirs`] finds and places partition directories.
//! The slow parts run without the log lock, between a brief step under it before and after:
//! appends ([`Log::begin_append`] / [`PendingAppend::write`] / [`Log::finish_append`]),
//! flushes ([`Log::begin_flush`] / [`PendingFlush::sync`] / [`Log::finish_flush`]) and
//! compaction ([`Log::plan_compaction`] / [`CleanTask::run`], then [`Log::begin_install`] /
//! [`CleanInstall::run`] / [`Log::finish_install`])
//! and rolls ([`Log::plan_roll`] / [`SegmentPlan::create`] / [`Log::install_segment`] /
//! [`SealWork::run`]).

mod append;
pub mod checkpoint;
mod cleaner;
mod config;
mod error;
mod file_alloc;
mod flush;
mod index;
mod leader_epoch;
mod log;
mod log_dirs;
mod recovery;
mod retention;
mod roll;
mod segment;

pub use append::{AppendStart, PendingAppend};
pub use cleaner::{
    CleanInstall, CleanTask, CleanedLog, CleanerStats, InstalledClean, DEFAULT_DEDUPE_BUFFER_SIZE,
};
pub use config::{LogConfig, TimestampType, TopicPartition};
pub use error::LogError;
pub use flush::PendingFlush;
pub use leader_epoch::{LEADER_EPOCH_CHECKPOINT, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
pub use log::{AppendInfo, Log, LogReadInfo, RecoveryReport};
pub use log_dirs::{
    LogDirUsage, LogDirs, CLEANER_OFFSET_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT,
};
pub use retention::{remove_deleted_files, RetentionWork};
pub use roll::{NewSegment, SegmentPlan};
pub use segment::{FileRegion, SealWork};
pub use strata_protocol::record_batch::RecordBatchHeader;

// The broker moves logs between tasks behind a mutex.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Log>();
};
