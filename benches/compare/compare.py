#!/usr/bin/env python3
"""Runs the same load against several Kafka-compatible brokers, alternating between them, and
prints a markdown table of medians.

Each run starts a FRESH broker process from the command given for it (placeholders: {port},
{dir} — a new empty temp dir), waits until it answers Metadata, creates a 1-partition topic,
has the group coordinator looked up once (see warm_group_coordinator), produces N records,
consumes them back from the beginning, then stops the broker with SIGTERM.
The broker's CPU seconds are read before and after each phase (the sum over its threads of the
scheduler's run time, /proc/<pid>/task/*/schedstat, in nanoseconds; utime+stime from
/proc/<pid>/stat, in 10 ms ticks, where a thread came or went during the phase), and its peak
RSS (VmHWM) at the end.

    .venv/bin/python benches/compare/compare.py \
        --broker "strata=target/release/strata --override log.dirs={dir} \
                  --override listeners=PLAINTEXT://127.0.0.1:{port} --override metrics.listener=" \
        --broker "peer=/path/to/peer --listener-url tcp://127.0.0.1:{port} ..." \
        --records 1000000 --sizes 100,1024 --acks 1,all --rounds 3

The client is the same for every broker; `--client` picks one of three drivers:
- python (default): confluent-kafka (librdkafka) in this process: one Producer (linger.ms=5,
  batch.size=1000000, no compression, delivery reports only on error) and one Consumer
  assigned to partition 0 at the beginning (no group join), librdkafka's default fetch sizes;
- kcat: the same librdkafka settings through kcat, run as a child (see kcat_env);
- strata-perf: our load tool as a child, batches of up to 1,000,000 bytes, 5 in flight.
The broker's CPU figures are its own: no client runs inside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GROUP_ID = "strata-compare"


@dataclass
class Run:
    broker: str
    size: int
    acks: str
    records: int
    produce_s: float
    consume_s: float
    cpu_produce_s: float
    cpu_consume_s: float
    peak_rss_mib: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stat_cpu_seconds(pid: int) -> float:
    """utime+stime of the whole process, exited threads included, in clock ticks (10 ms)."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


@dataclass
class CpuReading:
    threads: frozenset[str]
    run_ns: int  # sum of the live threads' run time (schedstat), exact to the nanosecond
    ticks_s: float  # /proc/<pid>/stat, coarse but counts exited threads

    @staticmethod
    def read(pid: int) -> "CpuReading":
        threads, run_ns = [], 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    run_ns += int(f.read().split()[0])
                threads.append(tid)
            except (OSError, ValueError, IndexError):
                pass  # the thread just exited
        return CpuReading(frozenset(threads), run_ns, stat_cpu_seconds(pid))

    def seconds_until(self, later: "CpuReading") -> float:
        """CPU seconds between two readings: exact when the same threads lived through both
        (a 1M x 100 B phase costs Strata well under 0.1 s, so 10 ms ticks would be a 10-20%
        error); from the ticks when a thread came or went, since an exited thread's run
        time leaves schedstat with it."""
        if self.threads == later.threads:
            return (later.run_ns - self.run_ns) / 1e9
        return later.ticks_s - self.ticks_s


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_until_serving(bootstrap: str, proc: subprocess.Popen, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    # Connection refused is expected until the broker listens: keep librdkafka quiet.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode} before serving")
        try:
            admin.list_topics(timeout=1)
            return
        except KafkaException as e:
            last = e
            time.sleep(0.05)
    raise RuntimeError(f"broker did not answer Metadata within {deadline_s}s: {last}")


@contextlib.contextmanager
def strata_broker(strata: str, overrides: list[str]):
    """A fresh Strata broker (a temporary log dir, a free port, `overrides` as `key=value`),
    serving before it is yielded as (bootstrap, pid); stopped with SIGTERM afterwards."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="strata-bench-") as data:
        argv = [strata, "--override", f"log.dirs={data}",
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}"]
        for override in overrides:
            argv += ["--override", override]
        with open(os.path.join(data, "broker.log"), "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_until_serving(f"127.0.0.1:{port}", proc, 60)
                yield f"127.0.0.1:{port}", proc.pid
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    futures[topic].result(timeout=30)
    # Wait until Metadata shows the partition with a leader.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=5)
        t = md.topics.get(topic)
        if t is not None and t.error is None and 0 in t.partitions and t.partitions[0].leader >= 0:
            return
        time.sleep(0.05)
    raise RuntimeError(f"topic {topic} has no leader after 30s")


def warm_group_coordinator(bootstrap: str) -> None:
    """librdkafka looks up the group coordinator as soon as a consumer with a group.id
    starts, even with assign() only; a broker may create its offsets topic on that first
    lookup (Kafka and Strata create the 50 partitions of __consumer_offsets then). That is a
    once-per-cluster cost, so it is paid here, before any CPU is measured."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.describe_consumer_groups([GROUP_ID])[GROUP_ID].result(timeout=30)
    except KafkaException:
        pass  # an unknown group is fine: the coordinator was found


def produce(bootstrap: str, topic: str, records: int, size: int, acks: str) -> float:
    errors: list[str] = []

    def on_error(err, _msg):
        if err is not None:
            errors.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "linger.ms": 5,
            "batch.size": 1000000,
            "compression.type": "none",
            "enable.idempotence": False,
            "queue.buffering.max.messages": 1000000,
            "queue.buffering.max.kbytes": 2097151,
            "delivery.report.only.error": True,
            "on_delivery": on_error,
        }
    )
    value = os.urandom(size)
    start = time.monotonic()
    for i in range(records):
        while True:
            try:
                producer.produce(topic, value, partition=0)
                break
            except BufferError:
                producer.poll(0.005)
        if i % 10000 == 0:
            producer.poll(0)
    left = producer.flush(300)
    elapsed = time.monotonic() - start
    if left or errors:
        raise RuntimeError(f"produce: {left} undelivered, {len(errors)} errors, first: {errors[:1]}")
    return elapsed


