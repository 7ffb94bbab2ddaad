//! `kanban_unblock` — its parameters and its body: unblock a blocked or scheduled task
//! (orchestrators only): it goes to ready, or to todo while a parent is unfinished.

use super::*;

/// `kanban_unblock` (orchestrators only).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UnblockParams {
    /// Blocked or scheduled task.
    pub task_id: String,
    /// Board slug.
    pub board: Option<String>,
}

#[tool_router(router = unblock_router, vis = "pub(super)")]
impl KanbanMcp {
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
}
