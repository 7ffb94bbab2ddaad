//! Host-local process checks and the one "stop a worker" of the program (no SQL). A dispatched
//! task's `worker_pid` is its supervisor (leader of its own session); the real worker leads a
//! second process group recorded on the run's process row. Liveness uses the recorded `/proc`
//! start times so a reused pid is not mistaken for the supervisor or the worker; termination
//! ([`terminate_run`]) signals both groups (SIGTERM, the configured grace, SIGKILL), so nothing a
//! worker started survives a reclaim. The tick calls [`terminate_run`] with the process row it
//! already holds; the operator's front doors (CLI `reclaim`/`reassign --reclaim`, the web's
//! reclaim, reassign, terminate and PATCH reassign) call [`terminate_task`].

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::kernel::{Board, Env, RunProcess, RunningTask, Task};
use crate::process::{
    FingerprintVerdict, Termination, group_alive, judge_fingerprint, lock_is_host_local, pid_alive,
    pid_alive_as, signal_group_only,
};

/// Hermes' verdict on the task's pid when Hermes spawned it (its fingerprint is on the row and
/// we have no process row of our own for the run). `None`: not a Hermes-fingerprinted worker.
fn hermes_verdict(task: &Task, proc: Option<&RunProcess>) -> Option<FingerprintVerdict> {
    if proc.is_some_and(|p| p.supervisor_pid.is_some() && p.supervisor_pid == task.worker_pid) {
        return None;
    }
    let fp = task.worker_started_at.as_deref()?;
    let pid = task.worker_pid?;
    Some(judge_fingerprint(pid, fp))
}

fn supervisor_start(task: &Task, proc: Option<&RunProcess>) -> Option<i64> {
    proc.filter(|p| p.supervisor_pid.is_some() && p.supervisor_pid == task.worker_pid)
        .and_then(|p| p.supervisor_start)
}

/// Whether process group `pgid` (recorded with its leader's start time) still holds our
/// processes: while the leader lives, only if its start time matches (a reused pid leads
/// someone else's group); once the leader is gone, any live member (Linux does not hand out a
/// pid that is still some group's id, so the group is the original one).
fn group_is_ours(pgid: i64, start: Option<i64>) -> bool {
    if pid_alive(pgid) {
        pid_alive_as(pgid, start)
    } else {
        group_alive(pgid)
    }
}

/// The configured SIGTERM → SIGKILL grace for stopping a worker
/// (`HERMES_KANBAN_KILL_GRACE_SECONDS`, default 5 s).
pub fn kill_grace(env: &Env) -> Duration {
    Duration::from_secs_f64(super::config::kill_grace_seconds(env))
}

/// Whether the task's recorded process (its supervisor, or a worker some other dispatcher
/// spawned) is alive on this host.
pub fn worker_alive(rt: &RunningTask) -> bool {
    let Some(pid) = rt.task.worker_pid else {
        return false;
    };
    if let Some(v) = hermes_verdict(&rt.task, rt.process.as_ref()) {
        return v != FingerprintVerdict::Dead;
    }
    pid_alive_as(pid, supervisor_start(&rt.task, rt.process.as_ref()))
}

/// Stop a running task's processes on this host: SIGTERM to the supervisor's group and the
/// worker's group, wait up to `grace`, SIGKILL what is left. Nothing is signalled for a claim
/// taken on another host.
pub fn terminate_run(task: &Task, proc: Option<&RunProcess>, grace: Duration) -> Termination {
    let host_local = task.claim_lock.as_deref().is_some_and(lock_is_host_local);
    let mut t = Termination {
        prev_pid: task.worker_pid,
        host_local,
        ..Default::default()
    };
    if !host_local {
        return t;
    }
    // A worker Hermes fingerprinted is signalled only when the fingerprint matches: a recycled
    // pid is a stranger (the worker is gone), an unverified one is held but never signalled.
    match hermes_verdict(task, proc) {
        Some(FingerprintVerdict::Dead) => {
            t.terminated = true;
            t.pid_recycled = task.worker_pid.is_some_and(crate::process::pid_alive);
            return t;
        }
        Some(FingerprintVerdict::AliveUnverified) => {
            t.termination_attempted = true;
            return t;
        }
        Some(FingerprintVerdict::Alive) | None => {}
    }
    let sup = task.worker_pid.filter(|p| *p > 1);
    let start = supervisor_start(task, proc);
    let group = proc.and_then(|p| p.worker_pid).filter(|p| *p > 1);
    let group_start = proc.and_then(|p| p.worker_start);
    let sup_alive = || sup.is_some_and(|p| pid_alive_as(p, start));
    let group_up = || group.is_some_and(|g| group_is_ours(g, group_start));
    if !sup_alive() && !group_up() {
        t.terminated = true;
        return t;
    }
    t.termination_attempted = true;
    if sup_alive()
        && let Some(p) = sup
    {
        signal_group_only(p, Signal::SIGTERM);
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), Signal::SIGTERM);
    }
    if group_up()
        && let Some(g) = group
    {
        signal_group_only(g, Signal::SIGTERM);
    }
    // The supervisor stops its worker with its own grace; give it that plus a little.
    let deadline = Instant::now() + grace + Duration::from_millis(500);
    while (sup_alive() || group_up()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
    if sup_alive() || group_up() {
        t.sigkill = true;
        if sup_alive()
            && let Some(p) = sup
        {
            signal_group_only(p, Signal::SIGKILL);
        }
        if group_up()
            && let Some(g) = group
        {
            signal_group_only(g, Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while (sup_alive() || group_up()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    t.terminated = !sup_alive() && !group_up();
    t
}

/// Stop a task's worker before its claim is released: [`terminate_run`] with the open run's
/// process row and the board's configured [`kill_grace`]. Nothing is signalled for a task
/// that is not claimed, or claimed on another host. What the CLI and the web use.
pub fn terminate_task(board: &Board, task: &Task) -> Termination {
    if !task.has_worker() {
        return Termination {
            prev_pid: task.worker_pid,
            ..Default::default()
        };
    }
    let proc = task
        .current_run_id
        .and_then(|r| board.run_process(r).ok().flatten());
    terminate_run(task, proc.as_ref(), kill_grace(board.env()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// The worker group's pid-reuse guard: a live leader counts only with its recorded start
    /// time (another start time is a reused pid leading a stranger's group); a dead one not at
    /// all once its group is empty.
    #[test]
    fn a_worker_group_is_ours_only_while_its_leader_matches() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i64;
        let start = crate::process::proc_start_time(pid);
        assert!(start.is_some());
        assert!(group_is_ours(pid, start));
        assert!(!group_is_ours(pid, start.map(|s| s + 1)), "a reused pid");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!group_is_ours(pid, start), "gone");
    }
}
