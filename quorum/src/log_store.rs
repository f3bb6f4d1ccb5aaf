//! The durable Raft log: an append-only file of CRC-checked records, mirrored in memory
//! (metadata logs are small and snapshots purge them), plus the vote and log pointers.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogReader, StorageIOError};

use crate::frame::{decode_record, encode_record, Record};
use crate::fsutil::{atomic_write, read_optional, sync_parent, tmp_path};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::QuorumError;

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote.json";
const PURGED_FILE: &str = "purged.json";
const COMMITTED_FILE: &str = "committed.json";

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave a half-updated map behind that
    // matters more than stopping the node would, so keep going with the data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Cheap to clone: openraft's log reader is a clone of the store.
#[derive(Clone)]
pub(crate) struct LogStore {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    mem: Mutex<Mem>,
    /// Only locked inside `spawn_blocking`, never across an await.
    file: Mutex<LogFile>,
}

#[derive(Default)]
struct Mem {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

struct LogFile {
    path: PathBuf,
    file: File,
    len: u64,
    /// Log index -> offset of its record, for the live (unpurged) entries only.
    offsets: BTreeMap<u64, u64>,
}

impl LogFile {
    fn append(&mut self, records: &[(u64, Vec<u8>)]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(records.iter().map(|(_, r)| r.len()).sum());
        let mut offsets = Vec::with_capacity(records.len());
        let mut at = self.len;
        for (index, rec) in records {
            offsets.push((*index, at));
            at += rec.len() as u64;
            buf.extend_from_slice(rec);
        }
        self.file.seek(SeekFrom::Start(self.len))?;
        if let Err(e) = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
        {
            // Best effort: do not leave a half-written record that a later append would bury.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len = at;
        self.offsets.extend(offsets);
        Ok(())
    }

    /// Cuts the file at the record of `index` (and everything after it).
    fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        let Some((_, &at)) = self.offsets.range(index..).next() else {
            return Ok(());
        };
        self.file.set_len(at)?;
        self.file.sync_all()?;
        self.len = at;
        self.offsets.split_off(&index);
        Ok(())
    }

