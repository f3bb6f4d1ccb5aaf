//! The load tool's consumer-group mode against an in-process broker: a member reads every
//! record, commits where it got to and starts there next time; two members share the
//! partitions and together read every record exactly once, rebalance or not.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strata_benches::batch::BatchTemplate;
use strata_benches::client::KafkaConnection;
use strata_benches::group;
use strata_benches::group_consume::{consume_in_group, GroupLoad, GroupRun, OnFetch};
use strata_benches::inproc::InProcessBroker;
use strata_benches::ops::{self, Versions};
use strata_benches::pipeline::{self, FetchLoad, ProduceLoad};
use strata_benches::security::ClientSecurity;

async fn connect(addr: &str) -> (KafkaConnection, Versions) {
    let mut conn = KafkaConnection::connect(addr, "test").await.unwrap();
    let versions = ops::negotiate(&mut conn).await.unwrap();
    (conn, versions)
}

/// Sends `requests` batches of 10 records to each of `partitions`.
async fn produce(addr: &str, topic: &str, partitions: &[i32], requests: u64) {
    let (mut conn, versions) = connect(addr).await;
    for p in partitions {
        let load = ProduceLoad {
            topic: topic.into(),
            partitions: vec![*p],
            batch: BatchTemplate::new(10, 100, 1_700_000_000_000)
                .unwrap()
                .to_bytes(),
            records_per_batch: 10,
            acks: -1,
            version: versions.produce,
            requests,
            in_flight: 2,
            throughput: None,
            idempotence: None,
        };
        pipeline::produce(&mut conn, &load, |_, _| {})
            .await
            .unwrap();
    }
}

/// Creates `topic` with `partitions` partitions and sends `requests` batches of 10 records to
/// each.
async fn topic_with_records(addr: &str, topic: &str, partitions: i32, requests: u64) {
    let (mut conn, versions) = connect(addr).await;
    ops::create_topic(&mut conn, &versions, topic, partitions)
        .await
        .unwrap();
    produce(addr, topic, &(0..partitions).collect::<Vec<_>>(), requests).await;
}

fn group_load(
    addr: &str,
    versions: &Versions,
    group: &str,
    topic: &str,
    partitions: i32,
    records: u64,
) -> GroupLoad {
    GroupLoad {
        group: group.into(),
        topic: topic.into(),
        leaders: (0..partitions).map(|p| (p, addr.to_owned())).collect(),
        fetch: FetchLoad {
            topic: topic.into(),
            offsets: vec![],
            version: versions.fetch,
            max_wait_ms: 100,
            max_bytes: 1 << 20,
            partition_max_bytes: 1 << 20,
            records,
            // Long enough for a member that idles to notice, by heartbeat, a member joining
            // meanwhile, even on a loaded CI machine.
            idle_timeout: Duration::from_secs(4),
        },
        heartbeat_interval: Duration::from_millis(200),
    }
}

async fn member(addr: String, group: &str, topic: &str, partitions: i32, records: u64) -> GroupRun {
    member_watched(
        addr,
        group,
        topic,
        partitions,
        records,
        Arc::new(|_, _, _| {}),
    )
    .await
}

async fn member_watched(
    addr: String,
    group: &str,
    topic: &str,
    partitions: i32,
    records: u64,
    on_fetch: OnFetch,
) -> GroupRun {
    let (mut conn, versions) = connect(&addr).await;
    let load = group_load(&addr, &versions, group, topic, partitions, records);
    consume_in_group(
        &mut conn,
        &versions,
        &ClientSecurity::plaintext(),
        "test",
        &load,
        on_fetch,
    )
    .await
    .unwrap()
}

async fn committed(addr: &str, group: &str, topic: &str, partitions: &[i32]) -> Vec<(i32, i64)> {
    let (mut conn, versions) = connect(addr).await;
    let gv = versions.group.unwrap();
    let coordinator = group::find_coordinator(&mut conn, &gv, group)
        .await
        .unwrap();
    let mut conn = KafkaConnection::connect(&coordinator, "test")
        .await
        .unwrap();
    group::committed(&mut conn, &gv, group, topic, partitions)
        .await
        .unwrap()
}

