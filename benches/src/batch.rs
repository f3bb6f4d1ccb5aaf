//! Builds magic-2 record batches by hand for the load generators: keyless, non-idempotent
//! records of one size, uncompressed or compressed with any of Kafka's codecs (by
//! kafka-protocol's compressors, which frame Snappy and LZ4 as the Java client does). A batch
//! is built once as a template and re-stamped (timestamps, CRC) per send, so generating load
//! costs no per-record work.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bytes of the fixed magic-2 batch header (base offset .. records count).
pub const BATCH_HEADER_LEN: usize = 61;
/// Where the CRC32C sits in the header, and where the bytes it covers start.
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;

/// Why a batch could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchBuildError {
    #[error("expected at least one record per batch, found {records}")]
    NoRecords { records: usize },
    #[error("expected a batch of at most 2 GiB, found {records} records of {record_size} bytes")]
    TooLarge { records: usize, record_size: usize },
    #[error("{codec:?} compression failed: {reason}")]
    Compression { codec: Compression, reason: String },
}

/// A batch's codec, as the producer's `compression.type` (Kafka's attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn attribute(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Appends `records` to `buf`, compressed.
    fn put(self, buf: &mut BytesMut, records: &[u8]) -> Result<(), BatchBuildError> {
        let copy = |tmp: &mut BytesMut| {
            tmp.extend_from_slice(records);
            Ok(())
        };
        match self {
            Compression::None => {
                buf.extend_from_slice(records);
                Ok(())
            }
            Compression::Gzip => Gzip::compress(buf, copy),
            Compression::Snappy => Snappy::compress(buf, copy),
            Compression::Lz4 => Lz4::compress(buf, copy),
            Compression::Zstd => Zstd::compress(buf, copy),
        }
        .map_err(|e| BatchBuildError::Compression {
            codec: self,
            reason: format!("{e:#}"),
        })
    }
}

