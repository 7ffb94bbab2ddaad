//! Task rows: create (validation, race-free idempotency, parents, initial status), read, list,
//! assign/reassign, edit, archive, delete, stats and assignees.

use super::store::Tx;
use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params, params_from_iter};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::board::{Board, add_event, load_task};
use super::error::{KernelError, Result};
use super::graph::recompute_ready_tx;
use super::lifecycle::reclaim_tx;
use super::paths::hermes_root;
use super::runs::end_run;
use super::types::{RunOutcome, Status, TASK_COLUMNS, Task, WorkspaceKind};
use super::validate as v;
use crate::obj;

/// What `create` should do with the new task's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InitialStatus {
    /// Normal routing: `triage` if asked, else `ready` or `todo` by parents (Hermes calls this
    /// `running`).
    #[default]
    Normal,
    /// Start `blocked`; stays blocked until a human unblocks it (SPEC §3.3 fix 2).
    Blocked,
}

/// Everything `create_task` accepts (REF §5.1). `Default` gives an empty scratch task.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub title: String,
    pub body: Option<String>,
    pub assignee: Option<String>,
    pub parents: Vec<String>,
    pub tenant: Option<String>,
    pub priority: i64,
    pub workspace_kind: Option<WorkspaceKind>,
    pub workspace_path: Option<String>,
    pub branch_name: Option<String>,
    pub project_id: Option<String>,
    pub triage: bool,
    pub idempotency_key: Option<String>,
    pub max_runtime_seconds: Option<i64>,
    pub skills: Vec<String>,
    pub max_retries: Option<i64>,
    pub initial_status: InitialStatus,
    pub created_by: Option<String>,
    pub session_id: Option<String>,
    pub goal_mode: bool,
    pub goal_max_turns: Option<i64>,
    /// Model the worker runs with (`-m`); `None` = the profile's.
    pub model_override: Option<String>,
    /// Provider for `model_override` (`--provider`); needs a model.
    pub provider_override: Option<String>,
    /// Reasoning level (`--reasoning`); `None` = the profile's.
    pub reasoning_effort: Option<String>,
    /// Upstream ~0.22's completion contract (UP §5): `local-only`, `OWNER/REPO` or a GitHub
    /// pull-request URL. Stored for Hermes; we run no PR acceptance check ourselves.
    pub completion_contract: Option<String>,
}

/// Result of `create_task`.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    /// The task (new, or the existing one an idempotency key matched).
    pub task: Task,
    /// True when the idempotency key matched an existing task and nothing was written.
    pub existing: bool,
}

/// The hand-off backfill part of [`Board::edit_task`] (done tasks only).
#[derive(Debug, Clone, Copy)]
pub struct ResultEdit<'a> {
    pub result: &'a str,
    pub summary: Option<&'a str>,
    pub metadata: Option<&'a Value>,
}

/// Sort orders for `list_tasks`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TaskSort {
    /// `priority DESC, created_at ASC` (Hermes' default).
    #[default]
    Default,
    /// Oldest first.
    Created,
    /// Newest first.
    CreatedDesc,
    /// Highest priority first.
    PriorityDesc,
    /// Lowest priority first.
    PriorityAsc,
    /// By status, then default order.
    Status,
    /// By assignee (unassigned last), then default order.
    Assignee,
    /// By title, case-insensitive.
    Title,
    /// Most recently started first, never-started last.
    Updated,
    /// Most recently completed first, never-completed last (Hermes ~0.22 `completed-desc`).
    CompletedDesc,
}

/// Filters for `list_tasks`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub assignee: Option<String>,
    pub status: Option<Status>,
    pub tenant: Option<String>,
    pub session_id: Option<String>,
    pub include_archived: bool,
    pub workflow_template_id: Option<String>,
    pub step_key: Option<String>,
    pub sort: TaskSort,
    pub limit: Option<usize>,
    /// Keyset paging: only tasks after this key in the default order (priority desc, created
    /// asc, rowid asc). Stable under inserts; only with the default sort.
    pub after: Option<PageKey>,
}

/// A position in the default list order, for keyset paging ([`Board::page_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageKey {
    /// The task's priority.
    pub priority: i64,
    /// Its creation time.
    pub created_at: i64,
    /// Its rowid (the final tie-breaker of the default order).
    pub rowid: i64,
}

/// Field changes for `update_task` (`None` = leave as is).
#[derive(Debug, Clone, Default)]
pub struct TaskPatch {
    pub title: Option<String>,
    /// `Some(None)` clears the body.
    pub body: Option<Option<String>>,
    pub priority: Option<i64>,
    /// `Some(None)` clears the tenant.
    pub tenant: Option<Option<String>>,
}

/// `stats --json` (REF §15.2).
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub by_status: BTreeMap<String, i64>,
    pub by_assignee: BTreeMap<String, BTreeMap<String, i64>>,
    pub oldest_ready_age_seconds: Option<i64>,
    pub now: i64,
}

/// One row of `assignees --json`.
#[derive(Debug, Clone, Serialize)]
pub struct AssigneeInfo {
    pub name: String,
    /// A live profile (`default`, or `profiles/<name>/` with an identity file, no tombstone).
    pub on_disk: bool,
    /// Why the name is not a live profile (`null` when it is).
    pub not_a_profile: Option<String>,
    pub counts: BTreeMap<String, i64>,
}

fn new_task_id() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the OS random source is available");
    format!("t_{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
}

