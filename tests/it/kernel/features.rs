//! Behaviour of the kernel's non-transition features: the worker context (REF §12), the `show`
//! JSON shapes (REF §15.3, §21.2), listing and its filters, stats and assignees (REF §15.2),
//! notification cursors (REF §16.1), attachments (REF §20), gc, comments, the event stream, run
//! readers, edits, reassignment and hard deletion.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use crate::helpers::{TestBoard, assert_invariants, on_postgres};
use hermes_kanban::kernel::*;
use serde_json::{Map, Value, json};

// ----------------------------------------------------------------------------------------------
// helpers
// ----------------------------------------------------------------------------------------------

/// Build the worker context and check the shape every context must have.
fn ctx(b: &Board, id: &str) -> String {
    let c = b.build_worker_context(id).unwrap();
    assert!(c.ends_with('\n'), "context must end with a newline:\n{c}");
    assert!(
        !c.ends_with("\n\n"),
        "context must end with exactly one newline:\n{c:?}"
    );
    assert!(!c.contains("\n\n\n"), "no double blank lines:\n{c}");
    c
}

fn new_task(title: &str, assignee: Option<&str>) -> NewTask {
    NewTask {
        title: title.into(),
        assignee: assignee.map(str::to_string),
        ..Default::default()
    }
}

fn create(b: &Board, t: NewTask) -> String {
    b.create_task(t).unwrap().task.id
}

/// What Hermes 0.19.0's `complete` without a summary or result writes (it accepts an empty
/// completion; we refuse one, UP §5): the task done, no run, a `completed` event.
fn hermes_019_complete_silently(tb: &TestBoard, id: &str) {
    let c = rusqlite::Connection::open(tb.dir.path().join("hermes").join("kanban.db")).unwrap();
    let now = tb.now();
    if let Some(run) = c
        .query_row("SELECT current_run_id FROM tasks WHERE id=?1", [id], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .unwrap()
    {
        c.execute(
            "UPDATE task_runs SET status='done', outcome='completed', ended_at=?1, claim_lock=NULL,
                    claim_expires=NULL WHERE id=?2",
            rusqlite::params![now, run],
        )
        .unwrap();
    }
    c.execute(
        "UPDATE tasks SET status='done', completed_at=?1, claim_lock=NULL, claim_expires=NULL,
                current_run_id=NULL WHERE id=?2",
        rusqlite::params![now, id],
    )
    .unwrap();
    c.execute(
        "INSERT INTO task_events (task_id, kind, payload, created_at)
         VALUES (?1, 'completed', '{\"result_len\": 0, \"summary\": null}', ?2)",
        rusqlite::params![id, now],
    )
    .unwrap();
    drop(c);
    tb.board.recompute_ready().unwrap();
}

/// The id of the task's newest event.
fn latest_event(b: &Board, task: &str) -> i64 {
    b.list_events(task, None)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .max()
        .unwrap()
}

/// The id of the task's newest event before `id`.
fn latest_event_before(b: &Board, task: &str, id: i64) -> i64 {
    b.list_events(task, None)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .filter(|e| *e < id)
        .max()
        .unwrap_or(0)
}

/// Claim then complete with a hand-off; returns the run id.
fn claim_complete(b: &Board, id: &str, summary: Option<&str>, metadata: Option<Value>) -> i64 {
    let claim = b.claim_task(id, None).unwrap();
    // Without a summary the completion still needs evidence (UP §5): a result.
    b.complete_task(Completion {
        task_id: id.into(),
        summary: summary.map(str::to_string),
        result: summary.is_none().then(|| "done".to_string()),
        metadata,
        expected_run_id: Some(claim.run_id),
        ..Default::default()
    })
    .unwrap();
    claim.run_id
}

fn kinds(b: &Board, id: &str) -> Vec<String> {
    b.list_events(id, None)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

fn last_event(b: &Board, id: &str) -> Event {
    b.list_events(id, Some(1)).unwrap().pop().expect("an event")
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

fn ids(tasks: &[Task]) -> Vec<String> {
    tasks.iter().map(|t| t.id.clone()).collect()
}

/// The section of a context starting at `heading` up to the next `## ` heading (exclusive).
fn section<'a>(ctx: &'a str, heading: &str) -> &'a str {
    let start = ctx
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no {heading} in:\n{ctx}"))
        + 1;
    let rest = &ctx[start..];
    match rest[heading.len()..].find("\n\n## ") {
        Some(i) => &rest[..heading.len() + i + 1],
        None => rest,
    }
}

const CAVEAT_PREFIX: &str = "## Parent task results\n";

// ----------------------------------------------------------------------------------------------
// Worker context (REF §12, §21.4)
// ----------------------------------------------------------------------------------------------

#[test]
fn context_header_minimal_is_exact() {
    let tb = TestBoard::new();
    let id = create(&tb.board, new_task("Minimal", None));
    assert_eq!(
        ctx(&tb.board, &id),
        format!(
            "# Kanban task {id}: Minimal\n\nAssignee: (unassigned)\nStatus:   ready\nWorkspace: \
             scratch @ (unresolved)\n"
        )
    );
}

#[test]
fn context_header_optional_lines_are_exact() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let full = create(
        b,
        NewTask {
            tenant: Some("acme".into()),
            max_runtime_seconds: Some(1800),
            workspace_kind: Some(WorkspaceKind::Worktree),
            workspace_path: Some("/srv/repo/.worktrees/x".into()),
            branch_name: Some("feat/x".into()),
            ..new_task("Full", Some("worker"))
        },
    );
    assert_eq!(
        ctx(b, &full),
        format!(
            "# Kanban task {full}: Full\n\n\
             Assignee: worker\n\
             Status:   ready\n\
             Tenant:   acme\n\
             Workspace: worktree @ /srv/repo/.worktrees/x\n\
             Max runtime: 1800s\n\
             Terminal timeout: 1770s\n\
             Branch:   feat/x\n"
        )
    );
    let scratch = create(
        b,
        NewTask {
            max_runtime_seconds: Some(1800),
            initial_status: InitialStatus::Blocked,
            ..new_task("Scratch capped", Some("worker"))
        },
    );
    assert_eq!(
        ctx(b, &scratch),
        format!(
            "# Kanban task {scratch}: Scratch capped\n\n\
             Assignee: worker\n\
             Status:   blocked\n\
             Workspace: scratch @ (unresolved)\n\
             Max runtime: 1800s\n\
             Terminal timeout: 1770s\n"
        )
    );
}

#[test]
fn context_reproduces_the_observed_hermes_sample() {
    // REF §21.4: the child of two parents once the first one is done.
    let tb = TestBoard::new();
    let b = &tb.board;
    let a = create(b, new_task("Research A", Some("worker")));
    let bb = create(
        b,
        NewTask {
            tenant: Some("acme".into()),
            priority: 5,
            ..new_task("Research B", Some("worker"))
        },
    );
    let synth = create(
        b,
        NewTask {
            body: Some("Combine A and B".into()),
            parents: vec![a.clone(), bb.clone()],
            skills: vec!["github-code-review".into()],
            max_runtime_seconds: Some(30 * 60),
            idempotency_key: Some("synth-1".into()),
            ..new_task("Synthesize", Some("reviewer"))
        },
    );
    tb.advance(15);
    b.add_comment(&a, "worker", "found 3 sources").unwrap();
    claim_complete(
        b,
        &a,
        Some("A done: 3 sources"),
        Some(json!({"sources": 3, "changed_files": ["notes.md"]})),
    );
    // The sample's Synthesize inherits its first parent's tenant (upstream's rule since 0.19.0).
    let c = ctx(b, &synth);
    let caveat = c
        .lines()
        .skip_while(|l| *l != "## Parent task results")
        .nth(1)
        .expect("a caveat line")
        .to_string();
    assert!(caveat.starts_with('_') && caveat.ends_with('_') && caveat.len() > 20);
    assert_eq!(
        c,
        format!(
            "# Kanban task {synth}: Synthesize\n\n\
             Assignee: reviewer\n\
             Status:   todo\n\
             Tenant:   acme\n\
             Workspace: scratch @ (unresolved)\n\
             Max runtime: 1800s\n\
             Terminal timeout: 1770s\n\
             \n\
             ## Body\n\
             Combine A and B\n\
             \n\
             ## Parent task results\n\
             {caveat}\n\
             ### {a} (completed just now)\n\
             A done: 3 sources\n\
             _metadata_: `{{\"changed_files\": [\"notes.md\"], \"sources\": 3}}`\n"
        )
    );
    // The parent's own context shows the attempt with the same sorted metadata.
    let pa = ctx(b, &a);
    let run = &b.list_runs(&a, None).unwrap()[0];
    let when = run.ended_at.unwrap();
    assert!(
        pa.contains(&format!(
            "## Prior attempts on this task\n### Attempt 1 — completed (worker, {}, just now)\nA \
             done: 3 sources\n_metadata_: `{{\"changed_files\": [\"notes.md\"], \"sources\": \
             3}}`\n",
            local_ts(when)
        )),
        "{pa}"
    );
    assert_eq!(
        sorted_json(&json!({"b": {"z": 1, "a": [1, "x"]}, "a": null})),
        r#"{"a": null, "b": {"a": [1, "x"], "z": 1}}"#
    );
}

