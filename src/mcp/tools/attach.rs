//! `kanban_attach` — its parameters and its body: attach a file to your task (base64 content, 25
//! MiB at most, plain file name).

use super::*;

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

#[tool_router(router = attach_router, vis = "pub(super)")]
impl KanbanMcp {
    /// Attach a file to your task (base64 content, 25 MiB at most, plain file name). Use it for
    /// deliverables that must outlive a scratch workspace.
    #[tool(annotations(
        title = "Attach file",
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn kanban_attach(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<AttachParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_attach") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        if let Err(e) = self.own_only(&scope, &id, "kanban_attach") {
            return *e;
        }
        let max_encoded = crate::kernel::validate::ATTACHMENT_MAX_BYTES.div_ceil(3) * 4 + 4;
        // Line breaks (as `base64` prints them) are allowed; strip them in place rather than
        // copying a payload that may be 34 MB.
        let mut cleaned = p.content_base64.into_bytes();
        cleaned.retain(|b| !b.is_ascii_whitespace());
        if cleaned.len() > max_encoded {
            return fail(
                "kanban_attach: content is larger than 25 MiB; attach a smaller file or link to it \
                in a comment",
            );
        }
        let bytes = match base64::engine::general_purpose::STANDARD.decode(&cleaned) {
            Ok(b) => b,
            Err(e) => {
                return fail(format!(
                    "kanban_attach: content_base64 is not valid base64 ({e})"
                ));
            }
        };
        if let Err(e) = crate::kernel::attachment_name(&p.filename) {
            return fail(format!("kanban_attach: {e}"));
        }
        match self
            .store_attachment(&scope, &p.board, &id, p.filename, bytes, p.content_type)
            .await
        {
            Ok((a, board)) => reply(
                &board,
                format!(
                    "Attached {} ({} bytes, attachment {}) to {id} on board {board}.",
                    a.filename, a.size, a.id
                ),
                json!({"ok": true, "task_id": id, "attachment_id": a.id, "size": a.size}),
            ),
            Err(e) => e,
        }
    }
}
