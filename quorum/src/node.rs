//! [`Quorum`]: start-up, proposals (with forwarding to the leader), status and shutdown.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::metrics::RaftMetrics;
use openraft::{BasicNode, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::log_store::{lock, LogStore};
use crate::network::{request_once, NetShared, Network};
use crate::state_machine::SmStore;
use crate::types::{Proposed, Raft, Rejected, Request, Response};
use crate::{background, server, NodeId, QuorumConfig, QuorumError, StateMachine};

/// Snapshot bytes per InstallSnapshot RPC. JSON spends up to four characters per byte, so a
/// chunk stays far below the 64 MiB frame limit and within one request timeout on a LAN.
const SNAPSHOT_CHUNK: u64 = 1 << 20;
/// Largest serialized command: one entry must fit in an AppendEntries frame with room to spare.
pub(crate) const MAX_COMMAND: usize = crate::frame::MAX_FRAME / 4;
const LOCK_FILE: &str = "LOCK";
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// A running member of the quorum. Cheap to clone (an `Arc` inside); all clones drive the
/// same node.
pub struct Quorum<S: StateMachine> {
    inner: Arc<Inner>,
    _sm: PhantomData<fn() -> S>,
}

impl<S: StateMachine> Clone for Quorum<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _sm: PhantomData,
        }
    }
}

struct Inner {
    id: NodeId,
    raft: Raft,
    metrics: watch::Receiver<RaftMetrics<NodeId, BasicNode>>,
    leader_rx: watch::Receiver<Option<NodeId>>,
    applied_rx: watch::Receiver<u64>,
    net: Arc<NetShared>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// An exclusive lock on `dir/LOCK`, so two nodes never share a directory; released by
    /// shutdown (or drop).
    dir_lock: Mutex<Option<std::fs::File>>,
    /// Held for the whole of `shutdown` so that concurrent callers all wait for it to finish.
    stopped: tokio::sync::Mutex<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Without an explicit shutdown, at least stop the listener and background tasks;
        // openraft's core stops once its last handle is gone.
        self.shutdown_tx.send_replace(true);
    }
}

fn raft_config(c: &QuorumConfig) -> Result<openraft::Config, QuorumError> {
    let policy = match c.snapshot_every {
        0 => SnapshotPolicy::Never,
        n => SnapshotPolicy::LogsSinceLast(n),
    };
    let config = openraft::Config {
        cluster_name: "strata-metadata".into(),
        heartbeat_interval: c.heartbeat_interval_ms,
        election_timeout_min: c.election_timeout_min_ms,
        election_timeout_max: c.election_timeout_max_ms,
        install_snapshot_timeout: c.request_timeout_ms,
        snapshot_policy: policy,
        snapshot_max_chunk_size: SNAPSHOT_CHUNK,
        // Keep some history so a briefly absent follower catches up from the log rather than
        // needing a whole snapshot.
        max_in_snapshot_log_to_keep: c.snapshot_every.min(1000),
        ..Default::default()
    };
    config
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))
}

/// On a voter's first start (nothing on disk), writes the initial membership: every voter
/// does this with the same voters, which yields the same entry everywhere.
async fn initialize_if_new(raft: &Raft, config: &QuorumConfig) -> Result<(), QuorumError> {
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| QuorumError::Raft(e.to_string()))?;
    if initialized {
        return Ok(());
    }
    let members: BTreeMap<NodeId, BasicNode> = config
        .voters
        .iter()
        .map(|(id, a)| (*id, BasicNode::new(a)))
        .collect();
    match raft.initialize(members).await {
        Ok(()) => {
            tracing::info!(node_id = config.node_id, voters = ?config.voters, "initialized a new metadata quorum");
            Ok(())
        }
        // Already initialized meanwhile; nothing to do.
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(QuorumError::Raft(format!("initializing the cluster: {e}"))),
    }
}

fn lock_dir(dir: &std::path::Path) -> Result<std::fs::File, QuorumError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| QuorumError::io(format!("creating {}", dir.display()), e))?;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| QuorumError::io(format!("opening {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(QuorumError::Config(format!(
            "{} is in use by another running quorum node",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(QuorumError::io(format!("locking {}", path.display()), e))
        }
    }
}

fn check_addr(what: &str, addr: &str) -> Result<(), QuorumError> {
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {
            Ok(())
        }
        _ => Err(QuorumError::Config(format!(
            "{what} {addr:?} must be host:port with a non-zero port"
        ))),
    }
}

