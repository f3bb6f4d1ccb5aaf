//! Adapts the application's [`StateMachine`] to openraft's `RaftStateMachine`, and keeps the
//! newest snapshot in `snapshot.bin`.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use tokio::sync::watch;

use crate::frame::{decode_record, encode_record, Record};
use crate::fsutil::{atomic_write, read_optional};
use crate::log_store::lock;
use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::{QuorumError, StateMachine};

const SNAPSHOT_FILE: &str = "snapshot.bin";

#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// State shared with snapshot builders, which openraft runs in their own tasks.
struct SnapshotStore {
    path: PathBuf,
    current: Mutex<Option<StoredSnapshot>>,
    /// Serializes writers of `snapshot.bin`; only taken inside `spawn_blocking`.
    write: Mutex<()>,
}

impl SnapshotStore {
    /// Persists `snap` unless a newer snapshot is already stored, then makes it current.
    fn save(&self, snap: StoredSnapshot) -> io::Result<()> {
        let _w = lock(&self.write);
        let newer_exists = lock(&self.current)
            .as_ref()
            .is_some_and(|c| c.meta.last_log_id > snap.meta.last_log_id);
        if newer_exists {
            return Ok(());
        }
        let meta = serde_json::to_vec(&snap.meta).map_err(io::Error::other)?;
        let mut bytes = encode_record(&meta).map_err(io::Error::other)?;
        bytes.extend(encode_record(&snap.data).map_err(io::Error::other)?);
        atomic_write(&self.path, &bytes, true)?;
        *lock(&self.current) = Some(snap);
        Ok(())
    }

    fn load(path: &Path) -> Result<Option<StoredSnapshot>, QuorumError> {
        let Some(bytes) = read_optional(path)
            .map_err(|e| QuorumError::io(format!("reading {}", path.display()), e))?
        else {
            return Ok(None);
        };
        let corrupt = |reason: String| QuorumError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let Record::Complete {
            payload: meta,
            consumed,
        } = decode_record(&bytes)
        else {
            return Err(corrupt("bad snapshot meta record".into()));
        };
        let rest = bytes.get(consumed..).unwrap_or_default();
        let Record::Complete { payload: data, .. } = decode_record(rest) else {
            return Err(corrupt("bad snapshot data record".into()));
        };
        let meta: SnapshotMeta =
            serde_json::from_slice(meta).map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(StoredSnapshot {
            meta,
            data: data.to_vec(),
        }))
    }
}

pub(crate) struct SmStore<S: StateMachine> {
    sm: Arc<S>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshots: Arc<SnapshotStore>,
    applied_tx: watch::Sender<u64>,
    next_snapshot_seq: Arc<AtomicU64>,
}

impl<S: StateMachine> SmStore<S> {
    /// Restores `sm` from the newest snapshot under `dir`, if any.
    pub(crate) fn open(
        dir: &Path,
        sm: Arc<S>,
    ) -> Result<(Self, watch::Receiver<u64>), QuorumError> {
        let path = dir.join(SNAPSHOT_FILE);
        let snap = SnapshotStore::load(&path)?;
        let (mut last_applied, mut membership) = (None, StoredMembership::default());
        if let Some(s) = &snap {
            sm.restore(&s.data).map_err(|reason| QuorumError::Corrupt {
                path: path.clone(),
                reason: format!("the state machine refused the snapshot: {reason}"),
            })?;
            last_applied = s.meta.last_log_id;
            membership = s.meta.last_membership.clone();
            tracing::info!(path = %path.display(), last = ?last_applied, "state machine restored from snapshot");
        }
        let (applied_tx, applied_rx) = watch::channel(last_applied.map_or(0, |l| l.index));
        let store = Self {
            sm,
            last_applied,
            membership,
            snapshots: Arc::new(SnapshotStore {
                path,
                current: Mutex::new(snap),
                write: Mutex::new(()),
            }),
            applied_tx,
            next_snapshot_seq: Arc::new(AtomicU64::new(0)),
        };
        Ok((store, applied_rx))
    }

    fn set_applied(&mut self, log_id: LogId) {
        self.last_applied = Some(log_id);
        self.applied_tx.send_replace(log_id.index);
    }
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

pub(crate) struct SnapshotBuilder {
    snap: StoredSnapshot,
    store: Arc<SnapshotStore>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let snap = self.snap.clone();
        let store = self.store.clone();
        let res = tokio::task::spawn_blocking(move || store.save(snap))
            .await
            .map_err(io::Error::other)
            .and_then(|r| r);
        if let Err(e) = res {
            tracing::warn!(path = %self.store.path.display(), error = %e, "writing a snapshot failed");
            let sig = Some(self.snap.meta.signature());
            return Err(StorageIOError::write_snapshot(sig, AnyError::new(&e)).into());
        }
        tracing::info!(last = ?self.snap.meta.last_log_id, bytes = self.snap.data.len(), "snapshot built");
        Ok(Snapshot {
            meta: self.snap.meta.clone(),
            snapshot: Box::new(Cursor::new(std::mem::take(&mut self.snap.data))),
        })
    }
}

impl<S: StateMachine> RaftStateMachine<TypeConfig> for SmStore<S> {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<serde_json::Value>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            let resp = match entry.payload {
                EntryPayload::Blank => serde_json::Value::Null,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(log_id), m);
                    serde_json::Value::Null
                }
                EntryPayload::Normal(value) => {
                    // A command this build cannot decode must stop the node: skipping it would
                    // silently fork this node's metadata from the others'.
                    let cmd: S::Command = serde_json::from_value(value)
                        .map_err(|e| StorageIOError::apply(log_id, AnyError::new(&e)))?;
                    let resp = self.sm.apply(log_id.index, &cmd);
                    serde_json::to_value(resp)
                        .map_err(|e| StorageIOError::apply(log_id, AnyError::new(&e)))?
                }
            };
            self.set_applied(log_id);
            out.push(resp);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Capture the state here, on the apply task, so that data and `last_applied` agree;
        // the builder itself runs concurrently with later applies.
        let seq = self.next_snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id.term, l.index),
            None => format!("none-{seq}"),
        };
        SnapshotBuilder {
            snap: StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: self.last_applied,
                    last_membership: self.membership.clone(),
                    snapshot_id,
                },
                data: self.sm.snapshot(),
            },
            store: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        // Validate by restoring before persisting, so a refused snapshot never replaces a good
        // one on disk.
        self.sm.restore(&data).map_err(|reason| {
            let e = io::Error::other(format!("state machine refused snapshot: {reason}"));
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&e))
        })?;
        let snap = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let store = self.snapshots.clone();
        tokio::task::spawn_blocking(move || store.save(snap))
            .await
            .map_err(sm_err)?
            .map_err(|e| {
                StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e))
            })?;
        self.membership = meta.last_membership.clone();
        match meta.last_log_id {
            Some(l) => self.set_applied(l),
            None => self.last_applied = None,
        }
        tracing::info!(last = ?meta.last_log_id, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(lock(&self.snapshots.current).clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
