//! The leader-epoch cache of one partition: which leader epoch began at which offset, kept in
//! `<partition dir>/leader-epoch-checkpoint` in Kafka's format (version 0, a count, then
//! `<epoch> <start offset>` lines) and replaced atomically on every change. OffsetForLeaderEpoch
//! answers from it, so a returning replica can find where its history diverged.

use std::io;
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::{IoContext, LogError};

pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    path: PathBuf,
    /// (epoch, start offset), both strictly increasing.
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    /// Loads the partition's cache; a missing file is an empty cache, a corrupt one is an error
    /// that names the file (the caller rebuilds it from batch headers).
    pub(crate) fn load(dir: &Path) -> io::Result<LeaderEpochCache> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let entries = checkpoint::read_entries(&path, "<epoch> <start offset>", |line| {
            let mut parts = line.split_whitespace();
            match (
                parts.next().map(str::parse::<i32>),
                parts.next().map(str::parse::<i64>),
                parts.next(),
            ) {
                (Some(Ok(epoch)), Some(Ok(start)), None) => Some((epoch, start)),
                _ => None,
            }
        })?;
        if let Some(pair) = entries
            .windows(2)
            .find(|pair| matches!(pair, [(e0, s0), (e1, s1)] if e1 <= e0 || s1 < s0))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "checkpoint {}: expected increasing epochs and start offsets, found {pair:?}",
                    path.display()
                ),
            ));
        }
        Ok(LeaderEpochCache { path, entries })
    }

    /// An empty cache for `dir` (its file is written on the first assignment).
    pub(crate) fn empty(dir: &Path) -> LeaderEpochCache {
        LeaderEpochCache {
            path: dir.join(LEADER_EPOCH_CHECKPOINT),
            entries: Vec::new(),
        }
    }

    pub(crate) fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|&(epoch, _)| epoch)
    }

    /// Whether `epoch` is newer than the latest one here (older or equal epochs are ignored).
    fn is_new_epoch(&self, epoch: i32) -> bool {
        epoch >= 0 && self.latest_epoch().is_none_or(|latest| epoch > latest)
    }

    /// Records that `epoch` starts at `start_offset` if it is newer than the latest epoch (as
    /// Kafka's assign: older or equal epochs change nothing). Returns whether it changed.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if !self.is_new_epoch(epoch) {
            return false;
        }
        // An entry for a newer epoch must not start below an older one's start.
        self.entries.retain(|&(_, start)| start < start_offset);
        self.entries.push((epoch, start_offset));
        true
    }

    /// The checkpoint as it will be once `epoch` starts at `start_offset`, when that changes
    /// it (a new epoch's first append): written before the append is published, so the
    /// file never lacks an epoch whose records a flush may already have made durable.
    pub(crate) fn snapshot_with(&self, epoch: i32, start_offset: i64) -> Option<EpochCheckpoint> {
        // Checked first: appends of the current epoch (all but one) clone nothing.
        if !self.is_new_epoch(epoch) {
            return None;
        }
        let mut next = LeaderEpochCache {
            path: self.path.clone(),
            entries: self.entries.clone(),
        };
        next.assign(epoch, start_offset).then(|| next.snapshot())
    }

    /// Truncation of the log to `end_offset`: epochs starting at or after it are gone.
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end_offset);
        self.entries.len() != before
    }

    /// The log start moved to `start_offset`: epochs wholly before it go, and the epoch
    /// holding it now starts there (Kafka's truncateFromStart).
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let holding = self
            .entries
            .iter()
            .rposition(|&(_, start)| start <= start_offset);
        let Some(i) = holding else {
            return false;
        };
        let changed = i > 0
            || self
                .entries
                .first()
                .is_some_and(|&(_, s)| s != start_offset);
        self.entries.drain(..i);
        if let Some(first) = self.entries.first_mut() {
            first.1 = start_offset;
        }
        changed
    }

    /// Kafka's endOffsetFor: the largest epoch <= `requested` and the offset where the next
    /// epoch began (the log end offset for the latest epoch), or UNDEFINED for an unknown one.
    pub(crate) fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(&(_, higher_start)) = self.entries.iter().find(|&&(e, _)| e > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|&&(e, _)| e <= requested) {
            Some(&(floor, _)) => (floor, higher_start),
            None => (requested, higher_start),
        }
    }

    /// Writes the checkpoint: temp file, fsync, rename, fsync the directory.
    pub(crate) fn write(&self) -> Result<(), LogError> {
        self.snapshot().write()
    }

    /// The checkpoint as it stands, to write later (without the log's lock).
    pub(crate) fn snapshot(&self) -> EpochCheckpoint {
        EpochCheckpoint {
            path: self.path.clone(),
            lines: self
                .entries
                .iter()
                .map(|(epoch, start)| format!("{epoch} {start}"))
                .collect(),
        }
    }
}

/// A leader-epoch checkpoint's contents, taken under the log's lock and written without it.
#[derive(Debug)]
pub(crate) struct EpochCheckpoint {
    path: PathBuf,
    lines: Vec<String>,
}

impl EpochCheckpoint {
    pub(crate) fn write(&self) -> Result<(), LogError> {
        checkpoint::write_entries(&self.path, &self.lines).at(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn assign_truncate_and_end_offsets_follow_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::load(dir.path()).unwrap();
        assert!(c.entries().is_empty());
        assert!(c.assign(1, 0));
        assert!(!c.assign(1, 5), "same epoch again changes nothing");
        assert!(!c.assign(0, 7), "older epoch changes nothing");
        assert!(c.assign(3, 10));
        assert!(c.assign(5, 20));
        assert_eq!(c.end_offset_for(5, 30), (5, 30));
        assert_eq!(c.end_offset_for(3, 30), (3, 20));
        assert_eq!(c.end_offset_for(4, 30), (3, 20));
        assert_eq!(c.end_offset_for(0, 30), (0, 0));
        assert_eq!(c.end_offset_for(6, 30), (-1, -1));
        assert_eq!(c.end_offset_for(-1, 30), (-1, -1));
        c.write().unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap(),
            "0\n3\n1 0\n3 10\n5 20\n"
        );
        assert_eq!(
            LeaderEpochCache::load(dir.path()).unwrap().entries(),
            c.entries()
        );
        assert!(c.truncate_from_end(20));
        assert_eq!(c.entries(), &[(1, 0), (3, 10)]);
        assert!(c.truncate_from_start(12));
        assert_eq!(c.entries(), &[(3, 12)]);
        assert!(!c.truncate_from_start(12));
        for bad in [
            "1\n0\n",
            "0\n2\n1 0\n",
            "0\nx\n",
            "0\n2\n3 0\n2 5\n",
            "0\n1\n1 0 9\n",
            "",
        ] {
            fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT), bad).unwrap();
            assert!(
                LeaderEpochCache::load(dir.path()).is_err(),
                "accepted {bad:?}"
            );
        }
    }
}
