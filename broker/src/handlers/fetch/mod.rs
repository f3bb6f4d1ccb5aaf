//! Fetch: whole batches from each requested partition, up to the high watermark (the last
//! stable offset for read_committed, with the aborted transactions in what is read), as
//! zero-copy slices of the segment mappings. When less than `min_bytes` is available the
//! request long-polls: it sleeps until an append to one of its partitions wakes it or
//! `max_wait_ms` passes — no polling loop.
//!
//! From v7 a consumer may keep an incremental fetch session (KIP-227, `crate::fetch_session`):
//! a full fetch with epoch 0 opens one, and later fetches name only the partitions whose
//! position changed and get back only the partitions with something new.

mod regions;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::messages::fetch_request::{FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
pub use regions::FileRegions;
use strata_protocol::kafka_protocol;
use tokio::time::Instant;
use uuid::Uuid;

use super::{str_bytes, RequestContext};
use crate::errors::ErrorCode;
use crate::fetch_session::{FetchPlan, FetchPosition, PartitionKey, Reported, Requested, TopicKey};
use crate::metrics::FetchedPartitions;
use crate::partition::{Isolation, Partition};
use crate::security::acl::AclOperation;
use crate::server::Broker;

/// Upper bound on how long one fetch may park, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);

struct WantedPartition {
    /// Index of its topic in the response's topic list.
    topic_slot: usize,
    requested: Requested,
    /// The partition, or why the request cannot read it (unknown, not authorized).
    partition: Result<Arc<Partition>, ErrorCode>,
}

/// A Fetch response and where its records lie in segment files.
pub struct FetchOutcome {
    pub response: FetchResponse,
    pub regions: FileRegions,
}

/// What this request does with a fetch session once its partitions are read.
enum SessionStep {
    None,
    Open,
    Continue { id: i32, epoch: i32 },
}

pub async fn handle(broker: &Broker, ctx: &RequestContext, request: FetchRequest) -> FetchOutcome {
    let uses_topic_ids = ctx.api_version >= 13;
    let requested = requested_partitions(&request.topics, uses_topic_ids);
    let plan = if ctx.api_version < 7 {
        // No session fields before v7.
        FetchPlan::Sessionless(requested)
    } else {
        let forgotten = forgotten_partitions(&request.forgotten_topics_data, uses_topic_ids);
        broker.fetch_sessions.begin(
            request.session_id,
            request.session_epoch,
            uses_topic_ids,
            requested,
            &forgotten,
            Instant::now(),
        )
    };
    let (partitions, step) = match plan {
        FetchPlan::Error(code) => return session_error(code, 0),
        FetchPlan::Sessionless(partitions) => (partitions, SessionStep::None),
        FetchPlan::Full(partitions) => (partitions, SessionStep::Open),
        FetchPlan::Incremental {
            session_id,
            epoch,
            partitions,
        } => (
            partitions,
            SessionStep::Continue {
                id: session_id,
                epoch,
            },
        ),
    };
    // A follower's fetch (KIP-903 moved its id into replica_state in v15).
    let replica_id = if ctx.api_version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    let follower = (replica_id >= 0).then_some(replica_id);
    // KIP-392: v11+ consumers may read from followers; with client.rack (and a replica
    // selector configured) the leader sends them to an in-sync replica in their rack.
    let read_from = if follower.is_none() && ctx.api_version >= 11 {
        ReadFrom::LeaderOrFollower {
            rack: Some(request.rack_id.as_str())
                .filter(|r| !r.is_empty() && rack_aware_selector(broker)),
        }
    } else {
        ReadFrom::Leader
    };
    let (topics, wanted) = resolve(broker, ctx, partitions, uses_topic_ids, follower);

    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    // v4+: read_committed stops at the last stable offset and lists aborted transactions.
    let isolation = Isolation::from_wire(request.isolation_level);
    let max_bytes = if request.max_bytes <= 0 {
        usize::MAX
    } else {
        request.max_bytes as usize
    };
    let (data, regions, read_bytes) = loop {
        // Register for wake-ups BEFORE reading, so an append between the read and the
        // wait is not missed.
        let mut wakeups: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>> = wanted
            .iter()
            .filter_map(|w| w.partition.as_ref().ok())
            .map(|p| Box::pin(p.appended().notified()))
            .collect();
        for w in &mut wakeups {
            w.as_mut().enable();
        }
        let read = read_once(
            broker,
            &wanted,
            max_bytes,
            ctx.api_version,
            isolation,
            follower,
            read_from,
        );
        // As in Kafka, an error reading a partition answers at once; partitions that could
        // not be looked up (unknown, not authorized) do not cut the others' wait short.
        if read.bytes >= min_bytes
            || read.read_error
            || wakeups.is_empty()
            || Instant::now() >= deadline
        {
            break (read.data, read.regions, read.bytes);
        }
        tokio::select! {
            _ = select_all(wakeups) => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    };
    record_metrics(broker, &wanted, &data);

    let reported: Vec<Reported> = data.iter().map(reported).collect();
    let (session_id, keep) = match step {
        SessionStep::None => (0, None),
        SessionStep::Open => {
            let answered: Vec<(Requested, Reported)> = wanted
                .iter()
                .map(|w| w.requested.clone())
                .zip(reported)
                .collect();
            let id = broker
                .fetch_sessions
                .open(uses_topic_ids, &answered, Instant::now());
            (id, None)
        }
        SessionStep::Continue { id, epoch } => {
            match broker.fetch_sessions.finish(id, epoch, &reported) {
                Ok(keep) => (id, Some(keep)),
                // Kafka names the session in an epoch error, not in a missing-session one.
                Err(code @ ErrorCode::InvalidFetchSessionEpoch) => return session_error(code, id),
                Err(code) => return session_error(code, 0),
            }
        }
    };
    // A consumer over its quota still gets what was read (Kafka drops it and lets the
    // consumer fetch it again); its connection then rests for the throttle.
    let throttle = ctx.throttle(
        broker,
        &broker.metadata.image().client_quotas,
        crate::quota::QuotaKind::Fetch,
        read_bytes,
    );
    FetchOutcome {
        response: assemble(&topics, &wanted, data, keep.as_deref(), session_id)
            .with_throttle_time_ms(throttle),
        regions,
    }
}

fn topic_key(name: &TopicName, id: Uuid, uses_topic_ids: bool) -> TopicKey {
    if uses_topic_ids {
        TopicKey::Id(id)
    } else {
        TopicKey::Name(name.0.as_str().into())
    }
}

/// The request's partitions in the order it lists them.
fn requested_partitions(topics: &[FetchTopic], uses_topic_ids: bool) -> Vec<Requested> {
    let mut requested = Vec::with_capacity(topics.iter().map(|t| t.partitions.len()).sum());
    for t in topics {
        let topic = topic_key(&t.topic, t.topic_id, uses_topic_ids);
        requested.extend(t.partitions.iter().map(|p| Requested {
            key: PartitionKey {
                topic: topic.clone(),
                partition: p.partition,
            },
            position: FetchPosition {
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
                log_start_offset: p.log_start_offset,
            },
        }));
    }
    requested
}

fn forgotten_partitions(forgotten: &[ForgottenTopic], uses_topic_ids: bool) -> Vec<PartitionKey> {
    let mut keys = Vec::new();
    for t in forgotten {
        let topic = topic_key(&t.topic, t.topic_id, uses_topic_ids);
        keys.extend(t.partitions.iter().map(|&partition| PartitionKey {
            topic: topic.clone(),
            partition,
        }));
    }
    keys
}

/// Looks each partition up (topic by name or id, READ permission, the local replica) and
/// gives consecutive partitions of a topic one entry in the response's topic list. A topic is
/// resolved once for its run of partitions, which are then found under one lock.
fn resolve(
    broker: &Broker,
    ctx: &RequestContext,
    partitions: Vec<Requested>,
    uses_topic_ids: bool,
    follower: Option<i32>,
) -> (Vec<(TopicName, Uuid)>, Vec<WantedPartition>) {
    // Followers need CLUSTER_ACTION (Kafka's check of a replica fetch), not READ.
    let follower_allowed =
        follower.is_some() && ctx.allowed_cluster(broker, AclOperation::ClusterAction);
    let image = broker.metadata.image();
    let mut topics: Vec<(TopicName, Uuid)> = Vec::new();
    let mut wanted = Vec::with_capacity(partitions.len());
    let mut partitions = partitions.into_iter().peekable();
    while let Some(first) = partitions.next() {
        let topic = first.key.topic.clone();
        let mut run = vec![first];
        while let Some(next) = partitions.next_if(|r| r.key.topic == topic) {
            run.push(next);
        }
        let (name, id, unknown) = match &topic {
            TopicKey::Id(id) => match image.topic_by_id(id) {
                Some(t) => (t.name.clone(), *id, None),
                None => (String::new(), *id, Some(ErrorCode::UnknownTopicId)),
            },
            TopicKey::Name(name) => {
                let unknown = image
                    .topic(name)
                    .is_none()
                    .then_some(ErrorCode::UnknownTopicOrPartition);
                (name.to_string(), Uuid::nil(), unknown)
            }
        };
        // READ is checked before existence (an id we do not know stays UNKNOWN_TOPIC_ID).
        let unreadable = match unknown {
            Some(ErrorCode::UnknownTopicId) => unknown,
            _ if follower.is_some() && !follower_allowed => {
                Some(ErrorCode::ClusterAuthorizationFailed)
            }
            _ if follower.is_none() && !ctx.allowed_topic(broker, AclOperation::Read, &name) => {
                Some(ErrorCode::TopicAuthorizationFailed)
            }
            other => other,
        };
        let found: Vec<Result<Arc<Partition>, ErrorCode>> = match unreadable {
            Some(code) => run.iter().map(|_| Err(code)).collect(),
            None => broker
                .replicas
                .get_many(&name, run.iter().map(|r| r.key.partition))
                .into_iter()
                .map(|p| p.ok_or(ErrorCode::UnknownTopicOrPartition))
                .collect(),
        };
        // v13+ identifies topics by id only; the name field no longer exists on the wire.
        let wire_name = if uses_topic_ids {
            TopicName::default()
        } else {
            TopicName(str_bytes(name))
        };
        let topic_slot = topics.len();
        topics.push((wire_name, id));
        wanted.extend(
            run.into_iter()
                .zip(found)
                .map(|(requested, partition)| WantedPartition {
                    topic_slot,
                    requested,
                    partition,
                }),
        );
    }
    (topics, wanted)
}

struct ReadOnce {
    /// One entry per wanted partition, in the same order.
    data: Vec<PartitionData>,
    regions: FileRegions,
    bytes: usize,
    /// Some partition failed when read (not when looked up).
    read_error: bool,
}

fn read_once(
    broker: &Broker,
    wanted: &[WantedPartition],
    max_bytes: usize,
    version: i16,
    isolation: Isolation,
    follower: Option<i32>,
    read_from: ReadFrom<'_>,
) -> ReadOnce {
    let log_start = |offset: i64| if version >= 5 { offset } else { -1 };
    let mut read_once = ReadOnce {
        data: Vec::with_capacity(wanted.len()),
        regions: FileRegions::default(),
        bytes: 0,
        read_error: false,
    };
    for w in wanted {
        let position = &w.requested.position;
        let data = PartitionData::default()
            .with_partition_index(w.requested.key.partition)
            .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1));
        let data = match &w.partition {
            Err(code) => error_data(data, *code),
            Ok(p) => {
                if let Err(code) = p.check_leader_epoch(position.current_leader_epoch) {
                    read_once.read_error = true;
                    error_data(data, code)
                } else if !p.is_leader() && read_from == ReadFrom::Leader {
                    read_once.read_error = true;
                    error_data(data, ErrorCode::NotLeaderOrFollower)
                } else if let Some(preferred) =
                    preferred_read_replica(broker, p, read_from, position.fetch_offset)
                {
                    // Kafka answers with the replica to use and no records.
                    data.with_preferred_read_replica(kafka_protocol::messages::BrokerId(preferred))
                        .with_high_watermark(p.high_watermark())
                        .with_last_stable_offset(p.last_stable_offset())
                        .with_log_start_offset(log_start(p.log_start_offset()))
                        .with_records(Some(Bytes::new()))
                } else if let Some(follower) = follower {
                    let budget = (position.partition_max_bytes.max(0) as usize)
                        .min(max_bytes.saturating_sub(read_once.bytes));
                    match crate::replication::leader::serve_follower(
                        broker,
                        p,
                        follower,
                        position.fetch_offset,
                        position.log_start_offset,
                        budget,
                    ) {
                        Ok(read) => {
                            read_once.bytes += read.records.len();
                            read_once.regions.add(&read.records, read.region);
                            data.with_high_watermark(read.high_watermark)
                                .with_last_stable_offset(read.last_stable_offset)
                                .with_log_start_offset(log_start(read.log_start_offset))
                                .with_records(Some(read.records))
                        }
                        Err(code) => {
                            read_once.read_error = true;
                            error_data(data, code)
                                .with_high_watermark(p.high_watermark())
                                .with_log_start_offset(log_start(p.log_start_offset()))
                        }
                    }
                } else {
                    let partition_max_bytes = position.partition_max_bytes.max(0) as usize;
                    let budget = partition_max_bytes.min(max_bytes.saturating_sub(read_once.bytes));
                    // KIP-74: the first non-empty partition returns at least one whole batch.
                    let min_one_batch = read_once.bytes == 0;
                    match p.read_isolated(position.fetch_offset, budget, min_one_batch, isolation) {
                        Ok(read) => {
                            read_once.bytes += read.records.len();
                            read_once.regions.add(&read.records, read.region);
                            let aborted = read.aborted.map(|list| {
                                list.iter()
                                    .map(|a| {
                                        AbortedTransaction::default()
                                            .with_producer_id(ProducerId(a.producer_id))
                                            .with_first_offset(a.first_offset)
                                    })
                                    .collect()
                            });
                            data.with_high_watermark(read.high_watermark)
                                .with_last_stable_offset(read.last_stable_offset)
                                .with_log_start_offset(log_start(read.log_start_offset))
                                .with_aborted_transactions(aborted)
                                .with_records(Some(read.records))
                        }
                        Err(code) => {
                            read_once.read_error = true;
                            error_data(data, code)
                                .with_high_watermark(p.high_watermark())
                                .with_last_stable_offset(p.last_stable_offset())
                                .with_log_start_offset(log_start(p.log_start_offset()))
                        }
                    }
                }
            }
        };
        read_once.data.push(data);
    }
    read_once
}

