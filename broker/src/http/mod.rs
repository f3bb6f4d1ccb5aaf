//! The operations HTTP endpoint (`metrics.listener`): `/metrics` in the Prometheus text
//! format, `/health/live` (the process answers) and `/health/ready` (logs recovered and
//! Kafka listeners accepting). HTTP/1.1 only, GET/HEAD only, no request bodies read.
//! It starts before log recovery, so that a long recovery is live but not ready; until the
//! broker is handed over, `/metrics` has the process metrics only.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::server::Broker;

/// A client that has not sent its request head by then is dropped (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapers are few; beyond this many open connections new ones are closed at once.
const MAX_CONNECTIONS: usize = 64;
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error("metrics.listener: expected http://host:port, found `{0}`")]
    BadAddress(String),
    #[error("metrics.listener: cannot bind {address}: {source} (set metrics.listener to another port, or to 0 to disable the endpoint)")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot register the start-up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// What the endpoint serves: the broker once its logs are open, and before that the
/// process's own metrics (CPU, memory, fds: what an operator watches during a long
/// recovery) and `strata_broker_ready 0`.
pub struct Endpoint {
    broker: OnceLock<Arc<Broker>>,
    starting: prometheus::Registry,
}

impl Endpoint {
    pub fn new() -> Result<Arc<Endpoint>, HttpError> {
        let starting = prometheus::Registry::new();
        let pid = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
        starting.register(Box::new(
            prometheus::process_collector::ProcessCollector::new(pid, "strata"),
        ))?;
        // Same name and help as the broker's gauge, so a scraper sees one series.
        let ready = prometheus::IntGauge::new(
            "strata_broker_ready",
            "1 once logs are recovered and listeners accept connections, 0 before and during shutdown.",
        )?;
        starting.register(Box::new(ready))?;
        Ok(Arc::new(Endpoint {
            broker: OnceLock::new(),
            starting,
        }))
    }

    /// Hands over the opened broker: from now on its metrics and readiness are served.
    pub fn set_broker(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }

    fn render_starting(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::with_capacity(4096);
        TextEncoder::new().encode(&self.starting.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// The `host:port` part of a `metrics.listener` value; `None` when it disables the
/// endpoint (empty or `0`).
pub fn listener_address(spec: &str) -> Result<Option<String>, HttpError> {
    let spec = spec.trim();
    if spec.is_empty() || spec == "0" {
        return Ok(None);
    }
    let address = spec.strip_prefix("http://").unwrap_or(spec);
    let address = address.strip_suffix('/').unwrap_or(address);
    let valid = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid || address.contains('/') {
        return Err(HttpError::BadAddress(spec.to_owned()));
    }
    Ok(Some(address.to_owned()))
}

/// Binds the endpoint's socket; port 0 picks a free port (see the returned listener's
/// `local_addr`).
pub async fn bind(address: &str) -> Result<TcpListener, HttpError> {
    // `[::1]:9308` and `localhost:9308` both resolve through tokio's lookup.
    TcpListener::bind(address)
        .await
        .map_err(|source| HttpError::Bind {
            address: address.to_owned(),
            source,
        })
}

/// Serves HTTP on `listener` until `stop` fires, then waits for open exchanges to finish.
pub async fn serve(listener: TcpListener, endpoint: Arc<Endpoint>, stop: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        if connections.len() >= MAX_CONNECTIONS {
            tracing::debug!(%peer, "metrics endpoint: too many connections, closing");
            continue;
        }
        let endpoint = endpoint.clone();
        let stop = stop.clone();
        let _task = connections.spawn(async move {
            let service = service_fn(move |request| {
                let endpoint = endpoint.clone();
                async move { Ok::<_, Infallible>(route(&endpoint, &request, peer)) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "metrics endpoint: connection ended");
                    }
                }
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
                }
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
    tracing::info!("metrics endpoint closed");
}

fn route(
    endpoint: &Endpoint,
    request: &Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served\n",
        );
        let _ = r
            .headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let broker = endpoint.broker.get();
    match request.uri().path() {
        "/metrics" => {
            let rendered = match broker {
                Some(broker) => broker.metrics.render(broker).map_err(|e| e.to_string()),
                None => endpoint.render_starting().map_err(|e| e.to_string()),
            };
            match rendered {
                Ok(body) => {
                    let mut r = Response::new(Full::new(Bytes::from(body)));
                    let _ = r
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
                    r
                }
                Err(e) => {
                    tracing::error!(%peer, error = %e, "metrics endpoint: rendering failed");
                    text(StatusCode::INTERNAL_SERVER_ERROR, "cannot render metrics\n")
                }
            }
        }
        "/health/live" => text(StatusCode::OK, "live\n"),
        "/health/ready" => {
            if broker.is_some_and(|b| b.metrics.is_ready()) {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        "/" => text(
            StatusCode::OK,
            "strata: /metrics, /health/live, /health/ready\n",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    let _ = r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_addresses() {
        assert_eq!(listener_address("").ok(), Some(None));
        assert_eq!(listener_address("0").ok(), Some(None));
        assert_eq!(
            listener_address("http://127.0.0.1:9308").ok(),
            Some(Some("127.0.0.1:9308".to_owned()))
        );
        assert_eq!(
            listener_address("0.0.0.0:0").ok(),
            Some(Some("0.0.0.0:0".to_owned()))
        );
        assert_eq!(
            listener_address("http://[::1]:9308/").ok(),
            Some(Some("[::1]:9308".to_owned()))
        );
        for bad in [
            "http://host",
            "http://:9308",
            "host:99999",
            "http://h:1/metrics",
        ] {
            let err = listener_address(bad).err();
            assert!(
                matches!(err, Some(HttpError::BadAddress(ref s)) if s == bad),
                "{bad}: {err:?}"
            );
        }
    }
}
