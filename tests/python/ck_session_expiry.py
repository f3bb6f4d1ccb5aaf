"""confluent-kafka: a group member that dies without a LeaveGroup (its process is killed
with SIGKILL) is expired by the coordinator after its session timeout, and its partitions
move to the surviving member: not before the session timeout could have passed, and not
long after it (heartbeat interval plus a rebalance)."""

import argparse
import os
import signal
import subprocess
import sys
import time

from ck_group_balance import Ledger, Member, create_topic, pump
from strata_common import Deadline, check, run

PARTITIONS = 4
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 1000
# After expiry the survivor learns of the rebalance on its next heartbeat, then joins and
# syncs; this is the slack allowed beyond the session timeout for that.
REBALANCE_SLACK_S = 4.0


def child(args):
    """The member that will be killed: joins, reports its assignment, then just polls."""
    member = Member("ck-doomed", args.bootstrap, args.group, args.topic)
    reported = None
    while True:
        member.consumer.poll(0.1)
        if member.assignment and member.assignment != reported:
            reported = set(member.assignment)
            print("ASSIGNED " + ",".join(str(p) for p in sorted(reported)), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", default="ck-expiry")
    ap.add_argument("--group", default="ck-expiry-group")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return "unreachable"

    create_topic(args.bootstrap, args.topic, PARTITIONS)
    survivor = Member("ck-survivor", args.bootstrap, args.group, args.topic)
    ledger = Ledger(args.topic, {})
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--bootstrap", args.bootstrap,
                             "--topic", args.topic, "--group", args.group, "--child"],
                            stdout=subprocess.PIPE)
    try:
        os.set_blocking(proc.stdout.fileno(), False)
        doomed, buf = set(), ""
        deadline = Deadline(60, "waiting for the survivor and the doomed member to split the partitions")
        # Both members hold partitions (the first member to join may briefly hold them all).
        while not (doomed and survivor.assignment
                   and len(survivor.assignment) == PARTITIONS - len(doomed)
                   and survivor.assignment.isdisjoint(doomed)):
            deadline.check()
            check(proc.poll() is None, f"the doomed member exited early with {proc.returncode}")
            pump([survivor], ledger)
            try:
                buf += os.read(proc.stdout.fileno(), 65536).decode()
            except BlockingIOError:
                pass
            lines = buf.split("\n")
            buf = lines.pop()
            for line in lines:
                if line.startswith("ASSIGNED "):
                    doomed = {int(p) for p in line.split()[1].split(",")}
        check(len(doomed) == PARTITIONS // 2, f"the doomed member owns {sorted(doomed)}, expected {PARTITIONS // 2}")

        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(timeout=30)
        limit = SESSION_TIMEOUT_MS / 1000 + REBALANCE_SLACK_S
        deadline = Deadline(limit * 3, f"waiting for {sorted(doomed)} to move to the survivor")
        while len(survivor.assignment) != PARTITIONS:
            deadline.check()
            pump([survivor], ledger)
        took = time.monotonic() - killed
        # The member heartbeated up to the kill, so it cannot have expired much earlier.
        check(took >= SESSION_TIMEOUT_MS / 1000 - HEARTBEAT_MS / 1000 - 0.5,
              f"the killed member's partitions moved after {took:.1f}s, before its session timeout "
              f"({SESSION_TIMEOUT_MS} ms) could have expired")
        check(took <= limit,
              f"the killed member's partitions moved after {took:.1f}s, expected within the session "
              f"timeout ({SESSION_TIMEOUT_MS} ms) plus {REBALANCE_SLACK_S}s for the rebalance")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        survivor.consumer.close()
    return f"OK confluent-kafka session expiry: partitions of a killed member moved after {took:.1f}s"


if __name__ == "__main__":
    run(main)
