"""confluent-kafka (librdkafka) under a client quota: produces or consumes a given number of
bytes with a given client.id and prints one line, `elapsed_s=S records=N throttle_max_ms=T`:
the seconds it took and the largest broker throttle librdkafka reported (its statistics'
`throttle.max`, in ms).

usage: ck_quotas.py produce|consume --bootstrap B --topic T --client-id C --bytes N"""

import argparse
import json
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from strata_common import CLIENT_TIMEOUT_S, Deadline, Mismatch, check, run

RECORD = 10_000  # bytes of value per record


class Throttle:
    """The largest throttle any broker reported in librdkafka's statistics."""

    def __init__(self):
        self.max_ms = 0

    def on_stats(self, text):
        for broker in json.loads(text).get("brokers", {}).values():
            self.max_ms = max(self.max_ms, broker.get("throttle", {}).get("max", 0))


def produce(args, throttle):
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "client.id": args.client_id,
        "acks": "all",
        "linger.ms": 5,
        "statistics.interval.ms": 200,
        "stats_cb": throttle.on_stats,
        "message.timeout.ms": 300000,
    })
    count = args.bytes // RECORD
    failed = []
    started = time.monotonic()
    for i in range(count):
        while True:
            try:
                producer.produce(args.topic, value=b"q" * RECORD, partition=0,
                                 on_delivery=lambda err, msg: err and failed.append(err))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(CLIENT_TIMEOUT_S * 5)
    elapsed = time.monotonic() - started
    check(left == 0 and not failed, f"{left} undelivered, errors {failed[:3]}")
    # One more statistics round so the last throttles are in.
    producer.poll(0.5)
    return elapsed, count


def consume(args, throttle):
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "client.id": args.client_id,
        "group.id": f"quota-{args.client_id}",
        "enable.auto.commit": False,
        "statistics.interval.ms": 200,
        "stats_cb": throttle.on_stats,
        "fetch.max.bytes": 1 << 20,
        "max.partition.fetch.bytes": 1 << 20,
    })
    consumer.assign([TopicPartition(args.topic, 0, 0)])
    want = args.bytes // RECORD
    got = 0
    started = time.monotonic()
    deadline = Deadline(CLIENT_TIMEOUT_S * 5, f"consuming {want} records")
    while got < want:
        deadline.check()
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            raise Mismatch(f"consume error: {msg.error()}")
        got += 1
    elapsed = time.monotonic() - started
    consumer.poll(0.5)
    consumer.close()
    return elapsed, got


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["produce", "consume"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--bytes", type=int, required=True)
    args = parser.parse_args()
    throttle = Throttle()
    elapsed, records = (produce if args.mode == "produce" else consume)(args, throttle)
    return f"elapsed_s={elapsed:.3f} records={records} throttle_max_ms={throttle.max_ms}"


if __name__ == "__main__":
    run(main)
