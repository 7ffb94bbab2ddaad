//! One dispatcher tick ([`dispatch_once`], REF §9.1 order with the fixes of SPEC §6): reap this
//! host's children, report what supervisors settled since the last tick, keep this host's live
//! workers' claims (renewed before they expire, extended once expired), release expired claims
//! (another host's only by expiry: nothing of theirs is checked or signalled here), release this
//! host's runs without heartbeats, settle its runs whose supervisor died, enforce max runtimes a
//! supervisor failed to, reap what closed runs left running when their supervisor died, promote
//! ready work, then spawn under the caps ([`launch`]). A concurrent tick on the same board is
//! skipped through the tick flock. The board is taken per step ([`TickBoard::with`]), never for
//! the whole tick: signalling and waiting for processes and starting supervisors run unlocked.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::{
    DispatchResult, HostState, TickBoard, TickOptions, launch, terminate_run, worker_alive,
    workspace,
};
use crate::kernel::{
    Board, RECLAIM_DEFER_SECONDS, RunningTask, SettledBy, TickLockTry, WorkerExit,
};
use crate::process::lock_is_host_local;

/// Run one tick on `board` (REF §9.1). A concurrent tick on the same board makes this one
/// return at once with `skipped_locked` and no writes. Per-task failures are logged and the
/// tick carries on; only failing to read the board is an error.
pub fn dispatch_once<B: TickBoard + ?Sized>(
    board: &B,
    opts: &TickOptions,
    host: &mut HostState,
) -> anyhow::Result<DispatchResult> {
    if opts.dry_run {
        return board.with(|b| launch::dry_run(b, opts));
    }
    let lock = match board.with(Board::try_tick_lock) {
        TickLockTry::Held(l) => Some(l),
        TickLockTry::Busy => {
            return Ok(DispatchResult {
                skipped_locked: true,
                ..Default::default()
            });
        }
        TickLockTry::Unavailable(e) => {
            tracing::warn!("tick lock unavailable ({e}); dispatching without it");
            None
        }
    };
    let out = locked_tick(board, opts, host);
    if lock.is_some() {
        drop(lock);
        board.with(Board::release_tick_lock);
    }
    out
}

/// The tick proper, under the tick lock.
fn locked_tick<B: TickBoard + ?Sized>(
    board: &B,
    opts: &TickOptions,
    host: &mut HostState,
) -> anyhow::Result<DispatchResult> {
    let mut res = DispatchResult::default();
    // 1. Reap own children; report what supervisors settled since the last tick.
    host.reap();
    for r in board.with(Board::take_supervisor_settlements)? {
        res.note(&r.task_id, &r.outcome, r.tripped);
    }
    let running = board.with(Board::running_tasks)?;
    let mut handled: HashSet<String> = HashSet::new();
    keep_or_release_claims(board, opts, &running, &mut handled, &mut res);
    if opts.stale_timeout_seconds > 0 {
        release_stale_runs(board, opts, &running, &mut handled, &mut res);
    }
    settle_dead_workers(board, opts, &running, &mut handled, &mut res);
    enforce_max_runtime(board, opts, &running, &mut handled, &mut res);
    reap_lingering(board, opts, &mut res);
    res.promoted = board.with(Board::recompute_ready)?.len();
    launch::spawn_ready(board, opts, host, &mut res)?;
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
fn reap_lingering<B: TickBoard + ?Sized>(board: &B, opts: &TickOptions, res: &mut DispatchResult) {
    let rows = match board.with(Board::lingering_processes) {
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
        match board.with(|b| b.settle_lingering(p.run_id, payload)) {
            Ok(true) => {
                let dirs = board.with(|b| workspace::cleanup_after_completion(b, &p.task_id));
                for dir in dirs {
                    tracing::info!("dispatch: removed scratch workspace {}", dir.display());
                }
                res.reaped.push(p.task_id.clone());
            }
            Ok(false) => {}
            Err(e) => warn_task(&p.task_id, "settling the lingering processes of", e),
        }
    }
}

pub(super) fn warn_task(task_id: &str, what: &str, e: impl std::fmt::Display) {
    tracing::warn!("dispatch: {what} {task_id}: {e}");
}

/// REF §8.1: claims. A live, heartbeating worker of this host keeps its claim: renewed once less
/// than half a TTL is left (so no other host sees it expire while this host ticks), extended
/// when it expired anyway. An expired claim otherwise has this host's processes stopped and is
/// released (deferred if they survive); another host's expired claim is released without
/// touching any process (its pids mean nothing here). An unexpired claim of another host is
/// never judged.
fn keep_or_release_claims<B: TickBoard + ?Sized>(
    board: &B,
    opts: &TickOptions,
    running: &[RunningTask],
    handled: &mut HashSet<String>,
    res: &mut DispatchResult,
) {
    let (now, ttl) = board.with(|b| (b.now(), opts.ttl_seconds.unwrap_or(b.default_claim_ttl())));
    for rt in running {
        let t = &rt.task;
        let Some(expires) = t.claim_expires else {
            continue;
        };
        let lock = t.claim_lock.as_deref();
        let own = lock.filter(|l| lock_is_host_local(l));
        let expired = expires < now;
        if !expired && (own.is_none() || expires - now > ttl / 2) {
            continue;
        }
        if expired {
            handled.insert(t.id.clone());
        }
        let fresh = t
            .last_heartbeat_at
            .is_none_or(|h| now - h < opts.heartbeat_stale_seconds);
        if let Some(l) = own
            && fresh
            && worker_alive(rt)
        {
            let kept = if expired {
                board.with(|b| {
                    b.extend_expired_claim(&t.id, l, ttl, t.worker_pid)
                        .map(drop)
                })
            } else {
                board.with(|b| b.renew_claim(&t.id, l, ttl).map(drop))
            };
            if let Err(e) = kept {
                warn_task(&t.id, "extending the claim of", e);
            }
            continue;
        }
        if !expired {
            continue; // this host's dead worker: settled below
        }
        let term = terminate_run(t, rt.process.as_ref(), opts.kill_grace);
        let r = if term.termination_attempted && !term.terminated {
            board
                .with(|b| b.defer_reclaim(&t.id, lock, RECLAIM_DEFER_SECONDS, term.to_map()))
                .map(|_| false)
        } else {
            board.with(|b| b.release_stale_claim(&t.id, lock, term.to_map()))
        };
        match r {
            Ok(true) => res.reclaimed += 1,
            Ok(false) => {}
            Err(e) => warn_task(&t.id, "reclaiming", e),
        }
    }
}

/// REF §8.2: this host's runs going for `stale_timeout` without a recent heartbeat. Not a
/// failure. Another host's silent run is its host's to judge; if that host is gone its claim
/// expires and is released above.
fn release_stale_runs<B: TickBoard + ?Sized>(
    board: &B,
    opts: &TickOptions,
    running: &[RunningTask],
    handled: &mut HashSet<String>,
    res: &mut DispatchResult,
) {
    let now = board.with(Board::now);
    for rt in running {
        let t = &rt.task;
        if handled.contains(&t.id) || !t.claim_lock.as_deref().is_some_and(lock_is_host_local) {
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
            let r =
                board.with(|b| b.defer_reclaim(&t.id, lock, RECLAIM_DEFER_SECONDS, term.to_map()));
            if let Err(e) = r {
                warn_task(&t.id, "deferring", e);
            }
            continue;
        }
        let error = format!(
            "no heartbeat for {}s after {}s running",
            now - quiet_since,
            now - started
        );
        match board.with(|b| b.release_stale_run(&t.id, run, lock, &error, term.to_map())) {
            Ok(true) => res.stale.push(t.id.clone()),
            Ok(false) => {}
            Err(e) => warn_task(&t.id, "releasing stale", e),
        }
    }
}

/// The running tasks not handled yet whose open run has a worker pid on this host, as
/// `(task, pid, run)`: the only runs a tick may judge by their processes.
fn own_open_runs<'r>(
    running: &'r [RunningTask],
    handled: &HashSet<String>,
) -> Vec<(&'r RunningTask, i64, i64)> {
    running
        .iter()
        .filter(|rt| !handled.contains(&rt.task.id))
        .filter(|rt| {
            rt.task
                .claim_lock
                .as_deref()
                .is_some_and(lock_is_host_local)
        })
        .filter_map(|rt| Some((rt, rt.task.worker_pid?, rt.task.current_run_id?)))
        .collect()
}

