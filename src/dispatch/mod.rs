//! The dispatcher: one tick ([`dispatch_once`], REF §9.1 order with the fixes of SPEC §6) and the
//! long-lived loop ([`run_loop`]) that `daemon` and `serve` host. A tick reaps this host's
//! children, reports what supervisors settled since the last tick, releases expired claims
//! (extending those of live workers), releases runs without heartbeats, settles runs whose
//! supervisor died, enforces max runtimes a supervisor failed to, reaps what closed runs left
//! running when their supervisor died, promotes ready work, and
//! claims and spawns by priority under the caps. Every state change is a kernel call; this
//! module only decides which one and handles processes.

pub mod config;
pub mod locks;
pub mod procs;
pub mod spawn;
pub mod supervise;
pub mod workspace;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::kernel::{
    Board, Env, Kanban, KernelError, PlanOptions, RECLAIM_DEFER_SECONDS, RunningTask, SettledBy,
    Settlement, Status, WorkerExit, default_claimer, dispatch_allowed, hermes_root, list_boards,
    profile_exists, profile_state, resolve_board,
};
use crate::process::lock_is_host_local;
use config::{KanbanConfig, WorkerCommands};
use locks::TryLock;
pub use procs::{terminate_run, terminate_task, worker_alive};

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
        "assignee '{assignee}' has no profile ({why}) and no kanban.worker_command.{assignee} in config.yaml, so a dispatcher cannot start a worker for it; create the profile, configure a worker command, or assign one of the profiles `hermes-kanban assignees` lists"
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
}

/// One spawned (or, in a dry run, would-be spawned) task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpawnedTask {
    pub task_id: String,
    pub assignee: String,
    /// Resolved workspace ("" in a dry run).
    pub workspace: String,
}

/// A task held back by a per-profile cap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CappedTask {
    pub task_id: String,
    pub assignee: String,
    /// Tasks of that assignee running at the time.
    pub current: usize,
}

/// A task held back by the respawn guard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardedTask {
    pub task_id: String,
    pub reason: String,
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

    /// As JSON (the `dispatch --json` shape).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({}))
    }
}

/// State a long-lived host keeps between ticks: its own supervisor children, reaped here so
/// they do not linger as zombies.
#[derive(Debug, Default)]
pub struct HostState {
    children: Vec<i32>,
}

impl HostState {
    /// Reap exited children of this process (non-blocking, only the ones we spawned).
    pub fn reap(&mut self) {
        use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
        self.children.retain(|pid| {
            !matches!(
                waitpid(nix::unistd::Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) | Err(_)
            )
        });
    }

    /// Supervisors spawned by this host that are not reaped yet.
    pub fn children(&self) -> usize {
        self.children.len()
    }
}

/// Run one tick on `board` (REF §9.1). A concurrent tick on the same board makes this one
/// return at once with `skipped_locked` and no writes. Per-task failures are logged and the
/// tick carries on; only failing to read the board is an error.
pub fn dispatch_once(
    board: &Board,
    opts: &TickOptions,
    host: &mut HostState,
) -> anyhow::Result<DispatchResult> {
    if opts.dry_run {
        return dry_run(board, opts);
    }
    let _lock = match locks::try_tick_lock(&board.paths().db) {
        TryLock::Held(l) => Some(l),
        TryLock::Busy => {
            return Ok(DispatchResult {
                skipped_locked: true,
                ..Default::default()
            });
        }
        TryLock::Unavailable(e) => {
            tracing::warn!("tick lock unavailable ({e}); dispatching without it");
            None
        }
    };
    let mut res = DispatchResult::default();
    // 1. Reap own children; report what supervisors settled since the last tick.
    host.reap();
    for r in board.take_supervisor_settlements()? {
        res.note(&r.task_id, &r.outcome, r.tripped);
    }
    let running = board.running_tasks()?;
    let mut handled: HashSet<String> = HashSet::new();
    release_stale_claims(board, opts, &running, &mut handled, &mut res);
    if opts.stale_timeout_seconds > 0 {
        release_stale_runs(board, opts, &running, &mut handled, &mut res);
    }
    settle_dead_workers(board, opts, &running, &mut handled, &mut res);
    enforce_max_runtime(board, opts, &running, &mut handled, &mut res);
    reap_lingering(board, opts, &mut res);
    res.promoted = board.recompute_ready()?.len();
    spawn_ready(board, opts, host, &mut res)?;
    res.reaped_terminal_workers = res.reaped.clone();
    Ok(res)
}