def consume(bootstrap: str, topic: str, records: int, deadline_s: float) -> float:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP_ID,
            "enable.auto.commit": False,
            # librdkafka's fetch sizes stay at their defaults (1 MiB a partition): with
            # 10 MiB the client itself stalled for ~0.5 s twice a run, whatever the broker.
            # Once its local queue passes queued.min.messages, librdkafka 2.x postpones the
            # next fetch by fetch.queue.backoff.ms (default 1000): a reader faster than the
            # backoff then idles most of the run (1M x 100 B: 5.7 s at the default, 0.8 s at 1).
            "fetch.queue.backoff.ms": 1,
        }
    )
    # Learn the leader first: librdkafka assigned a partition whose leader it does not know
    # yet retries its offset query on a 500 ms timer, which would dominate a short run.
    consumer.list_topics(topic, timeout=10)
    start = time.monotonic()
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = 0
    deadline = start + deadline_s
    try:
        while got < records:
            if time.monotonic() > deadline:
                raise RuntimeError(f"consume: {got} of {records} after {deadline_s}s")
            # consume() may wait for its full count until the timeout: ask for small batches
            # (a count of 10,000 stalled for the whole timeout once a run, whatever the broker)
            # and never for more than is left.
            for msg in consumer.consume(min(records - got, 1000), timeout=1):
                if msg.error() is not None:
                    raise RuntimeError(f"consume: {msg.error()}")
                got += 1
        elapsed = time.monotonic() - start
    finally:
        consumer.close()
    if got != records:
        raise RuntimeError(f"consume: read {got} records, produced {records}")
    return elapsed


def kcat_lines(size: int, records: int, directory: str) -> str:
    """A file of `records` lines of `size` random letters: kcat -l sends each line (without
    its newline) as one record value."""
    path = os.path.join(directory, f"lines-{size}-{records}")
    if not os.path.exists(path):
        line = "".join(random.choice(string.ascii_letters) for _ in range(size)) + "\n"
        with open(path, "w") as f:
            for _ in range(records // 10000):
                f.write(line * 10000)
            f.write(line * (records % 10000))
    return path


def kcat_env(work: str) -> dict[str, str]:
    """kcat linked at run time against the librdkafka that the confluent-kafka wheel carries,
    so that both clients are the same librdkafka. (Debian's kcat comes with librdkafka
    2.0.2, which cannot parse some brokers' ApiVersions v3 answers.)"""
    import confluent_kafka

    libs = os.path.join(os.path.dirname(os.path.dirname(confluent_kafka.__file__)), "confluent_kafka.libs")
    found = [f for f in os.listdir(libs) if f.startswith("librdkafka")] if os.path.isdir(libs) else []
    env = dict(os.environ)
    if found:
        link_dir = os.path.join(work, "librdkafka")
        os.makedirs(link_dir, exist_ok=True)
        link = os.path.join(link_dir, "librdkafka.so.1")
        if not os.path.exists(link):
            os.symlink(os.path.join(libs, found[0]), link)
        env["LD_LIBRARY_PATH"] = link_dir
    return env


def kcat_produce(bootstrap: str, topic: str, records: int, acks: str, lines: str, env: dict) -> float:
    argv = ["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", "0", "-l",
            "-X", f"acks={acks}", "-X", "linger.ms=5", "-X", "batch.size=1000000",
            "-X", "compression.codec=none", "-X", "enable.idempotence=false",
            "-X", "queue.buffering.max.messages=1000000", "-X", "queue.buffering.max.kbytes=2097151",
            lines]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, timeout=300, env=env)
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        raise RuntimeError(f"kcat -P exited {done.returncode}: {done.stderr[-500:]!r}")
    # Delivery is proven by the consume phase, which must read offsets 0..N-1. (The high
    # watermark is not checked here: one peer's ListOffsets(latest) lagged behind records
    # that Fetch already returned.)
    return elapsed


