//! Task verbs: create, swarm, list, show, assign, reassign, link/unlink, comment, archive.

use std::io::Write as _;

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::output::{self, dim, local_ts, print_json};
use super::{CliError, Ctx, each_id};
use crate::kernel::{
    DiagnosticsConfig, InitialStatus, KernelError, ListFilter, NewTask, RunStateField, Severity,
    Status, SwarmSpec, SwarmWorker, TaskSort, WorkspaceKind, list_boards, relative_age,
    sorted_json,
};

/// `create` arguments (REF §15.2).
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Task title (one line).
    pub title: String,
    /// Body / spec (markdown).
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Read the body from a file (UTF-8, a BOM is dropped); `-` reads standard input.
    #[arg(long, value_name = "PATH")]
    pub body_file: Option<std::path::PathBuf>,
    /// Profile that will work on it.
    #[arg(long)]
    pub assignee: Option<String>,
    /// Parent task id (repeatable): this task waits until each parent is done or archived.
    #[arg(long = "parent", value_name = "ID")]
    pub parents: Vec<String>,
    /// scratch | worktree | worktree:<path> | dir:<path>
    #[arg(long, default_value = "scratch")]
    pub workspace: String,
    /// Branch for a worktree workspace.
    #[arg(long)]
    pub branch: Option<String>,
    /// Project id.
    #[arg(long)]
    pub project: Option<String>,
    /// Soft namespace.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub priority: i64,
    /// Start in triage (a rough idea to be specified).
    #[arg(long)]
    pub triage: bool,
    /// Return the existing task when one with this key exists (not archived).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Per-attempt wall-clock cap: seconds or 30s, 5m, 2h, 1d.
    #[arg(long, value_parser = output::parse_duration, allow_negative_numbers = true)]
    pub max_runtime: Option<i64>,
    /// Author recorded as created_by.
    #[arg(long, default_value = "user")]
    pub created_by: String,
    /// Skill to load for the worker (repeatable).
    #[arg(long = "skill", value_name = "NAME")]
    pub skills: Vec<String>,
    /// Failures before the breaker blocks the task (≥ 1).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=1000),
        allow_negative_numbers = true)]
    pub max_retries: Option<i64>,
    /// Run the worker in goal mode.
    #[arg(long)]
    pub goal: bool,
    /// Turn budget in goal mode.
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=10000),
        allow_negative_numbers = true)]
    pub goal_max_turns: Option<i64>,
    /// Model the worker runs with (`hermes -m MODEL`); default: the profile's.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Provider for --model (`--provider P`, passed only with -m).
    #[arg(long, value_name = "P", requires = "model")]
    pub provider: Option<String>,
    /// Reasoning level (`--reasoning L`, where the installed Hermes has it): none, minimal, low,
    /// medium, high, xhigh, max, ultra.
    #[arg(long, value_name = "L")]
    pub reasoning: Option<String>,
    /// `blocked` starts it blocked (stays so until unblocked); `running` = normal routing.
    #[arg(long, value_enum, default_value_t = InitialArg::Running)]
    pub initial_status: InitialArg,
    /// What counts as done, for upstream Hermes (~0.22): local-only, OWNER/REPO or a PR URL.
    #[arg(long, value_name = "CONTRACT")]
    pub completion_contract: Option<String>,
    /// Print the task as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--initial-status` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum InitialArg {
    /// Normal routing (ready, todo or triage).
    Running,
    /// Start blocked.
    Blocked,
}

fn parse_workspace(
    s: &str,
    env: &crate::kernel::Env,
) -> Result<(WorkspaceKind, Option<String>), CliError> {
    let s = s.trim();
    let (kind, path) = match s.split_once(':') {
        Some((k, p)) => (k, Some(p.trim())),
        None => (s, None),
    };
    let kind = match kind {
        "scratch" if path.is_none() => WorkspaceKind::Scratch,
        "worktree" => WorkspaceKind::Worktree,
        "dir" if path.is_some() => WorkspaceKind::Dir,
        _ => {
            return Err(CliError::Usage(format!(
                "invalid --workspace {s:?}: use scratch, worktree, worktree:<path> or dir:<path>"
            )));
        }
    };
    if path == Some("") {
        return Err(CliError::Usage(format!(
            "invalid --workspace {s:?}: {kind}: needs a path after the colon (e.g. \
            {kind}:/srv/repo)",
            kind = kind.as_str()
        )));
    }
    Ok((
        kind,
        path.map(|p| env.expand_tilde(p).to_string_lossy().into_owned()),
    ))
}

