//! The task state machine's transitions (REF §5.2, §6): claim (CAS + TTL + run row),
//! heartbeats, complete (hand-off, created-cards verification, stale-run guard), block (typed,
//! unblock-loop limit), unblock, schedule, promote, reclaim, and recording a spawned pid.
//! Each transition is one `BEGIN IMMEDIATE` transaction whose UPDATE carries the expected
//! state in its WHERE clause.

use super::store::Tx;
use regex_lite::Regex;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::board::{BLOCK_RECURRENCE_LIMIT, Board, add_event, load_task};
use super::comments::add_comment_tx;
use super::error::{KernelError, Result};
use super::graph::{parents_satisfied_tx, recompute_ready_tx};
use super::review::{live_claim_guard, resume_status_tx};
use super::runs::{end_run, synth_run};
use super::types::{BlockKind, RunOutcome, Status, Task};
use super::validate as v;
use crate::{args, leave_running, obj};

/// A successful claim.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    pub task_id: String,
    pub run_id: i64,
    pub lock: String,
    pub expires: i64,
}

/// Arguments of `complete_task`.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    pub task_id: String,
    pub summary: Option<String>,
    /// Must be a JSON object when present.
    pub metadata: Option<Value>,
    pub result: Option<String>,
    /// Ids of cards this task created; each is verified.
    pub created_cards: Vec<String>,
    /// Absolute paths of deliverables; merged into `metadata.artifacts`.
    pub artifacts: Vec<String>,
    /// Stale-worker guard: must equal the task's current run when given. It is also the proof
    /// that the caller owns the run (the live-claim guard lets the worker's own run through).
    pub expected_run_id: Option<i64>,
    /// Close a live worker's run anyway (operator override of the live-claim guard, UP §5).
    pub force: bool,
}

/// The note a review approval without a summary carries (as upstream Hermes, UP §4).
pub const REVIEW_APPROVED_NOTE: &str = "Review approved without additional evidence.";

/// Result of `complete_task`.
#[derive(Debug, Clone, Serialize)]
pub struct Completed {
    pub task_id: String,
    /// The closed (or synthesized) run, if any.
    pub run_id: Option<i64>,
    /// Children promoted to ready by this completion.
    pub promoted: Vec<String>,
    /// `t_…` references in the hand-off prose that name no task (advisory).
    pub phantom_refs: Vec<String>,
}

/// Arguments of `block_task`.
#[derive(Debug, Clone, Default)]
pub struct BlockRequest {
    pub task_id: String,
    pub reason: Option<String>,
    pub kind: Option<BlockKind>,
    pub expected_run_id: Option<i64>,
    /// When set, a `BLOCKED: <reason>` comment by this author is added in the same transaction.
    pub comment_author: Option<String>,
}

/// Result of `block_task`.
#[derive(Debug, Clone, Serialize)]
pub struct Blocked {
    pub task_id: String,
    pub run_id: Option<i64>,
    /// Where the task landed: `blocked`, `todo` (dependency) or `triage` (loop detected).
    pub status: Status,
    pub block_kind: Option<BlockKind>,
    pub recurrences: i64,
}

/// Options of `promote_task`.
#[derive(Debug, Clone, Default)]
pub struct PromoteOptions {
    pub force: bool,
    pub dry_run: bool,
    pub actor: Option<String>,
    pub reason: Option<String>,
}

/// Result of a reclaim.
#[derive(Debug, Clone, Serialize)]
pub struct Reclaimed {
    pub task_id: String,
    pub run_id: Option<i64>,
    pub prev_lock: Option<String>,
    pub prev_pid: Option<i64>,
}

fn stale_guard(t: &Task, expected: Option<i64>) -> Result<()> {
    if let Some(e) = expected
        && t.current_run_id != Some(e)
    {
        return Err(KernelError::StaleRun {
            task_id: t.id.clone(),
            expected: e,
            current: t
                .current_run_id
                .map(|r| r.to_string())
                .unwrap_or_else(|| "none".into()),
        });
    }
    Ok(())
}

