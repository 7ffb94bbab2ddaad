//! `kanban_heartbeat` — its parameters and its body: say you are alive during long work (builds,
//! test runs, downloads): extends your claim and records a heartbeat with an optional note.

use super::*;

/// `kanban_heartbeat`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct HeartbeatParams {
    /// Task id; defaults to your own task.
    pub task_id: Option<String>,
    /// What you are doing right now.
    pub note: Option<String>,
    /// Board slug.
    pub board: Option<String>,
}

#[tool_router(router = heartbeat_router, vis = "pub(super)")]
impl KanbanMcp {
    /// Say you are alive during long work (builds, test runs, downloads): extends your claim and
    /// records a heartbeat with an optional note. Send one every few minutes.
    #[tool(annotations(
        title = "Heartbeat",
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn kanban_heartbeat(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<HeartbeatParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_heartbeat") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        if let Err(e) = self.own_only(&scope, &id, "kanban_heartbeat") {
            return *e;
        }
        let expected = self.expected_run(&scope, &id);
        let lock = match &scope {
            Scope::Worker { claim_lock, .. } => claim_lock.clone(),
            _ => None,
        };
        let note = p.note;
        let tid = id.clone();
        let r = self
            .on_board(&scope, &p.board, move |b| {
                // The kernel extends the claim for the dispatcher's lock or, over HTTP, for the
                // run the token proves; one transaction, a stale run refuses first.
                b.heartbeat_and_extend(&tid, note.as_deref(), expected, lock.as_deref())
            })
            .await;
        match r {
            Ok((_, board)) => reply(
                &board,
                format!("Heartbeat recorded for {id} on board {board}; claim extended."),
                json!({"ok": true, "task_id": id}),
            ),
            Err(e) => e,
        }
    }
}
