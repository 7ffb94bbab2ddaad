//! The `kanban_*` tool bodies. Each validates the caller's scope (a worker mutates only its own
//! task), calls one kernel function on the right board, and returns `{"ok": true, …}` JSON
//! (text plus `structuredContent`), or an `isError` result with a one-line message.

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

/// Successful tool result: JSON text plus structured content.
fn ok(v: Value) -> CallToolResult {
    let mut r = CallToolResult::success(vec![ContentBlock::text(v.to_string())]);
    r.structured_content = Some(v);
    r
}

/// Tool-level error the model sees (`isError: true`), one line.
fn fail(msg: impl std::fmt::Display) -> CallToolResult {
    let line = msg.to_string().replace('\n', " ");
    CallToolResult::error(vec![ContentBlock::text(line)])
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

    async fn on_board<T: Send + 'static>(
        &self,
        board: Option<&str>,
        f: impl FnOnce(&Board) -> Result<T, KernelError> + Send + 'static,
    ) -> Result<T, CallToolResult> {
        let state = self.state.clone();
        if state.stdio_scope.is_some() {
            // stdio serves one client on a current-thread runtime: run inline and skip the
            // thread hand-offs (they dominated latency).
            return state.with_board(board, f).map_err(kernel);
        }
        let board = board.map(str::to_string);
        tokio::task::spawn_blocking(move || state.with_board(board.as_deref(), f))
            .await
            .map_err(|e| fail(format!("internal error: {e}")))?
            .map_err(kernel)
    }
}

fn show_json(b: &Board, id: &str) -> Result<Value, KernelError> {
    let t = b.get_task(id)?;
    let events = b.list_events(id, Some(50))?;
    let runs = b.list_runs(id, None)?;
    let comments = b.list_comments(id)?;
    Ok(json!({
        "task": {
            "id": t.id, "title": t.title, "body": t.body, "assignee": t.assignee, "status": t.status,
            "tenant": t.tenant, "priority": t.priority, "workspace_kind": t.workspace_kind,
            "workspace_path": t.workspace_path, "created_by": t.created_by, "created_at": t.created_at,
            "started_at": t.started_at, "completed_at": t.completed_at, "result": t.result,
            "current_run_id": t.current_run_id, "model_override": t.model_override,
        },
        "parents": b.parents(id)?,
        "children": b.children(id)?,
        "comments": comments.iter().map(|c| json!({"author": c.author, "body": c.body, "created_at": c.created_at})).collect::<Vec<_>>(),
        "events": events.iter().map(|e| json!({"kind": e.kind, "payload": e.payload, "created_at": e.created_at, "run_id": e.run_id})).collect::<Vec<_>>(),
        "runs": runs.iter().map(|r| json!({"id": r.id, "profile": r.profile, "status": r.status, "outcome": r.outcome, "summary": r.summary, "error": r.error, "metadata": r.metadata, "started_at": r.started_at, "ended_at": r.ended_at})).collect::<Vec<_>>(),
        "worker_context": b.build_worker_context(id)?,
    }))
}

