//! One client connection. Frames are read with their size bounded by
//! `socket.request.max.bytes` before any allocation; each decoded request runs as its own
//! task, and a writer task awaits those tasks in arrival order, so requests overlap but
//! responses leave in sequence (Kafka's ordering guarantee per connection). A frame that
//! cannot be decoded closes the connection, as the Java broker does; an ApiVersions version
//! we don't know gets the KIP-511 v0 answer instead. On TLS listeners the handshake comes
//! first (bounded by `tls::HANDSHAKE_TIMEOUT`); on SASL listeners nothing but ApiVersions and
//! the SASL exchange is served until the client has authenticated (`authenticate.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use strata_protocol::frame::{decode_frame_len, FRAME_PREFIX_LEN};
use strata_protocol::kafka_protocol::messages::ApiKey;
use strata_protocol::request::{decode_request, RequestError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{authenticate, tls, ListenerContext};
use crate::handlers::{self, Reply, RequestContext};
use crate::security::KafkaPrincipal;
use crate::server::Broker;

/// Requests of one connection that may be in flight at once; beyond this the reader waits.
/// Java clients pipeline at most 5 (max.in.flight.requests.per.connection).
const MAX_IN_FLIGHT: usize = 32;
/// Frames are read in chunks of at most this size, so a peer that announces a large frame
/// and sends nothing costs nothing.
const READ_CHUNK: usize = 64 * 1024;

pub(super) type PendingResponse = JoinHandle<Reply>;

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

async fn serve_stream<S>(
    stream: S,
    peer: SocketAddr,
    listener: Arc<ListenerContext>,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    principal: KafkaPrincipal,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let (pending_tx, pending_rx) = mpsc::channel::<PendingResponse>(MAX_IN_FLIGHT);
    let writer_task = tokio::spawn(write_responses(writer, pending_rx, peer));
    let max_frame = broker.config.socket_request_max_bytes.max(0) as usize;

    let principal = if listener.sasl_mechanisms.is_empty() {
        Some(principal)
    } else {
        authenticate::authenticate(
            &mut reader,
            &pending_tx,
            &listener,
            &broker,
            peer,
            &shutdown,
            max_frame,
        )
        .await
    };
    if let Some(principal) = principal {
        tracing::debug!(%peer, %principal, "serving requests");
        let principal = Arc::new(principal);
        read_requests(
            &mut reader,
            &pending_tx,
            &listener,
            &broker,
            peer,
            &shutdown,
            max_frame,
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
    reader: &mut (impl AsyncRead + Unpin),
    pending_tx: &mpsc::Sender<PendingResponse>,
    listener: &ListenerContext,
    broker: &Arc<Broker>,
    peer: SocketAddr,
    shutdown: &CancellationToken,
    max_frame: usize,
    principal: Arc<KafkaPrincipal>,
) {
    loop {
        let frame = tokio::select! {
            frame = read_frame(reader, max_frame) => frame,
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
                let broker = broker.clone();
                tokio::spawn(async move { handlers::handle(&broker, context, request.body).await })
            }
            Err(RequestError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => {
                let response = handlers::api_versions::unsupported_version_response(correlation_id);
                tokio::spawn(async move { response })
            }
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

/// At most this many finished replies go out in one vectored write.
const MAX_COALESCED_REPLIES: usize = 64;

/// What the writer does after looking at one reply.
enum Flow {
    Continue,
    /// Write what is gathered, then close (the request was refused).
    Close,
    /// Close at once (a handler failed).
    Abort,
}

fn gather(
    reply: Result<Reply, tokio::task::JoinError>,
    out: &mut Vec<Bytes>,
    peer: SocketAddr,
) -> Flow {
    match reply {
        Ok(Reply::Frame(frame)) => {
            out.push(frame.freeze());
            Flow::Continue
        }
        Ok(Reply::Nothing) => Flow::Continue, // acks=0 produce: no response by design
        Ok(Reply::Close) => {
            tracing::info!(%peer, "request refused; closing connection");
            Flow::Close
        }
        Err(e) => {
            // A handler bug must not take the broker down; it costs this connection.
            tracing::error!(%peer, error = %e, "request handler failed; closing connection");
            Flow::Abort
        }
    }
}

/// Writes replies in request order. Replies that are already finished when the writer gets
/// to them are gathered and sent with one vectored write: one syscall for a burst of
/// pipelined responses instead of one each.
async fn write_responses(
    mut writer: impl AsyncWrite + Unpin,
    mut pending: mpsc::Receiver<PendingResponse>,
    peer: SocketAddr,
) {
    let mut carried: Option<PendingResponse> = None;
    loop {
        let next = match carried.take() {
            Some(handle) => handle,
            None => match pending.recv().await {
                Some(handle) => handle,
                None => break,
            },
        };
        let mut out = Vec::new();
        let mut flow = gather(next.await, &mut out, peer);
        while matches!(flow, Flow::Continue) && out.len() < MAX_COALESCED_REPLIES {
            match pending.try_recv() {
                Ok(handle) if handle.is_finished() => flow = gather(handle.await, &mut out, peer),
                Ok(handle) => {
                    carried = Some(handle);
                    break;
                }
                Err(_) => break,
            }
        }
        if matches!(flow, Flow::Abort) {
            return;
        }
        if let Err(e) = write_all_vectored(&mut writer, &out).await {
            tracing::debug!(%peer, error = %e, "write failed");
            return;
        }
        if matches!(flow, Flow::Close) {
            break;
        }
    }
    let _ = writer.shutdown().await;
}

async fn write_all_vectored(
    writer: &mut (impl AsyncWrite + Unpin),
    chunks: &[Bytes],
) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = chunks
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| std::io::IoSlice::new(c))
        .collect();
    let mut remaining = &mut slices[..];
    while !remaining.is_empty() {
        let written = writer.write_vectored(remaining).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut remaining, written);
    }
    writer.flush().await
}

/// Reads one frame body; `Ok(None)` on a clean end of stream between frames.
pub(super) async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
    max_frame: usize,
) -> Result<Option<Bytes>, String> {
    let mut prefix = [0u8; FRAME_PREFIX_LEN];
    let mut filled = 0;
    while filled < FRAME_PREFIX_LEN {
        let rest = prefix.get_mut(filled..).unwrap_or_default();
        match reader.read(rest).await {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err("end of stream inside a size prefix".into()),
            Ok(n) => filled += n,
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
    let len = decode_frame_len(prefix, max_frame).map_err(|e| e.to_string())?;
    let mut body = BytesMut::with_capacity(len.min(READ_CHUNK));
    while body.len() < len {
        let want = (len - body.len()).min(READ_CHUNK);
        body.reserve(want);
        let mut limited = (&mut *reader).take(want as u64);
        match limited.read_buf(&mut body).await {
            Ok(0) => {
                return Err(format!(
                    "end of stream after {} of {len} frame bytes",
                    body.len()
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
    Ok(Some(body.freeze()))
}
