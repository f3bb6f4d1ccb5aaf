//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802 / RFC 7677) as Kafka speaks them: the stored
//! credential (salt, StoredKey, ServerKey, iterations — never the password) and the server
//! side of the three-message exchange, which verifies the client's proof.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use ring::{digest, hmac, pbkdf2};
use serde::{Deserialize, Serialize};

use super::constant_time_eq;

/// Kafka's bounds on SCRAM iterations (ScramMechanism.minIterations / the admin API's max).
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;
/// Bytes of server nonce; printed as base64 in the server-first message.
const SERVER_NONCE_BYTES: usize = 24;
/// A SCRAM message longer than this is not one (usernames and nonces are short).
const MAX_MESSAGE_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn mechanism_name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.mechanism_name() == name)
    }

    /// The number the admin APIs use (AlterUserScramCredentials' `mechanism` field).
    pub fn type_id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_type_id(id: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.type_id() == id)
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2_algorithm(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn output_len(self) -> usize {
        self.digest_algorithm().output_len()
    }

    /// HMAC(key, data) with this mechanism's hash (RFC 5802's HMAC; clients need it too).
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(self.hmac_algorithm(), key);
        hmac::sign(&key, data).as_ref().to_vec()
    }

    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_algorithm(), data)
            .as_ref()
            .to_vec()
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_len()];
        let iterations =
            std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        pbkdf2::derive(
            self.pbkdf2_algorithm(),
            iterations,
            salt,
            password,
            &mut out,
        );
        out
    }
}

/// What the broker keeps for one user and mechanism: enough to verify a proof and to sign
/// the server's answer, not enough to log in as the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl ScramCredential {
    /// From the salted password, which is what AlterUserScramCredentials carries (KIP-554:
    /// the client salts and hashes, the password never reaches the broker).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            salt,
            iterations,
        }
    }

    /// From a password with a fresh random salt (the `strata` admin bootstrap, tests).
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> ScramCredential {
        let mut salt = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut salt);
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        ScramCredential::from_salted_password(mechanism, salt, &salted, iterations)
    }

    /// Whether `password` is the one this credential was made from (SASL/PLAIN checks the
    /// SCRAM store this way).
    pub fn matches_password(&self, mechanism: ScramMechanism, password: &str) -> bool {
        let salted = mechanism.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        constant_time_eq(&mechanism.hash(&client_key), &self.stored_key)
    }
}

mod b64 {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Why an exchange failed. The client only ever sees a generic message (as from Kafka),
/// so that it cannot tell an unknown user from a wrong password; the broker logs these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(String),
    #[error("unknown user")]
    UnknownUser,
    #[error("the client proof does not match the stored credential")]
    InvalidProof,
    #[error("SCRAM extension {0} is not supported (delegation tokens are not)")]
    UnsupportedExtension(String),
    #[error("SCRAM message received after the exchange finished")]
    UnexpectedMessage,
}

/// The server side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: ScramState,
}

// One per authenticating connection, for two messages: boxing the big variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum ScramState {
    ExpectClientFirst,
    ExpectClientFinal {
        username: String,
        credential: ScramCredential,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        client_nonce: String,
        gs2_header: String,
    },
    Done,
}

