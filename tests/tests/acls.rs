//! ACLs end to end with confluent-kafka over SASL_SSL: WRITE without READ, ALLOW then
//! DENY, PREFIXED patterns, super users, Metadata hiding undescribable topics, group ACLs
//! for consumers; ACLs managed through AdminClient and kept across restarts. Also the
//! secure-by-default quickstart (`strata` on development defaults, SASL_SSL on 9093).
//!
//! The brokers here authorise with Kafka's StandardAuthorizer class name. The PLAINTEXT
//! listener's User:ANONYMOUS is a super user so the test can administer over it; `root`
//! (SCRAM) is the super user whose bypass is under test.

#![allow(clippy::unwrap_used)]

#[path = "support/secure.rs"]
mod secure;

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secure::SecureBroker;
use strata_tests::run_python;
use strata_tests::tools::{strata_bin, tail};
use strata_tests::wire::probe_api_versions;

fn acl_broker() -> SecureBroker {
    let broker = SecureBroker::start(
        &["SASL_SSL"],
        &[
            (
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_owned(),
            ),
            ("super.users", "User:ANONYMOUS;User:root".to_owned()),
        ],
    );
    for user in ["alice", "root"] {
        broker.add_user(user, &format!("{user}-secret"), "SCRAM-SHA-512");
    }
    broker
}

fn sasl(broker: &SecureBroker, user: &str) -> String {
    let password = format!("{user}-secret");
    broker.client_conf("SASL_SSL", Some(("SCRAM-SHA-512", user, &password)))
}

fn acl(broker: &SecureBroker, mode: &str, args: &[&str]) -> String {
    let conf = broker.client_conf("PLAINTEXT", None);
    let bootstrap = broker.bootstrap("PLAINTEXT");
    let mut all = vec![mode, bootstrap.as_str(), conf.as_str()];
    all.extend(args);
    String::from_utf8_lossy(&run_python("sec_acl.py", &all).stdout)
        .trim()
        .to_owned()
}

fn produce_as(broker: &SecureBroker, user: &str, topic: &str) -> String {
    broker.python("produce", "SASL_SSL", &sasl(broker, user), &[topic])
}

/// Topics exist before the users try them (auto-creation needs CREATE, tested apart).
fn create_topics(broker: &SecureBroker, topics: &[&str]) {
    let conf = broker.client_conf("PLAINTEXT", None);
    for topic in topics {
        let out = broker.python("produce", "PLAINTEXT", &conf, &[topic]);
        assert_eq!(out, "delivered 5", "{topic}");
    }
}