/// Where a consumer's fetch may be answered from (KIP-392).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadFrom<'a> {
    /// The leader only: replicas' fetches, and consumers before v11.
    Leader,
    /// The leader or a follower the client was sent to; `rack` is the client's when the
    /// leader should send it to a replica in that rack.
    LeaderOrFollower { rack: Option<&'a str> },
}

/// Whether `replica.selector.class` names a rack-aware selector (Kafka's
/// RackAwareReplicaSelector, or any class: Strata has only that one).
fn rack_aware_selector(broker: &Broker) -> bool {
    broker
        .config
        .get("replica.selector.class")
        .is_some_and(|c| !c.trim().is_empty())
}

/// On the leader, for a consumer in another rack than this broker's: an in-sync follower in
/// the client's rack whose log holds the fetch offset (Kafka's RackAwareReplicaSelector).
fn preferred_read_replica(
    broker: &Broker,
    partition: &Partition,
    read_from: ReadFrom<'_>,
    fetch_offset: i64,
) -> Option<i32> {
    let ReadFrom::LeaderOrFollower { rack: Some(rack) } = read_from else {
        return None;
    };
    if !partition.is_leader() {
        return None;
    }
    let image = broker.metadata.image();
    let rack_of = |id: i32| image.brokers.get(&id).and_then(|b| b.rack.as_deref());
    if rack_of(broker.node_id()) == Some(rack) {
        return None;
    }
    partition
        .followers_holding(fetch_offset)
        .into_iter()
        .find(|id| rack_of(*id) == Some(rack) && !image.fenced.contains(id))
}

