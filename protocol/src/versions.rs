//! The APIs and version ranges Strata accepts and advertises in ApiVersions: one table, the
//! single source of truth for the decoder, the guard and the ApiVersions handler.

use kafka_protocol::messages::ApiKey;

/// An inclusive range of versions of one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    pub api_key: ApiKey,
    pub min: i16,
    pub max: i16,
}

impl ApiRange {
    pub fn contains(&self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

const fn r(api_key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange { api_key, min, max }
}

/// What Strata accepts and advertises in ApiVersions. One table, the single source of truth.
///
/// Produce v0..=2 are advertised only because librdkafka disables compression when a broker
/// does not list them; `decode_request` answers them with UnsupportedVersion (see
/// [`decodable_min`]), since the codec cannot decode pre-v3 produce bodies.
pub const SUPPORTED: &[ApiRange] = &[
    r(ApiKey::ApiVersions, 0, 4),
    r(ApiKey::Metadata, 0, 12),
    r(ApiKey::Produce, 0, 11),
    r(ApiKey::Fetch, 4, 17),
    r(ApiKey::ListOffsets, 1, 10),
    r(ApiKey::OffsetForLeaderEpoch, 2, 4),
    r(ApiKey::CreateTopics, 2, 7),
    r(ApiKey::DeleteTopics, 1, 6),
    r(ApiKey::CreatePartitions, 0, 3),
    r(ApiKey::DeleteRecords, 0, 2),
    r(ApiKey::ElectLeaders, 0, 2),
    r(ApiKey::InitProducerId, 0, 5),
    r(ApiKey::DescribeCluster, 0, 1),
    r(ApiKey::DescribeConfigs, 1, 4),
    r(ApiKey::AlterConfigs, 0, 2),
    r(ApiKey::IncrementalAlterConfigs, 0, 1),
    r(ApiKey::DescribeLogDirs, 1, 4),
    r(ApiKey::FindCoordinator, 0, 6),
    r(ApiKey::JoinGroup, 0, 9),
    r(ApiKey::SyncGroup, 0, 5),
    r(ApiKey::Heartbeat, 0, 4),
    r(ApiKey::LeaveGroup, 0, 5),
    r(ApiKey::OffsetCommit, 2, 9),
    r(ApiKey::OffsetFetch, 1, 9),
    r(ApiKey::ListGroups, 0, 5),
    r(ApiKey::DescribeGroups, 0, 5),
    r(ApiKey::DeleteGroups, 0, 2),
    r(ApiKey::OffsetDelete, 0, 0),
    r(ApiKey::SaslHandshake, 0, 1),
    r(ApiKey::SaslAuthenticate, 0, 2),
    r(ApiKey::CreateAcls, 1, 3),
    r(ApiKey::DescribeAcls, 1, 3),
    r(ApiKey::DeleteAcls, 1, 3),
    r(ApiKey::DescribeUserScramCredentials, 0, 0),
    r(ApiKey::AlterUserScramCredentials, 0, 0),
    r(ApiKey::DescribeTopicPartitions, 0, 0),
    // Transactions: AddPartitionsToTxn 4+ and EndTxn/TxnOffsetCommit 5 are KIP-890's
    // broker-side verification and epoch-per-transaction protocol, not offered.
    r(ApiKey::AddPartitionsToTxn, 0, 3),
    r(ApiKey::AddOffsetsToTxn, 0, 4),
    r(ApiKey::EndTxn, 0, 4),
    r(ApiKey::TxnOffsetCommit, 0, 4),
    r(ApiKey::DescribeTransactions, 0, 0),
    r(ApiKey::ListTransactions, 0, 1),
    r(ApiKey::DescribeProducers, 0, 0),
    r(ApiKey::WriteTxnMarkers, 1, 1),
    r(ApiKey::DescribeClientQuotas, 0, 1),
    r(ApiKey::AlterClientQuotas, 0, 1),
];

/// The advertised range of `api_key` (a raw wire value), if Strata supports it.
pub fn supported_range(api_key: i16) -> Option<ApiRange> {
    SUPPORTED
        .iter()
        .copied()
        .find(|r| r.api_key as i16 == api_key)
}

/// The lowest version `decode_request` can actually decode: the advertised minimum, except
/// Produce, whose v0..=2 bodies the codec does not implement.
pub fn decodable_min(range: &ApiRange) -> i16 {
    match range.api_key {
        ApiKey::Produce => range.min.max(3),
        _ => range.min,
    }
}
