//! Parking a task and bringing it back: block (typed; `dependency` waits in `todo`; a
//! same-kind re-block after an unblock routes to `triage`), unblock (to `todo`, `ready` or back
//! to `review`), schedule, and manual promote.

use serde_json::Map;

use super::{BlockRequest, Blocked, PromoteOptions, stale_guard};
use crate::kernel::board::{BLOCK_RECURRENCE_LIMIT, Board, add_event, load_task};
use crate::kernel::comments::add_comment_tx;
use crate::kernel::error::{KernelError, Result};
use crate::kernel::graph::parents_satisfied_tx;
use crate::kernel::review::resume_status_tx;
use crate::kernel::runs::{end_run, synth_run};
use crate::kernel::store::Tx;
use crate::kernel::types::{BlockKind, RunOutcome, Status, Task};
use crate::kernel::validate as v;
use crate::{args, leave_running, obj};

/// Where a block lands, and how it is recorded.
struct BlockLanding {
    status: Status,
    /// The task's `block_recurrences` after the block.
    recurrences: i64,
    /// The event kind: `dependency_wait`, `block_loop_detected` or `blocked`.
    event: &'static str,
}

/// The landing rule of [`Board::block_task`]: `kind=dependency` waits in `todo` (recurrences
/// unchanged); a re-block of the same kind counts up (any other kind starts at 1), and reaching
/// [`BLOCK_RECURRENCE_LIMIT`] routes to `triage`; otherwise `blocked`.
fn block_landing(t: &Task, kind: Option<BlockKind>) -> BlockLanding {
    if kind == Some(BlockKind::Dependency) {
        return BlockLanding {
            status: Status::Todo,
            recurrences: t.block_recurrences,
            event: "dependency_wait",
        };
    }
    let recurrences = if t.block_kind.as_deref() == kind.map(|k| k.as_str()) {
        t.block_recurrences + 1
    } else {
        1
    };
    let (status, event) = if recurrences >= BLOCK_RECURRENCE_LIMIT {
        (Status::Triage, "block_loop_detected")
    } else {
        (Status::Blocked, "blocked")
    };
    BlockLanding {
        status,
        recurrences,
        event,
    }
}

impl BlockLanding {
    /// The event's payload: reason and kind, the recurrences unless a dependency wait, and the
    /// limit on a detected loop.
    fn payload(&self, reason: Option<&str>, kind: Option<&str>) -> Map<String, serde_json::Value> {
        let recurrences = self.recurrences;
        match self.event {
            "dependency_wait" => obj! {"reason" => reason, "kind" => kind},
            "block_loop_detected" => obj! {
                "reason" => reason, "kind" => kind, "recurrences" => recurrences,
                "limit" => BLOCK_RECURRENCE_LIMIT,
            },
            _ => obj! {"reason" => reason, "kind" => kind, "recurrences" => recurrences},
        }
    }
}

/// The task leaves its lane for the landing status (claim cleared), its block kind and
/// recurrences recorded.
fn park_blocked(c: &Tx, t: &Task, landing: &BlockLanding, kind: Option<&str>) -> Result<()> {
    let n = c.exec(
        leave_running!(
            "status=?1, block_kind=?2, block_recurrences=?3",
            "id=?4 AND status=?5 AND current_run_id IS NOT DISTINCT FROM ?6"
        ),
        args![
            landing.status.as_str(),
            kind,
            landing.recurrences,
            t.id,
            t.status.as_str(),
            t.current_run_id
        ],
    )?;
    KernelError::cas(n, &t.id, "block")?;
    Ok(())
}

/// Close the open run with `outcome` (run status `run_status`); with no open run, a reason is
/// kept on a synthesized run. The run's id, if any.
fn close_or_synth_run(
    c: &Tx,
    t: &Task,
    outcome: RunOutcome,
    run_status: &str,
    reason: Option<&str>,
    now: i64,
) -> Result<Option<i64>> {
    Ok(
        match end_run(c, t, outcome, run_status, reason, None, None, now)? {
            Some(r) => Some(r),
            None if reason.is_some() => Some(synth_run(c, t, outcome, reason, None, None, now)?),
            None => None,
        },
    )
}

