//! The MCP server driven by a real client: the Python `mcp` SDK (2.3.0, from PyPI) runs
//! `tests/python/mcp_client.py` against `hermes-kanban mcp` (stdio) and `hermes-kanban serve`
//! (streamable HTTP at /mcp), in both protocol generations (`mode="auto"` negotiates
//! 2026-07-28 through server/discover, `mode="legacy"` the 2025-11-25 initialize handshake).
//! SPEC §4, §8.
//!
//! A worker session works a task the kernel claimed — show, heartbeat, comment, create a
//! follow-up, complete with summary + metadata — with its scope coming from the worker env
//! (stdio) or from a run token in `Authorization: Bearer` (HTTP). The Python side asserts the
//! result shapes; this side then reads the database back through the CLI (`show --json`,
//! `runs --json`) and checks the kernel invariants. An orchestrator session (stdio without
//! `HERMES_KANBAN_TASK`, HTTP from loopback without a token) sees every tool and pages
//! `kanban_list` with its cursor. Every result must be a compact text block plus
//! `structuredContent`, both naming the board; every input schema must be in the portable
//! subset (Gemini / OpenAI); over HTTP the session DELETE after the run ended must be 200; a
//! worker may get its identity from `mcp --task/--run-id/--db` in a filtered environment.
//!
//! The interpreter comes from `HK_PYTHON`, which `scripts/test` exports after installing the
//! venv; without it these tests fail (they are not skipped).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::Cli;
use hermes_kanban::kernel::NewTask;
use serde_json::Value;

const WORKER_TOOLS: &[&str] = &[
    "kanban_show",
    "kanban_complete",
    "kanban_block",
    "kanban_heartbeat",
    "kanban_comment",
    "kanban_create",
    "kanban_link",
    "kanban_attach",
    "kanban_attachments",
    "kanban_attach_url",
    "kanban_schedule",
    "kanban_request_review",
    "kanban_request_changes",
];
const ORCHESTRATOR_ONLY: &[&str] = &["kanban_list", "kanban_unblock"];
/// The claim lock the harness claims with (stands in for the dispatcher's).
const LOCK: &str = "hk-test:worker-1";
const PYTHON_TIMEOUT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// The venv interpreter with `mcp==2.3.0`, from `HK_PYTHON`. Missing → the test fails.
fn python() -> PathBuf {
    match std::env::var_os("HK_PYTHON") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            assert!(
                p.exists(),
                "HK_PYTHON={} does not exist: run `bash scripts/test` (it creates target/pyenv \
                 with mcp==2.3.0 and exports HK_PYTHON)",
                p.display()
            );
            p
        }
        _ => panic!(
            "HK_PYTHON is not set. These tests drive the server with the Python `mcp` 2.3.0 SDK: \
             run `bash scripts/test` \
             (it installs target/pyenv and exports HK_PYTHON), or set \
             HK_PYTHON=$PWD/target/pyenv/bin/python yourself"
        ),
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/mcp_client.py")
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hermes-kanban")
}

fn tool_list(orchestrator: bool) -> String {
    let mut v: Vec<&str> = WORKER_TOOLS.to_vec();
    if orchestrator {
        v.extend_from_slice(ORCHESTRATOR_ONLY);
    }
    v.join(",")
}

/// Run the Python client with `args`, kill it after [`PYTHON_TIMEOUT`], and parse the JSON
/// report it prints on success.
fn run_client(home: &Path, args: &[String]) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(script())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start {} ({e}): run `bash scripts/test`",
            python().display()
        )
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait python") {
            break Some(s);
        }
        if start.elapsed() > PYTHON_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "python client timed out after {PYTHON_TIMEOUT:?}\nargs: {args:?}\nstdout: \
             {stdout}\nstderr: {stderr}"
        );
    };
    assert!(
        status.success(),
        "python client failed ({status})\nargs: {args:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let report: Value = last
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON report on stdout\nstdout: {stdout}\nstderr: {stderr}"));
    assert_eq!(report["ok"], true, "report: {report}");
    report
}

/// A `hermes-kanban serve` child on a free loopback port; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(cli: &Cli) -> Server {
        let mut last_log = String::new();
        for attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let log = cli.dir.path().join(format!("serve-{attempt}.log"));
            let f = std::fs::File::create(&log).expect("serve log");
            let child = cli
                .cmd(&["serve", "--bind", &addr.to_string()])
                .stdout(f.try_clone().expect("log fd"))
                .stderr(f)
                .spawn()
                .expect("spawn hermes-kanban serve");
            let mut srv = Server { child, addr, log };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if srv.healthy() {
                    return srv;
                }
                if srv.child.try_wait().ok().flatten().is_some() {
                    break; // lost the port race, or a startup error: retry, then report
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            last_log = srv.log_text();
        }
        panic!("hermes-kanban serve never became healthy; last log:\n{last_log}");
    }

    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = format!(
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.addr.port()
        );
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("ok\n")
    }

    fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A board with one task claimed by "the dispatcher" for profile `coder`.
