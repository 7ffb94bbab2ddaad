//! Compound edits of one task: [`Board::patch_task`], what a dashboard PATCH or one bulk item
//! asks for (title, body, priority, assignee and a status move) applied as ONE transaction.
//! Every field is validated before the transaction starts; the steps then run the single-step
//! kernel operations (`update_task`, `assign_task`/`reassign_task`, `complete_task`, …) inside
//! that transaction (each as a savepoint), so a refusal by any step rolls back all of them and
//! a refused PATCH changes nothing. New status moves go in [`Board::move_task_tx_step`].

use serde_json::{Map, Value};

use super::board::Board;
use super::error::{KernelError, Result};
use super::lifecycle::{BlockRequest, Completion};
use super::tasks::TaskPatch;
use super::types::{Status, Task};
use super::validate as v;

/// What one PATCH (or one bulk item) changes. `None` leaves a field alone.
#[derive(Debug, Default, Clone)]
pub struct TaskChange {
    pub title: Option<String>,
    /// `Some(None)` clears the body.
    pub body: Option<Option<String>>,
    pub priority: Option<i64>,
    /// `Some(None)` clears the assignee.
    pub assignee: Option<Option<String>>,
    /// Reassigning a running task reclaims it first (else the reassignment is refused).
    pub reclaim_first: bool,
    /// The status to move to: `done`, `blocked`, `scheduled`, `archived`, `ready`, `todo`,
    /// `triage`. `running` (a worker claims a task) and `review` are refused.
    pub status: Option<Status>,
    /// Hand-off for a move to `done`.
    pub result: Option<String>,
    pub summary: Option<String>,
    pub metadata: Option<Value>,
    /// Reason for a move to `blocked` or `scheduled`.
    pub block_reason: Option<String>,
    /// Kind of a move to `blocked` (`dependency` parks the task in `todo`).
    pub block_kind: Option<super::types::BlockKind>,
    /// Reviewer for a move to `review` (lower-cased; becomes the assignee).
    pub reviewer: Option<String>,
    /// Why a `review` task goes back to its implementer (a move to `ready`/`todo`), stored as a
    /// `CHANGES REQUESTED:` comment; on a running review-lane task it makes the move a
    /// `request_changes`.
    pub reason: Option<String>,
}

impl TaskChange {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.body.is_none()
            && self.priority.is_none()
            && self.assignee.is_none()
            && self.status.is_none()
    }

    /// Check every field (names, sizes, ranges, the status) without touching the DB.
    pub fn validate(&self) -> Result<()> {
        if let Some(t) = &self.title {
            v::title(t)?;
        }
        if let Some(Some(b)) = &self.body {
            v::optional_text("body", Some(b), v::BODY_MAX_BYTES)?;
        }
        if let Some(p) = self.priority {
            v::in_range("priority", p, v::PRIORITY_RANGE)?;
        }
        if let Some(a) = &self.assignee {
            v::profile_name("assignee", a.as_deref())?;
        }
        v::optional_text("result", self.result.as_deref(), v::HANDOFF_MAX_BYTES)?;
        v::optional_text("summary", self.summary.as_deref(), v::HANDOFF_MAX_BYTES)?;
        v::optional_text(
            "block_reason",
            self.block_reason.as_deref(),
            v::REASON_MAX_BYTES,
        )?;
        v::metadata(self.metadata.as_ref())?;
        v::profile_name("reviewer", self.reviewer.as_deref())?;
        v::optional_text("reason", self.reason.as_deref(), v::REASON_MAX_BYTES)?;
        match self.status {
            Some(Status::Running) => Err(KernelError::invalid(
                "status",
                "cannot be set to 'running' directly; a task runs when a worker claims it (nudge the dispatcher instead)",
            )),
            _ => Ok(()),
        }
    }
}

