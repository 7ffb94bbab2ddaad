//! Board-wide reading and housekeeping verbs: stats, assignees, diagnostics, repair, gc.

use clap::Args;

use super::output::{self, print_json};
use super::{CliError, Ctx};
use crate::kernel::{DiagnosticsConfig, Severity, hermes_root};

/// `--json` only.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn stats(ctx: &Ctx, a: &JsonArgs) -> Result<(), CliError> {
    let b = ctx.open_read()?;
    let s = b.stats()?;
    if a.json {
        print_json(&s);
        return Ok(());
    }
    println!("By status (archived excluded):");
    for (k, v) in &s.by_status {
        println!("  {k:<10} {v}");
    }
    if !s.by_assignee.is_empty() {
        println!("By assignee:");
        for (name, m) in &s.by_assignee {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("  {name:<20} {}", parts.join(", "));
        }
    }
    match s.oldest_ready_age_seconds {
        Some(age) => println!("Oldest ready task: {} waiting", output::elapsed(age)),
        None => println!("No ready tasks."),
    }
    Ok(())
}

pub(crate) fn assignees(ctx: &Ctx, a: &JsonArgs) -> Result<(), CliError> {
    let b = ctx.open_read()?;
    let list = b.assignees()?;
    if a.json {
        print_json(&list);
        return Ok(());
    }
    let (cfg, _) = crate::dispatch::config::KanbanConfig::load(&ctx.env);
    for x in &list {
        let counts: Vec<String> = x.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let disk = match &x.not_a_profile {
            None => String::new(),
            Some(_) if cfg.worker_command.by_assignee.contains_key(&x.name) => {
                "  (runs kanban.worker_command)".to_string()
            }
            Some(why) => {
                format!("  (not a profile: {why}; no worker_command either: cannot be dispatched)")
            }
        };
        println!("{:<20} {}{disk}", x.name, counts.join(", "));
    }
    Ok(())
}

/// `diagnostics` arguments.
#[derive(Debug, Args)]
pub struct DiagnosticsArgs {
    /// Only findings at or above: warning, error, critical.
    #[arg(long, value_parser = super::output::Choices { parse: parse_severity,
        values: &["warning", "error", "critical"] }, default_value = "warning")]
    pub severity: Severity,
    /// Only this task.
    #[arg(long)]
    pub task: Option<String>,
    /// Report only the board's journal mode and why (`{"journal": {mode, setting, reason}}`
    /// with --json).
    #[arg(long)]
    pub journal: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not one of: warning, error, critical"))
}

pub(crate) fn diagnostics(ctx: &Ctx, a: &DiagnosticsArgs) -> Result<(), CliError> {
    let b = ctx.open_read()?;
    let (kcfg, _) = crate::dispatch::config::KanbanConfig::load(&ctx.env);
    let j = b.journal();
    if a.journal {
        if a.json {
            print_json(&serde_json::json!({"journal": j}));
        } else {
            println!("Journal mode: {} — {}", j.mode, j.reason);
        }
        return Ok(());
    }
    let cfg = DiagnosticsConfig {
        spawnable: Some(crate::dispatch::spawnable_assignees(&ctx.env)),
        skills: Some(crate::kernel::SkillCheck {
            hermes_root: hermes_root(&ctx.env),
            templated: kcfg.worker_command.by_assignee.keys().cloned().collect(),
            all_templated: kcfg.worker_command.any.is_some(),
        }),
        ..DiagnosticsConfig::default()
    };
    let rows = b.diagnostics(a.task.as_deref(), a.severity, &cfg)?;
    if a.json {
        print_json(&rows);
        return Ok(());
    }
    println!("Journal mode: {} — {}", j.mode, j.reason);
    if rows.is_empty() {
        println!("No problems found.");
    }
    for r in &rows {
        println!(
            "{} {}  {}  ({})",
            output::icon(r.status),
            r.task_id,
            r.title,
            r.assignee.as_deref().unwrap_or("unassigned")
        );
        for d in &r.diagnostics {
            println!("  [{:?}] {}: {}", d.severity, d.title, d.detail);
            for act in d.actions.iter().filter(|x| x.suggested) {
                if let Some(cmd) = act.payload.get("command").and_then(|c| c.as_str()) {
                    println!("    → {}: {cmd}", act.label);
                }
            }
        }
    }
    Ok(())
}

/// `repair [--json]`: check the DB and rebuild damaged indexes; never opens the board (a board
/// that needs repair may not open).
pub(crate) fn repair(ctx: &Ctx, a: &JsonArgs) -> Result<(), CliError> {
    let slug = ctx.home.resolve(ctx.board.as_deref())?;
    let db = ctx.home.paths(&slug).db;
    let r = crate::kernel::repair_db(&db)?;
    if a.json {
        print_json(&r);
    } else {
        let p = r.db_path.display();
        match r.status {
            "missing" => println!("No kanban DB at {p}: nothing to repair."),
            "ok" => println!("{p}: quick_check and integrity_check ok, no repair needed."),
            "repaired" => {
                println!("{p}: repaired.");
                println!("  reindexed: {}", r.reindexed.join(", "));
                if let Some(b) = &r.backup_path {
                    println!("  pre-repair backup: {}", b.display());
                }
                println!("  integrity_check now ok.");
            }
            _ => {
                eprintln!("{p}: CORRUPT, not repaired (only damaged indexes are repaired).");
                for m in r.messages.iter().take(20) {
                    eprintln!("  {m}");
                }
                if let Some(b) = &r.backup_path {
                    eprintln!("  backup: {}", b.display());
                }
                eprintln!("  Restore a backup, or try `sqlite3 {p} .recover`.");
            }
        }
    }
    // A corrupt report was printed above; exit 1 without another message.
    if r.ok() {
        Ok(())
    } else {
        Err(CliError::Partial)
    }
}

/// `gc` arguments.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Delete events of done/archived tasks older than N days (0-36500).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub event_retention_days: u32,
    /// Delete worker logs older than N days (0-36500).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub log_retention_days: u32,
}

pub(crate) fn gc(ctx: &Ctx, a: &GcArgs) -> Result<(), CliError> {
    let b = ctx.open_read()?;
    let r = b.gc(a.event_retention_days as i64, a.log_retention_days as i64)?;
    println!(
        "Removed {} scratch workspace(s), {} event(s), {} log file(s)",
        r.scratch_dirs_removed, r.events_removed, r.logs_removed
    );
    Ok(())
}