/// Whether process group `pgid` (led by a process that started at `start`) still has live
/// members that are ours: while its leader lives, only if the leader's `/proc` start time still
/// matches (a reused pid is someone else); once the leader is gone, any live member (Linux does
/// not hand out a pid that is still some group's id, so the group is the original one).
fn lingering_group(pgid: i64, start: Option<i64>) -> bool {
    use crate::process::{group_alive, pid_alive, proc_start_time};
    if pid_alive(pgid) {
        return start.is_some() && proc_start_time(pgid) == start;
    }
    group_alive(pgid)
}

/// SIGTERM a lingering group, wait up to `grace`, then SIGKILL. True if it is gone.
fn stop_group(pgid: i64, grace: Duration) -> bool {
    use crate::process::{group_alive, signal_group_only};
    use nix::sys::signal::Signal;
    signal_group_only(pgid, Signal::SIGTERM);
    let deadline = std::time::Instant::now() + grace;
    while group_alive(pgid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
    if group_alive(pgid) {
        signal_group_only(pgid, Signal::SIGKILL);
        std::thread::sleep(Duration::from_millis(50));
    }
    !group_alive(pgid)
}

/// Closed runs whose supervisor died before it accounted for the worker (a worker that
/// completed, left a child running, and whose supervisor was then killed): stop what is left
/// in the worker's (and supervisor's) process group — only while pid and start time match —,
/// settle the process row, and remove the scratch workspace if its clean-up is due.
fn reap_lingering(board: &Board, opts: &TickOptions, res: &mut DispatchResult) {
    let rows = match board.lingering_processes() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("dispatch: reading lingering worker processes: {e}");
            return;
        }
    };
    for p in rows {
        if p.supervisor_pid
            .is_some_and(|pid| crate::process::pid_alive_as(pid, p.supervisor_start))
        {
            continue; // the supervisor is still on it and will sweep the group itself
        }
        let mut stopped = Vec::new();
        for (pid, start) in [
            (p.worker_pid, p.worker_start),
            (p.supervisor_pid, p.supervisor_start),
        ] {
            if let Some(pid) = pid
                && lingering_group(pid, start)
            {
                let gone = stop_group(pid, opts.kill_grace);
                stopped.push(json!({"pgid": pid, "terminated": gone}));
            }
        }
        let payload = if stopped.is_empty() {
            serde_json::Map::new()
        } else {
            let mut m = serde_json::Map::new();
            m.insert("pid".into(), json!(p.worker_pid));
            m.insert("worker_started_at".into(), json!(p.worker_start));
            m.insert("groups".into(), Value::Array(stopped));
            m
        };
        match board.settle_lingering(p.run_id, payload) {
            Ok(true) => {
                for dir in workspace::cleanup_after_completion(board, &p.task_id) {
                    tracing::info!("dispatch: removed scratch workspace {}", dir.display());
                }
                res.reaped.push(p.task_id.clone());
            }
            Ok(false) => {}
            Err(e) => warn_task(&p.task_id, "settling the lingering processes of", e),
        }
    }
}

fn warn_task(task_id: &str, what: &str, e: impl std::fmt::Display) {
    tracing::warn!("dispatch: {what} {task_id}: {e}");
}