pub(crate) fn query_tasks(c: &Tx, where_sql: &str, args: &[Value]) -> Result<Vec<Task>> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks {where_sql}");
    let mut st = c.prepare_cached(&sql)?;
    let params: Vec<rusqlite::types::Value> = args.iter().map(json_to_sql).collect();
    let rows = st
        .query_map(params_from_iter(params), Task::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn json_to_sql(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        Value::Null => S::Null,
        Value::Bool(b) => S::Integer(*b as i64),
        Value::Number(n) => n
            .as_i64()
            .map(S::Integer)
            .unwrap_or_else(|| S::Real(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => S::Text(s.clone()),
        other => S::Text(other.to_string()),
    }
}

impl Board {
    /// Create a task (REF §5.1 with SPEC fixes): validates every field, resolves the initial
    /// status (`blocked` if asked, `triage` if asked, else `ready` or `todo` when a parent is
    /// neither done nor archived), and — when an idempotency key is given — returns the newest
    /// non-archived task with that key instead, the lookup and insert sharing one transaction.
    pub fn create_task(&self, new: NewTask) -> Result<Created> {
        let p = self.prepare_task(new)?;
        let now = self.now();
        self.write(|c| insert_task_tx(c, &p, now))
    }

    /// Validate and normalise a [`NewTask`] (everything that needs no database access).
    pub(crate) fn prepare_task(&self, new: NewTask) -> Result<PreparedTask> {
        let title = v::title(&new.title)?;
        let body = v::optional_text("body", new.body.as_deref(), v::BODY_MAX_BYTES)?;
        let assignee = v::profile_name("assignee", new.assignee.as_deref())?;
        let tenant = v::short_name("tenant", new.tenant.as_deref())?;
        let key = v::short_name("idempotency_key", new.idempotency_key.as_deref())?;
        let created_by = v::short_name("created_by", new.created_by.as_deref())?;
        let session_id = v::short_name("session_id", new.session_id.as_deref())?;
        let project_id = v::short_name("project_id", new.project_id.as_deref())?;
        let priority = v::in_range("priority", new.priority, v::PRIORITY_RANGE)?;
        let completion_contract = v::completion_contract(new.completion_contract.as_deref())?;
        let max_runtime = new
            .max_runtime_seconds
            .map(|s| v::in_range("max_runtime_seconds", s, v::MAX_RUNTIME_RANGE))
            .transpose()?;
        let max_retries = new
            .max_retries
            .map(|n| v::in_range("max_retries", n, 1..=1000))
            .transpose()?;
        let goal_max_turns = new
            .goal_max_turns
            .map(|n| v::in_range("goal_max_turns", n, 1..=10_000))
            .transpose()?;
        let skills = v::skills(&new.skills)?;
        let model = v::model_word("model_override", new.model_override.as_deref())?;
        let provider = v::model_word("provider_override", new.provider_override.as_deref())?;
        if provider.is_some() && model.is_none() {
            return Err(KernelError::invalid(
                "provider_override",
                "a provider needs a model (pass --model too); Hermes only takes --provider with -m",
            ));
        }
        let reasoning = v::reasoning_effort("reasoning_effort", new.reasoning_effort.as_deref())?;
        let kind = new.workspace_kind.unwrap_or(WorkspaceKind::Scratch);
        let branch = v::optional_text("branch_name", new.branch_name.as_deref(), 200)?;
        if let Some(b) = &branch {
            if kind != WorkspaceKind::Worktree {
                return Err(KernelError::invalid(
                    "branch_name",
                    "a branch is only allowed with a worktree workspace (--workspace worktree)",
                ));
            }
            if b.starts_with('-') || b.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(KernelError::invalid(
                    "branch_name",
                    format!("{b:?}: branch names cannot start with '-' or contain whitespace"),
                ));
            }
        }
        let mut workspace_path =
            v::optional_text("workspace_path", new.workspace_path.as_deref(), 4096)?;
        if let Some(p) = &workspace_path
            && !std::path::Path::new(p).is_absolute()
        {
            return Err(KernelError::invalid(
                "workspace_path",
                format!("{p:?} is relative; give an absolute path"),
            ));
        }
        if workspace_path.is_none() && kind != WorkspaceKind::Scratch {
            workspace_path = self.board_default_workdir();
        }
        let mut parents: Vec<String> = Vec::new();
        for p in &new.parents {
            let p = v::task_id("parents", p)?;
            if !parents.contains(&p) {
                parents.push(p);
            }
        }
        let creator = self
            .env()
            .get("HERMES_KANBAN_TASK")
            .and_then(|t| v::task_id("HERMES_KANBAN_TASK", t).ok());
        Ok(PreparedTask {
            creator,
            completion_contract,
            title,
            body,
            assignee,
            tenant,
            key,
            created_by,
            session_id,
            project_id,
            priority,
            max_runtime,
            max_retries,
            goal_max_turns,
            skills,
            kind,
            branch,
            workspace_path,
            parents,
            initial_status: new.initial_status,
            triage: new.triage,
            goal_mode: new.goal_mode,
            model,
            provider,
            reasoning,
        })
    }

    fn board_default_workdir(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.paths().meta).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v.get("default_workdir")?
            .as_str()
            .filter(|s| std::path::Path::new(s).is_absolute())
            .map(str::to_string)
    }

    /// Record where a task's workspace was resolved (and its branch, for worktrees) so reruns
    /// reuse it. The path must be absolute.
    pub fn set_workspace(&self, task_id: &str, path: &str, branch: Option<&str>) -> Result<Task> {
        let path = v::required_text("workspace_path", path, 4096)?;
        if !std::path::Path::new(&path).is_absolute() {
            return Err(KernelError::invalid(
                "workspace_path",
                format!("{path:?} is relative; give an absolute path"),
            ));
        }
        let branch = v::optional_text("branch_name", branch, 200)?;
        self.write(|c| {
            load_task(c, task_id)?;
            c.execute(
                "UPDATE tasks SET workspace_path=?1, branch_name=COALESCE(?2, branch_name) WHERE id=?3",
                params![path, branch, task_id],
            )?;
            load_task(c, task_id)
        })
    }

    /// Fetch one task.
    pub fn get_task(&self, task_id: &str) -> Result<Task> {
        load_task(&Tx::sqlite(&self.conn), task_id.trim())
    }

    /// Fetch several tasks by id (missing ids are skipped), in the order given.
    pub fn get_tasks(&self, ids: &[String]) -> Result<Vec<Task>> {
        self.read(|c| {
            let mut out = Vec::new();
            for id in ids {
                if let Ok(t) = load_task(c, id) {
                    out.push(t);
                }
            }
            Ok(out)
        })
    }

    /// List tasks with filters. Archived tasks are excluded unless `include_archived` or the
    /// status filter asks for them. Does not run `recompute_ready` (front doors that want
    /// Hermes' "listing promotes" behaviour call it first).
    /// The default-order position of a task, to page after it ([`ListFilter::after`]).
    pub fn page_key(&self, task_id: &str) -> Result<PageKey> {
        self.conn
            .prepare_cached("SELECT priority, created_at, rowid FROM tasks WHERE id = ?1")?
            .query_row([task_id], |r| {
                Ok(PageKey {
                    priority: r.get(0)?,
                    created_at: r.get(1)?,
                    rowid: r.get(2)?,
                })
            })
            .optional()?
            .ok_or_else(|| KernelError::TaskNotFound(task_id.to_string()))
    }

    pub fn list_tasks(&self, f: &ListFilter) -> Result<Vec<Task>> {
        let mut clauses: Vec<String> = Vec::new();
        let mut args: Vec<Value> = Vec::new();
        let mut push = |clause: &str, val: Value, clauses: &mut Vec<String>| {
            args.push(val);
            clauses.push(clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(a) = &f.assignee {
            push("assignee = ?", json!(a.trim().to_lowercase()), &mut clauses);
        }
        match f.status {
            Some(s) => push("status = ?", json!(s.as_str()), &mut clauses),
            None if !f.include_archived => clauses.push("status != 'archived'".into()),
            None => {}
        }
        if let Some(t) = &f.tenant {
            push("tenant = ?", json!(t), &mut clauses);
        }
        if let Some(s) = &f.session_id {
            push("session_id = ?", json!(s), &mut clauses);
        }
        if let Some(w) = &f.workflow_template_id {
            push("workflow_template_id = ?", json!(w), &mut clauses);
        }
        if let Some(k) = &f.step_key {
            push("current_step_key = ?", json!(k), &mut clauses);
        }
        if let Some(k) = f.after {
            if !matches!(f.sort, TaskSort::Default | TaskSort::PriorityDesc) {
                return Err(KernelError::Invalid {
                    field: "cursor",
                    message: "paging with a cursor needs the default order".into(),
                });
            }
            let n = args.len();
            args.push(json!(k.priority));
            args.push(json!(k.created_at));
            args.push(json!(k.rowid));
            let (p, c, r) = (n + 1, n + 2, n + 3);
            clauses.push(format!(
                "(priority < ?{p} OR (priority = ?{p} AND (created_at > ?{c} OR (created_at = ?{c} AND rowid > ?{r}))))"
            ));
        }
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let order = match f.sort {
            TaskSort::Default | TaskSort::PriorityDesc => {
                "priority DESC, created_at ASC, rowid ASC"
            }
            TaskSort::PriorityAsc => "priority ASC, created_at ASC, rowid ASC",
            TaskSort::Created => "created_at ASC, rowid ASC",
            TaskSort::CreatedDesc => "created_at DESC, rowid DESC",
            TaskSort::Status => {
                "CASE status WHEN 'triage' THEN 0 WHEN 'todo' THEN 1 WHEN 'scheduled' THEN 2 \
                 WHEN 'ready' THEN 3 WHEN 'running' THEN 4 WHEN 'blocked' THEN 5 WHEN 'review' THEN 6 \
                 WHEN 'done' THEN 7 ELSE 8 END, priority DESC, created_at ASC"
            }
            TaskSort::Assignee => "assignee IS NULL, assignee ASC, priority DESC, created_at ASC",
            TaskSort::Title => "lower(title) ASC, created_at ASC",
            TaskSort::Updated => "started_at IS NULL, started_at DESC, created_at DESC",
            TaskSort::CompletedDesc => "completed_at IS NULL, completed_at DESC, id DESC",
        };
        // SQLite's LIMIT is an i64; a larger usize would be a "datatype mismatch".
        let limit = f
            .limit
            .map(|n| format!(" LIMIT {}", n.min(i64::MAX as usize)))
            .unwrap_or_default();
        query_tasks(
            &Tx::sqlite(&self.conn),
            &format!("{where_sql} ORDER BY {order}{limit}"),
            &args,
        )
    }

    /// Set or clear (`None`) the assignee. Refused while the task is running with a claim
    /// (reassign with reclaim instead). Assigning a different profile resets the failure
    /// counter. A no-op when unchanged.
    pub fn assign_task(&self, task_id: &str, assignee: Option<&str>) -> Result<Task> {
        let assignee = v::profile_name("assignee", assignee)?;
        let now = self.now();
        self.write(|c| {
            let t = load_task(c, task_id)?;
            if t.status == Status::Running && t.claim_lock.is_some() {
                return Err(KernelError::refused(
                    task_id,
                    "assign",
                    format!(
                        "it is running (claimed by {}); reclaim it first or use `reassign --reclaim`",
                        t.claim_lock.as_deref().unwrap_or("?")
                    ),
                ));
            }
            assign_tx(c, &t, assignee.as_deref(), None, now)?;
            load_task(c, task_id)
        })
    }

    /// Reassign; when the task is running, `reclaim_first` reclaims it in the same transaction
    /// (otherwise refused). `termination` is the caller's report of stopping the worker.
    pub fn reassign_task(
        &self,
        task_id: &str,
        assignee: Option<&str>,
        reclaim_first: bool,
        reason: Option<&str>,
        termination: Map<String, Value>,
    ) -> Result<Task> {
        let assignee = v::profile_name("assignee", assignee)?;
        let reason = v::optional_text("reason", reason, v::REASON_MAX_BYTES)?;
        let now = self.now();
        self.write(|c| {
            let t = load_task(c, task_id)?;
            let running = t.status == Status::Running || t.claim_lock.is_some();
            if running && !reclaim_first {
                return Err(KernelError::refused(
                    task_id,
                    "reassign",
                    "it is still running; pass --reclaim to release the claim first",
                ));
            }
            if running {
                reclaim_tx(c, &t, reason.as_deref(), termination.clone(), now)?;
            }
            let t = load_task(c, task_id)?;
            assign_tx(c, &t, assignee.as_deref(), None, now)?;
            load_task(c, task_id)
        })
    }

    /// Set (or with `model: None` clear) the model a worker of this task runs with, and its
    /// provider (upstream 0.19.1 `set-model`). A provider needs a model. Takes effect at the next
    /// spawn. Event `model_override_set {model, provider}` when something changed; an archived
    /// task is refused.
    pub fn set_task_model(
        &self,
        task_id: &str,
        model: Option<&str>,
        provider: Option<&str>,
    ) -> Result<Task> {
        let model = v::model_word("model", model)?;
        let provider = v::model_word("provider", provider)?;
        if provider.is_some() && model.is_none() {
            return Err(KernelError::invalid(
                "provider",
                "a provider needs a model; Hermes only takes --provider with -m",
            ));
        }
        let now = self.now();
        self.write(|c| {
            let t = load_task(c, task_id)?;
            if t.status == Status::Archived {
                return Err(KernelError::refused(task_id, "set-model", "it is archived"));
            }
            if t.model_override == model && t.provider_override == provider {
                return Ok(t);
            }
            let n = c.execute(
                "UPDATE tasks SET model_override=?1, provider_override=?2
                 WHERE id=?3 AND model_override IS ?4 AND provider_override IS ?5",
                params![
                    model,
                    provider,
                    task_id,
                    t.model_override,
                    t.provider_override
                ],
            )?;
            if n != 1 {
                return Err(KernelError::refused(
                    task_id,
                    "set-model",
                    "it changed concurrently; try again",
                ));
            }
            add_event(
                c,
                task_id,
                None,
                "model_override_set",
                obj! {"model" => model, "provider" => provider},
                now,
            )?;
            load_task(c, task_id)
        })
    }

    /// Set (or with `None` clear, back to the profile's setting) the reasoning level a worker of
    /// this task runs with (upstream 0.20.0). Event `reasoning_effort_set {reasoning_effort}`
    /// when it changed; an archived task is refused.
    pub fn set_reasoning_effort(&self, task_id: &str, level: Option<&str>) -> Result<Task> {
        let level = v::reasoning_effort("reasoning_effort", level)?;
        let now = self.now();
        self.write(|c| {
            let t = load_task(c, task_id)?;
            if t.status == Status::Archived {
                return Err(KernelError::refused(task_id, "set-model", "it is archived"));
            }
            if t.reasoning_effort == level {
                return Ok(t);
            }
            let n = c.execute(
                "UPDATE tasks SET reasoning_effort=?1 WHERE id=?2 AND reasoning_effort IS ?3",
                params![level, task_id, t.reasoning_effort],
            )?;
            if n != 1 {
                return Err(KernelError::refused(
                    task_id,
                    "set-model",
                    "it changed concurrently; try again",
                ));
            }
            add_event(
                c,
                task_id,
                None,
                "reasoning_effort_set",
                obj! {"reasoning_effort" => level},
                now,
            )?;
            load_task(c, task_id)
        })
    }

    /// Edit title, body, priority or tenant. Events: `edited {fields}` for text fields,
    /// `reprioritized {priority}` for priority.
    pub fn update_task(&self, task_id: &str, patch: TaskPatch) -> Result<Task> {
        let title = patch.title.as_deref().map(v::title).transpose()?;
        let body = match &patch.body {
            None => None,
            Some(b) => Some(v::optional_text("body", b.as_deref(), v::BODY_MAX_BYTES)?),
        };
        let tenant = match &patch.tenant {
            None => None,
            Some(t) => Some(v::short_name("tenant", t.as_deref())?),
        };
        let priority = patch
            .priority
            .map(|p| v::in_range("priority", p, v::PRIORITY_RANGE))
            .transpose()?;
        let now = self.now();
        self.write(|c| {
            update_tx(c, task_id, &title, &body, &tenant, priority, now)?;
            load_task(c, task_id)
        })
    }

    /// Backfill the hand-off of a `done` task (CLI `edit`): sets `result`, updates the newest
    /// completed run's summary (and metadata if given) or synthesizes one; event `edited`.
    pub fn edit_completed_result(
        &self,
        task_id: &str,
        result: &str,
        summary: Option<&str>,
        metadata: Option<&Value>,
    ) -> Result<Task> {
        let result = v::required_text("result", result, v::HANDOFF_MAX_BYTES)?;
        let summary = v::optional_text("summary", summary, v::HANDOFF_MAX_BYTES)?;
        let metadata = v::metadata(metadata)?;
        let now = self.now();
        self.write(|c| {
            edit_result_tx(c, task_id, &result, &summary, &metadata, now)?;
            load_task(c, task_id)
        })
    }

    /// `edit`: change title, body and priority, and (on a done task) backfill its result, summary
    /// and metadata — all in one transaction (Hermes ~0.22's `edit_task`). A result on a task
    /// that is not done is refused and nothing changes.
    pub fn edit_task(
        &self,
        task_id: &str,
        patch: TaskPatch,
        result: Option<ResultEdit<'_>>,
    ) -> Result<Task> {
        let title = patch.title.as_deref().map(v::title).transpose()?;
        let body = match &patch.body {
            None => None,
            Some(b) => Some(v::optional_text("body", b.as_deref(), v::BODY_MAX_BYTES)?),
        };
        let tenant = match &patch.tenant {
            None => None,
            Some(t) => Some(v::short_name("tenant", t.as_deref())?),
        };
        let priority = patch
            .priority
            .map(|p| v::in_range("priority", p, v::PRIORITY_RANGE))
            .transpose()?;
        let result = match result {
            None => None,
            Some(r) => Some((
                v::required_text("result", r.result, v::HANDOFF_MAX_BYTES)?,
                v::optional_text("summary", r.summary, v::HANDOFF_MAX_BYTES)?,
                v::metadata(r.metadata)?,
            )),
        };
        if title.is_none()
            && body.is_none()
            && tenant.is_none()
            && priority.is_none()
            && result.is_none()
        {
            return Err(KernelError::invalid(
                "edit",
                "nothing to change: give a title, body, priority or result",
            ));
        }
        let now = self.now();
        self.write(|c| {
            update_tx(c, task_id, &title, &body, &tenant, priority, now)?;
            if let Some((result, summary, metadata)) = &result {
                edit_result_tx(c, task_id, result, summary, metadata, now)?;
            }
            load_task(c, task_id)
        })
    }

    /// Archive a task from any status: clears the claim, closes an open run as `reclaimed`,
    /// event `archived`, then promotes children (archived parents satisfy them).
    pub fn archive_task(&self, task_id: &str) -> Result<Vec<String>> {
        let now = self.now();
        self.write(|c| {
            let t = load_task(c, task_id)?;
            if t.status == Status::Archived {
                return Err(KernelError::refused(task_id, "archive", "it is already archived"));
            }
            let run_id = end_run(
                c,
                &t,
                RunOutcome::Reclaimed,
                "reclaimed",
                Some("task archived with run still active"),
                None,
                None,
                now,
            )?;
            c.execute(
                "UPDATE tasks SET status='archived', claim_lock=NULL, claim_expires=NULL, worker_pid=NULL, worker_started_at=NULL WHERE id=?1",
                [task_id],
            )?;
            add_event(c, task_id, run_id, "archived", Map::new(), now)?;
            recompute_ready_tx(c, now)
        })
    }

    /// Permanently delete an archived task and its links, comments, events, runs and
    /// subscriptions (attachment rows and files are kept, as in Hermes).
    pub fn delete_archived_task(&self, task_id: &str) -> Result<()> {
        self.write(|c| {
            let t = load_task(c, task_id)?;
            if t.status != Status::Archived {
                return Err(KernelError::refused(
                    task_id,
                    "delete",
                    format!("status is '{}'; archive it first (only archived tasks can be removed with --rm)", t.status),
                ));
            }
            delete_rows(c, task_id)
        })
    }

    /// Hard-delete a task in any status (dashboard trash), then recompute readiness.
    pub fn delete_task(&self, task_id: &str) -> Result<Vec<String>> {
        let now = self.now();
        self.write(|c| {
            load_task(c, task_id)?;
            delete_rows(c, task_id)?;
            recompute_ready_tx(c, now)
        })
    }

    /// Counts by status and assignee (archived excluded) and the age of the oldest ready task.
    pub fn stats(&self) -> Result<Stats> {
        let now = self.now();
        self.read(|c| {
            let mut by_status = BTreeMap::new();
            let mut by_assignee: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
            let mut st = c.prepare(
                "SELECT assignee, status, count(*) FROM tasks WHERE status!='archived' GROUP BY assignee, status",
            )?;
            let rows = st.query_map([], |r| {
                Ok((r.get::<_, Option<String>>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })?;
            for row in rows {
                let (a, s, n) = row?;
                *by_status.entry(s.clone()).or_insert(0) += n;
                if let Some(a) = a {
                    *by_assignee.entry(a).or_default().entry(s).or_insert(0) += n;
                }
            }
            let oldest: Option<i64> = c.query_row(
                "SELECT min(created_at) FROM tasks WHERE status='ready'",
                [],
                |r| r.get(0),
            )?;
            Ok(Stats {
                by_status,
                by_assignee,
                oldest_ready_age_seconds: oldest.map(|t| (now - t).max(0)),
                now,
            })
        })
    }

    /// Live profiles on disk (see [`profile_state`], plus `default`) united with the assignees
    /// of non-archived tasks and the directories under `profiles/` that are not (or no longer)
    /// profiles, each with task counts by status. `on_disk` uses the same test as the
    /// dispatcher's spawnability check; `not_a_profile` says why a name is not spawnable as a
    /// profile (a `worker_command` entry can still make it spawnable).
    pub fn assignees(&self) -> Result<Vec<AssigneeInfo>> {
        let root = hermes_root(self.env());
        let mut map: BTreeMap<String, AssigneeInfo> = BTreeMap::new();
        let info = |name: &str| {
            let state = profile_state(&root, name);
            AssigneeInfo {
                name: name.to_string(),
                on_disk: state == ProfileState::Live,
                not_a_profile: state.reason(&root, name),
                counts: BTreeMap::new(),
            }
        };
        for name in on_disk_profiles(&root)
            .into_iter()
            .chain(profile_dirs(&root))
        {
            map.entry(name.clone()).or_insert_with(|| info(&name));
        }
        let rows: Vec<(String, String, i64)> = self.read(|c| {
            let mut st = c.prepare(
                "SELECT assignee, status, count(*) FROM tasks WHERE status!='archived' AND assignee IS NOT NULL GROUP BY assignee, status",
            )?;
            let v = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })?;
        for (a, s, n) in rows {
            map.entry(a.clone())
                .or_insert_with(|| info(&a))
                .counts
                .insert(s, n);
        }
        Ok(map.into_values().collect())
    }
}

/// A validated [`NewTask`], ready to insert.
#[derive(Debug, Clone)]
pub(crate) struct PreparedTask {
    pub(crate) title: String,
    pub(crate) body: Option<String>,
    pub(crate) assignee: Option<String>,
    pub(crate) tenant: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) created_by: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) project_id: Option<String>,
    pub(crate) priority: i64,
    pub(crate) max_runtime: Option<i64>,
    pub(crate) max_retries: Option<i64>,
    pub(crate) goal_max_turns: Option<i64>,
    pub(crate) skills: Vec<String>,
    pub(crate) kind: WorkspaceKind,
    pub(crate) branch: Option<String>,
    pub(crate) workspace_path: Option<String>,
    pub(crate) parents: Vec<String>,
    pub(crate) initial_status: InitialStatus,
    pub(crate) triage: bool,
    pub(crate) goal_mode: bool,
    pub(crate) model: Option<String>,
    pub(crate) provider: Option<String>,
    pub(crate) reasoning: Option<String>,
    pub(crate) completion_contract: Option<String>,
    /// The task whose worker is creating this one (`HERMES_KANBAN_TASK` in a worker's
    /// environment): recorded as `creator_task_id` and the source of inherited session and
    /// notify subscriptions, as upstream does (UP §7, §10).
    pub(crate) creator: Option<String>,
}

/// Insert a prepared task inside the caller's write transaction (idempotency lookup included).
pub(crate) fn insert_task_tx(c: &Tx, p: &PreparedTask, now: i64) -> Result<Created> {
    let PreparedTask {
        title,
        body,
        assignee,
        tenant,
        key,
        created_by,
        session_id,
        project_id,
        priority,
        max_runtime,
        max_retries,
        goal_max_turns,
        skills,
        kind,
        branch,
        workspace_path,
        parents,
        model,
        provider,
        reasoning,
        ..
    } = p;
    let new = p;
    let creator = match &p.creator {
        Some(t) => c.row::<String>("SELECT id FROM tasks WHERE id=?1", crate::args![t])?,
        None => None,
    };
    if let Some(k) = &key {
        let existing = query_tasks(
            c,
            "WHERE idempotency_key=?1 AND status!='archived' ORDER BY created_at DESC, rowid DESC LIMIT 1",
            &[json!(k)],
        )?;
        if let Some(task) = existing.into_iter().next() {
            return Ok(Created {
                task,
                existing: true,
            });
        }
    }
    for p in parents {
        load_task(c, p)
            .map_err(|_| KernelError::invalid("parents", format!("unknown parent task {p}")))?;
    }
    // A child without a tenant takes its first parent's (in the order given), as upstream's
    // `initial_task_state` does; an explicit tenant wins.
    let mut inherited = None;
    if tenant.is_none() {
        for p in parents {
            let t =
                c.row::<Option<String>>("SELECT tenant FROM tasks WHERE id=?1", crate::args![p])?;
            if let Some(Some(t)) = t.filter(|t| t.as_deref().is_some_and(|s| !s.is_empty())) {
                inherited = Some(t);
                break;
            }
        }
    }
    let tenant = if tenant.is_some() { tenant } else { &inherited };
    let status = if new.initial_status == InitialStatus::Blocked {
        Status::Blocked
    } else if new.triage {
        Status::Triage
    } else if parents_satisfied_list(c, parents)? {
        Status::Ready
    } else {
        Status::Todo
    };
    let skills_json = if skills.is_empty() {
        None
    } else {
        Some(serde_json::to_string(skills)?)
    };
    let mut id = new_task_id();
    for attempt in 0..3 {
        let r = c.execute(
                    "INSERT INTO tasks (id, title, body, assignee, status, priority, created_by, created_at,
                        workspace_kind, workspace_path, branch_name, project_id, tenant, idempotency_key,
                        max_runtime_seconds, skills, max_retries, goal_mode, goal_max_turns, session_id,
                        model_override, provider_override, reasoning_effort, completion_contract)
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24)",
                    params![
                        id, title, body, assignee, status.as_str(), priority, created_by, now,
                        kind.as_str(), workspace_path, branch, project_id, tenant, key, max_runtime,
                        skills_json, max_retries, new.goal_mode as i64, goal_max_turns, session_id,
                        model, provider, reasoning, new.completion_contract
                    ],
                );
        match r {
            Ok(_) => break,
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation && attempt < 2 =>
            {
                id = new_task_id();
            }
            Err(e) => return Err(e.into()),
        }
    }
    for p in parents {
        c.execute(
            "INSERT OR IGNORE INTO task_links (parent_id, child_id) VALUES (?1, ?2)",
            params![p, id],
        )?;
    }
    // Upstream's payload (UP §7): 0.19.0's keys plus creator, workspace and model fields.
    let mut created = obj! {
        "assignee" => assignee,
        "status" => status.as_str(),
        "parents" => parents,
        "creator_task_id" => creator,
        "tenant" => tenant,
        "workspace_kind" => kind.as_str(),
        "workspace_path" => workspace_path,
        "branch_name" => branch,
        "project_id" => project_id,
        "skills" => if skills.is_empty() { Value::Null } else { json!(skills) },
        "goal_mode" => if new.goal_mode { json!(true) } else { Value::Null },
        "model_override" => model,
        "provider_override" => provider,
    };
    if reasoning.is_some() {
        created.insert("reasoning_effort".into(), json!(reasoning));
    }
    add_event(c, &id, None, "created", created, now)?;
    if status == Status::Blocked {
        // A `blocked` event makes Hermes' recompute (0.19.0 and ~0.22) treat the block as
        // sticky too, so a Python reader on the same DB does not resurrect it. The payload is
        // upstream's (UP §6).
        add_event(
            c,
            &id,
            None,
            "blocked",
            obj! {"reason" => "initial_status", "status" => "blocked", "actor" => created_by},
            now,
        )?;
    }
    if status == Status::Todo {
        // Parked behind an open parent: say why, as upstream does (UP §7 `dependency_wait`).
        if let Some(gate) = first_open_parent(c, parents)? {
            add_event(
                c,
                &id,
                None,
                "dependency_wait",
                obj! {"reason" => "parent_not_done", "parent" => gate},
                now,
            )?;
        }
    }
    if let Some(creator) = &creator {
        c.exec(
            "UPDATE tasks SET session_id = COALESCE(session_id,
                 (SELECT session_id FROM tasks WHERE id = ?1)) WHERE id = ?2",
            crate::args![creator, id],
        )?;
        super::notify::inherit_subs_tx(c, &id, std::slice::from_ref(creator), now)?;
    }
    super::notify::inherit_subs_tx(c, &id, parents, now)?;
    Ok(Created {
        task: load_task(c, &id)?,
        existing: false,
    })
}

