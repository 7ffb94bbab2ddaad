//! The operator CLI: `hermes-kanban [--board <slug>] <verb>`, mirroring `hermes kanban`.
//! Parsing lives here; each verb group has its own module and only calls the kernel.
//! Exit codes: 0 success; 1 refused or failed (unknown task, refused transition, bad JSON);
//! 2 usage error. Data goes to stdout, messages to stderr.

mod attach;
mod boards;
mod create;
mod dispatch;
mod info;
mod init;
mod list;
mod notify;
mod serve;
mod setup;
mod show;
mod tasks;
mod transitions;
mod watch;

pub(crate) mod output;

use clap::{Args, Parser, Subcommand};

use crate::kernel::{Board, Env, Kanban, KernelError, OpenMode};

const AFTER_HELP: &str = "\
Task verbs:      create, list, show, edit, assign, reassign, set-model, link, unlink, comment, \
archive, swarm
Worker verbs:    claim, heartbeat, complete, block, schedule, unblock, promote, reclaim
Review:          request-review, request-changes, reopen-review (approve with complete)
Reading:         runs, log, context, tail, watch, stats, assignees, diagnostics, repair
Dispatcher:      dispatch (one tick), daemon (tick every --interval seconds)
Boards & misc:   init, boards, notify test, notify-*, attach, attachments, attach-rm, gc, skills, \
completions

Exit codes: 0 success, 1 refused or failed, 2 usage error.
Examples:
  hermes-kanban create \"Write the API\" --assignee coder --parent t_1a2b3c4d
  hermes-kanban list --status ready --json
  hermes-kanban complete t_1a2b3c4d --summary \"API done\" --metadata '{\"tests\": 12}'";

/// A durable multi-agent task board, compatible with Hermes Agent's kanban.db.
#[derive(Debug, Parser)]
#[command(name = "hermes-kanban", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Board to act on (default: $HERMES_KANBAN_BOARD, then the `current` pointer, then
    /// `default`).
    #[arg(long, global = true, value_name = "SLUG")]
    pub board: Option<String>,

    /// Database URL of the board store (default: $HERMES_KANBAN_DATABASE_URL, then
    /// `kanban.database_url` in config.yaml, else the SQLite boards under $HERMES_HOME).
    /// `postgres://…` is recognised; this build has no PostgreSQL support yet.
    #[arg(long = "database-url", global = true, value_name = "URL")]
    pub database_url: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// Verbs.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing would only add noise
