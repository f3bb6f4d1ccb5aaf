//! Unit tests of the log store and the state-machine adapter, including openraft's own
//! storage conformance suite.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder};

use crate::log_store::LogStore;
use crate::state_machine::SmStore;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::StateMachine;

#[derive(Default)]
struct Strings(Mutex<Vec<String>>);

impl StateMachine for Strings {
    type Command = String;
    type Response = u64;
    fn apply(&self, _index: u64, command: &String) -> u64 {
        let mut v = crate::log_store::lock(&self.0);
        v.push(command.clone());
        v.len() as u64
    }
    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&*crate::log_store::lock(&self.0)).unwrap_or_default()
    }
    fn restore(&self, snapshot: &[u8]) -> Result<(), String> {
        let v: Vec<String> = serde_json::from_slice(snapshot).map_err(|e| e.to_string())?;
        *crate::log_store::lock(&self.0) = v;
        Ok(())
    }
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, SmStore<Strings>, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, SmStore<Strings>), StorageError> {
        let dir = tempfile::tempdir()
            .map_err(|e| openraft::StorageIOError::read(openraft::AnyError::new(&e)))?;
        let log = LogStore::open(dir.path())
            .map_err(|e| openraft::StorageIOError::read(openraft::AnyError::new(&e)))?;
        let (sm, _) = SmStore::open(dir.path(), Arc::new(Strings::default()))
            .map_err(|e| openraft::StorageIOError::read(openraft::AnyError::new(&e)))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() -> Result<(), Box<StorageError>> {
    Suite::test_all(Builder).map_err(Box::new)
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(serde_json::json!(format!("cmd-{index}"))),
    }
}

type R<T = ()> = Result<T, Box<dyn std::error::Error>>;

async fn indexes(store: &mut LogStore) -> R<Vec<u64>> {
    Ok(store
        .try_get_log_entries(..)
        .await?
        .iter()
        .map(|e| e.log_id.index)
        .collect())
}

async fn append(store: &mut LogStore, range: std::ops::Range<u64>, term: u64) -> R {
    store.blocking_append(range.map(|i| entry(term, i))).await?;
    Ok(())
}

fn file_len(dir: &Path) -> R<u64> {
    Ok(std::fs::metadata(dir.join("raft.log"))?.len())
}

#[tokio::test]
async fn append_truncate_reopen() -> R {
    let dir = tempfile::tempdir()?;
    let mut store = LogStore::open(dir.path())?;
    append(&mut store, 0..10, 1).await?;
    store.truncate(log_id(1, 6)).await?;
    assert_eq!(indexes(&mut store).await?, (0..6).collect::<Vec<_>>());
    append(&mut store, 6..8, 2).await?;
    store.save_vote(&Vote::new(2, 1)).await?;
    store.save_committed(Some(log_id(2, 7))).await?;
    drop(store);

    let mut store = LogStore::open(dir.path())?;
    let got = store.try_get_log_entries(..).await?;
    assert_eq!(
        got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    assert_eq!(got.last().map(|e| e.log_id), Some(log_id(2, 7)));
    assert_eq!(store.read_vote().await?, Some(Vote::new(2, 1)));
    assert_eq!(store.read_committed().await?, Some(log_id(2, 7)));
    // Ranges openraft might pass, including empty and inverted ones, never panic.
    assert_eq!(store.try_get_log_entries(3..5).await?.len(), 2);
    assert_eq!(store.try_get_log_entries(5..5).await?.len(), 0);
    assert_eq!(store.try_get_log_entries(3..=3).await?.len(), 1);
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = store.try_get_log_entries(7..2).await?;
    assert!(inverted.is_empty());
    Ok(())
}

#[tokio::test]
async fn purge_compacts_and_survives_reopen() -> R {
    let dir = tempfile::tempdir()?;
    let mut store = LogStore::open(dir.path())?;
    append(&mut store, 0..100, 1).await?;
    let full = file_len(dir.path())?;
    store.purge(log_id(1, 19)).await?;
    // Less than half dead: not rewritten yet.
    assert_eq!(file_len(dir.path())?, full);
    store.purge(log_id(1, 79)).await?;
    assert!(
        file_len(dir.path())? < full / 2,
        "purging most of the log rewrites the file"
    );
    append(&mut store, 100..105, 1).await?;
    let state = store.get_log_state().await?;
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 79)));
    assert_eq!(state.last_log_id, Some(log_id(1, 104)));
    drop(store);

    let mut store = LogStore::open(dir.path())?;
    assert_eq!(indexes(&mut store).await?, (80..105).collect::<Vec<_>>());
    store.truncate(log_id(1, 90)).await?;
    drop(store);
    let mut store = LogStore::open(dir.path())?;
    assert_eq!(indexes(&mut store).await?, (80..90).collect::<Vec<_>>());

    // Purging past the end (after installing a snapshot) empties the log; appends continue.
    store.purge(log_id(3, 200)).await?;
    assert_eq!(file_len(dir.path())?, 0);
    append(&mut store, 201..203, 3).await?;
    drop(store);
    let mut store = LogStore::open(dir.path())?;
    assert_eq!(indexes(&mut store).await?, vec![201, 202]);
    assert_eq!(
        store.get_log_state().await?.last_purged_log_id,
        Some(log_id(3, 200))
    );
    Ok(())
}

