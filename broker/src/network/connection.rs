//! One client connection, served by one task. Frames are read with their size bounded by
//! `socket.request.max.bytes` before any allocation; requests are handled one at a time in
//! arrival order (Kafka's per-connection guarantee, which producers and committing consumers
//! depend on), and their replies are written by the same task: those of pipelined requests
//! that arrived together go out in one vectored write once the last of them is handled, and
//! the next read waits for the write, as in Kafka (a client that does not read its replies
//! stops being read). A frame that
//! cannot be decoded closes the connection, as the Java broker does; an ApiVersions version
//! we don't know gets the KIP-511 v0 answer instead. On TLS listeners the handshake comes
//! first (bounded by `tls::HANDSHAKE_TIMEOUT`); on SASL listeners nothing but ApiVersions and
//! the SASL exchange is served until the client has authenticated (`authenticate.rs`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::FutureExt;
use strata_protocol::kafka_protocol::messages::ApiKey;
use strata_protocol::request::{decode_request, RequestError};
use tokio::io::{AsyncRead, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::frames::{FrameReader, ReadReady};
use super::writer::{Flow, ReplySink, ReplyWriter, MAX_COALESCED_REPLIES};
use super::{authenticate, tls, ListenerContext};
use crate::handlers::{self, Reply, RequestContext};
use crate::security::KafkaPrincipal;
use crate::server::Broker;

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
    type Writer: ReplySink;
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
    let mut replies = ReplyWriter::new(writer, peer);
    let max_frame = broker.config.socket_request_max_bytes.max(0) as usize;
    let mut frames = FrameReader::new(reader, max_frame);

    let principal = if listener.sasl_mechanisms.is_empty() {
        Some(principal)
    } else {
        authenticate::authenticate(
            &mut frames,
            &mut replies,
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
        serve_requests(
            &mut frames,
            &mut replies,
            &listener,
            &broker,
            peer,
            &shutdown,
            principal,
        )
        .await;
    }
    replies.shutdown().await;
    tracing::debug!(%peer, "connection closed");
}

#[allow(clippy::too_many_arguments)]
async fn serve_requests(
    frames: &mut FrameReader<impl AsyncRead + ReadReady + Unpin>,
    replies: &mut ReplyWriter<impl ReplySink>,
    listener: &ListenerContext,
    broker: &Arc<Broker>,
    peer: SocketAddr,
    shutdown: &CancellationToken,
    principal: Arc<KafkaPrincipal>,
) {
    let mute_ms: Arc<std::sync::atomic::AtomicI64> = Arc::default();
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
        let reply = match decode_request(frame) {
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
                    mute_ms: mute_ms.clone(),
                };
                let handling = handlers::handle(broker, context, request.body);
                match handle_while_writing(handling, replies).await {
                    Ok(reply) => reply,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "write failed");
                        return;
                    }
                }
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
        if replies.queue(reply) == Flow::Close {
            break;
        }
        // A client over its quota: its reply (with throttle_time_ms) goes out now, then
        // nothing more is read from it until the throttle has passed (KIP-219).
        let mute = mute_ms.swap(0, std::sync::atomic::Ordering::Relaxed);
        if mute > 0 {
            if let Err(e) = replies.flush().await {
                tracing::debug!(%peer, error = %e, "write failed");
                return;
            }
            let muted = std::time::Duration::from_millis(u64::try_from(mute).unwrap_or(0));
            tokio::select! {
                () = tokio::time::sleep(muted) => {}
                () = shutdown.cancelled() => break,
            }
            continue;
        }
        // Requests that came in together are all handled before their replies go out in
        // one write; the reply goes out at once when nothing else is waiting to be handled.
        if frames.has_buffered_frame() && replies.queued() < MAX_COALESCED_REPLIES {
            continue;
        }
        let written = tokio::select! {
            written = replies.flush() => written,
            () = shutdown.cancelled() => break,
        };
        if let Err(e) = written {
            tracing::debug!(%peer, error = %e, "write failed");
            return;
        }
    }
    // Replies to the requests handled so far still go out (a refused request's answer, or
    // pipelined replies before an undecodable frame), unless the broker is stopping.
    if !shutdown.is_cancelled() {
        if let Err(e) = replies.flush().await {
            tracing::debug!(%peer, error = %e, "write failed");
        }
    }
}

/// Runs a request's handler. Replies already queued must not wait for a handler that waits
/// (a Fetch long-polling, a JoinGroup): unless it finishes at once, they are written while
/// it runs; if it does finish at once, they stay queued to go out with its reply.
async fn handle_while_writing(
    handling: impl Future<Output = Reply>,
    replies: &mut ReplyWriter<impl ReplySink>,
) -> std::io::Result<Reply> {
    let mut handling = std::pin::pin!(handling);
    if replies.queued() == 0 {
        return Ok(handling.await);
    }
    if let Some(reply) = (&mut handling).now_or_never() {
        return Ok(reply);
    }
    let (reply, written) = tokio::join!(handling, replies.flush());
    written.map(|()| reply)
}
