//! Appends in three steps, so that the copy of the records into the file needs no lock:
//! [`Log::begin_append`] assigns offsets and reserves room past the committed end (under the
//! caller's lock, briefly), [`PendingAppend::write`] copies the bytes (without it), and
//! [`Log::finish_append`] publishes offsets and index entries (under it again). The first
//! append of a new leader epoch also rewrites `leader-epoch-checkpoint` (two fsyncs) in the
//! unlocked step, before the append is published, as Kafka's assign does before it returns. Readers see
//! committed bytes only, so a fetch never waits for a produce's copy (Kafka's reads do not
//! take its log lock either). Appends themselves stay serialized: one may be in flight.

use crate::error::LogError;
use crate::leader_epoch::EpochCheckpoint;
use crate::log::{AppendInfo, Log};
use crate::roll::SegmentPlan;
use crate::segment::{log_path, segment_capacity, ReservedWrite};
use crate::TimestampType;
use strata_protocol::record_batch::RecordBatchHeader;

/// What [`Log::start_append`] found.
#[derive(Debug)]
pub enum AppendStart<'a> {
    /// Offsets assigned and room reserved: write it, then finish it.
    Ready(PendingAppend<'a>),
    /// The active segment must roll first: create this segment, install it, ask again.
    RollFirst(SegmentPlan),
}

/// An append whose offsets are assigned and whose room is reserved: [`PendingAppend::write`]
/// it without holding the log, then hand it to [`Log::finish_append`].
#[derive(Debug)]
pub struct PendingAppend<'a> {
    batches: &'a [u8],
    leader_epoch: i32,
    log_append_time: Option<i64>,
    first_offset: i64,
    records: u64,
    /// The segment written to, for error messages.
    segment_base: i64,
    reserved: ReservedWrite,
    /// The leader-epoch checkpoint with this append's new epoch, for a new epoch's first.
    epoch_checkpoint: Option<EpochCheckpoint>,
    written: Option<Result<(), WriteFailed>>,
}

/// What failed in the unlocked step.
#[derive(Debug)]
enum WriteFailed {
    /// Copying the records into the segment file.
    Records(std::io::Error),
    /// Writing the leader-epoch checkpoint (the error names the file).
    EpochCheckpoint(LogError),
}

impl PendingAppend<'_> {
    /// The offset the first record gets.
    pub fn first_offset(&self) -> i64 {
        self.first_offset
    }

    /// Copies the batches into the segment file (the kernel's copy into the page cache), and
    /// writes the leader-epoch checkpoint when the append starts a new epoch. Needs no access
    /// to the log; a failure is reported by `finish_append`.
    pub fn write(&mut self) {
        self.written = Some(self.copy());
    }

    fn copy(&self) -> Result<(), WriteFailed> {
        self.reserved
            .write(self.batches, self.leader_epoch, self.log_append_time)
            .map_err(WriteFailed::Records)?;
        match &self.epoch_checkpoint {
            Some(checkpoint) => checkpoint.write().map_err(WriteFailed::EpochCheckpoint),
            None => Ok(()),
        }
    }
}

impl Log {
    /// Appends already-validated whole magic-2 batches, assigning offsets from the log end
    /// (the three steps at once, for a caller that holds the log throughout).
    pub fn append(
        &mut self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let pending = self.begin_append(batches, leader_epoch, now_ms)?;
        self.finish_append(pending)
    }

    /// Sizes the append from its batch headers (not its records), rolls the segment if Kafka's
    /// roll conditions say so, and reserves room for it. Until `finish_append`, no other
    /// append, roll, truncation or close is accepted.
    pub fn begin_append<'a>(
        &mut self,
        batches: &'a [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<PendingAppend<'a>, LogError> {
        if let AppendStart::Ready(pending) = self.start_append(batches, leader_epoch, now_ms)? {
            return Ok(pending);
        }
        let r = self.roll(now_ms);
        self.gate(r)?;
        match self.start_append(batches, leader_epoch, now_ms)? {
            AppendStart::Ready(pending) => Ok(pending),
            AppendStart::RollFirst(_) => Err(LogError::Corrupt {
                path: self.dir.display().to_string(),
                reason: "expected a new segment to take the append".to_owned(),
            }),
        }
    }

