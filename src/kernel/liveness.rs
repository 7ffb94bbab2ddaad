//! Liveness and process bookkeeping for the dispatcher (REF §8, SPEC §6): the supervised-run
//! process table (migration 0003), recording and settling a worker's exit exactly once
//! (protocol violations, rate-limit exits, crashes, time-outs, spawn failures, each with its
//! breaker rule), stale-claim extension / deferral / release, stale-heartbeat release, the
//! respawn guard, default-assignee writes and the queries a tick reads. Every mutation is one
//! `BEGIN IMMEDIATE` transaction whose UPDATE carries the expected run or claim (CAS), so a tick
//! and a supervisor can never both apply an outcome to the same run.

use super::store::Tx;
use std::collections::HashMap;

use regex_lite::Regex;
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::board::{Board, add_event, hostname, load_task};
use super::breaker::{FailureReport, record_failure_tx};
use super::error::{KernelError, Result};
use super::review::run_is_review_lane;
use super::runs::end_run;
use super::tasks::assign_tx;
use super::types::{RunOutcome, Status, TASK_COLUMNS, Task, lenient_i64};
use super::validate as v;
use crate::obj;

/// Clean exits without `kanban_complete`/`kanban_block` tolerated in a row before the breaker
/// trips (REF §8.7); a task's `max_retries` overrides it.
pub const PROTOCOL_VIOLATION_LIMIT: i64 = 3;
/// How far a reclaim is pushed back when the old worker survived termination (REF §8.1).
pub const RECLAIM_DEFER_SECONDS: i64 = 120;
/// A heartbeat older than this no longer proves a worker is alive (REF §8.1, §8.2).
pub const HEARTBEAT_STALE_SECONDS: i64 = 3600;
/// Exit code a worker uses to say "rate limited, retry later" (REF §8.8).
pub const RATE_LIMIT_EXIT_CODE: i64 = 75;
/// Exit code a worker uses to say "the provider rejected this profile's credential or model"
/// (Hermes' `KANBAN_TERMINAL_PROVIDER_EXIT_CODE`, UP §6): a retry cannot heal it, so the task
/// is blocked, sticky, on the first occurrence.
pub const TERMINAL_PROVIDER_EXIT_CODE: i64 = 78;
/// Respawn-guard reason: the last run was rate limited and the cool-down is running.
pub const GUARD_RATE_LIMIT: &str = "rate_limit_cooldown";
/// Respawn-guard reason: the last failure reads like a quota or credentials problem.
pub const GUARD_BLOCKER_AUTH: &str = "blocker_auth";
/// Respawn-guard reason: a run completed within the hour and nobody re-opened the task since.
pub const GUARD_RECENT_SUCCESS: &str = "recent_success";
/// Respawn-guard reason: a comment of the last day links a GitHub pull request.
pub const GUARD_ACTIVE_PR: &str = "active_pr";

const PROTOCOL_VIOLATION_ERROR: &str =
    "protocol violation: the worker exited cleanly without calling kanban_complete or kanban_block";
const PROTOCOL_VIOLATION_HINT: &str = "protocol violation: the previous attempt exited cleanly without calling kanban_complete or kanban_block. Check what is already done in the workspace, finish the task, then call kanban_complete with a summary (or kanban_block when you are stuck).";

/// How a worker process ended, as its supervisor (or a tick) saw it (REF §8.3 classes plus
/// ours: `timed_out` and `spawn_failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitClass {
    /// Exit code 0 without a hand-off: a protocol violation.
    CleanExit,
    /// Exit code 75.
    RateLimited,
    /// Any other exit code.
    NonzeroExit,
    /// Killed by a signal.
    Signaled,
    /// Killed for exceeding its max runtime.
    TimedOut,
    /// Never started (missing binary, workspace error, exec failure).
    SpawnFailed,
    /// Gone without a recorded status (its supervisor died too).
    Unknown,
}

impl ExitClass {
    /// The on-disk spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitClass::CleanExit => "clean_exit",
            ExitClass::RateLimited => "rate_limited",
            ExitClass::NonzeroExit => "nonzero_exit",
            ExitClass::Signaled => "signaled",
            ExitClass::TimedOut => "timed_out",
            ExitClass::SpawnFailed => "spawn_failed",
            ExitClass::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> Option<ExitClass> {
        Some(match s {
            "clean_exit" => ExitClass::CleanExit,
            "rate_limited" => ExitClass::RateLimited,
            "nonzero_exit" => ExitClass::NonzeroExit,
            "signaled" => ExitClass::Signaled,
            "timed_out" => ExitClass::TimedOut,
            "spawn_failed" => ExitClass::SpawnFailed,
            "unknown" => ExitClass::Unknown,
            _ => return None,
        })
    }
}

/// A worker's end: its class and the facts behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerExit {
    pub class: ExitClass,
    /// The process the status belongs to.
    pub pid: Option<i64>,
    pub code: Option<i64>,
    pub signal: Option<i64>,
    /// For time-outs: seconds since the run started, and the limit.
    pub elapsed_seconds: Option<i64>,
    pub limit_seconds: Option<i64>,
    /// For time-outs: SIGTERM was not enough.
    pub sigkill: bool,
    /// For spawn failures: what went wrong.
    pub error: Option<String>,
    /// The tail of the worker's own log (its last words: a model's refusal, a provider
    /// error), recorded on `crashed` events as `worker_output` (UP §7).
    pub output: Option<String>,
}

