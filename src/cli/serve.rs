//! Server verbs: `mcp` (the MCP server over stdio) and `serve` (HTTP: dashboard, REST API and
//! live events, MCP at /mcp, health).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use clap::Args;
use rmcp::ServiceExt;

use super::{CliError, Ctx};
use crate::mcp::{KanbanMcp, LineTransport, McpState, ORCHESTRATOR_TOOLS, WORKER_TOOLS};
use crate::web::ServeConfig;

/// `mcp` arguments. The worker identity flags outrank the environment; an empty value or an
/// unexpanded `${VAR}` / `$VAR` counts as unset (and is reported on stderr).
#[derive(Debug, Args)]
pub struct McpArgs {
    /// Only offer these tools (comma-separated), e.g. `kanban_show,kanban_complete`.
    #[arg(long, value_delimiter = ',', value_name = "TOOLS")]
    pub tools: Vec<String>,
    /// Serve as the worker of this task (default: $HERMES_KANBAN_TASK; unset = orchestrator).
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// The worker's run id, the stale-worker guard (default: $HERMES_KANBAN_RUN_ID).
    #[arg(long = "run-id", value_name = "N")]
    pub run_id: Option<String>,
    /// The board's SQLite database file (default: $HERMES_KANBAN_DB, else the board's path
    /// under $HERMES_HOME). Refused with a database URL: there, with --task, the global
    /// --board SLUG pins the worker to its board.
    #[arg(long, value_name = "PATH")]
    pub db: Option<String>,
}

/// Variables `mcp` reports when they are set but count as unset.
const MCP_VARS: &[&str] = &[
    "HERMES_KANBAN_TASK",
    "HERMES_KANBAN_RUN_ID",
    "HERMES_KANBAN_BOARD",
    "HERMES_KANBAN_DB",
    "HERMES_KANBAN_HOME",
    "HERMES_KANBAN_CLAIM_LOCK",
    "HERMES_HOME",
    "HERMES_PROFILE",
    "HERMES_SESSION_ID",
    "HERMES_TENANT",
];

fn why_unset(raw: &str) -> &'static str {
    if raw.trim().is_empty() {
        "empty"
    } else {
        "an unexpanded placeholder (the client did not substitute it)"
    }
}

/// A flag's value, or `None` (reported) when it is empty or an unexpanded placeholder.
fn flag_value(name: &str, v: &Option<String>) -> Option<String> {
    let raw = v.as_deref()?;
    if raw.trim().is_empty() || crate::kernel::is_placeholder(raw) {
        eprintln!(
            "hermes-kanban: ignoring {name} {raw:?}: {}; it counts as unset",
            why_unset(raw)
        );
        return None;
    }
    Some(raw.trim().to_string())
}