impl<S: StateMachine> Quorum<S> {
    /// Opens the on-disk state (restoring `sm` from the newest snapshot; openraft re-applies
    /// committed entries after it), binds the listener and starts openraft. A voter with
    /// nothing on disk initializes the cluster with the configured voters; a learner asks the
    /// voters, in the background and until it succeeds, to add it.
    ///
    /// `sm` must be empty (freshly built) when there is no snapshot on disk.
    pub async fn start(config: QuorumConfig, sm: Arc<S>) -> Result<Self, QuorumError> {
        check_addr("listen_addr", &config.listen_addr)?;
        check_addr("advertised_addr", &config.advertised_addr)?;
        if config.voters.is_empty() {
            return Err(QuorumError::Config("no voters configured".into()));
        }
        for (id, addr) in &config.voters {
            check_addr(&format!("voter {id}"), addr)?;
        }
        let raft_config = Arc::new(raft_config(&config)?);
        let id = config.node_id;

        let dir = config.dir.clone();
        let (dir_lock, log_store, sm_store, applied_rx) = tokio::task::spawn_blocking(move || {
            let dir_lock = lock_dir(&dir)?;
            let log = LogStore::open(&dir)?;
            let (sm, applied) = SmStore::open(&dir, sm)?;
            Ok::<_, QuorumError>((dir_lock, log, sm, applied))
        })
        .await
        .map_err(|e| QuorumError::Raft(format!("opening storage: {e}")))??;

        let listener = TcpListener::bind(&config.listen_addr).await.map_err(|e| {
            QuorumError::io(
                format!("binding the raft listener on {}", config.listen_addr),
                e,
            )
        })?;

        let net = Arc::new(NetShared::new(
            id,
            Duration::from_millis(config.request_timeout_ms),
            config.tls.clone(),
        ));
        let network = Network {
            shared: net.clone(),
        };
        let raft = Raft::new(id, raft_config, network, log_store, sm_store)
            .await
            .map_err(|e| QuorumError::Raft(format!("starting raft: {e}")))?;

        if config.is_voter() {
            if let Err(e) = initialize_if_new(&raft, &config).await {
                let _ = raft.shutdown().await;
                return Err(e);
            }
        }
        // Serving starts only now; peers' requests wait in the listener's backlog meanwhile.
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut tasks = vec![server::spawn(
            listener,
            raft.clone(),
            shutdown_rx.clone(),
            config.tls.clone(),
        )];

        let metrics = raft.metrics();
        let initial_leader = metrics.borrow().current_leader;
        let (leader_tx, leader_rx) = watch::channel(initial_leader);
        tasks.push(tokio::spawn(background::watch_metrics(
            metrics.clone(),
            leader_tx,
            shutdown_rx.clone(),
        )));
        if !config.is_voter() {
            tasks.push(tokio::spawn(background::join_as_learner(
                config.clone(),
                metrics.clone(),
                net.clone(),
                shutdown_rx,
            )));
        }

        Ok(Self {
            inner: Arc::new(Inner {
                id,
                raft,
                metrics,
                leader_rx,
                applied_rx,
                net,
                shutdown_tx,
                tasks: Mutex::new(tasks),
                dir_lock: Mutex::new(Some(dir_lock)),
                stopped: tokio::sync::Mutex::new(false),
            }),
            _sm: PhantomData,
        })
    }

    /// Replicates `command` through the leader (forwarding it over TCP when this node is not
    /// the leader, and retrying while there is no leader or the leader changes) and returns
    /// the state machine's response once this node has applied the entry too.
    ///
    /// Errors: [`QuorumError::NoLeader`] — not appended anywhere, safe to retry;
    /// [`QuorumError::Timeout`] — unknown outcome (the command reached a leader but its commit
    /// or local apply was not seen before the deadline, or the connection broke meanwhile).
    pub async fn propose(
        &self,
        command: S::Command,
        deadline: Duration,
    ) -> Result<S::Response, QuorumError> {
        let deadline = Instant::now() + deadline;
        let value = serde_json::to_value(&command)
            .map_err(|e| QuorumError::Codec(format!("encoding command: {e}")))?;
        let size = serde_json::to_vec(&value).map_or(0, |v| v.len());
        if size > MAX_COMMAND {
            return Err(QuorumError::Codec(format!(
                "command of {size} bytes exceeds the {MAX_COMMAND}-byte limit"
            )));
        }
        let proposed = self.replicate(value, deadline).await?;
        self.wait_applied(proposed.index, deadline).await?;
        serde_json::from_value(proposed.response)
            .map_err(|e| QuorumError::Codec(format!("decoding response: {e}")))
    }

