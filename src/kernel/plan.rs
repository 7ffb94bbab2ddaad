//! A read-only preview of what a dispatcher tick would do — expired claims it would handle,
//! tasks it would promote, and which ready tasks it would spawn under the caps. This is what a
//! dry-run dispatch reports; it writes nothing (SPEC §3.3 fix 3).

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use super::board::Board;
use super::error::Result;
use super::paths::hermes_root;
use super::tasks::{profile_exists, query_tasks};

/// Caps and defaults of a tick (REF §9.1).
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Live concurrency cap: stop when running + spawned reaches it.
    pub max_spawn: Option<usize>,
    /// Do nothing when this many tasks are already running.
    pub max_in_progress: Option<usize>,
    /// Per-assignee cap on running tasks.
    pub max_in_progress_per_profile: Option<usize>,
    /// Profile for unassigned ready tasks.
    pub default_assignee: Option<String>,
    /// Where profiles live (default: the shared Hermes root of the board's env).
    pub hermes_root: Option<PathBuf>,
}

/// What a tick would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DispatchPlan {
    /// Running tasks whose claim has expired.
    pub expired_claims: Vec<String>,
    /// `todo` tasks whose parents are all done or archived.
    pub promotable: Vec<String>,
    /// `(task_id, assignee)` in spawn order.
    pub spawn: Vec<(String, String)>,
    pub skipped_unassigned: Vec<String>,
    pub skipped_nonspawnable: Vec<String>,
    /// `(task_id, assignee, running_now)`.
    pub skipped_per_profile_capped: Vec<(String, String, usize)>,
    pub auto_assigned_default: Vec<String>,
    /// Tasks running before the tick.
    pub running: usize,
}

impl Board {
    /// Compute the plan of one tick without writing anything.
    pub fn plan_dispatch(&self, opts: &PlanOptions) -> Result<DispatchPlan> {
        let now = self.now();
        let root = opts
            .hermes_root
            .clone()
            .unwrap_or_else(|| hermes_root(self.env()));
        self.read(|c| {
            let mut plan = DispatchPlan::default();
            let running = query_tasks(c, "WHERE status='running'", &[])?;
            plan.running = running.len();
            plan.expired_claims = running
                .iter()
                .filter(|t| t.claim_expires.is_some_and(|e| e < now))
                .map(|t| t.id.clone())
                .collect();
            let mut st = c.prepare_cached(
                "SELECT t.id FROM tasks t WHERE t.status = 'todo' AND NOT EXISTS (
                     SELECT 1 FROM task_links l JOIN tasks p ON p.id = l.parent_id
                     WHERE l.child_id = t.id AND p.status NOT IN ('done', 'archived'))",
            )?;
            plan.promotable = st
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            if let Some(cap) = opts.max_in_progress
                && plan.running >= cap
            {
                return Ok(plan);
            }
            let mut per_profile: HashMap<String, usize> = HashMap::new();
            for t in &running {
                if let Some(a) = &t.assignee {
                    *per_profile.entry(a.clone()).or_default() += 1;
                }
            }
            let mut budget = usize::MAX;
            if let Some(cap) = opts.max_in_progress {
                budget = budget.min(cap.saturating_sub(plan.running));
            }
            if let Some(ms) = opts.max_spawn {
                budget = budget.min(ms.saturating_sub(plan.running));
            }
            let mut queue = query_tasks(
                c,
                "WHERE (status='ready' AND claim_lock IS NULL) OR id IN (SELECT value FROM json_each(?1))
                 ORDER BY priority DESC, created_at ASC, rowid ASC",
                &[serde_json::json!(serde_json::to_string(&plan.promotable)?)],
            )?;
            queue.retain(|t| t.claim_lock.is_none());
            for t in queue {
                if plan.spawn.len() >= budget {
                    break;
                }
                let assignee = match &t.assignee {
                    Some(a) => a.clone(),
                    None => match &opts.default_assignee {
                        Some(d) if profile_exists(&root, d) => {
                            plan.auto_assigned_default.push(t.id.clone());
                            d.clone()
                        }
                        _ => {
                            plan.skipped_unassigned.push(t.id.clone());
                            continue;
                        }
                    },
                };
                if !profile_exists(&root, &assignee) {
                    plan.skipped_nonspawnable.push(t.id.clone());
                    continue;
                }
                if let Some(cap) = opts.max_in_progress_per_profile {
                    let n = per_profile.get(&assignee).copied().unwrap_or(0);
                    if n >= cap {
                        plan.skipped_per_profile_capped.push((t.id.clone(), assignee, n));
                        continue;
                    }
                }
                *per_profile.entry(assignee.clone()).or_default() += 1;
                plan.spawn.push((t.id.clone(), assignee));
            }
            Ok(plan)
        })
    }
}
