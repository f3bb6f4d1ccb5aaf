//! Security end to end: TLS (server-only and mutual), SASL PLAIN and SCRAM over
//! SASL_PLAINTEXT and SASL_SSL, driven by confluent-kafka, kcat and raw sockets; wrong
//! passwords refused with nothing written; SCRAM credentials managed with the admin API
//! and kept across restarts; the `strata add-scram` bootstrap. Certificates come from the
//! openssl CLI, made fresh per test.

// Helpers here are test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

#[path = "support/secure.rs"]
mod secure;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use kafka_protocol::messages::{
    ApiKey, MetadataRequest, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use secure::SecureBroker;
use strata_tests::tools::{run_with_deadline, strata_bin};
use strata_tests::{run_kcat, FrameOutcome, RawConnection};

#[test]
fn ssl_listener_serves_confluent_and_kcat() {
    let broker = SecureBroker::start(&["SSL"], &[]);
    let conf = broker.client_conf("SSL", None);
    let out = broker.python("roundtrip", "SSL", &conf, &["ssl-topic"]);
    assert!(out.contains("roundtrip ok"), "{out}");

    let ca = broker.pki.ca.display().to_string();
    let bootstrap = broker.bootstrap("SSL");
    let ssl = ["-X", "security.protocol=SSL", "-X"];
    let ca_arg = format!("ssl.ca.location={ca}");
    let mut produce = vec!["-b", &bootstrap, "-P", "-t", "kcat-ssl"];
    produce.extend(ssl);
    produce.push(&ca_arg);
    let _ = run_kcat(&produce, Some(b"one\ntwo\nthree\n"));
    let mut consume = vec![
        "-b",
        &bootstrap,
        "-C",
        "-t",
        "kcat-ssl",
        "-o",
        "beginning",
        "-c",
        "3",
        "-e",
    ];
    consume.extend(ssl);
    consume.push(&ca_arg);
    let out = run_kcat(&consume, None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\nthree\n");
}

#[test]
fn required_client_certificates_admit_only_clients_that_present_one() {
    let broker = SecureBroker::start(&["SSL"], &[("ssl.client.auth", "required".to_owned())]);
    let without = broker.client_conf("SSL", None);
    let out = broker.python("produce", "SSL", &without, &["mtls-topic"]);
    assert!(
        out.starts_with("error"),
        "a client without a certificate got in: {out}"
    );

    let with = format!(
        "{}, \"ssl.certificate.location\": \"{}\", \"ssl.key.location\": \"{}\"}}",
        without.trim_end_matches('}'),
        broker.pki.client_cert.display(),
        broker.pki.client_key.display()
    );
    let out = broker.python("roundtrip", "SSL", &with, &["mtls-topic"]);
    assert!(out.contains("roundtrip ok"), "{out}");
    assert!(
        broker.log().contains("TLS handshake failed"),
        "the refused handshake is logged"
    );
}

#[test]
fn sasl_plain_and_scram_over_sasl_plaintext_and_sasl_ssl() {
    let broker = SecureBroker::start(&["SASL_PLAINTEXT", "SASL_SSL"], &[]);
    broker.add_user("alice", "alice-secret", "SCRAM-SHA-256");
    broker.add_user("alice", "alice-secret", "SCRAM-SHA-512");
    for (listener, mechanism) in [
        ("SASL_PLAINTEXT", "PLAIN"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
        ("SASL_SSL", "PLAIN"),
        ("SASL_SSL", "SCRAM-SHA-256"),
        ("SASL_SSL", "SCRAM-SHA-512"),
    ] {
        let conf = broker.client_conf(listener, Some((mechanism, "alice", "alice-secret")));
        let topic = format!("t-{}-{}", listener.to_lowercase(), mechanism.to_lowercase());
        let out = broker.python("roundtrip", listener, &conf, &[&topic]);
        assert!(
            out.contains("roundtrip ok"),
            "{listener} {mechanism}: {out}"
        );
    }

    // kcat (librdkafka via its CLI) with SCRAM-SHA-512 over TLS.
    let bootstrap = broker.bootstrap("SASL_SSL");
    let ca = format!("ssl.ca.location={}", broker.pki.ca.display());
    let sasl = [
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        "sasl.mechanisms=SCRAM-SHA-512",
        "-X",
        "sasl.username=alice",
        "-X",
        "sasl.password=alice-secret",
        "-X",
    ];
    let mut produce = vec!["-b", bootstrap.as_str(), "-P", "-t", "kcat-scram"];
    produce.extend(sasl);
    produce.push(&ca);
    let _ = run_kcat(&produce, Some(b"a\nb\n"));
    let mut consume = vec![
        "-b",
        bootstrap.as_str(),
        "-C",
        "-t",
        "kcat-scram",
        "-o",
        "beginning",
        "-c",
        "2",
        "-e",
    ];
    consume.extend(sasl);
    consume.push(&ca);
    let out = run_kcat(&consume, None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\n");
}

#[test]
fn wrong_passwords_are_refused_and_nothing_is_written() {
    let broker = SecureBroker::start(
        &["SASL_SSL"],
        &[("connection.failed.authentication.delay.ms", "50".to_owned())],
    );
    broker.add_user("alice", "alice-secret", "SCRAM-SHA-256");
    broker.add_user("alice", "alice-secret", "SCRAM-SHA-512");
    for (mechanism, user, password) in [
        ("PLAIN", "alice", "wrong"),
        ("PLAIN", "mallory", "alice-secret"),
        ("SCRAM-SHA-256", "alice", "wrong"),
        ("SCRAM-SHA-512", "alice", "alice-secreT"),
        ("SCRAM-SHA-512", "mallory", "x"),
    ] {
        let conf = broker.client_conf("SASL_SSL", Some((mechanism, user, password)));
        let out = broker.python("authfail", "SASL_SSL", &conf, &["never-written"]);
        assert!(
            out.contains("authentication refused") && out.contains("Authentication failed"),
            "{mechanism} {user}: {out}"
        );
    }
    // Had any request passed the gate, auto-creation would have made the topic.
    let out = broker.python(
        "topics",
        "PLAINTEXT",
        &broker.client_conf("PLAINTEXT", None),
        &[],
    );
    assert!(!out.contains("never-written"), "{out}");
    assert!(
        !broker.log().contains("alice-secreT"),
        "a password reached the log"
    );
}

#[test]
fn requests_before_sasl_authentication_are_refused() {
    let broker = SecureBroker::start(&["SASL_PLAINTEXT"], &[]);
    let addr = SocketAddr::from(([127, 0, 0, 1], broker.port("SASL_PLAINTEXT")));

    // Metadata (would auto-create) before any handshake: the connection is closed.
    let mut conn = RawConnection::connect(addr).unwrap();
    let request = MetadataRequest::default();
    let _ = conn.send_request(ApiKey::Metadata, 9, &request).unwrap();
    assert_eq!(
        conn.read_frame(Duration::from_secs(10)),
        FrameOutcome::Closed
    );

    // ApiVersions is served; an unknown mechanism is answered with the enabled list, then closed.
    let mut conn = RawConnection::connect(addr).unwrap();
    assert!(conn.api_versions(Duration::from_secs(10)).is_ok());
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI"));
    let id = conn
        .send_request(ApiKey::SaslHandshake, 1, &handshake)
        .unwrap();
    let response: SaslHandshakeResponse = conn
        .read_response(ApiKey::SaslHandshake, 1, id, Duration::from_secs(10))
        .unwrap();
    assert_eq!(response.error_code, 33, "UNSUPPORTED_SASL_MECHANISM");
    let offered: Vec<String> = response.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(offered, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    assert_eq!(
        conn.read_frame(Duration::from_secs(10)),
        FrameOutcome::Closed
    );

    // A Produce after a handshake but before authentication: closed too.
    let mut conn = RawConnection::connect(addr).unwrap();
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    let _ = conn
        .send_request(ApiKey::SaslHandshake, 1, &handshake)
        .unwrap();
    assert!(matches!(
        conn.read_frame(Duration::from_secs(10)),
        FrameOutcome::Frame(_)
    ));
    let _ = conn.send_request(ApiKey::Metadata, 9, &request).unwrap();
    assert_eq!(
        conn.read_frame(Duration::from_secs(10)),
        FrameOutcome::Closed
    );
}

#[test]
fn scram_credentials_via_admin_api_survive_restart() {
    let mut broker = SecureBroker::start(&["SASL_SSL"], &[]);
    let admin = broker.client_conf("PLAINTEXT", None);
    broker.add_user("bob", "bob-secret", "SCRAM-SHA-512");
    broker.add_user("bob", "bob-secret", "SCRAM-SHA-256");
    let out = broker.python("scram-describe", "PLAINTEXT", &admin, &["bob"]);
    assert_eq!(out, "credentials SCRAM_SHA_256:4096,SCRAM_SHA_512:4096");
    let stored =
        std::fs::read_to_string(broker.data_dir().join("strata-scram-credentials.json")).unwrap();
    assert!(
        !stored.contains("bob-secret"),
        "credentials are stored hashed"
    );

    broker.restart();
    let out = broker.python("scram-describe", "PLAINTEXT", &admin, &["bob"]);
    assert_eq!(out, "credentials SCRAM_SHA_256:4096,SCRAM_SHA_512:4096");
    let conf = broker.client_conf("SASL_SSL", Some(("SCRAM-SHA-512", "bob", "bob-secret")));
    let out = broker.python("roundtrip", "SASL_SSL", &conf, &["after-restart"]);
    assert!(out.contains("roundtrip ok"), "{out}");

    // Changing the password: the old one stops working, the new one works.
    broker.add_user("bob", "new-secret", "SCRAM-SHA-512");
    let out = broker.python("authfail", "SASL_SSL", &conf, &["t"]);
    assert!(out.contains("authentication refused"), "{out}");
    let conf = broker.client_conf("SASL_SSL", Some(("SCRAM-SHA-512", "bob", "new-secret")));
    let out = broker.python("produce", "SASL_SSL", &conf, &["after-restart"]);
    assert_eq!(out, "delivered 5");

    let out = broker.python(
        "scram-delete",
        "PLAINTEXT",
        &admin,
        &["bob", "SCRAM-SHA-512"],
    );
    assert!(out.contains("deleted"), "{out}");
    let out = broker.python(
        "scram-delete",
        "PLAINTEXT",
        &admin,
        &["bob", "SCRAM-SHA-256"],
    );
    assert!(out.contains("deleted"), "{out}");
    let out = broker.python("scram-describe", "PLAINTEXT", &admin, &["bob"]);
    assert_eq!(out, "error RESOURCE_NOT_FOUND");
    let out = broker.python("authfail", "SASL_SSL", &conf, &["t"]);
    assert!(out.contains("authentication refused"), "{out}");
}

#[test]
fn add_scram_subcommand_creates_the_first_administrator() {
    let mut broker = SecureBroker::start(&["SASL_SSL"], &[]);
    broker.kill9();
    let log_dirs = format!("log.dirs={}", broker.data_dir().display());
    let mut cmd = Command::new(strata_bin());
    cmd.args([
        "--override",
        &log_dirs,
        "add-scram",
        "SCRAM-SHA-512=[name=admin,password=admin-secret]",
    ]);
    let out = run_with_deadline(cmd, None, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("added SCRAM-SHA-512 credentials for user admin"));
    broker.restart();
    let conf = broker.client_conf("SASL_SSL", Some(("SCRAM-SHA-512", "admin", "admin-secret")));
    let out = broker.python("produce", "SASL_SSL", &conf, &["admin-topic"]);
    assert_eq!(out, "delivered 5");
}