/// The environment and board an `mcp` server runs with: flags applied over the environment,
/// ignored values reported. `--board` becomes `HERMES_KANBAN_BOARD` as `--db` becomes
/// `HERMES_KANBAN_DB`, so a worker's flags pin it as its variables do (the kernel's worker
/// pin: the file on SQLite, the board on a database URL). `--db` with a database URL is a
/// usage error; an inherited `HERMES_KANBAN_DB` there is reported and plays no part.
fn mcp_env(ctx: &Ctx, a: &McpArgs) -> Result<(crate::kernel::Env, Option<String>), CliError> {
    let mut env = ctx.env.clone();
    for (k, raw) in env.ignored(MCP_VARS) {
        eprintln!(
            "hermes-kanban mcp: ignoring {k}={raw:?}: {}; it counts as unset",
            why_unset(raw)
        );
    }
    if let Some(t) = flag_value("--task", &a.task) {
        env = env.with("HERMES_KANBAN_TASK", t);
    }
    if let Some(r) = flag_value("--run-id", &a.run_id) {
        if r.parse::<i64>().map_or(true, |n| n <= 0) {
            return Err(CliError::Usage(format!(
                "--run-id {r:?}: give the worker's run id (a positive integer), or omit it"
            )));
        }
        env = env.with("HERMES_KANBAN_RUN_ID", r);
    }
    let url_backend = match ctx.home.backend() {
        crate::kernel::Backend::Postgres { url } => Some(url.as_str()),
        crate::kernel::Backend::Sqlite { .. } => None,
    };
    match (flag_value("--db", &a.db), url_backend) {
        (Some(d), Some(url)) => {
            return Err(CliError::Usage(format!(
                "--db {d:?} names a SQLite file, but the boards are on PostgreSQL ({url}, from \
                --database-url, HERMES_KANBAN_DATABASE_URL or kanban.database_url): name the \
                board with --board SLUG instead, or leave out the database URL to use the file"
            )));
        }
        (Some(d), None) => {
            let path = env.expand_tilde(&d);
            env = env.with("HERMES_KANBAN_DB", path.to_string_lossy());
        }
        (None, Some(url)) => {
            if let Some(db) = env.get("HERMES_KANBAN_DB") {
                eprintln!(
                    "hermes-kanban mcp: ignoring HERMES_KANBAN_DB={db:?}: the boards are on \
                    PostgreSQL ({url}); the board is --board / HERMES_KANBAN_BOARD"
                );
            }
        }
        (None, None) => {}
    }
    let board = flag_value("--board", &ctx.board);
    if let Some(b) = &board {
        env = env.with("HERMES_KANBAN_BOARD", b);
    }
    Ok((env, board))
}

/// `serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, `HOST:PORT` (an IP or a host name such as `localhost:9120`);
    /// anything but loopback requires --token.
    #[arg(long, default_value = "127.0.0.1:9120", value_name = "HOST:PORT",
        value_hint = clap::ValueHint::Hostname)]
    pub bind: String,
    /// Admin bearer token (also $HERMES_KANBAN_TOKEN); required beyond loopback.
    #[arg(long, env = "HERMES_KANBAN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Extra Host header value to accept (repeatable), e.g. the machine's DNS name.
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
    /// Only offer these MCP tools (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "TOOLS")]
    pub tools: Vec<String>,
    /// Longest wait between dispatcher ticks in seconds (default:
    /// `kanban.dispatch_interval_seconds` in $HERMES_HOME/config.yaml, else 60); a board change
    /// triggers a tick within a second anyway.
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

/// At most this many blocking threads (kernel calls, the dispatcher loop): each kept its own
/// peak of heap alive, so an unbounded pool (tokio's default is 512) let `serve` hold
/// hundreds of MB after a burst of dashboard refreshes. Board calls queue on the board's
/// handle anyway, so more threads than this add memory, not throughput.
const MAX_BLOCKING_THREADS: usize = 8;

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_keep_alive(std::time::Duration::from_secs(10))
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))
}