fn ttl_checked(ttl: Option<i64>, default: i64) -> Result<i64> {
    match ttl {
        None => Ok(default),
        Some(t) => v::in_range("ttl", t, v::TTL_RANGE),
    }
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
        return Ok(Err(KernelError::refused(
            task_id,
            "claim",
            "a parent is not done yet; the task was moved back to todo",
        )));
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
                started_at=COALESCE(started_at, ?3), worker_pid=NULL, worker_started_at=NULL, last_heartbeat_at=NULL
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
    let run_id = c.insert_id(
        "INSERT INTO task_runs (task_id, profile, step_key, status, claim_lock, claim_expires, max_runtime_seconds, started_at)
         VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7) RETURNING id",
        args![task_id, t.assignee, t.current_step_key, lock, expires, t.max_runtime_seconds, now],
    )?;
    c.exec(
        "UPDATE tasks SET current_run_id=?1 WHERE id=?2",
        args![run_id, task_id],
    )?;
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
    let lane = super::review::run_is_review_lane(c, t)?;
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
            "id=?1 AND claim_lock IS NOT DISTINCT FROM ?2 AND status IN ('running','ready','blocked')"
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
    let mut payload = obj! {"manual" => true, "reason" => reason, "prev_lock" => t.claim_lock, "prev_pid" => t.worker_pid};
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

