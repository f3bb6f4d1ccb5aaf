//! Secure by default: when `strata` runs on development defaults (no `--config`, no
//! `listeners` given), it also opens SASL_SSL on 127.0.0.1:9093. On first start this module
//! makes what that listener needs in the data dir — a CA, a server certificate for
//! localhost/127.0.0.1, an `admin` SCRAM-SHA-512 user with a random password (stored hashed)
//! — and a `client.properties` that Kafka's tools and clients use unchanged.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::RngCore;

use super::bootstrap::{add_scram, ScramSpec, DEFAULT_ITERATIONS};
use super::scram::ScramMechanism;

/// The SASL_SSL listener's address on development defaults.
pub const SECURE_LISTENER: &str = "SASL_SSL://127.0.0.1:9093";
/// The plaintext listener kept for local development.
pub const PLAINTEXT_LISTENER: &str = "PLAINTEXT://127.0.0.1:9092";
pub const ADMIN_USER: &str = "admin";
pub const CLIENT_PROPERTIES: &str = "client.properties";
pub const CA_FILE: &str = "ca.pem";
/// The server's private key followed by its certificate chain (ssl.keystore.type=PEM).
pub const SERVER_KEYSTORE: &str = "server-keystore.pem";

/// What the quickstart made or found, and the config it needs.
#[derive(Debug)]
pub struct Quickstart {
    pub client_properties: PathBuf,
    /// True when this start generated the files (first start).
    pub created: bool,
    /// Config keys to add to the development defaults.
    pub overrides: Vec<(String, String)>,
}

/// Makes (first start) or reuses the quickstart material in `data_dir`.
pub fn prepare(data_dir: &Path) -> anyhow::Result<Quickstart> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let data_dir = std::fs::canonicalize(data_dir)
        .with_context(|| format!("cannot resolve the data dir {}", data_dir.display()))?;
    let ca = data_dir.join(CA_FILE);
    let keystore = data_dir.join(SERVER_KEYSTORE);
    let client_properties = data_dir.join(CLIENT_PROPERTIES);
    let mut created = false;
    if !(ca.exists() && keystore.exists()) {
        let (ca_pem, keystore_pem) = generate_certificates()?;
        write_private(&keystore, keystore_pem.as_bytes())?;
        write_file(&ca, ca_pem.as_bytes())?;
        created = true;
    }
    if !client_properties.exists() {
        let password = random_password();
        add_scram(
            &data_dir,
            &[ScramSpec {
                mechanism: ScramMechanism::Sha512,
                user: ADMIN_USER.to_owned(),
                password: password.clone(),
                iterations: DEFAULT_ITERATIONS,
            }],
        )
        .context("cannot store the admin's SCRAM credentials")?;
        write_private(
            &client_properties,
            client_properties_text(&password, &ca).as_bytes(),
        )?;
        created = true;
    }
    let listener = |key: &str| format!("listener.name.sasl_ssl.{key}");
    let overrides = vec![
        (
            "listeners".to_owned(),
            format!("{PLAINTEXT_LISTENER},{SECURE_LISTENER}"),
        ),
        (listener("ssl.keystore.type"), "PEM".to_owned()),
        (
            listener("ssl.keystore.location"),
            keystore.display().to_string(),
        ),
        (
            listener("sasl.enabled.mechanisms"),
            "SCRAM-SHA-512,SCRAM-SHA-256".to_owned(),
        ),
    ];
    Ok(Quickstart {
        client_properties,
        created,
        overrides,
    })
}

/// Kafka's client.properties for the admin over SASL_SSL. librdkafka-based clients map these
/// keys (security.protocol, sasl.mechanism, and username/password from the JAAS line).
fn client_properties_text(password: &str, ca: &Path) -> String {
    format!(
        "# Written by strata on first start: the admin user over SASL_SSL on 127.0.0.1:9093.\n\
         # kafka-console-producer --bootstrap-server 127.0.0.1:9093 --producer.config <this file>\n\
         security.protocol=SASL_SSL\n\
         sasl.mechanism=SCRAM-SHA-512\n\
         sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{ADMIN_USER}\" password=\"{password}\";\n\
         ssl.truststore.type=PEM\n\
         ssl.truststore.location={}\n",
        ca.display()
    )
}

/// 24 random bytes as URL-safe base64: 192 bits, and no character the JAAS line must escape.
fn random_password() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A CA (its key is dropped: nothing else is ever signed) and a server certificate for
/// localhost and 127.0.0.1 signed by it. Returns (CA PEM, server key + chain PEM).
fn generate_certificates() -> anyhow::Result<(String, String)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Strata local CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().context("generating the server key")?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let server_cert = params.signed_by(&server_key, &issuer)?;
    let keystore = format!(
        "{}{}{}",
        server_key.serialize_pem(),
        server_cert.pem(),
        ca_cert.pem()
    );
    Ok((ca_cert.pem(), keystore))
}

fn write_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    crate::metadata::durable_file::write_atomically(path, contents)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Secrets are readable by the owner only, from the moment they exist.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::credentials::{CredentialStore, CREDENTIALS_FILE};

    #[test]
    fn first_start_creates_everything_and_second_start_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = prepare(dir.path()).unwrap();
        assert!(first.created);
        let text = std::fs::read_to_string(&first.client_properties).unwrap();
        assert!(text.contains("security.protocol=SASL_SSL"));
        assert!(text.contains("sasl.mechanism=SCRAM-SHA-512"));
        assert!(text.contains("ssl.truststore.type=PEM"));
        let password = text
            .split("password=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap();
        assert!(password.len() >= 32, "{password}");
        let store = CredentialStore::open(dir.path().join(CREDENTIALS_FILE)).unwrap();
        assert!(store.check_password(ADMIN_USER, password));
        let stored = std::fs::read_to_string(dir.path().join(CREDENTIALS_FILE)).unwrap();
        assert!(!stored.contains(password), "the password is stored hashed");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first.client_properties)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "client.properties is private");

        let second = prepare(dir.path()).unwrap();
        assert!(!second.created);
        assert_eq!(
            std::fs::read_to_string(&second.client_properties).unwrap(),
            text
        );
        assert!(second
            .overrides
            .iter()
            .any(|(k, v)| k == "listeners" && v.contains("SASL_SSL://127.0.0.1:9093")));
    }

    #[test]
    fn generated_keystore_loads_as_a_tls_listener() {
        let dir = tempfile::tempdir().unwrap();
        let q = prepare(dir.path()).unwrap();
        let config = strata_config::load(None, &q.overrides).unwrap().config;
        let listener = config
            .listeners
            .iter()
            .find(|l| &*l.name == "SASL_SSL")
            .unwrap();
        let addr = "127.0.0.1:9093".parse().unwrap();
        let context =
            crate::network::ListenerContext::for_listener(&config, listener, addr).unwrap();
        assert!(context.tls.is_some());
        assert!(!context.sasl_mechanisms.is_empty());
    }
}