pub(crate) fn mcp(ctx: &Ctx, a: &McpArgs) -> Result<(), CliError> {
    use crate::kernel::{Kanban, KernelError};
    let only = narrow(&a.tools)?;
    let (mut env, board) = mcp_env(ctx, a)?;
    // The flags changed the environment: the home is reopened on it (same backend). This one
    // only checks; it is dropped before the server's own home opens the board again.
    let probe = Kanban::open(&env, None)?;
    // Fail fast (before the client connects) on a bad board or an unreadable DB; a missing DB
    // is created by nobody: said here, and every tool call answers with the same advice.
    let slug = probe.resolve(board.as_deref())?;
    let db = probe.location(&slug);
    let opened = match probe.board(Some(&slug)) {
        Ok(b) => Some(b),
        Err(e @ KernelError::NoDatabase { .. }) => {
            eprintln!("hermes-kanban mcp: {e}");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let scope = crate::mcp::Scope::from_env(&env);
    match &scope {
        crate::mcp::Scope::Worker {
            task_id, run_id, ..
        } => {
            eprintln!(
                "hermes-kanban mcp: worker scope for task {task_id}{} on board '{slug}' ({})",
                run_id.map(|r| format!(", run {r}")).unwrap_or_default(),
                db.display()
            );
            let task = opened.as_ref().map(|b| b.lock().get_task(task_id));
            match task {
                Some(Err(KernelError::TaskNotFound(_))) => {
                    let e = KernelError::NotOnBoard {
                        task_id: task_id.clone(),
                        slug: slug.clone(),
                        path: db.clone(),
                    };
                    eprintln!("hermes-kanban mcp: {e}");
                }
                // Filtered environments drop HERMES_PROFILE: author as the task's assignee,
                // as the HTTP server does for a run token.
                Some(Ok(t)) if env.get("HERMES_PROFILE").is_none() => {
                    if let Some(assignee) = t.assignee {
                        eprintln!(
                            "hermes-kanban mcp: HERMES_PROFILE is unset; authoring as the task's \
                            assignee {assignee}"
                        );
                        env = env.with("HERMES_PROFILE", assignee);
                    }
                }
                _ => {}
            }
        }
        crate::mcp::Scope::Orchestrator { .. } => eprintln!(
            "hermes-kanban mcp: orchestrator scope (no --task / HERMES_KANBAN_TASK) on board \
            '{slug}' ({})",
            db.display()
        ),
    }
    drop((opened, probe));
    // HERMES_PROFILE may have been filled in above: the server's home carries the final env.
    let home = Kanban::open(&env, None)?;
    let state = McpState::new(home, board, only, true);
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

/// Resolve `--bind`: an IP socket address, or `name:port` through the resolver (IPv4 first,
/// so `localhost:9120` is 127.0.0.1). A named host is also accepted as a Host header.
fn resolve_bind(raw: &str) -> Result<(SocketAddr, Option<String>), CliError> {
    let raw = raw.trim();
    if let Ok(a) = raw.parse::<SocketAddr>() {
        return Ok((a, None));
    }
    let Some((host, port)) = raw.rsplit_once(':') else {
        return Err(CliError::Usage(format!(
            "--bind {raw:?}: give HOST:PORT, e.g. 127.0.0.1:9120 or localhost:9120"
        )));
    };
    if port.parse::<u16>().is_err() || host.is_empty() {
        return Err(CliError::Usage(format!(
            "--bind {raw:?}: give HOST:PORT with a port number, e.g. localhost:9120"
        )));
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = raw
        .to_socket_addrs()
        .map_err(|e| CliError::Usage(format!("--bind {raw:?}: cannot resolve {host:?}: {e}")))?
        .collect();
    let pick = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| {
            CliError::Usage(format!("--bind {raw:?}: {host:?} resolves to no address"))
        })?;
    Ok((pick, Some(host.trim_matches(['[', ']']).to_string())))
}

pub(crate) fn serve(ctx: &Ctx, a: &ServeArgs) -> Result<(), CliError> {
    // Bound glibc's arenas before any thread starts (see src/alloc.rs).
    crate::alloc::bound_for_server();
    let tools = narrow(&a.tools)?;
    let (bind, bind_host) = resolve_bind(&a.bind)?;
    // One home for the whole process: MCP, the REST API, the dispatcher and the webhook
    // threads share its board handles (one connection per board).
    let home = ctx.home.clone();
    open_served_board(&home, ctx.board.as_deref())?;
    let mut allowed_hosts = a.allowed_hosts.clone();
    if let Some(h) = bind_host
        && !allowed_hosts.contains(&h)
    {
        allowed_hosts.push(h);
    }
    let cfg = ServeConfig {
        bind,
        // An unexpanded `${HERMES_KANBAN_TOKEN}` must not become a guessable admin token.
        admin_token: flag_value("--token / HERMES_KANBAN_TOKEN", &a.token),
        board: ctx.board.clone(),
        allowed_hosts,
        tools,
        dispatch: (!a.no_dispatch).then(|| dispatch_hook(home.clone())),
    };
    let interval = dispatch_interval(ctx, a)?;
    let board = ctx.board.clone();
    let run_dispatcher = !a.no_dispatch;
    // Webhooks: checked before anything listens, so a bad `kanban.notify` stops start-up.
    let notify_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let notifier = crate::notify::start(&home, board.as_deref(), notify_stop.clone())
        .map_err(CliError::Failed)?;
    if notifier.hooks() > 0 {
        eprintln!(
            "hermes-kanban: delivering notifications to {} webhook(s) (kanban.notify.webhooks)",
            notifier.hooks()
        );
    }
    let served = runtime()?.block_on(run_server(
        home,
        cfg,
        board,
        run_dispatcher.then_some(interval),
    ));
    notify_stop.store(true, std::sync::atomic::Ordering::SeqCst);
    notifier.join();
    served
}

/// `serve --interval`, else `kanban.dispatch_interval_seconds` (at least 0.2 s).
fn dispatch_interval(ctx: &Ctx, a: &ServeArgs) -> Result<f64, CliError> {
    Ok(match a.interval {
        Some(i) if i.is_finite() && i > 0.0 => i.max(0.2),
        Some(i) => {
            return Err(CliError::Usage(format!(
                "--interval {i}: give a positive number of seconds"
            )));
        }
        None => {
            crate::dispatch::config::KanbanConfig::load(&ctx.env)
                .0
                .dispatch_interval_seconds
        }
    })
}

/// Listen, run the dispatcher loop beside the server (every `dispatch_every` seconds at most,
/// when given) and stop both on SIGINT/SIGTERM; the dispatcher's end is reported on stderr.
async fn run_server(
    home: crate::kernel::Kanban,
    cfg: ServeConfig,
    board: Option<String>,
    dispatch_every: Option<f64>,
) -> Result<(), CliError> {
    let ct = tokio_util::sync::CancellationToken::new();
    let stop_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = ct.clone();
    let flag = stop_flag.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("hermes-kanban: shutting down (workers keep running; the next host adopts them)");
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        stop.cancel();
    });
    // Bind first: a busy port or a refused address fails before the dispatcher starts.
    let listener = crate::web::bind(&cfg)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let dispatcher = dispatch_every.map(|interval| {
        let (home, flag) = (home.clone(), stop_flag.clone());
        eprintln!(
            "hermes-kanban: dispatcher ticking on every board change, at least every \
            {interval}s"
        );
        tokio::task::spawn_blocking(move || {
            crate::dispatch::run_loop(
                home,
                board,
                std::time::Duration::from_secs_f64(interval),
                flag,
            )
        })
    });
    let served = crate::web::serve_on(home, cfg, listener, ct)
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
}

/// Open (creating when missing, and saying so) the board `serve` starts on, in the shared home.
fn open_served_board(home: &crate::kernel::Kanban, board: Option<&str>) -> Result<(), CliError> {
    let (b, created) = home.board_or_create(board)?;
    if created {
        let b = b.lock();
        eprintln!(
            "hermes-kanban: created a new board database at {} (board '{}'); if you meant another \
            board, set HERMES_HOME, --board SLUG or HERMES_KANBAN_DB",
            b.paths().db.display(),
            b.slug()
        );
    }
    Ok(())
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
fn dispatch_hook(home: crate::kernel::Kanban) -> crate::web::DispatchHook {
    std::sync::Arc::new(move |req: crate::web::DispatchRequest| {
        use crate::dispatch::{HostState, TickOptions, config::KanbanConfig, dispatch_once};
        let env = home.env();
        let (handle, _) = home
            .board_or_create(Some(&req.board))
            .map_err(|e| e.to_string())?;
        let (cfg, _) = KanbanConfig::load(env);
        let mut opts = TickOptions::from_config(env, &cfg);
        opts.dry_run = req.dry_run;
        opts.failure_limit = cfg.failure_limit;
        opts.max_spawn = Some(req.max);
        let r =
            dispatch_once(&handle, &opts, &mut HostState::default()).map_err(|e| e.to_string())?;
        Ok(r.to_json())
    })
}
