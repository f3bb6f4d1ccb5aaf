//! Minimal private view of the magic-2 record batch header, mirroring the API of
//! `strata_protocol::record_batch` (being written concurrently); switch to it once it lands.
//! Only headers are read or patched here: records stay opaque bytes.

/// Bytes before `batch_length` counts: base offset (8) + batch length (4).
pub(crate) const LOG_OVERHEAD: usize = 12;
/// Size of the fixed v2 header, records start after it.
pub(crate) const HEADER_SIZE: usize = 61;
const LENGTH_OFFSET: usize = 8;
const LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum BatchError {
    #[error("expected at least {expected} bytes of record batch, found {found}")]
    Short { expected: usize, found: usize },
    #[error("expected magic 2, found {0}")]
    Magic(i8),
    #[error("expected batch length >= 49, found {0}")]
    Length(i32),
    #[error("expected last offset delta >= 0, found {0}")]
    LastOffsetDelta(i32),
    #[error("expected CRC32C {expected:#010x}, found {found:#010x}")]
    Crc { expected: u32, found: u32 },
}

/// The 61-byte header of a magic-2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordBatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn arr<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = buf.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

impl RecordBatchHeader {
    /// Parses the header at the start of `buf`; checks magic, length and offset delta, not the CRC.
    pub(crate) fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_SIZE {
            return Err(BatchError::Short {
                expected: HEADER_SIZE,
                found: buf.len(),
            });
        }
        let h = RecordBatchHeader {
            base_offset: i64::from_be_bytes(arr(buf, 0)),
            batch_length: i32::from_be_bytes(arr(buf, LENGTH_OFFSET)),
            partition_leader_epoch: i32::from_be_bytes(arr(buf, LEADER_EPOCH_OFFSET)),
            magic: i8::from_be_bytes(arr(buf, MAGIC_OFFSET)),
            crc: u32::from_be_bytes(arr(buf, CRC_OFFSET)),
            attributes: i16::from_be_bytes(arr(buf, ATTRIBUTES_OFFSET)),
            last_offset_delta: i32::from_be_bytes(arr(buf, 23)),
            base_timestamp: i64::from_be_bytes(arr(buf, 27)),
            max_timestamp: i64::from_be_bytes(arr(buf, MAX_TIMESTAMP_OFFSET)),
            producer_id: i64::from_be_bytes(arr(buf, 43)),
            producer_epoch: i16::from_be_bytes(arr(buf, 51)),
            base_sequence: i32::from_be_bytes(arr(buf, 53)),
            records_count: i32::from_be_bytes(arr(buf, 57)),
        };
        if h.magic != 2 {
            return Err(BatchError::Magic(h.magic));
        }
        if (h.batch_length as i64) < (HEADER_SIZE - LOG_OVERHEAD) as i64 {
            return Err(BatchError::Length(h.batch_length));
        }
        if h.last_offset_delta < 0 {
            return Err(BatchError::LastOffsetDelta(h.last_offset_delta));
        }
        Ok(h)
    }

    /// Whole batch size on disk: 12 + batch_length.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + usize::try_from(self.batch_length).unwrap_or(0)
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Checks the CRC32C over attributes..end of the batch in `batch` (which must hold it whole).
    pub(crate) fn verify_crc(&self, batch: &[u8]) -> Result<(), BatchError> {
        let covered = batch
            .get(ATTRIBUTES_OFFSET..self.total_size())
            .ok_or(BatchError::Short {
                expected: self.total_size(),
                found: batch.len(),
            })?;
        let found = crc32c::crc32c(covered);
        if found != self.crc {
            return Err(BatchError::Crc {
                expected: self.crc,
                found,
            });
        }
        Ok(())
    }
}

/// Base offset and leader epoch are outside the CRC, so patching them needs no recompute.
pub(crate) fn set_base_offset(batch: &mut [u8], offset: i64) {
    put(batch, 0, &offset.to_be_bytes());
}

pub(crate) fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    put(batch, LEADER_EPOCH_OFFSET, &epoch.to_be_bytes());
}

/// Marks the batch LogAppendTime with max timestamp `ts` and recomputes the CRC, as Kafka does.
pub(crate) fn set_log_append_time(batch: &mut [u8], ts: i64) {
    let attributes = i16::from_be_bytes(arr(batch, ATTRIBUTES_OFFSET)) | TIMESTAMP_TYPE_BIT;
    put(batch, ATTRIBUTES_OFFSET, &attributes.to_be_bytes());
    put(batch, MAX_TIMESTAMP_OFFSET, &ts.to_be_bytes());
    let total =
        LOG_OVERHEAD + usize::try_from(i32::from_be_bytes(arr(batch, LENGTH_OFFSET))).unwrap_or(0);
    if let Some(covered) = batch.get(ATTRIBUTES_OFFSET..total) {
        let crc = crc32c::crc32c(covered);
        put(batch, CRC_OFFSET, &crc.to_be_bytes());
    }
}