#[tool_router(vis = "pub(crate)")]
impl KanbanMcp {
    /// Read a task: fields, parents, children, comments, the last 50 events, every run, and
    /// `worker_context` — the markdown to orient with (body, parent hand-offs, prior attempts,
    /// comment thread). Call it first, with no arguments, to read your own task.
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
            .on_board(self.board_for(&scope, &p.board), move |b| show_json(b, &id))
            .await
        {
            Ok(v) => ok(v),
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
        let mut metadata = match p.metadata {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                return fail(format!(
                    "kanban_complete: metadata must be a JSON object like {{\"changed_files\": [...]}}, not {}",
                    crate::kernel::validate::json_type(&other)
                ));
            }
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
            .on_board(self.board_for(&scope, &p.board), move |b| {
                b.complete_task(req)
            })
            .await
        {
            Ok(c) => ok(json!({"ok": true, "task_id": c.task_id, "run_id": c.run_id})),
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
            .on_board(self.board_for(&scope, &p.board), move |b| b.block_task(req))
            .await
        {
            Ok(x) => ok(
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
            .on_board(self.board_for(&scope, &p.board), move |b| {
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
            Ok(_) => ok(json!({"ok": true, "task_id": id})),
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
            .on_board(self.board_for(&scope, &p.board), move |b| {
                b.add_comment(&id, &author, &body).map(|c| (id, c))
            })
            .await
        {
            Ok((id, c)) => ok(json!({"ok": true, "task_id": id, "comment_id": c})),
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
            .on_board(self.board_for(&scope, &p.board), move |b| {
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
            Ok(c) => ok(
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
            .on_board(self.board_for(&scope, &p.board), move |b| {
                b.link_tasks(&pa, &ch)
            })
            .await
        {
            Ok(()) => ok(json!({"ok": true, "parent_id": parent, "child_id": child})),
            Err(e) => e,
        }
    }

    /// List tasks on the board (orchestrators only). Recomputes readiness first. Results are
    /// capped by `limit`; `truncated` and `next_limit` say when to ask for more.
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
        let include_archived = match p
            .include_archived
            .as_ref()
            .map(|b| b.get("include_archived"))
            .transpose()
        {
            Ok(v) => v.unwrap_or(false),
            Err(e) => return fail(format!("kanban_list: {e}")),
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
            ..Default::default()
        };
        let r = self
            .on_board(self.board_for(&scope, &p.board), move |b| {
                let promoted = b.recompute_ready()?.len();
                let tasks = b.list_tasks(&filter)?;
                let mut rows = Vec::new();
                for t in &tasks {
                    let parents = b.parents(&t.id)?;
                    let children = b.children(&t.id)?;
                    rows.push(json!({
                        "id": t.id, "title": t.title, "assignee": t.assignee, "status": t.status,
                        "priority": t.priority, "tenant": t.tenant, "workspace_kind": t.workspace_kind,
                        "workspace_path": t.workspace_path, "project_id": t.project_id,
                        "created_by": t.created_by, "created_at": t.created_at, "started_at": t.started_at,
                        "completed_at": t.completed_at, "current_run_id": t.current_run_id,
                        "model_override": t.model_override, "parent_count": parents.len(),
                        "child_count": children.len(), "parents": parents, "children": children,
                    }));
                }
                Ok((rows, promoted))
            })
            .await;
        match r {
            Ok((mut rows, promoted)) => {
                let truncated = rows.len() as i64 > limit;
                rows.truncate(limit as usize);
                let next = truncated.then(|| (2 * limit).min(200));
                ok(
                    json!({"tasks": rows, "count": rows.len(), "limit": limit, "truncated": truncated, "next_limit": next, "promoted": promoted}),
                )
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
            .on_board(self.board_for(&scope, &p.board), move |b| {
                b.unblock_task(&tid, None, None)
            })
            .await
        {
            Ok(s) => ok(json!({"ok": true, "task_id": id, "status": s})),
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
        let by = self.author(&scope);
        let (tid, name, ct) = (id.clone(), p.filename, p.content_type);
        match self
            .on_board(self.board_for(&scope, &p.board), move |b| {
                b.add_attachment(&tid, &name, &bytes, ct.as_deref(), Some(&by))
            })
            .await
        {
            Ok(a) => ok(json!({"ok": true, "task_id": id, "attachment_id": a.id, "size": a.size})),
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
            .on_board(self.board_for(&scope, &p.board), move |b| {
                b.get_task(&tid)?;
                b.list_attachments(&tid)
            })
            .await;
        match r {
            Ok(list) => ok(
                json!({"ok": true, "task_id": id, "attachments": list.iter().map(|a| json!({
                "id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size,
                "uploaded_by": a.uploaded_by, "stored_path": a.stored_path, "created_at": a.created_at,
            })).collect::<Vec<_>>()}),
            ),
            Err(e) => e,
        }
    }
}