/// REF §8.1: expired claims. A live, heartbeating host-local worker gets its claim extended;
/// otherwise its processes are stopped and the claim released (deferred if they survive).
fn release_stale_claims(
    board: &Board,
    opts: &TickOptions,
    running: &[RunningTask],
    handled: &mut HashSet<String>,
    res: &mut DispatchResult,
) {
    let now = board.now();
    for rt in running {
        let t = &rt.task;
        if t.claim_expires.is_none_or(|e| e >= now) {
            continue;
        }
        handled.insert(t.id.clone());
        let lock = t.claim_lock.as_deref();
        let host_local = lock.is_some_and(lock_is_host_local);
        let fresh = t
            .last_heartbeat_at
            .is_none_or(|h| now - h < opts.heartbeat_stale_seconds);
        if host_local
            && fresh
            && worker_alive(rt)
            && let Some(l) = lock
        {
            let ttl = opts
                .ttl_seconds
                .unwrap_or_else(|| board.default_claim_ttl());
            if let Err(e) = board.extend_expired_claim(&t.id, l, ttl, t.worker_pid) {
                warn_task(&t.id, "extending the claim of", e);
            }
            continue;
        }
        let term = terminate_run(t, rt.process.as_ref(), opts.kill_grace);
        let r = if term.termination_attempted && !term.terminated {
            board
                .defer_reclaim(&t.id, lock, RECLAIM_DEFER_SECONDS, term.to_map())
                .map(|_| false)
        } else {
            board.release_stale_claim(&t.id, lock, term.to_map())
        };
        match r {
            Ok(true) => res.reclaimed += 1,
            Ok(false) => {}
            Err(e) => warn_task(&t.id, "reclaiming", e),
        }
    }
}

/// REF §8.2: runs going for `stale_timeout` without a recent heartbeat. Not a failure.
fn release_stale_runs(
    board: &Board,
    opts: &TickOptions,
    running: &[RunningTask],
    handled: &mut HashSet<String>,
    res: &mut DispatchResult,
) {
    let now = board.now();
    for rt in running {
        let t = &rt.task;
        if handled.contains(&t.id) {
            continue;
        }
        let (Some(run), Some(started)) = (t.current_run_id, rt.run_started_at.or(t.started_at))
        else {
            continue;
        };
        let quiet_since = t.last_heartbeat_at.unwrap_or(started);
        let silent = t
            .last_heartbeat_at
            .is_none_or(|h| now - h >= opts.heartbeat_stale_seconds);
        if now - started < opts.stale_timeout_seconds || !silent {
            continue;
        }
        handled.insert(t.id.clone());
        let term = terminate_run(t, rt.process.as_ref(), opts.kill_grace);
        let lock = t.claim_lock.as_deref();
        if term.termination_attempted && !term.terminated {
            if let Err(e) = board.defer_reclaim(&t.id, lock, RECLAIM_DEFER_SECONDS, term.to_map()) {
                warn_task(&t.id, "deferring", e);
            }
            continue;
        }
        let error = format!(
            "no heartbeat for {}s after {}s running",
            now - quiet_since,
            now - started
        );
        match board.release_stale_run(&t.id, run, lock, &error, term.to_map()) {
            Ok(true) => res.stale.push(t.id.clone()),
            Ok(false) => {}
            Err(e) => warn_task(&t.id, "releasing stale", e),
        }
    }
}

/// REF §8.3: a host-local run whose supervisor (or unsupervised worker) is gone while the run
/// is still open. The status the supervisor recorded is authoritative; without one the run is
/// a crash "pid N not alive".
fn settle_dead_workers(
    board: &Board,
    opts: &TickOptions,
    running: &[RunningTask],
    handled: &mut HashSet<String>,
    res: &mut DispatchResult,
) {
    let now = board.now();
    for rt in running {
        let t = &rt.task;
        if handled.contains(&t.id) {
            continue;
        }
        let (Some(pid), Some(run)) = (t.worker_pid, t.current_run_id) else {
            continue;
        };
        if !t.claim_lock.as_deref().is_some_and(lock_is_host_local)
            || now - t.started_at.unwrap_or(now) < opts.crash_grace_seconds
            || worker_alive(rt)
        {
            continue;
        }
        handled.insert(t.id.clone());
        // Whatever the dead supervisor left behind in the worker's group goes too.
        let _ = terminate_run(t, rt.process.as_ref(), opts.kill_grace);
        let recorded = rt
            .process
            .as_ref()
            .is_some_and(|p| p.exit.is_some() && p.settled_at.is_none());
        let fallback = WorkerExit::unknown(Some(pid));
        let exit = (!recorded).then_some(&fallback);
        match board.settle_worker_exit(&t.id, run, SettledBy::Tick, Some(opts.failure_limit), exit)
        {
            Ok(s) => res.note_settlement(&s),
            Err(e) => warn_task(&t.id, "settling the dead worker of", e),
        }
    }
}

