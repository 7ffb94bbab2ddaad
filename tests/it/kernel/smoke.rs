use crate::helpers::TestBoard;
use hermes_kanban::kernel::*;

#[test]
fn create_claim_complete_promotes_child() {
    let tb = TestBoard::new();
    let a = tb.task("A");
    let b = tb.child("B", &[&a]);
    assert_eq!(tb.board.get_task(&b).unwrap().status, Status::Todo);
    let claim = tb.board.claim_task(&a, None).unwrap();
    tb.board
        .heartbeat_worker(&a, Some("half"), Some(claim.run_id))
        .unwrap();
    let done = tb
        .board
        .complete_task(Completion {
            task_id: a.clone(),
            summary: Some("did A".into()),
            metadata: Some(serde_json::json!({"files": ["x"]})),
            expected_run_id: Some(claim.run_id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(done.promoted, vec![b.clone()]);
    let ctx = tb.board.build_worker_context(&b).unwrap();
    assert!(ctx.contains("did A"), "{ctx}");
    assert!(ctx.contains(r#"_metadata_: `{"files": ["x"]}`"#), "{ctx}");
}

#[test]
fn run_tokens_grant_worker_scope_only_while_the_run_is_open() {
    let tb = TestBoard::new();
    let a = tb.task("A");
    assert!(matches!(
        tb.board.mint_run_token(&a, 1),
        Err(KernelError::StaleRun { .. })
    ));
    let claim = tb.board.claim_task(&a, None).unwrap();
    let token = tb.board.mint_run_token(&a, claim.run_id).unwrap();
    assert!(token.starts_with("hkr_") && token.len() == 68);
    let scope = tb.board.resolve_run_token(&token).unwrap().unwrap();
    assert_eq!(
        scope,
        RunScope {
            task_id: a.clone(),
            run_id: claim.run_id,
            live: true
        }
    );
    // Only the hash is stored (and the snapshot does show stored text).
    let rows = tb.board.snapshot().unwrap();
    assert!(!rows.iter().any(|r| r.contains(&token)));
    assert!(rows.iter().any(|r| r.contains(&token_hash(&token))));
    assert!(tb.board.resolve_run_token("hkr_nope").unwrap().is_none());
    tb.board
        .complete_task(Completion {
            task_id: a.clone(),
            summary: Some("ok".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(!tb.board.resolve_run_token(&token).unwrap().unwrap().live);
    assert_eq!(tb.board.prune_run_tokens().unwrap(), 1);
    assert!(tb.board.resolve_run_token(&token).unwrap().is_none());
}

#[test]
fn snapshot_lists_rows_by_key_with_neutral_values_and_sees_every_write() {
    let tb = TestBoard::new();
    let b = tb.task("B \"quoted\"");
    let a = tb.task("A");
    let before = tb.board.snapshot().unwrap();
    // Rows are `table|col=value|…`, tables by name, rows by primary key (not insertion).
    let tasks: Vec<&String> = before.iter().filter(|r| r.starts_with("tasks|")).collect();
    assert_eq!(tasks.len(), 2, "{before:#?}");
    let (lo, hi) = if a < b { (&a, &b) } else { (&b, &a) };
    assert!(
        tasks[0].starts_with(&format!("tasks|id=\"{lo}\"|")),
        "{}",
        tasks[0]
    );
    assert!(
        tasks[1].starts_with(&format!("tasks|id=\"{hi}\"|")),
        "{}",
        tasks[1]
    );
    let row_b = tasks.iter().find(|r| r.contains(&b)).unwrap();
    assert!(row_b.contains(r#"|title="B \"quoted\""|"#), "{row_b}");
    assert!(row_b.contains("|priority=0|"), "{row_b}");
    assert!(row_b.contains("|result=NULL|"), "{row_b}");
    let mut names: Vec<&str> = before
        .iter()
        .map(|r| r.split('|').next().unwrap())
        .collect();
    let listed = names.clone();
    names.sort();
    assert_eq!(names, listed, "tables in name order");
    // Any write shows: a comment adds a row; nothing else changes.
    tb.board.add_comment(&a, "me", "hello").unwrap();
    let after = tb.board.snapshot().unwrap();
    assert_ne!(after, before);
    let added: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
    assert!(
        added
            .iter()
            .any(|r| r.starts_with("task_comments|") && r.contains(r#""hello""#)),
        "{added:#?}"
    );
    assert!(
        before.iter().all(|r| after.contains(r)),
        "an old row changed"
    );
    // A read changes nothing.
    tb.board.get_task(&a).unwrap();
    assert_eq!(tb.board.snapshot().unwrap(), after);
}
