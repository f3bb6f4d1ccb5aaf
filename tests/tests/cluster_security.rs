//! Security in a cluster: SCRAM users and ACLs are cluster metadata (made through one broker,
//! holding on all), and brokers talk to each other over TLS only — replication over
//! SASL_SSL as a SCRAM user, the metadata quorum on mutual TLS.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

#[path = "support/secure.rs"]
mod secure;

use strata_tests::cluster::{full_isrs, json_of, Cluster};
use strata_tests::{poll_until, run_python, Broker};

/// SCRAM users and ACLs are cluster metadata: a user created through one broker and an ACL
/// granted through another hold on every broker (the client below talks to all three, as
/// each leads one partition), a deleted ACL stops the user everywhere, and a restarted
/// broker still knows both.
#[test]
fn users_and_acls_made_through_one_broker_hold_on_every_broker() {
    let mut cluster = Cluster::start_with(
        3,
        Some("SASL_PLAINTEXT"),
        &[
            (
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            ),
            // PLAINTEXT (loopback) carries replication and this test's administration.
            ("super.users", "User:ANONYMOUS"),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
        ],
    );
    let topic = "guarded";
    let _ = run_python(
        "ck_cluster.py",
        &["create", &cluster.bootstrap(), topic, "3", "3"],
    );
    let plain = "{}";
    let via: Vec<String> = cluster.brokers.iter().map(Broker::bootstrap).collect();
    let out = sec(
        "sec_ck.py",
        &[
            "scram-upsert",
            &via[0],
            plain,
            "alice",
            "alice-secret",
            "SCRAM-SHA-512",
        ],
    );
    assert_eq!(out, "upserted alice SCRAM-SHA-512");
    let out = sec(
        "sec_acl.py",
        &[
            "create",
            &via[1],
            plain,
            &format!("TOPIC:{topic}:LITERAL:User=alice:WRITE:ALLOW"),
        ],
    );
    assert_eq!(out, "created 1");

    // Alice authenticates at the third broker, which took neither change, and produces to
    // all three partitions (one led by each broker).
    let alice = r#"{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice", "sasl.password": "alice-secret"}"#;
    let sasl_at = |i: usize, cluster: &Cluster| format!("127.0.0.1:{}", cluster.extra_ports[i]);
    let produced = poll_until(Duration::from_secs(30), || {
        let out = sec(
            "sec_ck.py",
            &["produce", &sasl_at(2, &cluster), alice, topic],
        );
        (out == "delivered 5").then_some(out)
    });
    assert!(
        produced.is_some(),
        "alice produces through broker 3: {}",
        sec(
            "sec_ck.py",
            &["produce", &sasl_at(2, &cluster), alice, topic]
        )
    );
    let wrong = r#"{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice", "sasl.password": "not-her-secret"}"#;
    let out = sec(
        "sec_ck.py",
        &["authfail", &sasl_at(1, &cluster), wrong, topic],
    );
    assert!(out.starts_with("authentication refused"), "{out}");

    // A restarted broker keeps both (its mirror, then the quorum's replay).
    cluster.brokers[0].kill9();
    cluster.brokers[0].respawn();
    cluster.brokers[0].wait_until_serving();
    let out = sec(
        "sec_ck.py",
        &["produce", &sasl_at(0, &cluster), alice, topic],
    );
    assert_eq!(out, "delivered 5", "after broker 1 restarted");

    // The ACL deleted through broker 1 stops alice at broker 2.
    let out = sec(
        "sec_acl.py",
        &[
            "delete",
            &via[0],
            plain,
            &format!("TOPIC:{topic}:LITERAL:User=alice:ANY:ANY"),
        ],
    );
    assert!(out.starts_with("deleted 1"), "{out}");
    let out = sec(
        "sec_ck.py",
        &["produce", &sasl_at(1, &cluster), alice, topic],
    );
    assert_eq!(out, "error TOPIC_AUTHORIZATION_FAILED");
}

/// A security helper script's one-line answer.
fn sec(script: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&run_python(script, args).stdout)
        .trim()
        .to_owned()
}

/// Brokers talk to each other over TLS only, as across availability zones: they replicate
/// over SASL_SSL (certificates checked against the cluster's CA, logged in with
/// SCRAM-SHA-512 as `User:broker`, which the authorizer lets replicate), and the metadata
/// quorum runs on an SSL listener that requires client certificates. Until the broker user
/// exists no follower can log in and acks=all cannot complete; once it is created (through
/// any broker: it is cluster metadata), every ISR fills and a leader's loss loses nothing
/// acknowledged.
#[test]
fn brokers_replicate_over_sasl_ssl_as_a_scram_user() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = secure::make_pki(pki_dir.path());
    let keystore = pki.server_keystore.display().to_string();
    let ca = pki.ca.display().to_string();
    let jaas = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-secret";"#;
    let mut cluster = Cluster::start_with(
        3,
        Some("SASL_SSL"),
        &[
            ("inter.broker.listener.name", "SASL_SSL"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            ),
            ("listener.name.controller.ssl.client.auth", "required"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", &keystore),
            ("ssl.truststore.location", &ca),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
            ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
            (
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config",
                jaas,
            ),
            (
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            ),
            // PLAINTEXT (loopback) is this test's administration; SASL_SSL replicates.
            ("super.users", "User:broker;User:ANONYMOUS"),
        ],
    );
    // The quorum's port speaks TLS only: plain bytes get a TLS alert back, not Raft.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", cluster.controller_ports[0])).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut raw, b"\x00\x00\x00\x05hello").unwrap();
    let mut answer = [0u8; 2];
    let read = std::io::Read::read(&mut raw, &mut answer).unwrap_or(0);
    assert_eq!(
        (read, answer[0]),
        (2, 0x15),
        "a TLS alert record from the quorum's port"
    );

    let bootstrap = cluster.bootstrap();
    let out = sec(
        "sec_ck.py",
        &[
            "scram-upsert",
            &cluster.brokers[1].bootstrap(),
            "{}",
            "broker",
            "broker-secret",
            "SCRAM-SHA-512",
        ],
    );
    assert_eq!(out, "upserted broker SCRAM-SHA-512");
    let topic = "over-tls";
    let _ = run_python("ck_cluster.py", &["create", &bootstrap, topic, "3", "3"]);
    let acked = cluster.brokers[0].scratch_dir().join("acked.txt");
    let acked = acked.to_str().unwrap().to_owned();
    let produced = json_of(&run_python(
        "ck_cluster.py",
        &["produce", &bootstrap, topic, "tls", "1000", &acked],
    ));
    assert_eq!(produced["acked"].as_i64(), Some(1000), "{produced}");
    let full = full_isrs(&bootstrap, topic).expect("every ISR fills over SASL_SSL");

    let victim = full["partitions"][0]["leader"].as_i64().unwrap();
    cluster.brokers[(victim - 1) as usize].kill9();
    let survivors = cluster.bootstrap_without(victim);
    let read = json_of(&run_python(
        "ck_cluster.py",
        &["verify", &survivors, topic, &acked],
    ));
    assert_eq!(read["acked"].as_i64(), Some(1000), "{read}");
}