/// `--branch`: non-empty, no leading `-`, no whitespace, worktree workspaces only (REF §15.2).
fn check_branch(branch: Option<&str>, kind: WorkspaceKind) -> Result<(), CliError> {
    let Some(b) = branch else { return Ok(()) };
    let b = b.trim();
    if b.is_empty() || b.starts_with('-') || b.chars().any(char::is_whitespace) {
        return Err(CliError::Usage(format!(
            "invalid --branch {b:?}: a branch name must be non-empty, not start with '-' and \
            contain no whitespace"
        )));
    }
    if kind != WorkspaceKind::Worktree {
        return Err(CliError::Usage(format!(
            "invalid --branch {b:?}: --branch is only valid with --workspace worktree[:<path>]"
        )));
    }
    Ok(())
}

/// `--body-file PATH` (or `-` for standard input) as text, without a leading BOM.
pub(crate) fn read_body_file(p: &std::path::Path) -> Result<String, CliError> {
    let text = if p.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| {
            CliError::Usage(format!("--body-file -: cannot read standard input: {e}"))
        })?;
        s
    } else {
        let bytes = std::fs::read(p)
            .map_err(|e| CliError::Usage(format!("--body-file {}: {e}", p.display())))?;
        String::from_utf8(bytes)
            .map_err(|_| CliError::Usage(format!("--body-file {}: not UTF-8 text", p.display())))?
    };
    Ok(text
        .strip_prefix('\u{feff}')
        .map(str::to_string)
        .unwrap_or(text))
}

pub(crate) fn create(ctx: &Ctx, a: &CreateArgs) -> Result<(), CliError> {
    let (kind, path) = parse_workspace(&a.workspace, &ctx.env)?;
    check_branch(a.branch.as_deref(), kind)?;
    let body = match &a.body_file {
        None => a.body.clone(),
        Some(p) => Some(read_body_file(p)?),
    };
    let b = ctx.open()?;
    let created = b.create_task(NewTask {
        title: a.title.clone(),
        body,
        assignee: a.assignee.clone(),
        parents: a.parents.clone(),
        tenant: a.tenant.clone(),
        priority: a.priority,
        workspace_kind: Some(kind),
        workspace_path: path,
        branch_name: a.branch.as_deref().map(|b| b.trim().to_string()),
        project_id: a.project.clone(),
        triage: a.triage,
        idempotency_key: a.idempotency_key.clone(),
        max_runtime_seconds: a.max_runtime,
        skills: a.skills.clone(),
        max_retries: a.max_retries,
        initial_status: if a.initial_status == InitialArg::Blocked {
            InitialStatus::Blocked
        } else {
            InitialStatus::Normal
        },
        created_by: Some(a.created_by.clone()),
        session_id: ctx.env.get("HERMES_SESSION_ID").map(str::to_string),
        goal_mode: a.goal,
        goal_max_turns: a.goal_max_turns,
        model_override: a.model.clone(),
        provider_override: a.provider.clone(),
        reasoning_effort: a.reasoning.clone(),
        completion_contract: a.completion_contract.clone(),
    })?;
    let t = &created.task;
    if a.json {
        print_json(&t.to_hermes_json());
    } else {
        println!(
            "Created {}  ({}, assignee={})",
            t.id,
            t.status,
            t.assignee.as_deref().unwrap_or("-")
        );
        if let Some(w) = t
            .assignee
            .as_deref()
            .and_then(|a| crate::dispatch::unspawnable_warning(&ctx.env, a))
        {
            eprintln!("warning: {w}");
        }
        if t.status == Status::Ready
            && t.assignee.is_some()
            && !crate::dispatch::locks::dispatcher_running(&ctx.env)
        {
            eprintln!(
                "warning: no dispatcher is running, so {} will wait in ready. Start one with \
                `hermes-kanban daemon` (or `serve`), or run `hermes-kanban dispatch` for a single \
                pass.",
                t.id
            );
        }
    }
    Ok(())
}

