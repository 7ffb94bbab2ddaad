//! What the dashboard needs from the kernel beyond the CLI's calls: the whole-board view (cards
//! with their link, comment, child-progress, latest-summary and diagnostics figures, gathered in
//! a handful of grouped queries so a 10,000-task board loads in one request), the active-worker
//! listing, and board metadata edits. A read model only: status moves live in
//! `transitions.rs`.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::board::Board;
use super::diagnostics::{DIAGNOSTIC_EVENT_KINDS, Diagnostic, DiagnosticsConfig, diagnose};
use super::env::Env;
use super::error::{KernelError, Result};
use super::paths::{BoardMeta, board_exists, normalize_slug, read_board_meta, write_board_meta};
use super::store::{Arg, FromRow, Row, Tx, arg_refs};
use super::types::{
    EVENT_COLUMNS, Event, RUN_COLUMNS, Run, Status, TASK_COLUMNS, Task, json_column, lenient_i64,
    lenient_text, status_cell, text_key,
};
use crate::args;

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

/// One open run with a live worker pid on a running task (`GET /workers/active`).
#[derive(Debug, Clone, Serialize)]
pub struct ActiveWorker {
    /// The run.
    pub run: Run,
    /// Its task's title.
    pub task_title: String,
    /// Its task's status.
    pub task_status: Status,
    /// Its task's assignee.
    pub task_assignee: Option<String>,
}

/// Changes for [`update_board`] (`None` = leave; `Some(None)` = clear).
#[derive(Debug, Clone, Default)]
pub struct BoardPatch {
    /// Display name (must not be blank).
    pub name: Option<String>,
    /// Free text.
    pub description: Option<Option<String>>,
    /// Emoji or short icon text.
    pub icon: Option<Option<String>>,
    /// CSS colour.
    pub color: Option<Option<String>>,
    /// Default workdir: an existing absolute directory.
    pub default_workdir: Option<Option<String>>,
}

const CHUNK: usize = 500;

