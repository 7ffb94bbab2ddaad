//! Expired claims and silent runs (REF §8.1, §8.2): renewing a live worker's claim before it
//! expires, extending an expired claim held by a live, heartbeating worker, deferring a reclaim
//! when the old worker survived termination, releasing an expired claim, and releasing a run
//! that went without a heartbeat. Each is a CAS on the lock (and the expiry or run) the tick
//! judged, so a claim that moved on meanwhile is left alone. No failure is counted.

use serde_json::{Map, Value};

use super::procs::close_proc;
use super::settle::mark_retry;
use crate::kernel::board::{Board, add_event, load_task};
use crate::kernel::error::Result;
use crate::kernel::review::run_is_review_lane;
use crate::kernel::runs::end_run;
use crate::kernel::store::Tx;
use crate::kernel::types::RunOutcome;
use crate::kernel::validate as v;
use crate::{args, leave_running, obj};

fn claim_cas_expired(
    c: &Tx,
    task_id: &str,
    lock: Option<&str>,
    new_expires: i64,
    now: i64,
) -> Result<bool> {
    let n = c.exec(
        "UPDATE tasks SET claim_expires=?1
         WHERE id=?2 AND status='running' AND claim_lock IS NOT DISTINCT FROM ?3 AND claim_expires \
         < ?4",
        args![new_expires, task_id, lock, now],
    )?;
    Ok(n == 1)
}

/// Carry a task's new claim expiry over to its open run.
fn extend_open_run(c: &Tx, run_id: Option<i64>, expires: i64) -> Result<()> {
    if let Some(rid) = run_id {
        c.exec(
            "UPDATE task_runs SET claim_expires=?1 WHERE id=?2 AND ended_at IS NULL",
            args![expires, rid],
        )?;
    }
    Ok(())
}

impl Board {
    /// Extend an expired claim held by a live, heartbeating host-local worker by `ttl` seconds
    /// (task and open run; CAS on the lock and on the claim still being expired), event
    /// `claim_extended`. Returns the new expiry, or `None` when the claim changed meanwhile.
    pub fn extend_expired_claim(
        &self,
        task_id: &str,
        lock: &str,
        ttl: i64,
        pid: Option<i64>,
    ) -> Result<Option<i64>> {
        let ttl = v::in_range("ttl", ttl, v::TTL_RANGE)?;
        let now = self.now();
        self.write(|c| {
            let expires = now + ttl;
            if !claim_cas_expired(c, task_id, Some(lock), expires, now)? {
                return Ok(None);
            }
            let t = load_task(c, task_id)?;
            extend_open_run(c, t.current_run_id, expires)?;
            add_event(
                c,
                task_id,
                t.current_run_id,
                "claim_extended",
                obj! {"lock" => lock, "expires" => expires, "pid" => pid},
                now,
            )?;
            Ok(Some(expires))
        })
    }

