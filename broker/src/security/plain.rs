//! SASL/PLAIN (RFC 4616): one message `[authzid] NUL username NUL password`, checked against
//! the SCRAM credential store — the broker never keeps the password itself.

/// A parsed PLAIN message. The password is only borrowed, never stored or logged.
#[derive(PartialEq, Eq)]
pub struct PlainMessage<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

impl std::fmt::Debug for PlainMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Splits and validates a PLAIN token. Errors are what the client is told, as Kafka's
/// PlainSaslServer words them.
pub fn parse(token: &[u8]) -> Result<PlainMessage<'_>, String> {
    let text = std::str::from_utf8(token)
        .map_err(|_| "Invalid SASL/PLAIN response: expected UTF-8".to_owned())?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(username), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("Invalid SASL/PLAIN response: expected 3 tokens separated by NUL".into());
    };
    if username.is_empty() {
        return Err("Authentication failed: username not specified".into());
    }
    if password.is_empty() {
        return Err("Authentication failed: password not specified".into());
    }
    if !authzid.is_empty() && authzid != username {
        return Err(
            "Authentication failed: Client requested an authorization id that is different from username"
                .into(),
        );
    }
    Ok(PlainMessage { username, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_authzid() {
        let m = parse(b"\0alice\0pw").unwrap();
        assert_eq!((m.username, m.password), ("alice", "pw"));
        let m = parse(b"alice\0alice\0pw").unwrap();
        assert_eq!(m.username, "alice");
    }

    #[test]
    fn refuses_malformed_tokens() {
        for bad in [
            &b""[..],
            b"alice",
            b"\0alice",
            b"\0\0pw",
            b"\0alice\0",
            b"bob\0alice\0pw",
            b"\0alice\0pw\0extra",
            b"\0al\xffice\0pw",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let m = parse(b"\0alice\0hunter2").unwrap();
        assert!(!format!("{m:?}").contains("hunter2"));
    }
}
