//! The Fetch responses a broker sends for almost every request, written field by field: no
//! unknown tagged fields, no diverging epoch, leader hint, snapshot id or node endpoints, and
//! every field valid for the version. Those are encoded straight into the chunk list, with
//! each partition's records passed through as their own chunk.
//!
//! Anything else returns `None`, and the general encoder (which lets kafka-protocol lay out
//! every field and reports what the version cannot carry) takes the response. Both produce
//! exactly the bytes of `encode_response`; the tests hold them to it for every version.
//! The general path encodes each partition twice and compares the two forms; for a one-record
//! Fetch that was a quarter of the broker's instructions per request.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchResponse, FetchableTopicResponse, PartitionData,
};

use super::fetch::{put_unsigned_varint, ChunkWriter, FIRST_FLEXIBLE_VERSION};
use super::EncodeError;

/// The versions kafka-protocol encodes (and the general path accepts); their response
/// fields are the same from 16 on.
const VERSIONS: std::ops::RangeInclusive<i16> = 4..=18;
/// Topic ids replace topic names from v13.
const FIRST_TOPIC_ID_VERSION: i16 = 13;

/// The whole frame as chunks, or `None` if `resp` needs the general encoder.
pub(super) fn encode(
    correlation_id: i32,
    version: i16,
    resp: &FetchResponse,
    capacity: usize,
) -> Option<Result<Vec<Bytes>, EncodeError>> {
    if !is_plain(version, resp) {
        return None;
    }
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    let mut out = ChunkWriter::new(capacity);
    out.cur.put_i32(correlation_id);
    if flexible {
        out.cur.put_u8(0); // response header v1: no tagged fields
    }
    out.cur.put_i32(resp.throttle_time_ms);
    if version >= 7 {
        out.cur.put_i16(resp.error_code);
        out.cur.put_i32(resp.session_id);
    }
    put_len(&mut out.cur, flexible, Some(resp.responses.len()));
    for topic in &resp.responses {
        put_topic_head(&mut out.cur, version, topic);
        put_len(&mut out.cur, flexible, Some(topic.partitions.len()));
        for partition in &topic.partitions {
            put_partition(&mut out, version, partition);
        }
        if flexible {
            out.cur.put_u8(0); // the topic's tagged fields
        }
    }
    if flexible {
        out.cur.put_u8(0); // the response's tagged fields
    }
    Some(out.finish())
}

/// Whether every field of `resp` is one this module writes, with a value its version carries.
fn is_plain(version: i16, resp: &FetchResponse) -> bool {
    VERSIONS.contains(&version)
        && (version >= 7 || resp.session_id == 0)
        && resp.unknown_tagged_fields.is_empty()
        && resp.node_endpoints.is_empty()
        && length_fits(resp.responses.len())
        && resp.responses.iter().all(|t| {
            t.unknown_tagged_fields.is_empty()
                && t.topic.len() <= i16::MAX as usize
                && length_fits(t.partitions.len())
                && t.partitions.iter().all(|p| is_plain_partition(version, p))
        })
}

fn is_plain_partition(version: i16, p: &PartitionData) -> bool {
    p.unknown_tagged_fields.is_empty()
        && p.diverging_epoch == Default::default()
        && p.current_leader == Default::default()
        && p.snapshot_id == Default::default()
        && (version >= 11 || p.preferred_read_replica == -1)
        && p.records.as_ref().is_none_or(|r| length_fits(r.len()))
        && p.aborted_transactions.as_ref().is_none_or(|aborted| {
            length_fits(aborted.len())
                && aborted
                    .iter()
                    .all(|a: &AbortedTransaction| a.unknown_tagged_fields.is_empty())
        })
}

/// Lengths both forms can carry: int32 before v12, varint of length + 1 from v12.
fn length_fits(len: usize) -> bool {
    len < i32::MAX as usize
}

/// An array's or records' length: int32 (-1 for null) before v12, unsigned varint of
/// length + 1 (0 for null) from v12. Callers checked `length_fits`.
fn put_len(buf: &mut BytesMut, flexible: bool, len: Option<usize>) {
    match (flexible, len) {
        (true, Some(len)) => put_unsigned_varint(buf, len as u32 + 1),
        (true, None) => buf.put_u8(0),
        (false, Some(len)) => buf.put_i32(len as i32),
        (false, None) => buf.put_i32(-1),
    }
}

fn put_topic_head(buf: &mut BytesMut, version: i16, topic: &FetchableTopicResponse) {
    if version >= FIRST_TOPIC_ID_VERSION {
        buf.put_slice(topic.topic_id.as_bytes());
        return;
    }
    let name: &[u8] = topic.topic.as_bytes();
    if version >= FIRST_FLEXIBLE_VERSION {
        put_unsigned_varint(buf, name.len() as u32 + 1);
    } else {
        buf.put_i16(name.len() as i16);
    }
    buf.put_slice(name);
}

fn put_partition(out: &mut ChunkWriter, version: i16, p: &PartitionData) {
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    let buf = &mut out.cur;
    buf.put_i32(p.partition_index);
    buf.put_i16(p.error_code);
    buf.put_i64(p.high_watermark);
    buf.put_i64(p.last_stable_offset);
    if version >= 5 {
        buf.put_i64(p.log_start_offset);
    }
    let aborted = p.aborted_transactions.as_deref();
    put_len(buf, flexible, aborted.map(<[_]>::len));
    for a in aborted.unwrap_or_default() {
        buf.put_i64(a.producer_id.0);
        buf.put_i64(a.first_offset);
        if flexible {
            buf.put_u8(0);
        }
    }
    if version >= 11 {
        buf.put_i32(p.preferred_read_replica.0);
    }
    put_len(buf, flexible, p.records.as_ref().map(Bytes::len));
    if let Some(records) = p.records.as_ref().filter(|r| !r.is_empty()) {
        out.push_shared(records.clone());
    }
    if flexible {
        out.cur.put_u8(0); // the partition's tagged fields
    }
}
