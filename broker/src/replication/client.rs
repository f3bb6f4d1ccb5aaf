//! A follower's connection to its leader: one Kafka request at a time over the inter-broker
//! listener (TCP, TLS on SSL and SASL_SSL, logged in with SASL on SASL_*; see
//! `inter_broker`), each answer checked by the protocol guard before it is decoded, since a
//! leader's bytes are network input like any other.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata_protocol::guard;
use strata_protocol::kafka_protocol;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::inter_broker::{InterBrokerSecurity, Login};
use crate::security::scram_client::ScramClient;

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
    #[error("logging in to {addr} with {mechanism}: {reason}")]
    Login {
        addr: String,
        mechanism: &'static str,
        reason: String,
    },
}

/// TCP, or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub struct LeaderConnection {
    stream: Box<dyn Stream>,
    correlation_id: i32,
    client_id: String,
}

impl LeaderConnection {
    /// Connects to `host:port`, with TLS and a SASL login when `security` asks for them.
    pub async fn connect(
        host: &str,
        port: u16,
        node_id: i32,
        security: &InterBrokerSecurity,
    ) -> Result<Self, ClientError> {
        let addr = format!("{host}:{port}");
        let failed = |reason: String| ClientError::Connect {
            addr: addr.clone(),
            reason,
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_| failed("timed out".into()))?
            .map_err(|e| failed(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &security.tls {
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| failed(format!("not a TLS server name: {e}")))?;
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                    .await
                    .map_err(|_| failed("TLS handshake timed out".into()))?
                    .map_err(|e| failed(format!("TLS handshake: {e}")))?;
                Box::new(tls)
            }
            None => Box::new(tcp),
        };
        let mut conn = Self {
            stream,
            correlation_id: 0,
            client_id: format!("strata-replica-fetcher-{node_id}"),
        };
        if let Some(login) = &security.login {
            conn.log_in(&addr, login).await?;
        }
        Ok(conn)
    }

    /// SaslHandshake v1, then SaslAuthenticate v2 rounds (Kafka's KIP-152 framing).
    async fn log_in(&mut self, addr: &str, login: &Login) -> Result<(), ClientError> {
        let mechanism = login.mechanism_name();
        let refused = |reason: String| ClientError::Login {
            addr: addr.to_owned(),
            mechanism,
            reason,
        };
        let handshake: SaslHandshakeResponse = self
            .call(
                ApiKey::SaslHandshake,
                1,
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mechanism)),
                CONNECT_TIMEOUT,
            )
            .await?;
        if handshake.error_code != 0 {
            let offered: Vec<String> = handshake.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(refused(format!(
                "not enabled there (error {}; it offers {offered:?})",
                handshake.error_code
            )));
        }
        match login {
            Login::Plain { username, password } => {
                let token = format!("\0{username}\0{password}");
                let _ = self.authenticate(token.into_bytes(), &refused).await?;
                Ok(())
            }
            Login::Scram {
                mechanism,
                username,
                password,
            } => {
                let mut scram = ScramClient::new(*mechanism, username, password);
                let server_first = self.authenticate(scram.first(), &refused).await?;
                let client_final = scram
                    .final_for(&server_first)
                    .map_err(|e| refused(e.to_string()))?;
                let server_final = self.authenticate(client_final, &refused).await?;
                scram
                    .verify_server_final(&server_final)
                    .map_err(|e| refused(format!("the broker's signature: {e}")))
            }
        }
    }

    /// One SaslAuthenticate round: our token out, the server's back.
    async fn authenticate(
        &mut self,
        token: Vec<u8>,
        refused: &(dyn Fn(String) -> ClientError + Sync),
    ) -> Result<Vec<u8>, ClientError> {
        let answer: SaslAuthenticateResponse = self
            .call(
                ApiKey::SaslAuthenticate,
                2,
                &SaslAuthenticateRequest::default().with_auth_bytes(token.into()),
                CONNECT_TIMEOUT,
            )
            .await?;
        if answer.error_code != 0 {
            return Err(refused(format!(
                "error {}: {}",
                answer.error_code,
                answer.error_message.as_deref().unwrap_or("")
            )));
        }
        Ok(answer.auth_bytes.to_vec())
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
