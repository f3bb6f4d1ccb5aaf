//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup: Kafka's classic membership protocol
//! including KIP-394 (member id required) and KIP-345 (static membership). Decisions are
//! taken under the group lock; waiting for the rebalance happens on oneshot channels.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::codes::{self, code};
use super::coordinator::{lock, GroupCoordinator, GroupHandle};
use super::rebalance::{current_join_response, join_error, millis, sync_response};
use super::state::{ClassicGroup, GroupState, JoinWaiter, Member, SyncWaiter};

/// Upper bound on one member's protocol metadata. Kafka has no separate limit, but a
/// group whose metadata record exceeds the offsets topic's 1 MiB message limit can never
/// be stored and would rebalance forever; refusing the join up front is the bounded form.
pub(crate) const MAX_MEMBER_METADATA_BYTES: usize = 1024 * 1024;

enum JoinOutcome {
    Respond(JoinGroupResponse),
    Wait(oneshot::Receiver<JoinGroupResponse>),
    /// Respond once the store completes (static member replaced without a rebalance).
    Persist(
        futures::future::BoxFuture<'static, Result<(), i16>>,
        JoinGroupResponse,
    ),
}

/// The leader's assignment on its way to the log; applied once durable.
struct SyncPersist {
    handle: Arc<GroupHandle>,
    fut: futures::future::BoxFuture<'static, Result<(), i16>>,
    generation: i32,
    assignments: Vec<(String, Bytes)>,
}

enum SyncOutcome {
    Respond(SyncGroupResponse),
    Wait(oneshot::Receiver<SyncGroupResponse>, Option<SyncPersist>),
}

/// What a JoinGroup asks for, owned so it can be stored on the member.
struct JoinParams<'a> {
    version: i16,
    group_instance_id: Option<String>,
    client_id: &'a str,
    client_host: &'a str,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
}