    /// Forgets offsets up to `index`; rewrites the file without the dead prefix when that
    /// prefix is at least half the file (so rewriting costs amortized O(1) per entry).
    fn purge_upto(&mut self, index: u64) -> io::Result<()> {
        self.offsets = self.offsets.split_off(&(index.saturating_add(1)));
        let live_from = self.offsets.values().next().copied().unwrap_or(self.len);
        if live_from == 0 || live_from.saturating_mul(2) < self.len {
            return Ok(());
        }
        let mut live = Vec::new();
        self.file.seek(SeekFrom::Start(live_from))?;
        (&mut self.file)
            .take(self.len - live_from)
            .read_to_end(&mut live)?;
        let tmp = tmp_path(&self.path);
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(&live)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        sync_parent(&self.path)?;
        self.file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        self.len = live.len() as u64;
        for off in self.offsets.values_mut() {
            *off -= live_from;
        }
        Ok(())
    }
}

fn io_err(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, QuorumError> {
    let Some(bytes) = read_optional(path)
        .map_err(|e| QuorumError::io(format!("reading {}", path.display()), e))?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| QuorumError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

impl LogStore {
    /// Opens (or creates) the log under `dir`, cutting off a torn tail.
    pub(crate) fn open(dir: &Path) -> Result<Self, QuorumError> {
        fs::create_dir_all(dir)
            .map_err(|e| QuorumError::io(format!("creating {}", dir.display()), e))?;
        let vote: Option<Vote> = read_json(&dir.join(VOTE_FILE))?;
        let last_purged: Option<LogId> = read_json(&dir.join(PURGED_FILE))?;
        let committed_path = dir.join(COMMITTED_FILE);
        let committed: Option<LogId> = read_json(&committed_path).unwrap_or_else(|e| {
            // Not fsynced on purpose; losing it only means replaying less at start-up.
            tracing::warn!(path = %committed_path.display(), error = %e, "ignoring unreadable committed pointer");
            None
        });

        let path = dir.join(LOG_FILE);
        let ctx = |what: &str| format!("{what} {}", path.display());
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| QuorumError::io(ctx("opening"), e))?;
        // Make the file's (and a new directory's) existence as durable as the records that
        // will be fsynced into it.
        sync_parent(&path)
            .and_then(|()| sync_parent(dir))
            .map_err(|e| QuorumError::io(ctx("syncing the directory of"), e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| QuorumError::io(ctx("reading"), e))?;

        let purged_index = last_purged.map(|l| l.index);
        let mut entries = BTreeMap::new();
        let mut offsets = BTreeMap::new();
        let mut pos = 0usize;
        while pos < bytes.len() {
            let rest = bytes.get(pos..).unwrap_or_default();
            let (payload, consumed) = match decode_record(rest) {
                Record::Complete { payload, consumed } => (payload, consumed),
                Record::Incomplete => {
                    tracing::warn!(path = %path.display(), offset = pos, dropped = rest.len(), "truncating a torn record at the tail of the raft log");
                    break;
                }
                Record::Corrupt(reason) => {
                    tracing::warn!(path = %path.display(), offset = pos, dropped = rest.len(), %reason, "truncating the raft log at a corrupt record");
                    break;
                }
            };
            let entry: Entry =
                serde_json::from_slice(payload).map_err(|e| QuorumError::Corrupt {
                    path: path.clone(),
                    reason: format!(
                        "record at offset {pos} has a valid checksum but is not an entry: {e}"
                    ),
                })?;
            let index = entry.log_id.index;
            if purged_index.is_none_or(|p| index > p) {
                let expected = entries
                    .keys()
                    .next_back()
                    .map(|last: &u64| last + 1)
                    .or(purged_index.map(|p| p + 1));
                if expected.is_some_and(|x| x != index) {
                    return Err(QuorumError::Corrupt {
                        path: path.clone(),
                        reason: format!("entry {index} at offset {pos} breaks the sequence (expected {expected:?})"),
                    });
                }
                offsets.insert(index, pos as u64);
                entries.insert(index, entry);
            }
            pos += consumed;
        }
        let len = pos as u64;
        if len < bytes.len() as u64 {
            file.set_len(len)
                .map_err(|e| QuorumError::io(ctx("truncating"), e))?;
            file.sync_all()
                .map_err(|e| QuorumError::io(ctx("syncing"), e))?;
        }

        let last_log = entries
            .values()
            .next_back()
            .map(|e: &Entry| e.log_id)
            .or(last_purged);
        // The pointer is written after the entries are fsynced, but never trust it beyond
        // the log we actually have.
        let committed = match (committed, last_log) {
            (Some(c), Some(last)) if c.index > last.index => Some(last),
            (c, Some(_)) => c,
            (_, None) => None,
        };

        Ok(Self {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                mem: Mutex::new(Mem {
                    entries,
                    last_purged,
                    vote,
                    committed,
                }),
                file: Mutex::new(LogFile {
                    path,
                    file,
                    len,
                    offsets,
                }),
            }),
        })
    }

    async fn blocking<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> io::Result<T> + Send + 'static,
    {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(io::Error::other)?
    }

    async fn write_json<T: serde::Serialize>(
        &self,
        name: &'static str,
        value: &T,
        durable: bool,
    ) -> io::Result<()> {
        let bytes = serde_json::to_vec(value).map_err(io_err)?;
        self.blocking(move |s| atomic_write(&s.dir.join(name), &bytes, durable))
            .await
    }

    fn last_index(mem: &Mem) -> Option<u64> {
        mem.entries
            .keys()
            .next_back()
            .copied()
            .or(mem.last_purged.map(|l| l.index))
    }

    async fn truncate_from(&self, index: u64) -> Result<(), StorageError> {
        self.blocking(move |s| lock(&s.file).truncate_from(index))
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        lock(&self.shared.mem).entries.split_off(&index);
        Ok(())
    }
}

fn range_bounds<RB: RangeBounds<u64>>(range: &RB) -> Option<(u64, Option<u64>)> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    if end.is_some_and(|e| e <= start) {
        return None;
    }
    Some((start, end))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let Some((start, end)) = range_bounds(&range) else {
            return Ok(Vec::new());
        };
        let mem = lock(&self.shared.mem);
        let iter = mem.entries.range(start..);
        Ok(match end {
            Some(end) => iter
                .take_while(|(i, _)| **i < end)
                .map(|(_, e)| e.clone())
                .collect(),
            None => iter.map(|(_, e)| e.clone()).collect(),
        })
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let mem = lock(&self.shared.mem);
        let last_log_id = mem
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(mem.last_purged);
        Ok(LogState {
            last_purged_log_id: mem.last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_json(VOTE_FILE, vote, true)
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        lock(&self.shared.mem).vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(lock(&self.shared.mem).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not fsynced: a stale pointer after a crash only means openraft re-applies less at
        // start-up and waits for the leader for the rest.
        self.write_json(COMMITTED_FILE, &committed, false)
            .await
            .map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        lock(&self.shared.mem).committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(lock(&self.shared.mem).committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let Some(first) = entries.first().map(|e| e.log_id.index) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let last = Self::last_index(&lock(&self.shared.mem));
        match last {
            Some(last) if first <= last => {
                // openraft truncates before overwriting; stay correct even if it did not.
                tracing::warn!(first, last, "append overlaps the log; truncating first");
                self.truncate_from(first).await?;
            }
            Some(last) if first != last + 1 => {
                let e =
                    io::Error::other(format!("append at {first} would leave a hole after {last}"));
                return Err(StorageIOError::write_logs(AnyError::new(&e)).into());
            }
            _ => {}
        }
        let mut records = Vec::with_capacity(entries.len());
        for e in &entries {
            let json = serde_json::to_vec(e)
                .map_err(|err| StorageIOError::write_log_entry(e.log_id, AnyError::new(&err)))?;
            let rec = encode_record(&json)
                .map_err(|err| StorageIOError::write_log_entry(e.log_id, AnyError::new(&err)))?;
            records.push((e.log_id.index, rec));
        }
        let res = self.blocking(move |s| lock(&s.file).append(&records)).await;
        if let Err(e) = res {
            tracing::warn!(dir = %self.shared.dir.display(), error = %e, "raft log append failed");
            let err = StorageIOError::write_logs(AnyError::new(&e));
            callback.log_io_completed(Err(e));
            return Err(err.into());
        }
        let mut mem = lock(&self.shared.mem);
        for e in entries {
            mem.entries.insert(e.log_id.index, e);
        }
        drop(mem);
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.truncate_from(log_id.index).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Pointer first: after a crash between the two steps, the stale records below it are
        // skipped at open.
        self.write_json(PURGED_FILE, &log_id, true)
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        {
            let mut mem = lock(&self.shared.mem);
            mem.entries = mem.entries.split_off(&(log_id.index.saturating_add(1)));
            mem.last_purged = Some(log_id);
        }
        let index = log_id.index;
        self.blocking(move |s| lock(&s.file).purge_upto(index))
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        Ok(())
    }
}
