//! The review lifecycle of upstream Hermes (~0.22, UP §4): `request_review` (running/ready →
//! review, the reviewer becomes the assignee), `request_changes` (a run claimed from review →
//! back to the implementer, parents re-gated), `reopen_review` (review → ready/todo), and the
//! helpers the other transitions share: the live-claim guard (UP §5), the resume-to-review rule
//! for failures of a review-lane run and for unblock/recompute, and event lookups.

use super::store::Tx;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::board::{Board, add_event};
use super::comments::add_comment_tx;
use super::error::{KernelError, Result};
use super::graph::parents_satisfied_tx;
use super::runs::end_run;
use super::types::{RunOutcome, Status, Task};
use super::validate as v;
use crate::{args, leave_running, obj};

/// Arguments of [`Board::request_review`].
#[derive(Debug, Clone, Default)]
pub struct ReviewRequest {
    pub task_id: String,
    /// What was done (first line, ≤400 characters, goes on the event; whole on the run).
    pub summary: Option<String>,
    /// Hand-off facts (a JSON object) stored on the run.
    pub metadata: Option<Value>,
    /// Who reviews (lower-cased; becomes the assignee). Default: on a re-review, the reviewer
    /// of the latest `changes_requested`; else the assignee is left alone.
    pub reviewer: Option<String>,
    /// Stale-worker guard and proof of run ownership (the worker's own run).
    pub expected_run_id: Option<i64>,
    /// Close a live worker's run anyway (operator override).
    pub force: bool,
}

/// Result of [`Board::request_review`].
#[derive(Debug, Clone, Serialize)]
pub struct ReviewRequested {
    pub task_id: String,
    /// The closed (or synthesized) run, if any.
    pub run_id: Option<i64>,
    pub implementer: Option<String>,
    pub reviewer: Option<String>,
}

/// Result of [`Board::request_changes`].
#[derive(Debug, Clone, Serialize)]
pub struct ChangesRequested {
    pub task_id: String,
    pub run_id: Option<i64>,
    /// The profile the task went back to.
    pub implementer: String,
    pub reviewer: Option<String>,
    /// Where it landed: `ready`, or `todo` while a parent is unfinished.
    pub status: Status,
}

/// Result of [`Board::reopen_review`].
#[derive(Debug, Clone, Serialize)]
pub struct ReviewReopened {
    pub task_id: String,
    pub status: Status,
    pub implementer: Option<String>,
}

/// Payload of the newest event of `kind` on the task (optionally on one run).
pub(crate) fn latest_event_payload(
    c: &Tx,
    task_id: &str,
    kind: &str,
    run_id: Option<i64>,
) -> Result<Option<Map<String, Value>>> {
    let row: Option<Option<String>> = match run_id {
        Some(r) => c.row(
            "SELECT payload FROM task_events WHERE task_id=?1 AND kind=?2 AND run_id=?3
             ORDER BY id DESC LIMIT 1",
            args![task_id, kind, r],
        )?,
        None => c.row(
            "SELECT payload FROM task_events WHERE task_id=?1 AND kind=?2 ORDER BY id DESC LIMIT 1",
            args![task_id, kind],
        )?,
    };
    Ok(row.map(|p| {
        p.and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    }))
}

fn nonblank(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Whether the task's open run was claimed from `review` (the dispatcher's review lane).
pub(crate) fn run_is_review_lane(c: &Tx, t: &Task) -> Result<bool> {
    let Some(run) = t.current_run_id else {
        return Ok(false);
    };
    let p = latest_event_payload(c, &t.id, "claimed", Some(run))?;
    Ok(p.is_some_and(|p| p.get("source_status").and_then(Value::as_str) == Some("review")))
}

