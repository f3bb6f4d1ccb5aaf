"""kafka-python joins a group that a hostile raw member left behind (e.g. one that joined
with an absurd rebalance timeout and then went silent). The group must not be stuck: the
consumer gets an assignment within --deadline seconds, and DescribeGroups then shows the
group Stable with this consumer as its only member."""

import argparse
import time

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import TopicAlreadyExistsError

from strata_common import Deadline, check, run

TIMEOUT_MS = 60000
CLIENT_ID = "strata-tests-kp-joiner"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--deadline", type=float, default=45.0)
    args = ap.parse_args()

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=TIMEOUT_MS,
                             client_id=CLIENT_ID)
    try:
        try:
            admin.create_topics({args.topic: {"num_partitions": 2, "replication_factor": 1}},
                                timeout_ms=TIMEOUT_MS, wait_for_metadata=True)
        except TopicAlreadyExistsError:
            pass
        started = time.monotonic()
        consumer = KafkaConsumer(args.topic, bootstrap_servers=args.bootstrap, group_id=args.group,
                                 client_id=CLIENT_ID, enable_auto_commit=False,
                                 session_timeout_ms=10000, heartbeat_interval_ms=1000,
                                 request_timeout_ms=TIMEOUT_MS + 5000)
        try:
            deadline = Deadline(args.deadline, f"waiting for an assignment in group {args.group}")
            while not consumer.assignment():
                deadline.check()
                consumer.poll(timeout_ms=200)
            took = time.monotonic() - started
            check(len(consumer.assignment()) == 2,
                  f"the only live member got {sorted(consumer.assignment())}, expected both partitions")
            deadline = Deadline(30, f"waiting for {args.group} to describe as Stable")
            while True:
                desc = admin.describe_groups([args.group])[args.group]
                if desc.get("group_state") == "Stable":
                    break
                deadline.check()
                consumer.poll(timeout_ms=200)
            members = desc.get("members", [])
            check(len(members) == 1 and members[0].get("client_id") == CLIENT_ID,
                  f"{args.group}: described members {[m.get('client_id') for m in members]}, "
                  f"expected only {CLIENT_ID}")
        finally:
            consumer.close()
    finally:
        admin.close()
    return f"OK kafka-python joined {args.group} in {took:.1f}s; Stable with 1 member"


if __name__ == "__main__":
    run(main)
