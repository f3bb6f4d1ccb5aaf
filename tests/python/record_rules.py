"""The record rules Kafka's broker applies to produced records, through real clients:
message.timestamp.before.max.ms / after.max.ms refuse CreateTime timestamps outside the
window with INVALID_TIMESTAMP (confluent-kafka and kafka-python), a changed window applies
at once, and a compacted topic refuses keyless records with INVALID_RECORD. Afterwards only
the accepted records can be read back."""

import argparse
import time

from confluent_kafka import KafkaError, Producer, Consumer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic)
from kafka import KafkaProducer
from kafka.errors import InvalidTimestampError

from strata_common import CLIENT_TIMEOUT_S, Deadline, check, run

WINDOW_TOPIC = "timestamp-window"
COMPACTED_TOPIC = "compacted-keys"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def produce_one(producer, topic, value, key=None, timestamp=0):
    """Produces one record and returns its delivery error (None when acknowledged)."""
    outcome = {}

    def report(err, msg):
        outcome["err"] = err
        outcome["offset"] = None if err else msg.offset()

    producer.produce(topic, value=value, key=key, timestamp=timestamp, on_delivery=report)
    deadline = Deadline(CLIENT_TIMEOUT_S, f"waiting for delivery of {value!r}")
    while "err" not in outcome:
        deadline.check()
        producer.poll(0.1)
    return outcome["err"]


def expect_refused(err, code, what):
    check(err is not None, f"{what}: acknowledged, expected error {code}")
    check(err.code() == code, f"{what}: expected error {code}, got {err}")


def read_values(bootstrap, topic, expected):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values = []
    deadline = Deadline(CLIENT_TIMEOUT_S, f"reading {expected} records of {topic}")
    try:
        while len(values) < expected:
            deadline.check()
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            values.append(msg.value())
        # Nothing beyond them: the high watermark is exactly the accepted count.
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=CLIENT_TIMEOUT_S)
        check((low, high) == (0, expected), f"{topic} watermarks {(low, high)}, expected (0, {expected})")
    finally:
        consumer.close()
    return values


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    args = parser.parse_args()

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    fs = admin.create_topics([
        NewTopic(WINDOW_TOPIC, num_partitions=1, replication_factor=1,
                 config={"message.timestamp.after.max.ms": str(60_000),
                         "message.timestamp.before.max.ms": str(DAY_MS)}),
        NewTopic(COMPACTED_TOPIC, num_partitions=1, replication_factor=1,
                 config={"cleanup.policy": "compact"}),
    ])
    for f in fs.values():
        f.result(CLIENT_TIMEOUT_S)

    # retries=0: a refused batch must come back as the broker's error, not be retried.
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 0, "retries": 0})
    now = int(time.time() * 1000)
    check(produce_one(producer, WINDOW_TOPIC, b"now", timestamp=now) is None, "a current timestamp was refused")
    expect_refused(produce_one(producer, WINDOW_TOPIC, b"hour-ahead", timestamp=now + HOUR_MS),
                   KafkaError.INVALID_TIMESTAMP, "a timestamp an hour ahead")
    expect_refused(produce_one(producer, WINDOW_TOPIC, b"two-days-old", timestamp=now - 2 * DAY_MS),
                   KafkaError.INVALID_TIMESTAMP, "a timestamp two days old")
    check(produce_one(producer, WINDOW_TOPIC, b"hour-old", timestamp=now - HOUR_MS) is None,
          "a timestamp an hour old was refused (inside before.max.ms)")

    # kafka-python sees the same refusal as its InvalidTimestampError.
    kp = KafkaProducer(bootstrap_servers=args.bootstrap, retries=0)
    try:
        kp.send(WINDOW_TOPIC, value=b"kp-ahead", timestamp_ms=now + HOUR_MS).get(timeout=CLIENT_TIMEOUT_S)
        check(False, "kafka-python: a timestamp an hour ahead was acknowledged")
    except InvalidTimestampError:
        pass
    kp.send(WINDOW_TOPIC, value=b"kp-now", timestamp_ms=int(time.time() * 1000)).get(timeout=CLIENT_TIMEOUT_S)
    kp.close()

    # Widening the window applies to the next produce.
    res = ConfigResource(ConfigResource.Type.TOPIC, WINDOW_TOPIC, incremental_configs=[
        ConfigEntry("message.timestamp.after.max.ms", str(2 * HOUR_MS),
                    incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(CLIENT_TIMEOUT_S)
    deadline = Deadline(CLIENT_TIMEOUT_S, "waiting for the widened window to apply")
    while True:
        err = produce_one(producer, WINDOW_TOPIC, b"hour-ahead-widened", timestamp=int(time.time() * 1000) + HOUR_MS)
        if err is None:
            break
        expect_refused(err, KafkaError.INVALID_TIMESTAMP, "before the widened window applied")
        deadline.check()
        time.sleep(0.1)

    # Compacted topic: a keyless record is INVALID_RECORD, a keyed one is stored.
    expect_refused(produce_one(producer, COMPACTED_TOPIC, b"no-key"), KafkaError.INVALID_RECORD,
                   "a keyless record on a compacted topic")
    check(produce_one(producer, COMPACTED_TOPIC, b"keyed", key=b"k") is None, "a keyed record was refused")
    producer.flush(CLIENT_TIMEOUT_S)

    window = read_values(args.bootstrap, WINDOW_TOPIC, 4)
    check(window[:3] == [b"now", b"hour-old", b"kp-now"], f"{WINDOW_TOPIC} holds {window}")
    check(window[3] == b"hour-ahead-widened", f"{WINDOW_TOPIC} holds {window}")
    compacted = read_values(args.bootstrap, COMPACTED_TOPIC, 1)
    check(compacted == [b"keyed"], f"{COMPACTED_TOPIC} holds {compacted}")
    return "OK record rules"


if __name__ == "__main__":
    run(main)