/// Where a blocked task resumes (UP §4): `review` when the newest lifecycle event carries
/// `resume_status`, `retry_status` or `source_status` = `review`, else `ready`.
pub(crate) fn resume_status_tx(c: &Tx, task_id: &str) -> Result<Status> {
    let payload: Option<Option<String>> = c.row(
        "SELECT payload FROM task_events WHERE task_id=?1 AND kind IN (
            'blocked','block_loop_detected','dependency_wait','gave_up','unblocked',
            'changes_requested','review_reopened','status','reclaimed','stale','timed_out',
            'crashed','spawn_failed','rate_limited')
         ORDER BY id DESC LIMIT 1",
        args![task_id],
    )?;
    let p = payload
        .flatten()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .unwrap_or(Value::Null);
    let review = ["resume_status", "retry_status", "source_status"]
        .iter()
        .any(|k| p.get(k).and_then(Value::as_str) == Some("review"));
    Ok(if review {
        Status::Review
    } else {
        Status::Ready
    })
}

/// The live-claim test of UP §5: a `running` task with a claim and a worker pid whose process
/// is alive (its Hermes fingerprint matching when it has one; our supervisor's `/proc` start
/// time when we spawned it). A CLI claim without a pid is not live. A claim taken on another
/// host cannot be checked from here and counts as live.
pub(crate) fn claim_is_live(c: &Tx, t: &Task) -> Result<bool> {
    if t.status != Status::Running || t.claim_lock.is_none() {
        return Ok(false);
    }
    let Some(pid) = t.worker_pid.filter(|p| *p > 0) else {
        return Ok(false);
    };
    if !t
        .claim_lock
        .as_deref()
        .is_some_and(crate::process::lock_is_host_local)
    {
        return Ok(true);
    }
    if let Some(fp) = t.worker_started_at.as_deref() {
        return Ok(
            crate::process::judge_fingerprint(pid, fp) != crate::process::FingerprintVerdict::Dead
        );
    }
    let start: Option<i64> = match t.current_run_id {
        Some(run) => c
            .row::<Option<i64>>(
                "SELECT supervisor_start FROM kanban_worker_procs WHERE run_id=?1 AND \
                supervisor_pid=?2",
                args![run, pid],
            )?
            .flatten(),
        None => None,
    };
    Ok(crate::process::pid_alive_as(pid, start))
}

/// Refuse to close a live worker's run unless the caller owns it (`expected_run_id`, already
/// checked against the current run) or forces it.
pub(crate) fn live_claim_guard(
    c: &Tx,
    t: &Task,
    action: &'static str,
    expected_run_id: Option<i64>,
    force: bool,
) -> Result<()> {
    if expected_run_id.is_none() && !force && claim_is_live(c, t)? {
        return Err(KernelError::refused(
            &t.id,
            action,
            format!(
                "a live worker is running it. Wait for the worker, `hermes-kanban reclaim {}` to \
                 release it, or re-run with --force to close its run and {action} anyway.",
                t.id
            ),
        ));
    }
    Ok(())
}

/// Insert a closed run for a hand-off on a task with no open run, with an explicit profile.
#[allow(clippy::too_many_arguments)]
fn synth_run_as(
    c: &Tx,
    t: &Task,
    profile: Option<&str>,
    outcome: RunOutcome,
    status: &str,
    summary: Option<&str>,
    metadata: Option<&Map<String, Value>>,
    now: i64,
) -> Result<i64> {
    let meta = metadata.map(|m| Value::Object(m.clone()).to_string());
    c.insert_id(
        "INSERT INTO task_runs (task_id, profile, step_key, status, started_at, ended_at, outcome, \
        summary, metadata)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8) RETURNING id",
        args![t.id, profile, t.current_step_key, status, now, outcome.as_str(), summary, meta],
    )
}

/// On a re-review without an explicit reviewer: the reviewer of the latest
/// `changes_requested` (none on a first review; refused when that event lost it).
fn prior_reviewer(c: &Tx, task_id: &str) -> Result<Option<String>> {
    let prior: Option<i64> = c.row(
        "SELECT id FROM task_runs WHERE task_id=?1 AND outcome='changes_requested'
         ORDER BY id DESC LIMIT 1",
        args![task_id],
    )?;
    let Some(run) = prior else {
        return Ok(None);
    };
    let p = latest_event_payload(c, task_id, "changes_requested", Some(run))?;
    match p.as_ref().and_then(|p| nonblank(p.get("reviewer"))) {
        Some(r) => Ok(Some(r.to_lowercase())),
        None => Err(KernelError::refused(
            task_id,
            "request review for",
            "re-review has no recorded reviewer (the latest changes_requested event is missing or \
            malformed); pass --reviewer",
        )),
    }
}

