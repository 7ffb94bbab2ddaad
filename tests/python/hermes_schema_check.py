"""Feed tool input schemas through Hermes Agent's own MCP schema pipeline and report what a
Gemini-backed model would lose. Run with the Python of a hermes-agent venv.

  hermes_schema_check.py SCHEMA_FILE...   (each a schemas/<tool>.json document)

Prints one JSON object: {"<tool>.<property>": "what was lost", ...} for every property that
does not come out with one `type` and its allowed values (`enum`) after `tools.mcp_tool._normalize_mcp_input_schema` followed by
`agent.gemini_schema.sanitize_gemini_schema` (what Hermes sends to Gemini function
declarations), plus "_checked": the number of properties looked at.
"""

import json
import sys

from agent.gemini_schema import sanitize_gemini_schema
from tools.mcp_tool import _normalize_mcp_input_schema


def walk(ours, theirs, at, lost, counter):
    counter[0] += 1
    t = ours.get("type")
    if not isinstance(theirs.get("type"), str):
        lost[at] = f"type {t!r} became {theirs.get('type')!r} (Gemini needs one type)"
    elif isinstance(t, str) and theirs["type"] != t:
        lost[at] = f"type {t!r} became {theirs['type']!r}"
    want_enum = ours.get("enum") or [v.get("const") for v in ours.get("oneOf", []) if "const" in v]
    if want_enum and [str(x) for x in want_enum] != [str(x) for x in theirs.get("enum", [])]:
        lost[at] = f"allowed values {want_enum} became {theirs.get('enum')}"
    for name, sub in (ours.get("properties") or {}).items():
        walk(sub, (theirs.get("properties") or {}).get(name, {}), f"{at}.{name}", lost, counter)
    if "items" in ours:
        walk(ours["items"], theirs.get("items") or {}, f"{at}[]", lost, counter)


def main(paths):
    lost, counter = {}, [0]
    for p in paths:
        doc = json.load(open(p))
        schema = doc["inputSchema"]
        sent = sanitize_gemini_schema(_normalize_mcp_input_schema(schema))
        for name, sub in (schema.get("properties") or {}).items():
            walk(sub, (sent.get("properties") or {}).get(name, {}), f"{doc['name']}.{name}", lost, counter)
    lost["_checked"] = counter[0]
    print(json.dumps(lost, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1:])
