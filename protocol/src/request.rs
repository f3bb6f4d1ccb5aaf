//! Turns one request frame into a typed `Request`: api key, version and correlation id by hand,
//! the version against `versions::SUPPORTED`, the guard walker, and only then the codec.
//! Never panics and never lets a count on the wire size an allocation.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

use crate::{guard, versions};

/// A decoded request. Record batches in Produce bodies are slices of the original frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub body: RequestKind,
}

/// Why a frame could not be decoded. Variants that carry a correlation id can be answered
/// with an error response; `Truncated` and `UnknownApiKey` cannot be answered meaningfully.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("expected at least 8 bytes of request header (api key, version, correlation id), found {len}")]
    Truncated { len: usize },
    #[error("expected a known Kafka api key, found {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("expected a supported version of {api_key:?}, found v{version} (correlation id {correlation_id})")]
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error(
        "malformed {api_key:?} v{version} request (correlation id {correlation_id}): {reason}"
    )]
    Malformed {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        reason: String,
    },
}

impl RequestError {
    /// The correlation id to answer with, when the header got that far.
    pub fn correlation_id(&self) -> Option<i32> {
        match self {
            RequestError::Truncated { .. } => None,
            RequestError::UnknownApiKey { correlation_id, .. }
            | RequestError::UnsupportedVersion { correlation_id, .. }
            | RequestError::Malformed { correlation_id, .. } => Some(*correlation_id),
        }
    }

    /// Kafka's error code for this failure: UNSUPPORTED_VERSION (35) or INVALID_REQUEST (42).
    /// (A Java broker closes the connection on an unparsable request; UNSUPPORTED_VERSION is
    /// the one case it answers, with an ApiVersions v0 body for ApiVersions.)
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            RequestError::UnsupportedVersion { .. } => 35,
            _ => 42,
        }
    }
}

fn be_i16(frame: &[u8], at: usize) -> Option<i16> {
    let b = frame.get(at..at.checked_add(2)?)?;
    Some(i16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

fn be_i32(frame: &[u8], at: usize) -> Option<i32> {
    let b = frame.get(at..at.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    Some(i32::from_be_bytes(a))
}

/// `frame` is one request without its 4-byte size prefix. Never panics, never allocates more
/// than a small multiple of frame.len(). Order: parse api key/version/correlation id by hand,
/// check the version against versions::SUPPORTED, run the guard walker, then decode header
/// and body with kafka-protocol (zero-copy from the `Bytes`; record batches stay slices of `frame`).
///
/// Api keys Kafka knows but Strata does not serve come back as `UnsupportedVersion`, so the
/// broker can still answer them with an error instead of dropping the connection.
pub fn decode_request(frame: Bytes) -> Result<Request, RequestError> {
    let (Some(raw_key), Some(version), Some(correlation_id)) =
        (be_i16(&frame, 0), be_i16(&frame, 2), be_i32(&frame, 4))
    else {
        return Err(RequestError::Truncated { len: frame.len() });
    };
    let api_key = ApiKey::try_from(raw_key).map_err(|()| RequestError::UnknownApiKey {
        api_key: raw_key,
        correlation_id,
    })?;
    let unsupported = RequestError::UnsupportedVersion {
        api_key,
        version,
        correlation_id,
    };
    let Some(range) = versions::supported_range(raw_key) else {
        return Err(unsupported);
    };
    if version < versions::decodable_min(&range) || version > range.max {
        return Err(unsupported);
    }
    let malformed = |reason: String| RequestError::Malformed {
        api_key,
        version,
        correlation_id,
        reason,
    };

    let header_version = api_key.request_header_version(version);
    let body_start =
        guard::check_header(&frame, header_version).map_err(|e| malformed(e.to_string()))?;
    guard::check_body(&frame, body_start, api_key, version)
        .map_err(|e| malformed(e.to_string()))?;

    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, header_version)
        .map_err(|e| malformed(format!("request header v{header_version}: {e:#}")))?;
    let body =
        RequestKind::decode(api_key, &mut buf, version).map_err(|e| malformed(format!("{e:#}")))?;
    Ok(Request {
        header,
        api_key,
        api_version: version,
        correlation_id,
        body,
    })
}
