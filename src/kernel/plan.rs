//! A read-only preview of what a dispatcher tick would do — expired claims it would handle,
//! tasks it would promote, and which ready tasks it would spawn under the caps. This is what a
//! dry-run dispatch reports; it writes nothing (SPEC §3.3 fix 3).

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use super::board::Board;
use super::board::load_task;
use super::error::Result;
use super::graph::promotable_ids;
use super::liveness::respawn_guard_tx;
use super::paths::hermes_root;
use super::tasks::profile_exists;
use super::types::lenient_i64;

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
    /// Apply the respawn guard (REF §8.9) with this rate-limit cool-down in seconds; `None`
    /// skips the guard.
    pub respawn_cooldown_seconds: Option<i64>,
    /// Assignees that are spawnable without a profile directory (they have their own
    /// `worker_command`).
    pub extra_spawnable: Vec<String>,
    /// Leave `review` tasks alone (`kanban.review_dispatch: false`).
    pub no_review_lane: bool,
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
    /// `(task_id, reason)` held back by the respawn guard.
    pub respawn_guarded: Vec<(String, String)>,
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
            // Light rows only: a board of 100k tasks has thousands in the queue.
            let running: Vec<(String, Option<String>, Option<i64>)> = c
                .prepare_cached(
                    "SELECT id, assignee, claim_expires FROM tasks WHERE status='running'",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, lenient_i64(r, 2))))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            plan.running = running.len();
            plan.expired_claims = running
                .iter()
                .filter(|(_, _, e)| e.is_some_and(|e| e < now))
                .map(|(id, _, _)| id.clone())
                .collect();
            plan.promotable = promotable_ids(c)?;
            if let Some(cap) = opts.max_in_progress
                && plan.running >= cap
            {
                return Ok(plan);
            }
            let mut per_profile: HashMap<String, usize> = HashMap::new();
            for (_, a, _) in &running {
                if let Some(a) = a {
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
            // The review queue (upstream's review lane, UP §10): while review work waits under a
            // finite budget, one slot is held back from the ready lane.
            let review: Vec<(String, Option<String>)> = if opts.no_review_lane || budget == 0 {
                vec![]
            } else {
                c.prepare_cached(
                    "SELECT id, assignee FROM tasks WHERE status='review' AND claim_lock IS NULL
                     ORDER BY priority DESC, created_at ASC, rowid ASC",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            let ready_budget = if review.is_empty() || budget == usize::MAX {
                budget
            } else {
                budget - 1
            };
            let queue: Vec<(String, Option<String>)> = if budget == 0 {
                vec![]
            } else {
                c.prepare_cached(
                    "SELECT id, assignee FROM tasks
                     WHERE ((status='ready' AND claim_lock IS NULL) OR id IN (SELECT value FROM json_each(?1)))
                       AND claim_lock IS NULL
                     ORDER BY priority DESC, created_at ASC, rowid ASC",
                )?
                .query_map([serde_json::to_string(&plan.promotable)?], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            let mut known: HashMap<String, bool> = HashMap::new();
            let mut spawnable = |a: &str| -> bool {
                if let Some(v) = known.get(a) {
                    return *v;
                }
                if let Some(v) = known.get(a) {
            return *v;
        }
        *known.entry(a.to_string()).or_insert_with(|| {
                    opts.extra_spawnable.iter().any(|x| x == a) || profile_exists(&root, a)
                })
            };
            for (id, assignee) in queue {
                if plan.spawn.len() >= ready_budget {
                    break;
                }
                let assignee = match &assignee {
                    Some(a) => a.clone(),
                    None => match &opts.default_assignee {
                        Some(d) if spawnable(d) => {
                            plan.auto_assigned_default.push(id.clone());
                            d.clone()
                        }
                        _ => {
                            plan.skipped_unassigned.push(id.clone());
                            continue;
                        }
                    },
                };
                if !spawnable(&assignee) {
                    plan.skipped_nonspawnable.push(id.clone());
                    continue;
                }
                if let Some(cap) = opts.max_in_progress_per_profile {
                    let n = per_profile.get(&assignee).copied().unwrap_or(0);
                    if n >= cap {
                        plan.skipped_per_profile_capped.push((id.clone(), assignee, n));
                        continue;
                    }
                }
                if let Some(cooldown) = opts.respawn_cooldown_seconds
                    && let Some(reason) = respawn_guard_tx(c, &load_task(c, &id)?, now, cooldown)?
                {
                    plan.respawn_guarded.push((id.clone(), reason.to_string()));
                    continue;
                }
                *per_profile.entry(assignee.clone()).or_default() += 1;
                plan.spawn.push((id.clone(), assignee));
            }
            // The review queue shares the budget; no default assignee, guard or per-profile cap
            // (REF §9.1 step 8).
            for (id, assignee) in review {
                if plan.spawn.len() >= budget {
                    break;
                }
                match assignee {
                    Some(a) if spawnable(&a) => plan.spawn.push((id, a)),
                    Some(_) => plan.skipped_nonspawnable.push(id),
                    None => plan.skipped_unassigned.push(id),
                }
            }
            Ok(plan)
        })
    }
}
