//! TLS for SSL and SASL_SSL listeners (rustls, TLS 1.2 and 1.3 only): the server
//! configuration from Kafka's `ssl.*` keys (PEM key stores, per-listener overrides), the
//! client configuration of this broker's inter-broker connections, and the
//! principal of a client certificate — its subject, as Kafka's default mapping writes it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use strata_config::BrokerConfig;

/// A peer that has not finished the TLS handshake by then is dropped (Kafka bounds it with
/// its idle-connection timer; a fixed bound keeps half-open handshakes cheap).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    #[error("{key} of listener {listener}: {reason}")]
    Invalid {
        listener: String,
        key: &'static str,
        reason: String,
    },
    #[error("cannot read {key} of listener {listener} ({path}): {source}")]
    Read {
        listener: String,
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("TLS setup of listener {listener}: {source}")]
    Rustls {
        listener: String,
        source: rustls::Error,
    },
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// Builds the rustls server configuration of one TLS listener.
pub fn server_config(
    config: &BrokerConfig,
    listener: &str,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let invalid = |key: &'static str, reason: String| TlsConfigError::Invalid {
        listener: listener.to_owned(),
        key,
        reason,
    };
    let value = |key: &str| listener_value(config, listener, key);

    let (certs, key) = keystore(config, listener)?;
    let read = |key: &'static str, path: &str| read_key_file(listener, key, path);

    let client_auth = match value("ssl.client.auth").unwrap_or("none") {
        "none" => ClientAuth::None,
        "requested" => ClientAuth::Requested,
        "required" => ClientAuth::Required,
        other => {
            return Err(invalid(
                "ssl.client.auth",
                format!("expected none, requested or required, found {other}"),
            ))
        }
    };

    let versions = protocol_versions(value("ssl.enabled.protocols").unwrap_or("TLSv1.2,TLSv1.3"))
        .map_err(|reason| invalid("ssl.enabled.protocols", reason))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let rustls_error = |source| TlsConfigError::Rustls {
        listener: listener.to_owned(),
        source,
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(rustls_error)?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Requested | ClientAuth::Required => {
            let roots = trust_store(
                config,
                listener,
                &read,
                "ssl.client.auth asks for client certificates: expected a PEM trust store of client CAs, found none",
            )?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if client_auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| {
                invalid(
                    "ssl.truststore.location",
                    format!("cannot verify client certificates: {e}"),
                )
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let server = builder.with_single_cert(certs, key).map_err(rustls_error)?;
    Ok(Arc::new(server))
}

/// The rustls client configuration of this broker's connections to the other brokers'
/// TLS inter-broker `listener`: their certificates are checked against the listener's trust
/// store, and the listener's key store is presented when they ask for a client certificate
/// (`ssl.client.auth`), as Kafka's brokers do.
pub fn client_config(
    config: &BrokerConfig,
    listener: &str,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let read = |key: &'static str, path: &str| read_key_file(listener, key, path);
    let roots = trust_store(
        config,
        listener,
        &read,
        "a TLS inter-broker listener: expected a PEM trust store of the brokers' CA to verify them, found none",
    )?;
    let versions = protocol_versions(
        listener_value(config, listener, "ssl.enabled.protocols").unwrap_or("TLSv1.2,TLSv1.3"),
    )
    .map_err(|reason| TlsConfigError::Invalid {
        listener: listener.to_owned(),
        key: "ssl.enabled.protocols",
        reason,
    })?;
    let rustls_error = |source| TlsConfigError::Rustls {
        listener: listener.to_owned(),
        source,
    };
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&versions)
            .map_err(rustls_error)?
            .with_root_certificates(roots);
    let client = match keystore(config, listener) {
        Ok((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(rustls_error)?,
        Err(_) => builder.with_no_client_auth(),
    };
    Ok(Arc::new(client))
}

/// A listener's PEM key store: its certificate chain and private key (what it serves, and
/// what this broker presents as a client on the inter-broker listener).
#[allow(clippy::type_complexity)]
fn keystore(
    config: &BrokerConfig,
    listener: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsConfigError> {
    let invalid = |key: &'static str, reason: String| TlsConfigError::Invalid {
        listener: listener.to_owned(),
        key,
        reason,
    };
    let value = |key: &str| listener_value(config, listener, key);
    let explicit = |key: &str| {
        config.originals.contains_key(key)
            || config.originals.contains_key(&format!(
                "listener.name.{}.{key}",
                listener.to_ascii_lowercase()
            ))
    };

    // Kafka's default store type is JKS; Strata reads PEM only. An explicit other type is
    // refused; the untouched default is read as PEM (and fails clearly if it is not).
    for key in ["ssl.keystore.type", "ssl.truststore.type"] {
        let store_type = value(key).unwrap_or("PEM");
        if explicit(key) && !store_type.eq_ignore_ascii_case("PEM") {
            return Err(invalid(
                if key == "ssl.keystore.type" {
                    "ssl.keystore.type"
                } else {
                    "ssl.truststore.type"
                },
                format!("expected PEM (Strata reads PEM stores only), found {store_type}"),
            ));
        }
    }
    if value("ssl.key.password").is_some() {
        return Err(invalid(
            "ssl.key.password",
            "expected an unencrypted PEM private key (encrypted keys are not supported), found a key password".into(),
        ));
    }

    let read = |key: &'static str, path: &str| read_key_file(listener, key, path);
    let (cert_pem, key_pem, key_source) = match (
        value("ssl.keystore.certificate.chain"),
        value("ssl.keystore.key"),
        value("ssl.keystore.location"),
    ) {
        (Some(chain), Some(key), _) => (
            chain.as_bytes().to_vec(),
            key.as_bytes().to_vec(),
            "ssl.keystore.key",
        ),
        (Some(_), None, _) | (None, Some(_), _) => {
            return Err(invalid(
                "ssl.keystore.certificate.chain",
                "expected both ssl.keystore.certificate.chain and ssl.keystore.key, found one".into(),
            ))
        }
        (None, None, Some(path)) => {
            let pem = read("ssl.keystore.location", path)?;
            (pem.clone(), pem, "ssl.keystore.location")
        }
        (None, None, None) => {
            return Err(invalid(
                "ssl.keystore.location",
                "expected a PEM key store (ssl.keystore.location, or ssl.keystore.certificate.chain and ssl.keystore.key), found none".into(),
            ))
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            invalid(
                "ssl.keystore.certificate.chain",
                format!("expected PEM certificates: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(invalid(
            key_source,
            "expected at least one PEM CERTIFICATE block, found none".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        invalid(
            key_source,
            format!("expected an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;

    Ok((certs, key))
}

/// Reads the file `key` names, with both in the error.
fn read_key_file(listener: &str, key: &'static str, path: &str) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(Path::new(path)).map_err(|source| TlsConfigError::Read {
        listener: listener.to_owned(),
        key,
        path: path.to_owned(),
        source,
    })
}

/// A listener's value of `key`; blank counts as unset.
fn listener_value<'a>(config: &'a BrokerConfig, listener: &str, key: &str) -> Option<&'a str> {
    config
        .listener_value(listener, key)
        .filter(|v| !v.trim().is_empty())
}

/// The TLS acceptor of a listener (a newtype so that the listener context stays `Debug`).
#[derive(Clone)]
pub struct TlsListener(pub tokio_rustls::TlsAcceptor);

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsListener")
    }
}

/// Reads the file a key names, with the key in the error.
type ReadKeyFile<'a> = &'a dyn Fn(&'static str, &str) -> Result<Vec<u8>, TlsConfigError>;

fn trust_store(
    config: &BrokerConfig,
    listener: &str,
    read: ReadKeyFile<'_>,
    missing: &str,
) -> Result<RootCertStore, TlsConfigError> {
    let value = |key: &str| listener_value(config, listener, key);
    let (pem, key) = match (
        value("ssl.truststore.certificates"),
        value("ssl.truststore.location"),
    ) {
        (Some(inline), _) => (inline.as_bytes().to_vec(), "ssl.truststore.certificates"),
        (None, Some(path)) => (
            read("ssl.truststore.location", path)?,
            "ssl.truststore.location",
        ),
        (None, None) => {
            return Err(TlsConfigError::Invalid {
                listener: listener.to_owned(),
                key: "ssl.truststore.location",
                reason: missing.to_owned(),
            })
        }
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| TlsConfigError::Invalid {
            listener: listener.to_owned(),
            key,
            reason: format!("expected PEM certificates: {e}"),
        })?;
        roots.add(cert).map_err(|e| TlsConfigError::Invalid {
            listener: listener.to_owned(),
            key,
            reason: format!("expected CA certificates: {e}"),
        })?;
    }
    if roots.is_empty() {
        return Err(TlsConfigError::Invalid {
            listener: listener.to_owned(),
            key,
            reason: "expected at least one PEM CA certificate, found none".into(),
        });
    }
    Ok(roots)
}

/// `ssl.enabled.protocols` restricted to what rustls offers; older names are ignored with a
/// warning (Kafka itself disables them by default).
fn protocol_versions(list: &str) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let mut versions = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name {
            "TLSv1.3" => versions.push(&rustls::version::TLS13),
            "TLSv1.2" => versions.push(&rustls::version::TLS12),
            other => tracing::warn!(
                protocol = other,
                "TLS protocol not supported (TLSv1.2 and TLSv1.3 only); ignored"
            ),
        }
    }
    if versions.is_empty() {
        return Err(format!("expected TLSv1.2 and/or TLSv1.3, found {list:?}"));
    }
    Ok(versions)
}

/// The subject of a DER certificate as an RFC 2253 name (what Java's
/// `X500Principal.getName()` returns and Kafka uses as the principal name): RDNs from last to
/// first, `CN=client,OU=eng,O=acme`. `None` if the certificate cannot be read.
pub fn subject_name(cert_der: &[u8]) -> Option<String> {
    let (tag, certificate, _) = der_tlv(cert_der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, mut tbs, _) = der_tlv(certificate)?;
    if tag != 0x30 {
        return None;
    }
    // tbsCertificate: [0] version?, serial, signature, issuer, validity, subject, ...
    let (tag, _, rest) = der_tlv(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
        let (_, _, rest) = der_tlv(tbs)?; // serial
        tbs = rest;
    } else {
        tbs = rest; // that was the serial (v1 certificate)
    }
    for _ in 0..3 {
        let (_, _, rest) = der_tlv(tbs)?; // signature, issuer, validity
        tbs = rest;
    }
    let (tag, mut subject, _) = der_tlv(tbs)?;
    if tag != 0x30 {
        return None;
    }
    let mut rdns = Vec::new();
    while !subject.is_empty() {
        let (tag, mut set, rest) = der_tlv(subject)?;
        subject = rest;
        if tag != 0x31 {
            return None;
        }
        let mut attributes = Vec::new();
        while !set.is_empty() {
            let (tag, attribute, rest) = der_tlv(set)?;
            set = rest;
            if tag != 0x30 {
                return None;
            }
            let (tag, oid, value_tlv) = der_tlv(attribute)?;
            if tag != 0x06 {
                return None;
            }
            attributes.push(attribute_text(oid, value_tlv)?);
        }
        rdns.push(attributes.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// One DER tag-length-value: (tag, contents, rest). Single-byte tags; lengths up to 4 bytes.
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = rest.get(..n)?;
        rest = rest.get(n..)?;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let contents = rest.get(..len)?;
    Some((tag, contents, rest.get(len..)?))
}

fn attribute_text(oid: &[u8], value_tlv: &[u8]) -> Option<String> {
    let keyword = match oid {
        [0x55, 0x04, 0x03] => Some("CN"),
        [0x55, 0x04, 0x06] => Some("C"),
        [0x55, 0x04, 0x07] => Some("L"),
        [0x55, 0x04, 0x08] => Some("ST"),
        [0x55, 0x04, 0x09] => Some("STREET"),
        [0x55, 0x04, 0x0a] => Some("O"),
        [0x55, 0x04, 0x0b] => Some("OU"),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => Some("DC"),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => Some("UID"),
        _ => None,
    };
    let (tag, value, _) = der_tlv(value_tlv)?;
    let text = match tag {
        0x0c | 0x13 | 0x16 => std::str::from_utf8(value).ok().map(str::to_owned),
        0x14 => Some(value.iter().map(|&b| char::from(b)).collect()),
        0x1e => {
            let units: Vec<u16> = value
                .chunks(2)
                .map(|c| u16::from_be_bytes([*c.first().unwrap_or(&0), *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    };
    match (keyword, text) {
        (Some(keyword), Some(text)) => Some(format!("{keyword}={}", escape_rfc2253(&text))),
        // Unknown types print as dotted OID and the DER value in hex, as Java does.
        _ => {
            let encoded_len = value_tlv.len() - der_tlv(value_tlv)?.2.len();
            let hex: String = value_tlv
                .get(..encoded_len)?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Some(format!("{}=#{hex}", dotted_oid(oid)?))
        }
    }
}

fn dotted_oid(oid: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut current: u64 = 0;
    for &b in oid {
        current = current.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (current / 40).min(2);
                arcs.push(first);
                arcs.push(current - first * 40);
            } else {
                arcs.push(current);
            }
            current = 0;
        }
    }
    if arcs.is_empty() {
        return None;
    }
    Some(
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_written_last_rdn_first() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc");
        dn.push(rcgen::DnType::OrganizationalUnitName, "eng");
        dn.push(rcgen::DnType::CommonName, "client-1");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_name(cert.der()).as_deref(),
            Some("CN=client-1,OU=eng,O=Acme\\, Inc,C=US")
        );
    }

    #[test]
    fn garbage_certificates_have_no_subject() {
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x30\x01\x02",
        ] {
            assert_eq!(subject_name(bad), None);
        }
    }

    #[test]
    fn oids_print_dotted() {
        assert_eq!(
            dotted_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]).as_deref(),
            Some("1.2.840.113549.1.9.1")
        );
    }

    #[test]
    fn only_tls12_and_13_are_offered() {
        assert_eq!(protocol_versions("TLSv1.2,TLSv1.3").unwrap().len(), 2);
        assert_eq!(protocol_versions("TLSv1.1,TLSv1.3").unwrap().len(), 1);
        assert!(protocol_versions("TLSv1,TLSv1.1").is_err());
    }
}