#[test]
fn context_sections_come_in_order_and_empty_ones_are_omitted() {
    let tb = TestBoard::new();
    let b = &tb.board;
    // Recent work by @worker on another task, which is also the parent.
    let parent = create(b, new_task("Parent", Some("worker")));
    claim_complete(b, &parent, Some("parent done"), None);
    let t = create(
        b,
        NewTask {
            body: Some("Do the thing.\n\nCarefully.\n\n".into()),
            parents: vec![parent.clone()],
            ..new_task("Subject", Some("worker"))
        },
    );
    let att = b
        .add_attachment(
            &t,
            "notes.txt",
            b"0123456789",
            Some("text/plain"),
            Some("me"),
        )
        .unwrap();
    let empty = b.add_attachment(&t, "empty.bin", b"", None, None).unwrap();
    b.claim_task(&t, None).unwrap();
    b.reclaim_task(&t, Some("operator"), Map::new()).unwrap();
    tb.advance(120);
    b.add_comment(&t, "reviewer", "looks fine").unwrap();
    let c = ctx(b, &t);
    let order = [
        "## Body",
        "## Attachments",
        "## Prior attempts on this task",
        "## Parent task results",
        "## Recent work by @worker",
        "## Comment thread",
    ];
    let mut last = 0;
    for h in order {
        let i = c
            .find(&format!("\n\n{h}\n"))
            .unwrap_or_else(|| panic!("{h} missing or not preceded by a blank line:\n{c}"));
        assert!(i > last, "{h} out of order:\n{c}");
        last = i;
    }
    assert_eq!(c.matches("\n## ").count(), order.len(), "{c}");
    assert!(
        c.contains("\n## Body\nDo the thing.\n\nCarefully.\n\n## Attachments\n"),
        "{c}"
    );
    let atts = section(&c, "## Attachments");
    let lines: Vec<&str> = atts.lines().collect();
    assert_eq!(lines.len(), 4, "{atts}");
    assert_eq!(
        lines[2],
        format!("- `notes.txt`, text/plain, 1 KB → `{}`", att.stored_path)
    );
    // Hermes' line format: no content type or size when there is none.
    assert_eq!(lines[3], format!("- `empty.bin` → `{}`", empty.stored_path));
    // The line names where the content is: an absolute file path, or its row on PostgreSQL.
    if on_postgres() {
        assert_eq!(att.stored_path, format!("db:{}", att.id));
    } else {
        assert!(std::path::Path::new(&att.stored_path).is_absolute());
    }
    let attempts = section(&c, "## Prior attempts on this task");
    assert!(
        attempts.contains("### Attempt 1 — reclaimed (worker, ")
            && attempts.contains(", 2m ago)\n_error_: manual_reclaim: operator"),
        "{attempts}"
    );
    let recent = section(&c, "## Recent work by @worker");
    assert!(
        recent.contains(&format!("- {parent} — Parent (")) && recent.contains("): parent done"),
        "{recent}"
    );
    // A task with nothing but a header has no sections at all.
    let bare = create(b, new_task("Bare", Some("nobody")));
    assert!(!ctx(b, &bare).contains("##"));
    // A blank body is no body section.
    let blank = create(
        b,
        NewTask {
            body: Some("   \n  ".into()),
            ..new_task("Blank body", None)
        },
    );
    assert!(!ctx(b, &blank).contains("## Body"));
}

#[test]
fn context_body_is_capped_at_8_kib_characters() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let long = create(
        b,
        NewTask {
            body: Some("é".repeat(9000)),
            ..new_task("Long", None)
        },
    );
    let c = ctx(b, &long);
    let expected = format!(
        "## Body\n{}… [truncated, 808 chars omitted]\n",
        "é".repeat(8192)
    );
    assert!(c.ends_with(&expected), "{}", &c[..200]);
    assert!(!c.contains(&"é".repeat(8193)));
    let exact = create(
        b,
        NewTask {
            body: Some("b".repeat(8192)),
            ..new_task("Exact", None)
        },
    );
    let c = ctx(b, &exact);
    assert!(c.ends_with(&format!("## Body\n{}\n", "b".repeat(8192))));
    assert!(!c.contains("truncated"));
}

#[test]
fn context_prior_attempts_show_the_last_ten() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let t = tb.task("Flaky");
    for i in 0..12 {
        b.claim_task(&t, None).unwrap();
        tb.advance(60);
        b.reclaim_task(&t, Some(&format!("r{i:02}")), Map::new())
            .unwrap();
    }
    tb.advance(180);
    // The open run of a fresh claim is not a prior attempt.
    b.claim_task(&t, None).unwrap();
    let c = ctx(b, &t);
    let s = section(&c, "## Prior attempts on this task");
    let runs = b.list_runs(&t, None).unwrap();
    assert_eq!(runs.len(), 13);
    let mut expected = String::from(
        "## Prior attempts on this task\n(2 earlier attempts omitted; the newest 10 follow)\n",
    );
    // As Hermes: each attempt stamped with its start, a blank line between attempts.
    for (i, r) in runs.iter().enumerate().take(12).skip(2) {
        let when = r.started_at;
        expected.push_str(&format!(
            "{}### Attempt {} — reclaimed (worker, {}, {})\n_error_: manual_reclaim: r{i:02}\n",
            if i > 2 { "\n" } else { "" },
            i + 1,
            local_ts(when),
            relative_age(when, tb.now())
        ));
    }
    assert_eq!(s, expected);
    assert!(
        s.contains(", 4m ago)\n_error_: manual_reclaim: r11\n"),
        "{s}"
    );
    assert!(
        s.contains(", 13m ago)\n_error_: manual_reclaim: r02\n"),
        "{s}"
    );
    assert!(!s.contains("r01") && !s.contains("Attempt 13"));
    b.reclaim_task(&t, None, Map::new()).unwrap();
}

#[test]
fn context_prior_attempt_fields_are_capped_at_4_kib() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let t = tb.task("Capped");
    // Attempt 1: scheduled with a 5000-char reason (the run summary).
    b.claim_task(&t, None).unwrap();
    b.schedule_task(&t, Some(&"S".repeat(5000)), None, None)
        .unwrap();
    b.unblock_task(&t, None, None).unwrap();
    // Attempt 2: reclaimed with a 5000-char reason (the run error).
    b.claim_task(&t, None).unwrap();
    b.reclaim_task(&t, Some(&"E".repeat(5000)), Map::new())
        .unwrap();
    // Attempt 3: the breaker trips with a huge metadata payload.
    b.claim_task(&t, None).unwrap();
    let mut extras = Map::new();
    extras.insert("blob".into(), json!("M".repeat(5000)));
    let verdict = b
        .record_task_failure(&FailureReport {
            release_claim: true,
            end_run: true,
            force_trip: true,
            extras,
            ..FailureReport::new(&t, RunOutcome::Crashed, "pid 7 not alive")
        })
        .unwrap();
    assert!(verdict.tripped);
    let c = ctx(b, &t);
    let s = section(&c, "## Prior attempts on this task");
    assert!(
        s.contains(&format!(
            "### Attempt 1 — scheduled (worker, {}, just now)\n{}… [truncated, 904 chars \
             omitted]\n",
            local_ts(tb.now()),
            "S".repeat(4096)
        )),
        "{s}"
    );
    let err = format!("manual_reclaim: {}", "E".repeat(5000));
    assert!(s.contains(&format!(
        "_error_: {}… [truncated, {} chars omitted]\n",
        &err[..4096],
        err.len() - 4096
    )));
    let runs = b.list_runs(&t, None).unwrap();
    let meta = sorted_json(runs[2].metadata.as_ref().unwrap());
    assert!(meta.starts_with("{\"blob\": \"MMM"));
    assert!(s.contains(&format!(
        "### Attempt 3 — gave_up (worker, {}, just now)\n_error_: pid 7 not alive\n_metadata_: \
         `{}… [truncated, {} chars omitted]`",
        local_ts(tb.now()),
        &meta[..4096],
        meta.len() - 4096
    )));
}

#[test]
fn context_parent_results_show_done_and_handed_off_archived_parents() {
    sqlite_only!("writes the board as Hermes 0.19.0 does, through its SQLite file");
    let tb = TestBoard::new();
    let b = &tb.board;
    let p_done = tb.task("done parent");
    let p_ready = tb.task("ready parent");
    let p_arch_handoff = tb.task("archived with hand-off");
    let p_arch_bare = tb.task("archived without hand-off");
    let p_silent = tb.task("done silently");
    let p_blocked = tb.task("blocked parent");
    let parents = [
        &p_done,
        &p_ready,
        &p_arch_handoff,
        &p_arch_bare,
        &p_silent,
        &p_blocked,
    ];
    let child = tb.child("child", &parents.map(|s| s.as_str()));
    claim_complete(
        b,
        &p_done,
        Some("  done summary  \n"),
        Some(json!({"z": 1, "a": [1, 2], "m": {"y": true, "x": null}})),
    );
    tb.advance(2 * 3600);
    claim_complete(b, &p_arch_handoff, Some("archived hand-off"), None);
    b.archive_task(&p_arch_handoff).unwrap();
    b.archive_task(&p_arch_bare).unwrap();
    tb.advance(30 * 60);
    // A parent finished without any hand-off: only Hermes 0.19.0 writes such a row now (we and
    // ~0.22 refuse an empty completion, UP §5).
    hermes_019_complete_silently(&tb, &p_silent);
    b.block_task(BlockRequest {
        task_id: p_blocked.clone(),
        reason: Some("stuck".into()),
        ..Default::default()
    })
    .unwrap();
    tb.advance(59);
    let c = ctx(b, &child);
    let s = section(&c, "## Parent task results");
    let mut shown: Vec<(&String, &str, &str)> = vec![
        (
            &p_done,
            "2h ago",
            "done summary\n_metadata_: `{\"a\": [1, 2], \"m\": {\"x\": null, \"y\": true}, \"z\": \
             1}`",
        ),
        (&p_arch_handoff, "30m ago", "archived hand-off"),
        (&p_silent, "just now", "(no result recorded)"),
    ];
    shown.sort();
    let caveat = s.lines().nth(1).unwrap();
    let mut expected = format!("{CAVEAT_PREFIX}{caveat}\n");
    // As Hermes: a blank line between parents.
    let parts: Vec<String> = shown
        .into_iter()
        .map(|(id, age, text)| format!("### {id} (completed {age})\n{text}\n"))
        .collect();
    expected.push_str(&parts.join("\n"));
    assert_eq!(s, expected);
    for hidden in [&p_ready, &p_arch_bare, &p_blocked] {
        assert!(!c.contains(hidden.as_str()), "{hidden} shown:\n{c}");
    }
}

