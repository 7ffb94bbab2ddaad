//! The kernel's value types — tasks, runs, events, comments, attachments, subscriptions — and
//! the enums for statuses, workspace kinds, block kinds and run outcomes, with their row mapping.
//! Reading is lenient (a Hermes DB may hold odd values); writing is strict.

use std::fmt;
use std::str::FromStr;

use super::store::{Cells, FromRow, Row, Val};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::KernelError;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $var),+ }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The on-disk spelling.
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $s),+ } }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = KernelError;
            fn from_str(s: &str) -> Result<Self, KernelError> {
                match s.trim() {
                    $($s => Ok($name::$var),)+
                    other => Err(KernelError::invalid(
                        stringify!($name),
                        format!("{other:?} is not one of: {}", [$($s),+].join(", ")),
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// Task status (REF §5).
    Status {
        /// Rough idea awaiting a spec.
        Triage => "triage",
        /// Waiting on parents, or parked.
        Todo => "todo",
        /// Waiting on time; never dispatched.
        Scheduled => "scheduled",
        /// Dispatchable.
        Ready => "ready",
        /// Claimed by a worker.
        Running => "running",
        /// Needs a human (or tripped the breaker).
        Blocked => "blocked",
        /// Review column.
        Review => "review",
        /// Finished.
        Done => "done",
        /// Hidden; satisfies dependencies.
        Archived => "archived",
    }
);

impl Status {
    /// Whether a parent in this status lets its children run (SPEC §3.3 fix 1: `done` or
    /// `archived`, everywhere).
    pub fn satisfies_children(self) -> bool {
        matches!(self, Status::Done | Status::Archived)
    }
}

string_enum!(
    /// Where a worker runs (REF §10.4).
    WorkspaceKind {
        /// A managed directory under the workspaces root, removed on completion.
        Scratch => "scratch",
        /// A user directory (absolute path), preserved.
        Dir => "dir",
        /// A git worktree, preserved.
        Worktree => "worktree",
    }
);

string_enum!(
    /// Typed block reasons (REF §5.2).
    BlockKind {
        /// Waiting on another task: the task goes to `todo`.
        Dependency => "dependency",
        /// Needs a human answer.
        NeedsInput => "needs_input",
        /// Lacks a capability (tool, access).
        Capability => "capability",
        /// A passing problem.
        Transient => "transient",
    }
);

string_enum!(
    /// How a run ended (REF §6.3).
    RunOutcome {
        /// Finished with a hand-off.
        Completed => "completed",
        /// Blocked by the worker or operator.
        Blocked => "blocked",
        /// Parked until later.
        Scheduled => "scheduled",
        /// The worker died.
        Crashed => "crashed",
        /// The worker exited 75.
        RateLimited => "rate_limited",
        /// Exceeded its max runtime.
        TimedOut => "timed_out",
        /// No heartbeat for too long.
        Stale => "stale",
        /// Could not be spawned.
        SpawnFailed => "spawn_failed",
        /// The circuit breaker tripped.
        GaveUp => "gave_up",
        /// Released back to ready.
        Reclaimed => "reclaimed",
        /// The implementer handed the task to a reviewer (upstream ~0.22, UP §4).
        ReviewRequested => "review_requested",
        /// The reviewer sent the task back to its implementer (UP §4).
        ChangesRequested => "changes_requested",
    }
);

/// One task row (every column of the 0.19.0 `tasks` table).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub body: Option<String>,
    pub assignee: Option<String>,
    pub status: Status,
    pub priority: i64,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub workspace_kind: String,
    pub workspace_path: Option<String>,
    pub branch_name: Option<String>,
    pub project_id: Option<String>,
    pub claim_lock: Option<String>,
    pub claim_expires: Option<i64>,
    pub tenant: Option<String>,
    pub result: Option<String>,
    pub idempotency_key: Option<String>,
    pub consecutive_failures: i64,
    pub worker_pid: Option<i64>,
    pub last_failure_error: Option<String>,
    pub max_runtime_seconds: Option<i64>,
    pub last_heartbeat_at: Option<i64>,
    pub current_run_id: Option<i64>,
    pub workflow_template_id: Option<String>,
    pub current_step_key: Option<String>,
    pub skills: Vec<String>,
    pub model_override: Option<String>,
    pub max_retries: Option<i64>,
    pub goal_mode: bool,
    pub goal_max_turns: Option<i64>,
    pub session_id: Option<String>,
    pub block_kind: Option<String>,
    pub block_recurrences: i64,
    /// Upstream ~0.22's completion contract (`local-only`, `OWNER/REPO` or a PR URL; UP §5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_contract: Option<String>,
    /// Upstream ~0.22's spawn fingerprint of `worker_pid` (UP §10): text like
    /// `<boot-id>:<n>|<start-ticks>` or `unverified`, NULL for a legacy row and for every pid we
    /// write. Only Hermes writes it.
    #[serde(skip)]
    pub worker_started_at: Option<String>,
    /// Provider for `model_override`, passed as `--provider` with `-m` (upstream 0.19.1).
    pub provider_override: Option<String>,
    /// Reasoning level passed as `--reasoning` (upstream 0.20.0); `None` = the profile's.
    pub reasoning_effort: Option<String>,
}

/// The column list every task query selects, in [`Task::from_row`] order.
pub(crate) const TASK_COLUMNS: &str = "id, title, body, assignee, status, priority, created_by, \
    created_at, started_at, completed_at, workspace_kind, workspace_path, branch_name, project_id, \
    claim_lock, claim_expires, tenant, result, idempotency_key, consecutive_failures, worker_pid, \
    last_failure_error, max_runtime_seconds, last_heartbeat_at, current_run_id, \
    workflow_template_id, current_step_key, skills, model_override, max_retries, goal_mode, \
    goal_max_turns, session_id, block_kind, block_recurrences, completion_contract, \
    worker_started_at, provider_override, reasoning_effort";

/// Integer column read leniently: integers, reals (truncated) and numeric text are accepted,
/// anything else is `None` (Hermes DBs may hold odd timestamps).
pub(crate) fn lenient_i64(row: &impl Cells, idx: usize) -> Option<i64> {
    match row.cell(idx)? {
        Val::Int(i) => Some(i),
        Val::Real(f) if f.is_finite() => Some(f as i64),
        Val::Text(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f as i64)
            })
        }
        _ => None,
    }
}

