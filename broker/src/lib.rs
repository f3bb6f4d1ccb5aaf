//! The Strata broker: network front end, request handlers, partitions, groups and the
//! cluster metadata image. The `strata` binary in `main.rs` is a thin shell over [`server`].

pub mod errors;
pub mod fetch_session;
pub mod group;
pub mod handlers;
pub mod http;
pub mod metadata;
pub mod metrics;
pub mod network;
pub mod offsets_topic;
pub mod partition;
pub mod quota;
pub mod replication;
pub mod security;
pub mod server;
pub mod topics;
pub mod txn;
