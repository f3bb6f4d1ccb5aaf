"""kafka-python: a transactional KafkaProducer (transactional_id) alternates committed and
aborted rounds over every partition. While a round is open, a read_committed consumer's
end_offsets (ListOffsets LATEST, read_committed) is the round's first offset and a
read_uncommitted one's the high watermark. Afterwards both agree (records + one control
marker per transaction per partition); a read_committed KafkaConsumer (assign, no group)
reads exactly the committed records at their delivered offsets, in order, and a
read_uncommitted one committed and aborted records but no control records."""

import argparse
import os
import sys
import threading
import uuid
from collections import defaultdict

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from strata_common import Deadline, Mismatch, check, key_for, run, value_for

TIMEOUT_MS = 60000
READ_DEADLINE_S = 300
# commit_transaction()/abort_transaction() wait without a timeout: this bounds the script.
WATCHDOG_S = 800


def watchdog(seconds):
    def expire():
        print(f"FAIL: kp_transactions did not finish within {seconds}s (a transaction call "
              "never returned?)", file=sys.stderr, flush=True)
        os._exit(3)
    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def consumer(bootstrap, isolation):
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         isolation_level=isolation, request_timeout_ms=TIMEOUT_MS + 5000,
                         client_id=f"strata-tests-kp-{isolation}")


def read_to_end(bootstrap, topic, partitions, isolation, ends):
    """Reads from the beginning until every partition's position reaches ends[p] (control
    batches advance it too); returns {p: [(offset, key, value)]}."""
    c = consumer(bootstrap, isolation)
    got = defaultdict(list)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning()
        deadline = Deadline(READ_DEADLINE_S, f"reading {topic} with {isolation} to offsets {ends}")
        while True:
            positions = {tp.partition: c.position(tp, timeout_ms=TIMEOUT_MS) for tp in tps}
            for p, pos in positions.items():
                check(pos is None or pos <= ends[p],
                      f"{topic}[{p}] ({isolation}): position {pos} beyond the end {ends[p]}")
            if all(positions[p] == ends[p] for p in range(partitions)):
                break
            if deadline.expired():
                raise Mismatch(f"{deadline.what}; positions {positions}")
            for tp, records in c.poll(timeout_ms=500).items():
                for rec in records:
                    got[tp.partition].append((rec.offset, rec.key, rec.value))
    finally:
        c.close()
    return got


def compare(topic, isolation, got, expected, partitions):
    for p in range(partitions):
        g, e = got.get(p, []), sorted(expected.get(p, []))
        if g == e:
            continue
        missing = sorted(set(e) - set(g))[:3]
        extra = sorted(set(g) - set(e))[:3]
        raise Mismatch(f"{topic}[{p}] ({isolation}): read {len(g)} records, expected {len(e)}; "
                       f"missing (first 3) {missing}, unexpected (first 3) {extra}, "
                       f"duplicates {len(g) - len(set(g))}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", default="kp-txn")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per-round", type=int, default=90)
    args = ap.parse_args()
    watchdog(WATCHDOG_S)
    topic, parts = args.topic, args.partitions

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=TIMEOUT_MS,
                             client_id="strata-tests-kp")
    try:
        admin.create_topics({topic: {"num_partitions": parts, "replication_factor": 1}},
                            timeout_ms=TIMEOUT_MS, wait_for_metadata=True)
    finally:
        admin.close()

    producer = KafkaProducer(bootstrap_servers=args.bootstrap,
                             transactional_id=f"{topic}-txn-{uuid.uuid4().hex[:12]}",
                             request_timeout_ms=TIMEOUT_MS, max_block_ms=TIMEOUT_MS,
                             linger_ms=5, client_id="strata-tests-kp-txn")
    lso_reader = consumer(args.bootstrap, "read_committed")
    hw_reader = consumer(args.bootstrap, "read_uncommitted")
    tps = [TopicPartition(topic, p) for p in range(parts)]
    # Assigned (so their metadata covers the topic) but never polled: they only list offsets.
    lso_reader.assign(tps)
    hw_reader.assign(tps)
    committed, everything = defaultdict(list), defaultdict(list)  # p -> [(off, key, value)]
    try:
        producer.init_transactions()
        for r in range(args.rounds):
            commit = r % 2 == 0
            tag = f"kp-r{r}-{'commit' if commit else 'abort'}"
            producer.begin_transaction()
            futures = []
            for i in range(r * args.per_round, (r + 1) * args.per_round):
                futures.append((i, producer.send(topic, key=key_for(tag, i), value=value_for(tag, i),
                                                 partition=i % parts)))
            producer.flush(timeout=TIMEOUT_MS / 1000)
            rows = []
            for i, fut in futures:
                md = fut.get(timeout=TIMEOUT_MS / 1000)
                check(md.partition == i % parts,
                      f"round {r} record {i}: partition {md.partition}, asked for {i % parts}")
                rows.append((md.partition, (md.offset, key_for(tag, i), value_for(tag, i))))
            # The round is open: read_committed LATEST is its first offset in each partition.
            lso = lso_reader.end_offsets(tps, timeout_ms=TIMEOUT_MS)
            hw = hw_reader.end_offsets(tps, timeout_ms=TIMEOUT_MS)
            for tp in tps:
                offs = [row[0] for p, row in rows if p == tp.partition]
                check(offs, f"round {r}: nothing written to {topic}[{tp.partition}]")
                check(hw[tp] == max(offs) + 1,
                      f"round {r} open: {topic}[{tp.partition}] high watermark {hw[tp]}, "
                      f"expected {max(offs) + 1}")
                check(lso[tp] == min(offs),
                      f"round {r} open: {topic}[{tp.partition}] read_committed end offset (LSO) "
                      f"{lso[tp]}, expected the transaction's first offset {min(offs)}")
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
            for p, row in rows:
                everything[p].append(row)
                if commit:
                    committed[p].append(row)
        lso = lso_reader.end_offsets(tps, timeout_ms=TIMEOUT_MS)
        hw = hw_reader.end_offsets(tps, timeout_ms=TIMEOUT_MS)
    finally:
        producer.close(timeout=30)
        lso_reader.close()
        hw_reader.close()

    ends = {}
    for tp in tps:
        want = len(everything[tp.partition]) + args.rounds
        check(hw[tp] == want, f"{topic}[{tp.partition}]: high watermark {hw[tp]}, expected {want} "
                              f"({len(everything[tp.partition])} records + {args.rounds} markers)")
        check(lso[tp] == hw[tp],
              f"{topic}[{tp.partition}]: read_committed end offset {lso[tp]} != high watermark "
              f"{hw[tp]} with no open transaction")
        ends[tp.partition] = hw[tp]

    got = read_to_end(args.bootstrap, topic, parts, "read_committed", ends)
    compare(topic, "read_committed", got, committed, parts)
    got = read_to_end(args.bootstrap, topic, parts, "read_uncommitted", ends)
    compare(topic, "read_uncommitted", got, everything, parts)
    n_committed = sum(len(v) for v in committed.values())
    n_all = sum(len(v) for v in everything.values())
    return (f"OK kafka-python transactions: {args.rounds} rounds of {args.per_round} records over "
            f"{parts} partitions; read_committed saw exactly the {n_committed} committed, "
            f"read_uncommitted all {n_all}; end offsets tracked the LSO")


if __name__ == "__main__":
    run(main)