/// `swarm` arguments (REF §19.3).
#[derive(Debug, Args)]
pub struct SwarmArgs {
    /// The shared goal.
    pub goal: String,
    /// PROFILE:TITLE[:SKILL,SKILL] (repeatable, at least one).
    #[arg(
        long = "worker",
        required = true,
        value_name = "PROFILE:TITLE[:SKILLS]"
    )]
    pub workers: Vec<String>,
    /// Profile that verifies the workers' findings.
    #[arg(long, required = true)]
    pub verifier: String,
    /// Profile that writes the final answer.
    #[arg(long, required = true)]
    pub synthesizer: String,
    /// Tenant for every card.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Priority for every card.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub priority: i64,
    /// Author (default: your profile or `user`).
    #[arg(long)]
    pub created_by: Option<String>,
    /// Return the existing swarm when the root has this key.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn swarm(ctx: &Ctx, a: &SwarmArgs) -> Result<(), CliError> {
    let mut workers = Vec::new();
    for w in &a.workers {
        let mut parts = w.splitn(3, ':').map(str::trim);
        let (Some(p), Some(t)) = (parts.next(), parts.next()) else {
            return Err(CliError::Usage(format!(
                "invalid --worker {w:?}: use PROFILE:TITLE[:SKILL,SKILL]"
            )));
        };
        if p.is_empty() || t.is_empty() {
            return Err(CliError::Usage(format!(
                "invalid --worker {w:?}: both PROFILE and TITLE are required \
                (PROFILE:TITLE[:SKILL,SKILL])"
            )));
        }
        let skills = parts
            .next()
            .map(|s| s.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        workers.push(SwarmWorker {
            assignee: p.to_string(),
            title: t.to_string(),
            skills,
        });
    }
    for (flag, v) in [
        ("--verifier", &a.verifier),
        ("--synthesizer", &a.synthesizer),
    ] {
        if v.trim().is_empty() {
            return Err(CliError::Usage(format!("{flag} needs a profile name")));
        }
    }
    let b = ctx.open()?;
    let s = b.create_swarm(&SwarmSpec {
        goal: a.goal.clone(),
        workers,
        verifier: a.verifier.clone(),
        synthesizer: a.synthesizer.clone(),
        tenant: a.tenant.clone(),
        priority: a.priority,
        created_by: a.created_by.clone().unwrap_or_else(|| ctx.author()),
        idempotency_key: a.idempotency_key.clone(),
    })?;
    if a.json {
        print_json(&s);
    } else {
        let verb = if s.existing {
            "Existing swarm"
        } else {
            "Created swarm"
        };
        println!("{verb} {} (blackboard)", s.root_id);
        for w in &s.worker_ids {
            println!("  worker       {w}");
        }
        println!("  verifier     {}", s.verifier_id);
        println!("  synthesizer  {}", s.synthesizer_id);
    }
    Ok(())
}

/// `list` sort orders.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SortArg {
    /// Oldest first.
    Created,
    /// Newest first.
    CreatedDesc,
    /// Highest priority first.
    Priority,
    /// Highest priority first (Hermes 0.19.0 sorted this ascending by mistake).
    PriorityDesc,
    /// Lowest priority first.
    PriorityAsc,
    /// By status.
    Status,
    /// By assignee.
    Assignee,
    /// By title.
    Title,
    /// Most recently completed first, never-completed last.
    CompletedDesc,
    /// Most recently started first.
    Updated,
}

