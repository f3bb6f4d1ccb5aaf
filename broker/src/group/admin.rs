//! ListGroups, DescribeGroups and DeleteGroups: the admin view of classic groups.

use std::collections::HashSet;

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::codes::{self, code};
use super::coordinator::{lock, GroupCoordinator};
use super::state::GroupState;

/// The group type every classic group reports (ListGroups v5).
const CLASSIC_GROUP_TYPE: &str = "classic";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

impl GroupCoordinator {
    /// ListGroups, with the states filter (v4+) and types filter (v5+), both
    /// case-insensitive as in Kafka.
    pub async fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let mut r = ListGroupsResponse::default();
        let states: HashSet<String> = if version >= 4 {
            req.states_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            HashSet::new()
        };
        let types: HashSet<String> = if version >= 5 {
            req.types_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            HashSet::new()
        };
        if !types.is_empty() && !types.contains(CLASSIC_GROUP_TYPE) {
            return r;
        }
        if self.any_partition_loading() {
            r.error_code = codes::load_in_progress();
        }
        let mut listed = Vec::new();
        for handle in self.all_groups() {
            let g = lock(&handle);
            if g.state == GroupState::Dead
                || (!states.is_empty() && !states.contains(&g.state.name().to_lowercase()))
            {
                continue;
            }
            let mut lg = ListedGroup::default();
            lg.group_id = s(&g.group_id).into();
            lg.protocol_type = s(g.protocol_type.as_deref().unwrap_or(""));
            if version >= 4 {
                lg.group_state = s(g.state.name());
            }
            if version >= 5 {
                lg.group_type = s(CLASSIC_GROUP_TYPE);
            }
            listed.push(lg);
        }
        listed.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
        r.groups = listed;
        r
    }

    /// DescribeGroups. Member metadata and assignments are shown only when Stable, as
    /// Kafka does. `authorized_operations` is left at Kafka's "not requested" value
    /// (i32::MIN); the broker's handler fills it from its authorizer when asked.
    pub async fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let mut r = DescribeGroupsResponse::default();
        for group_id in &req.groups {
            let mut d = DescribedGroup::default();
            d.group_id = group_id.clone();
            d.authorized_operations = i32::MIN;
            if let Err(e) = self.check_loaded(group_id.0.as_str()) {
                d.error_code = e;
                d.group_state = s(GroupState::Dead.name());
                r.groups.push(d);
                continue;
            }
            let handle = self.get_group(group_id.0.as_str());
            let guard = handle.as_ref().map(|h| lock(h));
            match guard.as_ref().filter(|g| g.state != GroupState::Dead) {
                None => {
                    d.group_state = s(GroupState::Dead.name());
                    if version >= 6 {
                        d.error_code = code(E::GroupIdNotFound);
                        d.error_message =
                            Some(s(&format!("Group {} not found.", group_id.0.as_str())));
                    }
                }
                Some(g) => {
                    d.group_state = s(g.state.name());
                    d.protocol_type = s(g.protocol_type.as_deref().unwrap_or(""));
                    let stable = g.state == GroupState::Stable;
                    let protocol = g.protocol_name.clone().unwrap_or_default();
                    if stable {
                        d.protocol_data = s(&protocol);
                    }
                    d.members = g
                        .members
                        .values()
                        .map(|m| {
                            let mut dm = DescribedGroupMember::default();
                            dm.member_id = s(&m.member_id);
                            if version >= 4 {
                                dm.group_instance_id = m.group_instance_id.as_deref().map(s);
                            }
                            dm.client_id = s(&m.client_id);
                            dm.client_host = s(&m.client_host);
                            if stable {
                                dm.member_metadata = m.metadata_for(&protocol);
                                dm.member_assignment = m.assignment.clone();
                            } else {
                                dm.member_metadata = Bytes::new();
                                dm.member_assignment = Bytes::new();
                            }
                            dm
                        })
                        .collect();
                }
            }
            r.groups.push(d);
        }
        r
    }

    /// DeleteGroups: only empty groups (NON_EMPTY_GROUP otherwise); writes tombstones for
    /// the group and each of its offsets.
    pub async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        version: i16,
    ) -> DeleteGroupsResponse {
        let _ = version;
        let mut r = DeleteGroupsResponse::default();
        for group_id in &req.groups_names {
            let mut result = DeletableGroupResult::default();
            result.group_id = group_id.clone();
            result.error_code = match self.delete_group(group_id.0.as_str()) {
                Ok(fut) => fut.await.err().unwrap_or(codes::NONE),
                Err(e) => e,
            };
            r.results.push(result);
        }
        r
    }

    fn delete_group(
        &self,
        group_id: &str,
    ) -> Result<futures::future::BoxFuture<'static, Result<(), i16>>, i16> {
        self.check_loaded(group_id)?;
        let handle = self.get_group(group_id).ok_or(code(E::GroupIdNotFound))?;
        let mut g = lock(&handle);
        match g.state {
            GroupState::Dead => return Err(code(E::GroupIdNotFound)),
            GroupState::Empty => {}
            _ => return Err(code(E::NonEmptyGroup)),
        }
        let mut records: Vec<_> = g
            .offsets
            .keys()
            .map(|(t, p)| GroupCoordinator::offset_record(group_id, t, *p, None))
            .collect();
        records.push(GroupCoordinator::group_tombstone(group_id));
        g.offsets.clear();
        g.transition(GroupState::Dead, self.clock.now_ms());
        self.remove_group(group_id, &handle);
        Ok(self.append(g.partition, records))
    }
}