impl GroupCoordinator {
    /// JoinGroup: waits (asynchronously) until the rebalance completes, at most the
    /// initial delay plus the rebalance timeout.
    pub async fn join_group(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> JoinGroupResponse {
        let outcome = self.join_inner(&req, version, client_id, client_host);
        match outcome {
            JoinOutcome::Respond(r) => r,
            JoinOutcome::Wait(rx) => rx.await.unwrap_or_else(|_| {
                join_error(version, codes::coordinator_not_available(), &req.member_id)
            }),
            JoinOutcome::Persist(fut, r) => match fut.await {
                Ok(()) => r,
                Err(e) => join_error(version, e, &req.member_id),
            },
        }
    }

    fn join_inner(
        &self,
        req: &JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> JoinOutcome {
        let respond = |e: i16| JoinOutcome::Respond(join_error(version, e, &req.member_id));
        let group_id = req.group_id.0.as_str();
        if group_id.is_empty() {
            return respond(codes::invalid_group_id());
        }
        let partition = match self.check_loaded(group_id) {
            Ok(p) => p,
            Err(e) => return respond(e),
        };
        let cfg = &self.config;
        if req.session_timeout_ms < cfg.group_min_session_timeout_ms
            || req.session_timeout_ms > cfg.group_max_session_timeout_ms
        {
            return respond(code(E::InvalidSessionTimeout));
        }
        let metadata_bytes: usize = req
            .protocols
            .iter()
            .map(|p| p.metadata.len() + p.name.len())
            .sum();
        if metadata_bytes > MAX_MEMBER_METADATA_BYTES {
            return respond(code(E::UnknownServerError));
        }
        let params = JoinParams {
            version,
            group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id,
            client_host,
            session_timeout_ms: req.session_timeout_ms,
            // v0 has no rebalance timeout: Kafka uses the session timeout.
            rebalance_timeout_ms: if version == 0 || req.rebalance_timeout_ms <= 0 {
                req.session_timeout_ms
            } else {
                req.rebalance_timeout_ms
            },
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
        };
        let member_id = req.member_id.as_str();
        let handle = if member_id.is_empty() {
            self.get_or_create_group(group_id, partition)
        } else {
            match self.get_group(group_id) {
                Some(h) => h,
                None => return respond(codes::unknown_member_id()),
            }
        };
        let mut g = lock(&handle);
        if g.state == GroupState::Dead {
            return respond(codes::coordinator_not_available());
        }
        if !g.supports_protocols(&params.protocol_type, &params.protocols) {
            return respond(codes::inconsistent_protocol());
        }
        if member_id.is_empty() {
            self.join_new_member(&handle, &mut g, params)
        } else {
            self.join_known_member(&handle, &mut g, member_id, params)
        }
    }

    fn join_new_member(
        &self,
        handle: &Arc<GroupHandle>,
        g: &mut ClassicGroup,
        p: JoinParams<'_>,
    ) -> JoinOutcome {
        let version = p.version;
        let prefix = p.group_instance_id.as_deref().unwrap_or(p.client_id);
        let new_member_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(iid) = p.group_instance_id.clone() {
            if let Some(old_id) = g.static_members.get(&iid).cloned() {
                return self.replace_static_member(handle, g, &old_id, new_member_id, p);
            }
        }
        if self.group_full(g) {
            return JoinOutcome::Respond(join_error(version, code(E::GroupMaxSizeReached), ""));
        }
        if p.group_instance_id.is_none() && version >= 4 {
            // KIP-394: hand out the id first, so a client that times out and retries does
            // not leave a ghost member behind.
            let _ = g.pending_members.insert(new_member_id.clone());
            self.start_pending_member_timer(
                handle.clone(),
                new_member_id.clone(),
                p.session_timeout_ms,
            );
            return JoinOutcome::Respond(join_error(
                version,
                code(E::MemberIdRequired),
                &new_member_id,
            ));
        }
        self.add_member_and_rebalance(handle, g, new_member_id, p)
    }

    fn group_full(&self, g: &ClassicGroup) -> bool {
        let max = usize::try_from(self.config.group_max_size).unwrap_or(0);
        g.members.len() >= max
    }

    fn join_known_member(
        &self,
        handle: &Arc<GroupHandle>,
        g: &mut ClassicGroup,
        member_id: &str,
        p: JoinParams<'_>,
    ) -> JoinOutcome {
        let version = p.version;
        let respond = |e: i16| JoinOutcome::Respond(join_error(version, e, member_id));
        if g.pending_members.contains(member_id) {
            if self.group_full(g) {
                let _ = g.pending_members.remove(member_id);
                return respond(code(E::GroupMaxSizeReached));
            }
            let _ = g.pending_members.remove(member_id);
            return self.add_member_and_rebalance(handle, g, member_id.to_string(), p);
        }
        if let Some(iid) = &p.group_instance_id {
            if g.static_members.get(iid).is_some_and(|id| id != member_id) {
                return respond(codes::fenced_instance_id());
            }
        }
        let Some(member) = g.members.get(member_id) else {
            return respond(codes::unknown_member_id());
        };
        let unchanged = member.matches(&p.protocols);
        match g.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(handle, g, member_id, p)
            }
            GroupState::CompletingRebalance if unchanged => {
                // A retried JoinGroup of this generation: answer it again.
                JoinOutcome::Respond(current_join_response(g, member_id, version, false))
            }
            GroupState::Stable if unchanged && !g.is_leader(member_id) => {
                JoinOutcome::Respond(current_join_response(g, member_id, version, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(handle, g, member_id, p)
            }
            GroupState::Empty | GroupState::Dead => respond(codes::unknown_member_id()),
        }
    }

    fn add_member_and_rebalance(
        &self,
        handle: &Arc<GroupHandle>,
        g: &mut ClassicGroup,
        member_id: String,
        p: JoinParams<'_>,
    ) -> JoinOutcome {
        let (tx, rx) = oneshot::channel();
        let incarnation = self.next_incarnation();
        if g.members.is_empty() {
            g.protocol_type = Some(p.protocol_type.clone());
        }
        if let Some(iid) = &p.group_instance_id {
            let _ = g.static_members.insert(iid.clone(), member_id.clone());
        }
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: p.group_instance_id,
            client_id: p.client_id.to_string(),
            client_host: p.client_host.to_string(),
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            session_timeout_ms: p.session_timeout_ms,
            protocols: p.protocols,
            assignment: Bytes::new(),
            join_waiter: Some(JoinWaiter {
                version: p.version,
                tx,
            }),
            sync_waiter: None,
            session_deadline: Instant::now() + millis(p.session_timeout_ms),
            incarnation,
        };
        let _ = g.members.insert(member_id.clone(), member);
        if g.leader.is_none() {
            g.leader = Some(member_id.clone());
        }
        if g.state == GroupState::PreparingRebalance {
            g.new_member_added = true;
        }
        self.start_session_timer(handle.clone(), member_id, incarnation);
        self.maybe_prepare_rebalance(handle, g);
        JoinOutcome::Wait(rx)
    }

    fn update_member_and_rebalance(
        &self,
        handle: &Arc<GroupHandle>,
        g: &mut ClassicGroup,
        member_id: &str,
        p: JoinParams<'_>,
    ) -> JoinOutcome {
        let (tx, rx) = oneshot::channel();
        let Some(m) = g.members.get_mut(member_id) else {
            return JoinOutcome::Respond(join_error(
                p.version,
                codes::unknown_member_id(),
                member_id,
            ));
        };
        m.protocols = p.protocols;
        m.rebalance_timeout_ms = p.rebalance_timeout_ms;
        m.session_timeout_ms = p.session_timeout_ms;
        m.client_id = p.client_id.to_string();
        m.client_host = p.client_host.to_string();
        if let Some(old) = m.join_waiter.replace(JoinWaiter {
            version: p.version,
            tx,
        }) {
            // A newer JoinGroup from the same member supersedes the one still waiting.
            let _ = old.tx.send(join_error(
                old.version,
                codes::rebalance_in_progress(),
                member_id,
            ));
        }
        self.maybe_prepare_rebalance(handle, g);
        JoinOutcome::Wait(rx)
    }

    /// KIP-345: a known group.instance.id joined with an unknown member id (the instance
    /// restarted). The old incarnation is fenced; when nothing the group depends on
    /// changed, the member takes its place without a rebalance.
    fn replace_static_member(
        &self,
        handle: &Arc<GroupHandle>,
        g: &mut ClassicGroup,
        old_id: &str,
        new_id: String,
        p: JoinParams<'_>,
    ) -> JoinOutcome {
        let version = p.version;
        let Some(mut member) = g.members.remove(old_id) else {
            return JoinOutcome::Respond(join_error(version, codes::unknown_member_id(), ""));
        };
        let fenced = codes::fenced_instance_id();
        if let Some(w) = member.join_waiter.take() {
            let _ = w.tx.send(join_error(w.version, fenced, old_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ =
                w.tx.send(sync_response(w.version, fenced, None, Bytes::new()));
        }
        let unchanged = member.matches(&p.protocols);
        member.member_id = new_id.clone();
        member.incarnation = self.next_incarnation();
        member.session_deadline = Instant::now() + millis(p.session_timeout_ms);
        member.client_id = p.client_id.to_string();
        member.client_host = p.client_host.to_string();
        member.session_timeout_ms = p.session_timeout_ms;
        member.rebalance_timeout_ms = p.rebalance_timeout_ms;
        let incarnation = member.incarnation;
        let _ = g.members.insert(new_id.clone(), member);
        if let Some(iid) = &p.group_instance_id {
            let _ = g.static_members.insert(iid.clone(), new_id.clone());
        }
        if g.is_leader(old_id) {
            g.leader = Some(new_id.clone());
        }
        if g.pending_sync.remove(old_id) {
            let _ = g.pending_sync.insert(new_id.clone());
        }
        self.start_session_timer(handle.clone(), new_id.clone(), incarnation);
        if g.state == GroupState::Stable && unchanged {
            let record = GroupCoordinator::group_metadata_record(g);
            let fut = self.append(g.partition, vec![record]);
            // KIP-814: a returning static leader learns the members but keeps the current
            // assignment (skip_assignment) instead of forcing a rebalance.
            let response = current_join_response(g, &new_id, version, true);
            return JoinOutcome::Persist(fut, response);
        }
        self.update_member_and_rebalance(handle, g, &new_id, p)
    }

    /// SyncGroup: followers wait for the leader's assignment; the leader's assignment is
    /// stored in `__consumer_offsets` before anyone receives it.
    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        let (rx, persist) = match self.sync_inner(&req, version) {
            SyncOutcome::Wait(rx, persist) => (rx, persist),
            SyncOutcome::Respond(r) => return r,
        };
        if let Some(SyncPersist {
            handle,
            fut,
            generation,
            assignments,
        }) = persist
        {
            let result = fut.await;
            let mut g = lock(&handle);
            if g.generation == generation && g.state == GroupState::CompletingRebalance {
                match result {
                    Ok(()) => {
                        for (id, a) in assignments {
                            if let Some(m) = g.members.get_mut(&id) {
                                m.assignment = a;
                            }
                        }
                        g.transition(GroupState::Stable, self.clock.now_ms());
                        let ids: Vec<String> = g.members.keys().cloned().collect();
                        for id in ids {
                            let waiter = g.members.get_mut(&id).and_then(|m| m.sync_waiter.take());
                            if let Some(w) = waiter {
                                let a = g
                                    .members
                                    .get(&id)
                                    .map(|m| m.assignment.clone())
                                    .unwrap_or_default();
                                let _ =
                                    w.tx.send(sync_response(w.version, codes::NONE, Some(&g), a));
                            }
                        }
                    }
                    Err(e) => {
                        self.reset_assignments(&mut g, e);
                        self.prepare_rebalance(&handle, &mut g);
                    }
                }
            }
        }
        rx.await.unwrap_or_else(|_| {
            sync_response(
                version,
                codes::coordinator_not_available(),
                None,
                Bytes::new(),
            )
        })
    }

    fn sync_inner(&self, req: &SyncGroupRequest, version: i16) -> SyncOutcome {
        match self.sync_decide(req, version) {
            Ok(outcome) | Err(outcome) => outcome,
        }
    }

    /// `Err` carries an immediate answer, so `?` can return errors early.
    #[allow(clippy::result_large_err)] // built once per request, never propagated further
    fn sync_decide(
        &self,
        req: &SyncGroupRequest,
        version: i16,
    ) -> Result<SyncOutcome, SyncOutcome> {
        let err = |e: i16| SyncOutcome::Respond(sync_response(version, e, None, Bytes::new()));
        let group_id = req.group_id.0.as_str();
        if group_id.is_empty() {
            return Err(err(codes::invalid_group_id()));
        }
        self.check_loaded(group_id).map_err(err)?;
        let handle = self
            .get_group(group_id)
            .ok_or_else(|| err(codes::unknown_member_id()))?;
        let mut g = lock(&handle);
        let member_id = req.member_id.as_str();
        if g.state == GroupState::Dead {
            return Err(err(codes::coordinator_not_available()));
        }
        let type_mismatch = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| g.protocol_type.as_deref() != Some(t.as_str()));
        let name_mismatch = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| g.protocol_name.as_deref() != Some(n.as_str()));
        if type_mismatch || name_mismatch {
            return Err(err(codes::inconsistent_protocol()));
        }
        validate_member(&g, member_id, req.group_instance_id.as_ref()).map_err(err)?;
        if req.generation_id != g.generation {
            return Err(err(codes::illegal_generation()));
        }
        match g.state {
            GroupState::Empty | GroupState::Dead => Err(err(codes::unknown_member_id())),
            GroupState::PreparingRebalance => Err(err(codes::rebalance_in_progress())),
            GroupState::Stable => {
                let _ = g.pending_sync.remove(member_id);
                let now = Instant::now();
                let m = g
                    .members
                    .get_mut(member_id)
                    .ok_or_else(|| err(codes::unknown_member_id()))?;
                m.session_deadline = now + millis(m.session_timeout_ms);
                let assignment = m.assignment.clone();
                Ok(SyncOutcome::Respond(sync_response(
                    version,
                    codes::NONE,
                    Some(&g),
                    assignment,
                )))
            }
            GroupState::CompletingRebalance => {
                let _ = g.pending_sync.remove(member_id);
                let (tx, rx) = oneshot::channel();
                let m = g
                    .members
                    .get_mut(member_id)
                    .ok_or_else(|| err(codes::unknown_member_id()))?;
                if let Some(old) = m.sync_waiter.replace(SyncWaiter { version, tx }) {
                    let _ = old.tx.send(sync_response(
                        old.version,
                        codes::rebalance_in_progress(),
                        None,
                        Bytes::new(),
                    ));
                }
                if !g.is_leader(member_id) {
                    return Ok(SyncOutcome::Wait(rx, None));
                }
                // Members the leader left out get an empty assignment, as in Kafka.
                let assignments: Vec<(String, Bytes)> = g
                    .members
                    .keys()
                    .map(|id| {
                        let a = req
                            .assignments
                            .iter()
                            .find(|a| a.member_id.as_str() == id)
                            .map(|a| a.assignment.clone());
                        (id.clone(), a.unwrap_or_default())
                    })
                    .collect();
                let mut value = g.to_metadata_value();
                for mv in &mut value.members {
                    if let Some((_, a)) = assignments.iter().find(|(id, _)| *id == mv.member_id) {
                        mv.assignment = a.clone();
                    }
                }
                let key = super::schema::OffsetsKey::GroupMetadata {
                    group: g.group_id.clone(),
                }
                .encode();
                let fut = self.append(g.partition, vec![(key, Some(value.encode()))]);
                let generation = g.generation;
                drop(g);
                Ok(SyncOutcome::Wait(
                    rx,
                    Some(SyncPersist {
                        handle,
                        fut,
                        generation,
                        assignments,
                    }),
                ))
            }
        }
    }

