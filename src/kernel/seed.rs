//! Bulk seeding for benchmarks and load tests: many tasks in any status, with the rows a real
//! board would have for them (a `created` event; a `blocked` event for `blocked`; an open run
//! and claim for `running`; a closed `completed` run for `done`/`archived`; parent links), in
//! one transaction. It keeps the run and claim invariants but skips per-task validation, so it
//! is not a front-door operation.

use super::board::{Board, add_event};
use super::error::{KernelError, Result};
use super::store::Tx;
use super::types::Status;
use crate::{args, obj};

/// One task to seed.
#[derive(Debug, Clone)]
pub struct SeedTask {
    pub title: String,
    pub assignee: Option<String>,
    pub status: Status,
    pub priority: i64,
    /// Indexes of earlier tasks in the same batch this task depends on.
    pub parents: Vec<usize>,
    /// Claim lock of a `running` task (default `seed-host:1`, i.e. another host).
    pub claim_lock: Option<String>,
}

impl Board {
    /// Insert `tasks` in one transaction and return their ids (in order). Running tasks get an
    /// open run and a claim that expires in a year; done and archived tasks a completed run.
    pub fn seed_tasks(&self, tasks: &[SeedTask]) -> Result<Vec<String>> {
        let now = self.now();
        let mut base = [0u8; 4];
        getrandom::fill(&mut base).map_err(|e| KernelError::Storage(e.to_string()))?;
        let base = u32::from_le_bytes(base);
        self.write(|c| {
            let mut ids: Vec<String> = Vec::with_capacity(tasks.len());
            for (i, t) in tasks.iter().enumerate() {
                let id = format!("t_{:08x}", base.wrapping_add(i as u32));
                let created = now - (tasks.len() - i) as i64;
                let (started, completed, lock, expires) = match t.status {
                    Status::Running => (
                        Some(created),
                        None,
                        Some(t.claim_lock.clone().unwrap_or_else(|| "seed-host:1".into())),
                        Some(now + 365 * 86_400),
                    ),
                    Status::Done | Status::Archived => (Some(created), Some(now), None, None),
                    _ => (None, None, None, None),
                };
                c.exec(
                    "INSERT INTO tasks (id, title, assignee, status, priority, created_by, \
                    created_at,
                            started_at, completed_at, workspace_kind, claim_lock, claim_expires)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'seed', ?6, ?7, ?8, 'scratch', ?9, ?10)",
                    args![
                        id,
                        t.title,
                        t.assignee,
                        t.status.as_str(),
                        t.priority,
                        created,
                        started,
                        completed,
                        lock,
                        expires
                    ],
                )?;
                add_event(
                    c,
                    &id,
                    None,
                    "created",
                    obj! {"assignee" => t.assignee},
                    created,
                )?;
                if t.status == Status::Blocked {
                    // A human's block, as `block` records it: sticky for every reader
                    // (Hermes' readiness recompute leaves it alone too).
                    add_event(
                        c,
                        &id,
                        None,
                        "blocked",
                        obj! {
                            "reason" => "seeded", "kind" => serde_json::Value::Null,
                            "recurrences" => 1,
                        },
                        created,
                    )?;
                }
                seed_run(c, t, &id, (lock, expires), created, now)?;
                for &p in &t.parents {
                    let parent = ids.get(p).ok_or_else(|| {
                        KernelError::invalid("parents", format!("index {p} is not an earlier task"))
                    })?;
                    c.exec(
                        "INSERT INTO task_links (parent_id, child_id) VALUES (?1, ?2)",
                        args![parent, id],
                    )?;
                }
                ids.push(id);
            }
            Ok(ids)
        })
    }
}

/// The run a seeded task has: an open one (current) for `running`, a closed `completed` one
/// for `done` and `archived`, none otherwise.
fn seed_run(
    c: &Tx,
    t: &SeedTask,
    id: &str,
    (lock, expires): (Option<String>, Option<i64>),
    created: i64,
    now: i64,
) -> Result<()> {
    match t.status {
        Status::Running => {
            let rid = insert_run(
                c,
                args![
                    id,
                    t.assignee,
                    "running",
                    lock,
                    expires,
                    created,
                    None::<i64>,
                    None::<String>,
                    None::<String>
                ],
            )?;
            c.exec(
                "UPDATE tasks SET current_run_id=?1 WHERE id=?2",
                args![rid, id],
            )?;
        }
        Status::Done | Status::Archived => {
            insert_run(
                c,
                args![
                    id,
                    t.assignee,
                    "done",
                    None::<String>,
                    None::<i64>,
                    created,
                    now,
                    "completed",
                    "seeded"
                ],
            )?;
        }
        _ => {}
    }
    Ok(())
}

/// Insert one seeded run (task, profile, status, claim, expiry, start, end, outcome, summary).
fn insert_run(c: &Tx, a: &[&dyn crate::kernel::store::Param]) -> Result<i64> {
    c.insert_id(
        "INSERT INTO task_runs (task_id, profile, status, claim_lock, claim_expires, started_at,
                ended_at, outcome, summary)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
        a,
    )
}
