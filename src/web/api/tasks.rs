//! Task endpoints: detail, create, PATCH (one kernel `Board::patch_task` transaction), delete,
//! bulk, comments, runs, reclaim, reassign, the worker log, and parent/child links.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::super::state::{ApiError, ApiResult, Fields, WebState};
use super::json::*;
use super::{Q, board_param, int_param};
use crate::kernel::{
    Board, InitialStatus, MoveDetails, NewTask, RunStateField, Severity, Status, Task, TaskChange,
    WorkspaceKind,
};

pub(super) async fn task_detail(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let run_filter = match (q.get("run_state_type"), q.get("run_state_name")) {
        (Some(t), Some(n)) if !n.is_empty() => {
            let field = match t.as_str() {
                "status" => RunStateField::Status,
                "outcome" => RunStateField::Outcome,
                o => {
                    return Err(ApiError::bad(format!(
                        "invalid run_state_type: {o:?} (use status or outcome)"
                    )));
                }
            };
            Some((field, n.clone()))
        }
        _ => None,
    };
    let cfg = st.diagnostics_now();
    st.on(board_param(&q).as_deref(), move |b| {
        let d = b.task_detail(&id)?;
        let now = b.now();
        let diags = b
            .diagnostics(Some(&id), Severity::Warning, &cfg)?
            .into_iter()
            .next()
            .map(|x| x.diagnostics)
            .unwrap_or_default();
        let runs = match &run_filter {
            Some((f, n)) => b.list_runs(&id, Some((*f, n.as_str())))?,
            None => d.runs.clone(),
        };
        let kids = b.get_tasks(&d.children)?;
        let kid_ids: Vec<String> = kids.iter().map(|k| k.id.clone()).collect();
        let summaries = b.latest_summaries(&kid_ids)?;
        let mut task = task_json(&d.task);
        task.insert("latest_summary".into(), json!(d.latest_summary));
        task.insert("age".into(), json!(age(&d.task, now)));
        task.insert("diagnostics".into(), json!(diags));
        task.insert("warnings".into(), json!(warnings(&diags)));
        Ok(Json(json!({
            "task": task,
            "comments": d.comments,
            "events": d.events,
            "attachments": b.list_attachments(&id)?,
            "links": {"parents": d.parents, "children": d.children},
            "child_results": kids.iter().map(|k| json!({
                "id": k.id, "title": k.title, "status": k.status,
                "latest_summary": summaries.get(&k.id), "result": k.result,
            })).collect::<Vec<_>>(),
            "runs": runs,
            "parent_handoffs": b.parent_handoffs(&id)?,
        })))
    })
    .await
}

pub(super) async fn create_task(
    State(st): State<Arc<WebState>>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let f = Fields::parse(&body)?;
    f.only(&[
        "title",
        "body",
        "assignee",
        "tenant",
        "priority",
        "workspace_kind",
        "workspace_path",
        "parents",
        "triage",
        "idempotency_key",
        "max_runtime_seconds",
        "skills",
        "goal_mode",
        "goal_max_turns",
        "model_override",
        "provider_override",
        "reasoning_effort",
    ])?;
    let kind = match f.str("workspace_kind")? {
        None => None,
        Some(k) if k.trim().is_empty() => None,
        Some(k) => Some(k.parse::<WorkspaceKind>().map_err(ApiError::from)?),
    };
    let new = NewTask {
        title: f.str("title")?.unwrap_or_default(),
        body: f.str("body")?,
        assignee: f.str("assignee")?.filter(|a| !a.trim().is_empty()),
        parents: f.strs("parents")?,
        tenant: f.str("tenant")?.filter(|a| !a.trim().is_empty()),
        priority: f.int("priority")?.unwrap_or(0),
        workspace_kind: kind,
        workspace_path: f.str("workspace_path")?.filter(|a| !a.trim().is_empty()),
        triage: f.bool("triage", false)?,
        idempotency_key: f.str("idempotency_key")?,
        max_runtime_seconds: f.int("max_runtime_seconds")?,
        skills: f.strs("skills")?,
        goal_mode: f.bool("goal_mode", false)?,
        goal_max_turns: f.int("goal_max_turns")?,
        model_override: f.str("model_override")?,
        provider_override: f.str("provider_override")?,
        reasoning_effort: f.str("reasoning_effort")?,
        created_by: Some("dashboard".into()),
        initial_status: InitialStatus::Normal,
        ..Default::default()
    };
    let no_dispatcher = st.dispatch.is_none();
    let env = st.env.clone();
    st.on(board_param(&q).as_deref(), move |b| {
        let c = b.create_task(new)?;
        let mut out = json!({"task": task_json(&c.task)});
        if c.existing {
            out["existing"] = json!(true);
        }
        if let Some(w) = c
            .task
            .assignee
            .as_deref()
            .and_then(|a| crate::dispatch::unspawnable_warning(&env, a))
        {
            out["warning"] = json!(w);
        } else if no_dispatcher && c.task.status == Status::Ready && c.task.assignee.is_some() {
            out["warning"] = json!(
                "no dispatcher is running in this server: the task will wait in ready until \
                `hermes-kanban dispatch` or a daemon picks it up"
            );
        }
        Ok(Json(out))
    })
    .await
}

