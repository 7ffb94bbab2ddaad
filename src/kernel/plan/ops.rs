//! The spawn policy's board operations: the queues it decides over (one read), the dry run's
//! plan of a whole tick, the cap-guarded spawn claim and the change probe.

use std::collections::HashMap;

use serde::Serialize;

use super::{
    Attempt, CapClaim, Lane, Queued, SpawnActions, SpawnCaps, SpawnOutcome, SpawnPolicy, SpawnQueue,
};
use crate::args;
use crate::kernel::board::Board;
use crate::kernel::error::{KernelError, Result};
use crate::kernel::graph::promotable_ids;
use crate::kernel::lifecycle::claim_tx;
use crate::kernel::store::{Arg, Row, Tx, arg_refs};
use crate::kernel::types::{Status, lenient_i64};
use crate::kernel::validate as v;

/// The dry run's actions: every step succeeds, nothing is written.
struct Preview<'b>(&'b Board);

impl SpawnActions for Preview<'_> {
    fn respawn_guard(&mut self, task_id: &str, cooldown: i64) -> Result<Option<&'static str>> {
        self.0.respawn_guard(task_id, cooldown)
    }
    fn assign_default(&mut self, _: &str, _: &str) -> bool {
        true
    }
    fn spawn(&mut self, _: &str, _: &str, _: Lane) -> Attempt {
        Attempt::Spawned {
            workspace: String::new(),
        }
    }
    fn warn(&mut self, task_id: &str, what: &str, e: &KernelError) {
        tracing::warn!("dispatch dry run: {what} {task_id}: {e}");
    }
}

/// What a tick would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DispatchPlan {
    /// Running tasks whose claim has expired.
    pub expired_claims: Vec<String>,
    /// `todo` tasks whose parents are all done or archived.
    pub promotable: Vec<String>,
    /// Tasks running before the tick.
    pub running: usize,
    /// What the spawn policy would do, promotable tasks included in their lanes.
    pub spawn: SpawnOutcome,
}

/// Dispatch order of a queue row: priority descending, then `created_at`, then insertion.
type QueueRow = (Queued, i64, i64, i64);

const QUEUE_COLUMNS: &str = "id, assignee, priority, created_at, _seq_";

fn queue_row(r: &Row<'_>) -> Result<QueueRow> {
    Ok((
        Queued {
            id: r.get(0)?,
            assignee: r.get(1)?,
        },
        lenient_i64(r, 2).unwrap_or(0),
        lenient_i64(r, 3).unwrap_or(0),
        lenient_i64(r, 4).unwrap_or(0),
    ))
}

/// Unclaimed tasks in `status`, in dispatch order.
fn queue_tx(c: &Tx, status: Status) -> Result<Vec<QueueRow>> {
    c.map(
        &format!(
            "SELECT {QUEUE_COLUMNS} FROM tasks WHERE status=?1 AND claim_lock IS NULL
             ORDER BY priority DESC, created_at ASC, _seq_ ASC"
        ),
        args![status.as_str()],
        queue_row,
    )
}

/// Running task counts: the total and per assignee.
fn running_counts_tx(c: &Tx) -> Result<(usize, HashMap<String, usize>)> {
    let rows: Vec<(Option<String>, i64)> = c.rows(
        "SELECT assignee, count(*) FROM tasks WHERE status='running' GROUP BY assignee",
        args![],
    )?;
    let mut total = 0usize;
    let mut per = HashMap::new();
    for (a, n) in rows {
        let n = usize::try_from(n).unwrap_or(0);
        total += n;
        if let Some(a) = a {
            per.insert(a, n);
        }
    }
    Ok((total, per))
}

/// Running tasks whose claim lock is `<host>:<pid>` — this host's share of the board.
fn host_running_tx(c: &Tx, host: Option<&str>) -> Result<usize> {
    let Some(h) = host else {
        return Ok(0);
    };
    let prefix = format!("{h}:");
    let n: i64 = c.one(
        "SELECT count(*) FROM tasks
         WHERE status='running' AND substr(claim_lock, 1, length(?1)) = ?1",
        args![prefix],
    )?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// How many ids one `IN (…)` list binds (well under every backend's parameter limit).
const IN_CHUNK: usize = 500;

/// Add the unclaimed `todo` tasks `ids` (about to be promoted) to the lanes they would be
/// promoted to, keeping dispatch order.
fn add_promotable_tx(
    c: &Tx,
    ids: &[String],
    ready: &mut Vec<QueueRow>,
    review: &mut Vec<QueueRow>,
) -> Result<()> {
    for chunk in ids.chunks(IN_CHUNK) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "SELECT {QUEUE_COLUMNS} FROM tasks WHERE status='todo' AND claim_lock IS NULL
             AND id IN ({})",
            marks.join(", ")
        );
        let vals: Vec<Arg> = chunk.iter().map(|id| Arg::Text(id.clone())).collect();
        for row in c.map(&sql, &arg_refs(&vals), queue_row)? {
            match crate::kernel::review::resume_status_tx(c, &row.0.id)? {
                Status::Review => review.push(row),
                _ => ready.push(row),
            }
        }
    }
    for q in [ready, review] {
        q.sort_by_key(|(_, prio, created, seq)| (std::cmp::Reverse(*prio), *created, *seq));
    }
    Ok(())
}

