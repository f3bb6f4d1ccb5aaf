//! The network front end: listeners accept connections, each connection reads
//! length-prefixed frames, runs requests concurrently and writes responses back in request
//! order. TLS and SASL will wrap the stream here before frames are read.

mod authenticate;
pub mod connection;
mod listener;
pub mod tls;
mod writer;

pub use listener::{check_unauthenticated_listeners, ALLOW_UNAUTHENTICATED};

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::server::Broker;

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

/// Accepts connections until `shutdown` fires; every connection task is tracked so the
/// server can wait for in-flight requests to finish.
pub async fn accept_loop(
    listener: TcpListener,
    context: ListenerContext,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    connections: TaskTracker,
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
                let open = broker.metrics.connection_opened(&context.name, protocol);
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