impl WorkerExit {
    fn bare(class: ExitClass, pid: Option<i64>) -> WorkerExit {
        WorkerExit {
            class,
            pid,
            code: None,
            signal: None,
            elapsed_seconds: None,
            limit_seconds: None,
            sigkill: false,
            error: None,
            output: None,
        }
    }

    /// The same exit with the worker's last output attached (empty text counts as none).
    pub fn with_output(mut self, output: Option<String>) -> WorkerExit {
        self.output = output.filter(|o| !o.trim().is_empty());
        self
    }

    /// Classify a wait status: exit code 0 → clean exit, 75 → rate limited, other codes →
    /// non-zero exit, a signal → signaled.
    pub fn from_status(pid: i64, code: Option<i64>, signal: Option<i64>) -> WorkerExit {
        let class = match (code, signal) {
            (Some(0), _) => ExitClass::CleanExit,
            (Some(RATE_LIMIT_EXIT_CODE), _) => ExitClass::RateLimited,
            (Some(_), _) => ExitClass::NonzeroExit,
            (None, Some(_)) => ExitClass::Signaled,
            (None, None) => ExitClass::Unknown,
        };
        WorkerExit {
            code,
            signal,
            ..WorkerExit::bare(class, Some(pid))
        }
    }

    /// A process found dead with no status recorded.
    pub fn unknown(pid: Option<i64>) -> WorkerExit {
        WorkerExit::bare(ExitClass::Unknown, pid)
    }

    /// Killed for running `elapsed` seconds past a `limit`.
    pub fn timed_out(pid: Option<i64>, elapsed: i64, limit: i64, sigkill: bool) -> WorkerExit {
        WorkerExit {
            elapsed_seconds: Some(elapsed),
            limit_seconds: Some(limit),
            sigkill,
            ..WorkerExit::bare(ExitClass::TimedOut, pid)
        }
    }

    /// Could not be started.
    pub fn spawn_failed(error: impl Into<String>) -> WorkerExit {
        WorkerExit {
            error: Some(error.into()),
            ..WorkerExit::bare(ExitClass::SpawnFailed, None)
        }
    }

    /// The raw status in words (`pid N exited with code C`, `pid N killed by signal S`), before
    /// any classification.
    pub fn describe(&self) -> String {
        let pid = self
            .pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "?".into());
        match (self.code, self.signal) {
            (Some(c), _) => format!("pid {pid} exited with code {c}"),
            (None, Some(s)) => format!("pid {pid} killed by signal {s}"),
            _ => self.error_text(),
        }
    }

    /// The run error text for this exit (REF §8.3 wording).
    pub fn error_text(&self) -> String {
        let pid = self
            .pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "?".into());
        match self.class {
            ExitClass::CleanExit => PROTOCOL_VIOLATION_ERROR.to_string(),
            ExitClass::RateLimited => {
                format!("pid {pid} exited with code {RATE_LIMIT_EXIT_CODE} (rate limited)")
            }
            ExitClass::NonzeroExit => {
                format!("pid {pid} exited with code {}", self.code.unwrap_or(-1))
            }
            ExitClass::Signaled => {
                format!("pid {pid} killed by signal {}", self.signal.unwrap_or(0))
            }
            ExitClass::TimedOut => format!(
                "elapsed {}s > limit {}s",
                self.elapsed_seconds.unwrap_or(0),
                self.limit_seconds.unwrap_or(0)
            ),
            ExitClass::SpawnFailed => self
                .error
                .clone()
                .unwrap_or_else(|| "spawn failed".to_string()),
            ExitClass::Unknown => format!("pid {pid} not alive"),
        }
    }

    fn detail(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(p) = self.pid {
            m.insert("pid".into(), json!(p));
        }
        if let Some(c) = self.code {
            m.insert("exit_code".into(), json!(c));
        }
        if let Some(s) = self.signal {
            m.insert("signal".into(), json!(s));
        }
        if let Some(e) = self.elapsed_seconds {
            m.insert("elapsed_seconds".into(), json!(e));
        }
        if let Some(l) = self.limit_seconds {
            m.insert("limit_seconds".into(), json!(l));
        }
        if self.class == ExitClass::TimedOut {
            m.insert("sigkill".into(), json!(self.sigkill));
        }
        if let Some(e) = &self.error {
            m.insert("error".into(), json!(e));
        }
        if let Some(o) = &self.output {
            m.insert("worker_output".into(), json!(o));
        }
        m
    }
}

/// Who applied an exit to the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettledBy {
    /// The run's own supervisor, right after the worker ended.
    Supervisor,
    /// A dispatcher tick (dead supervisor, time-out, spawn failure).
    Tick,
}

impl SettledBy {
    fn as_str(self) -> &'static str {
        match self {
            SettledBy::Supervisor => "supervisor",
            SettledBy::Tick => "tick",
        }
    }
}

/// The process row of a supervised run (`kanban_worker_procs`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunProcess {
    pub run_id: i64,
    pub task_id: String,
    pub host: Option<String>,
    pub supervisor_pid: Option<i64>,
    /// `/proc/<pid>/stat` start time of the supervisor (pid-reuse guard).
    pub supervisor_start: Option<i64>,
    /// The real worker: leader of its own process group.
    pub worker_pid: Option<i64>,
    pub worker_start: Option<i64>,
    pub registered_at: i64,
    pub exited_at: Option<i64>,
    pub exit: Option<WorkerExit>,
    pub settled_at: Option<i64>,
    pub settled_by: Option<String>,
    pub settled_outcome: Option<String>,
    pub tripped: bool,
    pub reported_at: Option<i64>,
}