fn reported(data: &PartitionData) -> Reported {
    Reported {
        error_code: data.error_code,
        high_watermark: data.high_watermark,
        log_start_offset: data.log_start_offset,
        has_records: data.records.as_ref().is_some_and(|r| !r.is_empty()),
    }
}

/// Per-topic fetch metrics, once per request (not per long-poll round), for every partition
/// read, whether or not an incremental response then carries it; one series update per topic.
fn record_metrics(broker: &Broker, wanted: &[WantedPartition], data: &[PartitionData]) {
    let mut run: Option<(usize, &str, FetchedPartitions)> = None;
    for (w, data) in wanted.iter().zip(data) {
        // Unknown topics are not labelled: their names come from the client.
        let Ok(p) = &w.partition else {
            continue;
        };
        let failed = u64::from(data.error_code != 0);
        let bytes = data.records.as_ref().map_or(0, |r| r.len() as u64);
        match &mut run {
            Some((slot, _, read)) if *slot == w.topic_slot => {
                read.partitions += 1;
                read.failed += failed;
                read.bytes += bytes;
            }
            _ => {
                if let Some((_, topic, read)) = run.take() {
                    broker.metrics.fetched(topic, read);
                }
                let read = FetchedPartitions {
                    partitions: 1,
                    failed,
                    bytes,
                };
                run = Some((w.topic_slot, &p.tp.topic, read));
            }
        }
    }
    if let Some((_, topic, read)) = run {
        broker.metrics.fetched(topic, read);
    }
}

