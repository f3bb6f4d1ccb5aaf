//! Reading the records of a compressed batch as a stream, with memory bounded whatever the
//! input claims. kafka-protocol's decompressors inflate a whole batch into one buffer sized
//! by the output (or, for Snappy, by the length the input declares), so a small hostile batch
//! could ask for gigabytes; here the produce path walks the records through a fixed-size
//! window and never holds the whole payload, and [`decompress_all`] (for compaction, which
//! needs the records in memory) stops at a caller's limit.
//!
//! Framings are the ones Kafka's clients write for magic-2 batches: gzip members (several are
//! read one after another, as Java's `GZIPInputStream` does), Snappy in xerial's framing or
//! raw (Java's `SnappyInputStream` falls back to raw when the magic is absent), the LZ4 frame
//! format, and Zstandard frames (window up to the library's default limit, 2^27, as Java's).

use std::cell::RefCell;
use std::io::{self, Read};

/// Codec ids of the batch attributes' low three bits.
pub const CODEC_NONE: u8 = 0;
pub const CODEC_GZIP: u8 = 1;
pub const CODEC_SNAPPY: u8 = 2;
pub const CODEC_LZ4: u8 = 3;
pub const CODEC_ZSTD: u8 = 4;

/// xerial's Snappy framing: 8 bytes of magic, then a version and a compatible version (int32
/// each), then blocks of `[int32 compressed length][raw snappy block]`.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;
/// A Snappy copy element yields at most 64 bytes for 3 bytes of input, so no honest block
/// decompresses to more than 22 times its size; a larger claim is refused before allocating.
const SNAPPY_MAX_RATIO: usize = 22;

/// Why compressed records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("unknown compression type id {0}")]
    UnknownCodec(u8),
    #[error("failed to decompress the record stream: {0}")]
    Corrupt(#[from] io::Error),
    #[error("expected at most {limit} decompressed bytes, the records decompress to more")]
    TooLarge { limit: usize },
}

impl DecompressError {
    /// The code Kafka's broker answers with: MESSAGE_TOO_LARGE when the records are too
    /// large to hold, UNKNOWN_SERVER_ERROR when they cannot be read at all.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            DecompressError::TooLarge { .. } => 10,
            DecompressError::UnknownCodec(_) | DecompressError::Corrupt(_) => -1,
        }
    }
}

/// A reader of the decompressed records of `input` (a batch's bytes after its 61-byte
/// header) compressed with `codec` (1-4). Unbuffered: read it in large pieces (the walker
/// keeps its own window). Allocates per call, not per record.
pub fn decompressor<'a>(codec: u8, input: &'a [u8]) -> Result<Box<dyn Read + 'a>, DecompressError> {
    Ok(match codec {
        CODEC_GZIP => Box::new(flate2::read::MultiGzDecoder::new(input)),
        CODEC_SNAPPY => Box::new(SnappyReader::new(input)),
        CODEC_LZ4 => Box::new(lz4::Decoder::new(input)?),
        CODEC_ZSTD => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        other => return Err(DecompressError::UnknownCodec(other)),
    })
}

thread_local! {
    /// Zstandard's decompression context, reused: creating one costs about as much as
    /// decompressing a 16 KiB batch. `None` if the library could not allocate one.
    static ZSTD_CONTEXT: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
        RefCell::new(zstd::zstd_safe::DCtx::try_create());
}

/// Runs `f` over a reader of `input`'s decompressed records: [`decompressor`]'s, except that
/// Zstandard reuses this thread's context (a fresh one when it is taken or missing).
pub fn with_decompressor<T>(
    codec: u8,
    input: &[u8],
    f: impl FnOnce(&mut dyn Read) -> T,
) -> Result<T, DecompressError> {
    if codec != CODEC_ZSTD {
        let mut reader = decompressor(codec, input)?;
        return Ok(f(&mut *reader));
    }
    ZSTD_CONTEXT.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok();
        match slot.as_deref_mut().and_then(Option::as_mut) {
            Some(context) => {
                // A batch that failed half-way leaves the previous session behind.
                context
                    .reset(zstd::zstd_safe::ResetDirective::SessionOnly)
                    .map_err(|code| {
                        io::Error::other(zstd::zstd_safe::get_error_name(code).to_owned())
                    })?;
                let mut reader = zstd::stream::read::Decoder::with_context(input, context);
                Ok(f(&mut reader))
            }
            None => {
                let mut reader = zstd::stream::read::Decoder::with_buffer(input)?;
                Ok(f(&mut reader))
            }
        }
    })
}

