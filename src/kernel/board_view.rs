//! What the dashboard needs from the kernel beyond the CLI's calls: the whole-board view (cards
//! with their link, comment, child-progress, latest-summary and diagnostics figures, gathered in
//! a handful of grouped queries so a 10,000-task board loads in one request; this file: the
//! query, its filters and chunked reads, the figures, the cards), what its diagnostics read
//! ([`diagnosis`]), the active-worker listing ([`workers`]) and board metadata edits
//! ([`meta`]). A read model only: status moves live in `transitions.rs`.

mod diagnosis;
mod meta;
mod workers;

use std::collections::HashMap;

use serde::Serialize;

use super::board::Board;
use super::diagnostics::{Diagnostic, DiagnosticsConfig};
use super::error::Result;
use super::store::{Arg, FromRow, Row, Tx, arg_refs};
use super::types::{Status, TASK_COLUMNS, Task};
use crate::args;
use diagnosis::{DiagnosisInput, diagnosis_input};
pub use meta::{BoardPatch, check_workdir, update_board};
pub use workers::ActiveWorker;

/// Which tasks a [`Board::board_view`] covers.
#[derive(Debug, Clone, Default)]
pub struct BoardViewQuery {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Include archived tasks.
    pub include_archived: bool,
    /// Only this workflow template.
    pub workflow_template_id: Option<String>,
    /// Only this workflow step.
    pub current_step_key: Option<String>,
    /// Only these task ids (an incremental refresh); archived ones are included when named.
    pub ids: Option<Vec<String>>,
    /// Fill [`BoardCard::status_since`] (one more pass over the event log, so only on request:
    /// the dashboard asks while "Age in status" is on).
    pub status_since: bool,
    /// Leave tasks of these statuses out (the capped board reads Done/Archived as pages,
    /// `board_page.rs`); their runs and events are not scanned either.
    pub exclude_statuses: Vec<Status>,
}

/// One card of the board: the task row plus the figures a card shows.
#[derive(Debug, Clone, Serialize)]
pub struct BoardCard {
    /// Every column of the task.
    pub task: Task,
    /// Newest non-empty run summary.
    pub latest_summary: Option<String>,
    /// Number of parents (edges to existing tasks).
    pub parents: i64,
    /// Number of children.
    pub children: i64,
    /// Number of comments.
    pub comment_count: i64,
    /// Children that are done or archived.
    pub children_done: i64,
    /// Findings of the diagnostics engine (REF §18), most severe first.
    pub diagnostics: Vec<Diagnostic>,
    /// When the task entered its current status: the newest event of a status-changing kind
    /// ([`STATUS_EVENT_KINDS`]), else `created_at`. `None` unless the query asked for it.
    pub status_since: Option<i64>,
}

/// Event kinds that move a task between statuses (the card's "time in status" reads the
/// newest of them).
pub const STATUS_EVENT_KINDS: &[&str] = &[
    "created",
    "promoted",
    "claimed",
    "completed",
    "blocked",
    "unblocked",
    "archived",
    "reclaimed",
    "crashed",
    "timed_out",
    "spawn_failed",
    "gave_up",
    "status",
    "scheduled",
    "dependency_wait",
    "stale",
    "rate_limited",
    "protocol_violation",
    "review_requested",
    "changes_requested",
    "review_reopened",
];

/// The board view: cards in list order (priority desc, then oldest first) and board-wide facts.
#[derive(Debug, Clone, Serialize)]
pub struct BoardView {
    /// The cards.
    pub cards: Vec<BoardCard>,
    /// Distinct tenants of non-archived tasks, sorted.
    pub tenants: Vec<String>,
    /// Distinct assignees of non-archived tasks, sorted.
    pub assignees: Vec<String>,
    /// Highest event id at the time of the read (a live stream resumes from here).
    pub latest_event_id: i64,
    /// The board clock's "now".
    pub now: i64,
}

/// The board-wide facts of a view, everything but its cards (what
/// [`Board::board_view_each`] returns after streaming the cards).
#[derive(Debug, Clone)]
pub struct BoardFacts {
    /// Distinct tenants of non-archived tasks, sorted.
    pub tenants: Vec<String>,
    /// Distinct assignees of non-archived tasks, sorted.
    pub assignees: Vec<String>,
    /// Highest event id at the time of the read (a live stream resumes from here).
    pub latest_event_id: i64,
    /// The "now" the cards were built at.
    pub now: i64,
}

/// Ids per `IN (…)` list.
pub(super) const CHUNK: usize = 500;

