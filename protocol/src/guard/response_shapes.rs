//! The shape of every response body strata-perf decodes, and of the consumer-protocol
//! messages group members exchange inside JoinGroup and SyncGroup responses, derived from
//! Kafka's message schemas (clients/src/main/resources/common/message/*Response.json,
//! ConsumerProtocol*.json). Generated whole by `protocol/tools/gen_shapes.py --responses`:
//! regenerate rather than edit. Round-trip tests against kafka-protocol prove each version.

use super::dsl::*;
use kafka_protocol::messages::ApiKey;

/// ApiVersions response (api key 18), schema v0-4, flexible 3+; checked in v0-4.
pub(crate) const API_VERSIONS: Shape = shape(
    "ApiVersionsResponse",
    range(0, 4),
    3,
    &[
        f("error_code", from(0), INT16),
        f(
            "api_keys",
            from(0),
            structs(&[
                f("api_key", from(0), INT16),
                f("min_version", from(0), INT16),
                f("max_version", from(0), INT16),
            ]),
        ),
        f("throttle_time_ms", from(1), INT32),
        f(
            "supported_features",
            from(3),
            structs(&[
                f("name", from(3), STRING),
                f("min_version", from(3), INT16),
                f("max_version", from(3), INT16),
            ]),
        )
        .tagged(0),
        f("finalized_features_epoch", from(3), INT64).tagged(1),
        f(
            "finalized_features",
            from(3),
            structs(&[
                f("name", from(3), STRING),
                f("max_version_level", from(3), INT16),
                f("min_version_level", from(3), INT16),
            ]),
        )
        .tagged(2),
        f("zk_migration_ready", from(3), BOOL).tagged(3),
    ],
);

/// Metadata response (api key 3), schema v0-12, flexible 9+; checked in v0-12.
pub(crate) const METADATA: Shape = shape(
    "MetadataResponse",
    range(0, 12),
    9,
    &[
        f("throttle_time_ms", from(3), INT32),
        f(
            "brokers",
            from(0),
            structs(&[
                f("node_id", from(0), INT32),
                f("host", from(0), STRING),
                f("port", from(0), INT32),
                f("rack", from(1), STRING),
            ]),
        ),
        f("cluster_id", from(2), STRING),
        f("controller_id", from(1), INT32),
        f(
            "topics",
            from(0),
            structs(&[
                f("error_code", from(0), INT16),
                f("name", from(0), STRING),
                f("topic_id", from(10), UUID),
                f("is_internal", from(1), BOOL),
                f(
                    "partitions",
                    from(0),
                    structs(&[
                        f("error_code", from(0), INT16),
                        f("partition_index", from(0), INT32),
                        f("leader_id", from(0), INT32),
                        f("leader_epoch", from(7), INT32),
                        f("replica_nodes", from(0), array(Prim::Int32)),
                        f("isr_nodes", from(0), array(Prim::Int32)),
                        f("offline_replicas", from(5), array(Prim::Int32)),
                    ]),
                ),
                f("topic_authorized_operations", from(8), INT32),
            ]),
        ),
        f("cluster_authorized_operations", range(8, 10), INT32),
    ],
);

/// Produce response (api key 0), schema v0-11, flexible 9+; checked in v3-12.
/// Version 12 is the same as version 11 (KIP-890).
pub(crate) const PRODUCE: Shape = shape(
    "ProduceResponse",
    range(3, 12),
    9,
    &[
        f(
            "responses",
            from(0),
            structs(&[
                f("name", from(0), STRING),
                f(
                    "partition_responses",
                    from(0),
                    structs(&[
                        f("index", from(0), INT32),
                        f("error_code", from(0), INT16),
                        f("base_offset", from(0), INT64),
                        f("log_append_time_ms", from(2), INT64),
                        f("log_start_offset", from(5), INT64),
                        f(
                            "record_errors",
                            from(8),
                            structs(&[
                                f("batch_index", from(8), INT32),
                                f("batch_index_error_message", from(8), STRING),
                            ]),
                        ),
                        f("error_message", from(8), STRING),
                        f(
                            "current_leader",
                            from(10),
                            strukt(&[
                                f("leader_id", from(10), INT32),
                                f("leader_epoch", from(10), INT32),
                            ]),
                        )
                        .tagged(0),
                    ]),
                ),
            ]),
        ),
        f("throttle_time_ms", from(1), INT32),
        f(
            "node_endpoints",
            from(10),
            structs(&[
                f("node_id", from(10), INT32),
                f("host", from(10), STRING),
                f("port", from(10), INT32),
                f("rack", from(10), STRING),
            ]),
        )
        .tagged(0),
    ],
);

