"""confluent-kafka (librdkafka) against a secured listener.

usage: sec_ck.py MODE BOOTSTRAP CONFIG_JSON [ARGS...]
  roundtrip TOPIC        produce 20 records, consume them back (group per topic)
  authfail TOPIC         expect an authentication error and no delivery
  produce TOPIC          produce 5 records; print 'delivered N' or the error
  consume TOPIC GROUP    consume from the beginning; print 'consumed N' or the error
  scram-upsert USER PASSWORD MECHANISM   via AdminClient.alter_user_scram_credentials
  scram-delete USER MECHANISM
  scram-describe USER    print 'MECHANISM:ITERATIONS' per credential, or the error
  topics                 print the topic names Metadata shows
  txn-produce TOPIC TXN_ID  one transaction of 5 records; print 'committed N' or the error
CONFIG_JSON holds librdkafka settings (security.protocol, sasl.*, ssl.*)."""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from strata_common import CLIENT_TIMEOUT_S, Deadline, check, run, value_for

MECHANISMS = {
    "SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256,
    "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512,
}


def produce(conf, topic, count):
    errors = []
    delivered = []
    conf = dict(conf, **{"error_cb": errors.append, "message.timeout.ms": 20000})
    p = Producer(conf)

    def on_delivery(err, msg):
        if err is None:
            delivered.append(msg.offset())
        else:
            errors.append(err)

    for i in range(count):
        p.produce(topic, value_for(topic, i), key=str(i).encode(), on_delivery=on_delivery)
    remaining = p.flush(30)
    return delivered, errors, remaining


def consume(conf, topic, group, expected, seconds=CLIENT_TIMEOUT_S):
    errors = []
    conf = dict(
        conf,
        **{
            "group.id": group,
            "auto.offset.reset": "earliest",
            "error_cb": errors.append,
            "enable.auto.commit": False,
        },
    )
    c = Consumer(conf)
    c.subscribe([topic])
    values = []
    deadline = Deadline(seconds, f"consuming {expected} records from {topic}")
    try:
        while len(values) < expected and not deadline.expired():
            msg = c.poll(0.5)
            if msg is None:
                if errors and any(e.code() in FATAL for e in errors):
                    break
                continue
            if msg.error():
                errors.append(msg.error())
                if msg.error().code() in FATAL:
                    break
                continue
            values.append(msg.value())
    finally:
        c.close()
    return values, errors


FATAL = {
    KafkaError._AUTHENTICATION,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.SASL_AUTHENTICATION_FAILED,
}


def main():
    mode, bootstrap, conf_json, *args = sys.argv[1:]
    conf = dict(json.loads(conf_json), **{"bootstrap.servers": bootstrap})
    if mode == "roundtrip":
        (topic,) = args
        delivered, errors, remaining = produce(conf, topic, 20)
        check(len(delivered) == 20 and remaining == 0, f"delivered {len(delivered)}/20, errors {errors}")
        values, errors = consume(conf, topic, f"g-{topic}", 20)
        check(values == [value_for(topic, i) for i in range(20)], f"consumed {len(values)} records, errors {errors}")
        return f"roundtrip ok: 20 records on {topic}"
    if mode == "authfail":
        (topic,) = args
        errors = []
        p = Producer(dict(conf, **{"error_cb": errors.append, "message.timeout.ms": 5000}))
        delivered = []
        p.produce(topic, b"must not be written", on_delivery=lambda err, msg: delivered.append(err))
        deadline = Deadline(CLIENT_TIMEOUT_S, "waiting for an authentication error")
        while not any(e.code() == KafkaError._AUTHENTICATION for e in errors):
            deadline.check()
            p.poll(0.2)
        p.flush(10)
        check(all(err is not None for err in delivered), "a record was delivered without authentication")
        auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
        return f"authentication refused: {auth[0].str()}"
    if mode == "produce":
        (topic,) = args
        delivered, errors, _ = produce(conf, topic, 5)
        if errors:
            return "error " + ",".join(sorted({e.name() for e in errors}))
        return f"delivered {len(delivered)}"
    if mode == "txn-produce":
        topic, txn_id = args
        p = Producer(dict(conf, **{"transactional.id": txn_id, "message.timeout.ms": 20000}))
        try:
            p.init_transactions(CLIENT_TIMEOUT_S)
            p.begin_transaction()
            for i in range(5):
                p.produce(topic, value_for(topic, i), key=str(i).encode())
            p.commit_transaction(CLIENT_TIMEOUT_S)
        except KafkaException as e:
            return "error " + e.args[0].name()
        return "committed 5"
    if mode == "consume":
        topic, group = args
        values, errors = consume(conf, topic, group, 5, seconds=20)
        if errors:
            return "error " + ",".join(sorted({e.name() for e in errors}))
        return f"consumed {len(values)}"
    admin = AdminClient(conf)
    if mode == "scram-upsert":
        user, password, mechanism = args
        info = ScramCredentialInfo(MECHANISMS[mechanism], 4096)
        futures = admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(user, info, password.encode())]
        )
        futures[user].result(CLIENT_TIMEOUT_S)
        return f"upserted {user} {mechanism}"
    if mode == "scram-delete":
        user, mechanism = args
        futures = admin.alter_user_scram_credentials(
            [UserScramCredentialDeletion(user, MECHANISMS[mechanism])]
        )
        futures[user].result(CLIENT_TIMEOUT_S)
        return f"deleted {user} {mechanism}"
    if mode == "scram-describe":
        (user,) = args
        futures = admin.describe_user_scram_credentials([user])
        try:
            description = futures[user].result(CLIENT_TIMEOUT_S)
        except KafkaException as e:
            return f"error {e.args[0].name()}"
        infos = sorted(f"{i.mechanism.name}:{i.iterations}" for i in description.scram_credential_infos)
        return "credentials " + ",".join(infos)
    if mode == "topics":
        md = admin.list_topics(timeout=CLIENT_TIMEOUT_S)
        return "topics " + ",".join(sorted(t for t in md.topics if not t.startswith("__")))
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    run(main)
