//! A broker in a cluster: the metadata image is the state machine of the Raft quorum
//! (`strata-quorum`), so every node applies the same records in the same order. The voters
//! are `controller.quorum.voters`; a node not among them follows as a learner. Changes made
//! by request handlers are proposed through the quorum's leader; `propose` returns once
//! this node applied the change, so a handler's next read sees it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_quorum::{NodeId, Quorum, QuorumConfig};

use super::records::{ApplyError, MetadataRecord};
use super::store::{MetadataError, MetadataStore, Snapshot};

/// How long a handler waits for the quorum to commit a change (a leader election takes
/// one to two seconds with the default timeouts).
const COMMIT_DEADLINE: Duration = Duration::from_secs(15);

/// What applying one committed entry gave: refused records are refused on every node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    pub refused: Option<ApplyError>,
}

/// The quorum's view of the store.
pub struct MetadataStateMachine {
    store: Weak<MetadataStore>,
}

impl strata_quorum::StateMachine for MetadataStateMachine {
    type Command = Vec<MetadataRecord>;
    type Response = Applied;

    fn apply(&self, _index: u64, records: &Vec<MetadataRecord>) -> Applied {
        let Some(store) = self.store.upgrade() else {
            return Applied::default();
        };
        match store.apply_committed(records) {
            Ok(()) => Applied::default(),
            Err(refused) => {
                tracing::debug!(error = %refused, "metadata change refused");
                Applied {
                    refused: Some(refused),
                }
            }
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        let Some(store) = self.store.upgrade() else {
            return Vec::new();
        };
        serde_json::to_vec(&Snapshot::of(&store.image())).unwrap_or_default()
    }

    fn restore(&self, snapshot: &[u8]) -> Result<(), String> {
        let snapshot: Snapshot = serde_json::from_slice(snapshot).map_err(|e| e.to_string())?;
        if let Some(store) = self.store.upgrade() {
            store.restore(snapshot);
        }
        Ok(())
    }
}

/// The running quorum, as the store and the controller use it.
pub struct ClusterLink {
    quorum: Quorum<MetadataStateMachine>,
    runtime: tokio::runtime::Handle,
}

impl ClusterLink {
    /// Proposes one change and waits until this node applied it.
    pub async fn commit(&self, records: Vec<MetadataRecord>) -> Result<(), MetadataError> {
        let applied = self
            .quorum
            .propose(records, COMMIT_DEADLINE)
            .await
            .map_err(|e| MetadataError::Quorum(e.to_string()))?;
        match applied.refused {
            Some(refused) => Err(MetadataError::Refused(refused)),
            None => Ok(()),
        }
    }

    /// [`Self::commit`] from synchronous code (the admin paths): the proposal runs on the
    /// broker's main runtime while this thread waits.
    pub fn commit_blocking(
        self: &Arc<Self>,
        records: Vec<MetadataRecord>,
    ) -> Result<(), MetadataError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let link = self.clone();
        let _task = self.runtime.spawn(async move {
            let _ = tx.send(link.commit(records).await);
        });
        let wait = move || {
            rx.blocking_recv()
                .unwrap_or_else(|_| Err(MetadataError::Quorum("the broker is stopping".into())))
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::block_in_place(wait)
        } else {
            wait()
        }
    }

    /// The quorum's leader: the active controller.
    pub fn leader(&self) -> Option<i32> {
        self.quorum.leader().and_then(|id| i32::try_from(id).ok())
    }

    pub fn is_leader(&self) -> bool {
        self.quorum.is_leader()
    }

    /// On the active controller: how long ago each other node last answered it.
    pub fn last_contact(&self) -> std::collections::BTreeMap<i32, std::time::Instant> {
        self.quorum
            .last_contact()
            .into_iter()
            .filter_map(|(id, at)| i32::try_from(id).ok().map(|id| (id, at)))
            .collect()
    }

    pub async fn shutdown(&self) {
        self.quorum.shutdown().await;
    }
}