def kcat_consume(bootstrap: str, topic: str, records: int, env: dict) -> float:
    # fetch.queue.backoff.ms=1 as in `consume`: at librdkafka's default (1000) a reader that
    # falls behind a fast broker idles a whole second once its queue passes
    # queued.min.messages (1 to 3 runs in 5 took 1.5 s instead of 0.5 s, with either broker).
    argv = ["kcat", "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "beginning",
            "-X", "fetch.queue.backoff.ms=1", "-c", str(records), "-e", "-q", "-f", "%o\n"]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, timeout=300, env=env)
    elapsed = time.monotonic() - start
    offsets = done.stdout.split()
    if done.returncode != 0 or len(offsets) != records or offsets[-1] != str(records - 1).encode():
        raise RuntimeError(
            f"kcat -C exited {done.returncode} after {len(offsets)} of {records} records: "
            f"{done.stderr[-500:]!r}"
        )
    return elapsed


def pretouch(gib: float) -> None:
    """Writes `gib` GiB in a child process that then exits. On a VM whose free memory goes back
    to the host (free page reporting, virtio_balloon), the first touch of such memory is
    charged to whoever touches it and can dominate a broker's CPU; touching it just before the
    produce phase makes that phase's allocations (a broker's page cache or heap) mostly pages
    the guest already holds, as on a machine in steady state whose memory is all in use. The
    kernel reports freed memory to the host again after about two seconds, so this runs
    right before the phase, after the broker's setup. The same for every broker; 0 turns it
    off."""
    if gib > 0:
        code = f"b = b'\\x01' * {int(gib * 2**30)}"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def strata_perf_phase(argv: list[str], records: int) -> float:
    """Runs strata-perf and checks that it moved every record; its own report (throughput and
    request latency) goes to stderr for the log."""
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - start
    if done.returncode != 0 or f"{records} records" not in done.stdout:
        raise RuntimeError(f"{argv[1:3]} exited {done.returncode}: {done.stdout[-300:]!r} {done.stderr[-300:]!r}")
    print(done.stdout.strip(), file=sys.stderr)
    return elapsed


@dataclass
class Client:
    """One of the drivers. `phases` does the untimed setup and returns the two timed phases,
    each a callable that returns its wall-clock seconds."""

    kind: str
    work: str
    strata_perf: str

    def phases(self, bootstrap: str, topic: str, size: int, acks: str, records: int):
        if self.kind == "kcat":
            lines = kcat_lines(size, records, self.work)
            env = kcat_env(self.work)
            return (
                lambda: kcat_produce(bootstrap, topic, records, acks, lines, env),
                lambda: kcat_consume(bootstrap, topic, records, env),
            )
        if self.kind == "strata-perf":
            # The same batching as the librdkafka drivers: batches of up to 1,000,000 bytes,
            # 5 requests in flight.
            common = ["--bootstrap", bootstrap, "--topic", topic, "--records", str(records), "--quiet"]
            produce_argv = [self.strata_perf, "produce", *common, "--record-size", str(size),
                            "--acks", "-1" if acks == "all" else acks, "--batch-size", "1000000",
                            "--in-flight", "5"]
            consume_argv = [self.strata_perf, "consume", *common]
            return (
                lambda: strata_perf_phase(produce_argv, records),
                lambda: strata_perf_phase(consume_argv, records),
            )
        return (
            lambda: produce(bootstrap, topic, records, size, acks),
            lambda: consume(bootstrap, topic, records, 300),
        )