/// REF §8.4: max runtime. Supervisors enforce it themselves; a tick steps in for unsupervised
/// workers at the limit, and for supervised ones only when the supervisor is overdue.
fn enforce_max_runtime(
    board: &Board,
    opts: &TickOptions,
    running: &[RunningTask],
    handled: &mut HashSet<String>,
    res: &mut DispatchResult,
) {
    let now = board.now();
    for rt in running {
        let t = &rt.task;
        if handled.contains(&t.id) {
            continue;
        }
        let (Some(limit), Some(pid), Some(run)) =
            (t.max_runtime_seconds, t.worker_pid, t.current_run_id)
        else {
            continue;
        };
        if !t.claim_lock.as_deref().is_some_and(lock_is_host_local) {
            continue;
        }
        let started = rt.run_started_at.or(t.started_at).unwrap_or(now);
        let elapsed = now - started;
        let supervised = rt
            .process
            .as_ref()
            .is_some_and(|p| p.supervisor_pid == Some(pid));
        let slack = if supervised {
            opts.kill_grace.as_secs() as i64 + 30
        } else {
            0
        };
        if elapsed <= limit + slack {
            continue;
        }
        handled.insert(t.id.clone());
        let term = terminate_run(t, rt.process.as_ref(), opts.kill_grace);
        if term.termination_attempted && !term.terminated {
            warn_task(
                &t.id,
                "could not stop the overdue worker of",
                "it survived SIGKILL",
            );
            continue;
        }
        let exit = WorkerExit::timed_out(Some(pid), elapsed, limit, term.sigkill);
        match board.settle_worker_exit(
            &t.id,
            run,
            SettledBy::Tick,
            Some(opts.failure_limit),
            Some(&exit),
        ) {
            Ok(s) => res.note_settlement(&s),
            Err(e) => warn_task(&t.id, "timing out", e),
        }
    }
}

fn spawn_budget(opts: &TickOptions, running: usize) -> Option<usize> {
    if let Some(cap) = opts.max_in_progress
        && running >= cap
    {
        return None;
    }
    let mut budget = usize::MAX;
    if let Some(cap) = opts.max_in_progress {
        budget = budget.min(cap - running);
    }
    if let Some(ms) = opts.max_spawn {
        budget = budget.min(ms.saturating_sub(running));
    }
    Some(budget)
}

/// REF §9.1 steps 7–8: claim and spawn by priority under the caps.
fn spawn_ready(
    board: &Board,
    opts: &TickOptions,
    host: &mut HostState,
    res: &mut DispatchResult,
) -> anyhow::Result<()> {
    let (running, mut per_profile) = board.running_counts()?;
    let Some(budget) = spawn_budget(opts, running).filter(|b| *b > 0) else {
        return Ok(());
    };
    let root = hermes_root(board.env());
    // Upstream's review lane (UP §10): while review work waits under a finite budget, one slot
    // is held back from the ready lane so reviews are not starved.
    let review_queue = if opts.review_dispatch {
        board.dispatch_queue(Status::Review)?
    } else {
        Vec::new()
    };
    let ready_budget = if review_queue.is_empty() || budget == usize::MAX {
        budget
    } else {
        budget.saturating_sub(1)
    };
    let mut known: HashMap<String, bool> = HashMap::new();
    let mut spawnable = |a: &str| -> bool {
        if let Some(v) = known.get(a) {
            return *v;
        }
        *known.entry(a.to_string()).or_insert_with(|| {
            dispatch_allowed(opts.dispatch_profiles.as_deref(), a)
                && (opts.worker_command.by_assignee.contains_key(a) || profile_exists(&root, a))
        })
    };
    for q in board.dispatch_queue(Status::Ready)? {
        if res.spawned.len() >= ready_budget {
            break;
        }
        let assignee = match q.assignee {
            Some(a) => a,
            None => match opts.default_assignee.as_deref() {
                Some(d) if spawnable(d) => match board.assign_default(&q.id, d) {
                    Ok(true) => {
                        res.auto_assigned_default.push(q.id.clone());
                        d.to_string()
                    }
                    Ok(false) => continue,
                    Err(e) => {
                        warn_task(&q.id, "assigning the default assignee to", e);
                        continue;
                    }
                },
                _ => {
                    res.skipped_unassigned.push(q.id);
                    continue;
                }
            },
        };
        if !spawnable(&assignee) {
            note_nonspawnable(board, &q.id, &assignee);
            res.skipped_nonspawnable.push(q.id);
            continue;
        }
        if let Some(cap) = opts.max_in_progress_per_profile {
            let n = per_profile.get(&assignee).copied().unwrap_or(0);
            if n >= cap {
                res.skipped_per_profile_capped.push(CappedTask {
                    task_id: q.id,
                    assignee,
                    current: n,
                });
                continue;
            }
        }
        match board.respawn_guard(&q.id, opts.rate_limit_cooldown_seconds) {
            Ok(Some(reason)) => {
                if let Err(e) = board.note_respawn_guarded(&q.id, reason) {
                    warn_task(&q.id, "noting the respawn guard of", e);
                }
                res.respawn_guarded.push(GuardedTask {
                    task_id: q.id,
                    reason: reason.to_string(),
                });
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                warn_task(&q.id, "checking the respawn guard of", e);
                continue;
            }
        }
        if spawn_one(board, opts, host, &q.id, &assignee, false, res) {
            *per_profile.entry(assignee).or_default() += 1;
        }
    }
    for q in review_queue {
        if res.spawned.len() >= budget {
            break;
        }
        match q.assignee {
            Some(a) if spawnable(&a) => {
                spawn_one(board, opts, host, &q.id, &a, true, res);
            }
            Some(a) => {
                note_nonspawnable(board, &q.id, &a);
                res.skipped_nonspawnable.push(q.id)
            }
            None => res.skipped_unassigned.push(q.id),
        }
    }
    Ok(())
}