pub enum Command {
    /// Create or migrate the board's database and list assignable profiles.
    #[command(after_help = "Example: hermes-kanban init")]
    Init,
    /// Manage boards (separate databases).
    #[command(
        subcommand,
        after_help = "Example: hermes-kanban boards create research --switch"
    )]
    Boards(boards::BoardsCmd),
    /// Create a task.
    #[command(
        after_help = "Examples:\n  hermes-kanban create \"Design schema\" --assignee architect\n  \
            hermes-kanban create \"Build API\" --assignee coder --parent t_1a2b3c4d --max-runtime \
            2h --json"
    )]
    Create(create::CreateArgs),
    /// Create a swarm: parallel workers, a verifier and a synthesizer around a blackboard card.
    #[command(
        after_help = "Example: hermes-kanban swarm \"Plan failover\" --worker \
            researcher:Research-NA --worker researcher:Research-EU --verifier reviewer \
            --synthesizer writer"
    )]
    Swarm(create::SwarmArgs),
    /// List tasks (recomputes readiness first).
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  hermes-kanban list\n  hermes-kanban list --status blocked \
            --assignee coder --json"
    )]
    List(list::ListArgs),
    /// Show a task: fields, parents, children, comments, events and runs.
    #[command(after_help = "Example: hermes-kanban show t_1a2b3c4d --json")]
    Show(show::ShowArgs),
    /// Assign a task to a profile (`none` unassigns). Refused while it runs.
    #[command(after_help = "Example: hermes-kanban assign t_1a2b3c4d reviewer")]
    Assign(tasks::AssignArgs),
    /// Reassign a task, optionally reclaiming a running one first.
    #[command(
        after_help = "Example: hermes-kanban reassign t_1a2b3c4d reviewer --reclaim --reason \
            \"switch model\""
    )]
    Reassign(tasks::ReassignArgs),
    /// Set the model (and provider, reasoning level) a task's workers run with.
    #[command(
        after_help = "Takes effect at the next spawn: the worker runs `hermes … -m MODEL \
            [--provider P] [--reasoning L]` (flags the installed Hermes lacks are left \
            out).\n\nExamples:\n  hermes-kanban set-model t_1a2b3c4d gpt-5.5 --provider \
            openrouter\n  hermes-kanban set-model t_1a2b3c4d default --reasoning default"
    )]
    SetModel(tasks::SetModelArgs),
    /// Release a running task's claim back to ready.
    #[command(after_help = "Example: hermes-kanban reclaim t_1a2b3c4d --reason \"worker hung\"")]
    Reclaim(transitions::ReclaimArgs),
    /// Add a dependency: CHILD waits for PARENT.
    #[command(after_help = "Example: hermes-kanban link t_parent01 t_child002")]
    Link(tasks::LinkArgs),
    /// Remove a dependency.
    #[command(after_help = "Example: hermes-kanban unlink t_parent01 t_child002")]
    Unlink(tasks::LinkArgs),
    /// Claim a ready task (as this process).
    #[command(after_help = "Example: hermes-kanban claim t_1a2b3c4d --ttl 600")]
    Claim(transitions::ClaimArgs),
    /// Comment on a task.
    #[command(
        after_help = "Example: hermes-kanban comment t_1a2b3c4d \"found 3 sources\" --author \
            researcher"
    )]
    Comment(tasks::CommentArgs),
    /// Complete tasks with a hand-off (summary and metadata are per task).
    #[command(
        after_help = "Example: hermes-kanban complete t_1a2b3c4d --summary \"schema done\" \
            --metadata '{\"tables\": 4}'"
    )]
    Complete(transitions::CompleteArgs),
    /// Hand a running or ready task to a reviewer (status review; the reviewer becomes the
    /// assignee and the dispatcher's review lane runs it).
    #[command(
        after_help = "Example: hermes-kanban request-review t_1a2b3c4d --summary \"API done, tests \
            pass\" --reviewer reviewer"
    )]
    RequestReview(transitions::RequestReviewArgs),
    /// Send a task under review back to its implementer (only from a run claimed from review).
    #[command(
        after_help = "Example: hermes-kanban request-changes t_1a2b3c4d the error path has no test"
    )]
    RequestChanges(transitions::RequestChangesArgs),
    /// Move review tasks back to ready (or todo) for their implementer.
    #[command(
        after_help = "Example: hermes-kanban reopen-review t_1a2b3c4d --reason \"handle empty \
            input\""
    )]
    ReopenReview(transitions::ReopenReviewArgs),
    /// Change a task's title, body or priority, or backfill a done task's result/summary/metadata.
    #[command(
        after_help = "Examples:\n  hermes-kanban edit t_1a2b3c4d --title \"Ship v2\" --priority \
            5\n  hermes-kanban edit t_1a2b3c4d --body-file spec.md\n  hermes-kanban edit \
            t_1a2b3c4d --result \"shipped in v2\" --summary \"shipped\""
    )]
    Edit(transitions::EditArgs),
    /// Block a task with a reason (a human unblocks it).
    #[command(
        after_help = "Example: hermes-kanban block t_1a2b3c4d need API credentials --kind \
            needs_input"
    )]
    Block(transitions::BlockArgs),
    /// Park tasks until later (never dispatched until unblocked).
    #[command(after_help = "Example: hermes-kanban schedule t_1a2b3c4d wait until monday")]
    Schedule(transitions::ScheduleArgs),
    /// Unblock blocked or scheduled tasks (to ready, or todo while a parent is unfinished).
    #[command(
        after_help = "Example: hermes-kanban unblock t_1a2b3c4d --reason \"credentials added\""
    )]
    Unblock(transitions::UnblockArgs),
    /// Manually move todo or blocked tasks to ready.
    #[command(after_help = "Example: hermes-kanban promote t_1a2b3c4d retry after fix --json")]
    Promote(transitions::PromoteArgs),
    /// Archive tasks, or permanently delete archived ones with --rm.
    #[command(
        after_help = "Examples:\n  hermes-kanban archive t_1a2b3c4d\n  hermes-kanban archive --rm \
            t_1a2b3c4d"
    )]
    Archive(tasks::ArchiveArgs),
    /// Follow one task's events live (Ctrl-C to stop).
    #[command(after_help = "Example: hermes-kanban tail t_1a2b3c4d")]
    Tail(watch::TailArgs),
    /// Follow the whole board's events live (Ctrl-C to stop).
    #[command(
        after_help = "Example: hermes-kanban watch --kinds completed,blocked --assignee coder"
    )]
    Watch(watch::WatchArgs),
    /// Task counts by status and assignee.
    #[command(after_help = "Example: hermes-kanban stats --json")]
    Stats(info::JsonArgs),
    /// Attempts (runs) of a task.
    #[command(after_help = "Example: hermes-kanban runs t_1a2b3c4d --json")]
    Runs(show::RunsArgs),
    /// Print a task's worker log.
    #[command(after_help = "Example: hermes-kanban log t_1a2b3c4d --tail 4096")]
    Log(show::LogArgs),
    /// Record a worker heartbeat on a running task.
    #[command(after_help = "Example: hermes-kanban heartbeat t_1a2b3c4d --note \"halfway\"")]
    Heartbeat(transitions::HeartbeatArgs),
    /// Profiles on disk and assignees on the board, with task counts.
    #[command(after_help = "Example: hermes-kanban assignees --json")]
    Assignees(info::JsonArgs),
    /// Print the context a worker sees for a task.
    #[command(after_help = "Example: hermes-kanban context t_1a2b3c4d")]
    Context(show::IdArg),
    /// Remove old events, logs and archived scratch workspaces.
    #[command(after_help = "Example: hermes-kanban gc --event-retention-days 14")]
    Gc(info::GcArgs),
    /// Webhook notifications (kanban.notify.webhooks in config.yaml), delivered by serve and
    /// daemon.
    #[command(subcommand, after_help = "Example: hermes-kanban notify test --json")]
    Notify(notify::NotifyCmd),
    /// Subscribe a Hermes gateway chat to a task's terminal events (Hermes' gateway delivers).
    #[command(
        name = "notify-subscribe",
        after_help = "Example: hermes-kanban notify-subscribe t_1a2b3c4d --platform telegram \
            --chat-id 123"
    )]
    NotifySubscribe(notify::NotifySubArgs),
    /// List notification subscriptions.
    #[command(
        name = "notify-list",
        after_help = "Example: hermes-kanban notify-list --json"
    )]
    NotifyList(notify::NotifyListArgs),
    /// Remove a notification subscription.
    #[command(
        name = "notify-unsubscribe",
        after_help = "Example: hermes-kanban notify-unsubscribe t_1a2b3c4d --platform telegram \
            --chat-id 123"
    )]
    NotifyUnsubscribe(notify::NotifyUnsubArgs),
    /// Attach a file to a task (25 MiB cap).
    #[command(after_help = "Example: hermes-kanban attach t_1a2b3c4d ./report.pdf")]
    Attach(attach::AttachArgs),
    /// List a task's attachments.
    #[command(after_help = "Example: hermes-kanban attachments t_1a2b3c4d --json")]
    Attachments(attach::IdJsonArgs),
    /// Delete an attachment (row and file).
    #[command(name = "attach-rm", after_help = "Example: hermes-kanban attach-rm 7")]
    AttachRm(attach::AttachRmArgs),
    /// Find tasks that need an operator: repeated failures, stuck blocks, stranded work.
    #[command(
        visible_alias = "diag",
        after_help = "The text report starts with the board's journal mode and why (--journal: \
            only that).\nExample: hermes-kanban diagnostics --severity error --json"
    )]
    Diagnostics(info::DiagnosticsArgs),
    /// Check the board's database and rebuild damaged indexes (a backup is taken first).
    #[command(
        after_help = "Runs PRAGMA quick_check and integrity_check. When every problem is a damaged \
            index, saves <db>.corrupt.<hash>.bak and REINDEXes; anything else is reported and left \
            alone.\nExit 0: ok, repaired or no DB file; 1: still corrupt.\n\nExample: \
            hermes-kanban repair --json"
    )]
    Repair(info::JsonArgs),
    /// Run one dispatcher tick: release dead or expired work, promote, spawn ready tasks.
    #[command(
        after_help = "Each spawned worker runs under a supervisor that records its exit and \
            enforces --max-runtime, so one-shot dispatch classifies crashes, protocol violations \
            and rate limits correctly.\nThe worker is `hermes -p <assignee> --cli --accept-hooks \
            [--skills S]… [-m MODEL [--provider P]] [--reasoning L] chat -q \"work kanban task \
            <id>\"` ($HERMES_BIN or PATH) as Hermes' own dispatcher spawns it: --skills \
            kanban-worker only when that profile has the skill, and only flags the installed \
            `hermes --help` lists (probed once, cached in kanban/hermes-flags.json). Or \
            kanban.worker_command from $HERMES_HOME/config.yaml. --dry-run warns when a task's \
            skill is missing for its assignee's profile.\n\nExamples:\n  hermes-kanban dispatch \
            --dry-run --json\n  HERMES_BIN=/opt/hermes/bin/hermes hermes-kanban dispatch --max 4"
    )]
    Dispatch(dispatch::DispatchArgs),
    /// Run the dispatcher every --interval seconds until SIGINT/SIGTERM (workers keep running).
    #[command(
        after_help = "Without --board it dispatches every board. Settings come from the kanban: \
            section of $HERMES_HOME/config.yaml (max_spawn, max_in_progress, \
            max_in_progress_per_profile, default_assignee, failure_limit, \
            dispatch_stale_timeout_seconds, worker_command).\n\nExamples:\n  hermes-kanban \
            daemon\n  hermes-kanban --board research daemon --interval 10 --max 2 -v"
    )]
    Daemon(dispatch::DaemonArgs),
    /// Supervise one dispatched worker (started by the dispatcher; not for direct use).
    #[command(hide = true)]
    Supervise(dispatch::SuperviseArgs),
    /// Install the kanban-worker and kanban-orchestrator skills into $HERMES_HOME/skills or a
    /// profile's.
    #[command(subcommand, after_help = "Example: hermes-kanban skills install")]
    Skills(setup::SkillsCmd),
    /// Serve the kanban_* MCP tools over stdio (for an agent's MCP client config).
    #[command(
        after_help = "The worker identity comes from --task/--run-id/--db/--board or \
            $HERMES_KANBAN_TASK/_RUN_ID/_DB/_BOARD (flags first); an empty value or an unexpanded \
            ${VAR}/$VAR counts as unset and is reported on stderr, with the scope and the board \
            file in use. A board without a database is never created here: tools answer with the \
            path and how to fix it.\n\nExamples:\n  hermes-kanban mcp --tools \
            kanban_show,kanban_complete,kanban_block,kanban_heartbeat\n  hermes-kanban mcp --task \
            \"$HERMES_KANBAN_TASK\" --run-id \"$HERMES_KANBAN_RUN_ID\" --db ~/.hermes/kanban.db"
    )]
    Mcp(serve::McpArgs),
    /// Run the HTTP server: MCP at /mcp (streamable HTTP), health at /healthz.
    #[command(
        after_help = "Examples:\n  hermes-kanban serve\n  hermes-kanban serve --bind 0.0.0.0:9120 \
            --token \"$(openssl rand -hex 16)\""
    )]
    Serve(serve::ServeArgs),
    /// Print shell completions.
    #[command(after_help = "Example: hermes-kanban completions bash > \
            ~/.local/share/bash-completion/completions/hermes-kanban")]
    Completions(setup::CompletionsArgs),
}