#[test]
fn context_recent_work_lists_five_newest_of_the_same_profile() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let subject = tb.task("Subject");
    let mut done = Vec::new();
    for i in 0..7 {
        let id = tb.task(&format!("job {i}"));
        let summary = if i == 6 {
            format!("{}\nsecond line", "L".repeat(300))
        } else {
            format!("  s{i} first line\nsecond line")
        };
        tb.advance(60);
        claim_complete(b, &id, Some(&summary), None);
        done.push(id);
    }
    // Another profile's work and a not-completed attempt do not count.
    let other = create(b, new_task("other profile", Some("other")));
    tb.advance(60);
    claim_complete(b, &other, Some("not mine"), None);
    let blocked = tb.task("blocked job");
    b.claim_task(&blocked, None).unwrap();
    b.block_task(BlockRequest {
        task_id: blocked.clone(),
        reason: Some("no".into()),
        ..Default::default()
    })
    .unwrap();
    tb.advance(3 * 3600);
    let c = ctx(b, &subject);
    let s = section(&c, "## Recent work by @worker");
    let mut expected = String::from("## Recent work by @worker\n");
    for i in (2..7).rev() {
        let id = &done[i];
        let when = b.list_runs(id, None).unwrap()[0].ended_at.unwrap();
        let line = if i == 6 {
            "L".repeat(200)
        } else {
            format!("s{i} first line")
        };
        expected.push_str(&format!(
            "- {id} — job {i} ({}, {}): {line}\n",
            local_ts(when),
            relative_age(when, tb.now())
        ));
    }
    assert_eq!(s, expected);
    assert!(s.contains("3h ago"));
    // The subject's own completion never lists itself.
    claim_complete(b, &subject, Some("subject done"), None);
    let s2 = ctx(b, &subject);
    let recent = section(&s2, "## Recent work by @worker");
    assert!(!recent.contains(&subject), "{recent}");
    assert_eq!(recent.lines().count(), 6);
    // No assignee, no recent-work section.
    let unassigned = create(b, new_task("unassigned", None));
    assert!(!ctx(b, &unassigned).contains("## Recent work"));
}

#[test]
fn context_comment_thread_keeps_the_last_thirty() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let t = tb.task("Chatty");
    for i in 1..=35 {
        let (author, body) = match i {
            34 => ("alice".to_string(), "B".repeat(3000)),
            35 => (
                "`evil` ``boss``".to_string(),
                "<c35>\nsecond line".to_string(),
            ),
            _ => (format!("user{i}"), format!("<c{i:02}>")),
        };
        b.add_comment(&t, &author, &body).unwrap();
        tb.advance(600);
    }
    let c = ctx(b, &t);
    let comments = b.list_comments(&t).unwrap();
    assert_eq!(comments.len(), 35);
    let blocks: Vec<String> = comments[5..]
        .iter()
        .map(|cm| {
            let body = if cm.body.chars().count() > 2048 {
                format!("{}… [truncated, 952 chars omitted]", "B".repeat(2048))
            } else {
                cm.body.clone()
            };
            format!(
                "comment from worker `{}` at {}, {}:\n{body}\n",
                cm.author.replace('`', ""),
                local_ts(cm.created_at),
                relative_age(cm.created_at, tb.now())
            )
        })
        .collect();
    let expected = format!(
        "\n## Comment thread\n(5 older comments omitted)\n{}",
        blocks.join("\n")
    );
    assert!(
        c.ends_with(&expected),
        "{}",
        section(&c, "## Comment thread")
    );
    assert!(c.contains("comment from worker `evil boss` at "));
    assert!(!c.contains("<c05>") && c.contains("<c06>"));
    assert!(c.contains(", 5h ago:\n<c06>\n"), "{c}");
    assert!(c.contains(", 10m ago:\n<c35>\nsecond line\n"));
}

#[test]
fn relative_ages() {
    let now = 1_800_000_000;
    for (ago, want) in [
        (-500, "just now"),
        (0, "just now"),
        (59, "just now"),
        (60, "1m ago"),
        (3599, "59m ago"),
        (3600, "1h ago"),
        (86_399, "23h ago"),
        (86_400, "1d ago"),
        (40 * 86_400, "40d ago"),
    ] {
        assert_eq!(relative_age(now - ago, now), want, "{ago}s ago");
    }
    // Through the board clock.
    let tb = TestBoard::new();
    let t = tb.task("aging");
    tb.board.add_comment(&t, "me", "hello").unwrap();
    for (step, want) in [
        (30, "just now"),
        (90, "2m ago"),
        (7200, "2h ago"),
        (86_400 * 3, "3d ago"),
    ] {
        tb.advance(step);
        let c = ctx(&tb.board, &t);
        assert!(c.contains(&format!(", {want}:\nhello\n")), "{want}: {c}");
    }
    assert_eq!(local_ts(0).len(), "YYYY-MM-DD HH:MM".len());
}

// ----------------------------------------------------------------------------------------------
// JSON shapes (REF §15.3, §21.2, §21.3)
// ----------------------------------------------------------------------------------------------

const CREATE_JSON_SAMPLE: &str = r#"{"id": "t_9c025d30", "title": "Research A", "body": null,
 "assignee": "worker", "status": "ready",
 "priority": 0, "tenant": null, "workspace_kind": "scratch", "workspace_path": null,
 "branch_name": null, "project_id": null, "created_by": "user", "created_at": 1795247395,
 "started_at": null, "completed_at": null, "result": null, "skills": [], "max_retries": null,
 "session_id": null, "workflow_template_id": null, "current_step_key": null}"#;

const RUNS_JSON_SAMPLE: &str = r#"{"id": 1, "profile": "worker", "status": "done",
  "outcome": "completed", "started_at": 1795247410,
  "ended_at": 1795247412, "summary": "A done: 3 sources", "error": null,
  "metadata": {"sources": 3, "changed_files": ["notes.md"]}, "worker_pid": null,
  "step_key": null}"#;

#[test]
fn task_json_matches_the_hermes_create_sample() {
    let tb = TestBoard::new();
    let task = tb
        .board
        .create_task(NewTask {
            created_by: Some("user".into()),
            ..new_task("Research A", Some("worker"))
        })
        .unwrap()
        .task;
    let ours = task.to_hermes_json();
    let sample: Value = serde_json::from_str(CREATE_JSON_SAMPLE).unwrap();
    assert_eq!(keys(&ours), keys(&sample));
    for k in keys(&sample) {
        if k != "id" && k != "created_at" {
            assert_eq!(ours[&k], sample[&k], "{k}");
        }
    }
    assert_eq!(ours["id"], json!(task.id));
    assert_eq!(ours["created_at"], json!(tb.now()));
}

#[test]
fn task_detail_json_has_the_show_keys() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let parent = tb.task("parent");
    let t = tb.child("subject", &[&parent]);
    let kid = tb.child("kid", &[&t]);
    b.add_comment(&t, "me", "note").unwrap();
    claim_complete(b, &parent, Some("p"), None);
    let claim = b.claim_task(&t, None).unwrap();
    b.block_task(BlockRequest {
        task_id: t.clone(),
        reason: Some("need creds".into()),
        kind: Some(BlockKind::NeedsInput),
        expected_run_id: Some(claim.run_id),
        ..Default::default()
    })
    .unwrap();
    let d = b.task_detail(&t).unwrap();
    let j = d.to_hermes_json();
    assert_eq!(
        keys(&j),
        [
            "task",
            "latest_summary",
            "parents",
            "children",
            "comments",
            "events",
            "runs"
        ]
    );
    let sample: Value = serde_json::from_str(CREATE_JSON_SAMPLE).unwrap();
    assert_eq!(keys(&j["task"]), keys(&sample));
    assert_eq!(j["latest_summary"], json!("need creds"));
    assert_eq!(j["parents"], json!([parent]));
    assert_eq!(j["children"], json!([kid]));
    let comments = j["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 1);
    assert_eq!(keys(&comments[0]), ["author", "body", "created_at"]);
    let events = j["events"].as_array().unwrap();
    assert_eq!(events.len(), kinds(b, &t).len(), "all events");
    for e in events {
        assert_eq!(keys(e), ["kind", "payload", "created_at", "run_id"]);
    }
    let blocked = events.iter().find(|e| e["kind"] == "blocked").unwrap();
    assert_eq!(
        blocked["payload"],
        json!({"reason": "need creds", "kind": "needs_input", "recurrences": 1})
    );
    assert_eq!(blocked["run_id"], json!(claim.run_id));
    let runs = j["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        keys(&runs[0]),
        [
            "id",
            "profile",
            "step_key",
            "status",
            "outcome",
            "summary",
            "error",
            "metadata",
            "worker_pid",
            "started_at",
            "ended_at"
        ]
    );
    // `runs --json` rows (REF §21.3) have their own key order.
    let run = &b.list_runs(&parent, None).unwrap()[0];
    let sample: Value = serde_json::from_str(RUNS_JSON_SAMPLE).unwrap();
    assert_eq!(keys(&run.to_hermes_json()), keys(&sample));
    assert_eq!(run.to_hermes_json()["status"], json!("done"));
    assert_eq!(run.to_hermes_json()["outcome"], json!("completed"));
}

// ----------------------------------------------------------------------------------------------
// list_tasks, stats, assignees
// ----------------------------------------------------------------------------------------------