fn put_varint(buf: &mut BytesMut, value: i64) {
    // Zig-zag, then base-128 little-endian groups, as Kafka's ByteUtils.writeVarlong.
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        buf.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// One record's encoding: length, attributes, timestamp delta 0, offset delta, null key,
/// `value`, no headers.
fn put_record(buf: &mut BytesMut, offset_delta: i32, value: &[u8]) {
    let mut body = BytesMut::with_capacity(value.len() + 16);
    body.put_i8(0); // attributes
    put_varint(&mut body, 0); // timestamp delta
    put_varint(&mut body, i64::from(offset_delta));
    put_varint(&mut body, -1); // null key
    put_varint(&mut body, value.len() as i64);
    body.put_slice(value);
    put_varint(&mut body, 0); // header count
    put_varint(buf, body.len() as i64);
    buf.put_slice(&body);
}

/// A reusable batch of `records` records, each with a `record_size`-byte value.
#[derive(Debug, Clone)]
pub struct BatchTemplate {
    bytes: BytesMut,
    records: usize,
    record_size: usize,
}

impl BatchTemplate {
    /// Builds an uncompressed batch with base offset 0 and timestamps `timestamp_ms`.
    pub fn new(
        records: usize,
        record_size: usize,
        timestamp_ms: i64,
    ) -> Result<Self, BatchBuildError> {
        Self::compressed(records, record_size, timestamp_ms, Compression::None)
    }

    /// Builds the batch with its records compressed by `codec`.
    pub fn compressed(
        records: usize,
        record_size: usize,
        timestamp_ms: i64,
        codec: Compression,
    ) -> Result<Self, BatchBuildError> {
        // Random capital letters, a fresh value for every record, as kafka-producer-perf-test
        // makes them (seeded: the same batch every run), so compressed batches shrink about
        // as much as the Java tool's: by entropy coding alone, not by repeats.
        let mut rng = StdRng::seed_from_u64(record_size as u64);
        Self::build(records, record_size, timestamp_ms, codec, |value| {
            value.fill_with(|| rng.gen_range(b'A'..=b'Z'))
        })
    }

    /// An uncompressed batch of one record whose value is `value` (a record the caller can
    /// recognise when it comes back).
    pub fn single(value: &[u8], timestamp_ms: i64) -> Result<Self, BatchBuildError> {
        Self::build(1, value.len(), timestamp_ms, Compression::None, |out| {
            out.copy_from_slice(value)
        })
    }

    /// Builds `records` records of `record_size` bytes, each value written by `fill`.
    fn build(
        records: usize,
        record_size: usize,
        timestamp_ms: i64,
        codec: Compression,
        mut fill: impl FnMut(&mut [u8]),
    ) -> Result<Self, BatchBuildError> {
        if records == 0 {
            return Err(BatchBuildError::NoRecords { records });
        }
        let too_large = BatchBuildError::TooLarge {
            records,
            record_size,
        };
        let estimate = records
            .checked_mul(record_size.checked_add(16).ok_or(too_large.clone())?)
            .and_then(|n| n.checked_add(BATCH_HEADER_LEN))
            .filter(|n| *n < i32::MAX as usize)
            .ok_or(too_large.clone())?;
        let last_offset_delta = i32::try_from(records - 1).map_err(|_| too_large.clone())?;
        let count = i32::try_from(records).map_err(|_| too_large.clone())?;
        let mut value = vec![0u8; record_size];
        let mut buf = BytesMut::with_capacity(estimate);
        buf.put_i64(0); // base offset
        buf.put_i32(0); // batch length, patched below
        buf.put_i32(-1); // partition leader epoch
        buf.put_i8(2); // magic
        buf.put_u32(0); // crc, patched below
        buf.put_i16(codec.attribute()); // attributes: the codec, CreateTime
        buf.put_i32(last_offset_delta);
        buf.put_i64(timestamp_ms);
        buf.put_i64(timestamp_ms);
        buf.put_i64(-1); // producer id
        buf.put_i16(-1); // producer epoch
        buf.put_i32(-1); // base sequence
        buf.put_i32(count);
        let mut plain = BytesMut::with_capacity(estimate - BATCH_HEADER_LEN);
        for delta in 0..count {
            fill(&mut value);
            put_record(&mut plain, delta, &value);
        }
        codec.put(&mut buf, &plain)?;
        let batch_length = i32::try_from(buf.len() - 12).map_err(|_| too_large)?;
        if let Some(field) = buf.get_mut(8..12) {
            field.copy_from_slice(&batch_length.to_be_bytes());
        }
        let mut template = BatchTemplate {
            bytes: buf,
            records,
            record_size,
        };
        template.restamp(timestamp_ms);
        Ok(template)
    }

    /// The largest number of `record_size` records that fit in `batch_bytes` (at least 1).
    pub fn records_per_batch(batch_bytes: usize, record_size: usize) -> usize {
        // A record of value v costs v + 7..=9 bytes of framing for small deltas.
        let per_record = record_size + 8 + varint_len(record_size as i64);
        (batch_bytes.saturating_sub(BATCH_HEADER_LEN) / per_record.max(1)).max(1)
    }

    /// Sets both timestamps and recomputes the CRC.
    pub fn restamp(&mut self, timestamp_ms: i64) {
        if let Some(f) = self.bytes.get_mut(BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8) {
            f.copy_from_slice(&timestamp_ms.to_be_bytes());
        }
        if let Some(f) = self.bytes.get_mut(MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8) {
            f.copy_from_slice(&timestamp_ms.to_be_bytes());
        }
        let crc =
            strata_protocol::record_batch::crc32c(self.bytes.get(CRC_FROM..).unwrap_or_default());
        if let Some(f) = self.bytes.get_mut(CRC_AT..CRC_AT + 4) {
            f.copy_from_slice(&crc.to_be_bytes());
        }
    }

    /// A cheap handle on the current bytes (one copy of the template).
    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(&self.bytes)
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn records(&self) -> usize {
        self.records
    }

    pub fn record_size(&self) -> usize {
        self.record_size
    }

    /// Record bytes (values only) carried by one batch: what "MB/s" counts.
    pub fn payload_bytes(&self) -> usize {
        self.records * self.record_size
    }
}

fn varint_len(value: i64) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_protocol::record_batch::validate_produce_records;

    #[test]
    fn built_batches_pass_produce_validation() {
        for (records, size) in [(1, 0), (16, 1024), (150, 100), (3, 70_000)] {
            let t = BatchTemplate::new(records, size, 1_700_000_000_000).unwrap();
            let summary = validate_produce_records(&t.to_bytes(), 1 << 30).unwrap();
            assert_eq!(summary.batch_count, 1);
            assert_eq!(summary.record_count, records as i64);
            assert_eq!(summary.max_timestamp, 1_700_000_000_000);
        }
    }

    #[test]
    fn compressed_batches_decode_with_an_independent_decoder() {
        use kafka_protocol::records::{Compression as Codec, RecordBatchDecoder};
        let plain = BatchTemplate::new(200, 100, 7).unwrap();
        for (codec, expected) in [
            (Compression::None, Codec::None),
            (Compression::Gzip, Codec::Gzip),
            (Compression::Snappy, Codec::Snappy),
            (Compression::Lz4, Codec::Lz4),
            (Compression::Zstd, Codec::Zstd),
        ] {
            let mut t = BatchTemplate::compressed(200, 100, 7, codec).unwrap();
            t.restamp(9);
            let bytes = t.to_bytes();
            let summary = validate_produce_records(&bytes, 1 << 20).unwrap();
            assert_eq!(summary.record_count, 200, "{codec:?}");
            // Random letters carry 4.7 bits a byte: entropy coders shrink them by about 40%,
            // LZ4 and Snappy (no entropy coding) hardly at all.
            match codec {
                Compression::Gzip | Compression::Zstd => {
                    assert!(
                        t.len() < plain.len() * 3 / 4,
                        "{codec:?}: {} bytes",
                        t.len()
                    )
                }
                _ => assert!(
                    t.len() < plain.len() * 11 / 10,
                    "{codec:?}: {} bytes",
                    t.len()
                ),
            }
            let set = RecordBatchDecoder::decode(&mut bytes.clone()).unwrap();
            assert_eq!(set.compression, expected);
            assert_eq!(set.records.len(), 200, "{codec:?}");
            let values: std::collections::HashSet<Bytes> = set
                .records
                .iter()
                .map(|r| r.value.clone().unwrap())
                .collect();
            assert_eq!(values.len(), 200, "{codec:?}: every record its own value");
            assert!(values
                .iter()
                .all(|v| v.len() == 100 && v.iter().all(u8::is_ascii_uppercase)));
            for (i, r) in set.records.iter().enumerate() {
                assert_eq!(r.offset, i as i64);
                assert_eq!(r.timestamp, 9);
            }
        }
    }

    #[test]
    fn restamped_batches_keep_a_valid_crc() {
        let mut t = BatchTemplate::new(10, 100, 1).unwrap();
        t.restamp(42);
        let summary = validate_produce_records(&t.to_bytes(), 1 << 20).unwrap();
        assert_eq!(summary.max_timestamp, 42);
    }

    #[test]
    fn records_per_batch_fills_but_does_not_overflow() {
        for (batch, size) in [(16 * 1024, 1024), (16 * 1024, 100), (1000, 5000)] {
            let n = BatchTemplate::records_per_batch(batch, size);
            let t = BatchTemplate::new(n, size, 0).unwrap();
            assert!(
                t.len() <= batch.max(BATCH_HEADER_LEN + size + 12),
                "{n} x {size}"
            );
        }
        assert_eq!(BatchTemplate::records_per_batch(16 * 1024, 1024), 15);
    }

    #[test]
    fn zero_records_is_refused() {
        assert_eq!(
            BatchTemplate::new(0, 10, 0).unwrap_err(),
            BatchBuildError::NoRecords { records: 0 }
        );
    }
}
