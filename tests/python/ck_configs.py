"""Topic configs through confluent-kafka's AdminClient: create with configs, describe
(sources), incremental alter (SET / DELETE / APPEND), legacy alter (whole-set replace),
validate-only, invalid values refused; then the changed config is visible after a restart
(the caller restarts the broker between --phase alter and --phase verify)."""

import argparse

from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic)
from confluent_kafka import KafkaException

from strata_common import CLIENT_TIMEOUT_S, check, run

TOPIC = "configs-topic"


def describe(admin, topic):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([res])[res].result(CLIENT_TIMEOUT_S)


def incremental(admin, topic, entries, validate_only=False):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)
    return admin.incremental_alter_configs([res], validate_only=validate_only)[res].result(CLIENT_TIMEOUT_S)


def alter_phase(admin):
    fs = admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1,
                                       config={"retention.ms": "3600000"})])
    fs[TOPIC].result(CLIENT_TIMEOUT_S)
    configs = describe(admin, TOPIC)
    check(configs["retention.ms"].value == "3600000", f"created retention.ms: {configs['retention.ms'].value}")
    check(configs["retention.ms"].source == ConfigResource.Type.TOPIC or
          int(configs["retention.ms"].source) == 1, f"retention.ms source {configs['retention.ms'].source}")
    check(configs["segment.bytes"].value == "1073741824", f"default segment.bytes {configs['segment.bytes'].value}")
    check(int(configs["segment.bytes"].source) == 5, f"segment.bytes source {configs['segment.bytes'].source}")

    # validate-only changes nothing
    incremental(admin, TOPIC, [ConfigEntry("segment.bytes", "2097152",
                                           incremental_operation=AlterConfigOpType.SET)], validate_only=True)
    check(describe(admin, TOPIC)["segment.bytes"].value == "1073741824", "validate_only changed segment.bytes")

    incremental(admin, TOPIC, [
        ConfigEntry("segment.bytes", "2097152", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    configs = describe(admin, TOPIC)
    check(configs["segment.bytes"].value == "2097152", f"segment.bytes after SET: {configs['segment.bytes'].value}")
    check(configs["retention.ms"].value == "604800000", f"retention.ms after DELETE: {configs['retention.ms'].value}")
    # Appended after the default, in that order, as Kafka reports it.
    check(configs["cleanup.policy"].value == "delete,compact",
          f"cleanup.policy after APPEND: {configs['cleanup.policy'].value}")

    # an invalid value is refused with INVALID_CONFIG and nothing changes
    try:
        incremental(admin, TOPIC, [ConfigEntry("segment.bytes", "-5",
                                               incremental_operation=AlterConfigOpType.SET)])
        check(False, "segment.bytes=-5 was accepted")
    except KafkaException as e:
        check(e.args[0].code() == 40, f"expected INVALID_CONFIG (40), got {e.args[0]}")
    check(describe(admin, TOPIC)["segment.bytes"].value == "2097152", "a refused change altered the topic")

    # an unknown topic
    try:
        describe(admin, "no-such-topic")
        check(False, "describe of an unknown topic succeeded")
    except KafkaException as e:
        check(e.args[0].code() == 3, f"expected UNKNOWN_TOPIC_OR_PARTITION, got {e.args[0]}")

    # legacy AlterConfigs replaces the whole override set
    res = ConfigResource(ConfigResource.Type.TOPIC, TOPIC, set_config={"max.message.bytes": "500000"})
    admin.alter_configs([res])[res].result(CLIENT_TIMEOUT_S)
    configs = describe(admin, TOPIC)
    check(configs["max.message.bytes"].value == "500000", "legacy alter did not set max.message.bytes")
    check(configs["segment.bytes"].value == "1073741824", "legacy alter kept an override it should replace")
    return "OK configs alter: create, describe sources, incremental SET/DELETE/APPEND, validate-only, legacy replace"


def verify_phase(admin, bootstrap):
    configs = describe(admin, TOPIC)
    check(configs["max.message.bytes"].value == "500000", "max.message.bytes lost across restart")
    check(int(configs["max.message.bytes"].source) == 1, "override source lost across restart")
    # DescribeLogDirs through kafka-python: the topic's partitions are listed in a log dir
    from kafka import KafkaAdminClient
    kp = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(CLIENT_TIMEOUT_S * 1000))
    result = kp.describe_log_dirs()
    listed = str(result)
    check(TOPIC in listed, f"describe_log_dirs does not list {TOPIC}: {listed[:500]}")
    kp.close()
    return "OK configs verify: overrides survive a restart; log dirs describe the topic"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--phase", choices=["alter", "verify"], required=True)
    args = p.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    return alter_phase(admin) if args.phase == "alter" else verify_phase(admin, args.bootstrap)


if __name__ == "__main__":
    run(main)
