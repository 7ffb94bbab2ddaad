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
    // Only the hash is stored.
    assert!(
        !tb.board
            .snapshot()
            .unwrap()
            .iter()
            .any(|r| r.contains(&token))
    );
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
