//! Claiming and holding a task: the claim CAS (parents checked first, a stale open run closed,
//! a run row opened), claim extension and worker heartbeats, manual reclaim, and recording a
//! spawned worker's pid.

use serde_json::{Map, Value, json};

use super::{Claim, Reclaimed, stale_guard, ttl_checked};
use crate::kernel::board::{Board, add_event, load_task};
use crate::kernel::error::{KernelError, Result};
use crate::kernel::graph::parents_satisfied_tx;
use crate::kernel::runs::end_run;
use crate::kernel::store::Tx;
use crate::kernel::types::{RunOutcome, Status, Task};
use crate::kernel::validate as v;
use crate::{args, leave_running, obj};

/// A ready task whose parents turn out unfinished goes back to `todo` (event
/// `claim_rejected`); the refusal is returned for the caller to commit.
fn reject_unready(c: &Tx, task_id: &str, now: i64) -> Result<KernelError> {
    c.exec(
        "UPDATE tasks SET status='todo' WHERE id=?1 AND status='ready'",
        args![task_id],
    )?;
    add_event(
        c,
        task_id,
        None,
        "claim_rejected",
        obj! {"reason" => "parents_not_done"},
        now,
    )?;
    Ok(KernelError::refused(
        task_id,
        "claim",
        "a parent is not done yet; the task was moved back to todo",
    ))
}

/// Open the run of a claim and point the task at it. Returns the run id.
fn open_run(c: &Tx, t: &Task, lock: &str, expires: i64, now: i64) -> Result<i64> {
    let run_id = c.insert_id(
        "INSERT INTO task_runs (task_id, profile, step_key, status, claim_lock, claim_expires, \
        max_runtime_seconds, started_at)
         VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7) RETURNING id",
        args![
            t.id,
            t.assignee,
            t.current_step_key,
            lock,
            expires,
            t.max_runtime_seconds,
            now
        ],
    )?;
    c.exec(
        "UPDATE tasks SET current_run_id=?1 WHERE id=?2",
        args![run_id, t.id],
    )?;
    Ok(run_id)
}

/// The claim transaction body. The outer `Err` aborts (rolls back) the transaction; the inner
/// `Err` is a refusal whose bookkeeping — the `claim_rejected` demotion — must be committed.
pub(crate) fn claim_tx(
    c: &Tx,
    task_id: &str,
    from: Status,
    lock: &str,
    ttl: i64,
    now: i64,
) -> Result<Result<Claim>> {
    let t = c.lock_task(task_id)?;
    if t.status != from || t.claim_lock.is_some() {
        return Err(KernelError::refused(
            task_id,
            "claim",
            format!(
                "status={} lock={}; only unclaimed {from} tasks can be claimed",
                t.status,
                t.claim_lock.as_deref().unwrap_or("(none)")
            ),
        ));
    }
    if from == Status::Ready && !parents_satisfied_tx(c, task_id)? {
        return reject_unready(c, task_id, now).map(Err);
    }
    if t.current_run_id.is_some() {
        end_run(
            c,
            &t,
            RunOutcome::Reclaimed,
            "reclaimed",
            Some("invariant recovery on re-claim"),
            None,
            None,
            now,
        )?;
    }
    let expires = now + ttl;
    let n = c.exec(
        "UPDATE tasks SET status='running', claim_lock=?1, claim_expires=?2,
                started_at=COALESCE(started_at, ?3), worker_pid=NULL, worker_started_at=NULL, \
                last_heartbeat_at=NULL
         WHERE id=?4 AND status=?5 AND claim_lock IS NULL",
        args![lock, expires, now, task_id, from.as_str()],
    )?;
    if n != 1 {
        return Err(KernelError::refused(
            task_id,
            "claim",
            "another worker claimed it first",
        ));
    }
    let run_id = open_run(c, &t, lock, expires, now)?;
    let mut payload = obj! {"lock" => lock, "expires" => expires, "run_id" => run_id};
    if from == Status::Review {
        payload.insert("source_status".into(), json!("review"));
    }
    add_event(c, task_id, Some(run_id), "claimed", payload, now)?;
    Ok(Ok(Claim {
        task_id: task_id.to_string(),
        run_id,
        lock: lock.to_string(),
        expires,
    }))
}

