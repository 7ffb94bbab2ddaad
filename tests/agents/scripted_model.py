#!/usr/bin/env python3
"""Scripted OpenAI-compatible model server for agent end-to-end tests.

Owns: a deterministic, stateless stand-in for an LLM so that real agents
(Hermes Agent, Codex CLI, ...) can be driven through the kanban tools without
network access or API keys. Python 3 stdlib only.

Usage:
    python3 scripted_model.py [--port N] [--log FILE]

Prints ``PORT <n>`` as its first stdout line (flushed), then serves on
127.0.0.1 until killed. ``--log FILE`` appends one JSONL line per request
({"path", "method", "body"}) so tests can assert which tools a client offered.

Endpoints (any API key accepted):
    GET  /v1/models            lists the script names
    POST /v1/chat/completions  chat completions, streaming (SSE) or not
    POST /v1/responses         Responses API, streaming (SSE) or not
(The same paths without the /v1 prefix are accepted too.)

The script is chosen by the requested model name (substring match, so
"openai/scripted-complete" works):
    scripted-complete    show -> heartbeat -> complete -> final text
    scripted-block       show -> block -> final text
    scripted-quit        show -> final text (no complete/block)
    scripted-list-tools  final text at once (used to record offered tools)
The task id is the first ``t_[0-9a-f]{8}`` found in the conversation (user
messages first, then everything else). The step is the number of tool results
already in the conversation, so no state is kept between requests.

Tool names differ per client (Hermes native ``kanban_show``, Hermes MCP
``mcp_<server>_kanban_show``; Codex 0.171 offers MCP tools as a namespace,
``{"type": "namespace", "name": "mcp__<server>", "tools": [{"type":
"function", "name": "kanban_show", ...}]}``, and gets ``namespace`` back on the
function_call): the offered tool whose name ends with the wanted suffix is
used. If none is offered the model answers the text "scripted: tool X not
offered".
"""

import argparse
import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCRIPTS = {
    "scripted-complete": ["kanban_show", "kanban_heartbeat", "kanban_complete"],
    "scripted-block": ["kanban_show", "kanban_block"],
    "scripted-quit": ["kanban_show"],
    "scripted-list-tools": [],
}
# Longest names first so that a name containing another never matches wrongly.
SCRIPT_NAMES = sorted(SCRIPTS, key=len, reverse=True)
TASK_RE = re.compile(r"t_[0-9a-f]{8}")
LOG_LOCK = threading.Lock()
LOG_PATH = None


# ----------------------------------------------------------------------------
# Conversation analysis (shared by both wire formats)
# ----------------------------------------------------------------------------


def pick_script(model):
    model = str(model or "")
    for name in SCRIPT_NAMES:
        if name in model:
            return name
    return None


def offered_tools(tools):
    """Returns [(name, namespace_or_None)] for every function tool offered."""
    out = []
    for tool in tools or []:
        if not isinstance(tool, dict):
            continue
        fn = tool.get("function")
        if isinstance(fn, dict) and fn.get("name"):
            out.append((fn["name"], None))
        elif tool.get("name") and not isinstance(tool.get("tools"), list):
            out.append((tool["name"], None))
        if isinstance(tool.get("tools"), list):  # a namespace of tools
            ns = tool.get("name")
            for inner, _ in offered_tools(tool["tools"]):
                out.append((inner, ns))
    return out


def find_tool(tools, suffix):
    for name, ns in tools:
        if name == suffix or name.endswith("_" + suffix) or name.endswith(suffix):
            return name, ns
    return None


def text_of(value):
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def find_task_id(first, rest):
    for part in (first, rest):
        for chunk in part:
            m = TASK_RE.search(text_of(chunk))
            if m:
                return m.group(0)
    return None


