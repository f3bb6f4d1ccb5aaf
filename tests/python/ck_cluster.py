"""confluent-kafka (librdkafka) against a Strata cluster: replicated topics, acks=all,
and reading back after a broker is lost.

Modes:
  create BOOTSTRAP TOPIC PARTITIONS RF      create the topic, wait until it has leaders
  describe BOOTSTRAP TOPIC                  print {"brokers": {id: rack}, "partitions":
                                            [{"partition", "leader", "replicas", "isr"}],
                                            "cluster_id"}
  produce BOOTSTRAP TOPIC TAG N ACKED_FILE  produce N records with acks=all (idempotent);
                                            append "partition offset index" of each acked
                                            record to ACKED_FILE; print the acked count
  verify BOOTSTRAP TOPIC ACKED_FILE         read every partition from the beginning; every
                                            acked record must be there, at its offset, once
  read-rack BOOTSTRAP TOPIC RACK N          read partition 0 from the start with client.rack=RACK
                                            until N records; print {"read": n}
  elect-preferred BOOTSTRAP TOPIC P         ElectLeaders (PREFERRED) for partition P; print
                                            {"result": "NONE" or the error's name}
  consume BOOTSTRAP TOPIC GROUP N           consume N records in GROUP (subscribe), commit
                                            them; print {"first": {partition: offset},
                                            "committed": {partition: offset}, "count"}
"""

import json
import sys

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from strata_common import CLIENT_TIMEOUT_S, Deadline, check, key_for, run, value_for


def describe(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(topic=topic, timeout=CLIENT_TIMEOUT_S)
    t = md.topics.get(topic)
    parts = []
    if t is not None and t.error is None:
        for p in sorted(t.partitions.values(), key=lambda p: p.id):
            parts.append({"partition": p.id, "leader": p.leader,
                          "replicas": list(p.replicas), "isr": list(p.isrs)})
    # librdkafka's BrokerMetadata has no rack; the test reads racks from its own config.
    return {"brokers": sorted(md.brokers.keys()), "partitions": parts,
            "cluster_id": md.cluster_id}


def create(bootstrap, topic, partitions, rf):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                            replication_factor=rf)])
    futures[topic].result(timeout=CLIENT_TIMEOUT_S)
    deadline = Deadline(CLIENT_TIMEOUT_S, f"waiting for {topic} to have leaders")
    while True:
        d = describe(bootstrap, topic)
        if len(d["partitions"]) == partitions and all(p["leader"] >= 0 for p in d["partitions"]):
            return d
        deadline.check()


def produce(bootstrap, topic, tag, n, acked_file):
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        # Ride out a leader failover: librdkafka retries NOT_LEADER and timeouts itself.
        "message.timeout.ms": 60000,
        "request.timeout.ms": 15000,
    })
    acked = []
    errors = []

    def on_delivery(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), int(msg.key().decode().rsplit("-", 1)[1])))
        else:
            errors.append(str(err))

    for i in range(n):
        while True:
            try:
                producer.produce(topic, key=key_for(tag, i), value=value_for(tag, i),
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(90)
    check(remaining == 0, f"{remaining} records still in flight after flush")
    with open(acked_file, "a") as f:
        for p, o, i in acked:
            f.write(f"{tag} {p} {o} {i}\n")
    return {"acked": len(acked), "errors": len(errors), "first_error": errors[:1]}


def verify(bootstrap, topic, acked_file):
    expected = {}
    with open(acked_file) as f:
        for line in f:
            tag, p, o, i = line.split()
            expected[(int(p), int(o))] = (tag, int(i))
    d = describe(bootstrap, topic)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "verify-unused",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    })
    parts = [p["partition"] for p in d["partitions"]]
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    seen = {}
    eof = set()
    deadline = Deadline(CLIENT_TIMEOUT_S * 2, f"reading {topic} back")
    while len(eof) < len(parts):
        deadline.check()
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == -191:  # _PARTITION_EOF
                eof.add(msg.partition())
                continue
            raise KafkaException(msg.error())
        key = (msg.partition(), msg.offset())
        check(key not in seen, f"offset {key} read twice")
        tag, i = msg.key().decode().rsplit("-key-", 1)
        seen[key] = (tag, int(i))
        check(msg.value() == value_for(tag, int(i)), f"record at {key} has the wrong value")
    consumer.close()
    missing = [k for k in expected if k not in seen]
    check(not missing, f"{len(missing)} acknowledged records are missing, e.g. {missing[:5]}")
    wrong = [k for k, v in expected.items() if seen.get(k) != v]
    check(not wrong, f"{len(wrong)} offsets hold another record than acknowledged, e.g. {wrong[:5]}")
    return {"acked": len(expected), "read": len(seen)}


def records(consumer, n, what):
    """The next n records the consumer polls, within the client deadline; errors raise."""
    deadline = Deadline(CLIENT_TIMEOUT_S * 2, what)
    got = 0
    while got < n:
        deadline.check()
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        got += 1
        yield msg


def consume(bootstrap, topic, group, n):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
    })
    consumer.subscribe([topic])
    first, last, count = {}, {}, 0
    for msg in records(consumer, n, f"consuming {n} records in group {group}"):
        first.setdefault(msg.partition(), msg.offset())
        last[msg.partition()] = msg.offset()
        count += 1
    committed = {p: o + 1 for p, o in last.items()}
    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in committed.items()],
                    asynchronous=False)
    consumer.close()
    return {"first": first, "committed": committed, "count": count}


def read_rack(bootstrap, topic, rack, n):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "read-rack-unused",
        "enable.auto.commit": False,
        "client.rack": rack,
        "topic.metadata.refresh.interval.ms": 1000,
    })
    consumer.assign([TopicPartition(topic, 0, 0)])
    read = 0
    for msg in records(consumer, n, f"reading {n} records of {topic} from rack {rack}"):
        check(msg.offset() == read, f"offset {msg.offset()} where {read} was next")
        read += 1
    consumer.close()
    return {"read": read}


def elect_preferred(bootstrap, topic, partition):
    from confluent_kafka import ElectionType
    admin = AdminClient({"bootstrap.servers": bootstrap})
    tp = TopicPartition(topic, partition)
    # (confluent-kafka 2.16's elect_leaders fails on any timeout keyword argument.)
    results = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(CLIENT_TIMEOUT_S)
    error = next(iter(results.values()), None)
    if error is None:
        return {"result": "NONE"}
    error = error.args[0] if isinstance(error, KafkaException) else error
    return {"result": error.name()}


def main():
    mode, bootstrap, topic = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "create":
        out = create(bootstrap, topic, int(sys.argv[4]), int(sys.argv[5]))
    elif mode == "describe":
        out = describe(bootstrap, topic)
    elif mode == "produce":
        out = produce(bootstrap, topic, sys.argv[4], int(sys.argv[5]), sys.argv[6])
    elif mode == "verify":
        out = verify(bootstrap, topic, sys.argv[4])
    elif mode == "read-rack":
        out = read_rack(bootstrap, topic, sys.argv[4], int(sys.argv[5]))
    elif mode == "elect-preferred":
        out = elect_preferred(bootstrap, topic, int(sys.argv[4]))
    elif mode == "consume":
        out = consume(bootstrap, topic, sys.argv[4], int(sys.argv[5]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    run(main)
