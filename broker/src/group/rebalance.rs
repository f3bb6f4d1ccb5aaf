//! The rebalance state machine shared by every group API, and its timers: the initial
//! rebalance delay, the rebalance (join) timeout, the sync timeout, session expiry and
//! the expiry of member ids handed out with MEMBER_ID_REQUIRED.
//! All functions run under the group's lock; timers re-take it and check that the
//! group is still in the rebalance/incarnation they were started for.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use tracing::debug;

use super::codes;
use super::coordinator::{lock, GroupCoordinator, GroupHandle};
use super::state::{ClassicGroup, GroupState};

pub(crate) fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A JoinGroup response with only the fields `version` carries.
pub(crate) fn join_response(
    version: i16,
    error_code: i16,
    generation_id: i32,
    protocol_type: Option<&str>,
    protocol_name: Option<&str>,
    leader: &str,
    member_id: &str,
) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = error_code;
    r.generation_id = generation_id;
    if version >= 7 {
        r.protocol_type = protocol_type.map(s);
        r.protocol_name = protocol_name.map(s);
    } else {
        // Before v7 the protocol name is not nullable.
        r.protocol_name = Some(s(protocol_name.unwrap_or("")));
    }
    r.leader = s(leader);
    r.member_id = s(member_id);
    r
}

pub(crate) fn join_error(version: i16, error_code: i16, member_id: &str) -> JoinGroupResponse {
    join_response(version, error_code, -1, None, None, "", member_id)
}

pub(crate) fn sync_response(
    version: i16,
    error_code: i16,
    g: Option<&ClassicGroup>,
    assignment: Bytes,
) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.error_code = error_code;
    if version >= 5 {
        if let Some(g) = g {
            r.protocol_type = g.protocol_type.as_deref().map(s);
            r.protocol_name = g.protocol_name.as_deref().map(s);
        }
    }
    r.assignment = assignment;
    r
}

/// The JoinGroup response of `member_id` for the group's current generation; the
/// leader gets every member's metadata for the selected protocol.
pub(crate) fn current_join_response(
    g: &ClassicGroup,
    member_id: &str,
    version: i16,
    skip_assignment: bool,
) -> JoinGroupResponse {
    let mut r = join_response(
        version,
        codes::NONE,
        g.generation,
        g.protocol_type.as_deref(),
        g.protocol_name.as_deref(),
        g.leader.as_deref().unwrap_or(""),
        member_id,
    );
    if g.is_leader(member_id) {
        let protocol = g.protocol_name.as_deref().unwrap_or("");
        r.members = g
            .members
            .values()
            .map(|m| {
                let mut jm = JoinGroupResponseMember::default();
                jm.member_id = s(&m.member_id);
                if version >= 5 {
                    jm.group_instance_id = m.group_instance_id.as_deref().map(s);
                }
                jm.metadata = m.metadata_for(protocol);
                jm
            })
            .collect();
        r.skip_assignment = skip_assignment && version >= 9;
    }
    r
}

impl GroupCoordinator {
    /// Starts a rebalance (Kafka's prepareRebalance): pending SyncGroups fail with
    /// REBALANCE_IN_PROGRESS, and the join phase waits for the members (or, for an empty
    /// group, the initial rebalance delay).
    pub(crate) fn prepare_rebalance(&self, handle: &Arc<GroupHandle>, g: &mut ClassicGroup) {
        if g.state == GroupState::CompletingRebalance {
            self.reset_assignments(g, codes::rebalance_in_progress());
        }
        g.pending_sync.clear();
        let initial = g.state == GroupState::Empty;
        g.transition(GroupState::PreparingRebalance, self.clock.now_ms());
        g.rebalance_seq += 1;
        g.new_member_added = false;
        let rebalance_timeout = g
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
            .max(0);
        let seq = g.rebalance_seq;
        debug!(group = %g.group_id, generation = g.generation, "preparing rebalance");
        if initial && self.config.group_initial_rebalance_delay_ms > 0 {
            g.in_initial_delay = true;
            let delay = self.config.group_initial_rebalance_delay_ms.max(0);
            let remaining = rebalance_timeout.saturating_sub(delay).max(0);
            self.start_initial_delay_timer(handle.clone(), seq, delay, remaining);
        } else {
            g.in_initial_delay = false;
            self.start_join_timer(handle.clone(), seq, rebalance_timeout);
            self.try_complete_join(handle, g);
        }
    }

