//! Producer ids and idempotence: the producer-id allocator behind InitProducerId and the
//! per-partition producer state that turns retried batches into duplicates instead of
//! double appends. Transactions will live here too.

pub mod partition_txns;
pub mod producer_ids;
pub mod producer_state;
