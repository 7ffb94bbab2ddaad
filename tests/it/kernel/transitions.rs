//! The kernel's transition table (REF §5.2), driven from one table.
//!
//! For every start status (one or more fixtures per status, each built with kernel calls only)
//! and every kernel transition, the table either lists the call as *allowed* — with where the
//! task lands, which events it emits (kind, exact payload keys in order, whether they carry the
//! run id, REF §7) and what happens to `task_runs` (REF §6.3) — or, by omission, the call is
//! *refused*: it must return `KernelError::Refused` naming the verb and the task, and leave
//! `Board::snapshot` byte-for-byte identical.
//!
//! `review` is reached as upstream Hermes (~0.22) reaches it (UP §4): `request_review` from
//! running or ready; the dispatcher's review lane claims it (`claim_review_task`), and the
//! reviewer approves (`complete`), sends it back (`request_changes`) or an operator reopens it
//! (`reopen_review`). One refusal is not silent: an empty completion (UP §5) is refused and
//! leaves exactly one `completion_blocked_empty_result` event behind, nothing else.
//!
//! The file ends with scenario tests for the guards that the table cannot express (stale-run
//! guard, claim CAS, unblock-loop limit, typed blocks, created-cards verification, advisory
//! hallucinated references, claim re-checking parents).

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::helpers::{TestBoard, assert_invariants};
use hermes_kanban::kernel::*;
use serde_json::{Map, Value, json};

const LOCK: &str = "testhost:4242";
const REASON: &str = "waiting on ops";
const SUMMARY: &str = "did the thing";
const NOTE: &str = "halfway there";
const CRASH_ERROR: &str = "pid 1 exited with code 3";
const SPAWN_ERROR: &str = "workspace: cannot create directory";
const ARCHIVE_SUMMARY: &str = "task archived with run still active";
/// Seconds the clock moves between building a fixture and applying the transition, so that
/// timestamps written by the transition are distinguishable from the fixture's.
const STEP: i64 = 60;

// ---------------------------------------------------------------------------------------------
// Start states
// ---------------------------------------------------------------------------------------------

/// A task in a given status, built with kernel calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// `create --triage`.
    Triage,
    /// `todo` because its parent is still `ready`.
    TodoWaiting,
    /// `todo` after a `dependency` block (no parents).
    TodoParked,
    /// `schedule_task` on a ready task.
    Scheduled,
    /// A fresh parentless task.
    Ready,
    /// Claimed (one open run).
    Running,
    /// Claimed, then blocked `needs_input` by its worker (one closed run).
    Blocked,
    /// Tripped by the circuit breaker (`force_trip`, counter 1).
    BlockedBreaker,
    /// Created with `InitialStatus::Blocked`.
    BlockedCreated,
    /// Claimed and completed.
    Done,
    /// Archived from ready.
    Archived,
    /// Claimed by `worker`, handed to `reviewer` with `request_review` (no open run).
    Review,
    /// [`Start::Review`] claimed by the review lane (`claim_review_task`; one open run).
    ReviewRunning,
}

const ALL_STARTS: [Start; 13] = [
    Start::Triage,
    Start::TodoWaiting,
    Start::TodoParked,
    Start::Scheduled,
    Start::Ready,
    Start::Running,
    Start::Blocked,
    Start::BlockedBreaker,
    Start::BlockedCreated,
    Start::Done,
    Start::Archived,
    Start::Review,
    Start::ReviewRunning,
];

impl Start {
    fn status(self) -> Status {
        match self {
            Start::Triage => Status::Triage,
            Start::TodoWaiting | Start::TodoParked => Status::Todo,
            Start::Scheduled => Status::Scheduled,
            Start::Ready => Status::Ready,
            Start::Running | Start::ReviewRunning => Status::Running,
            Start::Review => Status::Review,
            Start::Blocked | Start::BlockedBreaker | Start::BlockedCreated => Status::Blocked,
            Start::Done => Status::Done,
            Start::Archived => Status::Archived,
        }
    }
}

/// The task under test and its open run, if any.
struct Fixture {
    id: String,
    open_run: Option<i64>,
}

fn build(tb: &TestBoard, start: Start) -> Fixture {
    let b = &tb.board;
    let id = match start {
        Start::Triage => {
            b.create_task(NewTask {
                title: "rough idea".into(),
                assignee: Some("worker".into()),
                triage: true,
                ..Default::default()
            })
            .unwrap()
            .task
            .id
        }
        Start::TodoWaiting => {
            let parent = tb.task("parent");
            tb.child("child", &[&parent])
        }
        Start::TodoParked => {
            let id = tb.task("parked");
            b.block_task(BlockRequest {
                task_id: id.clone(),
                kind: Some(BlockKind::Dependency),
                ..Default::default()
            })
            .unwrap();
            id
        }
        Start::Scheduled => {
            let id = tb.task("later");
            b.schedule_task(&id, None, None, None).unwrap();
            id
        }
        Start::Ready => tb.task("ready"),
        Start::Running => {
            let id = tb.task("running");
            b.claim_task(&id, None).unwrap();
            id
        }
        Start::Blocked => {
            let id = tb.task("blocked");
            let claim = b.claim_task(&id, None).unwrap();
            b.block_task(BlockRequest {
                task_id: id.clone(),
                reason: Some("need creds".into()),
                kind: Some(BlockKind::NeedsInput),
                expected_run_id: Some(claim.run_id),
                ..Default::default()
            })
            .unwrap();
            id
        }
        Start::BlockedBreaker => {
            let id = tb.task("flaky");
            let verdict = b
                .record_task_failure(&FailureReport {
                    force_trip: true,
                    ..FailureReport::new(&id, RunOutcome::Crashed, "boom")
                })
                .unwrap();
            assert!(verdict.tripped);
            id
        }
        Start::BlockedCreated => {
            b.create_task(NewTask {
                title: "needs ops".into(),
                assignee: Some("worker".into()),
                initial_status: InitialStatus::Blocked,
                ..Default::default()
            })
            .unwrap()
            .task
            .id
        }
        Start::Done => {
            let id = tb.task("done");
            b.claim_task(&id, None).unwrap();
            b.complete_task(Completion {
                task_id: id.clone(),
                summary: Some("earlier work".into()),
                ..Default::default()
            })
            .unwrap();
            id
        }
        Start::Archived => {
            let id = tb.task("archived");
            b.archive_task(&id).unwrap();
            id
        }
        Start::Review | Start::ReviewRunning => {
            let id = tb.task("review me");
            let claim = b.claim_task(&id, None).unwrap();
            b.request_review(ReviewRequest {
                task_id: id.clone(),
                summary: Some("implemented".into()),
                reviewer: Some("Reviewer".into()),
                expected_run_id: Some(claim.run_id),
                ..Default::default()
            })
            .unwrap();
            if start == Start::ReviewRunning {
                b.claim_review_task(&id, None).unwrap();
            }
            id
        }
    };
    let t = b.get_task(&id).unwrap();
    assert_eq!(t.status, start.status(), "fixture {start:?}");
    assert_eq!(
        t.current_run_id.is_some(),
        matches!(start, Start::Running | Start::ReviewRunning)
    );
    Fixture {
        open_run: t.current_run_id,
        id,
    }
}

// ---------------------------------------------------------------------------------------------
// Transitions
// ---------------------------------------------------------------------------------------------

/// One kernel call with fixed arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Claim,
    ClaimReview,
    /// No hand-off at all.
    Complete,
    /// With a summary.
    CompleteHandoff,
    /// `(kind, with a reason)`.
    Block(Option<BlockKind>, bool),
    Unblock,
    /// With a reason?
    Schedule(bool),
    Promote,
    PromoteForce,
    PromoteDryRun,
    Reclaim,
    Archive,
    DeleteArchived,
    /// To a different profile (`other`).
    Assign,
    /// Crash below the default limit; the caller already released the task (counter only).
    FailureCount,
    /// Spawn failure below the limit (`release_claim`, `end_run`).
    FailureSpawn,
    /// Spawn failure with a per-call `failure_limit` of 1: trips.
    FailureTrip,
    HeartbeatWorker,
    HeartbeatClaim,
    /// `request_review` with a summary, reviewer `reviewer`.
    RequestReview,
    /// `request_changes` with a reason.
    RequestChanges,
    /// `reopen_review` with a reason and author (a `CHANGES REQUESTED:` comment).
    ReopenReview,
}

const BLOCK_KINDS: [Option<BlockKind>; 5] = [
    None,
    Some(BlockKind::NeedsInput),
    Some(BlockKind::Capability),
    Some(BlockKind::Transient),
    Some(BlockKind::Dependency),
];

