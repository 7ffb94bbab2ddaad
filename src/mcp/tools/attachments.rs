//! `kanban_attachments` — its parameters and its body: list a task's attachments with their
//! absolute stored paths.

use super::*;

/// `kanban_attachments`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AttachmentsParams {
    /// Task id; defaults to your own task.
    pub task_id: Option<String>,
    /// Board slug.
    pub board: Option<String>,
}

#[tool_router(router = attachments_router, vis = "pub(super)")]
impl KanbanMcp {
    /// List a task's attachments with their absolute stored paths.
    #[tool(annotations(
        title = "List attachments",
        read_only_hint = true,
        open_world_hint = false
    ))]
    async fn kanban_attachments(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<AttachmentsParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_attachments") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        let tid = id.clone();
        let r = self
            .on_board(&scope, &p.board, move |b| {
                b.get_task(&tid)?;
                b.list_attachments(&tid)
            })
            .await;
        match r {
            Ok((list, board)) => {
                let mut text = format!(
                    "{} attachment(s) on {id} (board {board}){}",
                    list.len(),
                    if list.is_empty() { "." } else { ":" }
                );
                for a in &list {
                    text.push_str(&format!(
                        "\n- {} ({} bytes, id {}) at {}",
                        a.filename, a.size, a.id, a.stored_path
                    ));
                }
                reply(
                    &board,
                    text,
                    json!({"ok": true, "task_id": id, "attachments": list.iter().map(|a| json!({
                        "id": a.id, "filename": a.filename, "content_type": a.content_type,
                        "size": a.size, "uploaded_by": a.uploaded_by,
                        "stored_path": a.stored_path, "created_at": a.created_at,
                    })).collect::<Vec<_>>()}),
                )
            }
            Err(e) => e,
        }
    }
}
