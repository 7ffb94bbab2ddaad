//! The spawn step of a tick (REF §9.1 steps 7–8) and the dry run: both run the kernel's one
//! [`SpawnPolicy`](crate::kernel::SpawnPolicy) over the board's queues and differ only in the
//! actions plugged in — the tick's [`TickActions`] assign, note, claim under the caps (in the
//! claim's own transaction, [`Board::claim_under_caps`]) and launch supervisors; the dry run
//! writes nothing. So a dry run shows what a tick would do by construction.

use super::tick::warn_task;
use super::{DispatchResult, HostState, TickBoard, TickOptions, spawn, workspace};
use crate::kernel::{
    Attempt, Board, CapClaim, KernelError, Lane, Result as KResult, SettledBy, SpawnActions,
    SpawnCaps, WorkerExit, hermes_root, profile_state,
};

/// Claim and spawn by priority under the caps; the lists land in `res`.
pub(super) fn spawn_ready<B: TickBoard + ?Sized>(
    board: &B,
    opts: &TickOptions,
    host: &mut HostState,
    res: &mut DispatchResult,
) -> anyhow::Result<()> {
    let policy = opts.spawn_policy();
    let (queue, root) = board.with(|b| (b.spawn_queue(&policy), policy.root(b.env())));
    let mut act = TickActions {
        board,
        opts,
        host,
        res,
        caps: policy.caps(),
    };
    let outcome = policy.run(root, queue?, &mut act);
    res.absorb(outcome);
    Ok(())
}

/// The real tick's side effects for the spawn policy; each takes the board for its own kernel
/// calls only.
struct TickActions<'a, B: TickBoard + ?Sized> {
    board: &'a B,
    opts: &'a TickOptions,
    host: &'a mut HostState,
    /// Spawn failures are settled into it (crashed, auto-blocked).
    res: &'a mut DispatchResult,
    caps: SpawnCaps,
}

impl<B: TickBoard + ?Sized> SpawnActions for TickActions<'_, B> {
    fn assign_default(&mut self, task_id: &str, assignee: &str) -> bool {
        match self.board.with(|b| b.assign_default(task_id, assignee)) {
            Ok(assigned) => assigned,
            Err(e) => {
                warn_task(task_id, "assigning the default assignee to", e);
                false
            }
        }
    }

    /// Record `skipped_nonspawnable {assignee}` on the task, once (UP §7).
    fn nonspawnable(&mut self, task_id: &str, assignee: &str) {
        if let Err(e) = self
            .board
            .with(|b| b.note_skipped_nonspawnable(task_id, assignee))
        {
            warn_task(task_id, "noting the non-spawnable assignee of", e);
        }
    }

    fn guarded(&mut self, task_id: &str, reason: &str) {
        if let Err(e) = self.board.with(|b| b.note_respawn_guarded(task_id, reason)) {
            warn_task(task_id, "noting the respawn guard of", e);
        }
    }

    fn respawn_guard(&mut self, task_id: &str, cooldown: i64) -> KResult<Option<&'static str>> {
        self.board.with(|b| b.respawn_guard(task_id, cooldown))
    }

    fn spawn(&mut self, task_id: &str, assignee: &str, lane: Lane) -> Attempt {
        spawn_one(self, task_id, assignee, lane)
    }

    fn warn(&mut self, task_id: &str, what: &str, e: &KernelError) {
        warn_task(task_id, what, e);
    }
}

