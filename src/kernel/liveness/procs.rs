//! The supervised-run process table (`kanban_worker_procs`, migration 0003): one row per run
//! the dispatcher spawned — who supervises it, the real worker's pid and `/proc` start time,
//! how it exited and who settled it — plus registering a supervisor, recording the worker and
//! its exit, and settling the rows of closed runs whose supervisor died (lingering processes).

use serde::Serialize;
use serde_json::{Map, Value};

use super::{ExitClass, SettledBy, WorkerExit};
use crate::kernel::board::{Board, add_event, hostname};
use crate::kernel::error::Result;
use crate::kernel::store::{FromRow, Row, Tx};
use crate::kernel::validate as v;
use crate::{args, obj};

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

pub(super) const PROC_COLUMNS: &str = "run_id, task_id, host, supervisor_pid, supervisor_start, \
    worker_pid, \
    worker_start, registered_at, exited_at, exit_class, exit_code, exit_signal, exit_detail, \
    settled_at, settled_by, settled_outcome, tripped, reported_at";

impl FromRow for RunProcess {
    fn from_row(r: &Row<'_>) -> Result<RunProcess> {
        RunProcess::from_row_at(r, 0)
    }
}

impl RunProcess {
    /// Read the [`PROC_COLUMNS`] starting at column `o`.
    pub(super) fn from_row_at(r: &Row<'_>, o: usize) -> Result<RunProcess> {
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
                code: r.get::<Option<i64>>(o + 10).ok().flatten(),
                signal: r.get::<Option<i64>>(o + 11).ok().flatten(),
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
            tripped: r.get::<i64>(o + 16)? != 0,
            reported_at: r.get(o + 17)?,
        })
    }
}

pub(super) fn load_proc(c: &Tx, run_id: i64) -> Result<Option<RunProcess>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL
        .get_or_init(|| format!("SELECT {PROC_COLUMNS} FROM kanban_worker_procs WHERE run_id=?1"));
    c.row::<RunProcess>(sql, args![run_id])
}

pub(super) fn mark_settled(
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
    c.exec(
        "UPDATE kanban_worker_procs SET settled_at=?1, settled_by=?2, settled_outcome=?3, \
        tripped=?4,
                reported_at=?5 WHERE run_id=?6 AND settled_at IS NULL",
        args![now, by.as_str(), outcome, tripped as i64, reported, run_id],
    )?;
    Ok(())
}

/// Close a tick-released run's process row so a late supervisor cannot settle it.
pub(super) fn close_proc(c: &Tx, run_id: Option<i64>, outcome: &str, now: i64) -> Result<()> {
    if let Some(r) = run_id {
        mark_settled(c, r, SettledBy::Tick, outcome, false, now)?;
    }
    Ok(())
}

pub(super) fn store_exit(
    c: &Tx,
    task_id: &str,
    run_id: i64,
    e: &WorkerExit,
    now: i64,
) -> Result<()> {
    let detail = Value::Object(e.detail()).to_string();
    c.exec(
        "INSERT INTO kanban_worker_procs (run_id, task_id, registered_at, exited_at, exit_class,
                exit_code, exit_signal, exit_detail)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(run_id) DO UPDATE SET exited_at=excluded.exited_at, \
         exit_class=excluded.exit_class,
                exit_code=excluded.exit_code, exit_signal=excluded.exit_signal,
                exit_detail=excluded.exit_detail
         WHERE kanban_worker_procs.settled_at IS NULL",
        args![
            run_id,
            task_id,
            now,
            e.class.as_str(),
            e.code,
            e.signal,
            detail
        ],
    )?;
    Ok(())
}

impl Board {
    /// Record the supervisor the dispatcher spawned for `run_id`: the task's and run's
    /// `worker_pid`, a `kanban_worker_procs` row (host, pid, `/proc` start time) and the
    /// `spawned {pid}` event — refused with [`crate::kernel::KernelError::StaleRun`] if the
    /// run is no longer the task's open run.
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
            crate::kernel::lifecycle::pin_worker_pid_tx(c, task_id, run_id, pid)?;
            c.exec(
                "INSERT INTO kanban_worker_procs (run_id, task_id, host, supervisor_pid, \
                supervisor_start, registered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(run_id) DO UPDATE SET host=excluded.host, \
                 supervisor_pid=excluded.supervisor_pid,
                        supervisor_start=excluded.supervisor_start",
                args![run_id, task_id, host, pid, start_time, now],
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
            c.exec(
                "UPDATE kanban_worker_procs SET worker_pid=?1, worker_start=?2 WHERE run_id=?3",
                args![pid, start_time, run_id],
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
            c.rows::<RunProcess>(
                &format!(
                    "SELECT {PROC_COLUMNS} FROM kanban_worker_procs
                     WHERE settled_at IS NULL AND (host = ?1 OR host IS NULL)
                       AND run_id IN (SELECT id FROM task_runs WHERE ended_at IS NOT NULL)
                     ORDER BY run_id"
                ),
                args![host],
            )
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
            let n = c.exec(
                "UPDATE kanban_worker_procs SET exited_at=COALESCE(exited_at, ?1),
                    exit_class=COALESCE(exit_class, 'unknown'), settled_at=?1, settled_by='tick',
                    settled_outcome='already_closed', reported_at=?1
                 WHERE run_id=?2 AND settled_at IS NULL",
                args![now, run_id],
            )?;
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
        self.read(|c| load_proc(c, run_id))
    }
}
