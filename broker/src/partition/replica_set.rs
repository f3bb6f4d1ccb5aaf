//! A partition's replication state on this broker: whether it leads or follows, and, on the
//! leader, how far each follower has fetched. The high watermark is the smallest log end of
//! the in-sync replicas (the leader's own included): what every ISR member has, so what
//! survives the loss of any of them. A partition with one replica is its own ISR and its
//! high watermark is its log end, as before replication.

use std::collections::HashMap;

/// Whether this broker leads the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower { leader: i32 },
}

/// One follower as the leader sees it (Kafka's `Replica` state).
#[derive(Debug, Clone, Copy)]
struct FollowerProgress {
    /// The offset its last fetch asked for: everything below it is in its log.
    log_end_offset: i64,
    /// Its log start, as its last fetch said (-1 before one).
    log_start_offset: i64,
    /// The last time it was caught up with the leader's log end (see `record_fetch`).
    last_caught_up_ms: i64,
    /// The leader's log end and the time of its previous fetch.
    previous_fetch_leader_end: i64,
    previous_fetch_ms: i64,
}

/// What a follower's fetch changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchEffect {
    /// The high watermark moved up.
    pub high_watermark_advanced: bool,
    /// The follower is out of the ISR but caught up: the leader should add it back.
    pub rejoins_isr: bool,
}

#[derive(Debug)]
pub(super) struct ReplicaSet {
    pub(super) role: Role,
    pub(super) node_id: i32,
    pub(super) replicas: Vec<i32>,
    pub(super) isr: Vec<i32>,
    pub(super) partition_epoch: i32,
    /// Where this leader's epoch began: a follower below it has not yet caught up with
    /// this leadership and may not rejoin the ISR.
    pub(super) leader_epoch_start_offset: i64,
    followers: HashMap<i32, FollowerProgress>,
    /// On a follower: the leader's high watermark from its last fetch answer.
    pub(super) leader_high_watermark: i64,
    /// An ISR change proposed to the controller and not yet seen in the metadata.
    pub(super) isr_change_in_flight: bool,
}

impl ReplicaSet {
    /// A partition no image has described yet: its own only replica, leading.
    pub(super) fn alone(node_id: i32) -> Self {
        Self {
            role: Role::Leader,
            node_id,
            replicas: vec![node_id],
            isr: vec![node_id],
            partition_epoch: 0,
            leader_epoch_start_offset: 0,
            followers: HashMap::new(),
            leader_high_watermark: 0,
            isr_change_in_flight: false,
        }
    }

    pub(super) fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// This broker leads from now on (or still, with a new replica set or ISR). Followers'
    /// progress is kept across ISR changes of the same leadership, forgotten on a new one.
    pub(super) fn lead(
        &mut self,
        new_leadership: bool,
        replicas: &[i32],
        isr: &[i32],
        partition_epoch: i32,
        log_end_offset: i64,
    ) {
        if new_leadership {
            self.followers.clear();
            self.leader_epoch_start_offset = log_end_offset;
        }
        self.role = Role::Leader;
        self.replicas = replicas.to_vec();
        self.isr = isr.to_vec();
        self.partition_epoch = partition_epoch;
        self.isr_change_in_flight = false;
        self.followers.retain(|id, _| replicas.contains(id));
    }

    pub(super) fn follow(
        &mut self,
        leader: i32,
        replicas: &[i32],
        isr: &[i32],
        partition_epoch: i32,
    ) {
        self.role = Role::Follower { leader };
        self.replicas = replicas.to_vec();
        self.isr = isr.to_vec();
        self.partition_epoch = partition_epoch;
        self.followers.clear();
        self.isr_change_in_flight = false;
    }

    /// The high watermark the leader may publish given its own log end: the smallest log
    /// end in the ISR. A follower's is the leader's, capped by what it has.
    pub(super) fn high_watermark(&self, log_end_offset: i64) -> i64 {
        match self.role {
            Role::Follower { .. } => self.leader_high_watermark.min(log_end_offset),
            Role::Leader => self
                .isr
                .iter()
                .filter(|id| **id != self.node_id)
                .map(|id| {
                    // An ISR member that has not fetched in this leadership holds it back.
                    self.followers
                        .get(id)
                        .map_or(i64::MIN, |f| f.log_end_offset)
                })
                .fold(log_end_offset, i64::min),
        }
    }