/// Claim one task under the caps and start its supervisor. Failures after the claim are spawn
/// failures counted by the breaker; a lost claim race is silent.
fn spawn_one<B: TickBoard + ?Sized>(
    a: &mut TickActions<'_, B>,
    task_id: &str,
    assignee: &str,
    lane: Lane,
) -> Attempt {
    let (board, opts) = (a.board, a.opts);
    let claimed =
        board.with(|b| b.claim_under_caps(task_id, lane, opts.ttl_seconds, &opts.claimer, a.caps));
    let claim = match claimed {
        Ok(CapClaim::Claimed(c)) => c,
        Ok(CapClaim::AtCap { .. } | CapClaim::HostAtCap { .. }) => return Attempt::AtCap,
        Ok(CapClaim::ProfileAtCap { running }) => return Attempt::ProfileAtCap(running),
        Err(KernelError::Refused { .. }) => return Attempt::NotSpawned,
        Err(e) => {
            warn_task(task_id, "claiming", e);
            return Attempt::NotSpawned;
        }
    };
    match launch(board, opts, task_id, assignee, claim.run_id, &claim.lock) {
        Ok((sup, workspace)) => {
            a.host.adopt(sup.pid as i32);
            let registered = board
                .with(|b| b.register_supervisor(task_id, claim.run_id, sup.pid, sup.start_time));
            match registered {
                Ok(()) => {
                    sup.go();
                    Attempt::Spawned { workspace }
                }
                Err(e) => {
                    sup.abort();
                    warn_task(task_id, "registering the supervisor of", e);
                    Attempt::NotSpawned
                }
            }
        }
        Err(error) => {
            tracing::warn!("dispatch: spawn of {task_id} failed: {error}");
            let exit = WorkerExit::spawn_failed(error);
            let limit = Some(opts.failure_limit);
            match board.with(|b| {
                b.settle_worker_exit(task_id, claim.run_id, SettledBy::Tick, limit, Some(&exit))
            }) {
                Ok(s) => a.res.note_settlement(&s),
                Err(e) => warn_task(task_id, "recording the spawn failure of", e),
            }
            Attempt::NotSpawned
        }
    }
}

/// Resolve the workspace, build the worker's argv and environment, and start its supervisor.
/// The board is held only for the kernel reads and writes (task, workspace, run token); the
/// workspace's git commands, the `hermes --help` probe and the supervisor start run without it.
fn launch<B: TickBoard + ?Sized>(
    board: &B,
    opts: &TickOptions,
    task_id: &str,
    assignee: &str,
    run_id: i64,
    lock: &str,
) -> Result<(spawn::StartedSupervisor, String), String> {
    let (task, env, paths, workdir, on_pg) = board.with(|b| {
        let t = b.get_task(task_id).map_err(|e| e.to_string());
        t.map(|t| {
            let workdir = b.board_meta().default_workdir;
            (
                t,
                b.env().clone(),
                b.paths().clone(),
                workdir,
                b.is_postgres(),
            )
        })
    })?;
    let root = hermes_root(&env);
    if !opts.worker_command.by_assignee.contains_key(assignee)
        && let Some(why) = profile_state(&root, assignee).reason(&root, assignee)
    {
        return Err(format!("unknown profile {assignee:?}: {why}"));
    }
    let ws = workspace::resolve(&paths, workdir.as_deref(), &task)
        .map_err(|e| format!("workspace: {e}"))?;
    let ws_text = ws.path.to_string_lossy().into_owned();
    let token = board.with(|b| {
        b.set_workspace(task_id, &ws_text, ws.branch.as_deref())
            .map_err(|e| format!("workspace: {e}"))?;
        b.mint_run_token(task_id, run_id).map_err(|e| e.to_string())
    })?;
    let spec = spawn::WorkerSpec {
        task: &task,
        assignee,
        board: &paths.slug,
        workspace: &ws.path,
        run_id,
    };
    let argv = spawn::build_argv(&spec, &opts.worker_command, &env)?;
    let pins = spawn::BoardPins {
        slug: &paths.slug,
        db: (!on_pg).then_some(paths.db.as_path()),
        workspaces_root: &paths.workspaces,
    };
    let wenv = spawn::worker_env(&env, &spec, ws.branch.as_deref(), lock, &token, &pins);
    let log = paths.log_file(task_id);
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
        env: &wenv,
        log: &log,
    })?;
    Ok((sup, ws_text))
}

/// A dry run: the kernel's read-only plan — the same spawn policy as the tick, promotable
/// tasks in the lanes they would be promoted to — nothing written.
pub(super) fn dry_run(board: &Board, opts: &TickOptions) -> anyhow::Result<DispatchResult> {
    let plan = board.plan_dispatch(&opts.spawn_policy())?;
    let root = hermes_root(board.env());
    let mut warnings = Vec::new();
    for s in &plan.spawn.spawned {
        let (task_id, assignee) = (&s.task_id, &s.assignee);
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
    let mut res = DispatchResult {
        warnings,
        promoted: plan.promotable.len(),
        ..Default::default()
    };
    res.absorb(plan.spawn);
    Ok(res)
}
