//! AlterUserScramCredentials and DescribeUserScramCredentials (KIP-554), what
//! `kafka-configs --alter --add-config 'SCRAM-SHA-512=[password=...]' --entity-type users`
//! sends. Clients send salt and salted password; the broker keeps StoredKey and ServerKey.
//! Each user's changes apply all or nothing, as in Kafka.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use strata_protocol::kafka_protocol;

use super::{str_bytes, RequestContext};
use crate::errors::ErrorCode;
use crate::security::acl::AclOperation;
use crate::security::credentials::{CredentialChange, CredentialStore};
use crate::security::scram::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::server::Broker;

type Failure = (ErrorCode, String);

/// AlterUserScramCredentials needs ALTER on the cluster; each user is refused otherwise.
pub fn alter_checked(
    broker: &Broker,
    ctx: &RequestContext,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    if ctx.allowed_cluster(broker, AclOperation::Alter) {
        return alter(&broker.credentials, request, |changes| {
            crate::security::replicated::alter_credentials(broker, changes)
        });
    }
    let users: BTreeSet<String> = request
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(request.upsertions.iter().map(|u| u.name.to_string()))
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(
        users
            .into_iter()
            .map(|user| {
                AlterUserScramCredentialsResult::default()
                    .with_user(str_bytes(user))
                    .with_error_code(ErrorCode::ClusterAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes("Cluster authorization failed.")))
            })
            .collect(),
    )
}

/// DescribeUserScramCredentials needs DESCRIBE on the cluster.
pub fn describe_checked(
    broker: &Broker,
    ctx: &RequestContext,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if ctx.allowed_cluster(broker, AclOperation::Describe) {
        return describe(&broker.credentials, request);
    }
    DescribeUserScramCredentialsResponse::default()
        .with_error_code(ErrorCode::ClusterAuthorizationFailed.code())
        .with_error_message(Some(str_bytes("Cluster authorization failed.")))
}

/// Validates the request against `store` and hands the valid changes to `persist` (the
/// store itself alone, the metadata quorum in a cluster).
pub fn alter(
    store: &CredentialStore,
    request: AlterUserScramCredentialsRequest,
    persist: impl FnOnce(&[CredentialChange]) -> Result<(), String>,
) -> AlterUserScramCredentialsResponse {
    // Group by user, keeping first-seen order for the results.
    let mut order: Vec<String> = Vec::new();
    let mut per_user: BTreeMap<String, Result<Vec<CredentialChange>, Failure>> = BTreeMap::new();
    let mut seen: BTreeSet<(String, i8)> = BTreeSet::new();
    let mut add = |user: String, mechanism: i8, change: Result<CredentialChange, Failure>| {
        if !per_user.contains_key(&user) {
            order.push(user.clone());
        }
        let entry = per_user
            .entry(user.clone())
            .or_insert_with(|| Ok(Vec::new()));
        let change = if seen.insert((user, mechanism)) {
            change
        } else {
            Err((
                ErrorCode::DuplicateResource,
                "A user credential cannot be altered twice in the same request".to_owned(),
            ))
        };
        match (entry.as_mut(), change) {
            (Ok(changes), Ok(change)) => changes.push(change),
            (Ok(_), Err(failure)) => *entry = Err(failure),
            (Err(_), _) => {} // the first failure of a user is the one reported
        }
    };
    for deletion in request.deletions {
        let user = deletion.name.to_string();
        let change = validate_user(&user)
            .and_then(|()| mechanism(deletion.mechanism))
            .and_then(|m| {
                if store.get(&user, m).is_none() {
                    return Err((
                        ErrorCode::ResourceNotFound,
                        "Attempt to delete a user credential that does not exist".to_owned(),
                    ));
                }
                Ok(CredentialChange::Delete {
                    user: user.clone(),
                    mechanism: m,
                })
            });
        add(user, deletion.mechanism, change);
    }
    for upsertion in request.upsertions {
        let user = upsertion.name.to_string();
        let change = validate_user(&user)
            .and_then(|()| mechanism(upsertion.mechanism))
            .and_then(|m| {
                let iterations = u32::try_from(upsertion.iterations).unwrap_or(0);
                if iterations < MIN_ITERATIONS {
                    return Err((
                        ErrorCode::UnacceptableCredential,
                        format!("Too few iterations: expected at least {MIN_ITERATIONS}, found {}", upsertion.iterations),
                    ));
                }
                if iterations > MAX_ITERATIONS {
                    return Err((
                        ErrorCode::UnacceptableCredential,
                        format!("Too many iterations: expected at most {MAX_ITERATIONS}, found {iterations}"),
                    ));
                }
                let expected_len = m.salted_password(b"", b"", 1).len();
                if upsertion.salted_password.len() != expected_len || upsertion.salt.is_empty() {
                    return Err((
                        ErrorCode::UnacceptableCredential,
                        format!(
                            "expected a non-empty salt and a {expected_len}-byte salted password for {}, found {} salt and {} password bytes",
                            m.mechanism_name(),
                            upsertion.salt.len(),
                            upsertion.salted_password.len()
                        ),
                    ));
                }
                Ok(CredentialChange::Upsert {
                    user: user.clone(),
                    mechanism: m,
                    credential: ScramCredential::from_salted_password(
                        m,
                        upsertion.salt.to_vec(),
                        &upsertion.salted_password,
                        iterations,
                    ),
                })
            });
        add(user, upsertion.mechanism, change);
    }
    let valid: Vec<CredentialChange> = per_user
        .values()
        .filter_map(|r| r.as_ref().ok())
        .flatten()
        .cloned()
        .collect();
    let write_failure = match persist(&valid) {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(error = %e, "cannot persist SCRAM credentials");
            Some((ErrorCode::UnknownServerError, e))
        }
    };
    let results = order
        .into_iter()
        .map(|user| {
            let outcome = match per_user.remove(&user) {
                Some(Ok(_)) => write_failure.clone(),
                Some(Err(failure)) => Some(failure),
                None => None,
            };
            let mut result = AlterUserScramCredentialsResult::default().with_user(str_bytes(user));
            if let Some((code, message)) = outcome {
                result = result
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)));
            }
            result
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

