//! A strata process with TLS and SASL listeners (certificates from the openssl CLI), shared
//! by the security and ACL end-to-end tests.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strata_tests::tools::{run_with_deadline, strata_bin, tail};
use strata_tests::wire::probe_api_versions;
use strata_tests::{free_port, run_python};
use tempfile::TempDir;

pub const MECHANISMS: &str = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512";

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate.
pub struct Pki {
    pub ca: PathBuf,
    pub server_keystore: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.args(args).current_dir(dir);
    let out = run_with_deadline(cmd, None, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn make_pki(dir: &Path) -> Pki {
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
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
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
pub struct SecureBroker {
    pub child: Option<Child>,
    pub dir: TempDir,
    pub args: Vec<String>,
    pub plaintext: u16,
    pub ports: Vec<(String, u16)>,
    pub pki: Pki,
}

impl SecureBroker {
    /// `listeners` are protocol names (SSL, SASL_SSL, ...); `extra` more overrides.
    pub fn start(listeners: &[&str], extra: &[(&str, String)]) -> SecureBroker {
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

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn spawn(&mut self) {
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

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn port(&self, listener: &str) -> u16 {
        self.ports
            .iter()
            .find(|(n, _)| n == listener)
            .map(|(_, p)| *p)
            .unwrap()
    }

    pub fn bootstrap(&self, listener: &str) -> String {
        match listener {
            "PLAINTEXT" => format!("127.0.0.1:{}", self.plaintext),
            other => format!("127.0.0.1:{}", self.port(other)),
        }
    }

    /// librdkafka settings for `listener`, with SASL credentials when given.
    pub fn client_conf(&self, listener: &str, sasl: Option<(&str, &str, &str)>) -> String {
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

    pub fn python(&self, mode: &str, listener: &str, conf: &str, args: &[&str]) -> String {
        let bootstrap = self.bootstrap(listener);
        let mut all = vec![mode, bootstrap.as_str(), conf];
        all.extend(args);
        let out = run_python("sec_ck.py", &all);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn add_user(&self, user: &str, password: &str, mechanism: &str) {
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