/// The first of `parents` (in the given order) that is neither done nor archived.
pub(crate) fn first_open_parent(c: &Tx, parents: &[String]) -> Result<Option<String>> {
    for p in parents {
        let open = c.exists(
            "SELECT 1 FROM tasks WHERE id=?1 AND status NOT IN ('done','archived')",
            crate::args![p],
        )?;
        if open {
            return Ok(Some(p.clone()));
        }
    }
    Ok(None)
}

/// Files that make a `profiles/<name>/` directory a profile (UP §10, Hermes'
/// `_PROFILE_IDENTITY_MARKERS`). A directory with none of them is a stray directory (cron
/// heartbeats, caches), not a profile.
pub const PROFILE_IDENTITY_FILES: [&str; 6] = [
    "config.yaml",
    ".env",
    "SOUL.md",
    "profile.yaml",
    "auth.json",
    "state.db",
];

/// What `<root>/profiles/<name>/` is, by Hermes ~0.22's rule (`named_profile_is_live`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileState {
    /// `default` (the root profile every home has) or a live named profile.
    Live,
    /// Not a valid profile name (it would not be a directory name under `profiles/`).
    InvalidName,
    /// No `profiles/<name>/` directory.
    Missing,
    /// The directory exists but holds none of [`PROFILE_IDENTITY_FILES`].
    NoIdentity,
    /// A tombstone `profiles/.deleted/<name>` exists: the profile was deleted.
    Deleted,
}

