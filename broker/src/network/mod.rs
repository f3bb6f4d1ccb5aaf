//! The network front end: listeners accept connections, each connection reads
//! length-prefixed frames, runs requests concurrently and writes responses back in request
//! order. TLS and SASL will wrap the stream here before frames are read.

mod authenticate;
pub mod connection;
mod frames;
mod listener;
pub mod threads;
pub mod tls;
mod writer;

pub use listener::{binds_loopback_only, check_unauthenticated_listeners, ALLOW_UNAUTHENTICATED};

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::server::Broker;
use strata_config::BrokerConfig;

/// What a connection knows about the listener it arrived on.
#[derive(Debug, Clone)]
pub struct ListenerContext {
    pub name: Arc<str>,
    pub local_addr: SocketAddr,
    /// Set on SSL and SASL_SSL listeners (see `listener.rs`).
    pub tls: Option<tls::TlsListener>,
    /// Non-empty on SASL listeners: the mechanisms offered, in configured order.
    pub sasl_mechanisms: Vec<crate::security::sasl::SaslMechanism>,
}

/// Applies `socket.send.buffer.bytes` and `socket.receive.buffer.bytes` to an accepted
/// socket, as Kafka's acceptor does; -1 (or any value below 1) keeps the kernel's default,
/// which Linux grows with the connection's throughput.
fn size_socket_buffers(stream: &tokio::net::TcpStream, config: &BrokerConfig, peer: SocketAddr) {
    use rustix::net::sockopt;
    let configured = |bytes: i32| usize::try_from(bytes).ok().filter(|b| *b > 0);
    if let Some(bytes) = configured(config.socket_send_buffer_bytes) {
        if let Err(e) = sockopt::set_socket_send_buffer_size(stream, bytes) {
            tracing::debug!(%peer, error = %e, "setting SO_SNDBUF failed");
        }
    }
    if let Some(bytes) = configured(config.socket_receive_buffer_bytes) {
        if let Err(e) = sockopt::set_socket_recv_buffer_size(stream, bytes) {
            tracing::debug!(%peer, error = %e, "setting SO_RCVBUF failed");
        }
    }
}

/// Accepts connections until `shutdown` fires; every connection task is tracked so the
/// server can wait for in-flight requests to finish. With `threads`, each connection runs on
/// the least busy connection thread; without, on the shared runtime.
pub async fn accept_loop(
    listener: TcpListener,
    context: ListenerContext,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    connections: TaskTracker,
    threads: Option<Arc<threads::ConnectionThreads>>,
) {
    let context = Arc::new(context);
    let protocol = broker
        .config
        .listeners
        .iter()
        .find(|l| *l.name == *context.name)
        .map_or("UNKNOWN", |l| l.security_protocol.name());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, error = %e, "set_nodelay failed");
                }
                size_socket_buffers(&stream, &broker.config, peer);
                let open = broker.metrics.connection_opened(&context.name, protocol);
                if let Some((handle, seat)) = threads.as_ref().and_then(|t| t.assign()) {
                    // The socket moves to the connection thread's own reactor.
                    let std_stream = match stream.into_std() {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "cannot hand the connection to its thread");
                            continue;
                        }
                    };
                    let (context, broker, shutdown) =
                        (context.clone(), broker.clone(), shutdown.clone());
                    let _task = connections.spawn_on(
                        async move {
                            match tokio::net::TcpStream::from_std(std_stream) {
                                Ok(stream) => {
                                    connection::serve(stream, peer, context, broker, shutdown)
                                        .await
                                }
                                Err(e) => tracing::warn!(%peer, error = %e, "cannot register the connection on its thread"),
                            }
                            drop((open, seat));
                        },
                        &handle,
                    );
                    continue;
                }
                let serve = connection::serve(
                    stream,
                    peer,
                    context.clone(),
                    broker.clone(),
                    shutdown.clone(),
                );
                let _task = connections.spawn(async move {
                    serve.await;
                    drop(open); // the connections gauge goes down when the connection ends
                });
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(listener = %context.name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    tracing::info!(listener = %context.name, "listener closed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::sockopt;

    async fn accepted_with(pairs: &[(&str, &str)]) -> (tokio::net::TcpStream, usize, usize) {
        let overrides: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let config = strata_config::load(None, &overrides).unwrap().config;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (stream, peer) = accepted.unwrap();
        let before = sockopt::socket_recv_buffer_size(&stream).unwrap();
        size_socket_buffers(&stream, &config, peer);
        drop(client);
        let send = sockopt::socket_send_buffer_size(&stream).unwrap();
        (stream, before, send)
    }

    #[tokio::test]
    async fn socket_buffer_sizes_are_applied_as_configured_and_left_alone_at_minus_one() {
        let (stream, _, send) = accepted_with(&[
            ("socket.receive.buffer.bytes", "65536"),
            ("socket.send.buffer.bytes", "49152"),
        ])
        .await;
        // Linux doubles the value asked for, to leave room for its bookkeeping.
        assert_eq!(sockopt::socket_recv_buffer_size(&stream).unwrap(), 131072);
        assert_eq!(send, 98304);

        let (stream, before, _) = accepted_with(&[]).await;
        assert_eq!(
            sockopt::socket_recv_buffer_size(&stream).unwrap(),
            before,
            "the default (-1) keeps the kernel's autotuned buffer"
        );
    }
}