struct Fixture {
    cli: Cli,
    task: String,
    run_id: i64,
}

impl Fixture {
    fn new(title: &str) -> Fixture {
        let cli = Cli::new();
        let board = cli.board();
        let task = board
            .create_task(NewTask {
                title: title.into(),
                body: Some("parse() drops the last field; fix it and add a test.".into()),
                assignee: Some("coder".into()),
                ..Default::default()
            })
            .expect("create task")
            .task
            .id;
        let claim = board
            .claim_task_as(&task, Some(3600), LOCK)
            .expect("claim task");
        assert_eq!(claim.lock, LOCK);
        Fixture {
            cli,
            task,
            run_id: claim.run_id,
        }
    }

    fn token(&self) -> String {
        self.cli
            .board()
            .mint_run_token(&self.task, self.run_id)
            .expect("mint run token")
    }

    /// The env a dispatcher gives a spawned worker (REF §10.2), for `hermes-kanban mcp`.
    fn worker_env(&self) -> Vec<(String, String)> {
        let mut env = self.base_env();
        env.extend([
            ("HERMES_KANBAN_TASK".into(), self.task.clone()),
            ("HERMES_KANBAN_RUN_ID".into(), self.run_id.to_string()),
            ("HERMES_KANBAN_CLAIM_LOCK".into(), LOCK.into()),
            ("HERMES_PROFILE".into(), "coder".into()),
        ]);
        env
    }

