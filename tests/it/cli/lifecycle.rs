//! CLI integration tests for the worker/operator transitions and the reading, housekeeping and
//! live verbs (SPEC §5, REF §15, §21.3, §21.8): claim, heartbeat, complete, edit, block,
//! schedule, unblock, promote, reclaim, runs, log, stats, assignees, context, gc, notify-*,
//! attach/attachments/attach-rm, diagnostics, skills install, completions, tail and watch —
//! plus the tutorial's Story 3 (review feedback loop) end to end.
//!
//! Every verb is checked for (a) its happy-path text and JSON shapes, (b) a refusal with exit 1
//! whose stderr names the task or field and says what to do, (c) a usage error with exit 2 and
//! (d) an empty stdout on failure. Every test that mutates the board ends with the kernel
//! invariant check.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::helpers::{Cli, Run};
use hermes_kanban::kernel::{Completion, FailureReport, NewTask, RunOutcome, Status};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const NO_TASK: &str = "t_00000000";
/// What an unknown-id refusal tells the user to do.
const CHECK_ID: &str = "check the id and the board";

/// Exit 1, nothing on stdout, and every needle on stderr.
#[track_caller]
fn refused(r: &Run, needles: &[&str]) {
    r.code(1);
    assert!(
        r.stdout.is_empty(),
        "stdout must be empty on failure, got: {}",
        r.stdout
    );
    for n in needles {
        assert!(
            r.stderr.contains(n),
            "stderr should contain {n:?}:\n{}",
            r.stderr
        );
    }
}

/// Exit 2 (usage error), nothing on stdout, something on stderr.
#[track_caller]
fn usage(r: &Run) {
    r.code(2);
    assert!(
        r.stdout.is_empty(),
        "stdout must be empty on a usage error, got: {}",
        r.stdout
    );
    assert!(
        !r.stderr.trim().is_empty(),
        "a usage error must say what is wrong"
    );
}

/// The keys of a JSON object, in order.
#[track_caller]
fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// `show <id> --json`.
fn show(cli: &Cli, id: &str) -> Value {
    cli.run(&["show", id, "--json"]).json()
}

/// Event kinds of a task, oldest first.
fn event_kinds(cli: &Cli, id: &str) -> Vec<String> {
    show(cli, id)["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().expect("kind").to_string())
        .collect()
}

/// The newest event of a kind.
fn last_event(cli: &Cli, id: &str, kind: &str) -> Value {
    show(cli, id)["events"]
        .as_array()
        .expect("events")
        .iter()
        .rev()
        .find(|e| e["kind"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} event on {id}"))
}

/// Comment bodies of a task.
fn comments(cli: &Cli, id: &str) -> Vec<String> {
    show(cli, id)["comments"]
        .as_array()
        .expect("comments")
        .iter()
        .map(|c| c["body"].as_str().expect("body").to_string())
        .collect()
}

/// `runs <id> --json`.
fn runs(cli: &Cli, id: &str) -> Vec<Value> {
    cli.run(&["runs", id, "--json"])
        .json()
        .as_array()
        .expect("runs list")
        .clone()
}

fn status(cli: &Cli, id: &str) -> Status {
    cli.board().get_task(id).expect("task").status
}

/// A task claimed by the CLI; returns its id.
fn claimed(cli: &Cli, title: &str) -> String {
    let id = cli.create(title, &["--assignee", "worker"]);
    cli.run(&["claim", &id]).ok();
    id
}

/// `[YYYY-MM-DD HH:MM] ` at the start of a live-stream line.
#[track_caller]
fn strip_ts(line: &str) -> &str {
    let b = line.as_bytes();
    let ok = b.len() > 19
        && b[0] == b'['
        && b[17] == b']'
        && b[18] == b' '
        && line[1..17].chars().enumerate().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == ' ',
            13 => c == ':',
            _ => c.is_ascii_digit(),
        });
    assert!(
        ok,
        "line does not start with `[YYYY-MM-DD HH:MM] `: {line:?}"
    );
    &line[19..]
}

/// A long-running verb (`tail`, `watch`) with its output read line by line on threads.
struct Live {
    child: Child,
    out: Receiver<String>,
    err: Receiver<String>,
    lines: Vec<String>,
}

const DEADLINE: Duration = Duration::from_secs(15);

impl Live {
    fn spawn(cli: &Cli, args: &[&str]) -> Live {
        let mut child = cli
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hermes-kanban");
        let (tx, out) = channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let (etx, err) = channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                if etx.send(l).is_err() {
                    break;
                }
            }
        });
        Live {
            child,
            out,
            err,
            lines: Vec::new(),
        }
    }

    /// Wait (with a deadline) for a stdout line matching `pred`; returns it.
    #[track_caller]
    fn expect_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(l) = self.lines.iter().find(|l| pred(l)) {
            return l.clone();
        }
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(l) => {
                    self.lines.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no stdout line {what} within {DEADLINE:?}; got {:#?}",
                    self.lines
                ),
            }
        }
    }

    /// Wait (with a deadline) for a stderr line containing `needle`.
    #[track_caller]
    fn expect_stderr(&mut self, needle: &str) {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!("no stderr line containing {needle:?} within {DEADLINE:?}"),
            }
        }
    }

    /// Send SIGINT, assert a prompt exit 0, and return every stdout line seen.
    #[track_caller]
    fn interrupt(mut self) -> Vec<String> {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT).expect("SIGINT");
        let end = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            assert!(Instant::now() < end, "did not exit within 5 s of SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "Ctrl-C must exit 0, got {status:?}");
        // The reader thread ends at EOF; collect what is left.
        while let Ok(l) = self.out.recv_timeout(Duration::from_secs(2)) {
            self.lines.push(l);
        }
        std::mem::take(&mut self.lines)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// claim
// ---------------------------------------------------------------------------------------------

#[test]
fn claim_prints_workspace_honours_ttl_and_refuses_a_second_claim() {
    let cli = Cli::new();
    let id = cli.create("Research A", &["--assignee", "worker"]);

    let out = cli.run(&["claim", &id, "--ttl", "600"]).ok().to_string();
    let ws = cli.home().join("kanban").join("workspaces").join(&id);
    assert!(
        out.starts_with(&format!("Claimed {id}\nWorkspace: {}\n", ws.display())),
        "{out}"
    );
    assert!(ws.is_dir(), "the scratch workspace is created");
    let t = cli.board().get_task(&id).unwrap();
    assert_eq!(t.status, Status::Running);
    assert_eq!(
        t.claim_expires.unwrap() - t.started_at.unwrap(),
        600,
        "--ttl sets the claim lifetime"
    );
    assert_eq!(runs(&cli, &id).len(), 1, "a claim opens a run");
    assert!(event_kinds(&cli, &id).contains(&"claimed".to_string()));

    // (b) REF §21.3: `cannot claim <id>: status=<s> lock=<lock>`.
    let lock = t.claim_lock.unwrap();
    let r = cli.run(&["claim", &id]);
    refused(
        &r,
        &[
            &format!("cannot claim {id}: status=running lock={lock}"),
            "only unclaimed ready tasks",
        ],
    );
    // A todo task (unfinished parent) is refused with lock=(none).
    let child = cli.create("Child", &["--parent", &id]);
    refused(
        &cli.run(&["claim", &child]),
        &[&format!("cannot claim {child}: status=todo lock=(none)")],
    );
    refused(
        &cli.run(&["claim", NO_TASK]),
        &[NO_TASK, "no such task", CHECK_ID],
    );

    // (c) usage errors.
    usage(&cli.run(&["claim"]));
    usage(&cli.run(&["claim", &id, "--ttl", "0"]));
    usage(&cli.run(&["claim", &id, "--ttl", "soon"]));
    assert_eq!(runs(&cli, &id).len(), 1, "refusals open no run");
    cli.assert_invariants();
}

/// The commit records (frames whose header carries the database size) in a WAL file, counting
/// only frames of the WAL's current generation (their salts match the header's).
fn wal_commits(wal: &std::path::Path) -> usize {
    let bytes = std::fs::read(wal).unwrap_or_default();
    if bytes.len() < 32 {
        return 0;
    }
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    let page = be(8) as usize;
    let (salt1, salt2) = (be(16), be(20));
    let mut commits = 0;
    let mut at = 32;
    while at + 24 + page <= bytes.len() && be(at + 8) == salt1 && be(at + 12) == salt2 {
        if be(at + 4) != 0 {
            commits += 1;
        }
        at += 24 + page;
    }
    commits
}

/// `claim` of a scratch task is one transaction (one commit, so one fsync): the claim, its run,
/// its event and the recorded workspace path land in a single WAL commit.
#[test]
fn claim_with_its_scratch_workspace_is_one_commit() {
    sqlite_only!("counts commit records in the board's WAL file");
    let cli = Cli::new();
    let id = cli.create("One commit", &[]);
    // Start from an empty WAL: every commit record in it afterwards is the claim's.
    let c = rusqlite::Connection::open(cli.db()).unwrap();
    let (busy, _, _): (i64, i64, i64) = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 0, "nothing else holds the board");
    drop(c);
    let wal = cli.db().with_extension("db-wal");
    assert_eq!(wal_commits(&wal), 0);

    cli.run(&["claim", &id]).ok();
    assert!(wal.exists(), "the claim's WAL is kept on close");
    assert_eq!(
        wal_commits(&wal),
        1,
        "claim + workspace path in one transaction"
    );
    let t = cli.board().get_task(&id).unwrap();
    assert_eq!(t.status, Status::Running);
    let ws = cli.home().join("kanban").join("workspaces").join(&id);
    assert_eq!(t.workspace_path.as_deref(), Some(ws.to_str().unwrap()));
    assert!(ws.is_dir(), "the scratch workspace is created");
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// heartbeat
// ---------------------------------------------------------------------------------------------

#[test]
fn heartbeat_records_a_note_and_is_refused_when_not_running() {
    let cli = Cli::new();
    let id = claimed(&cli, "Long job");
    assert_eq!(
        cli.run(&["heartbeat", &id, "--note", "halfway"]).ok(),
        format!("Heartbeat recorded for {id}\n")
    );
    let e = last_event(&cli, &id, "heartbeat");
    assert_eq!(e["payload"], json!({"note": "halfway"}));
    assert_eq!(e["run_id"], json!(1));
    let t = cli.board().get_task(&id).unwrap();
    assert!(t.last_heartbeat_at.is_some());
    assert_eq!(
        cli.run(&["heartbeat", &id]).ok(),
        format!("Heartbeat recorded for {id}\n")
    );

    // (b) not running.
    let ready = cli.create("Idle", &["--assignee", "worker"]);
    refused(
        &cli.run(&["heartbeat", &ready]),
        &[
            &format!("cannot heartbeat {ready}"),
            "status is 'ready'",
            "only for running tasks",
        ],
    );
    refused(&cli.run(&["heartbeat", NO_TASK]), &[NO_TASK, CHECK_ID]);
    // A worker whose run is stale (HERMES_KANBAN_TASK + HERMES_KANBAN_RUN_ID) is refused.
    let r = cli.run_env(
        &["heartbeat", &id],
        &[("HERMES_KANBAN_TASK", &id), ("HERMES_KANBAN_RUN_ID", "99")],
    );
    refused(&r, &["stale run", &id, "not run 99", "must stop"]);

    // (c)
    usage(&cli.run(&["heartbeat"]));
    usage(&cli.run(&["heartbeat", &id, "--note"]));
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// complete
// ---------------------------------------------------------------------------------------------

#[test]
fn complete_records_the_hand_off_in_the_run() {
    let cli = Cli::new();
    let id = claimed(&cli, "Research A");
    let r = cli.run(&[
        "complete",
        &id,
        "--summary",
        "A done: 3 sources",
        "--metadata",
        r#"{"sources": 3, "changed_files": ["notes.md"]}"#,
        "--result",
        "see notes.md",
    ]);
    assert_eq!(r.ok(), format!("Completed {id}\n"));
    let rs = runs(&cli, &id);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0]["outcome"], "completed");
    assert_eq!(rs[0]["status"], "done");
    assert_eq!(rs[0]["summary"], "A done: 3 sources");
    assert_eq!(
        rs[0]["metadata"],
        json!({"sources": 3, "changed_files": ["notes.md"]})
    );
    let s = show(&cli, &id);
    assert_eq!(s["task"]["status"], "done");
    assert_eq!(s["task"]["result"], "see notes.md");
    assert_eq!(s["latest_summary"], "A done: 3 sources");

    // Completing a parent reports the children it promoted.
    let parent = cli.create("Parent", &[]);
    let child = cli.create("Child", &["--parent", &parent]);
    let out = cli
        .run(&["complete", &parent, "--result", "done"])
        .ok()
        .to_string();
    assert!(out.contains(&format!("Completed {parent}")), "{out}");
    assert!(
        out.contains(&format!("promoted to ready: {child}")),
        "{out}"
    );

    // (b) a done task cannot be completed again; the message says which states can.
    refused(
        &cli.run(&["complete", &id, "--summary", "again"]),
        &[
            &format!("cannot complete {id}"),
            "status is 'done'",
            "only running, ready, blocked or review",
        ],
    );
    refused(
        &cli.run(&["complete", NO_TASK]),
        &["no such task", NO_TASK, CHECK_ID],
    );
    // (c)
    usage(&cli.run(&["complete"]));
    usage(&cli.run(&["complete", &id, "--summary"]));
    assert_eq!(runs(&cli, &id).len(), 1, "refusals write no run");
    cli.assert_invariants();
}

