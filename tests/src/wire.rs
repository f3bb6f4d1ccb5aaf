//! Raw-socket access to a broker, for tests that must send exactly the bytes they choose
//! (hostile frames) and for the readiness probe. Well-formed requests are built with the
//! `kafka-protocol` crate; responses are read with a bounded size and a deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Largest response frame we accept from the broker (a bound, since it is network input too).
pub const MAX_RESPONSE_FRAME: usize = 64 * 1024 * 1024;
/// Client id the harness puts in request headers.
pub const CLIENT_ID: &str = "strata-tests";

/// What became of a connection while we waited for a response frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameOutcome {
    /// A complete response frame (without its 4-byte length prefix).
    Frame(Bytes),
    /// The broker closed (or reset) the connection.
    Closed,
    /// Neither happened before the deadline.
    TimedOut,
}

/// A plain TCP connection to a broker.
pub struct RawConnection {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl RawConnection {
    /// Connects with a 5 s connect timeout.
    pub fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            next_correlation_id: 1,
        })
    }

    /// Writes `bytes` as they are (no length prefix added).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream
            .set_write_timeout(Some(Duration::from_secs(10)))?;
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Writes `payload` behind a correct 4-byte big-endian length prefix.
    pub fn send_frame(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let len = i32::try_from(payload.len())
            .map_err(|_| std::io::Error::new(ErrorKind::InvalidInput, "frame over 2 GiB"))?;
        let mut frame = Vec::with_capacity(payload.len() + 4);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(payload);
        self.send_raw(&frame)
    }

    /// Encodes and sends a well-formed request; returns its correlation id.
    pub fn send_request<R: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &R,
    ) -> anyhow::Result<i32> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let payload = encode_request(api_key, version, correlation_id, request)?;
        self.send_frame(&payload)
            .with_context(|| format!("sending {api_key:?} v{version}"))?;
        Ok(correlation_id)
    }

    /// Reads one response frame, waiting at most `timeout`.
    pub fn read_frame(&mut self, timeout: Duration) -> FrameOutcome {
        let deadline = Instant::now() + timeout;
        let mut len = [0u8; 4];
        match self.read_exact_by(&mut len, deadline) {
            Ok(()) => {}
            Err(outcome) => return outcome,
        }
        let len = i32::from_be_bytes(len);
        let Ok(len) = usize::try_from(len) else {
            // A negative length from the broker is a protocol violation; treat it as a close.
            return FrameOutcome::Closed;
        };
        if len > MAX_RESPONSE_FRAME {
            return FrameOutcome::Closed;
        }
        let mut body = vec![0u8; len];
        match self.read_exact_by(&mut body, deadline) {
            Ok(()) => FrameOutcome::Frame(Bytes::from(body)),
            Err(outcome) => outcome,
        }
    }

    fn read_exact_by(&mut self, buf: &mut [u8], deadline: Instant) -> Result<(), FrameOutcome> {
        let mut filled = 0;
        while filled < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(FrameOutcome::TimedOut);
            }
            if self.stream.set_read_timeout(Some(left)).is_err() {
                return Err(FrameOutcome::Closed);
            }
            let Some(rest) = buf.get_mut(filled..) else {
                break;
            };
            match self.stream.read(rest) {
                Ok(0) => return Err(FrameOutcome::Closed),
                Ok(n) => filled += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(FrameOutcome::TimedOut)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(FrameOutcome::Closed),
            }
        }
        Ok(())
    }

    /// Reads and decodes the response to a request sent with `send_request`, checking the
    /// correlation id.
    pub fn read_response<R: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        timeout: Duration,
    ) -> anyhow::Result<R> {
        match self.read_frame(timeout) {
            FrameOutcome::Frame(frame) => decode_response(api_key, version, correlation_id, frame),
            other => bail!("expected a {api_key:?} v{version} response, got {other:?}"),
        }
    }

    /// Sends ApiVersions v3 and returns the decoded answer.
    pub fn api_versions(&mut self, timeout: Duration) -> anyhow::Result<ApiVersionsResponse> {
        let request = api_versions_request();
        let id = self.send_request(ApiKey::ApiVersions, 3, &request)?;
        self.read_response(ApiKey::ApiVersions, 3, id, timeout)
    }

    /// Sends Metadata (all topics) at `version` and returns the decoded answer.
    pub fn metadata(
        &mut self,
        version: i16,
        timeout: Duration,
    ) -> anyhow::Result<MetadataResponse> {
        let request = MetadataRequest::default().with_topics(None);
        let id = self.send_request(ApiKey::Metadata, version, &request)?;
        self.read_response(ApiKey::Metadata, version, id, timeout)
    }

    /// Creates `(name, partitions)` topics (replication factor 1) with CreateTopics v5;
    /// fails unless every one was created.
    pub fn create_topics(
        &mut self,
        topics: &[(&str, i32)],
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let with_no_configs: Vec<_> = topics.iter().map(|&(n, p)| (n, p, &[][..])).collect();
        self.create_topics_with_configs(&with_no_configs, timeout)
    }

    /// As [`RawConnection::create_topics`], each topic with `(key, value)` config overrides.
    pub fn create_topics_with_configs(
        &mut self,
        topics: &[(&str, i32, TopicConfigs<'_>)],
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let string = |s: &str| StrBytes::from_string(s.to_owned());
        let request = CreateTopicsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|(name, partitions, configs)| {
                        CreatableTopic::default()
                            .with_name(TopicName(string(name)))
                            .with_num_partitions(*partitions)
                            .with_replication_factor(1)
                            .with_configs(
                                configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(string(k))
                                            .with_value(Some(string(v)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
            .with_timeout_ms(10_000);
        let id = self.send_request(ApiKey::CreateTopics, 5, &request)?;
        let response: CreateTopicsResponse =
            self.read_response(ApiKey::CreateTopics, 5, id, timeout)?;
        for t in &response.topics {
            if t.error_code != 0 {
                bail!(
                    "creating {:?}: {} {:?}",
                    t.name,
                    t.error_code,
                    t.error_message
                );
            }
        }
        Ok(())
    }

    /// Waits up to `timeout` for the broker to either answer or close the connection,
    /// returning which. Bytes sent back are drained (they may be an error response).
    pub fn answered_or_closed(&mut self, timeout: Duration) -> FrameOutcome {
        self.read_frame(timeout)
    }
}

/// `(key, value)` config overrides of a topic to create.
pub type TopicConfigs<'a> = &'a [(&'a str, &'a str)];

/// The ApiVersions request the harness sends (client software name/version set, as
/// librdkafka and the Java client do from v3 on).
pub fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from("strata-tests"))
        .with_client_software_version(StrBytes::from("0.1.0"))
}

/// Encodes header + body of a request (without the length prefix).
pub fn encode_request<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &R,
) -> anyhow::Result<BytesMut> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from(CLIENT_ID)));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .with_context(|| format!("encoding {api_key:?} v{version} header"))?;
    request
        .encode(&mut buf, version)
        .with_context(|| format!("encoding {api_key:?} v{version} body"))?;
    Ok(buf)
}

