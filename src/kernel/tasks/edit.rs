//! Changing a task in place: workspace, assign/reassign, model and reasoning overrides,
//! field edits (`edited` / `reprioritized`), and the result backfill of a done task. Every
//! read-then-write locks the task first ([`Tx::lock_task`]).

use serde_json::{Map, Value, json};

use super::{ResultEdit, TaskPatch};
use crate::kernel::board::{Board, add_event, load_task};
use crate::kernel::error::{KernelError, Result};
use crate::kernel::lifecycle::reclaim_tx;
use crate::kernel::store::Tx;
use crate::kernel::types::{RunOutcome, Status, Task};
use crate::kernel::validate as v;
use crate::{args, obj};

impl Board {
    /// Record where a task's workspace was resolved (and its branch, for worktrees) so reruns
    /// reuse it. The path must be absolute.
    pub fn set_workspace(&self, task_id: &str, path: &str, branch: Option<&str>) -> Result<Task> {
        let path = v::required_text("workspace_path", path, 4096)?;
        if !std::path::Path::new(&path).is_absolute() {
            return Err(KernelError::invalid(
                "workspace_path",
                format!("{path:?} is relative; give an absolute path"),
            ));
        }
        let branch = v::optional_text("branch_name", branch, 200)?;
        self.write(|c| {
            c.lock_task(task_id)?;
            c.exec(
                "UPDATE tasks SET workspace_path=?1, branch_name=COALESCE(?2, branch_name) WHERE \
                id=?3",
                args![path, branch, task_id],
            )?;
            load_task(c, task_id)
        })
    }

    /// Set or clear (`None`) the assignee. Refused while a worker may be attached
    /// ([`Task::has_worker`]: reassign with reclaim instead). Assigning a different profile
    /// resets the failure counter. A no-op when unchanged.
    pub fn assign_task(&self, task_id: &str, assignee: Option<&str>) -> Result<Task> {
        let assignee = v::profile_name("assignee", assignee)?;
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            refuse_with_worker(&t, "assign")?;
            assign_tx(c, &t, assignee.as_deref(), None, now)?;
            load_task(c, task_id)
        })
    }

    /// Reassign; when a worker may be attached ([`Task::has_worker`]), `reclaim_first`
    /// reclaims the task in the same transaction (otherwise refused, as [`Board::assign_task`]
    /// refuses). `termination` is the caller's report of stopping the worker.
    pub fn reassign_task(
        &self,
        task_id: &str,
        assignee: Option<&str>,
        reclaim_first: bool,
        reason: Option<&str>,
        termination: Map<String, Value>,
    ) -> Result<Task> {
        let assignee = v::profile_name("assignee", assignee)?;
        let reason = v::optional_text("reason", reason, v::REASON_MAX_BYTES)?;
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            if !reclaim_first {
                refuse_with_worker(&t, "reassign")?;
            } else if t.has_worker() {
                reclaim_tx(c, &t, reason.as_deref(), termination.clone(), now)?;
            }
            let t = c.lock_task(task_id)?;
            assign_tx(c, &t, assignee.as_deref(), None, now)?;
            load_task(c, task_id)
        })
    }

    /// Set (or with `model: None` clear) the model a worker of this task runs with, and its
    /// provider (upstream 0.19.1 `set-model`). A provider needs a model. Takes effect at the next
    /// spawn. Event `model_override_set {model, provider}` when something changed; an archived
    /// task is refused.
    pub fn set_task_model(
        &self,
        task_id: &str,
        model: Option<&str>,
        provider: Option<&str>,
    ) -> Result<Task> {
        let model = v::model_word("model", model)?;
        let provider = v::model_word("provider", provider)?;
        if provider.is_some() && model.is_none() {
            return Err(KernelError::invalid(
                "provider",
                "a provider needs a model; Hermes only takes --provider with -m",
            ));
        }
        let now = self.now();
        self.write(|c| {
            let payload = obj! {"model" => model, "provider" => provider};
            set_override_tx(c, task_id, "model_override_set", payload, now, |t| {
                if t.model_override == model && t.provider_override == provider {
                    return Ok(None);
                }
                c.exec(
                    "UPDATE tasks SET model_override=?1, provider_override=?2
                     WHERE id=?3 AND model_override IS NOT DISTINCT FROM ?4
                       AND provider_override IS NOT DISTINCT FROM ?5",
                    args![
                        model,
                        provider,
                        task_id,
                        t.model_override,
                        t.provider_override
                    ],
                )
                .map(Some)
            })
        })
    }

    /// Set (or with `None` clear, back to the profile's setting) the reasoning level a worker of
    /// this task runs with (upstream 0.20.0). Event `reasoning_effort_set {reasoning_effort}`
    /// when it changed; an archived task is refused.
    pub fn set_reasoning_effort(&self, task_id: &str, level: Option<&str>) -> Result<Task> {
        let level = v::reasoning_effort("reasoning_effort", level)?;
        let now = self.now();
        self.write(|c| {
            let payload = obj! {"reasoning_effort" => level};
            set_override_tx(c, task_id, "reasoning_effort_set", payload, now, |t| {
                if t.reasoning_effort == level {
                    return Ok(None);
                }
                c.exec(
                    "UPDATE tasks SET reasoning_effort=?1 WHERE id=?2 AND reasoning_effort IS NOT \
                    DISTINCT FROM ?3",
                    args![level, task_id, t.reasoning_effort],
                )
                .map(Some)
            })
        })
    }

    /// Edit title, body, priority or tenant. Events: `edited {fields}` for text fields,
    /// `reprioritized {priority}` for priority.
    pub fn update_task(&self, task_id: &str, patch: TaskPatch) -> Result<Task> {
        let fields = Fields::check(&patch)?;
        let now = self.now();
        self.write(|c| {
            update_tx(c, task_id, &fields, now)?;
            load_task(c, task_id)
        })
    }

    /// Backfill the hand-off of a `done` task (CLI `edit`): sets `result`, updates the newest
    /// completed run's summary (and metadata if given) or synthesizes one; event `edited`.
    pub fn edit_completed_result(
        &self,
        task_id: &str,
        result: &str,
        summary: Option<&str>,
        metadata: Option<&Value>,
    ) -> Result<Task> {
        let result = v::required_text("result", result, v::HANDOFF_MAX_BYTES)?;
        let summary = v::optional_text("summary", summary, v::HANDOFF_MAX_BYTES)?;
        let metadata = v::metadata(metadata)?;
        let now = self.now();
        self.write(|c| {
            edit_result_tx(c, task_id, &result, &summary, &metadata, now)?;
            load_task(c, task_id)
        })
    }

    /// `edit`: change title, body and priority, and (on a done task) backfill its result, summary
    /// and metadata — all in one transaction (Hermes ~0.22's `edit_task`). A result on a task
    /// that is not done is refused and nothing changes.
    pub fn edit_task(
        &self,
        task_id: &str,
        patch: TaskPatch,
        result: Option<ResultEdit<'_>>,
    ) -> Result<Task> {
        let fields = Fields::check(&patch)?;
        let result = match result {
            None => None,
            Some(r) => Some((
                v::required_text("result", r.result, v::HANDOFF_MAX_BYTES)?,
                v::optional_text("summary", r.summary, v::HANDOFF_MAX_BYTES)?,
                v::metadata(r.metadata)?,
            )),
        };
        if fields.is_empty() && result.is_none() {
            return Err(KernelError::invalid(
                "edit",
                "nothing to change: give a title, body, priority or result",
            ));
        }
        let now = self.now();
        self.write(|c| {
            update_tx(c, task_id, &fields, now)?;
            if let Some((result, summary, metadata)) = &result {
                edit_result_tx(c, task_id, result, summary, metadata, now)?;
            }
            load_task(c, task_id)
        })
    }
}

