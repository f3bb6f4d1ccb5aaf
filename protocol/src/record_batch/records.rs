//! The record-level checks Kafka's broker makes on every produced batch (its LogValidator):
//! each record's framing (lengths, varints, header counts, exactly `records_count` records and
//! nothing after them), keys on compacted topics, and CreateTime timestamps within
//! `message.timestamp.before.max.ms` / `after.max.ms` of the broker's clock. The walk over the
//! records is [`super::walk`]'s. Nothing is allocated per record: a batch that passes costs one walk over its bytes; only a
//! refused one is walked again to name every record at fault, as Kafka's `record_errors` do.

use super::compression::DecompressError;
use super::walk::{walk, RecordSeen};
use super::RecordBatchHeader;

/// Kafka's NO_TIMESTAMP: a record without a timestamp is never out of range.
const NO_TIMESTAMP: i64 = -1;

pub(super) const INVALID_RECORD: i16 = 87;
const INVALID_TIMESTAMP: i16 = 32;
const UNKNOWN_SERVER_ERROR: i16 = -1;

/// The topic's rules for the records of a produced batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRules {
    /// The broker's clock, for the timestamp window.
    pub now_ms: i64,
    /// `message.timestamp.type=LogAppendTime`: producers' timestamps are replaced, not checked.
    pub log_append_time: bool,
    /// `message.timestamp.before.max.ms`
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy` includes compact: every record needs a key.
    pub require_keys: bool,
}

impl RecordRules {
    /// Kafka's defaults: CreateTime, any timestamp, keys optional.
    pub fn lenient(now_ms: i64) -> Self {
        Self {
            now_ms,
            log_append_time: false,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            require_keys: false,
        }
    }
}

/// What a batch's records showed, for the batch as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsChecked {
    /// The largest record timestamp (NO_TIMESTAMP, -1, if none has one).
    pub max_timestamp: i64,
}

impl RecordsChecked {
    /// The max timestamp Kafka's broker stores instead of the producer's (its
    /// `setMaxTimestamp(CREATE_TIME, ...)`, which also clears a LogAppendTime flag) on a
    /// CreateTime topic when the header's differs from the records'; `None` when the header
    /// is right, and on LogAppendTime topics (the log stamps those).
    pub fn corrected_max_timestamp(
        &self,
        header: &RecordBatchHeader,
        rules: &RecordRules,
    ) -> Option<i64> {
        let wrong = header.max_timestamp != self.max_timestamp || header.is_log_append_time();
        (!rules.log_append_time && wrong).then_some(self.max_timestamp)
    }
}

/// One record at fault, as ProduceResponse v8+ reports it (`record_errors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFault {
    /// The record's index in its batch.
    pub batch_index: i32,
    pub message: String,
}

/// A batch refused for what its records hold, with the error code, message and per-record
/// faults a Java broker answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RecordsRefused {
    pub error_code: i16,
    pub message: String,
    /// Empty when the batch itself is unreadable (then no record is singled out).
    pub record_errors: Vec<RecordFault>,
}

impl RecordsRefused {
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self {
            error_code: INVALID_RECORD,
            message: message.into(),
            record_errors: Vec::new(),
        }
    }
}

impl From<DecompressError> for RecordsRefused {
    /// Kafka's broker answers UNKNOWN_SERVER_ERROR for an unknown codec id and for a record
    /// stream that does not decompress (its KafkaException has no more specific code).
    fn from(e: DecompressError) -> Self {
        Self {
            error_code: UNKNOWN_SERVER_ERROR,
            message: e.to_string(),
            record_errors: Vec::new(),
        }
    }
}

