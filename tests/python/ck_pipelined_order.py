"""Pipelined produce keeps order: a non-idempotent librdkafka producer with several
requests in flight writes numbered records to one partition; the log must hold them in
exactly the order sent (Kafka handles a connection's requests one at a time)."""

import argparse

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from strata_common import CLIENT_TIMEOUT_S, Deadline, check, run


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--records", type=int, default=20000)
    args = p.parse_args()
    topic = "pipelined-order"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(CLIENT_TIMEOUT_S)

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": False,
        "acks": "1",
        "max.in.flight.requests.per.connection": 5,
        "linger.ms": 0,
        "batch.num.messages": 20,  # many small requests, several in flight at once
    })
    failures = []
    for i in range(args.records):
        while True:
            try:
                producer.produce(topic, value=str(i).encode(), partition=0,
                                 on_delivery=lambda err, _m: err and failures.append(err))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    check(producer.flush(CLIENT_TIMEOUT_S) == 0, "producer did not flush")
    check(not failures, f"delivery failures: {failures[:3]}")

    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "pipelined-order-check",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen = []
    deadline = Deadline(CLIENT_TIMEOUT_S, "reading the records back")
    while len(seen) < args.records:
        deadline.check()
        for m in consumer.consume(1000, 1.0):
            check(m.error() is None, f"consume error: {m.error()}")
            seen.append(int(m.value()))
    consumer.close()
    out_of_order = sum(1 for a, b in zip(seen, seen[1:]) if b != a + 1)
    check(seen[0] == 0 and out_of_order == 0,
          f"{out_of_order} records out of order in the log (first {seen[:5]})")
    return f"OK pipelined order: {args.records} records in the order sent"


if __name__ == "__main__":
    run(main)