/// Fetch response (api key 1), schema v0-17, flexible 12+; checked in v4-17.
pub(crate) const FETCH: Shape = shape(
    "FetchResponse",
    range(4, 17),
    12,
    &[
        f("throttle_time_ms", from(1), INT32),
        f("error_code", from(7), INT16),
        f("session_id", from(7), INT32),
        f(
            "responses",
            from(0),
            structs(&[
                f("topic", range(0, 12), STRING),
                f("topic_id", from(13), UUID),
                f(
                    "partitions",
                    from(0),
                    structs(&[
                        f("partition_index", from(0), INT32),
                        f("error_code", from(0), INT16),
                        f("high_watermark", from(0), INT64),
                        f("last_stable_offset", from(4), INT64),
                        f("log_start_offset", from(5), INT64),
                        f(
                            "diverging_epoch",
                            from(12),
                            strukt(&[
                                f("epoch", from(12), INT32),
                                f("end_offset", from(12), INT64),
                            ]),
                        )
                        .tagged(0),
                        f(
                            "current_leader",
                            from(12),
                            strukt(&[
                                f("leader_id", from(12), INT32),
                                f("leader_epoch", from(12), INT32),
                            ]),
                        )
                        .tagged(1),
                        f(
                            "snapshot_id",
                            from(12),
                            strukt(&[f("end_offset", from(0), INT64), f("epoch", from(0), INT32)]),
                        )
                        .tagged(2),
                        f(
                            "aborted_transactions",
                            from(4),
                            structs(&[
                                f("producer_id", from(4), INT64),
                                f("first_offset", from(4), INT64),
                            ]),
                        ),
                        f("preferred_read_replica", from(11), INT32),
                        f("records", from(0), RECORDS),
                    ]),
                ),
            ]),
        ),
        f(
            "node_endpoints",
            from(16),
            structs(&[
                f("node_id", from(16), INT32),
                f("host", from(16), STRING),
                f("port", from(16), INT32),
                f("rack", from(16), STRING),
            ]),
        )
        .tagged(0),
    ],
);

/// ListOffsets response (api key 2), schema v0-10, flexible 6+; checked in v1-10.
pub(crate) const LIST_OFFSETS: Shape = shape(
    "ListOffsetsResponse",
    range(1, 10),
    6,
    &[
        f("throttle_time_ms", from(2), INT32),
        f(
            "topics",
            from(0),
            structs(&[
                f("name", from(0), STRING),
                f(
                    "partitions",
                    from(0),
                    structs(&[
                        f("partition_index", from(0), INT32),
                        f("error_code", from(0), INT16),
                        f("old_style_offsets", range(0, 0), array(Prim::Int64)),
                        f("timestamp", from(1), INT64),
                        f("offset", from(1), INT64),
                        f("leader_epoch", from(4), INT32),
                    ]),
                ),
            ]),
        ),
    ],
);

/// CreateTopics response (api key 19), schema v0-7, flexible 5+; checked in v2-7.
pub(crate) const CREATE_TOPICS: Shape = shape(
    "CreateTopicsResponse",
    range(2, 7),
    5,
    &[
        f("throttle_time_ms", from(2), INT32),
        f(
            "topics",
            from(0),
            structs(&[
                f("name", from(0), STRING),
                f("topic_id", from(7), UUID),
                f("error_code", from(0), INT16),
                f("error_message", from(1), STRING),
                f("topic_config_error_code", from(5), INT16).tagged(0),
                f("num_partitions", from(5), INT32),
                f("replication_factor", from(5), INT16),
                f(
                    "configs",
                    from(5),
                    structs(&[
                        f("name", from(5), STRING),
                        f("value", from(5), STRING),
                        f("read_only", from(5), BOOL),
                        f("config_source", from(5), INT8),
                        f("is_sensitive", from(5), BOOL),
                    ]),
                ),
            ]),
        ),
    ],
);

/// InitProducerId response (api key 22), schema v0-5, flexible 2+; checked in v0-5.
pub(crate) const INIT_PRODUCER_ID: Shape = shape(
    "InitProducerIdResponse",
    range(0, 5),
    2,
    &[
        f("throttle_time_ms", from(0), INT32),
        f("error_code", from(0), INT16),
        f("producer_id", from(0), INT64),
        f("producer_epoch", from(0), INT16),
    ],
);

