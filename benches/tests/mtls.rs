//! strata-perf's client certificates: a broker whose SSL listener requires one admits the
//! load tool with a PEM key store (Java's keys or librdkafka's) and refuses it without one.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use strata_benches::client::KafkaConnection;
use strata_benches::inproc::InProcessBroker;
use strata_benches::ops;
use strata_benches::security::ClientSecurity;

/// A CA's certificate PEM and its issuer.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// A private key and certificate signed by `issuer`: (key PEM, certificate PEM).
fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    names: &[&str],
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).unwrap();
    (key.serialize_pem(), cert.pem())
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn client_certificates_from_pem_key_stores_pass_a_broker_that_requires_them() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path();
    let (ca_pem, issuer) = ca("perf test CA");
    let ca_file = write(dir, "ca.pem", &ca_pem);
    let (server_key, server_cert) = leaf(
        &issuer,
        &["localhost", "127.0.0.1"],
        "localhost",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let server_store = write(dir, "server.pem", &format!("{server_key}{server_cert}"));
    let (client_key, client_cert) = leaf(
        &issuer,
        &[],
        "perf-client",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let client_store = write(dir, "client.pem", &format!("{client_key}{client_cert}"));
    let client_key_file = write(dir, "client.key", &client_key);
    let client_cert_file = write(dir, "client.crt", &client_cert);
    let (_, stranger) = ca("another CA");
    let (stranger_key, stranger_cert) = leaf(
        &stranger,
        &[],
        "stranger",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let stranger_store = write(
        dir,
        "stranger.pem",
        &format!("{stranger_key}{stranger_cert}"),
    );

    let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
    let (broker, ssl) = InProcessBroker::start_with_listener(
        runtime.clone(),
        "SSL",
        &[
            ("listener.name.ssl.ssl.keystore.type", "PEM"),
            ("listener.name.ssl.ssl.keystore.location", &server_store),
            ("listener.name.ssl.ssl.truststore.type", "PEM"),
            ("listener.name.ssl.ssl.truststore.location", &ca_file),
            ("listener.name.ssl.ssl.client.auth", "required"),
        ],
    )
    .unwrap();
    let java = format!(
        "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca_file}\n\
         ssl.keystore.type=PEM\nssl.keystore.location={client_store}\n"
    );
    let librdkafka = format!(
        "security.protocol=SSL\nssl.ca.location={ca_file}\n\
         ssl.certificate.location={client_cert_file}\nssl.key.location={client_key_file}\n"
    );
    let inline = format!(
        "security.protocol=SSL\nssl.truststore.location={ca_file}\n\
         ssl.keystore.certificate.chain={}\nssl.keystore.key={}\n",
        client_cert.replace('\n', "\\n"),
        client_key.replace('\n', "\\n"),
    );
    let without = format!("security.protocol=SSL\nssl.truststore.location={ca_file}\n");
    let foreign = format!(
        "security.protocol=SSL\nssl.truststore.location={ca_file}\nssl.keystore.location={stranger_store}\n"
    );
    runtime.block_on(async {
        // Java's key store file: produce and fetch.
        let security = ClientSecurity::from_properties(&java).unwrap();
        let mut conn = KafkaConnection::connect_with(&ssl, "test", &security)
            .await
            .unwrap();
        let versions = ops::negotiate(&mut conn).await.unwrap();
        common::produce_and_fetch(&mut conn, &versions, "mtls", 10, 2).await;

        // librdkafka's key and certificate files, and the PEM text inline.
        for (name, text) in [("librdkafka", &librdkafka), ("inline", &inline)] {
            let security = ClientSecurity::from_properties(text).unwrap();
            let mut conn = KafkaConnection::connect_with(&ssl, "test", &security)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let offsets = ops::earliest_offsets(&mut conn, &versions, "mtls", &[0])
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(offsets, [(0, 0)], "{name}");
        }

        // No certificate, or one the broker's CA did not sign: refused (with TLS 1.3 the
        // client learns it at its first read, so ask for something).
        for (name, text) in [("without", &without), ("foreign", &foreign)] {
            let security = ClientSecurity::from_properties(text).unwrap();
            let admitted = match KafkaConnection::connect_with(&ssl, "test", &security).await {
                Ok(mut conn) => ops::negotiate(&mut conn).await.is_ok(),
                Err(_) => false,
            };
            assert!(!admitted, "{name}: admitted");
        }
    });
    drop(broker);
}

#[test]
fn key_stores_the_tool_cannot_read_are_refused_by_name() {
    let cases = [
        (
            "security.protocol=SSL\nssl.keystore.type=PKCS12\nssl.keystore.location=/x.p12\n",
            "ssl.keystore.type",
        ),
        (
            "security.protocol=SSL\nssl.keystore.location=/nonexistent/client.pem\n",
            "ssl.keystore.location",
        ),
        (
            "security.protocol=SSL\nssl.certificate.location=/c.pem\n",
            "ssl.keystore.location",
        ),
    ];
    for (text, key) in cases {
        let err = ClientSecurity::from_properties(text).unwrap_err();
        assert!(err.to_string().starts_with(key), "{text}: {err}");
    }
    let pki = tempfile::tempdir().unwrap();
    let (_, issuer) = ca("CA");
    let (key, cert) = leaf(&issuer, &[], "c", ExtendedKeyUsagePurpose::ClientAuth);
    let store = write(pki.path(), "client.pem", &format!("{key}{cert}"));
    let encrypted =
        format!("security.protocol=SSL\nssl.keystore.location={store}\nssl.key.password=secret\n");
    let err = ClientSecurity::from_properties(&encrypted).unwrap_err();
    assert!(err.to_string().starts_with("ssl.key.password"), "{err}");
    let keyless = write(pki.path(), "cert-only.pem", &cert);
    let err = ClientSecurity::from_properties(&format!(
        "security.protocol=SSL\nssl.keystore.location={keyless}\n"
    ))
    .unwrap_err();
    assert!(err.to_string().contains("private key"), "{err}");
}