/// The queue `policy` decides over; the queues are not read when it would spawn nothing.
fn spawn_queue_tx(c: &Tx, policy: &SpawnPolicy, promotable: &[String]) -> Result<SpawnQueue> {
    let (running, per_profile) = running_counts_tx(c)?;
    let host_running = match policy.max_in_progress_per_host {
        Some(_) => host_running_tx(c, policy.host.as_deref())?,
        None => 0,
    };
    if policy.budget(running, host_running).is_none_or(|b| b == 0) {
        return Ok(SpawnQueue {
            running,
            per_profile,
            host_running,
            ..Default::default()
        });
    }
    let mut ready = queue_tx(c, Status::Ready)?;
    let mut review = if policy.no_review_lane {
        Vec::new()
    } else {
        queue_tx(c, Status::Review)?
    };
    if !promotable.is_empty() {
        add_promotable_tx(c, promotable, &mut ready, &mut review)?;
    }
    let strip = |v: Vec<QueueRow>| v.into_iter().map(|r| r.0).collect();
    Ok(SpawnQueue {
        running,
        per_profile,
        host_running,
        ready: strip(ready),
        review: strip(review),
    })
}

impl Board {
    /// The running counts and the queues a tick's spawn step decides over under `policy`,
    /// in one read (the queues stay empty when the policy would spawn nothing).
    pub fn spawn_queue(&self, policy: &SpawnPolicy) -> Result<SpawnQueue> {
        self.read(|c| spawn_queue_tx(c, policy, &[]))
    }

    /// Compute the plan of one tick without writing anything: expired claims, promotable
    /// tasks, and what the spawn policy would do with the promotable tasks already promoted.
    pub fn plan_dispatch(&self, policy: &SpawnPolicy) -> Result<DispatchPlan> {
        let now = self.now();
        let (expired_claims, promotable, queue) = self.read(|c| {
            // Light rows only: a board of 100k tasks has thousands in the queue.
            let expired: Vec<String> = c
                .map(
                    "SELECT id, claim_expires FROM tasks WHERE status='running'",
                    args![],
                    |r| Ok((r.get::<String>(0)?, lenient_i64(r, 1))),
                )?
                .into_iter()
                .filter(|(_, e)| e.is_some_and(|e| e < now))
                .map(|(id, _)| id)
                .collect();
            let promotable = promotable_ids(c)?;
            let queue = spawn_queue_tx(c, policy, &promotable)?;
            Ok((expired, promotable, queue))
        })?;
        let running = queue.running;
        let spawn = policy.run(policy.root(self.env()), queue, &mut Preview(self));
        Ok(DispatchPlan {
            expired_claims,
            promotable,
            running,
            spawn,
        })
    }

    /// Claim a task for a spawn (from `lane`; as `claim_task_as` / `claim_review_task_as`),
    /// first re-checking `caps` under the board lock in the same transaction: a board at
    /// `max_running`, a claiming host (the host part of `lock`) at its `per_host` cap, or a
    /// ready task whose assignee is at its per-profile cap, is not claimed and nothing is
    /// written. So the caps hold across hosts, not only under one tick's flock.
    pub fn claim_under_caps(
        &self,
        task_id: &str,
        lane: Lane,
        ttl: Option<i64>,
        lock: &str,
        caps: SpawnCaps,
    ) -> Result<CapClaim> {
        let ttl = match ttl {
            None => self.default_claim_ttl(),
            Some(t) => v::in_range("ttl", t, v::TTL_RANGE)?,
        };
        let lock = v::short_name("claim_lock", Some(lock))?
            .ok_or_else(|| KernelError::invalid("claim_lock", "must not be empty"))?;
        let now = self.now();
        self.write(|c| {
            c.lock_board()?;
            let (running, per) = running_counts_tx(c)?;
            if caps.max_running.is_some_and(|cap| running >= cap) {
                return Ok(Ok(CapClaim::AtCap { running }));
            }
            if let Some(cap) = caps.per_host {
                let mine = host_running_tx(c, crate::kernel::claim_host(&lock))?;
                if mine >= cap {
                    return Ok(Ok(CapClaim::HostAtCap { running: mine }));
                }
            }
            if lane == Lane::Ready
                && let Some(cap) = caps.per_profile
                && let Some(a) = c.lock_task(task_id)?.assignee
            {
                let n = per.get(&a).copied().unwrap_or(0);
                if n >= cap {
                    return Ok(Ok(CapClaim::ProfileAtCap { running: n }));
                }
            }
            claim_tx(c, task_id, lane.status(), &lock, ttl, now).map(|r| r.map(CapClaim::Claimed))
        })?
    }

    /// A cheap probe of whether anything a dispatcher acts on may have changed: the newest
    /// event id (one primary-key `max`; every task write the dispatcher cares about — created,
    /// promoted, completed, unblocked, reclaimed, assigned — records an event, whichever
    /// process or tool wrote it). Equal markers: nothing new.
    pub fn change_marker(&self) -> Result<i64> {
        self.read(|c| c.one("SELECT COALESCE(max(id), 0) FROM task_events", args![]))
    }
}
