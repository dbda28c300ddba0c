#!/usr/bin/env python3
"""The body of scripts/bench-peers: runs each case beside its baseline in one run and prints
a table. Every process it starts listens on loopback ports it picked, and is stopped at exit.
"""

import argparse
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
ATALAYA = ROOT / "target" / "release" / "atalaya"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
TOPIC = "home/kitchen/temperature"

processes = []
rows = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    sys.exit(f"bench-peers: nothing listens on port {port}")


def start(args, **kwargs):
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    process = subprocess.Popen(args, **kwargs)
    processes.append(process)
    return process


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_all():
    for process in processes:
        stop(process)


def rss_mib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def metric(text, name, labels=None):
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head != name and not head.startswith(name + "{"):
            continue
        if labels and not all(f'{k}="{v}"' in head for k, v in labels.items()):
            continue
        total += float(value)
    return total


# --- atalaya ------------------------------------------------------------------------------


class Atalaya:
    def __init__(self, work, config_extra, rules):
        self.work = pathlib.Path(work)
        self.port = free_port()
        (self.work / "rules").mkdir(parents=True, exist_ok=True)
        (self.work / "rules" / "bench.yaml").write_text(rules)
        config = self.work / "atalaya.yaml"
        config.write_text(
            f'http: {{listen: "127.0.0.1:{self.port}"}}\n'
            f'state: {{dir: "{self.work}/data"}}\n'
            f'rules: {{dir: "{self.work}/rules"}}\n'
            "log: {level: warn}\n"
            "receivers: {console: {events: false}}\n" + config_extra
        )
        self.log = open(self.work / "atalaya.log", "wb")
        self.process = start(
            [str(ATALAYA), "run", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=self.log
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                http_get(f"http://127.0.0.1:{self.port}/readyz", timeout=1)
                return
            except Exception:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        sys.exit(f"bench-peers: atalaya did not get ready; see {self.work}/atalaya.log")

    def metrics(self):
        return http_get(f"http://127.0.0.1:{self.port}/metrics")

    def rss(self):
        return rss_mib(self.process.pid)

    def stop(self):
        stop(self.process)
        self.log.close()


# --- MQTT ---------------------------------------------------------------------------------


def mosquitto(work):
    port = free_port()
    conf = pathlib.Path(work) / "mosquitto.conf"
    # No broker-side queue limit: what is measured is what the subscriber takes.
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        "max_queued_messages 0\nmax_inflight_messages 1000\n"
    )
    start([MOSQUITTO, "-c", str(conf)])
    wait_port(port)
    return port


def burst_file(work, n):
    """`n` zigbee2mqtt-like readings; one in 13 is above 70, so a threshold rule at 70 fires
    and resolves on about 15 % of the messages (it flaps)."""
    path = pathlib.Path(work) / "burst.jsonl"
    with open(path, "w") as f:
        for i in range(n):
            temperature = 71.5 if i % 13 == 0 else 65.0 + (i % 5)
            f.write(f'{{"temperature":{temperature},"humidity":41,"linkquality":120}}\n')
    return path


def mqtt_packet(kind, body):
    """An MQTT 3.1.1 packet: fixed header with the remaining length, then `body`."""
    header = bytearray([kind])
    length = len(body)
    while True:
        byte, length = length % 128, length // 128
        header.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(header) + body


def mqtt_string(text):
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def publish_burst(port, path, qos):
    """Publishes every line of `path` to TOPIC at `qos` as fast as the broker takes them.
    (mosquitto_pub -l disconnects at the end of its input with QoS 1 messages still queued,
    so a QoS 1 burst through it arrives cut short.) QoS 1 keeps at most 20 000 messages
    unacknowledged, so packet ids are never reused while in flight."""
    sock = socket.create_connection(("127.0.0.1", port))
    client_id = f"bench-pub-{os.getpid()}-{random.randrange(1 << 30)}"
    connect = mqtt_string("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big")
    sock.sendall(mqtt_packet(0x10, connect + mqtt_string(client_id)))
    if sock.recv(4)[:1] != b"\x20":
        sys.exit("bench-peers: the broker refused the publisher")
    topic = mqtt_string(TOPIC)
    lines = pathlib.Path(path).read_bytes().splitlines()
    acked = [0]

    def read_acks():
        pending = b""
        while acked[0] < len(lines):
            data = sock.recv(65536)
            if not data:
                return
            pending += data
            whole = len(pending) // 4 * 4
            acked[0] += whole // 4
            pending = pending[whole:]

    reader = None
    if qos == 1:
        reader = threading.Thread(target=read_acks)
        reader.start()
    chunk = []
    for i, line in enumerate(lines):
        if qos == 0:
            chunk.append(mqtt_packet(0x30, topic + line))
        else:
            pkid = i % 65535 + 1
            chunk.append(mqtt_packet(0x32, topic + pkid.to_bytes(2, "big") + line))
        if len(chunk) == 1000:
            while qos == 1 and i - acked[0] > 20000:
                time.sleep(0.001)
            sock.sendall(b"".join(chunk))
            chunk = []
    sock.sendall(b"".join(chunk))
    if reader:
        reader.join()
    sock.sendall(b"\xe0\x00")
    sock.close()


def mosquitto_sub_rate(port, path, n, qos):
    sub = start(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", str(qos), "-t", TOPIC,
         "-C", str(n)],
    )
    time.sleep(0.5)
    began = time.monotonic()
    publish_burst(port, path, qos)
    try:
        sub.wait(120)
    except subprocess.TimeoutExpired:
        stop(sub)
        return None
    return n / (time.monotonic() - began)


