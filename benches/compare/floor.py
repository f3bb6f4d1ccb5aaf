#!/usr/bin/env python3
"""The kernel's share: what moving the same bytes costs a server that does nothing else.

A disk-backed broker cannot avoid three pieces of kernel work for every byte: the copy out of
the socket on produce, the copy into the page cache (its log), and sending the bytes back out
on fetch. On loopback the receiving side's TCP processing also runs in the sender's context,
so a broker is charged for part of its client's receive as well. This script measures a
server process that does exactly that work and nothing more — no protocol, no CRC, no index,
no fsync — with the I/O pattern the comparison's client gives a broker:

- produce: the client streams N MiB in 1 MiB requests; the server reads each into one reused
  buffer, `pwrite`s it at the end of a file and answers 8 bytes (a Produce response);
- consume: the client asks for 1 MiB at a time (a Fetch), the server `sendfile`s the next
  1 MiB of that file, the client reads it all before asking again.

The server's CPU time (CLOCK_PROCESS_CPUTIME_ID, exact) for each phase is a lower bound for a
broker's CPU on the same load: compare it with `compare.py`'s "CPU s per GB". Same
`--pretouch-gib` meaning as there (written right before the produce phase).

    python3 benches/compare/floor.py --mib 100 --rounds 5 --pretouch-gib 3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CHUNK = 1 << 20


def recv_exactly(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ConnectionError("peer closed mid-chunk")
        got += n


def server(listener: socket.socket, directory: str, chunks: int, results: mp.Queue) -> None:
    conn, _ = listener.accept()
    path = os.path.join(directory, "segment")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    buf = memoryview(bytearray(CHUNK))
    one = memoryview(bytearray(1))
    try:
        recv_exactly(conn, one)  # the client is ready to produce
        start = time.process_time()
        for i in range(chunks):
            recv_exactly(conn, buf)
            os.pwrite(fd, buf, i * CHUNK)
            conn.sendall(b"\0" * 8)
        produced = time.process_time()
        recv_exactly(conn, one)  # ready to consume (not timed: the gap between the phases)
        consume_start = time.process_time()
        for i in range(chunks):
            recv_exactly(conn, one)  # the next "Fetch"
            offset, end = i * CHUNK, (i + 1) * CHUNK
            while offset < end:
                offset += os.sendfile(conn.fileno(), fd, offset, end - offset)
        consumed = time.process_time()
        results.put((produced - start, consumed - consume_start))
    finally:
        os.close(fd)
        os.unlink(path)
        conn.close()


def one_round(mib: int, pretouch_gib: float, directory: str) -> tuple[float, float]:
    chunks = mib
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    results: mp.Queue = mp.Queue()
    proc = mp.Process(target=server, args=(listener, directory, chunks, results))
    proc.start()
    client = socket.create_connection(listener.getsockname())
    data = b"x" * CHUNK
    acks = memoryview(bytearray(8 * chunks))
    if pretouch_gib > 0:
        subprocess.run([sys.executable, "-c", f"b = b'\\x01' * {int(pretouch_gib * 2**30)}"], check=True)
    client.sendall(b"p")
    for _ in range(chunks):
        client.sendall(data)
    recv_exactly(client, acks)
    client.sendall(b"c")
    buf = memoryview(bytearray(CHUNK))
    for _ in range(chunks):
        client.sendall(b"f")
        recv_exactly(client, buf)
    produce_s, consume_s = results.get(timeout=120)
    proc.join(30)
    client.close()
    listener.close()
    return produce_s, consume_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=100, help="MiB produced and consumed per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pretouch-gib", type=float, default=0)
    ap.add_argument("--dir", default=None, help="where the file goes (default: a temp dir)")
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="floor-", dir=args.dir) as directory:
        for _ in range(args.rounds):
            runs.append(one_round(args.mib, args.pretouch_gib, directory))
            print(f"produce {runs[-1][0]:.4f} s, consume {runs[-1][1]:.4f} s", file=sys.stderr)
    gb = args.mib * CHUNK / 1e9
    produce = statistics.median(r[0] for r in runs)
    consume = statistics.median(r[1] for r in runs)
    print(
        f"{args.mib} MiB in 1 MiB requests, median of {args.rounds}: server CPU produce {produce:.4f} s, "
        f"consume {consume:.4f} s, {(produce + consume) / gb:.2f} s per GB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