/// All of `input`'s decompressed bytes, or `TooLarge` as soon as they pass `limit`.
pub fn decompress_all(codec: u8, input: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    with_decompressor(codec, input, |reader| {
        reader.take(cap).read_to_end(&mut out)
    })??;
    if out.len() > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    Ok(out)
}

/// `plain` (concatenated record encodings) compressed with `codec` (1-4) at `level` (Kafka's
/// `compression.<codec>.level`; gzip -1 is zlib's default, Snappy has no levels), framed as
/// Kafka's Java client frames it: a gzip member, xerial-framed Snappy, an LZ4 frame of
/// independent 64 KiB blocks without checksums, a Zstandard frame.
pub fn compress(codec: u8, level: i32, plain: &[u8]) -> Result<Vec<u8>, DecompressError> {
    use std::io::Write;
    let mut out = Vec::with_capacity(plain.len() / 2 + 64);
    match codec {
        CODEC_GZIP => {
            let level = u32::try_from(level).map_or(flate2::Compression::default(), |l| {
                flate2::Compression::new(l.min(9))
            });
            let mut encoder = flate2::write::GzEncoder::new(&mut out, level);
            encoder.write_all(plain)?;
            encoder.finish()?;
        }
        CODEC_SNAPPY => {
            use kafka_protocol::compression::{Compressor, Snappy};
            let mut framed = bytes::BytesMut::new();
            <Snappy as Compressor<bytes::BytesMut>>::compress(&mut framed, |b| {
                b.extend_from_slice(plain);
                Ok(())
            })
            .map_err(|e| io::Error::other(format!("snappy: {e:#}")))?;
            out.extend_from_slice(&framed);
        }
        CODEC_LZ4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .level(u32::try_from(level).unwrap_or(9))
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(&mut out)?;
            encoder.write_all(plain)?;
            let (_, finished) = encoder.finish();
            finished?;
        }
        CODEC_ZSTD => zstd::stream::copy_encode(plain, &mut out, level)?,
        other => return Err(DecompressError::UnknownCodec(other)),
    }
    Ok(out)
}

/// Snappy as Kafka's clients write it: xerial-framed blocks, or one raw block when the
/// magic is absent (librdkafka's choice). One block is decompressed at a time.
struct SnappyReader<'a> {
    /// Compressed bytes not yet decoded (for raw Snappy, the single block).
    input: &'a [u8],
    framed: bool,
    started: bool,
    block: Vec<u8>,
    /// Read position in `block`.
    at: usize,
}

