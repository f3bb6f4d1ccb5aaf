//! Transaction markers: the one-record control batches a transaction coordinator writes into
//! every partition a transaction touched, saying whether its records are committed or
//! aborted (Kafka's `EndTransactionMarker`). Key: version (i16, 0) and type (i16: 0 abort,
//! 1 commit); value: version (i16, 0) and the coordinator's epoch (i32).

use super::walk::{fast_varint, zigzag32};
use super::{
    compute_crc, write, RecordBatchHeader, BATCH_HEADER_LEN, CONTROL_FLAG, CRC, LOG_OVERHEAD,
    MAGIC_V2, NO_SEQUENCE, TRANSACTIONAL_FLAG,
};

/// What a marker says about its producer's open transaction in the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    Abort,
    Commit,
}

impl MarkerKind {
    /// The kind a control record's key names (version, then type), `None` for another
    /// kind of control record or a short key.
    pub fn from_control_key(key: &[u8]) -> Option<MarkerKind> {
        match key.get(2..4)? {
            [0, 0] => Some(MarkerKind::Abort),
            [0, 1] => Some(MarkerKind::Commit),
            _ => None,
        }
    }

    fn code(self) -> i16 {
        match self {
            MarkerKind::Abort => 0,
            MarkerKind::Commit => 1,
        }
    }
}

/// A marker's content, as read back from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub kind: MarkerKind,
    pub coordinator_epoch: i32,
}

/// Record bytes of a marker: length, attributes, timestamp delta, offset delta, key length,
/// key (4), value length, value (6), header count. Every varint here is one byte.
const RECORD_BODY_LEN: usize = 1 + 1 + 1 + 1 + 4 + 1 + 6 + 1;
const MARKER_BATCH_LEN: usize = BATCH_HEADER_LEN + 1 + RECORD_BODY_LEN;

/// The whole marker batch (base offset 0: the log assigns it), ready to append.
pub fn encode_marker(
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    kind: MarkerKind,
    timestamp_ms: i64,
) -> Vec<u8> {
    let mut batch = Vec::with_capacity(MARKER_BATCH_LEN);
    batch.extend_from_slice(&0i64.to_be_bytes()); // base offset
    let batch_length = (MARKER_BATCH_LEN - LOG_OVERHEAD) as i32;
    batch.extend_from_slice(&batch_length.to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch (set by the log)
    batch.push(MAGIC_V2 as u8);
    batch.extend_from_slice(&0u32.to_be_bytes()); // CRC, computed below
    batch.extend_from_slice(&(TRANSACTIONAL_FLAG | CONTROL_FLAG).to_be_bytes());
    batch.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    batch.extend_from_slice(&timestamp_ms.to_be_bytes()); // base timestamp
    batch.extend_from_slice(&timestamp_ms.to_be_bytes()); // max timestamp
    batch.extend_from_slice(&producer_id.to_be_bytes());
    batch.extend_from_slice(&producer_epoch.to_be_bytes());
    batch.extend_from_slice(&NO_SEQUENCE.to_be_bytes());
    batch.extend_from_slice(&1i32.to_be_bytes()); // records count
                                                  // The record: zigzag varints, each below 64 so one byte.
    batch.push((RECORD_BODY_LEN as u8) << 1);
    batch.push(0); // attributes
    batch.push(0); // timestamp delta
    batch.push(0); // offset delta
    batch.push(4 << 1); // key length
    batch.extend_from_slice(&0i16.to_be_bytes());
    batch.extend_from_slice(&kind.code().to_be_bytes());
    batch.push(6 << 1); // value length
    batch.extend_from_slice(&0i16.to_be_bytes());
    batch.extend_from_slice(&coordinator_epoch.to_be_bytes());
    batch.push(0); // header count
    let crc = compute_crc(&batch);
    write(&mut batch, CRC, &crc.to_be_bytes());
    debug_assert_eq!(batch.len(), MARKER_BATCH_LEN);
    batch
}

/// The marker in a control batch (`batch` starts at the batch and holds at least all of it),
/// or `None` when it is not a readable one: another kind of control record, or damaged bytes.
/// Never panics, whatever the bytes.
pub fn read_marker(batch: &[u8]) -> Option<Marker> {
    let header = RecordBatchHeader::parse(batch).ok()?;
    if !header.is_control() || header.compression() != 0 {
        return None;
    }
    let records = batch.get(BATCH_HEADER_LEN..header.total_size())?;
    let mut p = 0usize;
    let size = usize::try_from(zigzag32(fast_varint(records, &mut p)?)).ok()?;
    let body = records.get(p..p.checked_add(size)?)?;
    let mut q = 1; // attributes
    fast_varint(body, &mut q)?; // timestamp delta (a small varlong)
    fast_varint(body, &mut q)?; // offset delta
    let key_len = usize::try_from(zigzag32(fast_varint(body, &mut q)?)).ok()?;
    let key = body.get(q..q.checked_add(key_len)?)?;
    q += key_len;
    let value_len = usize::try_from(zigzag32(fast_varint(body, &mut q)?)).ok()?;
    let value = body.get(q..q.checked_add(value_len)?)?;
    let kind = MarkerKind::from_control_key(key)?;
    let epoch: [u8; 4] = value.get(2..6)?.try_into().ok()?;
    Some(Marker {
        kind,
        coordinator_epoch: i32::from_be_bytes(epoch),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::verify_crc;

    #[test]
    fn a_marker_reads_back_as_written_and_kafka_protocol_agrees() {
        for kind in [MarkerKind::Abort, MarkerKind::Commit] {
            let batch = encode_marker(42, 3, 7, kind, 1_700_000_000_000);
            verify_crc(&batch).unwrap();
            let header = RecordBatchHeader::parse(&batch).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (42, 3));
            assert_eq!(
                read_marker(&batch),
                Some(Marker {
                    kind,
                    coordinator_epoch: 7
                })
            );
            // The reference decoder sees one control record with Kafka's key layout.
            let mut buf = bytes::Bytes::from(batch.clone());
            let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf).unwrap();
            let record = &sets[0].records[0];
            assert!(record.control && record.transactional);
            let key = record.key.as_ref().unwrap();
            assert_eq!(&key[..], &[0, 0, 0, kind.code() as u8]);
        }
    }

    #[test]
    fn damaged_markers_are_not_read() {
        let batch = encode_marker(1, 0, 0, MarkerKind::Commit, 0);
        for cut in 0..batch.len() {
            assert_eq!(read_marker(&batch[..cut]), None, "cut at {cut}");
        }
        let mut odd = batch.clone();
        let last_key_byte = BATCH_HEADER_LEN + 1 + 4 + 3;
        odd[last_key_byte] = 9;
        assert_eq!(read_marker(&odd), None);
    }
}
