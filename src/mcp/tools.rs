//! The `kanban_*` tool bodies. Each validates the caller's scope (a worker mutates only its own
//! task), calls one kernel function on the right board, and answers with [`reply`]: a compact
//! text form for the model plus the JSON as `structuredContent` (no field twice within one
//! block; both name the board acted on, as `"board"`), or an `isError` result with one line.
//!
//! Adding a tool: its parameter struct goes in `params.rs` (doc comments become the schema's
//! descriptions; [`super::portable`] keeps the schema portable), its body here as a
//! `#[tool]` method that runs the kernel through [`KanbanMcp::on_board`] and returns
//! `reply(text, json)`; then name it in `WORKER_TOOLS` or `ORCHESTRATOR_TOOLS`, add it to
//! `params::argument_error`, and regenerate `schemas/` (`cargo test --test mcp_schemas`).

use base64::Engine;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{tool, tool_router};
use serde_json::{Value, json};

use super::params::*;
use super::{KanbanMcp, Scope};
use crate::kernel::{
    BlockKind, BlockRequest, Board, Completion, InitialStatus, KernelError, ListFilter, NewTask,
    Status, WorkspaceKind,
};

/// Successful tool result: the compact text form plus the JSON as `structuredContent`, each
/// naming `board` (added to the JSON here).
fn reply(board: &str, text: impl Into<String>, mut v: Value) -> CallToolResult {
    if let Value::Object(m) = &mut v {
        m.insert("board".into(), json!(board));
    }
    let mut r = CallToolResult::success(vec![ContentBlock::text(text.into())]);
    r.structured_content = Some(v);
    r
}

/// Tool-level error the model sees (`isError: true`), one line.
fn fail(msg: impl std::fmt::Display) -> CallToolResult {
    let line = msg.to_string().replace('\n', " ");
    CallToolResult::error(vec![ContentBlock::text(line)])
}

/// Every field a `kanban_list` row can carry (`fields` picks among them; `verbose` = all).
pub const LIST_FIELDS: &[&str] = &[
    "id",
    "title",
    "status",
    "assignee",
    "priority",
    "tenant",
    "parents",
    "children",
    "parent_count",
    "child_count",
    "workspace_kind",
    "workspace_path",
    "project_id",
    "created_by",
    "created_at",
    "started_at",
    "completed_at",
    "current_run_id",
    "model_override",
    "block_kind",
    "skills",
];
/// The default row of `kanban_list`.
pub const LIST_COMPACT: &[&str] = &[
    "id", "title", "status", "assignee", "priority", "tenant", "parents",
];

/// An opaque page cursor: the keyset position of the page's last task.
fn encode_cursor(k: crate::kernel::PageKey) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("v1:{}:{}:{}", k.priority, k.created_at, k.rowid))
}

fn decode_cursor(c: &str) -> Option<crate::kernel::PageKey> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.strip_prefix("v1:")?.split(':');
    let k = crate::kernel::PageKey {
        priority: parts.next()?.parse().ok()?,
        created_at: parts.next()?.parse().ok()?,
        rowid: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(k)
}

/// A `metadata` argument by the kernel's rule: an object, or a string holding one (the
/// double-encoding mistake).
fn object_arg(
    tool: &str,
    v: Option<Value>,
) -> Result<Option<serde_json::Map<String, Value>>, Box<CallToolResult>> {
    crate::kernel::validate::metadata(v.as_ref())
        .map_err(|e| Box::new(fail(format!("{tool}: {e}"))))
}

fn kernel(e: KernelError) -> CallToolResult {
    fail(e)
}

impl KanbanMcp {
    /// The task a call addresses: the explicit id, else the worker's own task.
    fn target(
        &self,
        scope: &Scope,
        task_id: Option<String>,
        tool: &str,
    ) -> Result<String, Box<CallToolResult>> {
        match (task_id.filter(|t| !t.trim().is_empty()), scope) {
            (Some(t), _) => Ok(t.trim().to_string()),
            (None, Scope::Worker { task_id, .. }) => Ok(task_id.clone()),
            (None, Scope::Orchestrator { .. }) => Err(Box::new(fail(format!(
                "{tool}: no task_id given (only workers have a default task); pass task_id"
            )))),
        }
    }

    /// Workers may only mutate their own task.
    fn own_only(
        &self,
        scope: &Scope,
        task_id: &str,
        tool: &str,
    ) -> Result<(), Box<CallToolResult>> {
        if let Scope::Worker { task_id: own, .. } = scope
            && own != task_id
        {
            return Err(Box::new(fail(format!(
                "{tool}: worker is scoped to task {own}; refusing to mutate {task_id} (comment on it or create a follow-up instead)"
            ))));
        }
        Ok(())
    }