#[test]
fn list_tasks_filters_sorts_and_limits() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let mk = |t: NewTask| {
        tb.advance(10);
        create(b, t)
    };
    let t1 = mk(NewTask {
        tenant: Some("acme".into()),
        priority: 5,
        session_id: Some("s1".into()),
        ..new_task("alpha", Some("worker"))
    });
    let t2 = mk(NewTask {
        priority: 1,
        ..new_task("Bravo", Some("Reviewer"))
    });
    let t3 = mk(NewTask {
        priority: 5,
        ..new_task("charlie", None)
    });
    let t4 = mk(new_task("delta", Some("worker")));
    let t5 = mk(NewTask {
        priority: 2,
        ..new_task("echo", Some("worker"))
    });
    let t6 = mk(NewTask {
        triage: true,
        ..new_task("foxtrot", Some("worker"))
    });
    let t7 = mk(NewTask {
        priority: 3,
        ..new_task("golf", Some("worker"))
    });
    b.archive_task(&t4).unwrap();
    tb.advance(10);
    b.claim_task(&t7, None).unwrap();
    b.reclaim_task(&t7, None, Map::new()).unwrap();
    tb.advance(10);
    b.claim_task(&t5, None).unwrap();
    let list = |f: ListFilter| ids(&b.list_tasks(&f).unwrap());
    let v = |xs: &[&String]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        list(ListFilter {
            assignee: Some("WORKER".into()),
            ..Default::default()
        }),
        v(&[&t1, &t7, &t5, &t6])
    );
    assert_eq!(
        list(ListFilter {
            assignee: Some(" Worker ".into()),
            include_archived: true,
            ..Default::default()
        }),
        v(&[&t1, &t7, &t5, &t4, &t6])
    );
    assert_eq!(
        list(ListFilter {
            assignee: Some("reviewer".into()),
            ..Default::default()
        }),
        v(&[&t2])
    );
    assert_eq!(
        list(ListFilter {
            status: Some(Status::Archived),
            ..Default::default()
        }),
        v(&[&t4])
    );
    assert_eq!(
        list(ListFilter {
            status: Some(Status::Ready),
            ..Default::default()
        }),
        v(&[&t1, &t3, &t7, &t2])
    );
    assert_eq!(
        list(ListFilter {
            status: Some(Status::Running),
            ..Default::default()
        }),
        v(&[&t5])
    );
    assert_eq!(
        list(ListFilter {
            tenant: Some("acme".into()),
            ..Default::default()
        }),
        v(&[&t1])
    );
    assert_eq!(
        list(ListFilter {
            session_id: Some("s1".into()),
            ..Default::default()
        }),
        v(&[&t1])
    );
    assert!(
        list(ListFilter {
            session_id: Some("s2".into()),
            ..Default::default()
        })
        .is_empty()
    );
    assert_eq!(list(ListFilter::default()).len(), 6);
    assert_eq!(
        list(ListFilter {
            include_archived: true,
            ..Default::default()
        })
        .len(),
        7
    );
    for (sort, want) in [
        (TaskSort::Default, v(&[&t1, &t3, &t7, &t5, &t2, &t6])),
        (TaskSort::PriorityDesc, v(&[&t1, &t3, &t7, &t5, &t2, &t6])),
        (TaskSort::PriorityAsc, v(&[&t6, &t2, &t5, &t7, &t1, &t3])),
        (TaskSort::Created, v(&[&t1, &t2, &t3, &t5, &t6, &t7])),
        (TaskSort::CreatedDesc, v(&[&t7, &t6, &t5, &t3, &t2, &t1])),
        (TaskSort::Status, v(&[&t6, &t1, &t3, &t7, &t2, &t5])),
        (TaskSort::Assignee, v(&[&t2, &t1, &t7, &t5, &t6, &t3])),
        (TaskSort::Title, v(&[&t1, &t2, &t3, &t5, &t6, &t7])),
        (TaskSort::Updated, v(&[&t5, &t7, &t6, &t3, &t2, &t1])),
    ] {
        assert_eq!(
            list(ListFilter {
                sort,
                ..Default::default()
            }),
            want,
            "{sort:?}"
        );
    }
    assert_eq!(
        list(ListFilter {
            limit: Some(2),
            ..Default::default()
        }),
        v(&[&t1, &t3])
    );
    assert_eq!(
        list(ListFilter {
            limit: Some(1),
            sort: TaskSort::CreatedDesc,
            include_archived: true,
            ..Default::default()
        }),
        v(&[&t7])
    );
    assert!(
        list(ListFilter {
            limit: Some(0),
            ..Default::default()
        })
        .is_empty()
    );
}

#[test]
fn stats_counts_by_status_and_assignee_and_ages_the_oldest_ready() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let empty = b.stats().unwrap();
    assert!(empty.by_status.is_empty() && empty.by_assignee.is_empty());
    assert_eq!(empty.oldest_ready_age_seconds, None);
    assert_eq!(empty.now, tb.now());
    let t0 = tb.now();
    let r1 = tb.task("r1");
    tb.advance(100);
    tb.task("r2");
    tb.advance(50);
    create(b, new_task("unassigned", None));
    tb.advance(50);
    tb.child("todo", &[&r1]);
    tb.advance(100);
    let r3 = tb.task("r3");
    b.claim_task(&r3, None).unwrap();
    let x = tb.task("gone");
    b.archive_task(&x).unwrap();
    create(
        b,
        NewTask {
            initial_status: InitialStatus::Blocked,
            ..new_task("bl", Some("reviewer"))
        },
    );
    tb.advance(700);
    let s = b.stats().unwrap();
    let m = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    assert_eq!(
        s.by_status,
        m(&[("ready", 3), ("todo", 1), ("running", 1), ("blocked", 1)])
    );
    let mut by_assignee = BTreeMap::new();
    by_assignee.insert(
        "worker".to_string(),
        m(&[("ready", 2), ("todo", 1), ("running", 1)]),
    );
    by_assignee.insert("reviewer".to_string(), m(&[("blocked", 1)]));
    assert_eq!(s.by_assignee, by_assignee);
    assert_eq!(s.oldest_ready_age_seconds, Some(1000));
    assert_eq!(s.now, t0 + 1000);
    let j = serde_json::to_value(&s).unwrap();
    assert_eq!(
        keys(&j),
        [
            "by_status",
            "by_assignee",
            "oldest_ready_age_seconds",
            "now"
        ]
    );
}

#[test]
fn assignees_unite_profiles_on_disk_with_task_assignees() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let profiles = tb.dir.path().join("hermes").join("profiles");
    std::fs::create_dir_all(profiles.join("reviewer")).unwrap();
    std::fs::write(profiles.join("reviewer").join("config.yaml"), "model: x\n").unwrap();
    std::fs::create_dir_all(profiles.join("UPPER")).unwrap();
    std::fs::create_dir_all(profiles.join(".hidden")).unwrap();
    std::fs::write(profiles.join("file-not-dir"), "").unwrap();
    // UP §10: a bare directory is not a profile, nor is a tombstoned one.
    std::fs::create_dir_all(profiles.join("bare")).unwrap();
    std::fs::create_dir_all(profiles.join("gone")).unwrap();
    std::fs::write(profiles.join("gone").join("SOUL.md"), "x").unwrap();
    std::fs::create_dir_all(profiles.join(".deleted")).unwrap();
    std::fs::write(profiles.join(".deleted").join("gone"), "deleted\n").unwrap();
    // Any one identity file counts (here `.env`).
    std::fs::create_dir_all(profiles.join("envonly")).unwrap();
    std::fs::write(profiles.join("envonly").join(".env"), "").unwrap();
    // Before any task: `default` plus the profile on disk.
    let names: Vec<(String, bool)> = b
        .assignees()
        .unwrap()
        .into_iter()
        .map(|a| (a.name, a.on_disk))
        .collect();
    assert_eq!(
        names,
        [
            ("bare".to_string(), false),
            ("default".to_string(), true),
            ("envonly".to_string(), true),
            ("gone".to_string(), false),
            ("reviewer".to_string(), true)
        ]
    );
    let why: std::collections::BTreeMap<String, Option<String>> = b
        .assignees()
        .unwrap()
        .into_iter()
        .map(|a| (a.name, a.not_a_profile))
        .collect();
    assert!(
        why["bare"].as_deref().is_some_and(
            |w| w.contains("bare directory is not a profile") && w.contains("config.yaml")
        ),
        "{why:?}"
    );
    assert!(
        why["gone"]
            .as_deref()
            .is_some_and(|w| w.contains("tombstone")),
        "{why:?}"
    );
    assert_eq!(why["reviewer"], None);
    let root = hermes_root(&tb.env);
    assert_eq!(profile_state(&root, "bare"), ProfileState::NoIdentity);
    assert_eq!(profile_state(&root, "gone"), ProfileState::Deleted);
    assert_eq!(profile_state(&root, "nothere"), ProfileState::Missing);
    assert_eq!(profile_state(&root, "envonly"), ProfileState::Live);
    assert!(!profile_exists(&root, "bare") && !profile_exists(&root, "gone"));
    let mut live = on_disk_profiles(&root);
    live[1..].sort();
    assert_eq!(live, ["default", "envonly", "reviewer"]);
    std::fs::remove_dir_all(profiles.join("bare")).unwrap();
    std::fs::remove_dir_all(profiles.join("gone")).unwrap();
    std::fs::remove_dir_all(profiles.join("envonly")).unwrap();
    let w1 = tb.task("w1");
    tb.task("w2");
    let w3 = tb.task("w3");
    b.claim_task(&w3, None).unwrap();
    create(
        b,
        NewTask {
            parents: vec![w1.clone()],
            ..new_task("review it", Some("REVIEWER"))
        },
    );
    let ghost = create(b, new_task("ghost task", Some("ghost")));
    b.archive_task(&ghost).unwrap();
    let got = b.assignees().unwrap();
    type Row = (String, bool, Vec<(String, i64)>);
    let summary: Vec<Row> = got
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                a.on_disk,
                a.counts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("default".to_string(), true, vec![]),
            ("reviewer".to_string(), true, vec![("todo".to_string(), 1)]),
            (
                "worker".to_string(),
                false,
                vec![("ready".to_string(), 2), ("running".to_string(), 1)]
            ),
        ]
    );
    let j = serde_json::to_value(&got[1]).unwrap();
    assert_eq!(keys(&j), ["name", "on_disk", "not_a_profile", "counts"]);
    assert!(profile_exists(&hermes_root(&tb.env), "reviewer"));
    assert!(profile_exists(&hermes_root(&tb.env), "default"));
    assert!(!profile_exists(&hermes_root(&tb.env), "worker"));
    assert!(!profile_exists(&hermes_root(&tb.env), "../hermes"));
}

// ----------------------------------------------------------------------------------------------
// Notification subscriptions (REF §16.1)
// ----------------------------------------------------------------------------------------------

fn key(task: &str, thread: &str) -> SubKey {
    SubKey {
        task_id: task.into(),
        platform: "telegram".into(),
        chat_id: "42".into(),
        thread_id: thread.into(),
    }
}

fn cursor_of(b: &Board, k: &SubKey) -> i64 {
    b.list_notify_subs(Some(&k.task_id))
        .unwrap()
        .into_iter()
        .find(|s| s.thread_id == k.thread_id && s.platform == k.platform && s.chat_id == k.chat_id)
        .expect("subscription")
        .last_event_id
}

