//! Background tasks of a running node: publishing leader changes and joining as a learner.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::metrics::RaftMetrics;
use openraft::BasicNode;
use tokio::sync::watch;

use crate::network::{request_once, NetShared};
use crate::server;
use crate::types::{Rejected, Request, Response};
use crate::{NodeId, QuorumConfig};

/// Publishes leader changes and logs leadership and membership changes.
pub(crate) async fn watch_metrics(
    mut metrics: watch::Receiver<RaftMetrics<NodeId, BasicNode>>,
    leader_tx: watch::Sender<Option<NodeId>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut members: Option<BTreeMap<NodeId, String>> = None;
    loop {
        {
            let m = metrics.borrow_and_update();
            let leader = m.current_leader;
            leader_tx.send_if_modified(|old| {
                if *old == leader {
                    return false;
                }
                tracing::info!(node_id = m.id, term = m.current_term, leader = ?leader, previous = ?*old, "raft leader changed");
                *old = leader;
                true
            });
            let now: BTreeMap<NodeId, String> = m
                .membership_config
                .membership()
                .nodes()
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect();
            if members.as_ref() != Some(&now) {
                if members.is_some() {
                    tracing::info!(node_id = m.id, members = ?now, "quorum membership changed");
                }
                members = Some(now);
            }
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { break },
            () = server::stopped(&mut shutdown) => break,
        }
    }
    // Subscribers see the node lose track of the leader, then the channel close.
    leader_tx.send_replace(None);
}

/// Asks the voters (following redirects to the leader) to add this node as a learner, until
/// one accepts or this node is already a member.
pub(crate) async fn join_as_learner(
    config: QuorumConfig,
    metrics: watch::Receiver<RaftMetrics<NodeId, BasicNode>>,
    net: Arc<NetShared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let me = config.node_id;
    let req = Request::Join {
        node_id: me,
        addr: config.advertised_addr.clone(),
    };
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u64;
    loop {
        let known = metrics
            .borrow()
            .membership_config
            .membership()
            .get_node(&me)
            .map(|n| n.addr.clone());
        if known.as_deref() == Some(config.advertised_addr.as_str()) {
            tracing::info!(node_id = me, "this node is a learner of the quorum");
            return;
        }
        let mut targets: Vec<String> = config.voters.values().cloned().collect();
        let mut hops = 0;
        while let Some(addr) = targets.pop() {
            match request_once(&addr, &req, &net, net.request_timeout).await {
                Ok(Response::Join(Ok(()))) => {
                    tracing::info!(node_id = me, via = %addr, "joined the quorum as a learner");
                    return;
                }
                Ok(Response::Join(Err(Rejected::NotLeader {
                    leader: Some((_, leader)),
                }))) if hops < 3 => {
                    hops += 1;
                    targets.push(leader);
                }
                Ok(other) => {
                    tracing::debug!(node_id = me, via = %addr, answer = ?other, "join not accepted yet")
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(node_id = me, error = %e, "asking to join the quorum failed; retrying");
                    } else {
                        tracing::debug!(node_id = me, error = %e, "asking to join the quorum failed");
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            () = server::stopped(&mut shutdown) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
