//! Verbs that create tasks: `create` (with its workspace, branch and body-file parsing) and
//! `swarm` (workers, a verifier and a synthesizer around a blackboard card).

use clap::{Args, ValueEnum};

use super::output::{self, print_json};
use super::{CliError, Ctx};
use crate::kernel::{InitialStatus, NewTask, Status, SwarmSpec, SwarmWorker, WorkspaceKind};

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
