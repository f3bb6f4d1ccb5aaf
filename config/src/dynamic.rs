//! Dynamic broker configuration, Kafka's `DynamicBrokerConfig`: which keys AlterConfigs may
//! change on a BROKER resource (cluster-wide default `""` or one broker `"<node id>"`), the
//! checks and messages Kafka answers with, and the effective configuration, whose layers
//! rank DYNAMIC_BROKER_CONFIG > DYNAMIC_DEFAULT_BROKER_CONFIG > STATIC_BROKER_CONFIG >
//! DEFAULT_CONFIG.

use std::collections::BTreeMap;

use crate::broker::{build, BrokerConfig};
use crate::error::ConfigError;
use crate::registry::{broker_key, is_listener_override};

/// Why a dynamic broker config change is refused. The broker answers INVALID_CONFIG for
/// [`DynamicConfigError::Unknown`] and INVALID_REQUEST for the rest, as Kafka does
/// (`ConfigAdminManager.validateBrokerConfigChange` turns every ConfigException, bad
/// values included, into InvalidRequestException; see KAFKA-13609).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DynamicConfigError {
    /// Kafka stores unknown ("custom") broker keys for plugins; Strata loads no plugins, so
    /// such a key could only be a typo that silently changes nothing.
    #[error("Unknown broker config name: {0}")]
    Unknown(String),
    /// Kafka's message (`DynamicBrokerConfig.validateConfigs`), Scala set and all.
    #[error("Cannot update these configs dynamically: {}", scala_set(.0))]
    NotDynamic(Vec<String>),
    /// Dynamic in Kafka, but Strata cannot apply a change without a restart yet.
    #[error(
        "Strata cannot update these configs dynamically yet (set them in server.properties and restart): {}",
        scala_set(.0)
    )]
    NotYetDynamic(Vec<String>),
    /// A value that does not parse, fails its validator or a cross-key rule.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

impl DynamicConfigError {
    /// True when Kafka's answer is INVALID_CONFIG rather than INVALID_REQUEST.
    pub fn is_invalid_config(&self) -> bool {
        matches!(self, DynamicConfigError::Unknown(_))
    }
}

/// `Set(a, b)`, the way Kafka's Scala code prints the offending names.
fn scala_set(names: &[String]) -> String {
    format!("Set({})", names.join(", "))
}

/// Checks the names of a dynamic layer (the whole layer after the change, as Kafka checks
/// it): known to Strata, dynamic in Kafka, and applied live by Strata. Values are checked
/// by [`BrokerConfig::with_dynamic`].
pub fn check_dynamic_keys<'a>(
    names: impl IntoIterator<Item = &'a String>,
) -> Result<(), DynamicConfigError> {
    let (mut not_dynamic, mut not_yet) = (Vec::new(), Vec::new());
    for name in names {
        if is_listener_override(name) {
            // listener.name.<l>.ssl.* reloads keystores per listener in Kafka.
            not_yet.push(name.clone());
            continue;
        }
        let Some(key) = broker_key(name) else {
            return Err(DynamicConfigError::Unknown(name.clone()));
        };
        if !key.dynamic {
            not_dynamic.push(name.clone());
        } else if !key.live {
            not_yet.push(name.clone());
        }
    }
    if !not_dynamic.is_empty() {
        return Err(DynamicConfigError::NotDynamic(not_dynamic));
    }
    if !not_yet.is_empty() {
        return Err(DynamicConfigError::NotYetDynamic(not_yet));
    }
    Ok(())
}

