"""What transactions cost: a confluent-kafka (librdkafka) producer writes --records records
of --size bytes to one partition as an idempotent producer (acks=all), and as a
transactional one committing every --per-txn records, against a fresh release broker each
run, alternating. Prints per run the records/s and the broker's CPU for the phase (the
transactional one includes its AddPartitionsToTxn, EndTxn and the commit markers), then a
read_committed consumer's records/s over what was written.

    .venv/bin/python benches/compare/transactions.py --strata target/release/strata --rounds 3
"""

import argparse
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from compare import CpuReading, strata_broker  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

TOPIC = "txn-load"


def produce(bootstrap: str, pid: int, records: int, size: int, per_txn: int) -> str:
    conf = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 5, "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000}
    if per_txn:
        conf["transactional.id"] = "load"
    producer = Producer(conf)
    value = b"x" * size
    # The topic is created by the first record (auto-creation), outside the measured phase.
    if per_txn:
        producer.init_transactions(60)
        producer.begin_transaction()
    producer.produce(TOPIC, value=value, partition=0)
    if per_txn:
        producer.commit_transaction(60)
    producer.flush(60)
    cpu0, started = CpuReading.read(pid), time.monotonic()
    for i in range(records):
        if per_txn and i % per_txn == 0:
            producer.begin_transaction()
        while True:
            try:
                producer.produce(TOPIC, value=value, partition=0)
                break
            except BufferError:
                producer.poll(0.01)
        if per_txn and (i + 1) % per_txn == 0:
            producer.commit_transaction(60)
    if per_txn and records % per_txn:
        producer.commit_transaction(60)
    producer.flush(60)
    elapsed, cpu = time.monotonic() - started, cpu0.seconds_until(CpuReading.read(pid))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "load",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    read, read_started = 0, time.monotonic()
    while read < records + 1:
        batch = consumer.consume(10_000, timeout=5)
        if not batch:
            break
        read += sum(1 for m in batch if not m.error())
    read_elapsed = time.monotonic() - read_started
    consumer.close()
    return (f"produce {records / elapsed:,.0f} records/s, broker CPU {cpu * 1000:.0f} ms; "
            f"read_committed read {read:,} records at {read / read_elapsed:,.0f} records/s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strata", default="target/release/strata")
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--per-txn", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for round_no in range(args.rounds):
        kinds = (0, args.per_txn) if round_no % 2 == 0 else (args.per_txn, 0)
        for per_txn in kinds:
            with strata_broker(args.strata, ["metrics.listener="]) as (bootstrap, pid):
                result = produce(bootstrap, pid, args.records, args.size, per_txn)
            what = f"transactions of {per_txn}" if per_txn else "idempotent, no transactions"
            print(f"round {round_no + 1}, {what}: {result}", flush=True)
    print(f"({args.records:,} records of {args.size} B, one partition; {shlex.join(sys.argv)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