pub fn describe(
    store: &CredentialStore,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let requested: Vec<String> = match request.users {
        Some(users) if !users.is_empty() => users.into_iter().map(|u| u.name.to_string()).collect(),
        _ => store.users(),
    };
    let explicit = requested.len();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for user in &requested {
        *counts.entry(user.as_str()).or_default() += 1;
    }
    let mut reported = BTreeSet::new();
    let mut results = Vec::with_capacity(explicit);
    for user in &requested {
        if !reported.insert(user.clone()) {
            continue;
        }
        let result =
            DescribeUserScramCredentialsResult::default().with_user(str_bytes(user.clone()));
        let result = if counts.get(user.as_str()).copied().unwrap_or(0) > 1 {
            result
                .with_error_code(ErrorCode::DuplicateResource.code())
                .with_error_message(Some(str_bytes(format!(
                    "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                ))))
        } else {
            match store.describe(user) {
                Some(infos) => result.with_credential_infos(
                    infos
                        .into_iter()
                        .map(|(m, iterations)| {
                            CredentialInfo::default()
                                .with_mechanism(m.type_id())
                                .with_iterations(i32::try_from(iterations).unwrap_or(i32::MAX))
                        })
                        .collect(),
                ),
                None => result
                    .with_error_code(ErrorCode::ResourceNotFound.code())
                    .with_error_message(Some(str_bytes(format!(
                        "Attempt to describe nonexistent SCRAM credential for user {user}"
                    )))),
            }
        };
        results.push(result);
    }
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn validate_user(user: &str) -> Result<(), Failure> {
    if user.is_empty() {
        return Err((
            ErrorCode::UnacceptableCredential,
            "Username must not be empty".to_owned(),
        ));
    }
    Ok(())
}

fn mechanism(id: i8) -> Result<ScramMechanism, Failure> {
    ScramMechanism::from_type_id(id).ok_or_else(|| {
        (
            ErrorCode::UnsupportedSaslMechanism,
            format!("Unknown SCRAM mechanism: expected 1 (SCRAM-SHA-256) or 2 (SCRAM-SHA-512), found {id}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;

    fn upsertion(
        user: &str,
        mechanism: i8,
        iterations: i32,
        password: &str,
    ) -> ScramCredentialUpsertion {
        let m = ScramMechanism::from_type_id(mechanism).unwrap_or(ScramMechanism::Sha256);
        let salt = b"salty".to_vec();
        let salted = m.salted_password(password.as_bytes(), &salt, iterations.max(1) as u32);
        ScramCredentialUpsertion::default()
            .with_name(str_bytes(user))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(salt.into())
            .with_salted_password(salted.into())
    }

    #[test]
    fn alter_validates_per_user_and_applies_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::open(dir.path().join("c.json")).unwrap();
        let request = AlterUserScramCredentialsRequest::default()
            .with_upsertions(vec![
                upsertion("alice", 2, 8192, "pw"),
                upsertion("bob", 1, 100, "pw"),
                upsertion("carol", 3, 4096, "pw"),
                upsertion("dave", 1, 4096, "pw"),
                upsertion("dave", 1, 4096, "pw2"),
                upsertion("", 1, 4096, "pw"),
            ])
            .with_deletions(vec![ScramCredentialDeletion::default()
                .with_name(str_bytes("erin"))
                .with_mechanism(1)]);
        let response = alter(&store, request, |c| {
            store.apply(c).map_err(|e| e.to_string())
        });
        let codes: Vec<(String, i16)> = response
            .results
            .iter()
            .map(|r| (r.user.to_string(), r.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("erin".to_owned(), ErrorCode::ResourceNotFound.code()),
                ("alice".to_owned(), 0),
                ("bob".to_owned(), ErrorCode::UnacceptableCredential.code()),
                (
                    "carol".to_owned(),
                    ErrorCode::UnsupportedSaslMechanism.code()
                ),
                ("dave".to_owned(), ErrorCode::DuplicateResource.code()),
                (String::new(), ErrorCode::UnacceptableCredential.code()),
            ]
        );
        assert!(store.check_password("alice", "pw"));
        assert_eq!(store.users(), vec!["alice"]);

        let described = describe(
            &store,
            DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                UserName::default().with_name(str_bytes("alice")),
                UserName::default().with_name(str_bytes("zed")),
            ])),
        );
        assert_eq!(described.results.len(), 2);
        assert_eq!(described.results[0].credential_infos.len(), 1);
        assert_eq!(described.results[0].credential_infos[0].mechanism, 2);
        assert_eq!(described.results[0].credential_infos[0].iterations, 8192);
        assert_eq!(
            described.results[1].error_code,
            ErrorCode::ResourceNotFound.code()
        );
        let all = describe(&store, DescribeUserScramCredentialsRequest::default());
        assert_eq!(all.results.len(), 1);
    }
}
