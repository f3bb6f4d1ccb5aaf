//! Per-partition idempotent-producer state: for every producer id, its epoch and the last
//! five batches' sequence ranges and offsets (Kafka keeps five because a producer has at
//! most five requests in flight). Checks follow Kafka's ProducerStateManager: a retried
//! batch is a duplicate and gets its original offset back; a gap is
//! OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is INVALID_PRODUCER_EPOCH.

use std::collections::{HashMap, VecDeque};

use strata_protocol::record_batch::RecordBatchHeader;

/// How many batches per producer are remembered for duplicate detection.
pub const BATCHES_RETAINED: usize = 5;

const NO_PRODUCER_EPOCH: i16 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    /// When this broker last saw the producer write (or a marker for it), by its own clock:
    /// what `producer.id.expiration.ms` is measured from. (Kafka measures from the batch's
    /// max timestamp, which a producer's clock or explicit timestamps decide.)
    pub last_seen_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New data: append it.
    Append,
    /// A retry of a batch already in the log.
    Duplicate(BatchMetadata),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProducerStateError {
    #[error("producer epoch {found} is older than the current epoch {current}")]
    InvalidProducerEpoch { found: i16, current: i16 },
    #[error("out of order sequence: expected {expected}, found {found}")]
    OutOfOrderSequence { expected: i32, found: i32 },
}

impl ProducerStateError {
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            Self::InvalidProducerEpoch { .. } => 47, // INVALID_PRODUCER_EPOCH
            Self::OutOfOrderSequence { .. } => 45,   // OUT_OF_ORDER_SEQUENCE_NUMBER
        }
    }
}

#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq == last_seq.wrapping_add(1) || (next_seq == 0 && last_seq == i32::MAX)
}

