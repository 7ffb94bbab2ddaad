//! Hosts on one board: this process's host identity ([`host_id`]: `HERMES_KANBAN_HOST_ID`, else
//! the hostname), the host part of a claim lock ([`claim_host`]; a claim `<host>:<pid>` belongs
//! to `<host>`, and only that host judges its processes), and the host lease table
//! (`kanban_hosts`, migration 0009): every dispatcher tick upserts its row
//! ([`Board::record_host_tick`]), and [`Board::hosts`] lists them with whether each is live;
//! which host holds a task's log and workspace ([`Board::run_host`]).

use std::sync::OnceLock;

use serde::Serialize;

use super::board::Board;
use super::error::Result;
use super::store::{FromRow, Row};
use crate::args;

/// The environment variable that names this host on a shared board (several "hosts" can then
/// share one machine; unset: the hostname).
pub const HOST_ID_VAR: &str = "HERMES_KANBAN_HOST_ID";

/// A host is live while its last tick is at most this many of its intervals old.
pub const HOST_LIVE_INTERVALS: i64 = 3;

/// This process's host identity: `HERMES_KANBAN_HOST_ID` when set (trimmed, non-empty), else the
/// machine's hostname. Read once per process; the host part of every claim lock this process
/// takes, and the one a claim must carry for this process to judge its worker's liveness.
pub fn host_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        std::env::var(HOST_ID_VAR)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(machine_hostname)
    })
}

/// The machine's host name (`localhost` when it cannot be read).
pub fn machine_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The host a claim lock `<host>:<pid>` belongs to (`None` for a lock without that shape).
pub fn claim_host(lock: &str) -> Option<&str> {
    lock.rsplit_once(':')
        .filter(|(h, pid)| !h.is_empty() && !pid.is_empty())
        .map(|(h, _)| h)
}

/// Whether a claim lock was taken by this host (its processes can be checked from here).
pub fn lock_is_host_local(lock: &str) -> bool {
    claim_host(lock) == Some(host_id())
}

/// What a dispatcher host writes on every tick.
#[derive(Debug, Clone)]
pub struct HostTick<'a> {
    pub host_id: &'a str,
    pub pid: i64,
    pub version: &'a str,
    /// When this host's loop started (Unix seconds).
    pub started_at: i64,
    /// Its tick interval (the longest it waits between ticks).
    pub interval_seconds: i64,
}

/// One row of the host lease table, with its liveness judged at `checked_at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostLease {
    pub host_id: String,
    pub pid: i64,
    pub version: String,
    pub started_at: i64,
    pub last_tick_at: i64,
    pub interval_seconds: i64,
    /// Last tick within [`HOST_LIVE_INTERVALS`] intervals (at least 3 s) of `checked_at`.
    pub live: bool,
    /// Seconds since its last tick.
    pub age_seconds: i64,
    /// Whether this is the host asking.
    pub this_host: bool,
}

impl FromRow for HostLease {
    fn from_row(r: &Row<'_>) -> Result<HostLease> {
        let id: String = r.get(0)?;
        Ok(HostLease {
            this_host: id == host_id(),
            host_id: id,
            pid: r.get(1)?,
            version: r.get(2)?,
            started_at: r.get(3)?,
            last_tick_at: r.get(4)?,
            interval_seconds: r.get(5)?,
            live: false,
            age_seconds: 0,
        })
    }
}

/// Whether a lease whose last tick is `age` seconds old with `interval` is live.
pub fn lease_is_live(age: i64, interval: i64) -> bool {
    age <= (interval.max(1) * HOST_LIVE_INTERVALS).max(3)
}

/// Which host holds a task's worker log and workspace: the claim host of its latest claimed
/// run (logs and workspaces stay on the host that ran the worker). A closed run's claim is
/// cleared, so the host is read from the run's `claimed` event (`{lock}`), which every claim
/// records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunHost {
    pub host: String,
    /// Whether that is this host (the log can be read here).
    pub this_host: bool,
}

impl Board {
    /// The host of `task_id`'s latest claimed run, if any run was claimed.
    pub fn run_host(&self, task_id: &str) -> Result<Option<RunHost>> {
        let payload: Option<Option<String>> = self.read(|c| {
            c.row(
                "SELECT payload FROM task_events WHERE task_id=?1 AND kind='claimed'
                 ORDER BY id DESC LIMIT 1",
                args![task_id],
            )
        })?;
        let lock = payload
            .flatten()
            .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
            .and_then(|v| v.get("lock")?.as_str().map(str::to_string));
        Ok(lock.as_deref().and_then(claim_host).map(|h| RunHost {
            this_host: h == host_id(),
            host: h.to_string(),
        }))
    }

    /// Upsert this host's lease row: a tick happened now. No event is recorded (a lease write
    /// is not a change a dispatcher acts on, so it does not wake the other hosts).
    pub fn record_host_tick(&self, t: &HostTick<'_>) -> Result<()> {
        let now = self.now();
        self.write(|c| {
            c.exec(
                "INSERT INTO kanban_hosts (host_id, pid, version, started_at, last_tick_at, \
                interval_seconds)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(host_id) DO UPDATE SET pid=excluded.pid, version=excluded.version,
                    started_at=excluded.started_at, last_tick_at=excluded.last_tick_at,
                    interval_seconds=excluded.interval_seconds",
                args![
                    t.host_id,
                    t.pid,
                    t.version,
                    t.started_at,
                    now,
                    t.interval_seconds.max(1)
                ],
            )?;
            Ok(())
        })
    }

    /// Every host that ever ticked this board, newest tick first, each judged live or not now.
    pub fn hosts(&self) -> Result<Vec<HostLease>> {
        let now = self.now();
        let mut rows: Vec<HostLease> = self.read(|c| {
            c.rows(
                "SELECT host_id, pid, version, started_at, last_tick_at, interval_seconds
                 FROM kanban_hosts ORDER BY last_tick_at DESC, host_id",
                args![],
            )
        })?;
        for h in &mut rows {
            h.age_seconds = (now - h.last_tick_at).max(0);
            h.live = lease_is_live(h.age_seconds, h.interval_seconds);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_belongs_to_the_host_before_its_last_colon() {
        assert_eq!(claim_host("box-1:42"), Some("box-1"));
        assert_eq!(claim_host("fe80::1:42"), Some("fe80::1"));
        assert_eq!(claim_host("nocolon"), None);
        assert_eq!(claim_host(":42"), None);
        assert!(lock_is_host_local(&format!("{}:1", host_id())));
        assert!(!lock_is_host_local(&format!("{}x:1", host_id())));
    }

    #[test]
    fn a_lease_is_live_for_a_few_intervals() {
        assert!(lease_is_live(0, 5));
        assert!(lease_is_live(15, 5));
        assert!(!lease_is_live(16, 5));
        assert!(lease_is_live(3, 0), "a floor of 3 s");
        assert!(!lease_is_live(4, 1));
    }
}
