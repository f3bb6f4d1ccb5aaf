//! Authorization in front of the group coordinator, as Kafka's KafkaApis does it: READ on
//! the group to join, sync, heartbeat, leave, commit and delete offsets; DESCRIBE to fetch
//! offsets and describe; DELETE to delete; READ on each topic whose offsets are committed,
//! DESCRIBE on each topic whose offsets are fetched. ListGroups shows every group with
//! DESCRIBE on the cluster, else only the groups the principal may DESCRIBE.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
};
use strata_protocol::kafka_protocol;

use super::RequestContext;
use crate::errors::ErrorCode;
use crate::security::acl::AclOperation;
use crate::server::Broker;

const GROUP_DENIED: i16 = 30;
const TOPIC_DENIED: i16 = 29;

fn read_group(broker: &Broker, ctx: &RequestContext, group: &str) -> bool {
    ctx.allowed_group(broker, AclOperation::Read, group)
}

pub async fn join_group(
    broker: &Broker,
    ctx: &RequestContext,
    r: JoinGroupRequest,
) -> JoinGroupResponse {
    if !read_group(broker, ctx, r.group_id.as_str()) {
        return JoinGroupResponse::default()
            .with_error_code(ErrorCode::GroupAuthorizationFailed.code())
            .with_generation_id(-1);
    }
    let client_id = ctx.client_id.as_deref().unwrap_or_default();
    // Kafka reports the client host as InetAddress.toString(): "/127.0.0.1".
    let client_host = format!("/{}", ctx.peer.ip());
    broker
        .groups
        .join_group(r, ctx.api_version, client_id, &client_host)
        .await
}

pub async fn sync_group(
    broker: &Broker,
    ctx: &RequestContext,
    r: SyncGroupRequest,
) -> SyncGroupResponse {
    if !read_group(broker, ctx, r.group_id.as_str()) {
        return SyncGroupResponse::default().with_error_code(GROUP_DENIED);
    }
    broker.groups.sync_group(r, ctx.api_version).await
}

pub async fn heartbeat(
    broker: &Broker,
    ctx: &RequestContext,
    r: HeartbeatRequest,
) -> HeartbeatResponse {
    if !read_group(broker, ctx, r.group_id.as_str()) {
        return HeartbeatResponse::default().with_error_code(GROUP_DENIED);
    }
    broker.groups.heartbeat(r, ctx.api_version).await
}

pub async fn leave_group(
    broker: &Broker,
    ctx: &RequestContext,
    r: LeaveGroupRequest,
) -> LeaveGroupResponse {
    if !read_group(broker, ctx, r.group_id.as_str()) {
        return LeaveGroupResponse::default().with_error_code(GROUP_DENIED);
    }
    broker.groups.leave_group(r, ctx.api_version).await
}

pub async fn offset_delete(
    broker: &Broker,
    ctx: &RequestContext,
    r: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    if !ctx.allowed_group(broker, AclOperation::Delete, r.group_id.as_str()) {
        return OffsetDeleteResponse::default().with_error_code(GROUP_DENIED);
    }
    broker.groups.offset_delete(r, ctx.api_version).await
}

pub async fn offset_commit(
    broker: &Broker,
    ctx: &RequestContext,
    mut r: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let denied_topic =
        |t: &kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic,
         code: i16| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        };
    if !read_group(broker, ctx, r.group_id.as_str()) {
        let topics = r
            .topics
            .iter()
            .map(|t| denied_topic(t, GROUP_DENIED))
            .collect();
        return OffsetCommitResponse::default().with_topics(topics);
    }
    // Topics the principal may not READ are answered here and never reach the coordinator.
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.topics)
        .into_iter()
        .partition(|t| ctx.allowed_topic(broker, AclOperation::Read, t.name.as_str()));
    let denied: Vec<OffsetCommitResponseTopic> = denied
        .iter()
        .map(|t| denied_topic(t, TOPIC_DENIED))
        .collect();
    r.topics = allowed;
    let mut response = if r.topics.is_empty() && !denied.is_empty() {
        OffsetCommitResponse::default()
    } else {
        broker.groups.offset_commit(r, ctx.api_version).await
    };
    response.topics.extend(denied);
    response
}

