//! CreateAcls, DescribeAcls and DeleteAcls (v1-3), and the authorization helpers every
//! handler calls (`RequestContext::allowed` and friends). The ACL APIs themselves need
//! ALTER (create, delete) or DESCRIBE (describe) on the cluster, as in Kafka.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use strata_protocol::kafka_protocol;

use super::{str_bytes, RequestContext};
use crate::errors::ErrorCode;
use crate::security::acl::{
    AclBinding, AclBindingFilter, AclOperation, ResourceType, CLUSTER_NAME,
};
use crate::security::authorizer::Decision;
use crate::server::Broker;

impl RequestContext {
    /// Whether this request's principal may perform `operation` on the resource. Free when
    /// no authorizer is configured (no lock, no allocation).
    pub fn allowed(
        &self,
        broker: &Broker,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let authorizer = &broker.authorizer;
        if !authorizer.is_enabled() {
            return true;
        }
        let decision = authorizer.authorize(
            &self.principal,
            self.peer.ip(),
            operation,
            resource_type,
            name,
        );
        if decision == Decision::Denied {
            tracing::debug!(
                principal = %self.principal,
                host = %self.peer.ip(),
                operation = operation.name(),
                resource_type = resource_type.name(),
                resource = name,
                api = ?self.api_key,
                "authorization denied"
            );
        }
        decision == Decision::Allowed
    }

