//! The quorum's connections: TCP, or TLS over it when the node is given TLS configurations
//! (the broker's CONTROLLER listener on SSL; with `ssl.client.auth=required` the peers
//! authenticate each other by certificate, so only holders of the cluster CA's certificates
//! can vote or append).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A peer that has not finished the TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

pub(crate) type BoxStream = Box<dyn Stream>;

/// TLS for the quorum's listener and for its connections to the other voters.
#[derive(Clone)]
pub struct QuorumTls {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuorumTls")
    }
}

/// Connects to `addr` ("host:port"), with TLS when given, within `timeout`.
pub(crate) async fn dial(
    addr: &str,
    timeout: Duration,
    tls: Option<&QuorumTls>,
) -> io::Result<BoxStream> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    // Raft RPCs are small request/response pairs; Nagle would only add latency.
    tcp.set_nodelay(true)?;
    let Some(tls) = tls else {
        return Ok(Box::new(tcp));
    };
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let stream = tokio::time::timeout(
        timeout.max(HANDSHAKE_TIMEOUT),
        tls.connector.connect(name, tcp),
    )
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    Ok(Box::new(stream))
}

/// The server side of an accepted connection: TLS when configured.
pub(crate) async fn accept(tcp: TcpStream, tls: Option<&QuorumTls>) -> io::Result<BoxStream> {
    let _ = tcp.set_nodelay(true);
    let Some(tls) = tls else {
        return Ok(Box::new(tcp));
    };
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(tcp))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    Ok(Box::new(stream))
}