fn all_ops() -> Vec<Op> {
    let mut ops = vec![
        Op::Claim,
        Op::ClaimReview,
        Op::Complete,
        Op::CompleteHandoff,
    ];
    for kind in BLOCK_KINDS {
        ops.push(Op::Block(kind, false));
        ops.push(Op::Block(kind, true));
    }
    ops.extend([
        Op::Unblock,
        Op::Schedule(false),
        Op::Schedule(true),
        Op::Promote,
        Op::PromoteForce,
        Op::PromoteDryRun,
        Op::Reclaim,
        Op::Archive,
        Op::DeleteArchived,
        Op::Assign,
        Op::FailureCount,
        Op::FailureSpawn,
        Op::FailureTrip,
        Op::HeartbeatWorker,
        Op::HeartbeatClaim,
        Op::RequestReview,
        Op::RequestChanges,
        Op::ReopenReview,
    ]);
    ops
}

fn run_op(b: &Board, id: &str, op: Op) -> Result<(), KernelError> {
    let promote = |force, dry_run| PromoteOptions {
        force,
        dry_run,
        actor: Some("alice".into()),
        reason: Some(REASON.into()),
    };
    match op {
        Op::Claim => b.claim_task(id, None).map(drop),
        Op::ClaimReview => b.claim_review_task(id, None).map(drop),
        Op::Complete => b
            .complete_task(Completion {
                task_id: id.into(),
                ..Default::default()
            })
            .map(drop),
        Op::CompleteHandoff => b
            .complete_task(Completion {
                task_id: id.into(),
                summary: Some(SUMMARY.into()),
                ..Default::default()
            })
            .map(drop),
        Op::Block(kind, reason) => b
            .block_task(BlockRequest {
                task_id: id.into(),
                reason: reason.then(|| REASON.to_string()),
                kind,
                ..Default::default()
            })
            .map(drop),
        Op::Unblock => b.unblock_task(id, None, None).map(drop),
        Op::Schedule(reason) => b.schedule_task(id, reason.then_some(REASON), None, None),
        Op::Promote => b.promote_task(id, &promote(false, false)),
        Op::PromoteForce => b.promote_task(id, &promote(true, false)),
        Op::PromoteDryRun => b.promote_task(id, &promote(false, true)),
        Op::Reclaim => b.reclaim_task(id, Some(REASON), Map::new()).map(drop),
        Op::Archive => b.archive_task(id).map(drop),
        Op::DeleteArchived => b.delete_archived_task(id),
        Op::Assign => b.assign_task(id, Some("other")).map(drop),
        Op::FailureCount => b
            .record_task_failure(&FailureReport::new(id, RunOutcome::Crashed, CRASH_ERROR))
            .map(drop),
        Op::FailureSpawn => b
            .record_task_failure(&FailureReport {
                release_claim: true,
                end_run: true,
                ..FailureReport::new(id, RunOutcome::SpawnFailed, SPAWN_ERROR)
            })
            .map(drop),
        Op::FailureTrip => b
            .record_task_failure(&FailureReport {
                release_claim: true,
                end_run: true,
                failure_limit: Some(1),
                ..FailureReport::new(id, RunOutcome::SpawnFailed, SPAWN_ERROR)
            })
            .map(drop),
        Op::HeartbeatWorker => b.heartbeat_worker(id, Some(NOTE), None),
        Op::HeartbeatClaim => b.heartbeat_claim(id, Some(600), LOCK).map(drop),
        Op::RequestReview => b
            .request_review(ReviewRequest {
                task_id: id.into(),
                summary: Some(SUMMARY.into()),
                reviewer: Some("reviewer".into()),
                ..Default::default()
            })
            .map(drop),
        Op::RequestChanges => b.request_changes(id, REASON, None).map(drop),
        Op::ReopenReview => b.reopen_review(id, Some(REASON), Some("alice")).map(drop),
    }
}

/// The `action` a refusal of `op` names.
fn refused_action(op: Op) -> &'static str {
    match op {
        Op::Claim | Op::ClaimReview => "claim",
        Op::Complete | Op::CompleteHandoff => "complete",
        Op::Block(..) => "block",
        Op::Unblock => "unblock",
        Op::Schedule(_) => "schedule",
        Op::Promote | Op::PromoteForce | Op::PromoteDryRun => "promote",
        Op::Reclaim => "reclaim",
        Op::Archive => "archive",
        Op::DeleteArchived => "delete",
        Op::Assign => "assign",
        Op::FailureCount | Op::FailureSpawn | Op::FailureTrip => "record a failure for",
        Op::HeartbeatWorker => "heartbeat",
        Op::HeartbeatClaim => "extend the claim of",
        Op::RequestReview => "request review for",
        Op::RequestChanges => "request changes for",
        Op::ReopenReview => "reopen review of",
    }
}

/// The summary a run closed or synthesized by `op` carries.
fn run_summary(start: Start, op: Op) -> Option<&'static str> {
    match op {
        Op::Complete if start == Start::Review => Some(REVIEW_APPROVED_NOTE),
        Op::CompleteHandoff | Op::RequestReview => Some(SUMMARY),
        Op::RequestChanges => Some(REASON),
        Op::Block(_, true) | Op::Schedule(true) => Some(REASON),
        Op::Archive => Some(ARCHIVE_SUMMARY),
        _ => None,
    }
}

/// The error a run closed by `op` carries.
fn run_error(op: Op) -> Option<String> {
    match op {
        Op::Reclaim => Some(format!("manual_reclaim: {REASON}")),
        Op::FailureSpawn | Op::FailureTrip => Some(SPAWN_ERROR.into()),
        _ => None,
    }
}

