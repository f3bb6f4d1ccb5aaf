//! The end-to-end harness: starts real `strata` processes and drives them with real clients
//! (kcat, kafka-python, confluent-kafka) and raw sockets. Tests in `tests/tests/*.rs` use
//! only this public API; run them all with `scripts/test`.

pub mod broker;
pub mod cluster;
pub mod metrics;
pub mod tools;
pub mod wait;
pub mod wire;

pub use broker::{free_port, run_strata_to_exit, write_file, Broker};
pub use tools::{run_kcat, run_python, spawn_python};
pub use wait::{poll_until, wait_until};
pub use wire::{FrameOutcome, RawConnection};
