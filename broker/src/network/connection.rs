//! One client connection. Frames are read with their size bounded by
//! `socket.request.max.bytes` before any allocation; requests are handled one at a time in
//! arrival order (Kafka's per-connection guarantee, which producers and committing consumers
//! depend on), and a writer task sends the replies, gathering bursts into one vectored write,
//! so reading, handling and writing still overlap. A frame that
//! cannot be decoded closes the connection, as the Java broker does; an ApiVersions version
//! we don't know gets the KIP-511 v0 answer instead. On TLS listeners the handshake comes
//! first (bounded by `tls::HANDSHAKE_TIMEOUT`); on SASL listeners nothing but ApiVersions and
//! the SASL exchange is served until the client has authenticated (`authenticate.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use strata_protocol::kafka_protocol::messages::ApiKey;
use strata_protocol::request::{decode_request, RequestError};
use tokio::io::{AsyncRead, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::frames::{FrameReader, ReadReady};
use super::writer::{write_responses, ReplySink};
use super::{authenticate, tls, ListenerContext};
use crate::handlers::{self, Reply, RequestContext};
use crate::security::KafkaPrincipal;
use crate::server::Broker;

/// Replies that may wait for the writer; beyond this the reader stops reading (backpressure
/// on a client that does not read its responses).
const MAX_IN_FLIGHT: usize = 32;

/// Replies travel to the writer in request order; requests of one connection are handled
/// one at a time, as Kafka does (clients rely on it: a producer's pipelined batches must be
/// appended in the order sent, and pipelined offset commits must apply in order).
pub(super) type PendingResponse = Reply;

pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerContext>,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) {
    tracing::debug!(%peer, listener = %listener.name, "connection opened");
    let Some(tls::TlsListener(acceptor)) = listener.tls.clone() else {
        return serve_stream(
            stream,
            peer,
            listener,
            broker,
            shutdown,
            KafkaPrincipal::anonymous(),
        )
        .await;
    };
    let handshake = tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    let stream = tokio::select! {
        result = handshake => match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::info!(%peer, listener = %listener.name, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!(%peer, listener = %listener.name, timeout = ?tls::HANDSHAKE_TIMEOUT, "TLS handshake timed out");
                return;
            }
        },
        () = shutdown.cancelled() => return,
    };
    // Kafka's default principal for SSL: the client certificate's subject, else ANONYMOUS.
    let principal = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| tls::subject_name(cert))
        .map_or_else(KafkaPrincipal::anonymous, KafkaPrincipal::user);
    serve_stream(stream, peer, listener, broker, shutdown, principal).await;
}

/// A transport split into its reading half and the sink replies are written to.
trait SplitTransport {
    type Reader: AsyncRead + ReadReady + Unpin + Send;
    type Writer: ReplySink + 'static;
    fn split_halves(self) -> (Self::Reader, Self::Writer);
}

/// Plaintext: the owned halves, whose writer can sendfile.
impl SplitTransport for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;
    fn split_halves(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }
}

/// rustls keeps its own buffers; its reader waits in `read`.
impl ReadReady for ReadHalf<TlsStream<TcpStream>> {}

impl SplitTransport for TlsStream<TcpStream> {
    type Reader = ReadHalf<Self>;
    type Writer = WriteHalf<Self>;
    fn split_halves(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }
}

async fn serve_stream<S: SplitTransport>(
    stream: S,
    peer: SocketAddr,
    listener: Arc<ListenerContext>,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    principal: KafkaPrincipal,
) {
    let (reader, writer) = stream.split_halves();
    let (pending_tx, pending_rx) = mpsc::channel::<PendingResponse>(MAX_IN_FLIGHT);
    let writer_task = tokio::spawn(write_responses(writer, pending_rx, peer));
    let max_frame = broker.config.socket_request_max_bytes.max(0) as usize;
    let mut frames = FrameReader::new(reader, max_frame);

    let principal = if listener.sasl_mechanisms.is_empty() {
        Some(principal)
    } else {
        authenticate::authenticate(
            &mut frames,
            &pending_tx,
            &listener,
            &broker,
            peer,
            &shutdown,
        )
        .await
    };
    if let Some(principal) = principal {
        tracing::debug!(%peer, %principal, "serving requests");
        let principal = Arc::new(principal);
        read_requests(
            &mut frames,
            &pending_tx,
            &listener,
            &broker,
            peer,
            &shutdown,
            principal,
        )
        .await;
    }
    drop(pending_tx);
    if let Err(e) = writer_task.await {
        tracing::error!(%peer, error = %e, "response writer failed");
    }
    tracing::debug!(%peer, "connection closed");
}

#[allow(clippy::too_many_arguments)]
async fn read_requests(
    frames: &mut FrameReader<impl AsyncRead + ReadReady + Unpin>,
    pending_tx: &mpsc::Sender<PendingResponse>,
    listener: &ListenerContext,
    broker: &Arc<Broker>,
    peer: SocketAddr,
    shutdown: &CancellationToken,
    principal: Arc<KafkaPrincipal>,
) {
    loop {
        let frame = tokio::select! {
            frame = frames.next_frame() => frame,
            () = shutdown.cancelled() => break,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(reason) => {
                tracing::info!(%peer, %reason, "closing connection");
                break;
            }
        };
        // Queue time starts once the whole frame is in: the part of latency spent waiting.
        let received = std::time::Instant::now();
        let pending = match decode_request(frame) {
            Ok(request) => {
                let context = RequestContext {
                    api_key: request.api_key,
                    api_version: request.api_version,
                    correlation_id: request.correlation_id,
                    client_id: request.header.client_id.as_ref().map(|s| s.to_string()),
                    listener: listener.name.clone(),
                    peer,
                    principal: principal.clone(),
                    received,
                };
                handlers::handle(broker, context, request.body).await
            }
            Err(RequestError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => handlers::api_versions::unsupported_version_response(correlation_id),
            Err(e) => {
                tracing::info!(%peer, error = %e, "undecodable request, closing connection");
                break;
            }
        };
        if pending_tx.send(pending).await.is_err() {
            break; // the writer has gone: the peer closed or a write failed
        }
    }
}