impl<'a> SnappyReader<'a> {
    fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            framed: input.starts_with(&XERIAL_MAGIC),
            started: false,
            block: Vec::new(),
            at: 0,
        }
    }

    fn corrupt(what: impl Into<String>) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, what.into())
    }

    /// Decodes the next block into `block`; false at the end of the input.
    fn next_block(&mut self) -> io::Result<bool> {
        let compressed = if self.framed {
            if !self.started {
                self.input = self.input.get(XERIAL_HEADER_LEN..).ok_or_else(|| {
                    Self::corrupt("expected a 16-byte xerial snappy header, found fewer bytes")
                })?;
            }
            if self.input.is_empty() {
                return Ok(false);
            }
            let (len, rest) = self
                .input
                .split_first_chunk::<4>()
                .ok_or_else(|| Self::corrupt("expected a 4-byte snappy block length"))?;
            let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
            let (block, rest) = rest.split_at_checked(len).ok_or_else(|| {
                Self::corrupt(format!(
                    "expected a snappy block of {len} bytes, found {}",
                    rest.len()
                ))
            })?;
            self.input = rest;
            block
        } else {
            if self.started {
                return Ok(false);
            }
            std::mem::take(&mut self.input)
        };
        self.started = true;
        let claimed = snap::raw::decompress_len(compressed)
            .map_err(|e| Self::corrupt(format!("snappy block header: {e}")))?;
        let bound = compressed
            .len()
            .saturating_mul(SNAPPY_MAX_RATIO)
            .saturating_add(32);
        if claimed > bound {
            return Err(Self::corrupt(format!(
                "a snappy block of {} bytes claims {claimed} decompressed bytes",
                compressed.len()
            )));
        }
        self.block.clear();
        self.block.resize(claimed, 0);
        let n = snap::raw::Decoder::new()
            .decompress(compressed, &mut self.block)
            .map_err(|e| Self::corrupt(format!("snappy block: {e}")))?;
        self.block.truncate(n);
        self.at = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let available = self.block.get(self.at..).unwrap_or_default();
        let n = available.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), available.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

    fn compress(codec: u8, data: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let fill = |b: &mut BytesMut| -> anyhow::Result<()> {
            b.extend_from_slice(data);
            Ok(())
        };
        match codec {
            CODEC_GZIP => <Gzip as Compressor<BytesMut>>::compress(&mut out, fill),
            CODEC_SNAPPY => <Snappy as Compressor<BytesMut>>::compress(&mut out, fill),
            CODEC_LZ4 => <Lz4 as Compressor<BytesMut>>::compress(&mut out, fill),
            CODEC_ZSTD => <Zstd as Compressor<BytesMut>>::compress(&mut out, fill),
            _ => unreachable!(),
        }
        .unwrap();
        out.to_vec()
    }

    fn sample() -> Vec<u8> {
        (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn every_codec_reads_back_what_kafka_protocol_wrote() {
        let data = sample();
        for codec in [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD] {
            let compressed = compress(codec, &data);
            let mut out = Vec::new();
            decompressor(codec, &compressed)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data, "codec {codec}");
            assert_eq!(
                decompress_all(codec, &compressed, data.len()).unwrap(),
                data
            );
        }
    }

    #[test]
    fn raw_snappy_and_concatenated_gzip_members_are_read_whole() {
        let data = sample();
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(
            decompress_all(CODEC_SNAPPY, &raw, usize::MAX).unwrap(),
            data
        );
        let (a, b) = data.split_at(1000);
        let mut two = compress(CODEC_GZIP, a);
        two.extend(compress(CODEC_GZIP, b));
        assert_eq!(decompress_all(CODEC_GZIP, &two, usize::MAX).unwrap(), data);
    }

    #[test]
    fn the_reused_zstd_context_starts_clean_after_a_failure() {
        let data = sample();
        let good = compress(CODEC_ZSTD, &data);
        let mut cut_short = good.clone();
        cut_short.truncate(good.len() / 2);
        let mut garbled = good.clone();
        for b in garbled.iter_mut().skip(20).step_by(3) {
            *b ^= 0x33;
        }
        for bad in [cut_short, garbled] {
            // Stopped half-way (a limit), failed, then a sound frame on the same thread.
            assert!(decompress_all(CODEC_ZSTD, &good, 1000).is_err());
            assert!(decompress_all(CODEC_ZSTD, &bad, usize::MAX)
                .map(|out| out != data)
                .unwrap_or(true));
            assert_eq!(decompress_all(CODEC_ZSTD, &good, usize::MAX).unwrap(), data);
        }
        // Nested use (a reader inside a reader) takes a fresh context instead of panicking.
        let nested = with_decompressor(CODEC_ZSTD, &good, |outer| {
            let inner = decompress_all(CODEC_ZSTD, &good, usize::MAX).unwrap();
            let mut first = Vec::new();
            outer.read_to_end(&mut first).unwrap();
            (first, inner)
        })
        .unwrap();
        assert_eq!(nested, (data.clone(), data));
    }

    #[test]
    fn decompress_all_stops_at_the_limit() {
        let zeros = vec![0u8; 10 << 20];
        for codec in [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD] {
            let compressed = compress(codec, &zeros);
            match decompress_all(codec, &compressed, 1 << 20) {
                Err(DecompressError::TooLarge { limit }) => assert_eq!(limit, 1 << 20),
                other => panic!("codec {codec}: expected TooLarge, found {other:?}"),
            }
        }
    }

    #[test]
    fn snappy_claims_beyond_any_ratio_are_refused_before_allocating() {
        // A raw block whose varint header claims 4 GiB - 1 from six bytes of input.
        let claim = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        let err = decompress_all(CODEC_SNAPPY, &claim, usize::MAX).unwrap_err();
        assert!(err.to_string().contains("claims"), "{err}");
        // The same inside xerial framing.
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend([0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 6]);
        framed.extend(claim);
        assert!(decompress_all(CODEC_SNAPPY, &framed, usize::MAX).is_err());
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let data = sample();
        for codec in [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD] {
            let compressed = compress(codec, &data);
            // A cut stream is an error or a prefix of the data (LZ4's decoder, for one, does
            // not insist on the end mark), never more than was there.
            for cut in [0, 1, 7, 16, 20, compressed.len() / 2, compressed.len() - 1] {
                if let Ok(out) = decompress_all(codec, &compressed[..cut], usize::MAX) {
                    assert!(data.starts_with(&out), "codec {codec} cut at {cut}");
                }
            }
            let mut flipped = compressed.clone();
            for i in (0..flipped.len()).step_by(97) {
                flipped[i] ^= 0x5a;
            }
            let _ = decompress_all(codec, &flipped, 64 << 20);
        }
        assert!(matches!(
            decompressor(5, &[]),
            Err(DecompressError::UnknownCodec(5))
        ));
    }
}