#[tokio::test]
async fn torn_tail_is_cut_off() -> R {
    let dir = tempfile::tempdir()?;
    let mut store = LogStore::open(dir.path())?;
    append(&mut store, 0..5, 1).await?;
    drop(store);
    let good = file_len(dir.path())?;
    for garbage in [
        &b"\x00\x00"[..],
        b"\x00\x00\x00\x10\xde\xad\xbe\xefpartial",
        b"\xff\xff\xff\xff\x00\x00\x00\x00",
    ] {
        OpenOptions::new()
            .append(true)
            .open(dir.path().join("raft.log"))?
            .write_all(garbage)?;
        let mut store = LogStore::open(dir.path())?;
        assert_eq!(indexes(&mut store).await?, (0..5).collect::<Vec<_>>());
        assert_eq!(
            file_len(dir.path())?,
            good,
            "the torn tail was truncated on disk"
        );
        append(&mut store, 5..6, 1).await?;
        store.truncate(log_id(1, 5)).await?;
    }
    Ok(())
}

#[tokio::test]
async fn overlapping_append_replaces_the_tail() -> R {
    let dir = tempfile::tempdir()?;
    let mut store = LogStore::open(dir.path())?;
    append(&mut store, 0..5, 1).await?;
    append(&mut store, 3..6, 2).await?;
    let got = store.try_get_log_entries(..).await?;
    let ids: Vec<LogId> = got.iter().map(|e| e.log_id).collect();
    assert_eq!(
        ids,
        vec![
            log_id(1, 0),
            log_id(1, 1),
            log_id(1, 2),
            log_id(2, 3),
            log_id(2, 4),
            log_id(2, 5)
        ]
    );
    // A hole is refused rather than written.
    assert!(store.blocking_append([entry(2, 9)]).await.is_err());
    drop(store);
    let mut store = LogStore::open(dir.path())?;
    assert_eq!(indexes(&mut store).await?, (0..6).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test]
async fn snapshot_is_persisted_and_restored() -> R {
    let dir = tempfile::tempdir()?;
    let machine = Arc::new(Strings::default());
    let (mut sm, applied) = SmStore::open(dir.path(), machine.clone())?;
    let replies = sm.apply((0..3).map(|i| entry(1, i))).await?;
    assert_eq!(
        replies,
        vec![
            serde_json::json!(1),
            serde_json::json!(2),
            serde_json::json!(3)
        ]
    );
    assert_eq!(*applied.borrow(), 2);
    let mut builder = sm.get_snapshot_builder().await;
    let snap = builder.build_snapshot().await?;
    assert_eq!(snap.meta.last_log_id, Some(log_id(1, 2)));
    drop(sm);

    let fresh = Arc::new(Strings::default());
    let (mut sm, applied) = SmStore::open(dir.path(), fresh.clone())?;
    assert_eq!(*applied.borrow(), 2);
    assert_eq!(sm.applied_state().await?.0, Some(log_id(1, 2)));
    assert_eq!(
        *crate::log_store::lock(&fresh.0),
        vec!["cmd-0", "cmd-1", "cmd-2"]
    );
    assert!(sm.get_current_snapshot().await?.is_some());

    // A snapshot file that was tampered with refuses to load instead of restoring garbage.
    let path = dir.path().join("snapshot.bin");
    let mut bytes = std::fs::read(&path)?;
    if let Some(b) = bytes.last_mut() {
        *b ^= 0x40;
    }
    std::fs::write(&path, bytes)?;
    assert!(SmStore::open(dir.path(), Arc::new(Strings::default())).is_err());
    Ok(())
}
