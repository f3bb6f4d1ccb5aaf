//! A reader for Java `.properties` text (the syntax of Kafka's `server.properties`):
//! `#`/`!` comments, `key=value`, `key: value` or `key value`, `\` line continuations and
//! the escapes `java.util.Properties.load` understands.

/// One `key=value` pair and the (1-based) line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Why a properties text could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertiesError {
    pub line: usize,
    pub reason: String,
}

/// Parses properties text into its pairs, in file order; a later duplicate key wins when
/// the caller collects them into a map, as in Java.
///
/// Unlike Java, trailing whitespace of a value is trimmed (unless escaped, `\ `): a stray
/// space after `log.dirs=/data ` is a classic outage, and no Kafka key wants it.
pub fn parse_properties(text: &str) -> Result<Vec<Property>, PropertiesError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = natural_lines(text);
    let mut out = Vec::new();
    let mut index = 0;
    while let Some(&first) = lines.get(index) {
        let start_line = index + 1;
        index += 1;
        let first = trim_leading_ws(first);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = first.to_owned();
        // A line ending in an odd number of backslashes continues on the next natural line,
        // whose leading whitespace is dropped. Comment lines never continue (see above).
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            match lines.get(index) {
                Some(next) => {
                    logical.push_str(trim_leading_ws(next));
                    index += 1;
                }
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical).map_err(|reason| PropertiesError {
            line: start_line,
            reason,
        })?;
        out.push(Property {
            key,
            value,
            line: start_line,
        });
    }
    Ok(out)
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

fn trim_leading_ws(s: &str) -> &str {
    s.trim_start_matches(is_ws)
}

/// Splits on `\r\n`, `\r` or `\n`, the three terminators Java accepts.
fn natural_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\r', '\n']) {
            Some(pos) => {
                let (line, tail) = rest.split_at(pos);
                lines.push(line);
                rest = tail
                    .strip_prefix("\r\n")
                    .or_else(|| tail.strip_prefix('\r'))
                    .or_else(|| tail.strip_prefix('\n'))
                    .unwrap_or("");
            }
            None => {
                lines.push(rest);
                rest = "";
            }
        }
    }
    lines
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Finds the key's end (first unescaped `=`, `:` or whitespace), then skips whitespace and
/// at most one `=`/`:` separator, exactly as `Properties.load` does.
fn split_key_value(logical: &str) -> Result<(String, String), String> {
    let mut key_end = logical.len();
    let mut separator_is_ws = false;
    let mut escaped = false;
    for (pos, c) in logical.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' {
            key_end = pos;
            break;
        } else if is_ws(c) {
            key_end = pos;
            separator_is_ws = true;
            break;
        }
    }
    let (raw_key, rest) = logical.split_at(key_end);
    let mut rest = rest;
    if !rest.is_empty() {
        if separator_is_ws {
            rest = trim_leading_ws(rest);
            if let Some(after) = rest.strip_prefix(['=', ':']) {
                rest = after;
            }
        } else {
            // The key ended on '=' or ':' itself (both one byte).
            rest = rest.get(1..).unwrap_or("");
        }
        rest = trim_leading_ws(rest);
    }
    let (key, _) = unescape(raw_key)?;
    let (mut value, protected_len) = unescape(rest)?;
    while value.len() > protected_len && value.ends_with(is_ws) {
        value.pop();
    }
    Ok((key, value))
}

/// Resolves `\t \n \r \f \uXXXX` and `\<any>` -> `<any>`. Returns the text and the length
/// up to the end of the last escape, so trailing-whitespace trimming spares `\ `.
fn unescape(raw: &str) -> Result<(String, usize), String> {
    let mut out = String::with_capacity(raw.len());
    let mut protected_len = 0;
    let mut utf16: Vec<u16> = Vec::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            flush_utf16(&mut utf16, &mut out)?;
            out.push(c);
            continue;
        }
        let Some(escaped) = chars.next() else {
            // A lone trailing backslash: Java drops it.
            break;
        };
        if escaped == 'u' {
            let mut unit: u32 = 0;
            for _ in 0..4 {
                let digit = chars
                    .next()
                    .and_then(|h| h.to_digit(16))
                    .ok_or_else(|| "malformed \\uXXXX escape (expected 4 hex digits)".to_owned())?;
                unit = unit * 16 + digit;
            }
            // Four hex digits always fit in a u16; the fallback is unreachable.
            utf16.push(u16::try_from(unit).unwrap_or(u16::MAX));
            continue;
        }
        flush_utf16(&mut utf16, &mut out)?;
        out.push(match escaped {
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'f' => '\u{c}',
            other => other,
        });
        protected_len = out.len();
    }
    let had_utf16 = !utf16.is_empty();
    flush_utf16(&mut utf16, &mut out)?;
    if had_utf16 {
        protected_len = out.len();
    }
    Ok((out, protected_len))
}

