"""What incremental fetch sessions (KIP-227) save: a kafka-python consumer (which keeps a
session by default) tails a topic of --partitions partitions while a producer in the same
process trickles --rate records/s of 100 B into 8 of them, for --seconds. Runs against a
fresh release broker with sessions on (max.incremental.fetch.session.cache.slots=1000) and
off (=0), alternating, and prints per run the Fetch requests the broker answered (from its
/metrics), its CPU over the window (schedstat), CPU per fetch, records read and the
consumer process's CPU.

    .venv/bin/python benches/compare/fetch_sessions.py --strata target/release/strata --rounds 3
"""

import argparse
import os
import random
import shlex
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from compare import CpuReading, free_port, strata_broker  # noqa: E402

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

TOPIC = "tail"


def fetch_requests(metrics: str) -> float:
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('strata_requests_total{api="Fetch"}'):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def tail(bootstrap: str, pid: int, metrics: str, partitions: int, seconds: float, rate: float) -> str:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics({TOPIC: {"num_partitions": partitions, "replication_factor": 1}},
                        wait_for_metadata=True)
    admin.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="latest",
                             enable_auto_commit=False, fetch_max_wait_ms=500)
    tps = [TopicPartition(TOPIC, p) for p in range(partitions)]
    consumer.assign(tps)
    for tp in tps:
        consumer.position(tp)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    hot = random.Random(7).sample(range(partitions), 8)
    stop = threading.Event()
    sent = [0]

    def produce():
        pick = random.Random(1)
        due = time.monotonic()
        while not stop.is_set():
            producer.send(TOPIC, value=b"x" * 100, partition=pick.choice(hot))
            sent[0] += 1
            due += 1 / rate
            time.sleep(max(0.0, due - time.monotonic()))

    thread = threading.Thread(target=produce)
    thread.start()
    cpu0, fetches0, client0 = CpuReading.read(pid), fetch_requests(metrics), time.process_time()
    read = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        read += sum(len(records) for records in consumer.poll(timeout_ms=200).values())
    cpu1, fetches1, client1 = CpuReading.read(pid), fetch_requests(metrics), time.process_time()
    stop.set()
    thread.join()
    producer.close()
    consumer.close()
    fetches = fetches1 - fetches0
    cpu = cpu0.seconds_until(cpu1)
    return (f"{fetches:.0f} fetches, broker CPU {cpu * 1000:.0f} ms ({cpu * 1e6 / max(fetches, 1):.0f} us a "
            f"fetch), {read} of ~{sent[0]} records read, consumer process CPU {client1 - client0:.1f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strata", default="target/release/strata")
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for round_no in range(args.rounds):
        for slots in (1000, 0) if round_no % 2 == 0 else (0, 1000):
            metrics = f"127.0.0.1:{free_port()}"
            overrides = [f"metrics.listener=http://{metrics}",
                         f"max.incremental.fetch.session.cache.slots={slots}"]
            with strata_broker(args.strata, overrides) as (bootstrap, pid):
                result = tail(bootstrap, pid, metrics, args.partitions, args.seconds, args.rate)
            print(f"sessions {'on ' if slots else 'off'} round {round_no + 1}: {result}", flush=True)
    print(f"({args.partitions} partitions, {args.rate:.0f} records/s into 8 of them, "
          f"{args.seconds:.0f} s; {shlex.join(sys.argv)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
