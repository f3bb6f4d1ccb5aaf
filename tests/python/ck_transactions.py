"""confluent-kafka (librdkafka): Kafka transactions (KIP-98) end to end, one scenario per
sub-command.

  commit-abort   a transactional producer alternates committed and aborted rounds over all
                 partitions; while a round is open the read_committed LATEST offset (LSO) is
                 the round's first offset; afterwards a read_committed consumer sees exactly
                 the committed records at their delivered offsets, a read_uncommitted one
                 sees committed and aborted records (never control records), and every
                 partition holds one control marker per transaction
  fencing        producer B with A's transactional.id fences A and aborts A's open
                 transaction; A's commit then fails fatally/fenced; read_committed sees only B
  ctp            consume-transform-produce in a consumer group: input copied to output in
                 transactions carrying the group's offsets (send_offsets_to_transaction);
                 every third transaction aborted and re-processed after seeking back to the
                 committed offsets; output holds each input record exactly once and the
                 group's committed offsets are the input's end offsets
  commit-txn     one committed transaction of --records records (setup for the tests below)
  open-txn       begins a transaction, writes --records records, flushes, prints
                 "OPEN <topic> <p>:<first>-<last>,..." and then holds the transaction open
                 until it is killed (exits with FAIL if nobody kills it within --hold-s)
  verify-committed  waits (with a deadline) until no transaction is open on the topic (the
                 read_committed LATEST equals the high watermark), then reads it to the end
                 with read_committed (exactly --expect-committed records tagged
                 --committed-tag, none tagged --open-tag) and read_uncommitted (also exactly
                 --expect-open records tagged --open-tag)

Each sub-command prints one "OK ..." line on success, "FAIL: reason" and a non-zero exit
otherwise."""

import argparse
import os
import sys
import threading
import time
import uuid
from collections import defaultdict

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)

from strata_common import (CLIENT_TIMEOUT_S, Deadline, Mismatch, check, create_topics, key_for,
                           run, value_for)

# Transaction API calls (init/commit/abort/send_offsets) may wait on the coordinator writing
# markers through a debug build on a shared machine.
TXN_API_TIMEOUT_S = 120.0
# Reading a topic to its end.
READ_DEADLINE_S = 300.0
# Codes accepted as "this producer has been fenced".
FENCED_CODES = {
    KafkaError._FENCED: "_FENCED",
    KafkaError.PRODUCER_FENCED: "PRODUCER_FENCED",
    KafkaError.INVALID_PRODUCER_EPOCH: "INVALID_PRODUCER_EPOCH",
}


# --------------------------------------------------------------------------- helpers


def unique_txn_id(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def txn_producer(bootstrap, txn_id, txn_timeout_ms=60000, errors=None):
    """A transactional producer. message.timeout.ms and socket.timeout.ms are left to
    librdkafka, which derives them from transaction.timeout.ms (they must not exceed it)."""
    conf = {
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "transaction.timeout.ms": txn_timeout_ms,
        "linger.ms": 5,
    }
    if errors is not None:
        conf["error_cb"] = lambda err: errors.append(err)
    return Producer(conf)


def plain_producer(bootstrap):
    return Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 300000,
        "socket.timeout.ms": 60000,
    })


def produce_records(producer, topic, partitions, tag, indices, what):
    """Produces key_for/value_for(tag, i) for each i to partition i % partitions, flushes, and
    returns {i: (partition, offset)} from the delivery reports (all must be OK)."""
    delivered = {}
    errors = []

    def on_delivery(err, msg, i):
        if err is not None:
            errors.append(f"record {i}: {err}")
        else:
            delivered[i] = (msg.partition(), msg.offset())

    for i in indices:
        while True:
            try:
                producer.produce(topic, key=key_for(tag, i), value=value_for(tag, i),
                                 partition=i % partitions,
                                 on_delivery=lambda err, msg, i=i: on_delivery(err, msg, i))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(READ_DEADLINE_S)
    check(left == 0, f"{what}: {left} records still undelivered after flush({READ_DEADLINE_S}s)")
    check(not errors, f"{what}: {len(errors)} failed delivery reports, first: {errors[:3]}")
    check(len(delivered) == len(indices),
          f"{what}: {len(delivered)} delivery reports, expected {len(indices)}")
    return delivered


