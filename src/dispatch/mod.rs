//! The dispatcher: what one tick needs ([`TickOptions`]) and reports ([`DispatchResult`]), and
//! the assignees it can spawn here. The tick itself ([`dispatch_once`], REF §9.1 order with the
//! fixes of SPEC §6) lives in [`tick`], its spawn step — the kernel's one
//! [`SpawnPolicy`](crate::kernel::SpawnPolicy), shared with the dry run — in [`launch`], and the
//! long-lived host of `daemon` and `serve` ([`run_loop`]: ticks on change, the interval as the
//! upper bound) in [`host`]. Every state change is a kernel call; this module only decides
//! which one and handles processes.

pub mod config;
pub mod host;
pub mod launch;
pub mod locks;
pub mod procs;
pub mod spawn;
pub mod supervise;
pub mod tick;
pub mod workspace;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::kernel::{
    Board, Env, Settlement, SharedBoard, SpawnOutcome, SpawnPolicy, default_claimer, hermes_root,
    profile_exists, profile_state,
};
pub use crate::kernel::{CappedTask, GuardedTask, SpawnedTask};
use config::{KanbanConfig, WorkerCommands};
pub(crate) use host::loop_boards;
pub use host::{HostState, run_loop, run_loop_with};
pub use procs::{terminate_run, terminate_task, worker_alive};
pub use tick::dispatch_once;

/// A board a tick works on, taken for one kernel call at a time: a plain [`Board`] (one-shot
/// `dispatch`) or a [`SharedBoard`] (`daemon`/`serve`, where MCP and REST share the handle and
/// must not wait behind a whole tick — process waits, `hermes --help` probes and supervisor
/// starts run with the board released).
pub trait TickBoard {
    /// Run `f` with the board held.
    fn with<R>(&self, f: impl FnOnce(&Board) -> R) -> R;
}

impl TickBoard for Board {
    fn with<R>(&self, f: impl FnOnce(&Board) -> R) -> R {
        f(self)
    }
}

impl TickBoard for SharedBoard {
    fn with<R>(&self, f: impl FnOnce(&Board) -> R) -> R {
        f(&self.lock())
    }
}

/// The assignees a tick can spawn on this machine: `default`, every profile on disk and every
/// `kanban.worker_command` entry (the same test the tick applies before spawning).
pub fn spawnable_assignees(env: &Env) -> std::collections::BTreeSet<String> {
    let (cfg, _) = KanbanConfig::load(env);
    let mut out: std::collections::BTreeSet<String> =
        crate::kernel::on_disk_profiles(&hermes_root(env))
            .into_iter()
            .collect();
    out.extend(cfg.worker_command.by_assignee.keys().cloned());
    out
}

/// A warning for an assignee the dispatcher cannot spawn (no profile, no worker command), or
/// `None` when it can.
pub fn unspawnable_warning(env: &Env, assignee: &str) -> Option<String> {
    let (cfg, _) = KanbanConfig::load(env);
    let root = hermes_root(env);
    if cfg.worker_command.by_assignee.contains_key(assignee) || profile_exists(&root, assignee) {
        return None;
    }
    let why = profile_state(&root, assignee)
        .reason(&root, assignee)
        .unwrap_or_default();
    Some(format!(
        "assignee '{assignee}' has no profile ({why}) and no kanban.worker_command.{assignee} in \
        config.yaml, so a dispatcher cannot start a worker for it; create the profile, configure a \
        worker command, or assign one of the profiles `hermes-kanban assignees` lists"
    ))
}