/// Record `skipped_nonspawnable {assignee}` on the task, once (UP §7).
fn note_nonspawnable(board: &Board, task_id: &str, assignee: &str) {
    if let Err(e) = board.note_skipped_nonspawnable(task_id, assignee) {
        warn_task(task_id, "noting the non-spawnable assignee of", e);
    }
}

/// Claim one task and start its supervisor. True when a worker was launched. Failures after
/// the claim are spawn failures counted by the breaker; a lost claim race is silent.
fn spawn_one(
    board: &Board,
    opts: &TickOptions,
    host: &mut HostState,
    task_id: &str,
    assignee: &str,
    review: bool,
    res: &mut DispatchResult,
) -> bool {
    let claimed = if review {
        board.claim_review_task_as(task_id, opts.ttl_seconds, &opts.claimer)
    } else {
        board.claim_task_as(task_id, opts.ttl_seconds, &opts.claimer)
    };
    let claim = match claimed {
        Ok(c) => c,
        Err(KernelError::Refused { .. }) => return false,
        Err(e) => {
            warn_task(task_id, "claiming", e);
            return false;
        }
    };
    let fail = |res: &mut DispatchResult, error: String| {
        tracing::warn!("dispatch: spawn of {task_id} failed: {error}");
        match board.settle_worker_exit(
            task_id,
            claim.run_id,
            SettledBy::Tick,
            Some(opts.failure_limit),
            Some(&WorkerExit::spawn_failed(error)),
        ) {
            Ok(s) => res.note_settlement(&s),
            Err(e) => warn_task(task_id, "recording the spawn failure of", e),
        }
        false
    };
    match launch(board, opts, task_id, assignee, claim.run_id, &claim.lock) {
        Ok((sup, workspace)) => {
            match board.register_supervisor(task_id, claim.run_id, sup.pid, sup.start_time) {
                Ok(()) => {
                    host.children.push(sup.pid as i32);
                    sup.go();
                    res.spawned.push(SpawnedTask {
                        task_id: task_id.to_string(),
                        assignee: assignee.to_string(),
                        workspace,
                    });
                    true
                }
                Err(e) => {
                    host.children.push(sup.pid as i32);
                    sup.abort();
                    warn_task(task_id, "registering the supervisor of", e);
                    false
                }
            }
        }
        Err(error) => fail(res, error),
    }
}

