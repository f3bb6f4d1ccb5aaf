//! A torn write at the end of a stopped node's log: it keeps everything before and rejoins.

mod common;

use std::io::Write;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_after_the_last_record_is_cut_off() -> R {
    let cluster = Cluster::new(3, 0)?;
    let mut nodes = cluster.start_voters().await?;
    let all: Vec<&Node> = nodes.iter().collect();
    let leader = agreed_leader(&all).await?;
    let mut expected = Vec::new();
    for i in 0..10 {
        let cmd = format!("cmd-{i}");
        node(&nodes, leader)?
            .q
            .propose(cmd.clone(), PROPOSE_DEADLINE)
            .await?;
        expected.push(cmd);
    }
    all_applied(&all, &expected).await?;
    drop(all);

    let victim = a_follower(&nodes, leader)?;
    let n = take(&mut nodes, victim)?;
    n.q.shutdown().await;
    drop(n);
    let path = log_file(&cluster.dir(victim));
    let good_len = std::fs::metadata(&path)?.len();
    // A record header announcing 100 bytes followed by only a few: a torn append.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)?
        .write_all(b"\x00\x00\x00\x64\x12\x34\x56\x78{\"log_id\":")?;

    let back = cluster.start(victim).await?;
    assert!(std::fs::metadata(&path)?.len() >= good_len);
    nodes.push(back);
    let all: Vec<&Node> = nodes.iter().collect();
    all_applied(&all, &expected).await?;
    for n in &nodes {
        let cmd = format!("after-{}", n.id);
        n.q.propose(cmd.clone(), PROPOSE_DEADLINE).await?;
        expected.push(cmd);
    }
    all_applied(&all, &expected).await?;
    shutdown_all(&nodes).await;

    // Whatever the node appended after the cut is intact: it reopens cleanly again.
    let again = cluster.start(victim).await?;
    again.q.shutdown().await;
    Ok(())
}
