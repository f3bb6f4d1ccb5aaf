//! ACLs and SCRAM credentials as cluster metadata. In a cluster they are part of the
//! image, changed by records every node applies in the quorum's order, so a user created or
//! an ACL granted through any broker holds on all of them (Kafka keeps both in its metadata
//! log too). Each broker's authorizer and credential store mirror the image
//! (`security::replicated`). A broker alone keeps them in its own files instead.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::security::acl::AclBinding;
use crate::security::credentials::{apply_changes, CredentialChange, ScramUsers};

/// The cluster's ACLs and SCRAM credentials. Shared (`Arc`) so that copying the image for
/// every other change does not copy them.
#[derive(Debug, Clone, Default)]
pub struct ClusterSecurity {
    /// False until a node seeded the cluster from its own files (see
    /// [`super::MetadataRecord::SeedSecurity`]) or an ACL or credential was changed; until
    /// then each broker keeps what its files hold.
    pub seeded: bool,
    pub acls: Arc<BTreeSet<AclBinding>>,
    pub scram: Arc<ScramUsers>,
}

/// How [`ClusterSecurity`] is written in snapshots.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct SecuritySnapshot {
    seeded: bool,
    acls: Vec<AclBinding>,
    scram: ScramUsers,
}

impl ClusterSecurity {
    pub(crate) fn snapshot(&self) -> SecuritySnapshot {
        SecuritySnapshot {
            seeded: self.seeded,
            acls: self.acls.iter().cloned().collect(),
            scram: (*self.scram).clone(),
        }
    }

    pub(crate) fn from_snapshot(s: SecuritySnapshot) -> Self {
        ClusterSecurity {
            seeded: s.seeded,
            acls: Arc::new(s.acls.into_iter().collect()),
            scram: Arc::new(s.scram),
        }
    }

    /// Whether `seed` may apply: only to a cluster no one seeded or changed yet.
    pub(crate) fn seed(&mut self, acls: &[AclBinding], scram: &ScramUsers) -> bool {
        if self.seeded {
            return false;
        }
        self.seeded = true;
        self.acls = Arc::new(acls.iter().cloned().collect());
        self.scram = Arc::new(scram.clone());
        true
    }

    pub(crate) fn create_acls(&mut self, acls: &[AclBinding]) {
        self.seeded = true;
        let mut next = (*self.acls).clone();
        next.extend(acls.iter().cloned());
        self.acls = Arc::new(next);
    }

    pub(crate) fn delete_acls(&mut self, acls: &[AclBinding]) {
        self.seeded = true;
        let mut next = (*self.acls).clone();
        for acl in acls {
            let _ = next.remove(acl);
        }
        self.acls = Arc::new(next);
    }

    pub(crate) fn alter_scram(&mut self, changes: &[CredentialChange]) {
        self.seeded = true;
        let mut next = (*self.scram).clone();
        apply_changes(&mut next, changes);
        self.scram = Arc::new(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{ApplyError, MetadataImage, MetadataRecord};
    use crate::security::scram::{ScramCredential, ScramMechanism};

    fn acl(topic: &str, user: &str) -> AclBinding {
        AclBinding::from_wire(2, topic, 3, &format!("User:{user}"), "*", 4, 3).unwrap()
    }

    fn users(names: &[&str]) -> ScramUsers {
        names
            .iter()
            .map(|n| {
                let m = ScramMechanism::Sha512;
                let c = ScramCredential::from_password(m, "pw", 4096);
                ((*n).to_owned(), [(m, c)].into_iter().collect())
            })
            .collect()
    }

    #[test]
    fn the_first_seed_stands_and_later_ones_are_refused() {
        let mut image = MetadataImage::default();
        let seed = |acls: Vec<AclBinding>, names: &[&str]| MetadataRecord::SeedSecurity {
            acls,
            scram: users(names),
        };
        image
            .apply(&seed(vec![acl("a", "alice")], &["alice"]))
            .unwrap();
        assert_eq!(
            image.apply(&seed(vec![acl("b", "bob")], &["bob"])),
            Err(ApplyError::SecuritySeeded)
        );
        assert_eq!(image.security.acls.len(), 1);
        assert!(image.security.scram.contains_key("alice"));
        assert!(!image.security.scram.contains_key("bob"));
    }

    #[test]
    fn changes_apply_in_order_and_a_change_counts_as_seeding() {
        let mut image = MetadataImage::default();
        image
            .apply(&MetadataRecord::CreateAcls {
                acls: vec![acl("a", "alice"), acl("b", "bob"), acl("a", "alice")],
            })
            .unwrap();
        assert!(
            image.security.seeded,
            "a node's later seed must not undo this"
        );
        assert_eq!(image.security.acls.len(), 2);
        image
            .apply(&MetadataRecord::DeleteAcls {
                acls: vec![acl("a", "alice"), acl("never", "made")],
            })
            .unwrap();
        assert_eq!(
            image.security.acls.iter().collect::<Vec<_>>(),
            vec![&acl("b", "bob")]
        );
        let m = ScramMechanism::Sha256;
        let upsert = CredentialChange::Upsert {
            user: "carol".into(),
            mechanism: m,
            credential: ScramCredential::from_password(m, "pw", 4096),
        };
        let delete = CredentialChange::Delete {
            user: "carol".into(),
            mechanism: m,
        };
        image
            .apply(&MetadataRecord::AlterScramCredentials {
                changes: vec![upsert.clone()],
            })
            .unwrap();
        assert!(image.security.scram.contains_key("carol"));
        image
            .apply(&MetadataRecord::AlterScramCredentials {
                changes: vec![delete, upsert],
            })
            .unwrap();
        assert!(image.security.scram.contains_key("carol"), "in order");
    }

    #[test]
    fn snapshots_carry_the_security_state() {
        let mut security = ClusterSecurity::default();
        assert!(security.seed(&[acl("a", "alice")], &users(&["alice"])));
        let json = serde_json::to_string(&security.snapshot()).unwrap();
        assert!(!json.contains("\"pw\""), "no passwords: {json}");
        let back = ClusterSecurity::from_snapshot(serde_json::from_str(&json).unwrap());
        assert!(back.seeded);
        assert_eq!(back.acls, security.acls);
        assert_eq!(back.scram, security.scram);
        // Snapshots from before security was replicated read as unseeded.
        let old: SecuritySnapshot = serde_json::from_str("{}").unwrap();
        assert!(!ClusterSecurity::from_snapshot(old).seeded);
    }
}
