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
# ATALAYA_BIN measures another build (e.g. target/dist/atalaya); the NATS bench honours it too.
ATALAYA = pathlib.Path(os.environ.get("ATALAYA_BIN") or ROOT / "target" / "release" / "atalaya")
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


# The one rule atalaya idles with when its footprint is measured (and its start-up traced).
IDLE_RULES = "rules:\n  - {name: idle, subject: a/b, condition: value > 1}\n"


def write_config(work, port, config_extra, rules):
    """atalaya's config file (and rules directory) under work, serving on port; its path."""
    (work / "rules").mkdir(parents=True, exist_ok=True)
    (work / "rules" / "bench.yaml").write_text(rules)
    config = work / "atalaya.yaml"
    config.write_text(
        f'http: {{listen: "127.0.0.1:{port}"}}\n'
        f'state: {{dir: "{work}/data"}}\n'
        f'rules: {{dir: "{work}/rules"}}\n'
        "log: {level: warn}\n"
        "receivers: {console: {events: false}}\n" + config_extra
    )
    return config


class Atalaya:
    def __init__(self, work, config_extra, rules, binary=None):
        self.work = pathlib.Path(work)
        self.port = free_port()
        config = write_config(self.work, self.port, config_extra, rules)
        self.log = open(self.work / "atalaya.log", "wb")
        self.process = start(
            [str(binary or ATALAYA), "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
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


def run_atalaya_mqtt(work, port, path, n, qos, rules, matching):
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
        # Done when every message was evaluated by every rule it matches.
        seconds, evaluated, peak, text = wait_counted(
            atalaya,
            n * matching,
            lambda t: metric(t, "atalaya_rule_evaluations_total"),
            began,
        )
        count = metric(text, "atalaya_connector_received_total", {"connector": "mqtt"})
        publisher.join()
        return {
            "rate": evaluated / matching / seconds if seconds > 0 else 0.0,
            "received": count,
            "dropped": metric(
                text, "atalaya_connector_errors_total", {"connector": "mqtt", "stage": "overflow"}
            ),
            "evaluated": evaluated,
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
        cases = [("1 flapping threshold rule", mqtt_rules_flapping(), 1, 0.9 if qos == 0 else 0.8)]
        if qos == 0:
            cases.append(("100 rules, 10 matching", mqtt_rules_hundred(), 10, 0.7))
        for name, rules, matching, goal in cases:
            sub = pathlib.Path(work) / f"qos{qos}-{len(rows)}"
            result = run_atalaya_mqtt(sub, port, path, n, qos, rules, matching)
            ratio(
                f"MQTT QoS {qos}, {name}",
                result["rate"],
                baseline,
                f"mosquitto_sub -q {qos}",
                goal,
                f"received {result['received']:,.0f}/{n:,}, dropped {result['dropped']:,.0f}, "
                f"evaluations {result['evaluated']:,.0f}, peak RSS {result['peak_rss']:.0f} MiB",
            )


# --- Node-RED: the same burst through mqtt in -> json -> function ----------------------------

NODE_RED_DIR = ROOT / "target" / "bench" / "node-red"


def install_node_red():
    """Node-RED 4 from the npm registry, once, into target/bench/node-red."""
    red = NODE_RED_DIR / "node_modules" / "node-red" / "red.js"
    if not red.exists():
        print("  installing node-red@4 with npm (once)", flush=True)
        NODE_RED_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix",
             str(NODE_RED_DIR), "node-red@4"],
            check=True,
        )
    return red


def node_red_flow(broker_port, topic):
    """mqtt in (QoS 0, text) -> json -> a function counting messages and values above 70;
    GET /count answers the counts."""
    return [
        {"id": "a0", "type": "tab", "label": "bench"},
        {"id": "a1", "type": "mqtt-broker", "name": "mosquitto", "broker": "127.0.0.1",
         "port": str(broker_port), "clientid": f"node-red-{os.getpid()}", "autoConnect": True,
         "usetls": False, "protocolVersion": "4", "keepalive": "60", "cleansession": True},
        {"id": "a2", "type": "mqtt in", "z": "a0", "topic": topic, "qos": "0",
         "datatype": "utf8", "broker": "a1", "nl": False, "rap": True, "rh": 0,
         "inputs": 0, "wires": [["a3"]]},
        {"id": "a3", "type": "json", "z": "a0", "property": "payload", "action": "obj",
         "pretty": False, "wires": [["a4"]]},
        {"id": "a4", "type": "function", "z": "a0", "outputs": 1, "wires": [[]],
         "func": "const n = (global.get('n') || 0) + 1; global.set('n', n);\n"
                 "if (msg.payload.temperature > 70) "
                 "{ global.set('hot', (global.get('hot') || 0) + 1); }\nreturn null;"},
        {"id": "a5", "type": "http in", "z": "a0", "url": "/count", "method": "get",
         "wires": [["a6"]]},
        {"id": "a6", "type": "function", "z": "a0", "outputs": 1, "wires": [["a7"]],
         "func": "msg.payload = {n: global.get('n') || 0, hot: global.get('hot') || 0};\n"
                 "return msg;"},
        {"id": "a7", "type": "http response", "z": "a0", "statusCode": "", "wires": []},
    ]


def node_red_rate(work, port, path, n):
    red = install_node_red()
    home = pathlib.Path(work) / "node-red"
    home.mkdir(parents=True, exist_ok=True)
    (home / "flows.json").write_text(json.dumps(node_red_flow(port, TOPIC)))
    http_port = free_port()
    (home / "settings.js").write_text(
        "module.exports = {\n"
        f"  uiPort: {http_port}, uiHost: '127.0.0.1', userDir: {json.dumps(str(home))},\n"
        "  flowFile: 'flows.json', httpNodeRoot: '/', credentialSecret: false,\n"
        "  logging: {console: {level: 'warn'}},\n"
        "};\n"
    )
    red_process = start(["node", str(red), "-s", str(home / "settings.js")])
    try:
        wait_port(http_port, timeout=60)

        def count():
            try:
                return json.loads(http_get(f"http://127.0.0.1:{http_port}/count"))["n"]
            except (OSError, ValueError, KeyError):
                return 0

        # Ready when the flow answers and its MQTT subscription is in place: a probe
        # message published until it is counted.
        deadline = time.monotonic() + 60
        while count() == 0:
            if time.monotonic() > deadline:
                sys.exit("bench-peers: Node-RED never counted a message")
            subprocess.run(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", TOPIC,
                 "-m", '{"temperature":20}'],
                check=True,
            )
            time.sleep(0.2)
        before = count()
        began = time.monotonic()
        publish_burst(port, path, 0)
        last, last_change = before, time.monotonic()
        while True:
            now_count = count()
            now = time.monotonic()
            if now_count != last:
                last, last_change = now_count, now
            if last - before >= n or now - last_change > 3 or now - began > 600:
                break
            time.sleep(0.05)
        counted = last - before
        rate = counted / (last_change - began) if last_change > began else 0.0
        return rate, counted, rss_mib(red_process.pid)
    finally:
        stop(red_process)