    /// `begin_append` for a caller that rolls with the file work outside its lock: the same
    /// checks and one pass over the batch headers, then either room reserved or, when Kafka's
    /// roll conditions say so, the segment to create first ([`SegmentPlan::create`],
    /// [`Log::install_segment`]), after which the caller asks again.
    pub fn start_append<'a>(
        &mut self,
        batches: &'a [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendStart<'a>, LogError> {
        self.start_append_as(batches, leader_epoch, now_ms, None)
    }

    /// `start_append` for a follower copying its leader's batches (all of one leader
    /// epoch): they keep the offsets, epoch and timestamps the leader gave them. The first
    /// may start past this log's end (the leader's cleaner removed what lies between), never
    /// before it, and each starts after the one before.
    pub fn start_replica_append<'a>(
        &mut self,
        batches: &'a [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendStart<'a>, LogError> {
        let mut next = self.log_end_offset();
        let mut first = None;
        let mut pos = 0usize;
        while pos < batches.len() {
            let h =
                RecordBatchHeader::parse(batches.get(pos..).unwrap_or_default()).map_err(|e| {
                    LogError::InvalidBatch {
                        position: pos,
                        reason: e.to_string(),
                    }
                })?;
            if h.base_offset < next || h.last_offset_delta < 0 {
                return Err(LogError::ReplicaOffsetMismatch {
                    expected: next,
                    found: h.base_offset,
                });
            }
            first.get_or_insert(h.base_offset);
            next = h.last_offset() + 1;
            pos += h.total_size().max(1);
        }
        let Some(first) = first else {
            return Err(LogError::InvalidBatch {
                position: 0,
                reason: "expected at least one batch".to_owned(),
            });
        };
        let start = self.start_append_as(batches, leader_epoch, now_ms, Some((first, next)))?;
        Ok(match start {
            AppendStart::Ready(mut pending) => {
                pending.reserved.keep_as_sent = true;
                AppendStart::Ready(pending)
            }
            roll => roll,
        })
    }

