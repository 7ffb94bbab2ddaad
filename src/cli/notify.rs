//! Notification verbs. `notify test`: post a test message to each webhook of
//! `kanban.notify.webhooks` and report each hook's answer (and its delivery counters on the
//! board); delivery itself runs inside `serve` and `daemon` (`crate::notify`).
//! `notify-subscribe` / `notify-list` / `notify-unsubscribe`: Hermes gateway subscriptions to
//! a task's terminal events (Hermes' gateway delivers them).

use std::time::Instant;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::print_json;
use super::{CliError, Ctx};
use crate::kernel::{SubKey, WebhookCursor};
use crate::notify::{NotifyConfig, PostOutcome, Webhook, payload, post, test_event};

/// `notify` verbs.
#[derive(Debug, Subcommand)]
pub enum NotifyCmd {
    /// Post a test message to each configured webhook and report its answer (exit 1 if any
    /// failed).
    #[command(
        after_help = "Webhooks are configured in $HERMES_HOME/config.yaml under \
            kanban.notify.webhooks (url, format: slack|discord|json, events, tenant, assignee, \
            name); serve and daemon deliver them.\n\nExamples:\n  hermes-kanban notify test\n  \
            hermes-kanban notify test --hook team-slack --json"
    )]
    Test(NotifyTestArgs),
}

/// `notify test` arguments.
#[derive(Debug, Args)]
pub struct NotifyTestArgs {
    /// Only the hook with this name (its `name:`, else `<host>-<hash>` as `notify test` prints).
    #[arg(long, value_name = "NAME")]
    pub hook: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(ctx: &Ctx, cmd: &NotifyCmd) -> Result<(), CliError> {
    match cmd {
        NotifyCmd::Test(a) => test(ctx, a),
    }
}

fn test(ctx: &Ctx, a: &NotifyTestArgs) -> Result<(), CliError> {
    let cfg = NotifyConfig::load(&ctx.env).map_err(CliError::Failed)?;
    let path = crate::dispatch::config::config_path(&ctx.env);
    if cfg.webhooks.is_empty() {
        return Err(CliError::Failed(format!(
            "no webhooks configured: add a list under kanban.notify.webhooks in {} (e.g. `- url: \
            https://hooks.slack.com/services/…` with `format: slack`)",
            path.display()
        )));
    }
    let hooks = selected_hooks(&cfg, a.hook.as_deref(), &path)?;
    let board = ctx.open_read().ok();
    let slug = board
        .as_ref()
        .map(|b| b.slug().to_string())
        .unwrap_or_else(|| crate::kernel::DEFAULT_BOARD.to_string());
    let cursors = board
        .as_ref()
        .and_then(|b| b.webhook_cursors().ok())
        .unwrap_or_default();
    let mut rows = Vec::new();
    let mut failed = 0;
    for h in hooks {
        let started = Instant::now();
        let out = post(
            &h.url,
            &payload(h.format, &slug, &h.name, &test_event(&slug)),
            cfg.timeout,
        );
        let ms = started.elapsed().as_millis() as u64;
        if !out.ok() {
            failed += 1;
        }
        let cur = cursors.iter().find(|c| c.hook == h.name);
        if !a.json {
            print_answer(h, &out, ms, cur, &slug);
        }
        rows.push(json!({
            "hook": h.name,
            "url": h.url,
            "format": h.format.as_str(),
            "events": h.events,
            "ok": out.ok(),
            "status": out.status,
            "error": out.error,
            "elapsed_ms": ms,
            "cursor": cur,
        }));
    }
    if a.json {
        print_json(&json!({ "board": slug, "hooks": rows }));
    }
    if failed > 0 {
        if !a.json {
            eprintln!("{failed} of {} webhook(s) failed", rows.len());
        }
        return Err(CliError::Partial);
    }
    Ok(())
}

/// The hooks `notify test` posts to: all, or the one `--hook` names (a usage error naming
/// the configured hooks when none has that name).
fn selected_hooks<'a>(
    cfg: &'a NotifyConfig,
    only: Option<&str>,
    path: &std::path::Path,
) -> Result<Vec<&'a Webhook>, CliError> {
    let hooks: Vec<_> = cfg
        .webhooks
        .iter()
        .filter(|h| only.is_none_or(|n| n == h.name))
        .collect();
    if hooks.is_empty() {
        let names: Vec<&str> = cfg.webhooks.iter().map(|h| h.name.as_str()).collect();
        return Err(CliError::Usage(format!(
            "--hook {:?}: no such hook in {}; configured: {}",
            only.unwrap_or(""),
            path.display(),
            names.join(", ")
        )));
    }
    Ok(hooks)
}

/// One hook's answer as text, with its delivery counters on the board when it has a cursor.
fn print_answer(h: &Webhook, out: &PostOutcome, ms: u64, cur: Option<&WebhookCursor>, slug: &str) {
    match (&out.error, out.status) {
        (None, Some(code)) => println!("ok      {}  HTTP {code} in {ms} ms", h.name),
        (Some(e), _) => println!("FAILED  {}  {e}", h.name),
        (None, None) => println!("ok      {}", h.name),
    }
    if let Some(c) = cur {
        println!(
            "        on board {slug}: {} delivered, {} given up{}",
            c.delivered,
            c.failed,
            c.last_error
                .as_deref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        );
    }
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

/// The subscription `subscribe` adds and `unsubscribe` removes (no thread is the empty one).
fn sub_key(id: &str, platform: &str, chat_id: &str, thread_id: Option<&str>) -> SubKey {
    SubKey {
        task_id: id.to_string(),
        platform: platform.to_string(),
        chat_id: chat_id.to_string(),
        thread_id: thread_id.unwrap_or_default().to_string(),
    }
}

pub(crate) fn notify_subscribe(ctx: &Ctx, a: &NotifySubArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let key = sub_key(&a.id, &a.platform, &a.chat_id, a.thread_id.as_deref());
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
    let key = sub_key(&a.id, &a.platform, &a.chat_id, a.thread_id.as_deref());
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
