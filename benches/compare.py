#!/usr/bin/env python3
"""BASE vs HEAD, side by side in one run (`scripts/bench-compare BASE_REV`): the "No regression
against <rev>" section of BENCHMARKS.md.

Two builds of hermes-kanban — a base revision's and HEAD's — each with its `compare_ops` bench
binary (benches/compare_ops.rs, the same source compiled against each kernel). Every timed
figure alternates the two sides (and which goes first) so machine noise hits both alike:

- kernel ops/s: create / claim / complete / show through the kernel in-process
  (`compare_ops kernel N`, a fresh board per sample);
- CLI latency: create / show / list (1,000 tasks) / complete, fresh processes, each side on
  its own board of 1,000 tasks (seeded alike by its own compare_ops);
- the dispatcher tick and dry-run tick on a 10,000-task board (each side seeds its own);

and the figures that do not depend on the machine's load:

- instructions (valgrind --tool=callgrind) of one CLI process per verb, and per kernel
  operation (`compare_ops loop OP K` minus `loop OP 0`, divided by K) and per tick;
- fsyncs per CLI write process (strace -f -c -e trace=fsync,fdatasync).

A timed row's noise is half the range of the paired per-round ratios (floor 2 %; an A/A run
of one binary against itself showed the interquartile range too narrow on a loaded machine); an instruction row's the larger difference between two runs of the same binary (floor
0.5 %); an fsync row compares the medians (the WAL's auto-checkpoints make a few
processes sync more). A regression is HEAD slower (or costlier) by more than the noise.
Markdown on stdout, progress on stderr; with $BENCH_TARGETS a Targets row is appended there.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def log(*a):
    print("[compare]", *a, file=sys.stderr, flush=True)


class Side:
    def __init__(self, label, hk, ops):
        self.label, self.hk, self.ops = label, hk, ops


def base_env(home_dir, extra=None):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": home_dir,
        "HERMES_HOME": os.path.join(home_dir, "hermes"),
        "TZ": "UTC",
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
        "HERMES_DISABLE_LAZY_INSTALLS": "1",
        "TIRITH_ENABLED": "false",
    }
    if "BENCH_DIR" in os.environ:
        env["BENCH_DIR"] = os.environ["BENCH_DIR"]
    env.update(extra or {})
    return env


def run(argv, env, expect=""):
    t = time.perf_counter()
    p = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    el = (time.perf_counter() - t) * 1000
    if p.returncode != 0 or expect not in p.stdout:
        raise SystemExit(f"{argv}: exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return el, p.stdout


def ops_json(side, args, env):
    return json.loads(run([side.ops, *args], env)[1].strip().splitlines()[-1])


def pairs(sides, n, fn):
    """n alternating rounds of fn(side, i) for both sides, the first side swapping each round."""
    out = {s.label: [] for s in sides}
    for i in range(n):
        order = sides if i % 2 == 0 else sides[::-1]
        for s in order:
            out[s.label].append(fn(s, i))
    return out


# ----- rows ------------------------------------------------------------------------------------

ROWS = []  # (group, name, unit, base, head, ratio, noise, verdict)


def verdict(slowdown, noise):
    if slowdown - 1 > noise:
        return "**regression**"
    if 1 - slowdown > noise:
        return "faster"
    return "no regression"


def timed_row(group, name, unit, b, h, higher_better):
    """b, h: paired samples. Ratio HEAD/BASE of the medians; noise from the paired ratios."""
    mb, mh = statistics.median(b), statistics.median(h)
    slow = [(x / y) if higher_better else (y / x) for x, y in zip(b, h)]
    s = statistics.median(slow)
    noise = max(0.02, (max(slow) - min(slow)) / 2 / s)
    fmt = "{:.0f}" if unit == "ops/s" else "{:.1f}"
    ROWS.append((group, name, unit, fmt.format(mb), fmt.format(mh), mh / mb, noise,
                 verdict(s, noise)))


def count_row(group, name, unit, b, h, floor):
    """b, h: repeated counts of a deterministic-ish figure (lower is better)."""
    mb, mh = min(b), min(h)
    spread = max([floor] + [(max(v) - min(v)) / min(v) for v in (b, h) if min(v) > 0])
    if mb == 0:
        ratio, slow = (1.0 if mh == 0 else float("inf")), (1.0 if mh == 0 else 2.0)
    else:
        ratio = slow = mh / mb
    fmt = (lambda v: f"{v / 1e6:.2f} M") if unit == "instructions" else (lambda v: f"{v:.2f}")
    ROWS.append((group, name, unit, fmt(mb), fmt(mh), ratio, spread, verdict(slow, spread)))


# ----- kernel ops/s ----------------------------------------------------------------------------

def kernel(sides, rounds, n):
    log(f"kernel ops/s: {n} ops x {rounds} alternating rounds")
    got = pairs(sides, rounds, lambda s, i: ops_json(s, ["kernel", str(n)], base_env("/tmp")))
    b, h = got[sides[0].label], got[sides[1].label]
    for op in ["create", "claim", "complete", "show"]:
        timed_row("kernel", f"kernel `{op}` ({n} per round, {rounds} rounds)", "ops/s",
                  [x[op] for x in b], [x[op] for x in h], True)


# ----- CLI -------------------------------------------------------------------------------------

class CliBoard:
    """A side's board (seeded by its own compare_ops: 1,000 tasks + ready tasks to finish).
    One per side, not one shared: a binary that checkpoints and removes the WAL on close (as
    builds before issue 14 do) would make the other side's next process re-create it."""

    def __init__(self, root, side, extra):
        self.dir = os.path.join(root, "cli-" + side.label)
        os.makedirs(os.path.join(self.dir, "hermes"), exist_ok=True)
        v = ops_json(side, ["seed-cli", self.dir, "1000", str(extra)],
                     base_env(self.dir, {"HERMES_KANBAN_SYNCHRONOUS": "OFF"}))
        self.shown, self.ready = v["show"], list(v["complete"])
        self.env = base_env(self.dir)

    def take(self):
        return self.ready.pop()