pub(crate) fn reclaim_tx(
    c: &Tx,
    t: &Task,
    reason: Option<&str>,
    termination: Map<String, Value>,
    now: i64,
) -> Result<Reclaimed> {
    let error = match reason {
        Some(r) => format!("manual_reclaim: {r}"),
        None => format!(
            "manual_reclaim lock={}",
            t.claim_lock.as_deref().unwrap_or("(none)")
        ),
    };
    let lane = crate::kernel::review::run_is_review_lane(c, t)?;
    let run_id = end_run(
        c,
        t,
        RunOutcome::Reclaimed,
        "reclaimed",
        None,
        Some(&error),
        Some(&termination).filter(|m| !m.is_empty()),
        now,
    )?;
    let n = c.exec(
        leave_running!(
            "status=?3, last_heartbeat_at=NULL, consecutive_failures=0, last_failure_error=NULL",
            "id=?1 AND claim_lock IS NOT DISTINCT FROM ?2 AND status IN \
            ('running','ready','blocked')"
        ),
        args![t.id, t.claim_lock, if lane { "review" } else { "ready" }],
    )?;
    if n != 1 {
        return Err(KernelError::refused(
            &t.id,
            "reclaim",
            "the claim changed underneath; retry",
        ));
    }
    let mut payload = obj! {
        "manual" => true, "reason" => reason, "prev_lock" => t.claim_lock,
        "prev_pid" => t.worker_pid,
    };
    if lane {
        payload.insert("retry_status".into(), json!("review"));
    }
    payload.extend(termination);
    add_event(c, &t.id, run_id, "reclaimed", payload, now)?;
    Ok(Reclaimed {
        task_id: t.id.clone(),
        run_id,
        prev_lock: t.claim_lock.clone(),
        prev_pid: t.worker_pid,
    })
}

impl Board {
    /// Claim a `ready` task for this handle's claimer with a TTL (default from
    /// `HERMES_KANBAN_CLAIM_TTL_SECONDS`, else 900 s): CAS on `status='ready' AND claim_lock IS
    /// NULL`, opens a run, event `claimed`. A task whose parents turn out unfinished is moved
    /// back to `todo` (event `claim_rejected`) and the claim is refused.
    pub fn claim_task(&self, task_id: &str, ttl: Option<i64>) -> Result<Claim> {
        let lock = self.claimer().to_string();
        self.claim_task_as(task_id, ttl, &lock)
    }

    /// [`Board::claim_task`] with an explicit claim-lock string.
    pub fn claim_task_as(&self, task_id: &str, ttl: Option<i64>, lock: &str) -> Result<Claim> {
        let ttl = ttl_checked(ttl, self.default_claim_ttl())?;
        let lock = v::short_name("claim_lock", Some(lock))?
            .ok_or_else(|| KernelError::invalid("claim_lock", "must not be empty"))?;
        let now = self.now();
        self.write(|c| claim_tx(c, task_id, Status::Ready, &lock, ttl, now))?
    }

    /// Claim up to `limit` of the next ready tasks (optionally only `assignee`'s) for `lock`, in
    /// one transaction, in claim order ([`Tx::claim_next`]: on PostgreSQL rows another claimer
    /// holds are skipped, not waited for). A task whose parents turn out unfinished is moved
    /// back to `todo` as in [`Board::claim_task`] and skipped. Returns the claims made (empty:
    /// nothing ready).
    pub fn claim_next(
        &self,
        assignee: Option<&str>,
        limit: usize,
        ttl: Option<i64>,
        lock: &str,
    ) -> Result<Vec<Claim>> {
        let ttl = ttl_checked(ttl, self.default_claim_ttl())?;
        let lock = v::short_name("claim_lock", Some(lock))?
            .ok_or_else(|| KernelError::invalid("claim_lock", "must not be empty"))?;
        let now = self.now();
        self.write(|c| {
            let mut out = Vec::new();
            for id in c.claim_next(assignee, limit)? {
                if let Ok(claim) = claim_tx(c, &id, Status::Ready, &lock, ttl, now)? {
                    out.push(claim);
                }
            }
            Ok(out)
        })
    }

