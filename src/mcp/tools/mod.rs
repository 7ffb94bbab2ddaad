//! The `kanban_*` tools, one file per tool with its parameter types beside its body
//! (`show.rs` is `kanban_show`, …). Each body validates the caller's scope (a worker mutates
//! only its own task), calls one kernel function on the right board, and answers with
//! [`reply`]: a compact text form for the model plus the JSON as `structuredContent` (no
//! field twice within one block; both name the board acted on, as `"board"`), or an `isError`
//! result with one line. This file holds what the tools share: the reply and error helpers,
//! the lenient parameter shapes ([`StringList`], [`BoolLike`]), scoping and board access
//! ([`KanbanMcp::on_board`]), the argument check that names the bad argument, and the sum of
//! the per-tool routers.
//!
//! Adding a tool: a new `<tool>.rs` with its parameter struct (doc comments become the
//! schema's descriptions; [`super::portable`] keeps the schema portable) and a
//! `#[tool_router(router = <tool>_router)]` block whose `#[tool]` method runs the kernel
//! through [`KanbanMcp::on_board`] and returns `reply(text, json)`; add its router to
//! [`KanbanMcp::tool_router`] and its params to [`argument_error`], name it in
//! `WORKER_TOOLS` or `ORCHESTRATOR_TOOLS`, and regenerate `schemas/`
//! (`cargo test --test mcp_schemas`).

#![allow(unused_imports)] // the shared imports below serve the tool files (`use super::*`)

use base64::Engine;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

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

mod attach;
mod attach_url;
mod attachments;
mod block;
mod comment;
mod complete;
mod create;
mod heartbeat;
mod link;
mod list;
mod request_changes;
mod request_review;
mod schedule;
mod show;
mod unblock;

pub use attach::*;
pub use attach_url::*;
pub use attachments::*;
pub use block::*;
pub use comment::*;
pub use complete::*;
pub use create::*;
pub use heartbeat::*;
pub use link::*;
pub use list::*;
pub use request_changes::*;
pub use request_review::*;
pub use schedule::*;
pub use show::*;
pub use unblock::*;

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
    fail(described(&e))
}

/// A kernel error's message; a transient one (the database busy or unreachable) says that
/// the same call can be retried, so an agent tries again rather than gives up.
fn described(e: &KernelError) -> String {
    match e {
        KernelError::Unavailable { .. } => format!("{e}; the call can be retried"),
        KernelError::Busy => format!("{e} (the call can be retried)"),
        e => e.to_string(),
    }
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
                "{tool}: worker is scoped to task {own}; refusing to mutate {task_id} (comment on \
                it or create a follow-up instead)"
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
                        path: b.location().into(),
                    }))
                }
                Err(e) => Err(fail(format!("{} (board {slug})", described(&e)))),
            })
        };
        let r = if state.stdio_scope.is_some() && state.home.database_url().is_none() {
            // stdio serves one client on a current-thread runtime: run inline and skip the
            // thread hand-offs (they dominated latency). Not on PostgreSQL: every statement
            // waits on the network, which must not stall the runtime's one thread.
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
        "kanban_attach_url" => check::<AttachUrlParams>(tool, args),
        "kanban_schedule" => check::<ScheduleParams>(tool, args),
        "kanban_request_review" => check::<RequestReviewParams>(tool, args),
        "kanban_request_changes" => check::<RequestChangesParams>(tool, args),
        _ => None,
    }
}

impl KanbanMcp {
    /// Every tool's route: each tool's file contributes its own router.
    pub(crate) fn tool_router() -> ToolRouter<KanbanMcp> {
        Self::show_router()
            + Self::complete_router()
            + Self::block_router()
            + Self::heartbeat_router()
            + Self::comment_router()
            + Self::create_router()
            + Self::link_router()
            + Self::list_router()
            + Self::unblock_router()
            + Self::attach_router()
            + Self::request_review_router()
            + Self::request_changes_router()
            + Self::schedule_router()
            + Self::attach_url_router()
            + Self::attachments_router()
    }
}
