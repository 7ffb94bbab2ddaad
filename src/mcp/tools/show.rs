//! `kanban_show` — its parameters and its body: read a task: `worker_context` — the markdown to
//! orient with (body, attachments, parent hand-offs, prior attempts, comment thread) — plus its
//! fields, parents, children, runs and last 50 events.

use super::*;

/// `kanban_show`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShowParams {
    /// Task id; defaults to your own task when you are a worker.
    pub task_id: Option<String>,
    /// Board slug; defaults to the current board.
    pub board: Option<String>,
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
            "workspace_path": t.workspace_path, "created_by": t.created_by,
            "created_at": t.created_at, "started_at": t.started_at,
            "completed_at": t.completed_at, "result": t.result,
            "current_run_id": t.current_run_id, "model_override": t.model_override,
            "provider_override": t.provider_override, "reasoning_effort": t.reasoning_effort,
            "completion_contract": t.completion_contract,
            "block_kind": t.block_kind, "last_failure_error": t.last_failure_error,
        })),
        "parents": parents,
        "unsatisfied_parents": b.unsatisfied_parents(id)?.into_iter()
            .map(|(id, s)| json!({"id": id, "status": s})).collect::<Vec<_>>(),
        "children": children,
        "events": events.iter().map(|e| lean(json!({
            "kind": e.kind, "payload": e.payload, "created_at": e.created_at, "run_id": e.run_id,
        }))).collect::<Vec<_>>(),
        "runs": runs.iter().map(|r| lean(json!({
            "id": r.id, "profile": r.profile, "status": r.status, "outcome": r.outcome,
            "summary": r.summary, "error": r.error, "metadata": r.metadata,
            "started_at": r.started_at, "ended_at": r.ended_at,
        }))).collect::<Vec<_>>(),
        "worker_context": context,
    });
    Ok((text, v))
}

#[tool_router(router = show_router, vis = "pub(super)")]
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
}
