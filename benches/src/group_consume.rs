//! Consuming as a member of a consumer group: each generation joins, reads its partitions
//! from their leaders (one connection and one fetch loop per leader) while a heartbeat task
//! watches the generation, then commits where it got to. A rebalance stops the loops, and
//! the member commits and rejoins; the run ends when the member has read its share of the
//! records, or when its partitions run dry, and then it leaves the group.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::client::KafkaConnection;
use crate::group::{self, GroupVersions, Member, Standing};
use crate::ops::{self, OpsError, Versions};
use crate::pipeline::{self, FetchEnd, FetchLoad, SharedProgress};
use crate::security::ClientSecurity;

/// What to consume, and how.
#[derive(Debug, Clone)]
pub struct GroupLoad {
    pub group: String,
    pub topic: String,
    /// Every partition of the topic with its leader's `host:port`.
    pub leaders: BTreeMap<i32, String>,
    /// The Fetch settings (its `offsets` are ignored: the group decides them); `records`
    /// is how many this member reads before it leaves.
    pub fetch: FetchLoad,
    /// How often the member heartbeats (Kafka's heartbeat.interval.ms, 3 s by default).
    pub heartbeat_interval: Duration,
}

/// How a member's run went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRun {
    pub records: u64,
    /// Generations this member took part in (1 without rebalances).
    pub generations: u32,
    /// Time spent joining and syncing, all generations together.
    pub rebalance_time: Duration,
    /// The partitions ran dry before `records` were read.
    pub ran_dry: bool,
    /// The positions committed last.
    pub committed: Vec<(i32, i64)>,
}

/// Per-fetch callback: latency, records, bytes.
pub type OnFetch = Arc<dyn Fn(Duration, u64, u64) + Send + Sync>;

/// Consumes `load` as one member of `load.group`. `bootstrap` is any broker's connection.
pub async fn consume_in_group(
    bootstrap: &mut KafkaConnection,
    versions: &Versions,
    security: &ClientSecurity,
    client_id: &str,
    load: &GroupLoad,
    on_fetch: OnFetch,
) -> Result<GroupRun, OpsError> {
    let Some(gv) = versions.group else {
        return Err(OpsError::Missing(
            "expected the broker to offer the consumer-group APIs (FindCoordinator v1-3, \
             JoinGroup v4-7, SyncGroup v3-4, ...), found them missing"
                .into(),
        ));
    };
    let coordinator_addr = group::find_coordinator(bootstrap, &gv, &load.group).await?;
    let mut coordinator =
        KafkaConnection::connect_with(&coordinator_addr, client_id, security).await?;
    let all: Vec<i32> = load.leaders.keys().copied().collect();
    let progress = Arc::new(SharedProgress::default());
    let mut run = GroupRun {
        records: 0,
        generations: 0,
        rebalance_time: Duration::ZERO,
        ran_dry: false,
        committed: Vec::new(),
    };
    let mut member_id = String::new();
    loop {
        let joining = Instant::now();
        let (member, assigned) = group::join(
            &mut coordinator,
            &gv,
            &load.group,
            &member_id,
            &load.topic,
            &all,
        )
        .await?;
        run.rebalance_time += joining.elapsed();
        run.generations += 1;
        member_id = member.member_id.clone();
        progress.stop.store(false, Ordering::Relaxed);

        let start =
            group::committed(&mut coordinator, &gv, &load.group, &load.topic, &assigned).await?;
        let watch = Arc::new(Watch::default());
        let heartbeats = tokio::spawn(heartbeat_loop(
            KafkaConnection::connect_with(&coordinator_addr, client_id, security).await?,
            gv,
            member.clone(),
            load.heartbeat_interval,
            progress.clone(),
            watch.clone(),
        ));
        let (end, positions) = read_generation(
            versions, security, client_id, load, start, &progress, &watch, &on_fetch,
        )
        .await;
        heartbeats.abort();
        let positions = positions?;
        // Commit what was read even when the generation is over: a refusal only means the
        // next owner reads those records again, as with Kafka's consumer.
        let commit = group::commit(&mut coordinator, &gv, &member, &load.topic, &positions).await?;
        if commit == Standing::Current {
            run.committed = positions;
        }
        run.records = progress.records.load(Ordering::Relaxed);
        let told = watch.standing();
        match end {
            FetchEnd::Target | FetchEnd::Idle => {
                run.ran_dry = end == FetchEnd::Idle;
                leave_quietly(&mut coordinator, &gv, &member).await;
                return Ok(run);
            }
            FetchEnd::Stopped => {
                if told == Some(Standing::Unknown) || commit == Standing::Unknown {
                    member_id.clear();
                }
            }
        }
    }
}

