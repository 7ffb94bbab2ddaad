//! `list`: the filters and sort orders, the readiness recompute before reading, and the
//! buffered text or JSON listing, each reading only the columns it prints (the kernel's
//! `list_task_lines` / `list_task_dicts`; the line and JSON rendering live in `output.rs`).

use std::io::Write as _;

use clap::{Args, ValueEnum};

use super::output;
use super::{CliError, Ctx};
use crate::kernel::{KernelError, ListFilter, Status, TaskSort, list_boards};

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