def offset_ranges(delivered):
    """{partition: (first, last)} offsets of a set of delivery reports."""
    ranges = {}
    for p, off in delivered.values():
        first, last = ranges.get(p, (off, off))
        ranges[p] = (min(first, off), max(last, off))
    return ranges


def consumer_conf(bootstrap, isolation, group=None):
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group or f"strata-tests-unused-{uuid.uuid4().hex[:8]}",
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "check.crcs": True,
        "socket.timeout.ms": 60000,
    }


class Offsets:
    """LATEST offsets as the broker reports them under both isolation levels (librdkafka's
    ListOffsets carries the consumer's isolation.level): read_uncommitted is the high
    watermark, read_committed the last stable offset."""

    def __init__(self, bootstrap):
        self.committed = Consumer(consumer_conf(bootstrap, "read_committed"))
        self.uncommitted = Consumer(consumer_conf(bootstrap, "read_uncommitted"))

    def latest(self, topic, p):
        """(last stable offset, high watermark) of topic[p]."""
        tp = TopicPartition(topic, p)
        _, lso = self.committed.get_watermark_offsets(tp, timeout=CLIENT_TIMEOUT_S, cached=False)
        _, hw = self.uncommitted.get_watermark_offsets(tp, timeout=CLIENT_TIMEOUT_S, cached=False)
        return lso, hw

    def wait_stable(self, topic, partitions, seconds):
        """Waits until no partition has an open transaction (LSO == HW); returns the high
        watermarks."""
        deadline = Deadline(seconds, f"waiting for the last stable offset of {topic} to reach "
                                     "its high watermark (an open transaction never ended)")
        while True:
            latest = [self.latest(topic, p) for p in range(partitions)]
            if all(lso == hw for lso, hw in latest):
                return [hw for _, hw in latest]
            if deadline.expired():
                raise Mismatch(f"{deadline.what}; (LSO, HW) per partition: {latest}")
            time.sleep(0.2)

    def close(self):
        self.committed.close()
        self.uncommitted.close()


def read_to_end(bootstrap, topic, partitions, isolation, ends):
    """Reads every partition from its beginning until the consumer reports end-of-partition
    at exactly ends[p]; returns {p: [(offset, key, value)]}. For read_committed the fetch
    position only reaches the high watermark once no transaction is open, so this is also a
    bounded wait for that."""
    consumer = Consumer(consumer_conf(bootstrap, isolation))
    got = defaultdict(list)
    at_end = set()
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = Deadline(READ_DEADLINE_S, f"reading {topic} with {isolation} to offsets {ends}")
        while len(at_end) < partitions:
            if deadline.expired():
                raise Mismatch(f"{deadline.what}; at the end: {sorted(at_end)}, read so far: "
                               f"{ {p: len(v) for p, v in got.items()} }")
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                err = msg.error()
                p = msg.partition()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        check(msg.offset() <= ends[p],
                              f"{topic}[{p}] ({isolation}): end of partition at {msg.offset()}, "
                              f"beyond the expected end {ends[p]}")
                        if msg.offset() == ends[p]:
                            at_end.add(p)
                        continue
                    raise Mismatch(f"{topic} ({isolation}): consumer error {err}")
                check(p not in at_end,
                      f"{topic}[{p}] ({isolation}): record at {msg.offset()} after the end {ends[p]}")
                got[p].append((msg.offset(), msg.key(), msg.value()))
    finally:
        consumer.close()
    return got


