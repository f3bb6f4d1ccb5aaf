//! Produce-path checks on one partition's `records` field, with the same outcomes a Java
//! broker gives (CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, INVALID_RECORD, ...), and the header facts
//! idempotence needs.

use super::{verify_crc, BatchError, BatchIter, RecordBatchHeader};

/// What the produce path needs to know about a validated `records` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceBatchesSummary {
    pub batch_count: usize,
    /// Sum of `records_count` over the batches.
    pub record_count: i64,
    pub first: RecordBatchHeader,
    pub last: RecordBatchHeader,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// `base_sequence` of the first batch.
    pub first_sequence: i32,
    /// `last_sequence()` of the last batch.
    pub last_sequence: i32,
    pub max_timestamp: i64,
}

/// Produce-path validation of the `records` field of one partition: the buffer must be exactly a
/// sequence of whole batches; each magic 2 (else UnsupportedForMessageFormat), CRC ok (else CorruptMessage),
/// batch_length sane, records_count >= 1 and equal to last_offset_delta + 1 (as Kafka's
/// LogValidator demands; else InvalidRecord), total size <= `max_batch_bytes` per batch (else
/// MessageTooLarge). Returns a summary (batch count, record count, first/last header info
/// needed for idempotence: producer id/epoch, first and last sequence).
///
/// Also as Kafka (UnifiedLog and LogValidator for client appends): base offset 0, no control
/// batches, and a base sequence >= 0 whenever a producer id is set (else InvalidRecord). The
/// records inside are checked by [`super::check_records`], which needs the topic's rules.
///
/// Kafka additionally requires exactly one batch per partition for produce v3+; the summary's
/// `batch_count` lets the caller enforce that with INVALID_RECORD.
pub fn validate_produce_records(
    records: &[u8],
    max_batch_bytes: usize,
) -> Result<ProduceBatchesSummary, BatchError> {
    let mut iter = BatchIter::new(records);
    let mut first: Option<RecordBatchHeader> = None;
    let mut last: Option<RecordBatchHeader> = None;
    let mut batch_count = 0usize;
    let mut record_count = 0i64;
    let mut max_timestamp = i64::MIN;
    for batch in iter.by_ref() {
        let header = batch.header;
        if batch.bytes.len() > max_batch_bytes {
            return Err(BatchError::MessageTooLarge {
                size: batch.bytes.len(),
                max: max_batch_bytes,
            });
        }
        if header.records_count < 1
            || i64::from(header.last_offset_delta) + 1 != i64::from(header.records_count)
        {
            return Err(BatchError::InvalidRecordCount {
                records_count: header.records_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        verify_crc(batch.bytes)?;
        if header.base_offset != 0 {
            return Err(BatchError::NonZeroBaseOffset {
                base_offset: header.base_offset,
            });
        }
        if header.is_control() {
            return Err(BatchError::ControlBatch);
        }
        if header.has_producer_id() && header.base_sequence < 0 {
            return Err(BatchError::InvalidSequence {
                producer_id: header.producer_id,
                base_sequence: header.base_sequence,
            });
        }
        batch_count += 1;
        record_count += i64::from(header.records_count);
        max_timestamp = max_timestamp.max(header.max_timestamp);
        first.get_or_insert(header);
        last = Some(header);
    }
    if let Some(stop) = iter.stop_reason() {
        // A single batch larger than the limit is reported as too large even when the
        // request was cut short, as Kafka checks the declared size first.
        if let BatchError::Truncated { needed, .. } = stop {
            if *needed > max_batch_bytes {
                return Err(BatchError::MessageTooLarge {
                    size: *needed,
                    max: max_batch_bytes,
                });
            }
        }
        return Err(stop.clone());
    }
    let trailing = records.len() - iter.valid_len();
    if trailing != 0 {
        return Err(BatchError::TrailingBytes { trailing });
    }
    let (Some(first), Some(last)) = (first, last) else {
        return Err(BatchError::Empty);
    };
    Ok(ProduceBatchesSummary {
        batch_count,
        record_count,
        first,
        last,
        producer_id: first.producer_id,
        producer_epoch: first.producer_epoch,
        first_sequence: first.base_sequence,
        last_sequence: last.last_sequence(),
        max_timestamp,
    })
}