/// FindCoordinator response (api key 10), schema v0-6, flexible 3+; checked in v0-6.
pub(crate) const FIND_COORDINATOR: Shape = shape(
    "FindCoordinatorResponse",
    range(0, 6),
    3,
    &[
        f("throttle_time_ms", from(1), INT32),
        f("error_code", range(0, 3), INT16),
        f("error_message", range(1, 3), STRING),
        f("node_id", range(0, 3), INT32),
        f("host", range(0, 3), STRING),
        f("port", range(0, 3), INT32),
        f(
            "coordinators",
            from(4),
            structs(&[
                f("key", from(4), STRING),
                f("node_id", from(4), INT32),
                f("host", from(4), STRING),
                f("port", from(4), INT32),
                f("error_code", from(4), INT16),
                f("error_message", from(4), STRING),
            ]),
        ),
    ],
);

/// JoinGroup response (api key 11), schema v0-9, flexible 6+; checked in v0-9.
pub(crate) const JOIN_GROUP: Shape = shape(
    "JoinGroupResponse",
    range(0, 9),
    6,
    &[
        f("throttle_time_ms", from(2), INT32),
        f("error_code", from(0), INT16),
        f("generation_id", from(0), INT32),
        f("protocol_type", from(7), STRING),
        f("protocol_name", from(0), STRING),
        f("leader", from(0), STRING),
        f("skip_assignment", from(9), BOOL),
        f("member_id", from(0), STRING),
        f(
            "members",
            from(0),
            structs(&[
                f("member_id", from(0), STRING),
                f("group_instance_id", from(5), STRING),
                f("metadata", from(0), BYTES),
            ]),
        ),
    ],
);

/// SyncGroup response (api key 14), schema v0-5, flexible 4+; checked in v0-5.
pub(crate) const SYNC_GROUP: Shape = shape(
    "SyncGroupResponse",
    range(0, 5),
    4,
    &[
        f("throttle_time_ms", from(1), INT32),
        f("error_code", from(0), INT16),
        f("protocol_type", from(5), STRING),
        f("protocol_name", from(5), STRING),
        f("assignment", from(0), BYTES),
    ],
);

/// Heartbeat response (api key 12), schema v0-4, flexible 4+; checked in v0-4.
pub(crate) const HEARTBEAT: Shape = shape(
    "HeartbeatResponse",
    range(0, 4),
    4,
    &[
        f("throttle_time_ms", from(1), INT32),
        f("error_code", from(0), INT16),
    ],
);

/// LeaveGroup response (api key 13), schema v0-5, flexible 4+; checked in v0-5.
pub(crate) const LEAVE_GROUP: Shape = shape(
    "LeaveGroupResponse",
    range(0, 5),
    4,
    &[
        f("throttle_time_ms", from(1), INT32),
        f("error_code", from(0), INT16),
        f(
            "members",
            from(3),
            structs(&[
                f("member_id", from(3), STRING),
                f("group_instance_id", from(3), STRING),
                f("error_code", from(3), INT16),
            ]),
        ),
    ],
);

/// OffsetCommit response (api key 8), schema v0-9, flexible 8+; checked in v2-9.
pub(crate) const OFFSET_COMMIT: Shape = shape(
    "OffsetCommitResponse",
    range(2, 9),
    8,
    &[
        f("throttle_time_ms", from(3), INT32),
        f(
            "topics",
            from(0),
            structs(&[
                f("name", from(0), STRING),
                f(
                    "partitions",
                    from(0),
                    structs(&[
                        f("partition_index", from(0), INT32),
                        f("error_code", from(0), INT16),
                    ]),
                ),
            ]),
        ),
    ],
);

/// OffsetFetch response (api key 9), schema v0-9, flexible 6+; checked in v1-9.
pub(crate) const OFFSET_FETCH: Shape = shape(
    "OffsetFetchResponse",
    range(1, 9),
    6,
    &[
        f("throttle_time_ms", from(3), INT32),
        f(
            "topics",
            range(0, 7),
            structs(&[
                f("name", range(0, 7), STRING),
                f(
                    "partitions",
                    range(0, 7),
                    structs(&[
                        f("partition_index", range(0, 7), INT32),
                        f("committed_offset", range(0, 7), INT64),
                        f("committed_leader_epoch", range(5, 7), INT32),
                        f("metadata", range(0, 7), STRING),
                        f("error_code", range(0, 7), INT16),
                    ]),
                ),
            ]),
        ),
        f("error_code", range(2, 7), INT16),
        f(
            "groups",
            from(8),
            structs(&[
                f("group_id", from(8), STRING),
                f(
                    "topics",
                    from(8),
                    structs(&[
                        f("name", from(8), STRING),
                        f(
                            "partitions",
                            from(8),
                            structs(&[
                                f("partition_index", from(8), INT32),
                                f("committed_offset", from(8), INT64),
                                f("committed_leader_epoch", from(8), INT32),
                                f("metadata", from(8), STRING),
                                f("error_code", from(8), INT16),
                            ]),
                        ),
                    ]),
                ),
                f("error_code", from(8), INT16),
            ]),
        ),
    ],
);

