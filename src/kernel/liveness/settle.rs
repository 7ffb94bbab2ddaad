//! Applying a worker's exit to its task, exactly once per run (REF §8.3–§8.8): a clean exit
//! without a hand-off is a protocol violation (the breaker trips on a streak), exit 75 a rate
//! limit (counts nothing), a time-out, a crash (exit 78: a terminal provider error, sticky at
//! once) and a spawn failure each count one failure. Also the supervisors' settlements a tick
//! has not reported yet.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::procs::{load_proc, mark_settled, store_exit};
use super::{
    ExitClass, PROTOCOL_VIOLATION_HINT, PROTOCOL_VIOLATION_LIMIT, SettledBy,
    TERMINAL_PROVIDER_EXIT_CODE, WorkerExit,
};
use crate::kernel::board::{Board, add_event};
use crate::kernel::breaker::{FailureReport, record_failure_tx};
use crate::kernel::error::{KernelError, Result};
use crate::kernel::review::run_is_review_lane;
use crate::kernel::runs::end_run;
use crate::kernel::store::Tx;
use crate::kernel::types::{RunOutcome, Status, Task};
use crate::kernel::validate as v;
use crate::{args, leave_running};

/// What applying an exit did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settlement {
    pub task_id: String,
    pub run_id: i64,
    /// The run outcome applied; `None` when the run had already been closed (the worker
    /// completed or blocked, or someone else released it) or was settled before.
    pub outcome: Option<RunOutcome>,
    /// A clean exit without a hand-off.
    pub protocol_violation: bool,
    /// The breaker moved the task to `blocked`.
    pub tripped: bool,
}

/// A settlement made by a supervisor that no tick has reported yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettledReport {
    pub task_id: String,
    pub run_id: i64,
    /// `crashed`, `protocol_violation`, `rate_limited`, `timed_out`, `spawn_failed`.
    pub outcome: String,
    pub tripped: bool,
}

/// Move a running task whose open run is `run_id` back to `ready`, dropping its claim, pid and
/// heartbeat. False when the task is no longer on that run.
/// With `review_lane` (the run was claimed from review) it returns to `review` (UP §4).
fn release_to_ready(c: &Tx, task_id: &str, run_id: i64, review_lane: bool) -> Result<bool> {
    let to = if review_lane { "review" } else { "ready" };
    let n = c.exec(
        leave_running!(
            "status=?3, last_heartbeat_at=NULL",
            "id=?1 AND status='running' AND current_run_id=?2"
        ),
        args![task_id, run_id, to],
    )?;
    Ok(n == 1)
}

/// Add `retry_status: review` to a failure payload of a review-lane run.
pub(super) fn mark_retry(mut payload: Map<String, Value>, review_lane: bool) -> Map<String, Value> {
    if review_lane {
        payload.insert("retry_status".into(), json!("review"));
    }
    payload
}

/// Newest-first count of closed runs that were protocol violations, skipping rate-limited runs
/// and stopping at any other outcome (REF §8.7).
fn protocol_violation_streak(c: &Tx, task_id: &str) -> Result<i64> {
    let rows = c.rows::<(Option<String>, Option<String>, Option<String>)>(
        "SELECT outcome, metadata, error FROM task_runs WHERE task_id=?1 AND ended_at IS NOT NULL
         ORDER BY id DESC LIMIT 50",
        args![task_id],
    )?;
    let mut streak = 0;
    for (outcome, meta, error) in rows {
        match outcome.as_deref() {
            Some("rate_limited") => continue,
            Some("crashed") => {
                let marked = meta
                    .as_deref()
                    .and_then(|m| serde_json::from_str::<Value>(m).ok())
                    .and_then(|m| m.get("protocol_violation").and_then(Value::as_bool))
                    .unwrap_or(false);
                let said = error
                    .as_deref()
                    .is_some_and(|e| e.to_ascii_lowercase().contains("protocol violation"));
                if marked || said {
                    streak += 1;
                } else {
                    break;
                }
            }
            _ => break,
        }
    }
    Ok(streak)
}

/// One exit being applied to a task still running on its run: what every per-class step reads.
struct Applying<'a> {
    t: &'a Task,
    run_id: i64,
    /// The run was claimed from review (a failure returns the task there).
    lane: bool,
    error: String,
    detail: Map<String, Value>,
    failure_limit: Option<i64>,
    now: i64,
}

