//! The ACL authorizer, with the semantics of Kafka's StandardAuthorizer: super users bypass
//! ACLs, a matching DENY beats any ALLOW, a resource without ACLs is open only when
//! `allow.everyone.if.no.acl.found=true`. ACLs live in an RwLock'd index (literal names and
//! prefixes per resource type) and are persisted atomically in the first log dir.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};
use strata_config::BrokerConfig;

use super::acl::{
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, PatternType, ResourceType,
    WILDCARD_HOST, WILDCARD_PRINCIPAL, WILDCARD_RESOURCE,
};
use super::KafkaPrincipal;
use crate::metadata::durable_file::write_atomically;

/// The ACL file's name in the first log dir.
pub const ACLS_FILE: &str = "strata-acls.json";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizerError {
    #[error("cannot read ACLs from {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse ACLs in {path}: expected Strata's JSON, found: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cannot persist ACLs to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("super.users: expected principals like User:alice separated by ';', found {0:?}")]
    SuperUsers(String),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    acls: BTreeSet<AclBinding>,
}

/// An ACL entry as the index keeps it: parsed once so checks compare without allocating.
#[derive(Debug, Clone)]
struct IndexedEntry {
    /// `None` for `User:*`.
    principal: Option<KafkaPrincipal>,
    /// `None` for `*`; a host that is not an IP address never matches (Kafka compares the
    /// client's address as text).
    host: Option<Option<IpAddr>>,
    operation: AclOperation,
    permission: AclPermissionType,
}

#[derive(Debug, Default)]
struct TypeIndex {
    literal: HashMap<String, Vec<IndexedEntry>>,
    prefixed: HashMap<String, Vec<IndexedEntry>>,
}

#[derive(Debug, Default)]
struct AclIndex {
    acls: BTreeSet<AclBinding>,
    by_type: HashMap<ResourceType, TypeIndex>,
}

impl AclIndex {
    fn build(acls: BTreeSet<AclBinding>) -> AclIndex {
        let mut by_type: HashMap<ResourceType, TypeIndex> = HashMap::new();
        for acl in &acls {
            let e = &acl.entry;
            let entry = IndexedEntry {
                principal: (e.principal != WILDCARD_PRINCIPAL)
                    .then(|| KafkaPrincipal::parse(&e.principal))
                    .flatten(),
                host: (e.host != WILDCARD_HOST).then(|| e.host.parse().ok()),
                operation: e.operation,
                permission: e.permission,
            };
            let index = by_type.entry(acl.pattern.resource_type).or_default();
            let names = match acl.pattern.pattern_type {
                PatternType::Prefixed => &mut index.prefixed,
                _ => &mut index.literal,
            };
            names
                .entry(acl.pattern.name.clone())
                .or_default()
                .push(entry);
        }
        AclIndex { acls, by_type }
    }
}

/// What `Authorizer::authorize` decided, for callers that log or count denials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied,
}

#[derive(Debug)]
pub struct Authorizer {
    enabled: bool,
    super_users: Vec<KafkaPrincipal>,
    allow_if_no_acl: bool,
    path: PathBuf,
    index: RwLock<AclIndex>,
    /// Serialises writers so that the file's order matches memory's.
    write: Mutex<()>,
}

/// Whether `authorizer.class.name` turns authorization on: any non-empty class name does
/// (Kafka's StandardAuthorizer and AclAuthorizer names included), so configs carry over.
pub fn authorizer_configured(config: &BrokerConfig) -> bool {
    config
        .get("authorizer.class.name")
        .is_some_and(|c| !c.trim().is_empty())
}

impl Authorizer {
    /// Loads the ACLs at `log_dir/ACLS_FILE` and reads `authorizer.class.name`,
    /// `super.users` and `allow.everyone.if.no.acl.found` from `config`.
    pub fn open(config: &BrokerConfig, log_dir: &Path) -> Result<Authorizer, AuthorizerError> {
        let super_users = parse_super_users(config.get("super.users").unwrap_or_default())?;
        let allow_if_no_acl = config
            .get("allow.everyone.if.no.acl.found")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let mut authorizer = Authorizer::open_store(log_dir.join(ACLS_FILE))?;
        authorizer.enabled = authorizer_configured(config);
        authorizer.super_users = super_users;
        authorizer.allow_if_no_acl = allow_if_no_acl;
        Ok(authorizer)
    }