    /// The stale-run guard for a worker acting on its own task.
    fn expected_run(&self, scope: &Scope, task_id: &str) -> Option<i64> {
        match scope {
            Scope::Worker {
                task_id: own,
                run_id,
                ..
            } if own == task_id => *run_id,
            _ => None,
        }
    }

    /// Board to use: a worker pinned by its token stays on its board.
    fn board_for<'a>(&self, scope: &'a Scope, requested: &'a Option<String>) -> Option<&'a str> {
        match scope {
            Scope::Worker { board: Some(b), .. } => Some(b.as_str()),
            _ => requested.as_deref(),
        }
    }

    fn author(&self, scope: &Scope) -> String {
        match scope {
            Scope::Worker {
                profile: Some(p), ..
            }
            | Scope::Orchestrator { profile: Some(p) } => p.clone(),
            Scope::Worker { .. } => "worker".into(),
            Scope::Orchestrator { .. } => "orchestrator".into(),
        }
    }

    /// Run `f` on the board the caller addresses (a token-pinned worker stays on its board);
    /// returns its value and the board's slug. A worker whose own task is not on that board
    /// gets an error naming the board and its DB path.
    /// Store `bytes` as an attachment of task `id`, uploaded by the caller (`kanban_attach`
    /// and `kanban_attach_url` share it).
    async fn store_attachment(
        &self,
        scope: &Scope,
        board: &Option<String>,
        id: &str,
        name: String,
        bytes: Vec<u8>,
        content_type: Option<String>,
    ) -> Result<(crate::kernel::Attachment, String), CallToolResult> {
        let by = self.author(scope);
        let tid = id.to_string();
        self.on_board(scope, board, move |b| {
            b.add_attachment(&tid, &name, &bytes, content_type.as_deref(), Some(&by))
        })
        .await
    }

    async fn on_board<T: Send + 'static>(
        &self,
        scope: &Scope,
        requested: &Option<String>,
        f: impl FnOnce(&Board) -> Result<T, KernelError> + Send + 'static,
    ) -> Result<(T, String), CallToolResult> {
        let state = self.state.clone();
        let board = self.board_for(scope, requested).map(str::to_string);
        let own = match scope {
            Scope::Worker { task_id, .. } => Some(task_id.clone()),
            Scope::Orchestrator { .. } => None,
        };
        // The closure's own error travels inside Ok so that it can name the board it met.
        let g = move |b: &Board| {
            let slug = b.slug().to_string();
            Ok(match f(b) {
                Ok(v) => Ok((v, slug)),
                Err(KernelError::TaskNotFound(t)) if own.as_deref() == Some(t.as_str()) => {
                    Err(kernel(KernelError::NotOnBoard {
                        task_id: t,
                        slug,
                        path: b.paths().db.clone(),
                    }))
                }
                Err(e) => Err(fail(format!("{e} (board {slug})"))),
            })
        };
        let r = if state.stdio_scope.is_some() {
            // stdio serves one client on a current-thread runtime: run inline and skip the
            // thread hand-offs (they dominated latency).
            state.with_board(board.as_deref(), g)
        } else {
            tokio::task::spawn_blocking(move || state.with_board(board.as_deref(), g))
                .await
                .map_err(|e| fail(format!("internal error: {e}")))?
        };
        r.map_err(kernel)?
    }
}

/// Drop null values (and empty arrays) from an object: lean results omit what is unset.
fn lean(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null() && !v.as_array().is_some_and(|a| a.is_empty()))
                .collect(),
        ),
        other => other,
    }
}

/// `kanban_show`: the text form is the worker context (body, attachments, prior attempts,
/// parent hand-offs, comments — the markdown a worker orients with) plus the links; the JSON
/// carries the fields, links, runs and recent events and the same `worker_context` once.
/// The body and comments are not repeated beside it.
fn show_reply(b: &Board, id: &str) -> Result<(String, Value), KernelError> {
    let t = b.get_task(id)?;
    let events = b.list_events(id, Some(50))?;
    let runs = b.list_runs(id, None)?;
    let (parents, children) = (b.parents(id)?, b.children(id)?);
    let context = b.build_worker_context(id)?;
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let text = format!(
        "{}\n\nParents: {} · Children: {} · Runs: {} · Priority: {} ",
        context.trim_end(),
        list(&parents),
        list(&children),
        runs.len(),
        t.priority
    );
    let v = json!({
        "task": lean(json!({
            "id": t.id, "title": t.title, "assignee": t.assignee, "status": t.status,
            "tenant": t.tenant, "priority": t.priority, "workspace_kind": t.workspace_kind,
            "workspace_path": t.workspace_path, "created_by": t.created_by, "created_at": t.created_at,
            "started_at": t.started_at, "completed_at": t.completed_at, "result": t.result,
            "current_run_id": t.current_run_id, "model_override": t.model_override,
            "provider_override": t.provider_override, "reasoning_effort": t.reasoning_effort,
            "completion_contract": t.completion_contract,
            "block_kind": t.block_kind, "last_failure_error": t.last_failure_error,
        })),
        "parents": parents,
        "unsatisfied_parents": b.unsatisfied_parents(id)?.into_iter().map(|(id, s)| json!({"id": id, "status": s})).collect::<Vec<_>>(),
        "children": children,
        "events": events.iter().map(|e| lean(json!({"kind": e.kind, "payload": e.payload, "created_at": e.created_at, "run_id": e.run_id}))).collect::<Vec<_>>(),
        "runs": runs.iter().map(|r| lean(json!({"id": r.id, "profile": r.profile, "status": r.status, "outcome": r.outcome, "summary": r.summary, "error": r.error, "metadata": r.metadata, "started_at": r.started_at, "ended_at": r.ended_at}))).collect::<Vec<_>>(),
        "worker_context": context,
    });
    Ok((text, v))
}