    /// Kafka's authorized-operations bit field for one resource (bit `code` set for each of
    /// `operations` the principal may perform), which Metadata, DescribeCluster,
    /// DescribeGroups and DescribeTopicPartitions report when the client asks.
    fn authorized_operations(
        &self,
        broker: &Broker,
        resource_type: ResourceType,
        name: &str,
        operations: &[AclOperation],
    ) -> i32 {
        operations
            .iter()
            .filter(|op| self.allowed(broker, **op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }

    pub fn topic_operations(&self, broker: &Broker, topic: &str) -> i32 {
        self.authorized_operations(broker, ResourceType::Topic, topic, &TOPIC_OPERATIONS)
    }

    pub fn group_operations(&self, broker: &Broker, group: &str) -> i32 {
        self.authorized_operations(broker, ResourceType::Group, group, &GROUP_OPERATIONS)
    }

    pub fn cluster_operations(&self, broker: &Broker) -> i32 {
        self.authorized_operations(
            broker,
            ResourceType::Cluster,
            CLUSTER_NAME,
            &CLUSTER_OPERATIONS,
        )
    }

    /// Whether the principal may perform `operation` on at least one resource of the type.
    pub fn allowed_any(
        &self,
        broker: &Broker,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        let authorizer = &broker.authorizer;
        !authorizer.is_enabled()
            || authorizer.authorize_any(&self.principal, self.peer.ip(), operation, resource_type)
                == Decision::Allowed
    }

    pub fn allowed_topic(&self, broker: &Broker, operation: AclOperation, topic: &str) -> bool {
        self.allowed(broker, operation, ResourceType::Topic, topic)
    }

    pub fn allowed_group(&self, broker: &Broker, operation: AclOperation, group: &str) -> bool {
        self.allowed(broker, operation, ResourceType::Group, group)
    }

    pub fn allowed_cluster(&self, broker: &Broker, operation: AclOperation) -> bool {
        self.allowed(broker, operation, ResourceType::Cluster, CLUSTER_NAME)
    }
}

/// The operations Kafka reports for each resource type (`AclEntry.supportedOperations`).
const TOPIC_OPERATIONS: [AclOperation; 8] = [
    AclOperation::Read,
    AclOperation::Write,
    AclOperation::Create,
    AclOperation::Describe,
    AclOperation::Delete,
    AclOperation::Alter,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
];
const GROUP_OPERATIONS: [AclOperation; 3] = [
    AclOperation::Read,
    AclOperation::Describe,
    AclOperation::Delete,
];
const CLUSTER_OPERATIONS: [AclOperation; 7] = [
    AclOperation::Create,
    AclOperation::ClusterAction,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
    AclOperation::IdempotentWrite,
    AclOperation::Alter,
    AclOperation::Describe,
];

const CLUSTER_DENIED: &str = "Cluster authorization failed.";
/// Without `authorizer.class.name` the ACL APIs answer SECURITY_DISABLED, as Kafka's broker
/// does: ACLs that nothing would enforce are not stored.
const NO_AUTHORIZER: &str = "No Authorizer is configured.";

/// Why an ACL request is refused as a whole, if it is: no authorizer (Kafka checks that
/// first), or `operation` on the cluster not allowed.
fn refused_outright(
    broker: &Broker,
    ctx: &RequestContext,
    operation: AclOperation,
) -> Option<(ErrorCode, &'static str)> {
    if !broker.authorizer.is_enabled() {
        return Some((ErrorCode::SecurityDisabled, NO_AUTHORIZER));
    }
    if !ctx.allowed_cluster(broker, operation) {
        return Some((ErrorCode::ClusterAuthorizationFailed, CLUSTER_DENIED));
    }
    None
}

pub fn create_acls(
    broker: &Broker,
    ctx: &RequestContext,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let result = |code: Option<ErrorCode>, message: Option<String>| {
        AclCreationResult::default()
            .with_error_code(code.map_or(0, |c| c.code()))
            .with_error_message(message.map(str_bytes))
    };
    if let Some((code, message)) = refused_outright(broker, ctx, AclOperation::Alter) {
        let refused = request
            .creations
            .iter()
            .map(|_| result(Some(code), Some(message.into())))
            .collect();
        return CreateAclsResponse::default().with_results(refused);
    }
    let parsed: Vec<Result<AclBinding, String>> = request
        .creations
        .iter()
        .map(|c| {
            AclBinding::from_wire(
                c.resource_type,
                c.resource_name.as_str(),
                c.resource_pattern_type,
                c.principal.as_str(),
                c.host.as_str(),
                c.operation,
                c.permission_type,
            )
            .map_err(|e| e.to_string())
        })
        .collect();
    let valid: Vec<AclBinding> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let stored = if valid.is_empty() {
        Ok(())
    } else {
        crate::security::replicated::create_acls(broker, &valid)
    };
    let results = parsed
        .into_iter()
        .map(|p| match (p, &stored) {
            (Err(reason), _) => result(Some(ErrorCode::InvalidRequest), Some(reason)),
            (Ok(_), Err(reason)) => {
                result(Some(ErrorCode::UnknownServerError), Some(reason.clone()))
            }
            (Ok(acl), Ok(())) => {
                tracing::info!(principal = %ctx.principal, ?acl, "ACL created");
                result(None, None)
            }
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub fn describe_acls(
    broker: &Broker,
    ctx: &RequestContext,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    if let Some((code, message)) = refused_outright(broker, ctx, AclOperation::Describe) {
        // Kafka words this one's SECURITY_DISABLED message apart.
        let message = if code == ErrorCode::SecurityDisabled {
            "No Authorizer is configured on the broker"
        } else {
            message
        };
        return DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)));
    }
    let filter = match AclBindingFilter::from_wire(
        request.resource_type_filter,
        request.resource_name_filter.as_deref(),
        request.pattern_type_filter,
        request.principal_filter.as_deref(),
        request.host_filter.as_deref(),
        request.operation,
        request.permission_type,
    ) {
        Ok(filter) => filter,
        Err(e) => {
            return DescribeAclsResponse::default()
                .with_error_code(ErrorCode::InvalidRequest.code())
                .with_error_message(Some(str_bytes(e.to_string())))
        }
    };
    // ACLs come sorted by pattern, so one resource's entries are adjacent.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for acl in broker.authorizer.describe(&filter) {
        let description = AclDescription::default()
            .with_principal(str_bytes(acl.entry.principal))
            .with_host(str_bytes(acl.entry.host))
            .with_operation(acl.entry.operation.code())
            .with_permission_type(acl.entry.permission.code());
        let p = &acl.pattern;
        match resources.last_mut() {
            Some(last)
                if last.resource_type == p.resource_type.code()
                    && last.pattern_type == p.pattern_type.code()
                    && last.resource_name.as_str() == p.name =>
            {
                last.acls.push(description)
            }
            _ => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(p.resource_type.code())
                    .with_resource_name(str_bytes(p.name.clone()))
                    .with_pattern_type(p.pattern_type.code())
                    .with_acls(vec![description]),
            ),
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

pub fn delete_acls(
    broker: &Broker,
    ctx: &RequestContext,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let failed = |code: ErrorCode, message: String| {
        DeleteAclsFilterResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if let Some((code, message)) = refused_outright(broker, ctx, AclOperation::Alter) {
        let refused = request
            .filters
            .iter()
            .map(|_| failed(code, message.into()))
            .collect();
        return DeleteAclsResponse::default().with_filter_results(refused);
    }
    let parsed: Vec<Result<AclBindingFilter, String>> = request
        .filters
        .iter()
        .map(|f| {
            AclBindingFilter::from_wire(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
            .map_err(|e| e.to_string())
        })
        .collect();
    let valid: Vec<AclBindingFilter> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let removed = if valid.is_empty() {
        Ok(Vec::new())
    } else {
        crate::security::replicated::delete_acls(broker, &valid)
    };
    let mut removed_iter = match &removed {
        Ok(lists) => lists.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let results = parsed
        .into_iter()
        .map(|p| match (p, &removed) {
            (Err(reason), _) => failed(ErrorCode::InvalidRequest, reason),
            (Ok(_), Err(reason)) => failed(ErrorCode::UnknownServerError, reason.clone()),
            (Ok(_), Ok(_)) => {
                let acls = removed_iter.next().unwrap_or_default();
                for acl in &acls {
                    tracing::info!(principal = %ctx.principal, ?acl, "ACL deleted");
                }
                DeleteAclsFilterResult::default().with_matching_acls(
                    acls.into_iter()
                        .map(|acl| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(acl.pattern.resource_type.code())
                                .with_resource_name(str_bytes(acl.pattern.name))
                                .with_pattern_type(acl.pattern.pattern_type.code())
                                .with_principal(str_bytes(acl.entry.principal))
                                .with_host(str_bytes(acl.entry.host))
                                .with_operation(acl.entry.operation.code())
                                .with_permission_type(acl.entry.permission.code())
                        })
                        .collect(),
                )
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
