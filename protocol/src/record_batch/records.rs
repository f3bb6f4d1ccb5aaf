//! The record-level checks Kafka's broker makes on every produced batch (its LogValidator):
//! each record's framing (lengths, varints, header counts, exactly `records_count` records and
//! nothing after them), keys on compacted topics, and CreateTime timestamps within
//! `message.timestamp.before.max.ms` / `after.max.ms` of the broker's clock. Compressed batches
//! are read through a bounded window ([`super::compression`]); uncompressed ones in place.
//! Nothing is allocated per record: a batch that passes costs one walk over its bytes; only a
//! refused one is walked again to name every record at fault, as Kafka's `record_errors` do.

use std::io::{self, Read};

use super::compression::{decompressor, DecompressError, CODEC_NONE, WINDOW};
use super::{RecordBatchHeader, BATCH_HEADER_LEN};

/// Kafka's NO_TIMESTAMP: a record without a timestamp is never out of range.
const NO_TIMESTAMP: i64 = -1;

const INVALID_RECORD: i16 = 87;
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
    fn invalid(message: impl Into<String>) -> Self {
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
) -> Result<(), RecordsRefused> {
    let timestamps = TimestampRule::new(header, rules);
    let mut faulty = false;
    walk(batch, header, |_, record| {
        faulty |= record_fault(header, rules, &timestamps, record).is_some();
    })?;
    if !faulty {
        return Ok(());
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

/// What one record's walk found that the rules care about.
#[derive(Debug, Clone, Copy)]
struct RecordSeen {
    timestamp_delta: i64,
    has_key: bool,
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

/// Walks every record of the batch, handing each to `seen` with its index; refuses (as
/// INVALID_RECORD) a record that does not parse, fewer records than declared, bytes after
/// the last one, and in a compressed batch inner offset deltas other than 0, 1, 2, ...
fn walk(
    batch: &[u8],
    header: &RecordBatchHeader,
    seen: impl FnMut(u32, RecordSeen),
) -> Result<(), RecordsRefused> {
    let records = batch
        .get(BATCH_HEADER_LEN..header.total_size())
        .ok_or_else(|| RecordsRefused::invalid("Incorrect declared batch size"))?;
    let count = u32::try_from(header.records_count).unwrap_or(0);
    let codec = header.compression();
    if codec == CODEC_NONE {
        walk_slice(records, count, seen)
    } else {
        let reader = decompressor(codec, records)?;
        walk_source(&mut StreamSource::new(reader), count, seen)
    }
}

fn walk_source<S: Source>(
    src: &mut S,
    count: u32,
    mut seen: impl FnMut(u32, RecordSeen),
) -> Result<(), RecordsRefused> {
    for index in 0..count {
        let (record, offset_delta) = read_record(src).map_err(|e| e.refusal(index))?;
        if i64::from(offset_delta) != i64::from(index) {
            // Kafka's broker rebuilds such a compressed batch with offsets renumbered; Strata
            // stores batches as sent, so it refuses what it cannot store faithfully.
            return Err(RecordsRefused::invalid(format!(
                "Compressed record {index} has offset delta {offset_delta}, expected {index}"
            )));
        }
        seen(index, record);
    }
    if !src.exhausted().map_err(|e| e.refusal(count))? {
        return Err(RecordsRefused::invalid(
            "Incorrect declared batch size, records still remaining in file",
        ));
    }
    Ok(())
}

/// `walk_source` for uncompressed records, in place: each record's body is a sub-slice read
/// through a shrinking cursor, so a field costs one bounds check (the hot path of produce).
fn walk_slice(
    records: &[u8],
    count: u32,
    mut seen: impl FnMut(u32, RecordSeen),
) -> Result<(), RecordsRefused> {
    let mut rest = records;
    for index in 0..count {
        let record = slice_record(&mut rest).map_err(|e| e.refusal(index))?;
        seen(index, record);
    }
    if !rest.is_empty() {
        return Err(RecordsRefused::invalid(
            "Incorrect declared batch size, records still remaining in file",
        ));
    }
    Ok(())
}

/// One record from the front of `rest`. Its offset delta is not checked, as Kafka's in-place
/// path for uncompressed batches does not check it.
#[inline]
fn slice_record(rest: &mut &[u8]) -> Result<RecordSeen, WalkError> {
    let mut cursor = SliceCursor(rest);
    let size = cursor.varint()?;
    let size = usize::try_from(size).map_err(|_| WalkError::Invalid("negative record size"))?;
    let (mut body, after) = rest.split_at_checked(size).ok_or(WalkError::Eof)?;
    *rest = after;
    let mut cursor = SliceCursor(&mut body);
    let (record, _) = record_fields(&mut cursor)?;
    if !body.is_empty() {
        return Err(WalkError::Invalid(
            "record fields end before its declared size",
        ));
    }
    Ok(record)
}

/// Parses one record (Kafka's DefaultRecord layout) from a stream, reads bounded by its
/// declared size; returns its offset delta too.
fn read_record<S: Source>(src: &mut S) -> Result<(RecordSeen, i32), WalkError> {
    src.unbound();
    let size = src.varint()?;
    let size = usize::try_from(size).map_err(|_| WalkError::Invalid("negative record size"))?;
    src.bound(size)?;
    let fields = record_fields(src)?;
    if !src.at_bound() {
        return Err(WalkError::Invalid(
            "record fields end before its declared size",
        ));
    }
    Ok(fields)
}

/// A record's fields after its size: attributes, timestamp and offset deltas, key, value,
/// headers. Returns what the rules need and the offset delta.
#[inline(always)]
fn record_fields<S: Source>(src: &mut S) -> Result<(RecordSeen, i32), WalkError> {
    src.skip(1)?; // attributes: unused in v2
    let timestamp_delta = src.varlong()?;
    let offset_delta = src.varint()?;
    let key_len = src.varint()?;
    skip_bytes(src, key_len)?;
    let value_len = src.varint()?;
    skip_bytes(src, value_len)?;
    let headers = src.varint()?;
    if headers < 0 {
        return Err(WalkError::Invalid("negative number of record headers"));
    }
    for _ in 0..headers {
        let key_len = src.varint()?;
        if key_len < 0 {
            return Err(WalkError::Invalid("negative header key size"));
        }
        skip_bytes(src, key_len)?;
        let value_len = src.varint()?;
        skip_bytes(src, value_len)?;
    }
    Ok((
        RecordSeen {
            timestamp_delta,
            has_key: key_len >= 0,
        },
        offset_delta,
    ))
}

/// A length-prefixed field's bytes; a negative length is null (Kafka's `Utils.readBytes`).
#[inline(always)]
fn skip_bytes<S: Source>(src: &mut S, len: i32) -> Result<(), WalkError> {
    match usize::try_from(len) {
        Ok(n) => src.skip(n),
        Err(_) => Ok(()),
    }
}

/// Kafka's zig-zag varint: at most 5 bytes.
fn read_varint<S: Source>(src: &mut S) -> Result<i32, WalkError> {
    let mut value = 0u32;
    for shift in [0u32, 7, 14, 21, 28] {
        let b = src.byte()?;
        value |= u32::from(b & 0x7f).wrapping_shl(shift);
        if b & 0x80 == 0 {
            return Ok(zigzag32(value));
        }
    }
    Err(WalkError::Invalid("varint is too long"))
}

/// Kafka's zig-zag varlong: at most 10 bytes.
fn read_varlong<S: Source>(src: &mut S) -> Result<i64, WalkError> {
    let mut value = 0u64;
    for shift in (0u32..70).step_by(7) {
        let b = src.byte()?;
        value |= u64::from(b & 0x7f).wrapping_shl(shift);
        if b & 0x80 == 0 {
            return Ok(zigzag64(value));
        }
    }
    Err(WalkError::Invalid("varlong is too long"))
}

#[inline(always)]
fn zigzag32(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

#[inline(always)]
fn zigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[derive(Debug)]
enum WalkError {
    /// The batch (or the record's declared size) ended inside a field.
    Eof,
    Invalid(&'static str),
    Decompress(io::Error),
}

impl WalkError {
    fn refusal(self, index: u32) -> RecordsRefused {
        match self {
            WalkError::Eof => RecordsRefused::invalid(format!(
                "Incorrect declared batch size, premature EOF reached at record {index}"
            )),
            WalkError::Invalid(what) => RecordsRefused::invalid(format!(
                "Found invalid record structure at record {index}: {what}"
            )),
            WalkError::Decompress(e) => DecompressError::Corrupt(e).into(),
        }
    }
}

/// Record bytes, read one field at a time. Between `bound` and `unbound`, reads stop at the
/// current record's declared end.
trait Source: Sized {
    fn byte(&mut self) -> Result<u8, WalkError>;
    fn skip(&mut self, n: usize) -> Result<(), WalkError>;
    fn varint(&mut self) -> Result<i32, WalkError> {
        read_varint(self)
    }
    fn varlong(&mut self) -> Result<i64, WalkError> {
        read_varlong(self)
    }
    /// The next `size` bytes are the current record.
    fn bound(&mut self, size: usize) -> Result<(), WalkError>;
    fn unbound(&mut self);
    fn at_bound(&self) -> bool;
    /// No bytes left after the last record.
    fn exhausted(&mut self) -> Result<bool, WalkError>;
}

/// Uncompressed record bytes, read in place; varints of one or two bytes (nearly every
/// length and delta) take the short path.
struct SliceCursor<'s, 'a>(&'s mut &'a [u8]);

impl Source for SliceCursor<'_, '_> {
    #[inline(always)]
    fn byte(&mut self) -> Result<u8, WalkError> {
        let (&first, rest) = self.0.split_first().ok_or(WalkError::Eof)?;
        *self.0 = rest;
        Ok(first)
    }

    #[inline(always)]
    fn skip(&mut self, n: usize) -> Result<(), WalkError> {
        *self.0 = self.0.get(n..).ok_or(WalkError::Eof)?;
        Ok(())
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<i32, WalkError> {
        let bytes: &[u8] = self.0;
        match *bytes {
            [b0, ref rest @ ..] if b0 < 0x80 => {
                *self.0 = rest;
                Ok(zigzag32(u32::from(b0)))
            }
            [b0, b1, ref rest @ ..] if b1 < 0x80 => {
                *self.0 = rest;
                Ok(zigzag32(u32::from(b0 & 0x7f) | u32::from(b1) << 7))
            }
            _ => read_varint(self),
        }
    }

    #[inline(always)]
    fn varlong(&mut self) -> Result<i64, WalkError> {
        let bytes: &[u8] = self.0;
        match *bytes {
            [b0, ref rest @ ..] if b0 < 0x80 => {
                *self.0 = rest;
                Ok(zigzag64(u64::from(b0)))
            }
            [b0, b1, ref rest @ ..] if b1 < 0x80 => {
                *self.0 = rest;
                Ok(zigzag64(u64::from(b0 & 0x7f) | u64::from(b1) << 7))
            }
            _ => read_varlong(self),
        }
    }

    // The slice is the record's body: its end is the bound.
    fn bound(&mut self, _: usize) -> Result<(), WalkError> {
        Ok(())
    }

    fn unbound(&mut self) {}

    fn at_bound(&self) -> bool {
        self.0.is_empty()
    }

    fn exhausted(&mut self) -> Result<bool, WalkError> {
        Ok(self.0.is_empty())
    }
}

/// Decompressed records, read through a window of [`WINDOW`] bytes that this source owns, so
/// that a field is read from memory and the decompressor is called once a window.
struct StreamSource<R> {
    reader: R,
    window: Box<[u8]>,
    /// The unread part of `window` is `at..filled`.
    at: usize,
    filled: usize,
    /// Bytes of the current record left to read (`usize::MAX` when unbound).
    left: usize,
}

impl<R: Read> StreamSource<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            window: vec![0u8; WINDOW].into_boxed_slice(),
            at: 0,
            filled: 0,
            left: usize::MAX,
        }
    }

    /// Refills an exhausted window; false at the end of the stream.
    fn refill(&mut self) -> Result<bool, WalkError> {
        loop {
            match self.reader.read(&mut self.window) {
                Ok(n) => {
                    self.at = 0;
                    self.filled = n;
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(WalkError::Decompress(e)),
            }
        }
    }
}

impl<R: Read> Source for StreamSource<R> {
    #[inline]
    fn byte(&mut self) -> Result<u8, WalkError> {
        if self.left == 0 {
            return Err(WalkError::Eof);
        }
        if self.at >= self.filled && !self.refill()? {
            return Err(WalkError::Eof);
        }
        let b = *self.window.get(self.at).ok_or(WalkError::Eof)?;
        self.at += 1;
        self.left = self.left.saturating_sub(1);
        Ok(b)
    }

    fn skip(&mut self, mut n: usize) -> Result<(), WalkError> {
        if n > self.left {
            return Err(WalkError::Eof);
        }
        self.left = self.left.saturating_sub(n);
        loop {
            let step = (self.filled - self.at).min(n);
            self.at += step;
            n -= step;
            if n == 0 {
                return Ok(());
            }
            if !self.refill()? {
                return Err(WalkError::Eof);
            }
        }
    }

    fn bound(&mut self, size: usize) -> Result<(), WalkError> {
        // The stream's length is unknown until read; a short stream fails as EOF in a field.
        self.left = size;
        Ok(())
    }

    fn unbound(&mut self) {
        self.left = usize::MAX;
    }

    fn at_bound(&self) -> bool {
        self.left == 0
    }

    fn exhausted(&mut self) -> Result<bool, WalkError> {
        Ok(self.at >= self.filled && !self.refill()?)
    }
}
