//! `GET /board` (the whole board, or `?ids=` for an incremental refresh) with its card and
//! column shapes (full and `?compact=1`), and `GET /config`.

use std::collections::{BTreeMap, HashMap, VecDeque};
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
    BoardCard, BoardFacts, BoardViewQuery, CAPPED_COLUMNS, ColumnCursor, ColumnPage,
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

/// A compact card (`?compact=1`, what the dashboard loads): the columns the page shows,
/// searches and edits, with `body` and `result` trimmed to 300 characters (`body_truncated`,
/// `result_truncated`) and `warnings` without the `diagnostics` list. Unset values are left
/// out (no `null`, `false` or zero counts: the page reads a missing key as unset) and so is
/// `age` (the page computes ages from the timestamps), which halves a large board's bytes.
#[derive(Serialize)]
pub(super) struct CompactCard<'a> {
    id: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    body_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    assignee: Option<&'a str>,
    status: Status,
    priority: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by: Option<&'a str>,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    result_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    claim_lock: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_pid: Option<i64>,
    #[serde(skip_serializing_if = "is_zero")]
    consecutive_failures: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_run_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latest_summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_counts: Option<LinkCounts>,
    #[serde(skip_serializing_if = "is_zero")]
    comment_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<Progress>,
    /// When the task entered its current status (Unix seconds; with `?status_since=1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    status_since: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<Warnings>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
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

/// A board card (REF §17.2): every task column plus `age`, `latest_summary` (≤200-char
/// preview), `link_counts`, `comment_count`, `progress` and, when present, `diagnostics` and
/// `warnings`.
#[derive(Serialize)]
pub(super) struct FullCard<'a> {
    #[serde(flatten)]
    task: &'a Task,
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