/// Text column read leniently (blobs decoded lossily, numbers formatted).
pub(crate) fn lenient_text(row: &impl Cells, idx: usize) -> Option<String> {
    match row.cell(idx)? {
        Val::Text(t) => Some(t.to_string()),
        Val::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
        Val::Int(i) => Some(i.to_string()),
        Val::Real(f) => Some(f.to_string()),
        Val::Null => None,
    }
}

/// The `status` column (an unknown or missing status reads as `todo`).
pub(crate) fn status_cell(row: &impl Cells, idx: usize) -> Status {
    let text = lenient_text(row, idx).unwrap_or_default();
    Status::from_str(&text).unwrap_or(Status::Todo)
}

/// The `skills` column: a JSON array of names; anything else reads as none.
pub(crate) fn skills_cell(row: &impl Cells, idx: usize) -> Vec<String> {
    lenient_text(row, idx)
        .and_then(|s| serde_json::from_str::<Vec<String>>(&s).ok())
        .unwrap_or_default()
}

/// Parse a JSON column into a value; malformed JSON is kept as a string.
pub(crate) fn json_column(text: Option<String>) -> Option<Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

/// The text primary key in column `i` (strict: a task row without a text id is a storage error).
pub(crate) fn text_key(r: &impl Cells, i: usize) -> super::error::Result<String> {
    match r.cell(i) {
        Some(Val::Text(s)) => Ok(s.to_string()),
        _ => Err(KernelError::Storage(format!(
            "column {i}: expected a text id"
        ))),
    }
}