impl ProfileState {
    /// Why a profile in this state cannot be spawned (`None` when it can).
    pub fn reason(self, root: &std::path::Path, name: &str) -> Option<String> {
        let dir = root.join("profiles").join(name);
        match self {
            ProfileState::Live => None,
            ProfileState::InvalidName => Some(format!("{name:?} is not a valid profile name")),
            ProfileState::Missing => Some(format!("no profile directory {}", dir.display())),
            ProfileState::NoIdentity => Some(format!(
                "{} has none of {}: a bare directory is not a profile (add a config.yaml)",
                dir.display(),
                PROFILE_IDENTITY_FILES.join(", ")
            )),
            ProfileState::Deleted => Some(format!(
                "profile deleted (tombstone {})",
                root.join("profiles").join(".deleted").join(name).display()
            )),
        }
    }
}

/// Classify `profile` under `<root>/profiles/` (UP §10 "What counts as a profile"): `default`
/// is always live; a named profile needs a directory with at least one identity file (a
/// dangling symlink counts, as in Hermes) and no tombstone `profiles/.deleted/<name>`.
pub fn profile_state(root: &std::path::Path, profile: &str) -> ProfileState {
    if profile == "default" {
        return ProfileState::Live;
    }
    if v::profile_name("profile", Some(profile))
        .ok()
        .flatten()
        .as_deref()
        != Some(profile)
    {
        return ProfileState::InvalidName;
    }
    let profiles = root.join("profiles");
    let dir = profiles.join(profile);
    if !dir.is_dir() {
        return ProfileState::Missing;
    }
    if std::fs::symlink_metadata(profiles.join(".deleted").join(profile)).is_ok() {
        return ProfileState::Deleted;
    }
    let identity = PROFILE_IDENTITY_FILES.iter().any(|f| {
        let p = dir.join(f);
        p.is_file() || p.is_symlink()
    });
    if identity {
        ProfileState::Live
    } else {
        ProfileState::NoIdentity
    }
}

