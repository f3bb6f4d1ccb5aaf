//! The listener: serves Raft RPCs, proposals and joins from peers, one task per connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::frame::{read_frame, write_frame, MAX_FRAME};
use crate::transport::{accept, BoxStream, QuorumTls};
use crate::types::{Proposed, Raft, Rejected, Request, Response};
use crate::NodeId;

/// Peers keep connections open and heartbeat every few hundred ms; a connection silent for
/// this long is dead or not a peer.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Raft needs one connection per peer (plus forwarded requests); this only stops a flood.
const MAX_CONNECTIONS: usize = 128;
const MAX_ADDR_LEN: usize = 255;

/// Accepts connections until `shutdown` turns true, then closes the listener and every
/// connection before the returned task finishes.
pub(crate) fn spawn(
    listener: TcpListener,
    raft: Raft,
    mut shutdown: watch::Receiver<bool>,
    tls: Option<QuorumTls>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                () = stopped(&mut shutdown) => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Ok(permit) = permits.clone().try_acquire_owned() else {
                            tracing::debug!(%peer, "too many raft connections; refusing one");
                            continue;
                        };
                        let raft = raft.clone();
                        let tls = tls.clone();
                        conns.spawn(async move {
                            match accept(stream, tls.as_ref()).await {
                                Ok(stream) => serve(stream, peer, raft).await,
                                Err(e) => {
                                    tracing::debug!(%peer, error = %e, "raft connection refused in its TLS handshake");
                                }
                            }
                            drop(permit);
                        });
                    }
                    Err(e) => {
                        // Usually a transient shortage (EMFILE); pausing avoids a hot loop.
                        tracing::warn!(error = %e, "raft listener accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(listener);
        conns.shutdown().await;
    })
}

/// Resolves once `rx` says stop (or its sender is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn serve(mut stream: BoxStream, peer: SocketAddr, raft: Raft) {
    loop {
        let frame =
            match tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut stream, MAX_FRAME)).await {
                Err(_) => {
                    tracing::debug!(%peer, "closing idle raft connection");
                    return;
                }
                Ok(Ok(None)) => return,
                Ok(Ok(Some(frame))) => frame,
                Ok(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "closing raft connection: unreadable frame");
                    return;
                }
            };
        let req: Request = match serde_json::from_slice(&frame) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%peer, error = %e, bytes = frame.len(), "closing raft connection: undecodable request");
                return;
            }
        };
        let resp = handle(&raft, req).await;
        let bytes = match serde_json::to_vec(&resp) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot encode a raft response");
                return;
            }
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write_frame(&mut stream, &bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "raft connection closed while answering");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "raft peer does not read its answers; closing");
                return;
            }
        }
    }
}

async fn handle(raft: &Raft, req: Request) -> Response {
    match req {
        Request::AppendEntries(rpc) => Response::AppendEntries(raft.append_entries(rpc).await),
        Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await),
        Request::InstallSnapshot(rpc) => {
            Response::InstallSnapshot(raft.install_snapshot(rpc).await)
        }
        Request::Propose { command } => Response::Propose(
            raft.client_write(command)
                .await
                .map(|r| Proposed {
                    response: r.data,
                    index: r.log_id.index,
                })
                .map_err(rejected),
        ),
        Request::Join { node_id, addr } => Response::Join(join(raft, node_id, addr).await),
    }
}

pub(crate) fn rejected(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Rejected {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Rejected::NotLeader {
            leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
        },
        other => Rejected::Failed(other.to_string()),
    }
}

/// Adds `node_id` as a learner (on the leader; others answer `NotLeader`). Idempotent.
async fn join(raft: &Raft, node_id: NodeId, addr: String) -> Result<(), Rejected> {
    if addr.is_empty() || addr.len() > MAX_ADDR_LEN {
        return Err(Rejected::Failed(format!("bad address for node {node_id}")));
    }
    let (is_leader, existing, is_voter) = {
        let m = raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        (
            m.current_leader == Some(m.id),
            membership.get_node(&node_id).cloned(),
            membership.voter_ids().any(|v| v == node_id),
        )
    };
    let node = BasicNode::new(&addr);
    let res = match existing {
        Some(n) if is_leader && n.addr == addr => return Ok(()),
        Some(n) if is_voter && n.addr != addr => {
            return Err(Rejected::Failed(format!(
                "node {node_id} is a voter at {}; not moving it to {addr}",
                n.addr
            )))
        }
        Some(_) => {
            raft.change_membership(
                ChangeMembers::SetNodes(BTreeMap::from([(node_id, node)])),
                true,
            )
            .await
        }
        None => raft.add_learner(node_id, node, false).await,
    };
    res.map_err(rejected)?;
    tracing::info!(node_id, %addr, "node joined the quorum as a learner");
    Ok(())
}
