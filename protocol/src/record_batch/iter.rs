//! Walking a buffer that holds whole batches back to back (a segment slice, a fetch
//! response, a produce payload). Stops at the first incomplete or unreadable batch and
//! says how many bytes before it were good, which is what log recovery truncates to.

use super::{BatchError, RecordBatchHeader, BATCH_HEADER_LEN};

/// One batch found by `BatchIter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRef<'a> {
    /// Where the batch starts in the iterated buffer (for `Bytes::slice`).
    pub position: usize,
    pub header: RecordBatchHeader,
    /// The whole batch, header included.
    pub bytes: &'a [u8],
}

/// Iterates successive batches in a buffer (e.g. a segment slice); yields header + the batch's bytes;
/// stops cleanly at an incomplete tail and reports how many bytes were valid.
/// CRCs are not checked here (call `verify_crc` where the cost is wanted).
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    stopped: Option<BatchError>,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter {
            buf,
            pos: 0,
            stopped: None,
        }
    }

    /// Bytes from the start of the buffer up to the end of the last batch yielded.
    pub fn valid_len(&self) -> usize {
        self.pos
    }

    /// Why iteration ended early: `None` if the buffer ended exactly at a batch boundary
    /// (or iteration is not finished), `Some(Truncated)` for a torn tail, or another error
    /// for a header that cannot be read (bad magic, impossible length).
    pub fn stop_reason(&self) -> Option<&BatchError> {
        self.stopped.as_ref()
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = BatchRef<'a>;

    fn next(&mut self) -> Option<BatchRef<'a>> {
        if self.stopped.is_some() {
            return None;
        }
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            return None;
        }
        let header = match RecordBatchHeader::parse(rest) {
            Ok(header) => header,
            Err(e) => {
                self.stopped = Some(e);
                return None;
            }
        };
        let size = header.total_size();
        let Some(bytes) = rest.get(..size) else {
            self.stopped = Some(BatchError::Truncated {
                needed: size.max(BATCH_HEADER_LEN),
                available: rest.len(),
            });
            return None;
        };
        let position = self.pos;
        self.pos += size;
        Some(BatchRef {
            position,
            header,
            bytes,
        })
    }
}
