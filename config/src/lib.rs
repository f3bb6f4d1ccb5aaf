//! Strata configuration: `server.properties` plus `--override key=value` flags become a
//! typed, validated [`BrokerConfig`]; Kafka's topic-level keys resolve into a
//! [`TopicConfig`]; [`describe_topic`] and [`describe_broker`] list what DescribeConfigs
//! reports; [`dynamic`] layers AlterConfigs' dynamic broker configs over the static
//! ones. Keys, defaults and validation follow Apache Kafka (see README).
//!
//! One registry per resource ([`registry::BROKER_KEYS`], [`topic::TOPIC_KEYS`]) drives
//! parsing, validation and description, so each key is described once.

pub mod broker;
pub mod describe;
pub mod dynamic;
pub mod error;
pub mod jaas;
pub mod listener;
pub mod properties;
pub mod registry;
pub mod topic;
pub mod types;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

pub use broker::BrokerConfig;
pub use describe::{
    describe_broker, describe_broker_defaults, describe_topic, ConfigEntry, ConfigSource,
};
pub use dynamic::{check_dynamic_keys, DynamicConfigError};
pub use error::ConfigError;
pub use jaas::jaas_option;
pub use listener::{Listener, SecurityProtocol};
pub use topic::{validate_topic_config, CleanupPolicy, TopicConfig};
pub use types::ConfigType;

/// A loaded configuration and the warnings worth logging at start-up (unknown keys...).
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: BrokerConfig,
    pub warnings: Vec<String>,
}

/// A config file larger than this is certainly not a server.properties; refusing it
/// bounds the read.
const MAX_CONFIG_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The defaults of development mode (no config file): a broker that just runs.
const DEVELOPMENT_DEFAULTS: &[(&str, &str)] = &[
    ("node.id", "1"),
    ("listeners", "PLAINTEXT://127.0.0.1:9092"),
    // log.dir, not log.dirs: a given log.dir must still win over this default.
    ("log.dir", "./data"),
];

/// Loads the broker configuration.
///
/// No path: development defaults (node.id=1, listeners=PLAINTEXT://127.0.0.1:9092,
/// log.dirs=./data). With a path, Kafka's defaults and rules (node.id is required).
/// Overrides win either way, the last of a repeated key winning.
pub fn load(
    path: Option<&Path>,
    overrides: &[(String, String)],
) -> Result<LoadedConfig, ConfigError> {
    let mut given = BTreeMap::new();
    let mut dev = BTreeMap::new();
    match path {
        Some(path) => {
            for property in read_properties_file(path)? {
                let _ = given.insert(property.key, property.value);
            }
        }
        None => {
            dev.extend(
                DEVELOPMENT_DEFAULTS
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
        }
    }
    for (key, value) in overrides {
        let _ = given.insert(key.clone(), value.clone());
    }
    let mut warnings = Vec::new();
    let config = broker::build(given, dev, &mut warnings)?;
    Ok(LoadedConfig { config, warnings })
}

/// Parses one `--override` argument, `key=value`; the value may itself contain `=`.
/// Whitespace around key and value is trimmed.
pub fn parse_override(arg: &str) -> Result<(String, String), ConfigError> {
    let Some((key, value)) = arg.split_once('=') else {
        return Err(ConfigError::InvalidOverride {
            arg: arg.to_owned(),
            reason: "expected key=value, found no `=`".to_owned(),
        });
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(ConfigError::InvalidOverride {
            arg: arg.to_owned(),
            reason: "expected key=value, found an empty key".to_owned(),
        });
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

/// Reads and parses a properties file. UTF-8 is expected; other bytes are read as
/// ISO-8859-1, which is what Java's `Properties.load(InputStream)` assumes.
pub fn read_properties_file(path: &Path) -> Result<Vec<properties::Property>, ConfigError> {
    let io_error = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    let _ = file
        .take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_CONFIG_FILE_BYTES {
        return Err(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("expected a config file of at most {MAX_CONFIG_FILE_BYTES} bytes, found a larger one"),
        )));
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    };
    properties::parse_properties(&text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        line: e.line,
        reason: e.reason,
    })
}
