//! `kanban_comment` — its parameters and its body: comment on any task (markdown).

use super::*;

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

#[tool_router(router = comment_router, vis = "pub(super)")]
impl KanbanMcp {
    /// Comment on any task (markdown). Use it to leave structured notes for humans and other
    /// agents; the author is your profile.
    #[tool(annotations(title = "Comment", destructive_hint = false, open_world_hint = false))]
    async fn kanban_comment(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<CommentParams>,
    ) -> CallToolResult {
        let author = self.author(&scope);
        let id = p.task_id.trim().to_string();
        let body = p.body;
        match self
            .on_board(&scope, &p.board, move |b| {
                b.add_comment(&id, &author, &body).map(|c| (id, c))
            })
            .await
        {
            Ok(((id, c), board)) => reply(
                &board,
                format!("Comment {c} added to {id} on board {board}."),
                json!({"ok": true, "task_id": id, "comment_id": c}),
            ),
            Err(e) => e,
        }
    }
}