    /// Claim a `review` task (dispatcher review queue): no parent check; event `claimed` with
    /// `source_status: review`.
    pub fn claim_review_task(&self, task_id: &str, ttl: Option<i64>) -> Result<Claim> {
        let lock = self.claimer().to_string();
        self.claim_review_task_as(task_id, ttl, &lock)
    }

    /// [`Board::claim_review_task`] with an explicit claim-lock string.
    pub fn claim_review_task_as(
        &self,
        task_id: &str,
        ttl: Option<i64>,
        lock: &str,
    ) -> Result<Claim> {
        let ttl = ttl_checked(ttl, self.default_claim_ttl())?;
        let lock = v::short_name("claim_lock", Some(lock))?
            .ok_or_else(|| KernelError::invalid("claim_lock", "must not be empty"))?;
        let now = self.now();
        self.write(|c| claim_tx(c, task_id, Status::Review, &lock, ttl, now))?
    }

    /// Extend a running task's claim (task and open run) if `claimer` holds it. Returns the new
    /// expiry.
    pub fn heartbeat_claim(&self, task_id: &str, ttl: Option<i64>, claimer: &str) -> Result<i64> {
        let ttl = ttl_checked(ttl, self.default_claim_ttl())?;
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            let expires = now + ttl;
            let n = c.exec(
                "UPDATE tasks SET claim_expires=?1 WHERE id=?2 AND status='running' AND \
                claim_lock=?3",
                args![expires, task_id, claimer],
            )?;
            if n != 1 {
                return Err(KernelError::refused(
                    task_id,
                    "extend the claim of",
                    format!(
                        "status={} lock={}; only the claim holder can extend a running task's \
                        claim",
                        t.status,
                        t.claim_lock.as_deref().unwrap_or("(none)")
                    ),
                ));
            }
            if let Some(rid) = t.current_run_id {
                c.exec(
                    "UPDATE task_runs SET claim_expires=?1 WHERE id=?2 AND ended_at IS NULL",
                    args![expires, rid],
                )?;
            }
            Ok(expires)
        })
    }

    /// Record a worker heartbeat on a running task (task + open run `last_heartbeat_at`),
    /// event `heartbeat {note?}`. With `expected_run_id`, refused if the run changed — and,
    /// being the run's own worker, its claim is extended by the default TTL as well.
    pub fn heartbeat_worker(
        &self,
        task_id: &str,
        note: Option<&str>,
        expected_run_id: Option<i64>,
    ) -> Result<()> {
        self.heartbeat_and_extend(task_id, note, expected_run_id, None)
            .map(drop)
    }

    /// [`Board::heartbeat_worker`] and the claim extension of [`Board::heartbeat_claim`]
    /// (`claim_expires = now +` the default TTL) for a caller who proves the claim: `claimer`
    /// is its lock, or `expected_run_id` is its open run (a worker's `HERMES_KANBAN_RUN_ID`, a
    /// remote worker's run token) — one transaction: a stale run, a wrong claimer or a bad
    /// note refuses the whole heartbeat, so a reclaimed worker can neither extend its
    /// successor's claim nor leave half a heartbeat behind. A heartbeat that proves neither
    /// (an operator's) only records the heartbeat. Returns the new claim expiry when the claim
    /// was extended. This is what keeps a long job's claim from expiring — and so from being
    /// reclaimed by another host — while it heartbeats.
    pub fn heartbeat_and_extend(
        &self,
        task_id: &str,
        note: Option<&str>,
        expected_run_id: Option<i64>,
        claimer: Option<&str>,
    ) -> Result<Option<i64>> {
        let note = v::optional_text("note", note, v::NOTE_MAX_BYTES)?;
        let ttl = self.default_claim_ttl();
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            if t.status != Status::Running {
                return Err(KernelError::refused(
                    task_id,
                    "heartbeat",
                    format!(
                        "status is '{}'; heartbeats are only for running tasks",
                        t.status
                    ),
                ));
            }
            stale_guard(&t, expected_run_id)?;
            let extend = match claimer {
                Some(l) if t.claim_lock.as_deref() != Some(l) => {
                    return Err(KernelError::refused(
                        task_id,
                        "extend the claim of",
                        format!(
                            "status={} lock={}; only the claim holder can extend a running task's \
                            claim",
                            t.status,
                            t.claim_lock.as_deref().unwrap_or("(none)")
                        ),
                    ));
                }
                Some(_) => true,
                None => expected_run_id.is_some(),
            };
            let expires = if extend {
                let expires = now + ttl;
                c.exec(
                    "UPDATE tasks SET claim_expires=?1 WHERE id=?2 AND status='running' AND \
                        current_run_id IS NOT DISTINCT FROM ?3",
                    args![expires, task_id, t.current_run_id],
                )?;
                if let Some(rid) = t.current_run_id {
                    c.exec(
                        "UPDATE task_runs SET claim_expires=?1 WHERE id=?2 AND ended_at IS \
                            NULL",
                        args![expires, rid],
                    )?;
                }
                Some(expires)
            } else {
                None
            };
            c.exec(
                "UPDATE tasks SET last_heartbeat_at=?1 WHERE id=?2 AND status='running' AND \
                current_run_id IS NOT DISTINCT FROM ?3",
                args![now, task_id, t.current_run_id],
            )?;
            if let Some(rid) = t.current_run_id {
                c.exec(
                    "UPDATE task_runs SET last_heartbeat_at=?1 WHERE id=?2",
                    args![now, rid],
                )?;
            }
            let payload = match &note {
                Some(n) => obj! {"note" => n},
                None => Map::new(),
            };
            add_event(c, task_id, t.current_run_id, "heartbeat", payload, now)?;
            Ok(expires)
        })
    }

    /// Manually reclaim a running (or still-claimed) task back to `ready`: closes the run as
    /// `reclaimed`, resets the failure counter, event `reclaimed {manual: true, …}`. Process
    /// termination is the caller's job; its report goes in `termination`.
    pub fn reclaim_task(
        &self,
        task_id: &str,
        reason: Option<&str>,
        termination: Map<String, Value>,
    ) -> Result<Reclaimed> {
        let reason = v::optional_text("reason", reason, v::REASON_MAX_BYTES)?;
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            if !t.has_worker() {
                return Err(KernelError::refused(
                    task_id,
                    "reclaim",
                    format!(
                        "status is '{}' and it holds no claim; only running tasks can be reclaimed",
                        t.status
                    ),
                ));
            }
            reclaim_tx(c, &t, reason.as_deref(), termination, now)
        })
    }

    /// Record the pid of a spawned worker on the task and its open run (event `spawned`).
    /// Refused if the run is no longer current.
    pub fn set_worker_pid(&self, task_id: &str, run_id: i64, pid: i64) -> Result<()> {
        // A pid <= 0 would make a later kill() signal a process group or every process.
        let pid = v::in_range("pid", pid, 1..=i32::MAX as i64)?;
        let now = self.now();
        self.write(|c| {
            pin_worker_pid_tx(c, task_id, run_id, pid)?;
            add_event(
                c,
                task_id,
                Some(run_id),
                "spawned",
                obj! {"pid" => pid},
                now,
            )?;
            Ok(())
        })
    }
}

/// Write `pid` as the worker of `task_id`'s open run `run_id` — on the task and the run, with
/// Hermes' fingerprint cleared (so Hermes never judges our pid by its own) — or refuse with
/// [`KernelError::StaleRun`] when that run is no longer the task's open run.
pub(crate) fn pin_worker_pid_tx(c: &Tx, task_id: &str, run_id: i64, pid: i64) -> Result<()> {
    let n = c.exec(
        "UPDATE tasks SET worker_pid=?1, worker_started_at=NULL WHERE id=?2 AND \
        status='running' AND current_run_id=?3",
        args![pid, task_id, run_id],
    )?;
    if n != 1 {
        let t = load_task(c, task_id)?;
        return Err(KernelError::stale_run(task_id, run_id, t.current_run_id));
    }
    c.exec(
        "UPDATE task_runs SET worker_pid=?1, worker_started_at=NULL WHERE id=?2",
        args![pid, run_id],
    )?;
    Ok(())
}