/// What one step of the exchange produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramStep {
    /// Send this and wait for the next client message.
    Continue(Vec<u8>),
    /// Authenticated as `username`; send `server_final` as the last token.
    Authenticated {
        username: String,
        server_final: Vec<u8>,
    },
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer {
            mechanism,
            state: ScramState::ExpectClientFirst,
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Feeds one client message. `lookup` finds the stored credential of a user.
    pub fn step(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<ScramStep, ScramError> {
        if message.len() > MAX_MESSAGE_BYTES {
            self.state = ScramState::Done;
            return Err(ScramError::Malformed(format!(
                "expected at most {MAX_MESSAGE_BYTES} bytes, found {}",
                message.len()
            )));
        }
        let text = std::str::from_utf8(message)
            .map_err(|_| ScramError::Malformed("expected UTF-8, found other bytes".into()))?;
        match std::mem::replace(&mut self.state, ScramState::Done) {
            ScramState::ExpectClientFirst => self.client_first(text, lookup),
            ScramState::ExpectClientFinal {
                username,
                credential,
                client_first_bare,
                server_first,
                nonce,
                client_nonce,
                gs2_header,
            } => {
                let auth = FinalCheck {
                    credential: &credential,
                    client_first_bare: &client_first_bare,
                    server_first: &server_first,
                    nonce: &nonce,
                    client_nonce: &client_nonce,
                    gs2_header: &gs2_header,
                };
                let server_final = self.client_final(text, &auth)?;
                Ok(ScramStep::Authenticated {
                    username,
                    server_final,
                })
            }
            ScramState::Done => Err(ScramError::UnexpectedMessage),
        }
    }

    fn client_first(
        &mut self,
        text: &str,
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<ScramStep, ScramError> {
        // gs2-header: cbind-flag "," [authzid] ","  — then client-first-message-bare.
        let mut parts = text.splitn(3, ',');
        let (Some(cbind), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(ScramError::Malformed(
                "expected a gs2 header (n,,) then the client-first message".into(),
            ));
        };
        if cbind != "n" && cbind != "y" {
            return Err(ScramError::Malformed(format!(
                "expected channel binding flag n or y (no channel binding), found {cbind:?}"
            )));
        }
        let gs2_header = format!("{cbind},{authzid},");
        let mut username = None;
        let mut client_nonce = None;
        for (i, attribute) in bare.split(',').enumerate() {
            let (key, value) = attribute.split_once('=').ok_or_else(|| {
                ScramError::Malformed(format!("expected key=value, found {attribute:?}"))
            })?;
            match (i, key) {
                (0, "n") => username = Some(decode_saslname(value)?),
                (1, "r") => client_nonce = Some(value),
                (0 | 1, _) => {
                    return Err(ScramError::Malformed(format!(
                        "expected n= then r=, found {key}="
                    )))
                }
                (_, "tokenauth") if value.eq_ignore_ascii_case("true") => {
                    return Err(ScramError::UnsupportedExtension("tokenauth".into()))
                }
                _ => {} // other extensions are ignored, as Kafka does
            }
        }
        let (Some(username), Some(client_nonce)) = (username, client_nonce) else {
            return Err(ScramError::Malformed(
                "expected n= and r= attributes".into(),
            ));
        };
        check_nonce(client_nonce)?;
        if let Some(authzid) = authzid.strip_prefix("a=") {
            if decode_saslname(authzid)? != username {
                return Err(ScramError::Malformed(
                    "expected the authorization id to equal the username".into(),
                ));
            }
        } else if !authzid.is_empty() {
            return Err(ScramError::Malformed(format!(
                "expected an empty authzid or a=<user>, found {authzid:?}"
            )));
        }
        let credential = lookup(&username).ok_or(ScramError::UnknownUser)?;
        let mut server_nonce = [0u8; SERVER_NONCE_BYTES];
        rand::thread_rng().fill_bytes(&mut server_nonce);
        // base64 has no ','; it is printable ASCII as RFC 5802 demands of a nonce.
        let nonce = format!("{client_nonce}{}", B64.encode(server_nonce));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        self.state = ScramState::ExpectClientFinal {
            username,
            credential,
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
            client_nonce: client_nonce.to_owned(),
            gs2_header,
        };
        Ok(ScramStep::Continue(server_first.into_bytes()))
    }

    fn client_final(&self, text: &str, check: &FinalCheck<'_>) -> Result<Vec<u8>, ScramError> {
        // client-final-message = c=..,r=..[,extensions],p=..; the proof is always last.
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| ScramError::Malformed("expected a final p= attribute".into()))?;
        let mut channel_binding = None;
        let mut nonce = None;
        for attribute in without_proof.split(',') {
            match attribute.split_once('=') {
                Some(("c", v)) => channel_binding = Some(v),
                Some(("r", v)) => nonce = Some(v),
                Some(_) => {}
                None => {
                    return Err(ScramError::Malformed(format!(
                        "expected key=value, found {attribute:?}"
                    )))
                }
            }
        }
        let expected_binding = B64.encode(check.gs2_header);
        if channel_binding != Some(expected_binding.as_str()) {
            return Err(ScramError::Malformed(format!(
                "expected channel binding c={expected_binding}, found {channel_binding:?}"
            )));
        }
        // librdkafka before 2.6.1 (Debian's 2.0.2 among them) prepends its own nonce once
        // more: r=<client nonce><client nonce><server nonce>. Kafka 3.8.1-3.9 accepted it
        // (endsWith); we accept exactly that form too, which still carries our fresh server
        // nonce, and nothing looser.
        let librdkafka_form = format!("{}{}", check.client_nonce, check.nonce);
        if nonce != Some(check.nonce) && nonce != Some(librdkafka_form.as_str()) {
            return Err(ScramError::Malformed(
                "expected the nonce of the server-first message, found another".into(),
            ));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("expected a base64 proof".into()))?;
        let m = self.mechanism;
        if proof.len() != m.output_len() {
            return Err(ScramError::InvalidProof);
        }
        let auth_message = format!(
            "{},{},{}",
            check.client_first_bare, check.server_first, without_proof
        );
        let client_signature = m.hmac(&check.credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !constant_time_eq(&m.hash(&client_key), &check.credential.stored_key) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = m.hmac(&check.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

struct FinalCheck<'a> {
    credential: &'a ScramCredential,
    client_first_bare: &'a str,
    server_first: &'a str,
    nonce: &'a str,
    client_nonce: &'a str,
    gs2_header: &'a str,
}

/// RFC 5802 nonces are printable ASCII without ','. (Some clients use only alphanumerics,
/// others — librdkafka — any printable byte; both pass.)
fn check_nonce(nonce: &str) -> Result<(), ScramError> {
    if nonce.is_empty()
        || !nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(ScramError::Malformed(
            "expected a non-empty printable nonce without ','".into(),
        ));
    }
    Ok(())
}

/// saslname: ',' and '=' travel as "=2C" and "=3D"; any other '=' is malformed.
fn decode_saslname(value: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('=') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => {
                return Err(ScramError::Malformed(
                    "expected =2C or =3D in a username, found another '='".into(),
                ))
            }
        }
        rest = rest.get(at + 3..).unwrap_or_default();
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed(
            "expected a username, found none".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