/// `--json` only.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A CLI failure.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Refused or failed in the kernel (exit 1).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// Failed for another reason (exit 1).
    #[error("{0}")]
    Failed(String),
    /// A usage error the parser could not catch (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Some items of a bulk command failed; their messages were already printed (exit 1).
    #[error("")]
    Partial,
}

/// What every verb needs: the environment, the home (backend and boards) and the `--board`
/// choice.
pub(crate) struct Ctx {
    pub env: Env,
    pub home: Kanban,
    pub board: Option<String>,
}

impl Ctx {
    /// Open the board for a writing verb: creates its database when missing (as Hermes does)
    /// and says on stderr which file it created.
    pub(crate) fn open(&self) -> Result<Board, CliError> {
        let (b, created) = self
            .home
            .open_board(self.board.as_deref(), OpenMode::Create)?;
        if created {
            eprintln!(
                "hermes-kanban: created a new board database at {} (board '{}'); if you meant \
                another board, set HERMES_HOME, --board SLUG or HERMES_KANBAN_DB",
                b.paths().db.display(),
                b.slug()
            );
        }
        Ok(b)
    }

    /// Open the board for a reading verb: never creates anything. A board without a database
    /// is reported on stderr (naming the path and how to point at the right board) and read as
    /// an empty board, so scripts still get an empty result and exit 0.
    pub(crate) fn open_read(&self) -> Result<Board, CliError> {
        match self
            .home
            .open_board(self.board.as_deref(), OpenMode::Existing)
        {
            Ok((b, _)) => Ok(b),
            Err(e @ KernelError::NoDatabase { .. }) => {
                eprintln!("hermes-kanban: {e}");
                let KernelError::NoDatabase { slug, .. } = e else {
                    unreachable!()
                };
                Ok(Board::open_empty(&self.env, self.home.paths(&slug))?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Author identity, as Hermes' CLI: `$HERMES_PROFILE_NAME`, `$HERMES_PROFILE`, else the
    /// active profile inferred from `HERMES_HOME` (`default` for the shared root).
    pub(crate) fn author(&self) -> String {
        match self
            .env
            .get("HERMES_PROFILE_NAME")
            .or_else(|| self.env.get("HERMES_PROFILE"))
        {
            Some(a) => a.to_string(),
            None => crate::kernel::active_profile_name(&self.env),
        }
    }

    /// The worker's run id when acting on its own task (stale-worker guard).
    pub(crate) fn expected_run_id(&self, task_id: &str) -> Option<i64> {
        (self.env.get("HERMES_KANBAN_TASK") == Some(task_id))
            .then(|| {
                self.env
                    .get("HERMES_KANBAN_RUN_ID")
                    .and_then(|r| r.parse().ok())
            })
            .flatten()
    }
}

/// Bulk verbs: run `op` on each id and print the line it returns; a failure is reported on
/// stderr and the others still run; exit 1 when any failed.
pub(crate) fn each_id<'a>(
    ids: impl IntoIterator<Item = &'a String>,
    mut op: impl FnMut(&str) -> Result<String, KernelError>,
) -> Result<(), CliError> {
    let mut failed = false;
    for id in ids {
        match op(id) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("hermes-kanban: {e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(CliError::Partial)
    } else {
        Ok(())
    }
}

/// Short-lived verbs die quietly on a closed pipe (`show --json | head`) instead of panicking
/// on EPIPE, as Unix tools do. Long-running servers keep Rust's ignore-SIGPIPE default.
fn restore_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: setting the default disposition installs no handler code.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
}

/// Parse argv and run; returns the process exit code. Most of it is the verb table (one match
/// arm per verb): it is the dispatch, and splitting it would only scatter it.
pub fn main() -> i32 {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_) | Command::Mcp(_)) {
        restore_sigpipe();
    }
    let env = Env::from_process();
    // The backend is chosen once, before any verb: a database URL this build cannot open stops
    // every verb that touches a board (completions need none).
    let home = match Kanban::open(&env, cli.database_url.as_deref()) {
        Ok(h) => h,
        Err(_) if matches!(cli.command, Command::Completions(_)) => Kanban::sqlite(env.clone()),
        Err(e) => {
            eprintln!("hermes-kanban: {e}");
            return 1;
        }
    };
    let ctx = Ctx {
        env,
        home,
        board: cli.board.clone(),
    };
    if let Command::Supervise(a) = &cli.command {
        return dispatch::supervise(&ctx, a);
    }
    let res = match &cli.command {
        Command::Init => init::run(&ctx),
        Command::Boards(c) => boards::run(&ctx, c),
        Command::Create(a) => create::create(&ctx, a),
        Command::Swarm(a) => create::swarm(&ctx, a),
        Command::List(a) => list::list(&ctx, a),
        Command::Show(a) => show::show(&ctx, a),
        Command::Assign(a) => tasks::assign(&ctx, a),
        Command::Reassign(a) => tasks::reassign(&ctx, a),
        Command::SetModel(a) => tasks::set_model(&ctx, a),
        Command::Reclaim(a) => transitions::reclaim(&ctx, a),
        Command::Link(a) => tasks::link(&ctx, a, true),
        Command::Unlink(a) => tasks::link(&ctx, a, false),
        Command::Claim(a) => transitions::claim(&ctx, a),
        Command::Comment(a) => tasks::comment(&ctx, a),
        Command::Complete(a) => transitions::complete(&ctx, a),
        Command::RequestReview(a) => transitions::request_review(&ctx, a),
        Command::RequestChanges(a) => transitions::request_changes(&ctx, a),
        Command::ReopenReview(a) => transitions::reopen_review(&ctx, a),
        Command::Edit(a) => transitions::edit(&ctx, a),
        Command::Block(a) => transitions::block(&ctx, a),
        Command::Schedule(a) => transitions::schedule(&ctx, a),
        Command::Unblock(a) => transitions::unblock(&ctx, a),
        Command::Promote(a) => transitions::promote(&ctx, a),
        Command::Archive(a) => tasks::archive(&ctx, a),
        Command::Tail(a) => watch::tail(&ctx, a),
        Command::Watch(a) => watch::watch(&ctx, a),
        Command::Stats(a) => info::stats(&ctx, a),
        Command::Runs(a) => show::runs(&ctx, a),
        Command::Log(a) => show::log(&ctx, a),
        Command::Heartbeat(a) => transitions::heartbeat(&ctx, a),
        Command::Assignees(a) => info::assignees(&ctx, a),
        Command::Context(a) => show::context(&ctx, a),
        Command::Gc(a) => info::gc(&ctx, a),
        Command::Notify(c) => notify::run(&ctx, c),
        Command::NotifySubscribe(a) => notify::notify_subscribe(&ctx, a),
        Command::NotifyList(a) => notify::notify_list(&ctx, a),
        Command::NotifyUnsubscribe(a) => notify::notify_unsubscribe(&ctx, a),
        Command::Attach(a) => attach::attach(&ctx, a),
        Command::Attachments(a) => attach::attachments(&ctx, a),
        Command::AttachRm(a) => attach::attach_rm(&ctx, a),
        Command::Diagnostics(a) => info::diagnostics(&ctx, a),
        Command::Repair(a) => info::repair(&ctx, a),
        Command::Skills(c) => setup::skills(&ctx, c),
        Command::Completions(a) => setup::completions(a),
        Command::Mcp(a) => serve::mcp(&ctx, a),
        Command::Serve(a) => serve::serve(&ctx, a),
        Command::Dispatch(a) => dispatch::dispatch(&ctx, a),
        Command::Daemon(a) => dispatch::daemon(&ctx, a),
        Command::Supervise(_) => Ok(()),
    };
    exit_code(&ctx, res)
}

/// The exit code of a verb's result, with its message on stderr (a worker's own task missing
/// names the board and DB this process looked at).
fn exit_code(ctx: &Ctx, res: Result<(), CliError>) -> i32 {
    let res = match res {
        Err(CliError::Kernel(KernelError::TaskNotFound(t)))
            if ctx.env.get("HERMES_KANBAN_TASK") == Some(t.as_str()) =>
        {
            match ctx.home.resolve(ctx.board.as_deref()) {
                Ok(slug) => Err(CliError::Kernel(KernelError::NotOnBoard {
                    path: ctx.home.paths(&slug).db,
                    slug,
                    task_id: t,
                })),
                Err(_) => Err(CliError::Kernel(KernelError::TaskNotFound(t))),
            }
        }
        other => other,
    };
    match res {
        Ok(()) => 0,
        Err(CliError::Partial) => 1,
        Err(CliError::Usage(m)) => {
            eprintln!("hermes-kanban: {m}");
            2
        }
        Err(e) => {
            eprintln!("hermes-kanban: {e}");
            1
        }
    }
}
