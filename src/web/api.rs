//! The REST API under `/api/` (also mounted at Hermes' `/api/plugins/kanban/`): the endpoints
//! of REF §17.2 that need no LLM, with Hermes' payload field names. Every handler resolves
//! `?board=` (400 malformed, 404 unknown), runs kernel calls on the blocking pool, and maps
//! kernel errors to 404 (unknown), 400 (invalid), 409 (refused). No rule lives here: status
//! moves, assignment, links and deletion are kernel calls.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::state::{ApiError, ApiResult, DispatchRequest, Fields, WebState};
use crate::kernel::validate as v;
use crate::kernel::{
    Board, BoardCard, BoardPatch, BoardView, BoardViewQuery, CAPPED_COLUMNS, ColumnCursor,
    ColumnPage, DEFAULT_COLUMN_LIMIT, Diagnostic, InitialStatus, MAX_COLUMN_LIMIT, NewBoard,
    NewTask, RunStateField, Severity, Status, Task, TaskChange, WorkspaceKind, check_workdir,
    create_board, list_boards, remove_board, resolve_board, switch_board, update_board,
};

type Q = Query<HashMap<String, String>>;

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

fn board_param(q: &HashMap<String, String>) -> Option<String> {
    q.get("board").cloned()
}

fn flag(q: &HashMap<String, String>, k: &str) -> Result<bool, ApiError> {
    match q.get(k).map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(s) if matches!(s.as_str(), "" | "1" | "true" | "yes" | "on") => Ok(true),
        Some(s) if matches!(s.as_str(), "0" | "false" | "no" | "off") => Ok(false),
        Some(s) => Err(ApiError::bad(format!(
            "invalid {k}: {s:?} is not a boolean (use true or false)"
        ))),
    }
}

fn int_param(
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

// ----- JSON shapes -----

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn preview(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_string()
    } else {
        let mut p: String = s.chars().take(max.saturating_sub(1)).collect();
        p.push('…');
        p
    }
}

/// `{count, kinds{kind: n}, latest_at, highest_severity}` of a card's diagnostics.
#[derive(Serialize)]
struct Warnings {
    count: usize,
    kinds: BTreeMap<&'static str, i64>,
    latest_at: Option<i64>,
    highest_severity: Option<Severity>,
}

fn warnings(d: &[Diagnostic]) -> Warnings {
    let mut kinds: BTreeMap<&'static str, i64> = BTreeMap::new();
    for x in d {
        *kinds.entry(x.kind).or_insert(0) += 1;
    }
    Warnings {
        count: d.len(),
        kinds,
        latest_at: d.iter().filter_map(|x| x.last_seen_at).max(),
        highest_severity: d.iter().map(|x| x.severity).max(),
    }
}

#[derive(Serialize)]
struct Age {
    created_age_seconds: i64,
    started_age_seconds: Option<i64>,
    time_to_complete_seconds: Option<i64>,
}

fn age(t: &Task, now: i64) -> Age {
    Age {
        created_age_seconds: (now - t.created_at).max(0),
        started_age_seconds: t.started_at.map(|s| (now - s).max(0)),
        time_to_complete_seconds: match (t.started_at, t.completed_at) {
            (Some(s), Some(c)) => Some((c - s).max(0)),
            _ => None,
        },
    }
}

fn task_json(t: &Task) -> Map<String, Value> {
    obj(serde_json::to_value(t).unwrap_or(Value::Null))
}

#[derive(Serialize)]
struct LinkCounts {
    parents: i64,
    children: i64,
}

#[derive(Serialize)]
struct Progress {
    done: i64,
    total: i64,
}

