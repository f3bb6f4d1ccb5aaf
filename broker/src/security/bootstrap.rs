//! Credentials without a running broker: `strata add-scram 'SCRAM-SHA-512=[name=admin,password=...]'`
//! writes SCRAM credentials into the data dir before the broker starts, as
//! `kafka-storage format --add-scram` does for Kafka. Run it while the broker is stopped.

use std::path::Path;

use super::credentials::{CredentialChange, CredentialStore, CREDENTIALS_FILE};
use super::scram::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

/// Default iterations of new credentials (Kafka's kafka-configs default is 4096; more is
/// cheap at login rates and slows offline guessing).
pub const DEFAULT_ITERATIONS: u32 = 8192;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScramSpecError {
    #[error("expected MECHANISM=[name=USER,password=PASSWORD(,iterations=N)], found {0:?}")]
    Syntax(String),
    #[error("expected SCRAM-SHA-256 or SCRAM-SHA-512, found {0:?}")]
    Mechanism(String),
    #[error("expected iterations between {MIN_ITERATIONS} and {MAX_ITERATIONS}, found {0:?}")]
    Iterations(String),
}

/// One parsed `--add-scram` entry. `Debug` hides the password.
#[derive(PartialEq, Eq)]
pub struct ScramSpec {
    pub mechanism: ScramMechanism,
    pub user: String,
    pub password: String,
    pub iterations: u32,
}

impl std::fmt::Debug for ScramSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramSpec")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Parses `SCRAM-SHA-512=[name=alice,password=secret]` (Kafka's syntax; the password may
/// be quoted with "..." and then contain ',' or ']').
pub fn parse_spec(text: &str) -> Result<ScramSpec, ScramSpecError> {
    let syntax = || ScramSpecError::Syntax(redact(text));
    let (mechanism, rest) = text.split_once('=').ok_or_else(syntax)?;
    let mechanism = ScramMechanism::from_name(mechanism.trim())
        .ok_or_else(|| ScramSpecError::Mechanism(mechanism.trim().to_owned()))?;
    let body = rest
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(syntax)?;
    let (mut user, mut password, mut iterations) = (None, None, DEFAULT_ITERATIONS);
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').ok_or_else(syntax)?;
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').ok_or_else(syntax)?;
            let next = quoted.get(end + 1..).unwrap_or_default();
            (
                quoted.get(..end).unwrap_or_default(),
                next.strip_prefix(',').unwrap_or(next),
            )
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            }
        };
        match key.trim() {
            "name" => user = Some(value.to_owned()),
            "password" => password = Some(value.to_owned()),
            "iterations" => {
                iterations = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|i| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(i))
                    .ok_or_else(|| ScramSpecError::Iterations(value.to_owned()))?;
            }
            _ => return Err(syntax()),
        }
        rest = next;
    }
    match (user, password) {
        (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => Ok(ScramSpec {
            mechanism,
            user,
            password,
            iterations,
        }),
        _ => Err(syntax()),
    }
}

/// Never echo a password back, even in a syntax error.
fn redact(text: &str) -> String {
    match text.find("password=") {
        Some(at) => format!(
            "{}password=<redacted>...",
            text.get(..at).unwrap_or_default()
        ),
        None => text.to_owned(),
    }
}

/// Adds `specs` to the credential store of `log_dir` (the broker's first log dir).
pub fn add_scram(log_dir: &Path, specs: &[ScramSpec]) -> anyhow::Result<()> {
    std::fs::create_dir_all(log_dir)?;
    let store = CredentialStore::open(log_dir.join(CREDENTIALS_FILE))?;
    let changes: Vec<CredentialChange> = specs
        .iter()
        .map(|s| CredentialChange::Upsert {
            user: s.user.clone(),
            mechanism: s.mechanism,
            credential: ScramCredential::from_password(s.mechanism, &s.password, s.iterations),
        })
        .collect();
    store.apply(&changes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_syntax() {
        let spec = parse_spec("SCRAM-SHA-512=[name=admin,password=s3cret]").unwrap();
        assert_eq!(spec.mechanism, ScramMechanism::Sha512);
        assert_eq!(
            (spec.user.as_str(), spec.password.as_str()),
            ("admin", "s3cret")
        );
        assert_eq!(spec.iterations, DEFAULT_ITERATIONS);
        let spec =
            parse_spec(r#"SCRAM-SHA-256=[name=alice,password="a,b]c",iterations=4096]"#).unwrap();
        assert_eq!(spec.password, "a,b]c");
        assert_eq!(spec.iterations, 4096);
    }

    #[test]
    fn refuses_bad_specs_without_echoing_passwords() {
        for bad in [
            "SCRAM-SHA-512=[name=admin]",
            "SCRAM-SHA-512=name=admin,password=hunter2",
            "SCRAM-SHA-512=[name=,password=hunter2]",
            "SCRAM-SHA-512=[name=a,password=hunter2,colour=red]",
            "SCRAM-SHA-512=[name=a,password=hunter2,iterations=10]",
            "MD5=[name=a,password=hunter2]",
        ] {
            let err = parse_spec(bad).unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{bad}: {err}");
        }
    }

    #[test]
    fn add_scram_writes_a_store_the_broker_reads() {
        let dir = tempfile::tempdir().unwrap();
        add_scram(
            dir.path(),
            &[parse_spec("SCRAM-SHA-512=[name=admin,password=pw]").unwrap()],
        )
        .unwrap();
        let store = CredentialStore::open(dir.path().join(CREDENTIALS_FILE)).unwrap();
        assert!(store.check_password("admin", "pw"));
    }
}