/// `(sql fragment, args)` of the task filter of a view.
fn view_filter(q: &BoardViewQuery) -> (String, Vec<Arg>) {
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
fn chunked<T>(
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
fn chunked_each<T>(
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
fn skip_excluded(q: &BoardViewQuery) -> String {
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

/// An event row for the diagnostics rules: the payload is parsed only for the kinds whose
/// payload a rule reads (the rest are matched by kind and time alone).
fn diag_event(r: &Row) -> Result<Event> {
    let kind = lenient_text(r, 3).unwrap_or_default();
    let payload = match kind.as_str() {
        "completion_blocked_hallucination"
        | "suspected_hallucinated_references"
        | "blocked"
        | "gave_up" => json_column(lenient_text(r, 4)),
        _ => None,
    };
    Ok(Event {
        id: r.get(0)?,
        task_id: lenient_text(r, 1).unwrap_or_default(),
        run_id: lenient_i64(r, 2),
        kind,
        payload,
        created_at: lenient_i64(r, 5).unwrap_or(0),
    })
}

/// Whether a diagnostics rule could fire for `t` (the engine's rules only look at tasks in
/// these states or with these histories); the others skip loading their events and runs.
fn may_need_diagnosis(t: &Task, flagged: &HashSet<String>, crashed: &HashSet<String>) -> bool {
    matches!(t.status, Status::Blocked | Status::Ready)
        || t.consecutive_failures > 0
        || flagged.contains(&t.id)
        || crashed.contains(&t.id)
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

/// Read [`Figures`] for `scope` (`None`: the whole board), one grouped query each.
fn figures(c: &Tx, scope: Option<&[String]>, q: &BoardViewQuery) -> Result<Figures> {
    let status_since = q.status_since;
    let skip = skip_excluded(q);
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
    let comments = count_map(chunked(
        c,
        "SELECT task_id, count(*) FROM task_comments GROUP BY task_id",
        "SELECT task_id, count(*) FROM task_comments WHERE task_id IN ({marks}) GROUP BY task_id",
        scope,
        pair,
    )?);
    let summaries: HashMap<String, String> = chunked(
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
    )?
    .into_iter()
    .collect();
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

/// What the diagnostics engine reads for the tasks a rule could fire for.
struct DiagnosisInput {
    flagged: HashSet<String>,
    crashed: HashSet<String>,
    events: HashMap<String, Vec<Event>>,
    runs: HashMap<String, Vec<Run>>,
}

impl DiagnosisInput {
    fn findings(&self, t: &Task, cfg: &DiagnosticsConfig, now: i64) -> Vec<Diagnostic> {
        match (self.events.get(&t.id), self.runs.get(&t.id)) {
            (None, None) if !may_need_diagnosis(t, &self.flagged, &self.crashed) => vec![],
            (ev, rn) => diagnose(
                t,
                ev.map(Vec::as_slice).unwrap_or(&[]),
                rn.map(Vec::as_slice).unwrap_or(&[]),
                cfg,
                now,
            ),
        }
    }
}

/// The ids of the view's tasks a diagnostics rule could fire for ([`may_need_diagnosis`]):
/// from the tasks in hand, or — for a whole-board view, whose full rows are streamed once
/// afterwards — from a narrow scan of the three columns the test reads.
fn candidates(
    c: &Tx,
    q: &BoardViewQuery,
    tasks: Option<&[Task]>,
    flagged: &HashSet<String>,
    crashed: &HashSet<String>,
) -> Result<Vec<String>> {
    if let Some(tasks) = tasks {
        return Ok(tasks
            .iter()
            .filter(|t| may_need_diagnosis(t, flagged, crashed))
            .map(|t| t.id.clone())
            .collect());
    }
    let (where_sql, args) = view_filter(q);
    let mut out = Vec::new();
    c.each(
        &format!("SELECT id, status, consecutive_failures FROM tasks {where_sql}"),
        &arg_refs(&args),
        |r| {
            let id = text_key(r, 0)?;
            let rule_states = matches!(status_cell(r, 1), Status::Blocked | Status::Ready);
            let failing = lenient_i64(r, 2).unwrap_or(0) > 0;
            if rule_states || failing || flagged.contains(&id) || crashed.contains(&id) {
                out.push(id);
            }
            Ok(())
        },
    )?;
    Ok(out)
}

/// Read [`DiagnosisInput`]: only tasks a rule could fire for need their events and runs.
/// `tasks` are the view's tasks when it holds them (an `ids` view); `None` for a whole-board
/// view.
fn diagnosis_input(
    c: &Tx,
    tasks: Option<&[Task]>,
    scope: Option<&[String]>,
    q: &BoardViewQuery,
) -> Result<DiagnosisInput> {
    let skip = skip_excluded(q);
    let flagged: HashSet<String> = chunked(
        c,
        "SELECT DISTINCT task_id FROM task_events WHERE kind IN
           ('completion_blocked_hallucination', 'suspected_hallucinated_references', 'unblocked')",
        "SELECT DISTINCT task_id FROM task_events WHERE task_id IN ({marks}) AND kind IN
           ('completion_blocked_hallucination', 'suspected_hallucinated_references', 'unblocked')",
        scope,
        |r| r.get::<String>(0),
    )?
    .into_iter()
    .collect();
    let crashed: HashSet<String> = chunked(
        c,
        "SELECT DISTINCT task_id FROM task_runs WHERE outcome = 'crashed'",
        "SELECT DISTINCT task_id FROM task_runs WHERE task_id IN ({marks}) AND outcome = 'crashed'",
        scope,
        |r| r.get::<String>(0),
    )?
    .into_iter()
    .collect();
    let candidates = candidates(c, q, tasks, &flagged, &crashed)?;
    let mut events: HashMap<String, Vec<Event>> = HashMap::new();
    let mut runs: HashMap<String, Vec<Run>> = HashMap::new();
    if !candidates.is_empty() {
        // Only the kinds the rules read (no heartbeats, claims, spawns…). A large
        // candidate set is cheaper to serve with one scan than with many IN lists.
        let kinds = DIAGNOSTIC_EVENT_KINDS
            .iter()
            .map(|k| format!("'{k}'"))
            .collect::<Vec<_>>()
            .join(",");
        let ev_all = format!(
            "SELECT {EVENT_COLUMNS} FROM task_events WHERE kind IN ({kinds}){skip} ORDER BY id"
        );
        let ev_in = format!(
            "SELECT {EVENT_COLUMNS} FROM task_events WHERE task_id IN ({{marks}}) AND kind IN \
                ({kinds}) ORDER BY id"
        );
        let run_all = format!(
            "SELECT {RUN_COLUMNS} FROM task_runs WHERE 1 = 1{skip} ORDER BY started_at, id"
        );
        let run_in = format!(
            "SELECT {RUN_COLUMNS} FROM task_runs WHERE task_id IN ({{marks}}) ORDER BY \
                started_at, id"
        );
        let wanted: HashSet<&str> = candidates.iter().map(String::as_str).collect();
        let scan_all = candidates.len() > 2 * CHUNK;
        let scope = (!scan_all).then_some(candidates.as_slice());
        // Rows stream through a filter: only the candidates' rows are kept.
        chunked_each(c, &ev_all, &ev_in, scope, diag_event, |e| {
            if wanted.contains(e.task_id.as_str()) {
                events.entry(e.task_id.clone()).or_default().push(e);
            }
        })?;
        chunked_each(
            c,
            &run_all,
            &run_in,
            scope,
            <Run as FromRow>::from_row,
            |r| {
                if wanted.contains(r.task_id.as_str()) {
                    runs.entry(r.task_id.clone()).or_default().push(r);
                }
            },
        )?;
    }
    Ok(DiagnosisInput {
        flagged,
        crashed,
        events,
        runs,
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

    /// Open runs that have a worker pid, on running tasks whose current run they are, oldest
    /// first.
    pub fn active_workers(&self) -> Result<Vec<ActiveWorker>> {
        self.read(|c| {
            let cols: Vec<String> = RUN_COLUMNS
                .split(',')
                .map(|s| format!("r.{}", s.trim()))
                .collect();
            let n = cols.len();
            c.map(
                &format!(
                    "SELECT {}, t.title, t.status, t.assignee FROM task_runs r
                     JOIN tasks t ON t.current_run_id = r.id
                     WHERE t.status = 'running' AND r.ended_at IS NULL AND r.worker_pid IS NOT NULL
                     ORDER BY r.started_at, r.id",
                    cols.join(", ")
                ),
                args![],
                |r| {
                    Ok(ActiveWorker {
                        run: <Run as FromRow>::from_row(r)?,
                        task_title: lenient_text(r, n).unwrap_or_default(),
                        task_status: lenient_text(r, n + 1)
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(Status::Running),
                        task_assignee: lenient_text(r, n + 2),
                    })
                },
            )
        })
    }
}

/// Edit a board's `board.json` (name, description, icon, colour, default workdir); unknown
/// keys are kept. The default workdir must be an existing absolute directory.
pub fn update_board(env: &Env, raw_slug: &str, patch: BoardPatch, now: i64) -> Result<BoardMeta> {
    let slug = normalize_slug(raw_slug)?;
    if !board_exists(env, &slug) {
        return Err(KernelError::BoardNotFound(slug));
    }
    let mut meta = read_board_meta(env, &slug);
    if let Some(n) = patch.name {
        let n = super::validate::required_text("name", &n, 200)?;
        meta.name = n;
    }
    let clean = |field: &'static str, v: Option<String>| -> Result<Option<String>> {
        super::validate::optional_text(field, v.as_deref(), 4096)
    };
    if let Some(d) = patch.description {
        meta.description = clean("description", d)?;
    }
    if let Some(i) = patch.icon {
        meta.icon = clean("icon", i)?;
    }
    if let Some(c) = patch.color {
        meta.color = clean("color", c)?;
    }
    if let Some(w) = patch.default_workdir {
        let w = clean("default_workdir", w)?;
        if let Some(p) = &w {
            check_workdir(p)?;
        }
        meta.default_workdir = w;
    }
    meta.created_at.get_or_insert(now);
    write_board_meta(env, &meta)?;
    Ok(meta)
}

/// A board default workdir must be an absolute path to an existing directory.
pub fn check_workdir(p: &str) -> Result<()> {
    let path = std::path::Path::new(p);
    if !path.is_absolute() {
        return Err(KernelError::invalid(
            "default_workdir",
            format!("{p:?} is not an absolute path"),
        ));
    }
    if !path.is_dir() {
        return Err(KernelError::invalid(
            "default_workdir",
            format!("{p:?} is not an existing directory"),
        ));
    }
    Ok(())
}
