"""Pipelined commits from a group member: bursts of asynchronous OffsetCommits followed by a
synchronous one, the pattern of Java's commitAsync()...commitSync(). Every round must finish
within a bound (the commits of a round ride one coordinator connection and are answered in
order, so the sync commit waits only for the burst ahead of it), every async commit must be
acknowledged without error, and the offsets the group holds afterwards must be the last ones
committed, partition by partition (pipelined commits apply in the order sent).

Runs confluent-kafka (librdkafka) and kafka-python, one group each."""

import argparse
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from strata_common import CLIENT_TIMEOUT_S, Deadline, check, run


def produce(bootstrap, topic, partitions, records):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(records):
        producer.produce(topic, value=str(i).encode(), partition=i % partitions)
        producer.poll(0)
    check(producer.flush(CLIENT_TIMEOUT_S) == 0, "producer did not flush")


def commit_rounds(args, client, commit_async, commit_sync, serve_callbacks):
    """Runs the rounds: round r, commit k sets every partition to a distinct, rising value,
    the last commit of a round being the synchronous one. Returns the worst round's time
    and the offsets of the last commit."""
    per_round = args.async_per_round + 1
    worst = 0.0
    last = None
    for r in range(args.rounds):
        start = time.monotonic()
        for k in range(per_round):
            values = [1 + r * per_round + k] * args.partitions
            if k < args.async_per_round:
                commit_async(values)
            else:
                commit_sync(values)
                last = values
        took = time.monotonic() - start
        worst = max(worst, took)
        check(took <= args.round_bound_s,
              f"{client} round {r}: {per_round} commits took {took:.3f} s "
              f"(bound {args.round_bound_s} s)")
        serve_callbacks()
    return worst, last


def await_callbacks(results, expected, serve_callbacks):
    deadline = Deadline(CLIENT_TIMEOUT_S, "waiting for the async commit callbacks")
    while results["ok"] + len(results["errors"]) < expected:
        deadline.check()
        serve_callbacks()
    check(not results["errors"], f"async commit errors: {results['errors'][:3]}")


def confluent_bursts(args, topic):
    results = {"ok": 0, "errors": []}

    def on_commit(err, _partitions):
        if err is not None:
            results["errors"].append(str(err))
        else:
            results["ok"] += 1

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "commit-bursts-ck",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "on_commit": on_commit,
    })
    consumer.subscribe([topic])
    deadline = Deadline(CLIENT_TIMEOUT_S, "joining the group (confluent-kafka)")
    while not consumer.assignment():
        deadline.check()
        consumer.poll(0.2)
    def offsets(values):
        return [TopicPartition(topic, p, o) for p, o in enumerate(values)]

    worst, last = commit_rounds(
        args, "confluent-kafka",
        lambda values: consumer.commit(offsets=offsets(values), asynchronous=True),
        lambda values: consumer.commit(offsets=offsets(values), asynchronous=False),
        lambda: consumer.poll(0))
    await_callbacks(results, args.rounds * args.async_per_round, lambda: consumer.poll(0.1))
    committed = consumer.committed([TopicPartition(topic, p) for p in range(args.partitions)],
                                   timeout=CLIENT_TIMEOUT_S)
    got = [tp.offset for tp in sorted(committed, key=lambda tp: tp.partition)]
    check(got == last, f"confluent-kafka: group holds {got}, last committed {last}")
    consumer.close()
    return worst


def kafka_python_bursts(args, topic):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition
    from kafka.structs import OffsetAndMetadata

    results = {"ok": 0, "errors": []}

    def on_commit(_offsets, response):
        if isinstance(response, Exception):
            results["errors"].append(repr(response))
        else:
            results["ok"] += 1

    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id="commit-bursts-kp",
                             enable_auto_commit=False, auto_offset_reset="earliest")
    consumer.subscribe([topic])
    deadline = Deadline(CLIENT_TIMEOUT_S, "joining the group (kafka-python)")
    while not consumer.assignment():
        deadline.check()
        consumer.poll(200)
    def offsets(values):
        return {KTopicPartition(topic, p): OffsetAndMetadata(o, "", -1)
                for p, o in enumerate(values)}

    worst, last = commit_rounds(
        args, "kafka-python",
        lambda values: consumer.commit_async(offsets(values), callback=on_commit),
        lambda values: consumer.commit(offsets(values)),
        lambda: None)
    await_callbacks(results, args.rounds * args.async_per_round, lambda: consumer.poll(100))
    got = [consumer.committed(KTopicPartition(topic, p)) for p in range(args.partitions)]
    check(got == last, f"kafka-python: group holds {got}, last committed {last}")
    consumer.close()
    return worst


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--async-per-round", type=int, default=5)
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--round-bound-s", type=float, default=2.0)
    args = p.parse_args()
    topic = "commit-bursts"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=args.partitions,
                                  replication_factor=1)])[topic].result(CLIENT_TIMEOUT_S)
    # Offsets up to rounds * (async + 1) must lie inside the log.
    produce(args.bootstrap, topic, args.partitions,
            args.partitions * (args.rounds * (args.async_per_round + 1) + 1))
    ck_worst = confluent_bursts(args, topic)
    kp_worst = kafka_python_bursts(args, topic)
    return (f"OK commit bursts: {args.rounds} rounds of {args.async_per_round} async + 1 sync, "
            f"worst round {ck_worst * 1000:.0f} ms (confluent-kafka), "
            f"{kp_worst * 1000:.0f} ms (kafka-python)")


if __name__ == "__main__":
    run(main)