    /// The store alone, authorization off (tests, tools).
    pub fn open_store(path: PathBuf) -> Result<Authorizer, AuthorizerError> {
        let acls = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<OnDisk>(&bytes)
                    .map_err(|e| AuthorizerError::Parse {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?
                    .acls
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(source) => return Err(AuthorizerError::Read { path, source }),
        };
        Ok(Authorizer {
            enabled: false,
            super_users: Vec::new(),
            allow_if_no_acl: false,
            path,
            index: RwLock::new(AclIndex::build(acls)),
            write: Mutex::new(()),
        })
    }

    /// Whether checks are made at all; without an authorizer everything is allowed.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `principal` connecting from `host` may perform `operation` on the resource.
    pub fn authorize(
        &self,
        principal: &KafkaPrincipal,
        host: IpAddr,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Decision {
        if !self.enabled || self.super_users.iter().any(|s| s == principal) {
            return Decision::Allowed;
        }
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let Some(by_type) = index.by_type.get(&resource_type) else {
            return self.no_acl_found();
        };
        let mut any_acl = false;
        let mut allowed = false;
        let mut check = |entries: &[IndexedEntry]| -> bool {
            for e in entries {
                any_acl = true;
                let principal_ok = e.principal.as_ref().is_none_or(|p| p == principal);
                let host_ok = e.host.is_none_or(|h| h == Some(host));
                if !(principal_ok && host_ok) {
                    continue;
                }
                match e.permission {
                    AclPermissionType::Deny if e.operation.deny_refuses(operation) => return true,
                    AclPermissionType::Allow if e.operation.allow_grants(operation) => {
                        allowed = true
                    }
                    _ => {}
                }
            }
            false
        };
        let literal = [name, WILDCARD_RESOURCE]
            .into_iter()
            .filter_map(|n| by_type.literal.get(n));
        // Every prefix of the name, at character boundaries, may carry a PREFIXED ACL.
        let prefixed = name
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .filter_map(|end| name.get(..end))
            .filter_map(|prefix| by_type.prefixed.get(prefix));
        for entries in literal.chain(prefixed) {
            if check(entries) {
                return Decision::Denied;
            }
        }
        if allowed {
            Decision::Allowed
        } else if !any_acl {
            self.no_acl_found()
        } else {
            Decision::Denied
        }
    }

    /// Whether `principal` may perform `operation` on SOME resource of the type (Kafka's
    /// `authorizeByResourceType`, used by InitProducerId since KIP-679): an ALLOW on any
    /// pattern that no DENY covers (a DENY on the literal `*`, the same literal name, or a
    /// prefix of the ALLOWed name).
    pub fn authorize_any(
        &self,
        principal: &KafkaPrincipal,
        host: IpAddr,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> Decision {
        if !self.enabled || self.super_users.iter().any(|s| s == principal) {
            return Decision::Allowed;
        }
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let Some(by_type) = index.by_type.get(&resource_type) else {
            return self.no_acl_found();
        };
        let applies = |e: &IndexedEntry| {
            e.principal.as_ref().is_none_or(|p| p == principal)
                && e.host.is_none_or(|h| h == Some(host))
        };
        let denies = |entries: Option<&Vec<IndexedEntry>>| {
            entries.is_some_and(|es| {
                es.iter().any(|e| {
                    applies(e)
                        && e.permission == AclPermissionType::Deny
                        && e.operation.deny_refuses(operation)
                })
            })
        };
        let allows = |es: &Vec<IndexedEntry>| {
            es.iter().any(|e| {
                applies(e)
                    && e.permission == AclPermissionType::Allow
                    && e.operation.allow_grants(operation)
            })
        };
        if denies(by_type.literal.get(WILDCARD_RESOURCE)) {
            return Decision::Denied;
        }
        let prefix_denied = |name: &str| {
            name.char_indices()
                .map(|(i, c)| i + c.len_utf8())
                .filter_map(|end| name.get(..end))
                .any(|prefix| denies(by_type.prefixed.get(prefix)))
        };
        let literal_ok = by_type
            .literal
            .iter()
            .any(|(name, es)| allows(es) && !denies(Some(es)) && !prefix_denied(name));
        let prefixed_ok = by_type
            .prefixed
            .iter()
            .any(|(name, es)| allows(es) && !prefix_denied(name));
        if literal_ok || prefixed_ok {
            Decision::Allowed
        } else {
            Decision::Denied
        }
    }

    fn no_acl_found(&self) -> Decision {
        if self.allow_if_no_acl {
            Decision::Allowed
        } else {
            Decision::Denied
        }
    }

    /// The stored ACLs `filter` matches, in a stable order.
    pub fn describe(&self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        index
            .acls
            .iter()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect()
    }

    /// Adds `acls` (already validated); existing ones are kept once. Persisted before visible.
    pub fn create(&self, acls: &[AclBinding]) -> Result<(), AuthorizerError> {
        self.change(|set| {
            for acl in acls {
                let _ = set.insert(acl.clone());
            }
        })
        .map(|_| ())
    }

    /// Removes every ACL matching each filter; returns, per filter, what it removed.
    pub fn delete(
        &self,
        filters: &[AclBindingFilter],
    ) -> Result<Vec<Vec<AclBinding>>, AuthorizerError> {
        self.change(|set| {
            filters
                .iter()
                .map(|f| {
                    let removed: Vec<AclBinding> =
                        set.iter().filter(|a| f.matches(a)).cloned().collect();
                    for acl in &removed {
                        let _ = set.remove(acl);
                    }
                    removed
                })
                .collect()
        })
    }

    /// Every stored ACL.
    pub fn all(&self) -> BTreeSet<AclBinding> {
        self.index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .acls
            .clone()
    }

    /// Replaces every ACL (a cluster's image changed them), persisted first.
    pub fn replace_all(&self, acls: BTreeSet<AclBinding>) -> Result<(), AuthorizerError> {
        self.change(|set| *set = acls)
    }

    fn change<T>(
        &self,
        edit: impl FnOnce(&mut BTreeSet<AclBinding>) -> T,
    ) -> Result<T, AuthorizerError> {
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .acls
            .clone();
        let result = edit(&mut next);
        let on_disk = OnDisk {
            version: 1,
            acls: next,
        };
        let write_error = |source| AuthorizerError::Write {
            path: self.path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(&on_disk)
            .map_err(|e| write_error(std::io::Error::other(e)))?;
        write_atomically(&self.path, &bytes).map_err(write_error)?;
        let index = AclIndex::build(on_disk.acls);
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = index;
        Ok(result)
    }
}

fn parse_super_users(text: &str) -> Result<Vec<KafkaPrincipal>, AuthorizerError> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| KafkaPrincipal::parse(s).ok_or_else(|| AuthorizerError::SuperUsers(s.to_owned())))
        .collect()
}

#[cfg(test)]
#[path = "authorizer_tests.rs"]
mod tests;