/// `list` arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tasks assigned to you ($HERMES_PROFILE).
    #[arg(long)]
    pub mine: bool,
    /// Only this assignee.
    #[arg(long)]
    pub assignee: Option<String>,
    /// Only this status.
    #[arg(long, value_parser = status_values(), hide_possible_values = true)]
    pub status: Option<Status>,
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only tasks created from this agent session.
    #[arg(long)]
    pub session: Option<String>,
    /// Include archived tasks.
    #[arg(long)]
    pub archived: bool,
    /// Sort order (default: priority, then oldest).
    #[arg(long, value_enum)]
    pub sort: Option<SortArg>,
    /// Only this workflow template.
    #[arg(long)]
    pub workflow_template_id: Option<String>,
    /// Only this step key.
    #[arg(long)]
    pub step_key: Option<String>,
    /// Print JSON (an array of task objects).
    #[arg(long)]
    pub json: bool,
}

/// `--status`: parsed by the kernel, completed from the status list.
pub(crate) fn status_values() -> super::output::Choices<Status> {
    super::output::Choices {
        parse: parse_status,
        values: super::output::STATUS_VALUES,
    }
}

pub(crate) fn parse_status(s: &str) -> Result<Status, String> {
    s.parse::<Status>().map_err(|e| match e {
        KernelError::Invalid { message, .. } => message,
        other => other.to_string(),
    })
}

pub(crate) fn list(ctx: &Ctx, a: &ListArgs) -> Result<(), CliError> {
    let b = ctx.open_read()?;
    if !b.write_fenced() {
        b.recompute_ready()?;
    }
    let assignee = if a.mine {
        Some(ctx.author())
    } else {
        a.assignee.clone()
    };
    let filter = ListFilter {
        assignee,
        status: a.status,
        tenant: a.tenant.clone(),
        session_id: a.session.clone(),
        include_archived: a.archived,
        workflow_template_id: a.workflow_template_id.clone(),
        step_key: a.step_key.clone(),
        sort: match a.sort {
            None => TaskSort::Default,
            Some(SortArg::Created) => TaskSort::Created,
            Some(SortArg::CreatedDesc) => TaskSort::CreatedDesc,
            Some(SortArg::Priority | SortArg::PriorityDesc) => TaskSort::PriorityDesc,
            Some(SortArg::PriorityAsc) => TaskSort::PriorityAsc,
            Some(SortArg::Status) => TaskSort::Status,
            Some(SortArg::Assignee) => TaskSort::Assignee,
            Some(SortArg::Title) => TaskSort::Title,
            Some(SortArg::Updated) => TaskSort::Updated,
            Some(SortArg::CompletedDesc) => TaskSort::CompletedDesc,
        },
        limit: None,
        after: None,
    };
    // Each form decodes only the columns it prints.
    let (dicts, lines) = if a.json {
        (b.list_task_dicts(&filter)?, Vec::new())
    } else {
        (Vec::new(), b.list_task_lines(&filter)?)
    };
    // One locked, buffered stdout for the whole listing (a `println!` per line was a write
    // and, for the icon's colour, an isatty call per line).
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let written = (|| -> std::io::Result<()> {
        if a.json {
            output::write_tasks_json(&mut out, &dicts)?;
            return out.flush();
        }
        let boards = list_boards(&ctx.env, false).map(|v| v.len()).unwrap_or(1);
        if boards > 1 {
            let others = boards - 1;
            let plural = if others == 1 { "" } else { "s" };
            writeln!(
                out,
                "Board: {} ({others} other board{plural} — switch with `hermes-kanban boards \
                switch <slug>`)",
                b.slug()
            )?;
        }
        if lines.is_empty() {
            eprintln!("(no tasks)");
        }
        let color = output::color();
        for t in &lines {
            output::write_task_line(&mut out, t, color)?;
        }
        out.flush()
    })();
    written.map_err(|e| CliError::Failed(format!("cannot write the list to stdout: {e}")))
}

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
    let t = &d.task;
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
    Ok(())
}