def decide(model, tools, task_chunks, other_chunks, tool_results):
    """Returns ("tool", name, namespace, args) or ("text", message)."""
    script = pick_script(model)
    if script is None:
        return ("text", "scripted: unknown model %r; use one of %s" % (model, ", ".join(sorted(SCRIPTS))))
    steps = SCRIPTS[script]
    if tool_results >= len(steps):
        if script == "scripted-list-tools":
            return ("text", "scripted: listed %d tools" % len(tools))
        if script == "scripted-quit":
            return ("text", "scripted: quitting without completing the task")
        return ("text", "scripted: done (%s)" % script)
    task_id = find_task_id(task_chunks, other_chunks)
    if task_id is None:
        return ("text", "scripted: no task id (t_xxxxxxxx) found in the conversation")
    wanted = steps[tool_results]
    found = find_tool(tools, wanted)
    if found is None:
        return ("text", "scripted: tool %s not offered" % wanted)
    name, ns = found
    if wanted == "kanban_show":
        args = {"task_id": task_id}
    elif wanted == "kanban_heartbeat":
        args = {"task_id": task_id, "note": "scripted heartbeat"}
    elif wanted == "kanban_complete":
        args = {
            "task_id": task_id,
            "summary": "scripted summary for %s" % task_id,
            "metadata": {"scripted": True, "task": task_id},
        }
    else:  # kanban_block
        args = {"task_id": task_id, "reason": "scripted: need a decision"}
    return ("tool", name, ns, args)


def analyse_chat(body):
    messages = body.get("messages") or []
    user = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    other = [m for m in messages if isinstance(m, dict) and m.get("role") != "user"]
    results = sum(1 for m in messages if isinstance(m, dict) and m.get("role") in ("tool", "function"))
    return decide(body.get("model"), offered_tools(body.get("tools")), user, other, results)


RESULT_TYPES = ("function_call_output", "custom_tool_call_output", "mcp_tool_call_output", "tool_search_output")


def analyse_responses(body):
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    items = items or []
    user = [i.get("content") for i in items if isinstance(i, dict) and i.get("role") == "user"]
    other = [i for i in items if isinstance(i, dict) and i.get("role") != "user"]
    if body.get("instructions"):
        other.append(body["instructions"])
    results = sum(1 for i in items if isinstance(i, dict) and i.get("type") in RESULT_TYPES)
    return decide(body.get("model"), offered_tools(body.get("tools")), user, other, results)


def new_id(prefix):
    return prefix + uuid.uuid4().hex[:24]


# ----------------------------------------------------------------------------
# Wire formats
# ----------------------------------------------------------------------------


def chat_message(decision):
    if decision[0] == "tool":
        _, name, _ns, args = decision
        call = {
            "id": new_id("call_"),
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    return {"role": "assistant", "content": decision[1]}, "stop"


USAGE_CHAT = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def chat_full(body, decision):
    message, finish = chat_message(decision)
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or "scripted",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": USAGE_CHAT,
    }


