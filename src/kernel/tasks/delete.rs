//! Removing tasks: archive (any status; closes an open run, promotes children), the Hermes
//! `archive --rm` delete of an archived task, and the dashboard's hard delete, which also
//! removes the task's attachments (rows and blobs), run tokens and worker-process rows.

use serde_json::Map;

use crate::args;
use crate::kernel::board::{Board, add_event, load_task};
use crate::kernel::error::{KernelError, Result};
use crate::kernel::graph::recompute_ready_tx;
use crate::kernel::runs::end_run;
use crate::kernel::store::Tx;
use crate::kernel::types::{Attachment, RunOutcome, Status};

impl Board {
    /// Archive a task from any status: clears the claim, closes an open run as `reclaimed`,
    /// event `archived`, then promotes children (archived parents satisfy them).
    pub fn archive_task(&self, task_id: &str) -> Result<Vec<String>> {
        let now = self.now();
        self.write(|c| {
            let t = load_task(c, task_id)?;
            if t.status == Status::Archived {
                return Err(KernelError::refused(
                    task_id,
                    "archive",
                    "it is already archived",
                ));
            }
            let run_id = end_run(
                c,
                &t,
                RunOutcome::Reclaimed,
                "reclaimed",
                Some("task archived with run still active"),
                None,
                None,
                now,
            )?;
            c.exec(
                "UPDATE tasks SET status='archived', claim_lock=NULL, claim_expires=NULL,
                        worker_pid=NULL, worker_started_at=NULL WHERE id=?1",
                args![task_id],
            )?;
            add_event(c, task_id, run_id, "archived", Map::new(), now)?;
            recompute_ready_tx(c, now)
        })
    }

    /// Permanently delete an archived task and its links, comments, events, runs,
    /// subscriptions, run tokens and worker-process rows (attachment rows and files are kept,
    /// as in Hermes' `archive --rm`, REF §5).
    pub fn delete_archived_task(&self, task_id: &str) -> Result<()> {
        self.write(|c| {
            let t = load_task(c, task_id)?;
            if t.status != Status::Archived {
                return Err(KernelError::refused(
                    task_id,
                    "delete",
                    format!(
                        "status is '{}'; archive it first (only archived tasks can be removed \
                        with --rm)",
                        t.status
                    ),
                ));
            }
            delete_rows(c, task_id)
        })
    }

    /// Hard-delete a task in any status (dashboard trash) with everything that names it —
    /// links, comments, events, runs, subscriptions, run tokens, worker-process rows and its
    /// attachments (rows, and after the commit their blobs inside the attachment root) — then
    /// recompute readiness. A refused delete (unknown task, fenced) changes nothing.
    pub fn delete_task(&self, task_id: &str) -> Result<Vec<String>> {
        let now = self.now();
        let (promoted, attachments) = self.write(|c| {
            load_task(c, task_id)?;
            let attachments: Vec<Attachment> = c.rows(
                &format!(
                    "SELECT {} FROM task_attachments WHERE task_id=?1",
                    crate::kernel::attachments::ATTACHMENT_COLUMNS
                ),
                args![task_id],
            )?;
            c.exec(
                "DELETE FROM kanban_attachment_blobs WHERE attachment_id IN
                    (SELECT id FROM task_attachments WHERE task_id=?1)",
                args![task_id],
            )?;
            c.exec(
                "DELETE FROM task_attachments WHERE task_id=?1",
                args![task_id],
            )?;
            delete_rows(c, task_id)?;
            Ok((recompute_ready_tx(c, now)?, attachments))
        })?;
        // Blobs go only once the rows are committed, and only inside the attachment root.
        for a in &attachments {
            if let Some(p) = self.attachment_blob_path(a) {
                let _ = std::fs::remove_file(p);
            }
        }
        let dir = self.paths().attachments.join(task_id);
        if !attachments.is_empty()
            && crate::kernel::gc::strictly_inside(&self.paths().attachments, &dir)
        {
            // The task's directory, if now empty (a leftover file keeps it).
            let _ = std::fs::remove_dir(&dir);
        }
        Ok(promoted)
    }
}

/// Delete a task's own rows and every row that names it (not its attachments).
fn delete_rows(c: &Tx, task_id: &str) -> Result<()> {
    c.exec(
        "DELETE FROM task_links WHERE parent_id=?1 OR child_id=?1",
        args![task_id],
    )?;
    for sql in [
        "DELETE FROM task_comments WHERE task_id=?1",
        "DELETE FROM task_events WHERE task_id=?1",
        "DELETE FROM task_runs WHERE task_id=?1",
        "DELETE FROM kanban_notify_subs WHERE task_id=?1",
        "DELETE FROM kanban_run_tokens WHERE task_id=?1",
        "DELETE FROM kanban_worker_procs WHERE task_id=?1",
        "DELETE FROM tasks WHERE id=?1",
    ] {
        c.exec(sql, args![task_id])?;
    }
    Ok(())
}
