"""Authorized operations through confluent-kafka's AdminClient (librdkafka asks them with
Metadata, DescribeCluster and DescribeGroups): every operation Kafka lists for the resource
type when nothing is denied, and one fewer after a DENY ACL for this (anonymous) client.
The broker runs an authorizer with allow.everyone.if.no.acl.found=true."""

import argparse

from confluent_kafka import TopicCollection
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   NewTopic, ResourcePatternType, ResourceType)

from strata_common import CLIENT_TIMEOUT_S, check, run

TOPIC_OPS = {AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DESCRIBE,
             AclOperation.DELETE, AclOperation.ALTER, AclOperation.DESCRIBE_CONFIGS,
             AclOperation.ALTER_CONFIGS}
CLUSTER_OPS = {AclOperation.CREATE, AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS,
               AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER,
               AclOperation.DESCRIBE}
GROUP_OPS = {AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE}


def topic_ops(admin, topic):
    futures = admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True,
                                    request_timeout=CLIENT_TIMEOUT_S)
    return set(futures[topic].result(CLIENT_TIMEOUT_S).authorized_operations or [])


def main_with(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for topic in ("open-topic", "guarded-topic"):
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic] \
            .result(CLIENT_TIMEOUT_S)

    got = topic_ops(admin, "open-topic")
    check(got == TOPIC_OPS, f"topic operations: got {sorted(map(str, got))}")
    cluster = admin.describe_cluster(include_authorized_operations=True,
                                     request_timeout=CLIENT_TIMEOUT_S).result(CLIENT_TIMEOUT_S)
    got = set(cluster.authorized_operations or [])
    check(got == CLUSTER_OPS, f"cluster operations: got {sorted(map(str, got))}")
    group = admin.describe_consumer_groups(["no-such-group"], include_authorized_operations=True,
                                           request_timeout=CLIENT_TIMEOUT_S)["no-such-group"]
    got = set(group.result(CLIENT_TIMEOUT_S).authorized_operations or [])
    check(got == GROUP_OPS, f"group operations: got {sorted(map(str, got))}")

    # Once a topic has ACLs, allow.everyone.if.no.acl.found no longer covers it (as in
    # Kafka): ALLOW ALL, then DENY WRITE, which wins.
    bindings = [AclBinding(ResourceType.TOPIC, "guarded-topic", ResourcePatternType.LITERAL,
                           "User:ANONYMOUS", "*", op, permission)
                for op, permission in ((AclOperation.ALL, AclPermissionType.ALLOW),
                                       (AclOperation.WRITE, AclPermissionType.DENY))]
    for binding, future in admin.create_acls(bindings).items():
        future.result(CLIENT_TIMEOUT_S)
    got = topic_ops(admin, "guarded-topic")
    check(got == TOPIC_OPS - {AclOperation.WRITE},
          f"after DENY WRITE: got {sorted(map(str, got))}")
    check(topic_ops(admin, "open-topic") == TOPIC_OPS, "the other topic lost operations")
    return "authorized operations: topic, cluster and group bit fields as Kafka lists them"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    args = ap.parse_args()
    run(lambda: main_with(args.bootstrap))
