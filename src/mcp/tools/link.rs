//! `kanban_link` — its parameters and its body: make `child_id` wait for `parent_id` (cycles and
//! self-links are refused).

use super::*;

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

#[tool_router(router = link_router, vis = "pub(super)")]
impl KanbanMcp {
    /// Make `child_id` wait for `parent_id` (cycles and self-links are refused).
    #[tool(annotations(
        title = "Link tasks",
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn kanban_link(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<LinkParams>,
    ) -> CallToolResult {
        let (parent, child) = (
            p.parent_id.trim().to_string(),
            p.child_id.trim().to_string(),
        );
        let (pa, ch) = (parent.clone(), child.clone());
        match self
            .on_board(&scope, &p.board, move |b| b.link_tasks(&pa, &ch))
            .await
        {
            Ok(((), board)) => reply(
                &board,
                format!("Linked on board {board}: {child} now waits for {parent}."),
                json!({"ok": true, "parent_id": parent, "child_id": child}),
            ),
            Err(e) => e,
        }
    }
}
