//! Moving a task between statuses from the dashboard and REST: [`Board::move_task`], the one
//! place that picks the legal transition for a target status (complete, block, schedule,
//! archive, request review, reopen a review, request changes, unblock, or the direct write of
//! REF §5.2 `_set_status_direct` for `todo`/`triage`/`ready`), and [`Board::patch_task`], what
//! a PATCH or one bulk item asks for (title, body, priority, assignee and a status move)
//! applied as ONE transaction. Every field is validated before the transaction starts; the
//! steps then run the single-step kernel operations (`update_task`, `assign_task`/
//! `reassign_task`, `complete_task`, …) inside that transaction (each as a savepoint), so a
//! refusal by any step rolls back all of them and a refused PATCH changes nothing.

use serde::Serialize;
use serde_json::{Map, Value};

use super::board::{Board, add_event, load_task};
use super::error::{KernelError, Result};
use super::graph::children_of;
use super::lifecycle::{BlockRequest, Completion};
use super::runs::end_run;
use super::store::Tx;
use super::tasks::TaskPatch;
use super::types::{RunOutcome, Status, Task};
use super::validate as v;
use crate::{args, leave_running, obj};

/// What a status move may carry besides its target; each move reads only its own fields.
#[derive(Debug, Default, Clone)]
pub struct MoveDetails {
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

impl MoveDetails {
    /// Check every field (sizes, names) without touching the DB.
    pub fn validate(&self) -> Result<()> {
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
        Ok(())
    }
}

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
    /// The status to move to (see [`Board::move_task`]).
    pub status: Option<Status>,
    /// What the status move carries.
    pub details: MoveDetails,
}

/// `running` is never a target: a task runs when a worker claims it.
fn check_target(to: Status) -> Result<()> {
    match to {
        Status::Running => Err(KernelError::invalid(
            "status",
            "cannot be set to 'running' directly; a task runs when a worker claims it (nudge the \
            dispatcher instead)",
        )),
        _ => Ok(()),
    }
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
        self.details.validate()?;
        self.status.map_or(Ok(()), check_target)
    }
}

/// Result of [`Board::set_status_direct`].
#[derive(Debug, Clone, Serialize)]
pub struct DirectMove {
    /// The task after the move.
    pub task: Task,
    /// The run closed as `reclaimed` (when the task left `running` with an open run).
    pub run_id: Option<i64>,
    /// Children moved from `ready` back to `todo` because this parent was reopened.
    pub demoted: Vec<String>,
}

impl Board {
    /// Apply a [`TaskChange`] to one task in one transaction: text fields and priority, then
    /// the assignee, then the status move ([`Board::move_task`]'s rule). Any refusal
    /// (validation, a step's state check, a missing task) is returned and nothing is written.
    /// `terminate` is called — inside the transaction, after the earlier steps succeeded —
    /// only when a running task must be reclaimed for a reassignment; it stops the worker and
    /// returns its report.
    pub fn patch_task(
        &self,
        task_id: &str,
        ch: &TaskChange,
        terminate: &mut dyn FnMut(&Task) -> Map<String, Value>,
    ) -> Result<Task> {
        ch.validate()?;
        self.write(|c| {
            let t = c.lock_task(task_id)?;
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
                let running = t.has_worker();
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
                // A savepoint inside this transaction: the same rule as a lone move.
                self.move_task(task_id, to, &ch.details)?;
            }
            load_task(c, task_id)
        })
    }

    /// Move a task to status `to` by the one legal transition for it (what a dashboard drag,
    /// a PATCH `status` and a bulk move do): `done` completes, `blocked` blocks, `scheduled`
    /// schedules, `archived` archives, `review` requests a review; `ready`/`todo` from
    /// `review` reopens the review, from a running task with a `reason` requests changes;
    /// `ready` from `blocked`/`scheduled` unblocks; any other `ready`/`todo`/`triage` is the
    /// direct write of [`Board::set_status_direct`]. `running` is refused. One transaction:
    /// a refusal changes nothing. Returns the task after the move.
    pub fn move_task(&self, task_id: &str, to: Status, d: &MoveDetails) -> Result<Task> {
        check_target(to)?;
        d.validate()?;
        let now = self.now();
        self.write(|c| {
            self.move_step(c, task_id, to, d, now)?;
            load_task(c, task_id)
        })
    }

    /// The body of [`Board::move_task`], inside the caller's transaction.
    fn move_step(
        &self,
        c: &Tx,
        task_id: &str,
        to: Status,
        d: &MoveDetails,
        now: i64,
    ) -> Result<()> {
        let cur = c.lock_task(task_id)?;
        match to {
            Status::Done => {
                self.complete_task(Completion {
                    task_id: task_id.to_string(),
                    summary: d.summary.clone().or_else(|| d.result.clone()),
                    result: d.result.clone(),
                    metadata: d.metadata.clone(),
                    ..Default::default()
                })?;
            }
            Status::Blocked => {
                self.block_task(BlockRequest {
                    task_id: task_id.to_string(),
                    reason: d.block_reason.clone(),
                    kind: d.block_kind,
                    ..Default::default()
                })?;
            }
            Status::Scheduled => {
                self.schedule_task(task_id, d.block_reason.as_deref(), None, None)?
            }
            Status::Archived => {
                self.archive_task(task_id)?;
            }
            // The review lifecycle (UP §4, §11): into review, and out of it back to the
            // implementer, only through its own kernel operations.
            Status::Review => {
                self.request_review(super::review::ReviewRequest {
                    task_id: task_id.to_string(),
                    summary: d.summary.clone().or_else(|| d.result.clone()),
                    metadata: d.metadata.clone(),
                    reviewer: d.reviewer.clone(),
                    expected_run_id: None,
                    force: false,
                })?;
            }
            Status::Ready | Status::Todo if cur.status == Status::Review => {
                self.reopen_review(task_id, d.reason.as_deref(), Some("dashboard"))?;
            }
            Status::Ready | Status::Todo if cur.status == Status::Running && d.reason.is_some() => {
                let reason = d.reason.clone().unwrap_or_default();
                self.request_changes(task_id, &reason, None)?;
            }
            Status::Ready if matches!(cur.status, Status::Blocked | Status::Scheduled) => {
                self.unblock_task(task_id, None, None)?;
            }
            Status::Ready | Status::Todo | Status::Triage => {
                set_status_direct_tx(c, cur, to, now)?;
            }
            Status::Running => check_target(to)?,
        }
        Ok(())
    }

    /// The dashboard's direct status write (REF §5.2 `_set_status_direct`) to `todo`,
    /// `triage` or `ready`. `ready` is refused for `blocked`/`scheduled` tasks (unblock them)
    /// and while a parent is neither done nor archived (SPEC §3.3 fix 1; the refusal names the
    /// parents). Leaving `running` clears the claim and closes the open run as `reclaimed`.
    /// Leaving `done`/`archived` demotes this task's `ready` children to `todo` (event
    /// `status {status: todo, reason: parent_reopened, parent}`). Event `status {status}`.
    /// Moving a task to the status it already has changes nothing. [`Board::move_task`] picks
    /// this move when no other transition applies.
    pub fn set_status_direct(&self, task_id: &str, to: Status) -> Result<DirectMove> {
        if !matches!(to, Status::Todo | Status::Triage | Status::Ready) {
            return Err(KernelError::invalid(
                "status",
                format!(
                    "'{to}' cannot be set directly; only todo, triage and ready can (complete, \
                    block, schedule or archive the task instead)"
                ),
            ));
        }
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            set_status_direct_tx(c, t, to, now)
        })
    }
}

