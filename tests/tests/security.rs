//! Security end to end: TLS (server-only and mutual), SASL PLAIN and SCRAM over
//! SASL_PLAINTEXT and SASL_SSL, driven by confluent-kafka, kcat and raw sockets; wrong
//! passwords refused with nothing written; SCRAM credentials managed with the admin API
//! and kept across restarts; the `strata add-scram` bootstrap. Certificates come from the
//! openssl CLI, made fresh per test.

// Helpers here are test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, MetadataRequest, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use strata_tests::tools::{run_with_deadline, strata_bin, tail};
use strata_tests::wire::probe_api_versions;
use strata_tests::{free_port, run_kcat, run_python, FrameOutcome, RawConnection};
use tempfile::TempDir;

const MECHANISMS: &str = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512";

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate.
struct Pki {
    ca: PathBuf,
    server_keystore: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.args(args).current_dir(dir);
    let out = run_with_deadline(cmd, None, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_pki(dir: &Path) -> Pki {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req", "-x509", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem",
    ];
    ca.extend(ec);
    ca.extend([
        "-subj",
        "/CN=Strata Test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    for (name, subject, ext) in [
        (
            "server",
            "/CN=localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        (
            "client",
            "/C=US/O=Strata/CN=client-1",
            "extendedKeyUsage=clientAuth\n",
        ),
    ] {
        let (key, csr, pem, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        std::fs::write(
            dir.join(&extfile),
            format!("basicConstraints=CA:FALSE\n{ext}"),
        )
        .unwrap();
        let mut req = vec!["req", "-keyout", &key, "-out", &csr, "-subj", subject];
        req.extend(ec);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &extfile,
            ],
        );
    }
    // Kafka's PEM key store: the private key and the certificate chain in one file.
    let keystore = dir.join("server.keystore.pem");
    let mut contents = std::fs::read(dir.join("server.key")).unwrap();
    contents.extend(std::fs::read(dir.join("server.pem")).unwrap());
    std::fs::write(&keystore, contents).unwrap();
    Pki {
        ca: dir.join("ca.pem"),
        server_keystore: keystore,
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    }
}

/// A strata process with several listeners: PLAINTEXT (readiness, admin) plus the ones
/// under test, each on its own free port.
struct SecureBroker {
    child: Option<Child>,
    dir: TempDir,
    args: Vec<String>,
    plaintext: u16,
    ports: Vec<(String, u16)>,
    pki: Pki,
}

impl SecureBroker {
    /// `listeners` are protocol names (SSL, SASL_SSL, ...); `extra` more overrides.
    fn start(listeners: &[&str], extra: &[(&str, String)]) -> SecureBroker {
        let dir = tempfile::Builder::new()
            .prefix("strata-sec-")
            .tempdir()
            .unwrap();
        let pki = make_pki(dir.path());
        let plaintext = free_port();
        let ports: Vec<(String, u16)> = listeners
            .iter()
            .map(|l| ((*l).to_owned(), free_port()))
            .collect();
        let mut spec = format!("PLAINTEXT://127.0.0.1:{plaintext}");
        for (name, port) in &ports {
            spec.push_str(&format!(",{name}://127.0.0.1:{port}"));
        }
        let mut overrides = vec![
            ("listeners".to_owned(), spec),
            (
                "log.dirs".to_owned(),
                dir.path().join("data").display().to_string(),
            ),
            (
                "metrics.listener".to_owned(),
                "http://127.0.0.1:0".to_owned(),
            ),
            ("ssl.keystore.type".to_owned(), "PEM".to_owned()),
            (
                "ssl.keystore.location".to_owned(),
                pki.server_keystore.display().to_string(),
            ),
            // Per listener, as operators often write it; used only when client auth is on.
            (
                "listener.name.ssl.ssl.truststore.location".to_owned(),
                pki.ca.display().to_string(),
            ),
            ("sasl.enabled.mechanisms".to_owned(), MECHANISMS.to_owned()),
            ("offsets.topic.num.partitions".to_owned(), "2".to_owned()),
            (
                "group.initial.rebalance.delay.ms".to_owned(),
                "0".to_owned(),
            ),
        ];
        overrides.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let args = overrides
            .iter()
            .flat_map(|(k, v)| ["--override".to_owned(), format!("{k}={v}")])
            .collect();
        let mut broker = SecureBroker {
            child: None,
            dir,
            args,
            plaintext,
            ports,
            pki,
        };
        broker.spawn();
        broker
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(strata_bin())
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.plaintext));
        while probe_api_versions(addr, Duration::from_secs(2)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "strata exited with {status}:\n{}",
                    tail(self.log().as_bytes())
                );
            }
            assert!(
                Instant::now() < deadline,
                "strata did not start:\n{}",
                tail(self.log().as_bytes())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    fn port(&self, listener: &str) -> u16 {
        self.ports
            .iter()
            .find(|(n, _)| n == listener)
            .map(|(_, p)| *p)
            .unwrap()
    }

    fn bootstrap(&self, listener: &str) -> String {
        match listener {
            "PLAINTEXT" => format!("127.0.0.1:{}", self.plaintext),
            other => format!("127.0.0.1:{}", self.port(other)),
        }
    }

    /// librdkafka settings for `listener`, with SASL credentials when given.
    fn client_conf(&self, listener: &str, sasl: Option<(&str, &str, &str)>) -> String {
        let mut conf = vec![format!("\"security.protocol\": \"{listener}\"")];
        if listener.contains("SSL") {
            conf.push(format!(
                "\"ssl.ca.location\": \"{}\"",
                self.pki.ca.display()
            ));
        }
        if let Some((mechanism, user, password)) = sasl {
            conf.push(format!("\"sasl.mechanism\": \"{mechanism}\""));
            conf.push(format!("\"sasl.username\": \"{user}\""));
            conf.push(format!("\"sasl.password\": \"{password}\""));
        }
        format!("{{{}}}", conf.join(", "))
    }

    fn python(&self, mode: &str, listener: &str, conf: &str, args: &[&str]) -> String {
        let bootstrap = self.bootstrap(listener);
        let mut all = vec![mode, bootstrap.as_str(), conf];
        all.extend(args);
        let out = run_python("sec_ck.py", &all);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn add_user(&self, user: &str, password: &str, mechanism: &str) {
        let conf = self.client_conf("PLAINTEXT", None);
        let out = self.python(
            "scram-upsert",
            "PLAINTEXT",
            &conf,
            &[user, password, mechanism],
        );
        assert!(out.contains("upserted"), "{out}");
    }
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- strata log ---\n{}", tail(self.log().as_bytes()));
        }
    }
}

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
