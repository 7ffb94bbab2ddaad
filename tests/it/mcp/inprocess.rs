//! The MCP server driven by a real rmcp client: in process over `tokio::io::duplex` (every
//! tool's happy path and result shape, gating, instructions and prompts, error results that
//! leave the database untouched), the real `hermes-kanban mcp` binary over stdio (malformed
//! JSON-RPC), and the HTTP server's auth layer (run tokens, loopback, admin token, Host and
//! Origin checks, session DELETE) through a small hand-written HTTP/1.1 client. Results are
//! checked lean (a text form that is not the JSON again, both naming the board), and the
//! invariant checker runs on the board after every scenario (`Drop for Fx`). The stdio binary
//! is also driven with identity flags, unexpanded placeholders and a missing board.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use hermes_kanban::kernel::{
    BlockKind, BlockRequest, Board, Completion, Env, InitialStatus, NewTask, Status, WorkspaceKind,
};
use hermes_kanban::mcp::{
    GUIDANCE, KanbanMcp, LineTransport, McpState, ORCHESTRATOR, ORCHESTRATOR_TOOLS, WORKER_TOOLS,
};
use hermes_kanban::web::{ServeConfig, router};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ErrorCode, GetPromptRequestParams, ProtocolVersion,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RunningService, ServiceError};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const LOCK: &str = "testhost:4242";
const SESSION: &str = "sess-0042";

// ------------------------------------------------------------------------------------------
// Fixture: a temp HERMES_HOME, the kernel on it, and envs for workers and orchestrators.
// ------------------------------------------------------------------------------------------

struct Fx {
    dir: TempDir,
    env: Env,
    board: Board,
    /// The fixture's PostgreSQL database (dropped last), `None` on SQLite.
    _pg: Option<crate::helpers::TestDb>,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().expect("tempdir");
        let pg = crate::helpers::TestDb::for_fixture();
        let env = crate::helpers::board::fixture_env(dir.path(), pg.as_ref());
        let board = crate::helpers::board::open_board(&env, None);
        Fx {
            dir,
            env,
            board,
            _pg: pg,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn task(&self, title: &str) -> String {
        self.create(NewTask {
            title: title.into(),
            assignee: Some("worker".into()),
            ..Default::default()
        })
    }

    fn create(&self, new: NewTask) -> String {
        self.board.create_task(new).expect("create").task.id
    }

    /// A task claimed the way the dispatcher does (explicit lock); returns (id, run id).
    fn running(&self, title: &str) -> (String, i64) {
        let id = self.task(title);
        let c = self
            .board
            .claim_task_as(&id, Some(60), LOCK)
            .expect("claim");
        (id, c.run_id)
    }

    /// A second board `lab` in this home and a task on it (assigned to `assignee`): the board
    /// and the task's id.
    fn lab_task(&self, title: &str, assignee: &str) -> (Board, String) {
        crate::helpers::board::home(&self.env)
            .create(
                "lab",
                hermes_kanban::kernel::NewBoard::default(),
                self.board.now(),
            )
            .unwrap();
        let lab = Board::open(&self.env, Some("lab")).unwrap();
        let id = lab
            .create_task(NewTask {
                title: title.into(),
                assignee: Some(assignee.into()),
                ..Default::default()
            })
            .unwrap()
            .task
            .id;
        (lab, id)
    }

    fn orchestrator_env(&self) -> Env {
        self.env.clone()
    }

    /// The env a dispatcher-spawned worker of `task`/`run` sees.
    fn worker_env(&self, task: &str, run: i64) -> Env {
        self.env
            .clone()
            .with("HERMES_KANBAN_TASK", task)
            .with("HERMES_KANBAN_RUN_ID", run.to_string())
            .with("HERMES_KANBAN_CLAIM_LOCK", LOCK)
            .with("HERMES_PROFILE", "worker")
            .with("HERMES_SESSION_ID", SESSION)
    }

    fn dump(&self) -> Vec<String> {
        self.board.snapshot().expect("snapshot")
    }
}

/// After every scenario (that did not already fail) the invariants hold on this board and on
/// every other board of the home (`--board lab`, boards made through the tools).
impl Drop for Fx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        crate::helpers::assert_invariants(&self.board);
        crate::helpers::check_home(&self.env);
    }
}

// ------------------------------------------------------------------------------------------
// An rmcp client connected to an in-process server over a duplex pipe.
// ------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct TestClient;
impl ClientHandler for TestClient {}

struct Session {
    client: RunningService<RoleClient, TestClient>,
    server: tokio::task::JoinHandle<Result<(), String>>,
}

fn server_task(
    state: std::sync::Arc<McpState>,
    io: tokio::io::DuplexStream,
) -> tokio::task::JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        // The framing `hermes-kanban mcp` uses on stdin/stdout.
        let (r, w) = tokio::io::split(io);
        let running = KanbanMcp::new(state)
            .serve(LineTransport::new(r, w))
            .await
            .map_err(|e| e.to_string())?;
        running.waiting().await.map_err(|e| e.to_string())?;
        Ok(())
    })
}

