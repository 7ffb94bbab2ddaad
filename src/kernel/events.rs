//! Reading the append-only event log: a task's events, and the board-wide stream after a
//! cursor (for `watch`, `tail`, the dashboard's live feed and notifications).

use super::board::Board;
use super::error::Result;
use super::store::{Arg, arg_refs};
use super::types::{EVENT_COLUMNS, Event};
use crate::args;

/// Every event kind we or Hermes (0.19.0 and the upstream ~0.22 line) write. `watch --kinds`
/// and other filters refuse a kind outside this list and the board's own log, so a typo
/// (`complted`) is an error instead of a filter that never matches.
pub const KNOWN_EVENT_KINDS: &[&str] = &[
    "archive_worker_termination",
    "archived",
    "assigned",
    "attached",
    "attachment_removed",
    "block_loop_detected",
    "blocked",
    "changes_requested",
    "claim_extended",
    "claim_rejected",
    "claimed",
    "commented",
    "completed",
    "completion_blocked_empty_result",
    "completion_blocked_hallucination",
    "crashed",
    "created",
    "dependency_wait",
    "descendant_invalidated",
    "edited",
    "gave_up",
    "heartbeat",
    "linked",
    "model_override_set",
    "pr_acceptance",
    "promoted",
    "promoted_manual",
    "protocol_violation",
    "rate_limited",
    "reasoning_effort_set",
    "reclaim_deferred",
    "reclaimed",
    "reconciled",
    "reprioritized",
    "respawn_guarded",
    "review_reopened",
    "review_requested",
    "scheduled",
    "skipped_nonspawnable",
    "spawn_failed",
    "spawned",
    "stale",
    "status",
    "suspected_hallucinated_references",
    "terminal_worker_reaped",
    "timed_out",
    "unblocked",
    "unlinked",
    "worker_registered",
    "workspace_cleanup_deferred_shared",
];

/// Filters for [`Board::events_after`].
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this task.
    pub task_id: Option<String>,
    /// Only these kinds (empty = all).
    pub kinds: Vec<String>,
    /// At most this many events (default 1000).
    pub limit: Option<usize>,
}

impl Board {
    /// Events of one task, oldest first (`created_at`, then id — Hermes' order); `limit` keeps
    /// the newest N. The order matches `idx_events_task(task_id, created_at)` (insertion order
    /// last), so the newest N are read straight off the index instead of sorting every event of the
    /// task (a worker that heartbeats for hours has thousands).
    pub fn list_events(&self, task_id: &str, limit: Option<usize>) -> Result<Vec<Event>> {
        // Without a limit the inner LIMIT is left out (PostgreSQL refuses a negative one).
        static ALL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        static NEWEST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = |limit: &str| {
            format!(
                "SELECT {EVENT_COLUMNS} FROM (SELECT * FROM task_events WHERE task_id=?1
                     ORDER BY created_at DESC, id DESC{limit}) newest
                 ORDER BY created_at, id"
            )
        };
        self.read(|c| match limit {
            None => c.rows::<Event>(ALL.get_or_init(|| sql("")), args![task_id]),
            Some(l) => c.rows::<Event>(
                NEWEST.get_or_init(|| sql(" LIMIT ?2")),
                args![task_id, l as i64],
            ),
        })
    }

    /// Events with `id > after`, oldest first, filtered.
    pub fn events_after(&self, after: i64, f: &EventFilter) -> Result<Vec<Event>> {
        let limit = f.limit.unwrap_or(1000) as i64;
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM task_events WHERE id > ?1");
        let mut args: Vec<Arg> = vec![Arg::Int(after)];
        if let Some(t) = &f.task_id {
            args.push(Arg::Text(t.clone()));
            sql.push_str(&format!(" AND task_id = ?{}", args.len()));
        }
        if !f.kinds.is_empty() {
            let mut marks = Vec::new();
            for k in &f.kinds {
                args.push(Arg::Text(k.clone()));
                marks.push(format!("?{}", args.len()));
            }
            sql.push_str(&format!(" AND kind IN ({})", marks.join(",")));
        }
        args.push(Arg::Int(limit));
        sql.push_str(&format!(" ORDER BY id LIMIT ?{}", args.len()));
        self.read(|c| c.rows::<Event>(&sql, &arg_refs(&args)))
    }

    /// Check event kinds given as a filter: each must be a [`KNOWN_EVENT_KINDS`] entry or a
    /// kind already in this board's log. An unknown one is refused, listing the valid kinds.
    pub fn check_event_kinds(&self, kinds: &[String]) -> Result<()> {
        let unknown: Vec<&String> = kinds
            .iter()
            .filter(|k| !KNOWN_EVENT_KINDS.contains(&k.as_str()))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let mut seen: Vec<String> =
            self.read(|c| c.rows::<String>("SELECT DISTINCT kind FROM task_events", args![]))?;
        let bad: Vec<&str> = unknown
            .iter()
            .filter(|k| !seen.contains(k))
            .map(|k| k.as_str())
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        seen.extend(KNOWN_EVENT_KINDS.iter().map(|k| k.to_string()));
        seen.sort();
        seen.dedup();
        Err(super::error::KernelError::invalid(
            "kinds",
            format!(
                "unknown event kind{} {}; valid kinds: {}",
                if bad.len() == 1 { "" } else { "s" },
                bad.join(", "),
                seen.join(", ")
            ),
        ))
    }

    /// The highest event id on the board (0 when empty) — the starting cursor of a live stream.
    pub fn max_event_id(&self) -> Result<i64> {
        self.read(|c| c.one::<i64>("SELECT COALESCE(max(id), 0) FROM task_events", args![]))
    }
}