/// A requested status for PATCH and bulk: `running` and unknown names are 400 (REF §21.8).
pub(super) fn parse_status(raw: &str) -> Result<Status, ApiError> {
    let s = raw.trim();
    if s == "running" {
        return Err(ApiError::bad(
            "Cannot set status to 'running' directly; a task runs when a worker claims it (nudge \
            the dispatcher instead)",
        ));
    }
    match s.parse::<Status>() {
        Err(_) => Err(ApiError::bad(format!("unknown status: {s}"))),
        Ok(st) => Ok(st),
    }
}

/// The fields a PATCH body may carry; anything else is a 400 naming the field.
pub(super) const PATCH_FIELDS: &[&str] = &[
    "status",
    "assignee",
    "priority",
    "title",
    "body",
    "result",
    "summary",
    "block_reason",
    "block_kind",
    "reviewer",
    "reason",
    "metadata",
    "reclaim_first",
    "archive",
];

/// One set of changes (PATCH body or bulk body) as the kernel's [`TaskChange`]: applied by
/// `Board::patch_task` in one transaction (a refusal changes nothing).
pub(super) fn parse_change(f: &Fields) -> Result<TaskChange, ApiError> {
    let status = f.str("status")?.map(|s| parse_status(&s)).transpose()?;
    let archive = f.bool("archive", false)?;
    Ok(TaskChange {
        status: if archive {
            Some(Status::Archived)
        } else {
            status
        },
        assignee: if f.has("assignee") {
            Some(f.str("assignee")?.filter(|a| !a.trim().is_empty()))
        } else {
            None
        },
        priority: f.int("priority")?,
        title: f.str("title")?,
        body: if f.has("body") {
            Some(f.str("body")?)
        } else {
            None
        },
        details: MoveDetails {
            result: f.str("result")?,
            summary: f.str("summary")?,
            block_reason: f.str("block_reason")?,
            block_kind: f
                .str("block_kind")?
                .filter(|k| !k.trim().is_empty())
                .map(|k| {
                    k.parse::<crate::kernel::BlockKind>().map_err(|_| {
                        ApiError::bad(format!(
                            "block_kind: {k:?} is not one of dependency, needs_input, capability, \
                            transient"
                        ))
                    })
                })
                .transpose()?,
            metadata: f.value("metadata").cloned(),
            reviewer: f.str("reviewer")?.filter(|r| !r.trim().is_empty()),
            reason: f.str("reason")?.filter(|r| !r.trim().is_empty()),
        },
        reclaim_first: f.bool("reclaim_first", false)?,
    })
}

/// Stop a claimed task's worker (supervisor and worker process groups, pid-reuse guarded,
/// the configured kill grace): the dispatcher's one stop-a-worker, which signals nothing for a
/// task without a worker ([`Task::has_worker`]). Its report goes into the `reclaimed` event.
pub(super) fn terminate_for(b: &Board, t: &Task) -> Map<String, Value> {
    crate::dispatch::terminate_task(b, t).to_map()
}

/// Stop `t`'s worker and reclaim the task with `reason` (`POST /tasks/{id}/reclaim` and
/// `POST /runs/{id}/terminate`); the kernel refuses a task without a worker.
pub(super) fn stop_and_reclaim(b: &Board, t: &Task, reason: Option<&str>) -> Result<(), ApiError> {
    let term = terminate_for(b, t);
    b.reclaim_task(&t.id, reason, term)?;
    Ok(())
}

/// The body of an endpoint that takes only an optional `reason`.
pub(super) fn reason_body(body: &Bytes) -> Result<Option<String>, ApiError> {
    let f = Fields::parse(body)?;
    f.only(&["reason"])?;
    f.str("reason")
}

pub(super) fn apply(b: &Board, id: &str, ch: &TaskChange) -> Result<Task, ApiError> {
    Ok(b.patch_task(id, ch, &mut |t: &Task| terminate_for(b, t))?)
}

pub(super) async fn patch_task(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let f = Fields::parse(&body)?;
    f.only(PATCH_FIELDS)?;
    let ch = parse_change(&f)?;
    st.on(board_param(&q).as_deref(), move |b| {
        let t = apply(b, &id, &ch)?;
        Ok(Json(json!({"task": task_json(&t)})))
    })
    .await
}

pub(super) async fn delete_task(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    st.on(board_param(&q).as_deref(), move |b| {
        b.delete_task(&id)?;
        Ok(Json(json!({"deleted": true, "task_id": id})))
    })
    .await
}

