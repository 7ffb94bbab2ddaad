//! Garbage collection (`gc`): scratch workspaces whose clean-up is due — archived tasks, and
//! done tasks whose children are all finished and whose processes are accounted for (the
//! supervisor normally removes those; a killed one never did) — only inside the board's
//! scratch root, old events of finished tasks, and old worker logs.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::board::Board;
use super::error::{KernelError, Result};
use crate::args;

/// Longest retention accepted (100 years); larger values would overflow the cutoff arithmetic.
const RETENTION_MAX_DAYS: i64 = 36_500;

/// What `gc` removed.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GcReport {
    pub scratch_dirs_removed: usize,
    pub events_removed: usize,
    pub logs_removed: usize,
}

/// Whether `p` is strictly inside `root` (both canonicalised; never the root itself).
pub fn strictly_inside(root: &Path, p: &Path) -> bool {
    match (std::fs::canonicalize(root), std::fs::canonicalize(p)) {
        (Ok(r), Ok(p)) => p != r && p.starts_with(&r),
        _ => false,
    }
}

impl Board {
    /// Remove scratch dirs whose clean-up is due (archived tasks; done tasks whose children
    /// are finished and whose runs' processes are settled), events older than `event_days` of
    /// done/archived tasks, and log files older than `log_days`.
    pub fn gc(&self, event_days: i64, log_days: i64) -> Result<GcReport> {
        if !(0..=RETENTION_MAX_DAYS).contains(&event_days)
            || !(0..=RETENTION_MAX_DAYS).contains(&log_days)
        {
            return Err(KernelError::invalid(
                "retention_days",
                format!("must be 0..={RETENTION_MAX_DAYS}"),
            ));
        }
        let now = self.now();
        let mut report = GcReport::default();
        let archived: Vec<(String, String, Option<String>)> = self.read(|c| {
            c.rows(
                "SELECT id, workspace_kind, workspace_path FROM tasks t
                 WHERE workspace_kind='scratch' AND (status='archived' OR (status='done'
                   AND NOT EXISTS (SELECT 1 FROM task_links l JOIN tasks k ON k.id = l.child_id
                                   WHERE l.parent_id = t.id AND k.status NOT IN ('done', \
                                   'archived'))
                   AND NOT EXISTS (SELECT 1 FROM kanban_worker_procs p
                                   WHERE p.task_id = t.id AND p.settled_at IS NULL)))",
                args![],
            )
        })?;
        let root = self.paths().workspaces.clone();
        for (id, _, path) in archived {
            let p = path
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| root.join(&id));
            if p.is_dir() && strictly_inside(&root, &p) && std::fs::remove_dir_all(&p).is_ok() {
                report.scratch_dirs_removed += 1;
            }
        }
        let cutoff = now - event_days * 86_400;
        report.events_removed = self.write(|c| {
            c.exec(
                "DELETE FROM task_events WHERE created_at < ?1 AND task_id IN
                   (SELECT id FROM tasks WHERE status IN ('done','archived'))",
                args![cutoff],
            )
        })?;
        self.prune_run_tokens()?;
        let log_cutoff = SystemTime::now() - Duration::from_secs((log_days.max(0) as u64) * 86_400);
        if let Ok(rd) = std::fs::read_dir(&self.paths().logs) {
            for e in rd.flatten() {
                let p = e.path();
                let is_log = p.extension().is_some_and(|x| x == "log")
                    || p.to_string_lossy().contains(".log.");
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| m < log_cutoff);
                if p.is_file() && is_log && old && std::fs::remove_file(&p).is_ok() {
                    report.logs_removed += 1;
                }
            }
        }
        Ok(report)
    }
}
