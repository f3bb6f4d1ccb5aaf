//! Incremental fetch sessions (KIP-227). A consumer that names a session sends only the
//! partitions whose fetch position changed, and the broker answers only the partitions with
//! something new (records, an error, a moved high watermark or log start), so an idle
//! consumer of many partitions costs a few bytes a fetch instead of a list of them all.
//!
//! The cache follows Kafka's `FetchSessionCache`: `max.incremental.fetch.session.cache.slots`
//! sessions, broker-wide and keyed by a random id; when it is full, a new session may evict
//! one unused for two minutes, else the smallest session older than two minutes if the new
//! one is larger. Partitions that returned records move to the end of their session, so
//! that with a response size limit every partition gets its turn.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use uuid::Uuid;

use crate::errors::ErrorCode;

/// A full fetch that opens a new session (Kafka's `FetchMetadata.INITIAL_EPOCH`).
pub const INITIAL_EPOCH: i32 = 0;
/// A full fetch that wants no session, or closes the one it names (`FINAL_EPOCH`).
pub const FINAL_EPOCH: i32 = -1;
/// Kafka's `MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS`: a session unused this long may be
/// evicted by any new one, and one created this long ago by a larger one.
const EVICTION_AGE: Duration = Duration::from_secs(120);
/// Partitions cached over all sessions. Kafka has no such bound; ours keeps a client that
/// names millions of partitions (a 100 MB request holds that many) from pinning that much
/// memory in a thousand sessions. A session that would pass it is not kept: its consumer
/// goes on with full fetches.
const MAX_CACHED_PARTITIONS: usize = 500_000;

/// How a request names a topic: by name before Fetch v13, by id from v13 on. A session keeps
/// the form it was opened with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TopicKey {
    /// Shared by all the partitions of the topic in a request or session (cheap to clone).
    Name(Arc<str>),
    Id(Uuid),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic: TopicKey,
    pub partition: i32,
}

/// What a fetch request asks of one partition; a session remembers it for the fetches that
/// leave the partition out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchPosition {
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
    /// A follower's own log start (Kafka's FetchPartition.log_start_offset; -1 from consumers).
    pub log_start_offset: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requested {
    pub key: PartitionKey,
    pub position: FetchPosition,
}

/// What a response said of one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reported {
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub has_records: bool,
}

/// How to answer a fetch request, decided by [`FetchSessionCache::begin`].
#[derive(Debug, PartialEq, Eq)]
pub enum FetchPlan {
    /// The request's partitions, answered without a session (session id 0).
    Sessionless(Vec<Requested>),
    /// The request's partitions, all answered; then [`FetchSessionCache::open`] may keep them
    /// as a new session.
    Full(Vec<Requested>),
    /// Every partition of the session, in its order; [`FetchSessionCache::finish`] then says
    /// which of them the response carries.
    Incremental {
        session_id: i32,
        /// The session's epoch once this request is answered (the client's next one).
        epoch: i32,
        partitions: Vec<Requested>,
    },
    /// A session error, answered with no partitions.
    Error(ErrorCode),
}

struct CachedPartition {
    requested: Requested,
    high_watermark: i64,
    log_start_offset: i64,
}

impl CachedPartition {
    /// Whether a response must carry this partition, remembering what it reports (Kafka's
    /// `CachedPartition.maybeUpdateResponseData`).
    fn must_respond(&mut self, reported: &Reported) -> bool {
        let mut must = reported.has_records || reported.error_code != 0;
        if self.high_watermark != reported.high_watermark {
            self.high_watermark = reported.high_watermark;
            must = true;
        }
        if self.log_start_offset != reported.log_start_offset {
            self.log_start_offset = reported.log_start_offset;
            must = true;
        }
        if reported.error_code != 0 {
            // Resent once the error clears, whatever the high watermark is then.
            self.high_watermark = -1;
        }
        must
    }
}

struct FetchSession {
    /// The epoch the next incremental request must carry.
    epoch: i32,
    uses_topic_ids: bool,
    partitions: Vec<CachedPartition>,
    /// Position of each key in `partitions`.
    index: HashMap<PartitionKey, usize>,
    created: Instant,
    last_used: Instant,
}

impl FetchSession {
    fn reindex(&mut self) {
        self.index.clear();
        self.index.extend(
            self.partitions
                .iter()
                .enumerate()
                .map(|(i, p)| (p.requested.key.clone(), i)),
        );
    }

