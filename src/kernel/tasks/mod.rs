//! Task rows: the request and result types of create, list, edit and stats, and the one task
//! query helper. The operations live by what they do: [`create`] (validation, race-free
//! idempotency, parents, initial status), [`query`] (get, list, page keys, stats, assignees),
//! [`edit`] (assign/reassign, model, workspace, fields, result backfill), [`delete`] (archive,
//! delete and what a deleted task leaves behind) and [`profiles`] (what counts as a profile).

mod create;
mod delete;
mod edit;
mod profiles;
mod query;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::error::Result;
use super::store::{Tx, arg_refs};
use super::types::{Status, TASK_COLUMNS, Task, WorkspaceKind};

pub(crate) use create::{PreparedTask, insert_task_tx};
pub(crate) use edit::assign_tx;
pub use profiles::{
    PROFILE_IDENTITY_FILES, ProfileState, on_disk_profiles, profile_exists, profile_state,
};
pub(crate) use query::list_tail;

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
    /// asc, insertion order asc). Stable under inserts; only with the default sort.
    pub after: Option<PageKey>,
}

/// A position in the default list order, for keyset paging ([`Board::page_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageKey {
    /// The task's priority.
    pub priority: i64,
    /// Its creation time.
    pub created_at: i64,
    /// Its insertion order (`_seq_`, SQLite's rowid: the final tie-breaker of the default
    /// order). The field keeps its name because the MCP cursor carries it.
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

/// Tasks matching `where_sql` (a `WHERE … ORDER BY … LIMIT …` tail with `?N` placeholders
/// bound to `args`; strings and numbers only).
pub(crate) fn query_tasks(c: &Tx, where_sql: &str, args: &[Value]) -> Result<Vec<Task>> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks {where_sql}");
    c.rows(&sql, &arg_refs(args))
}
