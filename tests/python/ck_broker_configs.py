"""Dynamic broker configs through real admin clients, Kafka's way: BROKER ""
(cluster-wide default) and BROKER "<id>" (this broker), sources and synonyms in
DescribeConfigs, a topic without its own override inheriting the dynamic value, refusals
with Kafka's error codes, validate-only, and a live effect (segments roll at a
dynamically lowered log.segment.bytes). The caller restarts the broker between
--phase alter and --phase verify; the broker runs with --override log.retention.hours=2.

confluent-kafka (librdkafka) refuses a ConfigResource with an empty name and kafka-python's
public API routes BROKER resources by an integer id, so the cluster-default level goes
through kafka-python's own request builders and response types, sent on its connection
(the wire bytes are still kafka-python's); everything else uses confluent-kafka."""

import argparse
import os
import time

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic)

from kafka.admin import ConfigResource as KpResource
from kafka.admin import ConfigResourceType as KpType
from kafka.admin import KafkaAdminClient

from strata_common import CLIENT_TIMEOUT_S, Deadline, check, run

PLAIN = "dyn-plain"          # no overrides: follows the broker's defaults
OVERRIDDEN = "dyn-override"  # its own retention.ms wins over any broker config
STATIC_RETENTION_MS = "7200000"  # log.retention.hours=2 given on the command line

# DescribeConfigs config_source ids
DYNAMIC_TOPIC, DYNAMIC_BROKER, DYNAMIC_DEFAULT, STATIC, DEFAULT = 1, 2, 3, 4, 5
INVALID_REQUEST, INVALID_CONFIG = 42, 40


class ClusterDefault:
    """BROKER "" through kafka-python's IncrementalAlterConfigs / DescribeConfigs requests."""

    def __init__(self, bootstrap):
        self.kp = KafkaAdminClient(bootstrap_servers=bootstrap,
                                   request_timeout_ms=int(CLIENT_TIMEOUT_S * 1000))

    def _send(self, request):
        async def send(req):
            return await self.kp._manager.send(req)
        return self.kp._manager.run(send, request)

    def alter(self, configs, validate_only=False, name=""):
        """configs: {key: (op, value)}; returns (error_code, error_message). Sent to any
        broker, whatever `name` says (clients route "<id>" to broker <id>)."""
        resource = KpResource(KpType.BROKER, name, configs=configs)
        request = self.kp._alter_configs_request([resource], validate_only, True)
        (result,) = self._send(request).responses
        return result.error_code, result.error_message

    def set(self, configs, validate_only=False):
        code, message = self.alter(configs, validate_only)
        check(code == 0, f"BROKER '' alter {configs}: error {code} {message}")

    def describe(self, name=""):
        """{key: (value, source, [synonym sources])} of BROKER `name`, with synonyms in the
        order sent (confluent-kafka keys them by name, losing repeats)."""
        request = self.kp._describe_configs_request([KpResource(KpType.BROKER, name)],
                                                    include_synonyms=True)
        (result,) = self._send(request).results
        check(result.error_code == 0, f"describe BROKER {name!r}: {result.error_code}")
        return {c.name: (c.value, c.config_source, [s.source for s in c.synonyms])
                for c in result.configs}


def broker_res(name, entries=None):
    if entries is None:
        return ConfigResource(ConfigResource.Type.BROKER, name)
    return ConfigResource(ConfigResource.Type.BROKER, name, incremental_configs=entries)


def describe(admin, res):
    return admin.describe_configs([res])[res].result(CLIENT_TIMEOUT_S)


def topic_config(admin, topic, name):
    return describe(admin, ConfigResource(ConfigResource.Type.TOPIC, topic))[name]


def set_op(name, value):
    return ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)


def delete_op(name):
    return ConfigEntry(name, None, incremental_operation=AlterConfigOpType.DELETE)


def alter(admin, name, entries, validate_only=False):
    res = broker_res(name, entries)
    return admin.incremental_alter_configs([res], validate_only=validate_only)[res].result(
        CLIENT_TIMEOUT_S)


