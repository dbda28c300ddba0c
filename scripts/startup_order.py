#!/usr/bin/env python3
"""The body of scripts/startup-order: runs atalaya builds that keep their symbols under ptrace
with a one-shot breakpoint (int3) on the entry of every function in their symbol tables,
starts each the way the image does and the way bench-peers does, lets it idle while its HTTP
probes are polled, and writes the functions entered, in the order first entered (build after
build), as an lld symbol ordering file. Linux on x86_64 only (the registers' layout); run as a user allowed to ptrace
its own children.

Usage: startup_order.py [--seconds N] OUTPUT BINARY...
"""

import argparse
import ctypes
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request

from bench_peers import IDLE_RULES, free_port, write_config

ROOT = pathlib.Path(__file__).resolve().parent.parent
PTRACE_TRACEME, PTRACE_CONT, PTRACE_GETREGS, PTRACE_SETREGS = 0, 7, 12, 13
PTRACE_SETOPTIONS, PTRACE_O_TRACECLONE, PTRACE_O_EXITKILL = 0x4200, 0x8, 0x100000
WALL = 0x40000000
RIP = 16  # index of rip in struct user_regs_struct

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
Regs = ctypes.c_ulong * 27


def functions(binary):
    """Link-time entry address -> (name, size), for every defined function of non-zero size."""
    out = subprocess.run(["readelf", "-sW", binary], capture_output=True, text=True, check=True)
    names = {}
    for line in out.stdout.splitlines():
        f = line.split()
        if len(f) >= 8 and f[3] == "FUNC" and f[6] != "UND" and int(f[2], 0) > 0:
            names.setdefault(int(f[1], 16), (f[7], int(f[2], 0)))
    return names


def load_base(pid, exe):
    """Where a position-independent executable was loaded (a fixed one is where it says)."""
    with open(exe, "rb") as f:
        if f.read(18)[16] == 2:  # ET_EXEC
            return 0
    for line in open(f"/proc/{pid}/maps"):
        f = line.split()
        if len(f) >= 6 and f[5] == exe and int(f[2], 16) == 0:
            return int(f[0].split("-")[0], 16)
    sys.exit(f"startup-order: {exe} is not mapped in process {pid}")


class TimeUp(Exception):
    pass


def trace(binary, args, env, cwd, seconds, port, names):
    """Runs binary under ptrace for `seconds`, polling its probes; returns the entry addresses
    first entered, in order."""
    child = subprocess.Popen(
        [binary, *args], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: libc.ptrace(PTRACE_TRACEME, 0, None, None),
    )
    pid = child.pid
    os.waitpid(pid, 0)  # stopped at exec
    libc.ptrace(PTRACE_SETOPTIONS, pid, None, PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL)
    base = load_base(pid, os.path.realpath(binary))
    mem = os.open(f"/proc/{pid}/mem", os.O_RDWR)
    original = {}
    for address in names:
        original[address] = os.pread(mem, 1, base + address)
        os.pwrite(mem, b"\xcc", base + address)

    stop = threading.Event()
    answered = []

    def poll():
        while not stop.is_set():
            try:
                for path in ("readyz", "healthz", "metrics"):
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=2).read()
                answered.append(path)
                stop.wait(1)
            except Exception:
                stop.wait(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()

    def time_up(*_):
        raise TimeUp

    signal.signal(signal.SIGALRM, time_up)
    signal.alarm(seconds)
    entered = []
    regs = Regs()
    libc.ptrace(PTRACE_CONT, pid, None, None)
    try:
        while True:
            try:
                thread, status = os.waitpid(-1, WALL)
            except ChildProcessError:
                break
            if not os.WIFSTOPPED(status):
                continue
            sig, deliver = os.WSTOPSIG(status), 0
            if sig == signal.SIGTRAP and status >> 16 == 0:
                libc.ptrace(PTRACE_GETREGS, thread, None, ctypes.byref(regs))
                address = regs[RIP] - 1 - base
                if address in original:
                    if original[address] is not None:
                        os.pwrite(mem, original[address], base + address)
                        original[address] = None
                        entered.append(address)
                    regs[RIP] -= 1
                    libc.ptrace(PTRACE_SETREGS, thread, None, ctypes.byref(regs))
                else:
                    deliver = sig
            elif sig not in (signal.SIGTRAP, signal.SIGSTOP):
                deliver = sig
            libc.ptrace(PTRACE_CONT, thread, None, deliver)
    except TimeUp:
        pass
    stop.set()
    child.kill()
    # Every traced thread is reaped here, the leader last (a plain wait would hang).
    while True:
        try:
            os.waitpid(-1, WALL)
        except ChildProcessError:
            break
    child.returncode = -signal.SIGKILL
    os.close(mem)
    if not answered:
        sys.exit(f"startup-order: `atalaya {' '.join(args)}` never answered its probes")
    return entered


def runs(work):
    """The two ways atalaya is started: (args, environment, working directory, API port)."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    # As the image runs it: embedded defaults, JSON logs, the example rules.
    port = free_port()
    (work / "image").mkdir()
    os.symlink(ROOT / "examples", work / "image" / "examples")
    env = {
        "PATH": path,
        "ATALAYA__HTTP__LISTEN": f"127.0.0.1:{port}",
        "ATALAYA__STATE__DIR": str(work / "image" / "state"),
    }
    yield ["run", "--log-format", "json"], env, work / "image", port
    # As scripts/bench-peers measures idle RSS: its config file and idle rule.
    port = free_port()
    config = write_config(work / "bench", port, "", IDLE_RULES)
    yield ["run", "-c", str(config)], {"PATH": path}, work / "bench", port


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=15, help="how long each run idles")
    parser.add_argument("output", type=pathlib.Path)
    parser.add_argument("binaries", nargs="+", help="builds with symbols, each traced in turn")
    args = parser.parse_args()
    order, seen, size = [], set(), 0
    for binary in map(os.path.realpath, args.binaries):
        # Each build's part begins with this line; scripts/image counts the first part.
        order.append(f"# build: {os.path.relpath(binary, ROOT)}")
        names = functions(binary)
        if not names:
            sys.exit(f"startup-order: {binary} has no symbol table (build it with -C strip=none)")
        with tempfile.TemporaryDirectory() as work:
            for run, env, cwd, port in runs(pathlib.Path(work)):
                entered = trace(binary, run, env, cwd, args.seconds, port, names)
                print(f"startup-order: {binary} {' '.join(run[:2])}…: {len(entered)} functions")
                for address in entered:
                    name = names[address][0]
                    if name not in seen:
                        seen.add(name)
                        order.append(name)
                        size += names[address][1]
    args.output.write_text(
        "# Functions atalaya enters from exec to idle, in the order first entered: lld places\n"
        "# them first in .text (build.rs), so start-up touches few pages. Written by\n"
        "# scripts/startup-order for the image's and the release build; names a build does\n"
        "# not have are skipped.\n" + "".join(name + "\n" for name in order)
    )
    print(f"startup-order: {len(seen)} functions, {size / 1e6:.2f} MB of code -> {args.output}")


if __name__ == "__main__":
    main()
