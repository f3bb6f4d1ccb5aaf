//! Kafka's configuration value types (ConfigDef.Type) and validators: how a string from a
//! properties file, a flag or an AlterConfigs request becomes a typed value, Kafka's way.

use std::fmt;

/// Kafka's config value types, with the codes DescribeConfigs v3+ sends as `ConfigType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigType {
    Unknown,
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Class,
    Password,
}

impl ConfigType {
    /// The numeric code of DescribeConfigsResponse's `ConfigType` field.
    pub fn id(self) -> i8 {
        match self {
            ConfigType::Unknown => 0,
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Class => 8,
            ConfigType::Password => 9,
        }
    }

    /// Kafka's upper-case name of the type, as its error messages print it.
    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Unknown => "UNKNOWN",
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

/// A parsed config value. INT, SHORT and LONG all widen to `Int(i64)`; the type's range
/// was checked while parsing.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
    List(Vec<String>),
}

impl ConfigValue {
    pub(crate) fn as_bool(&self) -> Result<bool, String> {
        match self {
            ConfigValue::Bool(b) => Ok(*b),
            other => Err(format!("expected a BOOLEAN, found {other}")),
        }
    }

    pub(crate) fn as_i64(&self) -> Result<i64, String> {
        match self {
            ConfigValue::Int(n) => Ok(*n),
            other => Err(format!("expected an integer, found {other}")),
        }
    }

    pub(crate) fn as_i32(&self) -> Result<i32, String> {
        let n = self.as_i64()?;
        i32::try_from(n).map_err(|_| format!("expected a 32-bit integer, found {n}"))
    }

    pub(crate) fn as_i16(&self) -> Result<i16, String> {
        let n = self.as_i64()?;
        i16::try_from(n).map_err(|_| format!("expected a 16-bit integer, found {n}"))
    }

    pub(crate) fn as_u64(&self) -> Result<u64, String> {
        let n = self.as_i64()?;
        u64::try_from(n).map_err(|_| format!("expected a non-negative integer, found {n}"))
    }

    pub(crate) fn as_u32(&self) -> Result<u32, String> {
        let n = self.as_i64()?;
        u32::try_from(n).map_err(|_| format!("expected a non-negative 32-bit integer, found {n}"))
    }

    pub(crate) fn as_f64(&self) -> Result<f64, String> {
        match self {
            ConfigValue::Double(d) => Ok(*d),
            other => Err(format!("expected a DOUBLE, found {other}")),
        }
    }

    pub(crate) fn as_str(&self) -> Result<&str, String> {
        match self {
            ConfigValue::Str(s) => Ok(s),
            other => Err(format!("expected a string, found {other}")),
        }
    }

    pub(crate) fn as_list(&self) -> Result<&[String], String> {
        match self {
            ConfigValue::List(l) => Ok(l),
            other => Err(format!("expected a LIST, found {other}")),
        }
    }
}

/// Formats the value the way Kafka's `ConfigDef.convertToString` does (lists joined with
/// commas, doubles always with a fraction), which is what DescribeConfigs reports.
impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::Bool(b) => write!(f, "{b}"),
            ConfigValue::Int(n) => write!(f, "{n}"),
            ConfigValue::Double(d) => f.write_str(&format_double(*d)),
            ConfigValue::Str(s) => f.write_str(s),
            ConfigValue::List(l) => f.write_str(&l.join(",")),
        }
    }
}

/// Java prints `1.0` where Rust prints `1`; clients compare these strings.
pub(crate) fn format_double(d: f64) -> String {
    if d.is_finite() && d.fract() == 0.0 {
        format!("{d:.1}")
    } else {
        format!("{d}")
    }
}

/// What a key accepts beyond its type (Kafka's `ConfigDef.Validator`s).
#[derive(Debug, Clone, Copy)]
pub enum Validator {
    Any,
    /// Integer at least this (`Range.atLeast`).
    AtLeast(i64),
    /// Integer within these bounds, inclusive (`Range.between`).
    Between(i64, i64),
    /// Double within these bounds, inclusive.
    DoubleBetween(f64, f64),
    /// One of these strings, case-sensitive (`ValidString.in`).
    OneOf(&'static [&'static str]),
    /// A non-empty list whose items are all among these (`ValidList.in`).
    ListOf(&'static [&'static str]),
    /// Anything else; the error is the reason text.
    Custom(fn(&ConfigValue) -> Result<(), String>),
}

/// Parses `raw` as `ty`, trimming like Kafka (everything but PASSWORD is trimmed).
pub fn parse_value(ty: ConfigType, raw: &str) -> Result<ConfigValue, String> {
    let trimmed = raw.trim();
    match ty {
        ConfigType::Boolean => {
            if trimmed.eq_ignore_ascii_case("true") {
                Ok(ConfigValue::Bool(true))
            } else if trimmed.eq_ignore_ascii_case("false") {
                Ok(ConfigValue::Bool(false))
            } else {
                Err("expected a BOOLEAN (true or false)".to_owned())
            }
        }
        ConfigType::Int => trimmed
            .parse::<i32>()
            .map(|n| ConfigValue::Int(i64::from(n)))
            .map_err(|_| "expected an INT (32-bit integer)".to_owned()),
        ConfigType::Short => trimmed
            .parse::<i16>()
            .map(|n| ConfigValue::Int(i64::from(n)))
            .map_err(|_| "expected a SHORT (16-bit integer)".to_owned()),
        ConfigType::Long => trimmed
            .parse::<i64>()
            .map(ConfigValue::Int)
            .map_err(|_| "expected a LONG (64-bit integer)".to_owned()),
        ConfigType::Double => match trimmed.parse::<f64>() {
            Ok(d) if d.is_finite() => Ok(ConfigValue::Double(d)),
            _ => Err("expected a DOUBLE (finite number)".to_owned()),
        },
        ConfigType::List => Ok(ConfigValue::List(parse_list(trimmed))),
        ConfigType::String | ConfigType::Class | ConfigType::Unknown => {
            Ok(ConfigValue::Str(trimmed.to_owned()))
        }
        ConfigType::Password => Ok(ConfigValue::Str(raw.to_owned())),
    }
}