def chat_stream_chunks(body, decision):
    message, finish = chat_message(decision)
    base = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model") or "scripted",
    }

    def chunk(delta, finish_reason=None):
        c = dict(base)
        c["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
        return c

    yield chunk({"role": "assistant", "content": ""})
    if message.get("tool_calls"):
        for index, call in enumerate(message["tool_calls"]):
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": call["function"]["arguments"]}}]})
    else:
        yield chunk({"content": message["content"]})
    yield chunk({}, finish)
    opts = body.get("stream_options") or {}
    if opts.get("include_usage"):
        c = dict(base)
        c["choices"] = []
        c["usage"] = USAGE_CHAT
        yield c


USAGE_RESPONSES = {
    "input_tokens": 10,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 5,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 15,
}


def responses_item(decision):
    if decision[0] == "tool":
        _, name, ns, args = decision
        item = {
            "type": "function_call",
            "id": new_id("fc_"),
            "call_id": new_id("call_"),
            "name": name,
            "arguments": json.dumps(args),
            "status": "completed",
        }
        if ns:
            item["namespace"] = ns
        return item
    return {
        "type": "message",
        "id": new_id("msg_"),
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": decision[1], "annotations": []}],
    }


def response_object(body, resp_id, status, output, usage):
    return {
        "id": resp_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": body.get("model") or "scripted",
        "output": output,
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
        "error": None,
        "incomplete_details": None,
    }


def responses_full(body, decision):
    return response_object(body, new_id("resp_"), "completed", [responses_item(decision)], USAGE_RESPONSES)


def responses_events(body, decision):
    resp_id = new_id("resp_")
    item = responses_item(decision)
    seq = [0]

    def ev(kind, **fields):
        e = {"type": kind, "sequence_number": seq[0]}
        e.update(fields)
        seq[0] += 1
        return kind, e

    yield ev("response.created", response=response_object(body, resp_id, "in_progress", [], None))
    yield ev("response.in_progress", response=response_object(body, resp_id, "in_progress", [], None))
    if item["type"] == "function_call":
        added = dict(item, arguments="", status="in_progress")
        yield ev("response.output_item.added", output_index=0, item=added)
        yield ev("response.function_call_arguments.delta", item_id=item["id"], output_index=0, delta=item["arguments"])
        yield ev("response.function_call_arguments.done", item_id=item["id"], output_index=0, arguments=item["arguments"])
    else:
        text = item["content"][0]["text"]
        added = dict(item, content=[], status="in_progress")
        yield ev("response.output_item.added", output_index=0, item=added)
        part = {"type": "output_text", "text": "", "annotations": []}
        yield ev("response.content_part.added", item_id=item["id"], output_index=0, content_index=0, part=part)
        yield ev("response.output_text.delta", item_id=item["id"], output_index=0, content_index=0, delta=text)
        yield ev("response.output_text.done", item_id=item["id"], output_index=0, content_index=0, text=text)
        yield ev(
            "response.content_part.done",
            item_id=item["id"],
            output_index=0,
            content_index=0,
            part=dict(part, text=text),
        )
    yield ev("response.output_item.done", output_index=0, item=item)
    yield ev("response.completed", response=response_object(body, resp_id, "completed", [item], USAGE_RESPONSES))


# ----------------------------------------------------------------------------
# HTTP
# ----------------------------------------------------------------------------


def log_request(method, path, body):
    if not LOG_PATH:
        return
    line = json.dumps({"method": method, "path": path, "body": body}, ensure_ascii=False)
    with LOG_LOCK:
        with open(LOG_PATH, "a", encoding="utf-8") as f:
            f.write(line + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scripted-model/1"

    def log_message(self, fmt, *args):  # keep stderr quiet; --log has the requests
        pass

    def _path(self):
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.startswith("/v1/"):
            path = path[3:]
        return path

    def _send_json(self, status, obj):
        data = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _sse(self, text):
        self.wfile.write(text.encode("utf-8"))
        self.wfile.flush()

    def do_GET(self):
        path = self._path()
        log_request("GET", self.path, None)
        if path == "/models":
            data = [{"id": n, "object": "model", "created": 0, "owned_by": "scripted"} for n in sorted(SCRIPTS)]
            self._send_json(200, {"object": "list", "data": data})
        elif path in ("", "/health"):
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"error": {"message": "no such path %s" % self.path, "type": "not_found"}})

    def do_DELETE(self):
        log_request("DELETE", self.path, None)
        self._send_json(200, {"deleted": True})

    def do_POST(self):
        path = self._path()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except (ValueError, UnicodeDecodeError) as exc:
            log_request("POST", self.path, {"unparsed": raw.decode("utf-8", "replace")})
            self._send_json(400, {"error": {"message": "body is not JSON: %s" % exc, "type": "invalid_request_error"}})
            return
        log_request("POST", self.path, body)
        if not isinstance(body, dict):
            self._send_json(400, {"error": {"message": "body must be a JSON object", "type": "invalid_request_error"}})
            return
        try:
            if path == "/chat/completions":
                decision = analyse_chat(body)
                if body.get("stream"):
                    self._start_sse()
                    for chunk in chat_stream_chunks(body, decision):
                        self._sse("data: %s\n\n" % json.dumps(chunk))
                    self._sse("data: [DONE]\n\n")
                else:
                    self._send_json(200, chat_full(body, decision))
            elif path == "/responses":
                decision = analyse_responses(body)
                if body.get("stream"):
                    self._start_sse()
                    for kind, event in responses_events(body, decision):
                        self._sse("event: %s\ndata: %s\n\n" % (kind, json.dumps(event)))
                else:
                    self._send_json(200, responses_full(body, decision))
            else:
                self._send_json(404, {"error": {"message": "no such path %s" % self.path, "type": "not_found"}})
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    global LOG_PATH
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible model server for agent tests.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--log", help="append every request as one JSONL line to this file")
    args = parser.parse_args()
    LOG_PATH = args.log
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    sys.stdout.write("PORT %d\n" % server.server_address[1])
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
