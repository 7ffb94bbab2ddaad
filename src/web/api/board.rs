//! `GET /board` (the whole board, or `?ids=` for an incremental refresh) with its card and
//! column shapes (full and `?compact=1`), and `GET /config`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::super::state::{ApiError, WebState};
use super::json::*;
use super::{Q, board_param, flag, int_param};
use crate::kernel::validate as v;
use crate::kernel::{
    BoardCard, BoardView, BoardViewQuery, CAPPED_COLUMNS, ColumnCursor, ColumnPage,
    DEFAULT_COLUMN_LIMIT, Diagnostic, MAX_COLUMN_LIMIT, Status, Task,
};

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
/// refresh; compact adds `column_totals{done, archived}`); with `column` (and `cursor` from
/// `next_cursor`), `{name, tasks, total, next_cursor, now}`: the next page of that column
/// ("load more").
pub(super) async fn board(State(st): State<Arc<WebState>>, Query(q): Q) -> Response {
    match board_inner(st, q).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn json_response(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `?ids=a,b`: the cards to refresh (each a task id; at most 2000).
fn parse_ids(q: &HashMap<String, String>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(s) = q.get("ids") else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for id in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        out.push(v::task_id("ids", id)?);
    }
    if out.len() > 2000 {
        return Err(ApiError::bad("invalid ids: at most 2000 ids per request"));
    }
    Ok(Some(out))
}

/// `?column=&cursor=` ("load more"): which capped column, from where.
type PageAsk = (Status, Option<ColumnCursor>);

fn parse_page(q: &HashMap<String, String>, with_ids: bool) -> Result<Option<PageAsk>, ApiError> {
    if !q.contains_key("column") && !q.contains_key("cursor") {
        return Ok(None);
    }
    if with_ids {
        return Err(ApiError::bad(
            "invalid column: ids and column/cursor cannot be combined (ask for one page or for \
            some cards)",
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
    Ok(Some((status, cursor)))
}

/// A non-empty query parameter.
fn param(q: &HashMap<String, String>, k: &str) -> Option<String> {
    q.get(k).filter(|s| !s.is_empty()).cloned()
}

fn err500(e: serde_json::Error) -> ApiError {
    ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

pub(super) async fn board_inner(
    st: Arc<WebState>,
    q: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let include_archived = flag(&q, "include_archived")?;
    let compact = flag(&q, "compact")?;
    let done_limit = int_param(&q, "done_limit", 0..=MAX_COLUMN_LIMIT as i64)?;
    let ids = parse_ids(&q)?;
    let page = parse_page(&q, ids.is_some())?;
    // The dashboard's compact board caps Done/Archived by default; Hermes' full board does not.
    let limit: Option<usize> = match done_limit {
        Some(0) => None,
        Some(n) => Some(n as usize),
        None if page.is_some() || (compact && ids.is_none()) => Some(DEFAULT_COLUMN_LIMIT),
        None => None,
    };
    let query = BoardViewQuery {
        tenant: param(&q, "tenant"),
        include_archived,
        workflow_template_id: param(&q, "workflow_template_id"),
        current_step_key: param(&q, "current_step_key"),
        ids: ids.clone(),
        status_since: flag(&q, "status_since")?,
        exclude_statuses: Vec::new(),
    };
    let ask = Ask {
        st,
        board: board_param(&q),
        query,
        compact,
    };
    if let Some((status, cursor)) = page {
        return ask
            .column_page(status, cursor, limit.unwrap_or(MAX_COLUMN_LIMIT))
            .await;
    }
    if let Some(ids) = ids {
        return ask.cards(ids).await;
    }
    let cfg = ask.cfg();
    let Ask {
        st, board, query, ..
    } = ask;
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

/// One `GET /board` request, parsed: which board, which tasks, which form.
struct Ask {
    st: Arc<WebState>,
    board: Option<String>,
    query: BoardViewQuery,
    compact: bool,
}

impl Ask {
    fn cfg(&self) -> crate::kernel::DiagnosticsConfig {
        self.st.diagnostics.clone()
    }

    /// `{name, tasks, total, next_cursor, now}`: one page of a capped column.
    async fn column_page(
        self,
        status: Status,
        cursor: Option<ColumnCursor>,
        limit: usize,
    ) -> Result<Response, ApiError> {
        let (cfg, query, compact) = (self.cfg(), self.query, self.compact);
        let (p, now) = self
            .st
            .on(self.board.as_deref(), move |b| {
                let p = b.column_page(&query, status, cursor.as_ref(), limit, &cfg)?;
                Ok((p, b.now()))
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
        Ok(json_response(Body::from(body)))
    }

    /// `{cards, missing, …}` for the tasks `ids` names and their parents (a child's change
    /// moves its parents' progress), with `column_totals` in the compact form.
    async fn cards(self, ids: Vec<String>) -> Result<Response, ApiError> {
        let (cfg, mut query, compact) = (self.cfg(), self.query, self.compact);
        let (view, totals) = self
            .st
            .on(self.board.as_deref(), move |b| {
                let totals = match compact {
                    true => Some(b.column_totals(&query)?),
                    false => None,
                };
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
        Ok(json_response(Body::from(body)))
    }
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

pub(super) async fn config() -> Json<Value> {
    Json(json!({
        "default_tenant": "",
        "lane_by_profile": true,
        "include_archived_by_default": false,
        "render_markdown": true,
    }))
}