/// Directory names under `<root>/profiles/` that could be profiles (valid names), live or not.
fn profile_dirs(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(root.join("profiles")) {
        for e in rd.flatten() {
            if e.path().is_dir()
                && let Ok(n) = e.file_name().into_string()
                && v::profile_name("profile", Some(&n))
                    .ok()
                    .flatten()
                    .as_deref()
                    == Some(n.as_str())
            {
                out.push(n);
            }
        }
    }
    out
}

/// Live profile names under `<root>/profiles/` (see [`profile_state`]), plus `default`.
pub fn on_disk_profiles(root: &std::path::Path) -> Vec<String> {
    let mut out = vec!["default".to_string()];
    for n in profile_dirs(root) {
        if !out.contains(&n) && profile_state(root, &n) == ProfileState::Live {
            out.push(n);
        }
    }
    out
}

/// Whether `profile` can be spawned: `default` always; others when they are live profiles
/// ([`profile_state`]).
pub fn profile_exists(root: &std::path::Path, profile: &str) -> bool {
    profile_state(root, profile) == ProfileState::Live
}

fn update_tx(
    c: &Tx,
    task_id: &str,
    title: &Option<String>,
    body: &Option<Option<String>>,
    tenant: &Option<Option<String>>,
    priority: Option<i64>,
    now: i64,
) -> Result<()> {
    let t = load_task(c, task_id)?;
    let mut fields: Vec<&str> = Vec::new();
    if let Some(title) = &title
        && *title != t.title
    {
        c.execute(
            "UPDATE tasks SET title=?1 WHERE id=?2",
            params![title, task_id],
        )?;
        fields.push("title");
    }
    if let Some(body) = &body
        && *body != t.body
    {
        c.execute(
            "UPDATE tasks SET body=?1 WHERE id=?2",
            params![body, task_id],
        )?;
        fields.push("body");
    }
    if let Some(tenant) = &tenant
        && *tenant != t.tenant
    {
        c.execute(
            "UPDATE tasks SET tenant=?1 WHERE id=?2",
            params![tenant, task_id],
        )?;
        fields.push("tenant");
    }
    if !fields.is_empty() {
        add_event(c, task_id, None, "edited", obj! {"fields" => fields}, now)?;
    }
    if let Some(p) = priority
        && p != t.priority
    {
        c.execute(
            "UPDATE tasks SET priority=?1 WHERE id=?2",
            params![p, task_id],
        )?;
        add_event(
            c,
            task_id,
            None,
            "reprioritized",
            obj! {"priority" => p},
            now,
        )?;
    }
    Ok(())
}

