//! SPEC §9: every kernel entry point treats its input as hostile. Each case feeds one bad value
//! to one `Board` method and checks three things: the error is the right typed variant, its
//! message names the field or the task, and the database (and the attachment store) is exactly
//! as it was before the call.

use std::path::{Path, PathBuf};

use crate::helpers::TestBoard;
use hermes_kanban::kernel::validate::{
    ATTACHMENT_MAX_BYTES, BODY_MAX_BYTES, COMMENT_MAX_BYTES, HANDOFF_MAX_BYTES, NOTE_MAX_BYTES,
    REASON_MAX_BYTES, TITLE_MAX_CHARS,
};
use hermes_kanban::kernel::*;
use serde_json::{Map, Value, json};

// ----------------------------------------------------------------------------------------------
// Fixture: one board holding a task in every reachable state, plus a subscription and an
// attachment, so every entry point has something real to be refused on.
// ----------------------------------------------------------------------------------------------

struct Fx {
    tb: TestBoard,
    /// `ready`, assigned to `worker`.
    ready: String,
    /// `running`, claimed by the test claimer, on run `run_id`.
    running: String,
    run_id: i64,
    /// `done` with a hand-off.
    done: String,
    /// `archived`.
    archived: String,
    /// `blocked` (needs_input).
    blocked: String,
    /// Chain `a -> b -> c` (b and c wait in `todo`).
    a: String,
    b: String,
    c: String,
    /// A subscription on `ready`.
    sub: SubKey,
    /// An attachment on `ready`.
    attachment: i64,
}

impl Fx {
    fn new() -> Fx {
        let tb = TestBoard::new();
        let ready = tb.task("ready task");
        let running = tb.task("running task");
        let run_id = tb.board.claim_task(&running, None).unwrap().run_id;
        let done = tb.task("done task");
        tb.board
            .complete_task(Completion {
                task_id: done.clone(),
                summary: Some("finished".into()),
                ..Default::default()
            })
            .unwrap();
        let archived = tb.task("archived task");
        tb.board.archive_task(&archived).unwrap();
        let blocked = tb.task("blocked task");
        tb.board
            .block_task(BlockRequest {
                task_id: blocked.clone(),
                reason: Some("need creds".into()),
                kind: Some(BlockKind::NeedsInput),
                ..Default::default()
            })
            .unwrap();
        let a = tb.task("chain a");
        let b = tb.child("chain b", &[&a]);
        let c = tb.child("chain c", &[&b]);
        let sub = SubKey {
            task_id: ready.clone(),
            platform: "telegram".into(),
            chat_id: "42".into(),
            thread_id: String::new(),
        };
        tb.board.add_notify_sub(&sub, None, Some("ops")).unwrap();
        let attachment = tb
            .board
            .add_attachment(&ready, "spec.txt", b"spec", Some("text/plain"), None)
            .unwrap()
            .id;
        assert_eq!(tb.board.get_task(&b).unwrap().status, Status::Todo);
        Fx {
            tb,
            ready,
            running,
            run_id,
            done,
            archived,
            blocked,
            a,
            b,
            c,
            sub,
            attachment,
        }
    }

    fn board(&self) -> &Board {
        &self.tb.board
    }

    fn sub_on(&self, task_id: &str) -> SubKey {
        SubKey {
            task_id: task_id.into(),
            ..self.sub.clone()
        }
    }
}

/// Every entry (file or directory) under `root`, recursively, sorted.
fn tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

// ----------------------------------------------------------------------------------------------
// The table machinery.
// ----------------------------------------------------------------------------------------------

