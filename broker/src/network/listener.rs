//! What a listener needs beyond its socket: the TLS acceptor of SSL/SASL_SSL listeners and
//! the SASL mechanisms of SASL listeners, built once at start-up from the config so that a
//! bad key store or mechanism list stops the broker before it accepts anything.

use std::net::SocketAddr;

use strata_config::{BrokerConfig, Listener};

use super::{tls, ListenerContext};
use crate::security::sasl;

impl ListenerContext {
    /// A listener without TLS or SASL (tests, internal use).
    pub fn plaintext(name: &str, local_addr: SocketAddr) -> ListenerContext {
        ListenerContext {
            name: name.into(),
            local_addr,
            tls: None,
            sasl_mechanisms: Vec::new(),
        }
    }

    /// The context of `listener` per its security protocol and `ssl.*` / `sasl.*` keys.
    pub fn for_listener(
        config: &BrokerConfig,
        listener: &Listener,
        local_addr: SocketAddr,
    ) -> anyhow::Result<ListenerContext> {
        let mut context = ListenerContext::plaintext(&listener.name, local_addr);
        if listener.security_protocol.uses_tls() {
            let server = tls::server_config(config, &listener.name)?;
            context.tls = Some(tls::TlsListener(tokio_rustls::TlsAcceptor::from(server)));
        }
        if listener.security_protocol.uses_sasl() {
            context.sasl_mechanisms = sasl::enabled_mechanisms(config, &listener.name)?;
        }
        Ok(context)
    }
}

/// The key that lets a broker listen beyond loopback without authentication.
pub const ALLOW_UNAUTHENTICATED: &str = "strata.allow.unauthenticated.listeners";

/// Refuses a listener that binds beyond loopback and authenticates nobody (PLAINTEXT, or SSL
/// without `ssl.client.auth=required`) unless `strata.allow.unauthenticated.listeners=true`:
/// an open broker on a network should be a decision, not a default.
pub fn check_unauthenticated_listeners(config: &BrokerConfig) -> anyhow::Result<()> {
    let allowed = config
        .get(ALLOW_UNAUTHENTICATED)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if allowed {
        return Ok(());
    }
    for listener in &config.listeners {
        if binds_loopback_only(&listener.host) || authenticates(config, listener) {
            continue;
        }
        anyhow::bail!(
            "listener {listener} accepts unauthenticated clients on a non-loopback address: \
             expected SASL_SSL, SASL_PLAINTEXT or SSL with ssl.client.auth=required there, or \
             {ALLOW_UNAUTHENTICATED}=true to allow it"
        );
    }
    Ok(())
}

fn authenticates(config: &BrokerConfig, listener: &Listener) -> bool {
    use strata_config::SecurityProtocol;
    match listener.security_protocol {
        SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl => true,
        SecurityProtocol::Ssl => config
            .listener_value(&listener.name, "ssl.client.auth")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("required")),
        _ => false,
    }
}

/// An empty host or a wildcard address binds every interface; names other than localhost
/// may resolve anywhere, so only loopback literals and `localhost` count as local.
pub fn binds_loopback_only(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BrokerConfig {
        let overrides: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut overrides = overrides;
        if !pairs.iter().any(|(k, _)| *k == "advertised.listeners") {
            // Wildcard binds need an address clients can reach.
            let advertised = pairs
                .iter()
                .find(|(k, _)| *k == "listeners")
                .map(|(_, v)| {
                    v.replace("0.0.0.0", "broker.example")
                        .replace("://:", "://broker.example:")
                })
                .unwrap_or_default();
            overrides.push(("advertised.listeners".to_owned(), advertised));
        }
        strata_config::load(None, &overrides).unwrap().config
    }

    #[test]
    fn unauthenticated_listeners_beyond_loopback_are_refused_unless_allowed() {
        let local = config(&[(
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,SSL://localhost:9094",
        )]);
        assert!(check_unauthenticated_listeners(&local).is_ok());
        for open in [
            "PLAINTEXT://0.0.0.0:9092",
            "PLAINTEXT://:9092",
            "SSL://10.1.2.3:9094",
        ] {
            let err = check_unauthenticated_listeners(&config(&[("listeners", open)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(ALLOW_UNAUTHENTICATED), "{open}: {err}");
            assert!(
                check_unauthenticated_listeners(&config(&[
                    ("listeners", open),
                    (ALLOW_UNAUTHENTICATED, "true")
                ]))
                .is_ok(),
                "{open}"
            );
        }
        let sasl = config(&[("listeners", "SASL_SSL://0.0.0.0:9093")]);
        assert!(check_unauthenticated_listeners(&sasl).is_ok());
        let mtls = config(&[
            ("listeners", "SSL://0.0.0.0:9094"),
            ("ssl.client.auth", "required"),
        ]);
        assert!(check_unauthenticated_listeners(&mtls).is_ok());
    }
}