#[test]
fn notify_subscriptions_insert_or_ignore_and_backfill_the_owner() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let t = tb.task("watched");
    let other = tb.task("other");
    let k = key(&t, "");
    let s = b.add_notify_sub(&k, Some("u1"), None).unwrap();
    assert_eq!(
        (
            s.user_id.as_deref(),
            s.notifier_profile.as_deref(),
            s.last_event_id,
            s.created_at
        ),
        (Some("u1"), None, latest_event(b, &t), tb.now())
    );
    tb.advance(5);
    let s = b.add_notify_sub(&k, Some("u2"), Some("alice")).unwrap();
    assert_eq!(s.user_id.as_deref(), Some("u1"), "insert-or-ignore");
    assert_eq!(
        s.notifier_profile.as_deref(),
        Some("alice"),
        "owner back-filled"
    );
    assert_eq!(s.created_at, tb.now() - 5);
    let s = b.add_notify_sub(&k, None, Some("bob")).unwrap();
    assert_eq!(s.notifier_profile.as_deref(), Some("alice"), "owner kept");
    let th = key(&t, "th-1");
    b.add_notify_sub(&th, None, Some("bob")).unwrap();
    b.add_notify_sub(&key(&other, ""), None, None).unwrap();
    let subs = b.list_notify_subs(Some(&t)).unwrap();
    assert_eq!(
        subs.iter()
            .map(|s| s.thread_id.as_str())
            .collect::<Vec<_>>(),
        ["", "th-1"]
    );
    assert_eq!(b.list_notify_subs(None).unwrap().len(), 3);
    assert!(b.remove_notify_sub(&th).unwrap());
    assert!(!b.remove_notify_sub(&th).unwrap());
    assert_eq!(b.list_notify_subs(Some(&t)).unwrap().len(), 1);
    assert!(matches!(
        b.claim_unseen_events(&th, &[]),
        Err(KernelError::Invalid {
            field: "subscription",
            ..
        })
    ));
    let j = serde_json::to_value(&subs[0]).unwrap();
    assert_eq!(
        keys(&j),
        [
            "task_id",
            "platform",
            "chat_id",
            "thread_id",
            "user_id",
            "notifier_profile",
            "created_at",
            "last_event_id"
        ]
    );
}

#[test]
fn notify_cursor_claims_advance_filter_and_rewind() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let t = tb.task("watched");
    let noise = tb.task("noise");
    let k = key(&t, "");
    b.add_notify_sub(&k, None, None).unwrap();
    b.add_comment(&t, "me", "one").unwrap();
    b.add_comment(&noise, "me", "not for this sub").unwrap();
    let first = b.claim_unseen_events(&k, &[]).unwrap().expect("events");
    // A new subscription starts at the task's latest event (UP §16.7): `created` is history.
    assert_eq!(first.from, latest_event_before(b, &t, first.events[0].id));
    assert_eq!(
        first
            .events
            .iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>(),
        ["commented"]
    );
    assert!(first.events.iter().all(|e| e.task_id == t));
    assert_eq!(first.to, first.events.last().unwrap().id);
    assert_eq!(cursor_of(b, &k), first.to);
    assert!(b.claim_unseen_events(&k, &[]).unwrap().is_none());
    // Kinds filter: nothing of that kind → None and the cursor stays.
    b.add_comment(&t, "me", "two").unwrap();
    assert!(b.claim_unseen_events(&k, &["completed"]).unwrap().is_none());
    assert_eq!(cursor_of(b, &k), first.to);
    claim_complete(b, &t, Some("done"), None);
    let done = b
        .claim_unseen_events(&k, &["completed", "blocked"])
        .unwrap()
        .expect("the completion");
    assert_eq!(
        done.events
            .iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>(),
        ["completed"]
    );
    assert_eq!(done.from, first.to);
    assert_eq!(cursor_of(b, &k), done.to);
    // Rewind restores the old cursor only while it is still at the claimed value.
    assert!(b.rewind_notify_cursor(&k, &done).unwrap());
    assert_eq!(cursor_of(b, &k), done.from);
    let again = b.claim_unseen_events(&k, &["completed"]).unwrap().unwrap();
    assert_eq!(
        again.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        done.events.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    b.add_comment(&t, "me", "three").unwrap();
    let later = b.claim_unseen_events(&k, &[]).unwrap().unwrap();
    assert_eq!(later.from, again.to);
    assert!(
        !b.rewind_notify_cursor(&k, &again).unwrap(),
        "cursor moved on"
    );
    assert_eq!(cursor_of(b, &k), later.to);
    assert!(b.claim_unseen_events(&k, &[]).unwrap().is_none());
}

#[test]
fn two_connections_racing_on_one_subscription_never_share_events() {
    let tb = TestBoard::new();
    let t = tb.task("hot");
    let k = key(&t, "");
    tb.board.add_notify_sub(&k, None, None).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let env = tb.env.clone();
            let k = k.clone();
            let t = t.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let b = Board::open(&env, None).unwrap();
                barrier.wait();
                let mut got: Vec<i64> = Vec::new();
                for i in 0..150 {
                    b.add_comment(&t, &format!("w{w}"), &format!("c{i}"))
                        .unwrap();
                    for _ in 0..2 {
                        if let Some(c) = b.claim_unseen_events(&k, &[]).unwrap() {
                            assert!(!c.events.is_empty());
                            assert!(c.events.iter().all(|e| e.id > c.from && e.id <= c.to));
                            got.extend(c.events.iter().map(|e| e.id));
                        }
                    }
                }
                got
            })
        })
        .collect();
    let mut per: Vec<Vec<i64>> = workers.into_iter().map(|h| h.join().unwrap()).collect();
    if let Some(rest) = tb.board.claim_unseen_events(&k, &[]).unwrap() {
        per.push(rest.events.iter().map(|e| e.id).collect());
    }
    let mut all: Vec<i64> = per.concat();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "an event was delivered twice");
    // list_events is in Hermes' (created_at, id) order; the threads' boards use the real clock
    // and this one a fake one, so compare by id.
    let mut expected: Vec<i64> = tb
        .board
        .list_events(&t, None)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    expected.sort();
    // The subscription started at the `created` event (UP §16.7), so only the comments.
    let created = expected[0];
    expected.retain(|id| *id > created);
    assert_eq!(all, expected, "every event delivered exactly once");
    assert_eq!(expected.len(), 300);
    assert_eq!(cursor_of(&tb.board, &k), *expected.last().unwrap());
}

// ----------------------------------------------------------------------------------------------
// Attachments (REF §20)
// ----------------------------------------------------------------------------------------------

/// Assert attachment `a` holds `bytes` where its backend keeps them: the file `file` under the
/// board's attachment root on SQLite; on PostgreSQL a database row (`stored_path` `db:<id>`,
/// so every host can serve it; there is no file).
fn assert_stored(b: &Board, a: &Attachment, file: &std::path::Path, bytes: &[u8]) {
    if on_postgres() {
        assert_eq!(a.stored_path, format!("db:{}", a.id));
    } else {
        assert_eq!(std::path::PathBuf::from(&a.stored_path), file);
        assert_eq!(std::fs::read(&a.stored_path).unwrap(), bytes);
    }
    assert_eq!(b.attachment_content(a).unwrap().as_deref(), Some(bytes));
}

/// Whether attachment `a`'s content is still stored (its file, or its database row).
fn content_kept(b: &Board, a: &Attachment) -> bool {
    let kept = b.attachment_content(a).unwrap().is_some();
    if !on_postgres() {
        assert_eq!(kept, std::path::Path::new(&a.stored_path).is_file());
    }
    kept
}

#[test]
fn attachments_add_list_get_remove() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let t = tb.task("with files");
    let root = b.paths().attachments.clone();
    let a1 = b
        .add_attachment(&t, " a.txt ", b"hello", Some("text/plain"), Some("alice"))
        .unwrap();
    assert_eq!(a1.filename, "a.txt");
    assert_eq!(a1.size, 5);
    assert_eq!(a1.task_id, t);
    assert_eq!(a1.content_type.as_deref(), Some("text/plain"));
    assert_eq!(a1.uploaded_by.as_deref(), Some("alice"));
    assert_eq!(a1.created_at, tb.now());
    assert_stored(b, &a1, &root.join(&t).join("a.txt"), b"hello");
    let a2 = b.add_attachment(&t, "a.txt", b"again", None, None).unwrap();
    let a3 = b.add_attachment(&t, "a.txt", b"third", None, None).unwrap();
    let r1 = b.add_attachment(&t, "README", b"r", None, None).unwrap();
    let r2 = b.add_attachment(&t, "README", b"r2", None, None).unwrap();
    assert_eq!(
        [&a2, &a3, &r1, &r2].map(|a| a.filename.as_str()),
        ["a (1).txt", "a (2).txt", "README", "README (1)"]
    );
    assert_stored(b, &a2, &root.join(&t).join("a (1).txt"), b"again");
    assert_eq!(
        b.list_attachments(&t)
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect::<Vec<_>>(),
        [a1.id, a2.id, a3.id, r1.id, r2.id]
    );
    assert_eq!(b.get_attachment(a2.id).unwrap(), a2);
    let attached: Vec<Event> = b
        .list_events(&t, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "attached")
        .collect();
    assert_eq!(attached.len(), 5);
    assert_eq!(
        attached[0].payload,
        Some(json!({"filename": "a.txt", "size": 5, "by": "alice"}))
    );
    assert_eq!(
        attached[1].payload,
        Some(json!({"filename": "a (1).txt", "size": 5, "by": null}))
    );
    // Removal: row, blob and an event; the others stay.
    let blob = b.attachment_blob_path(&a2);
    assert_eq!(
        blob.is_some(),
        !on_postgres(),
        "a file inside the root on SQLite only"
    );
    assert!(content_kept(b, &a2));
    let removed = b.remove_attachment(a2.id).unwrap();
    assert_eq!(removed.filename, "a (1).txt");
    assert!(!content_kept(b, &a2));
    assert!(blob.is_none_or(|p| !p.exists()));
    assert!(matches!(
        b.get_attachment(a2.id),
        Err(KernelError::AttachmentNotFound(id)) if id == a2.id
    ));
    assert!(matches!(
        b.remove_attachment(a2.id),
        Err(KernelError::AttachmentNotFound(_))
    ));
    let e = last_event(b, &t);
    assert_eq!(e.kind, "attachment_removed");
    assert_eq!(e.payload, Some(json!({"filename": "a (1).txt"})));
    assert_eq!(b.list_attachments(&t).unwrap().len(), 4);
    assert!(content_kept(b, &a1));
    // The freed name is reused.
    let again = b.add_attachment(&t, "a.txt", b"x", None, None).unwrap();
    assert_eq!(again.filename, "a (1).txt");
}

