//! Leader failover: the survivors elect a new leader, keep committing, and the old leader
//! catches up without duplicates when it comes back.

mod common;

use std::time::Instant;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover_and_rejoin() -> R {
    let cluster = Cluster::new(3, 0)?;
    let mut nodes = cluster.start_voters().await?;
    let all: Vec<&Node> = nodes.iter().collect();
    let old_leader = agreed_leader(&all).await?;
    let mut expected = Vec::new();
    for i in 0..5 {
        let cmd = format!("first-{i}");
        node(&nodes, old_leader)?
            .q
            .propose(cmd.clone(), PROPOSE_DEADLINE)
            .await?;
        expected.push(cmd);
    }
    all_applied(&all, &expected).await?;
    drop(all);

    let stopped = take(&mut nodes, old_leader)?;
    let mut leader_rx = nodes
        .first()
        .ok_or_else(|| err("no node"))?
        .q
        .watch_leader();
    let t0 = Instant::now();
    stopped.q.shutdown().await;
    drop(stopped);
    // Proposed while there is no leader: retried until one is elected.
    let during = {
        let q = nodes.first().ok_or_else(|| err("no node"))?.q.clone();
        tokio::spawn(async move {
            q.propose("during-election".to_string(), LEADER_DEADLINE)
                .await
        })
    };

    let survivors: Vec<&Node> = nodes.iter().collect();
    let new_leader = agreed_leader(&survivors).await;
    let new_leader = match new_leader {
        Ok(l) if l != old_leader => l,
        _ => {
            wait_until("a new leader", LEADER_DEADLINE, || {
                survivors
                    .iter()
                    .all(|n| n.q.leader().is_some_and(|l| l != old_leader))
            })
            .await?;
            agreed_leader(&survivors).await?
        }
    };
    assert_ne!(new_leader, old_leader);
    assert!(t0.elapsed() < LEADER_DEADLINE);
    // The watch saw the change.
    assert!(leader_rx.has_changed()? || *leader_rx.borrow_and_update() == Some(new_leader));

    during.await??;
    expected.push("during-election".to_string());
    for (i, n) in survivors.iter().enumerate() {
        let cmd = format!("second-{i}");
        n.q.propose(cmd.clone(), PROPOSE_DEADLINE).await?;
        expected.push(cmd);
    }
    all_applied(&survivors, &expected).await?;
    drop(survivors);

    // The old leader restarts from its directory with an empty state machine.
    let back = cluster.start(old_leader).await?;
    nodes.push(back);
    let all: Vec<&Node> = nodes.iter().collect();
    all_applied(&all, &expected).await?;
    let cmd = "third".to_string();
    node(&nodes, old_leader)?
        .q
        .propose(cmd.clone(), PROPOSE_DEADLINE)
        .await?;
    expected.push(cmd);
    all_applied(&all, &expected).await?;
    let mut unique = expected.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), expected.len(), "no command applied twice");
    shutdown_all(&nodes).await;
    Ok(())
}
