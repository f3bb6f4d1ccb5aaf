//! Error codes carried by a response, counted the way Kafka's `RequestMetrics` ErrorsPerSec
//! counts them: every top-level, topic, partition, group or member error code in the
//! response, `NONE` included, labelled with Kafka's error name.

use std::collections::HashMap;
use std::sync::OnceLock;

use kafka_protocol::messages::ResponseKind;
use strata_protocol::kafka_protocol;

use crate::errors::ErrorCode;

/// Codes Kafka defines lie in -1..=130 today; the table covers headroom beyond that.
const CODE_RANGE: std::ops::RangeInclusive<i16> = -1..=200;

/// Kafka's name for an error code (`UNKNOWN_TOPIC_OR_PARTITION`); `NONE` for 0. Codes
/// without a name share `UNKNOWN_SERVER_ERROR`, as Kafka's `Errors.forCode` does, which
/// keeps the label's values a fixed, small set whatever a response carries.
pub fn error_name(code: i16) -> &'static str {
    static NAMES: OnceLock<HashMap<i16, String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        CODE_RANGE
            .filter_map(|c| match ErrorCode::try_from_code(c) {
                Some(ErrorCode::Unknown(_)) => None,
                Some(e) => Some((c, screaming_snake(&format!("{e:?}")))),
                None => Some((c, "NONE".to_owned())),
            })
            .collect()
    });
    names
        .get(&code)
        .map(String::as_str)
        .unwrap_or("UNKNOWN_SERVER_ERROR")
}

/// `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// Calls `add` with every error code in `response`, once per occurrence. Responses of APIs
/// not listed here contribute nothing (the request is still counted and timed). A visitor,
/// not a map of counts: it runs for every response, and a map would be an allocation each.
pub fn visit_error_codes(response: &ResponseKind, mut add: impl FnMut(i16)) {
    match response {
        ResponseKind::ApiVersions(r) => add(r.error_code),
        ResponseKind::Metadata(r) => {
            for t in &r.topics {
                add(t.error_code);
                t.partitions.iter().for_each(|p| add(p.error_code));
            }
        }
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| add(p.error_code)),
        ResponseKind::Fetch(r) => {
            add(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code));
        }
        ResponseKind::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ResponseKind::OffsetForLeaderEpoch(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| add(t.error_code)),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| add(t.error_code)),
        ResponseKind::CreatePartitions(r) => r.results.iter().for_each(|t| add(t.error_code)),
        ResponseKind::DeleteRecords(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ResponseKind::InitProducerId(r) => add(r.error_code),
        ResponseKind::DescribeCluster(r) => add(r.error_code),
        ResponseKind::DescribeConfigs(r) => r.results.iter().for_each(|t| add(t.error_code)),
        ResponseKind::FindCoordinator(r) => {
            if r.coordinators.is_empty() {
                add(r.error_code);
            }
            r.coordinators.iter().for_each(|c| add(c.error_code));
        }
        ResponseKind::JoinGroup(r) => add(r.error_code),
        ResponseKind::SyncGroup(r) => add(r.error_code),
        ResponseKind::Heartbeat(r) => add(r.error_code),
        ResponseKind::LeaveGroup(r) => {
            add(r.error_code);
            r.members.iter().for_each(|m| add(m.error_code));
        }
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ResponseKind::OffsetFetch(r) => {
            if r.groups.is_empty() {
                add(r.error_code);
                r.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .for_each(|p| add(p.error_code));
            }
            for g in &r.groups {
                add(g.error_code);
                g.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .for_each(|p| add(p.error_code));
            }
        }
        ResponseKind::ListGroups(r) => add(r.error_code),
        ResponseKind::DescribeGroups(r) => r.groups.iter().for_each(|g| add(g.error_code)),
        ResponseKind::DeleteGroups(r) => r.results.iter().for_each(|g| add(g.error_code)),
        ResponseKind::OffsetDelete(r) => {
            add(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code));
        }
        ResponseKind::SaslHandshake(r) => add(r.error_code),
        ResponseKind::SaslAuthenticate(r) => add(r.error_code),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::{HeartbeatResponse, ProduceResponse};

    use super::*;

    fn error_counts(response: &ResponseKind) -> HashMap<i16, u64> {
        let mut counts = HashMap::new();
        visit_error_codes(response, |code| *counts.entry(code).or_insert(0) += 1);
        counts
    }

    #[test]
    fn names_follow_kafka() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(1), "OFFSET_OUT_OF_RANGE");
        assert_eq!(error_name(27), "REBALANCE_IN_PROGRESS");
        // An unassigned code must not invent a new label value.
        assert_eq!(error_name(31_000), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(i16::MIN), "UNKNOWN_SERVER_ERROR");
    }

    #[test]
    fn produce_counts_every_partition_code() {
        let partitions = vec![
            PartitionProduceResponse::default().with_error_code(0),
            PartitionProduceResponse::default().with_error_code(3),
            PartitionProduceResponse::default().with_error_code(0),
        ];
        let response = ResponseKind::Produce(ProduceResponse::default().with_responses(vec![
            TopicProduceResponse::default().with_partition_responses(partitions),
        ]));
        let counts = error_counts(&response);
        assert_eq!(counts.get(&0), Some(&2));
        assert_eq!(counts.get(&3), Some(&1));
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn single_code_responses() {
        let response = ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(27));
        assert_eq!(error_counts(&response), HashMap::from([(27, 1)]));
    }
}