/// Checks the records of one whole batch (`batch` includes its header, already parsed and
/// CRC-checked as `header`) against `rules`.
pub fn check_records(
    batch: &[u8],
    header: &RecordBatchHeader,
    rules: &RecordRules,
) -> Result<RecordsChecked, RecordsRefused> {
    let timestamps = TimestampRule::new(header, rules);
    // The records' largest timestamp as Kafka reads them (a batch flagged LogAppendTime
    // gives each record its max timestamp), from NO_TIMESTAMP up, as Kafka's validator.
    let flagged = header.is_log_append_time().then_some(header.max_timestamp);
    let mut max_timestamp = NO_TIMESTAMP;
    let mut timestamp_of = |record: &RecordSeen| {
        let ts = flagged.unwrap_or(header.base_timestamp.wrapping_add(record.timestamp_delta));
        max_timestamp = max_timestamp.max(ts);
    };
    if !rules.require_keys && matches!(timestamps, TimestampRule::Free) {
        // Kafka's defaults: only the framing to check (the common case, kept free of the
        // per-record rule code).
        walk(batch, header, |_, record| timestamp_of(&record))?;
        return Ok(RecordsChecked { max_timestamp });
    }
    let mut faulty = false;
    walk(batch, header, |_, record| {
        timestamp_of(&record);
        faulty |= record_fault(header, rules, &timestamps, record).is_some();
    })?;
    if !faulty {
        return Ok(RecordsChecked { max_timestamp });
    }
    // Refused: walk again, naming each record at fault (cold path, may allocate).
    let mut record_errors = Vec::new();
    let mut any_timestamp = false;
    walk(batch, header, |index, record| {
        if let Some(fault) = record_fault(header, rules, &timestamps, record) {
            any_timestamp |= matches!(fault, Fault::Timestamp(_) | Fault::LogAppendTimeSet);
            record_errors.push(RecordFault {
                batch_index: i32::try_from(index).unwrap_or(i32::MAX),
                message: fault.describe(rules),
            });
        }
    })?;
    Err(if any_timestamp {
        RecordsRefused {
            error_code: INVALID_TIMESTAMP,
            message: "One or more records have been rejected due to invalid timestamp".into(),
            record_errors,
        }
    } else {
        let shown: Vec<&str> = record_errors
            .iter()
            .take(3)
            .map(|e| e.message.as_str())
            .collect();
        RecordsRefused {
            error_code: INVALID_RECORD,
            message: format!(
                "One or more records have been rejected due to {} record errors in total, \
                 and only showing the first three errors at most: {shown:?}",
                record_errors.len()
            ),
            record_errors,
        }
    })
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    NoKey,
    Timestamp(i64),
    LogAppendTimeSet,
}

impl Fault {
    fn describe(&self, rules: &RecordRules) -> String {
        match self {
            Fault::NoKey => "Compacted topic cannot accept message without key".into(),
            Fault::Timestamp(ts) => format!(
                "Timestamp {ts} of message is out of range. The timestamp should be within [{}, {}]",
                rules.now_ms.wrapping_sub(rules.timestamp_before_max_ms),
                rules.now_ms.wrapping_add(rules.timestamp_after_max_ms)
            ),
            Fault::LogAppendTimeSet => {
                "Invalid timestamp type in message. Producer should not set timestamp type to LogAppendTime.".into()
            }
        }
    }
}

/// How a batch's record timestamps are judged, decided once per batch.
enum TimestampRule {
    /// Nothing to check (LogAppendTime topic with a CreateTime batch, or an unbounded window).
    Free,
    /// Each record's CreateTime must lie in the window.
    Window,
    /// A CreateTime topic and a batch flagged LogAppendTime: every record carries the batch's
    /// max timestamp (Kafka reads them so), judged once.
    Batch(Option<Fault>),
}

impl TimestampRule {
    fn new(header: &RecordBatchHeader, rules: &RecordRules) -> Self {
        let unbounded =
            rules.timestamp_before_max_ms == i64::MAX && rules.timestamp_after_max_ms == i64::MAX;
        match (rules.log_append_time, header.is_log_append_time()) {
            // Kafka's validateTimestamp: a LogAppendTime topic refuses batches that claim it.
            (true, true) => TimestampRule::Batch(Some(Fault::LogAppendTimeSet)),
            (true, false) => TimestampRule::Free,
            (false, true) => {
                let ts = header.max_timestamp;
                TimestampRule::Batch(if ts == NO_TIMESTAMP {
                    Some(Fault::LogAppendTimeSet)
                } else if out_of_window(ts, rules) {
                    Some(Fault::Timestamp(ts))
                } else {
                    None
                })
            }
            (false, false) if unbounded => TimestampRule::Free,
            (false, false) => TimestampRule::Window,
        }
    }
}

/// Kafka's test, in its (wrapping) long arithmetic.
fn out_of_window(ts: i64, rules: &RecordRules) -> bool {
    let diff = rules.now_ms.wrapping_sub(ts);
    diff > rules.timestamp_before_max_ms || diff.wrapping_neg() > rules.timestamp_after_max_ms
}

/// The first rule `record` breaks, in Kafka's order (key, then timestamp).
fn record_fault(
    header: &RecordBatchHeader,
    rules: &RecordRules,
    timestamps: &TimestampRule,
    record: RecordSeen,
) -> Option<Fault> {
    if rules.require_keys && !record.has_key {
        return Some(Fault::NoKey);
    }
    match timestamps {
        TimestampRule::Free => None,
        TimestampRule::Batch(fault) => *fault,
        TimestampRule::Window => {
            let ts = header.base_timestamp.wrapping_add(record.timestamp_delta);
            (ts != NO_TIMESTAMP && out_of_window(ts, rules)).then_some(Fault::Timestamp(ts))
        }
    }
}
