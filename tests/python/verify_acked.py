"""Reads a topic back from the beginning to its high watermark and checks that every record
listed in --ack-log ("partition offset index" lines written by ack_producer.py) is present
at that offset with the right key and value, that offsets are dense, and that no batch is
corrupt (the consumer checks CRCs)."""

import argparse

from confluent_kafka import Consumer, KafkaError, TopicPartition

from strata_common import (CLIENT_TIMEOUT_S, Deadline, Mismatch, check, key_for, run,
                           value_for)


def read_ack_log(path):
    with open(path, "rb") as f:
        data = f.read()
    acked = {}
    lines = data.split(b"\n")
    # The last element is either "" or a line cut short by the last producer's kill (each
    # producer drops such a tail before it appends): ignore it.
    for line in lines[:-1]:
        parts = line.split()
        check(len(parts) == 3, f"malformed ack-log line {line!r}")
        p, off, i = (int(x) for x in parts)
        check((p, off) not in acked, f"ack log lists {p}@{off} twice")
        acked[(p, off)] = i
    return acked


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--ack-log", required=True)
    ap.add_argument("--expect-acked", type=int, default=None,
                    help="exact number of acknowledged records the log must list")
    ap.add_argument("--min-acked", type=int, default=1)
    args = ap.parse_args()

    acked = read_ack_log(args.ack_log)
    if args.expect_acked is not None:
        check(len(acked) == args.expect_acked,
              f"ack log lists {len(acked)} records, expected {args.expect_acked}")
    check(len(acked) >= args.min_acked, f"ack log lists {len(acked)} records, expected >= {args.min_acked}")

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "strata-tests-unused-verify",
        "enable.auto.commit": False,
        "check.crcs": True,
        "socket.timeout.ms": 60000,
    })
    tag = args.topic
    found = 0
    try:
        high = {}
        for p in range(args.partitions):
            try:
                low, hi = consumer.get_watermark_offsets(TopicPartition(args.topic, p),
                                                         timeout=CLIENT_TIMEOUT_S)
            except Exception as e:  # noqa: BLE001
                raise Mismatch(f"{args.topic}[{p}]: watermarks unavailable ({e}); "
                               f"was the topic or partition lost?")
            check(low == 0, f"{args.topic}[{p}]: low watermark {low}, expected 0")
            high[p] = hi
        for (p, off) in acked:
            check(p in high, f"acked partition {p} does not exist")
            check(off < high[p], f"{args.topic}[{p}]: acknowledged offset {off} is at or above "
                                 f"the high watermark {high[p]} (an acknowledged record is missing)")
        consumer.assign([TopicPartition(args.topic, p, 0) for p in range(args.partitions) if high[p] > 0])
        next_offset = {p: 0 for p in range(args.partitions)}
        deadline = Deadline(300, f"reading {args.topic} back")
        while any(next_offset[p] < high[p] for p in high):
            deadline.check()
            for msg in consumer.consume(num_messages=1000, timeout=1.0):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise Mismatch(f"consumer error (corrupt batch?): {err}")
                p, off = msg.partition(), msg.offset()
                check(off == next_offset[p], f"{args.topic}[{p}]: got offset {off}, expected {next_offset[p]}")
                next_offset[p] = off + 1
                i = acked.get((p, off))
                if i is not None:
                    check(msg.key() == key_for(tag, i), f"{args.topic}[{p}]@{off}: key {msg.key()!r}, "
                                                        f"expected {key_for(tag, i)!r}")
                    check(msg.value() == value_for(tag, i), f"{args.topic}[{p}]@{off}: value differs from record {i}")
                    found += 1
                else:
                    # Written but not acknowledged before the kill: must still be a well-formed record.
                    check(msg.key() is not None and msg.key().startswith(f"{tag}-key-".encode()),
                          f"{args.topic}[{p}]@{off}: unexpected key {msg.key()!r}")
    finally:
        consumer.close()
    check(found == len(acked), f"found {found} of {len(acked)} acknowledged records")
    total = sum(high.values())
    return f"OK verify_acked: all {found} acknowledged records present ({total} records in {args.topic})"


if __name__ == "__main__":
    run(main)