/// `\uXXXX` escapes are UTF-16 code units: a surrogate pair spans two escapes.
fn flush_utf16(units: &mut Vec<u16>, out: &mut String) -> Result<(), String> {
    if units.is_empty() {
        return Ok(());
    }
    for decoded in char::decode_utf16(units.drain(..)) {
        let c = decoded.map_err(|e| {
            format!(
                "\\u{:04X} is an unpaired UTF-16 surrogate",
                e.unpaired_surrogate()
            )
        })?;
        out.push(c);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse_properties(text)
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn separators_comments_and_blank_lines() {
        let text = "# comment\n! also a comment\n\n  a=1\nb: 2\nc 3\nd\t=\t4\ne\n f = 5 \n";
        assert_eq!(
            pairs(text),
            vec![
                pair("a", "1"),
                pair("b", "2"),
                pair("c", "3"),
                pair("d", "4"),
                pair("e", ""),
                pair("f", "5"),
            ]
        );
    }

    #[test]
    fn only_the_first_separator_counts() {
        assert_eq!(pairs("a==b\n"), vec![pair("a", "=b")]);
        assert_eq!(
            pairs("url=http://h:1/x=y\n"),
            vec![pair("url", "http://h:1/x=y")]
        );
        assert_eq!(pairs("a : =b\n"), vec![pair("a", "=b")]);
    }

    #[test]
    fn continuation_lines_join_and_drop_leading_whitespace() {
        let text = "listeners=PLAINTEXT://a:1,\\\n    SSL://b:2\nnext=x\n";
        assert_eq!(
            pairs(text),
            vec![
                pair("listeners", "PLAINTEXT://a:1,SSL://b:2"),
                pair("next", "x")
            ]
        );
        // An even number of backslashes is an escaped backslash, not a continuation.
        assert_eq!(
            pairs("p=c:\\\\\nq=1\n"),
            vec![pair("p", "c:\\"), pair("q", "1")]
        );
        // A comment line never continues.
        assert_eq!(pairs("# x \\\nk=v\n"), vec![pair("k", "v")]);
        // A continuation at end of file just ends.
        assert_eq!(pairs("k=v\\"), vec![pair("k", "v")]);
    }

    #[test]
    fn escapes_in_keys_and_values() {
        assert_eq!(pairs("a\\=b=c\n"), vec![pair("a=b", "c")]);
        assert_eq!(
            pairs("key\\ with\\ space=v\n"),
            vec![pair("key with space", "v")]
        );
        assert_eq!(pairs("t=a\\tb\\nc\n"), vec![pair("t", "a\tb\nc")]);
        assert_eq!(pairs("u=\\u00e9t\\u00E9\n"), vec![pair("u", "été")]);
        assert_eq!(pairs("e=\\uD83D\\uDE00\n"), vec![pair("e", "😀")]);
        // An escaped trailing space survives the trim.
        assert_eq!(pairs("s=x\\ \n"), vec![pair("s", "x ")]);
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        assert_eq!(
            pairs("a=1\r\nb=2\rc=3"),
            vec![pair("a", "1"), pair("b", "2"), pair("c", "3")]
        );
    }

    #[test]
    fn malformed_unicode_escape_names_the_line() {
        let err = parse_properties("ok=1\nbad=\\u12G4\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.reason.contains("\\uXXXX"), "{}", err.reason);
        let err = parse_properties("lone=\\uD83D\n").unwrap_err();
        assert!(err.reason.contains("surrogate"), "{}", err.reason);
    }

    #[test]
    fn line_numbers_point_at_the_start_of_a_continued_entry() {
        let props = parse_properties("a=1\\\n2\nb=3\n").unwrap();
        assert_eq!(props[0].line, 1);
        assert_eq!(props[1].line, 3);
        assert_eq!(props[0].value, "12");
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        assert_eq!(pairs("\u{feff}node.id=1\n"), vec![pair("node.id", "1")]);
    }

    /// Every string of up to five characters over the syntax's special characters: the
    /// parser must return a result (Ok or a line-numbered error), never panic.
    #[test]
    fn never_panics_on_short_inputs_of_special_characters() {
        const ALPHABET: [char; 10] = ['\\', 'u', '=', ':', ' ', '\n', '\r', '#', 'D', '\u{e9}'];
        fn walk(prefix: &mut String, depth: usize) {
            if let Err(e) = parse_properties(prefix) {
                assert!(e.line >= 1, "{prefix:?}: line {}", e.line);
            }
            if depth == 0 {
                return;
            }
            for c in ALPHABET {
                prefix.push(c);
                walk(prefix, depth - 1);
                let _ = prefix.pop();
            }
        }
        walk(&mut String::new(), 5);
    }
}