    /// Adds a partition at the end of the session, or gives a known one the request's
    /// position (`high_watermark` and `log_start_offset` are what a response said, -1 when
    /// none has yet).
    fn upsert(&mut self, requested: &Requested, high_watermark: i64, log_start_offset: i64) {
        match self
            .index
            .get(&requested.key)
            .and_then(|&i| self.partitions.get_mut(i))
        {
            Some(cached) => cached.requested.position = requested.position,
            None => {
                let _ = self
                    .index
                    .insert(requested.key.clone(), self.partitions.len());
                self.partitions.push(CachedPartition {
                    requested: requested.clone(),
                    high_watermark,
                    log_start_offset,
                });
            }
        }
    }

    /// Applies an incremental request: new partitions join at the end, known ones take the
    /// request's position, then the forgotten ones leave.
    fn update(&mut self, requested: &[Requested], forgotten: &[PartitionKey]) {
        for r in requested {
            self.upsert(r, -1, -1);
        }
        // Marked by position, so forgetting is linear in the session, not session x forgotten.
        let mut leaving = vec![false; self.partitions.len()];
        for &i in forgotten.iter().filter_map(|k| self.index.get(k)) {
            if let Some(slot) = leaving.get_mut(i) {
                *slot = true;
            }
        }
        if leaving.contains(&true) {
            let mut leaving = leaving.into_iter();
            self.partitions.retain(|_| !leaving.next().unwrap_or(false));
            self.reindex();
        }
    }
}

/// Kafka's `FetchMetadata.nextEpoch`.
fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        FINAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

#[derive(Default)]
struct Sessions {
    by_id: HashMap<i32, FetchSession>,
    cached_partitions: usize,
    evictions: u64,
}

impl Sessions {
    fn remove(&mut self, id: i32) -> Option<FetchSession> {
        let session = self.by_id.remove(&id)?;
        self.cached_partitions = self
            .cached_partitions
            .saturating_sub(session.partitions.len());
        Some(session)
    }

    /// Kafka's `tryEvict` for a new consumer session of `size` partitions: the least
    /// recently used session if it is stale, else the smallest session old enough to be
    /// evictable if the new one is larger.
    fn try_evict(&mut self, size: usize, now: Instant) -> bool {
        let Some((lru, lru_used)) = self
            .by_id
            .iter()
            .map(|(id, s)| (*id, s.last_used))
            .min_by_key(|&(id, used)| (used, id))
        else {
            return false;
        };
        let victim = if now.saturating_duration_since(lru_used) > EVICTION_AGE {
            Some(lru)
        } else {
            self.by_id
                .iter()
                .filter(|(_, s)| now.saturating_duration_since(s.created) > EVICTION_AGE)
                .map(|(id, s)| (s.partitions.len(), *id))
                .min()
                .filter(|&(smallest, _)| size > smallest)
                .map(|(_, id)| id)
        };
        match victim.and_then(|id| self.remove(id)) {
            Some(_) => {
                self.evictions += 1;
                true
            }
            None => false,
        }
    }

    fn new_session_id(&self) -> i32 {
        let mut rng = rand::thread_rng();
        loop {
            let id = rng.gen_range(1..=i32::MAX);
            if !self.by_id.contains_key(&id) {
                return id;
            }
        }
    }
}

/// Sizes of the cache, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchSessionStats {
    pub sessions: usize,
    pub partitions: usize,
    pub evictions: u64,
}

/// The broker's fetch sessions. One lock guards them all; it is held for bookkeeping only,
/// never while a fetch reads or waits.
pub struct FetchSessionCache {
    max_sessions: usize,
    sessions: Mutex<Sessions>,
}