/// Decodes a response frame, checking the correlation id and that no bytes are left over.
pub fn decode_response<R: Decodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    mut frame: Bytes,
) -> anyhow::Result<R> {
    let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
        .with_context(|| format!("decoding {api_key:?} v{version} response header"))?;
    if header.correlation_id != correlation_id {
        bail!(
            "expected correlation id {correlation_id} in the {api_key:?} response, found {}",
            header.correlation_id
        );
    }
    let body = R::decode(&mut frame, version)
        .with_context(|| format!("decoding {api_key:?} v{version} response body"))?;
    if frame.has_remaining() {
        bail!(
            "{} bytes left over after the {api_key:?} v{version} response body",
            frame.remaining()
        );
    }
    Ok(body)
}

/// A request header written by hand (api key, version, correlation id, client id), for
/// frames the codec would refuse to build. `flexible` appends the empty tagged-field
/// section of header v2.
pub fn raw_request_header(
    api_key: i16,
    version: i16,
    correlation_id: i32,
    flexible: bool,
) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_i16(api_key);
    buf.put_i16(version);
    buf.put_i32(correlation_id);
    let client_id = CLIENT_ID.as_bytes();
    buf.put_i16(i16::try_from(client_id.len()).unwrap_or(0));
    buf.put_slice(client_id);
    if flexible {
        buf.put_u8(0);
    }
    buf
}

/// One ApiVersions round trip on a fresh connection: the "is the broker serving" probe.
pub fn probe_api_versions(
    addr: SocketAddr,
    timeout: Duration,
) -> anyhow::Result<ApiVersionsResponse> {
    let mut conn = RawConnection::connect(addr).context("connecting")?;
    conn.api_versions(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsRequest;

    #[test]
    fn encoded_request_decodes_with_the_codec() {
        for version in [0i16, 3] {
            let request = api_versions_request();
            let mut buf = encode_request(ApiKey::ApiVersions, version, 5, &request)
                .unwrap()
                .freeze();
            let header = RequestHeader::decode(
                &mut buf,
                ApiKey::ApiVersions.request_header_version(version),
            )
            .unwrap();
            assert_eq!(header.request_api_key, ApiKey::ApiVersions as i16);
            assert_eq!(header.request_api_version, version);
            assert_eq!(header.correlation_id, 5);
            let body = ApiVersionsRequest::decode(&mut buf, version).unwrap();
            if version >= 3 {
                assert_eq!(body.client_software_name.as_str(), "strata-tests");
            }
            assert!(
                !buf.has_remaining(),
                "v{version}: bytes left after the body"
            );
        }
    }

    #[test]
    fn raw_header_matches_the_codec_header() {
        for (version, flexible) in [(4i16, false), (12, true)] {
            let raw = raw_request_header(ApiKey::Metadata as i16, version, 9, flexible);
            let mut codec = BytesMut::new();
            RequestHeader::default()
                .with_request_api_key(ApiKey::Metadata as i16)
                .with_request_api_version(version)
                .with_correlation_id(9)
                .with_client_id(Some(StrBytes::from(CLIENT_ID)))
                .encode(&mut codec, ApiKey::Metadata.request_header_version(version))
                .unwrap();
            assert_eq!(raw, codec, "Metadata v{version} header");
        }
    }

    #[test]
    fn response_with_wrong_correlation_id_is_rejected() {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(8)
            .encode(&mut buf, 0)
            .unwrap();
        ApiVersionsResponse::default().encode(&mut buf, 3).unwrap();
        let frame = buf.freeze();
        let ok: ApiVersionsResponse =
            decode_response(ApiKey::ApiVersions, 3, 8, frame.clone()).unwrap();
        assert_eq!(ok.error_code, 0);
        let err = decode_response::<ApiVersionsResponse>(ApiKey::ApiVersions, 3, 9, frame)
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected correlation id 9"), "{err}");
    }
}
