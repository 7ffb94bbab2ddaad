//! Host-local process primitives: liveness probes that treat zombies as dead, `/proc` start
//! times and Hermes' fingerprints (the pid-reuse guards), group signals, and the
//! [`Termination`] report. Stopping a worker is built on these in `dispatch/procs.rs`; no SQL
//! here.

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::Serialize;
use serde_json::{Map, Value};

/// Whether `pid` names a live, non-zombie process.
pub fn pid_alive(pid: i64) -> bool {
    if pid <= 0 || pid > i32::MAX as i64 {
        return false;
    }
    match kill(Pid::from_raw(pid as i32), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return false,
    }
    // kill(pid, 0) succeeds for zombies; read the state letter.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => true,
    }
}

/// The fields of `/proc/<pid>/stat` after the command name (field 3, the state, is index 0).
fn stat_fields(pid: i64) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = s.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// When `pid` started, in clock ticks after boot (`/proc/<pid>/stat` field 22). Together with
/// the pid it names one process: a reused pid has another start time.
pub fn proc_start_time(pid: i64) -> Option<i64> {
    if pid <= 0 || pid > i32::MAX as i64 {
        return None;
    }
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether `pid` is alive and, when `start` is known, still the process that started then.
pub fn pid_alive_as(pid: i64, start: Option<i64>) -> bool {
    if !pid_alive(pid) {
        return false;
    }
    match (start, proc_start_time(pid)) {
        (Some(want), Some(got)) => want == got,
        _ => true,
    }
}

/// Hermes' (~0.22) process fingerprint of a live `pid` (UP §10):
/// `<boot_id>:<pid 1 start ticks>|<pid start ticks>`, `None` when unreadable.
pub fn hermes_fingerprint(pid: i64) -> Option<String> {
    let start = proc_start_time(pid)?;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let pid1 = proc_start_time(1)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let epoch = if boot.is_empty() && pid1.is_empty() {
        String::new()
    } else {
        format!("{boot}:{pid1}")
    };
    Some(format!("{epoch}|{start}"))
}

/// How a worker that Hermes fingerprinted (`tasks.worker_started_at`) is judged, as Hermes
/// judges it (UP §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FingerprintVerdict {
    /// Alive and the same process Hermes spawned: may be signalled.
    Alive,
    /// Alive, but its identity was never captured (`unverified`): counts as alive, is never
    /// signalled.
    AliveUnverified,
    /// Gone, or the pid now names another process (recycled): counts as dead, never signalled.
    Dead,
}

/// Judge `pid` against a Hermes fingerprint.
pub fn judge_fingerprint(pid: i64, fingerprint: &str) -> FingerprintVerdict {
    if !pid_alive(pid) {
        return FingerprintVerdict::Dead;
    }
    let fp = fingerprint.trim();
    if fp == "unverified" {
        return FingerprintVerdict::AliveUnverified;
    }
    let same = if fp.contains('|') {
        hermes_fingerprint(pid).as_deref() == Some(fp)
    } else {
        // Rows written before the boot witness: the start time alone.
        fp.parse::<i64>()
            .ok()
            .is_some_and(|want| proc_start_time(pid) == Some(want))
    };
    if same {
        FingerprintVerdict::Alive
    } else {
        FingerprintVerdict::Dead
    }
}

/// Whether any live (non-zombie) process is in process group `pgid`.
pub fn group_alive(pgid: i64) -> bool {
    if pgid <= 1 || pgid > i32::MAX as i64 {
        return false;
    }
    match killpg(Pid::from_raw(pgid as i32), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return false,
    }
    // killpg(pgid, 0) succeeds while only zombies are left; look at the members' states.
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return true;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i64>().ok()) else {
            continue;
        };
        if let Some(f) = stat_fields(pid)
            && f.get(2).and_then(|g| g.parse::<i64>().ok()) == Some(pgid)
            && f.first().is_some_and(|st| st != "Z" && st != "X")
        {
            return true;
        }
    }
    false
}

/// Send `sig` to process group `pgid` (nothing for pgid ≤ 1).
pub fn signal_group_only(pgid: i64, sig: Signal) {
    if pgid > 1 && pgid <= i32::MAX as i64 {
        let _ = killpg(Pid::from_raw(pgid as i32), sig);
    }
}

/// Whether a claim lock (`host:pid`) was taken by this host (`HERMES_KANBAN_HOST_ID`, else the
/// hostname): only then are its pids ours to check or signal.
pub use crate::kernel::lock_is_host_local;

/// What terminating a worker did (recorded in `reclaimed` event payloads).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Termination {
    pub prev_pid: Option<i64>,
    pub host_local: bool,
    pub termination_attempted: bool,
    pub terminated: bool,
    pub sigkill: bool,
    /// The recorded pid is alive but is not the process Hermes fingerprinted (a recycled
    /// pid): nothing was signalled (UP §7 `reclaimed.pid_recycled`). Only written when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pid_recycled: bool,
}

impl Termination {
    /// As an event payload map.
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hermes' fingerprint rules (UP §10): a match is alive, `unverified` is alive but never
    /// signalled, a mismatch (a recycled pid) and a dead pid are dead.
    #[test]
    fn fingerprints_are_judged_as_hermes_judges_them() {
        let me = std::process::id() as i64;
        let fp = hermes_fingerprint(me).expect("own fingerprint");
        assert!(fp.contains('|'), "{fp}");
        assert_eq!(judge_fingerprint(me, &fp), FingerprintVerdict::Alive);
        assert_eq!(
            judge_fingerprint(me, "unverified"),
            FingerprintVerdict::AliveUnverified
        );
        let other = format!("{}|1", fp.split('|').next().unwrap());
        assert_eq!(judge_fingerprint(me, &other), FingerprintVerdict::Dead);
        let start = proc_start_time(me).unwrap();
        assert_eq!(
            judge_fingerprint(me, &start.to_string()),
            FingerprintVerdict::Alive,
            "a start-time-only fingerprint"
        );
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i64;
        child.wait().unwrap();
        assert_eq!(judge_fingerprint(pid, &fp), FingerprintVerdict::Dead);
    }
}
