//! Where ACL and SCRAM credential changes go. A broker alone writes them to its own files
//! (the authorizer's and the credential store's). In a cluster they are metadata records
//! (`metadata::security`): committed through the quorum, applied on every node, and
//! mirrored into each node's authorizer and credential store when its image changes — so
//! every broker authenticates and authorizes alike, whichever one took the change.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::acl::{AclBinding, AclBindingFilter};
use super::credentials::{CredentialChange, ScramUsers};
use crate::metadata::{ApplyError, MetadataError, MetadataImage, MetadataRecord};
use crate::server::Broker;

/// CreateAcls' change: `acls` are validated.
pub fn create_acls(broker: &Broker, acls: &[AclBinding]) -> Result<(), String> {
    if broker.metadata.is_cluster() {
        return commit(
            broker,
            MetadataRecord::CreateAcls {
                acls: acls.to_vec(),
            },
        );
    }
    broker.authorizer.create(acls).map_err(|e| e.to_string())
}

/// DeleteAcls' change: per filter, the ACLs it removed. In a cluster the filters are matched
/// against this broker's mirror of the image and exactly those ACLs are removed everywhere.
pub fn delete_acls(
    broker: &Broker,
    filters: &[AclBindingFilter],
) -> Result<Vec<Vec<AclBinding>>, String> {
    if !broker.metadata.is_cluster() {
        return broker.authorizer.delete(filters).map_err(|e| e.to_string());
    }
    let current = broker.authorizer.all();
    let matched: Vec<Vec<AclBinding>> = filters
        .iter()
        .map(|f| current.iter().filter(|a| f.matches(a)).cloned().collect())
        .collect();
    let doomed: BTreeSet<AclBinding> = matched.iter().flatten().cloned().collect();
    if !doomed.is_empty() {
        commit(
            broker,
            MetadataRecord::DeleteAcls {
                acls: doomed.into_iter().collect(),
            },
        )?;
    }
    Ok(matched)
}

/// AlterUserScramCredentials' change: `changes` are validated.
pub fn alter_credentials(broker: &Broker, changes: &[CredentialChange]) -> Result<(), String> {
    if changes.is_empty() {
        return Ok(());
    }
    if broker.metadata.is_cluster() {
        return commit(
            broker,
            MetadataRecord::AlterScramCredentials {
                changes: changes.to_vec(),
            },
        );
    }
    broker.credentials.apply(changes).map_err(|e| e.to_string())
}

fn commit(broker: &Broker, record: MetadataRecord) -> Result<(), String> {
    broker.metadata.commit(vec![record]).map_err(|e| {
        tracing::error!(error = %e, "cannot commit an ACL or credential change");
        e.to_string()
    })
}

/// This broker's own ACLs and SCRAM credentials, as its files held them at start (before
/// the quorum's replay mirrored the cluster's over them).
pub struct LocalSecurity {
    acls: BTreeSet<AclBinding>,
    scram: ScramUsers,
}

impl LocalSecurity {
    pub fn of(broker: &Broker) -> Self {
        LocalSecurity {
            acls: broker.authorizer.all(),
            scram: broker.credentials.all(),
        }
    }
}

/// On joining a cluster nobody has seeded yet: this broker's ACLs and credentials become
/// the cluster's (another broker may have been first; then its own stand). When the
/// cluster had been seeded, says what of this broker's files the cluster's replaced (e.g.
/// `strata add-scram` run on one node of a formed cluster). Called once caught up.
pub async fn seed_cluster(broker: &Broker, local: LocalSecurity) -> Result<(), MetadataError> {
    let image = broker.metadata.image();
    if image.security.seeded {
        let users: Vec<&String> = local
            .scram
            .keys()
            .filter(|u| !image.security.scram.contains_key(*u))
            .collect();
        let acls = local.acls.difference(&image.security.acls).count();
        if !users.is_empty() || acls > 0 {
            tracing::warn!(
                ?users,
                acls,
                "this broker's files held SCRAM users or ACLs the cluster does not; the \
                 cluster's replaced them (add them again through the Kafka admin API)"
            );
        }
        return Ok(());
    }
    let record = MetadataRecord::SeedSecurity {
        acls: local.acls.into_iter().collect(),
        scram: local.scram,
    };
    match broker.metadata.commit_async(vec![record]).await {
        Ok(()) => {
            tracing::info!("seeded the cluster's ACLs and SCRAM credentials from this broker's");
            Ok(())
        }
        Err(MetadataError::Refused(ApplyError::SecuritySeeded)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Mirrors a cluster image's ACLs and credentials into this broker's authorizer and
/// credential store (and so into their files, which hold the latest state across a restart
/// until the quorum replays). Before the cluster is seeded, the broker keeps its own.
pub fn publish(broker: &Broker, before: &MetadataImage, after: &MetadataImage) {
    let (old, new) = (&before.security, &after.security);
    if !new.seeded {
        return;
    }
    let first = !old.seeded;
    if first || !Arc::ptr_eq(&old.acls, &new.acls) {
        if let Err(e) = broker.authorizer.replace_all((*new.acls).clone()) {
            tracing::error!(error = %e, "cannot store the cluster's ACLs on this broker");
        }
    }
    if first || !Arc::ptr_eq(&old.scram, &new.scram) {
        if let Err(e) = broker.credentials.replace_all((*new.scram).clone()) {
            tracing::error!(error = %e, "cannot store the cluster's SCRAM credentials on this broker");
        }
    }
}
