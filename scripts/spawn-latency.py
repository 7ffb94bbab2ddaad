#!/usr/bin/env python3
"""Create -> spawn latency under `serve`: how soon the served dispatcher starts a worker for a
task created from outside (a `hermes-kanban create` process, as an agent or a script would).

Part of scripts/bench (prints one markdown table on stdout, progress on stderr, and a target
row to $BENCH_TARGETS when set); runs alone too:

    scripts/bench spawn-latency [rounds]      (default 20)
    scripts/spawn-latency.py [rounds] [--database-url URL]

With --database-url (a PostgreSQL database of its own) the board lives there: `serve`, `create`
and the worker's `complete` all reach it through HERMES_KANBAN_DATABASE_URL (issue 15:
create -> spawn latency on each backend); the row names the backend and no target row is written.

Needs our binary (HK_BIN, else target/release/hermes-kanban, else target/debug/hermes-kanban).
One throwaway HERMES_HOME with a `worker` profile; `serve --bind 127.0.0.1:0 --interval 60`
(so the interval, not event-driven dispatch, would give ~30 s on average); the worker is a shell
script (HERMES_BIN) that records its start time and completes the task. Each round: note the
time, run `create`, wait for the worker's start stamp (latency = stamp - before create), then
wait for the task to be done before the next round. One warm-up task first.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = sys.argv[1:]
URL = None
if "--database-url" in ARGS:
    i = ARGS.index("--database-url")
    if i + 1 >= len(ARGS):
        sys.exit("scripts/spawn-latency.py: --database-url takes a URL")
    URL = ARGS[i + 1]
    del ARGS[i:i + 2]
ROUNDS = int(ARGS[0]) if ARGS else 20
INTERVAL = "60"


def say(msg):
    print("[spawn-latency] " + msg, file=sys.stderr, flush=True)


def our_binary():
    for p in (os.environ.get("HK_BIN"), ROOT + "/target/release/hermes-kanban", ROOT + "/target/debug/hermes-kanban"):
        if p and os.access(p, os.X_OK):
            return p
    sys.exit("scripts/spawn-latency.py: no hermes-kanban binary (cargo build --release, or set HK_BIN)")


HK = our_binary()

WORKER = """#!/bin/bash
if [ "$1" = --help ]; then echo 'usage: hermes [-h] [-m MODEL] [--skills SKILLS] [--cli]'; exit 0; fi
date +%s.%N > "$LAB/$HERMES_KANBAN_TASK.stamp" && mv "$LAB/$HERMES_KANBAN_TASK.stamp" "$LAB/$HERMES_KANBAN_TASK.started"
"$HK" complete "$HERMES_KANBAN_TASK" --summary "spawn latency probe" >/dev/null
touch "$LAB/$HERMES_KANBAN_TASK.done"
"""


def wait_for(path, timeout):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            return False
        time.sleep(0.005)
    return True


def main():
    lab = tempfile.mkdtemp(prefix="hk-spawn-latency-")
    home = os.path.join(lab, "hermes")
    os.makedirs(os.path.join(home, "profiles", "worker"))
    with open(os.path.join(home, "profiles", "worker", "config.yaml"), "w") as f:
        f.write("{}\n")
    worker = os.path.join(lab, "worker.sh")
    with open(worker, "w") as f:
        f.write(WORKER)
    os.chmod(worker, 0o755)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": lab,
        "HERMES_HOME": home,
        "HERMES_BIN": worker,
        "HK": HK,
        "LAB": lab,
        "NO_COLOR": "1",
        "TZ": "UTC",
    }
    if URL:
        env["HERMES_KANBAN_DATABASE_URL"] = URL
        p = subprocess.run([HK, "init"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit("scripts/spawn-latency.py: init on the database URL failed: " + p.stderr.strip()[-500:])
    server = subprocess.Popen(
        [HK, "serve", "--bind", "127.0.0.1:0", "--interval", INTERVAL],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # The server says where it listens once it is up.
        while True:
            line = server.stderr.readline()
            if not line:
                sys.exit("scripts/spawn-latency.py: serve ended early")
            if "http://127.0.0.1:" in line:
                break

        def create(title):
            out = subprocess.run([HK, "create", title, "--assignee", "worker", "--json"], env=env,
                                 check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            return json.loads(out.stdout)["id"]

        warm = create("warm-up")
        if not wait_for(os.path.join(lab, warm + ".done"), 120):
            sys.exit("scripts/spawn-latency.py: the warm-up task was never finished")
        lat = []
        for i in range(ROUNDS):
            t0 = time.time()
            tid = create(f"probe {i}")
            started = os.path.join(lab, tid + ".started")
            if not wait_for(started, 90):
                sys.exit(f"scripts/spawn-latency.py: {tid} was not spawned within 90 s")
            with open(started) as f:
                lat.append(float(f.read().strip()) - t0)
            wait_for(os.path.join(lab, tid + ".done"), 60)
        say(f"{ROUNDS} rounds done")
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(lab, ignore_errors=True)
    ms = sorted(x * 1000 for x in lat)
    p50 = statistics.median(ms)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    print("| create → worker started, `serve --interval 60` | p50 | p90 | max | rounds |")
    print("|---|---|---|---|---|")
    backend = " (PostgreSQL)" if URL else ""
    print(f"| `hermes-kanban create` from another process{backend} | {p50:.0f} ms | {p90:.0f} ms | {ms[-1]:.0f} ms | {len(ms)} |")
    targets = os.environ.get("BENCH_TARGETS")
    if targets and not URL:
        verdict = "met" if p50 < 1000 else "**not met**"
        with open(targets, "a") as f:
            f.write(f"| create → spawn under `serve` p50 < 1 s | {p50:.0f} ms | {verdict} |\n")


if __name__ == "__main__":
    main()
