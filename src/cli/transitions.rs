//! Worker and operator transitions: claim, heartbeat, complete (with the bulk-close guard),
//! edit, block, schedule, unblock, promote, reclaim.

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::output::print_json;
use super::{CliError, Ctx, each_id};
use crate::kernel::{
    BlockKind, BlockRequest, Completion, PromoteOptions, ResultEdit, Status, TaskPatch,
    WorkspaceKind,
};

/// `claim` arguments.
#[derive(Debug, Args)]
pub struct ClaimArgs {
    /// Task id.
    pub id: String,
    /// Claim lifetime in seconds (default $HERMES_KANBAN_CLAIM_TTL_SECONDS or 900).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=2_592_000))]
    pub ttl: Option<i64>,
}

pub(crate) fn claim(ctx: &Ctx, a: &ClaimArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let scratch = b.paths().workspaces.join(&a.id);
    let scratch = scratch.to_string_lossy();
    // One transaction: the claim and, for a scratch task, its workspace path (one fsync).
    let (c, t) = b.claim_task_with_scratch(&a.id, a.ttl, &scratch)?;
    println!("Claimed {}", c.task_id);
    let ws = match (t.workspace_kind.parse::<WorkspaceKind>(), &t.workspace_path) {
        (Ok(WorkspaceKind::Scratch), Some(p)) if *p == scratch => {
            std::fs::create_dir_all(p).map_err(|e| CliError::Failed(format!("{p}: {e}")))?;
            p.clone()
        }
        (_, Some(p)) => p.clone(),
        _ => "(resolved by the dispatcher at spawn)".into(),
    };
    println!("Workspace: {ws}");
    println!(
        "Run: {}  (lock {}, expires in {}s)",
        c.run_id,
        c.lock,
        c.expires - b.now()
    );
    Ok(())
}

/// `heartbeat` arguments.
#[derive(Debug, Args)]
pub struct HeartbeatArgs {
    /// Task id.
    pub id: String,
    /// What the worker is doing.
    #[arg(long)]
    pub note: Option<String>,
}

pub(crate) fn heartbeat(ctx: &Ctx, a: &HeartbeatArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    b.heartbeat_worker(&a.id, a.note.as_deref(), ctx.expected_run_id(&a.id))?;
    println!("Heartbeat recorded for {}", a.id);
    Ok(())
}

fn parse_metadata(raw: Option<&str>) -> Result<Option<Value>, CliError> {
    let Some(raw) = raw else { return Ok(None) };
    let v: Value = serde_json::from_str(raw).map_err(|e| {
        CliError::Failed(format!(
            "--metadata is not valid JSON ({e}); pass an object like '{{\"tests\": 12}}'"
        ))
    })?;
    // The kernel's rule (an object, or a string holding one), with the flag's name.
    match crate::kernel::validate::metadata(Some(&v)) {
        Ok(m) => Ok(m.map(Value::Object)),
        Err(_) => Err(CliError::Failed(format!(
            "--metadata must be a JSON object like '{{\"tests\": 12}}', not {}{}",
            crate::kernel::validate::json_type(&v),
            if v.is_string() {
                " (a quoted string is accepted only when it holds a JSON object)"
            } else {
                ""
            }
        ))),
    }
}

/// `complete` arguments.
#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// Task ids (several only without --summary/--metadata: hand-offs are per task).
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Short legacy result text.
    #[arg(long)]
    pub result: Option<String>,
    /// Hand-off summary for the next worker (1-3 sentences).
    #[arg(long)]
    pub summary: Option<String>,
    /// Hand-off facts as a JSON object.
    #[arg(long)]
    pub metadata: Option<String>,
    /// Complete even while a live worker runs it (its run is closed; stop the worker yourself
    /// or let the dispatcher's supervisor stop it).
    #[arg(long)]
    pub force: bool,
}

