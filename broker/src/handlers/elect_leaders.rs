//! ElectLeaders (KIP-460), what `kafka-leader-election.sh --election-type preferred` sends:
//! each named partition (or every partition, when none are named) goes back to its
//! preferred (first) replica if that replica is in sync and unfenced; the answer comes once
//! the change is committed. Strata never elects a replica outside the ISR, so an UNCLEAN
//! election of a partition without a live leader is refused.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use strata_protocol::kafka_protocol;

use super::{str_bytes, RequestContext};
use crate::errors::ErrorCode;
use crate::metadata::{MetadataImage, PartitionMetadata};
use crate::replication::controller::{preferred_election, NoPreferredElection};
use crate::security::acl::AclOperation;
use crate::server::Broker;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn elect_leaders(
    broker: &Broker,
    ctx: &RequestContext,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    if !ctx.allowed_cluster(broker, AclOperation::Alter) {
        return ElectLeadersResponse::default()
            .with_error_code(ErrorCode::ClusterAuthorizationFailed.code());
    }
    let image = broker.metadata.image();
    // No partitions named: every partition whose leader is not its preferred replica.
    let named: Vec<(String, i32)> = match &request.topic_partitions {
        Some(topics) => topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect(),
        None => image
            .topics
            .values()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p)))
            .filter(|(_, p)| p.replicas.first() != Some(&p.leader))
            .map(|(name, p)| (name, p.partition))
            .collect(),
    };
    let mut results: Vec<ReplicaElectionResult> = Vec::new();
    for (topic, partition) in named {
        let outcome = match image
            .topic(&topic)
            .and_then(|t| t.partitions.iter().find(|p| p.partition == partition))
        {
            None => Err((ErrorCode::UnknownTopicOrPartition, None)),
            Some(p) => match request.election_type {
                PREFERRED => elect_preferred(broker, &image, &topic, p).await,
                UNCLEAN if p.leader >= 0 && !image.fenced.contains(&p.leader) => {
                    Err((ErrorCode::ElectionNotNeeded, None))
                }
                UNCLEAN => Err((
                    ErrorCode::EligibleLeadersNotAvailable,
                    Some("Strata does not elect replicas outside the ISR (no unclean election)"),
                )),
                _ => Err((ErrorCode::InvalidRequest, Some("unknown election type"))),
            },
        };
        let result = PartitionResult::default().with_partition_id(partition);
        let result = match outcome {
            Ok(()) => result,
            Err((code, message)) => result
                .with_error_code(code.code())
                .with_error_message(message.map(str_bytes)),
        };
        match results.last_mut() {
            Some(last) if last.topic.0.as_str() == topic => last.partition_result.push(result),
            _ => results.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partition_result(vec![result]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(results)
}

async fn elect_preferred(
    broker: &Broker,
    image: &MetadataImage,
    topic: &str,
    p: &PartitionMetadata,
) -> Result<(), (ErrorCode, Option<&'static str>)> {
    let record = preferred_election(image, topic, p).map_err(|why| match why {
        NoPreferredElection::NotNeeded => (ErrorCode::ElectionNotNeeded, None),
        NoPreferredElection::NotAvailable => (
            ErrorCode::PreferredLeaderNotAvailable,
            Some("the preferred replica is not in sync"),
        ),
    })?;
    broker
        .metadata
        .commit_async(vec![record])
        .await
        .map_err(|e| {
            tracing::info!(topic, partition = p.partition, error = %e, "preferred election not committed");
            (ErrorCode::PreferredLeaderNotAvailable, None)
        })
}