fn launch(
    board: &Board,
    opts: &TickOptions,
    task_id: &str,
    assignee: &str,
    run_id: i64,
    lock: &str,
) -> Result<(spawn::StartedSupervisor, String), String> {
    let root = hermes_root(board.env());
    if !opts.worker_command.by_assignee.contains_key(assignee)
        && let Some(why) = profile_state(&root, assignee).reason(&root, assignee)
    {
        return Err(format!("unknown profile {assignee:?}: {why}"));
    }
    let task = board.get_task(task_id).map_err(|e| e.to_string())?;
    let ws = workspace::resolve(board, &task).map_err(|e| format!("workspace: {e}"))?;
    let ws_text = ws.path.to_string_lossy().into_owned();
    board
        .set_workspace(task_id, &ws_text, ws.branch.as_deref())
        .map_err(|e| format!("workspace: {e}"))?;
    let spec = spawn::WorkerSpec {
        task: &task,
        assignee,
        board: board.slug(),
        workspace: &ws.path,
        run_id,
    };
    let argv = spawn::build_argv(&spec, &opts.worker_command, board.env())?;
    let token = board
        .mint_run_token(task_id, run_id)
        .map_err(|e| e.to_string())?;
    let pins = spawn::BoardPins {
        slug: board.slug(),
        db: &board.paths().db,
        workspaces_root: &board.paths().workspaces,
    };
    let env = spawn::worker_env(
        board.env(),
        &spec,
        ws.branch.as_deref(),
        lock,
        &token,
        &pins,
    );
    let log = board.paths().log_file(task_id);
    spawn::rotate_log(&log, opts.log_rotate_bytes, opts.log_backup_count);
    let sup = spawn::start_supervisor(&spawn::SupervisorLaunch {
        exe: &opts.supervisor_exe,
        task_id,
        run_id,
        failure_limit: opts.failure_limit,
        max_runtime: task.max_runtime_seconds,
        kill_grace_seconds: opts.kill_grace.as_secs_f64(),
        cwd: &ws.path,
        argv: &argv,
        env: &env,
        log: &log,
    })?;
    Ok((sup, ws_text))
}

/// A dry run: the kernel's read-only plan (with the respawn guard), nothing written.
fn dry_run(board: &Board, opts: &TickOptions) -> anyhow::Result<DispatchResult> {
    let plan = board.plan_dispatch(&PlanOptions {
        max_spawn: opts.max_spawn,
        max_in_progress: opts.max_in_progress,
        max_in_progress_per_profile: opts.max_in_progress_per_profile,
        default_assignee: opts.default_assignee.clone(),
        hermes_root: None,
        respawn_cooldown_seconds: Some(opts.rate_limit_cooldown_seconds),
        extra_spawnable: opts.worker_command.by_assignee.keys().cloned().collect(),
        dispatch_profiles: opts.dispatch_profiles.clone(),
        no_review_lane: !opts.review_dispatch,
    })?;
    let root = hermes_root(board.env());
    let mut warnings = Vec::new();
    for (task_id, assignee) in &plan.spawn {
        if opts.worker_command.for_assignee(assignee).is_some() {
            continue;
        }
        if let Ok(t) = board.get_task(task_id)
            && let Some(w) = crate::kernel::worker_skills(&root, assignee, &t.skills)
                .warning(task_id, assignee, &root)
        {
            warnings.push(w);
        }
    }
    Ok(DispatchResult {
        warnings,
        promoted: plan.promotable.len(),
        spawned: plan
            .spawn
            .into_iter()
            .map(|(task_id, assignee)| SpawnedTask {
                task_id,
                assignee,
                workspace: String::new(),
            })
            .collect(),
        skipped_unassigned: plan.skipped_unassigned,
        skipped_nonspawnable: plan.skipped_nonspawnable,
        skipped_per_profile_capped: plan
            .skipped_per_profile_capped
            .into_iter()
            .map(|(task_id, assignee, current)| CappedTask {
                task_id,
                assignee,
                current,
            })
            .collect(),
        auto_assigned_default: plan.auto_assigned_default,
        respawn_guarded: plan
            .respawn_guarded
            .into_iter()
            .map(|(task_id, reason)| GuardedTask { task_id, reason })
            .collect(),
        ..Default::default()
    })
}