const PROC_COLUMNS: &str = "run_id, task_id, host, supervisor_pid, supervisor_start, worker_pid, \
    worker_start, registered_at, exited_at, exit_class, exit_code, exit_signal, exit_detail, \
    settled_at, settled_by, settled_outcome, tripped, reported_at";

impl RunProcess {
    fn from_row(r: &Row) -> rusqlite::Result<RunProcess> {
        RunProcess::from_row_at(r, 0)
    }

    /// Read the [`PROC_COLUMNS`] starting at column `o`.
    fn from_row_at(r: &Row, o: usize) -> rusqlite::Result<RunProcess> {
        let class: Option<String> = r.get(o + 9)?;
        let detail: Option<String> = r.get(o + 12)?;
        let detail: Map<String, Value> = detail
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or_default();
        let exit = class
            .and_then(|c| ExitClass::parse(&c))
            .map(|class| WorkerExit {
                class,
                pid: detail.get("pid").and_then(Value::as_i64),
                code: r.get(o + 10).ok().flatten(),
                signal: r.get(o + 11).ok().flatten(),
                elapsed_seconds: detail.get("elapsed_seconds").and_then(Value::as_i64),
                limit_seconds: detail.get("limit_seconds").and_then(Value::as_i64),
                sigkill: detail
                    .get("sigkill")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                error: detail
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                output: detail
                    .get("worker_output")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
        Ok(RunProcess {
            run_id: r.get(o)?,
            task_id: r.get(o + 1)?,
            host: r.get(o + 2)?,
            supervisor_pid: r.get(o + 3)?,
            supervisor_start: r.get(o + 4)?,
            worker_pid: r.get(o + 5)?,
            worker_start: r.get(o + 6)?,
            registered_at: r.get(o + 7)?,
            exited_at: r.get(o + 8)?,
            exit,
            settled_at: r.get(o + 13)?,
            settled_by: r.get(o + 14)?,
            settled_outcome: r.get(o + 15)?,
            tripped: r.get::<_, i64>(o + 16)? != 0,
            reported_at: r.get(o + 17)?,
        })
    }
}

/// A running task with what a tick needs to judge its liveness.
#[derive(Debug, Clone, Serialize)]
pub struct RunningTask {
    pub task: Task,
    /// `started_at` of the open run (max runtime and staleness are measured from it).
    pub run_started_at: Option<i64>,
    /// The supervised-run row, when this board's dispatcher spawned it.
    pub process: Option<RunProcess>,
}

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

/// An unclaimed task waiting in a dispatch queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuedTask {
    pub id: String,
    pub assignee: Option<String>,
}

fn load_proc(c: &Tx, run_id: i64) -> Result<Option<RunProcess>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {PROC_COLUMNS} FROM kanban_worker_procs WHERE run_id=?1"
    ))?;
    Ok(st.query_row([run_id], RunProcess::from_row).optional()?)
}

fn mark_settled(
    c: &Tx,
    run_id: i64,
    by: SettledBy,
    outcome: &str,
    tripped: bool,
    now: i64,
) -> Result<()> {
    // A tick reports what it settles in its own result; a supervisor's settlement waits for the
    // next tick to report it.
    let reported = (by == SettledBy::Tick).then_some(now);
    c.prepare_cached(
        "UPDATE kanban_worker_procs SET settled_at=?1, settled_by=?2, settled_outcome=?3, tripped=?4,
                reported_at=?5 WHERE run_id=?6 AND settled_at IS NULL",
    )?
    .execute(params![now, by.as_str(), outcome, tripped as i64, reported, run_id])?;
    Ok(())
}

/// Close a tick-released run's process row so a late supervisor cannot settle it.
fn close_proc(c: &Tx, run_id: Option<i64>, outcome: &str, now: i64) -> Result<()> {
    if let Some(r) = run_id {
        mark_settled(c, r, SettledBy::Tick, outcome, false, now)?;
    }
    Ok(())
}

fn store_exit(c: &Tx, task_id: &str, run_id: i64, e: &WorkerExit, now: i64) -> Result<()> {
    let detail = Value::Object(e.detail()).to_string();
    c.prepare_cached(
        "INSERT INTO kanban_worker_procs (run_id, task_id, registered_at, exited_at, exit_class,
                exit_code, exit_signal, exit_detail)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(run_id) DO UPDATE SET exited_at=excluded.exited_at, exit_class=excluded.exit_class,
                exit_code=excluded.exit_code, exit_signal=excluded.exit_signal,
                exit_detail=excluded.exit_detail
         WHERE kanban_worker_procs.settled_at IS NULL",
    )?
    .execute(params![run_id, task_id, now, e.class.as_str(), e.code, e.signal, detail])?;
    Ok(())
}

/// Move a running task whose open run is `run_id` back to `ready`, dropping its claim, pid and
/// heartbeat. False when the task is no longer on that run.
/// With `review_lane` (the run was claimed from review) it returns to `review` (UP §4).
fn release_to_ready(c: &Tx, task_id: &str, run_id: i64, review_lane: bool) -> Result<bool> {
    let to = if review_lane { "review" } else { "ready" };
    let n = c
        .prepare_cached(
            "UPDATE tasks SET status=?3, claim_lock=NULL, claim_expires=NULL, worker_pid=NULL, worker_started_at=NULL,
                    last_heartbeat_at=NULL
             WHERE id=?1 AND status='running' AND current_run_id=?2",
        )?
        .execute(params![task_id, run_id, to])?;
    Ok(n == 1)
}

