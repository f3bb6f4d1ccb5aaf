//! ApiVersions: what we speak. Ranges come from the single table of decodable versions,
//! filtered to the APIs with handlers. No tagged fields at default values are emitted
//! (librdkafka <= 2.1 mis-parses them in v3+ responses).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseKind};
use strata_protocol::kafka_protocol;
use strata_protocol::response::encode_response;
use strata_protocol::versions::SUPPORTED;

use super::{Reply, RequestContext, IMPLEMENTED};
use crate::errors::ErrorCode;

pub fn advertised() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .filter(|r| IMPLEMENTED.contains(&r.api_key))
        .map(|r| {
            ApiVersion::default()
                .with_api_key(r.api_key as i16)
                .with_min_version(r.min)
                .with_max_version(r.max)
        })
        .collect()
}

/// KIP-511: client software names and versions are restricted so they are safe as metric tags.
fn valid_software_field(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
        }
        _ => false,
    }
}

pub fn handle(ctx: &RequestContext, request: ApiVersionsRequest) -> ApiVersionsResponse {
    if ctx.api_version >= 3
        && !(valid_software_field(request.client_software_name.as_str())
            && valid_software_field(request.client_software_version.as_str()))
    {
        return ApiVersionsResponse::default().with_error_code(ErrorCode::InvalidRequest.code());
    }
    ApiVersionsResponse::default().with_api_keys(advertised())
}

/// The answer to an ApiVersions version we do not support: a v0 body with
/// UNSUPPORTED_VERSION and our ranges, so the client can retry with a version we know.
pub fn unsupported_version_response(correlation_id: i32) -> Reply {
    let body = ApiVersionsResponse::default()
        .with_error_code(ErrorCode::UnsupportedVersion.code())
        .with_api_keys(advertised());
    match encode_response(
        correlation_id,
        ApiKey::ApiVersions,
        0,
        &ResponseKind::ApiVersions(body),
    ) {
        Ok(frame) => Reply::Frame(frame),
        Err(_) => Reply::Close,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_names_follow_kip_511() {
        assert!(valid_software_field("apache-kafka-java"));
        assert!(valid_software_field("3.7.0"));
        assert!(!valid_software_field(""));
        assert!(!valid_software_field("-x"));
        assert!(!valid_software_field("a b"));
    }

    #[test]
    fn advertises_only_implemented_apis() {
        let keys: Vec<i16> = advertised().iter().map(|a| a.api_key).collect();
        assert!(keys.contains(&(ApiKey::Produce as i16)));
        for k in keys {
            assert!(IMPLEMENTED.iter().any(|i| *i as i16 == k));
        }
    }
}