/// `(sql fragment, args)` of the task filter of a view.
pub(super) fn view_filter(q: &BoardViewQuery) -> (String, Vec<Arg>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Arg> = Vec::new();
    if q.ids.is_none() && !q.include_archived {
        clauses.push("status != 'archived'".into());
    }
    if !q.exclude_statuses.is_empty() {
        clauses.push(format!(
            "status NOT IN ({})",
            status_list(&q.exclude_statuses)
        ));
    }
    if let Some(t) = &q.tenant {
        args.push(Arg::Text(t.clone()));
        clauses.push(format!("tenant = ?{}", args.len()));
    }
    if let Some(w) = &q.workflow_template_id {
        args.push(Arg::Text(w.clone()));
        clauses.push(format!("workflow_template_id = ?{}", args.len()));
    }
    if let Some(k) = &q.current_step_key {
        args.push(Arg::Text(k.clone()));
        clauses.push(format!("current_step_key = ?{}", args.len()));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (sql, args)
}

/// Run `in_sql` (whose `{marks}` becomes `?1,…,?n`) over `ids` in chunks, or `all_sql` once
/// when `ids` is `None`, mapping every row with `row`.
pub(super) fn chunked<T>(
    c: &Tx,
    all_sql: &str,
    in_sql: &str,
    ids: Option<&[String]>,
    row: impl Fn(&Row) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    chunked_each(c, all_sql, in_sql, ids, row, |t| out.push(t))?;
    Ok(out)
}

/// [`chunked`], handing each row to `sink` instead of collecting them (a whole-board scan
/// that keeps a few rows must not hold all of them at once).
pub(super) fn chunked_each<T>(
    c: &Tx,
    all_sql: &str,
    in_sql: &str,
    ids: Option<&[String]>,
    row: impl Fn(&Row) -> Result<T>,
    mut sink: impl FnMut(T),
) -> Result<()> {
    match ids {
        None => c.each(all_sql, args![], |r| {
            sink(row(r)?);
            Ok(())
        }),
        Some(ids) => {
            for chunk in ids.chunks(CHUNK) {
                let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("?{i}")).collect();
                let sql = in_sql.replace("{marks}", &marks.join(","));
                c.each(&sql, &arg_refs(chunk), |r| {
                    sink(row(r)?);
                    Ok(())
                })?;
            }
            Ok(())
        }
    }
}

/// `'done', 'archived'`: status names (enum values, no user text) inlined into SQL.
fn status_list(statuses: &[Status]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ` AND task_id NOT IN (…)` for whole-board scans of runs and events when the view leaves
/// some statuses out (the capped board), so their rows are not read at all; else empty.
pub(super) fn skip_excluded(q: &BoardViewQuery) -> String {
    if q.exclude_statuses.is_empty() {
        return String::new();
    }
    format!(
        " AND task_id NOT IN (SELECT id FROM tasks WHERE status IN ({}))",
        status_list(&q.exclude_statuses)
    )
}

/// Read a view's tasks: `SELECT … FROM tasks {where_sql}`.
fn view_tasks(c: &Tx, where_sql: &str, args: &[Arg]) -> Result<Vec<Task>> {
    c.rows(
        &format!("SELECT {TASK_COLUMNS} FROM tasks {where_sql}"),
        &arg_refs(args),
    )
}

fn count_map(rows: Vec<(String, i64)>) -> HashMap<String, i64> {
    rows.into_iter().collect()
}

fn distinct(c: &Tx, col: &str) -> Result<Vec<String>> {
    c.rows(
        &format!(
            "SELECT DISTINCT {col} FROM tasks WHERE status != 'archived' AND {col} IS NOT NULL \
                AND {col} != '' ORDER BY {col}"
        ),
        args![],
    )
}

/// The list order of a view (priority desc, then oldest first, then insertion order).
const VIEW_ORDER: &str = "ORDER BY priority DESC, created_at ASC, _seq_ ASC";

/// The tasks of an `ids` view in list order (priority desc, then oldest first).
fn view_task_list(c: &Tx, q: &BoardViewQuery, ids: &[String]) -> Result<Vec<Task>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let (mut where_sql, mut args) = view_filter(q);
        let base = args.len();
        let marks: Vec<String> = (0..chunk.len())
            .map(|i| format!("?{}", base + i + 1))
            .collect();
        let clause = format!("id IN ({})", marks.join(","));
        where_sql = if where_sql.is_empty() {
            format!("WHERE {clause}")
        } else {
            format!("{where_sql} AND {clause}")
        };
        args.extend(chunk.iter().map(|s| Arg::Text(s.clone())));
        out.extend(view_tasks(c, &where_sql, &args)?);
    }
    out.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.created_at.cmp(&b.created_at))
    });
    Ok(out)
}