/// What a per-class step applied: run outcome, settlement label, breaker trip, violation.
type Applied = (RunOutcome, &'static str, bool, bool);

impl Applying<'_> {
    fn failure(&self, outcome: RunOutcome, limit: Option<i64>, force: bool) -> FailureReport {
        FailureReport {
            failure_limit: limit,
            force_trip: force,
            ..FailureReport::new(&self.t.id, outcome, self.error.clone())
        }
    }

    /// Release the task and close its run with `outcome` (`label` as the run status).
    fn release_and_close(
        &self,
        c: &Tx,
        outcome: RunOutcome,
        label: &str,
        error: &str,
        meta: &Map<String, Value>,
    ) -> Result<Option<i64>> {
        release_to_ready(c, &self.t.id, self.run_id, self.lane)?;
        end_run(
            c,
            self.t,
            outcome,
            label,
            None,
            Some(error),
            Some(meta),
            self.now,
        )
    }

    fn spawn_failed(&self, c: &Tx) -> Result<Applied> {
        let r = FailureReport {
            release_claim: true,
            end_run: true,
            ..self.failure(RunOutcome::SpawnFailed, self.failure_limit, false)
        };
        let v = record_failure_tx(c, &r, self.now)?;
        Ok((RunOutcome::SpawnFailed, "spawn_failed", v.tripped, false))
    }

    fn clean_exit(&self, c: &Tx) -> Result<Applied> {
        let task_id = &self.t.id;
        let mut meta = self.detail.clone();
        meta.insert("protocol_violation".into(), json!(true));
        let rid = self.release_and_close(c, RunOutcome::Crashed, "crashed", &self.error, &meta)?;
        c.exec(
            "UPDATE tasks SET last_failure_error=?1 WHERE id=?2",
            args![PROTOCOL_VIOLATION_HINT, task_id],
        )?;
        let streak = protocol_violation_streak(c, task_id)?;
        let limit = self.t.max_retries.unwrap_or(PROTOCOL_VIOLATION_LIMIT);
        let mut payload = self.detail.clone();
        payload.insert("streak".into(), json!(streak));
        payload.insert("limit".into(), json!(limit));
        add_event(c, task_id, rid, "protocol_violation", payload, self.now)?;
        let mut tripped = false;
        if streak >= limit {
            let mut r = FailureReport {
                error: PROTOCOL_VIOLATION_HINT.to_string(),
                ..self.failure(RunOutcome::Crashed, Some(limit), true)
            };
            r.extras.insert("protocol_violations".into(), json!(streak));
            tripped = record_failure_tx(c, &r, self.now)?.tripped;
        }
        Ok((RunOutcome::Crashed, "protocol_violation", tripped, true))
    }

    fn rate_limited(&self, c: &Tx) -> Result<Applied> {
        let task_id = &self.t.id;
        let mut detail = self.detail.clone();
        detail.remove("worker_output");
        let rid = self.release_and_close(
            c,
            RunOutcome::RateLimited,
            "rate_limited",
            &self.error,
            &detail,
        )?;
        c.exec(
            "UPDATE tasks SET last_failure_error=?1 WHERE id=?2",
            args![
                format!(
                    "rate limited: {}; respawn waits for the cool-down",
                    self.error
                ),
                task_id
            ],
        )?;
        add_event(c, task_id, rid, "rate_limited", detail, self.now)?;
        Ok((RunOutcome::RateLimited, "rate_limited", false, false))
    }

    fn timed_out(&self, c: &Tx) -> Result<Applied> {
        let rid = self.release_and_close(
            c,
            RunOutcome::TimedOut,
            "timed_out",
            &self.error,
            &self.detail,
        )?;
        add_event(
            c,
            &self.t.id,
            rid,
            "timed_out",
            self.detail.clone(),
            self.now,
        )?;
        let v = record_failure_tx(
            c,
            &self.failure(RunOutcome::TimedOut, self.failure_limit, false),
            self.now,
        )?;
        Ok((RunOutcome::TimedOut, "timed_out", v.tripped, false))
    }

    /// A non-zero exit, a signal or an unknown end. Exit 78 is a terminal provider error: it
    /// trips at once, sticky (UP §6).
    fn crashed(&self, c: &Tx, exit: &WorkerExit) -> Result<Applied> {
        let terminal =
            exit.class == ExitClass::NonzeroExit && exit.code == Some(TERMINAL_PROVIDER_EXIT_CODE);
        let error = if terminal {
            format!(
                "{}: a terminal provider error (the provider rejected this profile's credential or \
                model); fix the configuration, then unblock",
                self.error
            )
        } else {
            self.error.clone()
        };
        let mut detail = self.detail.clone();
        if terminal {
            detail.insert("terminal_provider".into(), json!(true));
        }
        // The board and the retry worker see why (upstream appends the same).
        let error = match &exit.output {
            Some(o) => format!("{error} Worker's last output: {o:?}"),
            None => error,
        };
        let rid = self.release_and_close(c, RunOutcome::Crashed, "crashed", &error, &detail)?;
        let mut payload = detail.clone();
        payload.insert("error".into(), json!(error));
        add_event(c, &self.t.id, rid, "crashed", payload, self.now)?;
        let mut r = FailureReport {
            error: error.clone(),
            ..self.failure(RunOutcome::Crashed, self.failure_limit, terminal)
        };
        if terminal {
            r.extras.insert("sticky".into(), json!(true));
            r.extras.insert("terminal_provider".into(), json!(true));
        }
        let v = record_failure_tx(c, &r, self.now)?;
        Ok((RunOutcome::Crashed, "crashed", v.tripped, false))
    }
}

