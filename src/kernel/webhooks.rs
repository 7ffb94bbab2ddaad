//! Webhook delivery cursors (`kanban_webhook_cursors`, migration 0005): one row per configured
//! hook (`kanban.notify.webhooks`, keyed by name). A new hook starts at the board's max event
//! id (nothing is replayed); the next events for a hook are read with its kind / tenant /
//! assignee filters; an event is claimed by a compare-and-swap on the cursor before it is
//! posted, so two hosts (`serve` and `daemon` on one board) never deliver it twice. The HTTP
//! side lives in `crate::notify`.

use serde::Serialize;

use super::board::Board;
use super::error::Result;
use super::store::{Arg, FromRow, Row, arg_refs};
use super::types::{Event, lenient_i64, lenient_text};
use crate::args;

/// A hook's cursor row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookCursor {
    pub hook: String,
    /// Last event id claimed for this hook.
    pub last_event_id: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Events posted successfully.
    pub delivered: i64,
    /// Events given up on after the last retry.
    pub failed: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
}

/// An event to deliver, with the task fields a message needs.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookEvent {
    pub event: Event,
    pub title: Option<String>,
    pub status: Option<String>,
    pub assignee: Option<String>,
    pub tenant: Option<String>,
}

/// Which events a hook wants.
#[derive(Debug, Clone, Default)]
pub struct WebhookFilter {
    /// Event kinds (empty = none).
    pub kinds: Vec<String>,
    /// Only tasks of this tenant.
    pub tenant: Option<String>,
    /// Only tasks with this assignee.
    pub assignee: Option<String>,
    /// At most this many events (default 100).
    pub limit: Option<usize>,
}

/// The next events for a hook and how far the scan went.
#[derive(Debug, Clone)]
pub struct WebhookBatch {
    pub events: Vec<WebhookEvent>,
    /// The cursor can move here once `events` are claimed: the last event id looked at (the
    /// board's max id when fewer than `limit` matched).
    pub scanned_to: i64,
}

impl FromRow for WebhookCursor {
    fn from_row(r: &Row<'_>) -> Result<WebhookCursor> {
        Ok(WebhookCursor {
            hook: r.get(0)?,
            last_event_id: lenient_i64(r, 1).unwrap_or(0),
            created_at: lenient_i64(r, 2).unwrap_or(0),
            updated_at: lenient_i64(r, 3).unwrap_or(0),
            delivered: lenient_i64(r, 4).unwrap_or(0),
            failed: lenient_i64(r, 5).unwrap_or(0),
            last_error: lenient_text(r, 6),
            last_error_at: lenient_i64(r, 7),
        })
    }
}

const CURSOR_COLUMNS: &str =
    "hook, last_event_id, created_at, updated_at, delivered, failed, last_error, last_error_at";

impl Board {
    /// The cursor of `hook`, creating it at the board's current max event id when it does not
    /// exist yet (a new hook sees only events from now on).
    pub fn webhook_cursor_start(&self, hook: &str) -> Result<WebhookCursor> {
        // The common case (the row exists) reads only: delivery polls every few seconds and
        // must not take the board's write lock each time.
        let existing = self.read(|c| {
            c.row::<WebhookCursor>(
                &format!("SELECT {CURSOR_COLUMNS} FROM kanban_webhook_cursors WHERE hook=?1"),
                args![hook],
            )
        })?;
        if let Some(c) = existing {
            return Ok(c);
        }
        let now = self.now();
        self.write(|c| {
            c.exec(
                "INSERT INTO kanban_webhook_cursors (hook, last_event_id, created_at, updated_at)
                 VALUES (?1, (SELECT COALESCE(max(id), 0) FROM task_events), ?2, ?2)
                 ON CONFLICT DO NOTHING",
                args![hook, now],
            )?;
            c.one::<WebhookCursor>(
                &format!("SELECT {CURSOR_COLUMNS} FROM kanban_webhook_cursors WHERE hook=?1"),
                args![hook],
            )
        })
    }

