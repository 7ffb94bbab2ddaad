//! Kernel tests of the dashboard's calls (`src/kernel/board_view.rs`): the direct status move
//! of REF §5.2 with SPEC §3.3 fix 1, the board view's figures, active workers and board edits.

use crate::helpers::TestBoard;
use hermes_kanban::kernel::{
    BoardPatch, BoardViewQuery, Completion, DiagnosticsConfig, KernelError, NewTask, Status,
    create_board, update_board,
};

fn status(tb: &TestBoard, id: &str) -> Status {
    tb.board.get_task(id).unwrap().status
}

fn kinds(tb: &TestBoard, id: &str) -> Vec<(String, Option<serde_json::Value>)> {
    tb.board
        .list_events(id, None)
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.payload))
        .collect()
}

fn done(tb: &TestBoard, id: &str) {
    tb.board
        .complete_task(Completion {
            task_id: id.into(),
            summary: Some(format!("{id} finished")),
            ..Default::default()
        })
        .unwrap();
}

#[test]
fn direct_moves_to_todo_triage_and_back_to_ready() {
    let tb = TestBoard::new();
    let t = tb.task("a");
    let m = tb.board.set_status_direct(&t, Status::Todo).unwrap();
    assert_eq!(m.task.status, Status::Todo);
    assert_eq!(m.run_id, None);
    assert_eq!(
        kinds(&tb, &t).last().unwrap(),
        &(
            "status".to_string(),
            Some(serde_json::json!({"status": "todo"}))
        )
    );
    tb.board.set_status_direct(&t, Status::Triage).unwrap();
    assert_eq!(status(&tb, &t), Status::Triage);
    tb.board.set_status_direct(&t, Status::Ready).unwrap();
    assert_eq!(status(&tb, &t), Status::Ready);
    // Same status: nothing written.
    let n = tb.board.list_events(&t, None).unwrap().len();
    tb.board.set_status_direct(&t, Status::Ready).unwrap();
    assert_eq!(tb.board.list_events(&t, None).unwrap().len(), n);
}

#[test]
fn direct_move_refuses_other_targets_and_unfinished_parents() {
    let tb = TestBoard::new();
    let p = tb.task("parent");
    let c = tb.child("child", &[&p]);
    for to in [
        Status::Running,
        Status::Done,
        Status::Blocked,
        Status::Archived,
        Status::Review,
        Status::Scheduled,
    ] {
        let e = tb.board.set_status_direct(&c, to).unwrap_err();
        assert!(
            matches!(
                e,
                KernelError::Invalid {
                    field: "status",
                    ..
                }
            ),
            "{to}: {e}"
        );
    }
    let before = tb.board.snapshot().unwrap();
    let e = tb.board.set_status_direct(&c, Status::Ready).unwrap_err();
    assert_eq!(e.kind(), "refused");
    assert!(e.to_string().contains(&p), "names the parent: {e}");
    assert_eq!(
        tb.board.snapshot().unwrap(),
        before,
        "a refusal writes nothing"
    );
}

#[test]
fn archived_parent_satisfies_a_direct_ready_move() {
    // SPEC §3.3 fix 1: Hermes' dashboard accepted only `done` parents here.
    let tb = TestBoard::new();
    let p = tb.task("parent");
    let c = tb.child("child", &[&p]);
    tb.board.set_status_direct(&c, Status::Triage).unwrap();
    tb.board.archive_task(&p).unwrap();
    tb.board.set_status_direct(&c, Status::Ready).unwrap();
    assert_eq!(status(&tb, &c), Status::Ready);
}

#[test]
fn blocked_and_scheduled_tasks_are_unblocked_not_moved() {
    let tb = TestBoard::new();
    let t = tb.task("a");
    tb.board
        .schedule_task(&t, Some("later"), None, None)
        .unwrap();
    let e = tb.board.set_status_direct(&t, Status::Ready).unwrap_err();
    assert_eq!(e.kind(), "refused");
    assert!(e.to_string().contains("unblock"), "{e}");
    // → todo is a plain direct write.
    tb.board.set_status_direct(&t, Status::Todo).unwrap();
    assert_eq!(status(&tb, &t), Status::Todo);
}