/// The value an event payload key must have after `op` (every key the table names is known
/// here, so a new key in a payload is caught by the table and its value by this function).
fn expected_value(start: Start, op: Op, key: &str, run: Option<i64>, now: i64) -> Value {
    let review_lane = matches!(start, Start::Review | Start::ReviewRunning);
    let reason = match op {
        Op::Block(_, r) | Op::Schedule(r) => r.then_some(REASON),
        _ => Some(REASON),
    };
    match key {
        "lock" | "prev_lock" => json!(LOCK),
        "expires" => json!(now + DEFAULT_CLAIM_TTL_SECONDS),
        "run_id" => json!(run),
        "result_len" => json!(0),
        "summary" => match op {
            Op::CompleteHandoff | Op::RequestReview => json!(SUMMARY),
            Op::Complete if start == Start::Review => json!(REVIEW_APPROVED_NOTE),
            _ => Value::Null,
        },
        "source_status" => json!("review"),
        "retry_status" => {
            assert!(review_lane, "retry_status outside the review lane");
            json!("review")
        }
        "sticky" => json!(true),
        // The implementer is the closing run's profile: the reviewer's own run when it
        // requests review again.
        "implementer" => json!(if op == Op::RequestReview && review_lane {
            "reviewer"
        } else {
            "worker"
        }),
        "reviewer" => json!("reviewer"),
        "status" => json!("ready"),
        "reason" => json!(reason),
        "kind" => match op {
            Op::Block(k, _) => json!(k.map(BlockKind::as_str)),
            _ => panic!("kind for {op:?}"),
        },
        "recurrences" => json!(1),
        "actor" => json!("alice"),
        "forced" => json!(op == Op::PromoteForce),
        "manual" => json!(true),
        "prev_pid" => Value::Null,
        "assignee" => json!("other"),
        "error" => json!(SPAWN_ERROR),
        "failures" => json!(1),
        "effective_limit" => json!(1),
        "limit_source" => json!("dispatcher"),
        "trigger_outcome" => json!("spawn_failed"),
        "note" => json!(NOTE),
        "author" => json!("alice"),
        "len" => json!(format!("CHANGES REQUESTED: {REASON}").chars().count()),
        other => panic!("no expectation for payload key {other:?} of {op:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Lands {
    /// Ends in this status.
    To(Status),
    /// Status unchanged (fields change).
    Stays,
    /// Succeeds and writes nothing at all.
    NoWrite,
    /// The task and all its rows are gone.
    Deleted,
}

#[derive(Debug, Clone, Copy)]
enum RunFx {
    /// `task_runs` untouched.
    NoRun,
    /// A new open run (`running`).
    Opened,
    /// The fixture's open run is closed with `(status, outcome)`.
    Closed(&'static str, &'static str),
    /// An already-closed run is inserted: `started_at == ended_at == now`, `status == outcome`.
    Synth(&'static str),
    /// An already-closed run is inserted with `(status, outcome)`.
    SynthAs(&'static str, &'static str),
    /// The open run stays open (heartbeats).
    Touched,
}

/// An expected event: kind, exact payload keys (empty = NULL payload), and whether its
/// `run_id` is the affected run (else NULL).
#[derive(Debug, Clone, Copy)]
struct Ev {
    kind: &'static str,
    keys: &'static [&'static str],
    on_run: bool,
}

const fn ev(kind: &'static str, keys: &'static [&'static str]) -> Ev {
    Ev {
        kind,
        keys,
        on_run: false,
    }
}

const fn run_ev(kind: &'static str, keys: &'static [&'static str]) -> Ev {
    Ev {
        kind,
        keys,
        on_run: true,
    }
}

const CLAIMED: Ev = run_ev("claimed", &["lock", "expires", "run_id"]);
const COMPLETED: Ev = run_ev("completed", &["result_len", "summary"]);
const BLOCKED: Ev = run_ev("blocked", &["reason", "kind", "recurrences"]);
const DEPENDENCY_WAIT: Ev = run_ev("dependency_wait", &["reason", "kind"]);
const UNBLOCKED: Ev = ev("unblocked", &[]);
const SCHEDULED: Ev = run_ev("scheduled", &["reason"]);
const PROMOTED_MANUAL: Ev = ev("promoted_manual", &["actor", "reason", "forced"]);
const RECLAIMED: Ev = run_ev("reclaimed", &["manual", "reason", "prev_lock", "prev_pid"]);
const ARCHIVED: Ev = run_ev("archived", &[]);
const ASSIGNED: Ev = ev("assigned", &["assignee"]);
const SPAWN_FAILED: Ev = run_ev("spawn_failed", &["error", "failures"]);
const GAVE_UP: Ev = run_ev(
    "gave_up",
    &[
        "failures",
        "effective_limit",
        "limit_source",
        "error",
        "trigger_outcome",
        "sticky",
    ],
);
const GAVE_UP_REVIEW: Ev = run_ev(
    "gave_up",
    &[
        "failures",
        "effective_limit",
        "limit_source",
        "error",
        "trigger_outcome",
        "sticky",
        "retry_status",
    ],
);
const CLAIMED_REVIEW: Ev = run_ev("claimed", &["lock", "expires", "run_id", "source_status"]);
const REVIEW_REQUESTED: Ev = run_ev("review_requested", &["summary", "implementer", "reviewer"]);
const CHANGES_REQUESTED: Ev = run_ev(
    "changes_requested",
    &["reason", "implementer", "reviewer", "status"],
);
const REVIEW_REOPENED: Ev = ev("review_reopened", &["status", "implementer"]);
const COMMENTED: Ev = ev("commented", &["author", "len"]);
const RECLAIMED_REVIEW: Ev = run_ev(
    "reclaimed",
    &["manual", "reason", "prev_lock", "prev_pid", "retry_status"],
);
const SPAWN_FAILED_REVIEW: Ev = run_ev("spawn_failed", &["error", "failures", "retry_status"]);
const HEARTBEAT: Ev = run_ev("heartbeat", &["note"]);

/// An allowed transition from each of `from`.
struct Case {
    from: Vec<Start>,
    op: Op,
    lands: Lands,
    run: RunFx,
    events: Vec<Ev>,
}

fn allow(from: &[Start], op: Op, lands: Lands, run: RunFx, events: &[Ev]) -> Case {
    Case {
        from: from.to_vec(),
        op,
        lands,
        run,
        events: events.to_vec(),
    }
}

/// Every allowed (start, transition) pair. Anything not listed here must be refused.
fn table() -> Vec<Case> {
    use Lands::{Deleted, NoWrite, Stays, To};
    use RunFx::{Closed, NoRun, Opened, Synth, SynthAs, Touched};
    use Start::*;
    const COMPLETABLE_UNCLAIMED: [Start; 5] =
        [Ready, Blocked, BlockedBreaker, BlockedCreated, Review];
    const SCHEDULABLE_UNCLAIMED: [Start; 6] = [
        TodoWaiting,
        TodoParked,
        Ready,
        Blocked,
        BlockedBreaker,
        BlockedCreated,
    ];
    const ALL_BUT_ARCHIVED_AND_RUNNING: [Start; 10] = [
        Triage,
        TodoWaiting,
        TodoParked,
        Scheduled,
        Ready,
        Blocked,
        BlockedBreaker,
        BlockedCreated,
        Done,
        Review,
    ];
    let done = To(Status::Done);
    let review = To(Status::Review);
    let ready = To(Status::Ready);
    let mut t = vec![
        // ready → running: opens a run (REF §6.1).
        allow(&[Ready], Op::Claim, To(Status::Running), Opened, &[CLAIMED]),
        // review → running through the review lane (UP §4).
        allow(
            &[Review],
            Op::ClaimReview,
            To(Status::Running),
            Opened,
            &[CLAIMED_REVIEW],
        ),
        // running/ready/blocked/review → done: closes the open run as done/completed,
        // synthesizes a `completed` run only when a hand-off is given and no run is open
        // (REF §6.3). A completion without evidence is refused (UP §5, see
        // `refused_with_event`) except a review approval, which records the approval note.
        allow(
            &[Running, ReviewRunning],
            Op::CompleteHandoff,
            done,
            Closed("done", "completed"),
            &[COMPLETED],
        ),
        allow(
            &[Review],
            Op::Complete,
            done,
            Synth("completed"),
            &[COMPLETED],
        ),
        allow(
            &COMPLETABLE_UNCLAIMED,
            Op::CompleteHandoff,
            done,
            Synth("completed"),
            &[COMPLETED],
        ),
        // blocked/scheduled → ready (no parents): no payload on `unblocked`.
        allow(
            &[Blocked, BlockedBreaker, BlockedCreated, Scheduled],
            Op::Unblock,
            ready,
            NoRun,
            &[UNBLOCKED],
        ),
        // todo/ready/running/blocked → scheduled.
        allow(
            &SCHEDULABLE_UNCLAIMED,
            Op::Schedule(false),
            To(Status::Scheduled),
            NoRun,
            &[SCHEDULED],
        ),
        allow(
            &SCHEDULABLE_UNCLAIMED,
            Op::Schedule(true),
            To(Status::Scheduled),
            Synth("scheduled"),
            &[SCHEDULED],
        ),
        allow(
            &[Running, ReviewRunning],
            Op::Schedule(false),
            To(Status::Scheduled),
            Closed("scheduled", "scheduled"),
            &[SCHEDULED],
        ),
        allow(
            &[Running, ReviewRunning],
            Op::Schedule(true),
            To(Status::Scheduled),
            Closed("scheduled", "scheduled"),
            &[SCHEDULED],
        ),
        // todo/blocked → ready by hand; an unfinished parent needs force; dry run writes
        // nothing.
        allow(
            &[TodoParked, Blocked, BlockedBreaker, BlockedCreated],
            Op::Promote,
            ready,
            NoRun,
            &[PROMOTED_MANUAL],
        ),
        allow(
            &[
                TodoWaiting,
                TodoParked,
                Blocked,
                BlockedBreaker,
                BlockedCreated,
            ],
            Op::PromoteForce,
            ready,
            NoRun,
            &[PROMOTED_MANUAL],
        ),
        allow(
            &[TodoParked, Blocked, BlockedBreaker, BlockedCreated],
            Op::PromoteDryRun,
            NoWrite,
            NoRun,
            &[],
        ),
        // running → ready by hand: run closed reclaimed.
        allow(
            &[Running],
            Op::Reclaim,
            ready,
            Closed("reclaimed", "reclaimed"),
            &[RECLAIMED],
        ),
        // a review-lane run returns to review (UP §4).
        allow(
            &[ReviewRunning],
            Op::Reclaim,
            review,
            Closed("reclaimed", "reclaimed"),
            &[RECLAIMED_REVIEW],
        ),
        // any non-archived → archived: an open run is closed reclaimed.
        allow(
            &ALL_BUT_ARCHIVED_AND_RUNNING,
            Op::Archive,
            To(Status::Archived),
            NoRun,
            &[ARCHIVED],
        ),
        allow(
            &[Running, ReviewRunning],
            Op::Archive,
            To(Status::Archived),
            Closed("reclaimed", "reclaimed"),
            &[ARCHIVED],
        ),
        allow(&[Archived], Op::DeleteArchived, Deleted, NoRun, &[]),
        // assignment: anything but a claimed running task.
        allow(
            &ALL_BUT_ARCHIVED_AND_RUNNING,
            Op::Assign,
            Stays,
            NoRun,
            &[ASSIGNED],
        ),
        allow(&[Archived], Op::Assign, Stays, NoRun, &[ASSIGNED]),
        // circuit breaker bookkeeping (REF §8.6): running/ready only.
        allow(
            &[Running, Ready, Review, ReviewRunning],
            Op::FailureCount,
            Stays,
            NoRun,
            &[],
        ),
        allow(
            &[ReviewRunning],
            Op::FailureSpawn,
            review,
            Closed("spawn_failed", "spawn_failed"),
            &[SPAWN_FAILED_REVIEW],
        ),
        allow(
            &[Review],
            Op::FailureSpawn,
            review,
            NoRun,
            &[SPAWN_FAILED_REVIEW],
        ),
        allow(
            &[ReviewRunning],
            Op::FailureTrip,
            To(Status::Blocked),
            Closed("gave_up", "gave_up"),
            &[GAVE_UP_REVIEW],
        ),
        allow(
            &[Review],
            Op::FailureTrip,
            To(Status::Blocked),
            NoRun,
            &[GAVE_UP_REVIEW],
        ),
        // the review hand-off (UP §4).
        allow(
            &[Running, ReviewRunning],
            Op::RequestReview,
            review,
            Closed("review", "review_requested"),
            &[REVIEW_REQUESTED],
        ),
        allow(
            &[Ready],
            Op::RequestReview,
            review,
            SynthAs("review", "review_requested"),
            &[REVIEW_REQUESTED],
        ),
        allow(
            &[ReviewRunning],
            Op::RequestChanges,
            ready,
            Closed("ready", "changes_requested"),
            &[CHANGES_REQUESTED],
        ),
        allow(
            &[Review],
            Op::ReopenReview,
            ready,
            NoRun,
            &[COMMENTED, REVIEW_REOPENED],
        ),
        allow(
            &[Running],
            Op::FailureSpawn,
            ready,
            Closed("spawn_failed", "spawn_failed"),
            &[SPAWN_FAILED],
        ),
        allow(&[Ready], Op::FailureSpawn, ready, NoRun, &[SPAWN_FAILED]),
        allow(
            &[Running],
            Op::FailureTrip,
            To(Status::Blocked),
            Closed("gave_up", "gave_up"),
            &[GAVE_UP],
        ),
        allow(
            &[Ready],
            Op::FailureTrip,
            To(Status::Blocked),
            NoRun,
            &[GAVE_UP],
        ),
        // heartbeats: running only.
        allow(
            &[Running, ReviewRunning],
            Op::HeartbeatWorker,
            Stays,
            Touched,
            &[HEARTBEAT],
        ),
        allow(
            &[Running, ReviewRunning],
            Op::HeartbeatClaim,
            Stays,
            Touched,
            &[],
        ),
    ];
    // running/ready → blocked (typed), or → todo for `dependency` (REF §5.2).
    for kind in BLOCK_KINDS {
        let (to, event) = if kind == Some(BlockKind::Dependency) {
            (To(Status::Todo), DEPENDENCY_WAIT)
        } else {
            (To(Status::Blocked), BLOCKED)
        };
        for reason in [false, true] {
            let op = Op::Block(kind, reason);
            t.push(allow(
                &[Running, ReviewRunning],
                op,
                to,
                Closed("blocked", "blocked"),
                &[event],
            ));
            let unclaimed = if reason { Synth("blocked") } else { NoRun };
            t.push(allow(&[Ready], op, to, unclaimed, &[event]));
        }
    }
    t
}

/// Refusals that must leave exactly one event behind: an empty completion records
/// `completion_blocked_empty_result` (UP §5) and changes nothing else.
fn refused_with_event(start: Start, op: Op) -> Option<&'static str> {
    use Start::*;
    (op == Op::Complete
        && matches!(
            start,
            Running | Ready | Blocked | BlockedBreaker | BlockedCreated | ReviewRunning
        ))
    .then_some("completion_blocked_empty_result")
}

// ---------------------------------------------------------------------------------------------
// Checking one pair
// ---------------------------------------------------------------------------------------------

fn check_allowed(start: Start, case: &Case) {
    let op = case.op;
    let tb = TestBoard::new();
    let fx = build(&tb, start);
    tb.advance(STEP);
    let now = tb.now();
    let b = &tb.board;
    let before = b.get_task(&fx.id).unwrap();
    let runs_before = b.list_runs(&fx.id, None).unwrap();
    let dump_before = b.snapshot().unwrap();
    let cursor = b.max_event_id().unwrap();

    if let Err(e) = run_op(b, &fx.id, op) {
        panic!("expected success, got {e:?}");
    }

    let after = match case.lands {
        Lands::Deleted => {
            assert!(
                matches!(b.get_task(&fx.id), Err(KernelError::TaskNotFound(ref i)) if *i == fx.id)
            );
            assert!(b.list_events(&fx.id, None).unwrap().is_empty());
            assert!(b.list_runs(&fx.id, None).unwrap().is_empty());
            assert!(
                b.events_after(cursor, &EventFilter::default())
                    .unwrap()
                    .is_empty()
            );
            return;
        }
        Lands::NoWrite => {
            assert_eq!(b.snapshot().unwrap(), dump_before, "a dry run wrote rows");
            return;
        }
        Lands::Stays => {
            let a = b.get_task(&fx.id).unwrap();
            assert_eq!(a.status, before.status, "status changed");
            a
        }
        Lands::To(s) => {
            let a = b.get_task(&fx.id).unwrap();
            assert_eq!(a.status, s, "landed in the wrong status");
            a
        }
    };
    if after.status == Status::Running {
        assert_eq!(after.claim_lock.as_deref(), Some(LOCK));
        assert!(after.current_run_id.is_some());
    } else {
        assert_eq!(after.claim_lock, None, "claim kept after leaving running");
        assert_eq!(after.claim_expires, None);
        assert_eq!(after.worker_pid, None);
        assert_eq!(after.current_run_id, None);
    }

    // --- runs ---
    let runs_after = b.list_runs(&fx.id, None).unwrap();
    let affected: Option<i64> = match case.run {
        RunFx::NoRun => {
            assert_eq!(runs_after, runs_before, "task_runs changed");
            None
        }
        RunFx::Opened => {
            assert_eq!(runs_after.len(), runs_before.len() + 1, "no run opened");
            assert_eq!(runs_after[..runs_before.len()], runs_before[..]);
            let r = runs_after.last().unwrap();
            assert_eq!(r.status, "running");
            assert_eq!(r.outcome, None);
            assert_eq!(r.ended_at, None);
            assert_eq!(r.started_at, now);
            assert_eq!(r.profile, before.assignee, "the run is the assignee's");
            assert_eq!(r.claim_lock.as_deref(), Some(LOCK));
            assert_eq!(r.claim_expires, Some(now + DEFAULT_CLAIM_TTL_SECONDS));
            assert_eq!(after.current_run_id, Some(r.id));
            assert_eq!(after.claim_expires, Some(now + DEFAULT_CLAIM_TTL_SECONDS));
            Some(r.id)
        }
        RunFx::Closed(status, outcome) => {
            let rid = fx.open_run.expect("fixture has an open run");
            assert_eq!(runs_after.len(), runs_before.len(), "a run was added");
            let r = b.get_run(rid).unwrap();
            assert_eq!(
                (r.status.as_str(), r.outcome.as_deref()),
                (status, Some(outcome))
            );
            assert_eq!(r.ended_at, Some(now));
            assert!(r.started_at < now);
            assert_eq!(r.claim_lock, None);
            assert_eq!(r.claim_expires, None);
            assert_eq!(
                r.summary.as_deref(),
                run_summary(start, op),
                "closed run summary"
            );
            assert_eq!(r.error, run_error(op), "closed run error");
            for (x, y) in runs_before.iter().zip(&runs_after) {
                if x.id != rid {
                    assert_eq!(x, y, "another run changed");
                }
            }
            Some(rid)
        }
        RunFx::Synth(outcome) => {
            assert_eq!(
                runs_after.len(),
                runs_before.len() + 1,
                "no run synthesized"
            );
            assert_eq!(runs_after[..runs_before.len()], runs_before[..]);
            let r = runs_after.last().unwrap();
            assert_eq!(r.started_at, now);
            assert_eq!(r.ended_at, Some(now), "synthesized run must be closed");
            assert_eq!(r.status, outcome, "synthesized run status = outcome");
            assert_eq!(r.outcome.as_deref(), Some(outcome));
            // A review task's assignee is its reviewer; the approval run is the reviewer's.
            assert_eq!(r.profile, before.assignee);
            assert_eq!(r.summary.as_deref(), run_summary(start, op));
            if start == Start::Review && op == Op::Complete {
                assert_eq!(
                    r.metadata,
                    Some(json!({"source_status": "review", "approval": "manual"}))
                );
            }
            assert_eq!(r.claim_lock, None);
            Some(r.id)
        }
        RunFx::SynthAs(status, outcome) => {
            assert_eq!(runs_after.len(), runs_before.len() + 1);
            let r = runs_after.last().unwrap();
            assert_eq!((r.started_at, r.ended_at), (now, Some(now)));
            assert_eq!(
                (r.status.as_str(), r.outcome.as_deref()),
                (status, Some(outcome))
            );
            assert_eq!(
                r.profile.as_deref(),
                Some("worker"),
                "the implementer's run"
            );
            assert_eq!(r.summary.as_deref(), run_summary(start, op));
            Some(r.id)
        }
        RunFx::Touched => {
            let rid = fx.open_run.expect("fixture has an open run");
            assert_eq!(runs_after.len(), runs_before.len());
            let r = b.get_run(rid).unwrap();
            assert_eq!(r.ended_at, None, "heartbeat closed the run");
            assert_eq!(r.status, "running");
            assert_eq!(after.current_run_id, Some(rid));
            Some(rid)
        }
    };

    // --- events ---
    let events = b.events_after(cursor, &EventFilter::default()).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let want: Vec<&str> = case.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, want, "event kinds");
    for (e, w) in events.iter().zip(&case.events) {
        assert_eq!(e.task_id, fx.id, "{} on the wrong task", w.kind);
        assert_eq!(e.created_at, now);
        let want_run = if w.on_run { affected } else { None };
        assert_eq!(e.run_id, want_run, "run_id of {}", w.kind);
        match &e.payload {
            None => assert!(w.keys.is_empty(), "{}: payload missing", w.kind),
            Some(Value::Object(m)) => {
                let keys: Vec<&str> = m.keys().map(String::as_str).collect();
                assert_eq!(keys, w.keys, "payload keys of {}", w.kind);
                for (k, v) in m {
                    assert_eq!(
                        v,
                        &expected_value(start, op, k, affected, now),
                        "{}.{k}",
                        w.kind
                    );
                }
            }
            Some(other) => panic!("{}: payload is not an object: {other}", w.kind),
        }
    }

    // --- transition-specific fields ---
    match op {
        Op::Complete | Op::CompleteHandoff => {
            assert_eq!(after.completed_at, Some(now));
            assert_eq!(after.block_kind, None);
            assert_eq!(after.block_recurrences, 0);
            assert_eq!(after.consecutive_failures, 0);
            assert_eq!(after.last_failure_error, None);
        }
        Op::Block(kind, _) => {
            assert_eq!(after.block_kind.as_deref(), kind.map(BlockKind::as_str));
            assert_eq!(
                after.block_recurrences,
                i64::from(kind != Some(BlockKind::Dependency))
            );
        }
        Op::Unblock => {
            assert_eq!(after.consecutive_failures, 0);
            assert_eq!(after.last_failure_error, None);
            assert_eq!(
                after.block_kind, before.block_kind,
                "unblock forgets the kind"
            );
            assert_eq!(after.block_recurrences, before.block_recurrences);
        }
        Op::Reclaim => assert_eq!(after.consecutive_failures, 0),
        Op::Assign => assert_eq!(after.assignee.as_deref(), Some("other")),
        Op::RequestReview => assert_eq!(after.assignee.as_deref(), Some("reviewer")),
        Op::RequestChanges | Op::ReopenReview => {
            assert_eq!(
                after.assignee.as_deref(),
                Some("worker"),
                "back to the implementer"
            );
            assert_eq!(after.consecutive_failures, before.consecutive_failures);
        }
        Op::FailureCount => {
            assert_eq!(after.consecutive_failures, before.consecutive_failures + 1);
            assert_eq!(after.last_failure_error.as_deref(), Some(CRASH_ERROR));
            assert_eq!(
                after.claim_lock, before.claim_lock,
                "counter-only path released"
            );
        }
        Op::FailureSpawn | Op::FailureTrip => {
            assert_eq!(after.consecutive_failures, 1);
            assert_eq!(after.last_failure_error.as_deref(), Some(SPAWN_ERROR));
        }
        Op::HeartbeatWorker => {
            assert_eq!(after.last_heartbeat_at, Some(now));
            let r = b.get_run(fx.open_run.unwrap()).unwrap();
            assert_eq!(r.last_heartbeat_at, Some(now));
            assert_eq!(after.claim_expires, before.claim_expires);
        }
        Op::HeartbeatClaim => {
            assert_eq!(after.claim_expires, Some(now + 600));
            let r = b.get_run(fx.open_run.unwrap()).unwrap();
            assert_eq!(r.claim_expires, Some(now + 600));
        }
        _ => {}
    }
}

fn check_refused(start: Start, op: Op) {
    let tb = TestBoard::new();
    let fx = build(&tb, start);
    tb.advance(STEP);
    let before = tb.board.snapshot().unwrap();
    let cursor = tb.board.max_event_id().unwrap();
    match run_op(&tb.board, &fx.id, op) {
        Ok(()) => panic!("expected a refusal, but it succeeded"),
        Err(KernelError::Refused {
            task_id, action, ..
        }) => {
            assert_eq!(task_id, fx.id);
            assert_eq!(action, refused_action(op));
        }
        Err(other) => panic!("expected KernelError::Refused, got {other:?}"),
    }
    let mut after = tb.board.snapshot().unwrap();
    if let Some(kind) = refused_with_event(start, op) {
        let events = tb
            .board
            .events_after(cursor, &EventFilter::default())
            .unwrap();
        assert_eq!(events.len(), 1, "one event for the refusal");
        assert_eq!(events[0].kind, kind);
        assert_eq!(events[0].task_id, fx.id);
        assert_eq!(
            events[0].payload,
            Some(json!({"result_preview": null, "summary_preview": null}))
        );
        let extra: Vec<String> = after
            .iter()
            .filter(|l| !before.contains(l))
            .cloned()
            .collect();
        assert_eq!(extra.len(), 1, "only the event row is new: {extra:?}");
        assert!(extra[0].starts_with("task_events|"), "{extra:?}");
        after.retain(|l| !extra.contains(l));
    }
    assert_eq!(after, before, "a refused call changed the database");
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-text panic)".into())
}

#[test]
fn transition_table_is_exhaustive_and_holds() {
    let cases = table();
    let ops = all_ops();
    // The table is a function: no (start, op) pair is listed twice.
    let mut seen: Vec<(Start, Op)> = Vec::new();
    for c in &cases {
        assert!(ops.contains(&c.op), "{:?} missing from all_ops", c.op);
        for s in &c.from {
            assert!(!seen.contains(&(*s, c.op)), "{s:?} {:?} listed twice", c.op);
            seen.push((*s, c.op));
        }
    }
    let mut failures = Vec::new();
    let (mut allowed, mut refused) = (0, 0);
    for start in ALL_STARTS {
        for &op in &ops {
            let case = cases.iter().find(|c| c.op == op && c.from.contains(&start));
            let outcome = catch_unwind(AssertUnwindSafe(|| match case {
                Some(c) => check_allowed(start, c),
                None => check_refused(start, op),
            }));
            match (outcome, case) {
                (Err(p), _) => failures.push(format!(
                    "{start:?} --{op:?}--> ({}) {}",
                    if case.is_some() { "allowed" } else { "refused" },
                    panic_text(p)
                )),
                (Ok(()), Some(_)) => allowed += 1,
                (Ok(()), None) => refused += 1,
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} transitions misbehaved:\n{}",
        failures.len(),
        ALL_STARTS.len() * ops.len(),
        failures.join("\n")
    );
    assert_eq!(allowed, seen.len());
    assert_eq!(allowed + refused, ALL_STARTS.len() * ops.len());
}

#[test]
fn every_transition_on_an_unknown_task_is_task_not_found() {
    let tb = TestBoard::new();
    tb.task("bystander");
    let before = tb.board.snapshot().unwrap();
    for op in all_ops() {
        match run_op(&tb.board, "t_00000000", op) {
            Err(KernelError::TaskNotFound(id)) => assert_eq!(id, "t_00000000", "{op:?}"),
            other => panic!("{op:?} on an unknown id: expected TaskNotFound, got {other:?}"),
        }
    }
    assert_eq!(tb.board.snapshot().unwrap(), before);
}

// ---------------------------------------------------------------------------------------------
// Guards the table cannot express
// ---------------------------------------------------------------------------------------------

fn stale_run(r: Result<(), KernelError>, task: &str, expected: i64, current: &str) {
    match r {
        Err(KernelError::StaleRun {
            task_id,
            expected: e,
            current: c,
        }) => {
            assert_eq!(task_id, task);
            assert_eq!(e, expected);
            assert_eq!(c, current);
        }
        other => panic!("expected StaleRun, got {other:?}"),
    }
}

#[test]
fn a_reclaimed_worker_cannot_touch_its_successors_run() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let id = tb.task("contested");
    let first = b.claim_task(&id, None).unwrap();
    b.reclaim_task(&id, Some("worker hung"), Map::new())
        .unwrap();

    // Between runs (task ready, no open run): the old worker's calls are stale too.
    let dump = b.snapshot().unwrap();
    stale_run(
        b.complete_task(Completion {
            task_id: id.clone(),
            summary: Some("late".into()),
            expected_run_id: Some(first.run_id),
            ..Default::default()
        })
        .map(drop),
        &id,
        first.run_id,
        "none",
    );
    stale_run(
        b.block_task(BlockRequest {
            task_id: id.clone(),
            reason: Some("late".into()),
            expected_run_id: Some(first.run_id),
            ..Default::default()
        })
        .map(drop),
        &id,
        first.run_id,
        "none",
    );
    stale_run(
        b.schedule_task(&id, Some("late"), Some(first.run_id), None),
        &id,
        first.run_id,
        "none",
    );
    assert_eq!(b.snapshot().unwrap(), dump);

    let second = b.claim_task(&id, None).unwrap();
    assert_ne!(first.run_id, second.run_id);
    let cur = second.run_id.to_string();
    let dump = b.snapshot().unwrap();
    stale_run(
        b.complete_task(Completion {
            task_id: id.clone(),
            summary: Some("late".into()),
            expected_run_id: Some(first.run_id),
            ..Default::default()
        })
        .map(drop),
        &id,
        first.run_id,
        &cur,
    );
    stale_run(
        b.block_task(BlockRequest {
            task_id: id.clone(),
            reason: Some("late".into()),
            kind: Some(BlockKind::NeedsInput),
            expected_run_id: Some(first.run_id),
            comment_author: Some("old-worker".into()),
        })
        .map(drop),
        &id,
        first.run_id,
        &cur,
    );
    stale_run(
        b.heartbeat_worker(&id, Some("still here"), Some(first.run_id)),
        &id,
        first.run_id,
        &cur,
    );
    stale_run(
        b.schedule_task(&id, Some("later"), Some(first.run_id), Some("old-worker")),
        &id,
        first.run_id,
        &cur,
    );
    assert_eq!(
        b.snapshot().unwrap(),
        dump,
        "a stale worker's call changed the database"
    );

    // The current worker is not affected.
    b.heartbeat_worker(&id, None, Some(second.run_id)).unwrap();
    let done = b
        .complete_task(Completion {
            task_id: id.clone(),
            summary: Some("finished".into()),
            expected_run_id: Some(second.run_id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(done.run_id, Some(second.run_id));
    let runs = b.list_runs(&id, None).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].outcome.as_deref(), Some("reclaimed"));
    assert_eq!(runs[1].outcome.as_deref(), Some("completed"));
    assert_eq!(runs[1].summary.as_deref(), Some("finished"));
}

#[test]
fn second_claim_loses_the_compare_and_swap() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let id = tb.task("one winner");
    let won = b.claim_task(&id, Some(300)).unwrap();
    assert_eq!(won.expires, tb.now() + 300);
    let dump = b.snapshot().unwrap();
    for r in [
        b.claim_task(&id, None),
        b.claim_task_as(&id, None, "otherhost:99"),
    ] {
        match r {
            Err(KernelError::Refused {
                task_id,
                action: "claim",
                reason,
            }) => {
                assert_eq!(task_id, id);
                assert!(reason.contains(LOCK), "reason names the holder: {reason}");
            }
            other => panic!("expected the second claim to be refused, got {other:?}"),
        }
    }
    assert_eq!(b.snapshot().unwrap(), dump);
    let t = b.get_task(&id).unwrap();
    assert_eq!(t.claim_lock.as_deref(), Some(LOCK));
    assert_eq!(t.current_run_id, Some(won.run_id));
    assert_eq!(b.list_runs(&id, None).unwrap().len(), 1);
    // Only the holder can extend the claim.
    assert!(matches!(
        b.heartbeat_claim(&id, Some(600), "otherhost:99"),
        Err(KernelError::Refused {
            action: "extend the claim of",
            ..
        })
    ));
    assert_eq!(b.snapshot().unwrap(), dump);
}

fn block(b: &Board, id: &str, kind: Option<BlockKind>, reason: &str, run: Option<i64>) -> Blocked {
    b.block_task(BlockRequest {
        task_id: id.into(),
        reason: Some(reason.into()),
        kind,
        expected_run_id: run,
        ..Default::default()
    })
    .unwrap()
}

fn last_event(b: &Board, id: &str) -> Event {
    b.list_events(id, Some(1)).unwrap().pop().unwrap()
}

#[test]
fn same_kind_reblock_after_unblock_goes_to_triage() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let id = tb.task("asks human");
    let c1 = b.claim_task(&id, None).unwrap();
    let first = block(
        b,
        &id,
        Some(BlockKind::NeedsInput),
        "need creds",
        Some(c1.run_id),
    );
    assert_eq!((first.status, first.recurrences), (Status::Blocked, 1));
    let e = last_event(b, &id);
    assert_eq!(e.kind, "blocked");
    assert_eq!(
        e.payload,
        Some(json!({"reason": "need creds", "kind": "needs_input", "recurrences": 1}))
    );

    assert_eq!(
        b.unblock_task(&id, Some("creds added"), Some("alice"))
            .unwrap(),
        Status::Ready
    );
    let t = b.get_task(&id).unwrap();
    assert_eq!(
        t.block_kind.as_deref(),
        Some("needs_input"),
        "unblock keeps the kind"
    );
    assert_eq!(t.block_recurrences, 1);

    tb.advance(5);
    let c2 = b.claim_task(&id, None).unwrap();
    let second = block(
        b,
        &id,
        Some(BlockKind::NeedsInput),
        "need creds again",
        Some(c2.run_id),
    );
    assert_eq!(second.status, Status::Triage);
    assert_eq!(second.recurrences, 2);
    assert_eq!(second.run_id, Some(c2.run_id));
    let t = b.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Triage);
    assert_eq!(t.block_recurrences, 2);
    assert_eq!(t.claim_lock, None);
    let e = last_event(b, &id);
    assert_eq!(e.kind, "block_loop_detected");
    assert_eq!(e.run_id, Some(c2.run_id));
    assert_eq!(
        e.payload,
        Some(json!({
            "reason": "need creds again",
            "kind": "needs_input",
            "recurrences": 2,
            "limit": BLOCK_RECURRENCE_LIMIT,
        }))
    );
    assert_eq!(BLOCK_RECURRENCE_LIMIT, 2);
    let run = b.get_run(c2.run_id).unwrap();
    assert_eq!(
        (run.status.as_str(), run.outcome.as_deref()),
        ("blocked", Some("blocked"))
    );
    // A triaged task is out of the worker loop: neither claimable nor completable.
    assert!(matches!(
        b.claim_task(&id, None),
        Err(KernelError::Refused { .. })
    ));
    assert!(matches!(
        b.complete_task(Completion {
            task_id: id.clone(),
            ..Default::default()
        }),
        Err(KernelError::Refused {
            action: "complete",
            ..
        })
    ));
}