/// What a refused call must return.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// `KernelError::Invalid` for this field.
    Invalid(&'static str),
    /// `KernelError::TaskNotFound`.
    NotFound,
    /// A path-like or blank id: refused either as an invalid id or as an unknown task.
    BadId,
    /// `KernelError::Refused` for this action.
    Refused(&'static str),
    SelfLink,
    Cycle,
    NoSuchLink,
    StaleRun,
    AttachmentNotFound,
    /// Not an error case: the call must succeed and write nothing.
    NoWrite,
}

fn matches_want(e: &KernelError, want: Want) -> bool {
    match (want, e) {
        (Want::Invalid(f), KernelError::Invalid { field, .. }) => *field == f,
        (Want::NotFound, KernelError::TaskNotFound(_)) => true,
        (Want::BadId, KernelError::TaskNotFound(_)) => true,
        (Want::BadId, KernelError::Invalid { field, .. }) => {
            field.contains("id") || *field == "parents"
        }
        (Want::Refused(a), KernelError::Refused { action, .. }) => *action == a,
        (Want::SelfLink, KernelError::SelfLink(_)) => true,
        (Want::Cycle, KernelError::Cycle { .. }) => true,
        (Want::NoSuchLink, KernelError::NoSuchLink { .. }) => true,
        (Want::StaleRun, KernelError::StaleRun { .. }) => true,
        (Want::AttachmentNotFound, KernelError::AttachmentNotFound(_)) => true,
        _ => false,
    }
}

type Call = Box<dyn Fn(&Fx) -> Result<()>>;

struct Case {
    name: String,
    want: Want,
    /// Substrings the error's Display must contain (the field name, the task id, ...).
    mentions: Vec<String>,
    call: Call,
}

macro_rules! case {
    ($cases:ident, $name:expr, $want:expr, [$($m:expr),* $(,)?], |$fx:ident| $body:expr) => {
        $cases.push(Case {
            name: $name.to_string(),
            want: $want,
            mentions: vec![$($m.to_string()),*],
            call: Box::new(move |$fx: &Fx| $body.map(drop)),
        })
    };
}

/// Run every case against one board; collect all failures and report them together.
fn run_cases(fx: &Fx, cases: Vec<Case>) {
    let att_root = fx.board().paths().attachments.clone();
    let ws_root = fx.board().paths().workspaces.clone();
    let mut failures = Vec::new();
    let n = cases.len();
    for case in cases {
        let rows_before = fx.board().snapshot().unwrap();
        let att_before = tree(&att_root);
        let ws_before = tree(&ws_root);
        let res = (case.call)(fx);
        match (&res, case.want) {
            (Ok(()), Want::NoWrite) => {}
            (Ok(()), _) => {
                failures.push(format!("{}: accepted, expected {:?}", case.name, case.want))
            }
            (Err(e), want) => {
                if !matches_want(e, want) {
                    failures.push(format!(
                        "{}: wrong error {e:?} (\"{e}\"), expected {want:?}",
                        case.name
                    ));
                }
                let shown = e.to_string();
                for m in &case.mentions {
                    if !shown.contains(m.as_str()) {
                        failures.push(format!(
                            "{}: message {:?} does not mention {m:?}",
                            case.name,
                            truncate(&shown)
                        ));
                    }
                }
            }
        }
        if fx.board().snapshot().unwrap() != rows_before {
            failures.push(format!(
                "{}: the database changed ({:?})",
                case.name,
                res.as_ref().err().map(|e| truncate(&e.to_string()))
            ));
        }
        if tree(&att_root) != att_before {
            failures.push(format!(
                "{}: the attachment store changed: {:?} -> {:?}",
                case.name,
                att_before,
                tree(&att_root)
            ));
        }
        if tree(&ws_root) != ws_before {
            failures.push(format!("{}: the workspaces root changed", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

fn nt(title: &str) -> NewTask {
    NewTask {
        title: title.into(),
        assignee: Some("worker".into()),
        ..Default::default()
    }
}

fn big(n: usize) -> String {
    "x".repeat(n)
}

const UNKNOWN: &str = "t_deadbeef";
/// Ids that are path-like, blank or otherwise not ids.
const BAD_IDS: &[&str] = &["../x", "a/b", "", "   ", "t_\0x", "..\\x", "/etc/passwd"];

// ----------------------------------------------------------------------------------------------
// create_task
// ----------------------------------------------------------------------------------------------

#[test]
fn create_task_rejects_hostile_fields() {
    let fx = Fx::new();
    let mut cs: Vec<Case> = Vec::new();
    for t in ["", "   ", "\n\t "] {
        case!(
            cs,
            format!("blank title {t:?}"),
            Want::Invalid("title"),
            ["title"],
            |fx| fx.board().create_task(nt(t))
        );
    }
    case!(
        cs,
        "title over 1000 chars",
        Want::Invalid("title"),
        ["title", "1000"],
        |fx| fx.board().create_task(nt(&big(TITLE_MAX_CHARS + 1)))
    );
    case!(
        cs,
        "title of 1001 multibyte chars",
        Want::Invalid("title"),
        ["title"],
        |fx| fx.board().create_task(nt(&"é".repeat(TITLE_MAX_CHARS + 1)))
    );
    for t in [
        "two\nlines",
        "cr\rhere",
        "esc\u{1b}[31m",
        "nul\0byte",
        "del\u{7f}",
        "c1\u{85}x",
    ] {
        case!(
            cs,
            format!("title with control {t:?}"),
            Want::Invalid("title"),
            ["title"],
            |fx| fx.board().create_task(nt(t))
        );
    }
    case!(
        cs,
        "body over 1 MiB",
        Want::Invalid("body"),
        ["body"],
        |fx| fx.board().create_task(NewTask {
            body: Some(big(BODY_MAX_BYTES + 1)),
            ..nt("ok")
        })
    );
    case!(
        cs,
        "body with NUL",
        Want::Invalid("body"),
        ["body", "NUL"],
        |fx| fx.board().create_task(NewTask {
            body: Some("a\0b".into()),
            ..nt("ok")
        })
    );
    for a in [
        "../x", "a/b", "..", ".hidden", "-rf", "a b", "a\\b", "x\0", "évil",
    ] {
        case!(
            cs,
            format!("assignee {a:?}"),
            Want::Invalid("assignee"),
            ["assignee"],
            |fx| fx.board().create_task(NewTask {
                assignee: Some(a.into()),
                ..nt("ok")
            })
        );
    }
    case!(
        cs,
        "assignee of 65 chars",
        Want::Invalid("assignee"),
        ["assignee"],
        |fx| fx.board().create_task(NewTask {
            assignee: Some(big(65)),
            ..nt("ok")
        })
    );
    for (field, set) in [
        ("tenant", 0usize),
        ("idempotency_key", 1),
        ("created_by", 2),
        ("session_id", 3),
        ("project_id", 4),
    ] {
        for v in ["a\nb".to_string(), "nul\0".to_string(), big(300)] {
            case!(
                cs,
                format!("{field} {:?}", truncate(&v)),
                Want::Invalid(field),
                [field],
                |fx| {
                    let mut n = nt("ok");
                    let v = Some(v.clone());
                    match set {
                        0 => n.tenant = v,
                        1 => n.idempotency_key = v,
                        2 => n.created_by = v,
                        3 => n.session_id = v,
                        _ => n.project_id = v,
                    }
                    fx.board().create_task(n)
                }
            );
        }
    }
    for p in [1_000_000_000_000i64, -1_000_000_000_000, i64::MAX, i64::MIN] {
        case!(
            cs,
            format!("priority {p}"),
            Want::Invalid("priority"),
            ["priority"],
            |fx| fx.board().create_task(NewTask {
                priority: p,
                ..nt("ok")
            })
        );
    }
    for m in [0i64, -1, 1_000_000_000, i64::MIN] {
        case!(
            cs,
            format!("max_runtime {m}"),
            Want::Invalid("max_runtime_seconds"),
            ["max_runtime"],
            |fx| fx.board().create_task(NewTask {
                max_runtime_seconds: Some(m),
                ..nt("ok")
            })
        );
    }
    for m in [0i64, -1, 1_000_000] {
        case!(
            cs,
            format!("max_retries {m}"),
            Want::Invalid("max_retries"),
            ["max_retries"],
            |fx| fx.board().create_task(NewTask {
                max_retries: Some(m),
                ..nt("ok")
            })
        );
    }
    case!(
        cs,
        "goal_max_turns 0",
        Want::Invalid("goal_max_turns"),
        ["goal_max_turns"],
        |fx| fx.board().create_task(NewTask {
            goal_max_turns: Some(0),
            ..nt("ok")
        })
    );
    case!(
        cs,
        "skill with comma",
        Want::Invalid("skills"),
        ["skills", "a,b"],
        |fx| fx.board().create_task(NewTask {
            skills: vec!["ok-skill".into(), "a,b".into()],
            ..nt("ok")
        })
    );
    case!(
        cs,
        "skills named like toolsets (both listed)",
        Want::Invalid("skills"),
        ["skills", "'web'", "'Terminal'", "toolset"],
        |fx| fx.board().create_task(NewTask {
            skills: vec!["web".into(), "github-code-review".into(), "Terminal".into()],
            ..nt("ok")
        })
    );
    case!(
        cs,
        "skill with NUL",
        Want::Invalid("skills"),
        ["skills"],
        |fx| fx.board().create_task(NewTask {
            skills: vec!["s\0".into()],
            ..nt("ok")
        })
    );
    case!(
        cs,
        "too many skills",
        Want::Invalid("skills"),
        ["skills"],
        |fx| fx.board().create_task(NewTask {
            skills: (0..65).map(|i| format!("skill-{i}")).collect(),
            ..nt("ok")
        })
    );
    for kind in [None, Some(WorkspaceKind::Scratch), Some(WorkspaceKind::Dir)] {
        case!(
            cs,
            format!("branch without worktree ({kind:?})"),
            Want::Invalid("branch_name"),
            ["branch_name", "worktree"],
            |fx| fx.board().create_task(NewTask {
                workspace_kind: kind,
                workspace_path: Some("/tmp/repo".into()),
                branch_name: Some("feat/x".into()),
                ..nt("ok")
            })
        );
    }
    for b in ["-delete", "has space", "tab\there", "nl\nx"] {
        case!(
            cs,
            format!("branch {b:?}"),
            Want::Invalid("branch_name"),
            ["branch_name"],
            |fx| fx.board().create_task(NewTask {
                workspace_kind: Some(WorkspaceKind::Worktree),
                workspace_path: Some("/tmp/repo".into()),
                branch_name: Some(b.into()),
                ..nt("ok")
            })
        );
    }
    for (kind, p) in [
        (WorkspaceKind::Dir, "relative/dir"),
        (WorkspaceKind::Dir, "../../etc"),
        (WorkspaceKind::Worktree, "./wt"),
        (WorkspaceKind::Scratch, "scratch-here"),
        (WorkspaceKind::Dir, "~/x"),
    ] {
        case!(
            cs,
            format!("workspace {kind} {p:?}"),
            Want::Invalid("workspace_path"),
            ["workspace_path", p],
            |fx| fx.board().create_task(NewTask {
                workspace_kind: Some(kind),
                workspace_path: Some(p.into()),
                ..nt("ok")
            })
        );
    }
    case!(
        cs,
        "workspace path with NUL",
        Want::Invalid("workspace_path"),
        ["workspace_path"],
        |fx| fx.board().create_task(NewTask {
            workspace_kind: Some(WorkspaceKind::Dir),
            workspace_path: Some("/tmp/a\0b".into()),
            ..nt("ok")
        })
    );
    case!(
        cs,
        "unknown parent",
        Want::Invalid("parents"),
        ["parents", UNKNOWN],
        |fx| fx.board().create_task(NewTask {
            parents: vec![fx.ready.clone(), UNKNOWN.into()],
            ..nt("ok")
        })
    );
    for p in BAD_IDS {
        case!(
            cs,
            format!("parent id {p:?}"),
            Want::Invalid("parents"),
            ["parents"],
            |fx| fx.board().create_task(NewTask {
                parents: vec![p.to_string()],
                ..nt("ok")
            })
        );
    }
    // An idempotency key that matches nothing must not let a bad field through.
    case!(
        cs,
        "bad field with idempotency key",
        Want::Invalid("priority"),
        ["priority"],
        |fx| fx.board().create_task(NewTask {
            idempotency_key: Some("k-1".into()),
            priority: 1_000_000_000_000,
            ..nt("ok")
        })
    );
    run_cases(&fx, cs);
}

// ----------------------------------------------------------------------------------------------
// Reads: get_task, list_tasks, build_worker_context, task_detail
// ----------------------------------------------------------------------------------------------

#[test]
fn readers_reject_unknown_and_path_like_ids() {
    let fx = Fx::new();
    let mut cs: Vec<Case> = Vec::new();
    let huge_id = format!("t_{}", "a".repeat(100_000));
    for id in [UNKNOWN.to_string(), huge_id.clone()] {
        let shown: String = id.chars().take(40).collect();
        case!(
            cs,
            format!("get_task {}", truncate(&id)),
            Want::NotFound,
            [shown],
            |fx| fx.board().get_task(&id)
        );
    }
    for id in BAD_IDS {
        case!(cs, format!("get_task {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .get_task(id));
        case!(cs, format!("context {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .build_worker_context(id));
        case!(cs, format!("detail {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .task_detail(id));
    }
    for id in ["../x", "a/b"] {
        case!(
            cs,
            format!("get_task {id:?} names it"),
            Want::BadId,
            [id],
            |fx| fx.board().get_task(id)
        );
    }
    case!(cs, "context of unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .build_worker_context(UNKNOWN));
    case!(cs, "detail of unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .task_detail(UNKNOWN));
    // Hostile list filters: read-only, never an error that writes, never a panic.
    for f in [
        ListFilter {
            assignee: Some("../x".into()),
            ..Default::default()
        },
        ListFilter {
            tenant: Some("'; DROP TABLE tasks; --".into()),
            ..Default::default()
        },
        ListFilter {
            session_id: Some("\0".into()),
            limit: Some(0),
            ..Default::default()
        },
        ListFilter {
            limit: Some(usize::MAX),
            include_archived: true,
            ..Default::default()
        },
    ] {
        case!(cs, format!("list_tasks {f:?}"), Want::NoWrite, [], |fx| {
            let rows = fx.board().list_tasks(&f)?;
            assert!(rows.len() <= 9, "hostile filter matched {rows:?}");
            Ok::<_, KernelError>(())
        });
    }
    run_cases(&fx, cs);
    // The hostile tenant filter matched nothing and the table is intact.
    assert!(fx.board().list_tasks(&ListFilter::default()).unwrap().len() >= 6);
}

// ----------------------------------------------------------------------------------------------
// Edits: assign, reassign, update, edit_completed_result, archive, delete
// ----------------------------------------------------------------------------------------------

#[test]
fn edits_reject_hostile_input() {
    let fx = Fx::new();
    let mut cs: Vec<Case> = Vec::new();
    // assign_task
    case!(cs, "assign unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .assign_task(UNKNOWN, Some("worker")));
    for id in BAD_IDS {
        case!(cs, format!("assign id {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .assign_task(id, Some("worker")));
    }
    for a in ["../x", "a/b", "..", ".", "/abs", "x/../../etc"] {
        case!(
            cs,
            format!("assign to {a:?}"),
            Want::Invalid("assignee"),
            ["assignee"],
            |fx| fx.board().assign_task(&fx.ready, Some(a))
        );
    }
    let running = fx.running.clone();
    case!(
        cs,
        "assign while running",
        Want::Refused("assign"),
        [&running, "running"],
        |fx| fx.board().assign_task(&fx.running, Some("other"))
    );
    // reassign_task
    case!(cs, "reassign unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .reassign_task(
            UNKNOWN,
            Some("x"),
            true,
            None,
            Default::default()
        ));
    case!(
        cs,
        "reassign to a/b",
        Want::Invalid("assignee"),
        ["assignee"],
        |fx| fx
            .board()
            .reassign_task(&fx.running, Some("a/b"), true, None, Default::default())
    );
    case!(
        cs,
        "reassign huge reason",
        Want::Invalid("reason"),
        ["reason"],
        |fx| fx.board().reassign_task(
            &fx.running,
            Some("x"),
            true,
            Some(&big(REASON_MAX_BYTES + 1)),
            Default::default()
        )
    );
    case!(
        cs,
        "reassign running without reclaim",
        Want::Refused("reassign"),
        [&running],
        |fx| fx
            .board()
            .reassign_task(&fx.running, Some("other"), false, None, Default::default())
    );
    // update_task
    case!(cs, "update unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .update_task(
            UNKNOWN,
            TaskPatch {
                priority: Some(1),
                ..Default::default()
            }
        ));
    for id in BAD_IDS {
        case!(cs, format!("update id {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .update_task(
                id,
                TaskPatch {
                    priority: Some(1),
                    ..Default::default()
                }
            ));
    }
    for t in [
        String::new(),
        "  ".into(),
        "a\nb".into(),
        "\0".into(),
        big(TITLE_MAX_CHARS + 1),
    ] {
        case!(
            cs,
            format!("update title {:?}", truncate(&t)),
            Want::Invalid("title"),
            ["title"],
            |fx| fx.board().update_task(
                &fx.ready,
                TaskPatch {
                    title: Some(t.clone()),
                    ..Default::default()
                }
            )
        );
    }
    case!(
        cs,
        "update huge body",
        Want::Invalid("body"),
        ["body"],
        |fx| fx.board().update_task(
            &fx.ready,
            TaskPatch {
                title: Some("renamed".into()),
                body: Some(Some(big(BODY_MAX_BYTES + 1))),
                ..Default::default()
            }
        )
    );
    case!(
        cs,
        "update body NUL",
        Want::Invalid("body"),
        ["body"],
        |fx| fx.board().update_task(
            &fx.ready,
            TaskPatch {
                body: Some(Some("\0".into())),
                ..Default::default()
            }
        )
    );
    case!(
        cs,
        "update priority 10^12",
        Want::Invalid("priority"),
        ["priority"],
        |fx| fx.board().update_task(
            &fx.ready,
            TaskPatch {
                title: Some("renamed".into()),
                priority: Some(1_000_000_000_000),
                ..Default::default()
            }
        )
    );
    case!(
        cs,
        "update tenant newline",
        Want::Invalid("tenant"),
        ["tenant"],
        |fx| fx.board().update_task(
            &fx.ready,
            TaskPatch {
                tenant: Some(Some("a\nb".into())),
                ..Default::default()
            }
        )
    );
    // edit_completed_result
    case!(cs, "edit unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .edit_completed_result(UNKNOWN, "r", None, None));
    for id in BAD_IDS {
        case!(cs, format!("edit id {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .edit_completed_result(id, "r", None, None));
    }
    let ready = fx.ready.clone();
    case!(
        cs,
        "edit a ready task",
        Want::Refused("edit"),
        [&ready, "done"],
        |fx| fx.board().edit_completed_result(&fx.ready, "r", None, None)
    );
    case!(
        cs,
        "edit an archived task",
        Want::Refused("edit"),
        [],
        |fx| fx
            .board()
            .edit_completed_result(&fx.archived, "r", None, None)
    );
    for r in ["", "   "] {
        case!(
            cs,
            format!("edit result {r:?}"),
            Want::Invalid("result"),
            ["result"],
            |fx| fx.board().edit_completed_result(&fx.done, r, None, None)
        );
    }
    case!(
        cs,
        "edit result over 256 KiB",
        Want::Invalid("result"),
        ["result"],
        |fx| fx
            .board()
            .edit_completed_result(&fx.done, &big(HANDOFF_MAX_BYTES + 1), None, None)
    );
    case!(
        cs,
        "edit summary over 256 KiB",
        Want::Invalid("summary"),
        ["summary"],
        |fx| fx.board().edit_completed_result(
            &fx.done,
            "r",
            Some(&big(HANDOFF_MAX_BYTES + 1)),
            None
        )
    );
    for m in [json!([1, 2]), json!("text"), json!(3), json!(true)] {
        case!(
            cs,
            format!("edit metadata {m}"),
            Want::Invalid("metadata"),
            ["metadata"],
            |fx| fx
                .board()
                .edit_completed_result(&fx.done, "r", Some("s"), Some(&m))
        );
    }
    // archive / delete
    {
        let id = UNKNOWN;
        case!(cs, "archive unknown", Want::NotFound, [id], |fx| fx
            .board()
            .archive_task(id));
        case!(cs, "delete_archived unknown", Want::NotFound, [id], |fx| fx
            .board()
            .delete_archived_task(id));
        case!(cs, "delete unknown", Want::NotFound, [id], |fx| fx
            .board()
            .delete_task(id));
    }
    for id in BAD_IDS {
        case!(cs, format!("archive {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .archive_task(id));
        case!(
            cs,
            format!("delete_archived {id:?}"),
            Want::BadId,
            [],
            |fx| fx.board().delete_archived_task(id)
        );
        case!(cs, format!("delete {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .delete_task(id));
    }
    let archived = fx.archived.clone();
    case!(
        cs,
        "archive twice",
        Want::Refused("archive"),
        [&archived],
        |fx| fx.board().archive_task(&fx.archived)
    );
    case!(
        cs,
        "delete_archived of a ready task",
        Want::Refused("delete"),
        [&ready, "archive"],
        |fx| fx.board().delete_archived_task(&fx.ready)
    );
    run_cases(&fx, cs);
}

// ----------------------------------------------------------------------------------------------
// The dependency graph: link / unlink
// ----------------------------------------------------------------------------------------------

#[test]
fn links_reject_self_cycles_and_unknowns() {
    let fx = Fx::new();
    let mut cs: Vec<Case> = Vec::new();
    let (a, c) = (fx.a.clone(), fx.c.clone());
    case!(cs, "self-link", Want::SelfLink, [&a], |fx| fx
        .board()
        .link_tasks(&fx.a, &fx.a));
    case!(
        cs,
        "self-link of an unknown id",
        Want::SelfLink,
        [UNKNOWN],
        |fx| fx.board().link_tasks(UNKNOWN, UNKNOWN)
    );
    case!(cs, "cycle c -> a", Want::Cycle, [&c, &a], |fx| fx
        .board()
        .link_tasks(&fx.c, &fx.a));
    case!(cs, "cycle b -> a", Want::Cycle, [], |fx| fx
        .board()
        .link_tasks(&fx.b, &fx.a));
    case!(cs, "cycle c -> b", Want::Cycle, [], |fx| fx
        .board()
        .link_tasks(&fx.c, &fx.b));
    case!(cs, "unknown parent", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .link_tasks(UNKNOWN, &fx.a));
    case!(cs, "unknown child", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .link_tasks(&fx.a, UNKNOWN));
    for id in BAD_IDS {
        case!(cs, format!("link parent {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .link_tasks(id, &fx.a));
        case!(cs, format!("link child {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .link_tasks(&fx.a, id));
        case!(cs, format!("unlink parent {id:?}"), Want::BadId, [], |fx| {
            fx.board().unlink_tasks(id, &fx.b)
        });
    }
    case!(
        cs,
        "unlink a missing edge",
        Want::NoSuchLink,
        [&a, &c],
        |fx| fx.board().unlink_tasks(&fx.a, &fx.c)
    );
    case!(cs, "unlink reversed edge", Want::NoSuchLink, [], |fx| fx
        .board()
        .unlink_tasks(&fx.b, &fx.a));
    case!(cs, "unlink unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .unlink_tasks(UNKNOWN, &fx.a));
    run_cases(&fx, cs);
}

// ----------------------------------------------------------------------------------------------
// Claims and heartbeats
// ----------------------------------------------------------------------------------------------

#[test]
fn claims_and_heartbeats_reject_hostile_input() {
    let fx = Fx::new();
    let mut cs: Vec<Case> = Vec::new();
    let running = fx.running.clone();
    {
        let id = UNKNOWN;
        case!(cs, "claim unknown", Want::NotFound, [id], |fx| fx
            .board()
            .claim_task(id, None));
        case!(cs, "claim_as unknown", Want::NotFound, [id], |fx| fx
            .board()
            .claim_task_as(id, None, "host:1"));
        case!(cs, "claim_review unknown", Want::NotFound, [id], |fx| fx
            .board()
            .claim_review_task(id, None));
        case!(cs, "heartbeat_claim unknown", Want::NotFound, [id], |fx| fx
            .board()
            .heartbeat_claim(id, None, "testhost:4242"));
        case!(cs, "heartbeat_worker unknown", Want::NotFound, [id], |fx| {
            fx.board().heartbeat_worker(id, None, None)
        });
    }
    for id in BAD_IDS {
        case!(cs, format!("claim {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .claim_task(id, None));
        case!(cs, format!("claim_review {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .claim_review_task(id, None));
        case!(
            cs,
            format!("heartbeat_claim {id:?}"),
            Want::BadId,
            [],
            |fx| fx.board().heartbeat_claim(id, None, "testhost:4242")
        );
        case!(
            cs,
            format!("heartbeat_worker {id:?}"),
            Want::BadId,
            [],
            |fx| fx.board().heartbeat_worker(id, None, None)
        );
    }
    for ttl in [0i64, -5, 1_000_000_000, i64::MAX, i64::MIN] {
        case!(
            cs,
            format!("claim ttl {ttl}"),
            Want::Invalid("ttl"),
            ["ttl"],
            |fx| fx.board().claim_task(&fx.ready, Some(ttl))
        );
        case!(
            cs,
            format!("claim_as ttl {ttl}"),
            Want::Invalid("ttl"),
            ["ttl"],
            |fx| fx.board().claim_task_as(&fx.ready, Some(ttl), "h:1")
        );
        case!(
            cs,
            format!("claim_review ttl {ttl}"),
            Want::Invalid("ttl"),
            ["ttl"],
            |fx| fx.board().claim_review_task(&fx.ready, Some(ttl))
        );
        case!(
            cs,
            format!("heartbeat_claim ttl {ttl}"),
            Want::Invalid("ttl"),
            ["ttl"],
            |fx| fx
                .board()
                .heartbeat_claim(&fx.running, Some(ttl), "testhost:4242")
        );
    }
    for lock in [String::new(), "  ".into(), "h\0:1".into(), big(300)] {
        case!(
            cs,
            format!("claim_as lock {:?}", truncate(&lock)),
            Want::Invalid("claim_lock"),
            ["claim_lock"],
            |fx| fx.board().claim_task_as(&fx.ready, None, &lock)
        );
    }
    case!(
        cs,
        "claim a running task",
        Want::Refused("claim"),
        [&running, "running"],
        |fx| fx.board().claim_task(&fx.running, None)
    );
    for (name, pick) in [("done", 0), ("archived", 1), ("blocked", 2), ("todo", 3)] {
        case!(
            cs,
            format!("claim a {name} task"),
            Want::Refused("claim"),
            [name],
            |fx| {
                let id = [&fx.done, &fx.archived, &fx.blocked, &fx.b][pick];
                fx.board().claim_task(id, None)
            }
        );
    }
    case!(
        cs,
        "claim_review a ready task",
        Want::Refused("claim"),
        ["ready"],
        |fx| fx.board().claim_review_task(&fx.ready, None)
    );
    case!(
        cs,
        "heartbeat_claim wrong claimer",
        Want::Refused("extend the claim of"),
        [&running],
        |fx| fx.board().heartbeat_claim(&fx.running, None, "intruder:1")
    );
    case!(
        cs,
        "heartbeat_claim ready task",
        Want::Refused("extend the claim of"),
        [],
        |fx| fx.board().heartbeat_claim(&fx.ready, None, "testhost:4242")
    );
    case!(
        cs,
        "heartbeat_worker ready task",
        Want::Refused("heartbeat"),
        ["ready"],
        |fx| fx.board().heartbeat_worker(&fx.ready, None, None)
    );
    case!(
        cs,
        "heartbeat_worker stale run",
        Want::StaleRun,
        [&running],
        |fx| fx
            .board()
            .heartbeat_worker(&fx.running, None, Some(fx.run_id + 1000))
    );
    case!(
        cs,
        "heartbeat note over 4 KiB",
        Want::Invalid("note"),
        ["note"],
        |fx| fx
            .board()
            .heartbeat_worker(&fx.running, Some(&big(NOTE_MAX_BYTES + 1)), None)
    );
    case!(
        cs,
        "heartbeat note NUL",
        Want::Invalid("note"),
        ["note"],
        |fx| fx.board().heartbeat_worker(&fx.running, Some("a\0"), None)
    );
    run_cases(&fx, cs);
}

// ----------------------------------------------------------------------------------------------
// Hand-offs and state moves: complete, block, unblock, schedule, promote, reclaim, pid, failure
// ----------------------------------------------------------------------------------------------

#[test]
fn transitions_reject_hostile_input() {
    let fx = Fx::new();
    let mut cs: Vec<Case> = Vec::new();
    let (running, done, ready) = (fx.running.clone(), fx.done.clone(), fx.ready.clone());
    let complete = |id: &str| Completion {
        task_id: id.into(),
        ..Default::default()
    };
    // complete_task
    case!(cs, "complete unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .complete_task(complete(UNKNOWN)));
    for id in BAD_IDS {
        case!(cs, format!("complete {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .complete_task(complete(id)));
    }
    case!(
        cs,
        "complete summary over 256 KiB",
        Want::Invalid("summary"),
        ["summary"],
        |fx| fx.board().complete_task(Completion {
            summary: Some(big(HANDOFF_MAX_BYTES + 1)),
            ..complete(&fx.running)
        })
    );
    case!(
        cs,
        "complete result over 256 KiB",
        Want::Invalid("result"),
        ["result"],
        |fx| fx.board().complete_task(Completion {
            result: Some(big(HANDOFF_MAX_BYTES + 1)),
            ..complete(&fx.running)
        })
    );
    case!(
        cs,
        "complete summary NUL",
        Want::Invalid("summary"),
        ["summary"],
        |fx| fx.board().complete_task(Completion {
            summary: Some("x\0".into()),
            ..complete(&fx.running)
        })
    );
    for m in [json!(["a"]), json!("s"), json!(1), json!(1.5), json!(false)] {
        case!(
            cs,
            format!("complete metadata {m}"),
            Want::Invalid("metadata"),
            ["metadata", "object"],
            |fx| fx.board().complete_task(Completion {
                metadata: Some(m.clone()),
                ..complete(&fx.running)
            })
        );
    }
    case!(
        cs,
        "complete metadata over 1 MiB",
        Want::Invalid("metadata"),
        ["metadata"],
        |fx| fx.board().complete_task(Completion {
            metadata: Some(json!({"blob": big(1 << 20)})),
            ..complete(&fx.running)
        })
    );
    case!(
        cs,
        "complete created_cards path",
        Want::Invalid("created_cards"),
        ["created_cards"],
        |fx| fx.board().complete_task(Completion {
            created_cards: vec!["../x".into()],
            ..complete(&fx.running)
        })
    );
    case!(
        cs,
        "complete relative artifact",
        Want::Invalid("artifacts"),
        ["artifacts", "out.txt"],
        |fx| fx.board().complete_task(Completion {
            artifacts: vec!["out.txt".into()],
            ..complete(&fx.running)
        })
    );
    case!(
        cs,
        "complete a done task",
        Want::Refused("complete"),
        [&done, "done"],
        |fx| fx.board().complete_task(complete(&fx.done))
    );
    case!(
        cs,
        "complete a todo task",
        Want::Refused("complete"),
        ["todo"],
        |fx| fx.board().complete_task(complete(&fx.b))
    );
    case!(
        cs,
        "complete an archived task",
        Want::Refused("complete"),
        ["archived"],
        |fx| fx.board().complete_task(complete(&fx.archived))
    );
    case!(cs, "complete stale run", Want::StaleRun, [&running], |fx| {
        fx.board().complete_task(Completion {
            summary: Some("late".into()),
            expected_run_id: Some(fx.run_id + 7),
            ..complete(&fx.running)
        })
    });
    // block_task
    let block = |id: &str| BlockRequest {
        task_id: id.into(),
        reason: Some("why".into()),
        ..Default::default()
    };
    case!(cs, "block unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .block_task(block(UNKNOWN)));
    for id in BAD_IDS {
        case!(cs, format!("block {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .block_task(block(id)));
    }
    case!(
        cs,
        "block reason over 16 KiB",
        Want::Invalid("reason"),
        ["reason"],
        |fx| fx.board().block_task(BlockRequest {
            reason: Some(big(REASON_MAX_BYTES + 1)),
            ..block(&fx.running)
        })
    );
    case!(
        cs,
        "block author newline",
        Want::Invalid("author"),
        ["author"],
        |fx| fx.board().block_task(BlockRequest {
            comment_author: Some("evil\n## Body".into()),
            ..block(&fx.running)
        })
    );
    case!(
        cs,
        "block a done task",
        Want::Refused("block"),
        [&done],
        |fx| fx.board().block_task(block(&fx.done))
    );
    case!(
        cs,
        "block a blocked task",
        Want::Refused("block"),
        ["blocked"],
        |fx| fx.board().block_task(block(&fx.blocked))
    );
    case!(cs, "block stale run", Want::StaleRun, [&running], |fx| fx
        .board()
        .block_task(BlockRequest {
            expected_run_id: Some(-1),
            comment_author: Some("worker".into()),
            ..block(&fx.running)
        }));
    // unblock_task
    case!(cs, "unblock unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .unblock_task(UNKNOWN, None, None));
    for id in BAD_IDS {
        case!(cs, format!("unblock {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .unblock_task(id, None, None));
    }
    case!(
        cs,
        "unblock a ready task",
        Want::Refused("unblock"),
        [&ready, "ready"],
        |fx| fx.board().unblock_task(&fx.ready, Some("go"), Some("me"))
    );
    case!(
        cs,
        "unblock reason over 16 KiB",
        Want::Invalid("reason"),
        ["reason"],
        |fx| fx
            .board()
            .unblock_task(&fx.blocked, Some(&big(REASON_MAX_BYTES + 1)), Some("me"))
    );
    case!(
        cs,
        "unblock author control",
        Want::Invalid("author"),
        ["author"],
        |fx| fx
            .board()
            .unblock_task(&fx.blocked, Some("go"), Some("me\u{1b}"))
    );
    // schedule_task
    case!(cs, "schedule unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .schedule_task(UNKNOWN, None, None, None));
    for id in BAD_IDS {
        case!(cs, format!("schedule {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .schedule_task(id, None, None, None));
    }
    case!(
        cs,
        "schedule a done task",
        Want::Refused("schedule"),
        [&done],
        |fx| fx
            .board()
            .schedule_task(&fx.done, Some("later"), None, Some("me"))
    );
    case!(
        cs,
        "schedule an archived task",
        Want::Refused("schedule"),
        [],
        |fx| fx.board().schedule_task(&fx.archived, None, None, None)
    );
    case!(
        cs,
        "schedule reason over 16 KiB",
        Want::Invalid("reason"),
        ["reason"],
        |fx| fx
            .board()
            .schedule_task(&fx.ready, Some(&big(REASON_MAX_BYTES + 1)), None, None)
    );
    case!(
        cs,
        "schedule author NUL",
        Want::Invalid("author"),
        ["author"],
        |fx| fx
            .board()
            .schedule_task(&fx.ready, Some("later"), None, Some("a\0"))
    );
    case!(cs, "schedule stale run", Want::StaleRun, [&running], |fx| {
        fx.board()
            .schedule_task(&fx.running, Some("later"), Some(fx.run_id + 1), Some("me"))
    });
    // promote_task
    let promote = PromoteOptions::default();
    case!(cs, "promote unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .promote_task(UNKNOWN, &PromoteOptions::default()));
    for id in BAD_IDS {
        case!(cs, format!("promote {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .promote_task(id, &PromoteOptions::default()));
    }
    case!(
        cs,
        "promote a ready task",
        Want::Refused("promote"),
        [&ready, "ready"],
        |fx| fx.board().promote_task(&fx.ready, &promote)
    );
    let b = fx.b.clone();
    case!(
        cs,
        "promote a child of an unfinished parent",
        Want::Refused("promote"),
        [&b, "parent"],
        |fx| fx.board().promote_task(&fx.b, &PromoteOptions::default())
    );
    case!(
        cs,
        "promote reason over 16 KiB",
        Want::Invalid("reason"),
        ["reason"],
        |fx| fx.board().promote_task(
            &fx.b,
            &PromoteOptions {
                force: true,
                reason: Some(big(REASON_MAX_BYTES + 1)),
                ..Default::default()
            }
        )
    );
    case!(
        cs,
        "promote actor newline",
        Want::Invalid("actor"),
        ["actor"],
        |fx| fx.board().promote_task(
            &fx.b,
            &PromoteOptions {
                force: true,
                actor: Some("a\nb".into()),
                ..Default::default()
            }
        )
    );
    // reclaim_task
    case!(cs, "reclaim unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .reclaim_task(UNKNOWN, None, Map::new()));
    for id in BAD_IDS {
        case!(cs, format!("reclaim {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .reclaim_task(id, None, Map::new()));
    }
    case!(
        cs,
        "reclaim a ready task",
        Want::Refused("reclaim"),
        [&ready],
        |fx| fx.board().reclaim_task(&fx.ready, Some("x"), Map::new())
    );
    case!(
        cs,
        "reclaim reason over 16 KiB",
        Want::Invalid("reason"),
        ["reason"],
        |fx| fx
            .board()
            .reclaim_task(&fx.running, Some(&big(REASON_MAX_BYTES + 1)), Map::new())
    );
    // set_worker_pid
    case!(cs, "set pid on unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .set_worker_pid(UNKNOWN, 1, 1234));
    for id in BAD_IDS {
        case!(cs, format!("set pid on {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .set_worker_pid(id, 1, 1234));
    }
    case!(
        cs,
        "set pid on a stale run",
        Want::StaleRun,
        [&running],
        |fx| fx.board().set_worker_pid(&fx.running, fx.run_id + 1, 1234)
    );
    case!(
        cs,
        "set pid on a ready task",
        Want::StaleRun,
        [&ready],
        |fx| fx.board().set_worker_pid(&fx.ready, fx.run_id, 1234)
    );
    for pid in [0i64, -1, i64::MIN, 1_000_000_000_000] {
        case!(
            cs,
            format!("set pid {pid}"),
            Want::Invalid("pid"),
            ["pid"],
            |fx| fx.board().set_worker_pid(&fx.running, fx.run_id, pid)
        );
    }
    // record_task_failure
    let fail = |id: &str| FailureReport::new(id, RunOutcome::SpawnFailed, "boom");
    case!(cs, "failure on unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .record_task_failure(&fail(UNKNOWN)));
    for id in BAD_IDS {
        case!(cs, format!("failure on {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .record_task_failure(&fail(id)));
    }
    for l in [0i64, -3, 1_000_000] {
        case!(
            cs,
            format!("failure_limit {l}"),
            Want::Invalid("failure_limit"),
            ["failure_limit"],
            |fx| fx.board().record_task_failure(&FailureReport {
                failure_limit: Some(l),
                ..fail(&fx.running)
            })
        );
    }
    case!(
        cs,
        "failure on a done task",
        Want::Refused("record a failure for"),
        [&done],
        |fx| fx.board().record_task_failure(&fail(&fx.done))
    );
    run_cases(&fx, cs);
}

// ----------------------------------------------------------------------------------------------
// Comments and notification subscriptions
// ----------------------------------------------------------------------------------------------

#[test]
fn comments_and_subscriptions_reject_hostile_input() {
    let fx = Fx::new();
    let mut cs: Vec<Case> = Vec::new();
    case!(cs, "comment on unknown", Want::NotFound, [UNKNOWN], |fx| fx
        .board()
        .add_comment(UNKNOWN, "me", "hi"));
    for id in BAD_IDS {
        case!(cs, format!("comment on {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .add_comment(id, "me", "hi"));
    }
    for a in [
        String::new(),
        " \t ".into(),
        "a\0".into(),
        "evil\n## Body".into(),
        big(300),
    ] {
        case!(
            cs,
            format!("comment author {:?}", truncate(&a)),
            Want::Invalid("author"),
            ["author"],
            |fx| fx.board().add_comment(&fx.ready, &a, "hi")
        );
    }
    for b in [
        String::new(),
        "\n\n".into(),
        "a\0b".into(),
        big(COMMENT_MAX_BYTES + 1),
    ] {
        case!(
            cs,
            format!("comment body {:?}", truncate(&b)),
            Want::Invalid("body"),
            ["body"],
            |fx| fx.board().add_comment(&fx.ready, "me", &b)
        );
    }
    // add_notify_sub
    case!(
        cs,
        "subscribe to unknown",
        Want::NotFound,
        [UNKNOWN],
        |fx| fx.board().add_notify_sub(&fx.sub_on(UNKNOWN), None, None)
    );
    for id in BAD_IDS {
        case!(cs, format!("subscribe to {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .add_notify_sub(&fx.sub_on(id), None, None));
        case!(cs, format!("unsubscribe {id:?}"), Want::BadId, [], |fx| fx
            .board()
            .remove_notify_sub(&fx.sub_on(id)));
        case!(
            cs,
            format!("claim events of {id:?}"),
            Want::BadId,
            [],
            |fx| fx.board().claim_unseen_events(&fx.sub_on(id), &[])
        );
    }
    type Tweak = fn(&mut SubKey);
    let tweaks: [(&str, &str, Tweak); 6] = [
        ("platform", "empty platform", |k| k.platform = String::new()),
        ("platform", "platform newline", |k| {
            k.platform = "tg\nx".into()
        }),
        ("chat_id", "empty chat", |k| k.chat_id = "  ".into()),
        ("chat_id", "chat NUL", |k| k.chat_id = "1\0".into()),
        ("chat_id", "huge chat", |k| k.chat_id = "9".repeat(1000)),
        ("thread_id", "thread control", |k| {
            k.thread_id = "\u{7}".into()
        }),
    ];
    for (field, name, tweak) in tweaks {
        case!(
            cs,
            format!("subscribe {name}"),
            Want::Invalid(field),
            [field],
            |fx| {
                let mut k = fx.sub.clone();
                tweak(&mut k);
                fx.board().add_notify_sub(&k, None, None)
            }
        );
        case!(
            cs,
            format!("unsubscribe {name}"),
            Want::Invalid(field),
            [field],
            |fx| {
                let mut k = fx.sub.clone();
                tweak(&mut k);
                fx.board().remove_notify_sub(&k)
            }
        );
        case!(
            cs,
            format!("claim {name}"),
            Want::Invalid(field),
            [field],
            |fx| {
                let mut k = fx.sub.clone();
                tweak(&mut k);
                fx.board().claim_unseen_events(&k, &[])
            }
        );
    }
    case!(
        cs,
        "subscribe user_id control",
        Want::Invalid("user_id"),
        ["user_id"],
        |fx| fx.board().add_notify_sub(&fx.sub, Some("u\n1"), None)
    );
    case!(
        cs,
        "subscribe owner control",
        Want::Invalid("notifier_profile"),
        ["notifier_profile"],
        |fx| fx.board().add_notify_sub(&fx.sub, None, Some("x\0"))
    );
    case!(
        cs,
        "claim for a missing subscription",
        Want::Invalid("subscription"),
        ["subscription", "slack"],
        |fx| fx.board().claim_unseen_events(
            &SubKey {
                platform: "slack".into(),
                ..fx.sub.clone()
            },
            &[]
        )
    );
    // Hostile kinds are data, not SQL: no error that writes, no injection.
    for kinds in [
        vec!["x') OR 1=1 --"],
        vec!["'"],
        vec!["created\0"],
        vec!["a", "b'); DELETE FROM task_events; --"],
    ] {
        case!(
            cs,
            format!("claim kinds {kinds:?}"),
            Want::NoWrite,
            [],
            |fx| {
                let got = fx.board().claim_unseen_events(&fx.sub, &kinds)?;
                assert!(got.is_none(), "hostile kinds matched events: {got:?}");
                Ok::<_, KernelError>(())
            }
        );
    }
    case!(
        cs,
        "unsubscribe a missing subscription",
        Want::NoWrite,
        [],
        |fx| {
            let removed = fx.board().remove_notify_sub(&SubKey {
                chat_id: "nobody".into(),
                ..fx.sub.clone()
            })?;
            assert!(!removed);
            Ok::<_, KernelError>(())
        }
    );
    case!(
        cs,
        "rewind a missing subscription",
        Want::NoWrite,
        [],
        |fx| {
            let fake = ClaimedEvents {
                from: 0,
                to: 1,
                events: vec![],
            };
            let k = SubKey {
                chat_id: "nobody".into(),
                ..fx.sub.clone()
            };
            assert!(!fx.board().rewind_notify_cursor(&k, &fake)?);
            Ok::<_, KernelError>(())
        }
    );
    case!(
        cs,
        "rewind a cursor that is not at the claimed value",
        Want::NoWrite,
        [],
        |fx| {
            let fake = ClaimedEvents {
                from: 999,
                to: 12345,
                events: vec![],
            };
            assert!(!fx.board().rewind_notify_cursor(&fx.sub, &fake)?);
            Ok::<_, KernelError>(())
        }
    );
    for id in BAD_IDS {
        case!(cs, format!("rewind {id:?}"), Want::BadId, [], |fx| {
            let fake = ClaimedEvents {
                from: 0,
                to: 0,
                events: vec![],
            };
            fx.board().rewind_notify_cursor(&fx.sub_on(id), &fake)
        });
    }
    run_cases(&fx, cs);
}

// ----------------------------------------------------------------------------------------------
// Attachments
// ----------------------------------------------------------------------------------------------

#[test]
fn attachments_reject_hostile_names_sizes_and_ids() {
    let fx = Fx::new();
    let mut cs: Vec<Case> = Vec::new();
    let names: Vec<String> = vec![
        "../../a.txt".into(),
        "..".into(),
        ".".into(),
        ".hidden".into(),
        "a/b".into(),
        "/etc/passwd".into(),
        "a\\b".into(),
        String::new(),
        "   ".into(),
        "nul\0.txt".into(),
        "line\nbreak.txt".into(),
        "x".repeat(201),
        // 200 characters but 600 bytes: longer than any file system allows.
        "日".repeat(200),
    ];
    for n in names {
        case!(
            cs,
            format!("attachment name {:?}", truncate(&n)),
            Want::Invalid("filename"),
            ["filename"],
            |fx| fx
                .board()
                .add_attachment(&fx.ready, &n, b"data", None, None)
        );
    }
    case!(
        cs,
        "attachment over 25 MiB",
        Want::Invalid("content"),
        ["25 MiB"],
        |fx| fx.board().add_attachment(
            &fx.ready,
            "big.bin",
            &vec![0u8; ATTACHMENT_MAX_BYTES + 1],
            None,
            None
        )
    );
    case!(
        cs,
        "attachment on unknown task",
        Want::NotFound,
        [UNKNOWN],
        |fx| fx
            .board()
            .add_attachment(UNKNOWN, "a.txt", b"data", None, None)
    );
    for id in BAD_IDS {
        case!(cs, format!("attachment on {id:?}"), Want::BadId, [], |fx| {
            fx.board().add_attachment(id, "a.txt", b"data", None, None)
        });
    }
    case!(
        cs,
        "attachment content type newline",
        Want::Invalid("content_type"),
        ["content_type"],
        |fx| fx.board().add_attachment(
            &fx.ready,
            "a.txt",
            b"data",
            Some("text/plain\r\nX-Evil: 1"),
            None
        )
    );
    case!(
        cs,
        "attachment uploader NUL",
        Want::Invalid("uploaded_by"),
        ["uploaded_by"],
        |fx| fx
            .board()
            .add_attachment(&fx.ready, "a.txt", b"data", None, Some("me\0"))
    );
    for id in [0i64, -1, 999_999, i64::MAX] {
        case!(
            cs,
            format!("remove attachment {id}"),
            Want::AttachmentNotFound,
            [id.to_string()],
            |fx| fx.board().remove_attachment(id)
        );
    }
    run_cases(&fx, cs);
    // The fixture's own attachment is untouched.
    let a = fx.board().get_attachment(fx.attachment).unwrap();
    let content = fx.board().attachment_content(&a).unwrap();
    assert_eq!(content.as_deref(), Some(&b"spec"[..]));
}

// ----------------------------------------------------------------------------------------------
// gc
// ----------------------------------------------------------------------------------------------

#[test]
fn gc_rejects_negative_and_absurd_retention() {
    let fx = Fx::new();
    let mut cs: Vec<Case> = Vec::new();
    for (e, l) in [
        (-1i64, 30i64),
        (30, -5),
        (i64::MIN, 0),
        (i64::MAX, 30),
        (30, i64::MAX),
        (1_000_000_000_000_000, 30),
    ] {
        case!(
            cs,
            format!("gc({e}, {l})"),
            Want::Invalid("retention_days"),
            ["retention_days"],
            |fx| fx.board().gc(e, l)
        );
    }
    run_cases(&fx, cs);
}

// ----------------------------------------------------------------------------------------------
// Board slugs
// ----------------------------------------------------------------------------------------------

#[test]
fn board_open_rejects_bad_slugs_and_creates_nothing() {
    let tb = TestBoard::new();
    let before = tree(tb.dir.path());
    let mut failures = Vec::new();
    for slug in [
        "../etc",
        "..",
        ".",
        "a/b",
        "/abs",
        "",
        "   ",
        "-x",
        "_x",
        "a b",
        "a\0b",
        "a\nb",
        "boards/../../x",
        "é",
        &"x".repeat(65),
    ] {
        match Board::open(&tb.env, Some(slug)) {
            Err(KernelError::InvalidSlug(s)) => {
                let shown = KernelError::InvalidSlug(s.clone()).to_string();
                if s != slug || !shown.contains("slug") {
                    failures.push(format!("{slug:?}: message {shown:?}"));
                }
            }
            other => failures.push(format!("{slug:?}: {other:?}")),
        }
    }
    // Valid-looking slugs of boards that do not exist are refused by name.
    for slug in ["nope", "Nope"] {
        match Board::open(&tb.env, Some(slug)) {
            Err(e @ KernelError::BoardNotFound(_)) => assert!(e.to_string().contains("nope")),
            other => failures.push(format!("{slug:?}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        tree(tb.dir.path()),
        before,
        "a refused open touched the disk"
    );
}

// ----------------------------------------------------------------------------------------------
// The edges that are accepted: exactly-at-the-limit values and `null` metadata.
// ----------------------------------------------------------------------------------------------

#[test]
fn limits_are_inclusive_and_null_metadata_is_fine() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let t = b
        .create_task(NewTask {
            title: format!("  {}  ", "é".repeat(TITLE_MAX_CHARS)),
            body: Some(big(BODY_MAX_BYTES)),
            assignee: Some("  Worker ".into()),
            priority: 1_000_000,
            max_runtime_seconds: Some(1),
            max_retries: Some(1),
            skills: vec![" a ".into(), "a".into(), "".into(), "b".into()],
            ..Default::default()
        })
        .unwrap()
        .task;
    assert_eq!(t.title.chars().count(), TITLE_MAX_CHARS);
    assert_eq!(t.assignee.as_deref(), Some("worker"));
    assert_eq!(t.skills, vec!["a", "b"]);
    let tab = b.create_task(nt("tab\tseparated")).unwrap().task;
    assert_eq!(tab.title, "tab\tseparated");
    b.add_comment(&t.id, "me", &big(COMMENT_MAX_BYTES)).unwrap();
    b.claim_task(&t.id, Some(1)).unwrap();
    b.complete_task(Completion {
        task_id: t.id.clone(),
        summary: Some(big(HANDOFF_MAX_BYTES)),
        metadata: Some(Value::Null),
        ..Default::default()
    })
    .unwrap();
    let runs = b.list_runs(&t.id, None).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].metadata, None);
    assert_eq!(
        runs[0].summary.as_deref().map(str::len),
        Some(HANDOFF_MAX_BYTES)
    );
    b.edit_completed_result(&t.id, "r", None, Some(&Value::Null))
        .unwrap();
    let a = b
        .add_attachment(
            &tab.id,
            "max.bin",
            &vec![7u8; ATTACHMENT_MAX_BYTES],
            None,
            None,
        )
        .unwrap();
    assert_eq!(a.size as usize, ATTACHMENT_MAX_BYTES);
    assert_eq!(b.gc(0, 0).unwrap().scratch_dirs_removed, 0);
}
