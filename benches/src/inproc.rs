//! A real Strata broker started inside the benchmark process: `server::open` + `server::run`
//! on a tokio runtime, logs in a temporary directory, listening on a free loopback port.
//! Criterion then measures the broker and the client in one process, with no start-up noise.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::client::KafkaConnection;

/// A broker running on `runtime`; stopped gracefully on drop.
pub struct InProcessBroker {
    pub addr: String,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    runtime: Arc<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl InProcessBroker {
    /// Starts a broker with `overrides` (Kafka keys) on top of development defaults and waits
    /// (at most 30 s) until it answers connections.
    pub fn start(
        runtime: Arc<tokio::runtime::Runtime>,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating the broker's log dir")?;
        let addr = free_addr()?;
        let listeners = format!("PLAINTEXT://{addr}");
        Self::start_in(runtime, dir, addr, listeners, overrides)
    }

    /// A broker with the quickstart's SASL_SSL listener (generated CA and server certificate,
    /// the admin's SCRAM-SHA-512 credentials; PLAIN enabled as well) beside its PLAINTEXT one. Returns it with the
    /// SASL_SSL address and the client properties file for it.
    pub fn start_secure(
        runtime: Arc<tokio::runtime::Runtime>,
    ) -> anyhow::Result<(Self, String, std::path::PathBuf)> {
        let dir = tempfile::tempdir().context("creating the broker's log dir")?;
        let quickstart = strata_broker::security::quickstart::prepare(dir.path())?;
        let mechanisms = "listener.name.sasl_ssl.sasl.enabled.mechanisms";
        let mut overrides: Vec<(&str, &str)> = quickstart
            .overrides
            .iter()
            .filter(|(k, _)| k != "listeners" && k != mechanisms)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // PLAIN too (checked against the admin's SCRAM credentials), for the client's tests.
        overrides.push((mechanisms, "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"));
        let (broker, secure) = Self::start_with_listener_in(runtime, dir, "SASL_SSL", &overrides)?;
        Ok((broker, secure, quickstart.client_properties))
    }

    /// A broker with a second listener of `protocol` (SSL, SASL_SSL, ...) beside its
    /// PLAINTEXT one, set up by `overrides` (`listener.name.<protocol>.*` keys); returns it
    /// with that listener's address.
    pub fn start_with_listener(
        runtime: Arc<tokio::runtime::Runtime>,
        protocol: &str,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<(Self, String)> {
        let dir = tempfile::tempdir().context("creating the broker's log dir")?;
        Self::start_with_listener_in(runtime, dir, protocol, overrides)
    }

    fn start_with_listener_in(
        runtime: Arc<tokio::runtime::Runtime>,
        dir: tempfile::TempDir,
        protocol: &str,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<(Self, String)> {
        let (addr, second) = (free_addr()?, free_addr()?);
        let listeners = format!("PLAINTEXT://{addr},{protocol}://{second}");
        let broker = Self::start_in(runtime, dir, addr, listeners, overrides)?;
        Ok((broker, second))
    }

    fn start_in(
        runtime: Arc<tokio::runtime::Runtime>,
        dir: tempfile::TempDir,
        addr: String,
        listeners: String,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut given = vec![
            ("listeners".to_owned(), listeners),
            ("log.dirs".to_owned(), dir.path().display().to_string()),
            // No metrics endpoint unless asked for: its default port is fixed (9308), so a
            // second broker in the process, or one already running, would fail to start.
            ("metrics.listener".to_owned(), String::new()),
        ];
        given.extend(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let config = strata_config::load(None, &given)?.config;
        let broker = strata_broker::server::open(config)?;
        let stop = CancellationToken::new();
        let task = runtime.spawn(strata_broker::server::run(broker, stop.clone()));
        let started = Instant::now();
        runtime.block_on(async {
            loop {
                if KafkaConnection::connect(&addr, "strata-bench")
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
                if started.elapsed() > Duration::from_secs(30) {
                    anyhow::bail!("broker at {addr} did not accept connections within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })?;
        Ok(InProcessBroker {
            addr,
            stop,
            task: Some(task),
            runtime,
            _dir: dir,
        })
    }
}

/// Asks the OS for a free port, to hand to the broker. Another process could take it in
/// between; on a bench machine that is unlikely and shows as a bind error.
fn free_addr() -> anyhow::Result<String> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    Ok(format!("127.0.0.1:{port}"))
}

impl Drop for InProcessBroker {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = self.runtime.block_on(task);
        }
    }
}
