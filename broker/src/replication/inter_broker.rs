//! How this broker connects to the others as a client (its replica fetchers), as Kafka's
//! brokers do on `inter.broker.listener.name`: TLS on SSL and SASL_SSL listeners (the
//! other brokers' certificates checked against the listener's trust store; the listener's
//! key store presented when they ask for one), and on SASL_* listeners a login with
//! `sasl.mechanism.inter.broker.protocol` (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) as the
//! user named in the listener's JAAS line
//! (`listener.name.<listener>.<mechanism>.sasl.jaas.config`, else `sasl.jaas.config`).

use std::sync::Arc;

use strata_config::{jaas_option, BrokerConfig, SecurityProtocol};

use crate::network::tls::{client_config, TlsConfigError};
use crate::security::scram::ScramMechanism;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InterBrokerConfigError {
    #[error("inter-broker TLS: {0}")]
    Tls(#[from] TlsConfigError),
    #[error(
        "sasl.mechanism.inter.broker.protocol: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 \
         for the SASL inter-broker listener {listener}, found {found}"
    )]
    Mechanism { listener: String, found: String },
    #[error(
        "the SASL inter-broker listener {listener} needs the brokers' own login: expected \
         {key} (or sasl.jaas.config) with username=\"...\" password=\"...\", found {found}"
    )]
    Login {
        listener: String,
        key: String,
        found: &'static str,
    },
}

/// The SASL login a broker uses on another broker's inter-broker listener.
#[derive(Clone)]
pub enum Login {
    Plain {
        username: String,
        password: String,
    },
    Scram {
        mechanism: ScramMechanism,
        username: String,
        password: String,
    },
}

impl Login {
    pub fn mechanism_name(&self) -> &'static str {
        match self {
            Login::Plain { .. } => "PLAIN",
            Login::Scram { mechanism, .. } => mechanism.mechanism_name(),
        }
    }
}

/// The security of this broker's connections to the others.
#[derive(Clone, Default)]
pub struct InterBrokerSecurity {
    /// The listener whose endpoints the other brokers are reached at.
    pub listener: String,
    pub tls: Option<tokio_rustls::TlsConnector>,
    pub login: Option<Login>,
}

impl InterBrokerSecurity {
    /// From the inter-broker listener's protocol and keys; checked when the broker starts,
    /// so a cluster that could not replicate does not start.
    pub fn from_config(config: &BrokerConfig) -> Result<Self, InterBrokerConfigError> {
        let Some(listener) = config.inter_broker_listener() else {
            return Ok(Self::default());
        };
        let name = listener.name.clone();
        let (tls, sasl) = match listener.security_protocol {
            SecurityProtocol::Plaintext => (false, false),
            SecurityProtocol::Ssl => (true, false),
            SecurityProtocol::SaslPlaintext => (false, true),
            SecurityProtocol::SaslSsl => (true, true),
        };
        let tls = if tls {
            Some(tokio_rustls::TlsConnector::from(client_config(
                config, &name,
            )?))
        } else {
            None
        };
        let login = if sasl {
            Some(login(config, &name)?)
        } else {
            None
        };
        Ok(InterBrokerSecurity {
            listener: name,
            tls,
            login,
        })
    }
}

fn login(config: &BrokerConfig, listener: &str) -> Result<Login, InterBrokerConfigError> {
    let found = config
        .get("sasl.mechanism.inter.broker.protocol")
        .unwrap_or("GSSAPI")
        .trim()
        .to_owned();
    let scram = ScramMechanism::from_name(&found);
    if scram.is_none() && found != "PLAIN" {
        return Err(InterBrokerConfigError::Mechanism {
            listener: listener.to_owned(),
            found,
        });
    }
    let key = format!("{}.sasl.jaas.config", found.to_ascii_lowercase());
    let jaas = config
        .listener_value(listener, &key)
        .or_else(|| config.get("sasl.jaas.config"))
        .filter(|v| !v.trim().is_empty());
    let missing = |found| InterBrokerConfigError::Login {
        listener: listener.to_owned(),
        key: format!("listener.name.{}.{key}", listener.to_ascii_lowercase()),
        found,
    };
    let jaas = jaas.ok_or_else(|| missing("none"))?;
    let (Some(username), Some(password)) =
        (jaas_option(jaas, "username"), jaas_option(jaas, "password"))
    else {
        return Err(missing("a line without both"));
    };
    Ok(match scram {
        Some(mechanism) => Login::Scram {
            mechanism,
            username,
            password,
        },
        None => Login::Plain { username, password },
    })
}

/// Shared by every fetcher of this broker.
pub type SharedSecurity = Arc<InterBrokerSecurity>;
