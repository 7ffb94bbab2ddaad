#!/usr/bin/env python3
"""Wall time from `create` to `done` with the real Hermes Agent as the worker.

Owns: the "Real Hermes worker" section of BENCHMARKS.md (run by scripts/bench). The worker's
model is the scripted model server (tests/agents/scripted_model.py, loopback): show ->
heartbeat -> complete, so the time is our dispatcher plus Hermes itself, not an LLM.

Per round, alternating: (a) `create` + one-shot `dispatch`, polled with `show --json` every
50 ms until `done`; (b) `create` with a `daemon --interval 1` already running; (c) the bare
agent: `hermes --cli chat -q` with a model that answers at once (Hermes' start-up and one
model round trip, the floor of any Hermes worker). Medians over the rounds; prints a Markdown
table on stdout.

Usage: agent_e2e.py --hk BIN --hermes BIN [--rounds N]
"""

import argparse
import json
import os
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
    bare = os.path.join(tmp, "bare")
    os.makedirs(bare)
    with open(os.path.join(bare, "config.yaml"), "w") as f:
        f.write(model_yaml("scripted-list-tools"))

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
        return wait_done(tid, t0)

    def with_daemon(i):
        t0 = time.monotonic()
        tid = json.loads(hk("create", f"bench daemon {i}", "--assignee", "worker", "--json"))["id"]
        return wait_done(tid, t0)

    def bare_agent(i):
        t0 = time.monotonic()
        subprocess.run(
            [a.hermes, "--cli", "chat", "-q", f"bare run {i}"],
            env={**env, "HERMES_HOME": bare},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=True,
        )
        return time.monotonic() - t0

    hk("init")
    # Warm-up: the first Hermes start compiles bytecode and seeds its home; the first dispatch
    # probes `hermes --help` (cached afterwards).
    one_shot(-1)
    bare_agent(-1)

    times = {"one_shot": [], "daemon": [], "bare": []}
    for i in range(a.rounds):
        times["one_shot"].append(one_shot(i))
        times["bare"].append(bare_agent(i))
        d = subprocess.Popen(
            [a.hk, "daemon", "--interval", "1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            times["daemon"].append(with_daemon(i))
        finally:
            d.send_signal(signal.SIGTERM)
            d.wait(timeout=30)

    srv.kill()
    srv.wait()

    def row(label, xs):
        return (
            f"| {label} | {statistics.median(xs):.2f} s | {min(xs):.2f} s | {max(xs):.2f} s |"
        )

    med_bare = statistics.median(times["bare"])
    med_one = statistics.median(times["one_shot"])
    print(f"{a.rounds} rounds (after one warm-up), medians:\n")
    print("| path | median | min | max |")
    print("|---|---|---|---|")
    print(row("`create` → one-shot `dispatch` → `done` (polled every 50 ms)", times["one_shot"]))
    print(row("`create` → `done` with `daemon --interval 1` running", times["daemon"]))
    print(row("bare `hermes --cli chat -q` (start-up + one model answer, no kanban)", times["bare"]))
    print(
        f"\nThe one-shot path costs {med_one - med_bare:+.2f} s over the bare agent run "
        f"({med_one / med_bare:.2f}×): the three tool calls and their model round trips, the "
        "supervisor and our CLI calls."
    )


if __name__ == "__main__":
    main()