/// What the heartbeat task learnt, and a way to wake a member that has no partitions.
#[derive(Default)]
struct Watch {
    standing: Mutex<Option<Standing>>,
    changed: Notify,
}

impl Watch {
    fn standing(&self) -> Option<Standing> {
        *self.standing.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn heartbeat_loop(
    mut conn: KafkaConnection,
    gv: GroupVersions,
    member: Member,
    interval: Duration,
    progress: Arc<SharedProgress>,
    watch: Arc<Watch>,
) -> Result<(), OpsError> {
    loop {
        tokio::time::sleep(interval).await;
        let standing = group::heartbeat(&mut conn, &gv, &member).await?;
        if standing != Standing::Current {
            *watch.standing.lock().unwrap_or_else(|p| p.into_inner()) = Some(standing);
            progress.stop.store(true, Ordering::Relaxed);
            watch.changed.notify_one();
            return Ok(());
        }
    }
}

/// Reads the assigned partitions (from `start`, their committed positions) until the
/// target, a rebalance, or nothing more arrives; returns why, and where each partition got.
#[allow(clippy::too_many_arguments)]
async fn read_generation(
    versions: &Versions,
    security: &ClientSecurity,
    client_id: &str,
    load: &GroupLoad,
    start: Vec<(i32, i64)>,
    progress: &Arc<SharedProgress>,
    watch: &Watch,
    on_fetch: &OnFetch,
) -> (FetchEnd, Result<Vec<(i32, i64)>, OpsError>) {
    if start.is_empty() {
        // More members than partitions: nothing to read until the group changes.
        return match tokio::time::timeout(load.fetch.idle_timeout, watch.changed.notified()).await {
            Ok(()) => (FetchEnd::Stopped, Ok(Vec::new())),
            Err(_) => (FetchEnd::Idle, Ok(Vec::new())),
        };
    }
    let mut by_leader: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (p, offset) in &start {
        if let Some(addr) = load.leaders.get(p) {
            by_leader
                .entry(addr.as_str())
                .or_default()
                .push((*p, *offset));
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (addr, offsets) in by_leader {
        let (addr, security, client_id) = (addr.to_owned(), security.clone(), client_id.to_owned());
        let (versions, progress, on_fetch) = (*versions, progress.clone(), on_fetch.clone());
        let mut fetch = load.fetch.clone();
        tasks.spawn(async move {
            let mut conn = KafkaConnection::connect_with(&addr, &client_id, &security).await?;
            fetch.offsets = with_earliest(&mut conn, &versions, &fetch.topic, offsets).await?;
            pipeline::fetch_shared(&mut conn, fetch, &progress, |latency, records, bytes| {
                on_fetch(latency, records, bytes)
            })
            .await
        });
    }
    let (mut ends, mut positions) = (Vec::new(), Vec::new());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((end, offsets))) => {
                ends.push(end);
                positions.extend(offsets);
            }
            Ok(Err(e)) => return (FetchEnd::Stopped, Err(e)),
            Err(e) => {
                return (
                    FetchEnd::Stopped,
                    Err(OpsError::Missing(format!("a fetch task failed: {e}"))),
                )
            }
        }
    }
    positions.sort_unstable();
    // A rebalance wins over the rest: the member rejoins before it decides it is done.
    let end = if watch.standing().is_some() {
        FetchEnd::Stopped
    } else if ends.contains(&FetchEnd::Target) {
        FetchEnd::Target
    } else {
        FetchEnd::Idle
    };
    (end, Ok(positions))
}

/// `offsets` with the partition's earliest offset where nothing is committed (-1), as
/// auto.offset.reset=earliest (kafka-consumer-perf-test's --from-latest unset).
async fn with_earliest(
    conn: &mut KafkaConnection,
    versions: &Versions,
    topic: &str,
    offsets: Vec<(i32, i64)>,
) -> Result<Vec<(i32, i64)>, OpsError> {
    let missing: Vec<i32> = offsets
        .iter()
        .filter(|(_, o)| *o < 0)
        .map(|(p, _)| *p)
        .collect();
    if missing.is_empty() {
        return Ok(offsets);
    }
    let earliest = ops::earliest_offsets(conn, versions, topic, &missing).await?;
    Ok(offsets
        .into_iter()
        .map(|(p, o)| match earliest.iter().find(|(q, _)| *q == p) {
            Some((_, e)) if o < 0 => (p, *e),
            _ => (p, o),
        })
        .collect())
}

/// LeaveGroup, best effort: the session timeout removes the member anyway.
async fn leave_quietly(conn: &mut KafkaConnection, gv: &GroupVersions, member: &Member) {
    let _ = group::leave(conn, gv, member).await;
}