def bench_node_red(args, work):
    n = args.n
    print(f"\nNode-RED 4: the same {n}-message burst, QoS 0", flush=True)
    port = mosquitto(work)
    path = burst_file(work, n)
    rate, counted, rss = node_red_rate(work, port, path, n)
    sub = pathlib.Path(work) / "node-red-atalaya"
    ours = run_atalaya_mqtt(sub, port, path, n, 0, mqtt_rules_flapping(), 1)
    ratio(
        "MQTT QoS 0, 1 rule, against Node-RED",
        ours["rate"],
        rate,
        "Node-RED mqtt in->json->function",
        3.0,
        f"Node-RED counted {counted:,}/{n:,} (RSS {rss:.0f} MiB); "
        f"atalaya evaluated {ours['evaluated']:,.0f}, dropped {ours['dropped']:,.0f}",
    )


# --- alert storm: POST /api/v2/alerts, Alertmanager beside atalaya ------------------------


def storm_alerts(start, count):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return [
        {
            "labels": {"alertname": "StormTest", "instance": f"host-{i}", "job": "bench"},
            "annotations": {"summary": f"host-{i} is down"},
            "startsAt": now,
        }
        for i in range(start, start + count)
    ]


class Poster:
    """One HTTP/1.1 connection that posts alert batches, as one client would."""

    def __init__(self, port, token=None):
        import http.client

        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def post(self, alerts):
        self.connection.request("POST", "/api/v2/alerts", json.dumps(alerts), self.headers)
        response = self.connection.getresponse()
        body = response.read()
        if response.status >= 300:
            sys.exit(f"bench-peers: POST /api/v2/alerts answered {response.status}: {body[:200]!r}")


