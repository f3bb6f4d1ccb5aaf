//! Strata's benchmark support and the `strata-perf` load tool (see benches/README.md):
//! a hand-built record-batch generator, a pipelined client on `kafka-protocol`'s client side,
//! and an in-process broker for criterion's end-to-end benches.

pub mod batch;
pub mod client;
pub mod fixtures;
pub mod group;
pub mod group_consume;
pub mod inproc;
pub mod latency;
pub mod ops;
pub mod pipeline;
pub mod security;