pub(crate) fn complete(ctx: &Ctx, a: &CompleteArgs) -> Result<(), CliError> {
    if a.ids.len() > 1 && (a.summary.is_some() || a.metadata.is_some()) {
        return Err(CliError::Usage(
            "--summary / --metadata are per-task hand-offs and can't be used with several ids; \
            complete each task on its own (bulk complete without them is allowed)"
                .into(),
        ));
    }
    let metadata = parse_metadata(a.metadata.as_deref())?;
    let b = ctx.open()?;
    each_id(&a.ids, |id| {
        let c = b.complete_task(Completion {
            task_id: id.to_string(),
            summary: a.summary.clone(),
            metadata: metadata.clone(),
            result: a.result.clone(),
            expected_run_id: ctx.expected_run_id(id),
            force: a.force,
            ..Default::default()
        })?;
        Ok(if c.promoted.is_empty() {
            format!("Completed {id}")
        } else {
            format!(
                "Completed {id}\n  promoted to ready: {}",
                c.promoted.join(", ")
            )
        })
    })
}

/// `edit` arguments.
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args(["title", "body", "body_file", "priority", "result"])
))]
pub struct EditArgs {
    /// The task.
    pub id: String,
    /// New title.
    #[arg(long)]
    pub title: Option<String>,
    /// New body (markdown; an empty string clears it).
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Read the new body from a file; `-` reads standard input.
    #[arg(long, value_name = "PATH")]
    pub body_file: Option<std::path::PathBuf>,
    /// New priority.
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// New result text (done tasks only).
    #[arg(long)]
    pub result: Option<String>,
    /// New hand-off summary (with --result).
    #[arg(long, requires = "result")]
    pub summary: Option<String>,
    /// New hand-off metadata, a JSON object (with --result).
    #[arg(long, requires = "result")]
    pub metadata: Option<String>,
    /// Print the task as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn edit(ctx: &Ctx, a: &EditArgs) -> Result<(), CliError> {
    let metadata = parse_metadata(a.metadata.as_deref())?;
    let body = match &a.body_file {
        None => a.body.clone(),
        Some(p) => Some(super::create::read_body_file(p)?),
    };
    let b = ctx.open()?;
    let patch = TaskPatch {
        title: a.title.clone(),
        body: body.map(|b| Some(b).filter(|b| !b.trim().is_empty())),
        priority: a.priority,
        tenant: None,
    };
    let result = a.result.as_deref().map(|r| ResultEdit {
        result: r,
        summary: a.summary.as_deref(),
        metadata: metadata.as_ref(),
    });
    let t = b.edit_task(&a.id, patch, result)?;
    if a.json {
        print_json(&t.to_hermes_json());
    } else {
        println!("Edited {}", a.id);
    }
    Ok(())
}

/// Block kinds on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// Needs a human answer.
    #[value(name = "needs_input", alias = "needs-input")]
    NeedsInput,
    /// Missing a capability (tool, access).
    Capability,
    /// Waiting on another task: goes to todo.
    Dependency,
    /// A passing problem.
    Transient,
}

impl From<KindArg> for BlockKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::NeedsInput => BlockKind::NeedsInput,
            KindArg::Capability => BlockKind::Capability,
            KindArg::Dependency => BlockKind::Dependency,
            KindArg::Transient => BlockKind::Transient,
        }
    }
}

/// `block` arguments.
#[derive(Debug, Args)]
pub struct BlockArgs {
    /// Task id.
    pub id: String,
    /// Reason (words are joined; put `--` before a reason that starts with `-`).
    pub reason: Vec<String>,
    /// More task ids to block with the same reason.
    #[arg(long, num_args = 1.., value_name = "ID")]
    pub ids: Vec<String>,
    /// Why it is blocked.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
}

fn reason(words: &[String]) -> Option<String> {
    let r = words.join(" ");
    (!r.trim().is_empty()).then_some(r)
}

