//! Verbs that read one task: `show` (fields, diagnostics, links, comments, events, runs),
//! `runs`, `log` (the worker log, optionally its tail) and `context` (what a worker sees).

use std::io::{Read, Seek, SeekFrom};

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::output::{self, dim, local_ts, print_json};
use super::{CliError, Ctx};
use crate::kernel::{
    Board, DiagnosticsConfig, RunStateField, Severity, Task, TaskDetail, relative_age, sorted_json,
};

/// `show` arguments.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Task id.
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Filter runs on this column (with --state-name).
    #[arg(long, value_enum, requires = "state_name")]
    pub state_type: Option<StateType>,
    /// Value the run column must have (with --state-type).
    #[arg(long, requires = "state_type")]
    pub state_name: Option<String>,
}

/// Which run column to filter.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateType {
    /// task_runs.status
    Status,
    /// task_runs.outcome
    Outcome,
}

pub(crate) fn run_filter(t: Option<StateType>, n: Option<&str>) -> Option<(RunStateField, &str)> {
    match (t, n) {
        (Some(StateType::Status), Some(n)) => Some((RunStateField::Status, n)),
        (Some(StateType::Outcome), Some(n)) => Some((RunStateField::Outcome, n)),
        _ => None,
    }
}

fn payload_text(p: &Option<Value>) -> String {
    match p {
        None | Some(Value::Null) => String::new(),
        Some(v) => sorted_json(v),
    }
}

pub(crate) fn show(ctx: &Ctx, a: &ShowArgs) -> Result<(), CliError> {
    let b = ctx.open_read()?;
    let mut d = b.task_detail(&a.id)?;
    if let Some(f) = run_filter(a.state_type, a.state_name.as_deref()) {
        d.runs = b.list_runs(&a.id, Some(f))?;
    }
    if a.json {
        print_json(&d.to_hermes_json());
        return Ok(());
    }
    let now = b.now();
    print_fields(&d.task);
    print_diagnostics(ctx, &b, &d.task)?;
    print_links_and_text(&d);
    print_events(&d);
    print_runs(&d, now);
    Ok(())
}

/// `show`: the title line and the task's fields, one per line (optional ones only when set).
fn print_fields(t: &Task) {
    println!("{} {}  {}", output::icon(t.status), t.id, t.title);
    println!("  status:     {}", t.status);
    println!(
        "  assignee:   {}",
        t.assignee.as_deref().unwrap_or("(unassigned)")
    );
    println!("  priority:   {}", t.priority);
    if let Some(tn) = &t.tenant {
        println!("  tenant:     {tn}");
    }
    println!(
        "  workspace:  {} @ {}",
        t.workspace_kind,
        t.workspace_path.as_deref().unwrap_or("(unresolved)")
    );
    if let Some(br) = &t.branch_name {
        println!("  branch:     {br}");
    }
    if !t.skills.is_empty() {
        println!("  skills:     {}", t.skills.join(", "));
    }
    if let Some(m) = &t.model_override {
        match &t.provider_override {
            Some(p) => println!("  model:      {m} (provider {p})"),
            None => println!("  model:      {m}"),
        }
    }
    if let Some(r) = &t.reasoning_effort {
        println!("  reasoning:  {r}");
    }
    println!(
        "  created:    {} by {}",
        local_ts(t.created_at),
        t.created_by.as_deref().unwrap_or("?")
    );
    if let Some(s) = t.started_at {
        println!("  started:    {}", local_ts(s));
    }
    if let Some(s) = t.completed_at {
        println!("  completed:  {}", local_ts(s));
    }
    if let Some(m) = t.max_runtime_seconds {
        println!("  max runtime: {m}s");
    }
    let (limit, source) = match t.max_retries {
        Some(m) => (m, "task"),
        None => (crate::kernel::DEFAULT_FAILURE_LIMIT, "default"),
    };
    println!(
        "  max retries: {limit} ({source}); failures so far: {}",
        t.consecutive_failures
    );
    if let Some(lock) = &t.claim_lock {
        println!(
            "  claim:      {lock} until {}",
            t.claim_expires.map(local_ts).unwrap_or_default()
        );
    }
    if let Some(e) = &t.last_failure_error {
        println!("  last error: {e}");
    }
    if let Some(k) = &t.block_kind {
        println!("  block kind: {k} (recurrences {})", t.block_recurrences);
    }
}

/// `show`: the task's warnings and worse from the same diagnostics as `diagnostics --task`.
fn print_diagnostics(ctx: &Ctx, b: &Board, t: &Task) -> Result<(), CliError> {
    let diags = b.diagnostics(
        Some(&t.id),
        Severity::Warning,
        &DiagnosticsConfig {
            spawnable: Some(crate::dispatch::spawnable_assignees(&ctx.env)),
            ..Default::default()
        },
    )?;
    for td in &diags {
        for dg in &td.diagnostics {
            println!("  ⚠ {:?}: {} — {}", dg.severity, dg.title, dg.detail);
        }
    }
    Ok(())
}

/// `show`: parents, children, the body, the result (else the latest summary) and comments.
fn print_links_and_text(d: &TaskDetail) {
    let t = &d.task;
    if !d.parents.is_empty() {
        println!("  parents:    {}", d.parents.join(", "));
    }
    if !d.children.is_empty() {
        println!("  children:   {}", d.children.join(", "));
    }
    if let Some(body) = t.body.as_deref().filter(|x| !x.trim().is_empty()) {
        println!("\n{body}");
    }
    match (&t.result, &d.latest_summary) {
        (Some(r), _) => println!("\nResult: {r}"),
        (None, Some(s)) => println!("\nLatest summary: {s}"),
        _ => {}
    }
    if !d.comments.is_empty() {
        println!("\nComments:");
        for c in &d.comments {
            println!("  [{}] {}: {}", local_ts(c.created_at), c.author, c.body);
        }
    }
}