pub async fn offset_fetch(
    broker: &Broker,
    ctx: &RequestContext,
    mut r: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = ctx.api_version;
    if version < 8 {
        if !ctx.allowed_group(broker, AclOperation::Describe, r.group_id.as_str()) {
            // v2+ carries a top-level error; v0-1 only per partition, so answer no topics.
            let response = OffsetFetchResponse::default();
            return if version >= 2 {
                response.with_error_code(GROUP_DENIED)
            } else {
                response
            };
        }
        let all_topics = r.topics.is_none();
        let mut response = broker.groups.offset_fetch(r, version).await;
        if all_topics {
            response
                .topics
                .retain(|t| ctx.allowed_topic(broker, AclOperation::Describe, t.name.as_str()));
        } else {
            for t in &mut response.topics {
                if !ctx.allowed_topic(broker, AclOperation::Describe, t.name.as_str()) {
                    for p in &mut t.partitions {
                        p.error_code = TOPIC_DENIED;
                        p.committed_offset = -1;
                        p.metadata = None;
                    }
                }
            }
        }
        return response;
    }
    // v8+: several groups per request; denied groups are answered here.
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.groups)
        .into_iter()
        .partition(|g| ctx.allowed_group(broker, AclOperation::Describe, g.group_id.as_str()));
    let all_topics: Vec<bool> = allowed.iter().map(|g| g.topics.is_none()).collect();
    r.groups = allowed;
    let mut response = if r.groups.is_empty() {
        OffsetFetchResponse::default()
    } else {
        broker.groups.offset_fetch(r, version).await
    };
    for (group, all) in response.groups.iter_mut().zip(all_topics) {
        if all {
            group
                .topics
                .retain(|t| ctx.allowed_topic(broker, AclOperation::Describe, t.name.as_str()));
        } else {
            for t in &mut group.topics {
                if !ctx.allowed_topic(broker, AclOperation::Describe, t.name.as_str()) {
                    for p in &mut t.partitions {
                        p.error_code = TOPIC_DENIED;
                        p.committed_offset = -1;
                        p.metadata = None;
                    }
                }
            }
        }
    }
    response.groups.extend(denied.into_iter().map(|g| {
        OffsetFetchResponseGroup::default()
            .with_group_id(g.group_id)
            .with_error_code(GROUP_DENIED)
    }));
    response
}

pub async fn describe_groups(
    broker: &Broker,
    ctx: &RequestContext,
    mut r: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.groups)
        .into_iter()
        .partition(|g| ctx.allowed_group(broker, AclOperation::Describe, g.as_str()));
    r.groups = allowed;
    let with_operations = r.include_authorized_operations;
    let mut response = if r.groups.is_empty() {
        DescribeGroupsResponse::default()
    } else {
        broker.groups.describe_groups(r, ctx.api_version).await
    };
    if with_operations {
        for g in &mut response.groups {
            g.authorized_operations = ctx.group_operations(broker, g.group_id.as_str());
        }
    }
    response.groups.extend(denied.into_iter().map(|g| {
        DescribedGroup::default()
            .with_group_id(g)
            .with_error_code(GROUP_DENIED)
            .with_authorized_operations(i32::MIN)
    }));
    response
}

pub async fn delete_groups(
    broker: &Broker,
    ctx: &RequestContext,
    mut r: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.groups_names)
        .into_iter()
        .partition(|g| ctx.allowed_group(broker, AclOperation::Delete, g.as_str()));
    r.groups_names = allowed;
    let mut response = if r.groups_names.is_empty() {
        DeleteGroupsResponse::default()
    } else {
        broker.groups.delete_groups(r, ctx.api_version).await
    };
    response.results.extend(denied.into_iter().map(|g| {
        DeletableGroupResult::default()
            .with_group_id(g)
            .with_error_code(GROUP_DENIED)
    }));
    response
}

pub async fn list_groups(
    broker: &Broker,
    ctx: &RequestContext,
    r: ListGroupsRequest,
) -> ListGroupsResponse {
    let mut response = broker.groups.list_groups(r, ctx.api_version).await;
    if !ctx.allowed_cluster(broker, AclOperation::Describe) {
        response
            .groups
            .retain(|g| ctx.allowed_group(broker, AclOperation::Describe, g.group_id.as_str()));
    }
    response
}
