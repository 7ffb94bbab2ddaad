#!/usr/bin/env python3
"""Wall time from `create` to `done` with the real Hermes Agent as the worker.

Owns: the "Real Hermes worker" section of BENCHMARKS.md (run by scripts/bench). The worker's
model is the scripted model server (tests/agents/scripted_model.py, loopback): show ->
heartbeat -> complete, so the time is our dispatcher plus Hermes itself, not an LLM.

Per round, alternating: (a) `create` + one-shot `dispatch`, polled with `show --json` every
50 ms until `done`; (b) `create` with a `daemon --interval 1` already running. For every run
the worker's log also gives the Hermes process lifetime (the supervisor's start and exit
lines, 1 s resolution) and Hermes' own session `Duration:`; the next run starts once the
worker has exited. Medians over the rounds; prints a Markdown table on stdout.

Usage: agent_e2e.py --hk BIN --hermes BIN [--rounds N]
"""

import argparse
import datetime
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(ROOT, "tests", "agents", "scripted_model.py")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hk", required=True)
    ap.add_argument("--hermes", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="hk-agent-bench-")
    srv = subprocess.Popen(
        [sys.executable, SERVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    port = int(srv.stdout.readline().split()[1])
    base = f"http://127.0.0.1:{port}/v1"
    root = os.path.join(tmp, "hermes")

    def model_yaml(script):
        return (
            f"model:\n  provider: custom\n  base_url: {base}\n  default: {script}\n"
            "  api_key: scripted-key\n"
        )

    prof = os.path.join(root, "profiles", "worker")
    os.makedirs(prof)
    with open(os.path.join(prof, "config.yaml"), "w") as f:
        f.write(model_yaml("scripted-complete"))

    env = {
        "HOME": tmp,
        "HERMES_HOME": root,
        "HERMES_BIN": a.hermes,
        "HERMES_DISABLE_LAZY_INSTALLS": "1",
        "TIRITH_ENABLED": "false",
        "PATH": os.environ.get("PATH", ""),
        "NO_COLOR": "1",
    }

    def hk(*args):
        out = subprocess.run(
            [a.hk, *args], env=env, capture_output=True, text=True, check=True
        )
        return out.stdout

    def wait_done(tid, t0):
        while True:
            s = json.loads(hk("show", tid, "--json"))
            st = s["task"]["status"]
            if st == "done":
                return time.monotonic() - t0
            if st not in ("ready", "running"):
                raise SystemExit(f"{tid} ended {st}: {s}")
            if time.monotonic() - t0 > 300:
                raise SystemExit(f"{tid} not done after 300 s")
            time.sleep(0.05)

    def one_shot(i):
        t0 = time.monotonic()
        tid = json.loads(hk("create", f"bench one-shot {i}", "--assignee", "worker", "--json"))["id"]
        hk("dispatch", "--json")
        return tid, wait_done(tid, t0)

    def with_daemon(i):
        t0 = time.monotonic()
        tid = json.loads(hk("create", f"bench daemon {i}", "--assignee", "worker", "--json"))["id"]
        return tid, wait_done(tid, t0)

    def worker_times(tid):
        """(process lifetime, Hermes' session Duration) from the task's worker log."""
        log = os.path.join(root, "kanban", "logs", f"{tid}.log")
        deadline = time.monotonic() + 180
        while True:
            text = open(log).read() if os.path.exists(log) else ""
            if "exited with" in text or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        stamps = re.findall(r"^\[supervisor \d+ ([0-9-]+ [0-9:]+)\] (.*)$", text, re.M)
        def at(pred):
            for ts, msg in stamps:
                if pred(msg):
                    return datetime.datetime.strptime(ts, "%Y-%m-%d %H:%M:%S")
            return None
        t_start = at(lambda m: ": starting " in m)
        t_exit = at(lambda m: "exited with" in m)
        life = (t_exit - t_start).total_seconds() if t_start and t_exit else float("nan")
        m = re.search(r"^Duration:\s+(?:(\d+)m\s*)?(\d+)s", text, re.M)
        dur = (int(m.group(1) or 0) * 60 + int(m.group(2))) if m else float("nan")
        return life, dur

    hk("init")
    # Warm-up: the first Hermes start compiles bytecode and seeds its home; the first dispatch
    # probes `hermes --help` (cached afterwards).
    worker_times(one_shot(-1)[0])

    times = {"one_shot": [], "daemon": [], "life": [], "session": []}

    def record(key, result):
        tid, took = result
        times[key].append(took)
        life, dur = worker_times(tid)
        times["life"].append(life)
        times["session"].append(dur)

    for i in range(a.rounds):
        record("one_shot", one_shot(i))
        d = subprocess.Popen(
            [a.hk, "daemon", "--interval", "1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            record("daemon", with_daemon(i))
        finally:
            d.send_signal(signal.SIGTERM)
            d.wait(timeout=30)

    srv.kill()
    srv.wait()

    def row(label, xs):
        xs = [x for x in xs if x == x] or [float("nan")]
        return (
            f"| {label} | {statistics.median(xs):.2f} s | {min(xs):.2f} s | {max(xs):.2f} s |"
        )

    load = os.getloadavg()[0]
    print(f"{a.rounds} rounds per path after one warm-up; load average at the end: {load:.1f}.\n")
    print("| measured | median | min | max |")
    print("|---|---|---|---|")
    print(row("`create` → one-shot `dispatch` → `done` (polled every 50 ms)", times["one_shot"]))
    print(row("`create` → `done` with `daemon --interval 1` running", times["daemon"]))
    print(row("Hermes worker process, start → exit (supervisor log, 1 s steps)", times["life"]))
    print(row("Hermes' own session `Duration:` (its log, 1 s steps)", times["session"]))
    print(
        "\nThe task is `done` when the worker calls `kanban_complete`; Hermes then answers the "
        "model's final text, saves its session and shuts down, so the process outlives the "
        "task by several seconds."
    )


if __name__ == "__main__":
    main()
