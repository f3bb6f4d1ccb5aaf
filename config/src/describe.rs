//! DescribeConfigs listings: every topic or broker key with its value, source, synonyms
//! and type, computed Kafka's way (ConfigHelper) from the registries, so the broker only
//! has to copy these entries into the response.

use std::collections::BTreeMap;

use crate::broker::{parse_checked, BrokerConfig};
use crate::registry::{broker_key, BrokerKey, BROKER_KEYS, BROKER_SYNONYM_GROUPS};
use crate::topic::{TopicConfig, TOPIC_KEYS};
use crate::types::ConfigType;

/// Where a value comes from, with DescribeConfigsResponse's numeric ids (`id()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigSource {
    Unknown,
    /// A topic's own override (TOPIC_CONFIG, 1).
    DynamicTopic,
    /// DYNAMIC_BROKER_CONFIG (2).
    DynamicBroker,
    /// DYNAMIC_DEFAULT_BROKER_CONFIG (3).
    DynamicDefaultBroker,
    /// server.properties or --override (STATIC_BROKER_CONFIG, 4).
    StaticBroker,
    /// Nobody set it (DEFAULT_CONFIG, 5).
    DefaultConfig,
    /// DYNAMIC_BROKER_LOGGER_CONFIG (6).
    DynamicBrokerLogger,
}

impl ConfigSource {
    pub fn id(self) -> i8 {
        match self {
            ConfigSource::Unknown => 0,
            ConfigSource::DynamicTopic => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DynamicDefaultBroker => 3,
            ConfigSource::StaticBroker => 4,
            ConfigSource::DefaultConfig => 5,
            ConfigSource::DynamicBrokerLogger => 6,
        }
    }
}

/// One DescribeConfigs entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for sensitive or unset keys.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    /// (name, value, source), highest priority first, as DescribeConfigs v1+ synonyms.
    pub synonyms: Vec<(String, Option<String>, ConfigSource)>,
    pub config_type: ConfigType,
    pub documentation: Option<String>,
}

impl ConfigEntry {
    /// `IsDefault` of DescribeConfigs v0.
    pub fn is_default(&self) -> bool {
        self.source == ConfigSource::DefaultConfig
    }
}

/// Kafka's `configSynonyms`: for each broker key in priority order, its static value (if
/// given) then its default (if any). Development defaults count as defaults.
fn broker_synonyms(
    broker: &BrokerConfig,
    names: &[&str],
) -> Vec<(String, Option<String>, ConfigSource)> {
    let mut out = Vec::new();
    for name in names {
        let Some(key) = broker_key(name) else {
            continue;
        };
        let shown = |raw: &str| (!key.sensitive()).then(|| normalise(key, raw));
        if let Some(raw) = broker.originals.get(*name) {
            out.push((name.to_string(), shown(raw), ConfigSource::StaticBroker));
        }
        let default = broker
            .development_defaults
            .get(*name)
            .map(String::as_str)
            .or(key.default);
        if let Some(raw) = default {
            out.push((name.to_string(), shown(raw), ConfigSource::DefaultConfig));
        }
    }
    out
}

/// Kafka reports values after parsing (`" 3 "` is `3`); unparsable text is shown as is.
fn normalise(key: &BrokerKey, raw: &str) -> String {
    match parse_checked(key, raw) {
        Ok(value) => value.to_string(),
        Err(_) => raw.to_owned(),
    }
}

/// Every topic key, Kafka style: a topic override is TOPIC_CONFIG; otherwise the source
/// is that of the first broker synonym that has a value.
pub fn describe_topic(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    // Values come from the resolved config. Describe must not fail, so an invalid
    // override is shown as given and left out of the resolution.
    let is_valid = |name: &str, raw: &str| {
        let single = BTreeMap::from([(name.to_owned(), raw.to_owned())]);
        TopicConfig::resolve(broker, &single).is_ok()
    };
    let valid: BTreeMap<String, String> = overrides
        .iter()
        .filter(|(name, raw)| is_valid(name, raw))
        .map(|(name, raw)| (name.clone(), raw.clone()))
        .collect();
    let resolved = TopicConfig::resolve(broker, &valid)
        .or_else(|_| TopicConfig::resolve(broker, &BTreeMap::new()))
        .unwrap_or_default();

    TOPIC_KEYS
        .iter()
        .map(|key| {
            let mut synonyms = broker_synonyms(broker, key.synonyms);
            let value = match overrides.get(key.name) {
                Some(raw) => {
                    let shown = if valid.contains_key(key.name) {
                        key.value_of(&resolved)
                    } else {
                        raw.clone()
                    };
                    synonyms.insert(
                        0,
                        (
                            key.name.to_owned(),
                            Some(shown.clone()),
                            ConfigSource::DynamicTopic,
                        ),
                    );
                    shown
                }
                None => key.value_of(&resolved),
            };
            let source = synonyms
                .first()
                .map_or(ConfigSource::DefaultConfig, |(_, _, source)| *source);
            ConfigEntry {
                name: key.name.to_owned(),
                value: Some(value),
                source,
                read_only: false,
                sensitive: false,
                synonyms,
                config_type: key.config_type,
                documentation: Some(key.documentation.to_owned()),
            }
        })
        .collect()
}

/// Every broker key we know, sorted by name, with sources; sensitive values hidden.
pub fn describe_broker(broker: &BrokerConfig) -> Vec<ConfigEntry> {
    let mut keys: Vec<&BrokerKey> = BROKER_KEYS.iter().collect();
    keys.sort_by_key(|k| k.name);
    keys.into_iter()
        .map(|key| {
            let group = BROKER_SYNONYM_GROUPS
                .iter()
                .find(|group| group.contains(&key.name))
                .copied()
                .unwrap_or(std::slice::from_ref(&key.name));
            let synonyms = broker_synonyms(broker, group);
            let source = synonyms
                .first()
                .map_or(ConfigSource::DefaultConfig, |(_, _, source)| *source);
            let value = if key.sensitive() {
                None
            } else {
                broker.get(key.name).map(|raw| normalise(key, raw))
            };
            ConfigEntry {
                name: key.name.to_owned(),
                value,
                source,
                read_only: !key.dynamic,
                sensitive: key.sensitive(),
                synonyms,
                config_type: key.config_type,
                documentation: Some(key.documentation.to_owned()),
            }
        })
        .collect()
}