pub(crate) fn block(ctx: &Ctx, a: &BlockArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let reason = reason(&a.reason);
    let why = reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let author = ctx.author();
    each_id(std::iter::once(&a.id).chain(a.ids.iter()), |id| {
        let x = b.block_task(BlockRequest {
            task_id: id.to_string(),
            reason: reason.clone(),
            kind: a.kind.map(Into::into),
            expected_run_id: ctx.expected_run_id(id),
            comment_author: Some(author.clone()),
        })?;
        Ok(match x.status {
            Status::Todo => format!("{id} → todo (dependency wait){why}"),
            Status::Triage => {
                format!("{id} → triage (unblock loop detected — needs a human decision){why}")
            }
            _ => format!("Blocked {id}{why}"),
        })
    })
}

/// `schedule` arguments.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Task id.
    pub id: String,
    /// Reason (words are joined; put `--` before a reason that starts with `-`).
    pub reason: Vec<String>,
    /// More task ids.
    #[arg(long, num_args = 1.., value_name = "ID")]
    pub ids: Vec<String>,
}

pub(crate) fn schedule(ctx: &Ctx, a: &ScheduleArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let reason = reason(&a.reason);
    let why = reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let author = ctx.author();
    each_id(std::iter::once(&a.id).chain(a.ids.iter()), |id| {
        b.schedule_task(
            id,
            reason.as_deref(),
            ctx.expected_run_id(id),
            Some(&author),
        )?;
        Ok(format!("Scheduled {id}{why}"))
    })
}

/// `unblock` arguments.
#[derive(Debug, Args)]
pub struct UnblockArgs {
    /// Task ids.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Reason, recorded as an `UNBLOCK:` comment.
    #[arg(long)]
    pub reason: Option<String>,
}

pub(crate) fn unblock(ctx: &Ctx, a: &UnblockArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let author = ctx.author();
    let why = a
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    each_id(&a.ids, |id| {
        Ok(
            match b.unblock_task(id, a.reason.as_deref(), Some(&author))? {
                Status::Todo => format!("Unblocked {id} → todo (waiting on parents){why}"),
                _ => format!("Unblocked {id}{why}"),
            },
        )
    })
}

/// `promote` arguments.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Task id.
    pub id: String,
    /// Reason (words are joined; put `--` before a reason that starts with `-`).
    pub reason: Vec<String>,
    /// More task ids.
    #[arg(long, num_args = 1.., value_name = "ID")]
    pub ids: Vec<String>,
    /// Promote even if a parent is unfinished.
    #[arg(long)]
    pub force: bool,
    /// Check only; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON (an object for one id, a list for several).
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn promote(ctx: &Ctx, a: &PromoteArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let reason = reason(&a.reason);
    let mut ids: Vec<&String> = Vec::new();
    for id in std::iter::once(&a.id).chain(a.ids.iter()) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let opts = PromoteOptions {
        force: a.force,
        dry_run: a.dry_run,
        actor: Some(ctx.author()),
        reason: reason.clone(),
    };
    let mut results = Vec::new();
    let mut failed = false;
    for id in &ids {
        let r = b.promote_task(id, &opts);
        let error = r.as_ref().err().map(|e| e.to_string());
        failed |= error.is_some();
        if !a.json {
            let why = reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            match &error {
                None if a.dry_run => println!("Would promote {id} -> ready (dry){why}"),
                None => println!("Promoted {id} -> ready{why}"),
                Some(e) => eprintln!("hermes-kanban: {e}"),
            }
        }
        // As in Hermes, `promoted` is true for a dry run that would succeed (`dry_run` says
        // nothing was written).
        results.push(
            json!({"task_id": id, "promoted": error.is_none(), "dry_run": a.dry_run,
                "forced": a.force, "reason": reason, "error": error}),
        );
    }
    if a.json {
        if results.len() == 1 {
            print_json(&results[0]);
        } else {
            print_json(&results);
        }
    }
    if failed {
        Err(CliError::Partial)
    } else {
        Ok(())
    }
}