fn task_ref_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\bt_[a-f0-9]{8,}\b").expect("static regex"))
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
                "UPDATE tasks SET claim_expires=?1 WHERE id=?2 AND status='running' AND claim_lock=?3",
                args![expires, task_id, claimer],
            )?;
            if n != 1 {
                return Err(KernelError::refused(
                    task_id,
                    "extend the claim of",
                    format!(
                        "status={} lock={}; only the claim holder can extend a running task's claim",
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
    /// event `heartbeat {note?}`. With `expected_run_id`, refused if the run changed.
    pub fn heartbeat_worker(
        &self,
        task_id: &str,
        note: Option<&str>,
        expected_run_id: Option<i64>,
    ) -> Result<()> {
        self.heartbeat_and_extend(task_id, note, expected_run_id, None)
            .map(drop)
    }

    /// [`Board::heartbeat_worker`] and, when `claimer` is given, the claim extension of
    /// [`Board::heartbeat_claim`] (default TTL), in one transaction: a stale run, a wrong
    /// claimer or a bad note refuses the whole heartbeat, so a reclaimed worker can neither
    /// extend its successor's claim nor leave half a heartbeat behind. Returns the new claim
    /// expiry when the claim was extended.
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
                    format!("status is '{}'; heartbeats are only for running tasks", t.status),
                ));
            }
            stale_guard(&t, expected_run_id)?;
            let expires = match claimer {
                Some(l) if t.claim_lock.as_deref() != Some(l) => {
                    return Err(KernelError::refused(
                        task_id,
                        "extend the claim of",
                        format!(
                            "status={} lock={}; only the claim holder can extend a running task's claim",
                            t.status,
                            t.claim_lock.as_deref().unwrap_or("(none)")
                        ),
                    ));
                }
                Some(_) => {
                    let expires = now + ttl;
                    c.exec(
                        "UPDATE tasks SET claim_expires=?1 WHERE id=?2 AND status='running' AND current_run_id IS NOT DISTINCT FROM ?3",
                        args![expires, task_id, t.current_run_id],
                    )?;
                    if let Some(rid) = t.current_run_id {
                        c.exec(
                            "UPDATE task_runs SET claim_expires=?1 WHERE id=?2 AND ended_at IS NULL",
                            args![expires, rid],
                        )?;
                    }
                    Some(expires)
                }
                None => None,
            };
            c.exec(
                "UPDATE tasks SET last_heartbeat_at=?1 WHERE id=?2 AND status='running' AND current_run_id IS NOT DISTINCT FROM ?3",
                args![now, task_id, t.current_run_id],
            )?;
            if let Some(rid) = t.current_run_id {
                c.exec("UPDATE task_runs SET last_heartbeat_at=?1 WHERE id=?2", args![now, rid])?;
            }
            let payload = match &note {
                Some(n) => obj! {"note" => n},
                None => Map::new(),
            };
            add_event(c, task_id, t.current_run_id, "heartbeat", payload, now)?;
            Ok(expires)
        })
    }

    /// Complete a `running`, `ready` or `blocked` task with a hand-off (REF §5.2, §13.3).
    /// Verifies `created_cards` (a phantom records `completion_blocked_hallucination` and
    /// refuses, task unchanged), closes the open run as `completed` (or synthesizes one when a
    /// hand-off is given on a never-claimed task), resets failure and block counters, flags
    /// unknown `t_…` references in the prose, and promotes children — all in one transaction.
    pub fn complete_task(&self, req: Completion) -> Result<Completed> {
        let task_id = v::task_id("task_id", &req.task_id)?;
        let summary = v::optional_text("summary", req.summary.as_deref(), v::HANDOFF_MAX_BYTES)?;
        let result = v::optional_text("result", req.result.as_deref(), v::HANDOFF_MAX_BYTES)?;
        let mut metadata = v::metadata(req.metadata.as_ref())?;
        let mut cards: Vec<String> = Vec::new();
        for card in &req.created_cards {
            let card = v::task_id("created_cards", card)?;
            if !cards.contains(&card) {
                cards.push(card);
            }
        }
        let mut artifacts: Vec<String> = Vec::new();
        for a in &req.artifacts {
            let a = v::required_text("artifacts", a, 4096)?;
            if !std::path::Path::new(&a).is_absolute() {
                return Err(KernelError::invalid(
                    "artifacts",
                    format!("{a:?} is not an absolute path"),
                ));
            }
            if !artifacts.contains(&a) {
                artifacts.push(a);
            }
        }
        if !artifacts.is_empty() {
            let m = metadata.get_or_insert_with(Map::new);
            let mut merged: Vec<Value> = m
                .get("artifacts")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for a in &artifacts {
                if !merged.iter().any(|x| x.as_str() == Some(a)) {
                    merged.push(json!(a));
                }
            }
            m.insert("artifacts".into(), Value::Array(merged));
        }
        let now = self.now();
        enum Out {
            Done(Completed),
            Phantom(Vec<String>, Vec<String>),
            Empty,
        }
        let out = self.write(|c| {
            let t = c.lock_task(&task_id)?;
            if !matches!(t.status, Status::Running | Status::Ready | Status::Blocked | Status::Review) {
                return Err(KernelError::refused(
                    &task_id,
                    "complete",
                    format!("status is '{}'; only running, ready, blocked or review tasks can be completed", t.status),
                ));
            }
            stale_guard(&t, req.expected_run_id)?;
            let from_review = t.status == Status::Review;
            let mut verified = Vec::new();
            let mut phantom = Vec::new();
            for card in &cards {
                let ok = match load_task(c, card) {
                    Err(_) => false,
                    Ok(ct) => {
                        let by = ct.created_by.as_deref();
                        (by.is_some() && (by == t.assignee.as_deref() || by == Some(task_id.as_str())))
                            || c.exists(
                                "SELECT 1 FROM task_links WHERE parent_id=?1 AND child_id=?2",
                                args![task_id, card],
                            )?
                    }
                };
                if ok { verified.push(card.clone()) } else { phantom.push(card.clone()) }
            }
            if !phantom.is_empty() {
                let preview = v::first_line(summary.as_deref().or(result.as_deref()).unwrap_or(""), 200);
                add_event(
                    c,
                    &task_id,
                    None,
                    "completion_blocked_hallucination",
                    obj! {"phantom_cards" => phantom, "verified_cards" => verified, "summary_preview" => preview},
                    now,
                )?;
                return Ok(Out::Phantom(phantom, verified));
            }
            // UP §5: no completion without evidence (a review approval is exempt: the human is
            // the record). The refusal's event is committed; the task is unchanged.
            let substantive = |s: Option<&str>| s.is_some_and(|s| !s.trim().is_empty());
            if !from_review
                && !substantive(result.as_deref())
                && !substantive(summary.as_deref())
                && !substantive(t.result.as_deref())
            {
                add_event(
                    c,
                    &task_id,
                    None,
                    "completion_blocked_empty_result",
                    obj! {
                        "result_preview" => result.as_deref().map(|r| v::first_line(r, 200)).filter(|s| !s.is_empty()),
                        "summary_preview" => summary.as_deref().map(|s| v::first_line(s, 200)).filter(|s| !s.is_empty()),
                    },
                    now,
                )?;
                return Ok(Out::Empty);
            }
            live_claim_guard(c, &t, "complete", req.expected_run_id, req.force)?;
            let n = c.exec(
                leave_running!(
                    "status='done', block_kind=NULL, block_recurrences=0, result=COALESCE(?1, result), completed_at=?2,
                        consecutive_failures=0, last_failure_error=NULL",
                    "id=?3 AND status=?4 AND current_run_id IS NOT DISTINCT FROM ?5"
                ),
                args![result, now, task_id, t.status.as_str(), t.current_run_id],
            )?;
            if n != 1 {
                return Err(KernelError::refused(&task_id, "complete", "the task changed underneath; retry"));
            }
            let mut run_summary = summary.as_deref().or(result.as_deref());
            let approval_meta;
            let mut run_meta = metadata.as_ref();
            if from_review && run_summary.is_none() && run_meta.is_none() {
                // UP §4: an approval without evidence is recorded as such.
                run_summary = Some(REVIEW_APPROVED_NOTE);
                approval_meta = obj! {"source_status" => "review", "approval" => "manual"};
                run_meta = Some(&approval_meta);
            }
            let handoff = run_summary.is_some() || run_meta.is_some();
            let run_id = match end_run(c, &t, RunOutcome::Completed, "done", run_summary, None, run_meta, now)? {
                Some(r) => Some(r),
                None if handoff => Some(synth_run(c, &t, RunOutcome::Completed, run_summary, None, run_meta, now)?),
                None => None,
            };
            let event_summary = summary
                .as_deref()
                .or(result.as_deref())
                .or(from_review.then_some(REVIEW_APPROVED_NOTE));
            let mut payload = obj! {
                "result_len" => result.as_deref().map(|r| r.chars().count()).unwrap_or(0),
                // As Hermes: the summary, else the result, first line; null when empty.
                "summary" => event_summary
                    .map(|s| v::first_line(s, 400))
                    .filter(|s| !s.is_empty()),
            };
            if !verified.is_empty() {
                payload.insert("verified_cards".into(), json!(verified));
            }
            if !artifacts.is_empty() {
                payload.insert("artifacts".into(), json!(artifacts));
            }
            add_event(c, &task_id, run_id, "completed", payload, now)?;
            let mut phantom_refs: Vec<String> = Vec::new();
            let prose = format!("{}\n{}", summary.as_deref().unwrap_or(""), result.as_deref().unwrap_or(""));
            for m in task_ref_regex().find_iter(&prose) {
                let id = m.as_str().to_string();
                if !phantom_refs.contains(&id) && load_task(c, &id).is_err() {
                    phantom_refs.push(id);
                }
            }
            if !phantom_refs.is_empty() {
                add_event(
                    c,
                    &task_id,
                    run_id,
                    "suspected_hallucinated_references",
                    obj! {"phantom_refs" => phantom_refs, "source" => "completion_summary"},
                    now,
                )?;
            }
            let promoted = recompute_ready_tx(c, now)?;
            Ok(Out::Done(Completed { task_id: task_id.clone(), run_id, promoted, phantom_refs }))
        })?;
        match out {
            Out::Done(d) => Ok(d),
            Out::Phantom(phantom, verified) => Err(KernelError::HallucinatedCards {
                task_id,
                phantom,
                verified,
            }),
            Out::Empty => Err(KernelError::refused(
                &task_id,
                "complete",
                format!(
                    "completion blocked: {task_id} has no result or summary evidence. Pass \
                     --result/--summary describing what was done (an empty completion is not evidence)."
                ),
            )),
        }
    }

    /// Block a `running` or `ready` task. `kind=dependency` parks it in `todo`; a re-block of
    /// the same kind after an unblock (recurrences reaching 2) routes it to `triage`; otherwise
    /// it lands in `blocked`, where it stays until a human unblocks it. Closes the open run as
    /// `blocked` (or synthesizes one when a reason is given).
    pub fn block_task(&self, req: BlockRequest) -> Result<Blocked> {
        let task_id = v::task_id("task_id", &req.task_id)?;
        let reason = v::optional_text("reason", req.reason.as_deref(), v::REASON_MAX_BYTES)?;
        let author = v::short_name("author", req.comment_author.as_deref())?;
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(&task_id)?;
            if !matches!(t.status, Status::Running | Status::Ready) {
                return Err(KernelError::refused(
                    &task_id,
                    "block",
                    format!("status is '{}'; only running or ready tasks can be blocked", t.status),
                ));
            }
            stale_guard(&t, req.expected_run_id)?;
            if let (Some(a), Some(r)) = (&author, &reason) {
                add_comment_tx(c, &task_id, a, &format!("BLOCKED: {r}"), now)?;
            }
            let kind_str = req.kind.map(|k| k.as_str());
            let (status, recurrences, event) = if req.kind == Some(BlockKind::Dependency) {
                (Status::Todo, t.block_recurrences, "dependency_wait")
            } else {
                let rec = if t.block_kind.as_deref() == kind_str { t.block_recurrences + 1 } else { 1 };
                if rec >= BLOCK_RECURRENCE_LIMIT {
                    (Status::Triage, rec, "block_loop_detected")
                } else {
                    (Status::Blocked, rec, "blocked")
                }
            };
            let n = c.exec(
                leave_running!(
                    "status=?1, block_kind=?2, block_recurrences=?3",
                    "id=?4 AND status=?5 AND current_run_id IS NOT DISTINCT FROM ?6"
                ),
                args![status.as_str(), kind_str, recurrences, task_id, t.status.as_str(), t.current_run_id],
            )?;
            if n != 1 {
                return Err(KernelError::refused(&task_id, "block", "the task changed underneath; retry"));
            }
            let run_id = match end_run(c, &t, RunOutcome::Blocked, "blocked", reason.as_deref(), None, None, now)? {
                Some(r) => Some(r),
                None if reason.is_some() => Some(synth_run(c, &t, RunOutcome::Blocked, reason.as_deref(), None, None, now)?),
                None => None,
            };
            let payload = match event {
                "dependency_wait" => obj! {"reason" => reason, "kind" => kind_str},
                "block_loop_detected" => obj! {"reason" => reason, "kind" => kind_str, "recurrences" => recurrences, "limit" => BLOCK_RECURRENCE_LIMIT},
                _ => obj! {"reason" => reason, "kind" => kind_str, "recurrences" => recurrences},
            };
            add_event(c, &task_id, run_id, event, payload, now)?;
            Ok(Blocked { task_id: task_id.clone(), run_id, status, block_kind: req.kind, recurrences })
        })
    }

    /// Unblock a `blocked` or `scheduled` task: to `todo` if a parent is unfinished, else
    /// `ready`; resets the failure counter; keeps the block-kind memory (so a same-cause
    /// re-block is recognised as a loop). With `author` and `reason`, an `UNBLOCK: <reason>`
    /// comment is added in the same transaction.
    pub fn unblock_task(
        &self,
        task_id: &str,
        reason: Option<&str>,
        author: Option<&str>,
    ) -> Result<Status> {
        let reason = v::optional_text("reason", reason, v::REASON_MAX_BYTES)?;
        let author = v::short_name("author", author)?;
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            if !matches!(t.status, Status::Blocked | Status::Scheduled) {
                return Err(KernelError::refused(
                    task_id,
                    "unblock",
                    format!(
                        "status is '{}'; only blocked or scheduled tasks can be unblocked",
                        t.status
                    ),
                ));
            }
            if let (Some(a), Some(r)) = (&author, &reason) {
                add_comment_tx(c, task_id, a, &format!("UNBLOCK: {r}"), now)?;
            }
            end_run(
                c,
                &t,
                RunOutcome::Reclaimed,
                "reclaimed",
                Some("invariant recovery on unblock"),
                None,
                None,
                now,
            )?;
            // UP §4: a task blocked out of a review lane resumes to review.
            let resume = if t.status == Status::Blocked {
                resume_status_tx(c, task_id)?
            } else {
                Status::Ready
            };
            let status = if !parents_satisfied_tx(c, task_id)? {
                Status::Todo
            } else if resume == Status::Review {
                Status::Review
            } else {
                Status::Ready
            };
            let n = c.exec(
                leave_running!(
                    "status=?1, consecutive_failures=0, last_failure_error=NULL",
                    "id=?2 AND status=?3"
                ),
                args![status.as_str(), task_id, t.status.as_str()],
            )?;
            if n != 1 {
                return Err(KernelError::refused(
                    task_id,
                    "unblock",
                    "the task changed underneath; retry",
                ));
            }
            let payload = if resume == Status::Review {
                obj! {"status" => status.as_str(), "resume_status" => "review"}
            } else if status == Status::Todo {
                obj! {"status" => "todo"}
            } else {
                Map::new()
            };
            add_event(c, task_id, None, "unblocked", payload, now)?;
            Ok(status)
        })
    }

    /// Park a `todo`, `ready`, `running` or `blocked` task in `scheduled` (never dispatched
    /// until unblocked). Closes an open run as `scheduled` (or synthesizes one with a reason).
    pub fn schedule_task(
        &self,
        task_id: &str,
        reason: Option<&str>,
        expected_run_id: Option<i64>,
        author: Option<&str>,
    ) -> Result<()> {
        let reason = v::optional_text("reason", reason, v::REASON_MAX_BYTES)?;
        let author = v::short_name("author", author)?;
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            if !matches!(t.status, Status::Todo | Status::Ready | Status::Running | Status::Blocked) {
                return Err(KernelError::refused(
                    task_id,
                    "schedule",
                    format!("status is '{}'; only todo, ready, running or blocked tasks can be scheduled", t.status),
                ));
            }
            stale_guard(&t, expected_run_id)?;
            if let (Some(a), Some(r)) = (&author, &reason) {
                add_comment_tx(c, task_id, a, &format!("SCHEDULED: {r}"), now)?;
            }
            let n = c.exec(
                leave_running!("status='scheduled'", "id=?1 AND status=?2"),
                args![task_id, t.status.as_str()],
            )?;
            if n != 1 {
                return Err(KernelError::refused(task_id, "schedule", "the task changed underneath; retry"));
            }
            let run_id = match end_run(c, &t, RunOutcome::Scheduled, "scheduled", reason.as_deref(), None, None, now)? {
                Some(r) => Some(r),
                None if reason.is_some() => Some(synth_run(c, &t, RunOutcome::Scheduled, reason.as_deref(), None, None, now)?),
                None => None,
            };
            add_event(c, task_id, run_id, "scheduled", obj! {"reason" => reason}, now)?;
            Ok(())
        })
    }

    /// Manually promote a `todo` or `blocked` task to `ready` (event `promoted_manual`).
    /// Unfinished parents refuse unless `force`. `dry_run` validates and writes nothing.
    pub fn promote_task(&self, task_id: &str, opts: &PromoteOptions) -> Result<()> {
        let reason = v::optional_text("reason", opts.reason.as_deref(), v::REASON_MAX_BYTES)?;
        let actor = v::short_name("actor", opts.actor.as_deref())?;
        let now = self.now();
        // `lock`: the write path locks the row it is about to move; the dry run only reads.
        let check = |c: &Tx, lock: bool| -> Result<Task> {
            let t = if lock {
                c.lock_task(task_id)?
            } else {
                load_task(c, task_id)?
            };
            if !matches!(t.status, Status::Todo | Status::Blocked) {
                return Err(KernelError::refused(
                    task_id,
                    "promote",
                    format!(
                        "task {task_id} is '{}'; promote only applies to 'todo' or 'blocked'",
                        t.status
                    ),
                ));
            }
            if !opts.force && !parents_satisfied_tx(c, task_id)? {
                return Err(KernelError::refused(
                    task_id,
                    "promote",
                    "a parent is not done or archived; finish it first or pass --force",
                ));
            }
            Ok(t)
        };
        if opts.dry_run {
            return self.read(|c| check(c, false).map(|_| ()));
        }
        self.write(|c| {
            let t = check(c, true)?;
            c.exec(
                "UPDATE tasks SET status='ready' WHERE id=?1 AND status=?2",
                args![task_id, t.status.as_str()],
            )?;
            add_event(
                c,
                task_id,
                None,
                "promoted_manual",
                obj! {"actor" => actor, "reason" => reason, "forced" => opts.force},
                now,
            )?;
            Ok(())
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
            let n = c.exec(
                "UPDATE tasks SET worker_pid=?1, worker_started_at=NULL WHERE id=?2 AND status='running' AND current_run_id=?3",
                args![pid, task_id, run_id],
            )?;
            if n != 1 {
                let t = load_task(c, task_id)?;
                return Err(KernelError::StaleRun {
                    task_id: task_id.to_string(),
                    expected: run_id,
                    current: t.current_run_id.map(|r| r.to_string()).unwrap_or_else(|| "none".into()),
                });
            }
            c.exec("UPDATE task_runs SET worker_pid=?1, worker_started_at=NULL WHERE id=?2", args![pid, run_id])?;
            add_event(c, task_id, Some(run_id), "spawned", obj! {"pid" => pid}, now)?;
            Ok(())
        })
    }
}