def cli_plan(board, verb, i):
    if verb == "create":
        return ["create", f"bench {i}", "--assignee", "coder"], "Created"
    if verb == "show":
        return ["show", board.shown], board.shown
    if verb == "list":
        return ["list"], "seed task"
    t = board.take()
    return ["complete", t, "--summary", "done"], t


def cli(sides, boards, runs):
    log(f"CLI latency: {runs} alternating runs per verb")
    for s in sides:  # warm the page cache and let each side's migration check settle
        board = boards[s.label]
        run([s.hk, "show", board.shown], board.env, board.shown)
    for verb in ["create", "show", "list", "complete"]:
        def one(s, i):
            board = boards[s.label]
            argv, expect = cli_plan(board, verb, i)
            return run([s.hk, *argv], board.env, expect)[0]
        got = pairs(sides, runs, one)
        name = {"list": "CLI `list` (board of ~1,000 tasks)"}.get(verb, f"CLI `{verb}`")
        timed_row("cli", f"{name}, fresh process ({runs} runs)", "ms",
                  got[sides[0].label], got[sides[1].label], False)


def fsyncs(argv, env):
    p = subprocess.run(["strace", "-f", "-qq", "-c", "-e", "trace=fsync,fdatasync", *argv],
                       env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise SystemExit(f"{argv}: {p.stderr[-2000:]}")
    n = 0
    for line in p.stderr.splitlines():
        f = line.split()
        if f and f[-1] in ("fsync", "fdatasync"):
            n += int(f[3])
    return n


def fsync_rows(sides, boards, runs):
    log(f"fsyncs per CLI write: {runs} processes per verb and side")
    for verb in ["create", "comment", "complete", "claim"]:
        def one(s, i):
            board = boards[s.label]
            if verb == "create":
                argv = ["create", f"fsync probe {i}", "--assignee", "coder"]
            elif verb == "comment":
                argv = ["comment", board.shown, f"note {i}"]
            else:
                argv = [verb, board.take()] + (["--summary", "ok"] if verb == "complete" else [])
            return fsyncs([s.hk, *argv], board.env)
        got = pairs(sides, runs, one)
        b, h = got[sides[0].label], got[sides[1].label]
        # The median is the write itself; the mean also carries the WAL auto-checkpoints
        # (every ~1,000 pages), which land on whichever process crosses the mark.
        mb, mh = statistics.median(b), statistics.median(h)
        ratio = mh / mb if mb else (1.0 if mh == 0 else float("inf"))
        v = "**regression**" if mh > mb else ("fewer" if mh < mb else "no regression")
        ROWS.append(("fsync", f"fsyncs per `{verb}` process (median of {runs}; mean)", "fsyncs",
                     f"{mb:.0f} ({statistics.mean(b):.2f})", f"{mh:.0f} ({statistics.mean(h):.2f})",
                     ratio, 0.0, v))


# ----- instructions (callgrind) ----------------------------------------------------------------

def instructions(argv, env, out_dir):
    f = tempfile.NamedTemporaryFile(dir=out_dir, prefix="cg.", delete=False).name
    p = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={f}", *argv],
                       env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise SystemExit(f"callgrind {argv}: exit {p.returncode}\n{p.stderr[-2000:]}")
    total = None
    with open(f) as fh:
        for line in fh:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    os.unlink(f)
    if total is None:
        raise SystemExit(f"callgrind {argv}: no totals in its output")
    return total


def cg_cli(sides, boards, root, reps):
    log(f"instructions per CLI process (callgrind, {reps} runs per verb and side)")
    for verb in ["create", "show", "list", "complete"]:
        def one(s, i):
            board = boards[s.label]
            argv, _ = cli_plan(board, verb, 1000 + i)
            return instructions([s.hk, *argv], board.env, root)
        got = pairs(sides, reps, one)
        count_row("instr", f"instructions per CLI `{verb}` process", "instructions",
                  got[sides[0].label], got[sides[1].label], 0.005)


def cg_kernel(sides, root, k):
    log(f"instructions per kernel operation (callgrind, loop of {k} minus loop of 0)")
    env = base_env(root, {"HERMES_KANBAN_SYNCHRONOUS": "OFF"})
    base = {s.label: instructions([s.ops, "loop", "show", "0"], env, root) for s in sides}
    for op in ["create", "claim", "complete", "show"]:
        per = {}
        for s in sides:
            n = instructions([s.ops, "loop", op, str(k)], env, root)
            # The seeding is the same for every op except complete (it claims its 200 first).
            zero = base[s.label] if op != "complete" else instructions(
                [s.ops, "loop", op, "0"], env, root)
            per[s.label] = [(n - zero) / k]
        count_row("instr", f"instructions per kernel `{op}` (in-process, {k} ops)",
                  "instructions", per[sides[0].label], per[sides[1].label], 0.01)


# ----- dispatcher tick -------------------------------------------------------------------------

def tick(sides, root, size, batches, per, cg):
    log(f"dispatcher tick at {size}: {batches} alternating batches of {per}")
    homes = {}
    for s in sides:
        d = os.path.join(root, f"tick-{s.label}")
        os.makedirs(os.path.join(d, "hermes"), exist_ok=True)
        ops_json(s, ["seed-tick", d, str(size)], base_env(d))
        homes[s.label] = d
    got = pairs(sides, batches,
                lambda s, i: ops_json(s, ["tick", homes[s.label], str(per)],
                                      base_env(homes[s.label])))
    b, h = got[sides[0].label], got[sides[1].label]
    for key, name in [("tick_ms", "dispatcher tick, no spawns"), ("dry_tick_ms", "dry-run tick")]:
        timed_row("tick", f"{name} at {size // 1000}k tasks ({batches * per} ticks)", "ms",
                  [x for v in b for x in v[key]], [x for v in h for x in v[key]], False)
    if cg:
        log("instructions per tick (callgrind: 3 ticks minus 1)")
        per_tick = {}
        for s in sides:
            env = base_env(homes[s.label])
            one = instructions([s.ops, "tick", homes[s.label], "1"], env, root)
            three = instructions([s.ops, "tick", homes[s.label], "3"], env, root)
            per_tick[s.label] = [(three - one) / 2]
        count_row("instr", f"instructions per tick + dry-run tick at {size // 1000}k",
                  "instructions", per_tick[sides[0].label], per_tick[sides[1].label], 0.01)


# ----- report ----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", nargs=3, metavar=("LABEL", "HK", "OPS"), required=True)
    ap.add_argument("--head", nargs=3, metavar=("LABEL", "HK", "OPS"), required=True)
    ap.add_argument("--rounds", type=int, default=5, help="kernel rounds (default 5)")
    ap.add_argument("--kernel-ops", type=int, default=500, help="ops per kernel round")
    ap.add_argument("--cli-runs", type=int, default=15, help="runs per CLI verb (default 15)")
    ap.add_argument("--tick-size", type=int, default=10000)
    ap.add_argument("--cg-ops", type=int, default=100, help="kernel ops per callgrind loop")
    ap.add_argument("--sections", default="kernel,cli,tick,fsync,callgrind")
    a = ap.parse_args()
    want = set(a.sections.split(","))
    sides = [Side(*a.base), Side(*a.head)]
    load0 = os.getloadavg()[0]
    t0 = time.time()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as root:
        if "kernel" in want:
            kernel(sides, a.rounds, a.kernel_ops)
        boards = None
        if want & {"cli", "fsync", "callgrind"}:
            boards = {s.label: CliBoard(root, s, a.cli_runs + 2 * 12 + 4) for s in sides}
        if "cli" in want:
            cli(sides, boards, a.cli_runs)
        if "tick" in want:
            tick(sides, root, a.tick_size, 3, 3, "callgrind" in want)
        if "fsync" in want:
            fsync_rows(sides, boards, 12)
        if "callgrind" in want:
            cg_cli(sides, boards, root, 2)
            cg_kernel(sides, root, a.cg_ops)
    load1 = os.getloadavg()[0]
    b, h = sides[0].label, sides[1].label
    print(f"Generated by `scripts/bench-compare {b}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
          f" in {time.time() - t0:.0f} s; load average {load0:.1f} at the start, {load1:.1f} at the end"
          " (timed rows are only as good as the machine was quiet; instruction counts and fsyncs"
          " do not depend on it).")
    print()
    print(f"| measure | BASE {b} | HEAD {h} | HEAD / BASE | noise | verdict |")
    print("|---|---:|---:|---:|---:|---|")
    for _, name, unit, vb, vh, ratio, noise, v in ROWS:
        u = {"instructions": "", "fsyncs": ""}.get(unit, " " + unit)
        print(f"| {name} | {vb}{u} | {vh}{u} | {ratio:.3f} | ±{100 * noise:.1f} % | {v} |")
    bad = [r for r in ROWS if r[7] == "**regression**"]
    timed_bad = [r for r in bad if r[0] in ("kernel", "cli", "tick")]
    print()
    if bad:
        print("Regressions beyond the noise: " + "; ".join(f"{r[1]} ({r[5]:.3f})" for r in bad) + ".")
    else:
        print(f"No row is slower or costlier than {b} by more than its noise.")
    p = os.environ.get("BENCH_TARGETS")
    if p:
        groups = sorted({r[0] for r in ROWS if r[0] in ("kernel", "cli", "tick")})
        with open(p, "a") as f:
            f.write(f"| no regression against {b} (kernel ops/s, CLI latency, tick time) | "
                    + (", ".join(f"{r[1]} {r[5]:.3f}" for r in timed_bad) if timed_bad
                       else f"{', '.join(groups)}: every HEAD/BASE ratio within its noise or better")
                    + f" | {'**not met**' if timed_bad else 'met'} |\n")


if __name__ == "__main__":
    main()
