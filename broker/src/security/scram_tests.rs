//! SCRAM tests: RFC 7677's vector for the key derivation, then whole exchanges against a
//! test client — a wrong password or a tampered proof must never authenticate.

use super::*;

/// Rewrites a client-final message (tampering) or builds a nonce from the server's.
type Rewrite<'a> = &'a dyn Fn(&str) -> String;

/// A minimal SCRAM client: what librdkafka and the Java client compute.
struct TestClient {
    mechanism: ScramMechanism,
    user: String,
    password: String,
    nonce: String,
}

impl TestClient {
    fn first(&self) -> String {
        format!("n,,n={},r={}", self.user, self.nonce)
    }

    fn final_message(&self, server_first: &str) -> (String, Vec<u8>) {
        let mut nonce = "";
        let mut salt = Vec::new();
        let mut iterations = 0;
        for attr in server_first.split(',') {
            let (k, v) = attr.split_once('=').unwrap();
            match k {
                "r" => nonce = v,
                "s" => salt = B64.decode(v).unwrap(),
                "i" => iterations = v.parse().unwrap(),
                _ => {}
            }
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!(
            "{},{server_first},{without_proof}",
            self.first().trim_start_matches("n,,")
        );
        let signature = m.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        let expected_server_final =
            format!("v={}", B64.encode(m.hmac(&server_key, auth.as_bytes())));
        (
            format!("{without_proof},p={}", B64.encode(proof)),
            expected_server_final.into_bytes(),
        )
    }
}

fn client(mechanism: ScramMechanism, password: &str) -> TestClient {
    TestClient {
        mechanism,
        user: "alice".into(),
        password: password.into(),
        nonce: "fyko+d2lbbFgONRv9qkxdawL".into(),
    }
}

fn stored(mechanism: ScramMechanism) -> Option<ScramCredential> {
    Some(ScramCredential::from_password(mechanism, "s3cret", 4096))
}

fn exchange(c: &TestClient, cred: Option<ScramCredential>) -> Result<ScramStep, ScramError> {
    let mut server = ScramServer::new(c.mechanism);
    let ScramStep::Continue(server_first) = server.step(c.first().as_bytes(), |u| {
        assert_eq!(u, "alice");
        cred
    })?
    else {
        panic!("expected a server-first message");
    };
    let server_first = String::from_utf8(server_first).unwrap();
    assert!(server_first.starts_with(&format!("r={}", c.nonce)));
    let (final_message, _) = c.final_message(&server_first);
    server.step(final_message.as_bytes(), |_| panic!("no second lookup"))
}

#[test]
fn rfc7677_vector_verifies_against_the_derived_credential() {
    let m = ScramMechanism::Sha256;
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let salted = m.salted_password(b"pencil", &salt, 4096);
    let cred = ScramCredential::from_salted_password(m, salt, &salted, 4096);
    let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
                r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
                c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    let proof = B64
        .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        .unwrap();
    let signature = m.hmac(&cred.stored_key, auth.as_bytes());
    let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
    assert_eq!(m.hash(&client_key), cred.stored_key);
    let server_signature = m.hmac(&cred.server_key, auth.as_bytes());
    assert_eq!(
        B64.encode(server_signature),
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
}

#[test]
fn right_password_authenticates_and_signs_for_both_mechanisms() {
    for m in ScramMechanism::ALL {
        let c = client(m, "s3cret");
        let mut server = ScramServer::new(m);
        let ScramStep::Continue(first) = server.step(c.first().as_bytes(), |_| stored(m)).unwrap()
        else {
            panic!("expected server-first");
        };
        let (final_message, expected_final) = c.final_message(std::str::from_utf8(&first).unwrap());
        let step = server.step(final_message.as_bytes(), |_| None).unwrap();
        assert_eq!(
            step,
            ScramStep::Authenticated {
                username: "alice".into(),
                server_final: expected_final
            },
            "{m:?}"
        );
        // Nothing may follow a finished exchange.
        assert_eq!(
            server.step(b"c=biws", |_| None),
            Err(ScramError::UnexpectedMessage)
        );
    }
}

#[test]
fn wrong_password_is_always_refused() {
    for m in ScramMechanism::ALL {
        // (Not "s3cret\0": HMAC pads short keys with zeros, so a trailing NUL yields the same
        // SaltedPassword in every SCRAM implementation — a property of RFC 2104, not a bypass.)
        for wrong in ["s3creT", "", "s3cret ", "s3cre", "S3CRET", "s3cret\u{1}"] {
            let result = exchange(&client(m, wrong), stored(m));
            assert_eq!(result, Err(ScramError::InvalidProof), "{m:?} {wrong:?}");
        }
    }
}

#[test]
fn credential_of_the_other_mechanism_is_refused() {
    let c = client(ScramMechanism::Sha256, "s3cret");
    // A SHA-512 credential looked up for a SHA-256 exchange: keys differ in length.
    let result = exchange(&c, stored(ScramMechanism::Sha512));
    assert!(result.is_err());
}

#[test]
fn tampered_proofs_and_nonces_are_refused() {
    let m = ScramMechanism::Sha512;
    let c = client(m, "s3cret");
    #[allow(clippy::type_complexity)]
    let cases: Vec<Box<dyn Fn(&str) -> String>> = vec![
        // flip one proof byte
        Box::new(|f: &str| {
            let (head, proof) = f.rsplit_once(",p=").unwrap();
            let mut bytes = B64.decode(proof).unwrap();
            bytes[0] ^= 1;
            format!("{head},p={}", B64.encode(bytes))
        }),
        // all-zero proof
        Box::new(|f: &str| {
            let (head, _) = f.rsplit_once(",p=").unwrap();
            format!("{head},p={}", B64.encode([0u8; 64]))
        }),
        // short proof
        Box::new(|f: &str| {
            let (head, _) = f.rsplit_once(",p=").unwrap();
            format!("{head},p={}", B64.encode([0u8; 8]))
        }),
        // nonce without the server's part
        Box::new(|f: &str| {
            format!(
                "c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p={}",
                f.rsplit_once(",p=").unwrap().1
            )
        }),
        // wrong channel binding
        Box::new(|f: &str| f.replacen("c=biws", "c=eSws", 1)),
        // no proof at all
        Box::new(|f: &str| f.rsplit_once(",p=").unwrap().0.to_owned()),
    ];
    for (i, tamper) in cases.iter().enumerate() {
        let mut server = ScramServer::new(m);
        let ScramStep::Continue(first) = server.step(c.first().as_bytes(), |_| stored(m)).unwrap()
        else {
            panic!("expected server-first");
        };
        let (final_message, _) = c.final_message(std::str::from_utf8(&first).unwrap());
        let result = server.step(tamper(&final_message).as_bytes(), |_| None);
        assert!(result.is_err(), "case {i} authenticated: {result:?}");
    }
}

#[test]
fn unknown_user_and_malformed_first_messages_are_refused() {
    let m = ScramMechanism::Sha256;
    assert_eq!(
        exchange(&client(m, "s3cret"), None),
        Err(ScramError::UnknownUser)
    );
    for bad in [
        &b""[..],
        b"n,,",
        b"p=tls-unique,,n=alice,r=abc",
        b"n,,r=abc,n=alice",
        b"n,,n=alice",
        b"n,,n=,r=abc",
        b"n,,n=al=ice,r=abc",
        b"n,,n=alice,r=a,b",
        b"n,a=bob,n=alice,r=abc",
        b"n,,n=alice,r=abc,tokenauth=true",
        b"\xff\xfe",
    ] {
        let mut server = ScramServer::new(m);
        assert!(
            server.step(bad, |_| stored(m)).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let mut server = ScramServer::new(m);
    assert!(server.step(&vec![b'n'; 10_000], |_| stored(m)).is_err());
}

#[test]
fn escaped_usernames_decode() {
    assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
    assert!(decode_saslname("a=2").is_err());
}

#[test]
fn plain_password_check_uses_the_scram_credential() {
    let cred = ScramCredential::from_password(ScramMechanism::Sha512, "pw", 4096);
    assert!(cred.matches_password(ScramMechanism::Sha512, "pw"));
    assert!(!cred.matches_password(ScramMechanism::Sha512, "pW"));
    assert!(!cred.matches_password(ScramMechanism::Sha256, "pw"));
}

#[test]
fn librdkafka_before_2_6_1_doubled_client_nonce_is_accepted_and_nothing_looser() {
    let m = ScramMechanism::Sha256;
    let c = client(m, "s3cret");
    // Old librdkafka sends its nonce again in front of the server's full nonce; accepted.
    // Other strings that merely end with the server nonce stay refused.
    let cases: [(Rewrite<'_>, bool); 4] = [
        (&|full: &str| full.to_owned(), true),
        (&|full: &str| format!("{}{full}", c.nonce), true),
        (&|full: &str| format!("x{full}"), false),
        (&|full: &str| format!("{}{}{full}", c.nonce, c.nonce), false),
    ];
    for (i, (nonce_of, accepted)) in cases.iter().enumerate() {
        let mut server = ScramServer::new(m);
        let ScramStep::Continue(first) = server.step(c.first().as_bytes(), |_| stored(m)).unwrap()
        else {
            panic!("expected server-first");
        };
        let server_first = String::from_utf8(first).unwrap();
        let full_nonce = server_first
            .split(',')
            .next()
            .unwrap()
            .trim_start_matches("r=");
        let final_message = proof_for(&c, &server_first, &nonce_of(full_nonce));
        let result = server.step(final_message.as_bytes(), |_| None);
        assert_eq!(
            matches!(result, Ok(ScramStep::Authenticated { .. })),
            *accepted,
            "case {i}: {result:?}"
        );
    }
}

/// A client-final message with `nonce` in r=, proof over the messages as exchanged.
fn proof_for(c: &TestClient, server_first: &str, nonce: &str) -> String {
    let m = c.mechanism;
    let mut salt = Vec::new();
    let mut iterations = 0;
    for attr in server_first.split(',') {
        let (k, v) = attr.split_once('=').unwrap();
        match k {
            "s" => salt = B64.decode(v).unwrap(),
            "i" => iterations = v.parse().unwrap(),
            _ => {}
        }
    }
    let salted = m.salted_password(c.password.as_bytes(), &salt, iterations);
    let client_key = m.hmac(&salted, b"Client Key");
    let stored_key = m.hash(&client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!(
        "{},{server_first},{without_proof}",
        c.first().trim_start_matches("n,,")
    );
    let signature = m.hmac(&stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    format!("{without_proof},p={}", B64.encode(proof))
}