/// `assign` arguments.
#[derive(Debug, Args)]
pub struct AssignArgs {
    /// Task id.
    pub id: String,
    /// Profile name, or `none` to unassign.
    pub profile: String,
}

/// `none`, `-` and `null` (any case) unassign, as in Hermes.
fn profile_arg(p: &str) -> Option<&str> {
    (!matches!(p.trim().to_lowercase().as_str(), "none" | "-" | "null")).then_some(p)
}

pub(crate) fn assign(ctx: &Ctx, a: &AssignArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let t = b.assign_task(&a.id, profile_arg(&a.profile))?;
    println!(
        "Assigned {} to {}",
        t.id,
        t.assignee.as_deref().unwrap_or("(unassigned)")
    );
    warn_unspawnable(ctx, &t);
    Ok(())
}

/// `reassign` arguments.
#[derive(Debug, Args)]
pub struct ReassignArgs {
    /// Task id.
    pub id: String,
    /// Profile name, or `none`.
    pub profile: String,
    /// Reclaim a running task first.
    #[arg(long)]
    pub reclaim: bool,
    /// Reason recorded with the reclaim.
    #[arg(long)]
    pub reason: Option<String>,
}

pub(crate) fn reassign(ctx: &Ctx, a: &ReassignArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let was_running = b.get_task(&a.id)?.status == Status::Running;
    let term = if a.reclaim {
        let cur = b.get_task(&a.id)?;
        crate::dispatch::terminate_task(&b, &cur).to_map()
    } else {
        serde_json::Map::new()
    };
    let t = b.reassign_task(
        &a.id,
        profile_arg(&a.profile),
        a.reclaim,
        a.reason.as_deref(),
        term,
    )?;
    let suffix = if was_running && a.reclaim {
        " (claim reclaimed)"
    } else {
        ""
    };
    println!(
        "Reassigned {} to {}{suffix}",
        t.id,
        t.assignee.as_deref().unwrap_or("(unassigned)")
    );
    warn_unspawnable(ctx, &t);
    Ok(())
}

/// `set-model` arguments (upstream 0.19.1 `set-model <id> <model> [--provider P]`).
#[derive(Debug, Args)]
pub struct SetModelArgs {
    /// Task id.
    pub id: String,
    /// Model for the task's workers (`hermes -m MODEL`); `default` clears it (and the provider)
    /// so the profile's model is used.
    pub model: String,
    /// Provider for the model (`--provider P`).
    #[arg(long, value_name = "P")]
    pub provider: Option<String>,
    /// Also set the reasoning level: none, minimal, low, medium, high, xhigh, max, ultra, or
    /// `default` for the profile's.
    #[arg(long, value_name = "L")]
    pub reasoning: Option<String>,
    /// Print the task's model fields as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn set_model(ctx: &Ctx, a: &SetModelArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let clear = a.model.trim().eq_ignore_ascii_case("default");
    if clear && a.provider.is_some() {
        return Err(CliError::Usage(
            "--provider needs a model; `default` clears both model and provider".into(),
        ));
    }
    let model = (!clear).then_some(a.model.as_str());
    let mut t = b.set_task_model(&a.id, model, a.provider.as_deref())?;
    if let Some(r) = &a.reasoning {
        let level = (!r.trim().eq_ignore_ascii_case("default")).then_some(r.as_str());
        t = b.set_reasoning_effort(&a.id, level)?;
    }
    if a.json {
        print_json(&serde_json::json!({
            "id": t.id,
            "model_override": t.model_override,
            "provider_override": t.provider_override,
            "reasoning_effort": t.reasoning_effort,
        }));
        return Ok(());
    }
    let model = match (&t.model_override, &t.provider_override) {
        (Some(m), Some(p)) => format!("{m} (provider {p})"),
        (Some(m), None) => m.clone(),
        _ => "the profile's default".into(),
    };
    let reasoning = t
        .reasoning_effort
        .as_deref()
        .unwrap_or("the profile's default");
    println!("{}: model {model}, reasoning {reasoning}", t.id);
    Ok(())
}

