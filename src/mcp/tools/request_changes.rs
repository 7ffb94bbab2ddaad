//! `kanban_request_changes` — its parameters and its body: as the reviewer of a task claimed from
//! `review`: send it back to its implementer with what must change.

use super::*;

/// `kanban_request_changes`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RequestChangesParams {
    /// Task id; defaults to your own task (the one you are reviewing).
    pub task_id: Option<String>,
    /// What must change, concretely (required; the implementer gets it).
    pub reason: String,
    /// Board slug.
    pub board: Option<String>,
}

#[tool_router(router = request_changes_router, vis = "pub(super)")]
impl KanbanMcp {
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
                json!({"ok": true, "task_id": x.task_id, "run_id": x.run_id, "status": x.status,
                    "implementer": x.implementer, "reviewer": x.reviewer}),
            ),
            Err(e) => e,
        }
    }
}
