//! The task state machine's transitions (REF §5.2, §6). This module owns their arguments and
//! results and the guards they share (stale run, TTL); its children own the transitions:
//! [`claim`] (CAS + TTL + run row, heartbeats, reclaim, recording a spawned pid), [`complete`]
//! (hand-off, created-cards verification, evidence rule), and [`park`] (typed block with its
//! unblock-loop limit, unblock, schedule, promote). Each transition is one transaction that
//! locks the task it reads ([`Tx::lock_task`](super::store::Tx::lock_task)) and whose UPDATE
//! carries the expected state in its WHERE clause.

mod claim;
mod complete;
mod park;

pub(crate) use claim::{claim_tx, pin_worker_pid_tx, reclaim_tx};

use serde::Serialize;
use serde_json::Value;

use super::board::{Board, load_task};
use super::error::{KernelError, Result};
use super::types::{BlockKind, Status, Task, WorkspaceKind};
use super::validate as v;
use crate::args;

/// A successful claim.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    pub task_id: String,
    pub run_id: i64,
    pub lock: String,
    pub expires: i64,
}

impl Board {
    /// [`Board::claim_task`] for a caller that works in the task's workspace itself (the CLI's
    /// `claim`): a scratch task with no workspace recorded gets `scratch_path` (absolute) as its
    /// workspace in the claim's own transaction, so the claim is one commit (one fsync).
    /// Returns the claim and the task as claimed; creating the directory is the caller's job.
    pub fn claim_task_with_scratch(
        &self,
        task_id: &str,
        ttl: Option<i64>,
        scratch_path: &str,
    ) -> Result<(Claim, Task)> {
        let ttl = ttl_checked(ttl, self.default_claim_ttl())?;
        let path = v::required_text("workspace_path", scratch_path, 4096)?;
        if !std::path::Path::new(&path).is_absolute() {
            return Err(KernelError::invalid(
                "workspace_path",
                format!("{path:?} is relative; give an absolute path"),
            ));
        }
        let lock = v::short_name("claim_lock", Some(self.claimer()))?
            .ok_or_else(|| KernelError::invalid("claim_lock", "must not be empty"))?;
        let now = self.now();
        self.write(|c| {
            let claim = match claim_tx(c, task_id, Status::Ready, &lock, ttl, now)? {
                Ok(claim) => claim,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let t = load_task(c, task_id)?;
            let scratch = matches!(t.workspace_kind.parse(), Ok(WorkspaceKind::Scratch));
            if !scratch || t.workspace_path.is_some() {
                return Ok(Ok((claim, t)));
            }
            c.exec(
                "UPDATE tasks SET workspace_path=?1 WHERE id=?2 AND workspace_path IS NULL",
                args![path, task_id],
            )?;
            Ok(Ok((claim, load_task(c, task_id)?)))
        })?
    }
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
        return Err(KernelError::stale_run(&t.id, e, t.current_run_id));
    }
    Ok(())
}

fn ttl_checked(ttl: Option<i64>, default: i64) -> Result<i64> {
    match ttl {
        None => Ok(default),
        Some(t) => v::in_range("ttl", t, v::TTL_RANGE),
    }
}