/// `show`: the last 20 events, with their payloads as sorted JSON.
fn print_events(d: &TaskDetail) {
    let skip = d.events.len().saturating_sub(20);
    if !d.events.is_empty() {
        println!(
            "\nEvents{}:",
            if skip > 0 {
                format!(" (last 20 of {})", d.events.len())
            } else {
                String::new()
            }
        );
        for e in d.events.iter().skip(skip) {
            println!(
                "  {} {:<18} {}",
                dim(&format!("[{}]", local_ts(e.created_at))),
                e.kind,
                payload_text(&e.payload)
            );
        }
    }
}

/// `show`: every run with its outcome, profile, elapsed time, summary and error.
fn print_runs(d: &TaskDetail, now: i64) {
    if !d.runs.is_empty() {
        println!("\nRuns:");
        for (i, r) in d.runs.iter().enumerate() {
            let end = r.ended_at.unwrap_or(now);
            println!(
                "  #{} {:<13} {:<12} {:>8}  {} ({})",
                i + 1,
                r.outcome.as_deref().unwrap_or("running"),
                r.profile.as_deref().unwrap_or("-"),
                output::elapsed(end - r.started_at),
                local_ts(r.started_at),
                relative_age(r.started_at, now)
            );
            if let Some(s) = &r.summary {
                println!("      → {s}");
            }
            if let Some(e) = &r.error {
                println!("      ✖ {e}");
            }
        }
    }
}

/// `runs` arguments.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Task id.
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Filter on this run column (with --state-name).
    #[arg(long, value_enum, requires = "state_name")]
    pub state_type: Option<StateType>,
    /// Value the column must have (with --state-type).
    #[arg(long, requires = "state_type")]
    pub state_name: Option<String>,
}

pub(crate) fn runs(ctx: &Ctx, a: &RunsArgs) -> Result<(), CliError> {
    let b = ctx.open_read()?;
    b.get_task(&a.id)?;
    let runs = b.list_runs(&a.id, run_filter(a.state_type, a.state_name.as_deref()))?;
    if a.json {
        print_json(&runs.iter().map(|r| r.to_hermes_json()).collect::<Vec<_>>());
        return Ok(());
    }
    if runs.is_empty() {
        println!("(no runs for {})", a.id);
        return Ok(());
    }
    let now = b.now();
    println!(
        "{:<4} {:<13} {:<14} {:>9}  STARTED",
        "#", "OUTCOME", "PROFILE", "ELAPSED"
    );
    for (i, r) in runs.iter().enumerate() {
        println!(
            "{:<4} {:<13} {:<14} {:>9}  {}",
            i + 1,
            r.outcome.as_deref().unwrap_or("(running)"),
            r.profile.as_deref().unwrap_or("-"),
            output::elapsed(r.ended_at.unwrap_or(now) - r.started_at),
            local_ts(r.started_at)
        );
        if let Some(s) = &r.summary {
            println!("     → {s}");
        }
        if let Some(e) = &r.error {
            println!("     ✖ {e}");
        }
    }
    Ok(())
}

/// `log` arguments.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Task id.
    pub id: String,
    /// Only the last N bytes (starting at a line boundary).
    #[arg(long, value_name = "BYTES")]
    pub tail: Option<u64>,
}

pub(crate) fn log(ctx: &Ctx, a: &LogArgs) -> Result<(), CliError> {
    let b = ctx.open_read()?;
    b.get_task(&a.id)?;
    let path = b.paths().log_file(&a.id);
    let mut f = std::fs::File::open(&path).map_err(|_| {
        CliError::Failed(format!(
            "no worker log for {} at {} (the task has not been spawned yet)",
            a.id,
            path.display()
        ))
    })?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let io = |e: std::io::Error| CliError::Failed(format!("{}: {e}", path.display()));
    let mut buf = Vec::new();
    match a.tail {
        Some(n) if n < len => {
            // Read one byte before the window: if it is a newline the window starts on a line
            // boundary and its first line is whole; otherwise drop the partial first line
            // (unless the window holds no line break at all: then show the raw tail).
            f.seek(SeekFrom::Start(len - n - 1)).map_err(io)?;
            f.read_to_end(&mut buf).map_err(io)?;
            let at_boundary = buf.first() == Some(&b'\n');
            buf.remove(0);
            if !at_boundary
                && let Some(i) = buf.iter().position(|b| *b == b'\n')
                && i + 1 < buf.len()
            {
                buf.drain(..=i);
            }
        }
        _ => {
            f.read_to_end(&mut buf).map_err(io)?;
        }
    }
    let text = String::from_utf8_lossy(&buf);
    if text.ends_with('\n') {
        print!("{text}");
    } else {
        println!("{text}");
    }
    Ok(())
}

/// A task id.
#[derive(Debug, Args)]
pub struct IdArg {
    /// Task id.
    pub id: String,
}

pub(crate) fn context(ctx: &Ctx, a: &IdArg) -> Result<(), CliError> {
    let b = ctx.open_read()?;
    // Hermes prints the context with print(): the markdown (ending in a newline) plus one more.
    println!("{}", b.build_worker_context(&a.id)?);
    Ok(())
}