/// The columns of a compact card: what the dashboard shows, searches and edits.
#[derive(Serialize)]
struct CompactTask<'a> {
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
fn trim_to(s: Option<&str>, max: usize) -> (Option<&str>, bool) {
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
enum CardTask<'a> {
    Full(&'a Task),
    Compact(CompactTask<'a>),
}

/// A board card (REF §17.2): every task column plus `age`, `latest_summary` (≤200-char
/// preview), `link_counts`, `comment_count`, `progress` and, when present, `diagnostics` and
/// `warnings`. The compact form (`?compact=1`, what the dashboard loads) keeps the columns
/// the page uses, trims `body` and `result` to 300 characters (`body_truncated`) and sends
/// `warnings` without the `diagnostics` list.
#[derive(Serialize)]
struct CardOut<'a> {
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

fn card_out(c: &BoardCard, now: i64, compact: bool) -> CardOut<'_> {
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
struct CardsOut<'a> {
    cards: Vec<CardOut<'a>>,
    missing: Vec<&'a String>,
    /// Compact only: every capped column's total (`{done, archived}`), so a page that holds
    /// some of their cards keeps its counts right.
    #[serde(skip_serializing_if = "Option::is_none")]
    column_totals: Option<BTreeMap<&'static str, i64>>,
    tenants: &'a [String],
    assignees: &'a [String],
    latest_event_id: i64,
    now: i64,
}

/// One page of a capped column (`?column=&cursor=`).
#[derive(Serialize)]
struct PageOut<'a> {
    name: &'static str,
    tasks: Vec<CardOut<'a>>,
    total: i64,
    next_cursor: Option<String>,
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

// ----- board, config -----

/// `GET /board?board=&tenant=&include_archived=&workflow_template_id=&current_step_key=
/// [&compact=1][&done_limit=N][&ids=a,b][&column=done|archived&cursor=C]`
/// → `{columns, tenants, assignees, latest_event_id, now}`, streamed in pieces.
/// With `compact=1` (the dashboard) Done and Archived hold their newest `done_limit` cards
/// (default 200; `0` = all), newest first, and carry `total` and `next_cursor`; without it
/// (Hermes' endpoint) every column is complete unless `done_limit` is given.
/// With `ids`, `{cards, missing, …}` for those tasks only (the dashboard's incremental
/// refresh; compact adds `column_totals{done, archived}`); with `column` (and `cursor` from `next_cursor`), `{name, tasks, total,
/// next_cursor, now}`: the next page of that column ("load more").
async fn board(State(st): State<Arc<WebState>>, Query(q): Q) -> Response {
    match board_inner(st, q).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn json_response(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn board_inner(st: Arc<WebState>, q: HashMap<String, String>) -> Result<Response, ApiError> {
    let include_archived = flag(&q, "include_archived")?;
    let compact = flag(&q, "compact")?;
    let status_since = flag(&q, "status_since")?;
    let done_limit = int_param(&q, "done_limit", 0..=MAX_COLUMN_LIMIT as i64)?;
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
    // "Load more": one page of a capped column.
    let page: Option<(Status, Option<ColumnCursor>)> = if q.contains_key("column")
        || q.contains_key("cursor")
    {
        if ids.is_some() {
            return Err(ApiError::bad(
                "invalid column: ids and column/cursor cannot be combined (ask for one page or for some cards)",
            ));
        }
        let name = q.get("column").map(|s| s.trim()).unwrap_or("done");
        let status = match name.parse::<Status>() {
            Ok(s) if CAPPED_COLUMNS.contains(&s) => s,
            _ => {
                return Err(ApiError::bad(format!(
                    "invalid column: {name:?} is not paged (use done or archived)"
                )));
            }
        };
        let cursor = match q.get("cursor").map(|s| s.trim()).filter(|s| !s.is_empty()) {
            Some(c) => Some(ColumnCursor::parse(c)?),
            None => None,
        };
        Some((status, cursor))
    } else {
        None
    };
    // The dashboard's compact board caps Done/Archived by default; Hermes' full board does not.
    let limit: Option<usize> = match done_limit {
        Some(0) => None,
        Some(n) => Some(n as usize),
        None if page.is_some() || (compact && ids.is_none()) => Some(DEFAULT_COLUMN_LIMIT),
        None => None,
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
        exclude_statuses: Vec::new(),
    };
    let cfg = st.diagnostics.clone();
    let board = board_param(&q);
    let err500 =
        |e: serde_json::Error| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());

    if let Some((status, cursor)) = page {
        let limit = limit.unwrap_or(MAX_COLUMN_LIMIT);
        let (p, now) = st
            .on(board.as_deref(), move |b| {
                Ok((
                    b.column_page(&query, status, cursor.as_ref(), limit, &cfg)?,
                    b.now(),
                ))
            })
            .await?;
        let body = serde_json::to_vec(&PageOut {
            name: p.status.as_str(),
            tasks: p.cards.iter().map(|c| card_out(c, now, compact)).collect(),
            total: p.total,
            next_cursor: p.next_cursor.as_ref().map(ColumnCursor::encode),
            now,
        })
        .map_err(err500)?;
        return Ok(json_response(Body::from(body)));
    }

    if let Some(ids) = ids {
        let (view, totals) = st
            .on(board.as_deref(), move |b| {
                let mut query = query;
                let totals = match compact {
                    true => Some(b.column_totals(&query)?),
                    false => None,
                };
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
                Ok((b.board_view(&query, &cfg)?, totals))
            })
            .await?;
        let now = view.now;
        let found: std::collections::HashSet<&str> =
            view.cards.iter().map(|c| c.task.id.as_str()).collect();
        let body = serde_json::to_vec(&CardsOut {
            cards: view
                .cards
                .iter()
                .map(|c| card_out(c, now, compact))
                .collect(),
            missing: ids.iter().filter(|i| !found.contains(i.as_str())).collect(),
            column_totals: totals.map(|t| t.into_iter().map(|(s, n)| (s.as_str(), n)).collect()),
            tenants: &view.tenants,
            assignees: &view.assignees,
            latest_event_id: view.latest_event_id,
            now,
        })
        .map_err(err500)?;
        return Ok(json_response(Body::from(body)));
    }

    let (view, pages) = st
        .on(board.as_deref(), move |b| match limit {
            Some(limit) => {
                let capped = b.board_view_capped(&query, limit, &cfg)?;
                Ok((capped.view, capped.pages))
            }
            None => Ok((b.board_view(&query, &cfg)?, Vec::new())),
        })
        .await?;
    let body = BoardBody::new(view, pages, include_archived, compact);
    Ok(json_response(Body::from_stream(
        futures_util::stream::iter(body.map(Ok::<Bytes, std::io::Error>)),
    )))
}

/// One column of the board body: its name, its cards (indexes into [`BoardBody::cards`]) and,
/// for a capped column, `(total, next_cursor)`.
type ColumnPlan = (&'static str, Vec<usize>, Option<(i64, Option<String>)>);

/// The board's JSON (`{columns, tenants, assignees, latest_event_id, now}`), produced in
/// pieces of about [`BoardBody::PIECE`] bytes as the connection takes them, so a 100k-task
/// answer never exists whole in memory (it was 46.8 MB as one string), and each card is freed
/// once written, so the view shrinks as the answer goes out.
struct BoardBody {
    cards: Vec<Option<BoardCard>>,
    tenants: Vec<String>,
    assignees: Vec<String>,
    latest_event_id: i64,
    now: i64,
    compact: bool,
    cols: Vec<ColumnPlan>,
    col: usize,
    card: usize,
    /// A card of the current column has been written (the next needs a comma).
    wrote: bool,
    opened: bool,
    started: bool,
    finished: bool,
    large: bool,
}

impl BoardBody {
    const PIECE: usize = 64 * 1024;

    fn new(view: BoardView, pages: Vec<ColumnPage>, include_archived: bool, compact: bool) -> Self {
        let mut names: Vec<Status> = COLUMNS.to_vec();
        if include_archived {
            names.push(Status::Archived);
        }
        let mut cols: Vec<ColumnPlan> = names
            .iter()
            .map(|s| (s.as_str(), Vec::new(), None))
            .collect();
        let mut cards: Vec<Option<BoardCard>> = view.cards.into_iter().map(Some).collect();
        for (i, c) in cards.iter().enumerate() {
            let status = c.as_ref().map(|c| c.task.status);
            // Unknown statuses fall into todo (REF §17.2).
            let idx = names.iter().position(|s| Some(*s) == status).unwrap_or(1);
            cols[idx].1.push(i);
        }
        for p in pages {
            let Some(idx) = names.iter().position(|s| *s == p.status) else {
                continue;
            };
            let start = cards.len();
            cards.extend(p.cards.into_iter().map(Some));
            cols[idx] = (
                p.status.as_str(),
                (start..cards.len()).collect(),
                Some((p.total, p.next_cursor.as_ref().map(ColumnCursor::encode))),
            );
        }
        BoardBody {
            large: cards.len() > 2000,
            cards,
            tenants: view.tenants,
            assignees: view.assignees,
            latest_event_id: view.latest_event_id,
            now: view.now,
            compact,
            cols,
            col: 0,
            card: 0,
            wrote: false,
            opened: false,
            started: false,
            finished: false,
        }
    }

    fn write_piece(&mut self, buf: &mut Vec<u8>) -> serde_json::Result<()> {
        let now = self.now;
        if !self.started {
            buf.extend_from_slice(b"{\"columns\":[");
            self.started = true;
        }
        while buf.len() < Self::PIECE {
            let Some((name, idx, page)) = self.cols.get(self.col) else {
                buf.extend_from_slice(b"],\"tenants\":");
                serde_json::to_writer(&mut *buf, &self.tenants)?;
                buf.extend_from_slice(b",\"assignees\":");
                serde_json::to_writer(&mut *buf, &self.assignees)?;
                write!(
                    buf,
                    ",\"latest_event_id\":{},\"now\":{}}}",
                    self.latest_event_id, now
                )
                .map_err(serde_json::Error::io)?;
                self.finished = true;
                return Ok(());
            };
            if !self.opened {
                if self.col > 0 {
                    buf.push(b',');
                }
                buf.extend_from_slice(b"{\"name\":");
                serde_json::to_writer(&mut *buf, name)?;
                buf.extend_from_slice(b",\"tasks\":[");
                self.opened = true;
            }
            match idx.get(self.card) {
                Some(&i) => {
                    // Written once, then freed (each card sits in one column).
                    if let Some(c) = self.cards[i].take() {
                        if self.wrote {
                            buf.push(b',');
                        }
                        serde_json::to_writer(&mut *buf, &card_out(&c, now, self.compact))?;
                        self.wrote = true;
                    }
                    self.card += 1;
                }
                None => {
                    buf.push(b']');
                    if let Some((total, cursor)) = page {
                        write!(buf, ",\"total\":{total},\"next_cursor\":")
                            .map_err(serde_json::Error::io)?;
                        serde_json::to_writer(&mut *buf, cursor)?;
                    }
                    buf.push(b'}');
                    self.col += 1;
                    self.card = 0;
                    self.wrote = false;
                    self.opened = false;
                }
            }
        }
        Ok(())
    }
}

impl Drop for BoardBody {
    fn drop(&mut self) {
        // Hand a large board's memory back once its cards are gone.
        if self.large {
            self.cards = Vec::new();
            crate::alloc::release_free_memory();
        }
    }
}

impl Iterator for BoardBody {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        let mut buf = Vec::with_capacity(Self::PIECE + 4096);
        if let Err(e) = self.write_piece(&mut buf) {
            // Cannot happen for these types; end the body (the client sees truncated JSON).
            tracing::error!("serializing the board: {e}");
            self.finished = true;
            return None;
        }
        Some(Bytes::from(buf))
    }
}

async fn config() -> Json<Value> {
    Json(json!({
        "default_tenant": "",
        "lane_by_profile": true,
        "include_archived_by_default": false,
        "render_markdown": true,
    }))
}

// ----- tasks -----

async fn task_detail(
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

async fn create_task(State(st): State<Arc<WebState>>, Query(q): Q, body: Bytes) -> ApiResult {
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
                "no dispatcher is running in this server: the task will wait in ready until `hermes-kanban dispatch` or a daemon picks it up"
            );
        }
        Ok(Json(out))
    })
    .await
}

