//! The broker's side of a topic's `compression.type`: a batch produced with another codec is
//! stored with the topic's (Kafka's LogValidator rebuilds such batches too). Records are kept
//! byte for byte, only their compression changes; the header keeps every field but the codec
//! bits, the length and the CRC.

use super::compression::{compress, decompress_all, DecompressError, CODEC_NONE};
use super::{
    write, RecordBatchHeader, ATTRIBUTES, BATCH_HEADER_LEN, BATCH_LENGTH, CRC, LOG_OVERHEAD,
};

/// `batch` (one whole, validated batch, parsed as `header`) with its records compressed by
/// `target` (0 = none) at `level`. The decompressed records may take at most `max_plain`
/// bytes (else `TooLarge`: the broker must hold them to recompress).
pub fn recompress_batch(
    batch: &[u8],
    header: &RecordBatchHeader,
    target: u8,
    level: i32,
    max_plain: usize,
) -> Result<Vec<u8>, DecompressError> {
    let payload = batch
        .get(BATCH_HEADER_LEN..header.total_size())
        .unwrap_or_default();
    let source = header.compression();
    let decompressed;
    let plain = if source == CODEC_NONE {
        payload
    } else {
        decompressed = decompress_all(source, payload, max_plain)?;
        &decompressed[..]
    };
    let compressed;
    let records = if target == CODEC_NONE {
        plain
    } else {
        compressed = compress(target, level, plain)?;
        &compressed[..]
    };
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + records.len());
    out.extend_from_slice(batch.get(..BATCH_HEADER_LEN).unwrap_or_default());
    out.extend_from_slice(records);
    let attributes = (header.attributes & !0x07) | i16::from(target & 0x07);
    write(&mut out, ATTRIBUTES, &attributes.to_be_bytes());
    let batch_length =
        i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| DecompressError::TooLarge {
            limit: i32::MAX as usize,
        })?;
    write(&mut out, BATCH_LENGTH, &batch_length.to_be_bytes());
    let crc = super::crc32c(out.get(ATTRIBUTES..).unwrap_or_default());
    write(&mut out, CRC, &crc.to_be_bytes());
    Ok(out)
}
