//! A follower's connection to its leader: one Kafka request at a time over plain TCP (the
//! inter-broker listener), its answer checked by the protocol guard before it is decoded,
//! since a leader's bytes are network input like any other.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata_protocol::guard;
use strata_protocol::kafka_protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A leader's answer larger than this closes the connection (fetches ask for far less).
const MAX_RESPONSE: usize = 128 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("talking to the leader: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer from the leader within {0:?}")]
    TimedOut(Duration),
    #[error("the leader's {api:?} answer is malformed: {reason}")]
    Malformed { api: ApiKey, reason: String },
}

pub struct LeaderConnection {
    stream: TcpStream,
    correlation_id: i32,
    client_id: String,
}

impl LeaderConnection {
    pub async fn connect(addr: &str, node_id: i32) -> Result<Self, ClientError> {
        let failed = |reason: String| ClientError::Connect {
            addr: addr.to_owned(),
            reason,
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| failed("timed out".into()))?
            .map_err(|e| failed(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        Ok(Self {
            stream,
            correlation_id: 0,
            client_id: format!("strata-replica-fetcher-{node_id}"),
        })
    }

    /// Sends `request` as `api` v`version` and decodes the answer, within `timeout`.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, ClientError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let malformed = |reason: String| ClientError::Malformed { api, reason };
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, api.request_header_version(version))
            .map_err(|e| malformed(format!("encoding the request: {e}")))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| malformed(format!("encoding the request: {e}")))?;
        let size =
            i32::try_from(buf.len() - 4).map_err(|_| malformed("request too large".into()))?;
        if let Some(prefix) = buf.get_mut(0..4) {
            prefix.copy_from_slice(&size.to_be_bytes());
        }
        let exchange = async {
            self.stream.write_all(&buf).await?;
            let size = self.stream.read_i32().await?;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s <= MAX_RESPONSE)
                .ok_or_else(|| malformed(format!("a frame size of {size}")))?;
            let mut frame = BytesMut::zeroed(size);
            self.stream.read_exact(&mut frame).await?;
            Ok::<Bytes, ClientError>(frame.freeze())
        };
        let mut frame = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::TimedOut(timeout))??;
        guard::check_response(&frame, api, version).map_err(|e| malformed(e.to_string()))?;
        let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))
            .map_err(|e| malformed(e.to_string()))?;
        if header.correlation_id != self.correlation_id {
            return Err(malformed(format!(
                "correlation id {} for request {}",
                header.correlation_id, self.correlation_id
            )));
        }
        Resp::decode(&mut frame, version).map_err(|e| malformed(e.to_string()))
    }
}
