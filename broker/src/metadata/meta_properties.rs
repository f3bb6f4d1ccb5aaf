//! `meta.properties` in every log dir, in KRaft's format (version=1, cluster.id, node.id,
//! directory.id). It pins a log dir to one cluster and one node, so a disk moved to the wrong
//! broker is refused at start instead of silently mixing data.

use std::collections::BTreeMap;
use std::path::Path;

use super::durable_file::write_atomically;
use super::kafka_uuid;

#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: log dir belongs to {key}={found}, but this broker has {key}={expected}")]
    Mismatch {
        path: String,
        key: &'static str,
        found: String,
        expected: String,
    },
}

/// Reads the cluster id recorded in any of the log dirs, if one was formatted before.
pub fn existing_cluster_id(
    log_dirs: &[impl AsRef<Path>],
) -> Result<Option<String>, MetaPropertiesError> {
    for dir in log_dirs {
        if let Some(props) = read(dir.as_ref())? {
            if let Some(id) = props.get("cluster.id") {
                return Ok(Some(id.clone()));
            }
        }
    }
    Ok(None)
}

/// Checks (or writes, on first start) `meta.properties` in `dir`.
pub fn ensure(dir: &Path, cluster_id: &str, node_id: i32) -> Result<(), MetaPropertiesError> {
    let path = dir.join("meta.properties");
    let io = |source| MetaPropertiesError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(props) = read(dir)? {
        let node = node_id.to_string();
        for (key, expected) in [("cluster.id", cluster_id), ("node.id", node.as_str())] {
            if let Some(found) = props.get(key) {
                if found != expected {
                    return Err(MetaPropertiesError::Mismatch {
                        path: path.display().to_string(),
                        key,
                        found: found.clone(),
                        expected: expected.to_string(),
                    });
                }
            }
        }
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let directory_id = kafka_uuid::to_base64(&kafka_uuid::random_uuid());
    let text = format!(
        "#\n#Written by strata\ncluster.id={cluster_id}\ndirectory.id={directory_id}\nnode.id={node_id}\nversion=1\n"
    );
    write_atomically(&path, text.as_bytes()).map_err(io)
}

fn read(dir: &Path) -> Result<Option<BTreeMap<String, String>>, MetaPropertiesError> {
    let path = dir.join("meta.properties");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            text.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(MetaPropertiesError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_writes_then_checks() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), "abc", 1).unwrap();
        assert_eq!(
            existing_cluster_id(&[dir.path()]).unwrap().as_deref(),
            Some("abc")
        );
        ensure(dir.path(), "abc", 1).unwrap();
        assert!(matches!(
            ensure(dir.path(), "abc", 2),
            Err(MetaPropertiesError::Mismatch { .. })
        ));
        assert!(matches!(
            ensure(dir.path(), "xyz", 1),
            Err(MetaPropertiesError::Mismatch { .. })
        ));
    }
}
