//! A fourth node, not among the voters, joins as a learner.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn learner_joins_applies_and_is_heartbeated() -> R {
    let cluster = Cluster::new(3, 1)?;
    let mut nodes = cluster.start_voters().await?;
    let all: Vec<&Node> = nodes.iter().collect();
    let leader = agreed_leader(&all).await?;
    drop(all);
    let mut expected = Vec::new();
    for i in 0..5 {
        let cmd = format!("before-{i}");
        node(&nodes, leader)?
            .q
            .propose(cmd.clone(), PROPOSE_DEADLINE)
            .await?;
        expected.push(cmd);
    }

    let learner = cluster.start(4).await?;
    nodes.push(learner);
    let all: Vec<&Node> = nodes.iter().collect();
    all_applied(&all, &expected).await?;
    let leader_q = node(&nodes, leader)?.q.clone();
    wait_until("the learner in the membership", PROPOSE_DEADLINE, || {
        leader_q.members() == cluster.addrs
    })
    .await?;
    assert_eq!(node(&nodes, 4)?.q.members(), cluster.addrs);
    assert!(!node(&nodes, 4)?.q.is_leader());

    // The learner forwards its own proposals and reads its write.
    let n = node(&nodes, 4)?
        .q
        .propose("from-learner".to_string(), PROPOSE_DEADLINE)
        .await?;
    expected.push("from-learner".to_string());
    assert_eq!(usize::try_from(n)?, expected.len());
    assert_eq!(node(&nodes, 4)?.sm.applied(), expected);
    all_applied(&all, &expected).await?;

    // The leader hears from every other node, the learner included, and keeps hearing
    // (heartbeats reach learners too).
    let others: Vec<u64> = cluster
        .addrs
        .keys()
        .copied()
        .filter(|id| *id != leader)
        .collect();
    wait_until("contact with every other node", PROPOSE_DEADLINE, || {
        let c = leader_q.last_contact();
        c.keys().copied().collect::<Vec<_>>() == others
    })
    .await?;
    let first = leader_q
        .last_contact()
        .get(&4)
        .copied()
        .ok_or_else(|| err("no contact"))?;
    wait_until(
        "a fresher contact with the learner",
        PROPOSE_DEADLINE,
        || leader_q.last_contact().get(&4).is_some_and(|t| *t > first),
    )
    .await?;
    let stale = leader_q
        .last_contact()
        .values()
        .map(|t| t.elapsed())
        .max()
        .unwrap_or_default();
    assert!(
        stale < Duration::from_secs(2),
        "contacts are fresh: {stale:?}"
    );
    for n in &nodes {
        if n.id != leader {
            assert!(
                n.q.last_contact().is_empty(),
                "followers report no contacts"
            );
        }
    }

    // A learner that stops goes stale in last_contact.
    let l = take(&mut nodes, 4)?;
    l.q.shutdown().await;
    drop(l);
    let stopped_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let last = leader_q
        .last_contact()
        .get(&4)
        .copied()
        .ok_or_else(|| err("no contact"))?;
    assert!(last <= stopped_at, "no contact after the learner stopped");

    // It restarts from disk and is still a member without joining again.
    let back = cluster.start(4).await?;
    nodes.push(back);
    let all: Vec<&Node> = nodes.iter().collect();
    all_applied(&all, &expected).await?;
    shutdown_all(&nodes).await;
    Ok(())
}