    /// Every hook cursor on this board, by name.
    pub fn webhook_cursors(&self) -> Result<Vec<WebhookCursor>> {
        self.read(|c| {
            c.rows::<WebhookCursor>(
                &format!("SELECT {CURSOR_COLUMNS} FROM kanban_webhook_cursors ORDER BY hook"),
                args![],
            )
        })
    }

    /// Events after `after` that pass `f`, oldest first, with their task's title, status,
    /// assignee and tenant (as they are now), read in one snapshot.
    pub fn webhook_pending(&self, after: i64, f: &WebhookFilter) -> Result<WebhookBatch> {
        let limit = f.limit.unwrap_or(100).max(1);
        if f.kinds.is_empty() {
            return Ok(WebhookBatch {
                events: vec![],
                scanned_to: self.max_event_id()?.max(after),
            });
        }
        self.read(|c| {
            let max = c.one::<i64>("SELECT COALESCE(max(id), 0) FROM task_events", args![])?;
            let mut args: Vec<Arg> = vec![Arg::Int(after)];
            let mut marks = Vec::new();
            for k in &f.kinds {
                args.push(Arg::Text(k.clone()));
                marks.push(format!("?{}", args.len()));
            }
            let mut sql = format!(
                "SELECT e.id, e.task_id, e.run_id, e.kind, e.payload, e.created_at,
                        t.title, t.status, t.assignee, t.tenant
                 FROM task_events e LEFT JOIN tasks t ON t.id = e.task_id
                 WHERE e.id > ?1 AND e.kind IN ({})",
                marks.join(",")
            );
            if let Some(t) = &f.tenant {
                args.push(Arg::Text(t.clone()));
                sql.push_str(&format!(" AND t.tenant = ?{}", args.len()));
            }
            if let Some(a) = &f.assignee {
                args.push(Arg::Text(a.clone()));
                sql.push_str(&format!(" AND t.assignee = ?{}", args.len()));
            }
            args.push(Arg::Int(limit as i64));
            sql.push_str(&format!(" ORDER BY e.id LIMIT ?{}", args.len()));
            let events = c.map(&sql, &arg_refs(&args), |r| {
                Ok(WebhookEvent {
                    event: <Event as FromRow>::from_row(r)?,
                    title: lenient_text(r, 6),
                    status: lenient_text(r, 7),
                    assignee: lenient_text(r, 8),
                    tenant: lenient_text(r, 9),
                })
            })?;
            let scanned_to = if events.len() >= limit {
                events.last().map(|e| e.event.id).unwrap_or(after)
            } else {
                max.max(after)
            };
            Ok(WebhookBatch { events, scanned_to })
        })
    }

    /// Move `hook`'s cursor from `from` to `to` (compare-and-swap). `false` when another host
    /// moved it first — then that host delivers the events in between, not this one.
    pub fn webhook_claim(&self, hook: &str, from: i64, to: i64) -> Result<bool> {
        let now = self.now();
        self.write(|c| {
            let n = c.exec(
                "UPDATE kanban_webhook_cursors SET last_event_id=?3, updated_at=?4
                 WHERE hook=?1 AND last_event_id=?2",
                args![hook, from, to, now],
            )?;
            Ok(n == 1)
        })
    }

    /// Record the outcome of one delivery: `Ok` counts a delivered event; `Err(message)` counts
    /// an event given up on and keeps the message as the hook's last error.
    pub fn webhook_record(&self, hook: &str, outcome: std::result::Result<(), &str>) -> Result<()> {
        let now = self.now();
        self.write(|c| {
            match outcome {
                Ok(()) => c.exec(
                    "UPDATE kanban_webhook_cursors SET delivered=delivered+1, updated_at=?2 WHERE \
                    hook=?1",
                    args![hook, now],
                )?,
                Err(msg) => c.exec(
                    "UPDATE kanban_webhook_cursors SET failed=failed+1, last_error=?2, \
                    last_error_at=?3,
                            updated_at=?3 WHERE hook=?1",
                    args![hook, super::validate::truncate(msg, 500), now],
                )?,
            };
            Ok(())
        })
    }
}