/// A card in either form.
#[derive(Serialize)]
#[serde(untagged)]
// Built and serialized on the spot; boxing would cost an allocation per card.
#[allow(clippy::large_enum_variant)]
pub(super) enum CardOut<'a> {
    Full(FullCard<'a>),
    Compact(CompactCard<'a>),
}

pub(super) fn card_out(c: &BoardCard, now: i64, compact: bool) -> CardOut<'_> {
    let t = &c.task;
    let latest_summary = c.latest_summary.as_deref().map(|s| preview(s, 200));
    let progress = (c.children > 0).then_some(Progress {
        done: c.children_done,
        total: c.children,
    });
    let warnings = (!c.diagnostics.is_empty()).then(|| warnings(&c.diagnostics));
    if !compact {
        return CardOut::Full(FullCard {
            task: t,
            age: age(t, now),
            latest_summary,
            link_counts: LinkCounts {
                parents: c.parents,
                children: c.children,
            },
            comment_count: c.comment_count,
            status_since: c.status_since,
            progress,
            diagnostics: &c.diagnostics,
            warnings,
        });
    }
    // Compact cards carry the badge summary only; the drawer loads the findings.
    let (body, body_truncated) = trim_to(t.body.as_deref(), 300);
    let (result, result_truncated) = trim_to(t.result.as_deref(), 300);
    CardOut::Compact(CompactCard {
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
        latest_summary,
        link_counts: (c.parents > 0 || c.children > 0).then_some(LinkCounts {
            parents: c.parents,
            children: c.children,
        }),
        comment_count: c.comment_count,
        progress,
        status_since: c.status_since,
        warnings,
    })
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
    // Each card is encoded into its column as the kernel builds it and then dropped, so the
    // answer is held as JSON bytes, never as every task row of the board at once.
    let body = st
        .on(board.as_deref(), move |b| {
            let now = b.now();
            let mut cols = ColumnsOut::new(include_archived, compact, now);
            let (facts, pages) = match limit {
                Some(limit) => {
                    b.board_view_capped_each(&query, limit, &cfg, now, |c| cols.push(&c))?
                }
                None => (
                    b.board_view_each(&query, &cfg, now, |c| cols.push(&c))?,
                    Vec::new(),
                ),
            };
            Ok(cols.finish(facts, pages)?)
        })
        .await?;
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

/// The board's columns being encoded: each column's cards as JSON, in pieces of about
/// [`BoardBody::PIECE`] bytes, plus a capped column's `(total, next_cursor)`.
struct ColumnsOut {
    names: Vec<Status>,
    /// Finished pieces of each column's `tasks` array (without the brackets).
    pieces: Vec<Vec<Bytes>>,
    /// The piece being filled, per column.
    open: Vec<Vec<u8>>,
    /// A card of the column has been written (the next needs a comma).
    wrote: Vec<bool>,
    pages: Vec<Option<(i64, Option<String>)>>,
    compact: bool,
    now: i64,
    bytes: usize,
}

impl ColumnsOut {
    fn new(include_archived: bool, compact: bool, now: i64) -> Self {
        let mut names: Vec<Status> = COLUMNS.to_vec();
        if include_archived {
            names.push(Status::Archived);
        }
        let n = names.len();
        ColumnsOut {
            names,
            pieces: vec![Vec::new(); n],
            open: vec![Vec::new(); n],
            wrote: vec![false; n],
            pages: vec![None; n],
            compact,
            now,
            bytes: 0,
        }
    }

    /// Encode one card into its column (unknown statuses fall into todo, REF §17.2).
    fn push(&mut self, c: &BoardCard) -> crate::kernel::Result<()> {
        let idx = self
            .names
            .iter()
            .position(|s| *s == c.task.status)
            .unwrap_or(1);
        let buf = &mut self.open[idx];
        let before = buf.len();
        if self.wrote[idx] {
            buf.push(b',');
        }
        serde_json::to_writer(&mut *buf, &card_out(c, self.now, self.compact))
            .map_err(|e| crate::kernel::KernelError::Storage(format!("encoding a card: {e}")))?;
        self.wrote[idx] = true;
        self.bytes += buf.len() - before;
        if buf.len() >= BoardBody::PIECE {
            let full = std::mem::replace(buf, Vec::with_capacity(BoardBody::PIECE + 4096));
            self.pieces[idx].push(Bytes::from(full));
        }
        Ok(())
    }

    /// The whole answer's pieces, in order: the columns (the capped ones from their pages)
    /// and the board-wide facts.
    fn finish(
        mut self,
        facts: BoardFacts,
        pages: Vec<ColumnPage>,
    ) -> crate::kernel::Result<BoardBody> {
        for p in pages {
            let Some(idx) = self.names.iter().position(|s| *s == p.status) else {
                continue;
            };
            for c in &p.cards {
                self.push(c)?;
            }
            self.pages[idx] = Some((p.total, p.next_cursor.as_ref().map(ColumnCursor::encode)));
        }
        let mut parts: VecDeque<Bytes> = VecDeque::new();
        let mut head: Vec<u8> = b"{\"columns\":[".to_vec();
        for (idx, name) in self.names.iter().enumerate() {
            if idx > 0 {
                head.push(b',');
            }
            write!(head, "{{\"name\":\"{}\",\"tasks\":[", name.as_str())
                .map_err(|e| crate::kernel::KernelError::Storage(e.to_string()))?;
            let mut pieces = std::mem::take(&mut self.pieces[idx]).into_iter();
            match pieces.next() {
                None => head.append(&mut self.open[idx]),
                Some(first) => {
                    parts.push_back(Bytes::from(std::mem::take(&mut head)));
                    parts.push_back(first);
                    parts.extend(pieces);
                    head = std::mem::take(&mut self.open[idx]);
                }
            }
            head.push(b']');
            if let Some((total, cursor)) = &self.pages[idx] {
                let cursor = serde_json::to_string(cursor)
                    .map_err(|e| crate::kernel::KernelError::Storage(e.to_string()))?;
                write!(head, ",\"total\":{total},\"next_cursor\":{cursor}")
                    .map_err(|e| crate::kernel::KernelError::Storage(e.to_string()))?;
            }
            head.push(b'}');
        }
        let tail = serde_json::to_string(&Tail {
            tenants: &facts.tenants,
            assignees: &facts.assignees,
            latest_event_id: facts.latest_event_id,
            now: facts.now,
        })
        .map_err(|e| crate::kernel::KernelError::Storage(e.to_string()))?;
        // `{"tenants":…}` continues the object: drop its opening brace.
        head.extend_from_slice(b"],");
        head.extend_from_slice(&tail.as_bytes()[1..]);
        parts.push_back(Bytes::from(head));
        Ok(BoardBody {
            large: self.bytes > 1 << 20,
            parts,
        })
    }
}

/// The board-wide facts that close the board's JSON.
#[derive(Serialize)]
struct Tail<'a> {
    tenants: &'a [String],
    assignees: &'a [String],
    latest_event_id: i64,
    now: i64,
}

/// The board's JSON (`{columns, tenants, assignees, latest_event_id, now}`), already encoded,
/// handed to the connection in pieces of about [`BoardBody::PIECE`] bytes as it takes them;
/// each piece is freed once sent, so the answer shrinks as it goes out.
struct BoardBody {
    parts: VecDeque<Bytes>,
    large: bool,
}

impl BoardBody {
    const PIECE: usize = 64 * 1024;
}

impl Drop for BoardBody {
    fn drop(&mut self) {
        // Hand a large board's memory back once it is gone.
        if self.large {
            self.parts = VecDeque::new();
            crate::alloc::release_free_memory();
        }
    }
}

impl Iterator for BoardBody {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let first = self.parts.pop_front()?;
        if first.len() >= Self::PIECE {
            return Some(first);
        }
        // Coalesce small parts (column headers) with what follows into one piece.
        let mut buf = Vec::with_capacity(Self::PIECE + 4096);
        buf.extend_from_slice(&first);
        while buf.len() < Self::PIECE {
            match self.parts.pop_front() {
                Some(p) if buf.len() + p.len() <= 2 * Self::PIECE => buf.extend_from_slice(&p),
                Some(p) => {
                    self.parts.push_front(p);
                    break;
                }
                None => break,
            }
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
