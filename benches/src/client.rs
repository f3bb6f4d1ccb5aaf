//! A minimal pipelined Kafka client on `kafka-protocol`'s client side: one connection (TCP,
//! or TLS and SASL: see `security`), requests written back to back, responses read by a
//! separate task so the broker is never blocked on us. Enough for load generation against
//! any Kafka-compatible broker.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata_protocol::guard::{self, GuardError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;

use crate::security::{ClientSecurity, Stream};

/// Largest response frame accepted: responses are network input too.
pub const MAX_RESPONSE_FRAME: usize = 256 * 1024 * 1024;
/// Largest response decoded other than Fetch's, whose records stay slices of the frame.
/// kafka-protocol's structs are up to ~30x their wire size (a 4-byte group member becomes
/// ~120 bytes), so a response near [`MAX_RESPONSE_FRAME`] could cost gigabytes once decoded;
/// strata-perf's other requests name one topic or group, whose answers are kilobytes.
pub const MAX_DECODED_RESPONSE: usize = 16 * 1024 * 1024;
/// How long any single response may take before the client gives up.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("SASL {mechanism} authentication with {addr} failed: {reason}")]
    Authentication {
        addr: String,
        mechanism: &'static str,
        reason: String,
    },
    #[error(
        "expected a response frame of at most {MAX_RESPONSE_FRAME} bytes, found a size of {size}"
    )]
    FrameTooLarge { size: i64 },
    #[error("the broker closed the connection while {pending} responses were outstanding")]
    Closed { pending: usize },
    #[error("no response within {RESPONSE_TIMEOUT:?}")]
    TimedOut,
    #[error("expected a response with correlation id {expected}, found {found}")]
    CorrelationMismatch { expected: i32, found: i32 },
    #[error("encoding {api_key:?} v{version}: {reason}")]
    Encode {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error(
        "expected a {api_key:?} v{version} response of at most {MAX_DECODED_RESPONSE} bytes, found {size}"
    )]
    ResponseTooLarge {
        api_key: ApiKey,
        version: i16,
        size: usize,
    },
    #[error("decoding {api_key:?} v{version} response: {reason}")]
    Decode {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("malformed {api_key:?} v{version} response, refused before decoding: {reason}")]
    MalformedResponse {
        api_key: ApiKey,
        version: i16,
        reason: GuardError,
    },
}

/// Encodes a request with its 4-byte size prefix. The correlation id sits at bytes 8..12 and
/// can be patched with [`set_correlation_id`] to reuse an encoded frame.
pub fn encode_frame<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    request: &R,
) -> Result<BytesMut, ClientError> {
    let err = |e: anyhow::Error| ClientError::Encode {
        api_key,
        version,
        reason: format!("{e:#}"),
    };
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .map_err(err)?;
    request.encode(&mut buf, version).map_err(err)?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| ClientError::Encode {
        api_key,
        version,
        reason: format!("expected a frame under 2 GiB, found {} bytes", buf.len()),
    })?;
    if let Some(prefix) = buf.get_mut(0..4) {
        prefix.copy_from_slice(&size.to_be_bytes());
    }
    Ok(buf)
}

/// Rewrites the correlation id of a frame made by [`encode_frame`].
pub fn set_correlation_id(frame: &mut [u8], correlation_id: i32) {
    if let Some(field) = frame.get_mut(8..12) {
        field.copy_from_slice(&correlation_id.to_be_bytes());
    }
}

/// Decodes a response frame (without its size prefix), checking the correlation id. The
/// frame is walked by strata-protocol's guard first: kafka-protocol reserves capacity for
/// every array from the count on the wire, so a broker's few bytes could otherwise abort us.
pub fn decode_response<R: Decodable>(
    api_key: ApiKey,
    version: i16,
    expected_correlation_id: i32,
    mut frame: Bytes,
) -> Result<R, ClientError> {
    // Someone else's response is named as such before its body is judged against ours.
    if let Some(found) = response_correlation_id(&frame) {
        if found != expected_correlation_id {
            return Err(ClientError::CorrelationMismatch {
                expected: expected_correlation_id,
                found,
            });
        }
    }
    if api_key != ApiKey::Fetch && frame.len() > MAX_DECODED_RESPONSE {
        return Err(ClientError::ResponseTooLarge {
            api_key,
            version,
            size: frame.len(),
        });
    }
    guard::check_response(&frame, api_key, version).map_err(|reason| {
        ClientError::MalformedResponse {
            api_key,
            version,
            reason,
        }
    })?;
    let err = |e: anyhow::Error| ClientError::Decode {
        api_key,
        version,
        reason: format!("{e:#}"),
    };
    ResponseHeader::decode(&mut frame, api_key.response_header_version(version)).map_err(err)?;
    R::decode(&mut frame, version).map_err(err)
}

