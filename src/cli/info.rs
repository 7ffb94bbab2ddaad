//! Reading and housekeeping verbs: stats, runs, log, assignees, context, gc, notification
//! subscriptions, attachments, diagnostics, skills install and shell completions.

use std::io::{Read, Seek, SeekFrom};

use clap::{Args, CommandFactory, Subcommand};

use super::output::{self, local_ts, print_json};
use super::tasks::{StateType, run_filter};
use super::{Cli, CliError, Ctx};
use crate::kernel::{DiagnosticsConfig, Severity, SubKey, hermes_root};

/// `--json` only.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A task id.
#[derive(Debug, Args)]
pub struct IdArg {
    /// Task id.
    pub id: String,
}

/// A task id and `--json`.
#[derive(Debug, Args)]
pub struct IdJsonArgs {
    /// Task id.
    pub id: String,
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
    let mut f = std::fs::File::open(&path).map_err(|_| match b.run_host(&a.id) {
        Ok(Some(h)) if !h.this_host => CliError::Failed(format!(
            "the worker log of {} is on host {} (its last run ran there; logs and workspaces \
            stay on the host that ran the worker): run `hermes-kanban log {}` on that host",
            a.id, h.host, a.id
        )),
        _ => CliError::Failed(format!(
            "no worker log for {} at {} (the task has not been spawned yet)",
            a.id,
            path.display()
        )),
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

pub(crate) fn context(ctx: &Ctx, a: &IdArg) -> Result<(), CliError> {
    let b = ctx.open_read()?;
    // Hermes prints the context with print(): the markdown (ending in a newline) plus one more.
    println!("{}", b.build_worker_context(&a.id)?);
    Ok(())
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

/// `notify-subscribe` arguments.
#[derive(Debug, Args)]
pub struct NotifySubArgs {
    /// Task id.
    pub id: String,
    /// Platform (telegram, discord, slack, tui, …).
    #[arg(long, required = true)]
    pub platform: String,
    /// Chat id.
    #[arg(long, required = true)]
    pub chat_id: String,
    /// Thread id.
    #[arg(long)]
    pub thread_id: Option<String>,
    /// User id.
    #[arg(long)]
    pub user_id: Option<String>,
    /// Profile whose gateway delivers (default: you).
    #[arg(long)]
    pub notifier_profile: Option<String>,
}

pub(crate) fn notify_subscribe(ctx: &Ctx, a: &NotifySubArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let key = SubKey {
        task_id: a.id.clone(),
        platform: a.platform.clone(),
        chat_id: a.chat_id.clone(),
        thread_id: a.thread_id.clone().unwrap_or_default(),
    };
    let owner = a.notifier_profile.clone().unwrap_or_else(|| ctx.author());
    let s = b.add_notify_sub(&key, a.user_id.as_deref(), Some(&owner))?;
    let thread = if s.thread_id.is_empty() {
        String::new()
    } else {
        format!(":{}", s.thread_id)
    };
    println!(
        "Subscribed {}:{}{thread} to {}",
        s.platform, s.chat_id, s.task_id
    );
    eprintln!(
        "note: {} messages are delivered by Hermes' gateway (profile {}), not by hermes-kanban; \
        for webhooks we deliver (Slack, Discord, JSON), configure kanban.notify.webhooks in {}",
        s.platform,
        s.notifier_profile.as_deref().unwrap_or("default"),
        crate::dispatch::config::config_path(&ctx.env).display()
    );
    Ok(())
}

/// `notify-list` arguments.
#[derive(Debug, Args)]
pub struct NotifyListArgs {
    /// Only this task.
    pub id: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn notify_list(ctx: &Ctx, a: &NotifyListArgs) -> Result<(), CliError> {
    let b = ctx.open_read()?;
    let subs = b.list_notify_subs(a.id.as_deref())?;
    if a.json {
        print_json(&subs);
        return Ok(());
    }
    if subs.is_empty() {
        println!("(no subscriptions)");
    }
    for s in &subs {
        println!(
            "{}  {}:{}{}  owner={}  cursor={}",
            s.task_id,
            s.platform,
            s.chat_id,
            if s.thread_id.is_empty() {
                String::new()
            } else {
                format!(":{}", s.thread_id)
            },
            s.notifier_profile.as_deref().unwrap_or("-"),
            s.last_event_id
        );
    }
    Ok(())
}

/// `notify-unsubscribe` arguments.
#[derive(Debug, Args)]
pub struct NotifyUnsubArgs {
    /// Task id.
    pub id: String,
    /// Platform.
    #[arg(long, required = true)]
    pub platform: String,
    /// Chat id.
    #[arg(long, required = true)]
    pub chat_id: String,
    /// Thread id.
    #[arg(long)]
    pub thread_id: Option<String>,
}

pub(crate) fn notify_unsubscribe(ctx: &Ctx, a: &NotifyUnsubArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let key = SubKey {
        task_id: a.id.clone(),
        platform: a.platform.clone(),
        chat_id: a.chat_id.clone(),
        thread_id: a.thread_id.clone().unwrap_or_default(),
    };
    if b.remove_notify_sub(&key)? {
        println!("Unsubscribed {}:{} from {}", a.platform, a.chat_id, a.id);
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "no subscription {}:{} on {}; see `hermes-kanban notify-list {}`",
            a.platform, a.chat_id, a.id, a.id
        )))
    }
}

/// `attach` arguments.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Task id.
    pub id: String,
    /// File to attach.
    pub path: std::path::PathBuf,
    /// MIME type (default: guessed from the extension).
    #[arg(long)]
    pub content_type: Option<String>,
    /// Stored file name (default: the file's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Uploader (default: your profile or `user`).
    #[arg(long)]
    pub author: Option<String>,
}

/// A MIME type guessed from a file extension.
pub(crate) fn guess_content_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "json" => "application/json",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "zip" => "application/zip",
        "yaml" | "yml" => "application/yaml",
        _ => "application/octet-stream",
    }
}

