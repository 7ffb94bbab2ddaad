#!/usr/bin/env python3
"""A real MCP client (the Python `mcp` SDK from PyPI, 2.3.0) driven by tests/mcp_python.rs.

It connects to hermes-kanban over stdio (`hermes-kanban mcp`, a child process) or streamable
HTTP (`hermes-kanban serve`, at /mcp), in `mode="auto"` (server/discover, 2026-07-28) or
`mode="legacy"` (the initialize handshake), and plays one of two roles:

worker        the lifecycle a spawned worker goes through on its own task:
              kanban_show (no args) -> kanban_heartbeat(note) -> kanban_comment ->
              kanban_create(child, parents=[own]) -> kanban_complete(summary, metadata,
              created_cards=[child]); plus the refusals a worker must get (orchestrator tools,
              other tasks) and, over HTTP, that the run token stops working once the run ended.
orchestrator  an unscoped session (stdio without HERMES_KANBAN_TASK, or HTTP from loopback
              without a token): every tool is listed, kanban_list and kanban_show by id work.

Every result shape is asserted here; on success one JSON report is printed on stdout (the
harness checks the database afterwards through the CLI). Any failed check exits 1 with the
reason on stderr. Usage:

  mcp_client.py --role worker --transport stdio --command BIN [--arg mcp] --env K=V ... \
      --mode auto --task t_x --expect-tools kanban_show,... [--run-id 1]
  mcp_client.py --role worker --transport http --url http://127.0.0.1:P/mcp --token hkr_... ...
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any

import anyio
import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

try:
    BaseExceptionGroup
except NameError:  # Python 3.10 (mcp supports >= 3.10); anyio brings the backport
    from exceptiongroup import BaseExceptionGroup

TIMEOUT = 60.0


class CheckFailed(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise CheckFailed(what)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--role", choices=["worker", "orchestrator"], required=True)
    p.add_argument("--transport", choices=["stdio", "http"], required=True)
    p.add_argument("--mode", choices=["auto", "legacy"], default="auto")
    p.add_argument("--command", help="stdio: the server executable")
    p.add_argument("--arg", action="append", default=[], help="stdio: a server argument (repeat)")
    p.add_argument("--env", action="append", default=[], help="stdio: KEY=VALUE for the server (repeat)")
    p.add_argument("--url", help="http: the MCP endpoint")
    p.add_argument("--token", help="http: bearer run token (worker scope)")
    p.add_argument("--task", required=True, help="the task to work (worker) or look at (orchestrator)")
    p.add_argument("--run-id", type=int, help="worker: the run the task was claimed with")
    p.add_argument("--expect-tools", required=True, help="comma-separated exact tool set")
    a = p.parse_args(argv)
    if a.transport == "stdio" and not a.command:
        p.error("--transport stdio needs --command")
    if a.transport == "http" and not a.url:
        p.error("--transport http needs --url")
    return a


def server_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for kv in pairs:
        k, sep, v = kv.partition("=")
        if not sep:
            raise SystemExit(f"--env wants KEY=VALUE, got {kv!r}")
        env[k] = v
    return env


def make_client(a: argparse.Namespace, token: str | None, stack: Any, statuses: list[int] | None = None) -> Client:
    """A `mcp.Client` for the chosen transport. Over HTTP the SDK takes custom headers through
    the httpx2 client handed to `streamable_http_client` (mcp 2.3.0 has no `headers=` on
    `Client`); a bare URL string gives the default unauthenticated client. `statuses` collects
    the HTTP status of every response (the SDK reports a 401 only as a generic MCPError)."""
    if a.transport == "stdio":
        params = StdioServerParameters(command=a.command, args=a.arg, env=server_env(a.env))
        return Client(params, mode=a.mode, read_timeout_seconds=TIMEOUT)
    if token is None:
        return Client(a.url, mode=a.mode, read_timeout_seconds=TIMEOUT)
    async def record(response: Any) -> None:
        if response.request.method == "DELETE":
            DELETE_STATUSES.append(response.status_code)
        elif statuses is not None:
            statuses.append(response.status_code)

    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(30.0, read=300.0),
        event_hooks={"response": [record]},
    )
    stack.append(http)
    return Client(streamable_http_client(a.url, http_client=http), mode=a.mode, read_timeout_seconds=TIMEOUT)


def leaf_exceptions(e: BaseException) -> list[BaseException]:
    """The non-group exceptions inside `e` (anyio task groups wrap transport errors)."""
    if isinstance(e, BaseExceptionGroup):
        return [x for sub in e.exceptions for x in leaf_exceptions(sub)]
    return [e]


def expected_protocol(mode: str) -> str:
    return "2026-07-28" if mode == "auto" else "2025-11-25"


BOARDS_SEEN: set[str] = set()
# Statuses of the session DELETEs the SDK sends on close (must be 200/204, never 401/202).
DELETE_STATUSES: list[int] = []


def structured(r: Any, tool: str) -> dict[str, Any]:
    """A successful tool result: not isError, one compact text block (not the JSON again)
    and the JSON as structuredContent, both naming the board. Returns the JSON without
    `board` (recorded in BOARDS_SEEN)."""
    text = " ".join(getattr(c, "text", "") for c in r.content)
    check(not r.is_error, f"{tool}: unexpected isError result: {text}")
    check(isinstance(r.structured_content, dict), f"{tool}: no structuredContent object: {r!r}")
    check(len(r.content) == 1 and r.content[0].type == "text", f"{tool}: expected one text block: {r.content!r}")
    try:
        json.loads(r.content[0].text)
        raise CheckFailed(f"{tool}: the text block repeats the JSON: {r.content[0].text[:200]!r}")
    except json.JSONDecodeError:
        pass
    out = dict(r.structured_content)
    board = out.pop("board", None)
    check(isinstance(board, str) and board, f"{tool}: structuredContent names no board: {r.structured_content}")
    check(f"board {board}" in r.content[0].text, f"{tool}: text names no board: {r.content[0].text[:200]!r}")
    BOARDS_SEEN.add(board)
    return out


def tool_error(r: Any, tool: str, needle: str) -> str:
    """A refused call: isError with a one-line message containing `needle`."""
    check(r.is_error is True, f"{tool}: expected isError, got {r!r}")
    text = " ".join(getattr(c, "text", "") for c in r.content)
    check(needle in text, f"{tool}: error should mention {needle!r}: {text!r}")
    check("\n" not in text, f"{tool}: error message is not one line: {text!r}")
    return text


async def common_session_checks(c: Client, a: argparse.Namespace, report: dict[str, Any]) -> list[Any]:
    report["protocol_version"] = c.protocol_version
    check(
        c.protocol_version == expected_protocol(a.mode),
        f"negotiated {c.protocol_version}, expected {expected_protocol(a.mode)} for mode={a.mode}",
    )
    info = c.server_info
    check(info is not None and info.name == "hermes-kanban", f"server_info: {info!r}")
    report["server"] = {"name": info.name, "version": info.version}
    tools = (await c.list_tools()).tools
    names = sorted(t.name for t in tools)
    report["tools"] = names
    want = sorted(x for x in a.expect_tools.split(",") if x)
    check(names == want, f"tools/list: got {names}, expected {want}")
    gemini = {"type", "format", "description", "nullable", "enum", "properties", "required",
              "items", "minItems", "maxItems", "minimum", "maximum"}

    def portable(node: Any, at: str) -> None:
        check(isinstance(node, dict), f"{at}: schema is not an object")
        extra = set(node) - gemini
        check(not extra, f"{at}: keywords outside the portable subset: {sorted(extra)}")
        check(isinstance(node.get("type"), str), f"{at}: needs exactly one type: {node.get('type')!r}")
        for name, sub in (node.get("properties") or {}).items():
            portable(sub, f"{at}.{name}")
        if "items" in node:
            portable(node["items"], f"{at}[]")

    for t in tools:
        check((t.input_schema or {}).get("type") == "object", f"{t.name}: top-level type is not object")
        portable(t.input_schema, t.name)
        props = (t.input_schema or {}).get("properties", {})
        check("board" in props, f"{t.name}: input schema has no optional `board`: {t.input_schema}")
        ro = bool(t.annotations and t.annotations.read_only_hint)
        want_ro = t.name in ("kanban_show", "kanban_list", "kanban_attachments")
        check(ro == want_ro, f"{t.name}: readOnlyHint is {ro}, expected {want_ro}")
    prompts = sorted(p.name for p in (await c.list_prompts()).prompts)
    report["prompts"] = prompts
    check({"kanban-guidance", "kanban-orchestrator"} <= set(prompts), f"prompts/list: {prompts}")
    return tools


async def worker(a: argparse.Namespace, report: dict[str, Any]) -> None:
    task = a.task
    closers: list[Any] = []
    statuses: list[int] = []
    try:
        async with make_client(a, a.token, closers, statuses) as c:
            check(
                "You are working one task" in (c.instructions or ""),
                f"worker instructions missing: {c.instructions!r:.120}",
            )
            await common_session_checks(c, a, report)
            steps: list[str] = []

            # 1. Orient: kanban_show with no arguments reads the worker's own task.
            shown = structured(await c.call_tool("kanban_show", {}), "kanban_show")
            t = shown["task"]
            check(t["id"] == task, f"kanban_show: own task is {t['id']}, expected {task}")
            check(t["status"] == "running", f"kanban_show: status {t['status']}, expected running")
            if a.run_id is not None:
                check(t["current_run_id"] == a.run_id, f"kanban_show: current_run_id {t['current_run_id']}")
            check(isinstance(shown["worker_context"], str) and t["title"] in shown["worker_context"],
                  "kanban_show: worker_context lacks the title")
            for key in ("parents", "children", "events", "runs"):
                check(isinstance(shown[key], list), f"kanban_show: {key} is not a list")
            check("body" not in t and "comments" not in shown,
                  "kanban_show: body/comments are in worker_context only")
            check(any(r["status"] == "running" for r in shown["runs"]), "kanban_show: no running run")
            report["title"] = t["title"]
            steps.append("show")

            # Refusals a worker must get (and that change nothing).
            try:
                await c.call_tool("kanban_list", {})
                raise CheckFailed("kanban_list: a worker could call an orchestrator tool")
            except MCPError as e:
                report["worker_list_refused"] = str(e)
            steps.append("list-refused")

            # 2. Heartbeat with a note.
            hb = structured(await c.call_tool("kanban_heartbeat", {"note": "compiling, 40% done"}), "kanban_heartbeat")
            check(hb == {"ok": True, "task_id": task}, f"kanban_heartbeat: {hb}")
            steps.append("heartbeat")

            # 3. Comment on the own task.
            cm = structured(
                await c.call_tool("kanban_comment", {"task_id": task, "body": "Found the bug in `parse()`; fixing."}),
                "kanban_comment",
            )
            check(cm.get("ok") is True and cm.get("task_id") == task, f"kanban_comment: {cm}")
            check(isinstance(cm.get("comment_id"), int) and cm["comment_id"] > 0, f"kanban_comment id: {cm}")
            steps.append("comment")

            # 4. A follow-up for another profile, waiting on this task.
            cr = structured(
                await c.call_tool(
                    "kanban_create",
                    {
                        "title": "Review the parse() fix",
                        "assignee": "reviewer",
                        "body": "Check the fix and its tests.",
                        "parents": [task],
                    },
                ),
                "kanban_create",
            )
            child = cr.get("task_id")
            check(cr.get("ok") is True and isinstance(child, str) and child.startswith("t_"), f"kanban_create: {cr}")
            check(child != task, "kanban_create: returned the parent's id")
            check(cr.get("status") == "todo", f"kanban_create: child waiting on a running parent is {cr.get('status')}")
            report["child_id"] = child
            steps.append("create")

            # A worker may not close someone else's task.
            refused = tool_error(
                await c.call_tool("kanban_complete", {"task_id": child, "summary": "not mine"}),
                "kanban_complete(foreign)",
                "scoped to task",
            )
            report["foreign_complete_refused"] = refused
            steps.append("foreign-refused")

            # 5. Hand off.
            metadata = {"changed_files": ["src/parse.rs"], "tests": {"passed": 12, "failed": 0}, "via": a.transport}
            summary = f"Fixed parse() over {a.transport}/{a.mode}; follow-up review card created."
            done = structured(
                await c.call_tool(
                    "kanban_complete",
                    {"summary": summary, "metadata": metadata, "created_cards": [child]},
                ),
                "kanban_complete",
            )
            check(done.get("ok") is True and done.get("task_id") == task, f"kanban_complete: {done}")
            if a.run_id is not None:
                check(done.get("run_id") == a.run_id, f"kanban_complete: closed run {done.get('run_id')}, expected {a.run_id}")
            report["run_id"] = done.get("run_id")
            report["summary"] = summary
            report["metadata"] = metadata
            steps.append("complete")

            if a.transport == "stdio":
                # The stdio session stays usable: the task now reads as done.
                after = structured(await c.call_tool("kanban_show", {}), "kanban_show(after)")
                check(after["task"]["status"] == "done", f"after complete: {after['task']['status']}")
                steps.append("show-done")
            report["steps"] = steps
            if a.transport == "http":
                check(statuses and all(200 <= s < 300 for s in statuses), f"HTTP statuses: {statuses}")
                report["http_statuses"] = sorted(set(statuses))
    finally:
        for h in closers:
            await h.aclose()

    if a.transport == "http":
        report["delete_statuses"] = list(DELETE_STATUSES)
        # The run ended, so its token no longer grants anything.
        closers = []
        statuses = []
        try:
            with anyio.fail_after(30):
                async with make_client(a, a.token, closers, statuses) as c:
                    await c.list_tools()
            raise CheckFailed("a run token still worked after its run was completed")
        except CheckFailed:
            raise
        except BaseException as e:  # the SDK surfaces the 401 as an exception (group)
            leaves = [f"{type(x).__name__}: {x}" for x in leaf_exceptions(e)]
            check(statuses != [] and set(statuses) == {401}, f"expired token: HTTP {statuses}, errors {leaves}")
            report["expired_token_rejected"] = {"http_statuses": statuses, "errors": leaves}
        finally:
            for h in closers:
                await h.aclose()


async def orchestrator(a: argparse.Namespace, report: dict[str, Any]) -> None:
    closers: list[Any] = []
    try:
        async with make_client(a, None, closers) as c:
            check(
                "Orchestrating a hermes-kanban board" in (c.instructions or ""),
                f"orchestrator instructions missing: {c.instructions!r:.120}",
            )
            await common_session_checks(c, a, report)
            lst = structured(await c.call_tool("kanban_list", {"limit": 50}), "kanban_list")
            ids = [t["id"] for t in lst["tasks"]]
            check(a.task in ids, f"kanban_list: {a.task} not in {ids}")
            check(lst["count"] == len(lst["tasks"]) and "next_cursor" not in lst, f"kanban_list: {lst}")
            check(set(lst["tasks"][0]) <= {"id", "title", "status", "assignee", "priority", "tenant", "parents"},
                  f"kanban_list: compact rows by default: {lst['tasks'][0]}")
            report["listed"] = ids
            # Paging with the opaque cursor walks the same tasks, one per page.
            paged: list[str] = []
            cursor = None
            while True:
                args: dict[str, Any] = {"limit": 1}
                if cursor:
                    args["cursor"] = cursor
                page = structured(await c.call_tool("kanban_list", args), "kanban_list(page)")
                paged += [t["id"] for t in page["tasks"]]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
                check(len(paged) <= len(ids), f"kanban_list paging does not end: {paged}")
            check(paged == ids, f"kanban_list pages {paged} != {ids}")
            report["paged"] = paged
            shown = structured(await c.call_tool("kanban_show", {"task_id": a.task}), "kanban_show")
            check(shown["task"]["id"] == a.task, f"kanban_show: {shown['task']['id']}")
            report["status"] = shown["task"]["status"]
            report["show_without_id"] = tool_error(
                await c.call_tool("kanban_show", {}), "kanban_show(no id)", "pass task_id"
            )
            report["unknown_task"] = tool_error(
                await c.call_tool("kanban_show", {"task_id": "t_00000000"}), "kanban_show(unknown)", "t_00000000"
            )
            report["steps"] = ["list", "show", "show-no-id-refused", "unknown-refused"]
    finally:
        for h in closers:
            await h.aclose()


async def main(a: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"role": a.role, "transport": a.transport, "mode": a.mode, "task_id": a.task}
    with anyio.fail_after(120):
        if a.role == "worker":
            await worker(a, report)
        else:
            await orchestrator(a, report)
    report["boards"] = sorted(BOARDS_SEEN)
    report["ok"] = True
    return report


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    try:
        rep = anyio.run(main, args)
    except CheckFailed as e:
        print(f"CHECK FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
    print(json.dumps(rep, sort_keys=True))
