//! Completing a task (REF §5.2, §13.3; UP §4, §5): the hand-off is checked before the
//! transaction (sizes, metadata object, absolute artifact paths merged into
//! `metadata.artifacts`); inside it the created cards are verified (a phantom refuses and
//! records `completion_blocked_hallucination`), an empty completion is refused (UP §5), the
//! live-claim guard applies, the run closes `completed` (or one is synthesized for a hand-off on
//! a never-claimed task), unknown `t_…` references in the prose are flagged, and children are
//! promoted.

use regex_lite::Regex;
use serde_json::{Map, Value, json};

use super::{Completed, Completion, REVIEW_APPROVED_NOTE, stale_guard};
use crate::kernel::board::{Board, add_event, load_task};
use crate::kernel::error::{KernelError, Result};
use crate::kernel::graph::recompute_ready_tx;
use crate::kernel::review::live_claim_guard;
use crate::kernel::runs::{end_run, synth_run};
use crate::kernel::store::Tx;
use crate::kernel::types::{RunOutcome, Status, Task};
use crate::kernel::validate as v;
use crate::{args, leave_running, obj};

fn task_ref_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\bt_[a-f0-9]{8,}\b").expect("static regex"))
}

/// A [`Completion`] checked outside the transaction.
struct Handoff {
    task_id: String,
    summary: Option<String>,
    result: Option<String>,
    metadata: Option<Map<String, Value>>,
    /// Distinct created-card ids, in the order given.
    cards: Vec<String>,
    /// Distinct absolute artifact paths (also merged into `metadata.artifacts`).
    artifacts: Vec<String>,
}

impl Handoff {
    fn check(req: &Completion) -> Result<Handoff> {
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
        Ok(Handoff {
            task_id,
            summary,
            result,
            metadata,
            cards,
            artifacts,
        })
    }
}

/// How the completion transaction ended: done, or a refusal whose event must be committed.
enum Out {
    Done(Completed),
    Phantom(Vec<String>, Vec<String>),
    Empty,
}

/// Split the created cards into verified (created by the assignee or by this task, or linked
/// as its child) and phantom ones.
fn verify_cards(c: &Tx, t: &Task, cards: &[String]) -> Result<(Vec<String>, Vec<String>)> {
    let mut verified = Vec::new();
    let mut phantom = Vec::new();
    for card in cards {
        let ok = match load_task(c, card) {
            Err(_) => false,
            Ok(ct) => {
                let by = ct.created_by.as_deref();
                (by.is_some() && (by == t.assignee.as_deref() || by == Some(t.id.as_str())))
                    || c.exists(
                        "SELECT 1 FROM task_links WHERE parent_id=?1 AND child_id=?2",
                        args![t.id, card],
                    )?
            }
        };
        if ok {
            verified.push(card.clone())
        } else {
            phantom.push(card.clone())
        }
    }
    Ok((verified, phantom))
}

/// `t_…` references in the hand-off prose that name no task; flagged with an event.
fn flag_phantom_refs(c: &Tx, h: &Handoff, run_id: Option<i64>, now: i64) -> Result<Vec<String>> {
    let mut phantom_refs: Vec<String> = Vec::new();
    let prose = format!(
        "{}\n{}",
        h.summary.as_deref().unwrap_or(""),
        h.result.as_deref().unwrap_or("")
    );
    for m in task_ref_regex().find_iter(&prose) {
        let id = m.as_str().to_string();
        if !phantom_refs.contains(&id) && load_task(c, &id).is_err() {
            phantom_refs.push(id);
        }
    }
    if !phantom_refs.is_empty() {
        add_event(
            c,
            &h.task_id,
            run_id,
            "suspected_hallucinated_references",
            obj! {"phantom_refs" => phantom_refs, "source" => "completion_summary"},
            now,
        )?;
    }
    Ok(phantom_refs)
}

/// Move the task to `done` (CAS on status and run) and close its run with the hand-off, or
/// synthesize a closed run when there is a hand-off but no open run. Returns the run id.
fn close_done(c: &Tx, t: &Task, h: &Handoff, from_review: bool, now: i64) -> Result<Option<i64>> {
    let n = c.exec(
        leave_running!(
            "status='done', block_kind=NULL, block_recurrences=0, result=COALESCE(?1, result), \
            completed_at=?2,
                consecutive_failures=0, last_failure_error=NULL",
            "id=?3 AND status=?4 AND current_run_id IS NOT DISTINCT FROM ?5"
        ),
        args![h.result, now, t.id, t.status.as_str(), t.current_run_id],
    )?;
    KernelError::cas(n, &t.id, "complete")?;
    let mut run_summary = h.summary.as_deref().or(h.result.as_deref());
    let approval_meta;
    let mut run_meta = h.metadata.as_ref();
    if from_review && run_summary.is_none() && run_meta.is_none() {
        // UP §4: an approval without evidence is recorded as such.
        run_summary = Some(REVIEW_APPROVED_NOTE);
        approval_meta = obj! {"source_status" => "review", "approval" => "manual"};
        run_meta = Some(&approval_meta);
    }
    let handoff = run_summary.is_some() || run_meta.is_some();
    Ok(
        match end_run(
            c,
            t,
            RunOutcome::Completed,
            "done",
            run_summary,
            None,
            run_meta,
            now,
        )? {
            Some(r) => Some(r),
            None if handoff => Some(synth_run(
                c,
                t,
                RunOutcome::Completed,
                run_summary,
                None,
                run_meta,
                now,
            )?),
            None => None,
        },
    )
}