fn edit_result_tx(
    c: &Tx,
    task_id: &str,
    result: &str,
    summary: &Option<String>,
    metadata: &Option<Map<String, Value>>,
    now: i64,
) -> Result<()> {
    let t = load_task(c, task_id)?;
    if t.status != Status::Done {
        return Err(KernelError::refused(
            task_id,
            "edit",
            format!(
                "status is '{}'; only done tasks can have their result edited",
                t.status
            ),
        ));
    }
    c.execute(
        "UPDATE tasks SET result=?1 WHERE id=?2",
        params![result, task_id],
    )?;
    let run_summary = summary.clone().unwrap_or_else(|| result.to_string());
    let meta_text = metadata
        .as_ref()
        .map(|m| Value::Object(m.clone()).to_string());
    let newest: Option<i64> = super::db::opt(c.query_row(
        "SELECT id FROM task_runs WHERE task_id=?1 AND outcome='completed' ORDER BY COALESCE(ended_at, started_at) DESC, id DESC LIMIT 1",
        [task_id],
        |r| r.get(0),
    ))?;
    let run_id = match newest {
        Some(rid) => {
            c.execute(
                "UPDATE task_runs SET summary=?1, metadata=COALESCE(?2, metadata) WHERE id=?3",
                params![run_summary, meta_text, rid],
            )?;
            rid
        }
        None => super::runs::synth_run(
            c,
            &t,
            RunOutcome::Completed,
            Some(&run_summary),
            None,
            metadata.as_ref(),
            now,
        )?,
    };
    let mut fields = vec!["result", "summary"];
    if metadata.is_some() {
        fields.push("metadata");
    }
    add_event(
        c,
        task_id,
        Some(run_id),
        "edited",
        obj! {"fields" => fields, "result_len" => result.chars().count(), "summary" => v::first_line(&run_summary, 400)},
        now,
    )?;
    Ok(())
}

