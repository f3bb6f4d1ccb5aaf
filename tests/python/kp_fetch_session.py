"""kafka-python reads a topic of several partitions over an incremental fetch session
(KIP-227; kafka-python keeps one by default). --records records go in before the consumer
starts and as many while it reads, on two partitions at a time so that incremental answers
carry some partitions and leave the others out. Every record must arrive exactly once, in
offset order per partition, and the client's session handler must end up continuing a
session the broker opened: a session id, and an epoch past the first incremental fetches.
(kafka-python falls back to full fetches whenever the broker refuses, closes or
mis-answers a session, so reading everything alone would not show that.)"""

import argparse

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAlreadyExistsError

from strata_common import CLIENT_TIMEOUT_S, Deadline, check, run, value_for

TIMEOUT_MS = int(CLIENT_TIMEOUT_S * 1000)
CLIENT_ID = "strata-tests-kp-fetch-session"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--records", type=int, default=3000, help="before the consumer, and again while it reads")
    ap.add_argument("--deadline", type=float, default=90.0)
    args = ap.parse_args()
    partitions = args.partitions

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=TIMEOUT_MS,
                             client_id=CLIENT_ID)
    try:
        admin.create_topics({args.topic: {"num_partitions": partitions, "replication_factor": 1}},
                            timeout_ms=TIMEOUT_MS, wait_for_metadata=True)
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()

    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", client_id=CLIENT_ID,
                             request_timeout_ms=TIMEOUT_MS)
    sent = {}  # value -> partition

    def send(i, partition):
        value = value_for("session", i)
        sent[value] = partition
        producer.send(args.topic, value=value, partition=partition)

    for i in range(args.records):
        send(i, i % partitions)
    producer.flush(timeout=CLIENT_TIMEOUT_S)

    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, client_id=CLIENT_ID,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             fetch_max_wait_ms=200, enable_incremental_fetch_sessions=True,
                             request_timeout_ms=TIMEOUT_MS + 5000)
    received = {}  # value -> (partition, offset)
    next_offset = [0] * partitions
    try:
        consumer.assign([TopicPartition(args.topic, p) for p in range(partitions)])
        deadline = Deadline(args.deadline, f"reading {2 * args.records} records")
        produced_during = 0
        burst = max(1, args.records // 30)
        while len(received) < 2 * args.records:
            deadline.check()
            for tp, records in consumer.poll(timeout_ms=200).items():
                for r in records:
                    check(r.value not in received,
                          f"{r.value!r} delivered twice: at {received.get(r.value)} and {(tp.partition, r.offset)}")
                    check(r.offset == next_offset[tp.partition],
                          f"partition {tp.partition}: offset {r.offset}, expected {next_offset[tp.partition]}")
                    next_offset[tp.partition] = r.offset + 1
                    check(sent.get(r.value) == tp.partition,
                          f"{r.value!r} read from partition {tp.partition}, sent to {sent.get(r.value)}")
                    received[r.value] = (tp.partition, r.offset)
            if produced_during < args.records:
                # A burst on two neighbouring partitions; the others stay quiet meanwhile.
                pair = (produced_during // burst) % partitions
                for _ in range(min(burst, args.records - produced_during)):
                    i = args.records + produced_during
                    send(i, pair if produced_during % 2 == 0 else (pair + 1) % partitions)
                    produced_during += 1
                producer.flush(timeout=CLIENT_TIMEOUT_S)
        check(set(received) == set(sent), f"read {len(received)} of {len(sent)} records")

        handlers = consumer._fetcher._session_handlers
        check(len(handlers) == 1, f"expected one broker's session handler, found {len(handlers)}")
        metadata = next(iter(handlers.values())).next_metadata
        check(metadata.session_id != 0 and metadata.epoch >= 3,
              f"kafka-python is not continuing a fetch session: next fetch carries session "
              f"{metadata.session_id}, epoch {metadata.epoch}")
    finally:
        consumer.close()
        producer.close()
    return (f"OK kafka-python read {len(received)} records over fetch session {metadata.session_id} "
            f"(next epoch {metadata.epoch})")


if __name__ == "__main__":
    run(main)
