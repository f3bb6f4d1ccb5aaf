"""kafka-python: KafkaAdminClient creates, lists, describes, grows (create_partitions) and
deletes topics; KafkaProducer writes keyed records with headers; KafkaConsumer (assign +
seek_to_beginning, no group) reads them back intact and in offset order."""

import argparse
from collections import defaultdict

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from strata_common import (Deadline, check, headers_for, key_for, run, value_for)

TIMEOUT_MS = 60000


def describe_partition_count(admin, topic):
    described = admin.describe_topics([topic])
    check(len(described) == 1, f"describe_topics([{topic}]) returned {len(described)} entries")
    entry = described[0]
    check(entry.get("error_code", 0) == 0, f"describe_topics({topic}) error {entry.get('error_code')}")
    check(entry.get("name") == topic, f"describe_topics returned topic {entry.get('name')!r}, expected {topic!r}")
    return len(entry.get("partitions", []))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", default="kp-admin")
    ap.add_argument("--records", type=int, default=2000)
    args = ap.parse_args()
    topic, doomed = args.topic, f"{args.topic}-doomed"

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=TIMEOUT_MS,
                             client_id="strata-tests-kp")
    try:
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1},
                             doomed: {"num_partitions": 1, "replication_factor": 1}},
                            timeout_ms=TIMEOUT_MS, wait_for_metadata=True)
        listed = set(admin.list_topics())
        check({topic, doomed} <= listed, f"list_topics() = {sorted(listed)}, expected to include {topic}, {doomed}")
        n = describe_partition_count(admin, topic)
        check(n == 3, f"{topic}: described {n} partitions, expected 3")

        admin.create_partitions({topic: 5}, timeout_ms=TIMEOUT_MS)
        deadline = Deadline(60, f"waiting for {topic} to show 5 partitions")
        while describe_partition_count(admin, topic) != 5:
            deadline.check()

        admin.delete_topics([doomed], timeout_ms=TIMEOUT_MS)
        deadline = Deadline(60, f"waiting for {doomed} to disappear from list_topics")
        while doomed in set(admin.list_topics()):
            deadline.check()
    finally:
        admin.close()

    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all",
                             request_timeout_ms=TIMEOUT_MS, max_block_ms=TIMEOUT_MS,
                             client_id="strata-tests-kp")
    sent = defaultdict(list)  # partition -> [(offset, i)]
    try:
        futures = []
        for i in range(args.records):
            futures.append((i, producer.send(topic, key=key_for("kp", i), value=value_for("kp", i),
                                             headers=headers_for("kp", i), partition=i % 5)))
        producer.flush(timeout=TIMEOUT_MS / 1000)
        for i, fut in futures:
            md = fut.get(timeout=TIMEOUT_MS / 1000)
            check(md.partition == i % 5, f"record {i}: went to partition {md.partition}, asked for {i % 5}")
            sent[md.partition].append((md.offset, i))
    finally:
        producer.close(timeout=30)
    for p, entries in sent.items():
        offsets = sorted(off for off, _ in entries)
        check(offsets == list(range(len(offsets))), f"{topic}[{p}]: produce offsets not dense from 0")

    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None,
                             enable_auto_commit=False, request_timeout_ms=TIMEOUT_MS + 5000,
                             client_id="strata-tests-kp")
    try:
        tps = [TopicPartition(topic, p) for p in range(5)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        expected = {p: dict(entries) for p, entries in sent.items()}
        next_offset = {p: 0 for p in range(5)}
        got = 0
        deadline = Deadline(120, f"consuming {topic}")
        while got < args.records:
            deadline.check()
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for rec in records:
                    p = tp.partition
                    check(rec.offset == next_offset[p],
                          f"{topic}[{p}]: got offset {rec.offset}, expected {next_offset[p]}")
                    next_offset[p] += 1
                    i = expected.get(p, {}).get(rec.offset)
                    check(i is not None, f"{topic}[{p}]@{rec.offset}: never produced")
                    check(rec.key == key_for("kp", i), f"{topic}[{p}]@{rec.offset}: key {rec.key!r}")
                    check(rec.value == value_for("kp", i), f"{topic}[{p}]@{rec.offset}: value {rec.value!r}")
                    check(list(rec.headers) == headers_for("kp", i),
                          f"{topic}[{p}]@{rec.offset}: headers {rec.headers!r}, expected {headers_for('kp', i)!r}")
                    got += 1
        check(got == args.records, f"read {got} records, expected {args.records}")
        end = consumer.end_offsets(tps)
        for tp in tps:
            want = len(sent.get(tp.partition, []))
            check(end[tp] == want, f"{topic}[{tp.partition}]: end offset {end[tp]}, expected {want}")
    finally:
        consumer.close()
    return (f"OK kafka-python: admin create/list/describe/create_partitions/delete, "
            f"{args.records} records produced and consumed over 5 partitions")


if __name__ == "__main__":
    run(main)