/// Starts this node's quorum member over `dir`, binds the controller listener, and links
/// the store to it. The image fills in as the quorum replays its snapshot and log.
pub async fn start(
    store: &Arc<MetadataStore>,
    config: &strata_config::BrokerConfig,
    dir: std::path::PathBuf,
) -> anyhow::Result<Arc<ClusterLink>> {
    use anyhow::Context;
    let listener = config.controller_listener().context(
        "controller.listener.names: no listener of that name (the metadata quorum needs one)",
    )?;
    let node_id = NodeId::try_from(config.node_id).context("node.id must not be negative")?;
    let voters = config
        .controller_quorum_voters
        .iter()
        .filter_map(|(id, addr)| NodeId::try_from(*id).ok().map(|id| (id, addr.clone())))
        .collect();
    let listen_addr = format!("{}:{}", bind_host(&listener.host), listener.port);
    let advertised = match config.controller_quorum_voters.get(&config.node_id) {
        Some(addr) => addr.clone(),
        None => format!("{}:{}", advertised_host(&listener.host), listener.port),
    };
    let mut quorum_config = QuorumConfig::new(node_id, listen_addr, voters, dir);
    quorum_config.advertised_addr = advertised;
    quorum_config.tls = quorum_tls(config, listener)?;
    let machine = Arc::new(MetadataStateMachine {
        store: Arc::downgrade(store),
    });
    let quorum = Quorum::start(quorum_config, machine)
        .await
        .context("starting the metadata quorum")?;
    let link = Arc::new(ClusterLink {
        quorum,
        runtime: tokio::runtime::Handle::current(),
    });
    store.link_cluster(link.clone());
    // Metadata answers name the quorum's leader as the controller.
    let mut leaders = link.quorum.watch_leader();
    let watched = Arc::downgrade(store);
    let _watch = tokio::spawn(async move {
        loop {
            let leader = (*leaders.borrow_and_update())
                .and_then(|id| i32::try_from(id).ok())
                .unwrap_or(-1);
            match watched.upgrade() {
                Some(store) => store.set_controller(leader),
                None => return,
            }
            if leaders.changed().await.is_err() {
                return;
            }
        }
    });
    Ok(link)
}

/// TLS for the quorum when its listener is SSL (`listener.security.protocol.map` with
/// `CONTROLLER:SSL`): the listener's key store serves and identifies this node, its trust
/// store checks the others. With `ssl.client.auth=required` the voters authenticate each
/// other; without it anyone who can reach the port could speak Raft to it.
fn quorum_tls(
    config: &strata_config::BrokerConfig,
    listener: &strata_config::Listener,
) -> anyhow::Result<Option<strata_quorum::QuorumTls>> {
    use anyhow::Context;
    use strata_config::SecurityProtocol;
    match listener.security_protocol {
        SecurityProtocol::Plaintext => {
            if !crate::network::binds_loopback_only(&listener.host) {
                tracing::warn!(listener = %listener.name,
                "the metadata quorum's listener is PLAINTEXT: anyone who reaches it can speak \
                 Raft to this node; keep it on the cluster network, or make it SSL with \
                 ssl.client.auth=required");
            }
            Ok(None)
        }
        SecurityProtocol::Ssl => {
            let context = || format!("the metadata quorum's SSL listener {}", listener.name);
            let server =
                crate::network::tls::server_config(config, &listener.name).with_context(context)?;
            let client =
                crate::network::tls::client_config(config, &listener.name).with_context(context)?;
            let mutual = config
                .listener_value(&listener.name, "ssl.client.auth")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("required"));
            if !mutual {
                tracing::warn!(listener = %listener.name,
                    "the metadata quorum's SSL listener does not require client certificates: \
                     anyone who reaches it can speak Raft to this node; set \
                     ssl.client.auth=required on it");
            }
            Ok(Some(strata_quorum::QuorumTls {
                acceptor: tokio_rustls::TlsAcceptor::from(server),
                connector: tokio_rustls::TlsConnector::from(client),
            }))
        }
        other => anyhow::bail!(
            "the metadata quorum's listener {}: expected PLAINTEXT or SSL, found {} (the quorum \
             authenticates peers by TLS certificate, not SASL)",
            listener.name,
            other.name()
        ),
    }
}

fn bind_host(host: &str) -> &str {
    if host.is_empty() {
        "0.0.0.0"
    } else {
        host
    }
}

fn advertised_host(host: &str) -> &str {
    if host.is_empty() || host == "0.0.0.0" {
        "127.0.0.1"
    } else {
        host
    }
}