/// The integer primary key in column `i` (strict, as `INTEGER PRIMARY KEY` guarantees).
fn int_key(r: &impl Cells, i: usize) -> super::error::Result<i64> {
    match r.cell(i) {
        Some(Val::Int(n)) => Ok(n),
        _ => Err(KernelError::Storage(format!(
            "column {i}: expected an integer id"
        ))),
    }
}

impl FromRow for Task {
    fn from_row(r: &Row<'_>) -> super::error::Result<Task> {
        Task::from_cells(r, 0)
    }
}

impl FromRow for Run {
    fn from_row(r: &Row<'_>) -> super::error::Result<Run> {
        Run::from_cells(r)
    }
}

impl FromRow for Event {
    fn from_row(r: &Row<'_>) -> super::error::Result<Event> {
        Event::from_cells(r)
    }
}

impl Task {
    /// Read a task whose [`TASK_COLUMNS`] start at column `o` (lenient but for the id).
    pub(crate) fn from_cells(r: &impl Cells, o: usize) -> super::error::Result<Task> {
        let status = status_cell(r, o + 4);
        let skills = skills_cell(r, o + 27);
        Ok(Task {
            id: text_key(r, o)?,
            title: lenient_text(r, o + 1).unwrap_or_default(),
            body: lenient_text(r, o + 2),
            assignee: lenient_text(r, o + 3),
            status,
            priority: lenient_i64(r, o + 5).unwrap_or(0),
            created_by: lenient_text(r, o + 6),
            created_at: lenient_i64(r, o + 7).unwrap_or(0),
            started_at: lenient_i64(r, o + 8),
            completed_at: lenient_i64(r, o + 9),
            workspace_kind: lenient_text(r, o + 10).unwrap_or_else(|| "scratch".into()),
            workspace_path: lenient_text(r, o + 11),
            branch_name: lenient_text(r, o + 12),
            project_id: lenient_text(r, o + 13),
            claim_lock: lenient_text(r, o + 14),
            claim_expires: lenient_i64(r, o + 15),
            tenant: lenient_text(r, o + 16),
            result: lenient_text(r, o + 17),
            idempotency_key: lenient_text(r, o + 18),
            consecutive_failures: lenient_i64(r, o + 19).unwrap_or(0),
            worker_pid: lenient_i64(r, o + 20),
            last_failure_error: lenient_text(r, o + 21),
            max_runtime_seconds: lenient_i64(r, o + 22),
            last_heartbeat_at: lenient_i64(r, o + 23),
            current_run_id: lenient_i64(r, o + 24),
            workflow_template_id: lenient_text(r, o + 25),
            current_step_key: lenient_text(r, o + 26),
            skills,
            model_override: lenient_text(r, o + 28),
            max_retries: lenient_i64(r, o + 29),
            goal_mode: lenient_i64(r, o + 30).unwrap_or(0) != 0,
            goal_max_turns: lenient_i64(r, o + 31),
            session_id: lenient_text(r, o + 32),
            block_kind: lenient_text(r, o + 33),
            block_recurrences: lenient_i64(r, o + 34).unwrap_or(0),
            completion_contract: lenient_text(r, o + 35),
            worker_started_at: lenient_text(r, o + 36),
            provider_override: lenient_text(r, o + 37).filter(|s| !s.trim().is_empty()),
            reasoning_effort: lenient_text(r, o + 38).filter(|s| !s.trim().is_empty()),
        })
    }

    /// The task dict of `hermes kanban … --json` (REF §15.3), same keys in the same order.
    pub fn to_hermes_json(&self) -> Value {
        json!({
            "id": self.id,
            "title": self.title,
            "body": self.body,
            "assignee": self.assignee,
            "status": self.status,
            "priority": self.priority,
            "tenant": self.tenant,
            "workspace_kind": self.workspace_kind,
            "workspace_path": self.workspace_path,
            "branch_name": self.branch_name,
            "project_id": self.project_id,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "result": self.result,
            "skills": self.skills,
            "max_retries": self.max_retries,
            "session_id": self.session_id,
            "workflow_template_id": self.workflow_template_id,
            "current_step_key": self.current_step_key,
        })
    }
}