/// Kafka splits lists on commas with surrounding whitespace; an empty string is an empty
/// list.
pub(crate) fn parse_list(trimmed: &str) -> Vec<String> {
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split(',').map(|s| s.trim().to_owned()).collect()
    }
}

/// Checks a parsed value against a validator; the error is a reason for the operator.
pub fn validate(validator: &Validator, value: &ConfigValue) -> Result<(), String> {
    match validator {
        Validator::Any => Ok(()),
        Validator::AtLeast(min) => {
            let n = value.as_i64()?;
            if n < *min {
                Err(format!("expected a value of at least {min}, found {n}"))
            } else {
                Ok(())
            }
        }
        Validator::Between(min, max) => {
            let n = value.as_i64()?;
            if n < *min || n > *max {
                Err(format!("expected a value in [{min}, {max}], found {n}"))
            } else {
                Ok(())
            }
        }
        Validator::DoubleBetween(min, max) => {
            let d = value.as_f64()?;
            if d < *min || d > *max {
                Err(format!(
                    "expected a value in [{}, {}], found {}",
                    format_double(*min),
                    format_double(*max),
                    format_double(d)
                ))
            } else {
                Ok(())
            }
        }
        Validator::OneOf(allowed) => {
            let s = value.as_str()?;
            if allowed.contains(&s) {
                Ok(())
            } else {
                Err(format!(
                    "expected one of [{}], found `{s}`",
                    allowed.join(", ")
                ))
            }
        }
        Validator::ListOf(allowed) => {
            let items = value.as_list()?;
            if items.is_empty() {
                return Err(format!(
                    "expected a non-empty list of [{}], found an empty list",
                    allowed.join(", ")
                ));
            }
            match items.iter().find(|item| !allowed.contains(&item.as_str())) {
                Some(bad) => Err(format!(
                    "expected items among [{}], found `{bad}`",
                    allowed.join(", ")
                )),
                None => Ok(()),
            }
        }
        Validator::Custom(check) => check(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_kafka_configdef() {
        assert_eq!(
            parse_value(ConfigType::Boolean, " TRUE "),
            Ok(ConfigValue::Bool(true))
        );
        assert!(parse_value(ConfigType::Boolean, "yes").is_err());
        assert_eq!(
            parse_value(ConfigType::Int, " 42"),
            Ok(ConfigValue::Int(42))
        );
        assert!(parse_value(ConfigType::Int, "2147483648").is_err());
        assert!(parse_value(ConfigType::Short, "40000").is_err());
        assert_eq!(
            parse_value(ConfigType::Long, "9223372036854775807"),
            Ok(ConfigValue::Int(i64::MAX))
        );
        assert!(parse_value(ConfigType::Double, "NaN").is_err());
        assert_eq!(
            parse_value(ConfigType::List, " a , b,c "),
            Ok(ConfigValue::List(vec!["a".into(), "b".into(), "c".into()]))
        );
        assert_eq!(
            parse_value(ConfigType::List, "  "),
            Ok(ConfigValue::List(vec![]))
        );
        // Passwords keep their whitespace: it may be part of the secret.
        assert_eq!(
            parse_value(ConfigType::Password, " s3cret "),
            Ok(ConfigValue::Str(" s3cret ".into()))
        );
    }

    #[test]
    fn validators_reject_out_of_range_and_unlisted_values() {
        assert!(validate(&Validator::AtLeast(1), &ConfigValue::Int(0)).is_err());
        assert!(validate(&Validator::AtLeast(1), &ConfigValue::Int(1)).is_ok());
        assert!(validate(&Validator::Between(1, 9), &ConfigValue::Int(10)).is_err());
        assert!(validate(
            &Validator::DoubleBetween(0.0, 1.0),
            &ConfigValue::Double(1.5)
        )
        .is_err());
        let policies = Validator::ListOf(&["compact", "delete"]);
        assert!(validate(&policies, &ConfigValue::List(vec!["compact".into()])).is_ok());
        assert!(validate(&policies, &ConfigValue::List(vec!["shred".into()])).is_err());
        assert!(validate(&policies, &ConfigValue::List(vec![])).is_err());
        let ts = Validator::OneOf(&["CreateTime", "LogAppendTime"]);
        assert!(validate(&ts, &ConfigValue::Str("createtime".into())).is_err());
    }

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(ConfigValue::Double(1.0).to_string(), "1.0");
        assert_eq!(ConfigValue::Double(0.5).to_string(), "0.5");
    }
}
