//! The invariant checker (SPEC §3.3 fix 5). Tests run it after every scenario; operators can
//! run it through `diagnostics`. Each violation is one human-readable line.

use super::board::Board;
use super::error::Result;
use crate::args;

impl Board {
    /// Check the run/claim invariants and return every violation found (empty = healthy):
    /// `current_run_id` is set iff the task has exactly one open run and points at it; no task
    /// has two open runs; a task has an open run iff it is `running`; a `running` task has a claim;
    /// a claim belongs to a running task.
    pub fn check_invariants(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut out = Vec::new();
            type Row = (
                String,
                String,
                Option<i64>,
                Option<String>,
                i64,
                Option<i64>,
            );
            let rows: Vec<Row> = c.rows(
                "SELECT t.id, t.status, t.current_run_id, t.claim_lock,
                        (SELECT count(*) FROM task_runs r WHERE r.task_id=t.id AND r.ended_at IS \
                        NULL),
                        (SELECT max(r.id) FROM task_runs r WHERE r.task_id=t.id AND r.ended_at IS \
                        NULL)
                 FROM tasks t",
                args![],
            )?;
            for (id, status, cur, lock, open, open_id) in rows {
                if open > 1 {
                    out.push(format!("{id}: {open} open runs (at most one allowed)"));
                }
                match (cur, open) {
                    (Some(c), 1) if Some(c) != open_id => out.push(format!(
                        "{id}: current_run_id={c} but the open run is {}",
                        open_id.unwrap_or_default()
                    )),
                    (Some(c), 0) => {
                        out.push(format!("{id}: current_run_id={c} but no run is open"))
                    }
                    (None, n) if n > 0 => {
                        out.push(format!("{id}: {n} open run(s) but current_run_id is NULL"))
                    }
                    _ => {}
                }
                if open > 0 && status != "running" {
                    out.push(format!("{id}: status '{status}' with an open run"));
                }
                if status == "running" && open == 0 {
                    out.push(format!("{id}: running without an open run"));
                }
                if status == "running" && lock.is_none() {
                    out.push(format!("{id}: running without a claim lock"));
                }
                if status != "running" && lock.is_some() {
                    out.push(format!(
                        "{id}: status '{status}' still holds claim {}",
                        lock.unwrap_or_default()
                    ));
                }
            }
            let orphans: i64 = c.one(
                "SELECT count(*) FROM task_runs r WHERE r.ended_at IS NULL
                 AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id=r.task_id)",
                args![],
            )?;
            if orphans > 0 {
                out.push(format!("{orphans} open run(s) belong to no task"));
            }
            Ok(out)
        })
    }
}