def expected_by_partition(records):
    """records: iterable of (tag, i, partition, offset) -> {p: [(offset, key, value)]}."""
    by_p = defaultdict(list)
    for tag, i, p, off in records:
        by_p[p].append((off, key_for(tag, i), value_for(tag, i)))
    for p in by_p:
        by_p[p].sort()
    return by_p


def compare(topic, isolation, got, expected, partitions):
    for p in range(partitions):
        g, e = got.get(p, []), expected.get(p, [])
        if g == e:
            continue
        got_set, exp_set = set(g), set(e)
        missing = sorted(exp_set - got_set)[:3]
        extra = sorted(got_set - exp_set)[:3]
        dupes = len(g) - len(got_set)
        raise Mismatch(
            f"{topic}[{p}] ({isolation}): read {len(g)} records, expected {len(e)}; "
            f"missing (first 3) {missing}, unexpected (first 3) {extra}, duplicates {dupes}, "
            f"order {'differs' if got_set == exp_set and not dupes else 'n/a'}")


# --------------------------------------------------------------------------- scenarios


def mode_commit_abort(args):
    topic, parts = args.topic, args.partitions
    create_topics(args.bootstrap, [topic], parts)
    producer = txn_producer(args.bootstrap, unique_txn_id(f"{topic}-txn"))
    producer.init_transactions(TXN_API_TIMEOUT_S)
    offsets = Offsets(args.bootstrap)
    committed, everything = [], []  # (tag, i, partition, offset)
    try:
        for r in range(args.rounds):
            commit = r % 2 == 0
            tag = f"ca-r{r}-{'commit' if commit else 'abort'}"
            indices = range(r * args.per_round, (r + 1) * args.per_round)
            producer.begin_transaction()
            delivered = produce_records(producer, topic, parts, tag, indices, f"round {r}")
            ranges = offset_ranges(delivered)
            check(sorted(ranges) == list(range(parts)),
                  f"round {r}: records landed in partitions {sorted(ranges)}, expected all {parts}")
            # While the round is open its first offset bounds what read_committed may see.
            for p, (first, last) in ranges.items():
                lso, hw = offsets.latest(topic, p)
                check(hw == last + 1,
                      f"round {r} open: {topic}[{p}] high watermark {hw}, expected {last + 1}")
                check(lso == first,
                      f"round {r} open: {topic}[{p}] read_committed LATEST (LSO) {lso}, expected "
                      f"the transaction's first offset {first}")
            if commit:
                producer.commit_transaction(TXN_API_TIMEOUT_S)
            else:
                producer.abort_transaction(TXN_API_TIMEOUT_S)
            rows = [(tag, i, p, off) for i, (p, off) in delivered.items()]
            everything.extend(rows)
            if commit:
                committed.extend(rows)
        # No transaction is open: LSO == HW == data records + one control marker per
        # transaction per partition (every round wrote to every partition).
        ends = []
        per_partition = defaultdict(int)
        for _, _, p, _ in everything:
            per_partition[p] += 1
        for p in range(parts):
            lso, hw = offsets.latest(topic, p)
            want = per_partition[p] + args.rounds
            check(hw == want, f"{topic}[{p}]: high watermark {hw}, expected {want} "
                              f"({per_partition[p]} records + {args.rounds} transaction markers)")
            check(lso == hw, f"{topic}[{p}]: LSO {lso} != high watermark {hw} with no open transaction")
            ends.append(hw)
    finally:
        offsets.close()

    got = read_to_end(args.bootstrap, topic, parts, "read_committed", ends)
    compare(topic, "read_committed", got, expected_by_partition(committed), parts)
    got = read_to_end(args.bootstrap, topic, parts, "read_uncommitted", ends)
    compare(topic, "read_uncommitted", got, expected_by_partition(everything), parts)
    return (f"OK transactions commit-abort: {args.rounds} rounds of {args.per_round} records over "
            f"{parts} partitions; read_committed saw exactly the {len(committed)} committed, "
            f"read_uncommitted all {len(everything)}; LSO tracked open transactions")