pub(crate) fn attach(ctx: &Ctx, a: &AttachArgs) -> Result<(), CliError> {
    let meta = std::fs::metadata(&a.path)
        .map_err(|e| CliError::Failed(format!("{}: {e}", a.path.display())))?;
    if meta.len() > crate::kernel::validate::ATTACHMENT_MAX_BYTES as u64 {
        return Err(CliError::Failed(format!(
            "cannot attach {} to {}: it is {} bytes and attachments are limited to 25 MiB; attach \
            a smaller file or mention where it lives in a comment",
            a.path.display(),
            a.id,
            meta.len()
        )));
    }
    if let Some(n) = &a.name {
        crate::kernel::attachment_name(n).map_err(|_| {
            CliError::Failed(format!(
                "invalid --name {:?}: give a plain file name like report.pdf (no '/', '\\', \
                control characters or leading '.')",
                crate::kernel::validate::truncate(n, 80)
            ))
        })?;
    }
    let bytes = std::fs::read(&a.path)
        .map_err(|e| CliError::Failed(format!("{}: {e}", a.path.display())))?;
    let name = match &a.name {
        Some(n) => n.clone(),
        None => a
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                CliError::Failed(format!(
                    "{} has no file name; pass --name",
                    a.path.display()
                ))
            })?,
    };
    let ct = a
        .content_type
        .clone()
        .unwrap_or_else(|| guess_content_type(&name).to_string());
    let b = ctx.open()?;
    let author = a.author.clone().unwrap_or_else(|| ctx.author());
    let att = b.add_attachment(&a.id, &name, &bytes, Some(&ct), Some(&author))?;
    println!(
        "Attached {} to {} (id {}, {} bytes) → {}",
        att.filename, att.task_id, att.id, att.size, att.stored_path
    );
    Ok(())
}

pub(crate) fn attachments(ctx: &Ctx, a: &IdJsonArgs) -> Result<(), CliError> {
    let b = ctx.open_read()?;
    b.get_task(&a.id)?;
    let list = b.list_attachments(&a.id)?;
    if a.json {
        print_json(&list);
        return Ok(());
    }
    if list.is_empty() {
        println!("(no attachments on {})", a.id);
    }
    for x in &list {
        println!(
            "{:<5} {:<32} {:>10}  {}  {}",
            x.id,
            x.filename,
            x.size,
            x.content_type.as_deref().unwrap_or("-"),
            x.stored_path
        );
    }
    Ok(())
}

/// `attach-rm` arguments.
#[derive(Debug, Args)]
pub struct AttachRmArgs {
    /// Attachment id (see `attachments <task>`).
    pub attachment_id: i64,
}

