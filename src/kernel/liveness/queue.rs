//! What a dispatcher tick reads to plan its work — running tasks with their open run and
//! process row, running counts per assignee, the unclaimed ready/review queues in dispatch
//! order — and the default-assignee write it makes on an unassigned ready task.

use std::collections::HashMap;

use serde::Serialize;

use super::procs::{PROC_COLUMNS, RunProcess};
use crate::args;
use crate::kernel::board::Board;
use crate::kernel::error::{KernelError, Result};
use crate::kernel::store::FromRow;
use crate::kernel::tasks::assign_tx;
use crate::kernel::types::{Status, TASK_COLUMNS, Task, lenient_i64};
use crate::kernel::validate as v;

/// A running task with what a tick needs to judge its liveness.
#[derive(Debug, Clone, Serialize)]
pub struct RunningTask {
    pub task: Task,
    /// `started_at` of the open run (max runtime and staleness are measured from it).
    pub run_started_at: Option<i64>,
    /// The supervised-run row, when this board's dispatcher spawned it.
    pub process: Option<RunProcess>,
}

/// An unclaimed task waiting in a dispatch queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuedTask {
    pub id: String,
    pub assignee: Option<String>,
}

impl Board {
    /// Running tasks with their open run's start time and process row, in priority order (one
    /// query).
    pub fn running_tasks(&self) -> Result<Vec<RunningTask>> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            let task_cols: Vec<String> = TASK_COLUMNS
                .split(',')
                .map(|c| format!("t.{}", c.trim()))
                .collect();
            let proc_cols: Vec<String> = PROC_COLUMNS
                .split(',')
                .map(|c| format!("p.{}", c.trim()))
                .collect();
            format!(
                "SELECT {}, r.started_at, {} FROM tasks t
                 LEFT JOIN task_runs r ON r.id = t.current_run_id
                 LEFT JOIN kanban_worker_procs p ON p.run_id = t.current_run_id
                 WHERE t.status = 'running' ORDER BY t.priority DESC, t.created_at ASC",
                task_cols.join(", "),
                proc_cols.join(", ")
            )
        });
        let n_task = TASK_COLUMNS.split(',').count();
        self.read(|c| {
            c.map(sql, args![], |r| {
                let task = <Task as FromRow>::from_row(r)?;
                let run_started_at = lenient_i64(r, n_task);
                let has_proc = r.get::<Option<i64>>(n_task + 1)?.is_some();
                let process = if has_proc {
                    Some(RunProcess::from_row_at(r, n_task + 1)?)
                } else {
                    None
                };
                Ok(RunningTask {
                    task,
                    run_started_at,
                    process,
                })
            })
        })
    }

    /// Running task counts: the total and per assignee.
    pub fn running_counts(&self) -> Result<(usize, HashMap<String, usize>)> {
        self.read(|c| {
            let rows = c.rows::<(Option<String>, i64)>(
                "SELECT assignee, count(*) FROM tasks WHERE status='running' GROUP BY assignee",
                args![],
            )?;
            let mut total = 0usize;
            let mut per = HashMap::new();
            for (a, n) in rows {
                total += n as usize;
                if let Some(a) = a {
                    per.insert(a, n as usize);
                }
            }
            Ok((total, per))
        })
    }

    /// Unclaimed tasks in `status` (`ready` or `review`) in dispatch order: priority
    /// descending, then oldest first, then insertion order.
    pub fn dispatch_queue(&self, status: Status) -> Result<Vec<QueuedTask>> {
        self.read(|c| {
            c.map(
                "SELECT id, assignee FROM tasks WHERE status=?1 AND claim_lock IS NULL
                 ORDER BY priority DESC, created_at ASC, _seq_ ASC",
                args![status.as_str()],
                |r| {
                    Ok(QueuedTask {
                        id: r.get(0)?,
                        assignee: r.get(1)?,
                    })
                },
            )
        })
    }

    /// Give an unassigned ready task the configured default assignee (event `assigned {assignee,
    /// source: kanban.default_assignee}`). False when it is no longer unassigned and ready.
    pub fn assign_default(&self, task_id: &str, assignee: &str) -> Result<bool> {
        let assignee = v::profile_name("default_assignee", Some(assignee))?
            .ok_or_else(|| KernelError::invalid("default_assignee", "must not be empty"))?;
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            if t.status != Status::Ready || t.assignee.is_some() || t.has_worker() {
                return Ok(false);
            }
            assign_tx(c, &t, Some(&assignee), Some("kanban.default_assignee"), now)?;
            Ok(true)
        })
    }
}