def storm(port, pid, total, per_request=100, marks=()):
    """Posts `total` alerts; returns (seconds, {held: ms per request around that mark}, RSS)."""
    poster = Poster(port)
    per_mark = {}
    began = time.monotonic()
    window = []
    for start in range(0, total, per_request):
        t0 = time.perf_counter()
        poster.post(storm_alerts(start, per_request))
        window.append(time.perf_counter() - t0)
        held = start + per_request
        if held in marks:
            recent = window[-10:]
            per_mark[held] = 1000 * sum(recent) / len(recent)
    return time.monotonic() - began, per_mark, rss_mib(pid)


def start_alertmanager(work):
    work = pathlib.Path(work) / "alertmanager"
    work.mkdir()
    port = free_port()
    (work / "alertmanager.yml").write_text(
        "route: {receiver: blackhole, group_by: [alertname]}\nreceivers: [{name: blackhole}]\n"
    )
    process = start(
        [
            ALERTMANAGER,
            f"--config.file={work}/alertmanager.yml",
            f"--storage.path={work}/data",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ]
    )
    wait_port(port)
    return port, process


def start_atalaya_router(work, max_alerts):
    work = pathlib.Path(work) / "atalaya-storm"
    work.mkdir()
    (work / "routing.yaml").write_text(
        "route: {receiver: blackhole, group_by: [alertname]}\nreceivers: [{name: blackhole}]\n"
    )
    return Atalaya(
        work,
        f"routing: {{file: '{work}/routing.yaml', max_alerts: {max_alerts}}}\n",
        "rules:\n  - {name: idle, subject: never/seen, condition: value > 1}\n",
    )


def bench_storm(args, work):
    total = args.storm
    marks = (1000, 10_000, 50_000, 100_000)
    print(f"\nAlert storm: POST /api/v2/alerts, 100 alerts per request, one client", flush=True)
    am_port, am = start_alertmanager(work)
    am_idle = rss_mib(am.pid)
    am_10k, _, am_rss_10k = storm(am_port, am.pid, 10_000)
    stop(am)
    atalaya = start_atalaya_router(work, max(total, 10_000) + 1000)
    ours_idle = atalaya.rss()
    ours_10k, _, ours_rss_10k = storm(atalaya.port, atalaya.process.pid, 10_000)
    atalaya.stop()
    ratio("10 000 alerts (alerts/s)", 10_000 / ours_10k, 10_000 / am_10k, "Alertmanager", 2.0,
          f"atalaya {ours_10k:.2f} s, Alertmanager {am_10k:.2f} s")
    row("RSS after 10 000 alerts", f"{ours_rss_10k:.0f} MiB",
        f"Alertmanager {am_rss_10k:.0f} MiB", f"idle: {ours_idle:.0f} / {am_idle:.0f} MiB")

    am_port, am = start_alertmanager_again(work)
    _, am_marks, am_rss = storm(am_port, am.pid, total, marks=marks)
    stop(am)
    atalaya = start_atalaya_router(pathlib.Path(work) / "big", total + 1000)
    _, our_marks, our_rss = storm(atalaya.port, atalaya.process.pid, total, marks=marks)
    atalaya.stop()
    for held in marks:
        if held in our_marks:
            row(f"ms per request with {held:,} held", f"{our_marks[held]:.2f} ms",
                f"Alertmanager {am_marks.get(held, float('nan')):.2f} ms")
    r = our_rss / am_rss
    row(f"RSS holding {total:,} alerts", f"{our_rss:.0f} MiB = {r:.2f}x" + (" ok" if r <= 0.5 else " (goal 0.5x)"),
        f"Alertmanager {am_rss:.0f} MiB")


def start_alertmanager_again(work):
    big = pathlib.Path(work) / "big"
    big.mkdir(exist_ok=True)
    return start_alertmanager(big)


# --- NATS core: the Rust benchmark (a bare async-nats subscriber beside atalaya) -----------


