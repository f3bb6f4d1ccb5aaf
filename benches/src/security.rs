//! Client security for the load tool, read from the same client properties file the Kafka
//! tools take (`--producer.config`): TLS for `SSL` and `SASL_SSL`, and SASL PLAIN,
//! SCRAM-SHA-256 and SCRAM-SHA-512 for `SASL_PLAINTEXT` and `SASL_SSL` — what managed Kafka
//! services ask for. Keys understood: `security.protocol`, `sasl.mechanism`,
//! `sasl.jaas.config` (its `username` and `password`) or librdkafka's `sasl.username` /
//! `sasl.password`, and a PEM truststore (`ssl.truststore.location` with
//! `ssl.truststore.type=PEM`, or librdkafka's `ssl.ca.location`); without one the system's
//! CAs are trusted. Broker host names are verified. A client certificate (mutual TLS, as
//! brokers with `ssl.client.auth=required` ask) comes from a PEM key store:
//! `ssl.keystore.location` (the private key and its certificate chain in one file, with
//! `ssl.keystore.type=PEM`), `ssl.keystore.key` with `ssl.keystore.certificate.chain` (the PEM
//! text itself), or librdkafka's `ssl.key.location` with `ssl.certificate.location`.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use strata_broker::security::scram::ScramMechanism;
use strata_broker::security::scram_client::ScramClient;
use strata_config::jaas_option;

use crate::client::{decode_response, encode_frame, read_frame, ClientError};

/// How to secure a connection.
#[derive(Clone, Default)]
pub struct ClientSecurity {
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<Sasl>,
}

impl std::fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecurity")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.as_ref().map(|s| s.mechanism))
            .finish()
    }
}

#[derive(Clone)]
struct Sasl {
    mechanism: Mechanism,
    username: String,
    password: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.mechanism_name(),
        }
    }
}

/// Why a client properties file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityConfigError {
    #[error(transparent)]
    File(#[from] strata_config::error::ConfigError),
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> SecurityConfigError {
    SecurityConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl ClientSecurity {
    /// Plain TCP, no authentication.
    pub fn plaintext() -> Self {
        Self::default()
    }

    /// Reads a Kafka client properties file (with the broker's properties reader).
    pub fn from_properties_file(path: &Path) -> Result<Self, SecurityConfigError> {
        Self::from_pairs(Properties(strata_config::read_properties_file(path)?))
    }

    /// Parses Kafka client properties text.
    pub fn from_properties(text: &str) -> Result<Self, SecurityConfigError> {
        let pairs = strata_config::properties::parse_properties(text).map_err(|e| {
            SecurityConfigError::Syntax {
                line: e.line,
                reason: e.reason,
            }
        })?;
        Self::from_pairs(Properties(pairs))
    }

    fn from_pairs(props: Properties) -> Result<Self, SecurityConfigError> {
        let protocol = props
            .get("security.protocol")
            .unwrap_or("PLAINTEXT")
            .to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return Err(invalid(
                    "security.protocol",
                    format!("expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, found {other}"),
                ))
            }
        };
        let tls = tls.then(|| tls_config(&props)).transpose()?;
        let sasl = sasl.then(|| sasl_config(&props)).transpose()?;
        Ok(ClientSecurity { tls, sasl })
    }

    /// Connects to `addr` (host:port), with TLS and SASL as configured.
    pub async fn connect(&self, addr: &str) -> Result<Box<dyn Stream>, ClientError> {
        let connect_err = |source| ClientError::Connect {
            addr: addr.to_owned(),
            source,
        };
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(connect_err)?;
        tcp.set_nodelay(true)?;
        let mut stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some(config) => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name =
                    rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
                        connect_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                    })?;
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await
                    .map_err(connect_err)?;
                Box::new(tls)
            }
        };
        if let Some(sasl) = &self.sasl {
            authenticate(&mut stream, sasl).await.map_err(|reason| {
                ClientError::Authentication {
                    addr: addr.to_owned(),
                    mechanism: sasl.mechanism.name(),
                    reason,
                }
            })?;
        }
        Ok(stream)
    }
}

/// A connection's byte stream: TCP, or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A properties file's pairs; the last of a repeated key wins, as in Java.
struct Properties(Vec<strata_config::properties::Property>);

impl Properties {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }
}