/// The boards a loop dispatches: the given one; else the one pinned by `HERMES_KANBAN_DB` /
/// `HERMES_KANBAN_BOARD`; else every non-archived board (re-listed each tick, as the gateway).
/// The boards a host serves: `board`, the pinned board, else every board.
pub(crate) fn loop_boards(env: &Env, board: Option<&str>) -> Vec<String> {
    if let Some(b) = board {
        return vec![b.to_string()];
    }
    if env.get("HERMES_KANBAN_DB").is_some() || env.get("HERMES_KANBAN_BOARD").is_some() {
        return resolve_board(env, None)
            .map(|b| vec![b])
            .unwrap_or_default();
    }
    match list_boards(env, false) {
        Ok(list) => list.into_iter().map(|b| b.meta.slug).collect(),
        Err(e) => {
            tracing::warn!("dispatch: cannot list boards: {e}");
            vec![crate::kernel::DEFAULT_BOARD.to_string()]
        }
    }
}

/// Run ticks every `interval` until `stop` is set — the dispatcher of `daemon` and `serve`.
/// Settings come from `$HERMES_HOME/config.yaml` (`kanban:`, REF §9.3) with stale detection on
/// (`dispatch_stale_timeout_seconds`, 14400). `board` limits it to one board; `None` dispatches
/// every board. Blocking: call it from a thread (`tokio::task::spawn_blocking` in `serve`).
/// Stopping leaves workers running with their claims: their supervisors live in their own
/// sessions, and the next host adopts them (or reclaims them when their claims expire).
pub fn run_loop(
    home: impl Into<Kanban>,
    board: Option<String>,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let kb: Kanban = home.into();
    let env = kb.env().clone();
    let (cfg, warnings) = KanbanConfig::load(&env);
    for w in warnings {
        tracing::warn!("{w}");
    }
    let mut opts = TickOptions::from_config(&env, &cfg);
    opts.failure_limit = cfg.failure_limit;
    opts.stale_timeout_seconds = cfg.dispatch_stale_timeout_seconds;
    run_loop_with(&kb, board.as_deref(), interval, &stop, &opts, |slug, r| {
        if r.did_work() {
            tracing::info!(
                "dispatch {slug}: spawned {}, promoted {}, reclaimed {}, crashed {}, timed out {}, blocked {}",
                r.spawned.len(),
                r.promoted,
                r.reclaimed,
                r.crashed.len(),
                r.timed_out.len(),
                r.auto_blocked.len()
            );
        }
    })
}

/// [`run_loop`] with explicit tick options and a callback after every board's tick. Boards
/// come from `home`'s shared handles (in `serve`, the ones MCP and the REST API use); a tick
/// holds its board for the length of the tick.
pub fn run_loop_with(
    home: &Kanban,
    board: Option<&str>,
    interval: Duration,
    stop: &AtomicBool,
    opts: &TickOptions,
    mut on_tick: impl FnMut(&str, &DispatchResult),
) -> anyhow::Result<()> {
    let env = home.env();
    let _presence = match locks::hold_presence(env) {
        TryLock::Held(l) => Some(l),
        other => {
            tracing::warn!("dispatcher presence lock not held ({other:?})");
            None
        }
    };
    let mut host = HostState::default();
    let slice = Duration::from_millis(50);
    while !stop.load(Ordering::SeqCst) {
        for slug in loop_boards(env, board) {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let handle = match home.board_or_create(Some(&slug)) {
                Ok((h, created)) => {
                    if created {
                        eprintln!(
                            "hermes-kanban: created a new board database at {} (board '{slug}'); if you meant another board, set HERMES_HOME, --board SLUG or HERMES_KANBAN_DB",
                            h.lock().paths().db.display()
                        );
                    }
                    h
                }
                Err(e) => {
                    tracing::warn!("dispatch: board {slug}: {e}");
                    continue;
                }
            };
            let b = handle.lock();
            match dispatch_once(&b, opts, &mut host) {
                Ok(r) => on_tick(&slug, &r),
                Err(e) => tracing::warn!("dispatch: board {slug}: {e}"),
            }
        }
        let mut left = interval;
        while !left.is_zero() && !stop.load(Ordering::SeqCst) {
            let d = left.min(slice);
            std::thread::sleep(d);
            left -= d;
            host.reap();
        }
    }
    Ok(())
}
