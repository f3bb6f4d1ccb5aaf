//! Byte formats: the network frame `[u32 length][payload]` and the on-disk record
//! `[u32 length][u32 crc32c][payload]` (all integers big-endian).
//!
//! Public so that tests and tools can exercise the decoders with hostile input; the broker does
//! not need it.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest network frame accepted or sent. Snapshots travel in chunks well below this.
pub const MAX_FRAME: usize = 64 << 20;

/// Largest on-disk record; a bigger length field can only be corruption.
pub const MAX_RECORD: usize = 64 << 20;

const LEN: usize = 4;
const RECORD_HEADER: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
}

fn be_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// Encodes one network frame.
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = checked_len(payload.len(), MAX_FRAME)?;
    let mut out = Vec::with_capacity(LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

fn checked_len(len: usize, max: usize) -> Result<u32, FrameError> {
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    u32::try_from(len).map_err(|_| FrameError::TooLarge { len, max })
}

/// Splits one network frame off the front of `buf`: `Ok(Some((payload, consumed)))`,
/// `Ok(None)` when more bytes are needed, `Err` when the length field is out of bounds.
pub fn decode_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(len) = be_u32(buf, 0) else {
        return Ok(None);
    };
    let len = len as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(buf.get(LEN..LEN + len).map(|payload| (payload, LEN + len)))
}

/// Reads one frame; `Ok(None)` on a clean end of stream before any byte of a frame.
///
/// The payload buffer grows as bytes arrive rather than being allocated from the (untrusted)
/// length field, so a peer announcing 64 MiB and sending nothing costs us nothing.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; LEN];
    let mut filled = 0;
    while filled < LEN {
        let rest = header.get_mut(filled..).unwrap_or_default();
        let n = r.read(rest).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            FrameError::TooLarge { len, max },
        ));
    }
    let mut payload = Vec::with_capacity(len.min(64 * 1024));
    let got = r.take(len as u64).read_to_end(&mut payload).await?;
    if got != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(payload))
}

/// Writes one frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    let len = checked_len(payload.len(), MAX_FRAME)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // One buffer, one write: with TCP_NODELAY a separate header would go out as its own segment.
    let mut buf = Vec::with_capacity(LEN + payload.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf).await?;
    w.flush().await
}

/// Encodes one on-disk record.
pub fn encode_record(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = checked_len(payload.len(), MAX_RECORD)?;
    let mut out = Vec::with_capacity(RECORD_HEADER + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// What `decode_record` found at the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// A whole record whose checksum matches.
    Complete { payload: &'a [u8], consumed: usize },
    /// The buffer ends inside the header or payload (a torn write at the tail of a file).
    Incomplete,
    /// Length out of bounds or checksum mismatch.
    Corrupt(String),
}

pub fn decode_record(buf: &[u8]) -> Record<'_> {
    let (Some(len), Some(crc)) = (be_u32(buf, 0), be_u32(buf, LEN)) else {
        return Record::Incomplete;
    };
    let len = len as usize;
    if len > MAX_RECORD {
        return Record::Corrupt(format!("record length {len} exceeds {MAX_RECORD}"));
    }
    let Some(payload) = buf.get(RECORD_HEADER..RECORD_HEADER + len) else {
        return Record::Incomplete;
    };
    let actual = crc32c::crc32c(payload);
    if actual != crc {
        return Record::Corrupt(format!(
            "crc32c mismatch: stored {crc:#010x}, computed {actual:#010x}"
        ));
    }
    Record::Complete {
        payload,
        consumed: RECORD_HEADER + len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_roundtrip_and_partial() {
        let Ok(enc) = encode_frame(b"hello") else {
            panic!("encode failed");
        };
        assert_eq!(decode_frame(&enc, MAX_FRAME), Ok(Some((&b"hello"[..], 9))));
        for cut in 0..enc.len() {
            assert_eq!(
                decode_frame(enc.get(..cut).unwrap_or_default(), MAX_FRAME),
                Ok(None)
            );
        }
        assert!(decode_frame(&[0xff, 0xff, 0xff, 0xff], MAX_FRAME).is_err());
    }

    #[test]
    fn record_detects_flipped_bit() {
        let Ok(mut enc) = encode_record(b"payload") else {
            panic!("encode failed");
        };
        assert!(matches!(
            decode_record(&enc),
            Record::Complete { consumed: 15, .. }
        ));
        if let Some(b) = enc.last_mut() {
            *b ^= 1;
        }
        assert!(matches!(decode_record(&enc), Record::Corrupt(_)));
        assert_eq!(
            decode_record(enc.get(..10).unwrap_or_default()),
            Record::Incomplete
        );
    }
}