/// A [`TaskPatch`]'s fields, checked (`None` = leave; `Some(None)` = clear).
struct Fields {
    title: Option<String>,
    body: Option<Option<String>>,
    tenant: Option<Option<String>>,
    priority: Option<i64>,
}

impl Fields {
    /// Check every field of `patch` (sizes, names, the priority range) before any write.
    fn check(patch: &TaskPatch) -> Result<Fields> {
        let body = match &patch.body {
            None => None,
            Some(b) => Some(v::optional_text("body", b.as_deref(), v::BODY_MAX_BYTES)?),
        };
        let tenant = match &patch.tenant {
            None => None,
            Some(t) => Some(v::short_name("tenant", t.as_deref())?),
        };
        Ok(Fields {
            title: patch.title.as_deref().map(v::title).transpose()?,
            body,
            tenant,
            priority: patch
                .priority
                .map(|p| v::in_range("priority", p, v::PRIORITY_RANGE))
                .transpose()?,
        })
    }

    fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.body.is_none()
            && self.tenant.is_none()
            && self.priority.is_none()
    }
}

/// The refusal [`Board::assign_task`] and [`Board::reassign_task`] (without a reclaim) give
/// while a worker may be attached to `t` ([`Task::has_worker`], the one rule).
fn refuse_with_worker(t: &Task, verb: &'static str) -> Result<()> {
    if !t.has_worker() {
        return Ok(());
    }
    let lock = t.claim_lock.as_deref().unwrap_or("?");
    let held = match t.status {
        Status::Running => format!("it is still running (claimed by {lock})"),
        other => format!("it is {other} but still claimed by {lock}"),
    };
    Err(KernelError::refused(
        &t.id,
        verb,
        format!(
            "{held}; reclaim it first or use `reassign --reclaim` to release the claim (REST: \
            `reclaim_first`)"
        ),
    ))
}

