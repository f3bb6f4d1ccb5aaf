//! Request handlers, one file per API family. A handler is a function from a typed request
//! (plus the request context) to a typed response; this file is the routing table.

pub mod acls;
pub mod admin;
pub mod api_versions;
pub mod client_quotas;
pub mod cluster;
pub mod configs;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub mod fetch;
pub mod group_acls;
pub mod groups;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
pub mod producer_id;
pub mod scram_credentials;
pub mod transactions;
pub mod txn_admin;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use strata_protocol::kafka_protocol;
use strata_protocol::response::{encode_fetch_response_chunks, encode_response};

use crate::server::Broker;

/// Who asked, how, and on which listener.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub listener: Arc<str>,
    pub peer: SocketAddr,
    /// Who the connection authenticated as (`User:ANONYMOUS` without TLS client certs or SASL).
    pub principal: Arc<crate::security::KafkaPrincipal>,
    /// When the request's frame had been read: request queue time is measured from here.
    pub received: std::time::Instant,
    /// Set by a handler whose client is over a quota: the connection is not read for this
    /// many ms after the reply goes out (KIP-219's muting). Shared by a connection's requests.
    pub mute_ms: Arc<std::sync::atomic::AtomicI64>,
}

impl RequestContext {
    /// Records `bytes` against the quota this request's user and client id fall under and,
    /// when over it, mutes the connection; returns the throttle for `throttle_time_ms`.
    /// `quotas` is the request's metadata image's (a handler that holds one passes it).
    pub fn throttle(
        &self,
        broker: &Broker,
        quotas: &crate::quota::QuotaTable,
        kind: crate::quota::QuotaKind,
        bytes: usize,
    ) -> i32 {
        let throttle = broker.quotas.record(
            quotas,
            kind,
            &self.principal.name,
            self.client_id.as_deref().unwrap_or(""),
            bytes,
            crate::partition::manager::now_ms(),
        );
        if throttle > 0 {
            self.mute_ms
                .fetch_max(throttle, std::sync::atomic::Ordering::Relaxed);
            broker.metrics.throttled(kind, throttle);
        }
        i32::try_from(throttle).unwrap_or(i32::MAX)
    }
}

/// What the connection does after a request.
#[derive(Debug)]
pub enum Reply {
    Frame(BytesMut),
    /// A frame in pieces, written with vectored writes: Fetch responses keep each
    /// partition's records as the zero-copy slice of the log segment they were read from,
    /// and say where those lie in the segment file (sent with sendfile where possible).
    Chunks(Vec<OutChunk>),
    /// acks=0 produce: Kafka sends nothing back.
    Nothing,
    /// The request cannot be served on this connection (e.g. an API we do not implement).
    Close,
}

/// A piece of a reply frame.
#[derive(Debug)]
pub enum OutChunk {
    Bytes(bytes::Bytes),
    /// Records that are also `bytes` of a segment file at `region`: a plaintext connection
    /// has the kernel send them from the page cache (sendfile); others write `bytes`.
    File {
        bytes: bytes::Bytes,
        region: strata_storage::FileRegion,
    },
}

impl OutChunk {
    pub fn bytes(&self) -> &bytes::Bytes {
        match self {
            OutChunk::Bytes(bytes) | OutChunk::File { bytes, .. } => bytes,
        }
    }
}

/// APIs with a handler here; ApiVersions advertises only these (intersected with the
/// decodable ranges in `strata_protocol::versions::SUPPORTED`).
pub const IMPLEMENTED: &[ApiKey] = &[
    ApiKey::ApiVersions,
    ApiKey::Metadata,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::DeleteRecords,
    ApiKey::ElectLeaders,
    ApiKey::InitProducerId,
    ApiKey::DescribeCluster,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::DescribeLogDirs,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
    ApiKey::AlterUserScramCredentials,
    ApiKey::DescribeUserScramCredentials,
    ApiKey::CreateAcls,
    ApiKey::DescribeAcls,
    ApiKey::DeleteAcls,
    ApiKey::DescribeTopicPartitions,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::DescribeTransactions,
    ApiKey::ListTransactions,
    ApiKey::DescribeProducers,
    ApiKey::WriteTxnMarkers,
    ApiKey::DescribeClientQuotas,
    ApiKey::AlterClientQuotas,
];