pub(crate) fn assign_tx(
    c: &Tx,
    t: &Task,
    assignee: Option<&str>,
    source: Option<&str>,
    now: i64,
) -> Result<()> {
    if t.assignee.as_deref() == assignee {
        return Ok(());
    }
    c.execute(
        "UPDATE tasks SET assignee=?1, consecutive_failures=0, last_failure_error=NULL WHERE id=?2",
        params![assignee, t.id],
    )?;
    let mut payload = obj! {"assignee" => assignee};
    if let Some(s) = source {
        payload.insert("source".into(), json!(s));
    }
    add_event(c, &t.id, None, "assigned", payload, now)?;
    Ok(())
}

fn parents_satisfied_list(c: &Tx, parents: &[String]) -> Result<bool> {
    for p in parents {
        let t = load_task(c, p)?;
        if !t.status.satisfies_children() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn delete_rows(c: &Tx, task_id: &str) -> Result<()> {
    c.execute(
        "DELETE FROM task_links WHERE parent_id=?1 OR child_id=?1",
        [task_id],
    )?;
    c.execute("DELETE FROM task_comments WHERE task_id=?1", [task_id])?;
    c.execute("DELETE FROM task_events WHERE task_id=?1", [task_id])?;
    c.execute("DELETE FROM task_runs WHERE task_id=?1", [task_id])?;
    c.execute("DELETE FROM kanban_notify_subs WHERE task_id=?1", [task_id])?;
    c.execute("DELETE FROM tasks WHERE id=?1", [task_id])?;
    Ok(())
}
