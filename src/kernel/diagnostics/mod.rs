//! The diagnostics engine (REF §18): stateless rules over a task, its events and its runs that
//! flag trouble an operator should act on — repeated failures or crashes, hallucinated cards or
//! references, tasks stuck in blocked, block/unblock cycling, tasks stranded in ready, and (when
//! given the Hermes root) skills a task's worker would ask for that its profile lacks.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

mod rules;

use super::board::{Board, DEFAULT_FAILURE_LIMIT};
use super::error::Result;
use super::store::{FromRow, Tx, arg_refs};
use super::tasks::query_tasks;
use super::types::{EVENT_COLUMNS, Event, RUN_COLUMNS, Run, Status, Task};
use rules::*;

/// Severity, ordered warning < error < critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Warning,
    /// Needs action.
    Error,
    /// Needs action now.
    Critical,
}

impl std::str::FromStr for Severity {
    type Err = super::error::KernelError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "warning" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            "critical" => Ok(Severity::Critical),
            o => Err(super::error::KernelError::invalid(
                "severity",
                format!("{o:?} is not one of: warning, error, critical"),
            )),
        }
    }
}

/// A suggested operator action.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Action {
    /// `reclaim`, `reassign`, `unblock`, `cli_hint`, `comment`.
    pub kind: &'static str,
    /// Button / hint text.
    pub label: String,
    /// Data for the action (e.g. the CLI command).
    pub payload: Value,
    /// Whether this is the recommended action.
    pub suggested: bool,
}

/// One finding.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Diagnostic {
    pub kind: &'static str,
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    pub actions: Vec<Action>,
    pub first_seen_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    pub count: i64,
    pub run_id: Option<i64>,
    pub data: Value,
}

/// Thresholds (`kanban.diagnostics.*` in Hermes' config).
#[derive(Debug, Clone)]
pub struct DiagnosticsConfig {
    /// `repeated_failures` threshold (default = failure limit, 2).
    pub failure_threshold: i64,
    /// `repeated_crashes` threshold (2).
    pub crash_threshold: i64,
    /// `stuck_in_blocked` age in hours (24).
    pub blocked_stale_hours: i64,
    /// `stranded_in_ready` age in seconds (1800).
    pub stranded_threshold_seconds: i64,
    /// `block_unblock_cycling` count (3).
    pub block_cycle_threshold: i64,
    /// `block_unblock_cycling` window (86400 s).
    pub block_cycle_window_seconds: i64,
    /// `missing_skill`: check the default worker argv's skills against the assignee's profile
    /// on disk (`None` = skip, e.g. the dashboard's per-card badges).
    pub skills: Option<SkillCheck>,
    /// The assignees the dispatcher can spawn (profiles on disk, `default`, and
    /// `kanban.worker_command` entries), when the caller knows them: a ready/todo task assigned
    /// to anyone else gets `unspawnable_assignee`. `None` turns the rule off.
    pub spawnable: Option<std::collections::BTreeSet<String>>,
}

/// Where `missing_skill` looks: the Hermes root and the assignees that run a
/// `kanban.worker_command` template instead of Hermes (their skills are not checked).
#[derive(Debug, Clone, Default)]
pub struct SkillCheck {
    pub hermes_root: std::path::PathBuf,
    pub templated: Vec<String>,
    /// A `*` template covers every assignee.
    pub all_templated: bool,
}

impl Default for DiagnosticsConfig {
    fn default() -> Self {
        DiagnosticsConfig {
            failure_threshold: DEFAULT_FAILURE_LIMIT,
            crash_threshold: 2,
            blocked_stale_hours: 24,
            stranded_threshold_seconds: 1800,
            block_cycle_threshold: 3,
            block_cycle_window_seconds: 86_400,
            skills: None,
            spawnable: None,
        }
    }
}

