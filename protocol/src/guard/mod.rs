//! The guard: a declarative description of every accepted request's wire shape (`shapes`), of
//! every response strata-perf decodes (`response_shapes`), and a walker that checks a frame
//! against its shape before the codec runs. The kafka-protocol crate pre-allocates from counts
//! on the wire; the guard makes sure those counts are honest, whichever side sent them.

mod dsl;
mod response_shapes;
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
    #[error("no response shape for api key {api_key:?}")]
    NoResponseShape { api_key: ApiKey },
    #[error("{message}: expected a version in v{min}..=v{max}, found v{version}")]
    UnsupportedVersion {
        message: &'static str,
        version: i16,
        min: i16,
        max: i16,
    },
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

/// Walks a whole response frame (no size prefix) to a request of `api_key`/`version`: the
/// response header (v0 is the correlation id; v1, in flexible versions, adds a tagged-field
/// section, except for ApiVersions, whose responses always use v0: KIP-511), then the body.
/// Trailing bytes are left alone (the codec ignores them too). Responses come from whatever
/// broker a client was pointed at, so they are as hostile as requests are to a broker.
pub fn check_response(frame: &[u8], api_key: ApiKey, version: i16) -> Result<(), GuardError> {
    check_response_frame(frame, api_key, version).map(|_| ())
}

/// [`check_response`], returning the offset just past the body.
pub(crate) fn check_response_frame(
    frame: &[u8],
    api_key: ApiKey,
    version: i16,
) -> Result<usize, GuardError> {
    let shape = response_shape(api_key).ok_or(GuardError::NoResponseShape { api_key })?;
    checked_version(shape, version)?;
    // The codec's own choice of header version, so guard and codec read the same layout.
    let header_version = api_key.response_header_version(version);
    const HEADER: &[dsl::Field] = &[dsl::f("correlation_id", dsl::from(0), dsl::INT32)];
    let mut walker = Walker::new(frame, 0, header_version, false);
    walker.fields(HEADER)?;
    if header_version >= 1 {
        walker.tagged_section(&[])?;
    }
    walk(frame, walker.pos(), shape, version)
}

/// The api keys whose responses the guard has shapes for.
pub fn shaped_responses() -> impl Iterator<Item = ApiKey> {
    response_shapes::ALL.iter().map(|(key, _)| *key)
}

/// The versions of `api_key`'s responses the guard has a shape for, if any.
pub fn response_versions(api_key: ApiKey) -> Option<(i16, i16)> {
    response_shape(api_key).map(|shape| (shape.versions.min, shape.versions.max))
}

fn response_shape(api_key: ApiKey) -> Option<&'static dsl::Shape> {
    response_shapes::ALL
        .iter()
        .find(|(key, _)| *key == api_key)
        .map(|(_, shape)| shape)
}

/// The consumer protocol's messages (Kafka's `ConsumerProtocol`), which group members exchange
/// as opaque bytes through the coordinator: a member's subscription in JoinGroup, its
/// assignment in SyncGroup. They come from other clients, so they are network input too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsumerProtocol {
    Subscription,
    Assignment,
}

/// Walks a consumer-protocol message body of `version` (what follows its int16 version
/// prefix); returns the offset just past it. Newer members may append fields the guard does
/// not know: those trailing bytes are left alone, as the codec leaves them.
pub fn check_consumer_protocol(
    body: &[u8],
    message: ConsumerProtocol,
    version: i16,
) -> Result<usize, GuardError> {
    let shape = match message {
        ConsumerProtocol::Subscription => &response_shapes::CONSUMER_PROTOCOL_SUBSCRIPTION,
        ConsumerProtocol::Assignment => &response_shapes::CONSUMER_PROTOCOL_ASSIGNMENT,
    };
    checked_version(shape, version)?;
    walk(body, 0, shape, version)
}

fn checked_version(shape: &dsl::Shape, version: i16) -> Result<(), GuardError> {
    if shape.versions.contains(version) {
        return Ok(());
    }
    Err(GuardError::UnsupportedVersion {
        message: shape.name,
        version,
        min: shape.versions.min,
        max: shape.versions.max,
    })
}

fn walk(buf: &[u8], start: usize, shape: &dsl::Shape, version: i16) -> Result<usize, GuardError> {
    let mut walker = Walker::new(buf, start, version, version >= shape.flexible_from);
    walker.fields(shape.fields)?;
    Ok(walker.pos())
}

#[cfg(test)]
mod response_tests;
#[cfg(test)]
mod tests;