/// SaslHandshake response (api key 17), schema v0-1, flexible none; checked in v0-1.
pub(crate) const SASL_HANDSHAKE: Shape = shape(
    "SaslHandshakeResponse",
    range(0, 1),
    NO_FLEXIBLE,
    &[
        f("error_code", from(0), INT16),
        f("mechanisms", from(0), array(Prim::String)),
    ],
);

/// SaslAuthenticate response (api key 36), schema v0-2, flexible 2+; checked in v0-2.
pub(crate) const SASL_AUTHENTICATE: Shape = shape(
    "SaslAuthenticateResponse",
    range(0, 2),
    2,
    &[
        f("error_code", from(0), INT16),
        f("error_message", from(0), STRING),
        f("auth_bytes", from(0), BYTES),
        f("session_lifetime_ms", from(1), INT64),
    ],
);

/// OffsetForLeaderEpoch response (api key 23), schema v0-4, flexible 4+; checked in v2-4.
pub(crate) const OFFSET_FOR_LEADER_EPOCH: Shape = shape(
    "OffsetForLeaderEpochResponse",
    range(2, 4),
    4,
    &[
        f("throttle_time_ms", from(2), INT32),
        f(
            "topics",
            from(0),
            structs(&[
                f("topic", from(0), STRING),
                f(
                    "partitions",
                    from(0),
                    structs(&[
                        f("error_code", from(0), INT16),
                        f("partition", from(0), INT32),
                        f("leader_epoch", from(1), INT32),
                        f("end_offset", from(0), INT64),
                    ]),
                ),
            ]),
        ),
    ],
);

/// Every response shape, by the api key of the request it answers.
pub(crate) const ALL: &[(ApiKey, Shape)] = &[
    (ApiKey::ApiVersions, API_VERSIONS),
    (ApiKey::Metadata, METADATA),
    (ApiKey::Produce, PRODUCE),
    (ApiKey::Fetch, FETCH),
    (ApiKey::ListOffsets, LIST_OFFSETS),
    (ApiKey::CreateTopics, CREATE_TOPICS),
    (ApiKey::InitProducerId, INIT_PRODUCER_ID),
    (ApiKey::FindCoordinator, FIND_COORDINATOR),
    (ApiKey::JoinGroup, JOIN_GROUP),
    (ApiKey::SyncGroup, SYNC_GROUP),
    (ApiKey::Heartbeat, HEARTBEAT),
    (ApiKey::LeaveGroup, LEAVE_GROUP),
    (ApiKey::OffsetCommit, OFFSET_COMMIT),
    (ApiKey::OffsetFetch, OFFSET_FETCH),
    (ApiKey::SaslHandshake, SASL_HANDSHAKE),
    (ApiKey::SaslAuthenticate, SASL_AUTHENTICATE),
    (ApiKey::OffsetForLeaderEpoch, OFFSET_FOR_LEADER_EPOCH),
];

/// ConsumerProtocolSubscription, schema v0-3, flexible none; checked in v0-3.
pub(crate) const CONSUMER_PROTOCOL_SUBSCRIPTION: Shape = shape(
    "ConsumerProtocolSubscription",
    range(0, 3),
    NO_FLEXIBLE,
    &[
        f("topics", from(0), array(Prim::String)),
        f("user_data", from(0), BYTES),
        f(
            "owned_partitions",
            from(1),
            structs(&[
                f("topic", from(1), STRING),
                f("partitions", from(1), array(Prim::Int32)),
            ]),
        ),
        f("generation_id", from(2), INT32),
        f("rack_id", from(3), STRING),
    ],
);

/// ConsumerProtocolAssignment, schema v0-3, flexible none; checked in v0-3.
pub(crate) const CONSUMER_PROTOCOL_ASSIGNMENT: Shape = shape(
    "ConsumerProtocolAssignment",
    range(0, 3),
    NO_FLEXIBLE,
    &[
        f(
            "assigned_partitions",
            from(0),
            structs(&[
                f("topic", from(0), STRING),
                f("partitions", from(0), array(Prim::Int32)),
            ]),
        ),
        f("user_data", from(0), BYTES),
    ],
);
