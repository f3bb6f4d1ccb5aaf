//! The client side: openraft's `RaftNetwork` over TCP, and one-shot requests used for
//! forwarding proposals and joins.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use crate::frame::{read_frame, write_frame, MAX_FRAME};
use crate::log_store::lock;
use crate::transport::{dial, BoxStream, QuorumTls};
use crate::types::{Request, Response, TypeConfig};
use crate::NodeId;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// No connection could be made: the request was certainly not delivered.
    #[error("connecting to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    /// The connection failed after the request may have been sent.
    #[error("exchanging with {addr}: {source}")]
    Io { addr: String, source: io::Error },
    #[error("no answer from {addr} within {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("bad answer from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    /// The request does not fit in a frame; nothing was sent.
    #[error("a request of {len} bytes to {addr} exceeds the frame limit")]
    TooLarge { addr: String, len: usize },
}

impl CallError {
    /// Whether the peer certainly did not receive the request.
    pub(crate) fn not_delivered(&self) -> bool {
        matches!(self, CallError::Connect { .. })
    }
}

async fn connect(
    addr: &str,
    timeout: Duration,
    tls: Option<&QuorumTls>,
) -> Result<BoxStream, CallError> {
    dial(addr, timeout, tls)
        .await
        .map_err(|source| CallError::Connect {
            addr: addr.to_string(),
            source,
        })
}

async fn exchange(
    stream: &mut BoxStream,
    addr: &str,
    payload: &[u8],
) -> Result<Response, CallError> {
    let io_err = |source| CallError::Io {
        addr: addr.to_string(),
        source,
    };
    write_frame(stream, payload).await.map_err(io_err)?;
    let Some(answer) = read_frame(stream, MAX_FRAME).await.map_err(io_err)? else {
        return Err(io_err(io::ErrorKind::UnexpectedEof.into()));
    };
    serde_json::from_slice(&answer).map_err(|e| CallError::Protocol {
        addr: addr.to_string(),
        reason: e.to_string(),
    })
}

fn encode(req: &Request, addr: &str) -> Result<Vec<u8>, CallError> {
    let payload = serde_json::to_vec(req).map_err(|e| CallError::Protocol {
        addr: addr.to_string(),
        reason: format!("encoding request: {e}"),
    })?;
    if payload.len() > MAX_FRAME {
        return Err(CallError::TooLarge {
            addr: addr.to_string(),
            len: payload.len(),
        });
    }
    Ok(payload)
}

/// Sends one request on a fresh connection and waits for its answer (for forwarded proposals
/// and joins, which are rare; a fresh connection keeps concurrent callers independent).
pub(crate) async fn request_once(
    addr: &str,
    req: &Request,
    net: &NetShared,
    timeout: Duration,
) -> Result<Response, CallError> {
    let payload = encode(req, addr)?;
    let started = Instant::now();
    let mut stream = connect(addr, net.connect_timeout.min(timeout), net.tls.as_ref()).await?;
    let left = timeout.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, exchange(&mut stream, addr, &payload)).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Timeout {
            addr: addr.to_string(),
            after: timeout,
        }),
    }
}

/// State shared by all peer clients of one node.
pub(crate) struct NetShared {
    pub(crate) id: NodeId,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) tls: Option<QuorumTls>,
    /// target -> (last answer, term of the leader that sent the request).
    contacts: Mutex<BTreeMap<NodeId, (Instant, u64)>>,
    /// target -> consecutive failures, to log a peer going down once rather than per heartbeat.
    failures: Mutex<BTreeMap<NodeId, u64>>,
}

impl NetShared {
    pub(crate) fn new(id: NodeId, request_timeout: Duration, tls: Option<QuorumTls>) -> Self {
        Self {
            id,
            connect_timeout: request_timeout.min(Duration::from_secs(1)),
            request_timeout,
            tls,
            contacts: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(BTreeMap::new()),
        }
    }

    /// The last answers to requests sent while this node led in `term`.
    pub(crate) fn contacts_in_term(&self, term: u64) -> BTreeMap<NodeId, Instant> {
        lock(&self.contacts)
            .iter()
            .filter(|(_, (_, t))| *t == term)
            .map(|(id, (at, _))| (*id, *at))
            .collect()
    }

    fn record_success(&self, target: NodeId, addr: &str, term: Option<u64>) {
        if let Some(term) = term {
            lock(&self.contacts).insert(target, (Instant::now(), term));
        }
        if let Some(n) = lock(&self.failures).remove(&target) {
            tracing::info!(target, addr, failures = n, "raft peer reachable again");
        }
    }

    fn record_failure(&self, target: NodeId, err: &CallError) {
        let mut failures = lock(&self.failures);
        let n = failures.entry(target).or_insert(0);
        *n += 1;
        if *n == 1 {
            tracing::warn!(target, error = %err, "raft RPC failed; further failures to this peer are logged at debug");
        } else {
            tracing::debug!(target, failures = *n, error = %err, "raft RPC failed");
        }
    }
}