#[test]
fn dependency_block_parks_in_todo_without_counting() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let id = tb.task("waits on another team");
    // One needs_input block first, so there is a count to (not) touch.
    block(b, &id, Some(BlockKind::NeedsInput), "question", None);
    b.unblock_task(&id, None, None).unwrap();

    let c = b.claim_task(&id, None).unwrap();
    let r = block(
        b,
        &id,
        Some(BlockKind::Dependency),
        "waiting on t_x",
        Some(c.run_id),
    );
    assert_eq!(r.status, Status::Todo);
    assert_eq!(r.recurrences, 1, "dependency leaves the count alone");
    let t = b.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Todo);
    assert_eq!(t.block_kind.as_deref(), Some("dependency"));
    assert_eq!(t.block_recurrences, 1);
    assert_eq!(t.claim_lock, None);
    let e = last_event(b, &id);
    assert_eq!(e.kind, "dependency_wait");
    assert_eq!(e.run_id, Some(c.run_id));
    assert_eq!(
        e.payload,
        Some(json!({"reason": "waiting on t_x", "kind": "dependency"}))
    );
    assert_eq!(
        b.get_run(c.run_id).unwrap().outcome.as_deref(),
        Some("blocked")
    );
    // Repeated dependency waits never route to triage.
    assert_eq!(b.recompute_ready().unwrap(), vec![id.clone()]);
    let r = block(b, &id, Some(BlockKind::Dependency), "still waiting", None);
    assert_eq!(r.status, Status::Todo);
}

