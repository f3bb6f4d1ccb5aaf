//! Producer ids, idempotence and transactions: the producer-id allocator behind
//! InitProducerId, the per-partition producer state that turns retried batches into
//! duplicates instead of double appends, each partition's open and aborted transactions,
//! and the transaction coordinator with its `__transaction_state` log.

pub mod coordinator;
#[cfg(test)]
mod coordinator_tests;
pub mod partition_txns;
pub mod producer_ids;
pub mod producer_state;
pub mod state_log;