/// Everything one tick needs (REF §9.1 parameters plus our knobs).
#[derive(Debug, Clone)]
pub struct TickOptions {
    /// Preview only: report what would be spawned, write nothing (SPEC §3.3 fix 3).
    pub dry_run: bool,
    /// Live concurrency cap: no spawn once running + spawned reaches it.
    pub max_spawn: Option<usize>,
    /// Spawn nothing while this many tasks run.
    pub max_in_progress: Option<usize>,
    /// Per-assignee cap on running tasks.
    pub max_in_progress_per_profile: Option<usize>,
    /// Cap on running tasks claimed by this host (the host part of `claimer`).
    pub max_in_progress_per_host: Option<usize>,
    /// Circuit-breaker limit when a task has no `max_retries` (default 2).
    pub failure_limit: i64,
    /// Release runs without a heartbeat after this long (0 disables; CLI `dispatch` uses 0).
    pub stale_timeout_seconds: i64,
    /// A heartbeat older than this does not prove liveness (3600).
    pub heartbeat_stale_seconds: i64,
    /// Profile for unassigned ready tasks.
    pub default_assignee: Option<String>,
    /// Claim TTL (default `HERMES_KANBAN_CLAIM_TTL_SECONDS`, else 900).
    pub ttl_seconds: Option<i64>,
    /// A dead pid within this many seconds of the task's first start is not a crash yet.
    pub crash_grace_seconds: i64,
    /// Respawn cool-down after a rate-limited run (0 = immediate).
    pub rate_limit_cooldown_seconds: i64,
    /// SIGTERM → SIGKILL grace when stopping a worker.
    pub kill_grace: Duration,
    /// The `hermes-kanban` executable that provides `supervise`.
    pub supervisor_exe: PathBuf,
    /// Per-assignee worker command templates.
    pub worker_command: WorkerCommands,
    /// Worker log rotation.
    pub log_rotate_bytes: u64,
    pub log_backup_count: u32,
    /// Claim lock string (default `host:pid` of this process).
    pub claimer: String,
    /// `kanban.dispatch_profiles`: the per-home claim allowlist (`None` = any profile).
    pub dispatch_profiles: Option<Vec<String>>,
    /// Run the review lane (`kanban.review_dispatch`, default true).
    pub review_dispatch: bool,
}

impl TickOptions {
    /// Options for a one-shot `dispatch` from the config and environment: stale detection off
    /// (as Hermes' CLI), failure limit 2 unless given.
    pub fn from_config(env: &Env, cfg: &KanbanConfig) -> TickOptions {
        TickOptions {
            dry_run: false,
            max_spawn: cfg.max_spawn,
            max_in_progress: cfg.max_in_progress,
            max_in_progress_per_profile: cfg.max_in_progress_per_profile,
            max_in_progress_per_host: cfg.max_in_progress_per_host,
            failure_limit: crate::kernel::DEFAULT_FAILURE_LIMIT,
            stale_timeout_seconds: 0,
            heartbeat_stale_seconds: crate::kernel::HEARTBEAT_STALE_SECONDS,
            default_assignee: cfg.default_assignee.clone(),
            ttl_seconds: None,
            crash_grace_seconds: config::crash_grace_seconds(env),
            rate_limit_cooldown_seconds: config::rate_limit_cooldown_seconds(env),
            kill_grace: Duration::from_secs_f64(config::kill_grace_seconds(env)),
            supervisor_exe: std::env::current_exe().unwrap_or_else(|_| "hermes-kanban".into()),
            worker_command: cfg.worker_command.clone(),
            log_rotate_bytes: cfg.worker_log_rotate_bytes,
            log_backup_count: cfg.worker_log_backup_count,
            claimer: default_claimer(),
            dispatch_profiles: cfg.dispatch_profiles.clone(),
            review_dispatch: cfg.review_dispatch,
        }
    }

    /// The spawn policy these options describe — the one the tick and the dry run both run.
    pub fn spawn_policy(&self) -> SpawnPolicy {
        SpawnPolicy {
            max_spawn: self.max_spawn,
            max_in_progress: self.max_in_progress,
            max_in_progress_per_profile: self.max_in_progress_per_profile,
            max_in_progress_per_host: self.max_in_progress_per_host,
            host: crate::kernel::claim_host(&self.claimer).map(str::to_string),
            default_assignee: self.default_assignee.clone(),
            hermes_root: None,
            respawn_cooldown_seconds: Some(self.rate_limit_cooldown_seconds),
            extra_spawnable: self.worker_command.by_assignee.keys().cloned().collect(),
            dispatch_profiles: self.dispatch_profiles.clone(),
            no_review_lane: !self.review_dispatch,
        }
    }
}