#[test]
fn leaving_running_closes_the_run_as_reclaimed() {
    let tb = TestBoard::new();
    let t = tb.task("a");
    let claim = tb.board.claim_task(&t, None).unwrap();
    let m = tb.board.set_status_direct(&t, Status::Todo).unwrap();
    assert_eq!(m.run_id, Some(claim.run_id));
    let task = tb.board.get_task(&t).unwrap();
    assert_eq!(task.status, Status::Todo);
    assert_eq!(task.claim_lock, None);
    assert_eq!(task.current_run_id, None);
    let run = tb.board.get_run(claim.run_id).unwrap();
    assert_eq!(run.outcome.as_deref(), Some("reclaimed"));
    assert!(run.ended_at.is_some());
    let ev = tb.board.list_events(&t, None).unwrap();
    let last = ev.last().unwrap();
    assert_eq!(last.kind, "status");
    assert_eq!(last.run_id, Some(claim.run_id));
}

#[test]
fn reopening_a_done_parent_demotes_ready_children() {
    let tb = TestBoard::new();
    let p = tb.task("parent");
    let c1 = tb.child("c1", &[&p]);
    let c2 = tb.child("c2", &[&p]);
    done(&tb, &p);
    assert_eq!(status(&tb, &c1), Status::Ready);
    tb.board.claim_task(&c2, None).unwrap(); // running children are left alone
    let m = tb.board.set_status_direct(&p, Status::Todo).unwrap();
    assert_eq!(m.demoted, vec![c1.clone()]);
    assert_eq!(status(&tb, &c1), Status::Todo);
    assert_eq!(status(&tb, &c2), Status::Running);
    let (k, payload) = kinds(&tb, &c1).pop().unwrap();
    assert_eq!(k, "status");
    assert_eq!(
        payload,
        Some(serde_json::json!({"status": "todo", "reason": "parent_reopened", "parent": p}))
    );
    // Reopening an archived parent demotes too (archived satisfied the child).
    let q = tb.task("archived parent");
    let c3 = tb.child("c3", &[&q]);
    tb.board.archive_task(&q).unwrap();
    assert_eq!(status(&tb, &c3), Status::Ready);
    tb.board.set_status_direct(&q, Status::Triage).unwrap();
    assert_eq!(status(&tb, &c3), Status::Todo);
    // Done again → the child is promoted by recompute as usual.
    tb.board
        .reclaim_task(&c2, None, Default::default())
        .unwrap();
}

