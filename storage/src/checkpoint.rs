//! Kafka's offset checkpoint files (`recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint`, `replication-offset-checkpoint`): version 0, a count, then
//! `<topic> <partition> <offset>` lines. Written atomically: temp file, fsync, rename, fsync dir.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use crate::TopicPartition;

const VERSION: &str = "0";
/// Bounds what a (possibly corrupt) count line can make us pre-allocate.
const MAX_PREALLOC: usize = 4096;

fn invalid(path: &Path, what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("checkpoint {}: {what}", path.display()),
    )
}

pub fn write_offsets(path: &Path, entries: &[(TopicPartition, i64)]) -> io::Result<()> {
    let mut lines = Vec::with_capacity(entries.len());
    for (tp, offset) in entries {
        if tp.topic.is_empty() || tp.topic.contains(char::is_whitespace) {
            return Err(invalid(
                path,
                format!("expected a topic without whitespace, found {:?}", tp.topic),
            ));
        }
        lines.push(format!("{} {} {}", tp.topic, tp.partition, offset));
    }
    write_entries(path, &lines)
}

/// Reads a checkpoint; a missing file reads as empty (a fresh log dir).
pub fn read_offsets(path: &Path) -> io::Result<Vec<(TopicPartition, i64)>> {
    read_entries(path, "<topic> <partition> <offset>", |line| {
        let mut parts = line.split_whitespace();
        let (Some(topic), Some(Ok(partition)), Some(Ok(offset)), None) = (
            parts.next(),
            parts.next().map(str::parse::<i32>),
            parts.next().map(str::parse::<i64>),
            parts.next(),
        ) else {
            return None;
        };
        Some((TopicPartition::new(topic, partition), offset))
    })
}

/// Writes Kafka's checkpoint framing — version 0, the entry count, one line per entry —
/// atomically: temp file, fsync, rename, fsync the directory.
pub(crate) fn write_entries(path: &Path, lines: &[String]) -> io::Result<()> {
    let mut text = format!("{VERSION}\n{}\n", lines.len());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("checkpoint");
    let tmp = path.with_file_name(format!("{file_name}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads a checkpoint written by [`write_entries`], parsing each entry line with `parse`
/// (`expected` names the line's shape in errors); a missing file reads as empty.
pub(crate) fn read_entries<T>(
    path: &Path,
    expected: &str,
    mut parse: impl FnMut(&str) -> Option<T>,
) -> io::Result<Vec<T>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    match lines.next() {
        Some(VERSION) => {}
        other => {
            return Err(invalid(
                path,
                format!("expected version {VERSION}, found {other:?}"),
            ))
        }
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| invalid(path, "expected an entry count on line 2".into()))?;
    let mut out = Vec::with_capacity(count.min(MAX_PREALLOC));
    for (i, line) in lines.enumerate() {
        let entry = parse(line).ok_or_else(|| {
            invalid(
                path,
                format!("expected `{expected}` on line {}, found {line:?}", i + 3),
            )
        })?;
        out.push(entry);
    }
    if out.len() != count {
        return Err(invalid(
            path,
            format!("expected {count} entries, found {}", out.len()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recovery-point-offset-checkpoint");
        assert!(read_offsets(&path).unwrap().is_empty());
        let entries = vec![
            (TopicPartition::new("a-b", 0), 42),
            (TopicPartition::new("c", 7), 0),
        ];
        write_offsets(&path, &entries).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "0\n2\na-b 0 42\nc 7 0\n"
        );
        assert_eq!(read_offsets(&path).unwrap(), entries);
        for bad in [
            "1\n0\n",
            "0\n2\na 0 1\n",
            "0\nx\n",
            "0\n1\na b c\n",
            "0\n1\na 0 1 2\n",
            "",
        ] {
            fs::write(&path, bad).unwrap();
            assert!(read_offsets(&path).is_err(), "accepted {bad:?}");
        }
        assert!(write_offsets(&path, &[(TopicPartition::new("has space", 0), 1)]).is_err());
    }
}
