//! `schemas/<tool>.json` are generated from the tools' schemars parameter types (in the portable
//! form the server lists; the second test checks it against Gemini's and OpenAI's rules). This
//! test fails when a file is missing, stale or extra; regenerate with
//! `UPDATE_SCHEMAS=1 cargo test --test it mcp::schemas`.

use std::collections::BTreeSet;
use std::path::Path;

use hermes_kanban::mcp::KanbanMcp;

#[test]
fn schema_files_match_the_tool_definitions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let tools = KanbanMcp::all_tools();
    assert_eq!(tools.len(), 15, "the 15 kanban_* tools");
    let mut expected = BTreeSet::new();
    let mut stale = Vec::new();
    for t in &tools {
        let name = format!("{}.json", t.name);
        let doc = serde_json::json!({
            "name": t.name,
            "description": t.description,
            "annotations": t.annotations,
            "inputSchema": t.input_schema.as_ref(),
        });
        let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
        let path = dir.join(&name);
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name.clone());
        }
        expected.insert(name);
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let extra: Vec<_> = present.difference(&expected).collect();
    assert!(
        stale.is_empty() && extra.is_empty(),
        "schemas/ is out of date (stale: {stale:?}, extra: {extra:?}); run `UPDATE_SCHEMAS=1 cargo \
         test --test it mcp::schemas`"
    );
}

/// Every tool's input schema is in the Gemini function-declaration subset (type, format,
/// description, nullable, enum, properties, required, items, minItems, maxItems, minimum,
/// maximum — nothing else) and follows the OpenAI function-parameters rules (top-level
/// `type: object`; no `$schema`, `$ref`/`$defs`, `oneOf`/`anyOf`/`allOf`, `const`, type
/// arrays). Checked twice: with the server's own checker and by walking the JSON here.
#[test]
fn every_input_schema_is_portable_across_llm_apis() {
    use serde_json::Value;
    const GEMINI: &[&str] = &[
        "type",
        "format",
        "description",
        "nullable",
        "enum",
        "properties",
        "required",
        "items",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
    ];
    const FORBIDDEN: &[&str] = &[
        "$schema",
        "$ref",
        "$defs",
        "definitions",
        "oneOf",
        "anyOf",
        "allOf",
        "not",
        "const",
        "default",
        "title",
        "examples",
        "additionalProperties",
        "patternProperties",
    ];
    fn walk(v: &Value, at: &str, bad: &mut Vec<String>) {
        let m = v
            .as_object()
            .unwrap_or_else(|| panic!("{at}: not an object: {v}"));
        for (k, val) in m {
            if !GEMINI.contains(&k.as_str()) || FORBIDDEN.contains(&k.as_str()) {
                bad.push(format!("{at}: keyword {k}"));
            }
            if k == "type" && !val.is_string() {
                bad.push(format!("{at}: type {val} is not one string"));
            }
        }
        if !m.contains_key("type") {
            bad.push(format!("{at}: no type"));
        }
        if let Some(p) = m.get("properties").and_then(Value::as_object) {
            for (name, s) in p {
                walk(s, &format!("{at}.{name}"), bad);
            }
        }
        if let Some(i) = m.get("items") {
            walk(i, &format!("{at}[]"), bad);
        }
        if m.get("type").and_then(Value::as_str) == Some("array") && !m.contains_key("items") {
            bad.push(format!("{at}: array without items"));
        }
    }
    let tools = KanbanMcp::all_tools();
    let mut bad = Vec::new();
    for t in &tools {
        let schema = Value::Object(t.input_schema.as_ref().clone());
        assert_eq!(schema["type"], "object", "{}: top-level type", t.name);
        assert!(schema["properties"].is_object(), "{}: properties", t.name);
        walk(&schema, &t.name, &mut bad);
        for v in hermes_kanban::mcp::portable::violations(&schema) {
            bad.push(format!("{}: {v}", t.name));
        }
    }
    assert!(bad.is_empty(), "non-portable schemas:\n{}", bad.join("\n"));

    // The shapes that used to be non-portable now say what they are.
    let find = |tool: &str, prop: &str| -> Value {
        let t = tools.iter().find(|t| t.name == tool).expect(tool);
        t.input_schema["properties"][prop].clone()
    };
    assert_eq!(find("kanban_complete", "metadata")["type"], "object");
    assert_eq!(find("kanban_complete", "summary")["type"], "string");
    assert_eq!(find("kanban_complete", "created_cards")["type"], "array");
    assert_eq!(
        find("kanban_complete", "created_cards")["items"]["type"],
        "string"
    );
    assert_eq!(find("kanban_create", "triage")["type"], "boolean");
    let kind = find("kanban_block", "kind");
    assert_eq!(kind["type"], "string");
    assert_eq!(
        kind["enum"],
        serde_json::json!(["dependency", "needs_input", "capability", "transient"])
    );
    assert!(
        kind["description"]
            .as_str()
            .unwrap()
            .contains("needs_input = "),
        "variant docs folded into the description: {kind}"
    );
    let status = find("kanban_list", "status");
    assert_eq!(status["enum"].as_array().unwrap().len(), 9);
    // Optional means "not required"; required fields are listed.
    let block = tools.iter().find(|t| t.name == "kanban_block").unwrap();
    assert_eq!(
        block.input_schema["required"],
        serde_json::json!(["reason"])
    );
    let show = tools.iter().find(|t| t.name == "kanban_show").unwrap();
    assert!(show.input_schema.get("required").is_none());
}

/// The schemas survive Hermes Agent 0.19.0's own MCP pipeline for a Gemini model: its MCP
/// client's `_normalize_mcp_input_schema`, then `sanitize_gemini_schema` (what it sends as a
/// Gemini function declaration). Every property keeps one `type` and its allowed values
/// (before the portable form, 30+ properties came out with a type list or no type at all).
/// Hermes comes from `HK_HERMES` (its venv's `bin/hermes`), which `scripts/test` exports after
/// installing hermes-agent==0.19.0; without it this test fails.
#[test]
fn hermes_keeps_every_type_and_enum_for_gemini() {
    let hermes = std::env::var_os("HK_HERMES").unwrap_or_else(|| {
        panic!(
            "HK_HERMES is not set: run `bash scripts/interop --install-only` and export \
             HK_HERMES=$PWD/target/hermes-venv/bin/hermes (scripts/test does both)"
        )
    });
    let python = Path::new(&hermes).with_file_name("python");
    assert!(python.exists(), "{} does not exist", python.display());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join("schemas"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let out = std::process::Command::new(&python)
        .arg(root.join("tests/python/hermes_schema_check.py"))
        .args(&files)
        .env("HERMES_DISABLE_LAZY_INSTALLS", "1")
        .env("TIRITH_ENABLED", "false")
        .env(
            "HERMES_HOME",
            std::env::temp_dir().join("hk-schema-check-hermes"),
        )
        .output()
        .expect("run Hermes' python");
    assert!(
        out.status.success(),
        "hermes_schema_check.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the check prints JSON");
    let checked = report["_checked"].as_i64().unwrap_or(0);
    assert!(checked >= 60, "checked only {checked} properties: {report}");
    let lost: Vec<_> = report
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "_checked")
        .collect();
    assert!(lost.is_empty(), "lost through Hermes for Gemini: {lost:#?}");
}
