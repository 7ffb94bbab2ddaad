mod common;
use common::TestBoard;
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
