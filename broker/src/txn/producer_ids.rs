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
    /// The current block came from the quorum (not from the local file).
    cluster_block: std::sync::atomic::AtomicBool,
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
            cluster_block: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new((reserved_end, reserved_end)),
        }
    }

    /// In a cluster: ids from blocks reserved through the metadata quorum, so that no two
    /// brokers hand out the same id (the local block file is not used).
    pub fn next_id_in_cluster(
        &self,
        store: &crate::metadata::MetadataStore,
        node_id: i32,
    ) -> Result<i64, crate::metadata::MetadataError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 >= state.1
            || !self
                .cluster_block
                .load(std::sync::atomic::Ordering::Acquire)
        {
            let mut attempts = 0;
            let first = loop {
                let first = store.image().next_producer_id;
                let reserve = crate::metadata::MetadataRecord::ReserveProducerIds {
                    node_id,
                    first,
                    count: BLOCK_SIZE,
                };
                match store.commit(vec![reserve]) {
                    Ok(()) => break first,
                    // Another broker took that block first: try the next.
                    Err(crate::metadata::MetadataError::Refused(_)) if attempts < 10 => {
                        attempts += 1;
                    }
                    Err(e) => return Err(e),
                }
            };
            *state = (first, first + BLOCK_SIZE);
            self.cluster_block
                .store(true, std::sync::atomic::Ordering::Release);
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
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