def refused(admin, name, entries, code, words):
    try:
        alter(admin, name, entries)
    except KafkaException as e:
        err = e.args[0]
        check(err.code() == code, f"{entries[0].name} on broker {name!r}: expected code {code}, got {err}")
        check(words in err.str(), f"{entries[0].name}: message {err.str()!r} lacks {words!r}")
        return
    check(False, f"{entries[0].name} on broker {name!r} was accepted")


def source(entry):
    return int(entry.source)


def expect(entry, value, src, what):
    check(entry.value == value and source(entry) == src,
          f"{what}: expected {value} from source {src}, got {entry.value} from {source(entry)}")


def synonym_sources(entry):
    return [(name, source(s)) for name, s in entry.synonyms.items()]


def alter_phase(admin, cluster, bootstrap, node, data_dir):
    for f in admin.create_topics([
            NewTopic(PLAIN, num_partitions=1, replication_factor=1),
            NewTopic(OVERRIDDEN, num_partitions=1, replication_factor=1,
                     config={"retention.ms": "1000000"})]).values():
        f.result(CLIENT_TIMEOUT_S)
    expect(topic_config(admin, PLAIN, "retention.ms"), STATIC_RETENTION_MS, STATIC, "static retention")

    # Cluster-wide default: the topic without an override follows it at once.
    cluster.set({"log.retention.ms": ("SET", "123456")})
    retention = topic_config(admin, PLAIN, "retention.ms")
    expect(retention, "123456", DYNAMIC_DEFAULT, "topic after the cluster default")
    first = next(iter(retention.synonyms.values()))
    check(first.name == "log.retention.ms" and source(first) == DYNAMIC_DEFAULT,
          f"first synonym: {synonym_sources(retention)}")
    expect(topic_config(admin, OVERRIDDEN, "retention.ms"), "1000000", DYNAMIC_TOPIC,
           "a topic override beats broker configs")
    defaults = cluster.describe()
    check(defaults == {"log.retention.ms": ("123456", DYNAMIC_DEFAULT, [DYNAMIC_DEFAULT])},
          f"BROKER '' lists {defaults}")

    # Per-broker beats the default; synonyms from the highest precedence down.
    alter(admin, node, [set_op("log.retention.ms", "654321")])
    expect(topic_config(admin, PLAIN, "retention.ms"), "654321", DYNAMIC_BROKER, "per-broker")
    entry = describe(admin, broker_res(node))["log.retention.ms"]
    expect(entry, "654321", DYNAMIC_BROKER, "broker entry")
    check(not entry.is_read_only, "log.retention.ms described read-only")
    order = cluster.describe(node)["log.retention.ms"][2]
    check(order == [DYNAMIC_BROKER, DYNAMIC_DEFAULT, STATIC, DEFAULT], f"synonym order {order}")
    described = describe(admin, broker_res(node))
    check(described["log.dirs"].is_read_only, "log.dirs is not read-only")
    for name, e in described.items():
        if e.is_sensitive:
            check(e.value is None, f"sensitive {name} has a value")

    # Refusals, with Kafka's codes; nothing changes.
    code, message = cluster.alter({"log.dirs": ("SET", "/elsewhere")})
    check((code, message) == (INVALID_REQUEST, "Cannot update these configs dynamically: Set(log.dirs)"),
          f"log.dirs at the cluster default: {code} {message}")
    for name, value, want in [("num.io.threads", "4", INVALID_REQUEST),
                              ("no.such.config", "1", INVALID_CONFIG),
                              ("log.segment.bytes", "12", INVALID_REQUEST)]:
        code, message = cluster.alter({name: ("SET", value)})
        check(code == want and name in (message or ""), f"{name}={value}: {code} {message}")
    refused(admin, node, [set_op("broker.id", "7")], INVALID_REQUEST,
            "Cannot update these configs dynamically")
    code, message = cluster.alter({"log.retention.ms": ("SET", "1")}, name="7")
    check((code, message) == (INVALID_REQUEST, f"Unexpected broker id, expected {node}, but received 7"),
          f"BROKER 7 on broker {node}: {code} {message}")
    cluster.set({"log.retention.ms": ("SET", "1")}, validate_only=True)
    alter(admin, node, [set_op("log.retention.ms", "2")], validate_only=True)
    check(cluster.describe()["log.retention.ms"][0] == "123456", "validate_only changed the default")
    expect(topic_config(admin, PLAIN, "retention.ms"), "654321", DYNAMIC_BROKER,
           "a refused change altered the topic")

    # A live effect: the topic's existing log rolls at the new, smaller segment size.
    cluster.set({"log.segment.bytes": ("SET", "1048576")})
    expect(topic_config(admin, PLAIN, "segment.bytes"), "1048576", DYNAMIC_DEFAULT, "segment.bytes")
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                         "batch.size": 65536, "compression.type": "none"})
    value = os.urandom(1000)
    for _ in range(4000):  # ~4 MB: at least three 1 MiB segments
        producer.produce(PLAIN, value)
        producer.poll(0)
    check(producer.flush(CLIENT_TIMEOUT_S) == 0, "records left unflushed")
    part_dir = os.path.join(data_dir, f"{PLAIN}-0")
    deadline = Deadline(CLIENT_TIMEOUT_S, "waiting for segments to roll")
    while True:
        segments = [f for f in os.listdir(part_dir) if f.endswith(".log")]
        if len(segments) >= 3:
            break
        deadline.check()
        time.sleep(0.1)
    return (f"OK broker configs alter: default, per-broker, refusals, validate-only, "
            f"{len(segments)} segments after a dynamic log.segment.bytes")


