#!/usr/bin/env python3
"""Hermes Agent 0.19.0 side of `scripts/bench`: Hermes' own kernel (`hermes_cli.kanban_db`),
called in-process exactly as Hermes does — one connection from `kanban_db.connect()`, then
`create_task` / `claim_task` / `complete_task` / `dispatch_once` / `list_tasks` on it.

Run with the Python of the hermes-agent==0.19.0 venv (target/hermes-venv). The Rust benches call
it (benches/kernel_throughput.rs, dispatch_tick.rs, claim_race.rs, mcp_latency.rs) alternating
with their own measurements; each mode prints one JSON object on stdout.

  kernel <db> <n>                 one round: n creates, n claims, n completes → ops/s each
  tick <db> <samples>             dispatch_once(dry_run=True), dispatch_once() and list_tasks()
                                  `samples` times each (after one warm-up) → ms lists
  race <db> <procs> <go-file>     start `procs` racer processes that claim every ready task
                                  → per-process wins and the wall time
  racer <db> <go-file> <out>      (internal) one racer
  idle                            import what a kanban tool host needs, open the board, print
                                  "ready" and sleep (the caller reads /proc/<pid>/status)
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _kdb(db: str):
    # Pin Hermes to this file: connect(), the dispatch tick lock and the workspace paths all
    # resolve the board from HERMES_KANBAN_DB.
    os.environ["HERMES_KANBAN_DB"] = db
    os.environ.setdefault("HERMES_HOME", str(Path(db).parent))
    from hermes_cli import kanban_db

    if os.environ.get("HK_BENCH_SKIP_LENGTH_CHECK") == "1":
        # Diagnosis only (not used by scripts/bench): what 0.19.1's fix amounts to — no plain
        # open/close of the DB file after each commit (REF §3.3).
        kanban_db._check_file_length_invariant = lambda conn: None
    return kanban_db


def kernel(db: str, n: int) -> dict:
    kdb = _kdb(db)
    conn = kdb.connect(Path(db))
    tag = f"{os.getpid()}-{time.time_ns()}"
    t = time.perf_counter()
    ids = [
        kdb.create_task(conn, title=f"hermes bench {tag} #{i}", assignee="worker")
        for i in range(n)
    ]
    create = n / (time.perf_counter() - t)
    t = time.perf_counter()
    runs = []
    for tid in ids:
        task = kdb.claim_task(conn, tid, ttl_seconds=900)
        assert task is not None, tid
        runs.append(task.current_run_id)
    claim = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for tid, run in zip(ids, runs):
        ok = kdb.complete_task(conn, tid, summary="done", expected_run_id=run)
        assert ok, tid
    complete = n / (time.perf_counter() - t)
    conn.close()
    return {"create": create, "claim": claim, "complete": complete}


def tick(db: str, samples: int) -> dict:
    kdb = _kdb(db)
    conn = kdb.connect(Path(db))

    def timed(f):
        t = time.perf_counter()
        r = f()
        return (time.perf_counter() - t) * 1000.0, r

    def no_spawn(*a, **k):  # never called: no assignee of the seeded board has a profile
        raise AssertionError("the benchmark must not spawn")

    # Warm-up (first ticks may reclaim or promote what the seed left for them).
    kdb.dispatch_once(conn, dry_run=True)
    kdb.dispatch_once(conn, spawn_fn=no_spawn)
    dry, real, lst = [], [], []
    ready = running = listed = 0
    for _ in range(samples):
        ms, r = timed(lambda: kdb.dispatch_once(conn, dry_run=True))
        dry.append(ms)
        ms, r = timed(lambda: kdb.dispatch_once(conn, spawn_fn=no_spawn))
        assert not r.spawned
        real.append(ms)
        ms, rows = timed(lambda: kdb.list_tasks(conn))
        lst.append(ms)
        listed = len(rows)
    ready = conn.execute("SELECT count(*) FROM tasks WHERE status='ready'").fetchone()[0]
    running = conn.execute("SELECT count(*) FROM tasks WHERE status='running'").fetchone()[0]
    conn.close()
    return {
        "dry_tick_ms": dry,
        "tick_ms": real,
        "list_ms": lst,
        "listed": listed,
        "ready": ready,
        "running": running,
    }


def racer(db: str, go: str, out: str) -> None:
    kdb = _kdb(db)
    conn = kdb.connect(Path(db))
    ids = [t.id for t in kdb.list_tasks(conn, status="ready")]
    Path(out + ".ready").write_text(str(len(ids)))
    deadline = time.time() + 120
    while not os.path.exists(go):
        if time.time() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.001)
    won = []
    errors = 0
    for tid in ids:
        try:
            t = kdb.claim_task(conn, tid, ttl_seconds=900)
        except Exception as e:  # a lock timeout or a lost write would show here
            errors += 1
            print(f"racer {os.getpid()}: {tid}: {e!r}", file=sys.stderr)
            continue
        if t is not None:
            won.append(f"{tid} {t.current_run_id} {t.claim_lock}")
    Path(out).write_text("\n".join(won))
    Path(out + ".errors").write_text(str(errors))
    conn.close()


def race(db: str, procs: int, go: str) -> dict:
    outs = [f"{db}.racer{i}" for i in range(procs)]
    children = [
        subprocess.Popen([sys.executable, __file__, "racer", db, go, o]) for o in outs
    ]
    while not all(os.path.exists(o + ".ready") for o in outs):
        time.sleep(0.005)
    t = time.perf_counter()
    Path(go).write_text("go")
    codes = [c.wait() for c in children]
    wall = time.perf_counter() - t
    wins = [
        [l for l in Path(o).read_text().splitlines() if l] if os.path.exists(o) else []
        for o in outs
    ]
    errors = [
        int(Path(o + ".errors").read_text()) if os.path.exists(o + ".errors") else -1
        for o in outs
    ]
    return {"wall_s": wall, "wins": wins, "codes": codes, "errors": errors}


def idle() -> None:
    # What a process serving the kanban tools loads: the tool surface (which pulls in the
    # kernel and the tool registry) and one open board.
    import tools.kanban_tools  # noqa: F401
    from hermes_cli import kanban_db

    conn = kanban_db.connect()
    conn.execute("SELECT count(*) FROM tasks").fetchone()
    print("ready", flush=True)
    time.sleep(3600)


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "kernel":
        print(json.dumps(kernel(args[0], int(args[1]))))
    elif mode == "tick":
        print(json.dumps(tick(args[0], int(args[1]))))
    elif mode == "race":
        print(json.dumps(race(args[0], int(args[1]), args[2])))
    elif mode == "racer":
        racer(args[0], args[1], args[2])
    elif mode == "idle":
        idle()
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
