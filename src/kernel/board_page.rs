//! The dashboard's capped columns: on a large board Done (and Archived) hold most of the tasks
//! and nobody scrolls them, so the compact board sends only their newest cards (a page of
//! `limit`, newest first) with the column's total, and a keyset cursor reads the next page.
//! Newest means the latest completion (`completed_at`, else `created_at`), then the latest
//! creation, then the task id — a total order, so paging from the first page to the last
//! yields every card of the column exactly once while nothing changes.
//!
//! The other columns come from [`Board::board_view`] (with the capped statuses excluded), in
//! the same read transaction, so one snapshot covers the whole answer.

use std::collections::HashMap;

use super::board::Board;
use super::board_view::{BoardCard, BoardFacts, BoardView, BoardViewQuery, view_each_tx};
use super::diagnostics::DiagnosticsConfig;
use super::error::{KernelError, Result};
use super::store::{Arg, Tx, arg_refs};
use super::types::Status;

/// Columns that are capped on the compact board.
pub const CAPPED_COLUMNS: &[Status] = &[Status::Done, Status::Archived];

/// Cards a capped column holds by default (`?done_limit=`).
pub const DEFAULT_COLUMN_LIMIT: usize = 200;

/// Largest page a caller may ask for.
pub const MAX_COLUMN_LIMIT: usize = 10_000;

/// Where the next page of a capped column starts: the sort key of the last card sent.
/// Its text form (`<at>.<created_at>.<id>`) is what clients pass back as `cursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnCursor {
    /// `completed_at`, else `created_at`, of the last card sent.
    pub at: i64,
    /// Its `created_at`.
    pub created_at: i64,
    /// Its id.
    pub id: String,
}

impl ColumnCursor {
    /// The text form clients pass back.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.at, self.created_at, self.id)
    }

    /// Parse a cursor from [`ColumnCursor::encode`]; anything else is an `Invalid` error
    /// naming `cursor`.
    pub fn parse(s: &str) -> Result<ColumnCursor> {
        let bad = || {
            KernelError::invalid(
                "cursor",
                format!(
                    "{:?} is not a cursor from a previous page (pass next_cursor unchanged, or \
                        leave cursor out for the first page)",
                    super::validate::truncate(s, 80)
                ),
            )
        };
        let mut parts = s.trim().splitn(3, '.');
        let at = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let created_at = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let id = parts.next().filter(|p| !p.is_empty()).ok_or_else(bad)?;
        let id = super::validate::task_id("cursor", id).map_err(|_| bad())?;
        Ok(ColumnCursor { at, created_at, id })
    }
}

/// One page of a capped column, newest first.
#[derive(Debug, Clone)]
pub struct ColumnPage {
    /// The column.
    pub status: Status,
    /// Its cards on this page, newest first.
    pub cards: Vec<BoardCard>,
    /// Every task of the column the query covers (all pages).
    pub total: i64,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<ColumnCursor>,
}

/// The compact board: the uncapped columns' cards (`view`) and one page per capped column.
#[derive(Debug, Clone)]
pub struct CappedBoard {
    /// Cards of every status but the capped ones, with the board-wide facts.
    pub view: BoardView,
    /// The first page of Done, and of Archived when the query includes archived tasks.
    pub pages: Vec<ColumnPage>,
}

fn check_capped(status: Status) -> Result<()> {
    if CAPPED_COLUMNS.contains(&status) {
        Ok(())
    } else {
        Err(KernelError::invalid(
            "column",
            format!("'{status}' is not paged; only done and archived are"),
        ))
    }
}

fn check_limit(limit: usize) -> Result<()> {
    if (1..=MAX_COLUMN_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(KernelError::invalid(
            "done_limit",
            format!("{limit} is out of range (1..={MAX_COLUMN_LIMIT})"),
        ))
    }
}

/// `(WHERE clause, args)` selecting the tasks of `status` the query's filters cover.
fn column_filter(q: &BoardViewQuery, status: Status) -> (String, Vec<Arg>) {
    let mut args: Vec<Arg> = vec![Arg::Text(status.as_str().into())];
    let mut filter = String::from("status = ?1");
    for (col, v) in [
        ("tenant", &q.tenant),
        ("workflow_template_id", &q.workflow_template_id),
        ("current_step_key", &q.current_step_key),
    ] {
        if let Some(v) = v {
            args.push(Arg::Text(v.clone()));
            filter.push_str(&format!(" AND {col} = ?{}", args.len()));
        }
    }
    (filter, args)
}

fn column_total(c: &Tx, q: &BoardViewQuery, status: Status) -> Result<i64> {
    let (filter, args) = column_filter(q, status);
    c.one(
        &format!("SELECT count(*) FROM tasks WHERE {filter}"),
        &arg_refs(&args),
    )
}