/// A requested status for PATCH and bulk: `running` and unknown names are 400 (REF §21.8).
fn parse_status(raw: &str) -> Result<Status, ApiError> {
    let s = raw.trim();
    if s == "running" {
        return Err(ApiError::bad(
            "Cannot set status to 'running' directly; a task runs when a worker claims it (nudge the dispatcher instead)",
        ));
    }
    match s.parse::<Status>() {
        Err(_) => Err(ApiError::bad(format!("unknown status: {s}"))),
        Ok(st) => Ok(st),
    }
}

/// The fields a PATCH body may carry; anything else is a 400 naming the field.
const PATCH_FIELDS: &[&str] = &[
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
fn parse_change(f: &Fields) -> Result<TaskChange, ApiError> {
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
        result: f.str("result")?,
        summary: f.str("summary")?,
        block_reason: f.str("block_reason")?,
        block_kind: f
            .str("block_kind")?
            .filter(|k| !k.trim().is_empty())
            .map(|k| {
                k.parse::<crate::kernel::BlockKind>().map_err(|_| {
                    ApiError::bad(format!(
                        "block_kind: {k:?} is not one of dependency, needs_input, capability, transient"
                    ))
                })
            })
            .transpose()?,
        metadata: f.value("metadata").cloned(),
        reviewer: f.str("reviewer")?.filter(|r| !r.trim().is_empty()),
        reason: f.str("reason")?.filter(|r| !r.trim().is_empty()),
        reclaim_first: f.bool("reclaim_first", false)?,
    })
}