#[tool_router(vis = "pub(crate)")]
impl KanbanMcp {
    /// Read a task: `worker_context` — the markdown to orient with (body, attachments, parent
    /// hand-offs, prior attempts, comment thread) — plus its fields, parents, children, runs and
    /// last 50 events. Call it first, with no arguments, to read your own task.
    #[tool(annotations(title = "Show task", read_only_hint = true, open_world_hint = false))]
    async fn kanban_show(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<ShowParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_show") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        match self
            .on_board(&scope, &p.board, move |b| show_reply(b, &id))
            .await
        {
            Ok(((text, v), board)) => reply(&board, format!("{text}(board {board})"), v),
            Err(e) => e,
        }
    }

    /// Finish your task with a hand-off: `summary` (1-3 sentences: what was done, where, what is
    /// left) and `metadata` (a JSON object of facts such as changed_files, tests, decisions).
    /// Children waiting on this task start with your hand-off. Give at least summary or result.
    #[tool(annotations(
        title = "Complete task",
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn kanban_complete(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<CompleteParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_complete") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        if let Err(e) = self.own_only(&scope, &id, "kanban_complete") {
            return *e;
        }
        let has = |s: &Option<String>| s.as_deref().is_some_and(|x| !x.trim().is_empty());
        if !has(&p.summary) && !has(&p.result) {
            return fail("kanban_complete: provide at least one of: summary (preferred), result");
        }
        let mut metadata = match object_arg("kanban_complete", p.metadata) {
            Ok(m) => m,
            Err(e) => return *e,
        };
        if let Scope::Worker { task_id: own, .. } = &scope
            && own == &id
            && let Some(session) = self.state.env.get("HERMES_SESSION_ID")
        {
            metadata
                .get_or_insert_with(Default::default)
                .insert("worker_session_id".into(), json!(session));
        }
        let req = Completion {
            task_id: id.clone(),
            summary: p.summary,
            metadata: metadata.map(Value::Object),
            result: p.result,
            created_cards: p
                .created_cards
                .map(StringList::into_vec)
                .unwrap_or_default(),
            artifacts: p.artifacts.map(StringList::into_vec).unwrap_or_default(),
            expected_run_id: self.expected_run(&scope, &id),
            force: false,
        };
        match self
            .on_board(&scope, &p.board, move |b| b.complete_task(req))
            .await
        {
            Ok((c, board)) => reply(
                &board,
                format!(
                    "Completed {} (run {}) on board {board}; children waiting on it start with your hand-off.",
                    c.task_id,
                    c.run_id.map_or("-".into(), |r| r.to_string())
                ),
                json!({"ok": true, "task_id": c.task_id, "run_id": c.run_id}),
            ),
            Err(e) => e,
        }
    }

    /// Stop and ask a human: block the task with a reason answerable in one reply. Use kind
    /// `dependency` to wait on another task (the task resumes by itself), `needs_input` for a
    /// decision, `capability` for missing access, `transient` for an outside failure. Then end
    /// your turn.
    #[tool(annotations(
        title = "Block task",
        destructive_hint = false,
        open_world_hint = false
    ))]
    async fn kanban_block(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<BlockParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_block") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        if let Err(e) = self.own_only(&scope, &id, "kanban_block") {
            return *e;
        }
        if p.reason.trim().is_empty() {
            return fail("kanban_block: reason must not be empty; say what you need to continue");
        }
        let kind = p.kind.map(|k| match k {
            BlockKindParam::Dependency => BlockKind::Dependency,
            BlockKindParam::NeedsInput => BlockKind::NeedsInput,
            BlockKindParam::Capability => BlockKind::Capability,
            BlockKindParam::Transient => BlockKind::Transient,
        });
        let req = BlockRequest {
            task_id: id.clone(),
            reason: Some(p.reason),
            kind,
            expected_run_id: self.expected_run(&scope, &id),
            comment_author: None,
        };
        match self
            .on_board(&scope, &p.board, move |b| b.block_task(req))
            .await
        {
            Ok((x, board)) => reply(
                &board,
                format!(
                    "Blocked {} ({}, now {}) on board {board}; end your turn.",
                    x.task_id,
                    x.block_kind
                        .map_or("blocked".to_string(), |k| k.to_string()),
                    x.status
                ),
                json!({"ok": true, "task_id": x.task_id, "run_id": x.run_id, "status": x.status, "block_kind": x.block_kind}),
            ),
            Err(e) => e,
        }
    }

    /// Say you are alive during long work (builds, test runs, downloads): extends your claim and
    /// records a heartbeat with an optional note. Send one every few minutes.
    #[tool(annotations(
        title = "Heartbeat",
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn kanban_heartbeat(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<HeartbeatParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_heartbeat") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        if let Err(e) = self.own_only(&scope, &id, "kanban_heartbeat") {
            return *e;
        }
        let expected = self.expected_run(&scope, &id);
        let lock = match &scope {
            Scope::Worker { claim_lock, .. } => claim_lock.clone(),
            _ => None,
        };
        let note = p.note;
        let tid = id.clone();
        let r = self
            .on_board(&scope, &p.board, move |b| {
                // Extend the claim with the dispatcher's lock (or, over HTTP, the run's own lock,
                // which the run token proves the caller holds). One transaction: a stale run
                // refuses before the successor's claim is touched.
                let lock = match lock {
                    Some(l) => Some(l),
                    None if expected.is_some() => b.get_task(&tid)?.claim_lock,
                    None => None,
                };
                b.heartbeat_and_extend(&tid, note.as_deref(), expected, lock.as_deref())
            })
            .await;
        match r {
            Ok((_, board)) => reply(
                &board,
                format!("Heartbeat recorded for {id} on board {board}; claim extended."),
                json!({"ok": true, "task_id": id}),
            ),
            Err(e) => e,
        }
    }

    /// Comment on any task (markdown). Use it to leave structured notes for humans and other
    /// agents; the author is your profile.
    #[tool(annotations(title = "Comment", destructive_hint = false, open_world_hint = false))]
    async fn kanban_comment(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<CommentParams>,
    ) -> CallToolResult {
        let author = self.author(&scope);
        let id = p.task_id.trim().to_string();
        let body = p.body;
        match self
            .on_board(&scope, &p.board, move |b| {
                b.add_comment(&id, &author, &body).map(|c| (id, c))
            })
            .await
        {
            Ok(((id, c), board)) => reply(
                &board,
                format!("Comment {c} added to {id} on board {board}."),
                json!({"ok": true, "task_id": id, "comment_id": c}),
            ),
            Err(e) => e,
        }
    }

    /// Create a task for another profile instead of doing follow-up work yourself. Use
    /// `parents` for dependencies (the child starts when they are done and receives their
    /// hand-offs). A worker's child inherits the worker's workspace unless one is given.
    #[tool(annotations(
        title = "Create task",
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn kanban_create(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<CreateParams>,
    ) -> CallToolResult {
        let triage = match p.triage.as_ref().map(|b| b.get("triage")).transpose() {
            Ok(v) => v.unwrap_or(false),
            Err(e) => return fail(format!("kanban_create: {e}")),
        };
        let goal_mode = match p.goal_mode.as_ref().map(|b| b.get("goal_mode")).transpose() {
            Ok(v) => v.unwrap_or(false),
            Err(e) => return fail(format!("kanban_create: {e}")),
        };
        let env = &self.state.env;
        let own_task = match &scope {
            Scope::Worker { task_id, .. } => Some(task_id.clone()),
            _ => None,
        };
        let mut new = NewTask {
            title: p.title,
            body: p.body,
            assignee: Some(p.assignee),
            parents: p.parents.map(StringList::into_vec).unwrap_or_default(),
            tenant: p
                .tenant
                .or_else(|| env.get("HERMES_TENANT").map(str::to_string)),
            priority: p.priority.unwrap_or(0),
            workspace_kind: p.workspace_kind.map(|k| match k {
                WorkspaceKindParam::Scratch => WorkspaceKind::Scratch,
                WorkspaceKindParam::Dir => WorkspaceKind::Dir,
                WorkspaceKindParam::Worktree => WorkspaceKind::Worktree,
            }),
            workspace_path: p.workspace_path,
            project_id: p.project.or(p.project_id),
            triage,
            idempotency_key: p.idempotency_key,
            max_runtime_seconds: p.max_runtime_seconds,
            skills: p.skills.map(StringList::into_vec).unwrap_or_default(),
            initial_status: if p.initial_status == Some(InitialStatusParam::Blocked) {
                InitialStatus::Blocked
            } else {
                InitialStatus::Normal
            },
            created_by: Some(self.author(&scope)),
            session_id: p
                .session_id
                .or_else(|| env.get("HERMES_SESSION_ID").map(str::to_string)),
            goal_mode,
            goal_max_turns: p.goal_max_turns,
            ..Default::default()
        };
        let r = self
            .on_board(&scope, &p.board, move |b| {
                if let Some(own) = own_task
                    && new.workspace_kind.is_none()
                    && new.workspace_path.is_none()
                    && let Ok(t) = b.get_task(&own)
                {
                    new.workspace_kind = t.workspace_kind.parse::<WorkspaceKind>().ok();
                    if new.workspace_kind != Some(WorkspaceKind::Scratch) {
                        new.workspace_path = t.workspace_path;
                    }
                    new.project_id = new.project_id.or(t.project_id);
                }
                b.create_task(new)
            })
            .await;
        match r {
            Ok((c, board)) => reply(
                &board,
                format!(
                    "Created {} ({}, assignee {}) on board {board}.",
                    c.task.id,
                    c.task.status,
                    c.task.assignee.as_deref().unwrap_or("none")
                ),
                json!({"ok": true, "task_id": c.task.id, "status": c.task.status, "subscribed": false}),
            ),
            Err(e) => e,
        }
    }

    /// Make `child_id` wait for `parent_id` (cycles and self-links are refused).
    #[tool(annotations(
        title = "Link tasks",
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn kanban_link(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<LinkParams>,
    ) -> CallToolResult {
        let (parent, child) = (
            p.parent_id.trim().to_string(),
            p.child_id.trim().to_string(),
        );
        let (pa, ch) = (parent.clone(), child.clone());
        match self
            .on_board(&scope, &p.board, move |b| b.link_tasks(&pa, &ch))
            .await
        {
            Ok(((), board)) => reply(
                &board,
                format!("Linked on board {board}: {child} now waits for {parent}."),
                json!({"ok": true, "parent_id": parent, "child_id": child}),
            ),
            Err(e) => e,
        }
    }

    /// List tasks on the board (orchestrators only), highest priority first. Recomputes
    /// readiness first. Returns compact rows (id, title, status, assignee, priority, tenant,
    /// parents); `verbose` or `fields` for more. Pages of `limit` (default 50): pass the
    /// result's `next_cursor` as `cursor` for the next page (absent on the last page).
    #[tool(annotations(title = "List tasks", read_only_hint = true, open_world_hint = false))]
    async fn kanban_list(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<ListParams>,
    ) -> CallToolResult {
        if matches!(scope, Scope::Worker { .. }) {
            return fail(
                "kanban_list is orchestrator-only; workers read their own task with kanban_show",
            );
        }
        let limit = p.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return fail(format!("kanban_list: invalid limit {limit}: use 1..=200"));
        }
        let flag = |b: &Option<BoolLike>, name: &str| {
            b.as_ref()
                .map(|b| b.get(name))
                .transpose()
                .map(|v| v.unwrap_or(false))
        };
        let include_archived = match flag(&p.include_archived, "include_archived") {
            Ok(v) => v,
            Err(e) => return fail(format!("kanban_list: {e}")),
        };
        let verbose = match flag(&p.verbose, "verbose") {
            Ok(v) => v,
            Err(e) => return fail(format!("kanban_list: {e}")),
        };
        let fields: Vec<String> = match p.fields.map(StringList::into_vec) {
            None if verbose => LIST_FIELDS.iter().map(|f| f.to_string()).collect(),
            None => LIST_COMPACT.iter().map(|f| f.to_string()).collect(),
            Some(v) => {
                let mut out = vec!["id".to_string()];
                for f in v.iter().flat_map(|f| f.split(',')).map(str::trim) {
                    if f.is_empty() || out.iter().any(|o| o == f) {
                        continue;
                    }
                    if !LIST_FIELDS.contains(&f) {
                        return fail(format!(
                            "kanban_list: invalid fields: unknown field {f:?}; known fields: {}",
                            LIST_FIELDS.join(", ")
                        ));
                    }
                    out.push(f.to_string());
                }
                out
            }
        };
        let after = match p.cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => match decode_cursor(c) {
                Some(k) => Some(k),
                None => {
                    return fail(
                        "kanban_list: invalid cursor: pass the next_cursor of a previous kanban_list result unchanged (or omit it for the first page)",
                    );
                }
            },
        };
        let status = p.status.map(|s| match s {
            StatusParam::Triage => Status::Triage,
            StatusParam::Todo => Status::Todo,
            StatusParam::Scheduled => Status::Scheduled,
            StatusParam::Ready => Status::Ready,
            StatusParam::Running => Status::Running,
            StatusParam::Blocked => Status::Blocked,
            StatusParam::Review => Status::Review,
            StatusParam::Done => Status::Done,
            StatusParam::Archived => Status::Archived,
        });
        let filter = ListFilter {
            assignee: p.assignee,
            status,
            tenant: p.tenant,
            include_archived,
            limit: Some(limit as usize + 1),
            after,
            ..Default::default()
        };
        let r = self
            .on_board(&scope, &p.board, move |b| {
                let promoted = if b.write_fenced() {
                    0
                } else {
                    b.recompute_ready()?.len()
                };
                let mut tasks = b.list_tasks(&filter)?;
                let more = tasks.len() as i64 > limit;
                tasks.truncate(limit as usize);
                let next = match (more, tasks.last()) {
                    (true, Some(t)) => Some(encode_cursor(b.page_key(&t.id)?)),
                    _ => None,
                };
                let mut rows = Vec::new();
                let mut lines = Vec::new();
                for t in &tasks {
                    let parents = b.parents(&t.id)?;
                    let needs_children = fields.iter().any(|f| f == "children" || f == "child_count");
                    let children = if needs_children { b.children(&t.id)? } else { Vec::new() };
                    let all = json!({
                        "id": t.id, "title": t.title, "assignee": t.assignee, "status": t.status,
                        "priority": t.priority, "tenant": t.tenant, "workspace_kind": t.workspace_kind,
                        "workspace_path": t.workspace_path, "project_id": t.project_id,
                        "created_by": t.created_by, "created_at": t.created_at, "started_at": t.started_at,
                        "completed_at": t.completed_at, "current_run_id": t.current_run_id,
                        "model_override": t.model_override, "parent_count": parents.len(),
                        "child_count": children.len(), "parents": parents, "children": children,
                        "block_kind": t.block_kind, "skills": t.skills,
                    });
                    let row: serde_json::Map<String, Value> = fields
                        .iter()
                        .filter_map(|f| all.get(f).map(|v| (f.clone(), v.clone())))
                        .collect();
                    rows.push(lean(Value::Object(row)));
                    let mut line = format!(
                        "{} [{}] p{} {} — {}",
                        t.id,
                        t.status,
                        t.priority,
                        t.assignee.as_deref().unwrap_or("(unassigned)"),
                        t.title
                    );
                    if !parents.is_empty() {
                        line.push_str(&format!(" (after {})", parents.join(", ")));
                    }
                    lines.push(line);
                }
                Ok((rows, lines, next, promoted))
            })
            .await;
        match r {
            Ok(((rows, lines, next, promoted), board)) => {
                let mut text = format!(
                    "{} task(s) on board {board}{}",
                    rows.len(),
                    if promoted > 0 {
                        format!(" ({promoted} promoted to ready)")
                    } else {
                        String::new()
                    }
                );
                for l in &lines {
                    text.push('\n');
                    text.push_str(l);
                }
                if let Some(c) = &next {
                    text.push_str(&format!(
                        "\nMore tasks: call kanban_list again with cursor={c}"
                    ));
                }
                let mut v = json!({"tasks": rows, "count": rows.len(), "limit": limit, "promoted": promoted});
                if let Some(c) = next {
                    v["next_cursor"] = json!(c);
                }
                reply(&board, text, v)
            }
            Err(e) => e,
        }
    }

    /// Unblock a blocked or scheduled task (orchestrators only): it goes to ready, or to todo
    /// while a parent is unfinished. Answer the blocker in a comment first.
    #[tool(annotations(
        title = "Unblock task",
        destructive_hint = false,
        open_world_hint = false
    ))]
    async fn kanban_unblock(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<UnblockParams>,
    ) -> CallToolResult {
        if matches!(scope, Scope::Worker { .. }) {
            return fail(
                "kanban_unblock is orchestrator-only; a worker blocks its own task and waits",
            );
        }
        let id = p.task_id.trim().to_string();
        let tid = id.clone();
        match self
            .on_board(&scope, &p.board, move |b| b.unblock_task(&tid, None, None))
            .await
        {
            Ok((s, board)) => reply(
                &board,
                format!("Unblocked {id} on board {board}: now {s}."),
                json!({"ok": true, "task_id": id, "status": s}),
            ),
            Err(e) => e,
        }
    }

    /// Attach a file to your task (base64 content, 25 MiB at most, plain file name). Use it for
    /// deliverables that must outlive a scratch workspace.
    #[tool(annotations(
        title = "Attach file",
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn kanban_attach(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<AttachParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_attach") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        if let Err(e) = self.own_only(&scope, &id, "kanban_attach") {
            return *e;
        }
        let max_encoded = crate::kernel::validate::ATTACHMENT_MAX_BYTES.div_ceil(3) * 4 + 4;
        // Line breaks (as `base64` prints them) are allowed; strip them in place rather than
        // copying a payload that may be 34 MB.
        let mut cleaned = p.content_base64.into_bytes();
        cleaned.retain(|b| !b.is_ascii_whitespace());
        if cleaned.len() > max_encoded {
            return fail(
                "kanban_attach: content is larger than 25 MiB; attach a smaller file or link to it in a comment",
            );
        }
        let bytes = match base64::engine::general_purpose::STANDARD.decode(&cleaned) {
            Ok(b) => b,
            Err(e) => {
                return fail(format!(
                    "kanban_attach: content_base64 is not valid base64 ({e})"
                ));
            }
        };
        if let Err(e) = crate::kernel::attachment_name(&p.filename) {
            return fail(format!("kanban_attach: {e}"));
        }
        match self
            .store_attachment(&scope, &p.board, &id, p.filename, bytes, p.content_type)
            .await
        {
            Ok((a, board)) => reply(
                &board,
                format!(
                    "Attached {} ({} bytes, attachment {}) to {id} on board {board}.",
                    a.filename, a.size, a.id
                ),
                json!({"ok": true, "task_id": id, "attachment_id": a.id, "size": a.size}),
            ),
            Err(e) => e,
        }
    }

    /// Hand your task to a reviewer: it moves to `review`, your run ends, and the reviewer
    /// (a profile; default: the one who last requested changes) is started on it. Put what you
    /// did and how you checked it in `summary`, the facts in `metadata`. Use it instead of
    /// blocking for review — a review is not a block. If review or QA tasks already depend on
    /// yours, complete it instead.
    #[tool(annotations(
        title = "Request review",
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn kanban_request_review(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<RequestReviewParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_request_review") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        if let Err(e) = self.own_only(&scope, &id, "kanban_request_review") {
            return *e;
        }
        if p.summary.trim().is_empty() {
            return fail(
                "kanban_request_review: summary is required; describe what was implemented and how it was verified so the reviewer has context",
            );
        }
        let mut metadata = match object_arg("kanban_request_review", p.metadata) {
            Ok(m) => m,
            Err(e) => return *e,
        };
        let artifacts = p.artifacts.map(StringList::into_vec).unwrap_or_default();
        if !artifacts.is_empty() {
            metadata
                .get_or_insert_with(Default::default)
                .insert("artifacts".into(), json!(artifacts));
        }
        let req = crate::kernel::ReviewRequest {
            task_id: id.clone(),
            summary: Some(p.summary),
            metadata: metadata.map(Value::Object),
            reviewer: p.reviewer,
            expected_run_id: self.expected_run(&scope, &id),
            force: false,
        };
        let root = crate::kernel::hermes_root(&self.state.env);
        if let Some(r) = req
            .reviewer
            .as_deref()
            .map(|r| r.trim().to_lowercase())
            .filter(|r| !r.is_empty())
            && !crate::kernel::profile_exists(&root, &r)
            && !crate::dispatch::config::KanbanConfig::load(&self.state.env)
                .0
                .worker_command
                .by_assignee
                .contains_key(&r)
        {
            return fail(format!(
                "kanban_request_review: reviewer {r:?} is not a profile on this machine ({}); name an installed profile",
                crate::kernel::profile_state(&root, &r)
                    .reason(&root, &r)
                    .unwrap_or_default()
            ));
        }
        match self
            .on_board(&scope, &p.board, move |b| b.request_review(req))
            .await
        {
            Ok((x, board)) => reply(
                &board,
                format!(
                    "Review requested for {} on board {board} (reviewer {}); end your turn.",
                    x.task_id,
                    x.reviewer.as_deref().unwrap_or("unchanged")
                ),
                json!({"ok": true, "task_id": x.task_id, "run_id": x.run_id, "status": "review", "reviewer": x.reviewer, "implementer": x.implementer}),
            ),
            Err(e) => e,
        }
    }

    /// As the reviewer of a task claimed from `review`: send it back to its implementer with
    /// what must change. The task returns to ready (or todo while a parent is unfinished) and the
    /// implementer is started again with your reason. Approve with `kanban_complete` instead.
    #[tool(annotations(
        title = "Request changes",
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn kanban_request_changes(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<RequestChangesParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_request_changes") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        if let Err(e) = self.own_only(&scope, &id, "kanban_request_changes") {
            return *e;
        }
        if p.reason.trim().is_empty() {
            return fail("kanban_request_changes: reason is required; describe the changes needed");
        }
        let expected = self.expected_run(&scope, &id);
        let (tid, reason) = (id.clone(), p.reason);
        match self
            .on_board(&scope, &p.board, move |b| {
                b.request_changes(&tid, &reason, expected)
            })
            .await
        {
            Ok((x, board)) => reply(
                &board,
                format!(
                    "Changes requested on {} (board {board}): back to {} in {}; end your turn.",
                    x.task_id, x.implementer, x.status
                ),
                json!({"ok": true, "task_id": x.task_id, "run_id": x.run_id, "status": x.status, "implementer": x.implementer, "reviewer": x.reviewer}),
            ),
            Err(e) => e,
        }
    }

    /// Park your task in `scheduled` and end your run: it is not dispatched again until someone
    /// unblocks it. No timer is set — say in `reason` when or on what it should resume.
    #[tool(annotations(
        title = "Schedule (park) task",
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn kanban_schedule(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<ScheduleParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_schedule") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        if let Err(e) = self.own_only(&scope, &id, "kanban_schedule") {
            return *e;
        }
        let reason = p
            .reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        let expected = self.expected_run(&scope, &id);
        let author = self.author(&scope);
        let tid = id.clone();
        match self
            .on_board(&scope, &p.board, move |b| {
                // A goal-mode task's loop treats `scheduled` as an ending: parking it would skip
                // the completion judgement (Hermes refuses it too).
                if b.get_task(&tid)?.goal_mode {
                    return Err(KernelError::refused(
                        &tid,
                        "schedule",
                        "goal-mode tasks cannot be scheduled: block it with a real outside blocker, or complete it",
                    ));
                }
                b.schedule_task(&tid, reason.as_deref(), expected, Some(&author))?;
                b.get_task(&tid)
            })
            .await
        {
            Ok((t, board)) => reply(
                &board,
                format!(
                    "Scheduled {} on board {board}: it stays parked until someone unblocks it; end your turn.",
                    t.id
                ),
                json!({"ok": true, "task_id": t.id, "status": t.status}),
            ),
            Err(e) => e,
        }
    }

    /// Download an http/https URL server-side and attach it to your task (25 MiB at most).
    /// Private, loopback and link-local addresses are refused at every redirect hop.
    #[tool(annotations(
        title = "Attach URL",
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = true
    ))]
    async fn kanban_attach_url(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<AttachUrlParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_attach_url") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        if let Err(e) = self.own_only(&scope, &id, "kanban_attach_url") {
            return *e;
        }
        if let Some(f) = p.filename.as_deref()
            && let Err(e) = crate::kernel::attachment_name(f)
        {
            return fail(format!("kanban_attach_url: {e}"));
        }
        let opts = crate::fetch::FetchOptions::from_env(&self.state.env);
        let fetched = match crate::fetch::fetch_url(&p.url, &opts).await {
            Ok(f) => f,
            Err(e) => return fail(format!("kanban_attach_url: {e}")),
        };
        let name = p.filename.clone().unwrap_or_else(|| {
            crate::kernel::attachment_name(&fetched.filename).unwrap_or_else(|_| "download".into())
        });
        let ct = p.content_type.clone().or(fetched.content_type.clone());
        let url = fetched.final_url;
        match self
            .store_attachment(&scope, &p.board, &id, name, fetched.bytes, ct)
            .await
        {
            Ok((a, board)) => reply(
                &board,
                format!(
                    "Attached {} ({} bytes, attachment {}) from {url} to {id} on board {board}.",
                    a.filename, a.size, a.id
                ),
                json!({"ok": true, "task_id": id, "attachment_id": a.id, "filename": a.filename, "size": a.size, "content_type": a.content_type, "url": url}),
            ),
            Err(e) => e,
        }
    }

    /// List a task's attachments with their absolute stored paths.
    #[tool(annotations(
        title = "List attachments",
        read_only_hint = true,
        open_world_hint = false
    ))]
    async fn kanban_attachments(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<AttachmentsParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_attachments") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        let tid = id.clone();
        let r = self
            .on_board(&scope, &p.board, move |b| {
                b.get_task(&tid)?;
                b.list_attachments(&tid)
            })
            .await;
        match r {
            Ok((list, board)) => {
                let mut text = format!(
                    "{} attachment(s) on {id} (board {board}){}",
                    list.len(),
                    if list.is_empty() { "." } else { ":" }
                );
                for a in &list {
                    text.push_str(&format!(
                        "\n- {} ({} bytes, id {}) at {}",
                        a.filename, a.size, a.id, a.stored_path
                    ));
                }
                reply(
                    &board,
                    text,
                    json!({"ok": true, "task_id": id, "attachments": list.iter().map(|a| json!({
                        "id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size,
                        "uploaded_by": a.uploaded_by, "stored_path": a.stored_path, "created_at": a.created_at,
                    })).collect::<Vec<_>>()}),
                )
            }
            Err(e) => e,
        }
    }
}