/// The shared step of `set-model` and the reasoning override: refuse an archived task, let
/// `update` write its CAS-guarded UPDATE (`None`: nothing to change), refuse a lost race,
/// then record `kind` with `payload`. Returns the task as it is now.
fn set_override_tx(
    c: &Tx,
    task_id: &str,
    kind: &str,
    payload: Map<String, Value>,
    now: i64,
    update: impl FnOnce(&Task) -> Result<Option<usize>>,
) -> Result<Task> {
    let t = c.lock_task(task_id)?;
    if t.status == Status::Archived {
        return Err(KernelError::refused(task_id, "set-model", "it is archived"));
    }
    match update(&t)? {
        None => return Ok(t),
        Some(1) => {}
        Some(_) => {
            return Err(KernelError::refused(
                task_id,
                "set-model",
                "it changed concurrently; try again",
            ));
        }
    }
    add_event(c, task_id, None, kind, payload, now)?;
    load_task(c, task_id)
}

fn update_tx(c: &Tx, task_id: &str, f: &Fields, now: i64) -> Result<()> {
    let Fields {
        title,
        body,
        tenant,
        priority,
    } = f;
    let priority = *priority;
    let t = c.lock_task(task_id)?;
    let mut fields: Vec<&str> = Vec::new();
    if let Some(title) = &title
        && *title != t.title
    {
        c.exec(
            "UPDATE tasks SET title=?1 WHERE id=?2",
            args![title, task_id],
        )?;
        fields.push("title");
    }
    if let Some(body) = &body
        && *body != t.body
    {
        c.exec("UPDATE tasks SET body=?1 WHERE id=?2", args![body, task_id])?;
        fields.push("body");
    }
    if let Some(tenant) = &tenant
        && *tenant != t.tenant
    {
        c.exec(
            "UPDATE tasks SET tenant=?1 WHERE id=?2",
            args![tenant, task_id],
        )?;
        fields.push("tenant");
    }
    if !fields.is_empty() {
        add_event(c, task_id, None, "edited", obj! {"fields" => fields}, now)?;
    }
    if let Some(p) = priority
        && p != t.priority
    {
        c.exec(
            "UPDATE tasks SET priority=?1 WHERE id=?2",
            args![p, task_id],
        )?;
        add_event(
            c,
            task_id,
            None,
            "reprioritized",
            obj! {"priority" => p},
            now,
        )?;
    }
    Ok(())
}

fn edit_result_tx(
    c: &Tx,
    task_id: &str,
    result: &str,
    summary: &Option<String>,
    metadata: &Option<Map<String, Value>>,
    now: i64,
) -> Result<()> {
    let t = c.lock_task(task_id)?;
    if t.status != Status::Done {
        return Err(KernelError::refused(
            task_id,
            "edit",
            format!(
                "status is '{}'; only done tasks can have their result edited",
                t.status
            ),
        ));
    }
    c.exec(
        "UPDATE tasks SET result=?1 WHERE id=?2",
        args![result, task_id],
    )?;
    let run_summary = summary.clone().unwrap_or_else(|| result.to_string());
    let meta_text = metadata
        .as_ref()
        .map(|m| Value::Object(m.clone()).to_string());
    let newest: Option<i64> = c.row(
        "SELECT id FROM task_runs WHERE task_id=?1 AND outcome='completed'
         ORDER BY COALESCE(ended_at, started_at) DESC, id DESC LIMIT 1",
        args![task_id],
    )?;
    let run_id = match newest {
        Some(rid) => {
            c.exec(
                "UPDATE task_runs SET summary=?1, metadata=COALESCE(?2, metadata) WHERE id=?3",
                args![run_summary, meta_text, rid],
            )?;
            rid
        }
        None => crate::kernel::runs::synth_run(
            c,
            &t,
            RunOutcome::Completed,
            Some(&run_summary),
            None,
            metadata.as_ref(),
            now,
        )?,
    };
    let mut fields = vec!["result", "summary"];
    if metadata.is_some() {
        fields.push("metadata");
    }
    add_event(
        c,
        task_id,
        Some(run_id),
        "edited",
        obj! {
            "fields" => fields, "result_len" => result.chars().count(),
            "summary" => v::first_line(&run_summary, 400),
        },
        now,
    )?;
    Ok(())
}

pub(crate) fn assign_tx(
    c: &Tx,
    t: &Task,
    assignee: Option<&str>,
    source: Option<&str>,
    now: i64,
) -> Result<()> {
    if t.assignee.as_deref() == assignee {
        return Ok(());
    }
    c.exec(
        "UPDATE tasks SET assignee=?1, consecutive_failures=0, last_failure_error=NULL WHERE id=?2",
        args![assignee, t.id],
    )?;
    let mut payload = obj! {"assignee" => assignee};
    if let Some(s) = source {
        payload.insert("source".into(), json!(s));
    }
    add_event(c, &t.id, None, "assigned", payload, now)?;
    Ok(())
}
