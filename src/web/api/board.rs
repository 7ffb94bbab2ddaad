//! `GET /board` (the whole board, or `?ids=` for an incremental refresh) with its card and
//! column shapes (full and `?compact=1`), and `GET /config`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::super::state::{ApiError, WebState};
use super::json::*;
use super::{Q, board_param, flag};
use crate::kernel::validate as v;
use crate::kernel::{BoardCard, BoardViewQuery, Diagnostic, Status, Task};

#[derive(Serialize)]
pub(super) struct LinkCounts {
    parents: i64,
    children: i64,
}

#[derive(Serialize)]
pub(super) struct Progress {
    done: i64,
    total: i64,
}

/// The columns of a compact card: what the dashboard shows, searches and edits.
#[derive(Serialize)]
pub(super) struct CompactTask<'a> {
    id: &'a str,
    title: &'a str,
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    body_truncated: bool,
    assignee: Option<&'a str>,
    status: Status,
    priority: i64,
    tenant: Option<&'a str>,
    created_by: Option<&'a str>,
    created_at: i64,
    started_at: Option<i64>,
    completed_at: Option<i64>,
    result: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    result_truncated: bool,
    claim_lock: Option<&'a str>,
    worker_pid: Option<i64>,
    consecutive_failures: i64,
    current_run_id: Option<i64>,
}

/// Cut `s` to at most `max` characters (on a char boundary); whether it was cut.
pub(super) fn trim_to(s: Option<&str>, max: usize) -> (Option<&str>, bool) {
    match s {
        Some(x) => match x.char_indices().nth(max) {
            Some((i, _)) => (Some(&x[..i]), true),
            None => (Some(x), false),
        },
        None => (None, false),
    }
}

#[derive(Serialize)]
#[serde(untagged)]
// Built and serialized on the spot; boxing would cost an allocation per card.
#[allow(clippy::large_enum_variant)]
pub(super) enum CardTask<'a> {
    Full(&'a Task),
    Compact(CompactTask<'a>),
}

/// A board card (REF §17.2): every task column plus `age`, `latest_summary` (≤200-char
/// preview), `link_counts`, `comment_count`, `progress` and, when present, `diagnostics` and
/// `warnings`. The compact form (`?compact=1`, what the dashboard loads) keeps the columns
/// the page uses, trims `body` and `result` to 300 characters (`body_truncated`) and sends
/// `warnings` without the `diagnostics` list.
#[derive(Serialize)]
pub(super) struct CardOut<'a> {
    #[serde(flatten)]
    task: CardTask<'a>,
    age: Age,
    latest_summary: Option<String>,
    link_counts: LinkCounts,
    comment_count: i64,
    progress: Option<Progress>,
    /// When the task entered its current status (Unix seconds; with `?status_since=1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    status_since: Option<i64>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    diagnostics: &'a [Diagnostic],
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<Warnings>,
}

pub(super) fn card_out(c: &BoardCard, now: i64, compact: bool) -> CardOut<'_> {
    let t = &c.task;
    let task = if compact {
        let (body, body_truncated) = trim_to(t.body.as_deref(), 300);
        let (result, result_truncated) = trim_to(t.result.as_deref(), 300);
        CardTask::Compact(CompactTask {
            id: &t.id,
            title: &t.title,
            body,
            body_truncated,
            assignee: t.assignee.as_deref(),
            status: t.status,
            priority: t.priority,
            tenant: t.tenant.as_deref(),
            created_by: t.created_by.as_deref(),
            created_at: t.created_at,
            started_at: t.started_at,
            completed_at: t.completed_at,
            result,
            result_truncated,
            claim_lock: t.claim_lock.as_deref(),
            worker_pid: t.worker_pid,
            consecutive_failures: t.consecutive_failures,
            current_run_id: t.current_run_id,
        })
    } else {
        CardTask::Full(t)
    };
    CardOut {
        task,
        age: age(t, now),
        latest_summary: c.latest_summary.as_deref().map(|s| preview(s, 200)),
        link_counts: LinkCounts {
            parents: c.parents,
            children: c.children,
        },
        comment_count: c.comment_count,
        status_since: c.status_since,
        progress: (c.children > 0).then_some(Progress {
            done: c.children_done,
            total: c.children,
        }),
        // Compact cards carry the badge summary only; the drawer loads the findings.
        diagnostics: if compact { &[] } else { &c.diagnostics },
        warnings: (!c.diagnostics.is_empty()).then(|| warnings(&c.diagnostics)),
    }
}

#[derive(Serialize)]
pub(super) struct ColumnOut<'a> {
    name: &'static str,
    tasks: Vec<CardOut<'a>>,
}

