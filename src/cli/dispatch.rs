//! Dispatcher verbs: `dispatch` (one tick), `daemon` (the dispatcher loop without the web
//! server) and the hidden `supervise` (one worker's supervisor, started by the dispatcher).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;

use super::output::print_json;
use super::{CliError, Ctx};
use crate::dispatch::config::KanbanConfig;
use crate::dispatch::supervise::SuperviseSpec;
use crate::dispatch::{DispatchResult, HostState, TickOptions, dispatch_once, run_loop_with};

/// `dispatch` arguments (REF §15.2).
#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// Report what would be spawned; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Live concurrency cap: spawn only while fewer than N tasks run (overrides kanban.max_spawn).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32))]
    pub max: Option<u32>,
    /// Failures before the circuit breaker blocks a task without --max-retries.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub failure_limit: i64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `daemon` arguments.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Longest wait between ticks in seconds; a board change (a task created, completed,
    /// unblocked…) triggers a tick within a second anyway.
    #[arg(long, default_value_t = 60.0, value_parser = parse_interval)]
    pub interval: f64,
    /// Live concurrency cap (overrides kanban.max_spawn).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32))]
    pub max: Option<u32>,
    /// Circuit-breaker limit (default kanban.failure_limit, else 2).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub failure_limit: Option<i64>,
    /// Write this process's pid here while running.
    #[arg(long, value_name = "PATH")]
    pub pidfile: Option<PathBuf>,
    /// Print a line for every tick that did something.
    #[arg(long, short)]
    pub verbose: bool,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || !(0.05..=86_400.0).contains(&v) {
        return Err("the interval must be between 0.05 and 86400 seconds".into());
    }
    Ok(v)
}

/// `supervise` arguments (hidden; the dispatcher builds them).
#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// Task id.
    #[arg(long)]
    pub task: String,
    /// Run id the dispatcher claimed.
    #[arg(long)]
    pub run: i64,
    /// Circuit-breaker limit to apply to this run's failure.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub failure_limit: i64,
    /// Max runtime in seconds, measured from the run's start.
    #[arg(long)]
    pub max_runtime: Option<i64>,
    /// SIGTERM → SIGKILL grace in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub kill_grace: f64,
    /// The worker's working directory.
    #[arg(long)]
    pub cwd: PathBuf,
    /// The worker command.
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

fn tick_options(ctx: &Ctx) -> (TickOptions, KanbanConfig) {
    let (cfg, warnings) = KanbanConfig::load(&ctx.env);
    for w in warnings {
        eprintln!("hermes-kanban: warning: {w}");
    }
    (TickOptions::from_config(&ctx.env, &cfg), cfg)
}

fn print_text(r: &DispatchResult, dry_run: bool) {
    if r.skipped_locked {
        println!("Another dispatcher is ticking this board; nothing done.");
        return;
    }
    let verb = if dry_run { "Would spawn" } else { "Spawned" };
    if r.spawned.is_empty() {
        println!("{verb} nothing.");
    } else {
        println!("{verb} {}:", r.spawned.len());
        for s in &r.spawned {
            if s.workspace.is_empty() {
                println!("  {}  {}", s.task_id, s.assignee);
            } else {
                println!("  {}  {}  @ {}", s.task_id, s.assignee, s.workspace);
            }
        }
    }
    let promoted = if dry_run { "Would promote" } else { "Promoted" };
    println!("{promoted} {}, reclaimed {}", r.promoted, r.reclaimed);
    let lists: [(&str, &Vec<String>); 8] = [
        ("Crashed", &r.crashed),
        ("Timed out", &r.timed_out),
        ("Stale", &r.stale),
        ("Rate limited", &r.rate_limited),
        ("Blocked by the circuit breaker", &r.auto_blocked),
        ("Auto-assigned (default assignee)", &r.auto_assigned_default),
        ("Skipped, unassigned", &r.skipped_unassigned),
        ("Skipped, no such profile", &r.skipped_nonspawnable),
    ];
    for (label, ids) in lists {
        if !ids.is_empty() {
            println!("{label}: {}", ids.join(", "));
        }
    }
    for c in &r.skipped_per_profile_capped {
        println!(
            "Skipped, {} already runs {}: {}",
            c.assignee, c.current, c.task_id
        );
    }
    for g in &r.respawn_guarded {
        println!("Held back ({}): {}", g.reason, g.task_id);
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
}

pub(crate) fn dispatch(ctx: &Ctx, a: &DispatchArgs) -> Result<(), CliError> {
    // A dry run only reads: it must not create a board.
    let b = if a.dry_run {
        ctx.open_read()?
    } else {
        ctx.open()?
    };
    let (mut opts, _) = tick_options(ctx);
    opts.dry_run = a.dry_run;
    opts.failure_limit = a.failure_limit;
    if let Some(m) = a.max {
        opts.max_spawn = Some(m as usize);
    }
    let r = dispatch_once(&b, &opts, &mut HostState::default())
        .map_err(|e| CliError::Failed(e.to_string()))?;
    if a.json {
        print_json(&r.to_json());
    } else {
        print_text(&r, a.dry_run);
    }
    Ok(())
}

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: i32) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

