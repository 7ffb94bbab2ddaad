//! `kanban_request_review` — its parameters and its body: hand your task to a reviewer: it moves
//! to `review`, your run ends, and the reviewer (a profile; default: the one who last requested
//! changes) is started on it.

use super::*;

/// `kanban_request_review`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RequestReviewParams {
    /// Task id; defaults to your own task.
    pub task_id: Option<String>,
    /// What was implemented and how it was verified (required; the reviewer reads it first).
    pub summary: String,
    /// Profile that reviews (lower-cased; becomes the assignee). Default: the reviewer who
    /// last requested changes, else the assignee is kept.
    pub reviewer: Option<String>,
    /// Hand-off facts as a JSON object (changed files, tests, decisions).
    pub metadata: Option<Value>,
    /// Absolute paths of deliverable files for the reviewer.
    pub artifacts: Option<StringList>,
    /// Board slug.
    pub board: Option<String>,
}

#[tool_router(router = request_review_router, vis = "pub(super)")]
impl KanbanMcp {
    /// Hand your task to a reviewer: it moves to `review`, your run ends, and the reviewer
    /// (a profile; default: the one who last requested changes) is started on it. Put what you
    /// did and how you checked it in `summary`, the facts in `metadata`. Use it instead of
    /// blocking for review — a review is not a block. If review or QA tasks already depend on
    /// yours, complete it instead.
    #[tool(annotations(
        title = "Request review",
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn kanban_request_review(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<RequestReviewParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_request_review") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        if let Err(e) = self.own_only(&scope, &id, "kanban_request_review") {
            return *e;
        }
        if p.summary.trim().is_empty() {
            return fail(
                "kanban_request_review: summary is required; describe what was implemented and how \
                it was verified so the reviewer has context",
            );
        }
        let mut metadata = match object_arg("kanban_request_review", p.metadata) {
            Ok(m) => m,
            Err(e) => return *e,
        };
        let artifacts = p.artifacts.map(StringList::into_vec).unwrap_or_default();
        if !artifacts.is_empty() {
            metadata
                .get_or_insert_with(Default::default)
                .insert("artifacts".into(), json!(artifacts));
        }
        let req = crate::kernel::ReviewRequest {
            task_id: id.clone(),
            summary: Some(p.summary),
            metadata: metadata.map(Value::Object),
            reviewer: p.reviewer,
            expected_run_id: self.expected_run(&scope, &id),
            force: false,
        };
        let root = crate::kernel::hermes_root(&self.state.env);
        if let Some(r) = req
            .reviewer
            .as_deref()
            .map(|r| r.trim().to_lowercase())
            .filter(|r| !r.is_empty())
            && !crate::kernel::profile_exists(&root, &r)
            && !crate::dispatch::config::KanbanConfig::load(&self.state.env)
                .0
                .worker_command
                .by_assignee
                .contains_key(&r)
        {
            return fail(format!(
                "kanban_request_review: reviewer {r:?} is not a profile on this machine ({}); name \
                an installed profile",
                crate::kernel::profile_state(&root, &r)
                    .reason(&root, &r)
                    .unwrap_or_default()
            ));
        }
        match self
            .on_board(&scope, &p.board, move |b| b.request_review(req))
            .await
        {
            Ok((x, board)) => reply(
                &board,
                format!(
                    "Review requested for {} on board {board} (reviewer {}); end your turn.",
                    x.task_id,
                    x.reviewer.as_deref().unwrap_or("unchanged")
                ),
                json!({"ok": true, "task_id": x.task_id, "run_id": x.run_id, "status": "review",
                    "reviewer": x.reviewer, "implementer": x.implementer}),
            ),
            Err(e) => e,
        }
    }
}