#[test]
fn different_block_kinds_do_not_compound() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let id = tb.task("many problems");
    for kind in [
        BlockKind::NeedsInput,
        BlockKind::Capability,
        BlockKind::Transient,
        BlockKind::NeedsInput,
    ] {
        let r = block(b, &id, Some(kind), "problem", None);
        assert_eq!(
            (r.status, r.recurrences),
            (Status::Blocked, 1),
            "{kind:?} after a different kind"
        );
        assert_eq!(b.unblock_task(&id, None, None).unwrap(), Status::Ready);
    }
    // ...but the same kind twice in a row does.
    let r = block(b, &id, Some(BlockKind::NeedsInput), "problem", None);
    assert_eq!((r.status, r.recurrences), (Status::Triage, 2));
}

#[test]
fn completion_resets_the_block_loop_memory() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let id = tb.task("recovers");
    block(b, &id, Some(BlockKind::Transient), "flaky network", None);
    b.unblock_task(&id, None, None).unwrap();
    let before = b.get_task(&id).unwrap();
    assert_eq!(
        (before.block_kind.as_deref(), before.block_recurrences),
        (Some("transient"), 1)
    );
    b.complete_task(Completion {
        task_id: id.clone(),
        summary: Some("worked on retry".into()),
        ..Default::default()
    })
    .unwrap();
    let t = b.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Done);
    assert_eq!(t.block_kind, None);
    assert_eq!(t.block_recurrences, 0);
}