/// What a tick did — the keys of REF §15.2 `dispatch --json`, in that order, plus
/// `respawn_guarded`, `rate_limited`, `skipped_locked` and upstream ~0.22's
/// `reaped_terminal_workers` and `memory_pressure` (UP §9).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DispatchResult {
    /// Expired claims released back to ready.
    pub reclaimed: usize,
    /// Runs that ended without a hand-off (crash, signal, protocol violation).
    pub crashed: Vec<String>,
    pub timed_out: Vec<String>,
    /// Runs released for lack of heartbeats.
    pub stale: Vec<String>,
    /// Tasks the circuit breaker moved to blocked.
    pub auto_blocked: Vec<String>,
    /// Tasks promoted todo → ready.
    pub promoted: usize,
    pub spawned: Vec<SpawnedTask>,
    pub skipped_unassigned: Vec<String>,
    pub skipped_nonspawnable: Vec<String>,
    pub skipped_per_profile_capped: Vec<CappedTask>,
    pub auto_assigned_default: Vec<String>,
    pub respawn_guarded: Vec<GuardedTask>,
    /// Runs that exited 75 (released, no failure counted, respawn after the cool-down).
    pub rate_limited: Vec<String>,
    /// Another tick held this board's lock; nothing was done.
    pub skipped_locked: bool,
    /// Problems a spawn would hit, e.g. a task's skill missing from its assignee's profile
    /// (dry runs only; omitted when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Closed runs whose supervisor died before accounting for the worker: what the worker
    /// left running was stopped, the process row settled, the workspace cleaned up.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reaped: Vec<String>,
    /// Hermes ~0.22's name for the same list (`reaped` above): workers of closed runs a tick
    /// stopped. Always present (empty when none) so scripts written for Hermes find the key.
    pub reaped_terminal_workers: Vec<String>,
    /// Whether spawning was held back by a memory-derived cap. We apply no such cap
    /// (`max_in_progress` unset means no cap), so always false.
    pub memory_pressure: bool,
}

impl DispatchResult {
    /// Whether the tick changed anything.
    pub fn did_work(&self) -> bool {
        self.reclaimed > 0
            || self.promoted > 0
            || !self.crashed.is_empty()
            || !self.timed_out.is_empty()
            || !self.stale.is_empty()
            || !self.auto_blocked.is_empty()
            || !self.spawned.is_empty()
            || !self.rate_limited.is_empty()
    }

    fn note(&mut self, task_id: &str, label: &str, tripped: bool) {
        let id = task_id.to_string();
        match label {
            "crashed" | "protocol_violation" => self.crashed.push(id.clone()),
            "rate_limited" => self.rate_limited.push(id.clone()),
            "timed_out" => self.timed_out.push(id.clone()),
            _ => {}
        }
        if tripped {
            self.auto_blocked.push(id);
        }
    }

    fn note_settlement(&mut self, s: &Settlement) {
        let label = match (s.outcome, s.protocol_violation) {
            (None, _) => return,
            (Some(_), true) => "protocol_violation",
            (Some(o), false) => o.as_str(),
        };
        self.note(&s.task_id, label, s.tripped);
    }

    /// Take the spawn policy's lists (`spawned` … `respawn_guarded`).
    fn absorb(&mut self, o: SpawnOutcome) {
        self.spawned = o.spawned;
        self.skipped_unassigned = o.skipped_unassigned;
        self.skipped_nonspawnable = o.skipped_nonspawnable;
        self.skipped_per_profile_capped = o.skipped_per_profile_capped;
        self.auto_assigned_default = o.auto_assigned_default;
        self.respawn_guarded = o.respawn_guarded;
    }

    /// As JSON (the `dispatch --json` shape).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({}))
    }
}
