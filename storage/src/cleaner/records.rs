//! Record-level views for compaction: decompressing a batch (bounded) and walking its records
//! (key, value, offset, timestamp). The walker bounds every length by the bytes present and
//! never panics on hostile bytes. (Produce checks records with
//! `strata_protocol::record_batch::check_records`, which never holds a whole payload.)

use bytes::Bytes;
use strata_protocol::record_batch::compression::{self, decompress_all};
use strata_protocol::record_batch::{RecordBatchHeader, BATCH_HEADER_LEN};

use crate::error::LogError;

/// Largest decompressed record payload we accept for one batch (Kafka's own batches are
/// bounded by `max.message.bytes`, 1 MiB by default; this leaves room for high ratios).
const MAX_DECOMPRESSED_BYTES: usize = 256 * 1024 * 1024;

/// One record inside a batch, as slices of the (decompressed) record payload.
#[derive(Debug, Clone)]
pub(crate) struct RecordView {
    /// The record's whole encoding (length prefix included), to copy verbatim.
    pub(crate) raw: Bytes,
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<Bytes>,
    /// `None` is a tombstone.
    pub(crate) has_value: bool,
}

fn invalid(position: usize, reason: impl Into<String>) -> LogError {
    LogError::InvalidBatch {
        position,
        reason: reason.into(),
    }
}

/// Decompresses the records section of `batch` (whole batch bytes, header included).
pub(crate) fn record_payload(batch: &Bytes, h: &RecordBatchHeader) -> Result<Bytes, LogError> {
    let payload = batch.get(BATCH_HEADER_LEN..h.total_size()).ok_or_else(|| {
        invalid(
            0,
            format!(
                "expected a batch of {} bytes, found {}",
                h.total_size(),
                batch.len()
            ),
        )
    })?;
    match h.compression() {
        0 => Ok(batch.slice_ref(payload)),
        codec => decompress_all(codec, payload, MAX_DECOMPRESSED_BYTES)
            .map(Bytes::from)
            .map_err(|e| invalid(0, format!("records do not decompress: {e}"))),
    }
}

/// Compresses `records` (concatenated record encodings) with batch codec `codec`, at the
/// levels kafka-protocol's compressors used here before (gzip's default, LZ4 4, zstd 3).
pub(crate) fn compress(codec: u8, records: &[u8]) -> Result<Vec<u8>, LogError> {
    let level = match codec {
        compression::CODEC_NONE => return Ok(records.to_vec()),
        compression::CODEC_LZ4 => 4,
        compression::CODEC_ZSTD => 3,
        _ => -1,
    };
    compression::compress(codec, level, records)
        .map_err(|e| invalid(0, format!("records do not compress: {e}")))
}

/// A cursor over record bytes that refuses to read past the end.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn varlong(&mut self) -> Result<i64, String> {
        let mut z: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = *self
                .data
                .get(self.pos)
                .ok_or_else(|| format!("expected a varint at byte {}, found the end", self.pos))?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(format!("overlong varint ending at byte {}", self.pos));
            }
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(format!("overlong varint ending at byte {}", self.pos))
    }

    fn varint(&mut self) -> Result<i32, String> {
        let v = self.varlong()?;
        i32::try_from(v).map_err(|_| format!("expected a 32-bit varint, found {v}"))
    }

    /// A length-prefixed byte string; -1 is null.
    fn bytes(&mut self, what: &str) -> Result<Option<(usize, usize)>, String> {
        let len = self.varint()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len)
            .map_err(|_| format!("expected a {what} length >= -1, found {len}"))?;
        let start = self.pos;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                format!(
                    "expected {len} bytes of {what} at byte {start}, found {}",
                    self.data.len().saturating_sub(start)
                )
            })?;
        self.pos = end;
        Ok(Some((start, end)))
    }
}

/// Walks the records of a decompressed payload. Errors name what was expected and found.
pub(crate) fn records(payload: &Bytes, h: &RecordBatchHeader) -> Result<Vec<RecordView>, LogError> {
    let count = usize::try_from(h.records_count).map_err(|_| {
        invalid(
            0,
            format!("expected records_count >= 0, found {}", h.records_count),
        )
    })?;
    // Each record takes at least 7 bytes: bound the count before reserving for it.
    if count > payload.len() / 7 + 1 {
        return Err(invalid(
            0,
            format!(
                "expected at most {} records in {} bytes, found a count of {count}",
                payload.len() / 7 + 1,
                payload.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(count);
    let mut c = Cursor {
        data: payload,
        pos: 0,
    };
    for _ in 0..count {
        let start = c.pos;
        let record = (|| -> Result<RecordView, String> {
            let len = c.varint()?;
            let len = usize::try_from(len)
                .map_err(|_| format!("expected a record length >= 0, found {len}"))?;
            let body_start = c.pos;
            let end = body_start
                .checked_add(len)
                .filter(|&e| e <= payload.len())
                .ok_or_else(|| {
                    format!(
                        "expected a record of {len} bytes, found {}",
                        payload.len().saturating_sub(body_start)
                    )
                })?;
            let mut r = Cursor {
                data: payload.get(..end).unwrap_or_default(),
                pos: body_start,
            };
            r.pos += 1; // attributes (unused in v2)
            let ts_delta = r.varlong()?;
            let offset_delta = r.varint()?;
            let key = r.bytes("key")?;
            let value = r.bytes("value")?;
            let headers = r.varint()?;
            if headers < 0 {
                return Err(format!("expected a header count >= 0, found {headers}"));
            }
            for _ in 0..headers {
                if r.bytes("header key")?.is_none() {
                    return Err("expected a header key, found null".into());
                }
                let _ = r.bytes("header value")?;
            }
            if r.pos != end {
                return Err(format!(
                    "expected a record of {len} bytes, its fields take {}",
                    r.pos - body_start
                ));
            }
            c.pos = end;
            Ok(RecordView {
                raw: payload.slice(start..end),
                offset: h.base_offset.saturating_add(i64::from(offset_delta)),
                timestamp: h.base_timestamp.saturating_add(ts_delta),
                key: key.map(|(s, e)| payload.slice(s..e)),
                has_value: value.is_some(),
            })
        })()
        .map_err(|reason| invalid(start, reason))?;
        out.push(record);
    }
    if c.pos != payload.len() {
        return Err(invalid(
            c.pos,
            format!(
                "expected {count} records to fill {} bytes, {} bytes are left over",
                payload.len(),
                payload.len() - c.pos
            ),
        ));
    }
    Ok(out)
}
