//! SASL on the broker side, independent of sockets: which mechanisms a listener enables
//! (`sasl.enabled.mechanisms`) and the per-connection authenticator that turns client
//! tokens into server tokens until it yields a principal or a failure.

use std::sync::Arc;

use strata_config::BrokerConfig;

use super::credentials::CredentialStore;
use super::scram::{ScramError, ScramMechanism, ScramServer, ScramStep};
use super::{plain, KafkaPrincipal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl SaslMechanism {
    pub const SUPPORTED: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::Scram(ScramMechanism::Sha256),
        SaslMechanism::Scram(ScramMechanism::Sha512),
    ];

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.mechanism_name(),
        }
    }

    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        Self::SUPPORTED.into_iter().find(|m| m.name() == name)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaslConfigError {
    #[error(
        "sasl.enabled.mechanisms of listener {listener}: expected at least one of PLAIN, \
         SCRAM-SHA-256, SCRAM-SHA-512, found {found:?}"
    )]
    NoSupportedMechanism { listener: String, found: String },
}

/// The mechanisms a SASL listener offers, in the configured order. Mechanisms Strata does
/// not implement (Kafka's default GSSAPI, OAUTHBEARER) are skipped with a warning.
pub fn enabled_mechanisms(
    config: &BrokerConfig,
    listener: &str,
) -> Result<Vec<SaslMechanism>, SaslConfigError> {
    let raw = config
        .listener_value(listener, "sasl.enabled.mechanisms")
        .unwrap_or_default();
    let mut enabled = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match SaslMechanism::from_name(name) {
            Some(m) if !enabled.contains(&m) => enabled.push(m),
            Some(_) => {}
            None => tracing::warn!(
                listener,
                mechanism = name,
                "SASL mechanism not supported; ignored"
            ),
        }
    }
    if enabled.is_empty() {
        return Err(SaslConfigError::NoSupportedMechanism {
            listener: listener.to_owned(),
            found: raw.to_owned(),
        });
    }
    Ok(enabled)
}

/// What the authenticator answers to one client token.
#[derive(Debug, PartialEq, Eq)]
pub enum SaslOutcome {
    Continue(Vec<u8>),
    Authenticated {
        principal: KafkaPrincipal,
        /// The last server token (SCRAM's server-final; empty for PLAIN).
        token: Vec<u8>,
    },
}

/// A failed authentication: what the client is told, and the reason the broker logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{client_message} ({reason})")]
pub struct SaslFailure {
    pub client_message: String,
    pub reason: String,
}

/// One connection's authentication in progress.
#[derive(Debug)]
pub struct SaslAuthenticator {
    mechanism: SaslMechanism,
    scram: Option<ScramServer>,
    finished: bool,
    store: Arc<CredentialStore>,
}

impl SaslAuthenticator {
    pub fn new(mechanism: SaslMechanism, store: Arc<CredentialStore>) -> SaslAuthenticator {
        SaslAuthenticator {
            mechanism,
            scram: match mechanism {
                SaslMechanism::Scram(m) => Some(ScramServer::new(m)),
                SaslMechanism::Plain => None,
            },
            finished: false,
            store,
        }
    }

    pub fn mechanism(&self) -> SaslMechanism {
        self.mechanism
    }

    pub fn step(&mut self, token: &[u8]) -> Result<SaslOutcome, SaslFailure> {
        if self.finished {
            return Err(SaslFailure {
                client_message: "Authentication already finished".into(),
                reason: "token after the last step".into(),
            });
        }
        let outcome = match &mut self.scram {
            None => self.plain(token),
            Some(server) => {
                let mechanism = server.mechanism();
                let store = &self.store;
                match server.step(token, |user| store.get(user, mechanism)) {
                    Ok(ScramStep::Continue(next)) => Ok(SaslOutcome::Continue(next)),
                    Ok(ScramStep::Authenticated {
                        username,
                        server_final,
                    }) => Ok(SaslOutcome::Authenticated {
                        principal: KafkaPrincipal::user(username),
                        token: server_final,
                    }),
                    Err(e) => Err(scram_failure(mechanism, &e)),
                }
            }
        };
        if !matches!(outcome, Ok(SaslOutcome::Continue(_))) {
            self.finished = true;
        }
        outcome
    }

    fn plain(&self, token: &[u8]) -> Result<SaslOutcome, SaslFailure> {
        let message = plain::parse(token).map_err(|client_message| SaslFailure {
            reason: client_message.clone(),
            client_message,
        })?;
        if !self
            .store
            .check_password(message.username, message.password)
        {
            return Err(SaslFailure {
                client_message: "Authentication failed: Invalid username or password".into(),
                reason: format!("wrong password or unknown user {:?}", message.username),
            });
        }
        Ok(SaslOutcome::Authenticated {
            principal: KafkaPrincipal::user(message.username),
            token: Vec::new(),
        })
    }
}

fn scram_failure(mechanism: ScramMechanism, e: &ScramError) -> SaslFailure {
    let client_message = match e {
        ScramError::UnknownUser | ScramError::InvalidProof => format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
            mechanism.mechanism_name()
        ),
        other => format!("Authentication failed: {other}"),
    };
    SaslFailure {
        client_message,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::credentials::CredentialChange;
    use crate::security::scram::ScramCredential;

    fn store_with(user: &str, pw: &str) -> (tempfile::TempDir, Arc<CredentialStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::open(dir.path().join("c.json")).unwrap();
        store
            .apply(&[CredentialChange::Upsert {
                user: user.into(),
                mechanism: ScramMechanism::Sha256,
                credential: ScramCredential::from_password(ScramMechanism::Sha256, pw, 4096),
            }])
            .unwrap();
        (dir, Arc::new(store))
    }

    #[test]
    fn plain_checks_the_scram_store() {
        let (_dir, store) = store_with("alice", "pw");
        let mut ok = SaslAuthenticator::new(SaslMechanism::Plain, store.clone());
        assert_eq!(
            ok.step(b"\0alice\0pw").unwrap(),
            SaslOutcome::Authenticated {
                principal: KafkaPrincipal::user("alice"),
                token: vec![]
            }
        );
        assert!(ok.step(b"\0alice\0pw").is_err(), "no second step");
        for wrong in [&b"\0alice\0pW"[..], b"\0bob\0pw", b"\0alice\0"] {
            let mut auth = SaslAuthenticator::new(SaslMechanism::Plain, store.clone());
            let failure = auth.step(wrong).unwrap_err();
            assert!(failure.client_message.starts_with("Authentication failed"));
            assert!(!failure.to_string().contains("pW"), "no secret in messages");
        }
    }

    #[test]
    fn scram_unknown_user_gets_the_same_message_as_a_wrong_password() {
        let (_dir, store) = store_with("alice", "pw");
        let mut auth = SaslAuthenticator::new(SaslMechanism::Scram(ScramMechanism::Sha256), store);
        let failure = auth.step(b"n,,n=mallory,r=abcdef").unwrap_err();
        assert!(failure.client_message.contains("invalid credentials"));
    }
}
