//! Board-wide read endpoints and run control: diagnostics, dispatcher hosts, active workers,
//! one run, terminating a run, stats, assignees, and `POST /dispatch` (the attached
//! dispatcher's hook).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::super::state::{ApiError, ApiResult, DispatchRequest, WebState};
use super::tasks::{reason_body, stop_and_reclaim};
use super::{Q, board_param, flag, int_param};
use crate::kernel::Severity;

pub(super) async fn diagnostics(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
    let min = match q.get("severity").filter(|s| !s.is_empty()) {
        None => Severity::Warning,
        Some(s) => s.parse::<Severity>()?,
    };
    let cfg = st.diagnostics_now();
    st.on(board_param(&q).as_deref(), move |b| {
        let mut rows = b.diagnostics(None, min, &cfg)?;
        rows.sort_by(|a, b| {
            let top = |x: &crate::kernel::TaskDiagnostics| {
                (
                    x.diagnostics.iter().map(|d| d.severity).max(),
                    x.diagnostics.iter().filter_map(|d| d.last_seen_at).max(),
                )
            };
            top(b).cmp(&top(a))
        });
        let list: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "task_id": r.task_id, "task_title": r.title, "task_status": r.status,
                    "task_assignee": r.assignee, "diagnostics": r.diagnostics,
                })
            })
            .collect();
        let hosts = b.hosts()?;
        Ok(Json(
            json!({"count": list.len(), "diagnostics": list, "hosts": hosts}),
        ))
    })
    .await
}

/// `GET /hosts`: the dispatcher hosts of the board (lease rows) and whether each is live.
pub(super) async fn hosts(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
    st.on(board_param(&q).as_deref(), move |b| {
        let hosts = b.hosts()?;
        Ok(Json(json!({"hosts": hosts, "checked_at": b.now()})))
    })
    .await
}

pub(super) async fn active_workers(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
    st.on(board_param(&q).as_deref(), move |b| {
        let now = b.now();
        let list: Vec<Value> = b
            .active_workers()?
            .into_iter()
            .map(|w| {
                let r = &w.run;
                json!({
                    "run_id": r.id, "task_id": r.task_id, "task_title": w.task_title,
                    "task_status": w.task_status, "task_assignee": w.task_assignee,
                    "profile": r.profile, "worker_pid": r.worker_pid, "started_at": r.started_at,
                    "claim_lock": r.claim_lock, "claim_expires": r.claim_expires,
                    "last_heartbeat_at": r.last_heartbeat_at,
                    "max_runtime_seconds": r.max_runtime_seconds,
                    "alive": r.worker_pid.is_some_and(crate::process::pid_alive)
                        && r.claim_lock.as_deref().is_some_and(crate::process::lock_is_host_local),
                })
            })
            .collect();
        Ok(Json(
            json!({"count": list.len(), "workers": list, "checked_at": now}),
        ))
    })
    .await
}

pub(super) async fn get_run(
    State(st): State<Arc<WebState>>,
    Path(run_id): Path<i64>,
    Query(q): Q,
) -> ApiResult {
    st.on(board_param(&q).as_deref(), move |b| {
        Ok(Json(json!({"run": b.get_run(run_id)?})))
    })
    .await
}

pub(super) async fn terminate_run(
    State(st): State<Arc<WebState>>,
    Path(run_id): Path<i64>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let reason = reason_body(&body)?;
    st.on(board_param(&q).as_deref(), move |b| {
        let run = b.get_run(run_id)?;
        let t = b.get_task(&run.task_id)?;
        if run.ended_at.is_some() || t.current_run_id != Some(run_id) {
            return Err(ApiError::conflict(format!(
                "run {run_id} is not active (task {} is {} on run {})",
                t.id,
                t.status,
                t.current_run_id
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "none".into())
            )));
        }
        let reason = reason.as_deref().unwrap_or("terminated from the dashboard");
        stop_and_reclaim(b, &t, Some(reason))?;
        Ok(Json(json!({"ok": true, "task_id": t.id, "run_id": run_id})))
    })
    .await
}

pub(super) async fn stats(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
    st.on(board_param(&q).as_deref(), move |b| {
        let mut v = serde_json::to_value(b.stats()?).unwrap_or_default();
        // serve's group commit on this board: writes made durable and the commits they took.
        if let (Some(g), Some(m)) = (b.group_commit_stats(), v.as_object_mut()) {
            m.insert("group_commit".into(), json!(g));
        }
        Ok(Json(v))
    })
    .await
}

pub(super) async fn assignees(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
    st.on(board_param(&q).as_deref(), move |b| {
        Ok(Json(json!({"assignees": b.assignees()?})))
    })
    .await
}

pub(super) async fn dispatch(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
    let dry_run = flag(&q, "dry_run")?;
    let max = int_param(&q, "max", 0..=10_000)?.unwrap_or(8) as usize;
    let board = st.resolve(board_param(&q).as_deref()).await?;
    let Some(hook) = st.dispatch.clone() else {
        return Err(ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "no dispatcher is attached to this server; run `hermes-kanban dispatch` (one tick) or \
            `hermes-kanban daemon`",
        ));
    };
    let req = DispatchRequest {
        board,
        dry_run,
        max,
    };
    let out = super::super::state::blocking(move || hook(req)).await?;
    match out {
        Ok(v) => Ok(Json(v)),
        Err(e) => Err(ApiError::status(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("dispatch failed: {e}"),
        )),
    }
}