fn error_data(data: PartitionData, code: ErrorCode) -> PartitionData {
    data.with_error_code(code.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Bytes::new()))
}

fn session_error(code: ErrorCode, session_id: i32) -> FetchOutcome {
    FetchOutcome {
        response: FetchResponse::default()
            .with_error_code(code.code())
            .with_session_id(session_id),
        regions: FileRegions::default(),
    }
}

/// The response: the partitions `keep` selects (all without it), each under its topic's
/// entry; a topic none of whose partitions is kept is left out.
fn assemble(
    topics: &[(TopicName, Uuid)],
    wanted: &[WantedPartition],
    data: Vec<PartitionData>,
    keep: Option<&[bool]>,
    session_id: i32,
) -> FetchResponse {
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    let mut last_slot = None;
    for (i, (w, partition)) in wanted.iter().zip(data).enumerate() {
        if keep.is_some_and(|keep| keep.get(i) != Some(&true)) {
            continue;
        }
        if last_slot != Some(w.topic_slot) {
            let (name, id) = topics.get(w.topic_slot).cloned().unwrap_or_default();
            responses.push(
                FetchableTopicResponse::default()
                    .with_topic(name)
                    .with_topic_id(id),
            );
            last_slot = Some(w.topic_slot);
        }
        if let Some(topic) = responses.last_mut() {
            topic.partitions.push(partition);
        }
    }
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(responses)
}
