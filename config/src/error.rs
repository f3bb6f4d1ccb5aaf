//! Errors of the configuration crate. Every variant names the key (or the file and line)
//! at fault, because the operator reads these messages at start-up and must know what to fix.

use std::path::PathBuf;

/// Why a configuration could not be loaded or resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The properties file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The properties file is not valid properties syntax (e.g. a malformed `\uXXXX`).
    #[error("{}:{line}: {reason}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A value does not parse or fails the key's validator.
    #[error("invalid value `{value}` for configuration `{key}`: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    /// A required key has no value and no default.
    #[error("missing required configuration `{key}`: {reason}")]
    Missing { key: String, reason: String },
    /// A topic-level config name Kafka does not define (CreateTopics/AlterConfigs map it to
    /// INVALID_CONFIG).
    #[error("unknown topic config name `{key}`")]
    UnknownTopicConfig { key: String },
    /// A `--override` argument that is not `key=value`.
    #[error("invalid --override `{arg}`: {reason}")]
    InvalidOverride { arg: String, reason: String },
}

impl ConfigError {
    /// The configuration key this error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::InvalidValue { key, .. }
            | ConfigError::Missing { key, .. }
            | ConfigError::UnknownTopicConfig { key } => Some(key),
            _ => None,
        }
    }

    pub(crate) fn invalid(key: &str, value: &str, reason: impl Into<String>) -> Self {
        ConfigError::InvalidValue {
            key: key.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}
