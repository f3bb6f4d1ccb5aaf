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

/// Kafka's `ConfigHelper.configSynonyms`: layer by layer from the highest precedence
/// (dynamic per-broker, dynamic cluster default, static, default), every name of the
/// synonym group (in its priority order) that the layer sets. Development defaults count
/// as defaults.
fn broker_synonyms(
    broker: &BrokerConfig,
    names: &[&str],
) -> Vec<(String, Option<String>, ConfigSource)> {
    let mut out = Vec::new();
    let layers: [(&BTreeMap<String, String>, ConfigSource); 3] = [
        (&broker.dynamic_broker, ConfigSource::DynamicBroker),
        (&broker.dynamic_default, ConfigSource::DynamicDefaultBroker),
        (&broker.originals, ConfigSource::StaticBroker),
    ];
    let known = || names.iter().filter_map(|name| broker_key(name));
    let shown = |key: &BrokerKey, raw: &str| (!key.sensitive()).then(|| normalise(key, raw));
    for (layer, source) in layers {
        for key in known() {
            if let Some(raw) = layer.get(key.name) {
                out.push((key.name.to_owned(), shown(key, raw), source));
            }
        }
    }
    for key in known() {
        let default = broker
            .development_defaults
            .get(key.name)
            .map(String::as_str)
            .or(key.default);
        if let Some(raw) = default {
            out.push((
                key.name.to_owned(),
                shown(key, raw),
                ConfigSource::DefaultConfig,
            ));
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

/// The synonym group of a broker key (itself alone for most keys).
fn synonym_group(key: &'static BrokerKey) -> &'static [&'static str] {
    BROKER_SYNONYM_GROUPS
        .iter()
        .find(|group| group.contains(&key.name))
        .copied()
        .unwrap_or(std::slice::from_ref(&key.name))
}

/// One broker key's entry: `raw` is its effective text, `synonyms` those to report.
fn broker_entry(
    key: &BrokerKey,
    raw: Option<&str>,
    synonyms: Vec<(String, Option<String>, ConfigSource)>,
) -> ConfigEntry {
    let source = synonyms
        .first()
        .map_or(ConfigSource::DefaultConfig, |(_, _, source)| *source);
    ConfigEntry {
        name: key.name.to_owned(),
        value: raw
            .filter(|_| !key.sensitive())
            .map(|raw| normalise(key, raw)),
        source,
        read_only: !key.live,
        sensitive: key.sensitive(),
        synonyms,
        config_type: key.config_type,
        documentation: Some(key.documentation.to_owned()),
    }
}

/// Every broker key we know, sorted by name, with sources; sensitive values hidden.
/// `read_only` is false only for keys a dynamic change applies to at once (Kafka marks
/// every key of `AllDynamicConfigs`; Strata refuses the ones it cannot apply yet).
pub fn describe_broker(broker: &BrokerConfig) -> Vec<ConfigEntry> {
    let mut keys: Vec<&'static BrokerKey> = BROKER_KEYS.iter().collect();
    keys.sort_by_key(|k| k.name);
    keys.into_iter()
        .map(|key| {
            let synonyms = broker_synonyms(broker, synonym_group(key));
            broker_entry(key, broker.get(key.name), synonyms)
        })
        .collect()
}

/// DescribeConfigs of the cluster-wide default resource (BROKER ""): as Kafka, only the
/// keys set at that level, with only their DYNAMIC_DEFAULT_BROKER_CONFIG synonyms.
pub fn describe_broker_defaults(broker: &BrokerConfig) -> Vec<ConfigEntry> {
    broker
        .dynamic_default
        .iter()
        .filter_map(|(name, raw)| {
            let key = broker_key(name)?;
            let synonyms = broker_synonyms(broker, synonym_group(key))
                .into_iter()
                .filter(|(_, _, source)| *source == ConfigSource::DynamicDefaultBroker)
                .collect();
            Some(broker_entry(key, Some(raw), synonyms))
        })
        .collect()
}