fn install_stop_handlers() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            let _ = sigaction(sig, &act);
        }
    }
}

pub(crate) fn daemon(ctx: &Ctx, a: &DaemonArgs) -> Result<(), CliError> {
    // Validate the board up front (a typo should fail now, not every tick).
    if let Some(b) = &ctx.board {
        ctx.home.resolve(Some(b))?;
    }
    let (mut opts, cfg) = tick_options(ctx);
    opts.failure_limit = a.failure_limit.unwrap_or(cfg.failure_limit);
    opts.stale_timeout_seconds = cfg.dispatch_stale_timeout_seconds;
    if let Some(m) = a.max {
        opts.max_spawn = Some(m as usize);
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Webhooks (kanban.notify): a bad config stops start-up with the key named.
    let notifier = crate::notify::start(&ctx.home, ctx.board.as_deref(), stop.clone())
        .map_err(CliError::Failed)?;
    install_stop_handlers();
    if let Some(p) = &a.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .map_err(|e| CliError::Failed(format!("--pidfile {}: {e}", p.display())))?;
    }
    if notifier.hooks() > 0 {
        eprintln!(
            "hermes-kanban: delivering notifications to {} webhook(s) (kanban.notify.webhooks)",
            notifier.hooks()
        );
    }
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if SIGNALLED.load(Ordering::SeqCst) {
                    stop.store(true, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    eprintln!(
        "hermes-kanban: dispatcher running on {1}: on every change, at least every {0}s (Ctrl-C to \
        stop; workers keep running)",
        a.interval,
        ctx.board.as_deref().unwrap_or("every board")
    );
    let verbose = a.verbose;
    let r = run_loop_with(
        &ctx.home,
        ctx.board.as_deref(),
        Duration::from_secs_f64(a.interval),
        &stop,
        &opts,
        |slug, r| {
            if verbose && r.did_work() {
                println!(
                    "[{}] {slug}: {}",
                    chrono::Local::now().format("%H:%M:%S"),
                    r.to_json()
                );
            }
        },
    );
    stop.store(true, Ordering::SeqCst);
    let _ = watcher.join();
    notifier.join();
    if let Some(p) = &a.pidfile {
        let _ = std::fs::remove_file(p);
    }
    r.map_err(|e| CliError::Failed(e.to_string()))?;
    eprintln!("hermes-kanban: dispatcher stopped");
    Ok(())
}

pub(crate) fn supervise(ctx: &Ctx, a: &SuperviseArgs) -> i32 {
    let spec = SuperviseSpec {
        task_id: a.task.clone(),
        run_id: a.run,
        failure_limit: a.failure_limit,
        max_runtime: a.max_runtime.filter(|m| *m > 0),
        kill_grace: Duration::from_secs_f64(a.kill_grace.clamp(0.0, 600.0)),
        cwd: a.cwd.clone(),
        argv: a.argv.clone(),
    };
    crate::dispatch::supervise::run(&ctx.env, ctx.board.as_deref(), &spec)
}
