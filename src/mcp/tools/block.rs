//! `kanban_block` — its parameters and its body: stop and ask a human: block the task with a
//! reason answerable in one reply.

use super::*;

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

#[tool_router(router = block_router, vis = "pub(super)")]
impl KanbanMcp {
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
            .on_board(&scope, &p.board, move |b| b.block_task(req))
            .await
        {
            Ok((x, board)) => reply(
                &board,
                format!(
                    "Blocked {} ({}, now {}) on board {board}; end your turn.",
                    x.task_id,
                    x.block_kind
                        .map_or("blocked".to_string(), |k| k.to_string()),
                    x.status
                ),
                json!({"ok": true, "task_id": x.task_id, "run_id": x.run_id, "status": x.status,
                    "block_kind": x.block_kind}),
            ),
            Err(e) => e,
        }
    }
}
