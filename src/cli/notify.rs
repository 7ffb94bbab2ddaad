//! `notify test`: post a test message to each webhook of `kanban.notify.webhooks` and report
//! each hook's answer (and its delivery counters on the board). Delivery itself runs inside
//! `serve` and `daemon` (`crate::notify`).

use std::time::Instant;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::print_json;
use super::{CliError, Ctx};
use crate::notify::{NotifyConfig, payload, post, test_event};

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
    let hooks: Vec<_> = cfg
        .webhooks
        .iter()
        .filter(|h| a.hook.as_deref().is_none_or(|n| n == h.name))
        .collect();
    if hooks.is_empty() {
        let names: Vec<&str> = cfg.webhooks.iter().map(|h| h.name.as_str()).collect();
        return Err(CliError::Usage(format!(
            "--hook {:?}: no such hook in {}; configured: {}",
            a.hook.as_deref().unwrap_or(""),
            path.display(),
            names.join(", ")
        )));
    }
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