#[test]
fn a_member_reads_everything_commits_and_resumes_there() {
    let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
    let broker = InProcessBroker::start(runtime.clone(), &[]).unwrap();
    let addr = broker.addr.clone();
    runtime.block_on(async {
        topic_with_records(&addr, "orders", 3, 4).await;

        let run = member(addr.clone(), "readers", "orders", 3, 120).await;
        assert_eq!(run.records, 120);
        assert_eq!(run.generations, 1);
        assert!(!run.ran_dry);
        assert_eq!(run.committed, [(0, 40), (1, 40), (2, 40)]);
        assert_eq!(
            committed(&addr, "readers", "orders", &[0, 1, 2]).await,
            [(0, 40), (1, 40), (2, 40)]
        );

        // Thirty more: the next run starts at the committed offsets and reads only those.
        produce(&addr, "orders", &[1], 3).await;
        let run = member(addr.clone(), "readers", "orders", 3, 30).await;
        assert_eq!(run.records, 30);
        assert_eq!(run.committed, [(0, 40), (1, 70), (2, 40)]);

        // Asked for more than there is, it stops when the partitions run dry.
        let run = member(addr.clone(), "others", "orders", 3, 1_000).await;
        assert_eq!(run.records, 150);
        assert!(run.ran_dry);
    });
}

#[test]
fn two_members_share_the_partitions_and_read_each_record_once() {
    let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
    let broker = InProcessBroker::start(runtime.clone(), &[]).unwrap();
    let addr = broker.addr.clone();
    runtime.block_on(async {
        topic_with_records(&addr, "shared", 4, 5).await;
        // Each asks for all 200: they read until their partitions run dry.
        let a = tokio::spawn(member(addr.clone(), "pair", "shared", 4, 200));
        let b = tokio::spawn(member(addr.clone(), "pair", "shared", 4, 200));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert_eq!(a.records + b.records, 200, "{a:?}\n{b:?}");
        assert_eq!(
            committed(&addr, "pair", "shared", &[0, 1, 2, 3]).await,
            [(0, 50), (1, 50), (2, 50), (3, 50)]
        );
        let committed: BTreeMap<i32, i64> =
            a.committed.iter().chain(&b.committed).copied().collect();
        assert_eq!(committed.len(), 4, "{a:?}\n{b:?}");
    });
}

#[test]
fn a_member_joining_later_makes_the_first_commit_and_rejoin() {
    use std::sync::atomic::{AtomicU64, Ordering};

    let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
    let broker = InProcessBroker::start(runtime.clone(), &[]).unwrap();
    let addr = broker.addr.clone();
    runtime.block_on(async {
        topic_with_records(&addr, "late", 2, 5).await;
        // The first member reads all 100 and then idles (it asked for more); the second
        // joins while it idles: the group rebalances, the first commits and rejoins, and
        // the second starts where the first got to.
        let read = Arc::new(AtomicU64::new(0));
        let all_read = Arc::new(tokio::sync::Notify::new());
        let (r, n) = (read.clone(), all_read.clone());
        let first = tokio::spawn(member_watched(
            addr.clone(),
            "late-group",
            "late",
            2,
            1_000,
            Arc::new(move |_, records, _| {
                if r.fetch_add(records, Ordering::SeqCst) + records >= 100 {
                    n.notify_one();
                }
            }),
        ));
        tokio::time::timeout(Duration::from_secs(30), all_read.notified())
            .await
            .unwrap();
        let second = member(addr.clone(), "late-group", "late", 2, 1_000).await;
        let first = first.await.unwrap();
        assert_eq!(
            (first.records, second.records),
            (100, 0),
            "{first:?}\n{second:?}"
        );
        assert_eq!(first.generations, 2, "{first:?}");
        assert_eq!(
            committed(&addr, "late-group", "late", &[0, 1]).await,
            [(0, 50), (1, 50)]
        );
    });
}
