//! One classic group's in-memory state: members, generation, selected protocol, the
//! responses waiting on the rebalance, and its committed offsets. Pure bookkeeping; the
//! coordinator decides transitions and timers.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::protocol::{subscribed_topics, CONSUMER_PROTOCOL_TYPE};
use super::schema::{GroupMetadataValue, MemberMetadataValue};

/// Kafka's classic group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka reports in ListGroups/DescribeGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A JoinGroup response the rebalance will complete, with the version it is for.
pub(crate) struct JoinWaiter {
    pub(crate) version: i16,
    pub(crate) tx: oneshot::Sender<JoinGroupResponse>,
}

pub(crate) struct SyncWaiter {
    pub(crate) version: i16,
    pub(crate) tx: oneshot::Sender<SyncGroupResponse>,
}

pub(crate) struct Member {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) session_timeout_ms: i32,
    /// Supported protocols in the member's order of preference: (name, metadata).
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    pub(crate) join_waiter: Option<JoinWaiter>,
    pub(crate) sync_waiter: Option<SyncWaiter>,
    /// When the session expires unless a heartbeat (or join/sync) comes first.
    pub(crate) session_deadline: Instant,
    /// Identifies this incarnation for its session timer (member ids can be reused by
    /// static-member replacement, timers must not act on a successor).
    pub(crate) incarnation: u64,
}

impl Member {
    pub(crate) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Same protocols with the same metadata, in the same order: rejoining changes nothing.
    pub(crate) fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedOffset {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: String,
    pub(crate) commit_timestamp: i64,
}

pub(crate) struct ClassicGroup {
    pub(crate) group_id: String,
    pub(crate) partition: i32,
    pub(crate) state: GroupState,
    pub(crate) state_timestamp_ms: i64,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader: Option<String>,
    /// Ordered by member id, so leader hand-over and responses are deterministic.
    pub(crate) members: BTreeMap<String, Member>,
    /// group.instance.id -> member id of its current incarnation.
    pub(crate) static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pub(crate) pending_members: HashSet<String>,
    /// Members that got their JoinGroup response but have not sent SyncGroup yet.
    pub(crate) pending_sync: HashSet<String>,
    /// A member joined during the initial delay, so the delay is extended once more.
    pub(crate) new_member_added: bool,
    /// The first rebalance of an empty group waits out group.initial.rebalance.delay.ms.
    pub(crate) in_initial_delay: bool,
    /// Bumped each time a rebalance starts so stale rebalance timers do nothing.
    pub(crate) rebalance_seq: u64,
    pub(crate) offsets: HashMap<(String, i32), CommittedOffset>,
}

impl ClassicGroup {
    pub(crate) fn new(group_id: String, partition: i32, now_ms: i64) -> Self {
        Self {
            group_id,
            partition,
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashSet::new(),
            pending_sync: HashSet::new(),
            new_member_added: false,
            in_initial_delay: false,
            rebalance_seq: 0,
            offsets: HashMap::new(),
        }
    }

    pub(crate) fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    pub(crate) fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Protocols every member supports (Kafka's "candidate protocols").
    pub(crate) fn candidate_protocols(&self) -> HashSet<String> {
        let mut iter = self.members.values();
        let Some(first) = iter.next() else {
            return HashSet::new();
        };
        let mut set: HashSet<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in iter {
            set.retain(|p| m.protocols.iter().any(|(n, _)| n == p));
        }
        set
    }

    /// Whether a member offering `protocols` of `protocol_type` may be in this group.
    pub(crate) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|(n, _)| candidates.contains(n))
    }

    /// Kafka's vote: each member votes for its most preferred candidate protocol; most
    /// votes win, ties go to the protocol listed first by the leader.
    pub(crate) fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        let order: Vec<&str> = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().next())
            .map(|m| m.protocols.iter().map(|(n, _)| n.as_str()).collect())
            .unwrap_or_default();
        let best = votes.values().copied().max()?;
        order
            .into_iter()
            .find(|p| votes.get(p) == Some(&best))
            .map(str::to_string)
    }

    pub(crate) fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// Topics the group consumes, if known: empty for an empty group, `None` when the
    /// members' subscriptions cannot be read (callers then assume "subscribed").
    pub(crate) fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.members.is_empty() {
            return Some(HashSet::new());
        }
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(subscribed_topics(&m.metadata_for(protocol))?);
        }
        Some(topics)
    }

    pub(crate) fn to_metadata_value(&self) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| MemberMetadataValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata_for(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}
