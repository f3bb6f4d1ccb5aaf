//! Inputs shared by the criterion benches: encoded request frames as the broker's network
//! layer hands them to `decode_request` (size prefix stripped), and storage configs sized so
//! a bench run does not fill the disk.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use strata_storage::LogConfig;

use crate::batch::{BatchBuildError, BatchTemplate};
use crate::client::{encode_frame, ClientError};
use crate::ops;

/// The batch size the benches use.
pub const BATCH_BYTES: usize = 16 * 1024;

/// Why a fixture could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    #[error(transparent)]
    Batch(#[from] BatchBuildError),
    #[error(transparent)]
    Client(#[from] ClientError),
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A batch of `record_size`-byte records filling at most [`BATCH_BYTES`].
pub fn batch(record_size: usize) -> Result<BatchTemplate, FixtureError> {
    let n = BatchTemplate::records_per_batch(BATCH_BYTES, record_size);
    Ok(BatchTemplate::new(n, record_size, now_ms())?)
}

/// A Produce request frame (v9, acks=1, one partition) without its size prefix.
pub fn produce_frame(batch: &Bytes, version: i16) -> Result<Bytes, FixtureError> {
    let request = ops::produce_request("bench", &[0], batch, 1);
    let frame = encode_frame(ApiKey::Produce, version, 7, "strata-bench", &request)?;
    Ok(frame.freeze().slice(4..))
}

/// A sessionless Fetch request frame for `partitions` partitions, without its size prefix.
pub fn fetch_frame(version: i16, partitions: i32) -> Result<Bytes, FixtureError> {
    let offsets: Vec<(i32, i64)> = (0..partitions).map(|p| (p, 1000)).collect();
    let request = ops::fetch_request(version, "bench", &offsets, 500, 52_428_800, 1_048_576);
    let frame = encode_frame(ApiKey::Fetch, version, 7, "strata-bench", &request)?;
    Ok(frame.freeze().slice(4..))
}

/// Segments of 64 MiB so benches roll segments and exercise sealing, as a busy log does.
pub fn bench_log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024 * 1024,
        ..LogConfig::default()
    }
}
