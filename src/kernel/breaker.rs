//! Circuit-breaker bookkeeping (REF §8.6): `record_task_failure` bumps the unified failure
//! counter and, at the effective limit (task `max_retries` → caller's limit → 2), moves the
//! task to `blocked` with a `gave_up` event. A tripped task stays blocked until a human
//! unblocks it (SPEC §3.3 fix 2).

use super::store::Tx;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::board::{Board, DEFAULT_FAILURE_LIMIT, add_event};
use super::error::{KernelError, Result};
use super::runs::end_run;
use super::types::{RunOutcome, Status, Task};
use super::validate as v;
use crate::{args, leave_running, obj};

/// A failure to record.
#[derive(Debug, Clone)]
pub struct FailureReport {
    pub task_id: String,
    /// What kind of failure (`spawn_failed`, `crashed`, `timed_out`, ...).
    pub outcome: RunOutcome,
    /// Failure text (stored cut to 500 characters).
    pub error: String,
    /// The caller's limit (dispatcher `failure_limit`); task `max_retries` wins over it.
    pub failure_limit: Option<i64>,
    /// Move the task out of `running` here (spawn path), closing its open run with the
    /// outcome. When false, the caller already released it. A trip always releases.
    pub release_claim: bool,
    /// Close the open run here with the outcome (a trip always closes it as `gave_up`).
    pub end_run: bool,
    /// Trip regardless of the count (protocol-violation streak at its limit).
    pub force_trip: bool,
    /// Extra keys for the `gave_up` payload.
    pub extras: Map<String, Value>,
}

impl FailureReport {
    /// A report with the common defaults (no release, no run close, no force).
    pub fn new(task_id: &str, outcome: RunOutcome, error: impl Into<String>) -> Self {
        FailureReport {
            task_id: task_id.to_string(),
            outcome,
            error: error.into(),
            failure_limit: None,
            release_claim: false,
            end_run: false,
            force_trip: false,
            extras: Map::new(),
        }
    }
}

/// What the breaker decided.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailureVerdict {
    /// True when the task was moved to `blocked` (`gave_up`).
    pub tripped: bool,
    /// The counter after this failure.
    pub failures: i64,
    /// The limit that applied.
    pub effective_limit: i64,
    /// `task` (max_retries) or `dispatcher` (caller/default).
    pub limit_source: &'static str,
    /// The run closed here, if any.
    pub run_id: Option<i64>,
}

impl Board {
    /// Record one failure of a task and trip the breaker at the limit. Refused when the task is
    /// no longer `running` or `ready` (it finished or was moved in the meantime).
    pub fn record_task_failure(&self, r: &FailureReport) -> Result<FailureVerdict> {
        if let Some(l) = r.failure_limit {
            v::in_range("failure_limit", l, 1..=1000)?;
        }
        let now = self.now();
        self.write(|c| record_failure_tx(c, r, now))
    }
}

/// The body of [`Board::record_task_failure`], for callers that already hold the write
/// transaction (the liveness settlements apply an exit and count it in one transaction).
pub(crate) fn record_failure_tx(c: &Tx, r: &FailureReport, now: i64) -> Result<FailureVerdict> {
    let error = v::truncate(r.error.trim(), 500);
    let t = c.lock_task(&r.task_id)?;
    // A review-lane run (claimed from review) returns to review (UP §4); its settlement may
    // already have put the task back there.
    let lane = t.status == Status::Review || super::review::run_is_review_lane(c, &t)?;
    if !matches!(t.status, Status::Running | Status::Ready | Status::Review) {
        return Err(KernelError::refused(
            &r.task_id,
            "record a failure for",
            format!(
                "status is '{}'; failures are recorded only for running or ready tasks",
                t.status
            ),
        ));
    }
    let failures = t.consecutive_failures + 1;
    let (limit, source) = match (t.max_retries, r.failure_limit) {
        (Some(m), _) => (m, "task"),
        (None, Some(l)) => (l, "dispatcher"),
        (None, None) => (DEFAULT_FAILURE_LIMIT, "dispatcher"),
    };
    let f = Counted {
        t: &t,
        error,
        lane,
        verdict: FailureVerdict {
            tripped: false,
            failures,
            effective_limit: limit,
            limit_source: source,
            run_id: None,
        },
    };
    if r.force_trip || failures >= limit {
        trip(c, r, f, now)
    } else {
        count(c, r, f, now)
    }
}

