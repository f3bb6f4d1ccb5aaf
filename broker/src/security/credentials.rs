//! The SCRAM credential store: per user and mechanism, salt + StoredKey + ServerKey +
//! iterations (never a password), persisted atomically as JSON in the first log dir so
//! that credentials survive restarts. SASL/PLAIN checks passwords against it too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::scram::{ScramCredential, ScramMechanism};
use crate::metadata::durable_file::write_atomically;

/// The store's file name in the first log dir.
pub const CREDENTIALS_FILE: &str = "strata-scram-credentials.json";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    #[error("cannot read SCRAM credentials from {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse SCRAM credentials in {path}: expected Strata's JSON, found: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cannot persist SCRAM credentials to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Every user's credentials, by mechanism.
pub type ScramUsers = BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>;

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    users: ScramUsers,
}

/// One change of an AlterUserScramCredentials request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CredentialChange {
    Upsert {
        user: String,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    },
    Delete {
        user: String,
        mechanism: ScramMechanism,
    },
}

#[derive(Debug)]
pub struct CredentialStore {
    path: PathBuf,
    users: RwLock<ScramUsers>,
    /// Serialises writers so that file order matches memory order.
    write: Mutex<()>,
}

impl CredentialStore {
    /// Loads the store at `path`; a missing file is an empty store.
    pub fn open(path: PathBuf) -> Result<CredentialStore, CredentialError> {
        let users = match std::fs::read(&path) {
            Ok(bytes) => {
                let on_disk: OnDisk =
                    serde_json::from_slice(&bytes).map_err(|e| CredentialError::Parse {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                on_disk.users
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ScramUsers::new(),
            Err(source) => return Err(CredentialError::Read { path, source }),
        };
        Ok(CredentialStore {
            path,
            users: RwLock::new(users),
            write: Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users.get(user)?.get(&mechanism).cloned()
    }

    /// The mechanisms and iterations stored for `user` (DescribeUserScramCredentials).
    pub fn describe(&self, user: &str) -> Option<Vec<(ScramMechanism, u32)>> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        let mechanisms = users.get(user)?;
        Some(mechanisms.iter().map(|(m, c)| (*m, c.iterations)).collect())
    }

    pub fn users(&self) -> Vec<String> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users.keys().cloned().collect()
    }

    /// Whether `password` is `user`'s (SASL/PLAIN): any stored mechanism may vouch for it.
    pub fn check_password(&self, user: &str, password: &str) -> bool {
        let Some(stored) = ({
            let users = self.users.read().unwrap_or_else(|e| e.into_inner());
            users.get(user).cloned()
        }) else {
            return false;
        };
        // Prefer the stronger hash; a user has at least one mechanism when listed.
        stored
            .iter()
            .next_back()
            .is_some_and(|(m, c)| c.matches_password(*m, password))
    }

    /// Applies `changes` in order and persists the result before it becomes visible; on a
    /// write failure nothing changes.
    pub fn apply(&self, changes: &[CredentialChange]) -> Result<(), CredentialError> {
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self.users.read().unwrap_or_else(|e| e.into_inner()).clone();
        apply_changes(&mut next, changes);
        self.store(next)
    }

    /// Every user's credentials.
    pub fn all(&self) -> ScramUsers {
        self.users.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces every credential (a cluster's image changed them), persisted first.
    pub fn replace_all(&self, users: ScramUsers) -> Result<(), CredentialError> {
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.store(users)
    }

    /// Writes `users` to the file, then makes them visible. The caller holds `write`.
    fn store(&self, users: ScramUsers) -> Result<(), CredentialError> {
        let on_disk = OnDisk { version: 1, users };
        let bytes = serde_json::to_vec_pretty(&on_disk).map_err(|e| CredentialError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomically(&self.path, &bytes).map_err(|source| CredentialError::Write {
            path: self.path.clone(),
            source,
        })?;
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = on_disk.users;
        Ok(())
    }
}

/// Applies `changes` to `users` in order: upserts replace a mechanism's credential,
/// deletions remove it (and the user with its last one).
pub fn apply_changes(users: &mut ScramUsers, changes: &[CredentialChange]) {
    for change in changes {
        match change {
            CredentialChange::Upsert {
                user,
                mechanism,
                credential,
            } => {
                let _ = users
                    .entry(user.clone())
                    .or_default()
                    .insert(*mechanism, credential.clone());
            }
            CredentialChange::Delete { user, mechanism } => {
                if let Some(mechanisms) = users.get_mut(user) {
                    let _ = mechanisms.remove(mechanism);
                    if mechanisms.is_empty() {
                        let _ = users.remove(user);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(user: &str, m: ScramMechanism, pw: &str) -> CredentialChange {
        CredentialChange::Upsert {
            user: user.into(),
            mechanism: m,
            credential: ScramCredential::from_password(m, pw, 4096),
        }
    }

    #[test]
    fn credentials_persist_hashed_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE);
        let store = CredentialStore::open(path.clone()).unwrap();
        store
            .apply(&[
                upsert("alice", ScramMechanism::Sha256, "wonderland"),
                upsert("alice", ScramMechanism::Sha512, "wonderland"),
                upsert("bob", ScramMechanism::Sha512, "builder"),
            ])
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("wonderland") && !text.contains("builder"));

        let reopened = CredentialStore::open(path).unwrap();
        assert_eq!(reopened.users(), vec!["alice", "bob"]);
        assert!(reopened.check_password("alice", "wonderland"));
        assert!(!reopened.check_password("alice", "builder"));
        assert!(!reopened.check_password("carol", "x"));
        assert_eq!(
            reopened.describe("alice").unwrap(),
            vec![
                (ScramMechanism::Sha256, 4096),
                (ScramMechanism::Sha512, 4096)
            ]
        );
        reopened
            .apply(&[CredentialChange::Delete {
                user: "bob".into(),
                mechanism: ScramMechanism::Sha512,
            }])
            .unwrap();
        assert_eq!(reopened.describe("bob"), None);
        assert!(reopened.get("alice", ScramMechanism::Sha512).is_some());
    }

    #[test]
    fn corrupt_file_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE);
        std::fs::write(&path, b"{not json").unwrap();
        let err = CredentialStore::open(path).unwrap_err().to_string();
        assert!(err.contains(CREDENTIALS_FILE), "{err}");
    }
}