    /// Heartbeat: keeps the session alive; REBALANCE_IN_PROGRESS tells the member to rejoin.
    pub async fn heartbeat(&self, req: HeartbeatRequest, version: i16) -> HeartbeatResponse {
        let _ = version;
        let mut r = HeartbeatResponse::default();
        r.error_code = self.heartbeat_inner(&req);
        r
    }

    fn heartbeat_inner(&self, req: &HeartbeatRequest) -> i16 {
        let group_id = req.group_id.0.as_str();
        if group_id.is_empty() {
            return codes::invalid_group_id();
        }
        if let Err(e) = self.check_loaded(group_id) {
            return e;
        }
        let Some(handle) = self.get_group(group_id) else {
            return codes::unknown_member_id();
        };
        let mut g = lock(&handle);
        if g.state == GroupState::Dead {
            return codes::coordinator_not_available();
        }
        let member_id = req.member_id.as_str();
        if let Err(e) = validate_member(&g, member_id, req.group_instance_id.as_ref()) {
            return e;
        }
        if g.state == GroupState::Empty {
            return codes::unknown_member_id();
        }
        if g.state != GroupState::PreparingRebalance && req.generation_id != g.generation {
            return codes::illegal_generation();
        }
        let state = g.state;
        if let Some(m) = g.members.get_mut(member_id) {
            m.session_deadline = Instant::now() + millis(m.session_timeout_ms);
        }
        if state == GroupState::PreparingRebalance {
            codes::rebalance_in_progress()
        } else {
            codes::NONE
        }
    }