def one_run(
    name: str, command: str, size: int, acks: str, records: int, client: Client, pretouch_gib: float
) -> Run:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix=f"compare-{name}-") as data_dir:
        argv = shlex.split(command.format(port=port, dir=data_dir))
        log = open(os.path.join(data_dir, "broker.log"), "wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(bootstrap, proc, 60)
            topic = f"compare-{size}-{acks}"
            create_topic(bootstrap, topic)
            warm_group_coordinator(bootstrap)
            produce_phase, consume_phase = client.phases(bootstrap, topic, size, acks, records)
            pretouch(pretouch_gib)
            cpu0 = CpuReading.read(proc.pid)
            produce_s = produce_phase()
            cpu1 = CpuReading.read(proc.pid)
            consume_s = consume_phase()
            cpu2 = CpuReading.read(proc.pid)
            rss = peak_rss_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    return Run(
        name, size, acks, records, produce_s, consume_s, cpu0.seconds_until(cpu1), cpu1.seconds_until(cpu2), rss
    )


def table(runs: list[Run]) -> str:
    rows = [
        "| broker | records | acks | produce records/s | produce MB/s | consume records/s | "
        "consume MB/s | broker CPU s produce / consume | CPU s per GB (produce+consume) | peak RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    keys = []
    for r in runs:
        key = (r.size, r.acks, r.broker)
        if key not in keys:
            keys.append(key)
    for size, acks, broker in sorted(keys, key=lambda k: (k[0], k[1], keys.index(k))):
        sel = [r for r in runs if (r.size, r.acks, r.broker) == (size, acks, broker)]
        med = statistics.median
        n = sel[0].records
        gb = n * size / 1e9
        produce_s = med(r.produce_s for r in sel)
        consume_s = med(r.consume_s for r in sel)
        cpu_p = med(r.cpu_produce_s for r in sel)
        cpu_c = med(r.cpu_consume_s for r in sel)
        rows.append(
            f"| {broker} | {n:,} x {size} B | {acks} | {n / produce_s:,.0f} | {n * size / produce_s / 1e6:,.1f} "
            f"| {n / consume_s:,.0f} | {n * size / consume_s / 1e6:,.1f} | {cpu_p:.3f} / {cpu_c:.3f} "
            f"| {(cpu_p + cpu_c) / gb:.2f} | {med(r.peak_rss_mib for r in sel):,.0f} |"
        )
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", action="append", required=True, help="NAME=COMMAND with {port} and {dir}")
    ap.add_argument("--records", type=int, default=1000000)
    ap.add_argument("--sizes", default="100,1024")
    ap.add_argument("--acks", default="1,all")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--client", choices=["python", "kcat", "strata-perf"], default="python",
                    help="confluent-kafka in this process, kcat (librdkafka's C CLI) as a child, "
                    "or our own load tool as a child")
    ap.add_argument("--strata-perf", default="target/release/strata-perf",
                    help="the strata-perf binary (for --client strata-perf)")
    ap.add_argument("--pretouch-gib", type=float, default=0,
                    help="write this much memory in a child just before each produce phase (see pretouch)")
    ap.add_argument("--json", help="also write every run to this file")
    args = ap.parse_args()

    brokers = []
    for spec in args.broker:
        name, _, command = spec.partition("=")
        if not command:
            ap.error(f"--broker {spec!r}: expected NAME=COMMAND")
        brokers.append((name, command))

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="compare-work-") as work:
        client = Client(args.client, work, args.strata_perf)
        for size in (int(s) for s in args.sizes.split(",")):
            for acks in args.acks.split(","):
                for round_no in range(args.rounds):
                    # Alternate the order each round so that drift in the machine's speed does
                    # not always favour the same broker.
                    order = brokers if round_no % 2 == 0 else list(reversed(brokers))
                    for name, command in order:
                        run = one_run(
                            name, command, size, acks, args.records, client, args.pretouch_gib
                        )
                        runs.append(run)
                        print(
                            f"{name} {size}B acks={acks} round {round_no + 1}: produce {run.produce_s:.2f}s "
                            f"consume {run.consume_s:.2f}s cpu {run.cpu_produce_s:.3f}/{run.cpu_consume_s:.3f}s "
                            f"rss {run.peak_rss_mib:.0f} MiB",
                            file=sys.stderr,
                            flush=True,
                        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in runs], f, indent=1)
    print(f"client: {args.client}, {args.records:,} records a run, median of {args.rounds} rounds, "
          f"pretouch {args.pretouch_gib} GiB")
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
