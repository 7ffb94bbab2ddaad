//! Tool parameter types (REF §13.2). Their schemars derivations are the tools' input schemas,
//! written to `schemas/<tool>.json`. Lenient shapes Hermes accepts (a single string for a list,
//! `"true"` for a boolean) are modelled as untagged enums so the schema says so.

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A list of strings, or one string.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "expected a string or a list of strings")]
pub enum StringList {
    /// One value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl StringList {
    /// As a vector.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StringList::One(s) => vec![s],
            StringList::Many(v) => v,
        }
    }
}

/// A boolean, or one of "true"/"false"/"1"/"0"/"yes"/"no".
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "expected true or false")]
pub enum BoolLike {
    /// A JSON boolean.
    Bool(bool),
    /// A string spelling of a boolean.
    Text(String),
}

impl BoolLike {
    /// Interpret, or say what was wrong.
    pub fn get(&self, field: &str) -> Result<bool, String> {
        match self {
            BoolLike::Bool(b) => Ok(*b),
            BoolLike::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                other => Err(format!(
                    "invalid {field}: {other:?} is not a boolean (use true or false)"
                )),
            },
        }
    }
}

/// The schema of a free-form JSON object (`metadata`).
fn object_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object"})
}

/// `kanban_show`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShowParams {
    /// Task id; defaults to your own task when you are a worker.
    pub task_id: Option<String>,
    /// Board slug; defaults to the current board.
    pub board: Option<String>,
}

/// `kanban_complete`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CompleteParams {
    /// Task id; defaults to your own task.
    pub task_id: Option<String>,
    /// 1-3 sentence hand-off for the next agent: what was done, where, what is left.
    pub summary: Option<String>,
    /// Machine-readable hand-off facts as a JSON object, e.g. {"changed_files": [...], "tests": {"ran": 12}}.
    #[serde(default)]
    #[schemars(schema_with = "object_schema")]
    pub metadata: Option<Value>,
    /// Short legacy result text (use summary when you can).
    pub result: Option<String>,
    /// Ids of tasks you created with kanban_create in this run (verified; phantom ids refuse the completion).
    pub created_cards: Option<StringList>,
    /// Absolute paths of deliverable files; recorded in metadata.artifacts.
    pub artifacts: Option<StringList>,
    /// Board slug.
    pub board: Option<String>,
}

/// Why a task is blocked.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlockKindParam {
    /// Waiting on another task (goes to todo and resumes by itself).
    Dependency,
    /// A decision only a human can make.
    NeedsInput,
    /// Missing access or a tool.
    Capability,
    /// An outside failure that should pass.
    Transient,
}

/// `kanban_block`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct BlockParams {
    /// Task id; defaults to your own task.
    pub task_id: Option<String>,
    /// The question or missing piece, answerable in one reply.
    pub reason: String,
    /// Kind of block.
    pub kind: Option<BlockKindParam>,
    /// Board slug.
    pub board: Option<String>,
}

/// `kanban_heartbeat`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct HeartbeatParams {
    /// Task id; defaults to your own task.
    pub task_id: Option<String>,
    /// What you are doing right now.
    pub note: Option<String>,
    /// Board slug.
    pub board: Option<String>,
}

/// `kanban_comment`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CommentParams {
    /// Task to comment on (any task).
    pub task_id: String,
    /// Markdown body.
    pub body: String,
    /// Board slug.
    pub board: Option<String>,
}

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

/// `kanban_link`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct LinkParams {
    /// Task that must finish first.
    pub parent_id: String,
    /// Task that waits.
    pub child_id: String,
    /// Board slug.
    pub board: Option<String>,
}

/// Task statuses for filters.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusParam {
    /// triage
    Triage,
    /// todo
    Todo,
    /// scheduled
    Scheduled,
    /// ready
    Ready,
    /// running
    Running,
    /// blocked
    Blocked,
    /// review
    Review,
    /// done
    Done,
    /// archived
    Archived,
}

/// `kanban_list` (orchestrators only).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListParams {
    /// Only this assignee.
    pub assignee: Option<String>,
    /// Only this status.
    pub status: Option<StatusParam>,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Include archived tasks.
    pub include_archived: Option<BoolLike>,
    /// Page size (1-200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page (omit for the first page).
    pub cursor: Option<String>,
    /// Row fields to return (id is always included), e.g. ["title", "status", "children"].
    pub fields: Option<StringList>,
    /// Return every row field instead of the compact ones.
    pub verbose: Option<BoolLike>,
    /// Board slug.
    pub board: Option<String>,
}

/// `kanban_unblock` (orchestrators only).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UnblockParams {
    /// Blocked or scheduled task.
    pub task_id: String,
    /// Board slug.
    pub board: Option<String>,
}

/// `kanban_attach`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AttachParams {
    /// Task id; defaults to your own task.
    pub task_id: Option<String>,
    /// Plain file name (no directories).
    pub filename: String,
    /// File content, standard base64 (25 MiB decoded at most).
    pub content_base64: String,
    /// MIME type.
    pub content_type: Option<String>,
    /// Board slug.
    pub board: Option<String>,
}

/// `kanban_attachments`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AttachmentsParams {
    /// Task id; defaults to your own task.
    pub task_id: Option<String>,
    /// Board slug.
    pub board: Option<String>,
}

/// Check `args` against `tool`'s parameter type before the call. rmcp's own deserialisation
/// error does not say which argument was wrong ("invalid type: integer `5`, expected a
/// string"); this one does: `kanban_show: invalid task_id: invalid type: …`. `None` when the
/// arguments fit (or the tool is unknown).
pub(crate) fn argument_error(tool: &str, args: &Value) -> Option<String> {
    fn check<T: DeserializeOwned>(tool: &str, args: &Value) -> Option<String> {
        let err = serde_path_to_error::deserialize::<_, T>(args).err()?;
        let path = err.path().to_string();
        let inner = err.into_inner().to_string().replace('\n', " ");
        Some(if path == "." {
            format!("{tool}: {inner}")
        } else {
            format!("{tool}: invalid {path}: {inner}")
        })
    }
    match tool {
        "kanban_show" => check::<ShowParams>(tool, args),
        "kanban_complete" => check::<CompleteParams>(tool, args),
        "kanban_block" => check::<BlockParams>(tool, args),
        "kanban_heartbeat" => check::<HeartbeatParams>(tool, args),
        "kanban_comment" => check::<CommentParams>(tool, args),
        "kanban_create" => check::<CreateParams>(tool, args),
        "kanban_link" => check::<LinkParams>(tool, args),
        "kanban_list" => check::<ListParams>(tool, args),
        "kanban_unblock" => check::<UnblockParams>(tool, args),
        "kanban_attach" => check::<AttachParams>(tool, args),
        "kanban_attachments" => check::<AttachmentsParams>(tool, args),
        _ => None,
    }
}
