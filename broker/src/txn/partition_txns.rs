//! Transactions as one partition sees them: which producers have an open transaction here
//! (from its first record's offset, which bounds the last stable offset), and the aborted
//! transactions a read_committed consumer must be told about to drop their records. Kafka
//! keeps the latter in per-segment `.txnindex` files; we rebuild the list from the log when
//! it opens (control batches are few) and keep it in memory.

use std::collections::{BTreeMap, HashMap, VecDeque};

use strata_protocol::record_batch::MarkerKind;

/// An aborted transaction in this partition: its producer, its first record and its abort
/// marker; `last_stable_offset` is the LSO just after the marker (where a search may stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

#[derive(Debug, Default)]
pub struct PartitionTxns {
    /// Producer id → first offset of its open transaction.
    open: HashMap<i64, i64>,
    /// The same, by first offset: the smallest is the first unstable offset.
    open_by_offset: BTreeMap<i64, i64>,
    /// In marker order, so by `last_offset` and by `last_stable_offset`.
    aborted: VecDeque<AbortedTxn>,
}

impl PartitionTxns {
    /// A transactional data batch at `first_offset` was appended: it opens its producer's
    /// transaction here unless one is open already.
    pub fn on_data(&mut self, producer_id: i64, first_offset: i64) {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.open.entry(producer_id) {
            slot.insert(first_offset);
            self.open_by_offset.insert(first_offset, producer_id);
        }
    }

    /// A marker for `producer_id` was appended at `offset`: its transaction here, if any, ends.
    /// `log_end_offset` is the offset after the marker.
    pub fn on_marker(
        &mut self,
        producer_id: i64,
        kind: MarkerKind,
        offset: i64,
        log_end_offset: i64,
    ) {
        let Some(first_offset) = self.open.remove(&producer_id) else {
            return;
        };
        self.open_by_offset.remove(&first_offset);
        if kind == MarkerKind::Abort {
            let last_stable_offset = self.first_unstable_offset().unwrap_or(log_end_offset);
            self.aborted.push_back(AbortedTxn {
                producer_id,
                first_offset,
                last_offset: offset,
                last_stable_offset,
            });
        }
    }

    /// The first offset of the oldest open transaction, if one is open.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.open_by_offset.keys().next().copied()
    }

    /// The first offset of `producer_id`'s open transaction here, if one is open.
    pub fn open_from(&self, producer_id: i64) -> Option<i64> {
        self.open.get(&producer_id).copied()
    }

    /// Whether `producer_id` has an open transaction here.
    pub fn is_open(&self, producer_id: i64) -> bool {
        self.open.contains_key(&producer_id)
    }

    /// Aborted transactions with records in `[from, upper)`, as Kafka's
    /// `collectAbortedTransactions`: every one whose marker is at or after `from` and whose
    /// first record is before `upper`, the search ending at the first whose LSO reached
    /// `upper` (none after it can start before `upper`).
    pub fn aborted_between(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|t| t.last_offset < from);
        let mut found = Vec::new();
        for txn in self.aborted.range(start..) {
            if txn.first_offset < upper {
                found.push(*txn);
            }
            if txn.last_stable_offset >= upper {
                break;
            }
        }
        found
    }

    /// Forgets aborted transactions whose marker is before the log start (retention).
    pub fn forget_before(&mut self, log_start_offset: i64) {
        while self
            .aborted
            .front()
            .is_some_and(|t| t.last_offset < log_start_offset)
        {
            self.aborted.pop_front();
        }
    }

    /// Forgets everything at or above `offset` (log truncation): open transactions that
    /// started there, aborts whose marker was there. (A transaction that started before and
    /// ended there is open again; the caller rebuilds from the log when that matters.)
    pub fn truncate_from(&mut self, offset: i64) {
        self.open_by_offset.retain(|&first, _| first < offset);
        self.open.retain(|_, first| *first < offset);
        while self.aborted.back().is_some_and(|t| t.last_offset >= offset) {
            self.aborted.pop_back();
        }
    }

    /// Producer ids with an open transaction here.
    pub fn open_producers(&self) -> impl Iterator<Item = i64> + '_ {
        self.open.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_open_transaction_bounds_what_is_stable() {
        let mut t = PartitionTxns::default();
        assert_eq!(t.first_unstable_offset(), None);
        t.on_data(1, 10);
        t.on_data(2, 15);
        t.on_data(1, 20); // same transaction, later batch
        assert_eq!(t.first_unstable_offset(), Some(10));
        t.on_marker(1, MarkerKind::Commit, 25, 26);
        assert_eq!(t.first_unstable_offset(), Some(15));
        assert!(!t.is_open(1) && t.is_open(2));
        t.on_marker(2, MarkerKind::Abort, 26, 27);
        assert_eq!(t.first_unstable_offset(), None);
        assert_eq!(
            t.aborted_between(0, 27),
            vec![AbortedTxn {
                producer_id: 2,
                first_offset: 15,
                last_offset: 26,
                last_stable_offset: 27
            }]
        );
        // A marker without an open transaction (nothing was written here) changes nothing.
        t.on_marker(3, MarkerKind::Abort, 27, 28);
        assert_eq!(t.aborted_between(0, i64::MAX).len(), 1);
    }

    #[test]
    fn aborted_transactions_are_found_by_range() {
        let mut t = PartitionTxns::default();
        // Producer 1 aborts [0, 5]; producer 2 commits [6, 8]; producer 3 aborts [9, 12];
        // producer 4 opens at 13 and producer 5 aborts [14, 16] while 4 is still open.
        t.on_data(1, 0);
        t.on_marker(1, MarkerKind::Abort, 5, 6);
        t.on_data(2, 6);
        t.on_marker(2, MarkerKind::Commit, 8, 9);
        t.on_data(3, 9);
        t.on_marker(3, MarkerKind::Abort, 12, 13);
        t.on_data(4, 13);
        t.on_data(5, 14);
        t.on_marker(5, MarkerKind::Abort, 16, 17);
        let pids = |v: Vec<AbortedTxn>| v.iter().map(|a| a.producer_id).collect::<Vec<_>>();
        assert_eq!(pids(t.aborted_between(0, 13)), vec![1, 3]);
        assert_eq!(pids(t.aborted_between(6, 13)), vec![3]);
        assert_eq!(pids(t.aborted_between(0, 6)), vec![1]);
        assert_eq!(pids(t.aborted_between(13, 17)), vec![5]);
        // Producer 5's abort happened while 4 was open: its LSO is 13.
        assert_eq!(t.aborted_between(13, 17)[0].last_stable_offset, 13);
        t.forget_before(9);
        assert_eq!(pids(t.aborted_between(0, 17)), vec![3, 5]);
        t.truncate_from(14);
        assert_eq!(pids(t.aborted_between(0, 17)), vec![3]);
        assert_eq!(t.first_unstable_offset(), Some(13));
    }
}
