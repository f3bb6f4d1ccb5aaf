"""confluent-kafka static membership (KIP-345): two members with group.instance.id share a
4-partition topic. One closes (librdkafka sends no LeaveGroup for a static member) and a
new consumer with the same group.instance.id comes back within the session timeout: it
must get the same partitions back without a rebalance, so the other member sees no
revoke/assign callback, keeps its member id and its assignment, and the returning member
resumes from the committed offsets (every record consumed exactly once)."""

import argparse
import time

from confluent_kafka.admin import AdminClient

from ck_group_balance import Ledger, Member, balanced, create_topic, describe, produce, pump
from strata_common import CLIENT_TIMEOUT_S, Deadline, check, run

PARTITIONS = 4
# Long enough that the restart below always fits inside it, short enough for a test.
SESSION_TIMEOUT_MS = 30000
HEARTBEAT_MS = 1000
# After the restart, the other member keeps polling this long; a rebalance would reach it
# on its next heartbeat, so several heartbeat intervals are enough to see one.
OBSERVE_S = 4 * HEARTBEAT_MS / 1000


def static_member(name, instance_id, args):
    return Member(name, args.bootstrap, args.group, args.topic,
                  extra={"group.instance.id": instance_id, "session.timeout.ms": SESSION_TIMEOUT_MS,
                         "heartbeat.interval.ms": HEARTBEAT_MS})


def described_instances(bootstrap, group):
    """group.instance.id of each member, as DescribeGroups reports them."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 60000})
    futures = admin.describe_consumer_groups([group], request_timeout=CLIENT_TIMEOUT_S)
    desc = futures[group].result(timeout=CLIENT_TIMEOUT_S)
    return desc, sorted(m.group_instance_id or "" for m in desc.members)


def consume_until(members, ledger, total, what, seconds=120):
    deadline = Deadline(seconds, what)
    while len(ledger.owner) < total or not balanced(members, PARTITIONS, 2):
        deadline.check()
        pump(members, ledger)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", default="ck-static")
    ap.add_argument("--group", default="ck-static-group")
    ap.add_argument("--records", type=int, default=400)
    args = ap.parse_args()
    create_topic(args.bootstrap, args.topic, PARTITIONS)
    tags = {w: ("static", i) for w, i in
            produce(args.bootstrap, args.topic, "static", 0, args.records, PARTITIONS).items()}
    ledger = Ledger(args.topic, tags)

    a = static_member("ck-static-a", "static-a", args)
    b = static_member("ck-static-b", "static-b", args)
    consume_until([a, b], ledger, args.records, "two static members consuming and balancing")
    for m in (a, b):
        m.commit()
    desc, instances = described_instances(args.bootstrap, args.group)
    check(instances == ["static-a", "static-b"],
          f"DescribeGroups lists group.instance.ids {instances}, expected ['static-a', 'static-b']")
    check(str(desc.state).upper().endswith("STABLE"), f"group state {desc.state}, expected Stable")

    a_member_id, a_assigns, a_revokes = a.consumer.memberid(), a.assigns, a.revokes
    a_assignment = set(a.assignment)
    b_member_id, b_assignment = b.consumer.memberid(), set(b.assignment)

    # Static member "restarts": close (no LeaveGroup) and come back with the same instance id.
    started = time.monotonic()
    b.consumer.close()
    b2 = static_member("ck-static-b2", "static-b", args)
    deadline = Deadline(SESSION_TIMEOUT_MS / 1000, "waiting for the returning static member's assignment")
    while not b2.assignment:
        deadline.check()
        pump([a, b2], ledger)
    took = time.monotonic() - started
    check(b2.assignment == b_assignment,
          f"the returning static member got {sorted(b2.assignment)}, expected its old {sorted(b_assignment)}")
    check(b2.consumer.memberid() != b_member_id,
          f"the returning static member kept member id {b_member_id}; the coordinator should assign a new one")

    more = {w: ("static", i) for w, i in
            produce(args.bootstrap, args.topic, "static", args.records, args.records, PARTITIONS).items()}
    tags.update(more)
    consume_until([a, b2], ledger, 2 * args.records, "consuming after the static member returned")
    for (p, off), i in more.items():
        who = ledger.owner[(p, off)]
        check((who == a.name) == (p in a_assignment),
              f"{args.topic}[{p}]@{off} consumed by {who}; {a.name} owns {sorted(a_assignment)}")
    observe = Deadline(OBSERVE_S, "observing")
    while not observe.expired():
        pump([a, b2], ledger)

    check(a.consumer.memberid() == a_member_id,
          f"{a.name}: member id changed from {a_member_id} to {a.consumer.memberid()} (it rejoined)")
    check(a.assigns == a_assigns and a.revokes == a_revokes,
          f"{a.name}: saw {a.assigns - a_assigns} assign and {a.revokes - a_revokes} revoke callbacks "
          f"after the static member restarted; expected none (no rebalance)")
    check(a.assignment == a_assignment, f"{a.name}: assignment moved to {sorted(a.assignment)}")
    check(b2.assigns == 1 and b2.revokes == 0,
          f"{b2.name}: {b2.assigns} assigns, {b2.revokes} revokes; expected exactly one assignment")
    check(len(ledger.owner) == 2 * args.records,
          f"consumed {len(ledger.owner)} records, expected {2 * args.records}: {describe([a, b2])}")
    for m in (a, b2):
        m.close()
    return (f"OK confluent-kafka static membership: member returned in {took:.1f}s with "
            f"{sorted(b_assignment)}, no rebalance, {2 * args.records} records exactly once")


if __name__ == "__main__":
    run(main)