def verify_phase(admin, cluster, node):
    # Both layers survived the restart.
    expect(topic_config(admin, PLAIN, "retention.ms"), "654321", DYNAMIC_BROKER, "after restart")
    check(cluster.describe()["log.retention.ms"][:2] == ("123456", DYNAMIC_DEFAULT),
          "default lost across restart")
    # Deleting the per-broker value falls back to the default, deleting that to static.
    alter(admin, node, [delete_op("log.retention.ms")])
    expect(topic_config(admin, PLAIN, "retention.ms"), "123456", DYNAMIC_DEFAULT, "per-broker deleted")
    cluster.set({"log.retention.ms": ("DELETE", None), "log.segment.bytes": ("DELETE", None)})
    expect(topic_config(admin, PLAIN, "retention.ms"), STATIC_RETENTION_MS, STATIC, "default deleted")
    expect(topic_config(admin, PLAIN, "segment.bytes"), "1073741824", DEFAULT, "segment.bytes deleted")
    check(cluster.describe() == {}, f"BROKER '' still lists {cluster.describe()}")
    # The legacy AlterConfigs replaces a BROKER resource's whole dynamic set.
    alter(admin, node, [set_op("log.retention.ms", "5000")])
    res = ConfigResource(ConfigResource.Type.BROKER, node, set_config={"log.retention.bytes": "999999"})
    admin.alter_configs([res])[res].result(CLIENT_TIMEOUT_S)
    expect(topic_config(admin, PLAIN, "retention.bytes"), "999999", DYNAMIC_BROKER, "legacy alter")
    expect(topic_config(admin, PLAIN, "retention.ms"), STATIC_RETENTION_MS, STATIC,
           "legacy alter kept a key it should replace")
    return "OK broker configs verify: survive a restart; deleting restores static; legacy alter"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--node-id", default="1")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--phase", choices=["alter", "verify"], required=True)
    args = p.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    cluster = ClusterDefault(args.bootstrap)
    if args.phase == "alter":
        return alter_phase(admin, cluster, args.bootstrap, args.node_id, args.data_dir)
    return verify_phase(admin, cluster, args.node_id)


if __name__ == "__main__":
    run(main)