impl Board {
    /// Apply a worker's exit to its task, exactly once per run: with `exit` given it is stored
    /// (a tick's reason — time-out, spawn failure, dead supervisor — wins over a recorded
    /// status), otherwise the recorded exit is used. If the task is no longer running on
    /// `run_id` (the worker completed or blocked; a tick released it), nothing changes but the
    /// row is marked settled. Otherwise, in the same transaction: a clean exit closes the run
    /// `crashed` with `protocol_violation: true` and trips the breaker only when the violation
    /// streak reaches 3 (or `max_retries`); exit 75 closes it `rate_limited` and counts nothing;
    /// a time-out closes it `timed_out`; other exits close it `crashed`; those two and spawn
    /// failures count one failure against `failure_limit` (REF §8.3–§8.8).
    pub fn settle_worker_exit(
        &self,
        task_id: &str,
        run_id: i64,
        by: SettledBy,
        failure_limit: Option<i64>,
        exit: Option<&WorkerExit>,
    ) -> Result<Settlement> {
        if let Some(l) = failure_limit {
            v::in_range("failure_limit", l, 1..=1000)?;
        }
        let now = self.now();
        self.write(|c| {
            let proc = load_proc(c, run_id)?;
            let untouched = Settlement {
                task_id: task_id.to_string(),
                run_id,
                outcome: None,
                protocol_violation: false,
                tripped: false,
            };
            if proc.as_ref().is_some_and(|p| p.settled_at.is_some()) {
                return Ok(untouched);
            }
            let exit = match exit {
                Some(e) => {
                    store_exit(c, task_id, run_id, e, now)?;
                    e.clone()
                }
                None => proc.and_then(|p| p.exit).ok_or_else(|| {
                    KernelError::invalid("run_id", format!("no exit recorded for run {run_id}"))
                })?,
            };
            let t = c.lock_task(task_id)?;
            if t.status != Status::Running || t.current_run_id != Some(run_id) {
                mark_settled(c, run_id, by, "already_closed", false, now)?;
                return Ok(untouched);
            }
            let lane = run_is_review_lane(c, &t)?;
            let x = Applying {
                t: &t,
                run_id,
                lane,
                error: exit.error_text(),
                detail: mark_retry(exit.detail(), lane),
                failure_limit,
                now,
            };
            let (outcome, label, tripped, violation) = match exit.class {
                ExitClass::SpawnFailed => x.spawn_failed(c)?,
                ExitClass::CleanExit => x.clean_exit(c)?,
                ExitClass::RateLimited => x.rate_limited(c)?,
                ExitClass::TimedOut => x.timed_out(c)?,
                ExitClass::NonzeroExit | ExitClass::Signaled | ExitClass::Unknown => {
                    x.crashed(c, &exit)?
                }
            };
            mark_settled(c, run_id, by, label, tripped, now)?;
            Ok(Settlement {
                task_id: task_id.to_string(),
                run_id,
                outcome: Some(outcome),
                protocol_violation: violation,
                tripped,
            })
        })
    }

    /// Settlements made by this host's supervisors since the last tick reported them, marked
    /// reported here (each is returned once, to one tick of the host that spawned the run).
    pub fn take_supervisor_settlements(&self) -> Result<Vec<SettledReport>> {
        let now = self.now();
        let host = crate::kernel::hostname();
        self.write(|c| {
            let rows = c.map(
                "SELECT task_id, run_id, settled_outcome, tripped FROM kanban_worker_procs
                 WHERE reported_at IS NULL AND settled_at IS NOT NULL
                   AND (host = ?1 OR host IS NULL)
                 ORDER BY settled_at, run_id",
                args![host],
                |r| {
                    Ok(SettledReport {
                        task_id: r.get(0)?,
                        run_id: r.get(1)?,
                        outcome: r.get::<Option<String>>(2)?.unwrap_or_default(),
                        tripped: r.get::<i64>(3)? != 0,
                    })
                },
            )?;
            for r in &rows {
                c.exec(
                    "UPDATE kanban_worker_procs SET reported_at=?1 WHERE run_id=?2 AND reported_at \
                    IS NULL",
                    args![now, r.run_id],
                )?;
            }
            Ok(rows
                .into_iter()
                .filter(|r| r.outcome != "already_closed")
                .collect())
        })
    }
}
