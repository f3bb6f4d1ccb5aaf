//! Shared test scaffolding: a string-log state machine, free ports, node start-up and
//! deadline-bounded waiting.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use strata_quorum::{NodeId, Quorum, QuorumConfig, StateMachine};

pub type R<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub const LEADER_DEADLINE: Duration = Duration::from_secs(15);
pub const PROPOSE_DEADLINE: Duration = Duration::from_secs(10);

/// Applies a command by appending it to a list; the response is the list's new length.
#[derive(Default)]
pub struct Strings(Mutex<Vec<String>>);

impl Strings {
    fn lock(&self) -> MutexGuard<'_, Vec<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
    pub fn applied(&self) -> Vec<String> {
        self.lock().clone()
    }
}

impl StateMachine for Strings {
    type Command = String;
    type Response = u64;
    fn apply(&self, _index: u64, command: &String) -> u64 {
        let mut v = self.lock();
        v.push(command.clone());
        v.len() as u64
    }
    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.lock()).unwrap_or_default()
    }
    fn restore(&self, snapshot: &[u8]) -> Result<(), String> {
        *self.lock() = serde_json::from_slice(snapshot).map_err(|e| e.to_string())?;
        Ok(())
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Ports that were free a moment ago (bound to port 0 and released).
pub fn free_ports(n: usize) -> R<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()?)
}

pub fn err(msg: impl Into<String>) -> Box<dyn std::error::Error + Send + Sync> {
    msg.into().into()
}

/// Polls `cond` every few milliseconds until it holds or `within` passes.
pub async fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> R {
    let deadline = Instant::now() + within;
    while !cond() {
        if Instant::now() > deadline {
            return Err(err(format!(
                "timed out after {within:?} waiting for {what}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

pub async fn wait_until_async<F, Fut>(what: &str, within: Duration, mut cond: F) -> R
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !cond().await {
        if Instant::now() > deadline {
            return Err(err(format!(
                "timed out after {within:?} waiting for {what}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

pub struct Node {
    pub id: NodeId,
    pub dir: PathBuf,
    pub sm: Arc<Strings>,
    pub q: Quorum<Strings>,
}

/// A cluster description: every node's address and directory, so nodes can be (re)started.
pub struct Cluster {
    pub voters: BTreeMap<NodeId, String>,
    pub addrs: BTreeMap<NodeId, String>,
    pub root: tempfile::TempDir,
    pub snapshot_every: u64,
}

impl Cluster {
    /// `voters` voters numbered 1.. and `learners` more nodes after them.
    pub fn new(voters: u64, learners: u64) -> R<Self> {
        init_tracing();
        let ports = free_ports((voters + learners) as usize)?;
        let addrs: BTreeMap<NodeId, String> = (1..)
            .zip(ports)
            .map(|(id, p)| (id, format!("127.0.0.1:{p}")))
            .collect();
        let voters = addrs
            .iter()
            .filter(|(id, _)| **id <= voters)
            .map(|(i, a)| (*i, a.clone()))
            .collect();
        Ok(Self {
            voters,
            addrs,
            root: tempfile::tempdir()?,
            snapshot_every: 10_000,
        })
    }

    pub fn dir(&self, id: NodeId) -> PathBuf {
        self.root.path().join(format!("node-{id}"))
    }

    pub fn config(&self, id: NodeId) -> R<QuorumConfig> {
        let addr = self
            .addrs
            .get(&id)
            .ok_or_else(|| err(format!("no node {id}")))?;
        let mut c = QuorumConfig::new(id, addr.clone(), self.voters.clone(), self.dir(id));
        // Faster than production so the suite runs quickly, slow enough for a loaded 2-core box.
        c.heartbeat_interval_ms = 100;
        c.election_timeout_min_ms = 600;
        c.election_timeout_max_ms = 1200;
        c.request_timeout_ms = 1000;
        c.snapshot_every = self.snapshot_every;
        Ok(c)
    }

    pub async fn start(&self, id: NodeId) -> R<Node> {
        let sm = Arc::new(Strings::default());
        let q = Quorum::start(self.config(id)?, sm.clone()).await?;
        Ok(Node {
            id,
            dir: self.dir(id),
            sm,
            q,
        })
    }

    pub async fn start_voters(&self) -> R<Vec<Node>> {
        let mut nodes = Vec::new();
        for id in self.voters.keys() {
            nodes.push(self.start(*id).await?);
        }
        Ok(nodes)
    }
}

/// Waits until all `nodes` name the same leader, one of them; returns its id.
pub async fn agreed_leader(nodes: &[&Node]) -> R<NodeId> {
    let mut leader = None;
    wait_until("an agreed leader", LEADER_DEADLINE, || {
        let seen: Vec<Option<NodeId>> = nodes.iter().map(|n| n.q.leader()).collect();
        let first = seen.first().copied().flatten();
        let agreed = first.is_some()
            && seen.iter().all(|l| *l == first)
            && nodes.iter().any(|n| Some(n.id) == first && n.q.is_leader());
        if agreed {
            leader = first;
        }
        agreed
    })
    .await?;
    leader.ok_or_else(|| err("no leader"))
}

pub fn node(nodes: &[Node], id: NodeId) -> R<&Node> {
    nodes
        .iter()
        .find(|n| n.id == id)
        .ok_or_else(|| err(format!("no node {id}")))
}

/// Removes node `id` from `nodes` (to stop or restart it).
pub fn take(nodes: &mut Vec<Node>, id: NodeId) -> R<Node> {
    let pos = nodes
        .iter()
        .position(|n| n.id == id)
        .ok_or_else(|| err(format!("node {id} is not running")))?;
    Ok(nodes.remove(pos))
}

/// Some node other than `leader`.
pub fn a_follower(nodes: &[Node], leader: NodeId) -> R<NodeId> {
    nodes
        .iter()
        .map(|n| n.id)
        .find(|id| *id != leader)
        .ok_or_else(|| err("no follower"))
}

pub fn by_role(nodes: &[Node], leader: NodeId) -> R<(&Node, Vec<&Node>)> {
    let l = node(nodes, leader)?;
    Ok((l, nodes.iter().filter(|n| n.id != leader).collect()))
}

/// Waits until every node applied exactly `expected`.
pub async fn all_applied(nodes: &[&Node], expected: &[String]) -> R {
    wait_until(
        "every node to apply the same commands",
        PROPOSE_DEADLINE,
        || nodes.iter().all(|n| n.sm.applied() == expected),
    )
    .await
    .map_err(|e| {
        let states: Vec<(NodeId, usize)> =
            nodes.iter().map(|n| (n.id, n.sm.applied().len())).collect();
        err(format!(
            "{e}; applied counts: {states:?}, expected {}",
            expected.len()
        ))
    })
}

pub async fn shutdown_all(nodes: &[Node]) {
    for n in nodes {
        n.q.shutdown().await;
    }
}

pub fn log_file(dir: &Path) -> PathBuf {
    dir.join("raft.log")
}