pub async fn handle(broker: &Arc<Broker>, ctx: RequestContext, body: RequestKind) -> Reply {
    // Counts and times the request on every path out, early returns included.
    let _timer = broker
        .metrics
        .start_request(ctx.api_key, Some(ctx.received));
    let mut file_regions = fetch::FileRegions::default();
    let response = match body {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::handle(&ctx, r)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, &ctx, r)),
        RequestKind::Produce(r) => match produce::handle(broker, &ctx, r).await {
            Some(response) => ResponseKind::Produce(response),
            None => return Reply::Nothing,
        },
        RequestKind::Fetch(r) => {
            let outcome = fetch::handle(broker, &ctx, r).await;
            file_regions = outcome.regions;
            ResponseKind::Fetch(outcome.response)
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, &ctx, r))
        }
        RequestKind::OffsetForLeaderEpoch(r) => ResponseKind::OffsetForLeaderEpoch(
            list_offsets::offset_for_leader_epoch(broker, &ctx, r),
        ),
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(broker, &ctx, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(broker, &ctx, r).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::create_partitions(broker, &ctx, r).await)
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(admin::delete_records(broker, &ctx, r).await)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(producer_id::handle(broker, &ctx, r))
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(transactions::add_partitions_to_txn(broker, &ctx, r))
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(transactions::add_offsets_to_txn(broker, &ctx, r))
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(transactions::end_txn(broker, &ctx, r)),
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(transactions::txn_offset_commit(broker, &ctx, r).await)
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(txn_admin::describe_transactions(broker, &ctx, r))
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(txn_admin::describe_producers(broker, &ctx, r))
        }
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(txn_admin::write_txn_markers(broker, &ctx, r))
        }
        RequestKind::DescribeClientQuotas(r) => ResponseKind::DescribeClientQuotas(
            client_quotas::describe_client_quotas(broker, &ctx, r),
        ),
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(client_quotas::alter_client_quotas(broker, &ctx, r))
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(txn_admin::list_transactions(broker, &ctx, r))
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(elect_leaders::elect_leaders(broker, &ctx, r).await)
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(cluster::describe_cluster(broker, &ctx, r))
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(cluster::describe_configs(broker, &ctx, r))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(configs::alter_configs(broker, &ctx, r))
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            configs::incremental_alter_configs(broker, &ctx, r),
        ),
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(configs::describe_log_dirs(broker, &ctx, r))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(broker, &ctx, r).await)
        }
        // Group APIs go through their ACL checks to the coordinator.
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(group_acls::join_group(broker, &ctx, r).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(group_acls::sync_group(broker, &ctx, r).await)
        }
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(group_acls::heartbeat(broker, &ctx, r).await)
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(group_acls::leave_group(broker, &ctx, r).await)
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(group_acls::offset_commit(broker, &ctx, r).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(group_acls::offset_fetch(broker, &ctx, r).await)
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(group_acls::list_groups(broker, &ctx, r).await)
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(group_acls::describe_groups(broker, &ctx, r).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(group_acls::delete_groups(broker, &ctx, r).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(group_acls::offset_delete(broker, &ctx, r).await)
        }
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(
            scram_credentials::alter_checked(broker, &ctx, r),
        ),
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(
            scram_credentials::describe_checked(broker, &ctx, r),
        ),
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(acls::create_acls(broker, &ctx, r)),
        RequestKind::DescribeAcls(r) => {
            ResponseKind::DescribeAcls(acls::describe_acls(broker, &ctx, r))
        }
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(acls::delete_acls(broker, &ctx, r)),
        RequestKind::DescribeTopicPartitions(r) => ResponseKind::DescribeTopicPartitions(
            describe_topic_partitions::handle(broker, &ctx, r),
        ),
        _ => {
            tracing::info!(api = ?ctx.api_key, version = ctx.api_version, peer = %ctx.peer, "API not implemented");
            return Reply::Close;
        }
    };
    broker.metrics.count_response_errors(ctx.api_key, &response);
    if let ResponseKind::Fetch(fetch) = &response {
        return match encode_fetch_response_chunks(ctx.correlation_id, ctx.api_version, fetch) {
            Ok(chunks) => Reply::Chunks(
                chunks
                    .into_iter()
                    .map(|bytes| match file_regions.region_of(&bytes) {
                        Some(region) => OutChunk::File { region, bytes },
                        None => OutChunk::Bytes(bytes),
                    })
                    .collect(),
            ),
            Err(e) => {
                tracing::error!(version = ctx.api_version, error = %e, "cannot encode fetch response");
                Reply::Close
            }
        };
    }
    match encode_response(ctx.correlation_id, ctx.api_key, ctx.api_version, &response) {
        Ok(frame) => Reply::Frame(frame),
        Err(e) => {
            tracing::error!(api = ?ctx.api_key, version = ctx.api_version, error = %e, "cannot encode response");
            Reply::Close
        }
    }
}

/// A partition a request names, once the topic check passed: TOPIC_AUTHORIZATION_FAILED
/// when it did not, UNKNOWN_TOPIC_OR_PARTITION when this broker has no such replica.
pub(crate) fn authorized_partition(
    broker: &Broker,
    allowed: bool,
    topic: &str,
    partition: i32,
) -> Result<Arc<crate::partition::Partition>, crate::errors::ErrorCode> {
    if !allowed {
        return Err(crate::errors::ErrorCode::TopicAuthorizationFailed);
    }
    broker
        .replicas
        .get(topic, partition)
        .ok_or(crate::errors::ErrorCode::UnknownTopicOrPartition)
}

/// Kafka strings in responses.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
