"""kafka-python consumer group with manual commits, inspected with KafkaAdminClient:
list_groups (with and without a state filter), describe_groups (state, members, decoded
assignment), list_group_offsets (offsets and commit metadata strings exactly as committed),
delete_group_offsets, and delete_groups (NON_EMPTY_GROUP while a member is in it, then OK
once it is empty, GROUP_ID_NOT_FOUND for a group that does not exist)."""

import argparse

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import NoError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from strata_common import Deadline, check, key_for, run, value_for

TIMEOUT_MS = 60000
PARTITIONS = 3
CLIENT_ID = "strata-tests-kp-group"


def assigned_partitions(assignment):
    """Partitions of a described member's assignment, whatever shape kafka-python decoded it to."""
    if assignment is None:
        return []
    if hasattr(assignment, "partitions") and callable(assignment.partitions):
        return sorted((tp.topic, tp.partition) for tp in assignment.partitions())
    if isinstance(assignment, dict):
        out = []
        for entry in assignment.get("assigned_partitions", []):
            if isinstance(entry, dict):
                out.extend((entry["topic"], p) for p in entry["partitions"])
            else:
                topic, parts = entry
                out.extend((topic, p) for p in parts)
        return sorted(out)
    raise AssertionError(f"cannot read an assignment from {assignment!r}")