/// The per-task figures of the cards, keyed by task id.
struct Figures {
    parents: HashMap<String, i64>,
    /// `(children, children done or archived)`.
    children: HashMap<String, (i64, i64)>,
    comments: HashMap<String, i64>,
    summaries: HashMap<String, String>,
    /// Newest status-changing event per task (only when the query asked for it).
    since: Option<HashMap<String, i64>>,
}

fn pair(r: &Row) -> Result<(String, i64)> {
    Ok((r.get::<String>(0)?, r.get::<i64>(1)?))
}

/// Per task: its parents (edges to existing tasks), and its children with how many of them are
/// done or archived.
type LinkCounts = (HashMap<String, i64>, HashMap<String, (i64, i64)>);

fn link_counts(c: &Tx, scope: Option<&[String]>) -> Result<LinkCounts> {
    let parents = count_map(chunked(
        c,
        "SELECT l.child_id, count(*) FROM task_links l JOIN tasks p ON p.id = l.parent_id \
            GROUP BY l.child_id",
        "SELECT l.child_id, count(*) FROM task_links l JOIN tasks p ON p.id = l.parent_id \
            WHERE l.child_id IN ({marks}) GROUP BY l.child_id",
        scope,
        pair,
    )?);
    let children: HashMap<String, (i64, i64)> = chunked(
        c,
        "SELECT l.parent_id, count(*), sum(CASE WHEN ch.status IN ('done', 'archived') THEN 1 \
            ELSE 0 END) FROM task_links l JOIN tasks ch ON ch.id = l.child_id GROUP BY l.parent_id",
        "SELECT l.parent_id, count(*), sum(CASE WHEN ch.status IN ('done', 'archived') THEN 1 \
            ELSE 0 END) FROM task_links l JOIN tasks ch ON ch.id = l.child_id \
            WHERE l.parent_id IN ({marks}) GROUP BY l.parent_id",
        scope,
        |r| {
            Ok((
                r.get::<String>(0)?,
                (r.get::<i64>(1)?, r.get::<Option<i64>>(2)?.unwrap_or(0)),
            ))
        },
    )?
    .into_iter()
    .collect();
    Ok((parents, children))
}

/// Each task's newest non-empty run summary; `skip` leaves excluded statuses' runs unread.
fn latest_summaries(
    c: &Tx,
    scope: Option<&[String]>,
    skip: &str,
) -> Result<HashMap<String, String>> {
    let rows = chunked(
        c,
        &format!(
            "SELECT task_id, summary FROM (
               SELECT task_id, summary, row_number() OVER (PARTITION BY task_id
                      ORDER BY COALESCE(ended_at, started_at) DESC, id DESC) AS rn
               FROM task_runs WHERE summary IS NOT NULL AND trim(summary) != ''{skip}) sub
             WHERE rn = 1"
        ),
        "SELECT task_id, summary FROM (
           SELECT task_id, summary, row_number() OVER (PARTITION BY task_id
                  ORDER BY COALESCE(ended_at, started_at) DESC, id DESC) AS rn
           FROM task_runs WHERE task_id IN ({marks}) AND summary IS NOT NULL AND trim(summary) \
           != '') WHERE rn = 1",
        scope,
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    Ok(rows.into_iter().collect())
}

/// Read [`Figures`] for `scope` (`None`: the whole board), one grouped query each.
fn figures(c: &Tx, scope: Option<&[String]>, q: &BoardViewQuery) -> Result<Figures> {
    let status_since = q.status_since;
    let (parents, children) = link_counts(c, scope)?;
    let comments = count_map(chunked(
        c,
        "SELECT task_id, count(*) FROM task_comments GROUP BY task_id",
        "SELECT task_id, count(*) FROM task_comments WHERE task_id IN ({marks}) GROUP BY task_id",
        scope,
        pair,
    )?);
    let summaries = latest_summaries(c, scope, &skip_excluded(q))?;
    let status_kinds = STATUS_EVENT_KINDS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(",");
    // The whole board: one table scan (NOT INDEXED: walking idx_events_task and looking
    // up each row's kind was twice as slow at 100k events).
    let since = if status_since {
        Some(count_map(chunked(
            c,
            &format!(
                "SELECT task_id, max(created_at) FROM task_events NOT INDEXED WHERE kind IN \
                    ({status_kinds}) GROUP BY task_id"
            ),
            &format!(
                "SELECT task_id, max(created_at) FROM task_events WHERE task_id IN ({{marks}}) \
                    AND kind IN ({status_kinds}) GROUP BY task_id"
            ),
            scope,
            pair,
        )?))
    } else {
        None
    };
    Ok(Figures {
        parents,
        children,
        comments,
        summaries,
        since,
    })
}

