//! Three voters over real TCP: ordering, forwarding, read-your-writes, full restart.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proposals_on_any_node_apply_everywhere_in_one_order() -> R {
    let cluster = Cluster::new(3, 0)?;
    let nodes = cluster.start_voters().await?;
    let all: Vec<&Node> = nodes.iter().collect();
    let leader = agreed_leader(&all).await?;
    let (leader_node, followers) = by_role(&nodes, leader)?;
    let follower = followers
        .first()
        .copied()
        .ok_or_else(|| err("no follower"))?;

    // Forwarded from a follower: applied locally before propose returns.
    let n = follower
        .q
        .propose("from-follower".to_string(), PROPOSE_DEADLINE)
        .await?;
    assert_eq!(n, 1);
    assert_eq!(follower.sm.applied(), vec!["from-follower"]);

    let n = leader_node
        .q
        .propose("from-leader".to_string(), PROPOSE_DEADLINE)
        .await?;
    assert_eq!(n, 2);
    assert_eq!(
        leader_node.sm.applied(),
        vec!["from-follower", "from-leader"]
    );

    // Concurrent proposals from all nodes: every node ends with the same sequence, and every
    // proposer saw its own command applied at the position the leader's response named.
    let mut tasks = Vec::new();
    for n in &nodes {
        for i in 0..5 {
            let q = n.q.clone();
            let sm = n.sm.clone();
            let cmd = format!("n{}-{i}", n.id);
            tasks.push(tokio::spawn(async move {
                let pos = q.propose(cmd.clone(), PROPOSE_DEADLINE).await?;
                let seen = sm.applied();
                let at = usize::try_from(pos)?
                    .checked_sub(1)
                    .ok_or_else(|| err("position 0"))?;
                if seen.get(at) != Some(&cmd) {
                    return Err(err(format!("{cmd} not applied locally at {pos}: {seen:?}")));
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }));
        }
    }
    for t in tasks {
        t.await??;
    }
    let expected = leader_node.sm.applied();
    assert_eq!(expected.len(), 17);
    all_applied(&all, &expected).await?;
    let applied: Vec<u64> = nodes.iter().map(|n| n.q.applied_index()).collect();
    assert!(
        applied.iter().all(|a| *a >= 17),
        "applied indexes {applied:?}"
    );
    assert_eq!(leader_node.q.members(), cluster.voters);
    shutdown_all(&nodes).await;
    // Idempotent.
    shutdown_all(&nodes).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_cluster_restarts_from_disk() -> R {
    let cluster = Cluster::new(3, 0)?;
    let nodes = cluster.start_voters().await?;
    let all: Vec<&Node> = nodes.iter().collect();
    agreed_leader(&all).await?;
    let mut expected = Vec::new();
    for (i, n) in nodes.iter().cycle().take(9).enumerate() {
        let cmd = format!("before-{i}");
        n.q.propose(cmd.clone(), PROPOSE_DEADLINE).await?;
        expected.push(cmd);
    }
    all_applied(&all, &expected).await?;
    shutdown_all(&nodes).await;
    drop(all);
    drop(nodes);

    let nodes = cluster.start_voters().await?;
    let all: Vec<&Node> = nodes.iter().collect();
    // Committed entries are re-applied (from the committed pointer at once, the rest once a
    // leader is elected).
    all_applied(&all, &expected).await?;
    agreed_leader(&all).await?;
    for (i, n) in nodes.iter().enumerate() {
        let cmd = format!("after-{i}");
        n.q.propose(cmd.clone(), PROPOSE_DEADLINE).await?;
        expected.push(cmd);
    }
    all_applied(&all, &expected).await?;
    shutdown_all(&nodes).await;
    Ok(())
}