def group_ids(groups):
    return {g["group_id"] for g in groups}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", default="kp-group")
    ap.add_argument("--group", default="kp-group-manual")
    ap.add_argument("--records", type=int, default=900)
    args = ap.parse_args()
    topic, group = args.topic, args.group
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=TIMEOUT_MS,
                             client_id=CLIENT_ID)
    try:
        try:
            admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}},
                                timeout_ms=TIMEOUT_MS, wait_for_metadata=True)
        except TopicAlreadyExistsError:
            pass
        producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all",
                                 request_timeout_ms=TIMEOUT_MS, max_block_ms=TIMEOUT_MS)
        try:
            for i in range(args.records):
                producer.send(topic, key=key_for("kpg", i), value=value_for("kpg", i),
                              partition=i % PARTITIONS)
            producer.flush(timeout=TIMEOUT_MS / 1000)
        finally:
            producer.close(timeout=30)
        per_partition = args.records // PARTITIONS

        consumer = KafkaConsumer(topic, bootstrap_servers=args.bootstrap, group_id=group,
                                 client_id=CLIENT_ID, enable_auto_commit=False,
                                 auto_offset_reset="earliest", session_timeout_ms=10000,
                                 heartbeat_interval_ms=1000, request_timeout_ms=TIMEOUT_MS + 5000)
        closed = False
        try:
            seen = set()
            deadline = Deadline(120, f"consuming {topic} in group {group}")
            while len(seen) < args.records:
                deadline.check()
                for tp, records in consumer.poll(timeout_ms=500).items():
                    for rec in records:
                        where = (tp.partition, rec.offset)
                        check(where not in seen, f"{topic}[{tp.partition}]@{rec.offset} delivered twice")
                        seen.add(where)
            check(set(consumer.assignment()) == set(tps),
                  f"the only member owns {sorted(consumer.assignment())}, expected all of {tps}")

            # Plain commit of the positions, then explicit commits carrying metadata strings.
            consumer.commit()
            offsets = admin.list_group_offsets(group).get(group, {})
            check({tp: om.offset for tp, om in offsets.items()} == {tp: per_partition for tp in tps},
                  f"list_group_offsets after commit() = {offsets}, expected {per_partition} for each of {tps}")
            wanted = {
                tps[0]: OffsetAndMetadata(per_partition, "first: processed all", -1),
                tps[1]: OffsetAndMetadata(per_partition // 2, "half-way \u00fcnic\u00f8de \u2713", -1),
                tps[2]: OffsetAndMetadata(7, "", -1),
            }
            consumer.commit(wanted)
            offsets = admin.list_group_offsets(group).get(group, {})
            got = {tp: (om.offset, om.metadata) for tp, om in offsets.items()}
            want = {tp: (om.offset, om.metadata) for tp, om in wanted.items()}
            check(got == want, f"list_group_offsets = {got}, expected exactly what was committed {want}")
            for tp, om in wanted.items():
                committed = consumer.committed(tp, metadata=True)
                check(committed is not None and (committed.offset, committed.metadata) == (om.offset, om.metadata),
                      f"consumer.committed({tp}) = {committed}, expected {om}")

            listed = admin.list_groups()
            mine = [g for g in listed if g["group_id"] == group]
            check(len(mine) == 1, f"list_groups() = {listed}, expected {group} once")
            check(mine[0].get("protocol_type") == "consumer",
                  f"list_groups(): {group} has protocol type {mine[0].get('protocol_type')!r}, expected 'consumer'")
            check(group in group_ids(admin.list_groups(states_filter=["Stable"])),
                  f"list_groups(states_filter=['Stable']) misses {group}")
            check(group not in group_ids(admin.list_groups(states_filter=["Empty"])),
                  f"list_groups(states_filter=['Empty']) lists the stable group {group}")

            desc = admin.describe_groups([group])[group]
            check(desc.get("error") is None, f"describe_groups({group}) error {desc.get('error')}")
            check(desc.get("group_state") == "Stable", f"{group}: state {desc.get('group_state')!r}, expected 'Stable'")
            check(desc.get("protocol_type") == "consumer", f"{group}: protocol type {desc.get('protocol_type')!r}")
            check(desc.get("protocol_data") in ("range", "roundrobin"),
                  f"{group}: protocol {desc.get('protocol_data')!r}, expected one kafka-python offered (range/roundrobin)")
            members = desc.get("members", [])
            check(len(members) == 1, f"{group}: {len(members)} members described, expected 1: {members}")
            member = members[0]
            check(member.get("client_id") == CLIENT_ID, f"{group}: member client id {member.get('client_id')!r}")
            check(member.get("member_id", "").startswith(CLIENT_ID),
                  f"{group}: member id {member.get('member_id')!r} should start with the client id")
            parts = assigned_partitions(member.get("member_assignment"))
            check(parts == [(topic, p) for p in range(PARTITIONS)],
                  f"{group}: described assignment {parts}, expected all {PARTITIONS} partitions of {topic}")

            result = admin.delete_groups([group])
            check(result.get(group) == "NonEmptyGroupError",
                  f"delete_groups([{group}]) with a live member = {result}, expected NonEmptyGroupError")

            consumer.close()  # LeaveGroup: the group becomes Empty, offsets stay
            closed = True
        finally:
            if not closed:
                consumer.close()

        deadline = Deadline(30, f"waiting for {group} to become Empty")
        while True:
            desc = admin.describe_groups([group])[group]
            if desc.get("group_state") == "Empty":
                break
            deadline.check()
        check(desc.get("members") == [], f"{group}: empty group still describes members {desc.get('members')}")
        check(group in group_ids(admin.list_groups(states_filter=["Empty"])),
              f"list_groups(states_filter=['Empty']) misses the empty group {group}")
        offsets = admin.list_group_offsets(group).get(group, {})
        check({tp: (om.offset, om.metadata) for tp, om in offsets.items()} == want,
              f"offsets of the empty group changed to {offsets}")

        # OffsetDelete on an empty group removes just that partition's offset.
        deleted = admin.delete_group_offsets(group, [tps[2]])
        check(set(deleted) == {tps[2]} and deleted[tps[2]] is NoError,
              f"delete_group_offsets({group}, [{tps[2]}]) = {deleted}, expected NoError for {tps[2]}")
        offsets = admin.list_group_offsets(group).get(group, {})
        want.pop(tps[2])
        check({tp: (om.offset, om.metadata) for tp, om in offsets.items() if om.offset >= 0} == want,
              f"after delete_group_offsets of {tps[2]}: offsets {offsets}, expected {want}")

        result = admin.delete_groups([group])
        check(result.get(group) == "OK", f"delete_groups([{group}]) of the empty group = {result}, expected OK")
        check(group not in group_ids(admin.list_groups()), f"list_groups() still lists the deleted group {group}")
        offsets = admin.list_group_offsets(group).get(group, {})
        check(all(om.offset < 0 for om in offsets.values()),
              f"the deleted group {group} still has committed offsets {offsets}")
        desc = admin.describe_groups([group])[group]
        check(desc.get("group_state") == "Dead", f"deleted group described in state {desc.get('group_state')!r}, expected 'Dead'")
        result = admin.delete_groups(["kp-group-never-existed"])
        check(result.get("kp-group-never-existed") == "GroupIdNotFoundError",
              f"delete_groups of an unknown group = {result}, expected GroupIdNotFoundError")
    finally:
        admin.close()
    return (f"OK kafka-python group: {args.records} records, manual commits with metadata, "
            f"list/describe/list_group_offsets/delete_group_offsets/delete_groups as Kafka answers")


if __name__ == "__main__":
    run(main)
