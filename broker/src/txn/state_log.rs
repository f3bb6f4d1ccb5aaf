//! `__transaction_state`: the transaction coordinator's durable store, one record per change
//! of a transactional id's state, in Kafka's own key and value layout (TransactionLogKey v0,
//! TransactionLogValue v0), so the topic reads as Kafka's would. Compacted: the newest record
//! of each id is its state.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Where a transaction is, as Kafka numbers the states in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    fn from_code(code: i8) -> Option<Self> {
        Some(match code {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions and ListTransactions report (Kafka's `TransactionState`).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// One transactional id's state, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut key = BytesMut::with_capacity(4 + transactional_id.len());
    key.put_i16(0);
    put_string(&mut key, transactional_id);
    key.freeze()
}

pub fn encode_value(r: &TxnRecord) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &r.partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    let mut value = BytesMut::with_capacity(64);
    value.put_i16(0);
    value.put_i64(r.producer_id);
    value.put_i16(r.producer_epoch);
    value.put_i32(r.timeout_ms);
    value.put_i8(r.state.code());
    value.put_i32(by_topic.len() as i32);
    for (topic, partitions) in by_topic {
        put_string(&mut value, topic);
        value.put_i32(partitions.len() as i32);
        for p in partitions {
            value.put_i32(p);
        }
    }
    value.put_i64(r.last_update_ms);
    value.put_i64(r.start_ms);
    value.freeze()
}

/// The transactional id of a key, `None` for another key version or damaged bytes.
pub fn decode_key(mut key: &[u8]) -> Option<String> {
    if key.remaining() < 2 || key.get_i16() != 0 {
        return None;
    }
    get_string(&mut key)
}

/// A value (v0, or v1's leading v0 fields: later versions only add tagged fields), `None`
/// for damaged bytes.
pub fn decode_value(mut v: &[u8]) -> Option<TxnRecord> {
    if v.remaining() < 2 {
        return None;
    }
    let version = v.get_i16();
    if !(0..=1).contains(&version) || v.remaining() < 8 + 2 + 4 + 1 {
        return None;
    }
    let producer_id = v.get_i64();
    let producer_epoch = v.get_i16();
    let timeout_ms = v.get_i32();
    let state = TxnState::from_code(v.get_i8())?;
    if version != 0 {
        // v1 is flexible (compact arrays and strings); we only ever write v0.
        return None;
    }
    let topics = get_count(&mut v)?;
    let mut partitions = BTreeSet::new();
    for _ in 0..topics {
        let topic = get_string(&mut v)?;
        for _ in 0..get_count(&mut v)? {
            if v.remaining() < 4 {
                return None;
            }
            partitions.insert((topic.clone(), v.get_i32()));
        }
    }
    if v.remaining() < 16 {
        return None;
    }
    Some(TxnRecord {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms: v.get_i64(),
        start_ms: v.get_i64(),
    })
}

fn put_string(buf: &mut BytesMut, s: &str) {
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    buf.put_i16(len);
    buf.put_slice(s.as_bytes().get(..len as usize).unwrap_or_default());
}

fn get_string(buf: &mut &[u8]) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = usize::try_from(buf.get_i16()).ok()?;
    let bytes = buf.get(..len)?;
    let s = std::str::from_utf8(bytes).ok()?.to_string();
    buf.advance(len);
    Some(s)
}

/// An array length, bounded by what is left (each element takes at least 4 bytes).
fn get_count(buf: &mut &[u8]) -> Option<usize> {
    if buf.remaining() < 4 {
        return None;
    }
    let n = usize::try_from(buf.get_i32()).ok()?;
    (n <= buf.remaining() / 4).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_refused() {
        let record = TxnRecord {
            producer_id: 4000,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
        };
        let value = encode_value(&record);
        assert_eq!(decode_value(&value), Some(record));
        assert_eq!(
            decode_key(&encode_key("my-txn")),
            Some("my-txn".to_string())
        );
        for cut in 0..value.len() {
            assert_eq!(decode_value(&value[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode_key(&[0, 1, 0, 9, b'x']), None);
    }

    proptest::proptest! {
        /// The log is read back after crashes and bit rot: no bytes may panic the decoders.
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode_value(&bytes);
            let _ = decode_key(&bytes);
        }
    }
}