/// One attempt (`task_runs` row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub id: i64,
    pub task_id: String,
    pub profile: Option<String>,
    pub step_key: Option<String>,
    pub status: String,
    pub claim_lock: Option<String>,
    pub claim_expires: Option<i64>,
    pub worker_pid: Option<i64>,
    pub max_runtime_seconds: Option<i64>,
    pub last_heartbeat_at: Option<i64>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub outcome: Option<String>,
    pub summary: Option<String>,
    pub metadata: Option<Value>,
    pub error: Option<String>,
}

pub(crate) const RUN_COLUMNS: &str = "id, task_id, profile, step_key, status, claim_lock, \
    claim_expires, worker_pid, max_runtime_seconds, last_heartbeat_at, started_at, ended_at, \
    outcome, summary, metadata, error";

impl Run {
    pub(crate) fn from_cells(r: &impl Cells) -> super::error::Result<Run> {
        Ok(Run {
            id: int_key(r, 0)?,
            task_id: lenient_text(r, 1).unwrap_or_default(),
            profile: lenient_text(r, 2),
            step_key: lenient_text(r, 3),
            status: lenient_text(r, 4).unwrap_or_default(),
            claim_lock: lenient_text(r, 5),
            claim_expires: lenient_i64(r, 6),
            worker_pid: lenient_i64(r, 7),
            max_runtime_seconds: lenient_i64(r, 8),
            last_heartbeat_at: lenient_i64(r, 9),
            started_at: lenient_i64(r, 10).unwrap_or(0),
            ended_at: lenient_i64(r, 11),
            outcome: lenient_text(r, 12),
            summary: lenient_text(r, 13),
            metadata: json_column(lenient_text(r, 14)),
            error: lenient_text(r, 15),
        })
    }

    /// The run dict of `hermes kanban runs --json` (REF §15.2).
    pub fn to_hermes_json(&self) -> Value {
        json!({
            "id": self.id,
            "profile": self.profile,
            "status": self.status,
            "outcome": self.outcome,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "summary": self.summary,
            "error": self.error,
            "metadata": self.metadata,
            "worker_pid": self.worker_pid,
            "step_key": self.step_key,
        })
    }
}

/// One `task_events` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: i64,
    pub task_id: String,
    pub run_id: Option<i64>,
    pub kind: String,
    pub payload: Option<Value>,
    pub created_at: i64,
}

pub(crate) const EVENT_COLUMNS: &str = "id, task_id, run_id, kind, payload, created_at";

impl Event {
    pub(crate) fn from_cells(r: &impl Cells) -> super::error::Result<Event> {
        Ok(Event {
            id: int_key(r, 0)?,
            task_id: lenient_text(r, 1).unwrap_or_default(),
            run_id: lenient_i64(r, 2),
            kind: lenient_text(r, 3).unwrap_or_default(),
            payload: json_column(lenient_text(r, 4)),
            created_at: lenient_i64(r, 5).unwrap_or(0),
        })
    }
}

/// One `task_comments` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comment {
    pub id: i64,
    pub task_id: String,
    pub author: String,
    pub body: String,
    pub created_at: i64,
}

/// One `task_attachments` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attachment {
    pub id: i64,
    pub task_id: String,
    pub filename: String,
    pub stored_path: String,
    pub content_type: Option<String>,
    pub size: i64,
    pub uploaded_by: Option<String>,
    pub created_at: i64,
}

/// One `kanban_notify_subs` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotifySub {
    pub task_id: String,
    pub platform: String,
    pub chat_id: String,
    pub thread_id: String,
    pub user_id: Option<String>,
    pub notifier_profile: Option<String>,
    pub created_at: i64,
    pub last_event_id: i64,
}

/// Serialize a payload map for storage: empty maps become NULL (as Hermes does).
pub(crate) fn payload_text(payload: &Map<String, Value>) -> Option<String> {
    if payload.is_empty() {
        None
    } else {
        Some(Value::Object(payload.clone()).to_string())
    }
}
