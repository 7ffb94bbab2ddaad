//! `schemas/<tool>.json` are generated from the tools' schemars parameter types. This test fails
//! when a file is missing, stale or extra; regenerate with
//! `UPDATE_SCHEMAS=1 cargo test --test mcp_schemas`.

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
    assert_eq!(tools.len(), 11, "the 11 kanban_* tools");
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
        "schemas/ is out of date (stale: {stale:?}, extra: {extra:?}); run `UPDATE_SCHEMAS=1 cargo test --test mcp_schemas`"
    );
}
