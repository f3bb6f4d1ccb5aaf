//! The guard: a declarative description of every accepted request's wire shape (`shapes`) and
//! a walker that checks a frame against it before the codec runs. The kafka-protocol crate
//! pre-allocates from counts on the wire; the guard makes sure those counts are honest.

mod dsl;
mod shapes;
mod walker;

use kafka_protocol::messages::ApiKey;
use walker::Walker;

/// Why the guard refused a frame. Offsets are from the start of the frame (after the size prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    #[error("{field}: expected {needed} bytes at offset {offset}, found {remaining}")]
    Truncated {
        field: &'static str,
        offset: usize,
        needed: u64,
        remaining: usize,
    },
    #[error("{field}: expected a length >= -1 at offset {offset}, found {length}")]
    NegativeLength {
        field: &'static str,
        offset: usize,
        length: i32,
    },
    #[error(
        "{field}: array at offset {offset} claims {count} elements of at least {min_element} bytes, \
         but only {remaining} bytes remain"
    )]
    ArrayTooLong {
        field: &'static str,
        offset: usize,
        count: u64,
        min_element: u64,
        remaining: usize,
    },
    #[error("{field}: expected an unsigned varint of at most 5 bytes fitting 32 bits at offset {offset}")]
    BadVarint { field: &'static str, offset: usize },
    #[error("tagged field {field} (tag {tag}) at offset {offset}: declared {declared} bytes, its content took {used}")]
    TaggedSizeMismatch {
        field: &'static str,
        tag: u32,
        offset: usize,
        declared: u32,
        used: usize,
    },
    #[error("no request shape for api key {api_key:?}")]
    NoShape { api_key: ApiKey },
}

/// Walks the request header of `header_version` (0, 1 or 2) from the start of `frame`, and
/// returns where the body starts. v1 adds a nullable int16-length client id (never compact,
/// even in v2); v2 adds a tagged-field section.
pub fn check_header(frame: &[u8], header_version: i16) -> Result<usize, GuardError> {
    const FIXED: &[dsl::Field] = &[
        dsl::f("request_api_key", dsl::from(0), dsl::INT16),
        dsl::f("request_api_version", dsl::from(0), dsl::INT16),
        dsl::f("correlation_id", dsl::from(0), dsl::INT32),
        dsl::f("client_id", dsl::from(1), dsl::STRING),
    ];
    let mut walker = Walker::new(frame, 0, header_version, false);
    walker.fields(FIXED)?;
    if header_version >= 2 {
        walker.tagged_section(&[])?;
    }
    Ok(walker.pos())
}

/// Walks a request body of `api_key`/`version` starting at `body_start` in `frame`; returns
/// the offset just past the body. Trailing bytes are left to the caller (the codec ignores them too).
pub fn check_body(
    frame: &[u8],
    body_start: usize,
    api_key: ApiKey,
    version: i16,
) -> Result<usize, GuardError> {
    let shape = shapes::ALL
        .iter()
        .find(|m| m.api_key == api_key)
        .ok_or(GuardError::NoShape { api_key })?;
    let mut walker = Walker::new(frame, body_start, version, version >= shape.flexible_from);
    walker.fields(shape.fields)?;
    Ok(walker.pos())
}

/// Whether a body shape exists for `api_key` (every entry of `versions::SUPPORTED` has one).
pub fn has_shape(api_key: ApiKey) -> bool {
    shapes::ALL.iter().any(|m| m.api_key == api_key)
}

#[cfg(test)]
mod tests;