/// The `review_requested` event: the summary's first line, implementer, reviewer and the
/// hand-off's artifacts.
fn review_requested_payload(
    summary: Option<&str>,
    implementer: Option<&str>,
    reviewer: Option<&str>,
    metadata: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut payload = obj! {
        "summary" => summary.map(|s| v::first_line(s, 400)).filter(|s| !s.is_empty()),
        "implementer" => implementer,
        "reviewer" => reviewer,
    };
    let artifacts: Vec<String> = metadata
        .and_then(|m| m.get("artifacts"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if !artifacts.is_empty() {
        payload.insert("artifacts".into(), json!(artifacts));
    }
    payload
}

/// The guards of [`Board::request_review`], in order: status `running` or `ready`, the
/// stale-run guard, parents satisfied, and the live-claim guard.
fn check_reviewable(c: &Tx, t: &Task, expected_run_id: Option<i64>, force: bool) -> Result<()> {
    if !matches!(t.status, Status::Running | Status::Ready) {
        return Err(KernelError::refused(
            &t.id,
            "request review for",
            format!(
                "status is '{}'; only running or ready tasks can go to review",
                t.status
            ),
        ));
    }
    if let Some(e) = expected_run_id
        && t.current_run_id != Some(e)
    {
        return Err(KernelError::stale_run(&t.id, e, t.current_run_id));
    }
    if !parents_satisfied_tx(c, &t.id)? {
        return Err(KernelError::refused(
            &t.id,
            "request review for",
            "parent dependencies are not satisfied; finish the parents first",
        ));
    }
    live_claim_guard(c, t, "request review for", expected_run_id, force)
}

/// Who implemented the work under review: the open run's profile, else the assignee unless
/// the assignee is the reviewer.
fn implementer_of(c: &Tx, t: &Task, reviewer: Option<&str>) -> Result<Option<String>> {
    let from_run: Option<String> = match t.current_run_id {
        Some(run) => c
            .row::<Option<String>>("SELECT profile FROM task_runs WHERE id=?1", args![run])?
            .flatten(),
        None => None,
    };
    Ok(from_run.or_else(|| {
        (t.assignee.as_deref() != reviewer)
            .then(|| t.assignee.clone())
            .flatten()
    }))
}

/// The task leaves its lane for `review` (claim cleared), the reviewer (if any) its assignee.
fn move_to_review(c: &Tx, t: &Task, reviewer: Option<&str>) -> Result<()> {
    let n = c.exec(
        leave_running!(
            "status='review', assignee=COALESCE(?1, assignee)",
            "id=?2 AND status=?3 AND current_run_id IS NOT DISTINCT FROM ?4"
        ),
        args![reviewer, t.id, t.status.as_str(), t.current_run_id],
    )?;
    KernelError::cas(n, &t.id, "request review for")?;
    Ok(())
}

/// Close the open run as `review_requested`; with no open run, a summary or metadata is kept on
/// a synthesized run of the implementer. The run's id, if any.
fn close_review_run(
    c: &Tx,
    t: &Task,
    implementer: Option<&str>,
    summary: Option<&str>,
    metadata: Option<&Map<String, Value>>,
    now: i64,
) -> Result<Option<i64>> {
    let outcome = RunOutcome::ReviewRequested;
    Ok(
        match end_run(c, t, outcome, "review", summary, None, metadata, now)? {
            Some(r) => Some(r),
            None if summary.is_some() || metadata.is_some() => Some(synth_run_as(
                c,
                t,
                implementer,
                outcome,
                "review",
                summary,
                metadata,
                now,
            )?),
            None => None,
        },
    )
}

/// The guards of [`Board::request_changes`], in order: an open run on a `running` task, the
/// stale-run guard, and a run claimed from `review`.
fn check_active_review(c: &Tx, t: &Task, expected_run_id: Option<i64>) -> Result<()> {
    if t.status != Status::Running || t.current_run_id.is_none() {
        return Err(KernelError::refused(
            &t.id,
            "request changes for",
            format!(
                "task is not in an active review run (status '{}'); request changes only while \
                reviewing a task the dispatcher claimed from review",
                t.status
            ),
        ));
    }
    if let Some(e) = expected_run_id
        && t.current_run_id != Some(e)
    {
        return Err(KernelError::stale_run(&t.id, e, t.current_run_id));
    }
    if !run_is_review_lane(c, t)? {
        return Err(KernelError::refused(
            &t.id,
            "request changes for",
            "the active run was not claimed from review; request changes only while reviewing",
        ));
    }
    Ok(())
}

/// The implementer the latest `review_requested` hand-off names (refused when there is no
/// hand-off or it names nobody).
fn handoff_implementer(c: &Tx, task_id: &str) -> Result<String> {
    let Some(handoff) = latest_event_payload(c, task_id, "review_requested", None)? else {
        return Err(KernelError::refused(
            task_id,
            "request changes for",
            "no prior review_requested event",
        ));
    };
    nonblank(handoff.get("implementer")).ok_or_else(|| {
        KernelError::refused(
            task_id,
            "request changes for",
            "the review hand-off records no implementer; reassign the task and reopen it instead",
        )
    })
}

/// Where a task sent back from review lands: `ready`, or `todo` while a parent is unfinished.
fn back_from_review_status(c: &Tx, task_id: &str) -> Result<Status> {
    Ok(if parents_satisfied_tx(c, task_id)? {
        Status::Ready
    } else {
        Status::Todo
    })
}

/// The running review task goes to `status` (claim cleared), assigned to the implementer.
fn send_back_to(c: &Tx, t: &Task, status: Status, implementer: &str) -> Result<()> {
    let n = c.exec(
        leave_running!(
            "status=?1, assignee=?2",
            "id=?3 AND status='running' AND current_run_id=?4"
        ),
        args![status.as_str(), implementer, t.id, t.current_run_id],
    )?;
    KernelError::cas(n, &t.id, "request changes for")?;
    Ok(())
}

impl Board {
    /// Hand a `running` or `ready` task to a reviewer (UP §4): status `review`, claim and pid
    /// cleared, the open run closed (or one synthesized when there is a summary or metadata)
    /// with outcome `review_requested` and run status `review`, the reviewer (lower-cased) as
    /// assignee, event `review_requested {summary, implementer, reviewer, artifacts?}`.
    /// Refused while a parent is unfinished, and for a live worker's run unless the caller owns
    /// it or `force`.
    pub fn request_review(&self, req: ReviewRequest) -> Result<ReviewRequested> {
        let task_id = v::task_id("task_id", &req.task_id)?;
        let summary = v::optional_text("summary", req.summary.as_deref(), v::HANDOFF_MAX_BYTES)?;
        let metadata = v::metadata(req.metadata.as_ref())?;
        let reviewer = v::short_name("reviewer", req.reviewer.as_deref())?
            .map(|r| r.trim().to_lowercase())
            .filter(|r| !r.is_empty());
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(&task_id)?;
            check_reviewable(c, &t, req.expected_run_id, req.force)?;
            let reviewer = match reviewer.clone() {
                Some(r) => Some(r),
                None => prior_reviewer(c, &task_id)?,
            };
            let implementer = implementer_of(c, &t, reviewer.as_deref())?;
            move_to_review(c, &t, reviewer.as_deref())?;
            let (summary, metadata) = (summary.as_deref(), metadata.as_ref());
            let run_id = close_review_run(c, &t, implementer.as_deref(), summary, metadata, now)?;
            let payload = review_requested_payload(
                summary,
                implementer.as_deref(),
                reviewer.as_deref(),
                metadata,
            );
            add_event(c, &task_id, run_id, "review_requested", payload, now)?;
            Ok(ReviewRequested {
                task_id: task_id.clone(),
                run_id,
                implementer,
                reviewer,
            })
        })
    }

    /// Send a task under review back to its implementer (UP §4). Only valid on an active run
    /// claimed from `review`. The run closes with outcome `changes_requested` (the reason is
    /// its summary, its status the landing status); the assignee goes back to the implementer
    /// recorded on the latest `review_requested`; the task lands in `ready`, or `todo` while a
    /// parent is unfinished; `consecutive_failures` is kept. Event `changes_requested {reason,
    /// implementer, reviewer, status}`.
    pub fn request_changes(
        &self,
        task_id: &str,
        reason: &str,
        expected_run_id: Option<i64>,
    ) -> Result<ChangesRequested> {
        let task_id = v::task_id("task_id", task_id)?;
        let reason = v::required_text("reason", reason, v::REASON_MAX_BYTES)?;
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(&task_id)?;
            check_active_review(c, &t, expected_run_id)?;
            let implementer = handoff_implementer(c, &task_id)?;
            let reviewer = t
                .assignee
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_lowercase);
            let status = back_from_review_status(c, &task_id)?;
            send_back_to(c, &t, status, &implementer)?;
            let outcome = RunOutcome::ChangesRequested;
            let run_id = end_run(
                c,
                &t,
                outcome,
                status.as_str(),
                Some(&reason),
                None,
                None,
                now,
            )?;
            let payload = obj! {
                "reason" => reason, "implementer" => implementer, "reviewer" => reviewer,
                "status" => status.as_str(),
            };
            add_event(c, &task_id, run_id, "changes_requested", payload, now)?;
            Ok(ChangesRequested {
                task_id: task_id.clone(),
                run_id,
                implementer,
                reviewer,
                status,
            })
        })
    }

    /// Move a `review` task back to `ready` (or `todo` while a parent is unfinished) so its
    /// implementer works again (UP §4): the implementer of the latest `review_requested` is
    /// restored as assignee; event `review_reopened {status, implementer}` (no payload when it
    /// would be just `{status: ready}`). With `reason` and `author`, a
    /// `CHANGES REQUESTED: <reason>` comment is added in the same transaction.
    pub fn reopen_review(
        &self,
        task_id: &str,
        reason: Option<&str>,
        author: Option<&str>,
    ) -> Result<ReviewReopened> {
        let task_id = v::task_id("task_id", task_id)?;
        let reason = v::optional_text("reason", reason, v::REASON_MAX_BYTES)?;
        let author = v::short_name("author", author)?;
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(&task_id)?;
            if t.status != Status::Review {
                return Err(KernelError::refused(
                    &task_id,
                    "reopen review of",
                    format!(
                        "status is '{}'; only review tasks can be reopened",
                        t.status
                    ),
                ));
            }
            end_run(
                c,
                &t,
                RunOutcome::Reclaimed,
                "reclaimed",
                Some("invariant recovery on review reopen"),
                None,
                None,
                now,
            )?;
            let status = if parents_satisfied_tx(c, &task_id)? {
                Status::Ready
            } else {
                Status::Todo
            };
            let implementer = latest_event_payload(c, &task_id, "review_requested", None)?
                .and_then(|p| nonblank(p.get("implementer")));
            let n = c.exec(
                leave_running!(
                    "status=?1, assignee=COALESCE(?2, assignee)",
                    "id=?3 AND status='review'"
                ),
                args![status.as_str(), implementer, task_id],
            )?;
            KernelError::cas(n, &task_id, "reopen review of")?;
            if let (Some(a), Some(r)) = (&author, &reason) {
                add_comment_tx(c, &task_id, a, &format!("CHANGES REQUESTED: {r}"), now)?;
            }
            let mut payload = obj! {"status" => status.as_str()};
            if let Some(i) = &implementer {
                payload.insert("implementer".into(), json!(i));
            }
            if status == Status::Ready && implementer.is_none() {
                payload = Map::new();
            }
            add_event(c, &task_id, None, "review_reopened", payload, now)?;
            Ok(ReviewReopened {
                task_id: task_id.clone(),
                status,
                implementer,
            })
        })
    }
}
