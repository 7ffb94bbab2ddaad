#!/usr/bin/env python3
"""Size in characters of `kanban_list` / `kanban_show` results on a 1,000-task board.

Seeds a throwaway board (HERMES_HOME in a temp dir) with 1,000 tasks through the first
binary's CLI (three assignees, five priorities, a body each; the shown task also has parents,
comments, heartbeats and a closed run), then drives `hermes-kanban mcp` of each given binary
over stdio (raw JSON-RPC lines; Python stdlib only) and prints a markdown table:

  * text: the characters of the result's text content block(s);
  * structuredContent: the characters of its JSON (compact serialisation);
  * sent by Hermes: what Hermes Agent 0.19.0's MCP client hands the model for that result
    (`json.dumps({"result": text, "structuredContent": ...})`, its tools/mcp_tool.py).

Usage: scripts/mcp-result-size.py LABEL=BINARY [LABEL=BINARY ...]
(scripts/bench runs it with the release binary, and with HK_MCP_SIZE_BEFORE=<binary> also
with that one, e.g. main's binary before a change.)
"""

import json
import os
import subprocess
import sys
import tempfile

TASKS = 1000


def run(binary, env, *args):
    return subprocess.run([binary, *args], env=env, check=True, capture_output=True, text=True).stdout


def seed(binary, env):
    """1,000 tasks through the CLI (one process each, ~10-30 s); returns the id of the richly
    populated task to show."""
    ids = []
    for i in range(TASKS):
        out = run(
            binary, env, "create", f"Task {i}: implement part {i} of the feature",
            "--assignee", ["coder", "reviewer", "writer"][i % 3],
            "--priority", str(i % 5),
            "--body", f"Implement part {i}. Inputs are in /data/in/{i}; write tests; keep it short.",
            "--json",
        )
        ids.append(json.loads(out)["id"])
    parent_a, parent_b, shown = ids[0], ids[1], ids[2]
    for p in (parent_a, parent_b):
        run(binary, env, "claim", p)
        run(binary, env, "complete", p, "--summary", f"{p}: inputs gathered in /data/in",
            "--metadata", json.dumps({"changed_files": ["a.rs", "b.rs"], "tests": 12}))
        run(binary, env, "link", p, shown)
    for n in range(3):
        run(binary, env, "comment", shown, f"Note {n}: please cite the sources and keep it short.")
    run(binary, env, "claim", shown)
    for n in range(10):
        run(binary, env, "heartbeat", shown, "--note", f"step {n} of 10")
    return shown


class Peer:
    def __init__(self, binary, env):
        self.p = subprocess.Popen([binary, "mcp"], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.next = 1
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "size", "version": "0"}})
        self.p.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
        self.p.stdin.flush()

    def request(self, method, params):
        rid = self.next
        self.next += 1
        self.p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}) + "\n")
        self.p.stdin.flush()
        while True:
            msg = json.loads(self.p.stdout.readline())
            if msg.get("id") == rid:
                return msg["result"]

    def call(self, tool, args):
        return self.request("tools/call", {"name": tool, "arguments": args})

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


def sizes(result):
    text = "\n".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")
    sc = result.get("structuredContent")
    sc_len = len(json.dumps(sc, ensure_ascii=False, separators=(",", ":"))) if sc is not None else 0
    if sc is not None:
        hermes = json.dumps({"result": text, "structuredContent": sc} if text else {"result": sc}, ensure_ascii=False)
    else:
        hermes = json.dumps({"result": text}, ensure_ascii=False)
    return len(text), sc_len, len(hermes)


def main(argv):
    bins = []
    for a in argv:
        label, _, path = a.partition("=")
        if not path:
            sys.exit(f"usage: {sys.argv[0]} LABEL=BINARY ...")
        bins.append((label, os.path.abspath(path)))
    with tempfile.TemporaryDirectory() as d:
        env = {"HOME": d, "HERMES_HOME": os.path.join(d, "hermes"), "PATH": os.environ.get("PATH", ""),
               "NO_COLOR": "1", "TZ": "UTC"}
        run(bins[0][1], env, "init")
        shown = seed(bins[0][1], env)
        calls = [
            ("`kanban_list {}`", "kanban_list", {}),
            ("`kanban_list {\"limit\": 200}`", "kanban_list", {"limit": 200}),
            ("`kanban_show` (2 parents, 3 comments, 10 heartbeats)", "kanban_show", {"task_id": shown}),
        ]
        rows = {}
        for label, binary in bins:
            peer = Peer(binary, env)
            for name, tool, args in calls:
                r = peer.call(tool, args)
                rows.setdefault(name, []).append(sizes(r))
            peer.close()
    head = "| result (1,000-task board) | " + " | ".join(
        f"{label}: text / structuredContent / sent by Hermes" for label, _ in bins) + " |"
    print(head)
    print("|---|" + "---|" * len(bins))
    for name, per in rows.items():
        cells = " | ".join(f"{t:,} / {s:,} / **{h:,}**" for t, s, h in per)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main(sys.argv[1:])