#[test]
fn board_view_counts_progress_summaries_and_diagnostics() {
    let tb = TestBoard::new();
    let p = tb.task("parent");
    let c1 = tb.child("c1", &[&p]);
    let c2 = tb.child("c2", &[&p]);
    tb.board.add_comment(&p, "me", "hello").unwrap();
    tb.board.add_comment(&p, "me", "again").unwrap();
    let arch = tb
        .board
        .create_task(NewTask {
            title: "gone".into(),
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .unwrap()
        .task
        .id;
    done(&tb, &p);
    done(&tb, &c1);
    tb.board.archive_task(&arch).unwrap();
    tb.advance(7200); // c2 is stranded in ready (assigned, unclaimed for 2 h)
    let cfg = DiagnosticsConfig::default();
    let v = tb
        .board
        .board_view(&BoardViewQuery::default(), &cfg)
        .unwrap();
    assert_eq!(v.cards.len(), 3, "archived excluded by default");
    assert_eq!(v.assignees, vec!["worker".to_string()]);
    assert!(v.tenants.is_empty(), "tenants of non-archived tasks only");
    assert_eq!(v.latest_event_id, tb.board.max_event_id().unwrap());
    let card = |id: &str| v.cards.iter().find(|c| c.task.id == id).unwrap();
    assert_eq!(card(&p).children, 2);
    assert_eq!(card(&p).children_done, 1);
    assert_eq!(card(&p).comment_count, 2);
    assert_eq!(
        card(&p).latest_summary.as_deref(),
        Some(&*format!("{p} finished"))
    );
    assert_eq!(card(&c2).parents, 1);
    assert_eq!(card(&c2).diagnostics[0].kind, "stranded_in_ready");
    assert!(card(&p).diagnostics.is_empty());
    let all = tb
        .board
        .board_view(
            &BoardViewQuery {
                include_archived: true,
                ..Default::default()
            },
            &cfg,
        )
        .unwrap();
    assert_eq!(all.cards.len(), 4);
    // Only some ids (incremental refresh), archived ones included when named.
    let some = tb
        .board
        .board_view(
            &BoardViewQuery {
                ids: Some(vec![c2.clone(), arch.clone(), "t_00000000".into()]),
                ..Default::default()
            },
            &cfg,
        )
        .unwrap();
    let ids: Vec<&str> = some.cards.iter().map(|c| c.task.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&c2.as_str()) && ids.contains(&arch.as_str()));
    assert_eq!(
        some.cards
            .iter()
            .find(|c| c.task.id == c2)
            .unwrap()
            .diagnostics
            .len(),
        1
    );
    // Tenant filter.
    let t = tb
        .board
        .board_view(
            &BoardViewQuery {
                tenant: Some("acme".into()),
                include_archived: true,
                ..Default::default()
            },
            &cfg,
        )
        .unwrap();
    assert_eq!(t.cards.len(), 1);
}

#[test]
fn active_workers_lists_open_runs_with_a_pid() {
    let tb = TestBoard::new();
    let a = tb.task("a");
    let b = tb.task("b");
    let ca = tb.board.claim_task(&a, None).unwrap();
    tb.board.claim_task(&b, None).unwrap();
    tb.board.set_worker_pid(&a, ca.run_id, 4321).unwrap();
    let w = tb.board.active_workers().unwrap();
    assert_eq!(w.len(), 1, "b has no pid yet");
    assert_eq!(w[0].run.task_id, a);
    assert_eq!(w[0].run.worker_pid, Some(4321));
    assert_eq!(w[0].task_title, "a");
    assert_eq!(w[0].task_status, Status::Running);
    tb.board.reclaim_task(&a, None, Default::default()).unwrap();
    tb.board.reclaim_task(&b, None, Default::default()).unwrap();
    assert!(tb.board.active_workers().unwrap().is_empty());
}

#[test]
fn board_metadata_edits() {
    let tb = TestBoard::new();
    create_board(&tb.env, "lab", Default::default(), 1).unwrap();
    let dir = tb.dir.path().to_string_lossy().into_owned();
    let m = update_board(
        &tb.env,
        "lab",
        BoardPatch {
            name: Some("Lab".into()),
            description: Some(Some("experiments".into())),
            icon: Some(Some("🧪".into())),
            default_workdir: Some(Some(dir.clone())),
            ..Default::default()
        },
        2,
    )
    .unwrap();
    assert_eq!(m.name, "Lab");
    assert_eq!(m.default_workdir.as_deref(), Some(dir.as_str()));
    let m = update_board(
        &tb.env,
        "lab",
        BoardPatch {
            default_workdir: Some(None),
            ..Default::default()
        },
        3,
    )
    .unwrap();
    assert_eq!(m.default_workdir, None);
    assert_eq!(m.description.as_deref(), Some("experiments"));
    for bad in ["relative/dir", "/definitely/not/here"] {
        let e = update_board(
            &tb.env,
            "lab",
            BoardPatch {
                default_workdir: Some(Some(bad.into())),
                ..Default::default()
            },
            4,
        )
        .unwrap_err();
        assert!(matches!(
            e,
            KernelError::Invalid {
                field: "default_workdir",
                ..
            }
        ));
    }
    assert!(matches!(
        update_board(&tb.env, "nope", BoardPatch::default(), 5).unwrap_err(),
        KernelError::BoardNotFound(_)
    ));
    assert!(matches!(
        update_board(&tb.env, "../x", BoardPatch::default(), 5).unwrap_err(),
        KernelError::InvalidSlug(_)
    ));
}

#[test]
fn board_view_diagnostics_match_the_diagnostics_engine() {
    use hermes_kanban::kernel::{BlockRequest, Severity};
    let tb = TestBoard::new();
    let stranded = tb.task("stranded");
    let stuck = tb.task("stuck");
    tb.board
        .block_task(BlockRequest {
            task_id: stuck.clone(),
            reason: Some("which database?".into()),
            ..Default::default()
        })
        .unwrap();
    let cycling = tb.task("cycling");
    for _ in 0..3 {
        tb.board
            .block_task(BlockRequest {
                task_id: cycling.clone(),
                reason: Some("again".into()),
                kind: Some(hermes_kanban::kernel::BlockKind::Transient),
                ..Default::default()
            })
            .ok();
        tb.board.unblock_task(&cycling, None, None).ok();
        tb.board.set_status_direct(&cycling, Status::Ready).ok();
    }
    for _ in 0..30 {
        tb.board.heartbeat_worker(&stranded, None, None).ok();
    }
    tb.advance(2 * 86_400);
    let cfg = DiagnosticsConfig::default();
    let engine = tb.board.diagnostics(None, Severity::Warning, &cfg).unwrap();
    let view = tb
        .board
        .board_view(&BoardViewQuery::default(), &cfg)
        .unwrap();
    assert!(engine.len() >= 2, "{engine:#?}");
    for td in &engine {
        let card = view.cards.iter().find(|c| c.task.id == td.task_id).unwrap();
        assert_eq!(card.diagnostics, td.diagnostics, "{}", td.task_id);
    }
    let with: usize = view
        .cards
        .iter()
        .filter(|c| !c.diagnostics.is_empty())
        .count();
    assert_eq!(with, engine.len());
    let stuck_d = &view
        .cards
        .iter()
        .find(|c| c.task.id == stuck)
        .unwrap()
        .diagnostics;
    assert_eq!(stuck_d[0].kind, "stuck_in_blocked");
    assert!(
        stuck_d[0].detail.contains("which database?"),
        "payload read"
    );
}

#[test]
fn cards_carry_the_time_of_their_latest_status_change() {
    let tb = TestBoard::new();
    let a = tb.task("A");
    let q = BoardViewQuery {
        status_since: true,
        ..Default::default()
    };
    let view = |tb: &TestBoard| {
        tb.board
            .board_view(&q, &DiagnosticsConfig::default())
            .unwrap()
            .cards
            .into_iter()
            .find(|c| c.task.id == a)
            .unwrap()
    };
    let created = tb.now();
    assert_eq!(view(&tb).status_since, Some(created));
    // Only on request (it costs a pass over the event log).
    let plain = tb
        .board
        .board_view(&BoardViewQuery::default(), &DiagnosticsConfig::default())
        .unwrap();
    assert_eq!(plain.cards[0].status_since, None);
    tb.advance(3600);
    // A comment or a heartbeat is not a status change.
    tb.board.add_comment(&a, "me", "still thinking").unwrap();
    assert_eq!(view(&tb).status_since, Some(created));
    tb.board
        .block_task(hermes_kanban::kernel::BlockRequest {
            task_id: a.clone(),
            reason: Some("waiting".into()),
            ..Default::default()
        })
        .unwrap();
    let blocked_at = tb.now();
    tb.advance(60);
    let c = view(&tb);
    assert_eq!(c.task.status, Status::Blocked);
    assert_eq!(c.status_since, Some(blocked_at));
    assert_eq!(c.task.created_at, created);
    // The incremental refresh (ids) carries the same figure.
    let one = tb
        .board
        .board_view(
            &BoardViewQuery {
                ids: Some(vec![a.clone()]),
                status_since: true,
                ..Default::default()
            },
            &DiagnosticsConfig::default(),
        )
        .unwrap();
    assert_eq!(one.cards[0].status_since, Some(blocked_at));
}

#[test]
fn parent_handoffs_are_what_the_childs_worker_sees() {
    let tb = TestBoard::new();
    let p = tb.task("Schema");
    let q = tb.task("Not done yet");
    tb.board
        .complete_task(Completion {
            task_id: p.clone(),
            summary: Some("4 tables".into()),
            metadata: Some(serde_json::json!({"tables": 4})),
            ..Default::default()
        })
        .unwrap();
    let c = tb.child("API", &[&p, &q]);
    let h = tb.board.parent_handoffs(&c).unwrap();
    assert_eq!(h.len(), 1, "only finished parents hand off: {h:?}");
    assert_eq!(h[0].id, p);
    assert_eq!(h[0].title, "Schema");
    assert_eq!(h[0].status, Status::Done);
    assert_eq!(h[0].summary.as_deref(), Some("4 tables"));
    assert_eq!(h[0].metadata, Some(serde_json::json!({"tables": 4})));
    assert!(h[0].completed_at.is_some());
    let ctx = tb.board.build_worker_context(&c).unwrap();
    assert!(
        ctx.contains("4 tables") && ctx.contains("_metadata_: `{\"tables\": 4}`"),
        "{ctx}"
    );
    assert!(tb.board.parent_handoffs(&p).unwrap().is_empty());
    assert!(matches!(
        tb.board.parent_handoffs("t_nope"),
        Err(KernelError::TaskNotFound(_))
    ));
}

/// The capped columns (`src/kernel/board_page.rs`): pages newest first by completion, the
/// tenant filter applies to pages and totals, the cursor walks every card once, and the
/// capped board leaves Done out of the view and serves it as its first page.
#[test]
fn capped_done_pages_newest_first_with_totals_and_a_cursor() {
    use hermes_kanban::kernel::ColumnCursor;
    use std::sync::atomic::Ordering;
    let tb = TestBoard::new();
    let cfg = DiagnosticsConfig::default();
    // Seven done tasks, completed in reverse order of creation, every third for tenant acme.
    let mut ids = Vec::new();
    for i in 0..7 {
        let id = tb
            .board
            .create_task(NewTask {
                title: format!("t{i}"),
                assignee: Some("worker".into()),
                tenant: (i % 3 == 0).then(|| "acme".to_string()),
                ..Default::default()
            })
            .unwrap()
            .task
            .id;
        ids.push(id);
    }
    for id in ids.iter().rev() {
        tb.clock.fetch_add(10, Ordering::SeqCst);
        done(&tb, id);
    }
    let open = tb.task("still open");
    // Newest completion first: t0 was completed last.
    let all = BoardViewQuery::default();
    let p1 = tb
        .board
        .column_page(&all, Status::Done, None, 3, &cfg)
        .unwrap();
    assert_eq!(p1.total, 7);
    let got: Vec<&str> = p1.cards.iter().map(|c| c.task.id.as_str()).collect();
    assert_eq!(got, [&ids[0], &ids[1], &ids[2]]);
    assert_eq!(
        p1.cards[0].latest_summary.as_deref(),
        Some(&*format!("{} finished", ids[0])),
        "cards carry their figures"
    );
    let cur = p1.next_cursor.clone().unwrap();
    assert_eq!(ColumnCursor::parse(&cur.encode()).unwrap(), cur);
    let p2 = tb
        .board
        .column_page(&all, Status::Done, Some(&cur), 3, &cfg)
        .unwrap();
    let p3 = tb
        .board
        .column_page(&all, Status::Done, p2.next_cursor.as_ref(), 3, &cfg)
        .unwrap();
    assert!(p3.next_cursor.is_none());
    let walked: Vec<String> = [p1, p2, p3]
        .iter()
        .flat_map(|p| p.cards.iter().map(|c| c.task.id.clone()))
        .collect();
    assert_eq!(walked, ids, "every card once, newest first");
    // The tenant filter narrows pages and totals.
    let acme = BoardViewQuery {
        tenant: Some("acme".into()),
        ..Default::default()
    };
    let p = tb
        .board
        .column_page(&acme, Status::Done, None, 10, &cfg)
        .unwrap();
    assert_eq!(p.total, 3);
    let got: Vec<&str> = p.cards.iter().map(|c| c.task.id.as_str()).collect();
    assert_eq!(got, [&ids[0], &ids[3], &ids[6]]);
    // The capped board: Done is a page of its own, the rest as the board view.
    let capped = tb.board.board_view_capped(&all, 2, &cfg).unwrap();
    assert!(
        capped
            .view
            .cards
            .iter()
            .all(|c| c.task.status != Status::Done)
    );
    assert!(capped.view.cards.iter().any(|c| c.task.id == open));
    assert_eq!(capped.pages.len(), 1, "archived only when included");
    assert_eq!(capped.pages[0].cards.len(), 2);
    assert_eq!(capped.pages[0].total, 7);
    // The capped board's other cards carry the same figures as the whole view's.
    tb.board.claim_task(&open, None).unwrap();
    tb.board
        .block_task(hermes_kanban::kernel::BlockRequest {
            task_id: open.clone(),
            reason: Some("needs a decision".into()),
            ..Default::default()
        })
        .unwrap();
    tb.board.add_comment(&open, "me", "hi").unwrap();
    let whole = tb.board.board_view(&all, &cfg).unwrap();
    let capped = tb.board.board_view_capped(&all, 2, &cfg).unwrap();
    let fig = |c: &hermes_kanban::kernel::BoardCard| {
        (
            c.task.id.clone(),
            c.latest_summary.clone(),
            c.comment_count,
            c.diagnostics.iter().map(|d| d.kind).collect::<Vec<_>>(),
        )
    };
    let want: Vec<_> = whole
        .cards
        .iter()
        .filter(|c| c.task.status != Status::Done)
        .map(fig)
        .collect();
    let got: Vec<_> = capped.view.cards.iter().map(fig).collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2, 1);
    assert_eq!(
        tb.board.column_totals(&all).unwrap(),
        [(Status::Done, 7), (Status::Archived, 0)]
    );
    // Refusals name the field.
    let field = |e: KernelError| match e {
        KernelError::Invalid { field, .. } => field,
        other => panic!("expected Invalid, got {other:?}"),
    };
    assert_eq!(field(ColumnCursor::parse("12.x").unwrap_err()), "cursor");
    assert_eq!(
        field(
            tb.board
                .column_page(&all, Status::Ready, None, 3, &cfg)
                .unwrap_err()
        ),
        "column"
    );
    assert_eq!(
        field(
            tb.board
                .column_page(&all, Status::Done, None, 0, &cfg)
                .unwrap_err()
        ),
        "done_limit"
    );
}

