//! `kanban_complete` — its parameters and its body: finish your task with a hand-off: `summary`
//! (1-3 sentences: what was done, where, what is left) and `metadata` (a JSON object of facts such
//! as changed_files, tests, decisions).

use super::*;

/// `kanban_complete`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CompleteParams {
    /// Task id; defaults to your own task.
    pub task_id: Option<String>,
    /// 1-3 sentence hand-off for the next agent: what was done, where, what is left.
    pub summary: Option<String>,
    #[doc = " Machine-readable hand-off facts as a JSON object, e.g. {\"changed_files\": [...], \
             \"tests\": {\"ran\": 12}}."]
    #[serde(default)]
    #[schemars(schema_with = "object_schema")]
    pub metadata: Option<Value>,
    /// Short legacy result text (use summary when you can).
    pub result: Option<String>,
    #[doc = " Ids of tasks you created with kanban_create in this run (verified; phantom ids \
             refuse the completion)."]
    pub created_cards: Option<StringList>,
    /// Absolute paths of deliverable files; recorded in metadata.artifacts.
    pub artifacts: Option<StringList>,
    /// Board slug.
    pub board: Option<String>,
}

#[tool_router(router = complete_router, vis = "pub(super)")]
impl KanbanMcp {
    /// Finish your task with a hand-off: `summary` (1-3 sentences: what was done, where, what is
    /// left) and `metadata` (a JSON object of facts such as changed_files, tests, decisions).
    /// Children waiting on this task start with your hand-off. Give at least summary or result.
    #[tool(annotations(
        title = "Complete task",
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn kanban_complete(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<CompleteParams>,
    ) -> CallToolResult {
        let id = match self.target(&scope, p.task_id, "kanban_complete") {
            Ok(i) => i,
            Err(e) => return *e,
        };
        if let Err(e) = self.own_only(&scope, &id, "kanban_complete") {
            return *e;
        }
        let has = |s: &Option<String>| s.as_deref().is_some_and(|x| !x.trim().is_empty());
        if !has(&p.summary) && !has(&p.result) {
            return fail("kanban_complete: provide at least one of: summary (preferred), result");
        }
        let mut metadata = match object_arg("kanban_complete", p.metadata) {
            Ok(m) => m,
            Err(e) => return *e,
        };
        if let Scope::Worker { task_id: own, .. } = &scope
            && own == &id
            && let Some(session) = self.state.env.get("HERMES_SESSION_ID")
        {
            metadata
                .get_or_insert_with(Default::default)
                .insert("worker_session_id".into(), json!(session));
        }
        let req = Completion {
            task_id: id.clone(),
            summary: p.summary,
            metadata: metadata.map(Value::Object),
            result: p.result,
            created_cards: p
                .created_cards
                .map(StringList::into_vec)
                .unwrap_or_default(),
            artifacts: p.artifacts.map(StringList::into_vec).unwrap_or_default(),
            expected_run_id: self.expected_run(&scope, &id),
            force: false,
        };
        match self
            .on_board(&scope, &p.board, move |b| b.complete_task(req))
            .await
        {
            Ok((c, board)) => reply(
                &board,
                format!(
                    "Completed {} (run {}) on board {board}; children waiting on it start with \
                    your hand-off.",
                    c.task_id,
                    c.run_id.map_or("-".into(), |r| r.to_string())
                ),
                json!({"ok": true, "task_id": c.task_id, "run_id": c.run_id}),
            ),
            Err(e) => e,
        }
    }
}