def mode_fencing(args):
    topic, parts = args.topic, args.partitions
    create_topics(args.bootstrap, [topic], parts)
    txn_id = unique_txn_id(f"{topic}-txn")
    b_errors = []
    a = txn_producer(args.bootstrap, txn_id)
    a.init_transactions(TXN_API_TIMEOUT_S)
    a.begin_transaction()
    a_delivered = produce_records(a, topic, parts, "fence-a", range(args.records), "producer A")

    b = txn_producer(args.bootstrap, txn_id, errors=b_errors)
    b.init_transactions(TXN_API_TIMEOUT_S)  # fences A and aborts its open transaction
    b.begin_transaction()
    b_delivered = produce_records(b, topic, parts, "fence-b", range(args.records), "producer B")
    b.commit_transaction(TXN_API_TIMEOUT_S)

    try:
        a.commit_transaction(TXN_API_TIMEOUT_S)
    except KafkaException as e:
        err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
        check(err is not None, f"A's commit raised KafkaException without a KafkaError: {e!r}")
        name = FENCED_CODES.get(err.code())
        check(err.fatal() or name is not None,
              f"A's commit failed, but not as fenced: code {err.code()} ({err.name()}), "
              f"fatal={err.fatal()}, txn_requires_abort={err.txn_requires_abort()}: {err.str()}")
        how = f"{err.name()} (code {err.code()}, fatal={err.fatal()})"
    else:
        raise Mismatch("producer A's commit_transaction succeeded after producer B with the same "
                       "transactional.id was initialised (A was not fenced)")
    b_fatal = [str(x) for x in b_errors if x.fatal()]
    check(not b_fatal, f"producer B reported fatal errors: {b_fatal[:3]}")

    # A wrote before B in every partition.
    a_ranges, b_ranges = offset_ranges(a_delivered), offset_ranges(b_delivered)
    for p in set(a_ranges) & set(b_ranges):
        check(a_ranges[p][1] < b_ranges[p][0],
              f"{topic}[{p}]: A's records {a_ranges[p]} not before B's {b_ranges[p]}")

    offsets = Offsets(args.bootstrap)
    try:
        ends = offsets.wait_stable(topic, parts, READ_DEADLINE_S)
    finally:
        offsets.close()
    a_rows = [("fence-a", i, p, off) for i, (p, off) in a_delivered.items()]
    b_rows = [("fence-b", i, p, off) for i, (p, off) in b_delivered.items()]
    got = read_to_end(args.bootstrap, topic, parts, "read_committed", ends)
    compare(topic, "read_committed", got, expected_by_partition(b_rows), parts)
    got = read_to_end(args.bootstrap, topic, parts, "read_uncommitted", ends)
    compare(topic, "read_uncommitted", got, expected_by_partition(a_rows + b_rows), parts)
    return (f"OK transactions fencing: A's commit failed with {how}; read_committed saw B's "
            f"{len(b_rows)} records and none of A's {len(a_rows)} (which are in the log)")