#[test]
fn attachment_blob_path_refuses_paths_outside_the_root() {
    sqlite_only!("attachments are files under the root on SQLite only; rows on PostgreSQL");
    let tb = TestBoard::new();
    let b = &tb.board;
    let t = tb.task("t");
    let real = b.add_attachment(&t, "ok.txt", b"ok", None, None).unwrap();
    let root = b.paths().attachments.clone();
    let outside = root.parent().unwrap().join("outside.txt");
    std::fs::write(&outside, "secret").unwrap();
    let link = root.join(&t).join("link.txt");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let fake = |p: &std::path::Path| Attachment {
        stored_path: p.to_string_lossy().into_owned(),
        ..real.clone()
    };
    assert!(b.attachment_blob_path(&real).is_some());
    for p in [
        std::path::PathBuf::from("/etc/passwd"),
        root.join("..").join("outside.txt"),
        root.join(&t).join("..").join("..").join("outside.txt"),
        link.clone(),
        root.join(&t).join("missing.txt"),
        std::path::PathBuf::from("relative.txt"),
    ] {
        assert_eq!(b.attachment_blob_path(&fake(&p)), None, "{}", p.display());
    }
    assert!(outside.is_file(), "nothing outside the root is touched");
}

// ----------------------------------------------------------------------------------------------
// gc
// ----------------------------------------------------------------------------------------------

fn set_mtime(p: &std::path::Path, age: Duration) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

#[test]
fn gc_removes_only_what_it_owns() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let root = b.paths().workspaces.clone();
    std::fs::create_dir_all(&root).unwrap();
    let outside = tb.dir.path().join("outside-ws");
    let escape = root.parent().unwrap().join("escape");
    let scratch_at = |title: &str, path: Option<&std::path::Path>, kind: WorkspaceKind| {
        create(
            b,
            NewTask {
                workspace_kind: Some(kind),
                workspace_path: path.map(|p| p.to_string_lossy().into_owned()),
                ..new_task(title, Some("worker"))
            },
        )
    };
    let a = scratch_at("archived scratch", None, WorkspaceKind::Scratch);
    let bb = scratch_at("archived outside", Some(&outside), WorkspaceKind::Scratch);
    let c = scratch_at("done scratch", None, WorkspaceKind::Scratch);
    let d = scratch_at("archived at the root", Some(&root), WorkspaceKind::Scratch);
    let e = scratch_at(
        "archived escaping",
        Some(&root.join("..").join("escape")),
        WorkspaceKind::Scratch,
    );
    let f = scratch_at("active", None, WorkspaceKind::Scratch);
    let g_dir = root.join("user-dir");
    let g = scratch_at("archived dir kind", Some(&g_dir), WorkspaceKind::Dir);
    for dir in [
        root.join(&a),
        outside.clone(),
        root.join(&c),
        escape.clone(),
        root.join(&f),
        g_dir.clone(),
    ] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("work.txt"), "w").unwrap();
    }
    claim_complete(b, &c, Some("done"), None);
    for id in [&a, &bb, &d, &e, &g] {
        b.archive_task(id).unwrap();
    }
    tb.advance(31 * 86_400);
    b.add_comment(&c, "me", "recent note on a done task")
        .unwrap();
    let finished = [&a, &bb, &c, &d, &e, &g];
    let cutoff = tb.now() - 30 * 86_400;
    let old_events: usize = finished
        .iter()
        .map(|id| {
            b.list_events(id, None)
                .unwrap()
                .iter()
                .filter(|e| e.created_at < cutoff)
                .count()
        })
        .sum();
    assert!(old_events >= 12);
    let active_events = b.list_events(&f, None).unwrap();
    // Logs.
    let logs = b.paths().logs.clone();
    std::fs::create_dir_all(logs.join("old.log")).unwrap();
    for (name, days) in [
        ("t_old.log", 40u64),
        ("t_new.log", 1),
        ("t_rot.log.1", 40),
        ("notes.txt", 40),
    ] {
        let p = logs.join(name);
        std::fs::write(&p, "log").unwrap();
        set_mtime(&p, Duration::from_secs(days * 86_400));
    }
    let report = b.gc(30, 30).unwrap();
    assert_eq!(
        report,
        // The archived scratch dir, and the done task's: it has no children and no unsettled
        // process, so its clean-up is due (issue 12: a killed supervisor never removed it).
        GcReport {
            scratch_dirs_removed: 2,
            events_removed: old_events,
            logs_removed: 2,
        }
    );
    assert!(!root.join(&a).exists() && !root.join(&c).exists());
    for kept in [
        outside.join("work.txt"),
        escape.join("work.txt"),
        root.join(&f).join("work.txt"),
        g_dir.join("work.txt"),
    ] {
        assert!(kept.is_file(), "{} was removed", kept.display());
    }
    assert!(root.is_dir());
    for id in finished {
        assert!(
            b.list_events(id, None)
                .unwrap()
                .iter()
                .all(|e| e.created_at >= cutoff),
            "{id}"
        );
    }
    assert_eq!(b.list_events(&f, None).unwrap(), active_events);
    assert_eq!(kinds(b, &c), ["commented"]);
    assert!(!logs.join("t_old.log").exists() && !logs.join("t_rot.log.1").exists());
    assert!(logs.join("t_new.log").exists() && logs.join("notes.txt").exists());
    assert!(logs.join("old.log").is_dir());
    // Tasks themselves are untouched, and a second pass finds nothing.
    assert_eq!(b.get_task(&a).unwrap().status, Status::Archived);
    assert_eq!(b.gc(30, 30).unwrap(), GcReport::default());
}

// ----------------------------------------------------------------------------------------------
// Comments, events, runs
// ----------------------------------------------------------------------------------------------

#[test]
fn comments_are_trimmed_and_logged() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let t = tb.task("t");
    let id1 = b.add_comment(&t, "  alice ", "  hello world \n").unwrap();
    tb.advance(1);
    let id2 = b.add_comment(&t, "bob", "héllo").unwrap();
    assert!(id2 > id1);
    let cs = b.list_comments(&t).unwrap();
    assert_eq!(
        cs.iter()
            .map(|c| (c.id, c.author.as_str(), c.body.as_str()))
            .collect::<Vec<_>>(),
        [(id1, "alice", "hello world"), (id2, "bob", "héllo")]
    );
    assert_eq!(cs[1].created_at, tb.now());
    let ev: Vec<Event> = b
        .list_events(&t, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "commented")
        .collect();
    assert_eq!(ev[0].payload, Some(json!({"author": "alice", "len": 11})));
    assert_eq!(ev[1].payload, Some(json!({"author": "bob", "len": 5})));
    assert_eq!(ev[1].run_id, None);
}

