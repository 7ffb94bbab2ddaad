//! `kanban_create` — its parameters and its body: create a task for another profile instead of
//! doing follow-up work yourself.

use super::*;

/// Where a task's worker runs.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceKindParam {
    /// A managed scratch directory, removed on completion.
    Scratch,
    /// An existing directory (absolute workspace_path).
    Dir,
    /// A git worktree.
    Worktree,
}

/// `running` is normal routing; `blocked` starts blocked.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InitialStatusParam {
    /// Normal routing (ready, todo or triage).
    Running,
    /// Start blocked until a human unblocks it.
    Blocked,
}

/// `kanban_create`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateParams {
    /// Imperative title with a concrete outcome.
    pub title: String,
    /// Profile that will do the work (must exist, or the task is never spawned).
    pub assignee: String,
    /// What done means, inputs, constraints, how to verify (markdown).
    pub body: Option<String>,
    /// Task ids this task waits for (their hand-offs reach it).
    pub parents: Option<StringList>,
    /// Soft namespace (default: $HERMES_TENANT).
    pub tenant: Option<String>,
    /// Higher runs first.
    pub priority: Option<i64>,
    /// Workspace kind (a worker's child inherits the worker's workspace when none is given).
    pub workspace_kind: Option<WorkspaceKindParam>,
    /// Absolute path for dir/worktree workspaces.
    pub workspace_path: Option<String>,
    /// Project id.
    pub project: Option<String>,
    /// Start in triage.
    pub triage: Option<BoolLike>,
    /// Re-running with the same key returns the existing task.
    pub idempotency_key: Option<String>,
    /// Per-attempt wall-clock cap in seconds.
    pub max_runtime_seconds: Option<i64>,
    /// `running` (normal routing, default) or `blocked`.
    pub initial_status: Option<InitialStatusParam>,
    /// Skills to load for the worker.
    pub skills: Option<StringList>,
    /// Run the worker in goal mode.
    pub goal_mode: Option<BoolLike>,
    /// Goal-mode turn budget.
    pub goal_max_turns: Option<i64>,
    /// Originating agent session (default: $HERMES_SESSION_ID).
    pub session_id: Option<String>,
    /// Project id (alias of `project`).
    pub project_id: Option<String>,
    /// Board slug.
    pub board: Option<String>,
}

impl From<WorkspaceKindParam> for WorkspaceKind {
    fn from(k: WorkspaceKindParam) -> WorkspaceKind {
        match k {
            WorkspaceKindParam::Scratch => WorkspaceKind::Scratch,
            WorkspaceKindParam::Dir => WorkspaceKind::Dir,
            WorkspaceKindParam::Worktree => WorkspaceKind::Worktree,
        }
    }
}

#[tool_router(router = create_router, vis = "pub(super)")]
impl KanbanMcp {
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
            workspace_kind: p.workspace_kind.map(WorkspaceKind::from),
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
                json!({"ok": true, "task_id": c.task.id, "status": c.task.status,
                    "subscribed": false}),
            ),
            Err(e) => e,
        }
    }
}
