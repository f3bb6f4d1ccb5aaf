//! The Strata broker: network front end, request handlers, partitions, groups and the
//! cluster metadata image. The `strata` binary in `main.rs` is a thin shell over [`server`].

pub mod group;