def mode_ctp(args):
    src, dst, parts, n = args.input, args.output, args.partitions, args.records
    create_topics(args.bootstrap, [src, dst], parts)
    # Input: plain (non-transactional) records, i -> partition i % parts.
    seeded = produce_records(plain_producer(args.bootstrap), src, parts, "ctp-in", range(n), "input")
    input_order = defaultdict(list)  # p -> [i] in offset order
    for i, (p, off) in sorted(seeded.items(), key=lambda kv: kv[1]):
        input_order[p].append(i)
    offsets = Offsets(args.bootstrap)
    try:
        hw = {p: offsets.latest(src, p)[1] for p in range(parts)}
    finally:
        offsets.close()
    check(sum(hw.values()) == n, f"{src}: high watermarks {hw} do not add up to {n} records")

    group = f"{args.output}-group"
    conf = consumer_conf(args.bootstrap, "read_committed", group)
    conf["enable.partition.eof"] = False
    consumer = Consumer(conf)
    producer = txn_producer(args.bootstrap, unique_txn_id(f"{dst}-txn"))
    producer.init_transactions(TXN_API_TIMEOUT_S)
    consumer.subscribe([src])

    next_off = {}  # p -> the offset the next consumed record of p must have
    txns = commits = aborts = aborted_records = 0
    deadline = Deadline(READ_DEADLINE_S * 2, "copying input to output in transactions")

    def assigned():
        return {tp.partition for tp in consumer.assignment() if tp.topic == src}

    def at_end():
        return assigned() == set(range(parts)) and all(
            next_off.get(p, 0) >= hw[p] for p in range(parts))

    def committed_offsets():
        res = consumer.committed([TopicPartition(src, p) for p in range(parts)],
                                 timeout=CLIENT_TIMEOUT_S)
        for tp in res:
            check(tp.error is None, f"committed({src}[{tp.partition}]) error {tp.error}")
        return {tp.partition: tp.offset for tp in res}

    try:
        while True:
            batch = []
            while len(batch) < args.txn_size:
                deadline.check()
                msgs = consumer.consume(num_messages=args.txn_size - len(batch), timeout=0.5)
                for msg in msgs:
                    if msg.error() is not None:
                        raise Mismatch(f"consumer error {msg.error()}")
                    p, off = msg.partition(), msg.offset()
                    if p not in next_off:
                        # First record of the partition in this assignment: where the group
                        # left off (nothing was committed before the first transaction).
                        next_off[p] = 0
                    check(off == next_off[p],
                          f"{src}[{p}]: consumed offset {off}, expected {next_off[p]}")
                    next_off[p] = off + 1
                    batch.append(msg)
                if not msgs and at_end():
                    break
            if not batch:
                break  # at the end, and the last transaction committed
            txns += 1
            producer.begin_transaction()
            failed = []
            for msg in batch:
                while True:
                    try:
                        producer.produce(dst, key=msg.key(), value=msg.value(),
                                         partition=msg.partition(),
                                         on_delivery=lambda err, _m: err and failed.append(err))
                        break
                    except BufferError:
                        producer.poll(0.1)
                producer.poll(0)
            # Flushed before the transaction ends, so that an aborted transaction's records
            # are in the log too (abort_transaction() purges what has not been sent).
            left = producer.flush(READ_DEADLINE_S)
            check(left == 0 and not failed,
                  f"transaction {txns}: {left} records undelivered, {len(failed)} failed "
                  f"(first: {failed[:1]})")
            positions = consumer.position(consumer.assignment())
            for tp in positions:
                if tp.offset >= 0:
                    check(tp.offset == next_off.get(tp.partition),
                          f"consumer.position({src}[{tp.partition}]) = {tp.offset}, but the next "
                          f"record to process is {next_off.get(tp.partition)}")
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(),
                                                 TXN_API_TIMEOUT_S)
            if txns % args.abort_every == 0:
                producer.abort_transaction(TXN_API_TIMEOUT_S)
                aborts += 1
                aborted_records += len(batch)
                # Re-process from the group's committed offsets, as an EOS app does.
                for p, off in committed_offsets().items():
                    start = off if off >= 0 else 0
                    consumer.seek(TopicPartition(src, p, start))
                    next_off[p] = start
            else:
                producer.commit_transaction(TXN_API_TIMEOUT_S)
                commits += 1
        final = committed_offsets()
    finally:
        consumer.close()
    check(aborts > 0, f"no transaction was aborted ({txns} transactions)")
    check(final == hw, f"group {group}: committed offsets {final}, expected the input's end {hw}")

    # A fresh member of the group sees the same committed offsets.
    fresh = Consumer(consumer_conf(args.bootstrap, "read_committed", group))
    try:
        res = fresh.committed([TopicPartition(src, p) for p in range(parts)],
                              timeout=CLIENT_TIMEOUT_S)
        again = {tp.partition: tp.offset for tp in res}
    finally:
        fresh.close()
    check(again == hw, f"group {group} (fresh consumer): committed {again}, expected {hw}")

    offsets = Offsets(args.bootstrap)
    try:
        ends = offsets.wait_stable(dst, parts, READ_DEADLINE_S)
    finally:
        offsets.close()
    got = read_to_end(args.bootstrap, dst, parts, "read_committed", ends)
    for p in range(parts):
        values = [v for _, _, v in got.get(p, [])]
        want = [value_for("ctp-in", i) for i in input_order[p]]
        if values != want:
            seen = defaultdict(int)
            for v in values:
                seen[v] += 1
            dupes = sum(1 for c in seen.values() if c > 1)
            missing = sum(1 for v in want if v not in seen)
            raise Mismatch(f"{dst}[{p}] (read_committed): {len(values)} records, expected "
                           f"{len(want)} copies of {src}[{p}] in order; {missing} missing, "
                           f"{dupes} duplicated")
        keys = [k for _, k, _ in got.get(p, [])]
        check(keys == [key_for("ctp-in", i) for i in input_order[p]], f"{dst}[{p}]: keys differ")
    got = read_to_end(args.bootstrap, dst, parts, "read_uncommitted", ends)
    total = sum(len(v) for v in got.values())
    check(total == n + aborted_records,
          f"{dst} (read_uncommitted): {total} records, expected {n} committed + "
          f"{aborted_records} aborted")
    return (f"OK transactions ctp: {n} records copied exactly once in {commits} committed and "
            f"{aborts} aborted transactions ({aborted_records} records re-processed); group "
            f"offsets = input end offsets")


