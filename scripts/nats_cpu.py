#!/usr/bin/env python3
"""atalaya's CPU per NATS core message, for profiling (not a ratio: see scripts/bench-peers).

Starts nats-server and atalaya (bench-peers' config: console events off, R rules on the
subject `bench` that never fire) on free loopback ports, then writes N messages through a raw
socket speaking the NATS protocol (PUB lines, so the publisher costs next to nothing), and
prints atalaya's rate and its CPU seconds per message (utime + stime from /proc). With
`--perf FILE`, `perf record --call-graph dwarf` samples atalaya meanwhile.

Usage: python3 scripts/nats_cpu.py [--messages N] [--rules R] [--perf FILE] [BINARY]
"""

import argparse
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_peers import ATALAYA, NATS_SERVER, free_port, metric, start, stop_all, wait_port, write_config  # noqa: E402

RECEIVED = ("atalaya_connector_received_total", {"connector": "nats"})


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def received(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return metric(text, *RECEIVED) or 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2_000_000)
    parser.add_argument("--rules", type=int, default=1)
    parser.add_argument("--perf", metavar="FILE")
    parser.add_argument("binary", nargs="?", default=str(ATALAYA))
    args = parser.parse_args()
    n = args.messages - args.messages % 1000
    work = tempfile.mkdtemp(prefix="atalaya-nats-cpu-")
    nats_port = free_port()
    start([NATS_SERVER, "-a", "127.0.0.1", "-p", str(nats_port)])
    wait_port(nats_port)
    rules = "rules:\n" + "".join(
        f"  - {{name: r{i}, subject: bench, condition: value > {n + i}}}\n" for i in range(args.rules)
    )
    http = free_port()
    config = write_config(
        pathlib.Path(work),
        http,
        f'nats:\n  servers: ["nats://127.0.0.1:{nats_port}"]\n'
        f"  subscriptions: [{{subject: bench}}]\n  max_pending: {n}\n",
        rules,
    )
    atalaya = start([args.binary, "run", "-c", str(config)])
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http}/readyz", timeout=1)
            break
        except Exception:
            if time.monotonic() > deadline or atalaya.poll() is not None:
                sys.exit("nats_cpu: atalaya did not get ready")
            time.sleep(0.05)
    perf = None
    if args.perf:
        perf = subprocess.Popen(
            ["perf", "record", "-F", "2000", "--call-graph", "dwarf,16384", "-o", args.perf, "-p", str(atalaya.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
    cpu_before = cpu_seconds(atalaya.pid)
    before = received(http)
    chunk = b"".join(b"PUB bench %d\r\n%d\r\n" % (len(str(i)), i) for i in range(1000))
    with socket.create_connection(("127.0.0.1", nats_port)) as publisher:
        publisher.recv(4096)
        publisher.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        began = time.monotonic()
        for _ in range(n // 1000):
            publisher.sendall(chunk)
        publisher.sendall(b"PING\r\n")
        while b"PONG" not in publisher.recv(4096):
            pass
        published = time.monotonic() - began
        while (got := received(http) - before) < n:
            time.sleep(0.005)
        took = time.monotonic() - began
    cpu = cpu_seconds(atalaya.pid) - cpu_before
    if perf:
        perf.send_signal(2)
        perf.wait()
    print(
        f"{n} messages published in {published:.2f} s; atalaya received {got:.0f} in {took:.2f} s "
        f"= {got / took:,.0f} msg/s, {cpu:.2f} s of CPU = {cpu / n * 1e6:.2f} us per message"
    )
    stop_all()


if __name__ == "__main__":
    main()