    fn base_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("HOME".into(), self.cli.dir.path().display().to_string()),
            ("HERMES_HOME".into(), self.cli.home().display().to_string()),
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("NO_COLOR".into(), "1".into()),
            ("TZ".into(), "UTC".into()),
        ];
        // On PostgreSQL the board is in the fixture's database, as a dispatcher passes it.
        if let Some(db) = &self.cli.pg {
            env.push(("HERMES_KANBAN_DATABASE_URL".into(), db.url.clone()));
        }
        env
    }

    fn stdio_args(&self, role: &str, mode: &str, env: &[(String, String)]) -> Vec<String> {
        let mut a: Vec<String> = [
            "--role",
            role,
            "--transport",
            "stdio",
            "--mode",
            mode,
            "--command",
            bin(),
            "--arg",
            "mcp",
            "--task",
            &self.task,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (k, v) in env {
            a.push("--env".into());
            a.push(format!("{k}={v}"));
        }
        a
    }

    fn http_args(&self, role: &str, mode: &str, url: &str, token: Option<&str>) -> Vec<String> {
        let mut a: Vec<String> = [
            "--role",
            role,
            "--transport",
            "http",
            "--mode",
            mode,
            "--url",
            url,
            "--task",
            &self.task,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(t) = token {
            a.extend(["--token".into(), t.into()]);
        }
        a
    }

    /// Run the worker lifecycle with `args`, then verify the board through the CLI.
    fn worker(&self, mut args: Vec<String>, transport: &str, mode: &str) -> Value {
        args.extend([
            "--run-id".into(),
            self.run_id.to_string(),
            "--expect-tools".into(),
            tool_list(false),
        ]);
        let report = run_client(self.cli.dir.path(), &args);
        assert_eq!(report["transport"], transport);
        assert_eq!(
            report["protocol_version"],
            if mode == "auto" {
                "2026-07-28"
            } else {
                "2025-11-25"
            },
            "report: {report}"
        );
        assert_eq!(report["run_id"], self.run_id, "report: {report}");
        self.verify_through_cli(&report);
        report
    }

    /// Everything the worker did, read back with `hermes-kanban show/runs --json`.
    fn verify_through_cli(&self, report: &Value) {
        let cli = &self.cli;
        let id = self.task.as_str();
        let summary = report["summary"].as_str().expect("summary in report");
        let metadata = &report["metadata"];
        let child = report["child_id"].as_str().expect("child_id in report");

        let shown = cli.run(&["show", id, "--json"]).json();
        let t = &shown["task"];
        assert_eq!(t["status"], "done", "task: {t}");
        assert!(t["completed_at"].is_i64(), "completed_at: {t}");
        assert_eq!(shown["latest_summary"], summary);
        assert_eq!(shown["children"], serde_json::json!([child]));

        let comments = shown["comments"].as_array().expect("comments");
        assert_eq!(comments.len(), 1, "comments: {comments:?}");
        assert_eq!(comments[0]["author"], "coder");
        assert_eq!(comments[0]["body"], "Found the bug in `parse()`; fixing.");

        let events = shown["events"].as_array().expect("events");
        let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
        let heartbeats: Vec<&Value> = events.iter().filter(|e| e["kind"] == "heartbeat").collect();
        assert_eq!(heartbeats.len(), 1, "events: {kinds:?}");
        assert_eq!(heartbeats[0]["payload"]["note"], "compiling, 40% done");
        assert_eq!(heartbeats[0]["run_id"], self.run_id);
        assert_eq!(
            kinds.iter().filter(|k| **k == "commented").count(),
            1,
            "events: {kinds:?}"
        );
        let completed: Vec<&Value> = events.iter().filter(|e| e["kind"] == "completed").collect();
        assert_eq!(completed.len(), 1, "events: {kinds:?}");
        assert_eq!(completed[0]["run_id"], self.run_id);
        assert_eq!(
            completed[0]["payload"]["verified_cards"],
            serde_json::json!([child])
        );
        // Nothing the refused calls tried reached the board.
        assert!(
            !kinds.iter().any(|k| *k == "blocked" || *k == "reclaimed"),
            "events: {kinds:?}"
        );

        let runs = cli.run(&["runs", id, "--json"]).json();
        let runs = runs.as_array().expect("runs array");
        assert_eq!(runs.len(), 1, "runs: {runs:?}");
        let r = &runs[0];
        assert_eq!(r["id"], self.run_id);
        assert_eq!(r["profile"], "coder");
        assert_eq!(r["outcome"], "completed", "run: {r}");
        assert_eq!(r["status"], "done", "run: {r}");
        assert_eq!(r["summary"], summary);
        assert_eq!(&r["metadata"], metadata, "run metadata");
        assert!(r["ended_at"].is_i64(), "run: {r}");

        let c = cli.run(&["show", child, "--json"]).json();
        assert_eq!(c["task"]["title"], "Review the parse() fix");
        assert_eq!(c["task"]["assignee"], "reviewer");
        assert_eq!(c["task"]["created_by"], "coder");
        assert_eq!(c["parents"], serde_json::json!([id]));
        // Created as todo (parent running: upstream ~0.22's dependency_wait says so); promoted
        // once the parent completed.
        assert_eq!(c["task"]["status"], "ready", "child: {}", c["task"]);
        let ckinds: Vec<&str> = c["events"]
            .as_array()
            .expect("child events")
            .iter()
            .filter_map(|e| e["kind"].as_str())
            // `serve`'s dispatcher ticks on every change: it may already have looked at the
            // promoted child and noted that no profile `reviewer` exists.
            .filter(|k| *k != "skipped_nonspawnable")
            .collect();
        assert_eq!(
            ckinds,
            ["created", "dependency_wait", "promoted"],
            "child events"
        );

        cli.assert_invariants();
    }
}

// ---------------------------------------------------------------------------------------------
// Worker over stdio (scope from HERMES_KANBAN_TASK / _RUN_ID / _CLAIM_LOCK / HERMES_PROFILE)
// ---------------------------------------------------------------------------------------------

#[test]
fn stdio_worker_lifecycle_auto() {
    let fx = Fixture::new("Fix the parser (stdio, auto)");
    let args = fx.stdio_args("worker", "auto", &fx.worker_env());
    let report = fx.worker(args, "stdio", "auto");
    assert!(
        report["steps"]
            .as_array()
            .unwrap()
            .contains(&"show-done".into())
    );
}

/// The worker identity carried by flags (`mcp --task ID --run-id N --db PATH`, on PostgreSQL
/// `mcp --task ID --run-id N --database-url URL --board SLUG`, as a `worker_command` template
/// or client config writes it) in the filtered environment agents give stdio servers: no
/// HERMES_HOME nor database URL, HOME elsewhere, and the literal `${HERMES_KANBAN_TASK}` a
/// client passes when the variable is unset, no HERMES_PROFILE (the server authors as the
/// task's assignee). The whole lifecycle works on the right board.
#[test]
fn stdio_worker_identity_from_flags_in_a_filtered_env() {
    let fx = Fixture::new("Fix the parser (stdio, flags)");
    let elsewhere = fx.cli.dir.path().join("agent-home");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let env: Vec<(String, String)> = vec![
        ("HOME".into(), elsewhere.display().to_string()),
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("HERMES_KANBAN_TASK".into(), "${HERMES_KANBAN_TASK}".into()),
    ];
    let mut args = fx.stdio_args("worker", "auto", &env);
    // The board: its file on SQLite; on PostgreSQL the database and the board's slug.
    let board: Vec<String> = match &fx.cli.pg {
        Some(db) => vec![
            "--database-url".into(),
            db.url.clone(),
            "--board".into(),
            "default".into(),
        ],
        None => vec!["--db".into(), fx.cli.db().display().to_string()],
    };
    let flags = [
        "--task".into(),
        fx.task.clone(),
        "--run-id".into(),
        fx.run_id.to_string(),
    ];
    for extra in flags.into_iter().chain(board) {
        args.push(format!("--arg={extra}"));
    }
    let report = fx.worker(args, "stdio", "auto");
    assert_eq!(report["boards"], serde_json::json!(["default"]), "{report}");
    assert!(
        !elsewhere.join(".hermes").exists(),
        "no board was created under the agent's HOME"
    );
}

#[test]
fn stdio_worker_lifecycle_legacy() {
    let fx = Fixture::new("Fix the parser (stdio, legacy)");
    let args = fx.stdio_args("worker", "legacy", &fx.worker_env());
    fx.worker(args, "stdio", "legacy");
}

// ---------------------------------------------------------------------------------------------
// Worker over HTTP (scope from `Authorization: Bearer <run token>`)
// ---------------------------------------------------------------------------------------------

fn http_worker(mode: &str) {
    let fx = Fixture::new(&format!("Fix the parser (http, {mode})"));
    let token = fx.token();
    let srv = Server::start(&fx.cli);
    let args = fx.http_args("worker", mode, &srv.url(), Some(&token));
    let report = fx.worker(args, "http", mode);
    // Every request of the session succeeded; once the run was over, its token got 401s.
    let ok_statuses = report["http_statuses"].as_array().expect("http_statuses");
    assert!(
        ok_statuses
            .iter()
            .all(|s| (200..300).contains(&s.as_i64().unwrap_or(0))),
        "report: {report}"
    );
    let refused = report["expired_token_rejected"]["http_statuses"]
        .as_array()
        .expect("expired_token_rejected");
    assert!(
        !refused.is_empty() && refused.iter().all(|s| s == 401),
        "report: {report}"
    );
    // Closing the session after the run ended: DELETE answered 200, never 401 or 202 (the
    // 2025-11-25 handshake has a session to close; 2026-07-28 is sessionless).
    let deletes = report["delete_statuses"]
        .as_array()
        .expect("delete_statuses");
    assert!(
        (mode == "auto" || !deletes.is_empty()) && deletes.iter().all(|s| s == 200),
        "DELETE /mcp statuses: {report}"
    );
    let log = srv.log_text();
    assert!(!log.contains("panicked"), "serve log:\n{log}");
}

#[test]
fn http_worker_lifecycle_auto() {
    http_worker("auto");
}

#[test]
fn http_worker_lifecycle_legacy() {
    http_worker("legacy");
}

// ---------------------------------------------------------------------------------------------
// Orchestrator: HTTP from loopback without a token, and stdio without HERMES_KANBAN_TASK
// ---------------------------------------------------------------------------------------------

#[test]
fn orchestrator_sessions_see_every_tool() {
    let fx = Fixture::new("Plan the release");
    let before = fx.cli.run(&["show", &fx.task, "--json"]).json();
    let srv = Server::start(&fx.cli);
    let mut runs = vec![];
    for mode in ["auto", "legacy"] {
        runs.push((
            "http",
            mode,
            fx.http_args("orchestrator", mode, &srv.url(), None),
        ));
    }
    runs.push((
        "stdio",
        "auto",
        fx.stdio_args("orchestrator", "auto", &fx.base_env()),
    ));
    for (transport, mode, mut args) in runs {
        args.extend(["--expect-tools".into(), tool_list(true)]);
        let report = run_client(fx.cli.dir.path(), &args);
        assert_eq!(report["transport"], transport);
        assert_eq!(
            report["tools"].as_array().unwrap().len(),
            WORKER_TOOLS.len() + ORCHESTRATOR_ONLY.len()
        );
        assert_eq!(report["listed"], serde_json::json!([fx.task]));
        assert_eq!(report["status"], "running", "{transport}/{mode}: {report}");
        assert_eq!(
            report["protocol_version"],
            if mode == "auto" {
                "2026-07-28"
            } else {
                "2025-11-25"
            }
        );
    }
    // Reading changed nothing (same task, same events), and the board is consistent.
    let after = fx.cli.run(&["show", &fx.task, "--json"]).json();
    assert_eq!(before["task"], after["task"]);
    assert_eq!(before["events"], after["events"]);
    fx.cli.assert_invariants();
}