fn terminate_for(t: &Task) -> Map<String, Value> {
    crate::process::terminate_worker(
        t.worker_pid,
        t.claim_lock.as_deref(),
        std::time::Duration::from_secs(5),
    )
    .to_map()
}

fn apply(b: &Board, id: &str, ch: &TaskChange) -> Result<Task, ApiError> {
    Ok(b.patch_task(id, ch, &mut terminate_for)?)
}

async fn patch_task(
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

async fn delete_task(
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

async fn bulk(State(st): State<Arc<WebState>>, Query(q): Q, body: Bytes) -> ApiResult {
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

async fn list_comments(
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

async fn add_comment(
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

async fn task_runs(
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

async fn reclaim(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let f = Fields::parse(&body)?;
    f.only(&["reason"])?;
    let reason = f.str("reason")?;
    st.on(board_param(&q).as_deref(), move |b| {
        let t = b.get_task(&id)?;
        // Only a running (claimed) task has a worker to stop; the kernel refuses the rest.
        let term = if t.status == Status::Running || t.claim_lock.is_some() {
            terminate_for(&t)
        } else {
            Map::new()
        };
        b.reclaim_task(&id, reason.as_deref(), term)?;
        Ok(Json(json!({"ok": true, "task_id": id})))
    })
    .await
}

async fn reassign(
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
        let t = b.get_task(&id)?;
        let running = t.status == Status::Running || t.claim_lock.is_some();
        let term = if running && reclaim_first {
            terminate_for(&t)
        } else {
            Map::new()
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

async fn task_log(
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

async fn add_link(State(st): State<Arc<WebState>>, Query(q): Q, body: Bytes) -> ApiResult {
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

async fn remove_link(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
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

// ----- diagnostics, workers, runs -----

async fn diagnostics(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
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
        Ok(Json(json!({"count": list.len(), "diagnostics": list})))
    })
    .await
}

async fn active_workers(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
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

async fn get_run(
    State(st): State<Arc<WebState>>,
    Path(run_id): Path<i64>,
    Query(q): Q,
) -> ApiResult {
    st.on(board_param(&q).as_deref(), move |b| {
        Ok(Json(json!({"run": b.get_run(run_id)?})))
    })
    .await
}

async fn terminate_run(
    State(st): State<Arc<WebState>>,
    Path(run_id): Path<i64>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let f = Fields::parse(&body)?;
    f.only(&["reason"])?;
    let reason = f.str("reason")?;
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
        let term = terminate_for(&t);
        b.reclaim_task(
            &t.id,
            Some(reason.as_deref().unwrap_or("terminated from the dashboard")),
            term,
        )?;
        Ok(Json(json!({"ok": true, "task_id": t.id, "run_id": run_id})))
    })
    .await
}

async fn stats(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
    st.on(board_param(&q).as_deref(), move |b| {
        Ok(Json(serde_json::to_value(b.stats()?).unwrap_or_default()))
    })
    .await
}

async fn assignees(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
    st.on(board_param(&q).as_deref(), move |b| {
        Ok(Json(json!({"assignees": b.assignees()?})))
    })
    .await
}

async fn dispatch(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
    let dry_run = flag(&q, "dry_run")?;
    let max = int_param(&q, "max", 0..=10_000)?.unwrap_or(8) as usize;
    let board = st.resolve(board_param(&q).as_deref())?;
    let Some(hook) = st.dispatch.clone() else {
        return Err(ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "no dispatcher is attached to this server; run `hermes-kanban dispatch` (one tick) or `hermes-kanban daemon`",
        ));
    };
    let req = DispatchRequest {
        board,
        dry_run,
        max,
    };
    let out = tokio::task::spawn_blocking(move || hook(req))
        .await
        .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match out {
        Ok(v) => Ok(Json(v)),
        Err(e) => Err(ApiError::status(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("dispatch failed: {e}"),
        )),
    }
}

// ----- attachments -----

async fn list_attachments(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    st.on(board_param(&q).as_deref(), move |b| {
        b.get_task(&id)?;
        Ok(Json(json!({"attachments": b.list_attachments(&id)?})))
    })
    .await
}

/// `POST /tasks/{id}/attachments`: `multipart/form-data` (field `file`, optional
/// `uploaded_by`) or a raw body with `?filename=` (and optional `?uploaded_by=`). Over 25 MiB
/// → 413.
async fn upload_attachment(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    let too_big = || {
        ApiError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "attachments are limited to {} bytes (25 MiB)",
                v::ATTACHMENT_MAX_BYTES
            ),
        )
    };
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_big()
        } else {
            ApiError::bad(e.body_text())
        }
    })?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (name, data, mime, by) = if ctype.starts_with("multipart/form-data") {
        let boundary = multer::parse_boundary(&ctype)
            .map_err(|e| ApiError::bad(format!("bad multipart body: {e}")))?;
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
        let mut mp = multer::Multipart::new(stream, boundary);
        let mut file: Option<(String, Bytes, Option<String>)> = None;
        let mut by: Option<String> = None;
        while let Some(field) = mp
            .next_field()
            .await
            .map_err(|e| ApiError::bad(format!("bad multipart body: {e}")))?
        {
            match field.name() {
                Some("file") => {
                    let fname = field.file_name().unwrap_or("").to_string();
                    let mime = field.content_type().map(|m| m.to_string());
                    let data = field
                        .bytes()
                        .await
                        .map_err(|e| ApiError::bad(format!("bad multipart body: {e}")))?;
                    file = Some((fname, data, mime));
                }
                Some("uploaded_by") => {
                    by = field.text().await.ok().filter(|s| !s.trim().is_empty());
                }
                _ => {}
            }
        }
        let (n, d, m) = file.ok_or_else(|| ApiError::bad("missing file: send a `file` field"))?;
        (n, d, m, by)
    } else {
        let name = q.get("filename").cloned().ok_or_else(|| {
            ApiError::bad(
                "missing filename: pass ?filename= with a raw body, or send multipart/form-data",
            )
        })?;
        let mime = (!ctype.is_empty()).then_some(ctype);
        (name, body, mime, q.get("uploaded_by").cloned())
    };
    if data.len() > v::ATTACHMENT_MAX_BYTES {
        return Err(too_big());
    }
    // A browser-supplied path (`C:\fakepath\x.txt`) keeps only its leaf.
    let leaf = name.rsplit(['/', '\\']).next().unwrap_or("").to_string();
    let by = by.unwrap_or_else(|| "dashboard".into());
    st.on(board_param(&q).as_deref(), move |b| {
        let mime = mime.filter(|m| m.len() <= 200 && !m.contains(['\r', '\n']));
        let a = b.add_attachment(&id, &leaf, &data, mime.as_deref(), Some(&by))?;
        Ok(Json(json!({"attachment": a})))
    })
    .await
}

fn parse_aid(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::not_found(format!("no such attachment: {raw}")))
}

/// `GET /attachments/{id}`: the blob as a download (`application/octet-stream`,
/// `Content-Disposition: attachment`), only if it lies inside the board's attachment root.
async fn download_attachment(
    State(st): State<Arc<WebState>>,
    Path(aid): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let aid = parse_aid(&aid)?;
    let (a, data) = st
        .on(board_param(&q).as_deref(), move |b| {
            let a = b.get_attachment(aid)?;
            let Some(p) = b.attachment_blob_path(&a) else {
                return Err(ApiError::not_found(format!(
                    "attachment {aid}: its file is missing or outside this board's attachment root"
                )));
            };
            let data = std::fs::read(&p).map_err(|e| {
                ApiError::status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{}: {e}", p.display()),
                )
            })?;
            Ok((a, data))
        })
        .await?;
    let ascii: String = a
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " ._-()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let utf8: String = a
        .filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{utf8}"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".to_string(),
            ),
        ],
        data,
    )
        .into_response())
}