async fn connect(env: Env, only: Option<&[&str]>) -> Session {
    let only = only.map(|o| o.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
    let state = McpState::new(crate::helpers::board::home(&env), None, only, true);
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let server = server_task(state, server_io);
    let client = TestClient.serve(client_io).await.expect("client handshake");
    Session { client, server }
}

fn args(v: Value) -> rmcp::model::JsonObject {
    match v {
        Value::Object(m) => m,
        other => panic!("arguments must be an object, got {other}"),
    }
}

fn text_of(r: &CallToolResult) -> String {
    assert_eq!(r.content.len(), 1, "one content block: {r:?}");
    r.content[0].as_text().expect("text content").text.clone()
}

impl Session {
    async fn call_raw(&self, tool: &str, a: Value) -> Result<CallToolResult, ServiceError> {
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args(a));
        tokio::time::timeout(Duration::from_secs(20), self.client.call_tool(params))
            .await
            .unwrap_or_else(|_| panic!("{tool}: no reply within 20 s"))
    }

    /// A successful call: not an error, a compact text form and the JSON as
    /// structuredContent, both naming the board; returns the JSON without `board`.
    async fn ok(&self, tool: &str, a: Value) -> Value {
        self.ok_on(tool, a).await.0
    }

    /// [`Session::ok`], also returning the board the result names and its text form.
    async fn ok_on(&self, tool: &str, a: Value) -> (Value, String, String) {
        let r = self
            .call_raw(tool, a.clone())
            .await
            .unwrap_or_else(|e| panic!("{tool}({a}): JSON-RPC error {e}"));
        let text = text_of(&r);
        assert_ne!(r.is_error, Some(true), "{tool}({a}) failed: {text}");
        assert!(
            serde_json::from_str::<Value>(&text).is_err(),
            "{tool}: the text form is not the JSON again: {text}"
        );
        let mut structured = r.structured_content.clone().expect("structuredContent");
        let board = structured
            .as_object_mut()
            .and_then(|m| m.remove("board"))
            .and_then(|b| b.as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("{tool}: structuredContent names no board: {structured}"));
        assert!(
            text.contains(&format!("board {board}")),
            "{tool}: the text form names the board {board}: {text}"
        );
        (structured, board, text)
    }

    /// A failed call: `isError: true`, no structured content, a single line of text.
    async fn err(&self, tool: &str, a: Value) -> String {
        let r = self
            .call_raw(tool, a.clone())
            .await
            .unwrap_or_else(|e| panic!("{tool}({a}): expected isError, got JSON-RPC error {e}"));
        let text = text_of(&r);
        assert_eq!(
            r.is_error,
            Some(true),
            "{tool}({a}) should fail, got {text}"
        );
        assert!(
            r.structured_content.is_none(),
            "{tool}: error has no structuredContent"
        );
        assert!(
            !text.contains('\n'),
            "{tool}: one-line message, got {text:?}"
        );
        assert!(!text.is_empty());
        text
    }

    /// A call refused at the protocol level (hidden tool): the JSON-RPC error.
    async fn rpc_err(&self, tool: &str, a: Value) -> rmcp::ErrorData {
        match self.call_raw(tool, a).await {
            Err(ServiceError::McpError(e)) => e,
            Ok(r) => panic!("{tool}: expected a JSON-RPC error, got a tool result {r:?}"),
            Err(e) => panic!("{tool}: expected a JSON-RPC error, got {e}"),
        }
    }

    async fn tool_names(&self) -> BTreeSet<String> {
        self.client
            .list_all_tools()
            .await
            .expect("tools/list")
            .into_iter()
            .map(|t| t.name.to_string())
            .collect()
    }

    fn instructions(&self) -> String {
        self.client
            .peer_info()
            .expect("peer info")
            .instructions
            .clone()
            .unwrap_or_default()
    }

    async fn close(self) {
        let _ = self.client.cancel().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
    }
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

fn owned(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ==========================================================================================
// 2. Gating, instructions, prompts, server info
// ==========================================================================================

#[tokio::test(flavor = "multi_thread")]
async fn worker_sees_the_worker_tools_and_the_worker_guidance() {
    let fx = Fx::new();
    let (id, run) = fx.running("gated");
    let s = connect(fx.worker_env(&id, run), None).await;
    assert_eq!(s.tool_names().await, owned(WORKER_TOOLS));
    assert_eq!(WORKER_TOOLS.len(), 13);
    assert_eq!(s.instructions(), GUIDANCE);
    let info = s.client.peer_info().unwrap();
    let server = info.server_info.as_ref().expect("server_info");
    assert_eq!(server.name, "hermes-kanban");
    assert_eq!(server.version, env!("CARGO_PKG_VERSION"));

    // Hidden tools are a protocol error, not a tool result, and change nothing.
    let before = fx.dump();
    for tool in ORCHESTRATOR_TOOLS {
        let e = s.rpc_err(tool, json!({"task_id": id})).await;
        assert_eq!(e.code, ErrorCode::INVALID_PARAMS, "{tool}: {e:?}");
        assert!(
            e.message.contains("tool not found"),
            "{tool}: {}",
            e.message
        );
    }
    let e = s.rpc_err("kanban_nope", json!({})).await;
    assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
    assert_eq!(fx.dump(), before);
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orchestrator_sees_every_tool_and_the_orchestrator_guidance() {
    let fx = Fx::new();
    let s = connect(fx.orchestrator_env(), None).await;
    let all: BTreeSet<String> = WORKER_TOOLS
        .iter()
        .chain(ORCHESTRATOR_TOOLS)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(all.len(), 15);
    assert_eq!(s.tool_names().await, all);
    assert_eq!(s.instructions(), ORCHESTRATOR);
    let info = s.client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "hermes-kanban");
    assert_eq!(
        info.server_info.as_ref().unwrap().version,
        env!("CARGO_PKG_VERSION")
    );

    // readOnlyHint on the three reading tools only.
    for t in s.client.list_all_tools().await.unwrap() {
        let ro = t
            .annotations
            .as_ref()
            .and_then(|a| a.read_only_hint)
            .unwrap_or(false);
        let want = matches!(
            t.name.as_ref(),
            "kanban_show" | "kanban_list" | "kanban_attachments"
        );
        assert_eq!(ro, want, "readOnlyHint of {}", t.name);
    }
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_narrowing_lists_and_accepts_only_the_named_tools() {
    let fx = Fx::new();
    let t = fx.task("narrow");
    let s = connect(
        fx.orchestrator_env(),
        Some(&["kanban_show", "kanban_list", "kanban_comment"]),
    )
    .await;
    assert_eq!(
        s.tool_names().await,
        owned(&["kanban_comment", "kanban_list", "kanban_show"])
    );
    s.ok("kanban_show", json!({"task_id": t})).await;
    let before = fx.dump();
    let e = s
        .rpc_err("kanban_complete", json!({"task_id": t, "summary": "x"}))
        .await;
    assert!(e.message.contains("tool not found"), "{}", e.message);
    assert_eq!(fx.dump(), before);
    s.close().await;

    // In a worker, narrowing cannot add an orchestrator tool.
    let (id, run) = fx.running("narrow worker");
    let s = connect(
        fx.worker_env(&id, run),
        Some(&["kanban_show", "kanban_list"]),
    )
    .await;
    assert_eq!(s.tool_names().await, owned(&["kanban_show"]));
    s.rpc_err("kanban_list", json!({})).await;
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prompts_list_and_get_return_both_guidance_texts() {
    let fx = Fx::new();
    let s = connect(fx.orchestrator_env(), None).await;
    let prompts: BTreeSet<String> = s
        .client
        .list_all_prompts()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name.to_string())
        .collect();
    assert_eq!(prompts, owned(&["kanban-guidance", "kanban-orchestrator"]));
    for (name, text) in [
        ("kanban-guidance", GUIDANCE),
        ("kanban-orchestrator", ORCHESTRATOR),
    ] {
        let r = s
            .client
            .get_prompt(GetPromptRequestParams::new(name))
            .await
            .unwrap();
        assert_eq!(r.messages.len(), 1, "{name}");
        let got = r.messages[0].content.as_text().expect("text").text.clone();
        assert_eq!(got, text, "{name}");
    }
    let e = s
        .client
        .get_prompt(GetPromptRequestParams::new("kanban-nope"))
        .await;
    assert!(matches!(e, Err(ServiceError::McpError(_))), "{e:?}");
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_discovery_first_client_gets_the_same_scope() {
    // The 2026-07-28 lifecycle (server/discover, no initialize) must scope the same way.
    let fx = Fx::new();
    let (id, run) = fx.running("discover");
    let state = McpState::new(
        crate::helpers::board::home(&fx.worker_env(&id, run)),
        None,
        None,
        true,
    );
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let server = server_task(state, server_io);
    let client = TestClient
        .serve_with_lifecycle(
            client_io,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("discover handshake");
    let s = Session { client, server };
    assert_eq!(s.instructions(), GUIDANCE);
    assert_eq!(s.tool_names().await, owned(WORKER_TOOLS));
    let v = s.ok("kanban_show", json!({})).await;
    assert_eq!(v["task"]["id"], json!(id));
    s.close().await;
}

// ==========================================================================================
// 1. Every tool's happy path, with the result shapes of REF §13.2
// ==========================================================================================

const SHOW_TASK_KEYS: &[&str] = &[
    "last_failure_error",
    "id",
    "title",
    "body",
    "assignee",
    "status",
    "tenant",
    "priority",
    "workspace_kind",
    "workspace_path",
    "created_by",
    "created_at",
    "started_at",
    "completed_at",
    "result",
    "current_run_id",
    "model_override",
    "block_kind",
];

#[tokio::test(flavor = "multi_thread")]
async fn show_defaults_to_the_workers_own_task_with_its_context() {
    let fx = Fx::new();
    let parent = fx.task("Gather the inputs");
    fx.board
        .complete_task(Completion {
            task_id: parent.clone(),
            summary: Some("inputs are in /data/in".into()),
            ..Default::default()
        })
        .unwrap();
    let id = fx.create(NewTask {
        title: "Write the report".into(),
        body: Some("Use the inputs; keep it short.".into()),
        assignee: Some("worker".into()),
        parents: vec![parent.clone()],
        tenant: Some("acme".into()),
        priority: 3,
        ..Default::default()
    });
    fx.board
        .add_comment(&id, "alice", "please cite sources")
        .unwrap();
    let run = fx.board.claim_task_as(&id, Some(60), LOCK).unwrap().run_id;
    let s = connect(fx.worker_env(&id, run), None).await;

    let (v, board, text) = s.ok_on("kanban_show", json!({})).await;
    assert_eq!(board, "default");
    assert_eq!(
        keys(&v),
        set(&[
            "task",
            "parents",
            "unsatisfied_parents",
            "children",
            "events",
            "runs",
            "worker_context"
        ])
    );
    assert_eq!(v["unsatisfied_parents"], json!([]), "the parent is done");
    // Lean: unset fields are omitted; the body and comments live in worker_context only.
    let task_keys = keys(&v["task"]);
    assert!(task_keys.is_subset(&set(SHOW_TASK_KEYS)), "{task_keys:?}");
    assert!(task_keys.is_superset(&set(&["id", "title", "status", "assignee", "priority"])));
    let t = &v["task"];
    assert_eq!(t["id"], json!(id));
    assert_eq!(t["title"], "Write the report");
    assert!(t.get("body").is_none(), "the body is not sent twice");
    assert!(t.get("completed_at").is_none(), "null fields are omitted");
    assert_eq!(t["status"], "running");
    assert_eq!(t["tenant"], "acme");
    assert_eq!(t["priority"], 3);
    assert_eq!(t["current_run_id"], json!(run));
    assert_eq!(v["parents"], json!([parent]));
    assert_eq!(v["children"], json!([]));
    let whole = v.to_string();
    for once in ["Use the inputs; keep it short.", "please cite sources"] {
        assert_eq!(whole.matches(once).count(), 1, "{once:?} once in {whole}");
    }
    // The text form is the worker context plus the links, and names the board.
    assert!(
        text.starts_with(&format!("# Kanban task {id}: Write the report")),
        "{text}"
    );
    assert!(text.contains("please cite sources"), "{text}");
    assert!(text.contains(&format!("Parents: {parent}")), "{text}");
    assert_eq!(text.matches("Use the inputs; keep it short.").count(), 1);
    assert!(text.len() < 2 * v["worker_context"].as_str().unwrap().len() + 200);
    let events = v["events"].as_array().unwrap();
    assert!(!events.is_empty());
    for e in events {
        assert!(keys(e).is_subset(&set(&["kind", "payload", "created_at", "run_id"])));
        assert!(keys(e).contains("kind") && keys(e).contains("created_at"));
    }
    assert!(events.iter().any(|e| e["kind"] == "claimed"));
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert!(
        keys(&runs[0]).is_subset(&set(&[
            "id",
            "profile",
            "status",
            "outcome",
            "summary",
            "error",
            "metadata",
            "started_at",
            "ended_at"
        ])),
        "{}",
        runs[0]
    );
    assert!(runs[0].get("ended_at").is_none(), "an open run has no end");
    assert_eq!(runs[0]["id"], json!(run));
    let ctx = v["worker_context"].as_str().unwrap();
    assert_eq!(ctx, fx.board.build_worker_context(&id).unwrap());
    assert!(ctx.contains("Write the report"), "{ctx}");
    assert!(
        ctx.contains("inputs are in /data/in"),
        "parent hand-off: {ctx}"
    );
    assert!(ctx.contains("please cite sources"), "comment: {ctx}");

    // Reading another task is allowed to a worker; so is an explicit own id.
    let other = s.ok("kanban_show", json!({"task_id": parent})).await;
    assert_eq!(other["task"]["status"], "done");
    assert_eq!(other["children"], json!([id]));
    assert_eq!(
        s.ok("kanban_show", json!({"task_id": id})).await["task"]["id"],
        json!(id)
    );
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn show_keeps_only_the_last_fifty_events() {
    let fx = Fx::new();
    let (id, run) = fx.running("chatty");
    for i in 0..60 {
        fx.board
            .heartbeat_worker(&id, Some(&format!("beat {i}")), Some(run))
            .unwrap();
    }
    let s = connect(fx.orchestrator_env(), None).await;
    let v = s.ok("kanban_show", json!({"task_id": id})).await;
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 50);
    assert_eq!(events[49]["payload"]["note"], "beat 59");
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn complete_records_the_handoff_and_stamps_the_worker_session() {
    let fx = Fx::new();
    let (id, run) = fx.running("ship it");
    let s = connect(fx.worker_env(&id, run), None).await;
    // A card this worker created (created_by = its profile) is a verified created card.
    let child = s
        .ok(
            "kanban_create",
            json!({"title": "Review the change", "assignee": "reviewer", "parents": [id]}),
        )
        .await["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = s
        .ok(
            "kanban_complete",
            json!({
                "summary": "Shipped the parser; tests pass.",
                "metadata": {"changed_files": ["src/parse.rs"], "tests": {"ran": 12}},
                "result": "parser v2",
                "created_cards": [child],
                "artifacts": "/abs/out/report.md",
            }),
        )
        .await;
    assert_eq!(keys(&v), set(&["ok", "task_id", "run_id"]));
    assert_eq!(v, json!({"ok": true, "task_id": id, "run_id": run}));

    let t = fx.board.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Done);
    assert_eq!(t.result.as_deref(), Some("parser v2"));
    let r = fx.board.get_run(run).unwrap();
    assert_eq!(r.outcome.as_deref(), Some("completed"));
    assert_eq!(
        r.summary.as_deref(),
        Some("Shipped the parser; tests pass.")
    );
    assert_eq!(
        r.metadata.unwrap(),
        json!({
            "changed_files": ["src/parse.rs"],
            "tests": {"ran": 12},
            "worker_session_id": SESSION,
            "artifacts": ["/abs/out/report.md"],
        })
    );
    let completed = fx
        .board
        .list_events(&id, None)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "completed")
        .expect("completed event");
    assert_eq!(completed.payload.unwrap()["verified_cards"], json!([child]));
    assert_eq!(completed.run_id, Some(run));
    // The child was promoted by the completion.
    assert_eq!(fx.board.get_task(&child).unwrap().status, Status::Ready);
    s.close().await;
}

/// `metadata` sent as a string holding a JSON object (a common model mistake) is accepted;
/// a string holding anything else is refused, saying exactly that, and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn complete_accepts_metadata_as_a_string_holding_an_object() {
    let fx = Fx::new();
    let (id, run) = fx.running("stringly");
    let s = connect(fx.worker_env(&id, run), None).await;
    let before = fx.dump();
    let e = s
        .err(
            "kanban_complete",
            json!({"summary": "s", "metadata": "[1, 2]"}),
        )
        .await;
    assert!(e.contains("does not hold a JSON object"), "{e}");
    assert_unchanged(&fx, &before, &e);
    let v = s
        .ok(
            "kanban_complete",
            json!({"summary": "s", "metadata": "{\"tests\": 3}", "created_cards": null}),
        )
        .await;
    assert_eq!(v["run_id"], json!(run));
    let r = &fx.board.list_runs(&id, None).unwrap()[0];
    assert_eq!(r.metadata.as_ref().unwrap()["tests"], 3);
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_orchestrator_completes_any_task_without_a_session_stamp() {
    let fx = Fx::new();
    let id = fx.task("never claimed");
    let env = fx.orchestrator_env().with("HERMES_SESSION_ID", SESSION);
    let s = connect(env, None).await;
    let v = s
        .ok(
            "kanban_complete",
            json!({"task_id": id, "result": "done by hand", "created_cards": [], "metadata": null}),
        )
        .await;
    let run = v["run_id"].as_i64().expect("a synthesized run");
    assert_eq!(v, json!({"ok": true, "task_id": id, "run_id": run}));
    let r = fx.board.get_run(run).unwrap();
    assert_eq!(r.summary.as_deref(), Some("done by hand"));
    assert_eq!(r.metadata, None, "no worker_session_id outside a worker");
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn block_lands_where_each_kind_says() {
    let fx = Fx::new();
    let s = connect(fx.orchestrator_env(), None).await;
    for (kind, status) in [
        (Some("dependency"), "todo"),
        (Some("needs_input"), "blocked"),
        (Some("capability"), "blocked"),
        (Some("transient"), "blocked"),
        (None, "blocked"),
    ] {
        let id = fx.task(&format!("block {kind:?}"));
        let mut a = json!({"task_id": id, "reason": "which region?"});
        if let Some(k) = kind {
            a["kind"] = json!(k);
        }
        let v = s.ok("kanban_block", a).await;
        assert_eq!(
            keys(&v),
            set(&["ok", "task_id", "run_id", "status", "block_kind"])
        );
        assert_eq!(v["ok"], true);
        assert_eq!(v["task_id"], json!(id));
        assert_eq!(v["status"], status, "{kind:?}");
        assert_eq!(v["block_kind"], json!(kind), "{kind:?}");
        assert!(v["run_id"].is_i64(), "a reason synthesizes a run: {v}");
        let t = fx.board.get_task(&id).unwrap();
        assert_eq!(t.status.as_str(), status);
        assert_eq!(t.block_kind.as_deref(), kind);
    }
    s.close().await;

    // A worker blocks its own running task (default task id): its run is closed.
    let (id, run) = fx.running("needs a human");
    let s = connect(fx.worker_env(&id, run), None).await;
    let v = s
        .ok(
            "kanban_block",
            json!({"reason": "need the API key", "kind": "capability"}),
        )
        .await;
    assert_eq!(
        v,
        json!({"ok": true, "task_id": id, "run_id": run, "status": "blocked",
            "block_kind": "capability"})
    );
    let r = fx.board.get_run(run).unwrap();
    assert_eq!(r.outcome.as_deref(), Some("blocked"));
    assert!(r.ended_at.is_some());
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_extends_the_claim_with_the_dispatchers_lock() {
    let fx = Fx::new();
    let (id, run) = fx.running("long build");
    let before = fx.board.get_task(&id).unwrap();
    let s = connect(fx.worker_env(&id, run), None).await;
    let v = s.ok("kanban_heartbeat", json!({"note": "compiling"})).await;
    assert_eq!(v, json!({"ok": true, "task_id": id}));
    let after = fx.board.get_task(&id).unwrap();
    // Claimed with a 60 s TTL; a heartbeat extends it by the default (900 s).
    assert!(
        after.claim_expires.unwrap() >= before.claim_expires.unwrap() + 800,
        "{:?} -> {:?}",
        before.claim_expires,
        after.claim_expires
    );
    assert_eq!(after.claim_lock.as_deref(), Some(LOCK));
    assert!(after.last_heartbeat_at.is_some());
    let run_row = fx.board.get_run(run).unwrap();
    assert_eq!(run_row.claim_expires, after.claim_expires);
    assert!(run_row.last_heartbeat_at.is_some());
    let hb = fx
        .board
        .list_events(&id, None)
        .unwrap()
        .into_iter()
        .rfind(|e| e.kind == "heartbeat")
        .expect("heartbeat event");
    assert_eq!(hb.payload, Some(json!({"note": "compiling"})));
    assert_eq!(hb.run_id, Some(run));
    // Without a note, and with an explicit own id.
    let v = s.ok("kanban_heartbeat", json!({"task_id": id})).await;
    assert_eq!(v, json!({"ok": true, "task_id": id}));
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn comment_author_is_the_profile_and_never_the_callers_choice() {
    let fx = Fx::new();
    let (id, run) = fx.running("mine");
    let other = fx.task("someone else's");
    let cases = [
        (
            fx.worker_env(&id, run).with("HERMES_PROFILE", "alice"),
            "alice",
        ),
        (fx.worker_env(&id, run).without("HERMES_PROFILE"), "worker"),
        (fx.orchestrator_env(), "orchestrator"),
        (fx.orchestrator_env().with("HERMES_PROFILE", "boss"), "boss"),
    ];
    for (env, author) in cases {
        let s = connect(env, None).await;
        // A worker may comment on any task; an `author` argument is ignored.
        let v = s
            .ok(
                "kanban_comment",
                json!({"task_id": other, "body": format!("hi from {author}"), "author": "mallory"}),
            )
            .await;
        assert_eq!(keys(&v), set(&["ok", "task_id", "comment_id"]));
        assert_eq!(v["ok"], true);
        assert_eq!(v["task_id"], json!(other));
        let cid = v["comment_id"].as_i64().unwrap();
        let c = fx.board.list_comments(&other).unwrap();
        let c = c.iter().find(|c| c.id == cid).expect("stored comment");
        assert_eq!(c.author, author);
        assert_eq!(c.body, format!("hi from {author}"));
        s.close().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_takes_every_parameter() {
    let fx = Fx::new();
    let parent = fx.task("parent");
    let ws = fx.path("ws");
    let env = fx
        .orchestrator_env()
        .with("HERMES_TENANT", "acme")
        .with("HERMES_SESSION_ID", SESSION);
    let s = connect(env, None).await;
    let a = json!({
        "title": "Port the parser",
        "assignee": "coder",
        "body": "Port it; keep the tests green.",
        "parents": parent,
        "priority": 5,
        "workspace_kind": "dir",
        "workspace_path": ws.to_string_lossy(),
        "project": "proj-1",
        "triage": "no",
        "idempotency_key": "port-parser",
        "max_runtime_seconds": 600,
        "initial_status": "running",
        "skills": "rust-dev",
        "goal_mode": "yes",
        "goal_max_turns": 7,
    });
    let v = s.ok("kanban_create", a.clone()).await;
    assert_eq!(keys(&v), set(&["ok", "task_id", "status", "subscribed"]));
    let id = v["task_id"].as_str().unwrap().to_string();
    assert_eq!(
        v,
        json!({"ok": true, "task_id": id, "status": "todo", "subscribed": false})
    );
    let t = fx.board.get_task(&id).unwrap();
    assert_eq!(t.title, "Port the parser");
    assert_eq!(t.body.as_deref(), Some("Port it; keep the tests green."));
    assert_eq!(t.assignee.as_deref(), Some("coder"));
    assert_eq!(
        t.tenant.as_deref(),
        Some("acme"),
        "tenant from HERMES_TENANT"
    );
    assert_eq!(t.priority, 5);
    assert_eq!(t.workspace_kind, "dir");
    assert_eq!(t.workspace_path.as_deref(), Some(&*ws.to_string_lossy()));
    assert_eq!(t.project_id.as_deref(), Some("proj-1"));
    assert_eq!(t.idempotency_key.as_deref(), Some("port-parser"));
    assert_eq!(t.max_runtime_seconds, Some(600));
    assert_eq!(t.skills, vec!["rust-dev".to_string()]);
    assert!(t.goal_mode);
    assert_eq!(t.goal_max_turns, Some(7));
    assert_eq!(t.session_id.as_deref(), Some(SESSION));
    assert_eq!(t.created_by.as_deref(), Some("orchestrator"));
    assert_eq!(fx.board.parents(&id).unwrap(), vec![parent.clone()]);

    // Same idempotency key: the same task, nothing new.
    let again = s.ok("kanban_create", a).await;
    assert_eq!(again["task_id"], json!(id));

    // Explicit tenant wins; triage / blocked initial states; list forms.
    let v = s
        .ok(
            "kanban_create",
            json!({"title": "Triage me", "assignee": "coder", "triage": true, "tenant": "beta",
                   "skills": ["a-skill", "b-skill"], "parents": []}),
        )
        .await;
    assert_eq!(v["status"], "triage");
    let t = fx.board.get_task(v["task_id"].as_str().unwrap()).unwrap();
    assert_eq!(t.tenant.as_deref(), Some("beta"));
    assert_eq!(t.skills, vec!["a-skill".to_string(), "b-skill".to_string()]);
    assert!(!t.goal_mode);
    let v = s
        .ok(
            "kanban_create",
            json!({"title": "Hold me", "assignee": "coder", "initial_status": "blocked"}),
        )
        .await;
    assert_eq!(v["status"], "blocked");
    let v = s
        .ok("kanban_create", json!({"title": "Go", "assignee": "coder"}))
        .await;
    assert_eq!(v["status"], "ready");
    let t = fx.board.get_task(v["task_id"].as_str().unwrap()).unwrap();
    assert_eq!(
        t.workspace_kind, "scratch",
        "an orchestrator's task inherits nothing"
    );
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workers_child_inherits_its_dir_workspace() {
    let fx = Fx::new();
    let ws = fx.path("repo");
    let id = fx.create(NewTask {
        title: "parent in a dir".into(),
        assignee: Some("worker".into()),
        workspace_kind: Some(WorkspaceKind::Dir),
        workspace_path: Some(ws.to_string_lossy().into_owned()),
        project_id: Some("proj-9".into()),
        ..Default::default()
    });
    let run = fx.board.claim_task_as(&id, Some(60), LOCK).unwrap().run_id;
    let s = connect(
        fx.worker_env(&id, run).with("HERMES_PROFILE", "planner"),
        None,
    )
    .await;
    let v = s
        .ok(
            "kanban_create",
            json!({"title": "follow-up", "assignee": "coder", "parents": [id]}),
        )
        .await;
    assert_eq!(v["status"], "todo");
    let child = fx.board.get_task(v["task_id"].as_str().unwrap()).unwrap();
    assert_eq!(child.workspace_kind, "dir");
    assert_eq!(
        child.workspace_path.as_deref(),
        Some(&*ws.to_string_lossy())
    );
    assert_eq!(child.project_id.as_deref(), Some("proj-9"));
    assert_eq!(child.created_by.as_deref(), Some("planner"));
    assert_eq!(child.session_id.as_deref(), Some(SESSION));

    // An explicit workspace is kept as given.
    let v = s
        .ok(
            "kanban_create",
            json!({"title": "scratchy", "assignee": "coder", "workspace_kind": "scratch"}),
        )
        .await;
    let t = fx.board.get_task(v["task_id"].as_str().unwrap()).unwrap();
    assert_eq!(t.workspace_kind, "scratch");
    assert_eq!(t.workspace_path, None);
    s.close().await;

    // A scratch worker's child gets a fresh scratch (never the worker's own scratch dir).
    let (id, run) = fx.running("scratch parent");
    fx.board
        .set_workspace(&id, &fx.path("scratch/x").to_string_lossy(), None)
        .unwrap();
    let s = connect(fx.worker_env(&id, run), None).await;
    let v = s
        .ok(
            "kanban_create",
            json!({"title": "kid", "assignee": "coder"}),
        )
        .await;
    let t = fx.board.get_task(v["task_id"].as_str().unwrap()).unwrap();
    assert_eq!(t.workspace_kind, "scratch");
    assert_eq!(t.workspace_path, None);
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn link_adds_the_edge() {
    let fx = Fx::new();
    let a = fx.task("a");
    let b = fx.task("b");
    let (id, run) = fx.running("linker");
    // Linking is unrestricted for workers.
    let s = connect(fx.worker_env(&id, run), None).await;
    let v = s
        .ok("kanban_link", json!({"parent_id": a, "child_id": b}))
        .await;
    assert_eq!(v, json!({"ok": true, "parent_id": a, "child_id": b}));
    assert_eq!(fx.board.parents(&b).unwrap(), vec![a.clone()]);
    assert_eq!(fx.board.get_task(&b).unwrap().status, Status::Todo);
    // Idempotent.
    s.ok("kanban_link", json!({"parent_id": a, "child_id": b}))
        .await;
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn list_filters_limits_and_promotes() {
    let fx = Fx::new();
    let mk = |title: &str, assignee: &str, tenant: Option<&str>, priority: i64| {
        fx.create(NewTask {
            title: title.into(),
            assignee: Some(assignee.into()),
            tenant: tenant.map(Into::into),
            priority,
            ..Default::default()
        })
    };
    let a1 = mk("a1", "alice", Some("acme"), 9);
    let a2 = mk("a2", "alice", None, 8);
    let b1 = mk("b1", "bob", Some("acme"), 7);
    let b2 = mk("b2", "bob", None, 6);
    let gone = mk("gone", "bob", None, 5);
    fx.board.archive_task(&gone).unwrap();
    fx.board.link_tasks(&a1, &b2).unwrap();
    // A dependency block parks a parentless task in todo: the next list promotes it.
    fx.board
        .block_task(BlockRequest {
            task_id: a2.clone(),
            reason: Some("wait".into()),
            kind: Some(BlockKind::Dependency),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(fx.board.get_task(&a2).unwrap().status, Status::Todo);

    let s = connect(fx.orchestrator_env(), None).await;
    let (v, board, text) = s.ok_on("kanban_list", json!({})).await;
    assert_eq!(board, "default");
    assert_eq!(keys(&v), set(&["tasks", "count", "limit", "promoted"]));
    assert_eq!(v["promoted"], 1);
    assert_eq!(v["count"], 4);
    assert_eq!(v["limit"], 50);
    assert!(v.get("next_cursor").is_none(), "one page: no cursor");
    let ids: Vec<&str> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![a1.as_str(), a2.as_str(), b1.as_str(), b2.as_str()]
    );
    // Compact rows by default: unset fields (tenant, parents) are omitted.
    assert_eq!(
        keys(&v["tasks"][0]),
        set(&["id", "title", "assignee", "status", "priority", "tenant"])
    );
    assert_eq!(
        keys(&v["tasks"][1]),
        set(&["id", "title", "assignee", "status", "priority"])
    );
    assert_eq!(v["tasks"][3]["parents"], json!([a1]));
    assert_eq!(v["tasks"][3]["status"], "todo");
    assert_eq!(fx.board.get_task(&a2).unwrap().status, Status::Ready);
    // The text form: one line per task.
    assert!(
        text.starts_with("4 task(s) on board default (1 promoted to ready)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{b2} [todo] p6 bob — b2 (after {a1})")),
        "{text}"
    );
    assert_eq!(text.lines().count(), 5, "{text}");

    // verbose: every field; fields: exactly those (plus id).
    let v = s.ok("kanban_list", json!({"verbose": true})).await;
    for k in [
        "workspace_kind",
        "created_at",
        "children",
        "child_count",
        "parent_count",
    ] {
        assert!(
            v["tasks"][0].get(k).is_some(),
            "verbose has {k}: {}",
            v["tasks"][0]
        );
    }
    assert_eq!(v["tasks"][0]["children"], json!([b2]));
    assert_eq!(v["tasks"][0]["child_count"], 1);
    let v = s
        .ok("kanban_list", json!({"fields": ["status", "child_count"]}))
        .await;
    assert_eq!(keys(&v["tasks"][0]), set(&["id", "status", "child_count"]));
    let v = s.ok("kanban_list", json!({"fields": "title"})).await;
    assert_eq!(keys(&v["tasks"][0]), set(&["id", "title"]));
    let e = s.err("kanban_list", json!({"fields": ["colour"]})).await;
    assert!(
        e.contains("unknown field \"colour\"") && e.contains("known fields: id, title"),
        "{e}"
    );

    let names = |v: &Value| -> Vec<String> {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_string())
            .collect()
    };
    let v = s.ok("kanban_list", json!({"assignee": "bob"})).await;
    assert_eq!(names(&v), ["b1", "b2"]);
    assert_eq!(v["promoted"], 0);
    let v = s.ok("kanban_list", json!({"tenant": "acme"})).await;
    assert_eq!(names(&v), ["a1", "b1"]);
    let v = s.ok("kanban_list", json!({"status": "todo"})).await;
    assert_eq!(names(&v), ["b2"]);
    let v = s
        .ok(
            "kanban_list",
            json!({"status": "ready", "assignee": "alice"}),
        )
        .await;
    assert_eq!(names(&v), ["a1", "a2"]);
    for yes in [
        json!(true),
        json!("true"),
        json!("1"),
        json!("yes"),
        json!("YES"),
    ] {
        let v = s
            .ok(
                "kanban_list",
                json!({"include_archived": yes, "assignee": "bob"}),
            )
            .await;
        assert_eq!(names(&v), ["b1", "b2", "gone"], "{yes}");
    }
    for no in [json!(false), json!("false"), json!("0"), json!("no")] {
        let v = s
            .ok(
                "kanban_list",
                json!({"include_archived": no, "assignee": "bob"}),
            )
            .await;
        assert_eq!(names(&v), ["b1", "b2"], "{no}");
    }
    let v = s.ok("kanban_list", json!({"status": "archived"})).await;
    assert_eq!(names(&v), ["gone"]);

    // Paging: an opaque cursor; the last page has none.
    let v = s.ok("kanban_list", json!({"limit": 2})).await;
    assert_eq!(names(&v), ["a1", "a2"]);
    assert_eq!((&v["count"], &v["limit"]), (&json!(2), &json!(2)));
    let cursor = v["next_cursor"].as_str().expect("next_cursor").to_string();
    let v = s
        .ok("kanban_list", json!({"limit": 2, "cursor": cursor}))
        .await;
    assert_eq!(names(&v), ["b1", "b2"]);
    assert!(v.get("next_cursor").is_none(), "{v}");
    let v = s.ok("kanban_list", json!({"limit": 4})).await;
    assert!(v.get("next_cursor").is_none());
    for bad in ["nope", "djE6eDp5Onk", ""] {
        if bad.is_empty() {
            // An empty cursor is the first page.
            let v = s.ok("kanban_list", json!({"cursor": bad})).await;
            assert_eq!(v["count"], 4);
            continue;
        }
        let e = s.err("kanban_list", json!({"cursor": bad})).await;
        assert!(
            e.contains("invalid cursor") && e.contains("next_cursor"),
            "{e}"
        );
    }
    s.close().await;
}

/// Paging walks every task exactly once, in order, even when tasks are inserted between
/// pages (keyset on priority, creation and rowid), and 50 tasks' first page is small.
/// `kanban_list` promotes ready work as Hermes' list does, but reads first: with nothing
/// promotable it never asks for the write lock (another process holding it does not slow the
/// list down), and with a promotion due it writes (waits for the lock, then promotes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_takes_the_write_lock_only_when_a_promotion_is_due() {
    sqlite_only!("holds SQLite's write lock from a second connection");
    let fx = Fx::new();
    let a = fx.task("a");
    let b = fx.task("b");
    let s = connect(fx.orchestrator_env(), None).await;
    s.ok("kanban_list", json!({})).await;
    // Another process holds the write lock.
    let holder = rusqlite::Connection::open(&fx.board.paths().db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let v = tokio::time::timeout(Duration::from_secs(15), s.ok("kanban_list", json!({})))
        .await
        .expect("kanban_list waited for the write lock with nothing to promote");
    assert_eq!(v["count"], 2);
    assert_eq!(v["promoted"], 0);
    holder.execute_batch("COMMIT").unwrap();
    // A dependency block parks a parentless task in todo: the next list promotes it, so it
    // must wait while the lock is held.
    fx.board
        .block_task(BlockRequest {
            task_id: b.clone(),
            reason: Some("wait".into()),
            kind: Some(BlockKind::Dependency),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(fx.board.get_task(&b).unwrap().status, Status::Todo);
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let waited = tokio::time::timeout(
        Duration::from_millis(500),
        s.call_raw("kanban_list", json!({})),
    )
    .await;
    assert!(
        waited.is_err(),
        "kanban_list finished while the write lock was held and a promotion was due"
    );
    assert_eq!(fx.board.get_task(&b).unwrap().status, Status::Todo);
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    // The abandoned call promotes once the lock is free (or this one does).
    let v = s.ok("kanban_list", json!({})).await;
    assert_eq!(v["count"], 2);
    assert_eq!(fx.board.get_task(&b).unwrap().status, Status::Ready);
    assert_eq!(fx.board.get_task(&a).unwrap().status, Status::Ready);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_pages_are_stable_under_inserts() {
    let fx = Fx::new();
    let mut want = Vec::new();
    for i in 0..151 {
        let id = fx.create(NewTask {
            title: format!("task number {i} with a realistic title"),
            assignee: Some("worker".into()),
            body: Some("a body that kanban_list never sends ".repeat(20)),
            priority: i % 3,
            ..Default::default()
        });
        want.push((i % 3, id));
    }
    let s = connect(fx.orchestrator_env(), None).await;
    let r = s
        .call_raw("kanban_list", json!({}))
        .await
        .expect("kanban_list");
    let size = text_of(&r).len() + r.structured_content.as_ref().unwrap().to_string().len();
    assert!(
        size < 12_000,
        "50 compact rows (text + JSON) are {size} chars"
    );

    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut a = json!({"limit": 40});
        if let Some(c) = &cursor {
            a["cursor"] = json!(c);
        }
        let v = s.ok("kanban_list", a).await;
        pages += 1;
        for t in v["tasks"].as_array().unwrap() {
            seen.push(t["id"].as_str().unwrap().to_string());
        }
        // New work lands between pages: at the top (already passed) and in the middle.
        for priority in [99, 1] {
            fx.create(NewTask {
                title: format!("late {pages}"),
                assignee: Some("worker".into()),
                priority,
                ..Default::default()
            });
        }
        match v.get("next_cursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_string()),
            None => break,
        }
        assert!(pages < 20, "paging does not end");
    }
    // Every original task exactly once, in the default order (priority desc, creation).
    let originals: std::collections::HashSet<&String> = want.iter().map(|(_, id)| id).collect();
    let got: Vec<&String> = seen.iter().filter(|id| originals.contains(id)).collect();
    want.sort_by_key(|(p, _)| -p);
    let want_ids: Vec<&String> = want.iter().map(|(_, id)| id).collect();
    assert_eq!(got, want_ids);
    let unique: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), unique.len(), "no task twice");
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unblock_goes_to_ready_or_to_todo() {
    let fx = Fx::new();
    let parent = fx.task("parent");
    let free = fx.create(NewTask {
        title: "free".into(),
        assignee: Some("w".into()),
        initial_status: InitialStatus::Blocked,
        ..Default::default()
    });
    let waiting = fx.create(NewTask {
        title: "waiting".into(),
        assignee: Some("w".into()),
        parents: vec![parent.clone()],
        initial_status: InitialStatus::Blocked,
        ..Default::default()
    });
    let s = connect(fx.orchestrator_env(), None).await;
    let v = s.ok("kanban_unblock", json!({"task_id": free})).await;
    assert_eq!(v, json!({"ok": true, "task_id": free, "status": "ready"}));
    let v = s.ok("kanban_unblock", json!({"task_id": waiting})).await;
    assert_eq!(v, json!({"ok": true, "task_id": waiting, "status": "todo"}));
    assert_eq!(fx.board.get_task(&free).unwrap().status, Status::Ready);
    assert_eq!(fx.board.get_task(&waiting).unwrap().status, Status::Todo);
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attach_stores_the_decoded_bytes_and_attachments_lists_them() {
    let fx = Fx::new();
    let (id, run) = fx.running("deliver");
    let s = connect(
        fx.worker_env(&id, run).with("HERMES_PROFILE", "writer"),
        None,
    )
    .await;
    let bytes: Vec<u8> = (0u8..=255).chain(b"\r\n\0end".iter().copied()).collect();
    let v = s
        .ok(
            "kanban_attach",
            json!({"filename": "report.bin", "content_base64": b64(&bytes),
                   "content_type": "application/octet-stream"}),
        )
        .await;
    assert_eq!(keys(&v), set(&["ok", "task_id", "attachment_id", "size"]));
    assert_eq!(v["ok"], true);
    assert_eq!(v["task_id"], json!(id));
    assert_eq!(v["size"], json!(bytes.len()));
    let first = v["attachment_id"].as_i64().unwrap();
    // Same name again (base64 with line breaks, as `base64` prints it): a suffixed copy.
    let wrapped: String = b64(b"hello world")
        .as_bytes()
        .chunks(4)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let v = s
        .ok(
            "kanban_attach",
            json!({"task_id": id, "filename": "report.bin", "content_base64": wrapped}),
        )
        .await;
    let second = v["attachment_id"].as_i64().unwrap();
    assert_eq!(v["size"], 11);
    // Empty files are files too.
    s.ok(
        "kanban_attach",
        json!({"filename": "empty.txt", "content_base64": ""}),
    )
    .await;

    let v = s.ok("kanban_attachments", json!({})).await;
    assert_eq!(keys(&v), set(&["ok", "task_id", "attachments"]));
    assert_eq!(v["task_id"], json!(id));
    let list = v["attachments"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    for a in list {
        assert_eq!(
            keys(a),
            set(&[
                "id",
                "filename",
                "content_type",
                "size",
                "uploaded_by",
                "stored_path",
                "created_at"
            ])
        );
        assert_eq!(a["uploaded_by"], "writer");
        // A file under the board's root; on PostgreSQL (attachments always in the database)
        // the row's reference.
        if !fx.board.attachments_in_db() {
            assert!(Path::new(a["stored_path"].as_str().unwrap()).is_absolute());
        }
    }
    assert_eq!(list[0]["id"], json!(first));
    assert_eq!(list[0]["filename"], "report.bin");
    assert_eq!(list[0]["content_type"], "application/octet-stream");
    assert_eq!(list[1]["id"], json!(second));
    assert_eq!(list[1]["filename"], "report (1).bin");
    let content = |i: usize| {
        let a = fx
            .board
            .get_attachment(list[i]["id"].as_i64().unwrap())
            .unwrap();
        fx.board
            .attachment_content(&a)
            .unwrap()
            .expect("the stored bytes")
    };
    assert_eq!(content(0), bytes);
    assert_eq!(content(1), b"hello world");
    assert_eq!(list[2]["size"], 0);

    // Anyone may read any task's attachments.
    let other = fx.task("other");
    let v = s.ok("kanban_attachments", json!({"task_id": other})).await;
    assert_eq!(v, json!({"ok": true, "task_id": other, "attachments": []}));
    s.close().await;
}

/// A dispatcher-spawned worker is pinned to its board: `board` cannot leave it. The pin is the
/// one the dispatcher sets for the backend: `HERMES_KANBAN_DB` (the file) on SQLite,
/// `HERMES_KANBAN_BOARD` of a worker on PostgreSQL. `HERMES_KANBAN_BOARD` alone pins no
/// orchestrator: it is only the default board there.
#[tokio::test(flavor = "multi_thread")]
async fn a_pinned_db_outranks_the_board_argument() {
    let fx = Fx::new();
    let (lab, lab_task) = fx.lab_task("on lab", "w");
    let (id, run) = fx.running("pinned");
    let mut env = fx
        .worker_env(&id, run)
        .with("HERMES_KANBAN_BOARD", "default");
    if !crate::helpers::on_postgres() {
        env = env.with("HERMES_KANBAN_DB", fx.board.paths().db.to_string_lossy());
    }
    let s = connect(env.clone(), None).await;
    let v = s.ok("kanban_show", json!({"board": "lab"})).await;
    assert_eq!(v["task"]["id"], json!(id));
    let before = lab.snapshot().unwrap();
    let e = s
        .err(
            "kanban_comment",
            json!({"task_id": lab_task, "body": "x", "board": "lab"}),
        )
        .await;
    assert!(e.contains(&lab_task), "{e}");
    assert_eq!(lab.snapshot().unwrap(), before);
    // Creating "on lab" lands on the worker's own board too.
    let v = s
        .ok(
            "kanban_create",
            json!({"title": "follow-up", "assignee": "w", "board": "lab"}),
        )
        .await;
    let follow_up = v["task_id"].as_str().expect("task_id").to_string();
    assert!(fx.board.get_task(&follow_up).is_ok());
    assert_eq!(lab.snapshot().unwrap(), before);
    s.close().await;

    // HERMES_KANBAN_BOARD without a task is an orchestrator's default board, not a pin.
    let orchestrator = fx.orchestrator_env().with("HERMES_KANBAN_BOARD", "default");
    let s = connect(orchestrator, None).await;
    let v = s
        .ok("kanban_show", json!({"task_id": lab_task, "board": "lab"}))
        .await;
    assert_eq!(v["task"]["title"], "on lab");
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_board_argument_selects_another_board() {
    let fx = Fx::new();
    let (_, id) = fx.lab_task("on lab", "w");
    let s = connect(fx.orchestrator_env(), None).await;
    let (v, board, _) = s
        .ok_on("kanban_show", json!({"task_id": id, "board": "lab"}))
        .await;
    assert_eq!(v["task"]["title"], "on lab");
    assert_eq!(board, "lab", "the result names the board it acted on");
    let (v, board, text) = s.ok_on("kanban_list", json!({"board": "lab"})).await;
    assert_eq!(v["count"], 1);
    assert_eq!(board, "lab");
    assert!(text.starts_with("1 task(s) on board lab"), "{text}");
    let e = s.err("kanban_show", json!({"task_id": id})).await;
    assert!(e.contains(&id), "{e}");
    s.close().await;

    // `mcp --board lab` (the binary) serves that board by default.
    let mut cmd = binary(&fx);
    cmd.args(["mcp", "--board", "lab"]);
    let mut p = Spawned::start(cmd);
    p.peer.initialize().await;
    let r = p.call(1, "kanban_show", json!({"task_id": id})).await;
    assert_eq!(r["structuredContent"]["board"], "lab", "{r}");
    let err = p.finish().await;
    assert!(err.contains("on board 'lab'"), "{err}");
}

// ==========================================================================================
// 3. Errors: `isError: true`, one line naming the task or field, database unchanged
// ==========================================================================================

/// Call `tool`, expect an error result whose message contains every `needle`, and prove the
/// database did not change.
async fn refused(fx: &Fx, s: &Session, tool: &str, a: Value, needles: &[&str]) -> String {
    let before = fx.dump();
    let msg = s.err(tool, a.clone()).await;
    for n in needles {
        assert!(msg.contains(n), "{tool}({a}): {msg:?} should mention {n:?}");
    }
    assert_unchanged(fx, &before, &format!("{tool}({a}) -> {msg}"));
    msg
}

/// The database still holds exactly `before`; on failure, show only the rows that differ.
fn assert_unchanged(fx: &Fx, before: &[String], what: &str) {
    let after = fx.dump();
    if after != before {
        let gone: Vec<_> = before.iter().filter(|r| !after.contains(r)).collect();
        let new: Vec<_> = after.iter().filter(|r| !before.contains(r)).collect();
        panic!("{what}: the database changed\n removed: {gone:#?}\n added: {new:#?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tasks_are_named() {
    let fx = Fx::new();
    let known = fx.task("known");
    let s = connect(fx.orchestrator_env(), None).await;
    let nope = "t_deadbeef";
    let cases = [
        ("kanban_show", json!({"task_id": nope})),
        ("kanban_complete", json!({"task_id": nope, "summary": "x"})),
        ("kanban_block", json!({"task_id": nope, "reason": "x"})),
        ("kanban_heartbeat", json!({"task_id": nope})),
        ("kanban_comment", json!({"task_id": nope, "body": "x"})),
        ("kanban_unblock", json!({"task_id": nope})),
        (
            "kanban_attach",
            json!({"task_id": nope, "filename": "a.txt", "content_base64": "aGk="}),
        ),
        ("kanban_attachments", json!({"task_id": nope})),
        ("kanban_link", json!({"parent_id": nope, "child_id": known})),
        ("kanban_link", json!({"parent_id": known, "child_id": nope})),
        (
            "kanban_create",
            json!({"title": "x", "assignee": "w", "parents": [nope]}),
        ),
    ];
    for (tool, a) in cases {
        // The refusal names the board it looked on, too.
        refused(&fx, &s, tool, a, &[nope, "(board default)"]).await;
    }
    // No attachment directory was left behind by the refused attach.
    assert!(!fx.board.paths().attachments.join(nope).exists());
    // The orchestrator has no default task.
    for tool in [
        "kanban_show",
        "kanban_complete",
        "kanban_block",
        "kanban_heartbeat",
        "kanban_attach",
        "kanban_attachments",
    ] {
        let a = json!({"summary": "x", "reason": "x", "filename": "a", "content_base64": ""});
        refused(&fx, &s, tool, a, &[tool, "task_id"]).await;
    }
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_transitions_leave_the_task_alone() {
    let fx = Fx::new();
    let done = fx.task("finished");
    fx.board
        .complete_task(Completion {
            task_id: done.clone(),
            summary: Some("done".into()),
            ..Default::default()
        })
        .unwrap();
    let ready = fx.task("ready");
    let s = connect(fx.orchestrator_env(), None).await;
    refused(
        &fx,
        &s,
        "kanban_complete",
        json!({"task_id": done, "summary": "again"}),
        &["cannot complete", &done, "done"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_block",
        json!({"task_id": done, "reason": "r"}),
        &["cannot block", &done],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_unblock",
        json!({"task_id": ready}),
        &["cannot unblock", &ready, "ready"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_heartbeat",
        json!({"task_id": ready}),
        &["cannot heartbeat", &ready],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_link",
        json!({"parent_id": ready, "child_id": ready}),
        &["itself", &ready],
    )
    .await;
    let child = fx.task("child");
    fx.board.link_tasks(&ready, &child).unwrap();
    refused(
        &fx,
        &s,
        "kanban_link",
        json!({"parent_id": child, "child_id": ready}),
        &["cycle", &ready, &child],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_complete",
        json!({"task_id": ready}),
        &["summary", "result"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_complete",
        json!({"task_id": ready, "summary": "  "}),
        &["summary"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_complete",
        json!({"task_id": ready, "summary": "x", "artifacts": ["relative/path.txt"]}),
        &["artifacts", "relative/path.txt"],
    )
    .await;
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_cannot_mutate_a_foreign_task() {
    let fx = Fx::new();
    let (own, run) = fx.running("mine");
    let (foreign, _) = fx.running("theirs");
    let s = connect(fx.worker_env(&own, run), None).await;
    let cases = [
        (
            "kanban_complete",
            json!({"task_id": foreign, "summary": "stolen"}),
        ),
        (
            "kanban_block",
            json!({"task_id": foreign, "reason": "mine now"}),
        ),
        ("kanban_heartbeat", json!({"task_id": foreign})),
        (
            "kanban_attach",
            json!({"task_id": foreign, "filename": "a.txt", "content_base64": "aGk="}),
        ),
    ];
    for (tool, a) in cases {
        refused(
            &fx,
            &s,
            tool,
            a,
            &[tool, &format!("scoped to task {own}"), &foreign],
        )
        .await;
    }
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_name_the_field() {
    let fx = Fx::new();
    let (id, run) = fx.running("args");
    let s = connect(fx.orchestrator_env(), None).await;
    // Missing required fields.
    refused(&fx, &s, "kanban_block", json!({"task_id": id}), &["reason"]).await;
    refused(
        &fx,
        &s,
        "kanban_block",
        json!({"task_id": id, "reason": " "}),
        &["reason"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_create",
        json!({"title": "x"}),
        &["assignee"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_create",
        json!({"assignee": "x"}),
        &["title"],
    )
    .await;
    refused(&fx, &s, "kanban_comment", json!({"task_id": id}), &["body"]).await;
    refused(
        &fx,
        &s,
        "kanban_comment",
        json!({"task_id": id, "body": "  "}),
        &["body"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_link",
        json!({"parent_id": id}),
        &["child_id"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_attach",
        json!({"task_id": id, "filename": "a"}),
        &["content_base64"],
    )
    .await;
    // Wrong types.
    refused(&fx, &s, "kanban_show", json!({"task_id": 5}), &["task_id"]).await;
    refused(
        &fx,
        &s,
        "kanban_complete",
        json!({"task_id": 5, "summary": "x"}),
        &["task_id"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_create",
        json!({"title": "x", "assignee": "w", "priority": "high"}),
        &["priority"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_create",
        json!({"title": "x", "assignee": "w", "parents": 5}),
        &["parents"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_create",
        json!({"title": "x", "assignee": "w", "triage": "maybe"}),
        &["triage"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_create",
        json!({"title": "x", "assignee": "w", "workspace_kind": "cloud"}),
        &["workspace_kind"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_block",
        json!({"task_id": id, "reason": "r", "kind": "boredom"}),
        &["kind"],
    )
    .await;
    refused(&fx, &s, "kanban_list", json!({"limit": "many"}), &["limit"]).await;
    refused(&fx, &s, "kanban_list", json!({"limit": 0}), &["limit"]).await;
    refused(&fx, &s, "kanban_list", json!({"limit": 201}), &["limit"]).await;
    refused(
        &fx,
        &s,
        "kanban_list",
        json!({"include_archived": "maybe"}),
        &["include_archived"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_list",
        json!({"status": "bogus"}),
        &["status"],
    )
    .await;
    // Kernel validation.
    refused(
        &fx,
        &s,
        "kanban_create",
        json!({"title": "x", "assignee": "w", "priority": 10_000_000}),
        &["priority"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_create",
        json!({"title": "x", "assignee": "w", "workspace_path": "rel/dir",
            "workspace_kind": "dir"}),
        &["workspace_path"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_create",
        json!({"title": " ", "assignee": "w"}),
        &["title"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_create",
        json!({"title": "x", "assignee": "w", "max_runtime_seconds": -5}),
        &["max_runtime_seconds"],
    )
    .await;
    refused(
        &fx,
        &s,
        "kanban_heartbeat",
        json!({"task_id": id, "note": "n".repeat(5000)}),
        &["note"],
    )
    .await;
    // metadata must be an object.
    let ws = connect(fx.worker_env(&id, run), None).await;
    for bad in [json!([1, 2]), json!("text"), json!(7), json!(true)] {
        refused(
            &fx,
            &ws,
            "kanban_complete",
            json!({"summary": "x", "metadata": bad}),
            &["metadata", "object"],
        )
        .await;
    }
    refused(
        &fx,
        &ws,
        "kanban_complete",
        json!({"summary": "x", "created_cards": 5}),
        &["created_cards"],
    )
    .await;
    ws.close().await;
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attachments_refuse_bad_content_and_names() {
    let fx = Fx::new();
    let (id, run) = fx.running("files");
    let s = connect(fx.worker_env(&id, run), None).await;
    for bad in ["!!!not base64", "aGk", "aGk=\u{0}", "aGk=aGk="] {
        refused(
            &fx,
            &s,
            "kanban_attach",
            json!({"filename": "a.txt", "content_base64": bad}),
            &["content_base64", "base64"],
        )
        .await;
    }
    for name in [
        "../../a.txt",
        "a/b",
        ".hidden",
        "a\\b",
        "",
        "  ",
        "x\ny",
        &"n".repeat(201),
    ] {
        refused(
            &fx,
            &s,
            "kanban_attach",
            json!({"filename": name, "content_base64": "aGk="}),
            &["filename"],
        )
        .await;
    }
    assert!(
        !fx.board.paths().attachments.join(&id).exists(),
        "no file written"
    );
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_board_slugs_are_refused() {
    let fx = Fx::new();
    let id = fx.task("x");
    let s = connect(fx.orchestrator_env(), None).await;
    for slug in ["../etc", "a/b", "", "-x", &"b".repeat(65)] {
        refused(
            &fx,
            &s,
            "kanban_show",
            json!({"task_id": id, "board": slug}),
            &["board"],
        )
        .await;
        refused(
            &fx,
            &s,
            "kanban_comment",
            json!({"task_id": id, "body": "b", "board": slug}),
            &["board"],
        )
        .await;
    }
    refused(
        &fx,
        &s,
        "kanban_list",
        json!({"board": "nope"}),
        &["board 'nope' does not exist"],
    )
    .await;
    assert!(!fx.path("hermes/kanban/boards/nope").exists());
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reclaimed_worker_gets_a_stale_run_error() {
    let fx = Fx::new();
    let (id, old_run) = fx.running("flaky");
    fx.board
        .reclaim_task(&id, Some("worker went quiet"), Default::default())
        .unwrap();
    // The dispatcher claims again with the same lock string (same host:pid).
    let new_run = fx.board.claim_task_as(&id, Some(60), LOCK).unwrap().run_id;
    assert_ne!(old_run, new_run);
    let s = connect(fx.worker_env(&id, old_run), None).await;
    let stale = format!("task {id} is now on run {new_run}, not run {old_run}");
    for (tool, a) in [
        ("kanban_complete", json!({"summary": "late"})),
        ("kanban_block", json!({"reason": "late"})),
        ("kanban_heartbeat", json!({"note": "still here"})),
    ] {
        refused(&fx, &s, tool, a, &["stale run", &stale]).await;
    }
    assert_eq!(
        fx.board.get_task(&id).unwrap().current_run_id,
        Some(new_run)
    );
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_heartbeat_with_the_wrong_lock_changes_nothing() {
    let fx = Fx::new();
    let (id, run) = fx.running("locked");
    let s = connect(
        fx.worker_env(&id, run)
            .with("HERMES_KANBAN_CLAIM_LOCK", "otherhost:1"),
        None,
    )
    .await;
    refused(&fx, &s, "kanban_heartbeat", json!({}), &[&id, "claim"]).await;
    s.close().await;
    // With the right lock, a bad note refuses the whole heartbeat (no claim extension).
    let s = connect(fx.worker_env(&id, run), None).await;
    refused(
        &fx,
        &s,
        "kanban_heartbeat",
        json!({"note": "n".repeat(5000)}),
        &["note"],
    )
    .await;
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn phantom_created_cards_refuse_the_completion() {
    let fx = Fx::new();
    let (id, run) = fx.running("liar");
    let s = connect(fx.worker_env(&id, run), None).await;
    let msg = s
        .err(
            "kanban_complete",
            json!({"summary": "made cards", "created_cards": ["t_deadbeef00"]}),
        )
        .await;
    assert!(
        msg.contains("t_deadbeef00") && msg.contains("unchanged"),
        "{msg}"
    );
    let t = fx.board.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Running);
    assert_eq!(t.current_run_id, Some(run));
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orchestrator_only_tools_are_refused_inside_a_worker() {
    let fx = Fx::new();
    let (id, run) = fx.running("worker");
    let blocked = fx.create(NewTask {
        title: "blocked".into(),
        assignee: Some("w".into()),
        initial_status: InitialStatus::Blocked,
        ..Default::default()
    });
    // Even when named in --tools, a worker cannot reach them.
    let s = connect(
        fx.worker_env(&id, run),
        Some(&["kanban_list", "kanban_unblock", "kanban_show"]),
    )
    .await;
    let before = fx.dump();
    let e = s.rpc_err("kanban_list", json!({})).await;
    assert!(e.message.contains("tool not found"), "{}", e.message);
    let e = s
        .rpc_err("kanban_unblock", json!({"task_id": blocked}))
        .await;
    assert!(e.message.contains("tool not found"), "{}", e.message);
    assert_eq!(fx.dump(), before);
    assert_eq!(fx.board.get_task(&blocked).unwrap().status, Status::Blocked);
    s.close().await;
}

/// A bare JSON-RPC peer over newline-delimited JSON (a server's stdio, or a duplex pipe to an
/// in-process server): for what an rmcp client cannot send (garbage) or sends slowly (a 35 MB
/// line takes seconds to serialize in a debug build).
struct RawPeer<R, W> {
    read: BufReader<R>,
    write: W,
}

impl<R: tokio::io::AsyncRead + Unpin, W: tokio::io::AsyncWrite + Unpin> RawPeer<R, W> {
    async fn send(&mut self, line: &str) {
        self.write.write_all(line.as_bytes()).await.expect("write");
        self.write.write_all(b"\n").await.expect("write");
        self.write.flush().await.expect("flush");
    }

    /// The next JSON message, within 20 s.
    async fn next(&mut self) -> Value {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(20), self.read.read_line(&mut line))
            .await
            .expect("a reply within 20 s")
            .expect("read");
        assert!(n > 0, "the server closed its output");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {line}"))
    }

    /// Replies until the one with `id`; returns (that reply, the others seen before it).
    async fn until(&mut self, id: Value) -> (Value, Vec<Value>) {
        let mut others = Vec::new();
        loop {
            let m = self.next().await;
            if m.get("id") == Some(&id) {
                return (m, others);
            }
            others.push(m);
        }
    }

    async fn initialize(&mut self) -> Value {
        self.send(concat!(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"#,
            r#""protocolVersion":"2025-06-18","capabilities":{},"#,
            r#""clientInfo":{"name":"raw","version":"0"}}}"#,
        ))
        .await;
        let (init, _) = self.until(json!(0)).await;
        self.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        init
    }
}

/// An in-process server reached through a [`RawPeer`].
async fn raw_connect(
    env: Env,
) -> RawPeer<
    tokio::io::ReadHalf<tokio::io::DuplexStream>,
    tokio::io::WriteHalf<tokio::io::DuplexStream>,
> {
    let state = McpState::new(crate::helpers::board::home(&env), None, None, true);
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let _server = server_task(state, server_io);
    let (r, w) = tokio::io::split(client_io);
    let mut peer = RawPeer {
        read: BufReader::new(r),
        write: w,
    };
    peer.initialize().await;
    peer
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_attachments_are_refused_without_writing() {
    let fx = Fx::new();
    let (id, run) = fx.running("big");
    let mut peer = raw_connect(fx.worker_env(&id, run)).await;
    let before = fx.dump();
    let max = hermes_kanban::kernel::validate::ATTACHMENT_MAX_BYTES;
    // 25 MiB + 1 byte once decoded ('A' decodes to zero bits; no padding needed): decoded,
    // then refused by the kernel. Longer than any 25 MiB file's base64: refused before
    // decoding. (Each line is built by concatenation: serializing it takes seconds in a debug
    // build.)
    let just_over = (max + 1).div_ceil(3) * 4;
    for (n, len) in [(1, just_over), (2, max.div_ceil(3) * 4 + 4 + 8)] {
        let line = format!(
            concat!(
                r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/call","#,
                r#""params":{{"name":"kanban_attach","arguments":{{"filename":"big.bin","#,
                r#""content_base64":"{}"}}}}}}"#,
            ),
            "A".repeat(len),
            n = n
        );
        peer.send(&line).await;
        drop(line);
        let (reply, _) = peer.until(json!(n)).await;
        let r = &reply["result"];
        assert_eq!(r["isError"], true, "{reply}");
        let text = r["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("25 MiB") && !text.contains('\n'), "{text}");
        assert_unchanged(&fx, &before, text);
    }
    // Longer than any line the transport accepts: a JSON-RPC error (its id cannot be known),
    // and the session goes on.
    let line = format!(
        concat!(
            r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"kanban_attach","#,
            r#""arguments":{{"filename":"big.bin","content_base64":"{}"}}}}}}"#,
        ),
        "A".repeat(hermes_kanban::mcp::MAX_LINE_BYTES + 1)
    );
    peer.send(&line).await;
    drop(line);
    let e = peer.next().await;
    assert_eq!(e["id"], Value::Null, "{e}");
    assert_eq!(e["error"]["code"], -32600, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("25 MiB"),
        "{e}"
    );
    peer.send(concat!(
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"kanban_attachments","#,
        r#""arguments":{}}}"#,
    ))
    .await;
    let (reply, _) = peer.until(json!(4)).await;
    assert_eq!(
        reply["result"]["structuredContent"]["attachments"],
        json!([]),
        "{reply}"
    );
    assert!(
        !fx.board.paths().attachments.join(&id).exists(),
        "no file written"
    );
    assert_unchanged(&fx, &before, "oversized line");
}

// ==========================================================================================
// 4. The real stdio binary: malformed JSON-RPC gets JSON-RPC errors; EOF exits 0
// ==========================================================================================

fn binary(fx: &Fx) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_hermes-kanban"));
    c.env_clear()
        .env("HOME", fx.dir.path())
        .env("HERMES_HOME", fx.path("hermes"))
        .envs(
            fx.env
                .get("HERMES_KANBAN_DATABASE_URL")
                .map(|u| ("HERMES_KANBAN_DATABASE_URL", u)),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stdio_binary_answers_malformed_json_rpc_and_exits_zero_on_eof() {
    let fx = Fx::new();
    let id = fx.task("over stdio");
    let mut child = binary(&fx)
        .arg("mcp")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn hermes-kanban mcp");
    let mut peer = RawPeer {
        read: BufReader::new(child.stdout.take().unwrap()),
        write: child.stdin.take().unwrap(),
    };
    let init = peer.initialize().await;
    assert_eq!(
        init["result"]["serverInfo"]["name"], "hermes-kanban",
        "{init}"
    );
    assert_eq!(init["result"]["instructions"], ORCHESTRATOR);

    // Not JSON: a parse error (id null).
    peer.send("{not json").await;
    let e = peer.next().await;
    assert_eq!(e["jsonrpc"], "2.0");
    assert_eq!(e["id"], Value::Null, "{e}");
    assert_eq!(e["error"]["code"], -32700, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Parse error"),
        "{e}"
    );
    // JSON but not a JSON-RPC message: invalid request.
    peer.send("[1, 2]").await;
    let e = peer.next().await;
    assert_eq!(
        (&e["id"], &e["error"]["code"]),
        (&Value::Null, &json!(-32600)),
        "{e}"
    );
    // A request with an id but no method: invalid request, with its id.
    peer.send(r#"{"jsonrpc":"2.0","id":"q","params":{}}"#).await;
    let (e, others) = peer.until(json!("q")).await;
    assert_eq!(e["error"]["code"], -32600, "{e}");
    assert!(others.is_empty(), "{others:?}");
    // Unknown method: method not found, with its id.
    peer.send(r#"{"jsonrpc":"2.0","id":"m","method":"no/such_method","params":{}}"#)
        .await;
    let (e, others) = peer.until(json!("m")).await;
    assert_eq!(e["error"]["code"], -32601, "{e}");
    assert!(others.is_empty(), "{others:?}");
    // A notification is never answered, even a bogus one.
    peer.send(r#"{"jsonrpc":"2.0","method":"notifications/bogus"}"#)
        .await;
    // The session still works.
    peer.send(r#"{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{}}"#)
        .await;
    let (list, others) = peer.until(json!(5)).await;
    assert!(
        others.is_empty(),
        "nothing answered the notification: {others:?}"
    );
    assert_eq!(
        list["result"]["tools"].as_array().unwrap().len(),
        15,
        "{list}"
    );
    let call = format!(
        concat!(
            r#"{{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{{"name":"kanban_show","#,
            r#""arguments":{{"task_id":"{id}"}}}}}}"#,
        ),
        id = id
    );
    peer.send(&call).await;
    let (r, _) = peer.until(json!(6)).await;
    assert_eq!(
        r["result"]["structuredContent"]["task"]["id"],
        json!(id),
        "{r}"
    );
    peer.send(concat!(
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"kanban_show","#,
        r#""arguments":{"task_id":5}}}"#,
    ))
    .await;
    let (r, _) = peer.until(json!(7)).await;
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("invalid task_id"),
        "{r}"
    );

    // Closing stdin ends the server with status 0.
    drop(peer.write);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s after stdin closes")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stdio_binary_scopes_a_worker_from_its_env() {
    let fx = Fx::new();
    let (id, run) = fx.running("env worker");
    let mut child = binary(&fx)
        .args(["mcp", "--tools", "kanban_show,kanban_list,kanban_complete"])
        .env("HERMES_KANBAN_TASK", &id)
        .env("HERMES_KANBAN_RUN_ID", run.to_string())
        .env("HERMES_KANBAN_CLAIM_LOCK", LOCK)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut peer = RawPeer {
        read: BufReader::new(child.stdout.take().unwrap()),
        write: child.stdin.take().unwrap(),
    };
    let init = peer.initialize().await;
    assert_eq!(init["result"]["instructions"], GUIDANCE);
    peer.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .await;
    let (list, _) = peer.until(json!(1)).await;
    let names: BTreeSet<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, set(&["kanban_complete", "kanban_show"]));
    peer.send(concat!(
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"kanban_complete","#,
        r#""arguments":{"summary":"done over stdio"}}}"#,
    ))
    .await;
    let (r, _) = peer.until(json!(2)).await;
    assert_eq!(
        r["result"]["structuredContent"],
        json!({"ok": true, "task_id": id, "run_id": run, "board": "default"}),
        "{r}"
    );
    drop(peer.write);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert_eq!(fx.board.get_task(&id).unwrap().status, Status::Done);
}

/// A spawned `hermes-kanban mcp` with a raw line peer; stderr is collected on exit.
struct Spawned {
    child: tokio::process::Child,
    peer: RawPeer<tokio::process::ChildStdout, tokio::process::ChildStdin>,
}

impl Spawned {
    fn start(mut cmd: tokio::process::Command) -> Spawned {
        let mut child = cmd.spawn().expect("spawn hermes-kanban mcp");
        let peer = RawPeer {
            read: BufReader::new(child.stdout.take().unwrap()),
            write: child.stdin.take().unwrap(),
        };
        Spawned { child, peer }
    }

    async fn tools(&mut self) -> BTreeSet<String> {
        self.peer
            .send(r#"{"jsonrpc":"2.0","id":90,"method":"tools/list"}"#)
            .await;
        let (list, _) = self.peer.until(json!(90)).await;
        list["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }

    async fn call(&mut self, id: i64, tool: &str, a: Value) -> Value {
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": a}});
        self.peer.send(&msg.to_string()).await;
        self.peer.until(json!(id)).await.0["result"].clone()
    }

    /// Close stdin, wait for a clean exit, return stderr.
    async fn finish(self) -> String {
        drop(self.peer.write);
        let out = tokio::time::timeout(Duration::from_secs(10), self.child.wait_with_output())
            .await
            .expect("exit within 10 s")
            .unwrap();
        assert!(out.status.success(), "mcp exit: {:?}", out.status);
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn result_text(r: &Value) -> String {
    r["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// On PostgreSQL, the URL of the fixture's database with a password in it (the test cluster
/// trusts every local connection, so any password connects), and the form messages show.
fn url_with_password(fx: &Fx) -> Option<(String, String)> {
    let url = fx._pg.as_ref()?.url.clone();
    let with = url.replacen("postgres://postgres@", "postgres://postgres:s3cr3t-pw@", 1);
    assert_ne!(with, url, "the admin URL names the postgres user: {url}");
    let shown = url.replacen("postgres://postgres@", "postgres://postgres:***@", 1);
    Some((with, shown))
}

/// The worker identity travels as flags without any variable (HERMES_HOME not passed, as
/// agents' filtered environments do): `mcp --task ID --run-id N --db PATH` on SQLite,
/// `--database-url URL --board SLUG mcp --task ID --run-id N` on PostgreSQL. The server is the
/// worker of that task pinned to that board (a `board` argument naming another board does not
/// move it), and its log says so, naming the file or the URL without its password.
#[tokio::test(flavor = "multi_thread")]
async fn the_stdio_binary_takes_the_worker_identity_from_flags() {
    let fx = Fx::new();
    // The worker's task is on lab; its calls name `default`.
    let (lab, id) = fx.lab_task("flag worker", "worker");
    let run = lab.claim_task_as(&id, Some(60), LOCK).unwrap().run_id;
    let db = lab.paths().db.clone();
    let empty_home = fx.path("elsewhere");
    std::fs::create_dir_all(&empty_home).unwrap();
    let mut cmd = binary(&fx);
    cmd.env_remove("HERMES_HOME")
        .env_remove("HERMES_KANBAN_DATABASE_URL")
        .env("HOME", &empty_home);
    let pg = url_with_password(&fx);
    if let Some((url, _)) = &pg {
        cmd.args(["--database-url", url, "--board", "lab"]);
    }
    cmd.args(["mcp", "--task", &id, "--run-id", &run.to_string()]);
    if pg.is_none() {
        cmd.arg("--db").arg(&db);
    }
    let mut s = Spawned::start(cmd);
    let init = s.peer.initialize().await;
    assert_eq!(init["result"]["instructions"], GUIDANCE, "worker guidance");
    assert_eq!(s.tools().await, owned(WORKER_TOOLS).into_iter().collect());
    let r = s
        .call(
            1,
            "kanban_complete",
            json!({"summary": "done via flags", "board": "default"}),
        )
        .await;
    assert_eq!(r["isError"], json!(false), "{r}");
    assert_eq!(r["structuredContent"]["run_id"], json!(run));
    let err = s.finish().await;
    let location = match &pg {
        Some((_, shown)) => format!("{shown} (schema board_lab)"),
        None => db.display().to_string(),
    };
    assert!(
        err.contains(&format!("worker scope for task {id}, run {run}")) && err.contains(&location),
        "{err}"
    );
    assert!(!err.contains("s3cr3t-pw"), "the password leaked: {err}");
    assert_eq!(lab.get_task(&id).unwrap().status, Status::Done);
    assert!(
        !empty_home.join(".hermes").exists(),
        "no board was created under $HOME"
    );
}

/// `mcp --db PATH` with a database URL names a board store twice: a usage error (exit 2)
/// naming both and the flag to use instead, before any client is served; no password shown.
#[tokio::test(flavor = "multi_thread")]
async fn mcp_refuses_a_db_file_beside_a_database_url() {
    postgres_only!("a database URL beside --db");
    let fx = Fx::new();
    let (url, shown) = url_with_password(&fx).expect("on PostgreSQL");
    let out = binary(&fx)
        .env_remove("HERMES_KANBAN_DATABASE_URL")
        .args([
            "--database-url",
            &url,
            "mcp",
            "--task",
            "t_00000000",
            "--db",
        ])
        .arg(fx.board.paths().db.clone())
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for needle in [
        "--db",
        "SQLite file",
        "PostgreSQL",
        shown.as_str(),
        "--board SLUG",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    }
    assert!(!err.contains("s3cr3t-pw"), "the password leaked: {err}");
    assert!(out.stdout.is_empty(), "nothing served: {:?}", out.stdout);
}

/// An unexpanded `${HERMES_KANBAN_TASK}` (or `$VAR`, or empty) from a client config counts as
/// unset, for the env and for flags, and each is reported on stderr: the server stays an
/// orchestrator instead of a worker of a task named "${HERMES_KANBAN_TASK}".
#[tokio::test(flavor = "multi_thread")]
async fn unexpanded_placeholders_count_as_unset_and_are_reported() {
    let fx = Fx::new();
    let id = fx.task("visible to the orchestrator");
    let mut cmd = binary(&fx);
    cmd.env("HERMES_KANBAN_TASK", "${HERMES_KANBAN_TASK}")
        .env("HERMES_KANBAN_RUN_ID", "$HERMES_KANBAN_RUN_ID")
        .env("HERMES_KANBAN_DB", "")
        .args(["mcp", "--task", "${TASK}", "--run-id", "", "--db", "$DB"])
        .args(["--board", "${HERMES_KANBAN_BOARD}"]);
    let mut s = Spawned::start(cmd);
    let init = s.peer.initialize().await;
    assert_eq!(init["result"]["instructions"], ORCHESTRATOR);
    assert!(s.tools().await.contains("kanban_list"));
    let r = s.call(1, "kanban_show", json!({"task_id": id})).await;
    assert_eq!(r["isError"], json!(false), "{r}");
    let err = s.finish().await;
    for needle in [
        "ignoring HERMES_KANBAN_TASK=\"${HERMES_KANBAN_TASK}\": an unexpanded placeholder",
        "ignoring HERMES_KANBAN_RUN_ID=\"$HERMES_KANBAN_RUN_ID\"",
        "ignoring HERMES_KANBAN_DB=\"\": empty",
        "ignoring --task \"${TASK}\"",
        "ignoring --run-id \"\": empty",
        "ignoring --db \"$DB\"",
        "ignoring --board \"${HERMES_KANBAN_BOARD}\"",
        "orchestrator scope",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    }
}

/// With no board at the resolved path (HERMES_HOME not passed through), `mcp` creates
/// nothing, says so on stderr naming the path and the ways to point at the right board, and
/// every tool call answers with the same advice.
#[tokio::test(flavor = "multi_thread")]
async fn mcp_on_a_missing_board_creates_nothing_and_says_so() {
    // On PostgreSQL `default` always exists (the registry's rule), so no board is missing.
    sqlite_only!("a home without kanban.db");
    let fx = Fx::new();
    let home = fx.path("fresh-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = binary(&fx);
    cmd.env_remove("HERMES_HOME").env("HOME", &home).arg("mcp");
    let mut s = Spawned::start(cmd);
    s.peer.initialize().await;
    let want = home.join(".hermes").join("kanban.db");
    let r = s.call(1, "kanban_list", json!({})).await;
    assert_eq!(r["isError"], json!(true), "{r}");
    let text = result_text(&r);
    for needle in [
        want.display().to_string().as_str(),
        "nothing was created",
        "HERMES_HOME",
        "HERMES_KANBAN_DB",
        "hermes-kanban init",
    ] {
        assert!(text.contains(needle), "tool error lacks {needle:?}: {text}");
    }
    let r = s
        .call(
            2,
            "kanban_create",
            json!({"title": "x", "assignee": "worker"}),
        )
        .await;
    assert_eq!(r["isError"], json!(true), "{r}");
    let err = s.finish().await;
    assert!(
        err.contains(&want.display().to_string()) && err.contains("nothing was created"),
        "{err}"
    );
    assert!(
        !home.join(".hermes").exists(),
        "nothing created under {}",
        home.display()
    );
}

/// A worker whose task is not on the resolved board is told which board and DB it looked at
/// (in the log at start-up, and in every call on its own task).
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_task_missing_from_the_board_names_the_board_and_db() {
    let fx = Fx::new();
    fx.task("someone else's");
    let mut cmd = binary(&fx);
    cmd.args(["mcp", "--task", "t_0000dead"]);
    let mut s = Spawned::start(cmd);
    s.peer.initialize().await;
    let db = fx.board.location();
    let r = s.call(1, "kanban_show", json!({})).await;
    assert_eq!(r["isError"], json!(true), "{r}");
    let text = result_text(&r);
    assert!(
        text.contains("t_0000dead is not on board 'default'") && text.contains(&db),
        "{text}"
    );
    let r = s
        .call(2, "kanban_complete", json!({"summary": "nope"}))
        .await;
    assert!(result_text(&r).contains(&db), "{r}");
    let err = s.finish().await;
    assert!(
        err.contains("t_0000dead is not on board 'default'"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stdio_binary_refuses_an_unknown_tool_name_in_tools() {
    let fx = Fx::new();
    let out = binary(&fx)
        .args(["mcp", "--tools", "kanban_show,kanban_nope"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kanban_nope"), "{err}");
    assert!(out.stdout.is_empty());
}

// ==========================================================================================
// 5. HTTP: the auth layer in front of /mcp
// ==========================================================================================

struct HttpResp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpResp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// JSON-RPC messages in the body: a JSON body, or the `data:` lines of an SSE stream.
    fn messages(&self) -> Vec<Value> {
        if self
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
        {
            self.body
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(|d| serde_json::from_str(d).expect("SSE data is JSON"))
                .collect()
        } else if self
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
        {
            vec![serde_json::from_str(&self.body).expect("JSON body")]
        } else {
            vec![]
        }
    }
}

/// One HTTP/1.1 exchange on a fresh connection (`Connection: close`), read to EOF.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResp {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: 127.0.0.1:{}\r\n", addr.port()));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("response within 10 s")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size");
            let size_text = String::from_utf8_lossy(&rest[..eol]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .expect("hex chunk size");
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    HttpResp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

struct HttpServer {
    addr: SocketAddr,
    ct: CancellationToken,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

/// `web::router` on 127.0.0.1:0. With `peer`, every request looks as if it came from that
/// address (to test non-loopback clients from a loopback socket).
async fn start_http(env: Env, admin: Option<&str>, peer: Option<SocketAddr>) -> HttpServer {
    let cfg = ServeConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        admin_token: admin.map(str::to_string),
        board: None,
        allowed_hosts: vec![],
        tools: None,
        dispatch: None,
    };
    let ct = CancellationToken::new();
    let app = router(crate::helpers::board::home(&env), &cfg, ct.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = ct.clone();
    match peer {
        None => {
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            });
        }
        Some(p) => {
            let app = app.layer(axum::middleware::from_fn(
                move |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
                    req.extensions_mut().insert(axum::extract::ConnectInfo(p));
                    next.run(req).await
                },
            ));
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
            });
        }
    }
    HttpServer { addr, ct }
}

/// A streamable-HTTP MCP session (legacy session mode, protocol 2025-06-18).
struct HttpMcp {
    addr: SocketAddr,
    extra: Vec<(String, String)>,
    session: Option<String>,
    next_id: i64,
}

impl HttpMcp {
    fn new(addr: SocketAddr, bearer: Option<&str>) -> HttpMcp {
        let mut extra = Vec::new();
        if let Some(t) = bearer {
            extra.push(("Authorization".to_string(), format!("Bearer {t}")));
        }
        HttpMcp {
            addr,
            extra,
            session: None,
            next_id: 1,
        }
    }

    fn with(mut self, k: &str, v: &str) -> HttpMcp {
        self.extra.push((k.to_string(), v.to_string()));
        self
    }

    async fn post(&self, msg: &Value) -> HttpResp {
        let mut h: Vec<(&str, &str)> = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        if let Some(s) = &self.session {
            h.push(("Mcp-Session-Id", s));
            h.push(("MCP-Protocol-Version", "2025-06-18"));
        }
        for (k, v) in &self.extra {
            h.push((k, v));
        }
        http(self.addr, "POST", "/mcp", &h, &msg.to_string()).await
    }

    /// `DELETE /mcp` for this session (what clients send when they close).
    async fn delete(&self) -> HttpResp {
        let mut h: Vec<(&str, &str)> = vec![("MCP-Protocol-Version", "2025-06-18")];
        if let Some(s) = &self.session {
            h.push(("Mcp-Session-Id", s));
        }
        for (k, v) in &self.extra {
            h.push((k, v));
        }
        http(self.addr, "DELETE", "/mcp", &h, "").await
    }

    /// `initialize` + `notifications/initialized`; returns the HTTP response of initialize.
    async fn initialize(&mut self) -> HttpResp {
        let r = self
            .post(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "http-test", "version": "0"}}}),
            )
            .await;
        if r.status == 200 {
            self.session = r.header("mcp-session-id").map(str::to_string);
            let n = self
                .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .await;
            assert_eq!(n.status, 202, "initialized: {}", n.body);
        }
        r
    }

    /// A request; returns (HTTP status, the JSON-RPC reply when there is one).
    async fn request(&mut self, method: &str, params: Value) -> (u16, Option<Value>) {
        let id = self.next_id;
        self.next_id += 1;
        let r = self
            .post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        let reply = r
            .messages()
            .into_iter()
            .find(|m| m.get("id") == Some(&json!(id)));
        (r.status, reply)
    }

    async fn tools(&mut self) -> BTreeSet<String> {
        let (st, r) = self.request("tools/list", json!({})).await;
        assert_eq!(st, 200);
        r.expect("tools/list reply")["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// tools/call → the CallToolResult JSON.
    async fn call(&mut self, tool: &str, a: Value) -> Value {
        let (st, r) = self
            .request("tools/call", json!({"name": tool, "arguments": a}))
            .await;
        assert_eq!(st, 200, "{tool}");
        let r = r.expect("tools/call reply");
        r.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("{tool}: not a result: {r}"))
    }
}

fn all_tools() -> BTreeSet<String> {
    WORKER_TOOLS
        .iter()
        .chain(ORCHESTRATOR_TOOLS)
        .map(|s| s.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn http_loopback_without_a_token_is_an_orchestrator() {
    let fx = Fx::new();
    let id = fx.task("http");
    let srv = start_http(fx.env.clone(), None, None).await;
    let health = http(srv.addr, "GET", "/healthz", &[], "").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    let mut c = HttpMcp::new(srv.addr, None);
    let init = c.initialize().await;
    assert_eq!(init.status, 200, "{}", init.body);
    assert!(c.session.is_some(), "a session id");
    let msg = &init.messages()[0];
    assert_eq!(msg["result"]["instructions"], ORCHESTRATOR);
    assert_eq!(msg["result"]["serverInfo"]["name"], "hermes-kanban");
    assert_eq!(c.tools().await, all_tools());
    let r = c.call("kanban_list", json!({})).await;
    assert_eq!(r["structuredContent"]["count"], 1, "{r}");
    let r = c
        .call(
            "kanban_comment",
            json!({"task_id": id, "body": "over http"}),
        )
        .await;
    assert_eq!(r["structuredContent"]["ok"], true, "{r}");
    assert_eq!(
        fx.board.list_comments(&id).unwrap()[0].author,
        "orchestrator"
    );
    // A tool error is a result with isError, not an HTTP failure.
    let r = c
        .call("kanban_show", json!({"task_id": "t_deadbeef"}))
        .await;
    assert_eq!(r["isError"], true, "{r}");
    // Closing the session: 200 (clients treat 202 as "Session termination failed").
    let d = c.delete().await;
    assert_eq!(d.status, 200, "{}", d.body);
    let (st, _) = c.request("tools/list", json!({})).await;
    assert_eq!(st, 404, "the session is closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_unknown_bearer_tokens_are_401() {
    let fx = Fx::new();
    let srv = start_http(fx.env.clone(), None, None).await;
    for token in [
        "junk",
        "hkr_0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let mut c = HttpMcp::new(srv.addr, Some(token));
        let r = c.initialize().await;
        assert_eq!(r.status, 401, "{token}: {}", r.body);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
        assert!(r.body.contains("unknown bearer token"), "{}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_run_tokens_give_worker_scope_until_the_run_ends() {
    let fx = Fx::new();
    let (id, run) = fx.running("token worker");
    let (other, _) = fx.running("someone else");
    let token = fx.board.mint_run_token(&id, run).unwrap();
    let srv = start_http(fx.env.clone(), None, None).await;
    let mut c = HttpMcp::new(srv.addr, Some(&token));
    let init = c.initialize().await;
    assert_eq!(init.status, 200, "{}", init.body);
    assert_eq!(init.messages()[0]["result"]["instructions"], GUIDANCE);
    assert_eq!(c.tools().await, owned(WORKER_TOOLS));

    // Orchestrator tools are hidden; foreign tasks are refused and left alone.
    let (st, r) = c
        .request(
            "tools/call",
            json!({"name": "kanban_list", "arguments": {}}),
        )
        .await;
    assert_eq!(st, 200);
    assert!(
        r.unwrap().get("error").is_some(),
        "kanban_list is a JSON-RPC error"
    );
    let before = fx.dump();
    let r = c
        .call(
            "kanban_complete",
            json!({"task_id": other, "summary": "stolen"}),
        )
        .await;
    assert_eq!(r["isError"], true, "{r}");
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("scoped to task {id}")) && text.contains(&other),
        "{text}"
    );
    assert_unchanged(&fx, &before, text);

    // Own task: the default task id, the token's run, the claim lock from the task.
    let r = c.call("kanban_show", json!({})).await;
    assert_eq!(r["structuredContent"]["task"]["id"], json!(id));
    // The token pins its board: a `board` argument cannot redirect the call.
    let r = c.call("kanban_show", json!({"board": "elsewhere"})).await;
    assert_eq!(r["structuredContent"]["task"]["id"], json!(id), "{r}");
    let expires = fx.board.get_task(&id).unwrap().claim_expires.unwrap();
    let r = c
        .call("kanban_heartbeat", json!({"note": "over http"}))
        .await;
    assert_eq!(
        r["structuredContent"],
        json!({"ok": true, "task_id": id, "board": "default"}),
        "{r}"
    );
    assert!(fx.board.get_task(&id).unwrap().claim_expires.unwrap() > expires);
    let r = c
        .call("kanban_comment", json!({"task_id": other, "body": "hello"}))
        .await;
    assert_eq!(r["structuredContent"]["ok"], true);
    assert_eq!(
        fx.board.list_comments(&other).unwrap()[0].author,
        "worker",
        "author is the task's assignee"
    );
    let r = c
        .call("kanban_complete", json!({"summary": "done over http"}))
        .await;
    assert_eq!(
        r["structuredContent"],
        json!({"ok": true, "task_id": id, "run_id": run, "board": "default"}),
        "{r}"
    );

    // The run has ended: the token no longer opens anything.
    let (st, _) = c.request("tools/list", json!({})).await;
    assert_eq!(st, 401);
    // ... but the client may still close its session: 200, never 401 (nor rmcp's 202, which
    // clients log as "Session termination failed"); closing it again is 200 or 404.
    let d = c.delete().await;
    assert_eq!(d.status, 200, "DELETE after the run ended: {}", d.body);
    let d = c.delete().await;
    assert!(
        matches!(d.status, 200 | 404),
        "closing again: {} {}",
        d.status,
        d.body
    );
    let mut fresh = HttpMcp::new(srv.addr, Some(&token));
    let r = fresh.initialize().await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("run token expired"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_a_token_of_a_reclaimed_run_is_401() {
    let fx = Fx::new();
    let (id, run) = fx.running("reclaimed");
    let token = fx.board.mint_run_token(&id, run).unwrap();
    fx.board
        .reclaim_task(&id, None, Default::default())
        .unwrap();
    fx.board.claim_task_as(&id, Some(60), LOCK).unwrap();
    let srv = start_http(fx.env.clone(), None, None).await;
    let r = HttpMcp::new(srv.addr, Some(&token)).initialize().await;
    assert_eq!(r.status, 401, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_host_and_origin_headers_are_checked() {
    let fx = Fx::new();
    let srv = start_http(fx.env.clone(), None, None).await;
    let r = HttpMcp::new(srv.addr, None)
        .with("Host", "evil.example")
        .initialize()
        .await;
    assert_eq!(r.status, 403, "Host: {}", r.body);
    let r = HttpMcp::new(srv.addr, None)
        .with("Origin", "http://evil.example")
        .initialize()
        .await;
    assert_eq!(r.status, 403, "Origin: {}", r.body);
    let r = HttpMcp::new(srv.addr, None)
        .with("Host", "localhost")
        .with("Origin", "http://localhost:5173")
        .initialize()
        .await;
    assert_eq!(r.status, 200, "a local page: {}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_clients_beyond_loopback_need_the_admin_token() {
    let fx = Fx::new();
    let srv = start_http(
        fx.env.clone(),
        Some("s3cret-admin"),
        Some("10.1.2.3:5555".parse().unwrap()),
    )
    .await;
    let r = HttpMcp::new(srv.addr, None).initialize().await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("authorization required"), "{}", r.body);
    let r = HttpMcp::new(srv.addr, Some("s3cret-admiN"))
        .initialize()
        .await;
    assert_eq!(r.status, 401);
    let mut c = HttpMcp::new(srv.addr, Some("s3cret-admin"));
    let r = c.initialize().await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.messages()[0]["result"]["instructions"], ORCHESTRATOR);
    assert_eq!(c.tools().await, all_tools());
    // A run token works from anywhere, too.
    let (id, run) = fx.running("remote worker");
    let token = fx.board.mint_run_token(&id, run).unwrap();
    let mut w = HttpMcp::new(srv.addr, Some(&token));
    assert_eq!(w.initialize().await.status, 200);
    assert_eq!(w.tools().await, owned(WORKER_TOOLS));
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_beyond_loopback_without_a_token_exits_nonzero() {
    let fx = Fx::new();
    let out = binary(&fx)
        .args(["serve", "--bind", "0.0.0.0:0"])
        .stdin(std::process::Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), out)
        .await
        .expect("exits at once")
        .unwrap();
    assert!(!out.status.success(), "{:?}", out.status);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token"), "{err}");
    assert!(err.lines().count() <= 2, "a short message: {err}");

    // An unexpanded `${HERMES_KANBAN_TOKEN}` is no token (it would be a guessable secret).
    let out = binary(&fx)
        .args(["serve", "--bind", "0.0.0.0:0"])
        .env("HERMES_KANBAN_TOKEN", "${HERMES_KANBAN_TOKEN}")
        .stdin(std::process::Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), out)
        .await
        .expect("exits at once")
        .unwrap();
    assert!(!out.status.success(), "{:?}", out.status);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "ignoring --token / HERMES_KANBAN_TOKEN \"${HERMES_KANBAN_TOKEN}\": an \
             unexpanded placeholder"
        ) && err.contains("refusing to bind"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_binary_answers_mcp_on_loopback() {
    let fx = Fx::new();
    let mut child = binary(&fx)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The address is announced on stderr.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let addr: SocketAddr = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut line = String::new();
            assert!(err.read_line(&mut line).await.unwrap() > 0, "serve exited");
            if let Some(rest) = line.split("http://").nth(1) {
                return rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
    })
    .await
    .expect("serve announces its address");
    let mut c = HttpMcp::new(addr, None);
    let r = c.initialize().await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(c.tools().await, all_tools());
    assert_eq!(
        HttpMcp::new(addr, Some("junk")).initialize().await.status,
        401
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

// ------------------------------------------------------------------------------------------
// kanban_attach_url's fetcher (src/fetch.rs) against a local HTTP server on 127.0.0.2: the
// test-only knob lets exactly that address through, so a redirect to 127.0.0.1 must still be
// refused.
// ------------------------------------------------------------------------------------------

mod fetcher {
    use super::*;
    use hermes_kanban::fetch::{FetchError, FetchOptions, fetch_url};

    /// A tiny HTTP/1.1 server on 127.0.0.2: `/file`, `/to-loopback`, `/hop/N` (redirects to
    /// N+1), `/big` (26 MiB, chunked, no Content-Length), `/declared-big`.
    async fn serve() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.2:0")
            .await
            .expect("bind 127.0.0.2");
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut r = BufReader::new(&mut s);
                    let mut line = String::new();
                    if r.read_line(&mut line).await.is_err() {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).await.unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let redirect = |to: String| {
                        format!(
                            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: \
                             0\r\nConnection: close\r\n\r\n"
                        )
                    };
                    if path == "/file" {
                        let body = "fetched body";
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/markdown; \
                             charset=utf-8\r\nContent-Disposition: attachment; \
                             filename=\"notes.md\"\r\nContent-Length: {}\r\nConnection: \
                             close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = s.write_all(head.as_bytes()).await;
                    } else if path == "/plain/report.txt" {
                        let _ = s
                            .write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: \
                                  close\r\n\r\nok",
                            )
                            .await;
                    } else if path == "/to-loopback" {
                        let _ = s
                            .write_all(
                                redirect(format!("http://127.0.0.1:{}/file", addr.port()))
                                    .as_bytes(),
                            )
                            .await;
                    } else if path == "/to-ftp" {
                        let _ = s
                            .write_all(redirect("ftp://example.com/x".into()).as_bytes())
                            .await;
                    } else if let Some(n) = path.strip_prefix("/hop/") {
                        let n: u32 = n.parse().unwrap_or(0);
                        let to = if n >= 5 {
                            "/file".to_string()
                        } else {
                            format!("/hop/{}", n + 1)
                        };
                        let _ = s.write_all(redirect(to).as_bytes()).await;
                    } else if path == "/declared-big" {
                        let _ = s
                            .write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Length: \
                                  31457280\r\nConnection: close\r\n\r\n",
                            )
                            .await;
                    } else if path == "/big" {
                        let _ = s
                            .write_all(
                                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \
                                  chunked\r\nConnection: close\r\n\r\n",
                            )
                            .await;
                        let chunk = vec![b'x'; 1 << 20];
                        for _ in 0..26 {
                            let head = format!("{:x}\r\n", chunk.len());
                            if s.write_all(head.as_bytes()).await.is_err()
                                || s.write_all(&chunk).await.is_err()
                                || s.write_all(b"\r\n").await.is_err()
                            {
                                return;
                            }
                        }
                        let _ = s.write_all(b"0\r\n\r\n").await;
                    } else {
                        let _ = s
                            .write_all(
                                b"HTTP/1.1 404 Not Found\r\nContent-Length: \
                                  0\r\nConnection: close\r\n\r\n",
                            )
                            .await;
                    }
                });
            }
        });
        addr
    }

    fn opts(addr: SocketAddr) -> FetchOptions {
        FetchOptions {
            allow_address: Some(addr.ip()),
            ..FetchOptions::default()
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_fetcher_downloads_from_the_one_allowed_address() {
        let a = serve().await;
        let f = fetch_url(&format!("http://{a}/file"), &opts(a))
            .await
            .unwrap();
        assert_eq!(f.bytes, b"fetched body");
        assert_eq!(f.filename, "notes.md");
        assert_eq!(f.content_type.as_deref(), Some("text/markdown"));
        let f = fetch_url(&format!("http://{a}/plain/report.txt"), &opts(a))
            .await
            .unwrap();
        assert_eq!((f.filename.as_str(), f.content_type), ("report.txt", None));
        // Five redirects are followed.
        let f = fetch_url(&format!("http://{a}/hop/1"), &opts(a))
            .await
            .unwrap();
        assert_eq!(f.bytes, b"fetched body");
        assert!(f.final_url.ends_with("/file"), "{}", f.final_url);
        // Without the knob, the same server is refused: 127.0.0.2 is loopback.
        let e = fetch_url(&format!("http://{a}/file"), &FetchOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                FetchError::Blocked {
                    class: "loopback",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_redirect_to_127_0_0_1_is_refused() {
        let a = serve().await;
        let e = fetch_url(&format!("http://{a}/to-loopback"), &opts(a))
            .await
            .unwrap_err();
        match &e {
            FetchError::Blocked { addr, class, .. } => {
                assert_eq!(addr.to_string(), "127.0.0.1");
                assert_eq!(*class, "loopback");
            }
            other => panic!("expected a refusal, got {other}"),
        }
        assert!(
            e.to_string().contains("only public internet addresses"),
            "{e}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn kanban_attach_url_stores_the_download_on_the_workers_own_task_only() {
        let a = serve().await;
        let fx = Fx::new();
        let (id, run) = fx.running("collect evidence");
        let other = fx.task("someone else's");
        let env = fx.worker_env(&id, run).with(
            hermes_kanban::fetch::TEST_ALLOW_ADDRESS_ENV,
            a.ip().to_string(),
        );
        let s = connect(env, None).await;
        let v = s
            .ok(
                "kanban_attach_url",
                json!({"url": format!("http://{a}/file")}),
            )
            .await;
        assert_eq!(v["filename"], "notes.md", "{v}");
        assert_eq!(v["content_type"], "text/markdown");
        assert_eq!(v["size"], 12);
        let list = fx.board.list_attachments(&id).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(
            fx.board.attachment_content(&list[0]).unwrap().unwrap(),
            b"fetched body"
        );
        // The caller's name and type win.
        let v = s
            .ok(
                "kanban_attach_url",
                json!({"url": format!("http://{a}/file"), "filename": "mine.txt",
                    "content_type": "text/plain"}),
            )
            .await;
        assert_eq!(
            (v["filename"].clone(), v["content_type"].clone()),
            (json!("mine.txt"), json!("text/plain"))
        );
        // Refusals change nothing: a redirect to 127.0.0.1, another task, a bad scheme.
        let before = fx.dump();
        let e = s
            .err(
                "kanban_attach_url",
                json!({"url": format!("http://{a}/to-loopback")}),
            )
            .await;
        assert!(e.contains("127.0.0.1") && e.contains("loopback"), "{e}");
        let e = s
            .err(
                "kanban_attach_url",
                json!({"url": format!("http://{a}/file"), "task_id": other}),
            )
            .await;
        assert!(e.contains("scoped to task"), "{e}");
        let e = s
            .err("kanban_attach_url", json!({"url": "file:///etc/passwd"}))
            .await;
        assert!(e.contains("only http and https"), "{e}");
        assert_eq!(fx.dump(), before);
        s.close().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn too_many_redirects_oversize_bodies_and_other_schemes_are_refused() {
        let a = serve().await;
        let e = fetch_url(&format!("http://{a}/hop/0"), &opts(a))
            .await
            .unwrap_err();
        assert!(
            matches!(e, FetchError::TooManyRedirects { .. }),
            "six redirects: {e}"
        );
        let e = fetch_url(&format!("http://{a}/big"), &opts(a))
            .await
            .unwrap_err();
        assert!(
            matches!(e, FetchError::TooLarge { .. }),
            "streamed past 25 MiB: {e}"
        );
        let e = fetch_url(&format!("http://{a}/declared-big"), &opts(a))
            .await
            .unwrap_err();
        assert!(
            matches!(e, FetchError::TooLarge { .. }),
            "declared past 25 MiB: {e}"
        );
        let e = fetch_url(&format!("http://{a}/to-ftp"), &opts(a))
            .await
            .unwrap_err();
        assert!(
            matches!(e, FetchError::Scheme { .. }),
            "redirect to ftp: {e}"
        );
        for bad in ["file:///etc/passwd", "ftp://example.com/x", "gopher://x/"] {
            let e = fetch_url(bad, &opts(a)).await.unwrap_err();
            assert!(matches!(e, FetchError::Scheme { .. }), "{bad}: {e}");
        }
        for private in [
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0x7f000001/",
            "http://localhost/",
        ] {
            let e = fetch_url(private, &opts(a)).await.unwrap_err();
            assert!(matches!(e, FetchError::Blocked { .. }), "{private}: {e}");
        }
        let e = fetch_url("http://user:pw@example.com/", &opts(a))
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::BadUrl(..)), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kanban_schedule_parks_the_workers_own_task_and_ends_its_run() {
    let fx = Fx::new();
    let (id, run) = fx.running("wait for the nightly load");
    let other = fx.task("not mine");
    let s = connect(fx.worker_env(&id, run), None).await;
    let before = fx.dump();
    let e = s.err("kanban_schedule", json!({"task_id": other})).await;
    assert!(e.contains("scoped to task"), "{e}");
    assert_eq!(fx.dump(), before, "a refused schedule changes nothing");
    let v = s
        .ok(
            "kanban_schedule",
            json!({"reason": "after the 02:00 data load"}),
        )
        .await;
    assert_eq!(
        (v["task_id"].clone(), v["status"].clone()),
        (json!(id), json!("scheduled")),
        "{v}"
    );
    let t = fx.board.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Scheduled);
    assert!(
        t.claim_lock.is_none() && t.current_run_id.is_none(),
        "the run ended"
    );
    let runs = fx.board.list_runs(&id, None).unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].ended_at.is_some());
    assert_eq!(runs[0].outcome.as_deref(), Some("scheduled"));
    let comments = fx.board.list_comments(&id).unwrap();
    assert!(
        comments
            .iter()
            .any(|c| c.body == "SCHEDULED: after the 02:00 data load"),
        "{comments:?}"
    );
    // Its run is over: a second call is refused (stale run), nothing changes.
    let before = fx.dump();
    s.err("kanban_schedule", json!({})).await;
    assert_eq!(fx.dump(), before);
    s.close().await;
    let problems = fx.board.check_invariants().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn show_names_the_parents_that_are_not_finished_and_the_last_failure() {
    let fx = Fx::new();
    let open = fx.task("still open");
    let done = fx.task("finished");
    fx.board
        .complete_task(Completion {
            task_id: done.clone(),
            summary: Some("ok".into()),
            ..Default::default()
        })
        .unwrap();
    let child = fx.create(NewTask {
        title: "waits".into(),
        assignee: Some("worker".into()),
        parents: vec![open.clone(), done.clone()],
        ..Default::default()
    });
    let s = connect(fx.orchestrator_env(), None).await;
    let v = s.ok("kanban_show", json!({"task_id": child})).await;
    assert_eq!(
        v["unsatisfied_parents"],
        json!([{"id": open, "status": "ready"}]),
        "{v}"
    );
    // last_failure_error is carried once a run failed.
    let run = fx
        .board
        .claim_task_as(&open, Some(60), LOCK)
        .unwrap()
        .run_id;
    fx.board
        .settle_worker_exit(
            &open,
            run,
            hermes_kanban::kernel::SettledBy::Tick,
            Some(5),
            Some(&hermes_kanban::kernel::WorkerExit::from_status(
                9,
                Some(3),
                None,
            )),
        )
        .unwrap();
    let v = s.ok("kanban_show", json!({"task_id": open})).await;
    assert_eq!(
        v["task"]["last_failure_error"], "pid 9 exited with code 3",
        "{v}"
    );
    // Upstream ~0.22's task keys: the model pin and the completion contract, when set.
    let pinned = fx.create(NewTask {
        title: "pinned".into(),
        assignee: Some("worker".into()),
        model_override: Some("gpt-x".into()),
        provider_override: Some("custom".into()),
        reasoning_effort: Some("high".into()),
        completion_contract: Some("local-only".into()),
        ..Default::default()
    });
    let v = s.ok("kanban_show", json!({"task_id": pinned})).await;
    assert_eq!(v["task"]["model_override"], "gpt-x", "{v}");
    assert_eq!(v["task"]["provider_override"], "custom", "{v}");
    assert_eq!(v["task"]["reasoning_effort"], "high", "{v}");
    assert_eq!(v["task"]["completion_contract"], "local-only", "{v}");
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn request_review_then_request_changes_route_the_task_between_implementer_and_reviewer() {
    let fx = Fx::new();
    let prof = fx.path("hermes/profiles/reviewer");
    std::fs::create_dir_all(&prof).unwrap();
    std::fs::write(prof.join("config.yaml"), "{}\n").unwrap();
    let (id, run) = fx.running("implement the parser");
    let s = connect(fx.worker_env(&id, run), None).await;
    let before = fx.dump();
    let e = s
        .err("kanban_request_review", json!({"summary": "  "}))
        .await;
    assert!(e.contains("summary is required"), "{e}");
    let e = s
        .err(
            "kanban_request_review",
            json!({"summary": "done", "reviewer": "nobody"}),
        )
        .await;
    assert!(e.contains("not a profile"), "{e}");
    assert_eq!(fx.dump(), before, "refusals change nothing");
    let v = s
        .ok(
            "kanban_request_review",
            json!({"summary": "parser done; 9 tests", "reviewer": "Reviewer",
                "metadata": {"tests": 9}}),
        )
        .await;
    assert_eq!(
        (v["status"].clone(), v["reviewer"].clone()),
        (json!("review"), json!("reviewer")),
        "{v}"
    );
    s.close().await;
    let t = fx.board.get_task(&id).unwrap();
    assert_eq!(
        (t.status, t.assignee.as_deref()),
        (Status::Review, Some("reviewer"))
    );
    let r = fx.board.get_run(run).unwrap();
    assert_eq!(r.outcome.as_deref(), Some("review_requested"));
    assert_eq!(r.metadata.as_ref().unwrap()["tests"], 9);
    // The reviewer's run (claimed from review) sends it back.
    let rrun = fx
        .board
        .claim_review_task_as(&id, Some(60), LOCK)
        .unwrap()
        .run_id;
    let s = connect(fx.worker_env(&id, rrun), None).await;
    let e = s.err("kanban_request_changes", json!({"reason": ""})).await;
    assert!(e.contains("reason is required"), "{e}");
    let v = s
        .ok(
            "kanban_request_changes",
            json!({"reason": "handle an empty input"}),
        )
        .await;
    assert_eq!(v["status"], "ready", "{v}");
    s.close().await;
    let t = fx.board.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Ready);
    assert_eq!(
        t.assignee.as_deref(),
        Some("worker"),
        "back to the implementer"
    );
    // Outside a review run, request_changes is refused.
    let (other, orun) = fx.running("plain run");
    let s = connect(fx.worker_env(&other, orun), None).await;
    let before = fx.dump();
    s.err("kanban_request_changes", json!({"reason": "x"}))
        .await;
    assert_eq!(fx.dump(), before);
    s.close().await;
    let problems = fx.board.check_invariants().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}