/// A task with its findings (`diagnostics --json` rows).
#[derive(Debug, Clone, Serialize)]
pub struct TaskDiagnostics {
    pub task_id: String,
    pub title: String,
    pub status: Status,
    pub assignee: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Every event kind a rule of [`diagnose`] looks at. Callers may pass only events of these
/// kinds (the board view does, to skip heartbeats and the like); the findings are the same.
pub const DIAGNOSTIC_EVENT_KINDS: &[&str] = &[
    "spawned",
    "completion_blocked_hallucination",
    "suspected_hallucinated_references",
    "completed",
    "edited",
    "blocked",
    "gave_up",
    "commented",
    "unblocked",
    "block_loop_detected",
    "created",
    "promoted",
    "promoted_manual",
    "reclaimed",
];

/// Run every rule over one task (events in id order, runs in start order). Findings are
/// sorted critical first, then newest.
pub fn diagnose(
    t: &Task,
    events: &[Event],
    runs: &[Run],
    cfg: &DiagnosticsConfig,
    now: i64,
) -> Vec<Diagnostic> {
    let f = Facts {
        t,
        events,
        runs,
        cfg,
        now,
        id: &t.id,
        terminal: matches!(t.status, Status::Done | Status::Archived),
    };
    let failures = repeated_failures(&f);
    // A crash streak is already told by the failure counter when that rule fired.
    let crashes = if failures.is_none() {
        repeated_crashes(&f)
    } else {
        None
    };
    let mut out: Vec<Diagnostic> = [
        hallucinated_cards(&f),
        phantom_refs(&f),
        failures,
        crashes,
        stuck_in_blocked(&f),
        block_cycling(&f),
        stranded_in_ready(&f),
        missing_skill(&f),
        unspawnable_assignee(&f),
    ]
    .into_iter()
    .flatten()
    .collect();
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.last_seen_at.cmp(&a.last_seen_at))
    });
    out
}

impl Board {
    /// Diagnostics over non-archived tasks (or one task), keeping only findings at or above
    /// `min_severity`; tasks without findings are omitted.
    pub fn diagnostics(
        &self,
        task_id: Option<&str>,
        min_severity: Severity,
        cfg: &DiagnosticsConfig,
    ) -> Result<Vec<TaskDiagnostics>> {
        let now = self.now();
        self.read(|c| {
            let tasks = match task_id {
                Some(id) => vec![super::board::load_task(c, id)?],
                None => query_tasks(
                    c,
                    "WHERE status != 'archived' ORDER BY priority DESC, created_at ASC",
                    &[],
                )?,
            };
            let scope = match task_id {
                Some(_) => "WHERE task_id = ?1",
                None => "WHERE task_id IN (SELECT id FROM tasks WHERE status != 'archived')",
            };
            let arg: Vec<&str> = task_id.into_iter().collect();
            let sql = format!("SELECT {EVENT_COLUMNS} FROM task_events {scope} ORDER BY id");
            let mut events = by_task(c, &sql, &arg, |e: &Event| &e.task_id)?;
            let sql =
                format!("SELECT {RUN_COLUMNS} FROM task_runs {scope} ORDER BY started_at, id");
            let mut runs = by_task(c, &sql, &arg, |r: &Run| &r.task_id)?;
            let mut out = Vec::new();
            for t in tasks {
                let ev = events.remove(&t.id).unwrap_or_default();
                let rn = runs.remove(&t.id).unwrap_or_default();
                let mut d = diagnose(&t, &ev, &rn, cfg, now);
                d.retain(|x| x.severity >= min_severity);
                if !d.is_empty() {
                    out.push(TaskDiagnostics {
                        task_id: t.id,
                        title: t.title,
                        status: t.status,
                        assignee: t.assignee,
                        diagnostics: d,
                    });
                }
            }
            Ok(out)
        })
    }
}

/// The rows `sql` reads (in its order), grouped by their task (`task`).
fn by_task<T: FromRow>(
    c: &Tx,
    sql: &str,
    args: &[&str],
    task: impl Fn(&T) -> &String,
) -> Result<HashMap<String, Vec<T>>> {
    let mut out: HashMap<String, Vec<T>> = HashMap::new();
    c.each(sql, &arg_refs(args), |r| {
        let row = T::from_row(r)?;
        out.entry(task(&row).clone()).or_default().push(row);
        Ok(())
    })?;
    Ok(out)
}