/// The `completed` event: result length, the summary's first line, verified cards, artifacts.
fn completed_event(
    c: &Tx,
    h: &Handoff,
    run_id: Option<i64>,
    from_review: bool,
    verified: &[String],
    now: i64,
) -> Result<()> {
    let event_summary = h
        .summary
        .as_deref()
        .or(h.result.as_deref())
        .or(from_review.then_some(REVIEW_APPROVED_NOTE));
    let mut payload = obj! {
        "result_len" => h.result.as_deref().map(|r| r.chars().count()).unwrap_or(0),
        // As Hermes: the summary, else the result, first line; null when empty.
        "summary" => event_summary
            .map(|s| v::first_line(s, 400))
            .filter(|s| !s.is_empty()),
    };
    if !verified.is_empty() {
        payload.insert("verified_cards".into(), json!(verified));
    }
    if !h.artifacts.is_empty() {
        payload.insert("artifacts".into(), json!(h.artifacts));
    }
    add_event(c, &h.task_id, run_id, "completed", payload, now)?;
    Ok(())
}

/// The completion transaction body.
fn complete_tx(c: &Tx, req: &Completion, h: &Handoff, now: i64) -> Result<Out> {
    let task_id = &h.task_id;
    let t = c.lock_task(task_id)?;
    if !matches!(
        t.status,
        Status::Running | Status::Ready | Status::Blocked | Status::Review
    ) {
        return Err(KernelError::refused(
            task_id,
            "complete",
            format!(
                "status is '{}'; only running, ready, blocked or review tasks can be completed",
                t.status
            ),
        ));
    }
    stale_guard(&t, req.expected_run_id)?;
    let from_review = t.status == Status::Review;
    let (verified, phantom) = verify_cards(c, &t, &h.cards)?;
    if !phantom.is_empty() {
        let preview = v::first_line(
            h.summary.as_deref().or(h.result.as_deref()).unwrap_or(""),
            200,
        );
        add_event(
            c,
            task_id,
            None,
            "completion_blocked_hallucination",
            obj! {
                "phantom_cards" => phantom, "verified_cards" => verified,
                "summary_preview" => preview,
            },
            now,
        )?;
        return Ok(Out::Phantom(phantom, verified));
    }
    // UP §5: no completion without evidence (a review approval is exempt: the human is the
    // record). The refusal's event is committed; the task is unchanged.
    let substantive = |s: Option<&str>| s.is_some_and(|s| !s.trim().is_empty());
    if !from_review
        && !substantive(h.result.as_deref())
        && !substantive(h.summary.as_deref())
        && !substantive(t.result.as_deref())
    {
        add_event(
            c,
            task_id,
            None,
            "completion_blocked_empty_result",
            obj! {
                "result_preview" => h.result.as_deref().map(|r| v::first_line(r, 200))
                    .filter(|s| !s.is_empty()),
                "summary_preview" => h.summary.as_deref().map(|s| v::first_line(s, 200))
                    .filter(|s| !s.is_empty()),
            },
            now,
        )?;
        return Ok(Out::Empty);
    }
    live_claim_guard(c, &t, "complete", req.expected_run_id, req.force)?;
    let run_id = close_done(c, &t, h, from_review, now)?;
    completed_event(c, h, run_id, from_review, &verified, now)?;
    let phantom_refs = flag_phantom_refs(c, h, run_id, now)?;
    let promoted = recompute_ready_tx(c, now)?;
    Ok(Out::Done(Completed {
        task_id: task_id.clone(),
        run_id,
        promoted,
        phantom_refs,
    }))
}

impl Board {
    /// Complete a `running`, `ready` or `blocked` task with a hand-off (REF §5.2, §13.3).
    /// Verifies `created_cards` (a phantom records `completion_blocked_hallucination` and
    /// refuses, task unchanged), closes the open run as `completed` (or synthesizes one when a
    /// hand-off is given on a never-claimed task), resets failure and block counters, flags
    /// unknown `t_…` references in the prose, and promotes children — all in one transaction.
    pub fn complete_task(&self, req: Completion) -> Result<Completed> {
        let h = Handoff::check(&req)?;
        let now = self.now();
        let task_id = h.task_id.clone();
        match self.write(|c| complete_tx(c, &req, &h, now))? {
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
                     --result/--summary describing what was done (an empty completion is not \
                     evidence)."
                ),
            )),
        }
    }
}