/// `reclaim` arguments.
#[derive(Debug, Args)]
pub struct ReclaimArgs {
    /// Task id.
    pub id: String,
    /// Why.
    #[arg(long)]
    pub reason: Option<String>,
}

pub(crate) fn reclaim(ctx: &Ctx, a: &ReclaimArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let t = b.get_task(&a.id)?;
    // A dispatched task's pid is its supervisor; this stops it and the worker's group.
    let term = crate::dispatch::terminate_task(&b, &t);
    let r = b.reclaim_task(&a.id, a.reason.as_deref(), term.to_map())?;
    println!(
        "Reclaimed {} (was {})",
        r.task_id,
        r.prev_lock.as_deref().unwrap_or("unclaimed")
    );
    Ok(())
}

/// `request-review` arguments.
#[derive(Debug, Args)]
pub struct RequestReviewArgs {
    /// Task id (running or ready).
    pub id: String,
    /// What was done, for the reviewer (first line goes on the event).
    #[arg(long)]
    pub summary: Option<String>,
    /// Profile that reviews (becomes the assignee; default: the previous reviewer on a
    /// re-review, else the assignee stays).
    #[arg(long)]
    pub reviewer: Option<String>,
    /// Hand-off facts as a JSON object (`artifacts`: absolute paths of deliverables).
    #[arg(long)]
    pub metadata: Option<String>,
    /// Hand over even while a live worker runs it (its run is closed).
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn request_review(ctx: &Ctx, a: &RequestReviewArgs) -> Result<(), CliError> {
    let metadata = parse_metadata(a.metadata.as_deref())?;
    let b = ctx.open()?;
    let r = b.request_review(crate::kernel::ReviewRequest {
        task_id: a.id.clone(),
        summary: a.summary.clone(),
        metadata,
        reviewer: a.reviewer.clone(),
        expected_run_id: ctx.expected_run_id(&a.id),
        force: a.force,
    })?;
    if a.json {
        print_json(&json!(r));
    } else {
        let line = a
            .summary
            .as_deref()
            .map(|s| crate::kernel::validate::first_line(s, 400))
            .filter(|s| !s.is_empty());
        println!(
            "Requested review for {}{}",
            r.task_id,
            line.map(|l| format!(": {l}")).unwrap_or_default()
        );
    }
    Ok(())
}

/// `request-changes` arguments.
#[derive(Debug, Args)]
pub struct RequestChangesArgs {
    /// Task id (running on a run the dispatcher claimed from review).
    pub id: String,
    /// What must change (words are joined; put `--` before a reason that starts with `-`).
    #[arg(required = true)]
    pub reason: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn request_changes(ctx: &Ctx, a: &RequestChangesArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let reason = a.reason.join(" ");
    let r = b.request_changes(&a.id, &reason, ctx.expected_run_id(&a.id))?;
    if a.json {
        print_json(&json!(r));
    } else {
        println!(
            "Requested changes for {}; routed to {} ({})",
            r.task_id, r.implementer, r.status
        );
    }
    Ok(())
}

/// `reopen-review` arguments.
#[derive(Debug, Args)]
pub struct ReopenReviewArgs {
    /// Review task ids.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Why (stored as a `CHANGES REQUESTED: <reason>` comment).
    #[arg(long)]
    pub reason: Option<String>,
}

pub(crate) fn reopen_review(ctx: &Ctx, a: &ReopenReviewArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let author = ctx.author();
    each_id(&a.ids, |id| {
        let r = b.reopen_review(id, a.reason.as_deref(), Some(&author))?;
        Ok(format!(
            "Reopened {id} → {}{}",
            r.status,
            r.implementer
                .map(|i| format!(" (assignee {i})"))
                .unwrap_or_default()
        ))
    })
}