/// Warn (stderr) when an open task's assignee cannot be spawned by any dispatcher.
fn warn_unspawnable(ctx: &Ctx, t: &crate::kernel::Task) {
    if matches!(t.status, Status::Done | Status::Archived) {
        return;
    }
    if let Some(w) = t
        .assignee
        .as_deref()
        .and_then(|a| crate::dispatch::unspawnable_warning(&ctx.env, a))
    {
        eprintln!("warning: {w}");
    }
}

/// `link` / `unlink` arguments.
#[derive(Debug, Args)]
pub struct LinkArgs {
    /// Parent (must finish first).
    pub parent: String,
    /// Child (waits).
    pub child: String,
}

pub(crate) fn link(ctx: &Ctx, a: &LinkArgs, add: bool) -> Result<(), CliError> {
    let b = ctx.open()?;
    if add {
        b.link_tasks(&a.parent, &a.child)?;
        println!("Linked {} -> {}", a.parent, a.child);
    } else {
        b.unlink_tasks(&a.parent, &a.child)?;
        println!("Unlinked {} -> {}", a.parent, a.child);
    }
    Ok(())
}

/// `comment` arguments.
#[derive(Debug, Args)]
pub struct CommentArgs {
    /// Task id.
    pub id: String,
    /// Comment text (words are joined with spaces; put `--` before text that starts with '-').
    #[arg(required = true, num_args = 1..)]
    pub text: Vec<String>,
    /// Author (default: your profile or `user`).
    #[arg(long)]
    pub author: Option<String>,
    /// Trim the comment to N characters.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_len: Option<u32>,
}

pub(crate) fn comment(ctx: &Ctx, a: &CommentArgs) -> Result<(), CliError> {
    let mut text = a.text.join(" ").trim().to_string();
    if let Some(n) = a.max_len {
        let n = n as usize;
        if text.chars().count() > n {
            // As Hermes: the whole comment, suffix included, fits in N characters.
            let suffix = format!("\n\n[trimmed to {n} chars by --max-len]");
            let keep = n.saturating_sub(suffix.chars().count());
            text = text
                .chars()
                .take(keep)
                .collect::<String>()
                .trim_end()
                .to_string()
                + &suffix;
        }
    }
    let b = ctx.open()?;
    let author = a.author.clone().unwrap_or_else(|| ctx.author());
    b.add_comment(&a.id, &author, &text)?;
    println!("Comment added to {}", a.id);
    Ok(())
}

/// `archive` arguments.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Tasks to archive (with a bare `--rm`: archived tasks to delete).
    pub ids: Vec<String>,
    /// Permanently delete already-archived tasks: `--rm <id…>`, or a bare `--rm` anywhere
    /// (`archive t_1 --rm`) to delete the ids given.
    #[arg(long = "rm", value_name = "ID", num_args = 0..)]
    pub rm: Option<Vec<String>>,
}

pub(crate) fn archive(ctx: &Ctx, a: &ArchiveArgs) -> Result<(), CliError> {
    let (to_archive, to_delete): (&[String], Vec<String>) = match &a.rm {
        None => (&a.ids, vec![]),
        Some(rm) if rm.is_empty() => (&[], a.ids.clone()),
        Some(rm) if a.ids.is_empty() => (&[], rm.clone()),
        Some(_) => {
            return Err(CliError::Usage(
                "archive: give either ids to archive or --rm with ids to delete, not both (e.g. \
                `archive --rm t_1 t_2` or `archive t_1 t_2 --rm`)"
                    .into(),
            ));
        }
    };
    if to_archive.is_empty() && to_delete.is_empty() {
        return Err(CliError::Usage(
            "give task ids to archive, or --rm <id…> to delete archived tasks".into(),
        ));
    }
    let b = ctx.open()?;
    let archived = each_id(to_archive, |id| {
        b.archive_task(id).map(|_| format!("Archived {id}"))
    });
    let deleted = each_id(&to_delete, |id| {
        b.delete_archived_task(id).map(|()| format!("Deleted {id}"))
    });
    archived.and(deleted)
}