def bench_nats(args, work):
    # The bench gives the bare subscriber's buffer and atalaya's `nats.max_pending` room for
    # the whole burst, so neither drops.
    n = args.n
    print(f"\nNATS core: {n} messages through nats-server", flush=True)
    for rules in (1, 100):
        out = subprocess.run(
            ["cargo", "bench", "--quiet", "--bench", "nats_ingest"],
            cwd=ROOT,
            env={
                **os.environ,
                "BENCH_N": str(n),
                "BENCH_RULES": str(rules),
                "BENCH_JETSTREAM": "1" if rules == 1 else "0",
            },
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            sys.exit(f"bench-peers: the NATS bench failed ({out.returncode}):\n{out.stderr[-2000:]}")
        out = out.stdout
        base = ours = js_base = js_ours = None
        received = {}
        for line in out.splitlines():
            words = line.split()
            if "subscriber alone" in line:
                base = float(words[3])
                received["subscriber"] = words[5].lstrip("(")
            if "atalaya with" in line:
                ours = float(words[4])
                received["atalaya"] = words[6].lstrip("(")
            if "bare async-nats consumer" in line:
                js_base = float(words[3])
            if words[:1] == ["atalaya"] and words[1] != "with":
                js_ours = float(words[1])
                received["jetstream"] = words[3].lstrip("(")
        # Issue 14's 0.8x is for one rule; 100 rules on the subject are 100 evaluations per
        # message, shown for scale.
        ratio(
            f"NATS core, {rules} rule(s) on the subject",
            ours or 0.0,
            base,
            "async-nats subscriber",
            0.8 if rules == 1 else None,
            f"received: subscriber {received.get('subscriber')}, atalaya {received.get('atalaya')}",
        )
        if js_base:
            ratio(
                "JetStream durable consumer, 1 rule",
                js_ours or 0.0,
                js_base,
                "bare pull consumer, explicit acks",
                0.7,
                f"atalaya received {received.get('jetstream')}",
            )


# --- footprint ----------------------------------------------------------------------------


def bench_footprint(args, work):
    print("\nFootprint (default config, no brokers)", flush=True)
    # The build measured, `cargo build --profile dist`, and the image's (scripts/image).
    builds = [("this build" if os.environ.get("ATALAYA_BIN") else "release", ATALAYA)]
    builds += [("dist", ROOT / "target" / "dist" / "atalaya")]
    builds += [("image's static dist", p) for p in sorted(ROOT.glob("target/*-linux-*/dist/atalaya"))]
    # From a cold page cache, as at a node's boot: how much of the binary a start maps
    # depends on what the page cache already holds of it.
    cold = os.geteuid() == 0
    for name, binary in builds:
        if not binary.exists():
            continue
        if cold:
            os.sync()
            pathlib.Path("/proc/sys/vm/drop_caches").write_text("3\n")
        atalaya = Atalaya(pathlib.Path(work) / f"idle-{len(rows)}", "", IDLE_RULES, binary)
        time.sleep(2)
        threads = len(os.listdir(f"/proc/{atalaya.process.pid}/task"))
        cache = "page cache dropped first" if cold else "page cache warm (not root)"
        row(f"idle RSS, {name}", f"{atalaya.rss():.1f} MiB", "", f"{threads} threads, {cache}; goal 12 MiB")
        atalaya.stop()
        size = binary.stat().st_size / (1 << 20)
        stripped = name != "release"  # the release profile keeps symbols, strips debug info
        row(f"{name} binary", f"{size:.1f} MiB", "", "goal 20 MiB" if stripped else "symbols kept")


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
    parser.add_argument("--only", choices=["mqtt", "nats", "storm", "footprint", "node-red"])
    parser.add_argument(
        "--node-red",
        action="store_true",
        help="also run the MQTT burst through Node-RED 4 (installed with npm on first use)",
    )
    parser.add_argument("--n", type=int, default=int(os.environ.get("BENCH_N", "200000")))
    parser.add_argument("--storm", type=int, default=int(os.environ.get("BENCH_STORM", "100000")))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-peers-")
    try:
        for name, bench in PARTS:
            wanted = args.only == name or (
                args.only is None and (name != "node-red" or args.node_red)
            )
            if wanted:
                bench(args, work)
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)


PARTS = [
    ("mqtt", bench_mqtt),
    ("nats", bench_nats),
    ("storm", bench_storm),
    ("footprint", bench_footprint),
    ("node-red", bench_node_red),
]

if __name__ == "__main__":
    main()
