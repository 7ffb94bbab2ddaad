//! The REST API under `/api/` (also mounted at Hermes' `/api/plugins/kanban/`): the endpoints
//! of REF §17.2 that need no LLM, with Hermes' payload field names. Every handler resolves
//! `?board=` (400 malformed, 404 unknown), runs kernel calls on the blocking pool, and maps
//! kernel errors to 404 (unknown), 400 (invalid), 409 (refused). No rule lives here: status
//! moves, assignment, links and deletion are kernel calls.

//!
//! This module holds the route table and the query-string helpers; the handlers live in one
//! file per resource: [`board`], [`tasks`], [`runs`], [`attachments`], [`boards`], with the
//! JSON shapes in [`json`].

mod attachments;
mod board;
mod boards;
mod json;
mod runs;
mod tasks;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Query};
use axum::routing::{get, post};

use super::state::{ApiError, WebState};
use crate::kernel::validate as v;
use attachments::*;
use board::*;
use boards::*;
use runs::*;
use tasks::*;

pub use board::COLUMNS;

pub(super) type Q = Query<HashMap<String, String>>;

/// The API routes (state: [`WebState`]).
pub fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/board", get(board))
        .route("/config", get(config))
        .route("/tasks", post(create_task))
        .route("/tasks/bulk", post(bulk))
        .route(
            "/tasks/{id}",
            get(task_detail).patch(patch_task).delete(delete_task),
        )
        .route("/tasks/{id}/comments", get(list_comments).post(add_comment))
        .route("/tasks/{id}/runs", get(task_runs))
        .route("/tasks/{id}/reclaim", post(reclaim))
        .route("/tasks/{id}/reassign", post(reassign))
        .route("/tasks/{id}/log", get(task_log))
        .route(
            "/tasks/{id}/attachments",
            get(list_attachments)
                .post(upload_attachment)
                .layer(DefaultBodyLimit::max(v::ATTACHMENT_MAX_BYTES + (1 << 20))),
        )
        .route(
            "/attachments/{aid}",
            get(download_attachment).delete(delete_attachment),
        )
        .route("/links", post(add_link).delete(remove_link))
        .route("/diagnostics", get(diagnostics))
        .route("/hosts", get(hosts))
        .route("/workers/active", get(active_workers))
        .route("/runs/{run_id}", get(get_run))
        .route("/runs/{run_id}/terminate", post(terminate_run))
        .route("/stats", get(stats))
        .route("/assignees", get(assignees))
        .route("/dispatch", post(dispatch))
        .route("/boards", get(boards).post(new_board))
        .route(
            "/boards/{slug}",
            axum::routing::patch(patch_board).delete(delete_board),
        )
        .route("/boards/{slug}/switch", post(switch))
        .route("/events", get(super::sse::events))
        .fallback(|| async { ApiError::not_found("no such API endpoint") })
}

pub(super) fn board_param(q: &HashMap<String, String>) -> Option<String> {
    q.get("board").cloned()
}

pub(super) fn flag(q: &HashMap<String, String>, k: &str) -> Result<bool, ApiError> {
    match q.get(k).map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(s) if matches!(s.as_str(), "" | "1" | "true" | "yes" | "on") => Ok(true),
        Some(s) if matches!(s.as_str(), "0" | "false" | "no" | "off") => Ok(false),
        Some(s) => Err(ApiError::bad(format!(
            "invalid {k}: {s:?} is not a boolean (use true or false)"
        ))),
    }
}

pub(super) fn int_param(
    q: &HashMap<String, String>,
    k: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, ApiError> {
    match q.get(k) {
        None => Ok(None),
        Some(s) => {
            let n: i64 = s
                .trim()
                .parse()
                .map_err(|_| ApiError::bad(format!("invalid {k}: {s:?} is not an integer")))?;
            if !range.contains(&n) {
                return Err(ApiError::bad(format!(
                    "invalid {k}: {n} is out of range ({}..={})",
                    range.start(),
                    range.end()
                )));
            }
            Ok(Some(n))
        }
    }
}
