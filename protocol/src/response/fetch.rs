//! Zero-copy Fetch responses: the frame as a short list of chunks for a vectored write, with
//! every partition's `records` passed through as the very `Bytes` the log handed us (slices of
//! mmap'd segments) instead of being copied into the response buffer.
//!
//! kafka-protocol still encodes every field around the records, so the bytes stay exactly those
//! of [`encode_response`](super::encode_response); we only cut its output where the records go.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;

use super::EncodeError;
use crate::frame::FRAME_PREFIX_LEN;

/// Fetch v12 is the first flexible version (compact arrays and bytes, tagged fields).
pub(super) const FIRST_FLEXIBLE_VERSION: i16 = 12;

/// Room for one partition's fields around its records, for the first buffer's capacity.
const PARTITION_SIZE_HINT: usize = 64;

/// Caps the up-front reservation: the buffer grows past it if a response really needs more.
const MAX_INITIAL_CAPACITY: usize = 1 << 20;

/// Encodes a whole Fetch response frame (4-byte size prefix + response header for that version +
/// body) as a list of chunks: small encoded pieces in between, and every partition's non-empty
/// `records` as its own chunk (the very `Bytes` that was in the struct, not a copy).
/// Concatenating the chunks gives exactly the bytes that
/// `encode_response(correlation_id, ApiKey::Fetch, version, &ResponseKind::Fetch(resp))` gives.
///
/// Adjacent small pieces are merged, so a response has at most two chunks per partition with
/// records, plus one.
///
/// The responses a broker sends for nearly every Fetch are written field by field
/// ([`super::fetch_plain`]); the rest go through kafka-protocol's encoder here.
pub fn encode_fetch_response_chunks(
    correlation_id: i32,
    version: i16,
    resp: &FetchResponse,
) -> Result<Vec<Bytes>, EncodeError> {
    let capacity = capacity_hint(resp);
    if let Some(done) = super::fetch_plain::encode(correlation_id, version, resp, capacity) {
        return done;
    }
    let mut enc = FetchEncoder::new(version, capacity);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(
            &mut enc.out.cur,
            ApiKey::Fetch.response_header_version(version),
        )
        .map_err(|e| codec_error(version, e))?;

    // The top level without its topics: throttle time, error code and session id, then the
    // (empty) responses array, then node_endpoints and unknown tags in the tagged section.
    let shell = FetchResponse::default()
        .with_throttle_time_ms(resp.throttle_time_ms)
        .with_error_code(resp.error_code)
        .with_session_id(resp.session_id)
        .with_node_endpoints(resp.node_endpoints.clone())
        .with_unknown_tagged_fields(resp.unknown_tagged_fields.clone());
    let bare = FetchResponse::default()
        .with_throttle_time_ms(resp.throttle_time_ms)
        .with_error_code(resp.error_code)
        .with_session_id(resp.session_id);
    let (head, tail) = enc.split_at_empty_array(&shell, &bare, "responses")?;
    enc.out.cur.extend_from_slice(&head);
    enc.put_array_len(resp.responses.len(), "responses")?;
    for topic in &resp.responses {
        enc.topic(topic)?;
    }
    enc.out.cur.extend_from_slice(&tail);
    enc.out.finish()
}

/// One encoding run: the output and two scratch buffers reused for every partition.
struct FetchEncoder {
    version: i16,
    flexible: bool,
    out: ChunkWriter,
    null_form: BytesMut,
    empty_form: BytesMut,
}

impl FetchEncoder {
    fn new(version: i16, capacity: usize) -> Self {
        Self {
            version,
            flexible: version >= FIRST_FLEXIBLE_VERSION,
            out: ChunkWriter::new(capacity),
            null_form: BytesMut::with_capacity(PARTITION_SIZE_HINT),
            empty_form: BytesMut::with_capacity(PARTITION_SIZE_HINT),
        }
    }

    fn topic(&mut self, topic: &FetchableTopicResponse) -> Result<(), EncodeError> {
        let shell = FetchableTopicResponse::default()
            .with_topic(topic.topic.clone())
            .with_topic_id(topic.topic_id)
            .with_unknown_tagged_fields(topic.unknown_tagged_fields.clone());
        let bare = FetchableTopicResponse::default()
            .with_topic(topic.topic.clone())
            .with_topic_id(topic.topic_id);
        let (head, tail) = self.split_at_empty_array(&shell, &bare, "partitions")?;
        self.out.cur.extend_from_slice(&head);
        self.put_array_len(topic.partitions.len(), "partitions")?;
        for partition in &topic.partitions {
            self.partition(partition)?;
        }
        self.out.cur.extend_from_slice(&tail);
        Ok(())
    }

