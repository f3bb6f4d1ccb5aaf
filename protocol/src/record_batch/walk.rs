//! Walking the records of a magic-2 batch (Kafka's DefaultRecord layout) without copying them:
//! uncompressed ones in place, with a fast reader for sound records and a reference reader
//! that names what is wrong; compressed ones through a bounded window of the decompressed
//! stream ([`super::compression`]). Hostile bytes only ever yield errors.

use std::io::{self, Read};

use super::compression::{with_decompressor, DecompressError, CODEC_NONE};
use super::records::RecordsRefused;
use super::{RecordBatchHeader, BATCH_HEADER_LEN};

/// What one record's walk found that the rules care about.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecordSeen {
    pub(super) timestamp_delta: i64,
    pub(super) has_key: bool,
}

/// Walks every record of the batch, handing each to `seen` with its index; refuses (as
/// INVALID_RECORD) a record that does not parse, fewer records than declared, bytes after
/// the last one, and in a compressed batch inner offset deltas other than 0, 1, 2, ...
pub(super) fn walk(
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
        with_decompressor(codec, records, |reader| {
            walk_source(&mut StreamSource::new(reader), count, seen)
        })?
    }
}

fn walk_source<R: Read>(
    src: &mut StreamSource<R>,
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

/// `walk_source` for uncompressed records, in place. Each record is first read by
/// [`fast_record`], which only says whether it is sound; at the first record it does not
/// accept, the walk goes on from that record with the reader that names what is wrong
/// ([`slice_record`]), which is the reference for what is accepted.
fn walk_slice(
    records: &[u8],
    count: u32,
    mut seen: impl FnMut(u32, RecordSeen),
) -> Result<(), RecordsRefused> {
    let mut pos = 0usize;
    let mut index = 0u32;
    while index < count {
        match fast_record(records, &mut pos) {
            Some(record) => seen(index, record),
            None => break,
        }
        index += 1;
    }
    let mut rest = records.get(pos..).unwrap_or_default();
    while index < count {
        let record = slice_record(&mut rest).map_err(|e| e.refusal(index))?;
        seen(index, record);
        index += 1;
    }
    if !rest.is_empty() {
        return Err(RecordsRefused::invalid(
            "Incorrect declared batch size, records still remaining in file",
        ));
    }
    Ok(())
}

/// The record at `buf[*pos..]` if it is sound (advancing `pos` past it), else `None` with
/// `pos` unchanged. Lengths are added unchecked and the sum compared with the record's size
/// once at the end, so a field costs a load and a compare; fewer instructions a record than
/// [`slice_record`], whose errors it does not need to build.
#[inline(always)]
fn fast_record(buf: &[u8], pos: &mut usize) -> Option<RecordSeen> {
    let mut at = *pos;
    let size = usize::try_from(zigzag32(fast_varint(buf, &mut at)?)).ok()?;
    let body = buf.get(at..at.checked_add(size)?)?;
    let mut p = 1; // attributes
    let timestamp_delta = zigzag64(fast_varlong(body, &mut p)?);
    fast_varint(body, &mut p)?; // offset delta
    let key_len = zigzag32(fast_varint(body, &mut p)?);
    p += usize::try_from(key_len).unwrap_or(0);
    let value_len = zigzag32(fast_varint(body, &mut p)?);
    p += usize::try_from(value_len).unwrap_or(0);
    let headers = zigzag32(fast_varint(body, &mut p)?);
    for _ in 0..headers {
        let header_key = usize::try_from(zigzag32(fast_varint(body, &mut p)?)).ok()?;
        p += header_key;
        let header_value = zigzag32(fast_varint(body, &mut p)?);
        p += usize::try_from(header_value).unwrap_or(0);
    }
    // `headers < 0` skips the loop and is caught here only if the record also ends early;
    // refuse it explicitly, as the reference reader does.
    if headers < 0 || p != body.len() {
        return None;
    }
    *pos = at + size;
    Some(RecordSeen {
        timestamp_delta,
        has_key: key_len >= 0,
    })
}

/// An unsigned varint of up to 5 bytes at `buf[*p..]`, advancing `p`; `None` past the end or
/// when too long. (`p` may lie beyond the end after an unchecked length: `get` says so.)
#[inline(always)]
pub(super) fn fast_varint(buf: &[u8], p: &mut usize) -> Option<u32> {
    let b0 = *buf.get(*p)?;
    if b0 < 0x80 {
        *p += 1;
        return Some(u32::from(b0));
    }
    let b1 = *buf.get(*p + 1)?;
    if b1 < 0x80 {
        *p += 2;
        return Some(u32::from(b0 & 0x7f) | u32::from(b1) << 7);
    }
    let mut value = u32::from(b0 & 0x7f) | u32::from(b1 & 0x7f) << 7;
    for (i, shift) in [(2usize, 14u32), (3, 21), (4, 28)] {
        let b = *buf.get(*p + i)?;
        value |= u32::from(b & 0x7f).wrapping_shl(shift);
        if b < 0x80 {
            *p += i + 1;
            return Some(value);
        }
    }
    None
}

/// As [`fast_varint`], up to 10 bytes.
#[inline(always)]
fn fast_varlong(buf: &[u8], p: &mut usize) -> Option<u64> {
    let b0 = *buf.get(*p)?;
    if b0 < 0x80 {
        *p += 1;
        return Some(u64::from(b0));
    }
    let mut value = 0u64;
    for i in 0..10usize {
        let b = *buf.get(*p + i)?;
        value |= u64::from(b & 0x7f).wrapping_shl(7 * i as u32);
        if b < 0x80 {
            *p += i + 1;
            return Some(value);
        }
    }
    None
}

/// One record from the front of `rest`, or what is wrong with it. Its offset delta is not
/// checked, as Kafka's in-place path for uncompressed batches does not check it.
fn slice_record(rest: &mut &[u8]) -> Result<RecordSeen, WalkError> {
    let mut cursor = SliceCursor(rest);
    let size = read_varint(&mut cursor)?;
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
fn read_record<R: Read>(src: &mut StreamSource<R>) -> Result<(RecordSeen, i32), WalkError> {
    src.unbound();
    let size = read_varint(src)?;
    let size = usize::try_from(size).map_err(|_| WalkError::Invalid("negative record size"))?;
    src.bound(size);
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
    let timestamp_delta = read_varlong(src)?;
    let offset_delta = read_varint(src)?;
    let key_len = read_varint(src)?;
    skip_bytes(src, key_len)?;
    let value_len = read_varint(src)?;
    skip_bytes(src, value_len)?;
    let headers = read_varint(src)?;
    if headers < 0 {
        return Err(WalkError::Invalid("negative number of record headers"));
    }
    for _ in 0..headers {
        let key_len = read_varint(src)?;
        if key_len < 0 {
            return Err(WalkError::Invalid("negative header key size"));
        }
        skip_bytes(src, key_len)?;
        let value_len = read_varint(src)?;
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
pub(super) fn zigzag32(v: u32) -> i32 {
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

/// Record bytes, read one field at a time (for [`record_fields`]).
trait Source {
    fn byte(&mut self) -> Result<u8, WalkError>;
    fn skip(&mut self, n: usize) -> Result<(), WalkError>;
}

/// Uncompressed record bytes, read in place (the reference reader's; sound records take
/// [`fast_record`]).
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
}

/// Bytes of decompressed records read at a time by [`StreamSource`].
const WINDOW: usize = 64 * 1024;

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

    /// The next `size` bytes are the current record.
    fn bound(&mut self, size: usize) {
        // The stream's length is unknown until read; a short stream fails as EOF in a field.
        self.left = size;
    }

    fn unbound(&mut self) {
        self.left = usize::MAX;
    }

    fn at_bound(&self) -> bool {
        self.left == 0
    }

    /// No bytes left after the last record.
    fn exhausted(&mut self) -> Result<bool, WalkError> {
        Ok(self.at >= self.filled && !self.refill()?)
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    /// The walk with the reference reader only.
    fn slow_walk(records: &[u8], count: u32) -> Result<Vec<(i64, bool)>, RecordsRefused> {
        let mut rest = records;
        let mut out = Vec::new();
        for index in 0..count {
            let r = slice_record(&mut rest).map_err(|e| e.refusal(index))?;
            out.push((r.timestamp_delta, r.has_key));
        }
        if !rest.is_empty() {
            return Err(RecordsRefused::invalid("remaining"));
        }
        Ok(out)
    }

    fn fast_walk(records: &[u8], count: u32) -> Result<Vec<(i64, bool)>, RecordsRefused> {
        let mut out = Vec::new();
        walk_slice(records, count, |_, r| {
            out.push((r.timestamp_delta, r.has_key))
        })?;
        Ok(out)
    }

    /// Record-shaped bytes: mostly sound records, with random edits.
    fn records_strategy() -> impl Strategy<Value = (Vec<u8>, u32)> {
        let record = (
            any::<i64>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
            proptest::collection::vec(any::<u8>(), 0..300),
            0usize..3,
        );
        (
            proptest::collection::vec(record, 1..6),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        )
            .prop_map(|(records, edits)| {
                let mut out = Vec::new();
                let count = records.len() as u32;
                for (ts, key, value, headers) in records {
                    let mut body = vec![0u8];
                    put(&mut body, ts);
                    put(&mut body, 0);
                    match key {
                        Some(k) => {
                            put(&mut body, k.len() as i64);
                            body.extend(k);
                        }
                        None => put(&mut body, -1),
                    }
                    put(&mut body, value.len() as i64);
                    body.extend(value);
                    put(&mut body, headers as i64);
                    for h in 0..headers {
                        put(&mut body, 1);
                        body.push(b'h');
                        put(&mut body, h as i64 - 1);
                        body.extend(std::iter::repeat_n(b'v', h.saturating_sub(1)));
                    }
                    put(&mut out, body.len() as i64);
                    out.extend(body);
                }
                for (at, byte) in edits {
                    let i = at.index(out.len());
                    out[i] = byte;
                }
                (out, count)
            })
    }

    fn put(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// The fast reader accepts exactly what the reference reader accepts, with the same
        /// facts, and refusals carry the reference reader's message.
        #[test]
        fn fast_and_reference_readers_agree((records, count) in records_strategy(), extra in 0u32..2) {
            let count = count + extra;
            prop_assert_eq!(fast_walk(&records, count), slow_walk(&records, count).map_err(|e| {
                if e.message == "remaining" {
                    RecordsRefused::invalid("Incorrect declared batch size, records still remaining in file")
                } else {
                    e
                }
            }));
        }
    }
}
