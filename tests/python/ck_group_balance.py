"""confluent-kafka (librdkafka) consumer group, classic protocol with eager range assignment.

--phase balance: three subscribed consumers share a 6-partition topic; every record is
consumed exactly once across the group (tracked per partition/offset), each member ends up
owning 2 partitions; after one member closes, its partitions move to the other two within
the session timeout and records produced afterwards are still consumed exactly once.
Offsets are committed synchronously after processing (and in the revoke callback, so no
processed record is ever redelivered). The committed offsets are written to --state.

--phase resume (run after the broker restarted): a consumer in the same group finds the
committed offsets from --state, and sees only records produced after the restart, starting
exactly at the committed offset of every partition."""

import argparse
import json
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from strata_common import (CLIENT_TIMEOUT_S, Deadline, Mismatch, check, key_for, run,
                           value_for)

PARTITIONS = 6
SESSION_TIMEOUT_MS = 6000
# librdkafka notices a rebalance on its next heartbeat; 1 s keeps reassignment well inside
# the session timeout that the test checks it against.
HEARTBEAT_MS = 1000


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 60000})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                                  request_timeout=CLIENT_TIMEOUT_S)
    for name, fut in futures.items():
        try:
            fut.result(timeout=CLIENT_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - report any failure as a mismatch
            raise Mismatch(f"CreateTopics {name} with {partitions} partitions failed: {e}")


def produce(bootstrap, topic, tag, start, count, partitions):
    """Record i goes to partition i % partitions. Returns {(partition, offset): i}."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 20, "message.timeout.ms": 300000,
                         "socket.timeout.ms": 60000})
    delivered, errors = {}, []

    def on_delivery(err, msg, i):
        if err is not None:
            errors.append(f"record {i}: {err}")
        else:
            delivered[(msg.partition(), msg.offset())] = i

    for i in range(start, start + count):
        while True:
            try:
                producer.produce(topic, key=key_for(tag, i), value=value_for(tag, i),
                                 partition=i % partitions,
                                 on_delivery=lambda err, msg, i=i: on_delivery(err, msg, i))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(300)
    check(left == 0, f"{topic}: {left} records undelivered after flush(300s)")
    check(not errors, f"{topic}: {len(errors)} failed deliveries, first: {errors[:3]}")
    check(len(delivered) == count, f"{topic}: {len(delivered)} delivery reports, expected {count}")
    return delivered


class Member:
    """One group member; counts the rebalance callbacks it sees and commits what it processed."""

    def __init__(self, name, bootstrap, group, topic, extra=None):
        self.name, self.topic = name, topic
        self.assignment = set()
        self.assigns = 0
        self.revokes = 0
        self.pending = {}  # partition -> next offset to commit (processed, not yet committed)
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": HEARTBEAT_MS,
                "enable.auto.commit": False, "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "range", "socket.timeout.ms": 60000}
        conf.update(extra or {})
        self.consumer = Consumer(conf)
        self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer, partitions):
        self.assigns += 1
        self.assignment = {tp.partition for tp in partitions}

    def _on_revoke(self, consumer, partitions):
        # Commit before giving the partitions up: the next owner starts where we stopped.
        self.revokes += 1
        self.commit({tp.partition for tp in partitions})
        self.assignment = set()

    def commit(self, only=None):
        todo = {p: o for p, o in self.pending.items() if only is None or p in only}
        if not todo:
            return
        offsets = [TopicPartition(self.topic, p, o) for p, o in sorted(todo.items())]
        try:
            result = self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            raise Mismatch(f"{self.name}: synchronous commit of {todo} failed: {e}")
        for tp in result or []:
            check(tp.error is None, f"{self.name}: commit of {self.topic}[{tp.partition}] failed: {tp.error}")
        for p in todo:
            self.pending.pop(p, None)

    def close(self):
        self.commit()
        self.consumer.close()


class Ledger:
    """Who consumed which (partition, offset); catches any record read twice or never produced."""

    def __init__(self, topic, tag_of):
        self.topic = topic
        self.tag_of = tag_of  # (partition, offset) -> (tag, i)
        self.owner = {}

    def record(self, member, msg):
        err = msg.error()
        if err is not None:
            raise Mismatch(f"{member.name}: consumer error {err}")
        p, off = msg.partition(), msg.offset()
        check(p in member.assignment,
              f"{member.name}: got {self.topic}[{p}]@{off} outside its assignment {sorted(member.assignment)}")
        where = (p, off)
        check(where not in self.owner,
              f"{self.topic}[{p}]@{off} consumed twice: by {self.owner.get(where)} and {member.name}")
        expected = self.tag_of.get(where)
        check(expected is not None, f"{member.name}: {self.topic}[{p}]@{off} was never produced")
        tag, i = expected
        check(msg.value() == value_for(tag, i),
              f"{self.topic}[{p}]@{off}: value {msg.value()!r} is not record {tag}/{i}")
        self.owner[where] = member.name
        member.pending[p] = off + 1


def pump(members, ledger, burst=500):
    """Polls every member once (up to `burst` records each), committing after processing."""
    got = 0
    for m in members:
        n = 0
        while n < burst:
            msg = m.consumer.poll(0.05 if n == 0 else 0)
            if msg is None:
                break
            ledger.record(m, msg)
            n += 1
        m.commit()
        got += n
    return got


def balanced(members, partitions, per_member):
    owned = [m.assignment for m in members]
    union = set().union(*owned)
    return all(len(a) == per_member for a in owned) and union == set(range(partitions)) \
        and sum(len(a) for a in owned) == partitions


def consume_until(members, ledger, total, what, seconds=240, need_balance=None):
    deadline = Deadline(seconds, what)
    while len(ledger.owner) < total or (need_balance and not balanced(members, *need_balance)):
        deadline.check()
        pump(members, ledger)
    check(len(ledger.owner) == total, f"{what}: consumed {len(ledger.owner)}, expected {total}")


def describe(members):
    return ", ".join(f"{m.name}={sorted(m.assignment)}" for m in members)


def phase_balance(args):
    topic, group, half = args.topic, args.group, args.records // 2
    create_topic(args.bootstrap, topic, PARTITIONS)
    tags = {where: ("bal", i) for where, i in
            produce(args.bootstrap, topic, "bal", 0, half, PARTITIONS).items()}
    ledger = Ledger(topic, tags)
    members = [Member(f"ck-member-{k}", args.bootstrap, group, topic) for k in range(3)]

    # Members join one by one while the first already consumes: rebalances under load.
    consume_until(members, ledger, half, "consuming the first half while 3 members join",
                  need_balance=(PARTITIONS, 2))
    stable = {m.name: frozenset(m.assignment) for m in members}

    tags.update({where: ("bal", i) for where, i in
                 produce(args.bootstrap, topic, "bal", half, args.records - half, PARTITIONS).items()})
    consume_until(members, ledger, args.records, "consuming the second half")
    check(balanced(members, PARTITIONS, 2), f"assignment changed while stable: {describe(members)}")
    for m in members:
        check(frozenset(m.assignment) == stable[m.name],
              f"{m.name}: assignment moved from {sorted(stable[m.name])} to {sorted(m.assignment)} without a membership change")
    # In the stable generation every record of a partition went to that partition's owner.
    for (p, off), who in ledger.owner.items():
        if tags[(p, off)][1] >= half:
            check(p in stable[who], f"{topic}[{p}]@{off} (second half) consumed by {who}, which owns {sorted(stable[who])}")

    # One member leaves; the other two must take over its partitions within the session timeout.
    victim, rest = members[-1], members[:-1]
    moved = set(victim.assignment)
    started = time.monotonic()
    victim.close()
    deadline = Deadline(SESSION_TIMEOUT_MS / 1000 * 4, f"waiting for {sorted(moved)} to move off {victim.name}")
    while not balanced(rest, PARTITIONS, 3):
        deadline.check()
        pump(rest, ledger)
    took = time.monotonic() - started
    check(took <= SESSION_TIMEOUT_MS / 1000,
          f"partitions {sorted(moved)} moved to the remaining members after {took:.1f}s, "
          f"expected within the session timeout ({SESSION_TIMEOUT_MS} ms): {describe(rest)}")

    extra = args.records_after_leave
    tags.update({where: ("bal", i) for where, i in
                 produce(args.bootstrap, topic, "bal", args.records, extra, PARTITIONS).items()})
    total = args.records + extra
    consume_until(rest, ledger, total, "consuming after the member left")
    for p in moved:
        taken = [who for (q, off), who in ledger.owner.items() if q == p and tags[(q, off)][1] >= args.records]
        check(len(taken) == extra // PARTITIONS and victim.name not in taken,
              f"{topic}[{p}] (moved off {victim.name}): {len(taken)} of {extra // PARTITIONS} new records "
              f"consumed by the remaining members")

    end = {p: 0 for p in range(PARTITIONS)}
    for (p, off) in tags:
        end[p] = max(end[p], off + 1)
    for m in rest:
        m.commit()
    committed = rest[0].consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)],
                                           timeout=CLIENT_TIMEOUT_S)
    for tp in committed:
        check(tp.error is None, f"committed({topic}[{tp.partition}]) error {tp.error}")
        check(tp.offset == end[tp.partition],
              f"{topic}[{tp.partition}]: committed offset {tp.offset}, expected the end {end[tp.partition]}")
    for m in rest:
        m.close()
    with open(args.state, "w") as f:
        json.dump({"topic": topic, "group": group, "end": end}, f)
    counts = {m.name: 0 for m in members}
    for who in ledger.owner.values():
        counts[who] += 1
    return (f"OK confluent-kafka group: {total} records consumed exactly once by 3 members "
            f"(2 partitions each when stable), {sorted(moved)} moved in {took:.1f}s after a member left, "
            f"offsets committed; records per member {counts}")


def phase_resume(args):
    with open(args.state) as f:
        state = json.load(f)
    topic, group = state["topic"], state["group"]
    end = {int(p): o for p, o in state["end"].items()}
    member = Member("ck-resumer", args.bootstrap, group, topic)
    try:
        committed = member.consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)],
                                              timeout=CLIENT_TIMEOUT_S)
        for tp in committed:
            check(tp.error is None, f"after restart: committed({topic}[{tp.partition}]) error {tp.error}")
            check(tp.offset == end[tp.partition],
                  f"after restart: {topic}[{tp.partition}] committed offset {tp.offset}, "
                  f"expected {end[tp.partition]} (committed before the restart)")
        delivered = produce(args.bootstrap, topic, "resume", 0, args.records_after_restart, PARTITIONS)
        for (p, off) in delivered:
            check(off >= end[p], f"after restart: new record landed at {topic}[{p}]@{off}, below the old end {end[p]}")
        ledger = Ledger(topic, {where: ("resume", i) for where, i in delivered.items()})
        first = {}
        deadline = Deadline(180, "consuming the records produced after the restart")
        while len(ledger.owner) < len(delivered):
            deadline.check()
            msg = member.consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error() is None:
                first.setdefault(msg.partition(), msg.offset())
                check((msg.partition(), msg.offset()) in ledger.tag_of,
                      f"after restart: redelivered {topic}[{msg.partition()}]@{msg.offset()} "
                      f"(committed offset {end[msg.partition()]})")
            ledger.record(member, msg)
        for p in range(PARTITIONS):
            check(first.get(p) == end[p],
                  f"after restart: {topic}[{p}] resumed at {first.get(p)}, expected the committed offset {end[p]}")
        member.commit()
    finally:
        member.consumer.close()
    return (f"OK confluent-kafka group resume: committed offsets survived the restart, "
            f"{len(delivered)} new records consumed and nothing redelivered")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--phase", choices=["balance", "resume"], required=True)
    ap.add_argument("--state", required=True, help="JSON file the balance phase writes for resume")
    ap.add_argument("--topic", default="ck-group")
    ap.add_argument("--group", default="ck-group-3")
    ap.add_argument("--records", type=int, default=60000)
    ap.add_argument("--records-after-leave", type=int, default=6000)
    ap.add_argument("--records-after-restart", type=int, default=600)
    args = ap.parse_args()
    return phase_balance(args) if args.phase == "balance" else phase_resume(args)


if __name__ == "__main__":
    run(main)
