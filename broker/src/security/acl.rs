//! Kafka's ACL vocabulary: resource types, pattern types, operations and permissions with
//! their wire codes, an ACL binding (resource pattern + access control entry) and the
//! filters of DescribeAcls/DeleteAcls. Matching rules follow Kafka's `AclBindingFilter`.

use serde::{Deserialize, Serialize};

/// The resource name that, in a LITERAL pattern, matches every resource of its type.
pub const WILDCARD_RESOURCE: &str = "*";
/// The principal that matches every principal (`User:*`).
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The host that matches every host.
pub const WILDCARD_HOST: &str = "*";
/// The one cluster resource's name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($variant),* }

        impl $name {
            /// The Kafka wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }
            /// The value of a wire code, `None` for codes Kafka does not define.
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }
            /// Kafka's upper-case name (as `kafka-acls` prints it).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }
    };
}

wire_enum!(
    /// `org.apache.kafka.common.resource.ResourceType` (DelegationToken and User are not
    /// authorised by Strata yet, but ACLs naming them are stored and listed).
    ResourceType {
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

wire_enum!(
    /// `org.apache.kafka.common.resource.PatternType`: ANY and MATCH only appear in filters.
    PatternType {
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

wire_enum!(
    /// `org.apache.kafka.common.acl.AclOperation`: ANY only appears in filters.
    AclOperation {
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

wire_enum!(
    /// `org.apache.kafka.common.acl.AclPermissionType`: ANY only appears in filters.
    AclPermissionType {
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

impl AclOperation {
    /// Whether an ALLOW for `self` grants `requested`: ALL grants everything, and Kafka lets
    /// READ, WRITE, DELETE and ALTER imply DESCRIBE, and ALTER_CONFIGS imply DESCRIBE_CONFIGS.
    pub fn allow_grants(self, requested: AclOperation) -> bool {
        use AclOperation::*;
        self == requested
            || self == All
            || (requested == Describe && matches!(self, Read | Write | Delete | Alter))
            || (requested == DescribeConfigs && self == AlterConfigs)
    }

    /// Whether a DENY for `self` refuses `requested`: only the operation itself or ALL.
    pub fn deny_refuses(self, requested: AclOperation) -> bool {
        self == requested || self == AclOperation::All
    }
}

/// Which resources an ACL applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    /// LITERAL or PREFIXED in a stored ACL.
    pub pattern_type: PatternType,
}

/// Who may (or may not) do what, from where.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccessControlEntry {
    /// `User:alice`, or `User:*` for everyone.
    pub principal: String,
    /// An IP address as the client connects from, or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermissionType,
}

/// One ACL: a pattern and an entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AccessControlEntry,
}

/// Why a CreateAcls creation is refused (INVALID_REQUEST in Kafka), or a filter cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AclError {
    #[error("expected a known {what} code, found {code}")]
    UnknownCode { what: &'static str, code: i8 },
    #[error("expected a concrete {what} in an ACL, found {found}")]
    NotConcrete {
        what: &'static str,
        found: &'static str,
    },
    #[error("expected a principal of the form Type:name, found {0:?}")]
    Principal(String),
    #[error("expected a non-empty resource name")]
    EmptyName,
    #[error("expected the cluster resource to be named {CLUSTER_NAME}, found {0:?}")]
    ClusterName(String),
}

impl AclBinding {
    /// Validates a CreateAcls creation as Kafka does before storing it.
    pub fn from_wire(
        resource_type: i8,
        name: &str,
        pattern_type: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<AclBinding, AclError> {
        let resource_type =
            ResourceType::from_code(resource_type).ok_or(AclError::UnknownCode {
                what: "resource type",
                code: resource_type,
            })?;
        let pattern_type = PatternType::from_code(pattern_type).ok_or(AclError::UnknownCode {
            what: "pattern type",
            code: pattern_type,
        })?;
        let operation = AclOperation::from_code(operation).ok_or(AclError::UnknownCode {
            what: "operation",
            code: operation,
        })?;
        let permission = AclPermissionType::from_code(permission).ok_or(AclError::UnknownCode {
            what: "permission type",
            code: permission,
        })?;
        let not_concrete = |what, found| Err(AclError::NotConcrete { what, found });
        if resource_type == ResourceType::Any {
            return not_concrete("resource type", "ANY");
        }
        if matches!(pattern_type, PatternType::Any | PatternType::Match) {
            return not_concrete("pattern type", pattern_type.name());
        }
        if operation == AclOperation::Any {
            return not_concrete("operation", "ANY");
        }
        if permission == AclPermissionType::Any {
            return not_concrete("permission type", "ANY");
        }
        if name.is_empty() {
            return Err(AclError::EmptyName);
        }
        if resource_type == ResourceType::Cluster && name != CLUSTER_NAME {
            return Err(AclError::ClusterName(name.to_owned()));
        }
        if crate::security::KafkaPrincipal::parse(principal).is_none() {
            return Err(AclError::Principal(principal.to_owned()));
        }
        Ok(AclBinding {
            pattern: ResourcePattern {
                resource_type,
                name: name.to_owned(),
                pattern_type,
            },
            entry: AccessControlEntry {
                principal: principal.to_owned(),
                host: if host.is_empty() { WILDCARD_HOST } else { host }.to_owned(),
                operation,
                permission,
            },
        })
    }
}

/// A DescribeAcls / DeleteAcls filter; `None` strings match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBindingFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: AclPermissionType,
}

impl AclBindingFilter {
    pub fn from_wire(
        resource_type: i8,
        name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<AclBindingFilter, AclError> {
        Ok(AclBindingFilter {
            resource_type: ResourceType::from_code(resource_type).ok_or(AclError::UnknownCode {
                what: "resource type",
                code: resource_type,
            })?,
            name: name.map(str::to_owned),
            pattern_type: PatternType::from_code(pattern_type).ok_or(AclError::UnknownCode {
                what: "pattern type",
                code: pattern_type,
            })?,
            principal: principal.map(str::to_owned),
            host: host.map(str::to_owned),
            operation: AclOperation::from_code(operation).ok_or(AclError::UnknownCode {
                what: "operation",
                code: operation,
            })?,
            permission: AclPermissionType::from_code(permission).ok_or(AclError::UnknownCode {
                what: "permission type",
                code: permission,
            })?,
        })
    }

    /// Kafka's `AclBindingFilter.matches`: ANY matches every pattern type; MATCH matches the
    /// stored patterns that would apply to the named resource (the literal name, the `*`
    /// wildcard, and every prefix of it); LITERAL / PREFIXED match exactly.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let p = &acl.pattern;
        let e = &acl.entry;
        if self.resource_type != ResourceType::Any && self.resource_type != p.resource_type {
            return false;
        }
        let name_ok = match (self.pattern_type, self.name.as_deref()) {
            (_, None) => {
                matches!(self.pattern_type, PatternType::Any | PatternType::Match)
                    || self.pattern_type == p.pattern_type
            }
            (PatternType::Any, Some(name)) => name == p.name,
            (PatternType::Match, Some(name)) => match p.pattern_type {
                PatternType::Literal => p.name == name || p.name == WILDCARD_RESOURCE,
                PatternType::Prefixed => name.starts_with(p.name.as_str()),
                _ => false,
            },
            (wanted, Some(name)) => wanted == p.pattern_type && name == p.name,
        };
        name_ok
            && self.principal.as_deref().is_none_or(|x| x == e.principal)
            && self.host.as_deref().is_none_or(|x| x == e.host)
            && (self.operation == AclOperation::Any || self.operation == e.operation)
            && (self.permission == AclPermissionType::Any || self.permission == e.permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rt: ResourceType, name: &str, pt: PatternType, principal: &str) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type: rt,
                name: name.into(),
                pattern_type: pt,
            },
            entry: AccessControlEntry {
                principal: principal.into(),
                host: "*".into(),
                operation: AclOperation::Read,
                permission: AclPermissionType::Allow,
            },
        }
    }

    fn filter(name: Option<&str>, pt: PatternType) -> AclBindingFilter {
        AclBindingFilter {
            resource_type: ResourceType::Any,
            name: name.map(Into::into),
            pattern_type: pt,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermissionType::Any,
        }
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_are_refused() {
        for code in 1..=14 {
            assert_eq!(AclOperation::from_code(code).unwrap().code(), code);
        }
        assert_eq!(AclOperation::from_code(0), None);
        assert_eq!(ResourceType::from_code(2), Some(ResourceType::Topic));
        assert_eq!(PatternType::from_code(4), Some(PatternType::Prefixed));
        assert_eq!(AclPermissionType::from_code(-1), None);
    }

    #[test]
    fn implied_operations_follow_kafka() {
        use AclOperation::*;
        assert!(Read.allow_grants(Describe));
        assert!(Write.allow_grants(Describe));
        assert!(AlterConfigs.allow_grants(DescribeConfigs));
        assert!(All.allow_grants(IdempotentWrite));
        assert!(!Describe.allow_grants(Read));
        assert!(!Read.allow_grants(Write));
        // A DENY on READ does not deny DESCRIBE.
        assert!(!Read.deny_refuses(Describe));
        assert!(All.deny_refuses(Describe));
    }

    #[test]
    fn creations_are_validated() {
        let ok = AclBinding::from_wire(2, "t", 3, "User:alice", "*", 3, 3).unwrap();
        assert_eq!(ok.pattern.resource_type, ResourceType::Topic);
        assert!(AclBinding::from_wire(1, "t", 3, "User:a", "*", 3, 3).is_err());
        assert!(AclBinding::from_wire(2, "t", 2, "User:a", "*", 3, 3).is_err());
        assert!(AclBinding::from_wire(2, "t", 3, "alice", "*", 3, 3).is_err());
        assert!(AclBinding::from_wire(2, "", 3, "User:a", "*", 3, 3).is_err());
        assert!(AclBinding::from_wire(4, "c", 3, "User:a", "*", 3, 3).is_err());
        assert!(AclBinding::from_wire(2, "t", 3, "User:a", "*", 1, 3).is_err());
        assert!(AclBinding::from_wire(2, "t", 3, "User:a", "*", 99, 3).is_err());
    }

    #[test]
    fn filters_match_like_kafka() {
        let literal = acl(
            ResourceType::Topic,
            "orders",
            PatternType::Literal,
            "User:a",
        );
        let wildcard = acl(ResourceType::Topic, "*", PatternType::Literal, "User:a");
        let prefixed = acl(ResourceType::Topic, "ord", PatternType::Prefixed, "User:a");
        let other = acl(
            ResourceType::Topic,
            "payments",
            PatternType::Literal,
            "User:a",
        );

        let any = filter(None, PatternType::Any);
        assert!([&literal, &wildcard, &prefixed, &other]
            .iter()
            .all(|a| any.matches(a)));

        let matching = filter(Some("orders"), PatternType::Match);
        assert!(matching.matches(&literal));
        assert!(matching.matches(&wildcard));
        assert!(matching.matches(&prefixed));
        assert!(!matching.matches(&other));

        let exact = filter(Some("ord"), PatternType::Prefixed);
        assert!(exact.matches(&prefixed));
        assert!(!exact.matches(&literal));
        let any_named = filter(Some("orders"), PatternType::Any);
        assert!(any_named.matches(&literal) && !any_named.matches(&prefixed));
        let only_literal = filter(None, PatternType::Literal);
        assert!(only_literal.matches(&literal) && !only_literal.matches(&prefixed));

        let mut by_principal = filter(None, PatternType::Any);
        by_principal.principal = Some("User:b".into());
        assert!(!by_principal.matches(&literal));
    }
}