/// [`Board::set_status_direct`] inside the caller's transaction, on the locked row `t`.
fn set_status_direct_tx(c: &Tx, t: Task, to: Status, now: i64) -> Result<DirectMove> {
    let task_id = t.id.as_str();
    if t.status == to {
        return Ok(DirectMove {
            task: t,
            run_id: None,
            demoted: vec![],
        });
    }
    if to == Status::Ready && matches!(t.status, Status::Blocked | Status::Scheduled) {
        return Err(KernelError::refused(
            task_id,
            "move to ready",
            format!("it is {}; unblock it instead", t.status),
        ));
    }
    // Parents and children are read and demoted under the board lock, so a concurrent
    // promotion (recompute_ready) cannot act on a parent state this move is changing.
    c.lock_board()?;
    if to == Status::Ready {
        let undone: Vec<String> = c.rows(
            "SELECT p.id FROM task_links l JOIN tasks p ON p.id = l.parent_id
             WHERE l.child_id = ?1 AND p.status NOT IN ('done', 'archived') ORDER BY p.id",
            args![task_id],
        )?;
        if !undone.is_empty() {
            return Err(KernelError::refused(
                task_id,
                "move to ready",
                format!("parents not done: {}", undone.join(", ")),
            ));
        }
    }
    let run_id = end_run(
        c,
        &t,
        RunOutcome::Reclaimed,
        "reclaimed",
        Some(&format!("status set to {to} from the dashboard")),
        None,
        None,
        now,
    )?;
    let n = c.exec(
        leave_running!("status=?1", "id=?2 AND status=?3"),
        args![to.as_str(), task_id, t.status.as_str()],
    )?;
    KernelError::cas(n, task_id, "move")?;
    add_event(
        c,
        task_id,
        run_id,
        "status",
        obj! {"status" => to.as_str()},
        now,
    )?;
    let demoted = if t.status.satisfies_children() {
        demote_ready_children(c, task_id, now)?
    } else {
        vec![]
    };
    Ok(DirectMove {
        task: load_task(c, task_id)?,
        run_id,
        demoted,
    })
}

/// A reopened parent (it left `done`/`archived`) no longer satisfies its children: move its
/// unclaimed `ready` children back to `todo` (event `status {status: todo, reason:
/// parent_reopened, parent}`). Returns their ids. The caller holds the board lock.
fn demote_ready_children(c: &Tx, parent: &str, now: i64) -> Result<Vec<String>> {
    let mut demoted = Vec::new();
    for child in children_of(c, parent)? {
        let n = c.exec(
            "UPDATE tasks SET status='todo' WHERE id=?1 AND status='ready' AND claim_lock IS NULL",
            args![child],
        )?;
        if n == 1 {
            add_event(
                c,
                &child,
                None,
                "status",
                obj! {"status" => "todo", "reason" => "parent_reopened", "parent" => parent},
                now,
            )?;
            demoted.push(child);
        }
    }
    Ok(demoted)
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
        ("board_view.rs", include_str!("board_view.rs")),
        (
            "board_view/diagnosis.rs",
            include_str!("board_view/diagnosis.rs"),
        ),
        (
            "board_view/workers.rs",
            include_str!("board_view/workers.rs"),
        ),
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
            "UPDATE tasks SET status='ready', claim_lock=NULL, claim_expires=NULL, \
            worker_pid=NULL, worker_started_at=NULL WHERE id=?1 AND status='running'"
        );
        assert!(leave_running!().contains("worker_started_at=NULL"));
    }
}