def mode_commit_txn(args):
    if args.create:
        create_topics(args.bootstrap, [args.topic], args.partitions)
    producer = txn_producer(args.bootstrap, args.txn_id or unique_txn_id(f"{args.topic}-txn"))
    producer.init_transactions(TXN_API_TIMEOUT_S)
    producer.begin_transaction()
    indices = range(args.start_index, args.start_index + args.records)
    delivered = produce_records(producer, args.topic, args.partitions, args.tag, indices,
                                "committed transaction")
    producer.commit_transaction(TXN_API_TIMEOUT_S)
    ranges = offset_ranges(delivered)
    return (f"OK transactions commit-txn: {args.records} records tagged {args.tag} committed to "
            f"{args.topic} " + ",".join(f"{p}:{f}-{l}" for p, (f, l) in sorted(ranges.items())))


def mode_open_txn(args):
    if args.create:
        create_topics(args.bootstrap, [args.topic], args.partitions)
    producer = txn_producer(args.bootstrap, args.txn_id or unique_txn_id(f"{args.topic}-open"),
                            txn_timeout_ms=args.txn_timeout_ms)
    producer.init_transactions(TXN_API_TIMEOUT_S)
    producer.begin_transaction()
    delivered = produce_records(producer, args.topic, args.partitions, args.tag,
                                range(args.start_index, args.start_index + args.records),
                                "open transaction")
    ranges = offset_ranges(delivered)
    print(f"OPEN {args.topic} " + ",".join(f"{p}:{f}-{l}" for p, (f, l) in sorted(ranges.items())),
          flush=True)
    # Hold the transaction open: never end it, never close the producer (close() would abort).
    threading.Event().wait(args.hold_s)
    print(f"FAIL: open-txn was not killed within {args.hold_s}s", file=sys.stderr, flush=True)
    os._exit(4)