#[test]
fn events_after_filters_by_task_kind_cursor_and_limit() {
    let tb = TestBoard::new();
    let b = &tb.board;
    tb.task("before");
    let start = b.max_event_id().unwrap();
    assert!(start > 0);
    let t1 = tb.task("t1");
    let t2 = tb.task("t2");
    b.add_comment(&t1, "me", "hi").unwrap();
    b.add_comment(&t2, "me", "hi").unwrap();
    let all = b.events_after(start, &EventFilter::default()).unwrap();
    assert_eq!(
        all.iter()
            .map(|e| (e.task_id.as_str(), e.kind.as_str()))
            .collect::<Vec<_>>(),
        [
            (t1.as_str(), "created"),
            (t2.as_str(), "created"),
            (t1.as_str(), "commented"),
            (t2.as_str(), "commented")
        ]
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(b.max_event_id().unwrap(), all.last().unwrap().id);
    let only_t1 = b
        .events_after(
            start,
            &EventFilter {
                task_id: Some(t1.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(only_t1.len(), 2);
    assert!(only_t1.iter().all(|e| e.task_id == t1));
    let commented = b
        .events_after(
            start,
            &EventFilter {
                kinds: vec!["commented".into(), "nonsense".into()],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(commented.len(), 2);
    let both = b
        .events_after(
            start,
            &EventFilter {
                task_id: Some(t2.clone()),
                kinds: vec!["commented".into()],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(both, vec![all[3].clone()]);
    assert_eq!(
        b.events_after(all[1].id, &EventFilter::default()).unwrap(),
        all[2..].to_vec()
    );
    assert_eq!(
        b.events_after(
            start,
            &EventFilter {
                limit: Some(1),
                ..Default::default()
            }
        )
        .unwrap(),
        all[..1].to_vec()
    );
    assert!(
        b.events_after(b.max_event_id().unwrap(), &EventFilter::default())
            .unwrap()
            .is_empty()
    );
    // list_events keeps the newest N in id order.
    let last2 = b.list_events(&t1, Some(1)).unwrap();
    assert_eq!(last2, vec![all[2].clone()]);
}

#[test]
fn latest_summaries_and_run_filters() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let t = tb.task("t");
    let none = tb.task("no runs");
    assert_eq!(b.latest_summary(&t).unwrap(), None);
    b.claim_task(&t, None).unwrap();
    b.block_task(BlockRequest {
        task_id: t.clone(),
        reason: Some("first reason".into()),
        kind: Some(BlockKind::Capability),
        ..Default::default()
    })
    .unwrap();
    b.unblock_task(&t, None, None).unwrap();
    tb.advance(10);
    b.claim_task(&t, None).unwrap();
    tb.advance(10);
    b.reclaim_task(&t, None, Map::new()).unwrap();
    assert_eq!(
        b.latest_summary(&t).unwrap().as_deref(),
        Some("first reason"),
        "a run without a summary is skipped"
    );
    tb.advance(10);
    b.claim_task(&t, None).unwrap();
    b.schedule_task(&t, Some("   "), None, None).unwrap();
    b.unblock_task(&t, None, None).unwrap();
    assert_eq!(
        b.latest_summary(&t).unwrap().as_deref(),
        Some("first reason")
    );
    let summaries = b
        .latest_summaries(&[t.clone(), none.clone(), "t_00000000".into()])
        .unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[&t], "first reason");
    tb.advance(10);
    claim_complete(b, &t, Some("final"), None);
    assert_eq!(b.latest_summary(&t).unwrap().as_deref(), Some("final"));
    assert_eq!(
        b.latest_summaries(std::slice::from_ref(&t)).unwrap()[&t],
        "final"
    );
    assert!(b.latest_summaries(&[]).unwrap().is_empty());
    let runs = b.list_runs(&t, None).unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| (r.status.as_str(), r.outcome.as_deref().unwrap()))
            .collect::<Vec<_>>(),
        [
            ("blocked", "blocked"),
            ("reclaimed", "reclaimed"),
            ("scheduled", "scheduled"),
            ("done", "completed")
        ]
    );
    let pick = |f: RunStateField, v: &str| -> Vec<i64> {
        b.list_runs(&t, Some((f, v)))
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(pick(RunStateField::Status, "done"), [runs[3].id]);
    assert_eq!(pick(RunStateField::Outcome, "completed"), [runs[3].id]);
    assert!(pick(RunStateField::Status, "completed").is_empty());
    assert_eq!(pick(RunStateField::Outcome, "reclaimed"), [runs[1].id]);
    assert_eq!(pick(RunStateField::Status, "blocked"), [runs[0].id]);
    assert!(pick(RunStateField::Outcome, "x' OR '1'='1").is_empty());
    assert_eq!(b.get_run(runs[2].id).unwrap(), runs[2]);
}

// ----------------------------------------------------------------------------------------------
// Edits, assignment, deletion
// ----------------------------------------------------------------------------------------------

#[test]
fn edit_completed_result_updates_or_synthesizes_the_handoff() {
    sqlite_only!("writes the board as Hermes 0.19.0 does, through its SQLite file");
    let tb = TestBoard::new();
    let b = &tb.board;
    // A claimed-and-completed task: the newest completed run is updated.
    let t = tb.task("t");
    let run_id = claim_complete(b, &t, Some("orig"), Some(json!({"a": 1})));
    tb.advance(60);
    let edited = b
        .edit_completed_result(&t, "  new result ", Some("new sum"), Some(&json!({"b": 2})))
        .unwrap();
    assert_eq!(edited.result.as_deref(), Some("new result"));
    let run = b.get_run(run_id).unwrap();
    assert_eq!(run.summary.as_deref(), Some("new sum"));
    assert_eq!(run.metadata, Some(json!({"b": 2})));
    let e = last_event(b, &t);
    assert_eq!(e.kind, "edited");
    assert_eq!(e.run_id, Some(run_id));
    assert_eq!(
        e.payload,
        Some(
            json!({"fields": ["result", "summary", "metadata"], "result_len": 10, "summary": "new \
                                                                                              sum"})
        )
    );
    // No summary: the result becomes the run summary; metadata is kept.
    b.edit_completed_result(&t, "only result", None, None)
        .unwrap();
    let run = b.get_run(run_id).unwrap();
    assert_eq!(run.summary.as_deref(), Some("only result"));
    assert_eq!(run.metadata, Some(json!({"b": 2})));
    assert_eq!(
        last_event(b, &t).payload.unwrap()["fields"],
        json!(["result", "summary"])
    );
    assert_eq!(b.list_runs(&t, None).unwrap().len(), 1);
    assert_eq!(
        b.latest_summary(&t).unwrap().as_deref(),
        Some("only result")
    );
    // A task completed without any run: a completed run is synthesized.
    let bare = tb.task("bare");
    hermes_019_complete_silently(&tb, &bare);
    assert!(b.list_runs(&bare, None).unwrap().is_empty());
    b.edit_completed_result(&bare, "backfilled", None, Some(&json!({"k": "v"})))
        .unwrap();
    let runs = b.list_runs(&bare, None).unwrap();
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!(
        (
            r.status.as_str(),
            r.outcome.as_deref(),
            r.summary.as_deref()
        ),
        ("completed", Some("completed"), Some("backfilled"))
    );
    assert_eq!((r.started_at, r.ended_at), (tb.now(), Some(tb.now())));
    assert_eq!(r.metadata, Some(json!({"k": "v"})));
    assert_eq!(r.profile.as_deref(), Some("worker"));
    assert_eq!(last_event(b, &bare).run_id, Some(r.id));
    // Only done tasks.
    let ready = tb.task("ready");
    assert!(matches!(
        b.edit_completed_result(&ready, "x", None, None),
        Err(KernelError::Refused { action: "edit", .. })
    ));
}

#[test]
fn update_task_logs_edits_and_reprioritizations() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let t = tb.task("old title");
    let n = kinds(b, &t).len();
    let u = b
        .update_task(
            &t,
            TaskPatch {
                title: Some("  New title ".into()),
                body: Some(Some("a body".into())),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (u.title.as_str(), u.body.as_deref()),
        ("New title", Some("a body"))
    );
    assert_eq!(
        last_event(b, &t).payload,
        Some(json!({"fields": ["title", "body"]}))
    );
    b.update_task(
        &t,
        TaskPatch {
            priority: Some(7),
            ..Default::default()
        },
    )
    .unwrap();
    let e = last_event(b, &t);
    assert_eq!(
        (e.kind.as_str(), e.payload),
        ("reprioritized", Some(json!({"priority": 7})))
    );
    // The same values again: no events.
    let before = kinds(b, &t);
    b.update_task(
        &t,
        TaskPatch {
            title: Some("New title".into()),
            body: Some(Some("a body".into())),
            priority: Some(7),
            tenant: Some(None),
        },
    )
    .unwrap();
    assert_eq!(kinds(b, &t), before);
    b.update_task(
        &t,
        TaskPatch {
            tenant: Some(Some("acme".into())),
            body: Some(None),
            ..Default::default()
        },
    )
    .unwrap();
    let got = b.get_task(&t).unwrap();
    assert_eq!((got.tenant.as_deref(), got.body), (Some("acme"), None));
    assert_eq!(
        last_event(b, &t).payload,
        Some(json!({"fields": ["body", "tenant"]}))
    );
    b.update_task(
        &t,
        TaskPatch {
            tenant: Some(None),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(b.get_task(&t).unwrap().tenant, None);
    assert_eq!(kinds(b, &t).len(), n + 4);
}

#[test]
fn assign_and_reassign() {
    let tb = TestBoard::new();
    let b = &tb.board;
    // assign: refused while running; reassign --reclaim moves it in one step.
    let t = tb.task("t");
    let claim = b.claim_task(&t, None).unwrap();
    assert!(matches!(
        b.assign_task(&t, Some("other")),
        Err(KernelError::Refused {
            action: "assign",
            ..
        })
    ));
    assert!(matches!(
        b.reassign_task(&t, Some("other"), false, None, Default::default()),
        Err(KernelError::Refused {
            action: "reassign",
            ..
        })
    ));
    assert_eq!(b.get_task(&t).unwrap().status, Status::Running);
    let moved = b
        .reassign_task(&t, Some("Other"), true, Some("moving"), Default::default())
        .unwrap();
    assert_eq!(moved.assignee.as_deref(), Some("other"));
    assert_eq!(moved.status, Status::Ready);
    assert_eq!((moved.claim_lock, moved.current_run_id), (None, None));
    let run = b.get_run(claim.run_id).unwrap();
    assert_eq!(run.outcome.as_deref(), Some("reclaimed"));
    assert_eq!(run.error.as_deref(), Some("manual_reclaim: moving"));
    let tail: Vec<String> = kinds(b, &t).into_iter().rev().take(2).collect();
    assert_eq!(tail, ["assigned", "reclaimed"]);
    assert_eq!(
        last_event(b, &t).payload,
        Some(json!({"assignee": "other"}))
    );
    assert_invariants(b);
    // reassign of a task that is not running needs no reclaim.
    let r = tb.task("r");
    b.reassign_task(&r, Some("third"), false, None, Default::default())
        .unwrap();
    assert_eq!(b.get_task(&r).unwrap().assignee.as_deref(), Some("third"));
    // assign: a different profile resets the failure counter; the same one is a no-op;
    // "none" unassigns.
    let f = tb.task("f");
    b.record_task_failure(&FailureReport::new(&f, RunOutcome::SpawnFailed, "boom"))
        .unwrap();
    assert_eq!(b.get_task(&f).unwrap().consecutive_failures, 1);
    let n = kinds(b, &f).len();
    b.assign_task(&f, Some("WORKER")).unwrap();
    assert_eq!(kinds(b, &f).len(), n, "same profile: no event");
    assert_eq!(b.get_task(&f).unwrap().consecutive_failures, 1);
    b.assign_task(&f, Some("other")).unwrap();
    let got = b.get_task(&f).unwrap();
    assert_eq!(
        (got.assignee.as_deref(), got.consecutive_failures),
        (Some("other"), 0)
    );
    b.assign_task(&f, Some("none")).unwrap();
    assert_eq!(b.get_task(&f).unwrap().assignee, None);
    assert_eq!(last_event(b, &f).payload, Some(json!({"assignee": null})));
    b.assign_task(&f, None).unwrap();
    assert_eq!(kinds(b, &f).len(), n + 2);
}

#[test]
fn delete_task_cascades_and_recomputes() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let grand = tb.task("grandparent");
    claim_complete(b, &grand, None, None);
    let p = tb.child("doomed", &[&grand]);
    let c = tb.child("child", &[&p]);
    let att = b
        .add_attachment(&p, "keep.txt", b"kept", None, None)
        .unwrap();
    b.add_comment(&p, "me", "bye").unwrap();
    b.add_notify_sub(&key(&p, ""), None, None).unwrap();
    b.add_notify_sub(&key(&c, ""), None, None).unwrap();
    let claim = b.claim_task(&p, None).unwrap();
    let token = b.mint_run_token(&p, claim.run_id).unwrap();
    b.register_supervisor(&p, claim.run_id, 4242, Some(1))
        .unwrap();
    assert!(b.run_process(claim.run_id).unwrap().is_some());
    assert_eq!(b.get_task(&c).unwrap().status, Status::Todo);
    // A refused delete (unknown task) changes nothing, blobs included.
    let before = b.snapshot().unwrap();
    assert!(matches!(
        b.delete_task("t_00000000"),
        Err(KernelError::TaskNotFound(_))
    ));
    assert_eq!(b.snapshot().unwrap(), before);
    assert!(content_kept(b, &att));
    let promoted = b.delete_task(&p).unwrap();
    assert_eq!(promoted, vec![c.clone()]);
    assert!(matches!(b.get_task(&p), Err(KernelError::TaskNotFound(_))));
    assert!(b.list_comments(&p).unwrap().is_empty());
    assert!(b.list_events(&p, None).unwrap().is_empty());
    assert!(b.list_runs(&p, None).unwrap().is_empty());
    assert!(b.list_notify_subs(Some(&p)).unwrap().is_empty());
    assert_eq!(b.list_notify_subs(None).unwrap().len(), 1);
    assert!(b.parents(&c).unwrap().is_empty() && b.children(&grand).unwrap().is_empty());
    assert_eq!(b.get_task(&c).unwrap().status, Status::Ready);
    assert_eq!(last_event(b, &c).kind, "promoted");
    // The dashboard delete takes the task's attachments (rows and blobs), run tokens and
    // process rows with it (Hermes' `archive --rm` keeps attachments; see below).
    assert!(b.list_attachments(&p).unwrap().is_empty());
    assert!(matches!(
        b.get_attachment(att.id),
        Err(KernelError::AttachmentNotFound(_))
    ));
    assert!(!content_kept(b, &att));
    assert!(!b.paths().attachments.join(&p).exists());
    assert!(b.resolve_run_token(&token).unwrap().is_none());
    assert!(b.run_process(claim.run_id).unwrap().is_none());
    let rows = b.snapshot().unwrap();
    for prefix in [
        "task_links|",
        "task_comments|",
        "task_runs|",
        "kanban_notify_subs|",
        "task_attachments|",
        "kanban_run_tokens|",
        "kanban_worker_procs|",
        "tasks|",
    ] {
        assert!(
            !rows
                .iter()
                .any(|r| r.starts_with(prefix) && r.contains(p.as_str())),
            "{prefix} still mentions {p}"
        );
    }
    // delete_archived_task: only archived tasks.
    assert!(matches!(
        b.delete_archived_task(&c),
        Err(KernelError::Refused {
            action: "delete",
            ..
        })
    ));
    let kept = b
        .add_attachment(&c, "kept.txt", b"kept", None, None)
        .unwrap();
    b.archive_task(&c).unwrap();
    b.delete_archived_task(&c).unwrap();
    assert!(matches!(b.get_task(&c), Err(KernelError::TaskNotFound(_))));
    assert!(b.list_notify_subs(None).unwrap().is_empty());
    // `archive --rm` keeps attachment rows and blobs, as Hermes does (REF §20).
    assert_eq!(b.list_attachments(&c).unwrap(), vec![kept.clone()]);
    assert!(content_kept(b, &kept));
}

/// Bulk seeding (benchmarks) writes what a real board would hold: an open current run and a
/// claim for `running`, a closed completed run for `done`, a sticky `blocked` event, links.
#[test]
fn seed_tasks_writes_consistent_runs_claims_and_links() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let seed = |title: &str, status: Status, parents: Vec<usize>| SeedTask {
        title: title.into(),
        assignee: Some("worker".into()),
        status,
        priority: 0,
        parents,
        claim_lock: None,
    };
    let ids = b
        .seed_tasks(&[
            seed("done", Status::Done, vec![]),
            seed("running", Status::Running, vec![0]),
            seed("blocked", Status::Blocked, vec![]),
            seed("todo", Status::Todo, vec![1]),
        ])
        .unwrap();
    assert_eq!(ids.len(), 4);
    assert_invariants(b);
    let running = b.get_task(&ids[1]).unwrap();
    let runs = b.list_runs(&ids[1], None).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(running.current_run_id, Some(runs[0].id));
    assert!(runs[0].ended_at.is_none());
    assert_eq!(running.claim_lock.as_deref(), Some("seed-host:1"));
    let done = b.list_runs(&ids[0], None).unwrap();
    assert_eq!(done[0].outcome.as_deref(), Some("completed"));
    assert!(b.get_task(&ids[0]).unwrap().current_run_id.is_none());
    assert_eq!(last_event(b, &ids[2]).kind, "blocked");
    assert_eq!(b.parents(&ids[3]).unwrap(), vec![ids[1].clone()]);
    // A parent index that is not an earlier task refuses the whole batch.
    let before = b.snapshot().unwrap();
    assert!(matches!(
        b.seed_tasks(&[
            seed("x", Status::Todo, vec![]),
            seed("y", Status::Todo, vec![5])
        ]),
        Err(KernelError::Invalid {
            field: "parents",
            ..
        })
    ));
    assert_eq!(b.snapshot().unwrap(), before);
}

// ----------------------------------------------------------------------------------------------
// upstream ~0.22 creation and linking rules (UP §7, §10)
// ----------------------------------------------------------------------------------------------

fn payload_of(b: &Board, id: &str, kind: &str) -> Map<String, Value> {
    b.list_events(id, None)
        .unwrap()
        .into_iter()
        .rfind(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} event on {id}"))
        .payload
        .and_then(|p| p.as_object().cloned())
        .unwrap_or_default()
}

fn kinds_of(b: &Board, id: &str) -> Vec<String> {
    b.list_events(id, None)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

fn sub_on(task: &str, chat: &str) -> SubKey {
    SubKey {
        task_id: task.into(),
        platform: "telegram".into(),
        chat_id: chat.into(),
        thread_id: String::new(),
    }
}

/// `created` carries upstream's keys; a worker's child names its creator, inherits the
/// creator's session and subscriptions (cursor at the child's latest event: nothing is
/// replayed); a child without a tenant takes its parent's; a child of an open parent says why
/// it waits (`dependency_wait`).
#[test]
fn creation_follows_upstream_payload_and_inheritance() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let parent = create(
        b,
        NewTask {
            tenant: Some("acme".into()),
            session_id: Some("sess-1".into()),
            ..new_task("parent", Some("worker"))
        },
    );
    b.add_notify_sub(&sub_on(&parent, "chat-1"), Some("u1"), None)
        .unwrap();
    // The parent's own worker creates a child: HERMES_KANBAN_TASK names the creator.
    let mut worker =
        Board::open(&tb.env.clone().with("HERMES_KANBAN_TASK", &parent), None).unwrap();
    worker.set_clock({
        let c = tb.clock.clone();
        Arc::new(move || c.load(std::sync::atomic::Ordering::SeqCst))
    });
    let child = worker
        .create_task(NewTask {
            parents: vec![parent.clone()],
            ..new_task("child", Some("worker"))
        })
        .unwrap()
        .task;
    let p = payload_of(b, &child.id, "created");
    for k in [
        "creator_task_id",
        "workspace_kind",
        "workspace_path",
        "project_id",
        "model_override",
        "provider_override",
    ] {
        assert!(p.contains_key(k), "created payload lacks {k}: {p:?}");
    }
    assert_eq!(p["creator_task_id"], json!(parent));
    assert_eq!(p["workspace_kind"], json!("scratch"));
    assert_eq!(child.tenant.as_deref(), Some("acme"), "tenant inherited");
    assert_eq!(
        child.session_id.as_deref(),
        Some("sess-1"),
        "session inherited"
    );
    assert_eq!(child.status, Status::Todo);
    assert_eq!(
        payload_of(b, &child.id, "dependency_wait"),
        json!({"reason": "parent_not_done", "parent": parent})
            .as_object()
            .cloned()
            .unwrap()
    );
    let subs = b.list_notify_subs(Some(&child.id)).unwrap();
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0].chat_id, "chat-1");
    assert_eq!(subs[0].user_id.as_deref(), Some("u1"));
    let latest = b.list_events(&child.id, None).unwrap().last().unwrap().id;
    assert_eq!(subs[0].last_event_id, latest, "no history replayed");
    // An explicit tenant wins; a plain task names no creator.
    let other = create(
        b,
        NewTask {
            tenant: Some("beta".into()),
            parents: vec![parent.clone()],
            ..new_task("other", None)
        },
    );
    assert_eq!(b.get_task(&other).unwrap().tenant.as_deref(), Some("beta"));
    assert_eq!(
        payload_of(b, &parent, "created")["creator_task_id"],
        Value::Null
    );
    assert_invariants(b);
}

/// Linking a ready child under an open parent demotes it with `dependency_wait {demoted}` and
/// hands it the parent's subscriptions.
#[test]
fn link_under_an_open_parent_explains_the_demotion_and_inherits_subscriptions() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let parent = create(b, new_task("parent", None));
    let child = create(b, new_task("child", None));
    b.add_notify_sub(&sub_on(&parent, "chat-9"), None, None)
        .unwrap();
    b.link_tasks(&parent, &child).unwrap();
    assert_eq!(b.get_task(&child).unwrap().status, Status::Todo);
    let p = payload_of(b, &child, "dependency_wait");
    assert_eq!(p["demoted"], json!(true));
    assert_eq!(p["parent"], json!(parent));
    let k = kinds_of(b, &child);
    let at = |kind: &str| k.iter().position(|x| x == kind).unwrap();
    assert!(at("dependency_wait") < at("linked"), "{k:?}");
    let subs = b.list_notify_subs(Some(&child)).unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].chat_id, "chat-9");
    assert_invariants(b);
}