/// Apply `exit` (or the status the supervisor recorded, when `None`) to `run` as the tick.
fn settle_as_tick<B: TickBoard + ?Sized>(
    board: &B,
    opts: &TickOptions,
    task_id: &str,
    run: i64,
    exit: Option<&WorkerExit>,
    res: &mut DispatchResult,
    what: &str,
) {
    let limit = Some(opts.failure_limit);
    match board.with(|b| b.settle_worker_exit(task_id, run, SettledBy::Tick, limit, exit)) {
        Ok(s) => res.note_settlement(&s),
        Err(e) => warn_task(task_id, what, e),
    }
}

/// REF §8.3: a host-local run whose supervisor (or unsupervised worker) is gone while the run
/// is still open. The status the supervisor recorded is authoritative; without one the run is
/// a crash "pid N not alive".
fn settle_dead_workers<B: TickBoard + ?Sized>(
    board: &B,
    opts: &TickOptions,
    running: &[RunningTask],
    handled: &mut HashSet<String>,
    res: &mut DispatchResult,
) {
    let now = board.with(Board::now);
    for (rt, pid, run) in own_open_runs(running, handled) {
        let t = &rt.task;
        if now - t.started_at.unwrap_or(now) < opts.crash_grace_seconds || worker_alive(rt) {
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
        settle_as_tick(
            board,
            opts,
            &t.id,
            run,
            exit,
            res,
            "settling the dead worker of",
        );
    }
}

/// REF §8.4: max runtime. Supervisors enforce it themselves; a tick steps in for this host's
/// unsupervised workers at the limit, and for supervised ones only when the supervisor is
/// overdue.
fn enforce_max_runtime<B: TickBoard + ?Sized>(
    board: &B,
    opts: &TickOptions,
    running: &[RunningTask],
    handled: &mut HashSet<String>,
    res: &mut DispatchResult,
) {
    let now = board.with(Board::now);
    for (rt, pid, run) in own_open_runs(running, handled) {
        let t = &rt.task;
        let Some(limit) = t.max_runtime_seconds else {
            continue;
        };
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
        settle_as_tick(board, opts, &t.id, run, Some(&exit), res, "timing out");
    }
}
