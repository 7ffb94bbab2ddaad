//! Server verbs: `mcp` (the MCP server over stdio) and `serve` (HTTP: dashboard, REST API and
//! live events, MCP at /mcp, health).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use clap::Args;
use rmcp::ServiceExt;

use super::{CliError, Ctx};
use crate::mcp::{KanbanMcp, McpState, ORCHESTRATOR_TOOLS, WORKER_TOOLS};
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
    runtime()?.block_on(async move {
        let server = KanbanMcp::new(state)
            .serve(rmcp::transport::stdio())
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
        dispatch: None,
    };
    let env = ctx.env.clone();
    runtime()?.block_on(async move {
        let ct = tokio_util::sync::CancellationToken::new();
        let stop = ct.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            eprintln!("hermes-kanban: shutting down");
            stop.cancel();
        });
        crate::web::serve(env, cfg, ct)
            .await
            .map_err(|e| CliError::Failed(e.to_string()))
    })
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