/// The dispatcher's tick lock: one tick per board across handles (processes, hosts) and across
/// the ticks of one handle; released when the lock drops. On PostgreSQL it lives on the board's
/// own session: holding it opens no session, and a dropped lock is let go by the board's next
/// statement or at once by `release_tick_lock`.
#[test]
fn the_tick_lock_is_one_per_board_and_costs_no_session() {
    let tb = TestBoard::new();
    let other = crate::helpers::board::open_board(&tb.env, None);
    let held = |b: &Board| matches!(b.try_tick_lock(), TickLockTry::Held(_));
    let TickLockTry::Held(lock) = tb.board.try_tick_lock() else {
        panic!("the first tick lock is free")
    };
    assert!(
        !held(&tb.board),
        "a second tick on the same handle must wait"
    );
    assert!(!held(&other), "a tick on another handle must wait");
    if let Some(pg) = &tb.pg {
        assert_eq!(
            pg.sessions(),
            2,
            "one session per open board, none for the lock"
        );
    }
    drop(lock);
    // The board's next statement lets it go (the dispatcher calls release_tick_lock at once).
    tb.board.list_tasks(&Default::default()).unwrap();
    let TickLockTry::Held(lock) = other.try_tick_lock() else {
        panic!("the dropped lock was released")
    };
    assert!(!held(&tb.board));
    drop(lock);
    other.release_tick_lock();
    assert!(held(&tb.board), "released at once");
}
