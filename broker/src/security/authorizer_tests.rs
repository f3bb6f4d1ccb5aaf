//! StandardAuthorizer semantics, case by case, and persistence of the ACL store.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::security::acl::{AccessControlEntry, ResourcePattern};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));

fn config(pairs: &[(&str, &str)]) -> BrokerConfig {
    let overrides: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    strata_config::load(None, &overrides).unwrap().config
}

fn on(dir: &Path, extra: &[(&str, &str)]) -> Authorizer {
    let mut pairs = vec![(
        "authorizer.class.name",
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    )];
    pairs.extend_from_slice(extra);
    Authorizer::open(&config(&pairs), dir).unwrap()
}

fn acl(
    rt: ResourceType,
    name: &str,
    pt: PatternType,
    principal: &str,
    op: AclOperation,
    perm: AclPermissionType,
) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: rt,
            name: name.into(),
            pattern_type: pt,
        },
        entry: AccessControlEntry {
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        },
    }
}

fn topic_acl(
    name: &str,
    pt: PatternType,
    who: &str,
    op: AclOperation,
    perm: AclPermissionType,
) -> AclBinding {
    acl(ResourceType::Topic, name, pt, who, op, perm)
}

fn user(name: &str) -> KafkaPrincipal {
    KafkaPrincipal::user(name)
}

use AclOperation::*;
use AclPermissionType::*;
use PatternType::*;

fn can(a: &Authorizer, who: &str, op: AclOperation, topic: &str) -> bool {
    a.authorize(&user(who), LOCAL, op, ResourceType::Topic, topic) == Decision::Allowed
}

#[test]
fn without_an_authorizer_everything_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authorizer::open(&config(&[]), dir.path()).unwrap();
    assert!(!a.is_enabled());
    a.create(&[topic_acl("t", Literal, "User:bob", Write, Deny)])
        .unwrap();
    assert!(can(&a, "bob", Write, "t"));
}

#[test]
fn no_acl_means_denied_unless_allow_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let a = on(dir.path(), &[]);
    assert!(a.is_enabled());
    assert!(!can(&a, "alice", Read, "t"));
    let open = on(dir.path(), &[("allow.everyone.if.no.acl.found", "true")]);
    assert!(
        open.authorize(&user("alice"), LOCAL, Read, ResourceType::Topic, "t") == Decision::Allowed
    );
    // Once the resource has any ACL, the fallback no longer applies.
    open.create(&[topic_acl("t", Literal, "User:bob", Read, Allow)])
        .unwrap();
    assert!(!can(&open, "alice", Read, "t"));
    assert!(can(&open, "bob", Read, "t"));
}

#[test]
fn allow_grants_the_operation_and_its_implied_describe_only() {
    let dir = tempfile::tempdir().unwrap();
    let a = on(dir.path(), &[]);
    a.create(&[topic_acl("orders", Literal, "User:alice", Write, Allow)])
        .unwrap();
    assert!(can(&a, "alice", Write, "orders"));
    assert!(can(&a, "alice", Describe, "orders"));
    assert!(!can(&a, "alice", Read, "orders"));
    assert!(!can(&a, "alice", Write, "orders2"));
    assert!(!can(&a, "bob", Write, "orders"));
}

#[test]
fn deny_beats_allow_including_wildcards() {
    let dir = tempfile::tempdir().unwrap();
    let a = on(dir.path(), &[]);
    a.create(&[
        topic_acl("*", Literal, "User:*", All, Allow),
        topic_acl("secret", Literal, "User:alice", Read, Deny),
    ])
    .unwrap();
    assert!(can(&a, "alice", Read, "public"));
    assert!(!can(&a, "alice", Read, "secret"));
    assert!(
        can(&a, "alice", Describe, "secret"),
        "DENY READ does not deny DESCRIBE"
    );
    assert!(can(&a, "bob", Read, "secret"));
}

