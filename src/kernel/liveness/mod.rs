//! Liveness and process bookkeeping for the dispatcher (REF §8, SPEC §6). This module owns
//! the vocabulary — how a worker ended ([`WorkerExit`], [`ExitClass`]), who applied it
//! ([`SettledBy`]) and the liveness limits — and its children own the operations:
//! [`procs`] the supervised-run process table (migration 0003), [`settle`] applying a worker's
//! exit exactly once (protocol violations, rate limits, crashes, time-outs, spawn failures,
//! each with its breaker rule), [`stale`] expired-claim extension / deferral / release and
//! stale-heartbeat release, [`guard`] the respawn guard, and [`queue`] the queries a tick reads
//! plus default-assignee writes. Every mutation is one transaction whose UPDATE carries the
//! expected run or claim (CAS), so a tick and a supervisor can never both apply an outcome to
//! the same run.

mod guard;
mod procs;
mod queue;
mod settle;
mod stale;

pub use procs::RunProcess;
pub use queue::{QueuedTask, RunningTask};
pub use settle::{SettledReport, Settlement};

use serde::Serialize;
use serde_json::{Map, Value, json};

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
const PROTOCOL_VIOLATION_HINT: &str = "protocol violation: the previous attempt exited cleanly \
    without calling kanban_complete or kanban_block. Check what is already done in the workspace, \
    finish the task, then call kanban_complete with a summary (or kanban_block when you are \
    stuck).";

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
