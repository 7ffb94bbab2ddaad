//! Run rows (one per attempt): closing the open run with an outcome, synthesizing a closed run
//! for a hand-off on a never-claimed task, and the run readers (`runs`, latest summary).

use super::store::Tx;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::board::Board;
use super::error::{KernelError, Result};
use super::store::arg_refs;
use super::types::{RUN_COLUMNS, Run, RunOutcome, Task};
use crate::{args, leave_running};

/// Close the task's open run (`current_run_id`) with `outcome`, NULL its claim fields and clear
/// the task's pointer. Returns the closed run id, or `None` when no run was open.
#[allow(clippy::too_many_arguments)]
pub(crate) fn end_run(
    c: &Tx,
    t: &Task,
    outcome: RunOutcome,
    run_status: &str,
    summary: Option<&str>,
    error: Option<&str>,
    metadata: Option<&Map<String, Value>>,
    now: i64,
) -> Result<Option<i64>> {
    let Some(rid) = t.current_run_id else {
        return Ok(None);
    };
    let meta = metadata.map(|m| Value::Object(m.clone()).to_string());
    let n = c.exec(
        concat!(
            "UPDATE task_runs SET status=?1, outcome=?2, summary=?3, error=?4, metadata=?5, \
            ended_at=?6, ",
            leave_running!(),
            " WHERE id=?7 AND ended_at IS NULL"
        ),
        args![run_status, outcome.as_str(), summary, error, meta, now, rid],
    )?;
    c.exec(
        "UPDATE tasks SET current_run_id=NULL WHERE id=?1 AND current_run_id=?2",
        args![t.id, rid],
    )?;
    Ok((n == 1).then_some(rid))
}

/// Insert an already-closed run (`started_at = ended_at = now`, status = outcome) for a hand-off
/// on a task that was never claimed. Returns its id.
pub(crate) fn synth_run(
    c: &Tx,
    t: &Task,
    outcome: RunOutcome,
    summary: Option<&str>,
    error: Option<&str>,
    metadata: Option<&Map<String, Value>>,
    now: i64,
) -> Result<i64> {
    let meta = metadata.map(|m| Value::Object(m.clone()).to_string());
    c.insert_id(
        "INSERT INTO task_runs (task_id, profile, step_key, status, started_at, ended_at, outcome, \
        summary, metadata, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?4, ?6, ?7, ?8) RETURNING id",
        args![t.id, t.assignee, t.current_step_key, outcome.as_str(), now, summary, meta, error],
    )
}

/// Which run column a runs filter applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStateField {
    /// `task_runs.status`.
    Status,
    /// `task_runs.outcome`.
    Outcome,
}

impl Board {
    /// Runs of a task ordered by `started_at, id`, optionally filtered on status or outcome.
    pub fn list_runs(
        &self,
        task_id: &str,
        filter: Option<(RunStateField, &str)>,
    ) -> Result<Vec<Run>> {
        let (clause, val) = match filter {
            None => ("", None),
            Some((RunStateField::Status, v)) => (" AND status = ?2", Some(v)),
            Some((RunStateField::Outcome, v)) => (" AND outcome = ?2", Some(v)),
        };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM task_runs WHERE task_id = ?1{clause} ORDER BY started_at, id"
        );
        self.read(|c| match val {
            None => c.rows::<Run>(&sql, args![task_id]),
            Some(v) => c.rows::<Run>(&sql, args![task_id, v]),
        })
    }

    /// One run by id.
    pub fn get_run(&self, run_id: i64) -> Result<Run> {
        self.read(|c| {
            c.row::<Run>(
                &format!("SELECT {RUN_COLUMNS} FROM task_runs WHERE id=?1"),
                args![run_id],
            )
        })?
        .ok_or_else(|| KernelError::invalid("run_id", format!("no such run: {run_id}")))
    }

    /// Newest non-empty run summary of a task (by `COALESCE(ended_at, started_at)`, then id).
    pub fn latest_summary(&self, task_id: &str) -> Result<Option<String>> {
        self.read(|c| {
            c.row::<String>(
                "SELECT summary FROM task_runs WHERE task_id=?1 AND summary IS NOT NULL AND \
                trim(summary) != ''
                 ORDER BY COALESCE(ended_at, started_at) DESC, id DESC LIMIT 1",
                args![task_id],
            )
        })
    }

    /// Latest summaries of many tasks in one query (tasks without one are omitted).
    pub fn latest_summaries(&self, ids: &[String]) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        self.read(|c| {
            for chunk in ids.chunks(500) {
                let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("?{i}")).collect();
                let sql = format!(
                    "SELECT task_id, summary FROM (
                       SELECT task_id, summary, row_number() OVER (PARTITION BY task_id
                              ORDER BY COALESCE(ended_at, started_at) DESC, id DESC) AS rn
                       FROM task_runs WHERE task_id IN ({}) AND summary IS NOT NULL AND \
                       trim(summary) != '') latest
                     WHERE rn = 1",
                    marks.join(",")
                );
                c.each(&sql, &arg_refs(chunk), |r| {
                    out.insert(r.get::<String>(0)?, r.get::<String>(1)?);
                    Ok(())
                })?;
            }
            Ok(out)
        })
    }
}
