//! Snapshots and purging: restart from snapshot plus log, and a node that was down while the
//! leader purged catches up by InstallSnapshot.

mod common;

use std::path::Path;

use common::*;

fn purged_index(dir: &Path) -> R<Option<u64>> {
    let path = dir.join("purged.json");
    if !path.exists() {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
    Ok(v.get("index").and_then(|i| i.as_u64()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_purge_restart_and_install() -> R {
    let mut cluster = Cluster::new(3, 0)?;
    cluster.snapshot_every = 20;
    let mut nodes = cluster.start_voters().await?;
    let all: Vec<&Node> = nodes.iter().collect();
    let leader = agreed_leader(&all).await?;
    drop(all);

    // One follower goes away early and misses everything below.
    let lagging_id = nodes
        .iter()
        .map(|n| n.id)
        .find(|id| *id != leader)
        .ok_or_else(|| err("no follower"))?;
    let mut expected = vec!["early".to_string()];
    node(&nodes, leader)?
        .q
        .propose("early".to_string(), PROPOSE_DEADLINE)
        .await?;
    let lagging = take(&mut nodes, lagging_id)?;
    let lagging_last = lagging.q.applied_index();
    lagging.q.shutdown().await;
    drop(lagging);

    for i in 0..100 {
        let cmd = format!("cmd-{i}");
        let n = nodes.get(i % nodes.len()).ok_or_else(|| err("no node"))?;
        n.q.propose(cmd.clone(), PROPOSE_DEADLINE).await?;
        expected.push(cmd);
    }
    let live: Vec<&Node> = nodes.iter().collect();
    all_applied(&live, &expected).await?;
    let leader_dir = cluster.dir(leader);
    wait_until("the leader to snapshot and purge", PROPOSE_DEADLINE, || {
        leader_dir.join("snapshot.bin").exists()
            && purged_index(&leader_dir)
                .ok()
                .flatten()
                .is_some_and(|p| p > lagging_last + 20)
    })
    .await?;
    drop(live);

    // Restart the other follower: snapshot plus the rest of the log.
    let other = a_follower(&nodes, leader)?;
    let n = take(&mut nodes, other)?;
    n.q.shutdown().await;
    drop(n);
    assert!(
        cluster.dir(other).join("snapshot.bin").exists(),
        "followers snapshot too"
    );
    let restarted = cluster.start(other).await?;
    // Restored from disk before any leader contact is needed for the snapshot part.
    assert!(
        restarted.sm.applied().len() >= 20,
        "restored from its snapshot at start"
    );
    nodes.push(restarted);

    // The lagging node needs entries the leader has purged: only a snapshot can help it.
    let lagging = cluster.start(lagging_id).await?;
    nodes.push(lagging);
    let all: Vec<&Node> = nodes.iter().collect();
    all_applied(&all, &expected).await?;
    assert!(
        cluster.dir(lagging_id).join("snapshot.bin").exists(),
        "installed a snapshot"
    );

    let cmd = "last".to_string();
    node(&nodes, lagging_id)?
        .q
        .propose(cmd.clone(), PROPOSE_DEADLINE)
        .await?;
    expected.push(cmd);
    all_applied(&all, &expected).await?;
    shutdown_all(&nodes).await;
    Ok(())
}
