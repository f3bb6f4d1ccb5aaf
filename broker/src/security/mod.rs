//! Security: who a connection is (its [`KafkaPrincipal`]), how it proves it (SASL PLAIN and
//! SCRAM in [`sasl`], [`scram`]), where SCRAM credentials live ([`credentials`]). TLS itself
//! lives in `network::tls`; this module knows nothing of sockets. Who may do what is the
//! [`authorizer`]'s business, in Kafka's ACL vocabulary ([`acl`]).

pub mod acl;
pub mod authorizer;
pub mod bootstrap;
pub mod credentials;
pub mod plain;
pub mod quickstart;
pub mod replicated;
pub mod sasl;
pub mod scram;
pub mod scram_client;

use std::fmt;

/// Kafka's principal: a type and a name, written `User:alice`. Connections that did not
/// authenticate are `User:ANONYMOUS`, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaPrincipal {
    pub principal_type: String,
    pub name: String,
}

impl KafkaPrincipal {
    pub const USER_TYPE: &'static str = "User";

    pub fn user(name: impl Into<String>) -> KafkaPrincipal {
        KafkaPrincipal {
            principal_type: Self::USER_TYPE.to_owned(),
            name: name.into(),
        }
    }

    pub fn anonymous() -> KafkaPrincipal {
        KafkaPrincipal::user("ANONYMOUS")
    }

    /// Parses `Type:name` (the name may itself contain ':'), as ACLs and `super.users` write it.
    pub fn parse(text: &str) -> Option<KafkaPrincipal> {
        let (principal_type, name) = text.split_once(':')?;
        if principal_type.is_empty() || name.is_empty() {
            return None;
        }
        Some(KafkaPrincipal {
            principal_type: principal_type.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// Compares secrets without an early exit, so timing does not reveal how much matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_parse_and_display_round_trip() {
        let p = KafkaPrincipal::parse("User:CN=a:b,O=x").unwrap();
        assert_eq!(p.principal_type, "User");
        assert_eq!(p.name, "CN=a:b,O=x");
        assert_eq!(p.to_string(), "User:CN=a:b,O=x");
        assert_eq!(KafkaPrincipal::parse("alice"), None);
        assert_eq!(KafkaPrincipal::parse("User:"), None);
    }

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
