//! The client side of SCRAM (RFC 5802, RFC 7677), for a broker logging in to another (its
//! replica fetchers on a SASL inter-broker listener). The server's messages are network
//! input: parsed without panics, its iteration count bounded (a hostile server could
//! otherwise make us hash for minutes), its nonce checked against ours and its final
//! signature verified, so a server that does not hold the credential is not believed.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;

use super::constant_time_eq;
use super::scram::{ScramError, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

/// One client exchange: `first`, then `final_for(server_first)`, then `verify_server_final`.
pub struct ScramClient {
    mechanism: ScramMechanism,
    first_bare: String,
    nonce: String,
    password: String,
    /// The server signature `final_for` computed, which the server-final must carry.
    expected_server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str) -> Self {
        let mut raw = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut raw);
        let nonce = B64.encode(raw);
        // saslname escaping: '=' and ',' may not appear bare.
        let user = user.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            mechanism,
            first_bare: format!("n={user},r={nonce}"),
            nonce,
            password: password.to_owned(),
            expected_server_signature: None,
        }
    }

    /// The client-first message (no channel binding, no authorization id).
    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// The client-final message answering `server_first`.
    pub fn final_for(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let malformed = |what: &str| ScramError::Malformed(format!("server-first: {what}"));
        let text = std::str::from_utf8(server_first).map_err(|_| malformed("not UTF-8"))?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in text.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(B64.decode(v).map_err(|_| malformed("salt"))?),
                Some(("i", v)) => iterations = v.parse::<u32>().ok(),
                Some(("e", v)) => return Err(ScramError::Malformed(format!("server error {v}"))),
                _ => {}
            }
        }
        let nonce = nonce
            .filter(|n| n.len() > self.nonce.len() && n.starts_with(&self.nonce))
            .ok_or_else(|| malformed("expected a nonce extending ours"))?;
        let salt = salt
            .filter(|s| !s.is_empty())
            .ok_or_else(|| malformed("expected a salt"))?;
        let iterations = iterations
            .filter(|i| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(i))
            .ok_or_else(|| {
                malformed(&format!(
                    "expected iterations between {MIN_ITERATIONS} and {MAX_ITERATIONS}"
                ))
            })?;
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{},{text},{without_proof}", self.first_bare);
        let signature = m.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.expected_server_signature = Some(m.hmac(&server_key, auth.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server proved it holds our credential.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| ScramError::Malformed("server-final: not UTF-8".into()))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramError::Malformed(format!("server error {error}")));
        }
        let signature = text
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v.split(',').next().unwrap_or_default()).ok())
            .ok_or_else(|| ScramError::Malformed("server-final: expected v=".into()))?;
        match &self.expected_server_signature {
            Some(expected) if constant_time_eq(expected, &signature) => Ok(()),
            _ => Err(ScramError::InvalidProof),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::{ScramCredential, ScramServer, ScramStep};

    fn exchange(
        client_password: &str,
        stored_password: &str,
        m: ScramMechanism,
    ) -> Result<(), ScramError> {
        let stored = ScramCredential::from_password(m, stored_password, 4096);
        let mut client = ScramClient::new(m, "broker,1", client_password);
        let mut server = ScramServer::new(m);
        let ScramStep::Continue(server_first) = server.step(&client.first(), |user| {
            assert_eq!(user, "broker,1", "the name is escaped and unescaped");
            Some(stored.clone())
        })?
        else {
            panic!("expected a server-first message");
        };
        let client_final = client.final_for(&server_first)?;
        let ScramStep::Authenticated { server_final, .. } = server.step(&client_final, |_| None)?
        else {
            panic!("expected the exchange to finish");
        };
        client.verify_server_final(&server_final)
    }

    #[test]
    fn logs_in_to_our_server_with_both_mechanisms() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            exchange("s3cret", "s3cret", m).unwrap();
            assert_eq!(
                exchange("wrong", "s3cret", m),
                Err(ScramError::InvalidProof)
            );
        }
    }

    #[test]
    fn a_hostile_server_is_not_believed() {
        let m = ScramMechanism::Sha256;
        let mut client = ScramClient::new(m, "broker", "pw");
        let ours = client.nonce.clone();
        for bad in [
            format!("r={ours},s=c2FsdA==,i=4096"), // the nonce not extended
            format!("r=other{ours},s=c2FsdA==,i=4096"),
            format!("r={ours}x,s=c2FsdA==,i=100000000"), // minutes of hashing
            format!("r={ours}x,s=,i=4096"),
            format!("r={ours}x,s=!!,i=4096"),
            "e=other-error".to_owned(),
            String::from_utf8_lossy(&[0xff, 0xfe]).into_owned(),
        ] {
            assert!(client.final_for(bad.as_bytes()).is_err(), "{bad}");
        }
        let _ = client
            .final_for(format!("r={ours}x,s=c2FsdA==,i=4096").as_bytes())
            .unwrap();
        assert_eq!(
            client.verify_server_final(b"v=AAAA"),
            Err(ScramError::InvalidProof)
        );
        assert!(client.verify_server_final(b"e=invalid-proof").is_err());
        assert!(client.verify_server_final(b"nonsense").is_err());
    }
}
