//! Task edits that are not lifecycle transitions: assign, reassign (optionally reclaiming),
//! set-model, link/unlink, comment, archive (and `--rm` deletion of archived tasks).

use clap::Args;

use super::output::print_json;
use super::{CliError, Ctx, each_id};
use crate::kernel::Status;

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
    let cur = b.get_task(&a.id)?;
    // The kernel's one "has a worker" rule decides what the reclaim stops and reports.
    let reclaimed = a.reclaim && cur.has_worker();
    let term = if a.reclaim {
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
    let suffix = if reclaimed { " (claim reclaimed)" } else { "" };
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
