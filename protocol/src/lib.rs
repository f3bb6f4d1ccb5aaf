//! Strata wire protocol (see README): bytes <-> typed Kafka requests and responses, with a
//! guard that checks every request's shape before the codec allocates anything, and
//! zero-copy views over magic-2 record batches for the produce and fetch hot paths.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

pub use kafka_protocol;

pub mod frame;
pub mod guard;
pub mod record_batch;
pub mod request;
pub mod response;
pub mod versions;

pub use request::{decode_request, Request, RequestError};
pub use response::{encode_fetch_response_chunks, encode_response, EncodeError};