def wait_counted(atalaya, n, counted, began, timeout=300):
    """Polls atalaya's metrics until `counted(metrics) >= n`, or until the count has not
    moved for 3 s. Returns (seconds from `began` to the last change, last count, peak RSS,
    last metrics)."""
    last, last_change, peak = -1.0, time.monotonic(), 0.0
    while True:
        text = atalaya.metrics()
        count = counted(text)
        peak = max(peak, atalaya.rss())
        now = time.monotonic()
        if count != last:
            last, last_change = count, now
        if count >= n or now - last_change > 3 or now - began > timeout:
            return last_change - began, count, peak, text
        time.sleep(0.005)


def mqtt_rules_flapping():
    return (
        "rules:\n"
        "  - name: kitchen_hot\n"
        f"    subject: {TOPIC}\n"
        "    value: data.temperature\n"
        "    condition: value > 70\n"
        "    annotations: {summary: 'Kitchen at {{ value }}'}\n"
    )


def mqtt_rules_hundred():
    """100 rules, 10 of which match the burst's topic."""
    lines = ["rules:"]
    for i in range(100):
        subject = TOPIC if i % 10 == 0 else f"home/room{i}/+sensor"
        lines += [
            f"  - name: r{i}",
            f"    subject: {subject}",
            "    value: data.temperature",
            f"    condition: value > {70 + i % 7}",
        ]
    return "\n".join(lines) + "\n"


def run_atalaya_mqtt(work, port, path, n, qos, rules):
    atalaya = Atalaya(
        work,
        "mqtt:\n"
        "  host: 127.0.0.1\n"
        f"  port: {port}\n"
        f"  client_id: bench-{qos}-{os.getpid()}-{random.randrange(1 << 30)}\n"
        "  clean_session: true\n"
        f"  subscriptions: [{{topic: '{TOPIC}', qos: {qos}}}]\n"
        "  max_inflight: 1000\n",
        rules,
    )
    try:
        time.sleep(0.5)
        began = time.monotonic()
        publisher = threading.Thread(target=publish_burst, args=(port, path, qos))
        publisher.start()
        seconds, count, peak, text = wait_counted(
            atalaya,
            n,
            lambda t: metric(t, "atalaya_connector_received_total", {"connector": "mqtt"}),
            began,
        )
        publisher.join()
        return {
            "rate": count / seconds if seconds > 0 else 0.0,
            "received": count,
            "dropped": metric(
                text, "atalaya_connector_errors_total", {"connector": "mqtt", "stage": "overflow"}
            ),
            "evaluated": metric(text, "atalaya_rule_evaluations_total"),
            "peak_rss": peak,
        }
    finally:
        atalaya.stop()


def bench_mqtt(args, work):
    n = args.n
    print(f"\nMQTT: a burst of {n} JSON messages on {TOPIC}", flush=True)
    port = mosquitto(work)
    path = burst_file(work, n)
    for qos in (0, 1):
        baseline = mosquitto_sub_rate(port, path, n, qos)
        cases = [("1 flapping threshold rule", mqtt_rules_flapping(), 0.9 if qos == 0 else 0.8)]
        if qos == 0:
            cases.append(("100 rules, 10 matching", mqtt_rules_hundred(), 0.7))
        for name, rules, goal in cases:
            sub = pathlib.Path(work) / f"qos{qos}-{len(rows)}"
            result = run_atalaya_mqtt(sub, port, path, n, qos, rules)
            ratio(
                f"MQTT QoS {qos}, {name}",
                result["rate"],
                baseline,
                f"mosquitto_sub -q {qos}",
                goal,
                f"received {result['received']:,.0f}/{n:,}, dropped {result['dropped']:,.0f}, "
                f"evaluations {result['evaluated']:,.0f}, peak RSS {result['peak_rss']:.0f} MiB",
            )


def ratio(case, ours, base, base_name, goal, note=""):
    """Prints and records one case: our msg/s, the baseline's, their ratio against the goal."""
    if not base:
        row(case, f"{ours:,.0f}/s", f"{base_name}: n/a", note)
        return
    r = ours / base
    verdict = "" if goal is None else (" ok" if r >= goal else f" (goal {goal}x)")
    row(case, f"{ours:,.0f}/s = {r:.2f}x{verdict}", f"{base_name} {base:,.0f}/s", note)


def row(case, figure, baseline="", note=""):
    rows.append((case, figure, baseline, note))
    print(f"  {case:<40} {figure:<22} {baseline:<34} {note}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=["mqtt", "nats", "storm", "footprint"])
    parser.add_argument("--node-red", action="store_true")
    parser.add_argument("--n", type=int, default=int(os.environ.get("BENCH_N", "200000")))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-peers-")
    try:
        for name, bench in PARTS:
            if args.only in (None, name):
                bench(args, work)
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)


PARTS = [("mqtt", bench_mqtt)]

if __name__ == "__main__":
    main()