/// `snapshot` after a call that may only have appended one event to `task_events`.
fn assert_only_new_event(before: &[String], after: &[String]) {
    assert_eq!(after.len(), before.len() + 1, "exactly one row added");
    let added: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
    assert_eq!(added.len(), 1);
    assert!(added[0].starts_with("task_events|"), "added {}", added[0]);
    assert!(before.iter().all(|r| after.contains(r)), "a row changed");
}

#[test]
fn created_cards_are_verified_before_completion() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let id = tb.task("fan out");
    let claim = b.claim_task(&id, None).unwrap();
    let by_assignee = b
        .create_task(NewTask {
            title: "made by worker".into(),
            created_by: Some("worker".into()),
            ..Default::default()
        })
        .unwrap()
        .task
        .id;
    let by_task = b
        .create_task(NewTask {
            title: "made by the task".into(),
            created_by: Some(id.clone()),
            ..Default::default()
        })
        .unwrap()
        .task
        .id;
    let linked_child = tb.child("linked child", &[&id]);
    let strangers = b
        .create_task(NewTask {
            title: "someone else's".into(),
            created_by: Some("stranger".into()),
            ..Default::default()
        })
        .unwrap()
        .task
        .id;
    let phantom = "t_deadbeef".to_string();

    let before = b.snapshot().unwrap();
    let err = b
        .complete_task(Completion {
            task_id: id.clone(),
            summary: Some("made four cards\nsecond line".into()),
            created_cards: vec![by_assignee.clone(), phantom.clone(), strangers.clone()],
            expected_run_id: Some(claim.run_id),
            ..Default::default()
        })
        .unwrap_err();
    match &err {
        KernelError::HallucinatedCards {
            task_id,
            phantom: p,
            verified,
        } => {
            assert_eq!(task_id, &id);
            assert_eq!(p, &vec![phantom.clone(), strangers.clone()]);
            assert_eq!(verified, &vec![by_assignee.clone()]);
        }
        other => panic!("expected HallucinatedCards, got {other:?}"),
    }
    let after = b.snapshot().unwrap();
    assert_only_new_event(&before, &after);
    let e = last_event(b, &id);
    assert_eq!(e.kind, "completion_blocked_hallucination");
    assert_eq!(e.run_id, None);
    assert_eq!(
        e.payload,
        Some(json!({
            "phantom_cards": [phantom, strangers],
            "verified_cards": [by_assignee],
            "summary_preview": "made four cards",
        }))
    );
    let t = b.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Running);
    assert_eq!(t.current_run_id, Some(claim.run_id));

    // Cards made by the assignee, by the task itself, or linked as its children verify.
    let done = b
        .complete_task(Completion {
            task_id: id.clone(),
            summary: Some("made three cards".into()),
            created_cards: vec![by_assignee.clone(), by_task.clone(), linked_child.clone()],
            expected_run_id: Some(claim.run_id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(done.run_id, Some(claim.run_id));
    assert_eq!(done.promoted, vec![linked_child.clone()]);
    let completed = b
        .list_events(&id, None)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "completed")
        .unwrap();
    assert_eq!(
        completed.payload,
        Some(json!({
            "result_len": 0,
            "summary": "made three cards",
            "verified_cards": [by_assignee, by_task, linked_child],
        }))
    );
}

#[test]
fn unknown_task_references_in_a_handoff_are_flagged_not_blocking() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let real = tb.task("real");
    let id = tb.task("writer");
    let claim = b.claim_task(&id, None).unwrap();
    let done = b
        .complete_task(Completion {
            task_id: id.clone(),
            summary: Some(format!("built on {real} and t_0badf00d")),
            result: Some("also see t_0badf00d and t_12345678abcd".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(done.phantom_refs, vec!["t_0badf00d", "t_12345678abcd"]);
    assert_eq!(b.get_task(&id).unwrap().status, Status::Done);
    let events = b.list_events(&id, None).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["completed", "suspected_hallucinated_references"]
    );
    let e = events.last().unwrap();
    assert_eq!(e.run_id, Some(claim.run_id));
    assert_eq!(
        e.payload,
        Some(json!({
            "phantom_refs": ["t_0badf00d", "t_12345678abcd"],
            "source": "completion_summary",
        }))
    );

    // A hand-off naming only real tasks raises nothing.
    let clean = tb.task("clean");
    let done = b
        .complete_task(Completion {
            task_id: clean.clone(),
            summary: Some(format!("see {real}")),
            ..Default::default()
        })
        .unwrap();
    assert!(done.phantom_refs.is_empty());
    assert!(
        b.list_events(&clean, None)
            .unwrap()
            .iter()
            .all(|e| e.kind != "suspected_hallucinated_references")
    );
}

#[test]
fn claim_rechecks_parents_and_demotes_a_force_promoted_child() {
    // REF §5.3/§6.1: claim is the single enforcement point; a `ready` task whose parent is
    // unfinished is moved back to `todo` with `claim_rejected`, and the claim fails.
    let tb = TestBoard::new();
    let b = &tb.board;
    let parent = tb.task("parent");
    let child = tb.child("child", &[&parent]);
    b.promote_task(
        &child,
        &PromoteOptions {
            force: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(b.get_task(&child).unwrap().status, Status::Ready);
    match b.claim_task(&child, None) {
        Err(KernelError::Refused {
            task_id,
            action: "claim",
            ..
        }) => assert_eq!(task_id, child),
        other => panic!("expected the claim to be refused, got {other:?}"),
    }
    let t = b.get_task(&child).unwrap();
    assert_eq!(t.status, Status::Todo, "the wrongly-ready child is demoted");
    assert_eq!(t.claim_lock, None);
    assert!(b.list_runs(&child, None).unwrap().is_empty());
    let e = last_event(b, &child);
    assert_eq!(e.kind, "claim_rejected");
    assert_eq!(e.payload, Some(json!({"reason": "parents_not_done"})));
    assert_invariants(b);
    // Finishing the parent promotes it again, and then the claim succeeds.
    b.complete_task(Completion {
        task_id: parent.clone(),
        summary: Some("parent done".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(b.get_task(&child).unwrap().status, Status::Ready);
    b.claim_task(&child, None).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Upstream (~0.22) rules the table cannot express
// ---------------------------------------------------------------------------------------------

fn raw(tb: &TestBoard) -> rusqlite::Connection {
    rusqlite::Connection::open(tb.dir.path().join("hermes").join("kanban.db")).unwrap()
}

/// UP §5: a running task whose host-local worker is alive cannot be completed or handed to
/// review by anyone but its own run, unless forced; a refusal changes nothing. A claim without
/// a pid is not live.
#[test]
fn live_claim_guard_lets_only_the_own_run_or_force_through() {
    let mut tb = TestBoard::new();
    tb.board.set_claimer(default_claimer());
    let b = &tb.board;
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = sleeper.id() as i64;
    let done = |id: &str, run: Option<i64>, force: bool| {
        b.complete_task(Completion {
            task_id: id.into(),
            summary: Some("operator says done".into()),
            expected_run_id: run,
            force,
            ..Default::default()
        })
    };
    // No pid: a CLI claim is not live.
    let cli = tb.task("cli claim");
    b.claim_task(&cli, None).unwrap();
    done(&cli, None, false).unwrap();

    for way in ["own run", "force", "review own run", "review force"] {
        let id = tb.task(way);
        let claim = b.claim_task(&id, None).unwrap();
        b.set_worker_pid(&id, claim.run_id, pid).unwrap();
        let dump = b.snapshot().unwrap();
        let refused = if way.starts_with("review") {
            b.request_review(ReviewRequest {
                task_id: id.clone(),
                summary: Some(SUMMARY.into()),
                ..Default::default()
            })
            .map(drop)
        } else {
            done(&id, None, false).map(drop)
        };
        match refused {
            Err(KernelError::Refused { reason, .. }) => {
                assert!(reason.contains("a live worker is running it"), "{reason}");
                assert!(reason.contains("--force"), "{reason}");
            }
            other => panic!("{way}: expected the live-claim refusal, got {other:?}"),
        }
        assert_eq!(b.snapshot().unwrap(), dump, "{way}: the refusal wrote");
        let (run, force) = if way.ends_with("force") {
            (None, true)
        } else {
            (Some(claim.run_id), false)
        };
        if way.starts_with("review") {
            b.request_review(ReviewRequest {
                task_id: id.clone(),
                summary: Some(SUMMARY.into()),
                expected_run_id: run,
                force,
                ..Default::default()
            })
            .unwrap();
            assert_eq!(b.get_task(&id).unwrap().status, Status::Review);
        } else {
            done(&id, run, force).unwrap();
            assert_eq!(b.get_task(&id).unwrap().status, Status::Done);
        }
        assert_invariants(b);
    }
    // A dead worker's claim is not live either.
    let dead = tb.task("dead worker");
    let claim = b.claim_task(&dead, None).unwrap();
    b.set_worker_pid(&dead, claim.run_id, pid).unwrap();
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    done(&dead, None, false).unwrap();
}

/// UP §5: whitespace is no evidence; a stored result is; the refusal's event survives.
#[test]
fn empty_completion_is_refused_but_recorded() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let id = tb.task("nothing to show");
    let err = b
        .complete_task(Completion {
            task_id: id.clone(),
            summary: Some("   ".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot complete {id}: completion blocked: {id} has no result or summary evidence. \
             Pass --result/--summary describing what was done (an empty completion is not \
             evidence)."
        )
    );
    let e = b.list_events(&id, None).unwrap().pop().unwrap();
    assert_eq!(e.kind, "completion_blocked_empty_result");
    assert_eq!(
        e.payload,
        Some(json!({"result_preview": null, "summary_preview": null}))
    );
    assert_eq!(b.get_task(&id).unwrap().status, Status::Ready);
    b.complete_task(Completion {
        task_id: id.clone(),
        result: Some("shipped".into()),
        ..Default::default()
    })
    .unwrap();
}

/// UP §4: a re-review goes to the reviewer who asked for changes; a reviewer who blocks and is
/// unblocked resumes in review; a review-lane task waiting on a reopened parent comes back to
/// review through recompute.
#[test]
fn review_rounds_route_between_implementer_and_reviewer() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let id = tb.task("feature");
    let c = b.claim_task(&id, None).unwrap();
    let r = b
        .request_review(ReviewRequest {
            task_id: id.clone(),
            summary: Some("first cut\nmore detail".into()),
            reviewer: Some("QA".into()),
            expected_run_id: Some(c.run_id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        (r.implementer.as_deref(), r.reviewer.as_deref()),
        (Some("worker"), Some("qa"))
    );
    let t = b.get_task(&id).unwrap();
    assert_eq!(
        (t.status, t.assignee.as_deref()),
        (Status::Review, Some("qa"))
    );
    let e = b.list_events(&id, None).unwrap().pop().unwrap();
    assert_eq!(
        e.payload,
        Some(json!({"summary": "first cut", "implementer": "worker", "reviewer": "qa"}))
    );
    // Claim from review, request changes: back to worker.
    let rc = b.claim_review_task(&id, None).unwrap();
    let ch = b
        .request_changes(&id, "add tests", Some(rc.run_id))
        .unwrap();
    assert_eq!(
        (ch.implementer.as_str(), ch.status),
        ("worker", Status::Ready)
    );
    assert_eq!(b.get_task(&id).unwrap().assignee.as_deref(), Some("worker"));
    // Re-review without --reviewer: the reviewer who asked for changes.
    let c2 = b.claim_task(&id, None).unwrap();
    let r2 = b
        .request_review(ReviewRequest {
            task_id: id.clone(),
            summary: Some("tests added".into()),
            expected_run_id: Some(c2.run_id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r2.reviewer.as_deref(), Some("qa"));
    // The reviewer blocks; unblock resumes in review.
    let rc2 = b.claim_review_task(&id, None).unwrap();
    b.record_task_failure(&FailureReport {
        release_claim: true,
        end_run: true,
        failure_limit: Some(1),
        ..FailureReport::new(&id, RunOutcome::Crashed, "reviewer died")
    })
    .unwrap();
    let t = b.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Blocked);
    let gave_up = b.list_events(&id, None).unwrap().pop().unwrap();
    assert_eq!(gave_up.run_id, Some(rc2.run_id));
    assert_eq!(gave_up.payload.as_ref().unwrap()["sticky"], json!(true));
    assert_eq!(
        gave_up.payload.as_ref().unwrap()["retry_status"],
        json!("review")
    );
    assert_eq!(b.unblock_task(&id, None, None).unwrap(), Status::Review);
    let e = b.list_events(&id, None).unwrap().pop().unwrap();
    assert_eq!(
        e.payload,
        Some(json!({"status": "review", "resume_status": "review"}))
    );
    // Approve.
    b.complete_task(Completion {
        task_id: id.clone(),
        ..Default::default()
    })
    .unwrap();
    let runs = b.list_runs(&id, None).unwrap();
    let last = runs.last().unwrap();
    assert_eq!(last.summary.as_deref(), Some(REVIEW_APPROVED_NOTE));
    assert_invariants(b);
}

/// UP §10 / §16.5: every pid we write or clear also clears Hermes' spawn fingerprint, so Hermes
/// judges our worker as a legacy row (existence only, never signalled).
#[test]
fn writing_a_worker_pid_clears_hermes_fingerprint() {
    sqlite_only!("stamps Hermes' fingerprint columns through the SQLite file");
    let tb = TestBoard::new();
    let b = &tb.board;
    let id = tb.task("fingerprinted");
    let c = b.claim_task(&id, None).unwrap();
    let db = raw(&tb);
    let stamp = |db: &rusqlite::Connection| {
        db.execute(
            "UPDATE tasks SET worker_started_at='boot:1|123' WHERE id=?1",
            [&id],
        )
        .unwrap();
        db.execute(
            "UPDATE task_runs SET worker_started_at='boot:1|123' WHERE task_id=?1",
            [&id],
        )
        .unwrap();
    };
    let fp = |db: &rusqlite::Connection| -> (Option<String>, Option<String>) {
        let t = db
            .query_row(
                "SELECT worker_started_at FROM tasks WHERE id=?1",
                [&id],
                |r| r.get(0),
            )
            .unwrap();
        let r = db
            .query_row(
                "SELECT worker_started_at FROM task_runs WHERE id=?1",
                [c.run_id],
                |r| r.get(0),
            )
            .unwrap();
        (t, r)
    };
    stamp(&db);
    b.set_worker_pid(&id, c.run_id, 4242).unwrap();
    assert_eq!(
        fp(&db),
        (None, None),
        "a new pid keeps no stale fingerprint"
    );
    stamp(&db);
    b.reclaim_task(&id, Some("operator"), Map::new()).unwrap();
    assert_eq!(fp(&db), (None, None), "a cleared pid keeps no fingerprint");
}

/// UP §16.7: a new subscription starts at the task's latest event.
#[test]
fn notify_subscriptions_start_at_the_latest_event() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let id = tb.task("notify me");
    b.block_task(BlockRequest {
        task_id: id.clone(),
        reason: Some("need a decision".into()),
        ..Default::default()
    })
    .unwrap();
    let latest = b.list_events(&id, None).unwrap().last().unwrap().id;
    let sub = b
        .add_notify_sub(
            &SubKey {
                task_id: id.clone(),
                platform: "telegram".into(),
                chat_id: "42".into(),
                thread_id: String::new(),
            },
            None,
            None,
        )
        .unwrap();
    assert_eq!(sub.last_event_id, latest);
}

/// UP §10: the review lane holds one budget slot back while review work waits, and
/// `review_dispatch: false` leaves review tasks alone.
#[test]
fn the_review_lane_holds_a_slot_back() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let ready = tb.task("ready work");
    let r = tb.task("to review");
    let c = b.claim_task(&r, None).unwrap();
    b.request_review(ReviewRequest {
        task_id: r.clone(),
        summary: Some(SUMMARY.into()),
        reviewer: Some("worker".into()),
        expected_run_id: Some(c.run_id),
        ..Default::default()
    })
    .unwrap();
    let plan = |no_review_lane: bool, max_spawn: usize| {
        b.plan_dispatch(&PlanOptions {
            max_spawn: Some(max_spawn),
            extra_spawnable: vec!["worker".into()],
            no_review_lane,
            ..Default::default()
        })
        .unwrap()
        .spawn
        .spawned
        .into_iter()
        .map(|s| s.task_id)
        .collect::<Vec<_>>()
    };
    assert_eq!(
        plan(false, 1),
        vec![r.clone()],
        "the one slot goes to the review"
    );
    assert_eq!(plan(false, 2), vec![ready.clone(), r.clone()]);
    assert_eq!(plan(true, 2), vec![ready.clone()], "review lane off");
}