    /// A follower fetched from `fetch_offset`: everything below it is in its log. Kafka's
    /// `Replica.updateFetchState`: caught up now if it asked for the log end; else caught
    /// up as of its previous fetch if it has reached what the log end was then.
    pub(super) fn record_fetch(
        &mut self,
        follower: i32,
        fetch_offset: i64,
        follower_log_start: i64,
        leader_end: i64,
        high_watermark: i64,
        now_ms: i64,
    ) -> FetchEffect {
        if !self.replicas.contains(&follower) || !self.is_leader() {
            return FetchEffect::default();
        }
        let progress = self.followers.entry(follower).or_insert(FollowerProgress {
            log_end_offset: -1,
            log_start_offset: -1,
            last_caught_up_ms: now_ms,
            previous_fetch_leader_end: -1,
            previous_fetch_ms: now_ms,
        });
        if fetch_offset >= leader_end {
            progress.last_caught_up_ms = now_ms;
        } else if fetch_offset >= progress.previous_fetch_leader_end
            && progress.previous_fetch_leader_end >= 0
        {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(progress.previous_fetch_ms);
        }
        progress.previous_fetch_leader_end = leader_end;
        progress.previous_fetch_ms = now_ms;
        let before = progress.log_end_offset;
        progress.log_end_offset = fetch_offset;
        progress.log_start_offset = follower_log_start;
        let in_isr = self.isr.contains(&follower);
        FetchEffect {
            high_watermark_advanced: in_isr && fetch_offset > before,
            rejoins_isr: !in_isr
                && !self.isr_change_in_flight
                && fetch_offset >= high_watermark
                && fetch_offset >= self.leader_epoch_start_offset,
        }
    }

    /// On a leader: the in-sync followers whose logs hold `offset` (as of their last fetch),
    /// the replicas a consumer may be sent to read it from (KIP-392).
    pub(super) fn followers_holding(&self, offset: i64) -> Vec<i32> {
        if !self.is_leader() {
            return Vec::new();
        }
        self.isr_followers()
            .filter(|id| {
                self.followers.get(id).is_some_and(|f| {
                    f.log_end_offset >= offset && (0..=offset).contains(&f.log_start_offset)
                })
            })
            .collect()
    }

    /// On a leader: the smallest log start its in-sync followers reported (-1 for one that
    /// has not fetched in this leadership); None without followers or on a follower.
    pub(super) fn smallest_follower_log_start(&self) -> Option<i64> {
        if !self.is_leader() {
            return None;
        }
        self.isr_followers()
            .map(|id| self.followers.get(&id).map_or(-1, |f| f.log_start_offset))
            .min()
    }

    /// The ISR members other than this broker.
    fn isr_followers(&self) -> impl Iterator<Item = i32> + '_ {
        self.isr.iter().copied().filter(|id| *id != self.node_id)
    }

    /// ISR members that have not caught up for longer than `max_lag_ms` (Kafka's
    /// `replica.lag.time.max.ms`), or never fetched in that time.
    pub(super) fn lagging(
        &self,
        now_ms: i64,
        max_lag_ms: i64,
        leadership_since_ms: i64,
    ) -> Vec<i32> {
        if !self.is_leader() || self.isr_change_in_flight {
            return Vec::new();
        }
        self.isr_followers()
            .filter(|id| {
                let caught_up = self
                    .followers
                    .get(id)
                    .map_or(leadership_since_ms, |f| f.last_caught_up_ms);
                now_ms.saturating_sub(caught_up) > max_lag_ms
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader_of_three() -> ReplicaSet {
        let mut set = ReplicaSet::alone(1);
        set.lead(true, &[1, 2, 3], &[1, 2, 3], 0, 0);
        set
    }

    #[test]
    fn high_watermark_is_the_smallest_isr_log_end() {
        let mut set = leader_of_three();
        assert_eq!(
            set.high_watermark(10),
            i64::MIN,
            "followers not heard from yet"
        );
        let _ = set.record_fetch(2, 10, 0, 10, 0, 1);
        let _ = set.record_fetch(3, 4, 0, 10, 0, 1);
        assert_eq!(set.high_watermark(10), 4);
        set.lead(false, &[1, 2, 3], &[1, 2], 1, 10);
        assert_eq!(set.high_watermark(10), 10, "3 left the ISR");
        let alone = ReplicaSet::alone(1);
        assert_eq!(alone.high_watermark(7), 7);
    }

    #[test]
    fn a_follower_behind_for_longer_than_the_lag_limit_is_lagging() {
        let mut set = leader_of_three();
        let _ = set.record_fetch(2, 0, 0, 0, 0, 1_000);
        let _ = set.record_fetch(3, 0, 0, 0, 0, 1_000);
        // 2 keeps up with what the log end was at its previous fetch; 3 stops fetching.
        for (t, end) in [(29_000, 5), (30_000, 9), (31_000, 12)] {
            let before = set
                .followers
                .get(&2)
                .map_or(0, |f| f.previous_fetch_leader_end);
            let _ = set.record_fetch(2, before, 0, end, 0, t);
        }
        assert_eq!(set.lagging(40_000, 30_000, 0), vec![3]);
    }

    #[test]
    fn a_caught_up_follower_outside_the_isr_rejoins() {
        let mut set = ReplicaSet::alone(1);
        set.lead(true, &[1, 2], &[1], 0, 5);
        let behind = set.record_fetch(2, 3, 0, 8, 8, 1);
        assert!(!behind.rejoins_isr);
        let caught_up = set.record_fetch(2, 8, 0, 8, 8, 2);
        assert!(caught_up.rejoins_isr);
    }
}