fn tls_config(props: &Properties) -> Result<Arc<rustls::ClientConfig>, SecurityConfigError> {
    let get = |key| props.get(key);
    let mut roots = rustls::RootCertStore::empty();
    let truststore = get("ssl.truststore.location").or_else(|| get("ssl.ca.location"));
    match truststore {
        Some(path) => {
            let kind = get("ssl.truststore.type").unwrap_or("PEM");
            if get("ssl.truststore.location").is_some() && !kind.eq_ignore_ascii_case("PEM") {
                return Err(invalid(
                    "ssl.truststore.type",
                    format!("only PEM truststores are read here, found {kind} (export the CA certificates as PEM)"),
                ));
            }
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| invalid("ssl.truststore.location", format!("{path}: {e}")))?;
            for cert in certs {
                let cert =
                    cert.map_err(|e| invalid("ssl.truststore.location", format!("{path}: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| invalid("ssl.truststore.location", format!("{path}: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(invalid(
                    "ssl.truststore.location",
                    "no truststore given and no system CA certificates found",
                ));
            }
        }
    }
    if get("ssl.endpoint.identification.algorithm").is_some_and(str::is_empty) {
        return Err(invalid(
            "ssl.endpoint.identification.algorithm",
            "turning host name verification off is not supported",
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("security.protocol", e.to_string()))?
        .with_root_certificates(roots);
    let config = match client_certificate(props)? {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain, identity.key)
            .map_err(|e| invalid(identity.source, e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A client certificate chain and its private key, and the key they were read from.
struct ClientIdentity {
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
    source: &'static str,
}

/// The client certificate for mutual TLS, if the properties name one (see the module docs).
fn client_certificate(props: &Properties) -> Result<Option<ClientIdentity>, SecurityConfigError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let get = |key| props.get(key).filter(|v| !v.trim().is_empty());
    let read = |key: &'static str, path: &str| {
        std::fs::read(path).map_err(|e| invalid(key, format!("{path}: {e}")))
    };
    // (certificate chain PEM, private key PEM, the key to blame)
    let (chain_pem, key_pem, source) = match (
        get("ssl.keystore.location"),
        get("ssl.keystore.certificate.chain"),
        get("ssl.keystore.key"),
        get("ssl.certificate.location"),
        get("ssl.key.location"),
    ) {
        (None, None, None, None, None) => return Ok(None),
        (Some(path), None, None, None, None) => {
            let kind = get("ssl.keystore.type").unwrap_or("PEM");
            if !kind.eq_ignore_ascii_case("PEM") {
                return Err(invalid(
                    "ssl.keystore.type",
                    format!("only PEM key stores are read here, found {kind} (convert it: openssl pkcs12 -nodes)"),
                ));
            }
            let pem = read("ssl.keystore.location", path)?;
            (pem.clone(), pem, "ssl.keystore.location")
        }
        (None, Some(chain), Some(key), None, None) => (
            chain.as_bytes().to_vec(),
            key.as_bytes().to_vec(),
            "ssl.keystore.key",
        ),
        (None, None, None, Some(cert), Some(key)) => (
            read("ssl.certificate.location", cert)?,
            read("ssl.key.location", key)?,
            "ssl.key.location",
        ),
        _ => {
            return Err(invalid(
                "ssl.keystore.location",
                "expected one client certificate source: ssl.keystore.location, or \
                 ssl.keystore.certificate.chain with ssl.keystore.key, or ssl.certificate.location \
                 with ssl.key.location",
            ))
        }
    };
    if get("ssl.key.password").is_some() {
        return Err(invalid(
            "ssl.key.password",
            "encrypted private keys are not supported (decrypt it: openssl pkey)",
        ));
    }
    let chain = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(source, format!("expected PEM certificates: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(
            source,
            "expected at least one PEM CERTIFICATE block, found none",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        invalid(
            source,
            format!("expected an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    Ok(Some(ClientIdentity { chain, key, source }))
}

fn sasl_config(props: &Properties) -> Result<Sasl, SecurityConfigError> {
    let get = |key| props.get(key);
    let name = get("sasl.mechanism")
        .or_else(|| get("sasl.mechanisms"))
        .map(str::to_ascii_uppercase);
    let mechanism = match name.as_deref() {
        Some("PLAIN") => Some(Mechanism::Plain),
        Some(scram) => ScramMechanism::from_name(scram).map(Mechanism::Scram),
        None => None,
    }
    .ok_or_else(|| {
        invalid(
            "sasl.mechanism",
            format!(
                "expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, found {}",
                name.as_deref()
                    .unwrap_or("none (GSSAPI, the clients' default, is not supported)")
            ),
        )
    })?;
    let jaas = get("sasl.jaas.config").unwrap_or_default();
    let username = jaas_option(jaas, "username")
        .or_else(|| get("sasl.username").map(str::to_owned))
        .ok_or_else(|| invalid("sasl.jaas.config", "expected username=\"...\""))?;
    let password = jaas_option(jaas, "password")
        .or_else(|| get("sasl.password").map(str::to_owned))
        .ok_or_else(|| invalid("sasl.jaas.config", "expected password=\"...\""))?;
    Ok(Sasl {
        mechanism,
        username,
        password,
    })
}

/// SaslHandshake v1, then SaslAuthenticate v2 rounds for the mechanism.
async fn authenticate(stream: &mut Box<dyn Stream>, sasl: &Sasl) -> Result<(), String> {
    let handshake = SaslHandshakeRequest::default()
        .with_mechanism(StrBytes::from_static_str(sasl.mechanism.name()));
    let response: SaslHandshakeResponse = call(stream, ApiKey::SaslHandshake, 1, 1, &handshake)
        .await
        .map_err(|e| e.to_string())?;
    if response.error_code != 0 {
        let offered: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(format!(
            "the broker refused the mechanism (error {}); it offers {offered:?}",
            response.error_code
        ));
    }
    match sasl.mechanism {
        Mechanism::Plain => {
            let token = format!("\0{}\0{}", sasl.username, sasl.password);
            exchange(stream, 2, token.into_bytes()).await?;
            Ok(())
        }
        Mechanism::Scram(mechanism) => scram(stream, sasl, mechanism).await,
    }
}

/// One SaslAuthenticate round: the server's bytes, or its error message.
async fn exchange(
    stream: &mut Box<dyn Stream>,
    correlation_id: i32,
    token: Vec<u8>,
) -> Result<Bytes, String> {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
    let response: SaslAuthenticateResponse = call(
        stream,
        ApiKey::SaslAuthenticate,
        2,
        correlation_id,
        &request,
    )
    .await
    .map_err(|e| e.to_string())?;
    if response.error_code != 0 {
        return Err(format!(
            "error {}: {}",
            response.error_code,
            response.error_message.as_deref().unwrap_or("")
        ));
    }
    Ok(response.auth_bytes)
}

async fn call<Req, Resp>(
    stream: &mut Box<dyn Stream>,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &Req,
) -> Result<Resp, ClientError>
where
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable,
{
    let frame = encode_frame(api_key, version, correlation_id, "strata-perf", request)?;
    stream.write_all(&frame).await?;
    stream.flush().await?;
    let frame = read_frame(stream).await?;
    decode_response(api_key, version, correlation_id, frame)
}

/// RFC 5802's exchange, with the broker's own SCRAM client (which bounds the server's
/// iteration count and checks its signature).
async fn scram(
    stream: &mut Box<dyn Stream>,
    sasl: &Sasl,
    mechanism: ScramMechanism,
) -> Result<(), String> {
    let mut client = ScramClient::new(mechanism, &sasl.username, &sasl.password);
    let server_first = exchange(stream, 2, client.first()).await?;
    let client_final = client.final_for(&server_first).map_err(|e| e.to_string())?;
    let server_final = exchange(stream, 3, client_final).await?;
    client.verify_server_final(&server_final).map_err(|e| {
        format!("the broker's SCRAM answer ({e}): not the server we share the password with")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_pick_protocol_mechanism_and_credentials() {
        let sec = ClientSecurity::from_properties(
            "# comment\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism: PLAIN\nsasl.username=u\nsasl.password=p\n",
        )
        .unwrap();
        assert!(sec.tls.is_none());
        let sasl = sec.sasl.unwrap();
        assert_eq!(
            (
                sasl.mechanism,
                sasl.username.as_str(),
                sasl.password.as_str()
            ),
            (Mechanism::Plain, "u", "p")
        );
        let err =
            ClientSecurity::from_properties("security.protocol=SASL_PLAINTEXT\n").unwrap_err();
        assert!(err.to_string().contains("GSSAPI"), "{err}");
        let err = ClientSecurity::from_properties("security.protocol=KERBEROS\n").unwrap_err();
        assert!(err.to_string().contains("security.protocol"), "{err}");
    }
}