impl Board {
    /// Block a `running` or `ready` task. `kind=dependency` parks it in `todo`; a re-block of
    /// the same kind after an unblock (recurrences reaching 2) routes it to `triage`; otherwise
    /// it lands in `blocked`, where it stays until a human unblocks it. Closes the open run as
    /// `blocked` (or synthesizes one when a reason is given).
    pub fn block_task(&self, req: BlockRequest) -> Result<Blocked> {
        let task_id = v::task_id("task_id", &req.task_id)?;
        let reason = v::optional_text("reason", req.reason.as_deref(), v::REASON_MAX_BYTES)?;
        let author = v::short_name("author", req.comment_author.as_deref())?;
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(&task_id)?;
            if !matches!(t.status, Status::Running | Status::Ready) {
                return Err(KernelError::refused(
                    &task_id,
                    "block",
                    format!(
                        "status is '{}'; only running or ready tasks can be blocked",
                        t.status
                    ),
                ));
            }
            stale_guard(&t, req.expected_run_id)?;
            if let (Some(a), Some(r)) = (&author, &reason) {
                add_comment_tx(c, &task_id, a, &format!("BLOCKED: {r}"), now)?;
            }
            let kind = req.kind.map(|k| k.as_str());
            let landing = block_landing(&t, req.kind);
            park_blocked(c, &t, &landing, kind)?;
            let reason = reason.as_deref();
            let run_id = close_or_synth_run(c, &t, RunOutcome::Blocked, "blocked", reason, now)?;
            let payload = landing.payload(reason, kind);
            add_event(c, &task_id, run_id, landing.event, payload, now)?;
            Ok(Blocked {
                task_id: task_id.clone(),
                run_id,
                status: landing.status,
                block_kind: req.kind,
                recurrences: landing.recurrences,
            })
        })
    }

    /// Unblock a `blocked` or `scheduled` task: to `todo` if a parent is unfinished, else
    /// `ready`; resets the failure counter; keeps the block-kind memory (so a same-cause
    /// re-block is recognised as a loop). With `author` and `reason`, an `UNBLOCK: <reason>`
    /// comment is added in the same transaction.
    pub fn unblock_task(
        &self,
        task_id: &str,
        reason: Option<&str>,
        author: Option<&str>,
    ) -> Result<Status> {
        let reason = v::optional_text("reason", reason, v::REASON_MAX_BYTES)?;
        let author = v::short_name("author", author)?;
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            if !matches!(t.status, Status::Blocked | Status::Scheduled) {
                return Err(KernelError::refused(
                    task_id,
                    "unblock",
                    format!(
                        "status is '{}'; only blocked or scheduled tasks can be unblocked",
                        t.status
                    ),
                ));
            }
            if let (Some(a), Some(r)) = (&author, &reason) {
                add_comment_tx(c, task_id, a, &format!("UNBLOCK: {r}"), now)?;
            }
            end_run(
                c,
                &t,
                RunOutcome::Reclaimed,
                "reclaimed",
                Some("invariant recovery on unblock"),
                None,
                None,
                now,
            )?;
            // UP §4: a task blocked out of a review lane resumes to review.
            let resume = if t.status == Status::Blocked {
                resume_status_tx(c, task_id)?
            } else {
                Status::Ready
            };
            let status = if !parents_satisfied_tx(c, task_id)? {
                Status::Todo
            } else if resume == Status::Review {
                Status::Review
            } else {
                Status::Ready
            };
            let n = c.exec(
                leave_running!(
                    "status=?1, consecutive_failures=0, last_failure_error=NULL",
                    "id=?2 AND status=?3"
                ),
                args![status.as_str(), task_id, t.status.as_str()],
            )?;
            KernelError::cas(n, task_id, "unblock")?;
            let payload = if resume == Status::Review {
                obj! {"status" => status.as_str(), "resume_status" => "review"}
            } else if status == Status::Todo {
                obj! {"status" => "todo"}
            } else {
                Map::new()
            };
            add_event(c, task_id, None, "unblocked", payload, now)?;
            Ok(status)
        })
    }

    /// Park a `todo`, `ready`, `running` or `blocked` task in `scheduled` (never dispatched
    /// until unblocked). Closes an open run as `scheduled` (or synthesizes one with a reason).
    pub fn schedule_task(
        &self,
        task_id: &str,
        reason: Option<&str>,
        expected_run_id: Option<i64>,
        author: Option<&str>,
    ) -> Result<()> {
        let reason = v::optional_text("reason", reason, v::REASON_MAX_BYTES)?;
        let author = v::short_name("author", author)?;
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            if !matches!(
                t.status,
                Status::Todo | Status::Ready | Status::Running | Status::Blocked
            ) {
                return Err(KernelError::refused(
                    task_id,
                    "schedule",
                    format!(
                        "status is '{}'; only todo, ready, running or blocked tasks can be \
                        scheduled",
                        t.status
                    ),
                ));
            }
            stale_guard(&t, expected_run_id)?;
            if let (Some(a), Some(r)) = (&author, &reason) {
                add_comment_tx(c, task_id, a, &format!("SCHEDULED: {r}"), now)?;
            }
            let n = c.exec(
                leave_running!("status='scheduled'", "id=?1 AND status=?2"),
                args![task_id, t.status.as_str()],
            )?;
            KernelError::cas(n, task_id, "schedule")?;
            let outcome = RunOutcome::Scheduled;
            let run_id = close_or_synth_run(c, &t, outcome, "scheduled", reason.as_deref(), now)?;
            add_event(
                c,
                task_id,
                run_id,
                "scheduled",
                obj! {"reason" => reason},
                now,
            )?;
            Ok(())
        })
    }

    /// Manually promote a `todo` or `blocked` task to `ready` (event `promoted_manual`).
    /// Unfinished parents refuse unless `force`. `dry_run` validates and writes nothing.
    pub fn promote_task(&self, task_id: &str, opts: &PromoteOptions) -> Result<()> {
        let reason = v::optional_text("reason", opts.reason.as_deref(), v::REASON_MAX_BYTES)?;
        let actor = v::short_name("actor", opts.actor.as_deref())?;
        let now = self.now();
        // `lock`: the write path locks the row it is about to move; the dry run only reads.
        let check = |c: &Tx, lock: bool| -> Result<Task> {
            let t = if lock {
                c.lock_task(task_id)?
            } else {
                load_task(c, task_id)?
            };
            if !matches!(t.status, Status::Todo | Status::Blocked) {
                return Err(KernelError::refused(
                    task_id,
                    "promote",
                    format!(
                        "task {task_id} is '{}'; promote only applies to 'todo' or 'blocked'",
                        t.status
                    ),
                ));
            }
            if !opts.force && !parents_satisfied_tx(c, task_id)? {
                return Err(KernelError::refused(
                    task_id,
                    "promote",
                    "a parent is not done or archived; finish it first or pass --force",
                ));
            }
            Ok(t)
        };
        if opts.dry_run {
            return self.read(|c| check(c, false).map(|_| ()));
        }
        self.write(|c| {
            let t = check(c, true)?;
            c.exec(
                "UPDATE tasks SET status='ready' WHERE id=?1 AND status=?2",
                args![task_id, t.status.as_str()],
            )?;
            add_event(
                c,
                task_id,
                None,
                "promoted_manual",
                obj! {"actor" => actor, "reason" => reason, "forced" => opts.force},
                now,
            )?;
            Ok(())
        })
    }
}