#[test]
fn complete_bulk_close_guard() {
    let cli = Cli::new();
    let a = cli.create("A", &["--assignee", "worker"]);
    let b = cli.create("B", &["--assignee", "worker"]);

    // Several ids with a hand-off: usage error (exit 2), nothing changes.
    for flags in [&["--summary", "bulk"][..], &["--metadata", "{}"][..]] {
        let mut args = vec!["complete", a.as_str(), b.as_str()];
        args.extend_from_slice(flags);
        let r = cli.run(&args);
        usage(&r);
        assert!(r.stderr.contains("per-task hand-offs"), "{}", r.stderr);
        assert!(
            r.stderr.contains("complete each task on its own"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(status(&cli, &a), Status::Ready);
    assert_eq!(status(&cli, &b), Status::Ready);

    // Without evidence each completion is refused (UP §5) and nothing changes.
    let r = cli.run(&["complete", &a, &b]);
    r.code(1);
    assert!(
        r.stderr.contains("has no result or summary evidence"),
        "{}",
        r.stderr
    );
    assert_eq!(status(&cli, &a), Status::Ready);
    // With a shared result (not a per-task hand-off) the bulk close is allowed.
    let out = cli
        .run(&["complete", &a, &b, "--result", "closed in bulk"])
        .ok()
        .to_string();
    assert_eq!(out, format!("Completed {a}\nCompleted {b}\n"));
    assert_eq!(status(&cli, &a), Status::Done);
    assert_eq!(status(&cli, &b), Status::Done);

    // A bulk close with one bad id completes the others and exits 1, naming the bad one.
    let c = cli.create("C", &[]);
    let r = cli.run(&["complete", &c, NO_TASK, "--result", "done"]);
    r.code(1);
    assert_eq!(r.stdout, format!("Completed {c}\n"));
    assert!(r.stderr.contains(NO_TASK), "{}", r.stderr);
    cli.assert_invariants();
}

#[test]
fn complete_rejects_bad_metadata_naming_the_flag() {
    let cli = Cli::new();
    let id = claimed(&cli, "Job");
    let r = cli.run(&["complete", &id, "--summary", "x", "--metadata", "{not json"]);
    refused(&r, &["--metadata", "not valid JSON", "object like"]);
    let r = cli.run(&["complete", &id, "--metadata", "[1, 2]"]);
    refused(&r, &["--metadata must be a JSON object", "array"]);
    let r = cli.run(&["complete", &id, "--metadata", "\"text\""]);
    refused(&r, &["--metadata must be a JSON object", "string"]);
    let t = cli.board().get_task(&id).unwrap();
    assert_eq!(t.status, Status::Running, "bad metadata changes nothing");
    assert_eq!(runs(&cli, &id)[0]["outcome"], Value::Null);
    cli.assert_invariants();
}

#[test]
fn complete_from_a_stale_worker_run_is_refused() {
    let cli = Cli::new();
    let id = claimed(&cli, "Job");
    let first = cli.board().get_task(&id).unwrap().current_run_id.unwrap();
    cli.run(&["reclaim", &id, "--reason", "worker hung"]).ok();
    cli.run(&["claim", &id]).ok();
    let second = cli.board().get_task(&id).unwrap().current_run_id.unwrap();
    assert_ne!(first, second);

    let stale = first.to_string();
    let env = [
        ("HERMES_KANBAN_TASK", id.as_str()),
        ("HERMES_KANBAN_RUN_ID", stale.as_str()),
    ];
    let r = cli.run_env(&["complete", &id, "--summary", "late"], &env);
    refused(
        &r,
        &[
            "stale run",
            &format!("task {id} is now on run {second}, not run {first}"),
            "must stop",
        ],
    );
    assert_eq!(
        status(&cli, &id),
        Status::Running,
        "the successor's run is untouched"
    );
    // The same guard applies to block and heartbeat.
    refused(&cli.run_env(&["block", &id, "late"], &env), &["stale run"]);
    refused(&cli.run_env(&["heartbeat", &id], &env), &["stale run"]);

    // The env only applies to its own task: another task completes normally.
    let other = cli.create("Other", &[]);
    cli.run_env(&["complete", &other, "--result", "done"], &env)
        .ok();

    // The current run's worker completes.
    let cur = second.to_string();
    let r = cli.run_env(
        &["complete", &id, "--summary", "done"],
        &[("HERMES_KANBAN_TASK", &id), ("HERMES_KANBAN_RUN_ID", &cur)],
    );
    assert_eq!(r.ok(), format!("Completed {id}\n"));
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// edit
// ---------------------------------------------------------------------------------------------

#[test]
fn edit_backfills_a_done_task_only() {
    let cli = Cli::new();
    let id = claimed(&cli, "Ship");
    cli.run(&["complete", &id, "--summary", "first"]).ok();
    let r = cli.run(&[
        "edit",
        &id,
        "--result",
        "shipped in v2",
        "--summary",
        "shipped",
        "--metadata",
        r#"{"v": 2}"#,
    ]);
    assert_eq!(r.ok(), format!("Edited {id}\n"));
    let s = show(&cli, &id);
    assert_eq!(s["task"]["result"], "shipped in v2");
    assert_eq!(s["latest_summary"], "shipped");
    let rs = runs(&cli, &id);
    assert_eq!(rs.len(), 1, "the newest completed run is edited in place");
    assert_eq!(rs[0]["summary"], "shipped");
    assert_eq!(rs[0]["metadata"], json!({"v": 2}));
    assert!(event_kinds(&cli, &id).contains(&"edited".to_string()));

    // (b) not done.
    let ready = cli.create("Not yet", &[]);
    refused(
        &cli.run(&["edit", &ready, "--result", "x"]),
        &[
            &format!("cannot edit {ready}"),
            "status is 'ready'",
            "only done tasks",
        ],
    );
    refused(
        &cli.run(&["edit", &id, "--result", "x", "--metadata", "[]"]),
        &["--metadata"],
    );
    refused(
        &cli.run(&["edit", NO_TASK, "--result", "x"]),
        &[NO_TASK, CHECK_ID],
    );
    // (c) --result is required.
    usage(&cli.run(&["edit", &id]));
    usage(&cli.run(&["edit", "--result", "x"]));
    assert_eq!(show(&cli, &id)["task"]["result"], "shipped in v2");
    cli.assert_invariants();
}

#[test]
fn edit_changes_title_body_and_priority_and_create_reads_a_body_file() {
    let cli = Cli::new();
    let spec = cli.dir.path().join("spec.md");
    std::fs::write(&spec, "\u{feff}# Spec\n\nDo the thing.\n").unwrap();
    let id = cli.create("Draft", &["--body-file", spec.to_str().unwrap()]);
    assert_eq!(
        show(&cli, &id)["task"]["body"],
        "# Spec\n\nDo the thing.",
        "BOM dropped"
    );
    // `-` reads standard input.
    let mut c = cli.cmd(&["create", "From stdin", "--body-file", "-", "--json"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"piped body").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let sid = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(show(&cli, &sid)["task"]["body"], "piped body");
    usage(&cli.run(&[
        "create",
        "x",
        "--body",
        "a",
        "--body-file",
        spec.to_str().unwrap(),
    ]));
    usage(&cli.run(&["create", "x", "--body-file", "/nonexistent/spec.md"]));

    std::fs::write(&spec, "v2 body").unwrap();
    let r = cli.run(&[
        "edit",
        &id,
        "--title",
        "Final",
        "--priority",
        "-3",
        "--body-file",
        spec.to_str().unwrap(),
        "--json",
    ]);
    let t = r.json();
    assert_eq!(
        (t["title"].clone(), t["priority"].clone(), t["body"].clone()),
        (json!("Final"), json!(-3), json!("v2 body"))
    );
    let ev: Vec<Value> = cli.run(&["show", &id, "--json"]).json()["events"]
        .as_array()
        .unwrap()
        .clone();
    let edited = ev.iter().find(|e| e["kind"] == "edited").expect("edited");
    assert_eq!(edited["payload"]["fields"], json!(["title", "body"]));
    assert!(
        ev.iter()
            .any(|e| e["kind"] == "reprioritized" && e["payload"]["priority"] == -3)
    );
    // A result on a task that is not done is refused, and the title edit with it is not applied.
    refused(
        &cli.run(&["edit", &id, "--title", "Sneaky", "--result", "x"]),
        &["only done tasks"],
    );
    assert_eq!(show(&cli, &id)["task"]["title"], "Final");
    usage(&cli.run(&["edit", &id, "--title", "t", "--summary", "needs --result"]));
    refused(&cli.run(&["edit", &id, "--title", "  "]), &["title"]);
    cli.assert_invariants();
}

#[test]
fn list_sorts_by_completion_newest_first() {
    let cli = Cli::new();
    let a = claimed(&cli, "first done");
    cli.run(&["complete", &a, "--summary", "a"]).ok();
    let open = cli.create("not done", &[]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = claimed(&cli, "second done");
    cli.run(&["complete", &b, "--summary", "b"]).ok();
    let v = cli
        .run(&["list", "--sort", "completed-desc", "--json"])
        .json();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.as_str(), a.as_str(), open.as_str()]);
}

// ---------------------------------------------------------------------------------------------
// block
// ---------------------------------------------------------------------------------------------

#[test]
fn block_joins_reason_words_records_a_comment_and_a_typed_event() {
    let cli = Cli::new();
    let id = claimed(&cli, "Needs creds");
    // Flags after the reason words are flags, not part of the reason.
    let r = cli.run_env(
        &["block", &id, "need", "creds", "--kind", "needs_input"],
        &[("HERMES_PROFILE", "alice")],
    );
    assert_eq!(r.ok(), format!("Blocked {id}: need creds\n"));
    assert_eq!(status(&cli, &id), Status::Blocked);
    let s = show(&cli, &id);
    assert_eq!(s["comments"][0]["author"], "alice");
    assert_eq!(s["comments"][0]["body"], "BLOCKED: need creds");
    assert_eq!(s["latest_summary"], "need creds");
    let e = last_event(&cli, &id, "blocked");
    assert_eq!(
        e["payload"],
        json!({"reason": "need creds", "kind": "needs_input", "recurrences": 1})
    );
    assert_eq!(e["run_id"], json!(1));
    let rs = runs(&cli, &id);
    assert_eq!(
        (rs[0]["outcome"].as_str(), rs[0]["summary"].as_str()),
        (Some("blocked"), Some("need creds"))
    );

    // Every --kind value; a ready (never-claimed) task gets a synthesized run.
    for kind in ["capability", "transient", "needs_input"] {
        let t = cli.create(&format!("k {kind}"), &["--assignee", "worker"]);
        cli.run(&["block", &t, "--kind", kind, "why", kind]).ok();
        assert_eq!(status(&cli, &t), Status::Blocked, "{kind}");
        let e = last_event(&cli, &t, "blocked");
        assert_eq!(e["payload"]["kind"], kind);
        assert_eq!(e["payload"]["reason"], format!("why {kind}"));
        assert_eq!(runs(&cli, &t)[0]["outcome"], "blocked");
    }
    // No reason: no comment, no `: reason` suffix, no synthesized run.
    let bare = cli.create("Bare", &[]);
    assert_eq!(cli.run(&["block", &bare]).ok(), format!("Blocked {bare}\n"));
    assert!(comments(&cli, &bare).is_empty());
    assert!(runs(&cli, &bare).is_empty());
    // A reason that starts with '-' goes after `--`.
    let neg = cli.create("Cold", &[]);
    assert_eq!(
        cli.run(&["block", &neg, "--", "-5", "degrees"]).ok(),
        format!("Blocked {neg}: -5 degrees\n")
    );

    // (b) already blocked: refused, and the BLOCKED comment is not written either.
    refused(
        &cli.run(&["block", &id, "again"]),
        &[
            &format!("cannot block {id}"),
            "status is 'blocked'",
            "only running or ready tasks",
        ],
    );
    assert_eq!(comments(&cli, &id), vec!["BLOCKED: need creds".to_string()]);
    refused(&cli.run(&["block", NO_TASK, "x"]), &[NO_TASK, CHECK_ID]);
    // (c)
    usage(&cli.run(&["block"]));
    usage(&cli.run(&["block", &id, "--kind", "loop"]));
    usage(&cli.run(&["block", &id, "--kind"]));
    cli.assert_invariants();
}

#[test]
fn block_dependency_goes_to_todo_and_a_repeat_block_goes_to_triage() {
    let cli = Cli::new();
    let dep = claimed(&cli, "Waits on infra");
    let r = cli.run(&[
        "block",
        &dep,
        "waiting",
        "on",
        "infra",
        "--kind",
        "dependency",
    ]);
    assert_eq!(
        r.ok(),
        format!("{dep} → todo (dependency wait): waiting on infra\n")
    );
    assert_eq!(status(&cli, &dep), Status::Todo);
    let e = last_event(&cli, &dep, "dependency_wait");
    assert_eq!(
        e["payload"],
        json!({"reason": "waiting on infra", "kind": "dependency"})
    );

    // Unblock-loop breaker (REF §21.3): same kind again after an unblock → triage.
    let t = cli.create("Loops", &["--assignee", "worker"]);
    cli.run(&["block", &t, "need", "creds", "--kind", "needs_input"])
        .ok();
    cli.run(&["unblock", &t, "--reason", "creds added"]).ok();
    let r = cli.run(&[
        "block",
        &t,
        "need",
        "creds",
        "again",
        "--kind",
        "needs_input",
    ]);
    assert_eq!(
        r.ok(),
        format!(
            "{t} → triage (unblock loop detected — needs a human decision): need creds again\n"
        )
    );
    assert_eq!(status(&cli, &t), Status::Triage);
    let e = last_event(&cli, &t, "block_loop_detected");
    assert_eq!(
        e["payload"],
        json!({"reason": "need creds again", "kind": "needs_input", "recurrences": 2, "limit": 2})
    );
    // A different kind after an unblock is not a loop.
    let u = cli.create("Varies", &[]);
    cli.run(&["block", &u, "a", "--kind", "capability"]).ok();
    cli.run(&["unblock", &u]).ok();
    assert_eq!(
        cli.run(&["block", &u, "b", "--kind", "transient"]).ok(),
        format!("Blocked {u}: b\n")
    );
    cli.assert_invariants();
}

#[test]
fn block_ids_blocks_several_tasks_with_one_reason() {
    let cli = Cli::new();
    let a = cli.create("A", &[]);
    let b = cli.create("B", &[]);
    let c = claimed(&cli, "C");
    let r = cli.run(&["block", &a, "freeze", "--ids", &b, &c]);
    assert_eq!(
        r.ok(),
        format!("Blocked {a}: freeze\nBlocked {b}: freeze\nBlocked {c}: freeze\n")
    );
    for id in [&a, &b, &c] {
        assert_eq!(status(&cli, id), Status::Blocked);
        assert_eq!(comments(&cli, id), vec!["BLOCKED: freeze".to_string()]);
    }
    // Partial failure: the good ones are blocked, exit 1 naming the bad one.
    let d = cli.create("D", &[]);
    let r = cli.run(&["block", &d, "later", "--ids", &a]);
    r.code(1);
    assert_eq!(r.stdout, format!("Blocked {d}: later\n"));
    assert!(
        r.stderr.contains(&format!("cannot block {a}")),
        "{}",
        r.stderr
    );
    usage(&cli.run(&["block", &d, "--ids"]));
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// schedule
// ---------------------------------------------------------------------------------------------

#[test]
fn schedule_parks_tasks_with_a_comment() {
    let cli = Cli::new();
    let a = cli.create("A", &[]);
    let b = claimed(&cli, "B");
    let r = cli.run(&["schedule", &a, "wait", "until", "monday", "--ids", &b]);
    assert_eq!(
        r.ok(),
        format!("Scheduled {a}: wait until monday\nScheduled {b}: wait until monday\n")
    );
    for id in [&a, &b] {
        assert_eq!(status(&cli, id), Status::Scheduled);
        assert_eq!(
            comments(&cli, id),
            vec!["SCHEDULED: wait until monday".to_string()]
        );
        assert_eq!(
            last_event(&cli, id, "scheduled")["payload"],
            json!({"reason": "wait until monday"})
        );
    }
    assert_eq!(
        runs(&cli, &b)[0]["outcome"],
        "scheduled",
        "the open run is closed as scheduled"
    );
    let c = cli.create("C", &[]);
    assert_eq!(cli.run(&["schedule", &c]).ok(), format!("Scheduled {c}\n"));

    // (b) a done task cannot be scheduled.
    let done = cli.create("Done", &[]);
    cli.run(&["complete", &done, "--result", "done"]).ok();
    refused(
        &cli.run(&["schedule", &done, "later"]),
        &[
            &format!("cannot schedule {done}"),
            "status is 'done'",
            "only todo, ready, running or blocked",
        ],
    );
    assert!(comments(&cli, &done).is_empty());
    // (c)
    usage(&cli.run(&["schedule"]));
    usage(&cli.run(&["schedule", &a, "--ids"]));
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// unblock
// ---------------------------------------------------------------------------------------------

#[test]
fn unblock_with_reason_and_several_ids() {
    let cli = Cli::new();
    let a = cli.create("A", &[]);
    let b = cli.create("B", &[]);
    cli.run(&["block", &a, "need", "creds"]).ok();
    cli.run(&["schedule", &b, "later"]).ok();
    let r = cli.run_env(
        &["unblock", &a, &b, "--reason", "creds added"],
        &[("HERMES_PROFILE", "ops")],
    );
    assert_eq!(
        r.ok(),
        format!("Unblocked {a}: creds added\nUnblocked {b}: creds added\n")
    );
    assert_eq!(status(&cli, &a), Status::Ready);
    assert_eq!(status(&cli, &b), Status::Ready);
    let s = show(&cli, &a);
    let last = s["comments"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["author"].as_str(), last["body"].as_str()),
        (Some("ops"), Some("UNBLOCK: creds added"))
    );
    assert!(event_kinds(&cli, &a).contains(&"unblocked".to_string()));

    // Without --reason: no comment. With an unfinished parent: lands in todo.
    let parent = cli.create("Parent", &[]);
    let child = cli.create("Child", &["--parent", &parent]);
    cli.run(&["block", &parent, "x"]).ok();
    cli.run(&["unblock", &parent]).ok();
    cli.run(&["schedule", &child]).ok();
    let n = comments(&cli, &child).len();
    assert_eq!(
        cli.run(&["unblock", &child]).ok(),
        format!("Unblocked {child} → todo (waiting on parents)\n")
    );
    assert_eq!(status(&cli, &child), Status::Todo);
    assert_eq!(comments(&cli, &child).len(), n);

    // (b) not blocked: refused, no UNBLOCK comment written.
    refused(
        &cli.run(&["unblock", &a, "--reason", "again"]),
        &[
            &format!("cannot unblock {a}"),
            "status is 'ready'",
            "only blocked or scheduled",
        ],
    );
    assert_eq!(
        comments(&cli, &a)
            .iter()
            .filter(|c| c.starts_with("UNBLOCK:"))
            .count(),
        1
    );
    // Partial: the good one is unblocked, exit 1.
    let c = cli.create("C", &[]);
    cli.run(&["block", &c]).ok();
    let r = cli.run(&["unblock", &c, NO_TASK]);
    r.code(1);
    assert_eq!(r.stdout, format!("Unblocked {c}\n"));
    assert!(r.stderr.contains(NO_TASK));
    // (c)
    usage(&cli.run(&["unblock"]));
    usage(&cli.run(&["unblock", &a, "--reason"]));
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// promote
// ---------------------------------------------------------------------------------------------

const PROMOTE_KEYS: [&str; 6] = [
    "task_id", "promoted", "dry_run", "forced", "reason", "error",
];

#[test]
fn promote_force_dry_run_and_text_output() {
    let cli = Cli::new();
    let parent = cli.create("Parent", &[]);
    let child = cli.create("Child", &["--parent", &parent]);
    assert_eq!(status(&cli, &child), Status::Todo);

    // (b) an unfinished parent refuses without --force and says what to do.
    refused(
        &cli.run(&["promote", &child]),
        &[
            &format!("cannot promote {child}"),
            "a parent is not done",
            "pass --force",
        ],
    );
    // --dry-run writes nothing.
    let r = cli.run(&[
        "promote",
        &child,
        "skip",
        "the",
        "wait",
        "--force",
        "--dry-run",
    ]);
    assert_eq!(
        r.ok(),
        format!("Would promote {child} -> ready (dry): skip the wait\n")
    );
    assert_eq!(status(&cli, &child), Status::Todo);
    assert!(!event_kinds(&cli, &child).contains(&"promoted_manual".to_string()));
    // --force promotes.
    let r = cli.run_env(
        &["promote", &child, "skip", "the", "wait", "--force"],
        &[("HERMES_PROFILE", "ops")],
    );
    assert_eq!(
        r.ok(),
        format!("Promoted {child} -> ready: skip the wait\n")
    );
    assert_eq!(status(&cli, &child), Status::Ready);
    let e = last_event(&cli, &child, "promoted_manual");
    assert_eq!(
        e["payload"],
        json!({"actor": "ops", "reason": "skip the wait", "forced": true})
    );

    // Blocked → ready.
    let b = cli.create("Blocked", &[]);
    cli.run(&["block", &b, "x"]).ok();
    assert_eq!(
        cli.run(&["promote", &b]).ok(),
        format!("Promoted {b} -> ready\n")
    );

    // (b) wrong status (text mode: stdout empty).
    refused(
        &cli.run(&["promote", &b]),
        &[
            &format!("task {b} is 'ready'"),
            "promote only applies to 'todo' or 'blocked'",
        ],
    );
    refused(&cli.run(&["promote", NO_TASK]), &[NO_TASK, CHECK_ID]);
    // (c)
    usage(&cli.run(&["promote"]));
    usage(&cli.run(&["promote", &b, "--ids"]));
    cli.assert_invariants();
}

#[test]
fn promote_json_is_an_object_for_one_id_and_a_list_for_several() {
    let cli = Cli::new();
    let a = cli.create("A", &[]);
    let b = cli.create("B", &[]);
    let c = cli.create("C", &[]);
    for id in [&a, &b, &c] {
        cli.run(&["block", id]).ok();
    }
    // One id (reason words before the flag are still the reason).
    let v = cli
        .run(&["promote", &a, "manual", "retry", "--json"])
        .json();
    assert_eq!(keys(&v), PROMOTE_KEYS);
    assert_eq!(
        v,
        json!({"task_id": a, "promoted": true, "dry_run": false, "forced": false,
            "reason": "manual retry", "error": null})
    );
    // Dry run: `promoted` says it would be (as in Hermes), `dry_run` that nothing was written.
    let v = cli.run(&["promote", &b, "--dry-run", "--json"]).json();
    assert_eq!(
        v,
        json!({"task_id": b, "promoted": true, "dry_run": true, "forced": false, "reason": null,
            "error": null})
    );
    assert_eq!(status(&cli, &b), Status::Blocked);

    // Several ids (deduplicated, order kept) → a list.
    let v = cli
        .run(&["promote", &b, "--ids", &c, &b, "--force", "--json"])
        .json();
    let list = v.as_array().expect("a list for several ids");
    assert_eq!(list.len(), 2);
    for (row, id) in list.iter().zip([&b, &c]) {
        assert_eq!(keys(row), PROMOTE_KEYS);
        assert_eq!(row["task_id"], id.as_str());
        assert_eq!(row["promoted"], true);
        assert_eq!(row["forced"], true);
    }

    // Partial failure: exit 1, JSON still on stdout with the error per id (REF §21.3).
    let d = cli.create("D", &[]);
    cli.run(&["block", &d]).ok();
    let r = cli.run(&["promote", &d, "--ids", &a, "--json"]);
    r.code(1);
    let v: Value = serde_json::from_str(&r.stdout).expect("JSON on partial failure");
    assert_eq!(v[0]["promoted"], true);
    assert_eq!(v[1]["task_id"], a.as_str());
    assert_eq!(v[1]["promoted"], false);
    let err = v[1]["error"].as_str().expect("error text");
    assert!(
        err.contains(&format!(
            "task {a} is 'ready'; promote only applies to 'todo' or 'blocked'"
        )),
        "{err}"
    );
    // One failing id with --json: the object carries the error.
    let r = cli.run(&["promote", &a, "--json"]);
    r.code(1);
    let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(v["promoted"], false);
    assert!(v["error"].as_str().unwrap().contains(&a));
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// reclaim
// ---------------------------------------------------------------------------------------------

#[test]
fn reclaim_releases_the_claim_with_a_reason() {
    let cli = Cli::new();
    let id = claimed(&cli, "Hung");
    let lock = cli.board().get_task(&id).unwrap().claim_lock.unwrap();
    let r = cli.run(&["reclaim", &id, "--reason", "worker hung"]);
    assert_eq!(r.ok(), format!("Reclaimed {id} (was {lock})\n"));
    let t = cli.board().get_task(&id).unwrap();
    assert_eq!(t.status, Status::Ready);
    assert!(t.claim_lock.is_none() && t.current_run_id.is_none());
    let rs = runs(&cli, &id);
    assert_eq!(rs[0]["outcome"], "reclaimed");
    assert_eq!(rs[0]["error"], "manual_reclaim: worker hung");
    let e = last_event(&cli, &id, "reclaimed");
    assert_eq!(e["payload"]["manual"], true);
    assert_eq!(e["payload"]["reason"], "worker hung");
    assert_eq!(e["payload"]["prev_lock"], lock.as_str());

    // (b) nothing to reclaim.
    refused(
        &cli.run(&["reclaim", &id]),
        &[
            &format!("cannot reclaim {id}"),
            "holds no claim",
            "only running tasks can be reclaimed",
        ],
    );
    refused(&cli.run(&["reclaim", NO_TASK]), &[NO_TASK, CHECK_ID]);
    // (c)
    usage(&cli.run(&["reclaim"]));
    usage(&cli.run(&["reclaim", &id, "--reason"]));
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// runs
// ---------------------------------------------------------------------------------------------

const RUN_KEYS: [&str; 11] = [
    "id",
    "profile",
    "status",
    "outcome",
    "started_at",
    "ended_at",
    "summary",
    "error",
    "metadata",
    "worker_pid",
    "step_key",
];

#[test]
fn runs_json_shape_filters_and_table() {
    let cli = Cli::new();
    let id = claimed(&cli, "Attempts");
    cli.run(&["reclaim", &id, "--reason", "stuck"]).ok();
    cli.run(&["claim", &id]).ok();
    cli.run(&[
        "complete",
        &id,
        "--summary",
        "finally",
        "--metadata",
        r#"{"tests": 12}"#,
    ])
    .ok();

    let rs = runs(&cli, &id);
    assert_eq!(rs.len(), 2);
    for r in &rs {
        assert_eq!(keys(r), RUN_KEYS);
        assert_eq!(r["profile"], "worker");
        assert!(r["started_at"].is_i64() && r["ended_at"].is_i64());
    }
    assert_eq!(
        (rs[0]["outcome"].as_str(), rs[0]["error"].as_str()),
        (Some("reclaimed"), Some("manual_reclaim: stuck"))
    );
    assert_eq!(rs[1]["outcome"], "completed");
    assert_eq!(rs[1]["metadata"], json!({"tests": 12}));

    // --state-type/--state-name filter on a run column.
    let v = cli
        .run(&[
            "runs",
            &id,
            "--json",
            "--state-type",
            "outcome",
            "--state-name",
            "completed",
        ])
        .json();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["summary"], "finally");
    let v = cli
        .run(&[
            "runs",
            &id,
            "--json",
            "--state-type",
            "status",
            "--state-name",
            "reclaimed",
        ])
        .json();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let v = cli
        .run(&[
            "runs",
            &id,
            "--json",
            "--state-type",
            "outcome",
            "--state-name",
            "crashed",
        ])
        .json();
    assert_eq!(v, json!([]));

    // Text table: header, one line per run, summary and error lines.
    let out = cli.run(&["runs", &id]).ok().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with('#') && lines[0].contains("OUTCOME") && lines[0].contains("PROFILE"),
        "{out}"
    );
    assert!(
        lines[0].contains("ELAPSED") && lines[0].ends_with("STARTED"),
        "{out}"
    );
    assert!(
        out.contains("reclaimed") && out.contains("✖ manual_reclaim: stuck"),
        "{out}"
    );
    assert!(
        out.contains("completed") && out.contains("→ finally"),
        "{out}"
    );
    let fresh = cli.create("Fresh", &[]);
    assert_eq!(
        cli.run(&["runs", &fresh]).ok(),
        format!("(no runs for {fresh})\n")
    );
    assert_eq!(cli.run(&["runs", &fresh, "--json"]).json(), json!([]));

    // (b)
    refused(
        &cli.run(&["runs", NO_TASK, "--json"]),
        &["no such task", NO_TASK, CHECK_ID],
    );
    // (c) both filter flags or neither; the type is an enum.
    usage(&cli.run(&["runs", &id, "--state-type", "outcome"]));
    usage(&cli.run(&["runs", &id, "--state-name", "completed"]));
    usage(&cli.run(&["runs", &id, "--state-type", "colour", "--state-name", "x"]));
    usage(&cli.run(&["runs"]));
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// log
// ---------------------------------------------------------------------------------------------

#[test]
fn log_reads_the_worker_log_and_tails_bytes() {
    let cli = Cli::new();
    let id = cli.create("Logged", &[]);
    let path = cli
        .home()
        .join("kanban")
        .join("logs")
        .join(format!("{id}.log"));

    // (b) never spawned: a clear message naming the task and the path.
    refused(
        &cli.run(&["log", &id]),
        &[&format!("no worker log for {id}"), "has not been spawned"],
    );

    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "line1\nline2\nline3\n").unwrap();
    assert_eq!(cli.run(&["log", &id]).ok(), "line1\nline2\nline3\n");
    // 8 bytes = "2\nline3\n": the partial first line is dropped.
    assert_eq!(cli.run(&["log", &id, "--tail", "8"]).ok(), "line3\n");
    // A window that starts exactly on a line boundary keeps that whole line.
    assert_eq!(
        cli.run(&["log", &id, "--tail", "12"]).ok(),
        "line2\nline3\n"
    );
    assert_eq!(
        cli.run(&["log", &id, "--tail", "1000"]).ok(),
        "line1\nline2\nline3\n"
    );
    // A window without a line break shows the raw tail.
    assert_eq!(cli.run(&["log", &id, "--tail", "3"]).ok(), "e3\n");
    // A log without a final newline still ends the output with one.
    std::fs::write(&path, "no newline").unwrap();
    assert_eq!(cli.run(&["log", &id]).ok(), "no newline\n");

    refused(&cli.run(&["log", NO_TASK]), &[NO_TASK, CHECK_ID]);
    // (c)
    usage(&cli.run(&["log"]));
    usage(&cli.run(&["log", &id, "--tail", "-1"]));
    usage(&cli.run(&["log", &id, "--tail", "lots"]));
}

// ---------------------------------------------------------------------------------------------
// stats / assignees
// ---------------------------------------------------------------------------------------------

#[test]
fn stats_counts_by_status_and_assignee() {
    let cli = Cli::new();
    let v = cli.run(&["stats", "--json"]).json();
    assert_eq!(
        keys(&v),
        [
            "by_status",
            "by_assignee",
            "oldest_ready_age_seconds",
            "now"
        ]
    );
    assert_eq!(v["oldest_ready_age_seconds"], Value::Null);
    assert!(cli.run(&["stats"]).ok().contains("No ready tasks."));

    let a = cli.create("A", &["--assignee", "worker"]);
    cli.create("B", &["--assignee", "worker"]);
    let c = cli.create("C", &["--assignee", "reviewer"]);
    let d = cli.create("D", &[]);
    cli.run(&["claim", &a]).ok();
    cli.run(&["complete", &c, "--result", "done"]).ok();
    cli.run(&["archive", &d]).ok();
    let v = cli.run(&["stats", "--json"]).json();
    assert_eq!(
        v["by_status"],
        json!({"done": 1, "ready": 1, "running": 1}),
        "archived excluded"
    );
    assert_eq!(
        v["by_assignee"],
        json!({"reviewer": {"done": 1}, "worker": {"ready": 1, "running": 1}})
    );
    assert!(v["oldest_ready_age_seconds"].as_i64().unwrap() >= 0);
    let now = v["now"].as_i64().unwrap();
    assert!((now - chrono_now()).abs() < 60, "now is a Unix timestamp");

    let out = cli.run(&["stats"]).ok().to_string();
    assert!(
        out.contains("ready") && out.contains("running") && out.contains("done"),
        "{out}"
    );
    assert!(
        out.contains("worker") && out.contains("ready=1, running=1"),
        "{out}"
    );
    assert!(out.contains("Oldest ready task:"), "{out}");

    // (b) unknown board; (c) unknown flag.
    refused(
        &cli.run(&["--board", "nope", "stats"]),
        &["board 'nope' does not exist", "boards create nope"],
    );
    usage(&cli.run(&["stats", "--bogus"]));
    cli.assert_invariants();
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn assignees_union_profiles_on_disk_and_board_assignees() {
    let cli = Cli::new();
    std::fs::create_dir_all(cli.home().join("profiles").join("reviewer")).unwrap();
    std::fs::write(cli.home().join("profiles/reviewer/config.yaml"), "{}\n").unwrap();
    cli.create("A", &["--assignee", "worker"]);
    let b = cli.create("B", &["--assignee", "reviewer"]);
    cli.run(&["complete", &b, "--result", "done"]).ok();

    let v = cli.run(&["assignees", "--json"]).json();
    let rows = v.as_array().expect("list");
    for r in rows {
        assert_eq!(keys(r), ["name", "on_disk", "not_a_profile", "counts"]);
    }
    let by: std::collections::HashMap<&str, &Value> = rows
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r))
        .collect();
    assert_eq!(by["default"]["on_disk"], true);
    assert_eq!(by["default"]["counts"], json!({}));
    assert_eq!(
        by["reviewer"]["on_disk"], true,
        "a profile directory counts as on disk"
    );
    assert_eq!(by["reviewer"]["counts"], json!({"done": 1}));
    assert_eq!(by["worker"]["on_disk"], false);
    assert!(
        by["worker"]["not_a_profile"]
            .as_str()
            .is_some_and(|w| w.contains("no profile directory")),
        "{}",
        by["worker"]
    );
    assert_eq!(by["reviewer"]["not_a_profile"], Value::Null);
    assert_eq!(by["worker"]["counts"], json!({"ready": 1}));

    let out = cli.run(&["assignees"]).ok().to_string();
    assert!(
        out.lines().any(|l| l.starts_with("worker")
            && l.contains("ready=1")
            && l.contains("not a profile: no profile directory")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("reviewer") && l.contains("done=1")),
        "{out}"
    );

    refused(
        &cli.run(&["--board", "nope", "assignees"]),
        &["board 'nope' does not exist"],
    );
    usage(&cli.run(&["assignees", "extra"]));
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// context
// ---------------------------------------------------------------------------------------------

#[test]
fn context_prints_the_worker_context() {
    let cli = Cli::new();
    let parent = cli.create("Research A", &["--assignee", "worker"]);
    cli.run(&["claim", &parent]).ok();
    cli.run(&[
        "complete",
        &parent,
        "--summary",
        "A done: 3 sources",
        "--metadata",
        r#"{"sources": 3}"#,
    ])
    .ok();
    let child = cli.create(
        "Synthesize",
        &[
            "--assignee",
            "writer",
            "--parent",
            &parent,
            "--body",
            "Write it up.",
        ],
    );
    cli.run(&["comment", &child, "use the EU numbers"]).ok();

    let out = cli.run(&["context", &child]).ok().to_string();
    assert!(
        out.starts_with(&format!(
            "# Kanban task {child}: Synthesize\n\nAssignee: writer\n"
        )),
        "{out}"
    );
    assert!(out.contains("Status:   ready"), "{out}");
    assert!(
        out.contains("## Body\n") && out.contains("Write it up."),
        "{out}"
    );
    assert!(out.contains("## Parent task results"), "{out}");
    assert!(out.contains(&format!("### {parent} (completed")), "{out}");
    assert!(
        out.contains("A done: 3 sources") && out.contains(r#"_metadata_: `{"sources": 3}`"#),
        "{out}"
    );
    assert!(
        out.contains("## Comment thread") && out.contains("use the EU numbers"),
        "{out}"
    );
    assert!(
        out.ends_with("\n\n") && !out.ends_with("\n\n\n"),
        "the markdown ends with a newline and, as Hermes prints it with print(), one more"
    );

    refused(
        &cli.run(&["context", NO_TASK]),
        &["no such task", NO_TASK, CHECK_ID],
    );
    usage(&cli.run(&["context"]));
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// gc
// ---------------------------------------------------------------------------------------------

#[test]
fn gc_removes_archived_scratch_old_events_and_old_logs() {
    let cli = Cli::new();
    // An archived task's scratch workspace.
    let archived = claimed(&cli, "Old job");
    cli.run(&["complete", &archived, "--result", "done"]).ok();
    cli.run(&["archive", &archived]).ok();
    let ws = cli.home().join("kanban").join("workspaces").join(&archived);
    assert!(ws.is_dir());
    // A live task's workspace stays.
    let live = claimed(&cli, "Live job");
    let live_ws = cli.home().join("kanban").join("workspaces").join(&live);
    // A task finished 40 days ago (kernel with a shifted clock).
    let old = {
        let mut b = cli.board();
        let then = chrono_now() - 40 * 86_400;
        b.set_clock(std::sync::Arc::new(move || then));
        let t = b
            .create_task(NewTask {
                title: "Ancient".into(),
                ..Default::default()
            })
            .unwrap()
            .task;
        b.complete_task(Completion {
            task_id: t.id.clone(),
            summary: Some("long ago".into()),
            ..Default::default()
        })
        .unwrap();
        t.id
    };
    let old_events = cli.board().list_events(&old, None).unwrap().len();
    assert!(old_events >= 2);
    // An old log and a fresh one.
    let logs = cli.home().join("kanban").join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let old_log = logs.join(format!("{old}.log"));
    std::fs::write(&old_log, "old\n").unwrap();
    let f = std::fs::File::options().write(true).open(&old_log).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(40 * 86_400))
        .unwrap();
    drop(f);
    let new_log = logs.join(format!("{live}.log"));
    std::fs::write(&new_log, "new\n").unwrap();

    let out = cli.run(&["gc"]).ok().to_string();
    assert_eq!(
        out,
        format!("Removed 1 scratch workspace(s), {old_events} event(s), 1 log file(s)\n")
    );
    assert!(!ws.exists() && live_ws.is_dir());
    assert!(!old_log.exists() && new_log.exists());
    assert!(cli.board().list_events(&old, None).unwrap().is_empty());
    assert!(
        !cli.board().list_events(&live, None).unwrap().is_empty(),
        "events of live tasks stay"
    );
    // Idempotent.
    assert_eq!(
        cli.run(&["gc"]).ok(),
        "Removed 0 scratch workspace(s), 0 event(s), 0 log file(s)\n"
    );

    // (b) unknown board; (c) retention out of range.
    refused(
        &cli.run(&["--board", "nope", "gc"]),
        &["board 'nope' does not exist"],
    );
    usage(&cli.run(&["gc", "--event-retention-days", "-1"]));
    for bad in ["36501", "soon"] {
        let r = cli.run(&["gc", "--event-retention-days", bad]);
        usage(&r);
        assert!(r.stderr.contains("--event-retention-days"), "{}", r.stderr);
    }
    usage(&cli.run(&["gc", "--log-retention-days", "99999"]));
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// notify-subscribe / notify-list / notify-unsubscribe
// ---------------------------------------------------------------------------------------------

const SUB_KEYS: [&str; 8] = [
    "task_id",
    "platform",
    "chat_id",
    "thread_id",
    "user_id",
    "notifier_profile",
    "created_at",
    "last_event_id",
];

#[test]
fn notify_subscriptions_round_trip() {
    let cli = Cli::new();
    let a = cli.create("A", &[]);
    let b = cli.create("B", &[]);
    assert_eq!(cli.run(&["notify-list"]).ok(), "(no subscriptions)\n");
    assert_eq!(cli.run(&["notify-list", "--json"]).json(), json!([]));

    let r = cli.run(&[
        "notify-subscribe",
        &a,
        "--platform",
        "telegram",
        "--chat-id",
        "123",
        "--thread-id",
        "9",
    ]);
    assert_eq!(r.ok(), format!("Subscribed telegram:123:9 to {a}\n"));
    // Insert-or-ignore: the same key again is not a second row.
    cli.run(&[
        "notify-subscribe",
        &a,
        "--platform",
        "telegram",
        "--chat-id",
        "123",
        "--thread-id",
        "9",
    ])
    .ok();
    let r = cli.run_env(
        &[
            "notify-subscribe",
            &b,
            "--platform",
            "slack",
            "--chat-id",
            "C1",
            "--user-id",
            "U7",
        ],
        &[("HERMES_PROFILE", "ops")],
    );
    assert_eq!(r.ok(), format!("Subscribed slack:C1 to {b}\n"));
    cli.run(&[
        "notify-subscribe",
        &b,
        "--platform",
        "tui",
        "--chat-id",
        "s1",
        "--notifier-profile",
        "bot",
    ])
    .ok();

    let v = cli.run(&["notify-list", "--json"]).json();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        assert_eq!(keys(r), SUB_KEYS);
        // A new subscription starts at its task's latest event (UP §16.7): no replay.
        // (every task here has its `created` event, so the cursor is past 0).
        assert!(r["last_event_id"].as_i64().unwrap() >= 1, "{r}");
    }
    let mine: Vec<&Value> = rows.iter().filter(|r| r["task_id"] == a.as_str()).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["thread_id"], "9");
    assert_eq!(mine[0]["user_id"], Value::Null);
    // The author identity, as Hermes: the active profile (`default` for the shared root).
    assert_eq!(mine[0]["notifier_profile"], "default");
    let slack = rows.iter().find(|r| r["platform"] == "slack").unwrap();
    assert_eq!(
        (
            slack["user_id"].as_str(),
            slack["notifier_profile"].as_str()
        ),
        (Some("U7"), Some("ops"))
    );
    let tui = rows.iter().find(|r| r["platform"] == "tui").unwrap();
    assert_eq!(tui["notifier_profile"], "bot");
    // Filter by task.
    let v = cli.run(&["notify-list", &b, "--json"]).json();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let out = cli.run(&["notify-list", &a]).ok().to_string();
    assert!(out.contains(&a) && out.contains("telegram:123:9"), "{out}");

    // Unsubscribe needs the full key (thread included).
    let r = cli.run(&[
        "notify-unsubscribe",
        &a,
        "--platform",
        "telegram",
        "--chat-id",
        "123",
    ]);
    refused(
        &r,
        &[
            &a,
            "no subscription telegram:123",
            &format!("notify-list {a}"),
        ],
    );
    let r = cli.run(&[
        "notify-unsubscribe",
        &a,
        "--platform",
        "telegram",
        "--chat-id",
        "123",
        "--thread-id",
        "9",
    ]);
    assert_eq!(r.ok(), format!("Unsubscribed telegram:123 from {a}\n"));
    assert!(
        cli.run(&["notify-list", &a, "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );

    // (b) unknown task; (c) missing required flags.
    refused(
        &cli.run(&[
            "notify-subscribe",
            NO_TASK,
            "--platform",
            "telegram",
            "--chat-id",
            "1",
        ]),
        &[NO_TASK, CHECK_ID],
    );
    usage(&cli.run(&["notify-subscribe", &a, "--chat-id", "1"]));
    usage(&cli.run(&["notify-subscribe", &a, "--platform", "telegram"]));
    usage(&cli.run(&["notify-unsubscribe", &a, "--platform", "telegram"]));
    usage(&cli.run(&["notify-list", "--bogus"]));
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// attach / attachments / attach-rm
// ---------------------------------------------------------------------------------------------

/// The content of task `id`'s attachment `name`, read as a front door reads it: its file on
/// SQLite, its database row on PostgreSQL (`None`: no such attachment or no content).
fn attachment_text(cli: &Cli, id: &str, name: &str) -> Option<String> {
    let board = hermes_kanban::kernel::Board::open(&cli.env(), None).unwrap();
    let a = board.list_attachments(id).unwrap();
    let a = a.into_iter().find(|a| a.filename == name)?;
    let bytes = board.attachment_content(&a).unwrap()?;
    Some(String::from_utf8(bytes).unwrap())
}

#[test]
fn attach_list_and_remove() {
    let cli = Cli::new();
    let id = cli.create("With files", &[]);
    let src = cli.dir.path().join("report.txt");
    std::fs::write(&src, "hello\n").unwrap();
    let src_s = src.to_str().unwrap();
    let store = cli.home().join("kanban").join("attachments").join(&id);

    let out = cli.run(&["attach", &id, src_s]).ok().to_string();
    assert!(
        out.starts_with(&format!("Attached report.txt to {id} (id 1, 6 bytes)")),
        "{out}"
    );
    assert_eq!(
        attachment_text(&cli, &id, "report.txt").as_deref(),
        Some("hello\n")
    );
    if !crate::helpers::on_postgres() {
        // SQLite keeps the content as a file under the attachment root (PostgreSQL: a row).
        assert_eq!(
            std::fs::read_to_string(store.join("report.txt")).unwrap(),
            "hello\n"
        );
    }
    cli.run(&[
        "attach",
        &id,
        src_s,
        "--name",
        "notes.md",
        "--content-type",
        "text/x-notes",
        "--author",
        "bob",
    ])
    .ok();
    // Same name again: a collision suffix, never an overwrite.
    let out = cli.run(&["attach", &id, src_s]).ok().to_string();
    assert!(out.contains("report (1).txt"), "{out}");

    let v = cli.run(&["attachments", &id, "--json"]).json();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        for k in [
            "id",
            "filename",
            "content_type",
            "size",
            "uploaded_by",
            "stored_path",
            "created_at",
        ] {
            assert!(r.get(k).is_some(), "attachment row lacks {k}: {r}");
        }
    }
    assert_eq!(
        (
            rows[0]["filename"].as_str(),
            rows[0]["content_type"].as_str(),
            rows[0]["size"].as_i64(),
            rows[0]["uploaded_by"].as_str()
        ),
        (
            Some("report.txt"),
            Some("text/plain"),
            Some(6),
            Some("default")
        )
    );
    assert_eq!(
        (
            rows[1]["filename"].as_str(),
            rows[1]["content_type"].as_str(),
            rows[1]["uploaded_by"].as_str()
        ),
        (Some("notes.md"), Some("text/x-notes"), Some("bob"))
    );
    let out = cli.run(&["attachments", &id]).ok().to_string();
    assert!(
        out.contains("report.txt") && out.contains("notes.md") && out.contains("text/x-notes"),
        "{out}"
    );
    assert!(event_kinds(&cli, &id).contains(&"attached".to_string()));

    // attach-rm removes row and blob.
    let notes_id = rows[1]["id"].as_i64().unwrap().to_string();
    assert_eq!(
        cli.run(&["attach-rm", &notes_id]).ok(),
        format!("Removed attachment {notes_id} (notes.md) from {id}\n")
    );
    assert!(!store.join("notes.md").exists());
    assert_eq!(attachment_text(&cli, &id, "notes.md"), None);
    assert_eq!(
        cli.run(&["attachments", &id, "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    refused(
        &cli.run(&["attach-rm", &notes_id]),
        &[
            &format!("no such attachment: {notes_id}"),
            "list the task's attachments",
        ],
    );

    // (b) refusals: 25 MiB cap, path-like --name, unknown task, missing file.
    let big = cli.dir.path().join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(25 * 1024 * 1024 + 1)
        .unwrap();
    refused(
        &cli.run(&["attach", &id, big.to_str().unwrap()]),
        &["big.bin", &id, "25 MiB"],
    );
    for bad in ["../evil.txt", "a/b.txt", ".hidden"] {
        refused(
            &cli.run(&["attach", &id, src_s, "--name", bad]),
            &["--name", "plain file name"],
        );
    }
    assert!(
        !cli.home()
            .join("kanban")
            .join("attachments")
            .join("evil.txt")
            .exists()
    );
    refused(&cli.run(&["attach", NO_TASK, src_s]), &[NO_TASK, CHECK_ID]);
    refused(
        &cli.run(&[
            "attach",
            &id,
            cli.dir.path().join("missing.txt").to_str().unwrap(),
        ]),
        &["missing.txt"],
    );
    refused(&cli.run(&["attachments", NO_TASK]), &[NO_TASK, CHECK_ID]);
    assert_eq!(
        cli.run(&["attachments", &id, "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2,
        "refusals store nothing"
    );
    // (c)
    usage(&cli.run(&["attach", &id]));
    usage(&cli.run(&["attachments"]));
    usage(&cli.run(&["attach-rm", "seven"]));
    usage(&cli.run(&["attach-rm"]));
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// diagnostics
// ---------------------------------------------------------------------------------------------

#[test]
fn diagnostics_reports_repeated_failures() {
    let cli = Cli::new();
    let healthy = cli.create("Healthy", &[]);
    // A profile on disk, so the only finding below is the failures (not `unspawnable_assignee`).
    std::fs::create_dir_all(cli.home().join("profiles").join("worker")).unwrap();
    std::fs::write(cli.home().join("profiles/worker/config.yaml"), "{}\n").unwrap();
    let bad = cli.create("Crashy", &["--assignee", "worker"]);
    let text = cli.run(&["diagnostics"]).ok().to_string();
    // The report opens with the journal mode and why: a new board of ours is WAL (journal
    // modes are SQLite's; on PostgreSQL the line says where the board lives instead).
    if crate::helpers::on_postgres() {
        assert!(text.starts_with("Journal mode: postgresql — "), "{text}");
    } else {
        assert!(text.starts_with("Journal mode: wal — "), "{text}");
        let j = cli.run(&["diagnostics", "--journal", "--json"]).json();
        assert_eq!(j["journal"]["mode"], "wal");
        assert_eq!(j["journal"]["setting"], Value::Null);
    }
    assert!(text.ends_with("\nNo problems found.\n"), "{text}");
    assert_eq!(cli.run(&["diagnostics", "--json"]).json(), json!([]));

    // Two recorded failures trip the breaker (default limit 2).
    {
        let b = cli.board();
        let first = b
            .record_task_failure(&FailureReport::new(
                &bad,
                RunOutcome::Crashed,
                "pid 4242 not alive",
            ))
            .unwrap();
        assert!(!first.tripped);
        let second = b
            .record_task_failure(&FailureReport::new(
                &bad,
                RunOutcome::Crashed,
                "pid 4243 not alive",
            ))
            .unwrap();
        assert!(second.tripped);
    }
    assert_eq!(status(&cli, &bad), Status::Blocked);

    let v = cli.run(&["diagnostics", "--json"]).json();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 1, "only the failing task has findings: {v}");
    let row = &rows[0];
    assert_eq!(
        keys(row),
        ["task_id", "title", "status", "assignee", "diagnostics"]
    );
    assert_eq!(
        (
            row["task_id"].as_str(),
            row["title"].as_str(),
            row["status"].as_str(),
            row["assignee"].as_str()
        ),
        (
            Some(bad.as_str()),
            Some("Crashy"),
            Some("blocked"),
            Some("worker")
        )
    );
    let d = row["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "repeated_failures")
        .expect("repeated_failures");
    for k in [
        "kind",
        "severity",
        "title",
        "detail",
        "actions",
        "first_seen_at",
        "last_seen_at",
        "count",
        "run_id",
        "data",
    ] {
        assert!(d.get(k).is_some(), "diagnostic lacks {k}: {d}");
    }
    assert_eq!(d["severity"], "error");
    assert_eq!(d["count"], 2);
    assert!(
        d["detail"].as_str().unwrap().contains("pid 4243 not alive"),
        "{d}"
    );
    assert!(
        d["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a.get("kind").is_some() && a.get("suggested").is_some())
    );

    // --severity is at-or-above; --task narrows.
    assert_eq!(
        cli.run(&["diagnostics", "--severity", "error", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        cli.run(&["diagnostics", "--severity", "critical", "--json"])
            .json(),
        json!([])
    );
    assert!(
        cli.run(&["diagnostics", "--severity", "critical"])
            .ok()
            .ends_with("\nNo problems found.\n")
    );
    assert_eq!(
        cli.run(&["diagnostics", "--task", &healthy, "--json"])
            .json(),
        json!([])
    );
    assert_eq!(
        cli.run(&["diag", "--task", &bad, "--json"]).json()[0]["task_id"],
        bad.as_str()
    );

    let out = cli.run(&["diagnostics"]).ok().to_string();
    assert!(
        out.contains(&bad) && out.contains("Crashy") && out.contains("Failed 2 times in a row"),
        "{out}"
    );
    // No worker was ever spawned (the failures were recorded directly), so there is no log:
    // the advice is the runs (each attempt's error) and the way out (issue 12, defect 5).
    assert!(
        out.contains(&format!("hermes-kanban runs {bad}"))
            && out.contains(&format!("hermes-kanban unblock {bad}"))
            && !out.contains(&format!("hermes-kanban log {bad}")),
        "suggested action shown: {out}"
    );

    // (b) unknown task; (c) bad severity.
    refused(
        &cli.run(&["diagnostics", "--task", NO_TASK]),
        &["no such task", NO_TASK, CHECK_ID],
    );
    let r = cli.run(&["diagnostics", "--severity", "fatal"]);
    usage(&r);
    assert!(
        r.stderr.contains("warning, error, critical"),
        "{}",
        r.stderr
    );
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// skills install / completions
// ---------------------------------------------------------------------------------------------

#[test]
fn skills_install_writes_both_skills_and_respects_force() {
    let cli = Cli::new();
    let worker = cli
        .home()
        .join("skills")
        .join("kanban-worker")
        .join("SKILL.md");
    let orch = cli
        .home()
        .join("skills")
        .join("kanban-orchestrator")
        .join("SKILL.md");
    let out = cli.run(&["skills", "install"]).ok().to_string();
    assert_eq!(
        out,
        format!(
            "Installed {}\nInstalled {}\n",
            worker.display(),
            orch.display()
        )
    );
    let text = std::fs::read_to_string(&worker).unwrap();
    assert!(!text.trim().is_empty());
    assert!(!std::fs::read_to_string(&orch).unwrap().trim().is_empty());

    // Existing files are kept without --force, overwritten with it.
    std::fs::write(&worker, "local edits").unwrap();
    let out = cli.run(&["skills", "install"]).ok().to_string();
    assert!(
        out.contains("Kept existing") && out.contains("--force"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&worker).unwrap(), "local edits");
    cli.run(&["skills", "install", "--force"]).ok();
    assert_eq!(std::fs::read_to_string(&worker).unwrap(), text);

    // (b) the skills dir cannot be created: the message names the path.
    let other = Cli::new();
    std::fs::create_dir_all(other.home()).unwrap();
    std::fs::write(other.home().join("skills"), "not a dir").unwrap();
    refused(&other.run(&["skills", "install"]), &["skills"]);
    // (c)
    usage(&cli.run(&["skills"]));
    usage(&cli.run(&["skills", "install", "--bogus"]));
    usage(&cli.run(&["skills", "remove"]));
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let cli = Cli::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = cli.run(&["completions", shell]).ok().to_string();
        assert!(out.len() > 100, "{shell} completions are empty");
        assert!(
            out.contains("hermes-kanban"),
            "{shell} completions do not mention hermes-kanban"
        );
        assert!(
            out.contains("notify-subscribe"),
            "{shell} completions miss a verb"
        );
    }
    usage(&cli.run(&["completions"]));
    usage(&cli.run(&["completions", "tcsh"]));
}

// ---------------------------------------------------------------------------------------------
// tail / watch
// ---------------------------------------------------------------------------------------------

#[test]
fn tail_follows_one_task_until_ctrl_c() {
    let cli = Cli::new();
    let id = cli.create("Followed", &["--assignee", "worker"]);
    let other = cli.create("Other", &[]);
    let mut live = Live::spawn(&cli, &["tail", &id, "--interval", "0.1"]);
    // History first: the `created` event, as `[ts] kind payload`.
    let l = live.expect_line("created", |l| l.contains("created"));
    assert!(strip_ts(&l).starts_with("created {"), "{l}");
    assert!(
        l.contains(r#""assignee": "worker""#),
        "payload as sorted JSON: {l}"
    );

    cli.run(&["comment", &id, "hello"]).ok();
    cli.run(&["comment", &other, "not followed"]).ok();
    cli.run(&["claim", &id]).ok();
    cli.run(&["heartbeat", &id]).ok();
    cli.run(&["complete", &id, "--summary", "done"]).ok();
    let l = live.expect_line("commented", |l| l.contains("commented"));
    assert_eq!(strip_ts(&l), r#"commented {"author": "default", "len": 5}"#);
    live.expect_line("claimed", |l| strip_ts(l).starts_with("claimed {"));
    // An event without a payload prints just its kind.
    let l = live.expect_line("heartbeat", |l| l.contains("heartbeat"));
    assert_eq!(strip_ts(&l), "heartbeat");
    let l = live.expect_line("completed", |l| l.contains("completed"));
    assert!(
        strip_ts(&l).starts_with("completed {") && l.contains(r#""summary": "done""#),
        "{l}"
    );

    let lines = live.interrupt();
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| strip_ts(l).split(' ').next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["created", "commented", "claimed", "heartbeat", "completed"],
        "{lines:#?}"
    );

    // (b) unknown task: refused at once; (c) bad interval.
    refused(
        &cli.run(&["tail", NO_TASK]),
        &["no such task", NO_TASK, CHECK_ID],
    );
    usage(&cli.run(&["tail", &id, "--interval", "fast"]));
    usage(&cli.run(&["tail"]));
    cli.assert_invariants();
}

#[test]
fn watch_streams_board_events_with_filters_until_ctrl_c() {
    let cli = Cli::new();
    let before = cli.create("Before", &["--assignee", "worker"]);

    let mut all = Live::spawn(&cli, &["watch", "--interval", "0.1"]);
    let mut filtered = Live::spawn(
        &cli,
        &[
            "watch",
            "--interval",
            "0.1",
            "--kinds",
            "created,completed",
            "--assignee",
            "worker",
        ],
    );
    let mut tenant = Live::spawn(&cli, &["watch", "--interval", "0.1", "--tenant", "acme"]);
    // The stream starts at the current newest event: wait until each watcher has seeded it.
    for w in [&mut all, &mut filtered, &mut tenant] {
        w.expect_stderr("Watching board default");
    }

    let mine = cli.create("Mine", &["--assignee", "worker"]);
    let theirs = cli.create("Theirs", &["--assignee", "reviewer", "--tenant", "acme"]);
    let nobody = cli.create("Nobody", &[]);
    cli.run(&["comment", &mine, "note"]).ok();
    cli.run(&["complete", &mine, "--summary", "ok"]).ok();
    cli.run(&["complete", &theirs, "--result", "done"]).ok();
    cli.run(&["complete", &nobody, "--result", "done"]).ok();

    // Unfiltered: every event, `[ts] <id:10> <kind:18> (@assignee) payload`, `(@-)` unassigned.
    let l = all.expect_line("created of mine", |l| {
        l.contains(&mine) && l.contains("created")
    });
    assert!(
        strip_ts(&l).starts_with(&format!("{mine} {:<18} (@worker) {{", "created")),
        "{l}"
    );
    let l = all.expect_line("created of nobody", |l| {
        l.contains(&nobody) && l.contains("created")
    });
    assert!(
        strip_ts(&l).starts_with(&format!("{nobody} {:<18} (@-) {{", "created")),
        "{l}"
    );
    all.expect_line("completed of nobody", |l| {
        l.contains(&nobody) && l.contains("completed")
    });
    // Filtered by kinds and assignee: only Mine's created and completed.
    filtered.expect_line("completed of mine", |l| {
        l.contains(&mine) && l.contains("completed")
    });
    // Filtered by tenant: only Theirs.
    let l = tenant.expect_line("completed of theirs", |l| {
        l.contains(&theirs) && l.contains("completed")
    });
    assert!(
        strip_ts(&l).starts_with(&format!("{theirs} {:<18} (@reviewer)", "completed")),
        "{l}"
    );

    // Every watcher stops on Ctrl-C with exit 0.
    let lines = all.interrupt();
    assert!(
        lines.iter().all(|l| !l.contains(&before)),
        "history before the start is not replayed: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&theirs) && l.contains("(@reviewer)"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&mine) && l.contains("commented"))
    );

    let lines = filtered.interrupt();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        strip_ts(&lines[0]).starts_with(&format!("{mine} {:<18} (@worker) {{", "created")),
        "{lines:#?}"
    );
    assert!(
        strip_ts(&lines[1]).starts_with(&format!("{mine} {:<18} (@worker) {{", "completed")),
        "{lines:#?}"
    );

    let lines = tenant.interrupt();
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l.contains(&theirs)), "{lines:#?}");

    // (b) unknown board; (c) bad interval / unknown flag.
    refused(
        &cli.run(&["--board", "nope", "watch"]),
        &["board 'nope' does not exist"],
    );
    usage(&cli.run(&["watch", "--interval", "soon"]));
    usage(&cli.run(&["watch", "extra"]));
    cli.assert_invariants();
}

// ---------------------------------------------------------------------------------------------
// Story 3: review feedback loop, end to end
// ---------------------------------------------------------------------------------------------

#[test]
fn story3_review_feedback_loop() {
    let cli = Cli::new();
    let id = cli.create("Fix the parser", &["--assignee", "coder"]);

    // First attempt ends with review feedback.
    cli.run(&["claim", &id]).ok();
    let r = cli.run(&[
        "block",
        &id,
        "review-required:",
        "fix",
        "the",
        "null",
        "check",
        "--kind",
        "needs_input",
    ]);
    assert_eq!(
        r.ok(),
        format!("Blocked {id}: review-required: fix the null check\n")
    );
    assert_eq!(status(&cli, &id), Status::Blocked);
    let r = cli.run(&["unblock", &id, "--reason", "feedback is in the thread"]);
    assert_eq!(
        r.ok(),
        format!("Unblocked {id}: feedback is in the thread\n")
    );
    assert_eq!(status(&cli, &id), Status::Ready);

    // Second attempt completes.
    cli.run(&["claim", &id]).ok();
    let r = cli.run(&[
        "complete",
        &id,
        "--summary",
        "null check fixed; tests added",
    ]);
    assert_eq!(r.ok(), format!("Completed {id}\n"));

    let rs = runs(&cli, &id);
    assert_eq!(rs.len(), 2, "{rs:#?}");
    assert_eq!(rs[0]["outcome"], "blocked");
    assert_eq!(rs[0]["summary"], "review-required: fix the null check");
    assert_eq!(rs[0]["profile"], "coder");
    assert_eq!(rs[1]["outcome"], "completed");
    assert_eq!(rs[1]["summary"], "null check fixed; tests added");
    assert!(rs[0]["id"].as_i64() < rs[1]["id"].as_i64());

    let s = show(&cli, &id);
    assert_eq!(s["task"]["status"], "done");
    let kinds: Vec<&str> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let count = |k: &str| kinds.iter().filter(|x| **x == k).count();
    assert_eq!(count("claimed"), 2, "{kinds:?}");
    assert_eq!(
        (count("blocked"), count("unblocked"), count("completed")),
        (1, 1, 1),
        "{kinds:?}"
    );
    let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(
        pos("blocked") < pos("unblocked") && pos("unblocked") < pos("completed"),
        "{kinds:?}"
    );
    let blocked = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "blocked")
        .unwrap();
    assert_eq!(blocked["payload"]["kind"], "needs_input");
    assert_eq!(blocked["run_id"], rs[0]["id"]);
    let bodies: Vec<&str> = s["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "BLOCKED: review-required: fix the null check",
            "UNBLOCK: feedback is in the thread"
        ]
    );
    assert_eq!(s["latest_summary"], "null check fixed; tests added");
    cli.assert_invariants();
}

/// `reclaim` stops a host-local worker's whole process group before releasing the claim, and
/// records what it did in the `reclaimed` event.
#[test]
fn reclaim_terminates_the_host_local_worker_group() {
    use std::os::unix::process::CommandExt;
    let cli = Cli::new();
    let id = cli.create("long job", &["--assignee", "worker"]);
    let mut worker = std::process::Command::new("sh")
        .args(["-c", "sleep 300 & sleep 300 & wait"])
        .process_group(0)
        .spawn()
        .expect("spawn fake worker");
    let pid = worker.id() as i64;
    {
        let b = cli.board();
        let lock = format!(
            "{}:{}",
            hermes_kanban::kernel::hostname(),
            std::process::id()
        );
        let c = b.claim_task_as(&id, None, &lock).unwrap();
        b.set_worker_pid(&id, c.run_id, pid).unwrap();
    }
    let out = cli.run(&["reclaim", &id, "--reason", "hung"]);
    assert!(
        out.ok().contains(&format!("Reclaimed {id}")),
        "{}",
        out.stdout
    );
    let status = worker.wait().expect("wait worker");
    assert!(!status.success(), "the worker was not signalled: {status}");
    assert!(!hermes_kanban::process::pid_alive(pid));
    let show = cli.run(&["show", &id, "--json"]).json();
    let ev = show["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["kind"] == "reclaimed")
        .expect("reclaimed event")
        .clone();
    assert_eq!(ev["payload"]["manual"], true);
    assert_eq!(ev["payload"]["reason"], "hung");
    assert_eq!(ev["payload"]["prev_pid"], pid);
    assert_eq!(ev["payload"]["host_local"], true);
    assert_eq!(ev["payload"]["termination_attempted"], true);
    assert_eq!(ev["payload"]["terminated"], true);
    assert_eq!(show["task"]["status"], "ready");
    cli.assert_invariants();
}
