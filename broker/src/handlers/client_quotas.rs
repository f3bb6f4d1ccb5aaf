//! DescribeClientQuotas and AlterClientQuotas (KIP-546): what `kafka-configs --entity-type
//! users|clients --describe|--alter` send. Quotas live in the metadata image (persisted with
//! it); `crate::quota` enforces them. DESCRIBE_CONFIGS / ALTER_CONFIGS on the cluster, as in
//! Kafka.

use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlteredEntity, EntryData as AlteredEntry,
};
use kafka_protocol::messages::describe_client_quotas_response::{
    EntityData as DescribedEntity, EntryData as DescribedEntry, ValueData,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use strata_protocol::kafka_protocol;

use super::{str_bytes, RequestContext};
use crate::errors::ErrorCode;
use crate::metadata::MetadataRecord;
use crate::quota::{EntityName, QuotaEntity, ENFORCED_KEYS};
use crate::security::acl::AclOperation;
use crate::server::Broker;

const USER: &str = "user";
const CLIENT_ID: &str = "client-id";
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

fn name_of(name: &Option<EntityName>) -> Option<StrBytes> {
    match name {
        Some(EntityName::Name(n)) => Some(str_bytes(n.clone())),
        _ => None,
    }
}

pub fn describe_client_quotas(
    broker: &Broker,
    ctx: &RequestContext,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let failed = |code: ErrorCode, message: &str| {
        DescribeClientQuotasResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message.to_string())))
            .with_entries(None)
    };
    if !ctx.allowed_cluster(broker, AclOperation::DescribeConfigs) {
        return failed(
            ErrorCode::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        );
    }
    // Each entity type at most once; only user and client-id quotas exist here.
    let mut user_filter = None;
    let mut client_filter = None;
    for c in &request.components {
        let slot = match c.entity_type.as_str() {
            USER => &mut user_filter,
            CLIENT_ID => &mut client_filter,
            other => {
                return failed(
                    ErrorCode::InvalidRequest,
                    &format!("unsupported quota entity type '{other}'"),
                )
            }
        };
        if slot.is_some() {
            return failed(
                ErrorCode::InvalidRequest,
                "duplicate entity type in the filter",
            );
        }
        let wanted = match (c.match_type, &c._match) {
            (MATCH_EXACT, Some(name)) => Some(EntityName::Name(name.to_string())),
            (MATCH_DEFAULT, _) => Some(EntityName::Default),
            (MATCH_ANY, _) => None,
            _ => return failed(ErrorCode::InvalidRequest, "invalid match type"),
        };
        *slot = Some(wanted);
    }
    let matches = |part: &Option<EntityName>, filter: &Option<Option<EntityName>>| match filter {
        // Not filtered: anything, unless strict (then the entity must not have this part).
        None => !request.strict || part.is_none(),
        Some(None) => part.is_some(),
        Some(Some(wanted)) => part.as_ref() == Some(wanted),
    };
    let image = broker.metadata.image();
    let entries = image
        .client_quotas
        .iter()
        .filter(|(e, _)| matches(&e.user, &user_filter) && matches(&e.client_id, &client_filter))
        .map(|(e, values)| {
            let mut entity = Vec::new();
            if e.user.is_some() {
                entity.push(
                    DescribedEntity::default()
                        .with_entity_type(str_bytes(USER))
                        .with_entity_name(name_of(&e.user)),
                );
            }
            if e.client_id.is_some() {
                entity.push(
                    DescribedEntity::default()
                        .with_entity_type(str_bytes(CLIENT_ID))
                        .with_entity_name(name_of(&e.client_id)),
                );
            }
            DescribedEntry::default().with_entity(entity).with_values(
                values
                    .iter()
                    .map(|(k, v)| {
                        ValueData::default()
                            .with_key(str_bytes(k.clone()))
                            .with_value(*v)
                    })
                    .collect(),
            )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

/// One entry's entity, checked: user and/or client-id, each at most once.
fn entity_of(
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<QuotaEntity, String> {
    let mut entity = QuotaEntity {
        user: None,
        client_id: None,
    };
    for part in &entry.entity {
        let name = match &part.entity_name {
            Some(n) => EntityName::Name(n.to_string()),
            None => EntityName::Default,
        };
        let slot = match part.entity_type.as_str() {
            USER => &mut entity.user,
            CLIENT_ID => &mut entity.client_id,
            other => return Err(format!("unsupported quota entity type '{other}'")),
        };
        if slot.replace(name).is_some() {
            return Err("duplicate entity type".into());
        }
    }
    if entity.user.is_none() && entity.client_id.is_none() {
        return Err("an entity needs a user or a client-id".into());
    }
    Ok(entity)
}

/// One entry's operations, checked: enforced keys, positive finite values.
fn ops_of(
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<Vec<(String, Option<f64>)>, String> {
    entry
        .ops
        .iter()
        .map(|op| {
            let key = op.key.as_str();
            if !ENFORCED_KEYS.contains(&key) {
                return Err(format!(
                    "quota key '{key}' is not supported (only {})",
                    ENFORCED_KEYS.join(", ")
                ));
            }
            if op.remove {
                return Ok((key.to_string(), None));
            }
            if !op.value.is_finite() || op.value <= 0.0 {
                return Err(format!("quota '{key}' must be a positive number"));
            }
            Ok((key.to_string(), Some(op.value)))
        })
        .collect()
}

pub fn alter_client_quotas(
    broker: &Broker,
    ctx: &RequestContext,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let allowed = ctx.allowed_cluster(broker, AclOperation::AlterConfigs);
    let mut checked = Vec::with_capacity(request.entries.len());
    let results: Vec<Result<(), (ErrorCode, String)>> = request
        .entries
        .iter()
        .map(|entry| {
            if !allowed {
                return Err((
                    ErrorCode::ClusterAuthorizationFailed,
                    "Cluster authorization failed.".into(),
                ));
            }
            let entity = entity_of(entry).map_err(|m| (ErrorCode::InvalidRequest, m))?;
            let ops = ops_of(entry).map_err(|m| (ErrorCode::InvalidRequest, m))?;
            checked.push((entity, ops));
            Ok(())
        })
        .collect();
    let applied = if request.validate_only || checked.is_empty() {
        Ok(())
    } else {
        let _admin = broker.metadata.admin_guard();
        broker
            .metadata
            .commit(vec![MetadataRecord::AlterClientQuotas {
                changes: checked.clone(),
            }])
            .map_err(|e| {
                tracing::error!(error = %e, "cannot persist client quotas");
                (ErrorCode::KafkaStorageError, e.to_string())
            })
    };
    let entries = request
        .entries
        .iter()
        .zip(results)
        .map(|(entry, result)| {
            let result = result.and_then(|()| applied.clone());
            let entity = entry
                .entity
                .iter()
                .map(|e| {
                    AlteredEntity::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect();
            let out = AlteredEntry::default().with_entity(entity);
            match result {
                Ok(()) => out,
                Err((code, message)) => out
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
