//! Options of a JAAS config line, as Kafka's `sasl.jaas.config` writes them
//! (`org.apache.kafka.common.security.scram.ScramLoginModule required username="a"
//! password="b";`): read by the broker for its own inter-broker login and by strata-perf from
//! a client.properties.

/// `name="value"` (or unquoted up to whitespace or `;`) from a JAAS config line.
pub fn jaas_option(jaas: &str, name: &str) -> Option<String> {
    let mut rest = jaas;
    while let Some(at) = rest.find(name) {
        let before_ok = rest
            .get(..at)
            .and_then(|b| b.chars().last())
            .is_none_or(char::is_whitespace);
        let after = rest.get(at + name.len()..)?.trim_start();
        if before_ok {
            if let Some(value) = after.strip_prefix('=') {
                let value = value.trim_start();
                if let Some(quoted) = value.strip_prefix('"') {
                    let mut out = String::new();
                    let mut chars = quoted.chars();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => out.push(chars.next()?),
                            '"' => return Some(out),
                            c => out.push(c),
                        }
                    }
                    return None;
                }
                let end = value
                    .find(|c: char| c.is_whitespace() || c == ';')
                    .unwrap_or(value.len());
                return value.get(..end).map(str::to_owned);
            }
        }
        rest = rest.get(at + name.len()..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaas_options_are_read_quoted_or_bare() {
        let line = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="al\"ice" password=s3cr=t;"#;
        assert_eq!(jaas_option(line, "username").as_deref(), Some("al\"ice"));
        assert_eq!(jaas_option(line, "password").as_deref(), Some("s3cr=t"));
        assert_eq!(jaas_option("xusername=\"a\"", "username"), None);
    }

    #[test]
    fn option_names_match_whole_words() {
        let server = r#"PlainLoginModule required user_admin="x" admin="y";"#;
        assert_eq!(jaas_option(server, "admin").as_deref(), Some("y"));
        assert_eq!(jaas_option("username=\"unterminated", "username"), None);
    }
}