impl ProducerStateTable {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer with state here, by id.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    /// Decides what to do with an idempotent batch before it is appended.
    pub fn check(&self, batch: &RecordBatchHeader) -> Result<SequenceCheck, ProducerStateError> {
        let first_seq = batch.base_sequence;
        let last_seq = batch.last_sequence();
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            // Unknown producer (new, or its state expired): Kafka accepts any sequence.
            return Ok(SequenceCheck::Append);
        };
        if batch.producer_epoch < entry.epoch {
            return Err(ProducerStateError::InvalidProducerEpoch {
                found: batch.producer_epoch,
                current: entry.epoch,
            });
        }
        if batch.producer_epoch == entry.epoch {
            if let Some(dup) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            {
                return Ok(SequenceCheck::Duplicate(*dup));
            }
            let last = entry.batches.back().map(|b| b.last_seq);
            match last {
                Some(last) if !in_sequence(last, first_seq) => {
                    return Err(ProducerStateError::OutOfOrderSequence {
                        expected: last.wrapping_add(1),
                        found: first_seq,
                    })
                }
                None if first_seq != 0 => {
                    return Err(ProducerStateError::OutOfOrderSequence {
                        expected: 0,
                        found: first_seq,
                    })
                }
                _ => {}
            }
        } else if first_seq != 0 && entry.epoch != NO_PRODUCER_EPOCH {
            // A bumped epoch must restart its sequence at zero.
            return Err(ProducerStateError::OutOfOrderSequence {
                expected: 0,
                found: first_seq,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a batch that is now in the log at `[first_offset, last_offset]`.
    pub fn record(
        &mut self,
        batch: &RecordBatchHeader,
        first_offset: i64,
        last_offset: i64,
        timestamp: i64,
    ) {
        let entry = self.producers.entry(batch.producer_id).or_default();
        if entry.epoch != batch.producer_epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_RETAINED {
            let _oldest = entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_seq: batch.base_sequence,
            last_seq: batch.last_sequence(),
            first_offset,
            last_offset,
            timestamp,
        });
    }

    /// The producer wrote (or was marked) at `now_ms` by the broker's clock.
    pub fn seen(&mut self, producer_id: i64, now_ms: i64) {
        if let Some(entry) = self.producers.get_mut(&producer_id) {
            entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
        }
    }

    /// Forgets producers idle for `expiration_ms` (`producer.id.expiration.ms`), except those
    /// `keep` names (an open transaction's producer). A forgotten producer's next batch is
    /// accepted at any sequence, as a new producer's, as in Kafka. Returns how many went.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64, keep: impl Fn(i64) -> bool) -> usize {
        let before = self.producers.len();
        self.producers.retain(|pid, entry| {
            keep(*pid) || now_ms.saturating_sub(entry.last_seen_ms) < expiration_ms
        });
        before - self.producers.len()
    }

    /// A transaction marker's epoch may not be older than its producer's (Kafka's
    /// `appendEndTxnMarker`): an older coordinator's marker for a fenced producer.
    pub fn check_marker(&self, producer_id: i64, epoch: i16) -> Result<(), ProducerStateError> {
        match self.producers.get(&producer_id) {
            Some(entry) if entry.epoch > epoch => Err(ProducerStateError::InvalidProducerEpoch {
                found: epoch,
                current: entry.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Records a marker: a newer epoch (the coordinator fenced the producer) replaces the
    /// old one and its remembered batches.
    pub fn record_marker(&mut self, producer_id: i64, epoch: i16, now_ms: i64) {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_seen_ms: now_ms,
            });
        if entry.epoch != epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
    }

    /// Forgets everything at or above `offset` (log truncation).
    pub fn truncate_from(&mut self, offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> RecordBatchHeader {
        RecordBatchHeader {
            base_offset: 0,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    #[test]
    fn duplicates_gaps_and_epochs() {
        let mut t = ProducerStateTable::default();
        let b0 = header(7, 0, 0, 10);
        assert_eq!(t.check(&b0), Ok(SequenceCheck::Append));
        t.record(&b0, 100, 109, 1);
        // retry of the same batch is a duplicate with its original offsets
        match t.check(&b0) {
            Ok(SequenceCheck::Duplicate(m)) => {
                assert_eq!((m.first_offset, m.last_offset), (100, 109))
            }
            other => panic!("expected duplicate, got {other:?}"),
        }
        // next in sequence
        let b1 = header(7, 0, 10, 5);
        assert_eq!(t.check(&b1), Ok(SequenceCheck::Append));
        t.record(&b1, 110, 114, 2);
        // a gap
        let gap = header(7, 0, 20, 1);
        assert_eq!(t.check(&gap).unwrap_err().kafka_error_code(), 45);
        // older epoch is fenced
        let old = header(7, -1, 15, 1);
        assert!(t.check(&old).is_err());
        // a bumped epoch must start at 0
        assert_eq!(
            t.check(&header(7, 1, 15, 1))
                .unwrap_err()
                .kafka_error_code(),
            45
        );
        assert_eq!(t.check(&header(7, 1, 0, 1)), Ok(SequenceCheck::Append));
        // only five batches are remembered
        for (seq, i) in (15..).zip(0..6) {
            let b = header(7, 0, seq, 1);
            t.record(&b, 200 + i, 200 + i, 3);
        }
        assert_eq!(t.entry(7).unwrap().batches.len(), BATCHES_RETAINED);
        // unknown producers may start anywhere
        assert_eq!(t.check(&header(8, 3, 42, 1)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn idle_producers_expire_unless_kept() {
        let mut t = ProducerStateTable::default();
        t.record(&header(1, 0, 0, 1), 0, 0, 9);
        t.seen(1, 1_000);
        // The batch's own timestamp does not count, the broker's clock does.
        t.record(&header(2, 0, 0, 1), 1, 1, 9);
        t.seen(2, 5_000);
        t.record_marker(3, 2, 1_000);
        // Producer 1 and 3 are idle for 10 s at 11_000; 3 is kept (its transaction is open).
        assert_eq!(t.expire(11_000, 10_000, |pid| pid == 3), 1);
        assert!(t.entry(1).is_none() && t.entry(2).is_some() && t.entry(3).is_some());
        // A forgotten producer starts again at any sequence, as a new one.
        assert_eq!(t.check(&header(1, 0, 77, 1)), Ok(SequenceCheck::Append));
        assert_eq!(t.expire(15_000, 10_000, |_| false), 2);
        assert!(t.is_empty());
    }
}