/// Every rule of the diagnostics engine words its finding the same way: kind, severity, title,
/// detail, actions, first/last seen, count, run and data, for a board where each fires.
#[test]
fn each_diagnostics_rule_words_its_finding() {
    use hermes_kanban::kernel::{
        Action, BlockKind, BlockRequest, Diagnostic, FailureReport, RunOutcome, Severity,
    };
    use serde_json::json;
    let tb = TestBoard::new();
    let b = &tb.board;
    let t0 = tb.now();
    let hint = |label: &str, cmd: String| Action {
        kind: "cli_hint",
        label: label.into(),
        payload: json!({"command": cmd}),
        suggested: true,
    };
    let on = |kind: &'static str, label: &str, id: &str, suggested: bool| Action {
        kind,
        label: label.into(),
        payload: json!({"task_id": id}),
        suggested,
    };
    // A refused completion naming a card that does not exist.
    let halluc = tb.task("halluc");
    b.claim_task(&halluc, None).unwrap();
    b.complete_task(Completion {
        task_id: halluc.clone(),
        summary: Some("made cards".into()),
        created_cards: vec!["t_deadbeef".into()],
        ..Default::default()
    })
    .unwrap_err();
    // A hand-off naming a task that is not on the board.
    let refs = tb.task("refs");
    b.complete_task(Completion {
        task_id: refs.clone(),
        summary: Some("builds on t_0badf00d".into()),
        ..Default::default()
    })
    .unwrap();
    // Two crashed runs (retries left, so the task goes back to ready).
    let crashy = b
        .create_task(NewTask {
            title: "crashy".into(),
            assignee: Some("worker".into()),
            max_retries: Some(10),
            ..Default::default()
        })
        .unwrap()
        .task
        .id;
    for n in 1..=2 {
        b.claim_task(&crashy, None).unwrap();
        let mut r = FailureReport::new(&crashy, RunOutcome::Crashed, format!("boom {n}"));
        r.release_claim = true;
        r.end_run = true;
        b.record_task_failure(&r).unwrap();
    }
    // Blocked and unblocked four times, then left alone in blocked.
    let cycling = tb.task("cycling");
    let block = |id: &str, reason: &str, kind: Option<BlockKind>| {
        b.block_task(BlockRequest {
            task_id: id.into(),
            reason: Some(reason.into()),
            kind,
            ..Default::default()
        })
        .unwrap();
    };
    // Each time another kind: a same-kind re-block would route the task to triage.
    let kinds = [
        Some(BlockKind::NeedsInput),
        Some(BlockKind::Capability),
        Some(BlockKind::Transient),
        None,
    ];
    for (n, kind) in kinds.into_iter().enumerate() {
        block(&cycling, &format!("reason {n}"), kind);
        b.unblock_task(&cycling, None, None).unwrap();
    }
    let stuck = tb.task("stuck");
    block(&stuck, "which database?", Some(BlockKind::NeedsInput));
    let stranded = tb.task("stranded");
    tb.advance(90_000);
    let now = tb.now();

    // The findings of one kind on one task (a ready task is also stranded by now).
    let found = |cfg: &DiagnosticsConfig, id: &str, kind: &str| -> Vec<Diagnostic> {
        b.diagnostics(Some(id), Severity::Warning, cfg)
            .unwrap()
            .into_iter()
            .flat_map(|t| t.diagnostics)
            .filter(|d| d.kind == kind)
            .collect()
    };
    let event = |id: &str, kind: &str| {
        let evs = b.list_events(id, None).unwrap();
        evs.into_iter().rev().find(|e| e.kind == kind).unwrap()
    };
    let cfg = DiagnosticsConfig::default();

    let e = event(&halluc, "completion_blocked_hallucination");
    let cards = e.payload.as_ref().unwrap()["phantom_cards"].clone();
    assert_eq!(cards, json!(["t_deadbeef"]));
    assert_eq!(
        found(&cfg, &halluc, "hallucinated_cards"),
        vec![Diagnostic {
            kind: "hallucinated_cards",
            severity: Severity::Error,
            title: "Completion named cards that do not exist".into(),
            detail: format!(
                "kanban_complete was refused: created_cards {cards} were not created by this task"
            ),
            actions: vec![hint(
                "Inspect the task",
                format!("hermes-kanban show {halluc}")
            )],
            first_seen_at: Some(e.created_at),
            last_seen_at: Some(e.created_at),
            count: 1,
            run_id: e.run_id,
            data: json!({"phantom_cards": cards}),
        }]
    );

    let e = event(&refs, "suspected_hallucinated_references");
    let named = e.payload.as_ref().unwrap()["phantom_refs"].clone();
    assert_eq!(named, json!(["t_0badf00d"]));
    assert_eq!(
        found(&cfg, &refs, "prose_phantom_refs"),
        vec![Diagnostic {
            kind: "prose_phantom_refs",
            severity: Severity::Warning,
            title: "Hand-off mentions tasks that do not exist".into(),
            detail: format!(
                "the completion summary references {named}, which are not on this board"
            ),
            actions: vec![hint(
                "Fix the hand-off",
                format!("hermes-kanban edit {refs} --result '…'")
            )],
            first_seen_at: Some(e.created_at),
            last_seen_at: Some(e.created_at),
            count: 1,
            run_id: e.run_id,
            data: json!({"phantom_refs": named}),
        }]
    );

    let runs = b.list_runs(&crashy, None).unwrap();
    let (first, last) = (&runs[0], &runs[1]);
    let why = hint(
        "See why each attempt failed (no worker was started, so there is no log)",
        format!("hermes-kanban runs {crashy}"),
    );
    assert_eq!(
        found(&cfg, &crashy, "repeated_failures"),
        vec![Diagnostic {
            kind: "repeated_failures",
            severity: Severity::Error,
            title: "Failed 2 times in a row".into(),
            detail: "last error: boom 2".into(),
            actions: vec![
                why.clone(),
                on("reassign", "Reassign to another profile", &crashy, false),
                on("unblock", "Unblock and retry", &crashy, false),
            ],
            first_seen_at: None,
            last_seen_at: last.ended_at,
            count: 2,
            run_id: Some(last.id),
            data: json!({"consecutive_failures": 2, "threshold": cfg.failure_threshold}),
        }]
    );
    // With the failure rule out of reach, the crash streak speaks instead.
    let lenient = DiagnosticsConfig {
        failure_threshold: 100,
        ..DiagnosticsConfig::default()
    };
    assert_eq!(
        found(&lenient, &crashy, "repeated_crashes"),
        vec![Diagnostic {
            kind: "repeated_crashes",
            severity: Severity::Error,
            title: "Agent crash x2: boom 2".into(),
            detail: "the last 2 attempts crashed; newest error: boom 2".into(),
            actions: vec![why],
            first_seen_at: first.ended_at,
            last_seen_at: last.ended_at,
            count: 2,
            run_id: Some(last.id),
            data: json!({"crashes": 2}),
        }]
    );

    // Cycling: the window is a day, so the four cycles of t0 are out of it by now.
    assert!(
        found(&cfg, &cycling, "block_unblock_cycling").is_empty(),
        "outside the window"
    );
    assert!(
        found(&cfg, &crashy, "repeated_crashes").is_empty(),
        "told by the failures"
    );
    let wide = DiagnosticsConfig {
        block_cycle_window_seconds: 200_000,
        ..DiagnosticsConfig::default()
    };
    assert_eq!(
        found(&wide, &cycling, "block_unblock_cycling"),
        vec![Diagnostic {
            kind: "block_unblock_cycling",
            severity: Severity::Warning,
            title: "Blocked again after unblock 3 times".into(),
            detail: "the task keeps getting blocked for the same reason after being unblocked; \
                fix the cause or rewrite the task"
                .into(),
            actions: vec![hint(
                "Read the thread",
                format!("hermes-kanban show {cycling}")
            )],
            first_seen_at: Some(t0),
            last_seen_at: Some(t0),
            count: 3,
            run_id: None,
            data: json!({"cycles": 3}),
        }]
    );

    let e = event(&stuck, "blocked");
    assert_eq!(
        found(&cfg, &stuck, "stuck_in_blocked"),
        vec![Diagnostic {
            kind: "stuck_in_blocked",
            severity: Severity::Warning,
            title: "Blocked for 25h with no reply".into(),
            detail: "reason: which database?".into(),
            actions: vec![
                on("comment", "Answer in a comment", &stuck, true),
                on("unblock", "Unblock", &stuck, false),
            ],
            first_seen_at: Some(e.created_at),
            last_seen_at: Some(e.created_at),
            count: 1,
            run_id: e.run_id,
            data: json!({"age_seconds": 90_000}),
        }]
    );

    assert_eq!(
        found(&cfg, &stranded, "stranded_in_ready"),
        vec![Diagnostic {
            kind: "stranded_in_ready",
            severity: Severity::Critical,
            title: "Ready for 1500m and never picked up".into(),
            detail: "assigned to worker but not claimed; is a dispatcher running, and does the \
                profile exist?"
                .into(),
            actions: vec![
                hint("Run one dispatcher tick", "hermes-kanban dispatch".into()),
                on("reassign", "Reassign", &stranded, false),
            ],
            first_seen_at: Some(t0),
            last_seen_at: Some(now),
            count: 1,
            run_id: None,
            data: json!({"age_seconds": 90_000}),
        }]
    );
}