impl Board {
    /// Apply a [`TaskChange`] to one task in one transaction: text fields and priority, then
    /// the assignee, then the status move. Any refusal (validation, a step's state check, a
    /// missing task) is returned and nothing is written. `terminate` is called — inside the
    /// transaction, after the earlier steps succeeded — only when a running task must be
    /// reclaimed for a reassignment; it stops the worker and returns its report.
    pub fn patch_task(
        &self,
        task_id: &str,
        ch: &TaskChange,
        terminate: &mut dyn FnMut(&Task) -> Map<String, Value>,
    ) -> Result<Task> {
        ch.validate()?;
        self.write(|c| {
            let t = super::board::load_task(c, task_id)?;
            if ch.title.is_some() || ch.body.is_some() || ch.priority.is_some() {
                self.update_task(
                    task_id,
                    TaskPatch {
                        title: ch.title.clone(),
                        body: ch.body.clone(),
                        priority: ch.priority,
                        tenant: None,
                    },
                )?;
            }
            if let Some(a) = &ch.assignee {
                let running = t.status == Status::Running || t.claim_lock.is_some();
                if ch.reclaim_first && running {
                    let term = terminate(&t);
                    self.reassign_task(
                        task_id,
                        a.as_deref(),
                        true,
                        Some("reassigned from the dashboard"),
                        term,
                    )?;
                } else {
                    self.assign_task(task_id, a.as_deref())?;
                }
            }
            if let Some(to) = ch.status {
                self.move_task_tx_step(task_id, to, ch)?;
            }
            super::board::load_task(c, task_id)
        })
    }

    /// The status-move step of [`Board::patch_task`]: one single-step kernel operation per
    /// target status. Runs inside `patch_task`'s transaction.
    fn move_task_tx_step(&self, task_id: &str, to: Status, ch: &TaskChange) -> Result<()> {
        let cur = self.get_task(task_id)?;
        match to {
            Status::Done => {
                self.complete_task(Completion {
                    task_id: task_id.to_string(),
                    summary: ch.summary.clone().or_else(|| ch.result.clone()),
                    result: ch.result.clone(),
                    metadata: ch.metadata.clone(),
                    ..Default::default()
                })?;
            }
            Status::Blocked => {
                self.block_task(BlockRequest {
                    task_id: task_id.to_string(),
                    reason: ch.block_reason.clone(),
                    kind: ch.block_kind,
                    ..Default::default()
                })?;
            }
            Status::Scheduled => {
                self.schedule_task(task_id, ch.block_reason.as_deref(), None, None)?
            }
            Status::Archived => {
                self.archive_task(task_id)?;
            }
            // The review lifecycle (UP §4, §11): into review, and out of it back to the
            // implementer, only through its own kernel operations.
            Status::Review => {
                self.request_review(super::review::ReviewRequest {
                    task_id: task_id.to_string(),
                    summary: ch.summary.clone().or_else(|| ch.result.clone()),
                    metadata: ch.metadata.clone(),
                    reviewer: ch.reviewer.clone(),
                    expected_run_id: None,
                    force: false,
                })?;
            }
            Status::Ready | Status::Todo if cur.status == Status::Review => {
                self.reopen_review(task_id, ch.reason.as_deref(), Some("dashboard"))?;
            }
            Status::Ready | Status::Todo
                if cur.status == Status::Running && ch.reason.is_some() =>
            {
                let reason = ch.reason.clone().unwrap_or_default();
                self.request_changes(task_id, &reason, None)?;
            }
            Status::Ready if matches!(cur.status, Status::Blocked | Status::Scheduled) => {
                self.unblock_task(task_id, None, None)?;
            }
            Status::Ready | Status::Todo | Status::Triage => {
                self.set_status_direct(task_id, to)?;
            }
            Status::Running => {
                return Err(KernelError::invalid(
                    "status",
                    format!("'{to}' cannot be set directly"),
                ));
            }
        }
        Ok(())
    }
}

// ----- leaving `running`, and who has a worker (one definition each) -----

