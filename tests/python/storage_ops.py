"""Storage end-to-end steps with confluent-kafka: create a topic with configs, produce keyed
(or keyless) records, delete records through the admin API, read a partition back as
(offset, key, value) lines, describe the log dirs (kafka-python's DescribeLogDirs), and show a partition's leader. Each subcommand prints one JSON line on success."""

import argparse
import json

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from strata_common import CLIENT_TIMEOUT_S, Deadline, Mismatch, check, run


def admin(args):
    return AdminClient({"bootstrap.servers": args.bootstrap})


def create(args):
    configs = dict(kv.split("=", 1) for kv in args.config)
    client = admin(args)  # must outlive the future
    fut = client.create_topics(
        [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1,
                  config=configs)],
        request_timeout=CLIENT_TIMEOUT_S)[args.topic]
    try:
        fut.result(timeout=CLIENT_TIMEOUT_S)
    except Exception as e:  # noqa: BLE001
        raise Mismatch(f"CreateTopics {args.topic} {configs} failed: {e}")
    return {"created": args.topic, "configs": configs}


def produce(args):
    """Records "key=value" pairs (key "~" = no key, value "~" = tombstone) one by one, each
    flushed, so each lands in its own batch; reports delivery errors instead of failing."""
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 0,
                         "message.send.max.retries": 0, "enable.idempotence": False,
                         "message.timeout.ms": 30000})
    results = []
    for pair in args.record:
        k, v = pair.split("=", 1)
        outcome = {}

        def report(err, msg, outcome=outcome):
            outcome["error"] = None if err is None else err.name()
            outcome["offset"] = None if err is not None else msg.offset()

        producer.produce(args.topic, partition=0,
                         key=None if k == "~" else k.encode(),
                         value=None if v == "~" else v.encode(),
                         on_delivery=report)
        check(producer.flush(CLIENT_TIMEOUT_S) == 0, f"record {pair} undelivered")
        results.append(outcome)
    return {"produced": results}


def delete_records(args):
    tp = TopicPartition(args.topic, args.partition, args.offset)
    client = admin(args)  # must outlive the futures
    futures = client.delete_records([tp], request_timeout=CLIENT_TIMEOUT_S)
    try:
        result = list(futures.values())[0].result(timeout=CLIENT_TIMEOUT_S)
    except KafkaException as e:
        return {"error": e.args[0].name()}
    return {"low_watermark": result.low_watermark}


def read(args):
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "storage-ops-unused",
                         "enable.auto.commit": False, "check.crcs": True,
                         "enable.partition.eof": True})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(args.topic, args.partition),
                                                   timeout=CLIENT_TIMEOUT_S)
        consumer.assign([TopicPartition(args.topic, args.partition, low)])
        records = []
        deadline = Deadline(CLIENT_TIMEOUT_S, f"reading {args.topic}[{args.partition}]")
        done = high <= low
        while not done:
            deadline.check()
            for msg in consumer.consume(num_messages=500, timeout=1.0):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done = True
                        continue
                    raise Mismatch(f"consumer error: {err}")
                key = msg.key().decode() if msg.key() is not None else None
                value = msg.value().decode() if msg.value() is not None else None
                records.append([msg.offset(), key, value])
                if msg.offset() + 1 >= high:
                    done = True
    finally:
        consumer.close()
    return {"low": low, "high": high, "records": records}


def log_dirs(args):
    """DescribeLogDirs through kafka-python's admin client: {log dir: Kafka error code}."""
    from kafka.admin import KafkaAdminClient
    client = KafkaAdminClient(bootstrap_servers=args.bootstrap,
                              request_timeout_ms=CLIENT_TIMEOUT_S * 1000)
    try:
        responses = client.describe_log_dirs()
    finally:
        client.close()
    return {"log_dirs": {d["log_dir"]: d["error_code"]
                         for r in responses for d in r["log_dirs"]}}


def leader(args):
    """Metadata for the topic's partition 0 as confluent-kafka sees it: leader, error name and
    offline replicas (Metadata v5+)."""
    md = admin(args).list_topics(args.topic, timeout=CLIENT_TIMEOUT_S)
    p = md.topics[args.topic].partitions[0]
    return {"leader": p.leader, "error": p.error.name() if p.error else None,
            "replicas": list(p.replicas), "offline": [r for r in p.replicas if r not in p.isrs]}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("--partitions", type=int, default=1)
    c.add_argument("--config", action="append", default=[])
    p = sub.add_parser("produce")
    p.add_argument("record", nargs="+")
    d = sub.add_parser("delete-records")
    d.add_argument("--partition", type=int, default=0)
    d.add_argument("--offset", type=int, required=True)
    r = sub.add_parser("read")
    r.add_argument("--partition", type=int, default=0)
    sub.add_parser("log-dirs")
    sub.add_parser("leader")
    args = ap.parse_args()
    out = {"create": create, "produce": produce, "delete-records": delete_records,
           "read": read, "log-dirs": log_dirs, "leader": leader}[args.cmd](args)
    return json.dumps(out)


if __name__ == "__main__":
    run(main)