async fn delete_attachment(
    State(st): State<Arc<WebState>>,
    Path(aid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let aid = parse_aid(&aid)?;
    st.on(board_param(&q).as_deref(), move |b| {
        b.remove_attachment(aid)?;
        Ok(Json(json!({"ok": true, "id": aid})))
    })
    .await
}

// ----- boards -----

fn workspace_kind_of(dir: Option<&str>) -> &'static str {
    match dir {
        None => "scratch",
        Some(d) => {
            let in_git = std::path::Path::new(d)
                .ancestors()
                .any(|p| p.join(".git").exists());
            if in_git { "worktree" } else { "dir" }
        }
    }
}

async fn boards(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
    let include_archived = flag(&q, "include_archived")?;
    let env = st.env.clone();
    let list = tokio::task::spawn_blocking(move || list_boards(&env, include_archived))
        .await
        .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let current = st.resolve(None)?;
    let mut out = Vec::new();
    for e in list {
        let slug = e.meta.slug.clone();
        let counts = st
            .on_slug(slug, |b| Ok(b.stats()?.by_status))
            .await
            .unwrap_or_default();
        let total: i64 = counts.values().sum();
        let mut m = obj(serde_json::to_value(&e.meta).unwrap_or_default());
        m.insert("is_current".into(), json!(e.meta.slug == current));
        m.insert("counts".into(), json!(counts));
        m.insert("total".into(), json!(total));
        m.insert(
            "default_workspace_kind".into(),
            json!(workspace_kind_of(e.meta.default_workdir.as_deref())),
        );
        out.push(Value::Object(m));
    }
    Ok(Json(json!({"boards": out, "current": current})))
}