    /// Renew a live claim of this host's worker before it expires: `claim_expires = now + ttl`
    /// on the task and its open run, CAS on the lock and on the claim not having expired yet
    /// (an expired one goes through [`Board::extend_expired_claim`] or is released). No event:
    /// a renewal is the host's lease on its own worker, taken every half TTL. False when the
    /// claim changed meanwhile.
    pub fn renew_claim(&self, task_id: &str, lock: &str, ttl: i64) -> Result<bool> {
        let ttl = v::in_range("ttl", ttl, v::TTL_RANGE)?;
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            let expires = now + ttl;
            let n = c.exec(
                "UPDATE tasks SET claim_expires=?1
                 WHERE id=?2 AND status='running' AND claim_lock=?3 AND claim_expires >= ?4",
                args![expires, task_id, lock, now],
            )?;
            if n == 1 {
                extend_open_run(c, t.current_run_id, expires)?;
            }
            Ok(n == 1)
        })
    }

    /// Push an expired claim back by `seconds` because its worker survived termination
    /// (prevents a duplicate worker), event `reclaim_deferred` with the termination report.
    /// False when the claim changed meanwhile.
    pub fn defer_reclaim(
        &self,
        task_id: &str,
        lock: Option<&str>,
        seconds: i64,
        termination: Map<String, Value>,
    ) -> Result<bool> {
        let now = self.now();
        self.write(|c| {
            let expires = now + seconds.max(1);
            let ok = c.exec(
                "UPDATE tasks SET claim_expires=?1
                 WHERE id=?2 AND status='running' AND claim_lock IS NOT DISTINCT FROM ?3",
                args![expires, task_id, lock],
            )? == 1;
            if !ok {
                return Ok(false);
            }
            let t = load_task(c, task_id)?;
            extend_open_run(c, t.current_run_id, expires)?;
            let mut payload =
                obj! {"lock" => lock, "defer_seconds" => seconds, "expires" => expires};
            payload.extend(termination);
            add_event(
                c,
                task_id,
                t.current_run_id,
                "reclaim_deferred",
                payload,
                now,
            )?;
            Ok(true)
        })
    }

    /// Release an expired claim back to `ready` (REF §8.1): CAS on the old lock and on the
    /// claim still being expired; the run closes `reclaimed` with error `stale_lock=<lock>` and
    /// the termination report as metadata; event `reclaimed`. No failure is counted. False when
    /// the claim changed meanwhile.
    pub fn release_stale_claim(
        &self,
        task_id: &str,
        lock: Option<&str>,
        termination: Map<String, Value>,
    ) -> Result<bool> {
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            let lane = run_is_review_lane(c, &t)?;
            let n = c.exec(
                leave_running!(
                    "status=?4, last_heartbeat_at=NULL",
                    "id=?1 AND status='running' AND claim_lock IS NOT DISTINCT FROM ?2 AND \
                    claim_expires < ?3"
                ),
                args![task_id, lock, now, if lane { "review" } else { "ready" }],
            )?;
            if n != 1 {
                return Ok(false);
            }
            let error = format!("stale_lock={}", lock.unwrap_or("(none)"));
            let meta = Some(&termination).filter(|m| !m.is_empty());
            let rid = end_run(
                c,
                &t,
                RunOutcome::Reclaimed,
                "reclaimed",
                None,
                Some(&error),
                meta,
                now,
            )?;
            close_proc(c, t.current_run_id, "reclaimed", now)?;
            let mut payload = mark_retry(
                obj! {"stale_lock" => lock, "worker_pid" => t.worker_pid},
                lane,
            );
            payload.extend(termination);
            add_event(c, task_id, rid, "reclaimed", payload, now)?;
            Ok(true)
        })
    }

    /// Release a running task whose run has gone without a heartbeat for too long (REF §8.2):
    /// CAS on the run and lock → `ready`; the run closes `stale` with `error`; event `stale`.
    /// No failure is counted. False when the task moved on meanwhile.
    pub fn release_stale_run(
        &self,
        task_id: &str,
        run_id: i64,
        lock: Option<&str>,
        error: &str,
        termination: Map<String, Value>,
    ) -> Result<bool> {
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            let lane = run_is_review_lane(c, &t)?;
            let n = c.exec(
                leave_running!(
                    "status=?4, last_heartbeat_at=NULL",
                    "id=?1 AND status='running' AND current_run_id=?2 AND claim_lock IS NOT \
                    DISTINCT FROM ?3"
                ),
                args![task_id, run_id, lock, if lane { "review" } else { "ready" }],
            )?;
            if n != 1 {
                return Ok(false);
            }
            let meta = Some(&termination).filter(|m| !m.is_empty());
            let rid = end_run(
                c,
                &t,
                RunOutcome::Stale,
                "stale",
                None,
                Some(error),
                meta,
                now,
            )?;
            close_proc(c, Some(run_id), "stale", now)?;
            let mut payload =
                mark_retry(obj! {"error" => error, "worker_pid" => t.worker_pid}, lane);
            payload.extend(termination);
            add_event(c, task_id, rid, "stale", payload, now)?;
            Ok(true)
        })
    }
}