impl FetchSessionCache {
    /// `max_sessions` is `max.incremental.fetch.session.cache.slots`; 0 turns sessions off.
    pub fn new(max_sessions: usize) -> Self {
        Self {
            max_sessions,
            sessions: Mutex::new(Sessions::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides how to answer a Fetch (v7+) from its session id and epoch (Kafka's
    /// `FetchManager.newContext`). An incremental request updates its session here, and
    /// moves its epoch on, so a duplicate of it fails with INVALID_FETCH_SESSION_EPOCH.
    pub fn begin(
        &self,
        session_id: i32,
        epoch: i32,
        uses_topic_ids: bool,
        requested: Vec<Requested>,
        forgotten: &[PartitionKey],
        now: Instant,
    ) -> FetchPlan {
        let mut sessions = self.lock();
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            // A full request closes the session it names.
            if session_id != 0 {
                let _ = sessions.remove(session_id);
            }
            return if epoch == FINAL_EPOCH {
                FetchPlan::Sessionless(requested)
            } else {
                FetchPlan::Full(requested)
            };
        }
        let Some(session) = sessions.by_id.get_mut(&session_id) else {
            return FetchPlan::Error(ErrorCode::FetchSessionIdNotFound);
        };
        if session.epoch != epoch {
            return FetchPlan::Error(ErrorCode::InvalidFetchSessionEpoch);
        }
        if session.uses_topic_ids != uses_topic_ids {
            return FetchPlan::Error(ErrorCode::FetchSessionTopicIdError);
        }
        let before = session.partitions.len();
        session.update(&requested, forgotten);
        let after = session.partitions.len();
        sessions.cached_partitions = sessions.cached_partitions.saturating_sub(before) + after;
        if after == 0 || sessions.cached_partitions > MAX_CACHED_PARTITIONS {
            // Nothing left to follow (or too much to keep): the session closes and the
            // request is answered as it stands, as Kafka answers an emptied session.
            let _ = sessions.remove(session_id);
            return FetchPlan::Sessionless(requested);
        }
        let Some(session) = sessions.by_id.get_mut(&session_id) else {
            return FetchPlan::Error(ErrorCode::FetchSessionIdNotFound);
        };
        session.last_used = now;
        session.epoch = next_epoch(session.epoch);
        FetchPlan::Incremental {
            session_id,
            epoch: session.epoch,
            partitions: session
                .partitions
                .iter()
                .map(|p| p.requested.clone())
                .collect(),
        }
    }

    /// After a full fetch: keeps its partitions, with what the response said of each, as a
    /// new session if there is room (or a session to evict). Returns the session id, or 0
    /// when none was kept. A partition named twice is kept once, where it first appeared,
    /// with its last position.
    pub fn open(
        &self,
        uses_topic_ids: bool,
        answered: &[(Requested, Reported)],
        now: Instant,
    ) -> i32 {
        let mut sessions = self.lock();
        if self.max_sessions == 0
            || sessions.cached_partitions + answered.len() > MAX_CACHED_PARTITIONS
        {
            return 0;
        }
        if sessions.by_id.len() >= self.max_sessions && !sessions.try_evict(answered.len(), now) {
            return 0;
        }
        let mut session = FetchSession {
            epoch: next_epoch(INITIAL_EPOCH),
            uses_topic_ids,
            partitions: Vec::with_capacity(answered.len()),
            index: HashMap::with_capacity(answered.len()),
            created: now,
            last_used: now,
        };
        for (requested, reported) in answered {
            // Resent once an error clears, whatever the high watermark is then.
            let high_watermark = if reported.error_code != 0 {
                -1
            } else {
                reported.high_watermark
            };
            session.upsert(requested, high_watermark, reported.log_start_offset);
        }
        let id = sessions.new_session_id();
        sessions.cached_partitions += session.partitions.len();
        let _ = sessions.by_id.insert(id, session);
        id
    }

    /// After an incremental fetch: which of the session's partitions (in the order
    /// [`FetchPlan::Incremental`] gave them) the response must carry. Partitions that returned
    /// records move to the end of the session. Fails when the session moved on meanwhile (a
    /// duplicate request) or is gone (evicted or closed), as the fetch's answer would then
    /// not match what the client holds.
    pub fn finish(
        &self,
        session_id: i32,
        epoch: i32,
        reported: &[Reported],
    ) -> Result<Vec<bool>, ErrorCode> {
        let mut sessions = self.lock();
        let session = sessions
            .by_id
            .get_mut(&session_id)
            .ok_or(ErrorCode::FetchSessionIdNotFound)?;
        if session.epoch != epoch || session.partitions.len() != reported.len() {
            return Err(ErrorCode::InvalidFetchSessionEpoch);
        }
        let keep: Vec<bool> = session
            .partitions
            .iter_mut()
            .zip(reported)
            .map(|(cached, r)| cached.must_respond(r))
            .collect();
        if reported.iter().any(|r| r.has_records) {
            let (quiet, fed): (Vec<_>, Vec<_>) = std::mem::take(&mut session.partitions)
                .into_iter()
                .zip(reported)
                .partition(|(_, r)| !r.has_records);
            session.partitions = quiet.into_iter().chain(fed).map(|(p, _)| p).collect();
            session.reindex();
        }
        Ok(keep)
    }

    pub fn stats(&self) -> FetchSessionStats {
        let sessions = self.lock();
        FetchSessionStats {
            sessions: sessions.by_id.len(),
            partitions: sessions.cached_partitions,
            evictions: sessions.evictions,
        }
    }
}

#[cfg(test)]
#[path = "fetch_session_tests.rs"]
mod tests;
