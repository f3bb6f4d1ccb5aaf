"""Client side of the metrics end-to-end tests (tests/tests/metrics.rs).

Subcommands print one JSON object on stdout for the Rust test to check against /metrics:
  produce   kafka-python producer writes N records (acks=all) to a new topic
  consume   kafka-python consumer (assign, no group) reads N records; reports the bytes read
  commit    a group commits offset K on partition 0 (kafka-python, manual commit)
  exposition  parses /metrics with prometheus_client's text parser, refuses duplicate
            series, and checks that every PromQL expression of the Grafana dashboard names
            only metrics the broker exports
  describe-configs  kafka-python admin DescribeConfigs for a topic and the broker
"""

import argparse
import json
import re
import urllib.request

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.structs import OffsetAndMetadata

from strata_common import Deadline, check, key_for, run, value_for

TIMEOUT_MS = 60000


def emit(obj):
    return json.dumps(obj, sort_keys=True)


def create_topic(bootstrap, topic, partitions):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS,
                             client_id="strata-tests-metrics")
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)], timeout_ms=TIMEOUT_MS)
    finally:
        admin.close()


def produce(args):
    create_topic(args.bootstrap, args.topic, 1)
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5,
                             request_timeout_ms=TIMEOUT_MS, max_block_ms=TIMEOUT_MS,
                             client_id="strata-tests-metrics")
    try:
        futures = [producer.send(args.topic, key=key_for("m", i), value=value_for("m", i), partition=0)
                   for i in range(args.records)]
        producer.flush(timeout=TIMEOUT_MS / 1000)
        offsets = sorted(f.get(timeout=TIMEOUT_MS / 1000).offset for f in futures)
    finally:
        producer.close()
    check(offsets == list(range(args.records)),
          f"acknowledged offsets are not 0..{args.records}: first {offsets[:3]}, last {offsets[-3:]}")
    return emit({"produced": args.records})


def consume(args):
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=TIMEOUT_MS + 5000,
                             client_id="strata-tests-metrics")
    tp = TopicPartition(args.topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got, payload_bytes = 0, 0
    deadline = Deadline(60, f"consuming {args.records} records of {args.topic}")
    try:
        while got < args.records:
            deadline.check()
            for records in consumer.poll(timeout_ms=1000).values():
                for r in records:
                    got += 1
                    payload_bytes += len(r.key or b"") + len(r.value or b"")
    finally:
        consumer.close()
    check(got == args.records, f"consumed {got} records, expected {args.records}")
    return emit({"consumed": got, "payload_bytes": payload_bytes})


def commit(args):
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=args.group,
                             enable_auto_commit=False, request_timeout_ms=TIMEOUT_MS + 5000,
                             client_id="strata-tests-metrics")
    tp = TopicPartition(args.topic, 0)
    try:
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(args.offset, None, -1)})
        committed = consumer.committed(tp)
    finally:
        consumer.close()
    check(committed == args.offset, f"group {args.group} committed {committed}, expected {args.offset}")
    return emit({"committed": committed})


METRIC_NAME = re.compile(r"\bstrata_[A-Za-z0-9_]+")


def dashboard_expressions(dashboard):
    """Every PromQL expression in the dashboard: panel targets (rows included) and
    templating queries, with the panel title for messages."""
    found = []

    def walk_panels(panels):
        for p in panels:
            for t in p.get("targets", []):
                found.append((p.get("title", "?"), t.get("expr", "")))
            walk_panels(p.get("panels", []))

    walk_panels(dashboard.get("panels", []))
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        if query:
            found.append((f"variable {var.get('name')}", query))
    return found


def exposition(args):
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(args.url, timeout=30) as response:
        check(response.status == 200, f"GET {args.url} answered {response.status}")
        content_type = response.headers.get("Content-Type", "")
        check(content_type.startswith("text/plain"), f"Content-Type {content_type!r}")
        text = response.read().decode("utf-8")

    series, families, duplicates = set(), set(), []
    for family in text_string_to_metric_families(text):
        check(family.name not in families, f"metric family {family.name} appears twice")
        families.add(family.name)
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            if key in series:
                duplicates.append(key)
            series.add(key)
    check(not duplicates, f"duplicate series: {duplicates[:5]}")
    exported = {name for name, _ in series}
    missing_required = [m for m in args.require if m not in exported]
    check(not missing_required, f"/metrics lacks {missing_required}")

    with open(args.dashboard, encoding="utf-8") as f:
        dashboard = json.load(f)
    exprs = dashboard_expressions(dashboard)
    check(exprs, "the dashboard has no queries")
    unknown = []
    for title, expr in exprs:
        names = METRIC_NAME.findall(expr)
        check(names, f"panel {title!r}: expression {expr!r} names no strata_ metric")
        unknown.extend((title, n) for n in names if n not in exported)
    check(not unknown, f"dashboard queries name metrics the broker does not export: {unknown}")
    return emit({"families": len(families), "series": len(series), "dashboard_queries": len(exprs)})


def describe_configs(args):
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=TIMEOUT_MS,
                             client_id="strata-tests-metrics")
    try:
        # kafka-python 3: {resource_type: {resource_name: {key: {"value": ..., ...}}}}
        described = admin.describe_configs([
            ConfigResource(ConfigResourceType.TOPIC, args.topic),
            ConfigResource(ConfigResourceType.BROKER, str(args.node_id)),
        ], config_filter="all")
    finally:
        admin.close()
    check(isinstance(described, dict), f"describe_configs returned {type(described).__name__}")
    entries = {}
    for by_name in described.values():
        for resource_name, configs in by_name.items():
            entries[str(resource_name)] = {k: (v or {}).get("value") for k, v in configs.items()}
    topic = entries.get(args.topic, {})
    broker = entries.get(str(args.node_id), {})
    check(topic.get("cleanup.policy") == "delete", f"topic cleanup.policy = {topic.get('cleanup.policy')!r}")
    check("log.dirs" in broker or "log.dir" in broker, f"broker configs lack log.dirs: {sorted(broker)[:10]}")
    return emit({"topic_configs": len(topic), "broker_configs": len(broker)})


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("produce")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--records", type=int, required=True)
    p = sub.add_parser("consume")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--records", type=int, required=True)
    p = sub.add_parser("commit")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--offset", type=int, required=True)
    p = sub.add_parser("exposition")
    p.add_argument("--url", required=True)
    p.add_argument("--dashboard", required=True)
    p.add_argument("--require", action="append", default=[])
    p = sub.add_parser("describe-configs")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--node-id", type=int, default=1)
    args = ap.parse_args()
    commands = {"produce": produce, "consume": consume, "commit": commit,
                "exposition": exposition, "describe-configs": describe_configs}
    return commands[args.command](args)


if __name__ == "__main__":
    run(main)
