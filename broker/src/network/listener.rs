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
