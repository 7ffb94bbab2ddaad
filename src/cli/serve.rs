//! Server verbs: `mcp` (the MCP server over stdio) and `serve` (HTTP: dashboard, REST API and
//! live events, MCP at /mcp, health).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use clap::Args;
use rmcp::ServiceExt;

use super::{CliError, Ctx};
use crate::mcp::{KanbanMcp, LineTransport, McpState, ORCHESTRATOR_TOOLS, WORKER_TOOLS};
use crate::web::ServeConfig;

/// `mcp` arguments.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// Only offer these tools (comma-separated), e.g. `kanban_show,kanban_complete`.
    #[arg(long, value_delimiter = ',', value_name = "TOOLS")]
    pub tools: Vec<String>,
}

/// `serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback requires --token.
    #[arg(long, default_value = "127.0.0.1:9120")]
    pub bind: SocketAddr,
    /// Admin bearer token (also $HERMES_KANBAN_TOKEN); required beyond loopback.
    #[arg(long, env = "HERMES_KANBAN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Extra Host header value to accept (repeatable), e.g. the machine's DNS name.
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
    /// Only offer these MCP tools (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "TOOLS")]
    pub tools: Vec<String>,
    /// Seconds between dispatcher ticks (default: `kanban.dispatch_interval_seconds` in
    /// $HERMES_HOME/config.yaml, else 60).
    #[arg(long, value_name = "SECONDS")]
    pub interval: Option<f64>,
    /// Serve only; do not run the dispatcher in this process.
    #[arg(long)]
    pub no_dispatch: bool,
}

fn narrow(tools: &[String]) -> Result<Option<BTreeSet<String>>, CliError> {
    let set: BTreeSet<String> = tools
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    if set.is_empty() {
        return Ok(None);
    }
    for t in &set {
        if !WORKER_TOOLS.contains(&t.as_str()) && !ORCHESTRATOR_TOOLS.contains(&t.as_str()) {
            let mut all: Vec<&str> = WORKER_TOOLS
                .iter()
                .chain(ORCHESTRATOR_TOOLS)
                .copied()
                .collect();
            all.sort();
            return Err(CliError::Usage(format!(
                "--tools: unknown tool {t:?}; known tools: {}",
                all.join(", ")
            )));
        }
    }
    Ok(Some(set))
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))
}

pub(crate) fn mcp(ctx: &Ctx, a: &McpArgs) -> Result<(), CliError> {
    let only = narrow(&a.tools)?;
    // Fail fast (before the client connects) on a bad board or an unreadable DB.
    ctx.open()?;
    let state = McpState::new(ctx.env.clone(), ctx.board.clone(), only, true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        let server = KanbanMcp::new(state)
            .serve(LineTransport::new(tokio::io::stdin(), tokio::io::stdout()))
            .await
            .map_err(|e| CliError::Failed(format!("MCP handshake failed: {e}")))?;
        server
            .waiting()
            .await
            .map_err(|e| CliError::Failed(format!("MCP server stopped: {e}")))?;
        Ok(())
    })
}

pub(crate) fn serve(ctx: &Ctx, a: &ServeArgs) -> Result<(), CliError> {
    let tools = narrow(&a.tools)?;
    ctx.open()?;
    let cfg = ServeConfig {
        bind: a.bind,
        admin_token: a.token.clone().filter(|t| !t.trim().is_empty()),
        board: ctx.board.clone(),
        allowed_hosts: a.allowed_hosts.clone(),
        tools,
        dispatch: (!a.no_dispatch).then(|| dispatch_hook(ctx.env.clone())),
    };
    let env = ctx.env.clone();
    let interval = match a.interval {
        Some(i) if i.is_finite() && i > 0.0 => i.max(0.2),
        Some(i) => {
            return Err(CliError::Usage(format!(
                "--interval {i}: give a positive number of seconds"
            )));
        }
        None => {
            crate::dispatch::config::KanbanConfig::load(&env)
                .0
                .dispatch_interval_seconds
        }
    };
    let board = ctx.board.clone();
    let run_dispatcher = !a.no_dispatch;
    // Webhooks: checked before anything listens, so a bad `kanban.notify` stops start-up.
    let notify_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let notifier = crate::notify::start(&env, board.as_deref(), notify_stop.clone())
        .map_err(CliError::Failed)?;
    if notifier.hooks() > 0 {
        eprintln!(
            "hermes-kanban: delivering notifications to {} webhook(s) (kanban.notify.webhooks)",
            notifier.hooks()
        );
    }
    let served = runtime()?.block_on(async move {
        let ct = tokio_util::sync::CancellationToken::new();
        let stop_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = ct.clone();
        let flag = stop_flag.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            eprintln!(
                "hermes-kanban: shutting down (workers keep running; the next host adopts them)"
            );
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            stop.cancel();
        });
        let dispatcher = run_dispatcher.then(|| {
            let (env, flag) = (env.clone(), stop_flag.clone());
            eprintln!("hermes-kanban: dispatcher ticking every {interval}s");
            tokio::task::spawn_blocking(move || {
                crate::dispatch::run_loop(
                    env,
                    board,
                    std::time::Duration::from_secs_f64(interval),
                    flag,
                )
            })
        });
        let served = crate::web::serve(env, cfg, ct)
            .await
            .map_err(|e| CliError::Failed(e.to_string()));
        stop_flag.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(d) = dispatcher {
            match d.await {
                Ok(Err(e)) => eprintln!("hermes-kanban: dispatcher stopped: {e}"),
                Err(e) => eprintln!("hermes-kanban: dispatcher task failed: {e}"),
                Ok(Ok(())) => {}
            }
        }
        served
    });
    notify_stop.store(true, std::sync::atomic::Ordering::SeqCst);
    notifier.join();
    served
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The dashboard's "nudge dispatcher": one tick on the board (the per-board tick lock keeps it
/// from racing the loop), or a dry-run plan.
fn dispatch_hook(env: crate::kernel::Env) -> crate::web::DispatchHook {
    std::sync::Arc::new(move |req: crate::web::DispatchRequest| {
        use crate::dispatch::{HostState, TickOptions, config::KanbanConfig, dispatch_once};
        let board =
            crate::kernel::Board::open(&env, Some(&req.board)).map_err(|e| e.to_string())?;
        let (cfg, _) = KanbanConfig::load(&env);
        let mut opts = TickOptions::from_config(&env, &cfg);
        opts.dry_run = req.dry_run;
        opts.failure_limit = cfg.failure_limit;
        opts.max_spawn = Some(req.max);
        let r =
            dispatch_once(&board, &opts, &mut HostState::default()).map_err(|e| e.to_string())?;
        Ok(r.to_json())
    })
}