impl BrokerConfig {
    /// The effective configuration: the static one (`originals`, development defaults)
    /// with the dynamic cluster default and then this broker's dynamic settings on top,
    /// revalidated as a whole (a change that breaks a cross-key rule fails here).
    /// `originals` stays the static layer, so DescribeConfigs can tell the sources apart.
    pub fn with_dynamic(
        &self,
        default: &BTreeMap<String, String>,
        per_broker: &BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut given = self.originals.clone();
        given.extend(default.iter().map(|(k, v)| (k.clone(), v.clone())));
        given.extend(per_broker.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut warnings = Vec::new();
        let mut next = build(given, self.development_defaults.clone(), &mut warnings)?;
        next.originals = self.originals.clone();
        next.dynamic_default = default.clone();
        next.dynamic_broker = per_broker.clone();
        Ok(next)
    }

    /// [`BrokerConfig::with_dynamic`] for start-up: dynamic entries that are invalid on
    /// their own (unknown now, no longer dynamic, bad values after an upgrade) are left out
    /// and named in the returned list, as Kafka's `removeInvalidConfigs` ignores them with
    /// an error log; if the rest still fails a cross-key rule, both layers are ignored.
    pub fn with_valid_dynamic(
        &self,
        default: &BTreeMap<String, String>,
        per_broker: &BTreeMap<String, String>,
    ) -> (BrokerConfig, Vec<String>) {
        let empty = BTreeMap::new();
        let mut ignored = Vec::new();
        let mut keep = |layer: &BTreeMap<String, String>, level: &str| {
            layer
                .iter()
                .filter(|(name, value)| {
                    let single = BTreeMap::from([((*name).clone(), (*value).clone())]);
                    let ok = check_dynamic_keys(single.keys()).is_ok()
                        && self.with_dynamic(&single, &empty).is_ok();
                    if !ok {
                        ignored.push(format!("{level} {name}"));
                    }
                    ok
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        let default = keep(default, "cluster-default");
        let per_broker = keep(per_broker, "per-broker");
        match self.with_dynamic(&default, &per_broker) {
            Ok(config) => (config, ignored),
            Err(e) => {
                ignored.push(format!("every dynamic config ({e})"));
                (self.clone(), ignored)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn static_config() -> BrokerConfig {
        crate::load(None, &[("log.retention.hours".into(), "2".into())])
            .unwrap()
            .config
    }

    #[test]
    fn layers_rank_per_broker_over_default_over_static() {
        let base = static_config();
        assert_eq!(base.log_retention_ms, 7_200_000);
        let with_default = base
            .with_dynamic(&map(&[("log.retention.ms", "5000")]), &BTreeMap::new())
            .unwrap();
        assert_eq!(with_default.log_retention_ms, 5000);
        assert_eq!(with_default.get("log.retention.ms"), Some("5000"));
        assert_eq!(with_default.originals, base.originals);
        let both = base
            .with_dynamic(
                &map(&[("log.retention.ms", "5000")]),
                &map(&[("log.retention.ms", "7000")]),
            )
            .unwrap();
        assert_eq!(both.log_retention_ms, 7000);
        // Dropping the layers restores the static value.
        let none = both
            .with_dynamic(&BTreeMap::new(), &BTreeMap::new())
            .unwrap();
        assert_eq!(none.log_retention_ms, 7_200_000);
    }

    #[test]
    fn keys_are_checked_kafkas_way() {
        let names = |pairs: &[&str]| pairs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(check_dynamic_keys(&names(&["log.retention.ms", "message.max.bytes"])).is_ok());
        let e = check_dynamic_keys(&names(&["log.dirs", "broker.id"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Cannot update these configs dynamically: Set(log.dirs, broker.id)"
        );
        assert!(!e.is_invalid_config());
        let e = check_dynamic_keys(&names(&["num.io.threads"])).unwrap_err();
        assert!(matches!(e, DynamicConfigError::NotYetDynamic(_)), "{e}");
        let e = check_dynamic_keys(&names(&["no.such.key"])).unwrap_err();
        assert!(e.is_invalid_config());
        let e = check_dynamic_keys(&names(&["listener.name.x.ssl.keystore.location"]));
        assert!(matches!(e, Err(DynamicConfigError::NotYetDynamic(_))));
    }

    #[test]
    fn bad_values_and_cross_key_rules_fail() {
        let base = static_config();
        let e = base
            .with_dynamic(&map(&[("log.segment.bytes", "12")]), &BTreeMap::new())
            .unwrap_err();
        assert_eq!(e.key(), Some("log.segment.bytes"));
        assert!(base
            .with_dynamic(
                &map(&[("log.cleaner.min.compaction.lag.ms", "10")]),
                &map(&[("log.cleaner.max.compaction.lag.ms", "5")]),
            )
            .is_err());
    }

    #[test]
    fn start_up_ignores_what_became_invalid() {
        let base = static_config();
        let (config, ignored) = base.with_valid_dynamic(
            &map(&[("log.retention.ms", "9000"), ("log.dirs", "/elsewhere")]),
            &map(&[("log.segment.bytes", "oops")]),
        );
        assert_eq!(config.log_retention_ms, 9000);
        assert_eq!(
            ignored,
            vec!["cluster-default log.dirs", "per-broker log.segment.bytes"]
        );
    }

    #[test]
    fn every_live_key_is_kafka_dynamic() {
        for key in crate::registry::BROKER_KEYS {
            assert!(!key.live || key.dynamic, "{}", key.name);
        }
    }
}
