//! Listeners (`NAME://host:port`) and their security protocols, parsed the way Kafka's
//! `listeners`, `advertised.listeners` and `listener.security.protocol.map` are.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::ConfigError;

/// The wire security of a listener, as Kafka names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Kafka's name: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Parses a protocol name, case-insensitively as Kafka does.
    pub fn from_name(name: &str) -> Option<SecurityProtocol> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether the listener wraps its connections in TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether the listener authenticates clients with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One endpoint: `name` is the listener name (upper-case, a key of the protocol map);
/// an empty `host` means every interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: SecurityProtocol,
}

impl Listener {
    /// `host:port` for binding or dialing (IPv6 hosts in brackets; empty host -> 0.0.0.0).
    pub fn socket_addr_string(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

/// Kafka's default `listener.security.protocol.map`: each protocol maps to itself.
pub const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// Parses `NAME:PROTOCOL,...` (names upper-cased, as Kafka normalises listener names).
pub fn parse_protocol_map(
    key: &str,
    raw: &str,
) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    let mut map = BTreeMap::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, protocol)) = item.split_once(':') else {
            return Err(ConfigError::invalid(
                key,
                raw,
                format!("expected NAME:PROTOCOL pairs separated by commas, found `{item}`"),
            ));
        };
        let name = validate_listener_name(key, raw, name)?;
        let protocol = SecurityProtocol::from_name(protocol).ok_or_else(|| {
            ConfigError::invalid(
                key,
                raw,
                format!(
                    "expected a security protocol among [PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL] for {name}, found `{}`",
                    protocol.trim()
                ),
            )
        })?;
        if map.insert(name.clone(), protocol).is_some() {
            return Err(ConfigError::invalid(
                key,
                raw,
                format!("listener name {name} is mapped twice"),
            ));
        }
    }
    Ok(map)
}

fn validate_listener_name(key: &str, raw: &str, name: &str) -> Result<String, ConfigError> {
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ConfigError::invalid(
            key,
            raw,
            format!("expected a listener name of letters, digits, '_' or '-', found `{name}`"),
        ));
    }
    Ok(name.to_ascii_uppercase())
}

/// Parses `NAME://host:port` entries. Each name must be in `protocols` and appear once.
pub fn parse_listeners(
    key: &str,
    items: &[String],
    protocols: &BTreeMap<String, SecurityProtocol>,
) -> Result<Vec<Listener>, ConfigError> {
    let raw = items.join(",");
    let mut listeners: Vec<Listener> = Vec::with_capacity(items.len());
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let listener = parse_one(key, &raw, item, protocols)?;
        if listeners.iter().any(|l| l.name == listener.name) {
            return Err(ConfigError::invalid(
                key,
                &raw,
                format!("listener name {} appears more than once", listener.name),
            ));
        }
        listeners.push(listener);
    }
    Ok(listeners)
}

fn parse_one(
    key: &str,
    raw: &str,
    item: &str,
    protocols: &BTreeMap<String, SecurityProtocol>,
) -> Result<Listener, ConfigError> {
    let Some((name, address)) = item.split_once("://") else {
        return Err(ConfigError::invalid(
            key,
            raw,
            format!("expected NAME://host:port, found `{item}`"),
        ));
    };
    let name = validate_listener_name(key, raw, name)?;
    let (host, port) = if let Some(bracketed) = address.strip_prefix('[') {
        // IPv6 literal: [::1]:9092
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(ConfigError::invalid(
                key,
                raw,
                format!("expected `]` after the IPv6 address in `{item}`"),
            ));
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(ConfigError::invalid(
                key,
                raw,
                format!("expected :port after the address in `{item}`"),
            ));
        };
        (host, port)
    } else {
        match address.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => {
                return Err(ConfigError::invalid(
                    key,
                    raw,
                    format!("expected NAME://host:port, found `{item}` (no port)"),
                ))
            }
        }
    };
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '%' | ':'))
    {
        return Err(ConfigError::invalid(
            key,
            raw,
            format!("expected a host name or IP address, found `{host}` in `{item}`"),
        ));
    }
    let port: u16 = port.trim().parse().map_err(|_| {
        ConfigError::invalid(
            key,
            raw,
            format!("expected a port in 0..=65535, found `{port}` in `{item}`"),
        )
    })?;
    let security_protocol = protocols.get(&name).copied().ok_or_else(|| {
        ConfigError::invalid(
            key,
            raw,
            format!(
                "listener name {name} has no security protocol: expected one of [{}] or an entry {name}:<protocol> in listener.security.protocol.map",
                protocols.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    Ok(Listener {
        name,
        host: host.to_owned(),
        port,
        security_protocol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_map() -> BTreeMap<String, SecurityProtocol> {
        parse_protocol_map("listener.security.protocol.map", DEFAULT_PROTOCOL_MAP).unwrap()
    }

    fn list(s: &str) -> Vec<String> {
        s.split(',').map(str::to_owned).collect()
    }

    #[test]
    fn parses_hosts_ports_and_ipv6() {
        let ls = parse_listeners(
            "listeners",
            &list("PLAINTEXT://127.0.0.1:9092,ssl://[::1]:9093,SASL_SSL://:9094"),
            &default_map(),
        )
        .unwrap();
        assert_eq!(ls.len(), 3);
        assert_eq!(ls[0].host, "127.0.0.1");
        assert_eq!(ls[0].port, 9092);
        assert_eq!(ls[1].name, "SSL");
        assert_eq!(ls[1].host, "::1");
        assert_eq!(ls[1].security_protocol, SecurityProtocol::Ssl);
        assert_eq!(ls[1].to_string(), "SSL://[::1]:9093");
        assert_eq!(ls[1].socket_addr_string(), "[::1]:9093");
        assert_eq!(ls[2].host, "");
        assert_eq!(ls[2].socket_addr_string(), "0.0.0.0:9094");
    }

    #[test]
    fn rejects_unknown_names_missing_ports_and_duplicates() {
        let err = parse_listeners("listeners", &list("FOO://x"), &default_map()).unwrap_err();
        assert_eq!(err.key(), Some("listeners"));
        let err = parse_listeners("listeners", &list("FOO://x:1"), &default_map()).unwrap_err();
        assert!(err.to_string().contains("FOO"), "{err}");
        assert!(
            parse_listeners("listeners", &list("PLAINTEXT://x:99999"), &default_map()).is_err()
        );
        assert!(parse_listeners("listeners", &list("PLAINTEXT:/x:1"), &default_map()).is_err());
        assert!(parse_listeners(
            "listeners",
            &list("PLAINTEXT://a:1,PLAINTEXT://b:2"),
            &default_map()
        )
        .is_err());
    }

    #[test]
    fn protocol_map_accepts_custom_names() {
        let map = parse_protocol_map("m", "internal:sasl_ssl, CONTROLLER:PLAINTEXT").unwrap();
        assert_eq!(map.get("INTERNAL"), Some(&SecurityProtocol::SaslSsl));
        assert_eq!(map.get("CONTROLLER"), Some(&SecurityProtocol::Plaintext));
        assert!(parse_protocol_map("m", "A:TLS").is_err());
        assert!(parse_protocol_map("m", "A").is_err());
    }
}