    fn partition(&mut self, partition: &PartitionData) -> Result<(), EncodeError> {
        let version = self.version;
        let records = match &partition.records {
            Some(records) if !records.is_empty() => records,
            // Nothing worth a chunk of its own: the codec writes it in place.
            _ => {
                return partition
                    .encode(&mut self.out.cur, version)
                    .map_err(|e| codec_error(version, e));
            }
        };
        // Encode the partition twice, with null and with empty records. The two forms differ only
        // in the records length, which is the first byte at which they differ (0xff.. vs 0x00..
        // before v12, varint 0 vs 1 from v12): that finds the records without our having to know
        // every field and tagged field that comes before or after them.
        let mut shell = partition.clone();
        shell.records = None;
        self.null_form.clear();
        shell
            .encode(&mut self.null_form, version)
            .map_err(|e| codec_error(version, e))?;
        shell.records = Some(Bytes::new());
        self.empty_form.clear();
        shell
            .encode(&mut self.empty_form, version)
            .map_err(|e| codec_error(version, e))?;
        let at = self.locate_records_len(partition.partition_index)?;
        let null_len = self.null_records_marker().len();
        let (head, tail) = match (
            self.null_form.get(..at),
            self.null_form.get(at + null_len..),
        ) {
            (Some(head), Some(tail)) => (head, tail),
            _ => return Err(self.layout_error("the records of a partition", at)),
        };
        self.out.cur.extend_from_slice(head);
        if self.flexible {
            let len = u32::try_from(records.len())
                .ok()
                .and_then(|len| len.checked_add(1))
                .ok_or_else(|| too_long(version, "COMPACT_RECORDS", records.len()))?;
            put_unsigned_varint(&mut self.out.cur, len);
        } else {
            let len = i32::try_from(records.len())
                .map_err(|_| too_long(version, "RECORDS", records.len()))?;
            self.out.cur.put_i32(len);
        }
        self.out.push_shared(records.clone());
        self.out.cur.extend_from_slice(tail);
        Ok(())
    }

    /// Where the records length starts in `null_form`, checked against `empty_form`.
    fn locate_records_len(&self, partition_index: i32) -> Result<usize, EncodeError> {
        let (null_form, empty_form) = (self.null_form.as_ref(), self.empty_form.as_ref());
        let at = null_form
            .iter()
            .zip(empty_form)
            .position(|(a, b)| a != b)
            .unwrap_or(null_form.len());
        let null_marker = self.null_records_marker();
        let empty_marker = self.empty_array_marker();
        let end = at + null_marker.len();
        let consistent = null_form.len() == empty_form.len()
            && null_form.get(at..end) == Some(null_marker)
            && empty_form.get(at..end) == Some(empty_marker)
            && null_form.get(end..) == empty_form.get(end..);
        if consistent {
            Ok(at)
        } else {
            Err(self.layout_error(&format!("the records of partition {partition_index}"), at))
        }
    }

    /// Encodes `shell` (a struct whose array is empty) and cuts out the empty array's length:
    /// returns the bytes before and after it. `bare` is `shell` without its tagged fields, whose
    /// size tells where the array starts (it is the last field before the tagged section).
    fn split_at_empty_array<T: Encodable>(
        &self,
        shell: &T,
        bare: &T,
        array: &str,
    ) -> Result<(BytesMut, BytesMut), EncodeError> {
        let version = self.version;
        let mut form = BytesMut::with_capacity(PARTITION_SIZE_HINT);
        shell
            .encode(&mut form, version)
            .map_err(|e| codec_error(version, e))?;
        let bare_size = bare
            .compute_size(version)
            .map_err(|e| codec_error(version, e))?;
        let marker = self.empty_array_marker();
        // A bare flexible struct ends with one byte: the varint 0 that counts no tagged fields.
        let tag_count_len = usize::from(self.flexible);
        let at = bare_size
            .checked_sub(marker.len() + tag_count_len)
            .filter(|&at| form.get(at..at + marker.len()) == Some(marker))
            .ok_or_else(|| self.layout_error(&format!("the {array} array"), bare_size))?;
        let mut tail = form.split_off(at);
        tail.advance(marker.len());
        Ok((form, tail))
    }