#[test]
fn acl_matrix_with_confluent_over_sasl_ssl() {
    let broker = acl_broker();
    create_topics(&broker, &["orders", "team-a.events", "secret"]);

    // No ACL: refused, and a topic the user may not DESCRIBE is hidden from Metadata.
    assert_eq!(
        produce_as(&broker, "alice", "orders"),
        "error TOPIC_AUTHORIZATION_FAILED"
    );
    let topics = broker.python("topics", "SASL_SSL", &sasl(&broker, "alice"), &[]);
    assert_eq!(topics, "topics");

    // ALLOW WRITE: produce works; WRITE implies DESCRIBE, so the topic becomes visible.
    let out = acl(
        &broker,
        "create",
        &["TOPIC:orders:LITERAL:User=alice:WRITE:ALLOW"],
    );
    assert_eq!(out, "created 1");
    assert_eq!(produce_as(&broker, "alice", "orders"), "delivered 5");
    let topics = broker.python("topics", "SASL_SSL", &sasl(&broker, "alice"), &[]);
    assert_eq!(topics, "topics orders");

    // WRITE without READ: consuming is refused (the group first, then the topic).
    let conf = sasl(&broker, "alice");
    let out = broker.python("consume", "SASL_SSL", &conf, &["orders", "g-alice"]);
    assert!(out.contains("GROUP_AUTHORIZATION_FAILED"), "{out}");
    acl(
        &broker,
        "create",
        &["GROUP:g-:PREFIXED:User=alice:READ:ALLOW"],
    );
    let out = broker.python("consume", "SASL_SSL", &conf, &["orders", "g-alice"]);
    assert!(out.contains("TOPIC_AUTHORIZATION_FAILED"), "{out}");
    acl(
        &broker,
        "create",
        &["TOPIC:orders:LITERAL:User=alice:READ:ALLOW"],
    );
    let out = broker.python("consume", "SASL_SSL", &conf, &["orders", "g-alice"]);
    assert_eq!(out, "consumed 5");
    // A group outside the prefixed ACL stays closed.
    let out = broker.python("consume", "SASL_SSL", &conf, &["orders", "other-group"]);
    assert!(out.contains("GROUP_AUTHORIZATION_FAILED"), "{out}");

    // DENY beats ALLOW, even an ALLOW ALL on every topic.
    acl(
        &broker,
        "create",
        &[
            "TOPIC:*:LITERAL:User=alice:ALL:ALLOW",
            "TOPIC:orders:LITERAL:User=alice:WRITE:DENY",
        ],
    );
    assert_eq!(
        produce_as(&broker, "alice", "orders"),
        "error TOPIC_AUTHORIZATION_FAILED"
    );
    acl(&broker, "delete", &["TOPIC:*:LITERAL:ANY:ANY:ANY"]);

    // PREFIXED: team-a.* opens, other topics stay closed, DESCRIBE follows.
    acl(
        &broker,
        "create",
        &["TOPIC:team-a.:PREFIXED:User=alice:WRITE:ALLOW"],
    );
    assert_eq!(produce_as(&broker, "alice", "team-a.events"), "delivered 5");
    assert_eq!(
        produce_as(&broker, "alice", "secret"),
        "error TOPIC_AUTHORIZATION_FAILED"
    );
    let topics = broker.python("topics", "SASL_SSL", &sasl(&broker, "alice"), &[]);
    assert_eq!(topics, "topics orders,team-a.events");

    // A super user needs no ACL.
    assert_eq!(produce_as(&broker, "root", "secret"), "delivered 5");
    let topics = broker.python("topics", "SASL_SSL", &sasl(&broker, "root"), &[]);
    assert_eq!(topics, "topics orders,secret,team-a.events");

    // Managing ACLs needs ALTER on the cluster.
    let out = run_python(
        "sec_acl.py",
        &[
            "create",
            &broker.bootstrap("SASL_SSL"),
            &sasl(&broker, "alice"),
            "TOPIC:secret:LITERAL:User=alice:ALL:ALLOW",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "error CLUSTER_AUTHORIZATION_FAILED"
    );
}

/// Transactional ids are resources of their own: a transactional producer needs WRITE on its
/// id (FindCoordinator needs DESCRIBE, which WRITE implies) besides WRITE on the topic.
#[test]
fn transactional_producers_need_write_on_their_transactional_id() {
    let broker = acl_broker();
    create_topics(&broker, &["payments"]);
    acl(
        &broker,
        "create",
        &["TOPIC:payments:LITERAL:User=alice:WRITE:ALLOW"],
    );
    let txn = |id: &str| {
        broker.python(
            "txn-produce",
            "SASL_SSL",
            &sasl(&broker, "alice"),
            &["payments", id],
        )
    };
    assert_eq!(txn("pay-1"), "error TRANSACTIONAL_ID_AUTHORIZATION_FAILED");
    acl(
        &broker,
        "create",
        &["TRANSACTIONAL_ID:pay-:PREFIXED:User=alice:WRITE:ALLOW"],
    );
    assert_eq!(txn("pay-1"), "committed 5");
    assert_eq!(
        txn("other-1"),
        "error TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
    );
}

/// Without `authorizer.class.name` nothing enforces ACLs, so the ACL APIs answer
/// SECURITY_DISABLED (54), as Kafka's broker does, instead of storing ACLs that do nothing.
/// (librdkafka reports the DescribeAcls error as an empty list, so that one is read raw.)
#[test]
fn acl_apis_without_an_authorizer_say_security_is_disabled() {
    use kafka_protocol::messages::{ApiKey, DescribeAclsRequest, DescribeAclsResponse};
    use strata_tests::RawConnection;

    let broker = SecureBroker::start(&["SASL_SSL"], &[]);
    for mode in ["create", "delete"] {
        assert_eq!(
            acl(
                &broker,
                mode,
                &["TOPIC:orders:LITERAL:User=alice:WRITE:ALLOW"]
            ),
            "error SECURITY_DISABLED",
            "{mode}"
        );
    }
    let addr = broker.bootstrap("PLAINTEXT").parse().unwrap();
    let mut conn = RawConnection::connect(addr).unwrap();
    // Match anything: resource type, pattern type, operation and permission ANY (1).
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    let id = conn
        .send_request(ApiKey::DescribeAcls, 3, &request)
        .unwrap();
    let response: DescribeAclsResponse = conn
        .read_response(
            ApiKey::DescribeAcls,
            3,
            id,
            std::time::Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(response.error_code, 54, "{response:?}");
}

#[test]
fn acls_via_admin_client_survive_restart() {
    let mut broker = acl_broker();
    let out = acl(
        &broker,
        "create",
        &[
            "TOPIC:payments:LITERAL:User=bob:READ:ALLOW",
            "TOPIC:pay:PREFIXED:User=bob:WRITE:ALLOW",
            "GROUP:billing:LITERAL:User=carol:READ:DENY",
        ],
    );
    assert_eq!(out, "created 3");
    let all = "TOPIC:payments:LITERAL:User=bob:READ:ALLOW\n\
               TOPIC:pay:PREFIXED:User=bob:WRITE:ALLOW\n\
               GROUP:billing:LITERAL:User=carol:READ:DENY";
    let mut expected: Vec<&str> = all.lines().map(str::trim).collect();
    expected.sort_unstable();
    let expected = expected.join("\n");
    assert_eq!(
        acl(&broker, "describe", &["ANY:ANY:ANY:ANY:ANY:ANY"]),
        expected
    );
    // MATCH finds every pattern that applies to the named resource.
    assert_eq!(
        acl(&broker, "describe", &["TOPIC:payments:MATCH:ANY:ANY:ANY"]),
        "TOPIC:pay:PREFIXED:User=bob:WRITE:ALLOW\nTOPIC:payments:LITERAL:User=bob:READ:ALLOW"
    );
    assert_eq!(
        acl(&broker, "describe", &["TOPIC:ANY:PREFIXED:ANY:ANY:ANY"]),
        "TOPIC:pay:PREFIXED:User=bob:WRITE:ALLOW"
    );

    broker.restart();
    assert_eq!(
        acl(&broker, "describe", &["ANY:ANY:ANY:ANY:ANY:ANY"]),
        expected
    );

    let out = acl(&broker, "delete", &["ANY:ANY:ANY:User=bob:ANY:ANY"]);
    assert_eq!(
        out,
        "deleted 2\nTOPIC:pay:PREFIXED:User=bob:WRITE:ALLOW\nTOPIC:payments:LITERAL:User=bob:READ:ALLOW"
    );
    broker.restart();
    assert_eq!(
        acl(&broker, "describe", &["ANY:ANY:ANY:ANY:ANY:ANY"]),
        "GROUP:billing:LITERAL:User=carol:READ:DENY"
    );
}

/// `strata` on development defaults binds 127.0.0.1:9092 and :9093 for real, so this is the
/// only test that does; it skips (saying why) when either port is taken.
#[test]
fn secure_by_default_quickstart_serves_sasl_ssl_from_client_properties() {
    for port in [9092, 9093] {
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            eprintln!(
                "SKIPPED: 127.0.0.1:{port} is in use; the quickstart test needs 9092 and 9093"
            );
            return;
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("strata-quickstart-")
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    let log_path = dir.path().join("broker.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let spawn = || -> Child {
        Command::new(strata_bin())
            .args([
                "--override",
                &format!("log.dirs={}", data.display()),
                // Other tests' brokers may hold the default metrics port.
                "--override",
                "metrics.listener=http://127.0.0.1:0",
            ])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log.try_clone().unwrap())
            .spawn()
            .unwrap()
    };
    let read_log =
        || String::from_utf8_lossy(&std::fs::read(&log_path).unwrap_or_default()).into_owned();
    let wait_ready = |child: &mut Child| {
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in [9092u16, 9093] {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            // 9093 speaks TLS first, so only a TCP connect is a fair readiness check there.
            while (port == 9092 && probe_api_versions(addr, Duration::from_secs(2)).is_err())
                || (port == 9093
                    && std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err())
            {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "strata exited with {status}:\n{}",
                        tail(read_log().as_bytes())
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "strata did not start:\n{}",
                    tail(read_log().as_bytes())
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let mut guard = KillOnDrop(spawn());
    wait_ready(&mut guard.0);
    let properties = data.join("client.properties");
    assert!(
        read_log().contains(&properties.display().to_string()),
        "strata prints where client.properties is:\n{}",
        read_log()
    );
    let text = std::fs::read_to_string(&properties).unwrap();
    for line in [
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-512",
        "ssl.truststore.type=PEM",
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\"",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let conf = String::from_utf8_lossy(
        &run_python(
            "sec_acl.py",
            &["configs-json", "-", "{}", &properties.display().to_string()],
        )
        .stdout,
    )
    .trim()
    .to_owned();
    let roundtrip = |topic: &str| {
        let out = run_python("sec_ck.py", &["roundtrip", "127.0.0.1:9093", &conf, topic]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert!(roundtrip("quickstart").contains("roundtrip ok"));
    // A wrong password on the same listener is refused.
    let wrong = conf.replace("\"sasl.password\": \"", "\"sasl.password\": \"x");
    let out = run_python(
        "sec_ck.py",
        &["authfail", "127.0.0.1:9093", &wrong, "quickstart"],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("authentication refused"));

    // A restart reuses the material: same client.properties, still working.
    drop(guard);
    let mut guard = KillOnDrop(spawn());
    wait_ready(&mut guard.0);
    assert_eq!(std::fs::read_to_string(&properties).unwrap(), text);
    assert!(roundtrip("quickstart-2").contains("roundtrip ok"));
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