/// The SQL of "leave running": an `UPDATE tasks` whose SET clause drops the claim — lock,
/// expiry, worker pid and the worker's fingerprint — alongside the caller's own assignments,
/// under the caller's compare-and-swap guard. Every transition that takes a task out of
/// `running` (or releases its claim) spells it through this macro, so no path can forget a
/// column. Expands to one `&'static str` (no formatting at run time):
///
/// `leave_running!("status=?3, last_heartbeat_at=NULL", "id=?1 AND status='running'")` →
/// `UPDATE tasks SET status=?3, last_heartbeat_at=NULL, claim_lock=NULL, … WHERE id=?1 AND …`.
///
/// With no arguments it is the bare SET fragment (the run row carries the same four columns).
#[macro_export]
#[doc(hidden)]
macro_rules! leave_running {
    () => {
        "claim_lock=NULL, claim_expires=NULL, worker_pid=NULL, worker_started_at=NULL"
    };
    ($set:literal, $guard:literal) => {
        concat!(
            "UPDATE tasks SET ",
            $set,
            ", claim_lock=NULL, claim_expires=NULL, worker_pid=NULL, worker_started_at=NULL WHERE ",
            $guard
        )
    };
}

impl Task {
    /// Whether a worker may be attached to this task: it is `running`, or it still holds a
    /// claim (a claim outlives its status on a task moved underneath its worker). Stopping a
    /// worker, reclaiming and reassigning-with-reclaim all ask this one question.
    pub fn has_worker(&self) -> bool {
        self.status == Status::Running || self.claim_lock.is_some()
    }
}

#[cfg(test)]
mod seam_tests {
    /// The kernel modules moved onto the store seam: what each must no longer contain.
    const MOVED: &[(&str, &str)] = &[
        ("breaker.rs", include_str!("breaker.rs")),
        ("events.rs", include_str!("events.rs")),
        ("fence.rs", include_str!("fence.rs")),
        ("graph.rs", include_str!("graph.rs")),
        ("lifecycle/mod.rs", include_str!("lifecycle/mod.rs")),
        ("lifecycle/claim.rs", include_str!("lifecycle/claim.rs")),
        (
            "lifecycle/complete.rs",
            include_str!("lifecycle/complete.rs"),
        ),
        ("lifecycle/park.rs", include_str!("lifecycle/park.rs")),
        ("liveness/mod.rs", include_str!("liveness/mod.rs")),
        ("liveness/guard.rs", include_str!("liveness/guard.rs")),
        ("liveness/procs.rs", include_str!("liveness/procs.rs")),
        ("liveness/queue.rs", include_str!("liveness/queue.rs")),
        ("liveness/settle.rs", include_str!("liveness/settle.rs")),
        ("liveness/stale.rs", include_str!("liveness/stale.rs")),
        ("notify.rs", include_str!("notify.rs")),
        ("review.rs", include_str!("review.rs")),
        ("runs.rs", include_str!("runs.rs")),
        ("swarm.rs", include_str!("swarm.rs")),
        ("tokens.rs", include_str!("tokens.rs")),
        ("webhooks.rs", include_str!("webhooks.rs")),
    ];

    #[test]
    fn moved_modules_speak_only_tx_and_the_portable_dialect() {
        let banned = [
            // the driver, and its ways round the seam
            "rusqlite",
            "params!",
            "prepare_cached",
            "query_row",
            "query_map",
            "last_insert_rowid",
            ".optional()",
            "db::opt",
            "self.conn",
            "Tx::sqlite",
            // SQLite-only SQL
            "INSERT OR ",
            " IS ?",
            "json_each",
            "rowid",
            // a claim cleared by hand instead of through leave_running!
            "claim_lock=NULL",
        ];
        let mut found = Vec::new();
        for (file, text) in MOVED {
            for bad in banned {
                if text.contains(bad) {
                    found.push(format!("{file}: {bad:?}"));
                }
            }
        }
        assert!(
            found.is_empty(),
            "store-seam violations:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn leave_running_clears_every_claim_column_under_the_callers_guard() {
        assert_eq!(
            leave_running!("status='ready'", "id=?1 AND status='running'"),
            "UPDATE tasks SET status='ready', claim_lock=NULL, claim_expires=NULL, worker_pid=NULL, \
             worker_started_at=NULL WHERE id=?1 AND status='running'"
        );
        assert!(leave_running!().contains("worker_started_at=NULL"));
    }
}