/// Reads the correlation id of a response frame without decoding it.
pub fn response_correlation_id(frame: &[u8]) -> Option<i32> {
    let mut b = frame.get(0..4)?;
    Some(b.get_i32())
}

/// One pipelined connection.
pub struct KafkaConnection {
    writer: WriteHalf<Box<dyn Stream>>,
    frames: mpsc::UnboundedReceiver<Result<Bytes, ClientError>>,
    next_correlation_id: i32,
    client_id: String,
    outstanding: usize,
}

impl std::fmt::Debug for KafkaConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConnection")
            .field("client_id", &self.client_id)
            .field("outstanding", &self.outstanding)
            .finish()
    }
}

impl KafkaConnection {
    /// Connects over plain TCP and starts the response reader task (on the current tokio
    /// runtime).
    pub async fn connect(addr: &str, client_id: &str) -> Result<Self, ClientError> {
        Self::connect_with(addr, client_id, &ClientSecurity::plaintext()).await
    }

    /// Connects with TLS and SASL as `security` says, then starts the response reader task.
    pub async fn connect_with(
        addr: &str,
        client_id: &str,
        security: &ClientSecurity,
    ) -> Result<Self, ClientError> {
        let stream = security.connect(addr).await?;
        let (mut reader, writer) = tokio::io::split(stream);
        let (tx, frames) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let frame = read_frame(&mut reader).await;
                let stop = frame.is_err();
                if tx.send(frame).is_err() || stop {
                    return;
                }
            }
        });
        Ok(KafkaConnection {
            writer,
            frames,
            next_correlation_id: 1,
            client_id: client_id.to_owned(),
            outstanding: 0,
        })
    }

    /// The correlation id the next request will get.
    pub fn next_correlation_id(&self) -> i32 {
        self.next_correlation_id
    }

    /// Requests sent whose responses have not been received yet (acks=0 produces excluded).
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Encodes and writes a request; returns its correlation id. `expects_response` is false
    /// only for acks=0 Produce, which the broker never answers.
    pub async fn send<R: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &R,
        expects_response: bool,
    ) -> Result<i32, ClientError> {
        let id = self.take_correlation_id();
        let frame = encode_frame(api_key, version, id, &self.client_id, request)?;
        self.write(&frame, expects_response).await?;
        Ok(id)
    }

    /// Writes a frame made by [`encode_frame`] after stamping the next correlation id on it.
    pub async fn send_frame(
        &mut self,
        frame: &mut [u8],
        expects_response: bool,
    ) -> Result<i32, ClientError> {
        let id = self.take_correlation_id();
        set_correlation_id(frame, id);
        self.write(frame, expects_response).await?;
        Ok(id)
    }

    fn take_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1).max(1);
        id
    }

    async fn write(&mut self, frame: &[u8], expects_response: bool) -> Result<(), ClientError> {
        self.writer.write_all(frame).await?;
        if expects_response {
            self.outstanding += 1;
        }
        Ok(())
    }

    /// The next response frame (without size prefix), in request order.
    pub async fn recv_frame(&mut self) -> Result<Bytes, ClientError> {
        let frame = tokio::time::timeout(RESPONSE_TIMEOUT, self.frames.recv())
            .await
            .map_err(|_| ClientError::TimedOut)?
            .ok_or(ClientError::Closed {
                pending: self.outstanding,
            })??;
        self.outstanding = self.outstanding.saturating_sub(1);
        Ok(frame)
    }

    /// Sends one request and waits for its response (nothing else may be outstanding).
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, ClientError> {
        let id = self.send(api_key, version, request, true).await?;
        let frame = self.recv_frame().await?;
        decode_response(api_key, version, id, frame)
    }
}

/// Reads one size-prefixed response frame, bounded by [`MAX_RESPONSE_FRAME`].
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Bytes, ClientError> {
    let size = match reader.read_i32().await {
        Ok(size) => size,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(ClientError::Closed { pending: 0 })
        }
        Err(e) => return Err(e.into()),
    };
    let size = usize::try_from(size)
        .ok()
        .filter(|s| *s <= MAX_RESPONSE_FRAME)
        .ok_or(ClientError::FrameTooLarge {
            size: i64::from(size),
        })?;
    let mut buf = BytesMut::zeroed(size);
    reader.read_exact(&mut buf).await?;
    Ok(buf.freeze())
}