pub(super) async fn bulk(State(st): State<Arc<WebState>>, Query(q): Q, body: Bytes) -> ApiResult {
    let f = Fields::parse(&body)?;
    f.only(&[PATCH_FIELDS, &["ids"]].concat())?;
    let ids = f.strs("ids")?;
    if ids.is_empty() {
        return Err(ApiError::bad("ids must be a non-empty list of task ids"));
    }
    if ids.len() > 10_000 {
        return Err(ApiError::bad("ids: at most 10000 tasks per bulk request"));
    }
    let ch = parse_change(&f)?;
    if ch.is_empty() {
        return Err(ApiError::bad(
            "nothing to do: give status, assignee, priority or archive",
        ));
    }
    st.on(board_param(&q).as_deref(), move |b| {
        let results: Vec<Value> = ids
            .iter()
            .map(|id| match apply(b, id, &ch) {
                Ok(_) => json!({"id": id, "ok": true}),
                Err(e) if e.status == StatusCode::NOT_FOUND => {
                    json!({"id": id, "ok": false, "error": "not found"})
                }
                Err(e) => json!({"id": id, "ok": false, "error": e.detail}),
            })
            .collect();
        Ok(Json(json!({"results": results})))
    })
    .await
}

pub(super) async fn list_comments(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    st.on(board_param(&q).as_deref(), move |b| {
        b.get_task(&id)?;
        Ok(Json(json!({"comments": b.list_comments(&id)?})))
    })
    .await
}

pub(super) async fn add_comment(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let f = Fields::parse(&body)?;
    f.only(&["body", "author"])?;
    let text = f.str("body")?.unwrap_or_default();
    let author = f
        .str("author")?
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "dashboard".into());
    st.on(board_param(&q).as_deref(), move |b| {
        let cid = b.add_comment(&id, &author, &text)?;
        Ok(Json(json!({"ok": true, "comment_id": cid})))
    })
    .await
}

pub(super) async fn task_runs(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    st.on(board_param(&q).as_deref(), move |b| {
        b.get_task(&id)?;
        Ok(Json(
            json!({"task_id": id, "runs": b.list_runs(&id, None)?}),
        ))
    })
    .await
}

pub(super) async fn reclaim(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let reason = reason_body(&body)?;
    st.on(board_param(&q).as_deref(), move |b| {
        stop_and_reclaim(b, &b.get_task(&id)?, reason.as_deref())?;
        Ok(Json(json!({"ok": true, "task_id": id})))
    })
    .await
}

pub(super) async fn reassign(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let f = Fields::parse(&body)?;
    f.only(&["profile", "reclaim_first", "reason"])?;
    let profile = f.str("profile")?.filter(|p| !p.trim().is_empty());
    let reclaim_first = f.bool("reclaim_first", false)?;
    let reason = f.str("reason")?;
    st.on(board_param(&q).as_deref(), move |b| {
        // Whether there is a worker to stop is the kernel's rule (`terminate_for` asks it).
        let term = match reclaim_first {
            true => terminate_for(b, &b.get_task(&id)?),
            false => Map::new(),
        };
        let t = b.reassign_task(
            &id,
            profile.as_deref(),
            reclaim_first,
            reason.as_deref(),
            term,
        )?;
        Ok(Json(
            json!({"ok": true, "task_id": id, "assignee": t.assignee}),
        ))
    })
    .await
}

pub(super) async fn task_log(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let tail = int_param(&q, "tail", 1..=2_000_000)?.unwrap_or(100_000) as u64;
    st.on(board_param(&q).as_deref(), move |b| {
        b.get_task(&id)?;
        let path = b.paths().log_file(&id);
        let shown = path.to_string_lossy().into_owned();
        let Ok(mut f) = std::fs::File::open(&path) else {
            return Ok(Json(json!({
                "task_id": id, "path": shown, "exists": false, "size_bytes": 0,
                "content": "", "truncated": false,
            })));
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let io = |e: std::io::Error| {
            ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, format!("{shown}: {e}"))
        };
        let truncated = len > tail;
        if truncated {
            f.seek(SeekFrom::Start(len - tail)).map_err(io)?;
        }
        let mut buf = Vec::new();
        f.take(tail).read_to_end(&mut buf).map_err(io)?;
        Ok(Json(json!({
            "task_id": id, "path": shown, "exists": true, "size_bytes": len,
            "content": String::from_utf8_lossy(&buf), "truncated": truncated,
        })))
    })
    .await
}

// ----- links -----

pub(super) async fn add_link(
    State(st): State<Arc<WebState>>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let f = Fields::parse(&body)?;
    f.only(&["parent_id", "child_id"])?;
    let parent = f.req_str("parent_id")?;
    let child = f.req_str("child_id")?;
    st.on(board_param(&q).as_deref(), move |b| {
        b.link_tasks(&parent, &child)?;
        Ok(Json(json!({"ok": true})))
    })
    .await
}

pub(super) async fn remove_link(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
    let parent = q
        .get("parent_id")
        .cloned()
        .ok_or_else(|| ApiError::bad("missing parent_id: it is required"))?;
    let child = q
        .get("child_id")
        .cloned()
        .ok_or_else(|| ApiError::bad("missing child_id: it is required"))?;
    st.on(board_param(&q).as_deref(), move |b| {
        let promoted = b.unlink_tasks(&parent, &child)?;
        Ok(Json(json!({"ok": true, "promoted": promoted})))
    })
    .await
}