#[derive(Clone)]
pub(crate) struct Network {
    pub(crate) shared: Arc<NetShared>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            conn: None,
            shared: self.shared.clone(),
        }
    }
}

/// One lazily (re)connected connection to one peer. Requests are strictly sequential.
pub(crate) struct PeerClient {
    target: NodeId,
    addr: String,
    conn: Option<BoxStream>,
    shared: Arc<NetShared>,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

impl PeerClient {
    async fn call(&mut self, req: &Request, ttl: Duration) -> Result<Response, CallError> {
        let payload = encode(req, &self.addr)?;
        let ttl = ttl.min(self.shared.request_timeout);
        let started = Instant::now();
        for attempt in 0..2 {
            // Taken out for the exchange: if openraft drops this future mid-request, the
            // connection (with an answer possibly still in flight) is dropped with it.
            let (mut stream, reused) = match self.conn.take() {
                Some(s) => (s, true),
                None => (
                    connect(
                        &self.addr,
                        self.shared.connect_timeout.min(ttl),
                        self.shared.tls.as_ref(),
                    )
                    .await?,
                    false,
                ),
            };
            let left = ttl.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, exchange(&mut stream, &self.addr, &payload)).await {
                Ok(Ok(resp)) => {
                    self.conn = Some(stream);
                    return Ok(resp);
                }
                // A pooled connection may have been closed by a restarted peer; Raft RPCs are
                // idempotent, so one retry on a fresh connection is safe.
                Ok(Err(CallError::Io { .. })) if reused && attempt == 0 => continue,
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(CallError::Timeout {
                        addr: self.addr.clone(),
                        after: ttl,
                    })
                }
            }
        }
        Err(CallError::Io {
            addr: self.addr.clone(),
            source: io::ErrorKind::ConnectionReset.into(),
        })
    }

    /// Sends `req`, records the outcome, and maps transport failures for openraft:
    /// `Unreachable` (backs off) when no connection could be made, `Timeout`, or `Network`.
    async fn rpc<E: std::error::Error>(
        &mut self,
        req: Request,
        ttl: Duration,
        action: RPCTypes,
        term: Option<u64>,
        entries: usize,
    ) -> Result<Response, RpcErr<E>> {
        match self.call(&req, ttl).await {
            Ok(resp) => {
                self.shared.record_success(self.target, &self.addr, term);
                Ok(resp)
            }
            // Too many entries for one frame: openraft retries at once with the hinted count.
            Err(e @ CallError::TooLarge { .. }) if entries > 1 => {
                tracing::debug!(target = self.target, error = %e, entries, "splitting an AppendEntries");
                let hint = u64::try_from(entries / 2).unwrap_or(1);
                Err(RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint(hint),
                ))
            }
            Err(e) => {
                self.shared.record_failure(self.target, &e);
                Err(match &e {
                    CallError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                    CallError::Timeout { after, .. } => RPCError::Timeout(Timeout {
                        action,
                        id: self.shared.id,
                        target: self.target,
                        timeout: *after,
                    }),
                    CallError::Io { .. }
                    | CallError::Protocol { .. }
                    | CallError::TooLarge { .. } => RPCError::Network(NetworkError::new(&e)),
                })
            }
        }
    }

    fn unexpected<E: std::error::Error>(&self, what: &str) -> RpcErr<E> {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} answered {what} with the wrong message kind", self.addr),
        );
        RPCError::Network(NetworkError::new(&e))
    }

    fn remote<E: std::error::Error>(&self, e: RaftError<NodeId, E>) -> RpcErr<E> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    /// After `Unreachable`: 200 ms doubling up to 2 s, so a peer that is down costs a few
    /// connection attempts (and openraft error lines) per second at most, while one that
    /// comes back is caught up within about two seconds.
    fn backoff(&self) -> Backoff {
        Backoff::new((0u32..).map(|i| {
            Duration::from_millis(200)
                .saturating_mul(2u32.saturating_pow(i.min(4)))
                .min(Duration::from_secs(2))
        }))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        let term = Some(rpc.vote.leader_id().term);
        let entries = rpc.entries.len();
        match self
            .rpc(
                Request::AppendEntries(rpc),
                option.hard_ttl(),
                RPCTypes::AppendEntries,
                term,
                entries,
            )
            .await?
        {
            Response::AppendEntries(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected("AppendEntries")),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        let term = Some(rpc.vote.leader_id().term);
        match self
            .rpc(
                Request::InstallSnapshot(rpc),
                option.hard_ttl(),
                RPCTypes::InstallSnapshot,
                term,
                0,
            )
            .await?
        {
            Response::InstallSnapshot(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected("InstallSnapshot")),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        match self
            .rpc(
                Request::Vote(rpc),
                option.hard_ttl(),
                RPCTypes::Vote,
                None,
                0,
            )
            .await?
        {
            Response::Vote(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected("Vote")),
        }
    }
}
