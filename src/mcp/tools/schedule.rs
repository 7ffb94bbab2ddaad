//! `kanban_schedule` — its parameters and its body: park your task in `scheduled` and end your
//! run: it is not dispatched again until someone unblocks it.

use super::*;

/// `kanban_schedule`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ScheduleParams {
    /// Task id; defaults to your own task.
    pub task_id: Option<String>,
    /// Why it is parked and when it should resume (no timer is set: put the wake-up condition
    /// here, e.g. "after the 02:00 data load").
    pub reason: Option<String>,
    /// Board slug.
    pub board: Option<String>,
}

#[tool_router(router = schedule_router, vis = "pub(super)")]
impl KanbanMcp {
    /// Park your task in `scheduled` and end your run: it is not dispatched again until someone
    /// unblocks it. No timer is set — say in `reason` when or on what it should resume.
    #[tool(annotations(
        title = "Schedule (park) task",
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn kanban_schedule(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<ScheduleParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_schedule") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        if let Err(e) = self.own_only(&scope, &id, "kanban_schedule") {
            return *e;
        }
        let reason = p
            .reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        let expected = self.expected_run(&scope, &id);
        let author = self.author(&scope);
        let tid = id.clone();
        match self
            .on_board(&scope, &p.board, move |b| {
                // A goal-mode task's loop treats `scheduled` as an ending: parking it would skip
                // the completion judgement (Hermes refuses it too).
                if b.get_task(&tid)?.goal_mode {
                    return Err(KernelError::refused(
                        &tid,
                        "schedule",
                        "goal-mode tasks cannot be scheduled: block it with a real outside \
                        blocker, or complete it",
                    ));
                }
                b.schedule_task(&tid, reason.as_deref(), expected, Some(&author))?;
                b.get_task(&tid)
            })
            .await
        {
            Ok((t, board)) => reply(
                &board,
                format!(
                    "Scheduled {} on board {board}: it stays parked until someone unblocks it; end \
                    your turn.",
                    t.id
                ),
                json!({"ok": true, "task_id": t.id, "status": t.status}),
            ),
            Err(e) => e,
        }
    }
}