    /// `replica`: the [first, end) offsets a follower's batches already carry.
    fn start_append_as<'a>(
        &mut self,
        batches: &'a [u8],
        leader_epoch: i32,
        now_ms: i64,
        replica: Option<(i64, i64)>,
    ) -> Result<AppendStart<'a>, LogError> {
        self.check_writable()?;
        self.check_no_append_in_flight()?;
        self.last_now_ms = now_ms;
        let capacity = segment_capacity(&self.config);
        if batches.len() > capacity {
            return Err(LogError::RecordBatchTooLarge {
                size: batches.len(),
                segment_bytes: self.config.segment_bytes,
            });
        }
        let (offsets, records, max_ts) = size_batches(batches)?;
        // A follower's offsets span from the log end to past its last batch, gaps included.
        let offsets = match replica {
            Some((_, end)) => end - self.log_end_offset(),
            None => offsets,
        };
        if self.roll_due(batches.len(), offsets, max_ts, now_ms) {
            return Ok(AppendStart::RollFirst(self.segment_plan(now_ms)));
        }
        let r = self.active.reserve(batches.len());
        let reserved = self.gate(r)?;
        self.append_in_flight = true;
        let first_offset = replica.map_or(self.log_end_offset(), |(first, _)| first);
        Ok(AppendStart::Ready(PendingAppend {
            batches,
            leader_epoch,
            // A replica keeps the leader's LogAppendTime: the batch is stored as it came.
            log_append_time: if replica.is_some() {
                None
            } else {
                self.log_append_time(now_ms)
            },
            first_offset,
            records,
            segment_base: self.active.base_offset(),
            reserved,
            epoch_checkpoint: self.leader_epochs.snapshot_with(leader_epoch, first_offset),
            written: None,
        }))
    }

    /// Publishes a written append (writing it first if the caller did not). A failed write
    /// closes the fsync gate, as any failed write does.
    pub fn finish_append(
        &mut self,
        mut pending: PendingAppend<'_>,
    ) -> Result<AppendInfo, LogError> {
        self.append_in_flight = false;
        let written = pending
            .written
            .take()
            .unwrap_or_else(|| pending.copy())
            .map_err(|failed| match failed {
                WriteFailed::Records(e) => {
                    LogError::io(&log_path(&self.dir, pending.segment_base), e)
                }
                WriteFailed::EpochCheckpoint(e) => e,
            });
        self.gate(written)?;
        // `commit` refuses a reservation that is not the active segment's next write.
        let r = self
            .active
            .commit(&pending.reserved, pending.batches, pending.log_append_time);
        let appended = self.gate(r)?;
        // Its checkpoint is on disk already (`PendingAppend::write`).
        self.leader_epochs
            .assign(pending.leader_epoch, pending.first_offset);
        Ok(AppendInfo {
            first_offset: pending.first_offset,
            last_offset: appended.last_offset,
            log_append_time: pending.log_append_time,
            max_timestamp: appended.max_timestamp,
            offset_of_max_timestamp: appended.offset_of_max_timestamp,
            records: pending.records,
        })
    }

    /// The broker time stamped on appended batches, when the topic uses LogAppendTime.
    fn log_append_time(&self, now_ms: i64) -> Option<i64> {
        (self.config.message_timestamp_type == TimestampType::LogAppendTime).then_some(now_ms)
    }

    /// Kafka's roll conditions for appending `len` bytes holding `offsets` offsets whose
    /// largest timestamp is `max_ts`.
    fn roll_due(&self, len: usize, offsets: i64, max_ts: i64, now_ms: i64) -> bool {
        let last_offset = self.log_end_offset() + offsets - 1;
        self.active.should_roll(
            len,
            self.log_append_time(now_ms).unwrap_or(max_ts),
            last_offset,
            now_ms,
            &self.config,
        )
    }

    /// Whether appending `batches` now must first roll to a new segment.
    pub(crate) fn roll_due_for(&self, batches: &[u8], now_ms: i64) -> Result<bool, LogError> {
        let (offsets, _, max_ts) = size_batches(batches)?;
        Ok(self.roll_due(batches.len(), offsets, max_ts, now_ms))
    }

    pub(crate) fn check_no_append_in_flight(&self) -> Result<(), LogError> {
        if self.append_in_flight {
            return Err(LogError::AppendInFlight {
                path: self.dir.display().to_string(),
            });
        }
        Ok(())
    }
}

/// One pass over the batch headers: (offsets, records, max timestamp).
fn size_batches(batches: &[u8]) -> Result<(i64, u64, i64), LogError> {
    let (mut pos, mut offsets, mut records, mut max_ts) = (0usize, 0i64, 0u64, -1i64);
    while pos < batches.len() {
        let rest = batches.get(pos..).unwrap_or_default();
        let h = RecordBatchHeader::parse(rest).map_err(|e| LogError::InvalidBatch {
            position: pos,
            reason: e.to_string(),
        })?;
        if h.total_size() > rest.len() {
            return Err(LogError::InvalidBatch {
                position: pos,
                reason: format!(
                    "expected {} bytes of batch, found {}",
                    h.total_size(),
                    rest.len()
                ),
            });
        }
        if h.last_offset_delta < 0 {
            return Err(LogError::InvalidBatch {
                position: pos,
                reason: format!(
                    "expected last_offset_delta >= 0, found {}",
                    h.last_offset_delta
                ),
            });
        }
        offsets += i64::from(h.last_offset_delta) + 1;
        records += u64::try_from(h.records_count).unwrap_or(0);
        max_ts = max_ts.max(h.max_timestamp);
        pos += h.total_size();
    }
    if offsets == 0 {
        return Err(LogError::InvalidBatch {
            position: 0,
            reason: "expected at least one record batch, found none".into(),
        });
    }
    Ok((offsets, records, max_ts))
}