#[test]
fn prefixed_acls_match_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let a = on(dir.path(), &[]);
    a.create(&[
        topic_acl("team-a.", Prefixed, "User:alice", Read, Allow),
        topic_acl("team-a.private", Prefixed, "User:alice", All, Deny),
    ])
    .unwrap();
    assert!(can(&a, "alice", Read, "team-a.events"));
    assert!(!can(&a, "alice", Read, "team-b.events"));
    assert!(!can(&a, "alice", Read, "team-a"));
    assert!(!can(&a, "alice", Read, "team-a.private-x"));
    // A multi-byte name never splits a character when prefixes are tried.
    assert!(!can(&a, "alice", Read, "tëam-a."));
}

#[test]
fn super_users_bypass_acls() {
    let dir = tempfile::tempdir().unwrap();
    let a = on(
        dir.path(),
        &[("super.users", "User:admin; User:CN=ops,O=x")],
    );
    a.create(&[topic_acl("t", Literal, "User:admin", All, Deny)])
        .unwrap();
    assert!(can(&a, "admin", Write, "t"));
    assert!(can(&a, "CN=ops,O=x", Delete, "anything"));
    assert!(!can(&a, "alice", Write, "t"));
    let bad = Authorizer::open(&config(&[("super.users", "admin")]), dir.path());
    assert!(matches!(bad, Err(AuthorizerError::SuperUsers(_))));
}

#[test]
fn host_must_match_exactly_or_be_a_wildcard() {
    let dir = tempfile::tempdir().unwrap();
    let a = on(dir.path(), &[]);
    let mut from_local = topic_acl("t", Literal, "User:alice", Read, Allow);
    from_local.entry.host = "127.0.0.1".into();
    a.create(&[from_local]).unwrap();
    let alice = user("alice");
    assert_eq!(
        a.authorize(&alice, LOCAL, Read, ResourceType::Topic, "t"),
        Decision::Allowed
    );
    assert_eq!(
        a.authorize(&alice, OTHER, Read, ResourceType::Topic, "t"),
        Decision::Denied
    );
}

#[test]
fn resource_types_are_separate() {
    let dir = tempfile::tempdir().unwrap();
    let a = on(dir.path(), &[]);
    a.create(&[
        acl(ResourceType::Group, "g", Literal, "User:alice", Read, Allow),
        acl(
            ResourceType::Cluster,
            "kafka-cluster",
            Literal,
            "User:alice",
            IdempotentWrite,
            Allow,
        ),
    ])
    .unwrap();
    let alice = user("alice");
    assert_eq!(
        a.authorize(&alice, LOCAL, Read, ResourceType::Group, "g"),
        Decision::Allowed
    );
    assert_eq!(
        a.authorize(&alice, LOCAL, Read, ResourceType::Topic, "g"),
        Decision::Denied
    );
    assert_eq!(
        a.authorize(
            &alice,
            LOCAL,
            IdempotentWrite,
            ResourceType::Cluster,
            "kafka-cluster"
        ),
        Decision::Allowed
    );
}

#[test]
fn acls_persist_and_delete_reports_what_it_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let a = on(dir.path(), &[]);
        a.create(&[
            topic_acl("t", Literal, "User:alice", Read, Allow),
            topic_acl("t", Literal, "User:alice", Read, Allow),
            topic_acl("p.", Prefixed, "User:bob", Write, Allow),
        ])
        .unwrap();
    }
    let a = on(dir.path(), &[]);
    let all = AclBindingFilter {
        resource_type: ResourceType::Any,
        name: None,
        pattern_type: PatternType::Any,
        principal: None,
        host: None,
        operation: AclOperation::Any,
        permission: AclPermissionType::Any,
    };
    assert_eq!(a.describe(&all).len(), 2, "duplicates are stored once");
    assert!(can(&a, "bob", Write, "p.x"));
    let only_bob = AclBindingFilter {
        principal: Some("User:bob".into()),
        ..all.clone()
    };
    let removed = a.delete(&[only_bob]).unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].len(), 1);
    assert_eq!(removed[0][0].entry.principal, "User:bob");
    assert!(!can(&a, "bob", Write, "p.x"));
    let reopened = on(dir.path(), &[]);
    assert_eq!(reopened.describe(&all).len(), 1);
}

#[test]
fn corrupt_acl_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(ACLS_FILE), b"[oops").unwrap();
    let err = Authorizer::open(&config(&[]), dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains(ACLS_FILE), "{err}");
}
