"""confluent-kafka (librdkafka): an idempotent acks=all producer writes records over six
partitions with each codec (gzip, snappy, lz4, zstd; one topic per codec); every delivery
report must be OK; an assign-based consumer (no group membership, no commits) must read
every record exactly once, intact and in offset order; watermarks and offsets_for_times
must agree with what was written."""

import argparse
from collections import defaultdict

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from strata_common import (CLIENT_TIMEOUT_S, Deadline, Mismatch, check, create_topics,
                           headers_for, key_for, run, value_for)

CODECS = ["gzip", "snappy", "lz4", "zstd"]
BASE_TS = 1_700_000_000_000  # record i gets timestamp BASE_TS + i (ms)


def produce(bootstrap, topic, codec, count):
    """Returns {i: (partition, offset)} from the delivery reports."""
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": codec,
        "linger.ms": 20,
        "message.timeout.ms": 300000,
        "socket.timeout.ms": 60000,
    })
    delivered = {}
    errors = []

    def on_delivery(err, msg, i):
        if err is not None:
            errors.append(f"record {i}: {err}")
        else:
            delivered[i] = (msg.partition(), msg.offset())

    for i in range(count):
        while True:
            try:
                producer.produce(topic, key=key_for(codec, i), value=value_for(codec, i),
                                 headers=headers_for(codec, i), timestamp=BASE_TS + i,
                                 on_delivery=lambda err, msg, i=i: on_delivery(err, msg, i))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(300)
    check(left == 0, f"{topic}: {left} records still undelivered after flush(300s)")
    check(not errors, f"{topic}: {len(errors)} failed delivery reports, first: {errors[:3]}")
    check(len(delivered) == count, f"{topic}: {len(delivered)} delivery reports, expected {count}")
    return delivered


def verify(bootstrap, topic, codec, partitions, delivered):
    by_partition = defaultdict(list)  # partition -> [(offset, i)]
    for i, (p, off) in delivered.items():
        by_partition[p].append((off, i))
    for p in by_partition:
        by_partition[p].sort()

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"strata-tests-unused-{topic}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "check.crcs": True,
        "socket.timeout.ms": 60000,
    })
    try:
        # Watermarks: each partition holds exactly what was acknowledged, densely from 0.
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                       timeout=CLIENT_TIMEOUT_S)
            got = [off for off, _ in by_partition.get(p, [])]
            check(low == 0, f"{topic}[{p}]: low watermark {low}, expected 0")
            check(high == len(got), f"{topic}[{p}]: high watermark {high}, expected {len(got)}")
            check(got == list(range(len(got))),
                  f"{topic}[{p}]: acknowledged offsets are not dense from 0")
            # Producer order within a partition is index order (idempotence keeps it).
            idx = [i for _, i in by_partition.get(p, [])]
            check(idx == sorted(idx), f"{topic}[{p}]: offsets do not follow send order")

        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        seen = {}
        next_offset = {p: 0 for p in range(partitions)}
        eof = set()
        deadline = Deadline(300, f"consuming {topic}")
        while len(seen) < len(delivered) or len(eof) < partitions:
            deadline.check()
            for msg in consumer.consume(num_messages=1000, timeout=1.0):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if next_offset[msg.partition()] == len(by_partition.get(msg.partition(), [])):
                            eof.add(msg.partition())
                        continue
                    raise Mismatch(f"{topic}: consumer error {err}")
                p, off = msg.partition(), msg.offset()
                check(off == next_offset[p],
                      f"{topic}[{p}]: got offset {off}, expected {next_offset[p]} (gap, repeat or reorder)")
                next_offset[p] = off + 1
                entries = by_partition.get(p, [])
                check(off < len(entries), f"{topic}[{p}]: offset {off} was never acknowledged")
                _, i = entries[off]
                check(msg.key() == key_for(codec, i),
                      f"{topic}[{p}]@{off}: key {msg.key()!r}, expected {key_for(codec, i)!r}")
                check(msg.value() == value_for(codec, i),
                      f"{topic}[{p}]@{off}: value {msg.value()!r} differs from record {i}")
                check(list(msg.headers() or []) == headers_for(codec, i),
                      f"{topic}[{p}]@{off}: headers {msg.headers()!r}, expected {headers_for(codec, i)!r}")
                ts_type, ts = msg.timestamp()
                check(ts == BASE_TS + i, f"{topic}[{p}]@{off}: timestamp {ts}, expected {BASE_TS + i}")
                check(i not in seen, f"{topic}: record {i} read twice")
                seen[i] = (p, off)
        check(len(seen) == len(delivered), f"{topic}: read {len(seen)} records, expected {len(delivered)}")

        # offsets_for_times: the first offset whose timestamp >= T.
        for p, entries in by_partition.items():
            if not entries:
                continue
            probes = [entries[0], entries[len(entries) // 2], entries[-1]]
            for off, i in probes:
                res = consumer.offsets_for_times([TopicPartition(topic, p, BASE_TS + i)],
                                                 timeout=CLIENT_TIMEOUT_S)
                check(res[0].error is None, f"{topic}[{p}]: offsets_for_times error {res[0].error}")
                check(res[0].offset == off,
                      f"{topic}[{p}]: offsets_for_times({BASE_TS + i}) = {res[0].offset}, expected {off}")
            last_i = entries[-1][1]
            res = consumer.offsets_for_times([TopicPartition(topic, p, BASE_TS + last_i + 1_000_000)],
                                             timeout=CLIENT_TIMEOUT_S)
            check(res[0].offset == -1,
                  f"{topic}[{p}]: offsets_for_times after the last record = {res[0].offset}, expected -1 (none)")
    finally:
        consumer.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic-prefix", default="ck-idem")
    ap.add_argument("--records-per-codec", type=int, default=25000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--codecs", default=",".join(CODECS))
    args = ap.parse_args()
    codecs = [c for c in args.codecs.split(",") if c]
    topics = {c: f"{args.topic_prefix}-{c}" for c in codecs}
    create_topics(args.bootstrap, list(topics.values()), args.partitions)
    for codec, topic in topics.items():
        delivered = produce(args.bootstrap, topic, codec, args.records_per_codec)
        verify(args.bootstrap, topic, codec, args.partitions, delivered)
    total = args.records_per_codec * len(codecs)
    return (f"OK confluent-kafka idempotent: {total} records over {args.partitions} partitions "
            f"with {','.join(codecs)} produced, consumed exactly once, watermarks and times right")


if __name__ == "__main__":
    run(main)