async fn new_board(State(st): State<Arc<WebState>>, body: Bytes) -> ApiResult {
    let f = Fields::parse(&body)?;
    f.only(&[
        "slug",
        "name",
        "description",
        "icon",
        "color",
        "default_workdir",
        "switch",
    ])?;
    let slug = crate::kernel::normalize_slug(&f.req_str("slug")?)?;
    let workdir = f.str("default_workdir")?.filter(|s| !s.trim().is_empty());
    if let Some(w) = &workdir {
        check_workdir(w)?;
    }
    let opts = NewBoard {
        name: f.str("name")?,
        description: f.str("description")?,
        icon: f.str("icon")?,
        color: f.str("color")?,
        default_workdir: workdir,
    };
    let switch = f.bool("switch", false)?;
    let env = st.env.clone();
    let now = chrono::Utc::now().timestamp();
    let (meta, created) = create_board(&env, &slug, opts, now)?;
    if !created {
        return Err(ApiError::conflict(format!("board '{slug}' already exists")));
    }
    if switch {
        switch_board(&env, &slug)?;
    }
    let current = resolve_board(&env, None)?;
    Ok(Json(json!({"board": meta, "current": current})))
}

async fn patch_board(
    State(st): State<Arc<WebState>>,
    Path(slug): Path<String>,
    body: Bytes,
) -> ApiResult {
    let f = Fields::parse(&body)?;
    f.only(&["name", "description", "icon", "color", "default_workdir"])?;
    let opt = |k: &str| -> Result<Option<Option<String>>, ApiError> {
        if f.has(k) {
            Ok(Some(f.str(k)?.filter(|s| !s.trim().is_empty())))
        } else {
            Ok(None)
        }
    };
    let patch = BoardPatch {
        name: f.str("name")?,
        description: opt("description")?,
        icon: opt("icon")?,
        color: opt("color")?,
        default_workdir: opt("default_workdir")?,
    };
    let meta = update_board(&st.env, &slug, patch, chrono::Utc::now().timestamp())?;
    Ok(Json(json!({"board": meta})))
}

async fn delete_board(
    State(st): State<Arc<WebState>>,
    Path(slug): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let hard = flag(&q, "delete")?;
    let norm = crate::kernel::normalize_slug(&slug)?;
    let env = st.env.clone();
    let dest = remove_board(&env, &norm, hard, chrono::Utc::now().timestamp())?;
    st.evict(&norm);
    let result = match dest {
        Some(p) => json!({"slug": norm, "archived": true, "archived_to": p}),
        None => json!({"slug": norm, "deleted": true}),
    };
    Ok(Json(
        json!({"result": result, "current": resolve_board(&env, None)?}),
    ))
}

async fn switch(State(st): State<Arc<WebState>>, Path(slug): Path<String>) -> ApiResult {
    let cur = switch_board(&st.env, &slug)?;
    Ok(Json(json!({"current": cur})))
}
