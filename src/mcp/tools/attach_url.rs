//! `kanban_attach_url` — its parameters and its body: download an http/https URL server-side and
//! attach it to your task (25 MiB at most).

use super::*;

/// `kanban_attach_url`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AttachUrlParams {
    /// Task id; defaults to your own task.
    pub task_id: Option<String>,
    /// The http or https URL to download (25 MiB at most; private, loopback and link-local
    /// addresses are refused, at every redirect).
    pub url: String,
    /// Plain file name to store it under (default: from the server's Content-Disposition, else
    /// the URL's last path segment).
    pub filename: Option<String>,
    /// MIME type (default: the server's Content-Type).
    pub content_type: Option<String>,
    /// Board slug.
    pub board: Option<String>,
}

#[tool_router(router = attach_url_router, vis = "pub(super)")]
impl KanbanMcp {
    /// Download an http/https URL server-side and attach it to your task (25 MiB at most).
    /// Private, loopback and link-local addresses are refused at every redirect hop.
    #[tool(annotations(
        title = "Attach URL",
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = true
    ))]
    async fn kanban_attach_url(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<AttachUrlParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_attach_url") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        if let Err(e) = self.own_only(&scope, &id, "kanban_attach_url") {
            return *e;
        }
        if let Some(f) = p.filename.as_deref()
            && let Err(e) = crate::kernel::attachment_name(f)
        {
            return fail(format!("kanban_attach_url: {e}"));
        }
        let opts = crate::fetch::FetchOptions::from_env(&self.state.env);
        let fetched = match crate::fetch::fetch_url(&p.url, &opts).await {
            Ok(f) => f,
            Err(e) => return fail(format!("kanban_attach_url: {e}")),
        };
        let name = p.filename.clone().unwrap_or_else(|| {
            crate::kernel::attachment_name(&fetched.filename).unwrap_or_else(|_| "download".into())
        });
        let ct = p.content_type.clone().or(fetched.content_type.clone());
        let url = fetched.final_url;
        match self
            .store_attachment(&scope, &p.board, &id, name, fetched.bytes, ct)
            .await
        {
            Ok((a, board)) => reply(
                &board,
                format!(
                    "Attached {} ({} bytes, attachment {}) from {url} to {id} on board {board}.",
                    a.filename, a.size, a.id
                ),
                json!({"ok": true, "task_id": id, "attachment_id": a.id, "filename": a.filename,
                    "size": a.size, "content_type": a.content_type, "url": url}),
            ),
            Err(e) => e,
        }
    }
}