pub(crate) fn attach_rm(ctx: &Ctx, a: &AttachRmArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let x = b.remove_attachment(a.attachment_id)?;
    println!(
        "Removed attachment {} ({}) from {}",
        x.id, x.filename, x.task_id
    );
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
    /// Report only the dispatcher hosts of this board and whether each is live
    /// (`{"hosts": [{host_id, pid, version, started_at, last_tick_at, interval_seconds, live,
    /// age_seconds, this_host}]}` with --json). A host is live while its last tick is within
    /// three of its intervals.
    #[arg(long, conflicts_with = "journal")]
    pub hosts: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One line per dispatcher host: id, live or gone, last tick age, pid, version.
fn print_hosts(hosts: &[crate::kernel::HostLease]) {
    for h in hosts {
        println!(
            "Host {}{}: {} — last tick {}s ago (every {}s), pid {}, hermes-kanban {}",
            h.host_id,
            if h.this_host { " (this host)" } else { "" },
            if h.live { "live" } else { "not live" },
            h.age_seconds,
            h.interval_seconds,
            h.pid,
            h.version
        );
    }
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
    let hosts = b.hosts()?;
    if a.hosts {
        if a.json {
            print_json(&serde_json::json!({"hosts": hosts}));
        } else if hosts.is_empty() {
            println!("No dispatcher host has ticked this board.");
        } else {
            print_hosts(&hosts);
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
    print_hosts(&hosts);
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

/// `skills` verbs.
#[derive(Debug, Subcommand)]
pub enum SkillsCmd {
    /// Copy kanban-worker and kanban-orchestrator into a Hermes skills directory:
    /// $HERMES_HOME/skills/
    /// by default, a profile's own with --profile (a profile reads only
    /// $HERMES_HOME/profiles/<name>/skills/), or every profile's with --all-profiles.
    #[command(
        after_help = "The dispatcher passes `--skills kanban-worker` to a Hermes worker only when \
            the assignee's profile has the skill (Hermes also injects its kanban protocol by \
            itself).\n\nExamples:\n  hermes-kanban skills install --profile coder\n  hermes-kanban \
            skills install --all-profiles --force"
    )]
    Install {
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// Install into this profile's skills directory (`default` = the Hermes root's).
        #[arg(long, value_name = "NAME", conflicts_with = "all_profiles")]
        profile: Option<String>,
        /// Install into the root's and every profile's skills directory.
        #[arg(long)]
        all_profiles: bool,
    },
}

const SKILLS: &[(&str, &str)] = &[
    (
        "kanban-worker",
        include_str!("../../skills/kanban-worker/SKILL.md"),
    ),
    (
        "kanban-orchestrator",
        include_str!("../../skills/kanban-orchestrator/SKILL.md"),
    ),
];

pub(crate) fn skills(ctx: &Ctx, c: &SkillsCmd) -> Result<(), CliError> {
    let SkillsCmd::Install {
        force,
        profile,
        all_profiles,
    } = c;
    let root = hermes_root(&ctx.env);
    let homes: Vec<std::path::PathBuf> = if *all_profiles {
        crate::kernel::on_disk_profiles(&root)
            .iter()
            .map(|p| crate::kernel::profile_home(&root, p))
            .collect()
    } else if let Some(p) = profile {
        let name = crate::kernel::validate::profile_name("--profile", Some(p))?
            .ok_or_else(|| CliError::Usage("--profile needs a profile name".into()))?;
        if !crate::kernel::profile_exists(&root, &name) {
            return Err(CliError::Failed(format!(
                "no profile {name:?}: {} is not a directory (create it with `hermes profile create \
                {name}`, or list them with `hermes-kanban init`)",
                root.join("profiles").join(&name).display()
            )));
        }
        vec![crate::kernel::profile_home(&root, &name)]
    } else {
        vec![
            ctx.env
                .path("HERMES_HOME")
                .unwrap_or_else(|| hermes_root(&ctx.env)),
        ]
    };
    for home in homes {
        for (name, text) in SKILLS {
            let dir = home.join("skills").join(name);
            let file = dir.join("SKILL.md");
            if file.exists() && !force {
                println!(
                    "Kept existing {} (use --force to overwrite)",
                    file.display()
                );
                continue;
            }
            std::fs::create_dir_all(&dir)
                .map_err(|e| CliError::Failed(format!("{}: {e}", dir.display())))?;
            std::fs::write(&file, text)
                .map_err(|e| CliError::Failed(format!("{}: {e}", file.display())))?;
            println!("Installed {}", file.display());
        }
    }
    Ok(())
}

/// `completions` arguments.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell.
    pub shell: clap_complete::Shell,
}

pub(crate) fn completions(a: &CompletionsArgs) -> Result<(), CliError> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "hermes-kanban", &mut std::io::stdout());
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