/// Build one card from its task row and the view's figures.
fn card(
    t: Task,
    f: &Figures,
    diag: &DiagnosisInput,
    cfg: &DiagnosticsConfig,
    now: i64,
) -> BoardCard {
    let (n_children, done) = f.children.get(&t.id).copied().unwrap_or((0, 0));
    BoardCard {
        latest_summary: f.summaries.get(&t.id).cloned(),
        parents: f.parents.get(&t.id).copied().unwrap_or(0),
        children: n_children,
        children_done: done,
        comment_count: f.comments.get(&t.id).copied().unwrap_or(0),
        diagnostics: diag.findings(&t, cfg, now),
        status_since: f.since.as_ref().map(|m| {
            m.get(&t.id)
                .copied()
                .unwrap_or(t.created_at)
                .max(t.created_at)
        }),
        task: t,
    }
}

/// The body of [`Board::board_view_each`] inside the caller's read transaction: the figures
/// and the diagnostics input first (grouped queries over the view's scope), then the cards one
/// at a time in list order. A whole-board view streams its task rows straight from the query,
/// so no more than one full task row is held at a time; an `ids` view reads its few rows
/// first.
pub(crate) fn view_each_tx(
    c: &Tx,
    q: &BoardViewQuery,
    cfg: &DiagnosticsConfig,
    now: i64,
    sink: &mut dyn FnMut(BoardCard) -> Result<()>,
) -> Result<BoardFacts> {
    let latest_event_id: i64 = c.one("SELECT COALESCE(max(id), 0) FROM task_events", args![])?;
    let tasks = match &q.ids {
        Some(ids) => Some(view_task_list(c, q, ids)?),
        None => None,
    };
    let scoped: Option<Vec<String>> = tasks
        .as_ref()
        .map(|ts| ts.iter().map(|t| t.id.clone()).collect());
    let scope = scoped.as_deref();
    let f = figures(c, scope, q)?;
    let diag = diagnosis_input(c, tasks.as_deref(), scope, q)?;
    match tasks {
        Some(tasks) => {
            for t in tasks {
                sink(card(t, &f, &diag, cfg, now))?;
            }
        }
        None => {
            let (where_sql, args) = view_filter(q);
            c.each(
                &format!("SELECT {TASK_COLUMNS} FROM tasks {where_sql} {VIEW_ORDER}"),
                &arg_refs(&args),
                |r| sink(card(Task::from_row(r)?, &f, &diag, cfg, now)),
            )?;
        }
    }
    Ok(BoardFacts {
        tenants: distinct(c, "tenant")?,
        assignees: distinct(c, "assignee")?,
        latest_event_id,
        now,
    })
}

impl Board {
    /// The dashboard's board: every task the query covers (priority desc, oldest first) with
    /// its parent/child/comment counts, child progress, latest run summary and diagnostics,
    /// plus the distinct tenants and assignees and the latest event id — read in one
    /// transaction with grouped queries (a constant number of statements for a full board).
    pub fn board_view(&self, q: &BoardViewQuery, cfg: &DiagnosticsConfig) -> Result<BoardView> {
        let mut cards = Vec::new();
        let facts = self.board_view_each(q, cfg, self.now(), |c| {
            cards.push(c);
            Ok(())
        })?;
        Ok(BoardView {
            cards,
            tenants: facts.tenants,
            assignees: facts.assignees,
            latest_event_id: facts.latest_event_id,
            now: facts.now,
        })
    }

    /// [`Board::board_view`] handing each card to `sink` as it is built (in list order, at
    /// `now`) instead of collecting them: a caller that encodes the cards as they come holds
    /// its output, never every task row of a large board at once.
    pub fn board_view_each(
        &self,
        q: &BoardViewQuery,
        cfg: &DiagnosticsConfig,
        now: i64,
        mut sink: impl FnMut(BoardCard) -> Result<()>,
    ) -> Result<BoardFacts> {
        self.read(|c| view_each_tx(c, q, cfg, now, &mut sink))
    }
}
