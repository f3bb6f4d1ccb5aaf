//! Producer-id allocation for InitProducerId. Ids are handed out from blocks whose upper
//! bound is persisted before any id in the block is used, so a restart never reissues an
//! id (the same idea as Kafka's AllocateProducerIds blocks; the Raft quorum takes this over).

use std::path::PathBuf;
use std::sync::Mutex;

use crate::metadata::durable_file::write_atomically;

const BLOCK_SIZE: i64 = 1000;

#[derive(Debug, thiserror::Error)]
#[error("cannot persist the producer id block to {path}: {source}")]
pub struct ProducerIdError {
    path: String,
    source: std::io::Error,
}

pub struct ProducerIdManager {
    path: PathBuf,
    state: Mutex<(
        i64, /*next*/
        i64, /*end of reserved block, exclusive*/
    )>,
}

impl ProducerIdManager {
    pub fn open(path: PathBuf) -> Self {
        let reserved_end = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0)
            .max(0);
        // Everything below the persisted bound may have been handed out: start above it.
        Self {
            path,
            state: Mutex::new((reserved_end, reserved_end)),
        }
    }

    pub fn next_id(&self) -> Result<i64, ProducerIdError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 >= state.1 {
            let end = state.1 + BLOCK_SIZE;
            write_atomically(&self.path, end.to_string().as_bytes()).map_err(|source| {
                ProducerIdError {
                    path: self.path.display().to_string(),
                    source,
                }
            })?;
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_repeat_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("producer-id-block");
        let m = ProducerIdManager::open(path.clone());
        let a: Vec<i64> = (0..5).map(|_| m.next_id().unwrap()).collect();
        assert_eq!(a, vec![0, 1, 2, 3, 4]);
        let m2 = ProducerIdManager::open(path);
        assert!(m2.next_id().unwrap() > 4);
    }
}