/// Add `retry_status: review` to a failure payload of a review-lane run.
fn mark_retry(mut payload: Map<String, Value>, review_lane: bool) -> Map<String, Value> {
    if review_lane {
        payload.insert("retry_status".into(), json!("review"));
    }
    payload
}

/// Newest-first count of closed runs that were protocol violations, skipping rate-limited runs
/// and stopping at any other outcome (REF §8.7).
fn protocol_violation_streak(c: &Tx, task_id: &str) -> Result<i64> {
    let mut st = c.prepare_cached(
        "SELECT outcome, metadata, error FROM task_runs WHERE task_id=?1 AND ended_at IS NOT NULL
         ORDER BY id DESC LIMIT 50",
    )?;
    let rows = st
        .query_map([task_id], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
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

fn blocker_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i)(quota|rate[ _-]?limit|\b429\b|\b403\b|authenticat|authori[sz]|unauthori[sz]ed|forbidden|billing|subscription|access denied|permission denied|invalid api key)",
        )
        .expect("static regex")
    })
}

fn pr_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"https://github\.com/[^/\s]+/[^/\s]+/pull/\d+").expect("static regex")
    })
}

/// The respawn guard (REF §8.9) for one ready task, inside a read or write transaction.
pub(crate) fn respawn_guard_tx(
    c: &Tx,
    t: &Task,
    now: i64,
    rate_limit_cooldown: i64,
) -> Result<Option<&'static str>> {
    let latest: Option<(Option<String>, i64)> = c
        .prepare_cached(
            "SELECT outcome, ended_at FROM task_runs WHERE task_id=?1 AND ended_at IS NOT NULL
             ORDER BY ended_at DESC, id DESC LIMIT 1",
        )?
        .query_row([&t.id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let mut cooled_down = false;
    if let Some((Some(outcome), ended)) = &latest
        && outcome == "rate_limited"
    {
        if now - ended < rate_limit_cooldown {
            return Ok(Some(GUARD_RATE_LIMIT));
        }
        cooled_down = true;
    }
    if !cooled_down
        && t.last_failure_error
            .as_deref()
            .is_some_and(|e| blocker_regex().is_match(e))
    {
        return Ok(Some(GUARD_BLOCKER_AUTH));
    }
    let success: Option<i64> = c
        .prepare_cached(
            "SELECT max(ended_at) FROM task_runs WHERE task_id=?1 AND outcome='completed'
             AND ended_at >= ?2",
        )?
        .query_row(params![t.id, now - 3600], |r| r.get(0))?;
    if let Some(ended) = success {
        let reopened: i64 = c
            .prepare_cached(
                "SELECT count(*) FROM task_events WHERE task_id=?1 AND created_at >= ?2
                 AND kind IN ('status','promoted','promoted_manual','unblocked','reclaimed')",
            )?
            .query_row(params![t.id, ended], |r| r.get(0))?;
        if reopened == 0 {
            return Ok(Some(GUARD_RECENT_SUCCESS));
        }
    }
    let mut st = c.prepare_cached(
        "SELECT body FROM task_comments WHERE task_id=?1 AND created_at >= ?2 AND body LIKE '%github.com/%/pull/%'",
    )?;
    let bodies = st
        .query_map(params![t.id, now - 86_400], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if bodies.iter().any(|b| pr_regex().is_match(b)) {
        return Ok(Some(GUARD_ACTIVE_PR));
    }
    Ok(None)
}

fn claim_cas_expired(
    c: &Tx,
    task_id: &str,
    lock: Option<&str>,
    new_expires: i64,
    now: i64,
) -> Result<bool> {
    let n = c
        .prepare_cached(
            "UPDATE tasks SET claim_expires=?1
             WHERE id=?2 AND status='running' AND claim_lock IS ?3 AND claim_expires < ?4",
        )?
        .execute(params![new_expires, task_id, lock, now])?;
    Ok(n == 1)
}

impl Board {
    /// Record the supervisor the dispatcher spawned for `run_id`: the task's and run's
    /// `worker_pid`, a `kanban_worker_procs` row (host, pid, `/proc` start time) and the
    /// `spawned {pid}` event — refused with [`KernelError::StaleRun`] if the run is no longer
    /// the task's open run.
    pub fn register_supervisor(
        &self,
        task_id: &str,
        run_id: i64,
        pid: i64,
        start_time: Option<i64>,
    ) -> Result<()> {
        let pid = v::in_range("pid", pid, 2..=i32::MAX as i64)?;
        let host = hostname();
        let now = self.now();
        self.write(|c| {
            let n = c.execute(
                "UPDATE tasks SET worker_pid=?1, worker_started_at=NULL WHERE id=?2 AND status='running' AND current_run_id=?3",
                params![pid, task_id, run_id],
            )?;
            if n != 1 {
                let t = load_task(c, task_id)?;
                return Err(KernelError::StaleRun {
                    task_id: task_id.to_string(),
                    expected: run_id,
                    current: t
                        .current_run_id
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "none".into()),
                });
            }
            c.execute(
                "UPDATE task_runs SET worker_pid=?1, worker_started_at=NULL WHERE id=?2",
                params![pid, run_id],
            )?;
            c.execute(
                "INSERT INTO kanban_worker_procs (run_id, task_id, host, supervisor_pid, supervisor_start, registered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(run_id) DO UPDATE SET host=excluded.host, supervisor_pid=excluded.supervisor_pid,
                        supervisor_start=excluded.supervisor_start",
                params![run_id, task_id, host, pid, start_time, now],
            )?;
            add_event(
                c,
                task_id,
                Some(run_id),
                "spawned",
                obj! {"pid" => pid, "supervised" => true},
                now,
            )?;
            Ok(())
        })
    }

    /// Record the real worker's pid and `/proc` start time on its run's process row (the
    /// supervisor calls this right after starting it).
    pub fn record_worker_child(
        &self,
        run_id: i64,
        pid: i64,
        start_time: Option<i64>,
    ) -> Result<()> {
        let pid = v::in_range("pid", pid, 2..=i32::MAX as i64)?;
        self.write(|c| {
            c.execute(
                "UPDATE kanban_worker_procs SET worker_pid=?1, worker_start=?2 WHERE run_id=?3",
                params![pid, start_time, run_id],
            )?;
            Ok(())
        })
    }

    /// Store how a run's worker ended on its process row without touching the task — what a
    /// supervisor does when it was told to stop (whoever stopped it releases the task), and
    /// the first half of a normal settlement, so a tick can settle with the real status if the
    /// supervisor dies in between. A settled row is left alone.
    pub fn record_worker_exit(&self, task_id: &str, run_id: i64, exit: &WorkerExit) -> Result<()> {
        let now = self.now();
        self.write(|c| store_exit(c, task_id, run_id, exit, now))
    }

    /// Process rows of this host's runs that are over (the run is closed: the worker completed
    /// or blocked) but were never settled — the supervisor died before it could account for the
    /// worker's exit, so what the worker left running in its process group may still be alive
    /// and its workspace was never cleaned up. The tick reaps these.
    pub fn lingering_processes(&self) -> Result<Vec<RunProcess>> {
        let host = hostname();
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {PROC_COLUMNS} FROM kanban_worker_procs
                 WHERE settled_at IS NULL AND (host = ?1 OR host IS NULL)
                   AND run_id IN (SELECT id FROM task_runs WHERE ended_at IS NOT NULL)
                 ORDER BY run_id"
            ))?;
            let v = st
                .query_map([&host], RunProcess::from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    /// Settle the process row of a closed run whose supervisor is gone (see
    /// [`Board::lingering_processes`]): marked settled by the tick (`already_closed`), and when
    /// the tick stopped processes it left behind, event `terminal_worker_reaped` with `reaped`
    /// (pids, signals) on the task. False when someone settled it first.
    pub fn settle_lingering(&self, run_id: i64, reaped: Map<String, Value>) -> Result<bool> {
        let now = self.now();
        self.write(|c| {
            let Some(p) = load_proc(c, run_id)? else {
                return Ok(false);
            };
            let n = c
                .prepare_cached(
                    "UPDATE kanban_worker_procs SET exited_at=COALESCE(exited_at, ?1),
                        exit_class=COALESCE(exit_class, 'unknown'), settled_at=?1, settled_by='tick',
                        settled_outcome='already_closed', reported_at=?1
                     WHERE run_id=?2 AND settled_at IS NULL",
                )?
                .execute(params![now, run_id])?;
            if n == 1 && !reaped.is_empty() {
                add_event(
                    c,
                    &p.task_id,
                    Some(run_id),
                    "terminal_worker_reaped",
                    reaped,
                    now,
                )?;
            }
            Ok(n == 1)
        })
    }

    /// The process row of a run, if the dispatcher registered or settled one.
    pub fn run_process(&self, run_id: i64) -> Result<Option<RunProcess>> {
        load_proc(&Tx::sqlite(&self.conn), run_id)
    }

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
            let t = load_task(c, task_id)?;
            if t.status != Status::Running || t.current_run_id != Some(run_id) {
                mark_settled(c, run_id, by, "already_closed", false, now)?;
                return Ok(untouched);
            }
            let lane = run_is_review_lane(c, &t)?;
            let error = exit.error_text();
            let detail = mark_retry(exit.detail(), lane);
            let failure = |outcome: RunOutcome, limit: Option<i64>, force: bool| FailureReport {
                failure_limit: limit,
                force_trip: force,
                ..FailureReport::new(task_id, outcome, error.clone())
            };
            let (outcome, label, tripped, violation) = match exit.class {
                ExitClass::SpawnFailed => {
                    let r = FailureReport {
                        release_claim: true,
                        end_run: true,
                        ..failure(RunOutcome::SpawnFailed, failure_limit, false)
                    };
                    let v = record_failure_tx(c, &r, now)?;
                    (RunOutcome::SpawnFailed, "spawn_failed", v.tripped, false)
                }
                ExitClass::CleanExit => {
                    release_to_ready(c, task_id, run_id, lane)?;
                    let mut meta = detail.clone();
                    meta.insert("protocol_violation".into(), json!(true));
                    let rid = end_run(
                        c,
                        &t,
                        RunOutcome::Crashed,
                        "crashed",
                        None,
                        Some(&error),
                        Some(&meta),
                        now,
                    )?;
                    c.execute(
                        "UPDATE tasks SET last_failure_error=?1 WHERE id=?2",
                        params![PROTOCOL_VIOLATION_HINT, task_id],
                    )?;
                    let streak = protocol_violation_streak(c, task_id)?;
                    let limit = t.max_retries.unwrap_or(PROTOCOL_VIOLATION_LIMIT);
                    let mut payload = detail.clone();
                    payload.insert("streak".into(), json!(streak));
                    payload.insert("limit".into(), json!(limit));
                    add_event(c, task_id, rid, "protocol_violation", payload, now)?;
                    let mut tripped = false;
                    if streak >= limit {
                        let mut r = FailureReport {
                            error: PROTOCOL_VIOLATION_HINT.to_string(),
                            ..failure(RunOutcome::Crashed, Some(limit), true)
                        };
                        r.extras.insert("protocol_violations".into(), json!(streak));
                        tripped = record_failure_tx(c, &r, now)?.tripped;
                    }
                    (RunOutcome::Crashed, "protocol_violation", tripped, true)
                }
                ExitClass::RateLimited => {
                    let mut detail = detail.clone();
                    detail.remove("worker_output");
                    release_to_ready(c, task_id, run_id, lane)?;
                    let rid = end_run(
                        c,
                        &t,
                        RunOutcome::RateLimited,
                        "rate_limited",
                        None,
                        Some(&error),
                        Some(&detail),
                        now,
                    )?;
                    c.execute(
                        "UPDATE tasks SET last_failure_error=?1 WHERE id=?2",
                        params![
                            format!("rate limited: {error}; respawn waits for the cool-down"),
                            task_id
                        ],
                    )?;
                    add_event(c, task_id, rid, "rate_limited", detail.clone(), now)?;
                    (RunOutcome::RateLimited, "rate_limited", false, false)
                }
                ExitClass::TimedOut => {
                    release_to_ready(c, task_id, run_id, lane)?;
                    let rid = end_run(
                        c,
                        &t,
                        RunOutcome::TimedOut,
                        "timed_out",
                        None,
                        Some(&error),
                        Some(&detail),
                        now,
                    )?;
                    add_event(c, task_id, rid, "timed_out", detail.clone(), now)?;
                    let v = record_failure_tx(
                        c,
                        &failure(RunOutcome::TimedOut, failure_limit, false),
                        now,
                    )?;
                    (RunOutcome::TimedOut, "timed_out", v.tripped, false)
                }
                ExitClass::NonzeroExit | ExitClass::Signaled | ExitClass::Unknown => {
                    // Exit 78: a terminal provider error trips at once, sticky (UP §6).
                    let terminal = exit.class == ExitClass::NonzeroExit
                        && exit.code == Some(TERMINAL_PROVIDER_EXIT_CODE);
                    let error = if terminal {
                        format!(
                            "{error}: a terminal provider error (the provider rejected this profile's credential or model); fix the configuration, then unblock"
                        )
                    } else {
                        error.clone()
                    };
                    let mut detail = detail.clone();
                    if terminal {
                        detail.insert("terminal_provider".into(), json!(true));
                    }
                    // The board and the retry worker see why (upstream appends the same).
                    let error = match &exit.output {
                        Some(o) => format!("{error} Worker's last output: {o:?}"),
                        None => error,
                    };
                    release_to_ready(c, task_id, run_id, lane)?;
                    let rid = end_run(
                        c,
                        &t,
                        RunOutcome::Crashed,
                        "crashed",
                        None,
                        Some(&error),
                        Some(&detail),
                        now,
                    )?;
                    let mut payload = detail.clone();
                    payload.insert("error".into(), json!(error));
                    add_event(c, task_id, rid, "crashed", payload, now)?;
                    let mut r = FailureReport {
                        error: error.clone(),
                        ..failure(RunOutcome::Crashed, failure_limit, terminal)
                    };
                    if terminal {
                        r.extras.insert("sticky".into(), json!(true));
                        r.extras.insert("terminal_provider".into(), json!(true));
                    }
                    let v = record_failure_tx(c, &r, now)?;
                    (RunOutcome::Crashed, "crashed", v.tripped, false)
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

    /// Settlements made by supervisors since the last tick reported them, marked reported here
    /// (each is returned once, to one tick).
    pub fn take_supervisor_settlements(&self) -> Result<Vec<SettledReport>> {
        let now = self.now();
        self.write(|c| {
            let mut st = c.prepare_cached(
                "SELECT task_id, run_id, settled_outcome, tripped FROM kanban_worker_procs
                 WHERE reported_at IS NULL AND settled_at IS NOT NULL ORDER BY settled_at, run_id",
            )?;
            let rows = st
                .query_map([], |r| {
                    Ok(SettledReport {
                        task_id: r.get(0)?,
                        run_id: r.get(1)?,
                        outcome: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        tripped: r.get::<_, i64>(3)? != 0,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut up = c.prepare_cached(
                "UPDATE kanban_worker_procs SET reported_at=?1 WHERE run_id=?2 AND reported_at IS NULL",
            )?;
            for r in &rows {
                up.execute(params![now, r.run_id])?;
            }
            Ok(rows
                .into_iter()
                .filter(|r| r.outcome != "already_closed")
                .collect())
        })
    }

    /// Running tasks with their open run's start time and process row, in priority order (one
    /// query).
    pub fn running_tasks(&self) -> Result<Vec<RunningTask>> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            let task_cols: Vec<String> = TASK_COLUMNS
                .split(',')
                .map(|c| format!("t.{}", c.trim()))
                .collect();
            let proc_cols: Vec<String> = PROC_COLUMNS
                .split(',')
                .map(|c| format!("p.{}", c.trim()))
                .collect();
            format!(
                "SELECT {}, r.started_at, {} FROM tasks t
                 LEFT JOIN task_runs r ON r.id = t.current_run_id
                 LEFT JOIN kanban_worker_procs p ON p.run_id = t.current_run_id
                 WHERE t.status = 'running' ORDER BY t.priority DESC, t.created_at ASC",
                task_cols.join(", "),
                proc_cols.join(", ")
            )
        });
        let n_task = TASK_COLUMNS.split(',').count();
        self.read(|c| {
            let mut st = c.prepare_cached(sql)?;
            let rows = st
                .query_map([], |r| {
                    let task = Task::from_row(r)?;
                    let run_started_at = lenient_i64(r, n_task);
                    let has_proc = r.get::<_, Option<i64>>(n_task + 1)?.is_some();
                    let process = if has_proc {
                        Some(RunProcess::from_row_at(r, n_task + 1)?)
                    } else {
                        None
                    };
                    Ok(RunningTask {
                        task,
                        run_started_at,
                        process,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Running task counts: the total and per assignee.
    pub fn running_counts(&self) -> Result<(usize, HashMap<String, usize>)> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT assignee, count(*) FROM tasks WHERE status='running' GROUP BY assignee",
            )?;
            let rows = st
                .query_map([], |r| {
                    Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut total = 0usize;
            let mut per = HashMap::new();
            for (a, n) in rows {
                total += n as usize;
                if let Some(a) = a {
                    per.insert(a, n as usize);
                }
            }
            Ok((total, per))
        })
    }

    /// Unclaimed tasks in `status` (`ready` or `review`) in dispatch order: priority
    /// descending, then oldest first.
    pub fn dispatch_queue(&self, status: Status) -> Result<Vec<QueuedTask>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, assignee FROM tasks WHERE status=?1 AND claim_lock IS NULL
             ORDER BY priority DESC, created_at ASC, rowid ASC",
        )?;
        let rows = st
            .query_map([status.as_str()], |r| {
                Ok(QueuedTask {
                    id: r.get(0)?,
                    assignee: r.get(1)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Extend an expired claim held by a live, heartbeating host-local worker by `ttl` seconds
    /// (task and open run; CAS on the lock and on the claim still being expired), event
    /// `claim_extended`. Returns the new expiry, or `None` when the claim changed meanwhile.
    pub fn extend_expired_claim(
        &self,
        task_id: &str,
        lock: &str,
        ttl: i64,
        pid: Option<i64>,
    ) -> Result<Option<i64>> {
        let ttl = v::in_range("ttl", ttl, v::TTL_RANGE)?;
        let now = self.now();
        self.write(|c| {
            let expires = now + ttl;
            if !claim_cas_expired(c, task_id, Some(lock), expires, now)? {
                return Ok(None);
            }
            let t = load_task(c, task_id)?;
            if let Some(rid) = t.current_run_id {
                c.execute(
                    "UPDATE task_runs SET claim_expires=?1 WHERE id=?2 AND ended_at IS NULL",
                    params![expires, rid],
                )?;
            }
            add_event(
                c,
                task_id,
                t.current_run_id,
                "claim_extended",
                obj! {"lock" => lock, "expires" => expires, "pid" => pid},
                now,
            )?;
            Ok(Some(expires))
        })
    }

    /// Push an expired claim back by `seconds` because its worker survived termination
    /// (prevents a duplicate worker), event `reclaim_deferred` with the termination report.
    /// False when the claim changed meanwhile.
    pub fn defer_reclaim(
        &self,
        task_id: &str,
        lock: Option<&str>,
        seconds: i64,
        termination: Map<String, Value>,
    ) -> Result<bool> {
        let now = self.now();
        self.write(|c| {
            let expires = now + seconds.max(1);
            let ok = c
                .prepare_cached(
                    "UPDATE tasks SET claim_expires=?1 WHERE id=?2 AND status='running' AND claim_lock IS ?3",
                )?
                .execute(params![expires, task_id, lock])?
                == 1;
            if !ok {
                return Ok(false);
            }
            let t = load_task(c, task_id)?;
            if let Some(rid) = t.current_run_id {
                c.execute(
                    "UPDATE task_runs SET claim_expires=?1 WHERE id=?2 AND ended_at IS NULL",
                    params![expires, rid],
                )?;
            }
            let mut payload = obj! {"lock" => lock, "defer_seconds" => seconds, "expires" => expires};
            payload.extend(termination);
            add_event(c, task_id, t.current_run_id, "reclaim_deferred", payload, now)?;
            Ok(true)
        })
    }

    /// Release an expired claim back to `ready` (REF §8.1): CAS on the old lock and on the
    /// claim still being expired; the run closes `reclaimed` with error `stale_lock=<lock>` and
    /// the termination report as metadata; event `reclaimed`. No failure is counted. False when
    /// the claim changed meanwhile.
    pub fn release_stale_claim(
        &self,
        task_id: &str,
        lock: Option<&str>,
        termination: Map<String, Value>,
    ) -> Result<bool> {
        let now = self.now();
        self.write(|c| {
            let t = load_task(c, task_id)?;
            let lane = run_is_review_lane(c, &t)?;
            let n = c
                .prepare_cached(
                    "UPDATE tasks SET status=?4, claim_lock=NULL, claim_expires=NULL, worker_pid=NULL, worker_started_at=NULL,
                            last_heartbeat_at=NULL
                     WHERE id=?1 AND status='running' AND claim_lock IS ?2 AND claim_expires < ?3",
                )?
                .execute(params![task_id, lock, now, if lane { "review" } else { "ready" }])?;
            if n != 1 {
                return Ok(false);
            }
            let error = format!("stale_lock={}", lock.unwrap_or("(none)"));
            let meta = Some(&termination).filter(|m| !m.is_empty());
            let rid = end_run(c, &t, RunOutcome::Reclaimed, "reclaimed", None, Some(&error), meta, now)?;
            close_proc(c, t.current_run_id, "reclaimed", now)?;
            let mut payload = mark_retry(obj! {"stale_lock" => lock, "worker_pid" => t.worker_pid}, lane);
            payload.extend(termination);
            add_event(c, task_id, rid, "reclaimed", payload, now)?;
            Ok(true)
        })
    }

    /// Release a running task whose run has gone without a heartbeat for too long (REF §8.2):
    /// CAS on the run and lock → `ready`; the run closes `stale` with `error`; event `stale`.
    /// No failure is counted. False when the task moved on meanwhile.
    pub fn release_stale_run(
        &self,
        task_id: &str,
        run_id: i64,
        lock: Option<&str>,
        error: &str,
        termination: Map<String, Value>,
    ) -> Result<bool> {
        let now = self.now();
        self.write(|c| {
            let t = load_task(c, task_id)?;
            let lane = run_is_review_lane(c, &t)?;
            let n = c
                .prepare_cached(
                    "UPDATE tasks SET status=?4, claim_lock=NULL, claim_expires=NULL, worker_pid=NULL, worker_started_at=NULL,
                            last_heartbeat_at=NULL
                     WHERE id=?1 AND status='running' AND current_run_id=?2 AND claim_lock IS ?3",
                )?
                .execute(params![task_id, run_id, lock, if lane { "review" } else { "ready" }])?;
            if n != 1 {
                return Ok(false);
            }
            let meta = Some(&termination).filter(|m| !m.is_empty());
            let rid = end_run(c, &t, RunOutcome::Stale, "stale", None, Some(error), meta, now)?;
            close_proc(c, Some(run_id), "stale", now)?;
            let mut payload = mark_retry(obj! {"error" => error, "worker_pid" => t.worker_pid}, lane);
            payload.extend(termination);
            add_event(c, task_id, rid, "stale", payload, now)?;
            Ok(true)
        })
    }

    /// The respawn guard for a ready task (REF §8.9): `rate_limit_cooldown` while the last
    /// run's rate-limit cool-down runs, `blocker_auth` when the last failure reads like a quota
    /// or credentials problem, `recent_success` after a completion within the hour that nobody
    /// re-opened, `active_pr` when a comment of the last day links a GitHub pull request.
    pub fn respawn_guard(
        &self,
        task_id: &str,
        rate_limit_cooldown: i64,
    ) -> Result<Option<&'static str>> {
        let now = self.now();
        self.read(|c| {
            let t = load_task(c, task_id)?;
            respawn_guard_tx(c, &t, now, rate_limit_cooldown)
        })
    }

    /// Record that the guard held a task back (`respawn_guarded {reason}`), unless the task's
    /// latest event already says so with the same reason (no event spam every tick).
    pub fn note_respawn_guarded(&self, task_id: &str, reason: &str) -> Result<()> {
        let now = self.now();
        self.write(|c| {
            let last: Option<(String, Option<String>)> = c
                .prepare_cached(
                    "SELECT kind, payload FROM task_events WHERE task_id=?1 ORDER BY id DESC LIMIT 1",
                )?
                .query_row([task_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let same = last.is_some_and(|(k, p)| {
                k == "respawn_guarded"
                    && p.and_then(|p| serde_json::from_str::<Value>(&p).ok())
                        .and_then(|p| p.get("reason").and_then(Value::as_str).map(str::to_string))
                        .as_deref()
                        == Some(reason)
            });
            if !same {
                add_event(c, task_id, None, "respawn_guarded", obj! {"reason" => reason}, now)?;
            }
            Ok(())
        })
    }

    /// Record that the dispatcher skipped a task because its assignee is not spawnable here
    /// (`skipped_nonspawnable {assignee}`, UP §7), unless the task's latest event already says
    /// exactly that — once, not once per tick (nor per home on a shared board).
    pub fn note_skipped_nonspawnable(&self, task_id: &str, assignee: &str) -> Result<()> {
        let now = self.now();
        let payload = obj! {"assignee" => assignee};
        let text = serde_json::to_string(&payload)?;
        self.write(|c| {
            let last: Option<(String, Option<String>)> = c
                .prepare_cached(
                    "SELECT kind, payload FROM task_events WHERE task_id=?1 ORDER BY created_at DESC, id DESC LIMIT 1",
                )?
                .query_row([task_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let same = last.is_some_and(|(k, p)| {
                k == "skipped_nonspawnable"
                    && p.and_then(|p| serde_json::from_str::<Value>(&p).ok())
                        == serde_json::from_str::<Value>(&text).ok()
            });
            if !same {
                add_event(c, task_id, None, "skipped_nonspawnable", payload.clone(), now)?;
            }
            Ok(())
        })
    }

    /// Give an unassigned ready task the configured default assignee (event `assigned {assignee,
    /// source: kanban.default_assignee}`). False when it is no longer unassigned and ready.
    pub fn assign_default(&self, task_id: &str, assignee: &str) -> Result<bool> {
        let assignee = v::profile_name("default_assignee", Some(assignee))?
            .ok_or_else(|| KernelError::invalid("default_assignee", "must not be empty"))?;
        let now = self.now();
        self.write(|c| {
            let t = load_task(c, task_id)?;
            if t.status != Status::Ready || t.assignee.is_some() || t.claim_lock.is_some() {
                return Ok(false);
            }
            assign_tx(c, &t, Some(&assignee), Some("kanban.default_assignee"), now)?;
            Ok(true)
        })
    }
}