    async fn replicate(
        &self,
        value: serde_json::Value,
        deadline: Instant,
    ) -> Result<Proposed, QuorumError> {
        let inner = &self.inner;
        let mut backoff = Duration::from_millis(10);
        // A leader named by a node that refused the command: more recent than our metrics.
        let mut hint: Option<(NodeId, String)> = None;
        loop {
            if *inner.shutdown_tx.borrow() {
                return Err(QuorumError::Shutdown);
            }
            let target = hint.take().or_else(|| {
                let m = inner.metrics.borrow();
                let leader = m.current_leader?;
                let addr = m
                    .membership_config
                    .membership()
                    .get_node(&leader)?
                    .addr
                    .clone();
                Some((leader, addr))
            });
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(QuorumError::NoLeader);
            }
            match target {
                Some((leader, _)) if leader == inner.id => {
                    let res =
                        tokio::time::timeout(left, inner.raft.client_write(value.clone())).await;
                    match res {
                        Err(_) => return Err(QuorumError::Timeout),
                        Ok(Ok(r)) => {
                            return Ok(Proposed {
                                response: r.data,
                                index: r.log_id.index,
                            })
                        }
                        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                            hint = f
                                .leader_id
                                .zip(f.leader_node.map(|n| n.addr))
                                .filter(|(l, _)| *l != inner.id);
                        }
                        Ok(Err(RaftError::Fatal(e))) => return Err(fatal(e)),
                        Ok(Err(e)) => return Err(QuorumError::Raft(e.to_string())),
                    }
                }
                Some((leader, addr)) => {
                    let req = Request::Propose {
                        command: value.clone(),
                    };
                    // The whole remaining deadline: the leader answers only after a commit.
                    match request_once(&addr, &req, &inner.net, left).await {
                        Ok(Response::Propose(Ok(p))) => return Ok(p),
                        Ok(Response::Propose(Err(Rejected::NotLeader { leader: l }))) => {
                            hint = l.filter(|(l, _)| *l != leader);
                        }
                        Ok(Response::Propose(Err(Rejected::Failed(reason)))) => {
                            return Err(QuorumError::Raft(format!(
                                "leader {leader} refused the command: {reason}"
                            )))
                        }
                        Ok(_) => {
                            return Err(QuorumError::Raft(format!(
                                "leader {leader} answered with the wrong message"
                            )))
                        }
                        Err(e) if e.not_delivered() => {
                            tracing::debug!(leader, error = %e, "forwarding a proposal failed; retrying");
                        }
                        Err(e) => {
                            tracing::warn!(leader, error = %e, "lost the leader's answer to a proposal");
                            return Err(QuorumError::Timeout);
                        }
                    }
                }
                None => {}
            }
            if hint.is_none() {
                // Wait for news of a leader, or a little while if the news we have is stale.
                let mut leader_rx = inner.leader_rx.clone();
                let wait = backoff.min(deadline.saturating_duration_since(Instant::now()));
                let _ = tokio::time::timeout(wait, leader_rx.changed()).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), QuorumError> {
        let mut rx = self.inner.applied_rx.clone();
        let left = deadline.saturating_duration_since(Instant::now());
        let reached = tokio::time::timeout(left, async {
            rx.wait_for(|applied| *applied >= index).await.map(|_| ())
        });
        match reached.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(QuorumError::Shutdown),
            Err(_) => Err(QuorumError::Timeout),
        }
    }

    /// The leader this node knows of (`None` while there is none, and after shutdown).
    pub fn leader(&self) -> Option<NodeId> {
        if *self.inner.shutdown_tx.borrow() {
            return None;
        }
        self.inner.metrics.borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.inner.id)
    }

    /// Changes whenever the known leader changes.
    pub fn watch_leader(&self) -> watch::Receiver<Option<NodeId>> {
        self.inner.leader_rx.clone()
    }

    /// The index of the last entry applied locally (0 before anything was applied; the
    /// cluster's initial membership is entry 0).
    pub fn applied_index(&self) -> u64 {
        *self.inner.applied_rx.borrow()
    }

    /// On the leader: for each other member, when it last answered an AppendEntries
    /// (heartbeats included) or InstallSnapshot sent in the current term. Empty elsewhere;
    /// a member that never answered this leader is absent.
    pub fn last_contact(&self) -> BTreeMap<NodeId, Instant> {
        let (term, members): (u64, Vec<NodeId>) = {
            if !self.is_leader() {
                return BTreeMap::new();
            }
            let m = self.inner.metrics.borrow();
            (
                m.current_term,
                m.membership_config
                    .membership()
                    .nodes()
                    .map(|(id, _)| *id)
                    .collect(),
            )
        };
        let mut contacts = self.inner.net.contacts_in_term(term);
        contacts.retain(|id, _| *id != self.inner.id && members.contains(id));
        contacts
    }

    /// All members (voters and learners) with their addresses.
    pub fn members(&self) -> BTreeMap<NodeId, String> {
        let m = self.inner.metrics.borrow();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect()
    }

    /// The voters of the current membership.
    pub fn voters(&self) -> Vec<NodeId> {
        self.inner
            .metrics
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// Stops openraft, the listener and the background tasks. Every write was already fsynced
    /// when it was acknowledged, so there is nothing else to flush. Idempotent.
    pub async fn shutdown(&self) {
        let mut stopped = self.inner.stopped.lock().await;
        if *stopped {
            return;
        }
        self.inner.shutdown_tx.send_replace(true);
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft core did not stop cleanly");
        }
        let tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        for t in tasks {
            if let Err(e) = t.await {
                tracing::warn!(error = %e, "quorum task ended abnormally");
            }
        }
        // openraft's core has stopped writing: the directory may be reopened now.
        drop(lock(&self.inner.dir_lock).take());
        tracing::info!(node_id = self.inner.id, "quorum stopped");
        *stopped = true;
    }
}

fn fatal(e: openraft::error::Fatal<NodeId>) -> QuorumError {
    match e {
        openraft::error::Fatal::Stopped => QuorumError::Shutdown,
        other => QuorumError::Raft(other.to_string()),
    }
}
