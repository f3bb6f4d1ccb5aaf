"""Produces keyed records with an idempotent acks=all confluent-kafka producer and appends
one line "partition offset index" to --ack-log for each acknowledged record as its
delivery report arrives (flushed to the kernel at once), so a test can kill the broker mid-way and
later check that everything acknowledged survived."""

import argparse

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from strata_common import CLIENT_TIMEOUT_S, Mismatch, check, key_for, run, value_for


def drop_torn_tail(path):
    """The tests kill producers with SIGKILL, which can cut a line short (a write that spans
    a page boundary stops between pages); the next producer must not append to it. The cut
    line's record was acknowledged, but it is not listed: the check covers the others."""
    try:
        with open(path, "r+b") as f:
            data = f.read()
            whole = data.rfind(b"\n") + 1
            if whole != len(data):
                f.truncate(whole)
    except FileNotFoundError:
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--records", type=int, required=True)
    ap.add_argument("--ack-log", required=True)
    ap.add_argument("--start-index", type=int, default=0)
    ap.add_argument("--no-create", action="store_true", help="the topic exists already")
    args = ap.parse_args()

    if not args.no_create:
        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        fut = admin.create_topics([NewTopic(args.topic, num_partitions=args.partitions,
                                            replication_factor=1)],
                                  request_timeout=CLIENT_TIMEOUT_S)[args.topic]
        try:
            fut.result(timeout=CLIENT_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001
            raise Mismatch(f"CreateTopics {args.topic} failed: {e}")

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 120000,
    })
    drop_torn_tail(args.ack_log)
    log = open(args.ack_log, "a", buffering=1)
    errors = []
    acked = [0]

    def on_delivery(err, msg, i):
        if err is not None:
            errors.append(f"record {i}: {err}")
            return
        log.write(f"{msg.partition()} {msg.offset()} {i}\n")
        log.flush()
        acked[0] += 1

    tag = args.topic
    for i in range(args.start_index, args.start_index + args.records):
        while True:
            try:
                producer.produce(args.topic, key=key_for(tag, i), value=value_for(tag, i),
                                 on_delivery=lambda err, msg, i=i: on_delivery(err, msg, i))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(300)
    log.close()
    check(left == 0, f"{left} records still undelivered after flush(300s)")
    check(not errors, f"{len(errors)} failed delivery reports, first: {errors[:3]}")
    check(acked[0] == args.records, f"{acked[0]} acknowledged, expected {args.records}")
    return f"OK ack_producer: {acked[0]} records acknowledged to {args.topic}"


if __name__ == "__main__":
    run(main)