/// The ids of one page of `status` (newest first), the column's total and the next cursor.
fn page_ids(
    c: &Tx,
    q: &BoardViewQuery,
    status: Status,
    after: Option<&ColumnCursor>,
    limit: usize,
) -> Result<(Vec<String>, i64, Option<ColumnCursor>)> {
    let total = column_total(c, q, status)?;
    let (filter, mut args) = column_filter(q, status);
    let mut page_filter = filter;
    if let Some(cur) = after {
        let n = args.len();
        args.push(Arg::Int(cur.at));
        args.push(Arg::Int(cur.created_at));
        args.push(Arg::Text(cur.id.clone()));
        page_filter.push_str(&format!(
            " AND (COALESCE(completed_at, created_at, 0), COALESCE(created_at, 0), id) < (?{}, \
                ?{}, ?{})",
            n + 1,
            n + 2,
            n + 3
        ));
    }
    args.push(Arg::Int(limit as i64 + 1));
    let rows: Vec<(String, i64, i64)> = c.rows(
        &format!(
            "SELECT id, COALESCE(completed_at, created_at, 0), COALESCE(created_at, 0) FROM tasks
             WHERE {page_filter}
             ORDER BY 2 DESC, 3 DESC, id DESC LIMIT ?{}",
            args.len()
        ),
        &arg_refs(&args),
    )?;
    let more = rows.len() > limit;
    let rows = &rows[..rows.len().min(limit)];
    let next = if more {
        rows.last().map(|(id, at, created_at)| ColumnCursor {
            at: *at,
            created_at: *created_at,
            id: id.clone(),
        })
    } else {
        None
    };
    Ok((rows.iter().map(|r| r.0.clone()).collect(), total, next))
}

impl Board {
    /// How many tasks each capped column holds under the query's filters (its `ids` and
    /// `exclude_statuses` are ignored), so a client holding only some pages keeps its counts
    /// right as cards move in and out.
    pub fn column_totals(&self, q: &BoardViewQuery) -> Result<Vec<(Status, i64)>> {
        self.read(|c| {
            CAPPED_COLUMNS
                .iter()
                .map(|s| Ok((*s, column_total(c, q, *s)?)))
                .collect()
        })
    }

    /// One page of a capped column (`done` or `archived`), newest first, with the column's
    /// total and the cursor of the next page. `after` is the previous page's `next_cursor`
    /// (`None` for the first page); `limit` is 1..=[`MAX_COLUMN_LIMIT`]. The query's tenant
    /// and workflow filters apply; its `ids` and `exclude_statuses` are ignored.
    pub fn column_page(
        &self,
        q: &BoardViewQuery,
        status: Status,
        after: Option<&ColumnCursor>,
        limit: usize,
        cfg: &DiagnosticsConfig,
    ) -> Result<ColumnPage> {
        check_capped(status)?;
        check_limit(limit)?;
        self.read(|c| self.column_page_tx(c, q, status, after, limit, cfg))
    }

    fn column_page_tx(
        &self,
        c: &Tx,
        q: &BoardViewQuery,
        status: Status,
        after: Option<&ColumnCursor>,
        limit: usize,
        cfg: &DiagnosticsConfig,
    ) -> Result<ColumnPage> {
        let (ids, total, next_cursor) = page_ids(c, q, status, after, limit)?;
        let cards = if ids.is_empty() {
            Vec::new()
        } else {
            // The cards' figures through the board view's own incremental path (nested in
            // this read transaction), then back into page order.
            let order: HashMap<&str, usize> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), i))
                .collect();
            let mut cards = self
                .board_view(
                    &BoardViewQuery {
                        ids: Some(ids.clone()),
                        status_since: q.status_since,
                        ..Default::default()
                    },
                    cfg,
                )?
                .cards;
            cards.sort_by_key(|k| order.get(k.task.id.as_str()).copied().unwrap_or(usize::MAX));
            cards
        };
        Ok(ColumnPage {
            status,
            cards,
            total,
            next_cursor,
        })
    }

    /// The compact board: every card of the uncapped columns (as [`Board::board_view`]) and
    /// the first `limit` cards of Done — and of Archived when `q.include_archived` — newest
    /// first with their totals, in one read transaction. `q.ids` must be `None`.
    pub fn board_view_capped(
        &self,
        q: &BoardViewQuery,
        limit: usize,
        cfg: &DiagnosticsConfig,
    ) -> Result<CappedBoard> {
        let mut cards = Vec::new();
        let (facts, pages) = self.board_view_capped_each(q, limit, cfg, self.now(), |c| {
            cards.push(c);
            Ok(())
        })?;
        let view = BoardView {
            cards,
            tenants: facts.tenants,
            assignees: facts.assignees,
            latest_event_id: facts.latest_event_id,
            now: facts.now,
        };
        Ok(CappedBoard { view, pages })
    }

    /// [`Board::board_view_capped`] handing the uncapped columns' cards to `sink` as they are
    /// built (as [`Board::board_view_each`]); the capped columns' pages are returned whole.
    pub fn board_view_capped_each(
        &self,
        q: &BoardViewQuery,
        limit: usize,
        cfg: &DiagnosticsConfig,
        now: i64,
        mut sink: impl FnMut(BoardCard) -> Result<()>,
    ) -> Result<(BoardFacts, Vec<ColumnPage>)> {
        check_limit(limit)?;
        if q.ids.is_some() {
            return Err(KernelError::invalid(
                "ids",
                "a capped board reads whole columns; ask for ids without a column limit",
            ));
        }
        self.read(|c| {
            let mut rest = q.clone();
            rest.exclude_statuses = CAPPED_COLUMNS.to_vec();
            let facts = view_each_tx(c, &rest, cfg, now, &mut sink)?;
            let mut pages = vec![self.column_page_tx(c, q, Status::Done, None, limit, cfg)?];
            if q.include_archived {
                pages.push(self.column_page_tx(c, q, Status::Archived, None, limit, cfg)?);
            }
            Ok((facts, pages))
        })
    }
}