    /// Fails pending SyncGroups and forgets the assignments of the generation.
    pub(crate) fn reset_assignments(&self, g: &mut ClassicGroup, error: i16) {
        for m in g.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(w) = m.sync_waiter.take() {
                let _ =
                    w.tx.send(sync_response(w.version, error, None, Bytes::new()));
            }
        }
    }

    pub(crate) fn maybe_prepare_rebalance(&self, handle: &Arc<GroupHandle>, g: &mut ClassicGroup) {
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty => {
                self.prepare_rebalance(handle, g)
            }
            GroupState::PreparingRebalance => self.try_complete_join(handle, g),
            GroupState::Dead => {}
        }
    }

    pub(crate) fn try_complete_join(&self, handle: &Arc<GroupHandle>, g: &mut ClassicGroup) {
        if g.state == GroupState::PreparingRebalance
            && !g.in_initial_delay
            && g.all_members_joined()
        {
            self.complete_join(handle, g);
        }
    }

    /// Ends the join phase (Kafka's onCompleteJoin): drops dynamic members that did not
    /// rejoin, opens the next generation and answers every waiting JoinGroup.
    pub(crate) fn complete_join(&self, handle: &Arc<GroupHandle>, g: &mut ClassicGroup) {
        g.in_initial_delay = false;
        let stragglers: Vec<String> = g
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in stragglers {
            self.detach_member(g, &id, codes::unknown_member_id());
        }
        if !g.members.is_empty() {
            let leader_joined = g
                .leader
                .as_ref()
                .and_then(|l| g.members.get(l))
                .is_some_and(|m| m.join_waiter.is_some());
            if !leader_joined {
                match g.members.values().find(|m| m.join_waiter.is_some()) {
                    Some(m) => g.leader = Some(m.member_id.clone()),
                    None => {
                        // Only static members that have not rejoined remain: wait another
                        // rebalance timeout for them (their sessions still expire).
                        let timeout = g
                            .members
                            .values()
                            .map(|m| m.rebalance_timeout_ms)
                            .max()
                            .unwrap_or(0);
                        g.rebalance_seq += 1;
                        self.start_join_timer(handle.clone(), g.rebalance_seq, timeout);
                        return;
                    }
                }
            }
        }
        g.generation = g.generation.wrapping_add(1);
        let now_ms = self.clock.now_ms();
        if g.members.is_empty() {
            g.protocol_name = None;
            g.leader = None;
            g.transition(GroupState::Empty, now_ms);
            let record = GroupCoordinator::group_metadata_record(g);
            self.append_detached(&g.group_id, g.partition, vec![record]);
            return;
        }
        g.protocol_name = g.select_protocol();
        g.transition(GroupState::CompletingRebalance, now_ms);
        let ids: Vec<String> = g.members.keys().cloned().collect();
        for id in &ids {
            let waiter = g.members.get_mut(id).and_then(|m| m.join_waiter.take());
            if let Some(w) = waiter {
                let response = current_join_response(g, id, w.version, false);
                let _ = w.tx.send(response);
            }
        }
        let deadline_base = Instant::now();
        for m in g.members.values_mut() {
            m.session_deadline = deadline_base + millis(m.session_timeout_ms);
        }
        g.pending_sync = ids.into_iter().collect();
        let timeout = g
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        self.start_sync_timer(handle.clone(), g.generation, timeout);
        debug!(group = %g.group_id, generation = g.generation, "join phase complete");
    }

    /// Removes a member without re-evaluating the group state; its waiting responses get
    /// `error`.
    pub(crate) fn detach_member(&self, g: &mut ClassicGroup, member_id: &str, error: i16) {
        let Some(mut m) = g.members.remove(member_id) else {
            return;
        };
        if let Some(w) = m.join_waiter.take() {
            let _ = w.tx.send(join_error(w.version, error, member_id));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ =
                w.tx.send(sync_response(w.version, error, None, Bytes::new()));
        }
        if let Some(iid) = &m.group_instance_id {
            if g.static_members.get(iid).is_some_and(|id| id == member_id) {
                let _ = g.static_members.remove(iid);
            }
        }
        let _ = g.pending_sync.remove(member_id);
        if g.is_leader(member_id) {
            g.leader = g
                .members
                .values()
                .find(|m| m.join_waiter.is_some())
                .or_else(|| g.members.values().next())
                .map(|m| m.member_id.clone());
        }
    }

    /// Removes a member (left, expired or never synced) and moves the group on, as
    /// Kafka's removeMemberAndUpdateGroup.
    pub(crate) fn remove_member(
        &self,
        handle: &Arc<GroupHandle>,
        g: &mut ClassicGroup,
        member_id: &str,
    ) {
        self.detach_member(g, member_id, codes::unknown_member_id());
        match g.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(handle, g)
            }
            GroupState::PreparingRebalance => self.try_complete_join(handle, g),
        }
    }

    fn start_initial_delay_timer(
        &self,
        handle: Arc<GroupHandle>,
        seq: u64,
        delay: i32,
        remaining: i32,
    ) {
        let weak = self.weak.clone();
        self.spawn(async move {
            let (mut delay, mut remaining) = (delay, remaining);
            loop {
                tokio::time::sleep(millis(delay)).await;
                let Some(c) = weak.upgrade() else { return };
                let mut g = lock(&handle);
                if g.rebalance_seq != seq || g.state != GroupState::PreparingRebalance {
                    return;
                }
                if g.new_member_added && remaining > 0 {
                    // Members are still arriving: wait once more, within the rebalance timeout.
                    g.new_member_added = false;
                    delay = delay.min(remaining);
                    remaining -= delay;
                    continue;
                }
                c.complete_join(&handle, &mut g);
                return;
            }
        });
    }

    pub(crate) fn start_join_timer(&self, handle: Arc<GroupHandle>, seq: u64, timeout_ms: i32) {
        let weak = self.weak.clone();
        self.spawn(async move {
            tokio::time::sleep(millis(timeout_ms)).await;
            let Some(c) = weak.upgrade() else { return };
            let mut g = lock(&handle);
            if g.rebalance_seq == seq && g.state == GroupState::PreparingRebalance {
                c.complete_join(&handle, &mut g);
            }
        });
    }

    /// Members that got their JoinGroup response but never sent SyncGroup within the
    /// rebalance timeout are removed, which starts a new rebalance.
    fn start_sync_timer(&self, handle: Arc<GroupHandle>, generation: i32, timeout_ms: i32) {
        let weak = self.weak.clone();
        self.spawn(async move {
            tokio::time::sleep(millis(timeout_ms)).await;
            let Some(c) = weak.upgrade() else { return };
            let mut g = lock(&handle);
            if g.generation != generation
                || !matches!(g.state, GroupState::CompletingRebalance | GroupState::Stable)
                || g.pending_sync.is_empty()
            {
                return;
            }
            let missing: Vec<String> = g.pending_sync.drain().collect();
            debug!(group = %g.group_id, ?missing, "members did not sync within the rebalance timeout");
            for id in &missing {
                c.detach_member(&mut g, id, codes::unknown_member_id());
            }
            c.prepare_rebalance(&handle, &mut g);
        });
    }

    /// The member's session: expires it unless heartbeats (or joins/syncs) keep pushing
    /// its deadline. Members with a JoinGroup or SyncGroup in flight stay alive.
    pub(crate) fn start_session_timer(
        &self,
        handle: Arc<GroupHandle>,
        member_id: String,
        incarnation: u64,
    ) {
        let weak = self.weak.clone();
        self.spawn(async move {
            loop {
                let deadline = {
                    let Some(c) = weak.upgrade() else { return };
                    let mut g = lock(&handle);
                    let now = Instant::now();
                    let Some(m) = g
                        .members
                        .get_mut(&member_id)
                        .filter(|m| m.incarnation == incarnation)
                    else {
                        return;
                    };
                    if m.join_waiter.is_some() || m.sync_waiter.is_some() {
                        m.session_deadline = now + millis(m.session_timeout_ms);
                    }
                    if m.session_deadline <= now {
                        debug!(group = %g.group_id, member = %member_id, "session timeout expired");
                        c.remove_member(&handle, &mut g, &member_id);
                        return;
                    }
                    m.session_deadline
                };
                tokio::time::sleep_until(deadline).await;
            }
        });
    }

    /// A member id handed out with MEMBER_ID_REQUIRED is forgotten if the member does not
    /// join with it within its session timeout.
    pub(crate) fn start_pending_member_timer(
        &self,
        handle: Arc<GroupHandle>,
        member_id: String,
        session_timeout_ms: i32,
    ) {
        let weak = self.weak.clone();
        self.spawn(async move {
            tokio::time::sleep(millis(session_timeout_ms)).await;
            let Some(c) = weak.upgrade() else { return };
            let mut g = lock(&handle);
            if g.pending_members.remove(&member_id) {
                c.try_complete_join(&handle, &mut g);
            }
        });
    }
}