def mode_verify_committed(args):
    topic, parts = args.topic, args.partitions
    offsets = Offsets(args.bootstrap)
    try:
        ends = offsets.wait_stable(topic, parts, args.stable_timeout_s)
    finally:
        offsets.close()

    def classify(got, isolation):
        counts = defaultdict(int)
        seen = set()
        for p, rows in got.items():
            last = -1
            for off, key, value in rows:
                check(off > last, f"{topic}[{p}] ({isolation}): offset {off} after {last}")
                last = off
                tag = value.split(b"|", 1)[0].decode(errors="replace")
                check((tag, value) not in seen, f"{topic}[{p}] ({isolation}): {value[:40]!r} twice")
                seen.add((tag, value))
                counts[tag] += 1
        return counts

    rc = classify(read_to_end(args.bootstrap, topic, parts, "read_committed", ends), "read_committed")
    check(rc.get(args.open_tag, 0) == 0,
          f"read_committed saw {rc.get(args.open_tag)} records of the unfinished transaction "
          f"(tag {args.open_tag})")
    check(rc.get(args.committed_tag, 0) == args.expect_committed,
          f"read_committed saw {rc.get(args.committed_tag, 0)} records tagged "
          f"{args.committed_tag}, expected {args.expect_committed}")
    check(sum(rc.values()) == args.expect_committed,
          f"read_committed saw other records too: {dict(rc)}")
    summary = (f"OK transactions verify-committed: {topic} stable at {ends}; read_committed saw "
               f"exactly {args.expect_committed} committed records")
    if args.expect_open is not None:
        ru = classify(read_to_end(args.bootstrap, topic, parts, "read_uncommitted", ends),
                      "read_uncommitted")
        check(ru.get(args.open_tag, 0) == args.expect_open,
              f"read_uncommitted saw {ru.get(args.open_tag, 0)} records tagged {args.open_tag}, "
              f"expected {args.expect_open} (the aborted transaction's records stay in the log)")
        check(ru.get(args.committed_tag, 0) == args.expect_committed,
              f"read_uncommitted saw {ru.get(args.committed_tag, 0)} records tagged "
              f"{args.committed_tag}, expected {args.expect_committed}")
        summary += f", read_uncommitted also the {args.expect_open} aborted ones"
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)

    def add(name, **defaults):
        p = sub.add_parser(name)
        p.add_argument("--bootstrap", required=True)
        if "topic" in defaults:
            p.add_argument("--topic", default=defaults["topic"])
        if "partitions" in defaults:
            p.add_argument("--partitions", type=int, default=defaults["partitions"])
        return p

    p = add("commit-abort", topic="txn-commit-abort", partitions=3)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--per-round", type=int, default=300)

    p = add("fencing", topic="txn-fencing", partitions=2)
    p.add_argument("--records", type=int, default=200)

    p = add("ctp", partitions=2)
    p.add_argument("--input", default="txn-ctp-in")
    p.add_argument("--output", default="txn-ctp-out")
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--txn-size", type=int, default=100)
    p.add_argument("--abort-every", type=int, default=3)

    for name in ("commit-txn", "open-txn"):
        p = add(name, topic="txn-restart", partitions=3)
        p.add_argument("--create", action="store_true", help="create the topic first")
        p.add_argument("--records", type=int, required=True)
        p.add_argument("--start-index", type=int, default=0)
        p.add_argument("--tag", default="committed" if name == "commit-txn" else "open")
        p.add_argument("--txn-id", default=None, help="transactional.id (default: unique)")
    sub.choices["open-txn"].add_argument("--txn-timeout-ms", type=int, default=15000)
    sub.choices["open-txn"].add_argument("--hold-s", type=float, default=600.0)

    p = add("verify-committed", topic="txn-restart", partitions=3)
    p.add_argument("--expect-committed", type=int, required=True)
    p.add_argument("--expect-open", type=int, default=None)
    p.add_argument("--committed-tag", default="committed")
    p.add_argument("--open-tag", default="open")
    p.add_argument("--stable-timeout-s", type=float, default=180.0)

    args = ap.parse_args()
    modes = {
        "commit-abort": mode_commit_abort,
        "fencing": mode_fencing,
        "ctp": mode_ctp,
        "commit-txn": mode_commit_txn,
        "open-txn": mode_open_txn,
        "verify-committed": mode_verify_committed,
    }
    return modes[args.mode](args)


if __name__ == "__main__":
    run(main)