    /// LeaveGroup: v0-2 one member by id, v3+ a batch by member id or group.instance.id.
    pub async fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let mut r = LeaveGroupResponse::default();
        let leaving: Vec<(String, Option<StrBytes>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| (m.member_id.to_string(), m.group_instance_id.clone()))
                .collect()
        } else {
            vec![(req.member_id.to_string(), None)]
        };
        let (top, results) = self.leave_inner(req.group_id.0.as_str(), &leaving);
        if version >= 3 {
            r.error_code = top;
            if top == codes::NONE {
                r.members = leaving
                    .into_iter()
                    .zip(results)
                    .map(|((id, iid), e)| {
                        let mut m = MemberResponse::default();
                        m.member_id = StrBytes::from_string(id);
                        m.group_instance_id = iid;
                        m.error_code = e;
                        m
                    })
                    .collect();
            }
        } else {
            r.error_code = if top != codes::NONE {
                top
            } else {
                results.first().copied().unwrap_or(codes::NONE)
            };
        }
        r
    }

    fn leave_inner(
        &self,
        group_id: &str,
        leaving: &[(String, Option<StrBytes>)],
    ) -> (i16, Vec<i16>) {
        if group_id.is_empty() {
            return (codes::invalid_group_id(), Vec::new());
        }
        if let Err(e) = self.check_loaded(group_id) {
            return (e, Vec::new());
        }
        let Some(handle) = self.get_group(group_id) else {
            return (codes::NONE, vec![codes::unknown_member_id(); leaving.len()]);
        };
        let mut g = lock(&handle);
        if g.state == GroupState::Dead {
            return (codes::coordinator_not_available(), Vec::new());
        }
        let mut results = Vec::with_capacity(leaving.len());
        for (member_id, iid) in leaving {
            let target = match (member_id.is_empty(), iid) {
                (true, Some(iid)) => g
                    .static_members
                    .get(iid.as_str())
                    .cloned()
                    .ok_or(codes::unknown_member_id()),
                _ => match validate_member(&g, member_id, iid.as_ref()) {
                    Ok(()) => Ok(member_id.clone()),
                    Err(_) if g.pending_members.contains(member_id) => {
                        let _ = g.pending_members.remove(member_id);
                        self.try_complete_join(&handle, &mut g);
                        results.push(codes::NONE);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match target {
                Ok(id) => {
                    self.remove_member(&handle, &mut g, &id);
                    results.push(codes::NONE);
                }
                Err(e) => results.push(e),
            }
        }
        (codes::NONE, results)
    }
}

/// Kafka's validateCurrentMember: a static member must be the instance's current
/// incarnation (else FENCED_INSTANCE_ID) and the member must exist.
fn validate_member(
    g: &ClassicGroup,
    member_id: &str,
    group_instance_id: Option<&StrBytes>,
) -> Result<(), i16> {
    if let Some(iid) = group_instance_id {
        if g.static_members
            .get(iid.as_str())
            .is_some_and(|id| id != member_id)
        {
            return Err(codes::fenced_instance_id());
        }
    }
    if !g.members.contains_key(member_id) {
        return Err(codes::unknown_member_id());
    }
    Ok(())
}