/// One failure counted against a task: the task, the stored error, whether its run was a
/// review-lane run, and the verdict so far.
struct Counted<'a> {
    t: &'a Task,
    error: String,
    lane: bool,
    verdict: FailureVerdict,
}

/// The breaker trips: the run closes `gave_up`, the task goes to `blocked` holding no claim,
/// event `gave_up` (sticky).
fn trip(c: &Tx, r: &FailureReport, f: Counted<'_>, now: i64) -> Result<FailureVerdict> {
    let Counted {
        t,
        error,
        lane,
        mut verdict,
    } = f;
    let (failures, limit, source) = (
        verdict.failures,
        verdict.effective_limit,
        verdict.limit_source,
    );
    let mut meta = obj! {
        "failures" => failures,
        "trigger_outcome" => r.outcome.as_str(),
        "effective_limit" => limit,
        "limit_source" => source,
    };
    meta.extend(r.extras.clone());
    // A blocked task holds no claim and no open run (SPEC §3.3 fix 5), whatever the caller
    // asked for: a trip always releases both.
    let run_id = end_run(
        c,
        t,
        RunOutcome::GaveUp,
        "gave_up",
        None,
        Some(&error),
        Some(&meta),
        now,
    )?;
    c.exec(
        leave_running!(
            "status='blocked', consecutive_failures=?1, last_failure_error=?2",
            "id=?3"
        ),
        args![failures, error, r.task_id],
    )?;
    let mut payload = obj! {
        "failures" => failures,
        "effective_limit" => limit,
        "limit_source" => source,
        "error" => error,
        "trigger_outcome" => r.outcome.as_str(),
    };
    payload.extend(r.extras.clone());
    // Every trip holds until a human unblocks it (SPEC §3.3 fix 2); `sticky` tells
    // upstream Hermes (~0.22), whose recompute otherwise judges a trip by its own counter
    // limit, to hold it too (UP §6).
    payload.insert("sticky".into(), json!(true));
    if lane {
        payload.insert("retry_status".into(), json!("review"));
    }
    add_event(c, &r.task_id, run_id, "gave_up", payload, now)?;
    verdict.tripped = true;
    verdict.run_id = run_id;
    Ok(verdict)
}

/// Below the limit: count the failure, and release the task (closing its run) when asked.
fn count(c: &Tx, r: &FailureReport, f: Counted<'_>, now: i64) -> Result<FailureVerdict> {
    let Counted {
        t,
        error,
        lane,
        mut verdict,
    } = f;
    let failures = verdict.failures;
    // Releasing the claim without closing the run would leave a ready task with an open run.
    if r.release_claim || r.end_run {
        let run_id = end_run(
            c,
            t,
            r.outcome,
            r.outcome.as_str(),
            None,
            Some(&error),
            None,
            now,
        )?;
        c.exec(
            leave_running!(
                "status=?4, consecutive_failures=?1, last_failure_error=?2",
                "id=?3"
            ),
            args![
                failures,
                error,
                r.task_id,
                if lane { "review" } else { "ready" }
            ],
        )?;
        let mut payload = obj! {"error" => error, "failures" => failures};
        if lane {
            payload.insert("retry_status".into(), json!("review"));
        }
        add_event(c, &r.task_id, run_id, r.outcome.as_str(), payload, now)?;
        verdict.run_id = run_id;
    } else {
        c.exec(
            "UPDATE tasks SET consecutive_failures=?1, last_failure_error=?2 WHERE id=?3",
            args![failures, error, r.task_id],
        )?;
    }
    Ok(verdict)
}
