//! Response framing: size prefix, response header and body, encoded with kafka-protocol into
//! one buffer ready for the socket; Fetch responses also as chunks that share the records'
//! memory (see [`encode_fetch_response_chunks`]).

mod fetch;
mod fetch_plain;

pub use fetch::encode_fetch_response_chunks;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;

use crate::frame::FRAME_PREFIX_LEN;

/// Why a response could not be encoded (a bug in the handler that built it, never the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("could not encode {api_key:?} v{version} response: {reason}")]
    Codec {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("expected a response of at most {max} bytes, found {size}")]
    TooLarge { size: usize, max: usize },
}

/// Size prefix + response header (version from api_key.response_header_version(version);
/// ApiVersions always uses header v0) + body. Returns the whole frame ready for the socket.
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> Result<BytesMut, EncodeError> {
    let codec = |e: anyhow::Error| EncodeError::Codec {
        api_key,
        version,
        reason: format!("{e:#}"),
    };
    // KIP-511: clients parse the ApiVersions response header as v0 whatever the version, so
    // that an UNSUPPORTED_VERSION answer is always readable.
    let header_version = match api_key {
        ApiKey::ApiVersions => 0,
        _ => api_key.response_header_version(version),
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // patched below, once the size is known
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)
        .map_err(codec)?;
    body.encode(&mut buf, version).map_err(codec)?;
    let size = buf.len() - FRAME_PREFIX_LEN;
    let prefix = i32::try_from(size).map_err(|_| EncodeError::TooLarge {
        size,
        max: i32::MAX as usize,
    })?;
    if let Some(head) = buf.get_mut(..FRAME_PREFIX_LEN) {
        head.copy_from_slice(&prefix.to_be_bytes());
    }
    Ok(buf)
}