#[derive(Serialize)]
pub(super) struct BoardOut<'a> {
    columns: Vec<ColumnOut<'a>>,
    tenants: &'a [String],
    assignees: &'a [String],
    latest_event_id: i64,
    now: i64,
}

#[derive(Serialize)]
pub(super) struct CardsOut<'a> {
    cards: Vec<CardOut<'a>>,
    missing: Vec<&'a String>,
    tenants: &'a [String],
    assignees: &'a [String],
    latest_event_id: i64,
    now: i64,
}

/// Column order of the board.
pub const COLUMNS: &[Status] = &[
    Status::Triage,
    Status::Todo,
    Status::Scheduled,
    Status::Ready,
    Status::Running,
    Status::Blocked,
    Status::Review,
    Status::Done,
];

/// `GET /board?board=&tenant=&include_archived=&workflow_template_id=&current_step_key=
/// [&compact=1][&ids=a,b]` → `{columns, tenants, assignees, latest_event_id, now}`; with
/// `ids`, `{cards, missing, …}` for those tasks only (the dashboard's incremental refresh).
pub(super) async fn board(State(st): State<Arc<WebState>>, Query(q): Q) -> Response {
    match board_inner(st, q).await {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => e.into_response(),
    }
}

// About 100 lines: the query parsing and the two response shapes read as one pass; kept in
// one piece while the streaming `/api/board` replaces its serialisation.
pub(super) async fn board_inner(
    st: Arc<WebState>,
    q: HashMap<String, String>,
) -> Result<String, ApiError> {
    let include_archived = flag(&q, "include_archived")?;
    let compact = flag(&q, "compact")?;
    let status_since = flag(&q, "status_since")?;
    let ids: Option<Vec<String>> = match q.get("ids") {
        None => None,
        Some(s) => {
            let mut out = Vec::new();
            for id in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                out.push(v::task_id("ids", id)?);
            }
            if out.len() > 2000 {
                return Err(ApiError::bad("invalid ids: at most 2000 ids per request"));
            }
            Some(out)
        }
    };
    let query = BoardViewQuery {
        tenant: q.get("tenant").filter(|s| !s.is_empty()).cloned(),
        include_archived,
        workflow_template_id: q
            .get("workflow_template_id")
            .filter(|s| !s.is_empty())
            .cloned(),
        current_step_key: q.get("current_step_key").filter(|s| !s.is_empty()).cloned(),
        ids: ids.clone(),
        status_since,
    };
    let cfg = st.diagnostics.clone();
    let view = st
        .on(board_param(&q).as_deref(), move |b| {
            let mut query = query;
            // A child's change moves its parents' progress: refresh them too.
            if let Some(ids) = &mut query.ids {
                let mut extra: Vec<String> = Vec::new();
                for id in ids.iter() {
                    for p in b.parents(id)? {
                        if !ids.contains(&p) && !extra.contains(&p) {
                            extra.push(p);
                        }
                    }
                }
                ids.extend(extra);
            }
            Ok(b.board_view(&query, &cfg)?)
        })
        .await?;
    let now = view.now;
    let body = match &ids {
        Some(ids) => {
            let found: std::collections::HashSet<&str> =
                view.cards.iter().map(|c| c.task.id.as_str()).collect();
            serde_json::to_string(&CardsOut {
                cards: view
                    .cards
                    .iter()
                    .map(|c| card_out(c, now, compact))
                    .collect(),
                missing: ids.iter().filter(|i| !found.contains(i.as_str())).collect(),
                tenants: &view.tenants,
                assignees: &view.assignees,
                latest_event_id: view.latest_event_id,
                now,
            })
        }
        None => {
            let mut cols: Vec<ColumnOut> = COLUMNS
                .iter()
                .map(|s| ColumnOut {
                    name: s.as_str(),
                    tasks: Vec::new(),
                })
                .collect();
            if include_archived {
                cols.push(ColumnOut {
                    name: Status::Archived.as_str(),
                    tasks: Vec::new(),
                });
            }
            for c in &view.cards {
                let idx = cols
                    .iter()
                    .position(|col| col.name == c.task.status.as_str())
                    .unwrap_or(1);
                cols[idx].tasks.push(card_out(c, now, compact));
            }
            serde_json::to_string(&BoardOut {
                columns: cols,
                tenants: &view.tenants,
                assignees: &view.assignees,
                latest_event_id: view.latest_event_id,
                now,
            })
        }
    };
    body.map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

pub(super) async fn config() -> Json<Value> {
    Json(json!({
        "default_tenant": "",
        "lane_by_profile": true,
        "include_archived_by_default": false,
        "render_markdown": true,
    }))
}
