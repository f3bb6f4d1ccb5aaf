"""Shared helpers for the end-to-end client scripts: deterministic record contents,
deadlines, and failing loudly with one clear message."""

import sys
import time
import traceback

# Generous timeouts: the broker under test is usually a debug build on a shared 2-core box.
CLIENT_TIMEOUT_S = 60.0


class Mismatch(Exception):
    """A check against the expected data failed."""


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        raise Mismatch(message)


def key_for(tag, i):
    return f"{tag}-key-{i:08d}".encode()


def value_for(tag, i):
    # Mildly compressible, distinct per record, ~120 bytes.
    return (f"{tag}|{i:08d}|" + f"payload-{i % 97:02d}-" * 6).encode()


def headers_for(tag, i):
    return [("idx", str(i).encode()), ("tag", tag.encode())]


class Deadline:
    def __init__(self, seconds, what):
        self.end = time.monotonic() + seconds
        self.what = what

    def expired(self):
        return time.monotonic() >= self.end

    def check(self):
        if self.expired():
            raise Mismatch(f"deadline passed while {self.what}")


def run(main):
    """Run main(), turning Mismatch into a one-line failure and a non-zero exit."""
    try:
        summary = main()
    except Mismatch as e:
        fail(str(e))
    except Exception as e:  # noqa: BLE001 - a client error is a failure with its traceback
        traceback.print_exc()
        fail(f"client raised {type(e).__name__}: {e}")
    print(summary, flush=True)


def create_topics(bootstrap, topics, partitions):
    """Creates `topics` with confluent-kafka's admin client (imported here: the kafka-python
    scripts share this module without it)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 60000})
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics],
        request_timeout=CLIENT_TIMEOUT_S)
    for topic, fut in futures.items():
        try:
            fut.result(timeout=CLIENT_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - report any failure as a mismatch
            raise Mismatch(f"CreateTopics {topic} with {partitions} partitions failed: {e}")