    fn put_array_len(&mut self, len: usize, array: &str) -> Result<(), EncodeError> {
        if self.flexible {
            let len = u32::try_from(len)
                .ok()
                .and_then(|len| len.checked_add(1))
                .ok_or_else(|| too_long(self.version, array, len))?;
            put_unsigned_varint(&mut self.out.cur, len);
        } else {
            let len = i32::try_from(len).map_err(|_| too_long(self.version, array, len))?;
            self.out.cur.put_i32(len);
        }
        Ok(())
    }

    /// Null records: int32 -1 before v12, varint 0 (length + 1) from v12.
    fn null_records_marker(&self) -> &'static [u8] {
        if self.flexible {
            &[0]
        } else {
            &[0xff; 4]
        }
    }

    /// Empty records or an empty array: int32 0 before v12, varint 1 (length + 1) from v12.
    fn empty_array_marker(&self) -> &'static [u8] {
        if self.flexible {
            &[1]
        } else {
            &[0; 4]
        }
    }

    fn layout_error(&self, what: &str, at: usize) -> EncodeError {
        EncodeError::Codec {
            api_key: ApiKey::Fetch,
            version: self.version,
            reason: format!(
                "expected the length of {what} at byte {at} of kafka-protocol's encoding, \
                 found other bytes there (has the codec's field order changed?)"
            ),
        }
    }
}

/// Small pieces accumulate in `cur`; shared `Bytes` go into the list as they are.
pub(super) struct ChunkWriter {
    /// Index 0 is a placeholder for `first` until `finish`.
    chunks: Vec<Bytes>,
    /// The first piece, kept mutable so that the size prefix can be patched in at the end.
    first: Option<BytesMut>,
    pub(super) cur: BytesMut,
}

impl ChunkWriter {
    pub(super) fn new(capacity: usize) -> Self {
        let mut cur = BytesMut::with_capacity(capacity);
        cur.put_i32(0); // the size prefix, patched in `finish` once the size is known
        Self {
            chunks: vec![Bytes::new()],
            first: None,
            cur,
        }
    }

    fn flush(&mut self) {
        if self.cur.is_empty() {
            return;
        }
        // `split` keeps the spare capacity in `cur`, so later pieces share the allocation.
        let piece = self.cur.split();
        match self.first {
            None => self.first = Some(piece),
            Some(_) => self.chunks.push(piece.freeze()),
        }
    }

    pub(super) fn push_shared(&mut self, bytes: Bytes) {
        self.flush();
        self.chunks.push(bytes);
    }

    pub(super) fn finish(mut self) -> Result<Vec<Bytes>, EncodeError> {
        self.flush();
        let mut first = self.first.take().unwrap_or_default();
        let total = self
            .chunks
            .iter()
            .map(Bytes::len)
            .fold(first.len(), usize::saturating_add);
        let size = total.saturating_sub(FRAME_PREFIX_LEN);
        let prefix = i32::try_from(size).map_err(|_| EncodeError::TooLarge {
            size,
            max: i32::MAX as usize,
        })?;
        if let Some(head) = first.get_mut(..FRAME_PREFIX_LEN) {
            head.copy_from_slice(&prefix.to_be_bytes());
        }
        if let Some(slot) = self.chunks.first_mut() {
            *slot = first.freeze();
        }
        Ok(self.chunks)
    }
}

fn capacity_hint(resp: &FetchResponse) -> usize {
    let partitions: usize = resp.responses.iter().map(|t| t.partitions.len() + 1).sum();
    partitions
        .saturating_add(2)
        .saturating_mul(PARTITION_SIZE_HINT)
        .min(MAX_INITIAL_CAPACITY)
}

pub(super) fn put_unsigned_varint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

fn codec_error(version: i16, e: anyhow::Error) -> EncodeError {
    EncodeError::Codec {
        api_key: ApiKey::Fetch,
        version,
        reason: format!("{e:#}"),
    }
}

fn too_long(version: i16, what: &str, len: usize) -> EncodeError {
    EncodeError::Codec {
        api_key: ApiKey::Fetch,
        version,
        reason: format!("expected {what} of a length the wire format can carry, found {len}"),
    }
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
