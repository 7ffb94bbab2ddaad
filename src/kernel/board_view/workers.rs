//! The active-worker listing (`GET /workers/active`): open runs with a worker pid on the
//! running tasks whose current run they are.

use serde::Serialize;

use crate::args;
use crate::kernel::board::Board;
use crate::kernel::error::Result;
use crate::kernel::store::FromRow;
use crate::kernel::types::{RUN_COLUMNS, Run, Status, lenient_text};

/// One open run with a live worker pid on a running task (`GET /workers/active`).
#[derive(Debug, Clone, Serialize)]
pub struct ActiveWorker {
    /// The run.
    pub run: Run,
    /// Its task's title.
    pub task_title: String,
    /// Its task's status.
    pub task_status: Status,
    /// Its task's assignee.
    pub task_assignee: Option<String>,
}

impl Board {
    /// Open runs that have a worker pid, on running tasks whose current run they are, oldest
    /// first.
    pub fn active_workers(&self) -> Result<Vec<ActiveWorker>> {
        self.read(|c| {
            let cols: Vec<String> = RUN_COLUMNS
                .split(',')
                .map(|s| format!("r.{}", s.trim()))
                .collect();
            let n = cols.len();
            c.map(
                &format!(
                    "SELECT {}, t.title, t.status, t.assignee FROM task_runs r
                     JOIN tasks t ON t.current_run_id = r.id
                     WHERE t.status = 'running' AND r.ended_at IS NULL AND r.worker_pid IS NOT NULL
                     ORDER BY r.started_at, r.id",
                    cols.join(", ")
                ),
                args![],
                |r| {
                    Ok(ActiveWorker {
                        run: <Run as FromRow>::from_row(r)?,
                        task_title: lenient_text(r, n).unwrap_or_default(),
                        task_status: lenient_text(r, n + 1)
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(Status::Running),
                        task_assignee: lenient_text(r, n + 2),
                    })
                },
            )
        })
    }
}
